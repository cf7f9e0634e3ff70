// The fuzzer's driver: a short campaign over the current code finds nothing,
// a planted bug is found and minimised into a reproducer that replays, a run
// that hangs or kills its process is reported as such, and the command line.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { fuzz, FuzzExecutor, runSeed } from "../../src/fuzz/fuzz_runner.ts";
import { main, parseDuration } from "../../src/fuzz/main.ts";
import { minimizeList } from "../../src/fuzz/minimize.ts";
import { readRepro } from "../../src/fuzz/repro.ts";

Deno.test("a short fuzz campaign over the current code finds no failure", async () => {
  const result = await fuzz({ seed: 20240601, runs: 3, ops: 80 });
  equal(result.runs, 3);
  ok(result.ops > 3 * 80, `${result.ops} requests ran`);
  deepEqual(result.failures.map((f) => f.failure.message), []);
});

Deno.test("a planted bug is found from a seed, minimised to the requests that trigger it, and replays only with the bug", async () => {
  // Seed 7 finds it in its second run, whose 28 requests shrink to 7 in
  // about 50 replays. The assertions hold for any seed that finds it.
  const result = await fuzz({
    seed: 7,
    runs: 6,
    ops: 30,
    plantedBug: "edu-dma-bounds",
    stopOnFailure: true,
  });
  equal(result.failures.length, 1, "found");
  const found = result.failures[0]!;
  equal(found.failure.key, "device-failed:edu0");
  match(found.failure.message, /Invalid typed array length/);
  const repro = found.reproducer;
  ok(repro, "minimised");
  ok(repro.lines.length < found.executed.length);
  // What the bug needs: edu's BAR and memory decoding (four configuration
  // requests), then a DMA (its count, maybe addresses, the command).
  ok(repro.lines.length <= 9, `a small reproducer: ${repro.lines.join(" | ")}`);
  match(repro.lines.at(-1)!, /^write[lq] 0xfe000098 /, "it ends with edu's DMA command");
  await using executor = new FuzzExecutor();
  const again = await executor.run(repro.lines, { plantedBug: "edu-dma-bounds", finish: false });
  equal(again.failure?.key, "device-failed:edu0");
  const clean = await executor.run(repro.lines, { finish: false });
  equal(clean.failure, undefined, "without the planted bug the same requests are harmless");
});

Deno.test("minimisation is 1-minimal, keeps order, and stops at its budget", async () => {
  const items = Array.from({ length: 200 }, (_, i) => i);
  const needed = [0, 1, 2, 3, 97, 198, 199];
  const fails = (c: number[]) => Promise.resolve(needed.every((n) => c.includes(n)));
  const full = await minimizeList(items, fails, { maxTests: 10_000 });
  deepEqual(full.items, needed);
  ok(full.complete);
  ok(full.tests < 100, `${full.tests} tests`);
  const cut = await minimizeList(items, fails, { maxTests: 5 });
  equal(cut.complete, false);
  equal(cut.tests, 5);
  ok(needed.every((n) => cut.items.includes(n)), "what it returns still fails");
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

Deno.test("fuzz command line: --plant finds the planted bug and writes a reproducer that needs it", async () => {
  const out = await Deno.makeTempDir();
  try {
    const args = ["--seed", "7", "--runs", "2", "--ops", "30", "--out", out, "--no-minimize"];
    equal(await main([...args, "--plant", "edu-dma-bounds"]), 1, "a failure: exit code 1");
    const written = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    equal(written.length, 2, written.join(", "));
    const qtest = `${out}/${written.find((n) => n.endsWith(".qtest"))}`;
    const repro = await readRepro(qtest);
    equal(repro.meta.plantedBug, "edu-dma-bounds");
    equal(repro.meta.failure.key, "device-failed:edu0");
    equal(repro.meta.seed, 7);
    match(repro.meta.replay, /^deno task fuzz --replay /);
    equal(await main(["--replay", qtest]), 1, "it fails again on replay");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
