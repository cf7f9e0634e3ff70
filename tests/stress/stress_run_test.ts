// The stress runner on real machines (device workers and guest agents):
// fixed seeds that reproduce their operation sequences, a clean run, the
// injected skip-ack bug caught by the checkers and replayed from its seed,
// and worker faults survived without false alarms. Seeds can be changed
// with DMAWORKS_STRESS_SEED to explore; every run prints its seed.
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { describeResult } from "../../src/stress/main.ts";
import { OpGenerator } from "../../src/stress/ops.ts";
import {
  assignDevices,
  runStress,
  stressDeviceKinds,
  type StressResult,
} from "../../src/stress/runner.ts";

const SEED = Number(Deno.env.get("DMAWORKS_STRESS_SEED") ?? 20261124);

function explain(r: StressResult): string {
  return `seed ${r.seed}:\n${describeResult(r)}`;
}

Deno.test(`fixed seeds: a short run has no violations and the same seed draws the same operations (seed ${SEED})`, async () => {
  const options = { seed: SEED, ops: 25, devices: 4, agents: 2, shrink: false };
  const a = await runStress(options);
  ok(a.ok, explain(a));
  equal(a.opsByAgent.reduce((s, n) => s + n, 0) + a.skipped, 50);
  for (const check of ["integrity", "poison", "trace"] as const) ok(a.checks[check] > 0, check);
  ok(a.trace.records > 0 && a.trace.pageEvents > 0);
  ok(a.latency.total > 0);
  const b = await runStress(options);
  ok(b.ok, explain(b));
  deepEqual(b.digests, a.digests);
  deepEqual(b.opsByKind, a.opsByKind);
  const c = await runStress({ ...options, seed: SEED + 1 });
  ok(c.ok, explain(c));
  notDeepEqual(c.digests, a.digests);
});

Deno.test(`the checkers catch invalidations completed without acknowledgements, and a replay of the seed shows it again (seed ${SEED})`, async () => {
  const caught = await runStress({
    seed: SEED,
    durationMs: 30_000,
    injectBug: "skip-ack",
    shrink: false,
  });
  ok(!caught.ok, `seed ${SEED}: the injected bug went unnoticed`);
  const v = caught.violations.find((x) => x.kind === "use-after-invalidate");
  ok(v, explain(caught));
  ok(v.op !== undefined && v.device !== undefined);
  ok(v.history.length > 0 || v.deviceTrace.length > 0, "the violation comes with a history");
  console.log(`seed ${SEED}: caught after ${caught.ops} operations: ${v.message}`);
  // Replay: the same operation sequences, cut after the violating one (but
  // not before the tenth: whether a stale translation is used before the
  // worker reads its invalidation is a race, and a run of one or two
  // operations gives it a narrow window; the sequences are the same).
  const ops = Math.max(v.op + 1, 10);
  const attempts = 6;
  const replay = await runStress({
    seed: SEED,
    ops,
    injectBug: "skip-ack",
    attempts,
    shrink: false,
  });
  ok(!replay.ok, `seed ${SEED}: not reproduced with --ops ${ops} in ${attempts} attempts`);
  ok(replay.violations.some((x) => x.kind === "use-after-invalidate"), explain(replay));
  // The same sequences on a machine without the bug are clean.
  const clean = await runStress({ seed: SEED, ops, shrink: false });
  ok(clean.ok, explain(clean));
  equal(clean.ops + clean.skipped, ops * clean.options.agents);
});

/** A seed whose agent 0 asks, early, for a crash or a kill of one of its devices. */
function seedWithLethalFault(from: number, devices: number, agents: number, within: number) {
  const kinds = stressDeviceKinds(devices);
  const owners = assignDevices(kinds, agents);
  const mine = kinds.filter((_, i) => owners[i] === 0);
  for (let seed = from;; seed++) {
    const g = new OpGenerator(seed, 0, mine, { faults: true });
    for (let i = 0; i < within; i++) {
      const op = g.next();
      if (op.kind === "fault" && (op.fault === "crash" || op.fault === "kill")) return seed;
    }
  }
}

Deno.test(`worker stalls, crashes and kills are survived without false violations (seed from ${SEED})`, async () => {
  const seed = seedWithLethalFault(SEED, 4, 2, 30);
  const r = await runStress({ seed, ops: 40, devices: 4, agents: 2, faults: true, shrink: false });
  console.log(`seed ${seed}: faults ${JSON.stringify(r.faults)}`);
  ok(r.ok, explain(r));
  ok(r.faults.some((f) => f.kind === "crash" || f.kind === "kill"), JSON.stringify(r.faults));
  ok(r.devices.some((d) => d.failure !== undefined), "the device did not fail");
});
