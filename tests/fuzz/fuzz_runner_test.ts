// The fuzzer's driver: a short campaign over the current code finds nothing,
// a planted bug is found and minimised into a reproducer that replays, a run
// that hangs or kills its process is reported as such, and the command line.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { fuzz, FuzzExecutor, runSeed } from "../../src/fuzz/fuzz_runner.ts";
import { main, parseDuration } from "../../src/fuzz/main.ts";
import { readRepro } from "../../src/fuzz/repro.ts";

Deno.test("a short fuzz campaign over the current code finds no failure", async () => {
  const result = await fuzz({ seed: 20240601, runs: 3, ops: 80 });
  equal(result.runs, 3);
  ok(result.ops > 3 * 80, `${result.ops} requests ran`);
  deepEqual(result.failures.map((f) => f.failure.message), []);
});

Deno.test("a planted bug is found, minimised, and its reproducer replays (and only with the bug)", async () => {
  const result = await fuzz({
    seed: 5,
    runs: 8,
    ops: 40,
    plantedBug: "edu-dma-bounds",
    maxTests: 100,
    stopOnFailure: true,
  });
  equal(result.failures.length, 1);
  const found = result.failures[0]!;
  equal(found.failure.key, "device-failed:edu0");
  const repro = found.reproducer;
  ok(repro, "minimised");
  ok(repro.lines.length <= 12, `a small reproducer: ${repro.lines.join(" | ")}`);
  ok(repro.lines.length < found.executed.length);
  await using executor = new FuzzExecutor();
  const again = await executor.run(repro.lines, { plantedBug: "edu-dma-bounds", finish: false });
  equal(again.failure?.key, "device-failed:edu0");
  const clean = await executor.run(repro.lines, { finish: false });
  equal(clean.failure, undefined, "without the planted bug the same requests are harmless");
});

Deno.test("a run that stops reporting is a hang; the executor replaces its process and goes on", async () => {
  await using executor = new FuzzExecutor();
  const hung = await executor.run(["inb 0x1f7"], { hangMs: 1, finish: false });
  equal(hung.failure?.kind, "hang");
  const next = await executor.run(["outl 0xcf8 0x80000000", "inl 0xcfc"], { finish: false });
  equal(next.failure, undefined);
  deepEqual(next.executed, ["outl 0xcf8 0x80000000", "inl 0xcfc"]);
});

Deno.test("a fuzz process that dies is reported as uncaught, with what it printed", async () => {
  await using executor = new FuzzExecutor();
  // An empty pattern makes the machine's constructor throw inside the child.
  const r = await executor.run(["inb 0x1f7"], {
    patterns: [{ data: new Uint8Array(0), index: 0, stride: 0 }],
  });
  equal(r.failure?.kind, "uncaught");
  match(r.failure!.message, /Invalid pattern length/);
});

Deno.test("fuzz command line: options, durations, replay", async () => {
  equal(parseDuration("10m"), 600_000);
  equal(parseDuration("90s"), 90_000);
  equal(parseDuration("250ms"), 250);
  equal(await main(["--runs", "x"]), 1);
  equal(await main(["--plant", "nonsense"]), 1);
  equal(await main(["--help"]), 0);
  const corpus = new URL("./corpus/planted-edu-dma-bounds.qtest", import.meta.url).pathname;
  equal(
    await main(["--replay", corpus]),
    1,
    "the planted reproducer fails (its metadata plants the bug)",
  );
  ok(runSeed(1, 0) !== runSeed(2, 0));
  equal((await readRepro(corpus)).meta.plantedBug, "edu-dma-bounds");
});
