// Regression tests from the fuzzer's findings: every reproducer in
// tests/fuzz/corpus/ replays without any oracle failing (and one that needs
// a planted bug fails again with it), through the fuzzer's executor and
// through the dmaworks command line (`dmaworks … -qtest stdio < repro`).
import { equal, ok } from "node:assert/strict";
import { FUZZ_MACHINE_ARGS } from "../../src/fuzz/fuzz_machine.ts";
import { FuzzExecutor } from "../../src/fuzz/fuzz_runner.ts";
import { readRepro } from "../../src/fuzz/repro.ts";

const CORPUS = new URL("./corpus/", import.meta.url);
const CLI = new URL("../../src/cli/main.ts", import.meta.url);

const files: string[] = [];
for (const entry of Deno.readDirSync(CORPUS)) {
  if (entry.name.endsWith(".qtest")) files.push(new URL(entry.name, CORPUS).pathname);
}
files.sort();

Deno.test("the fuzz corpus is not empty", () => {
  ok(files.length > 0);
});

for (const file of files) {
  const name = file.split("/").at(-1)!;
  Deno.test(`fuzz corpus ${name}: replays without a failure`, async () => {
    const repro = await readRepro(file);
    await using executor = new FuzzExecutor();
    const r = await executor.run(repro.lines, {
      finish: repro.meta.failure.kind === "completion-wait",
    });
    equal(r.failure, undefined, r.failure?.message);
    equal(r.ops, repro.lines.length);
    if (repro.meta.plantedBug !== undefined) {
      const planted = await executor.run(repro.lines, {
        plantedBug: repro.meta.plantedBug,
        finish: false,
      });
      equal(planted.failure?.key, repro.meta.failure.key, "with its planted bug it fails again");
    }
  });

  Deno.test(`fuzz corpus ${name}: replays on the command line (-qtest stdio)`, async () => {
    const input = await Deno.readFile(file);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLI.pathname,
        ...FUZZ_MACHINE_ARGS,
        "-qtest",
        "stdio",
        "-qtest-log",
        "none",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(input);
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    const replies = new TextDecoder().decode(stdout).split("\n").filter((l) =>
      l && !l.startsWith("IRQ")
    );
    const lines = new TextDecoder().decode(input).split("\n").filter((l) => l.trim() !== "");
    equal(code, 0);
    equal(replies.length, lines.length);
    ok(replies.every((r) => r.startsWith("OK")), replies.join("\n"));
    equal(new TextDecoder().decode(stderr).includes("failed"), false);
  });
}
