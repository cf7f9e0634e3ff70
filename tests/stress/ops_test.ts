// The stress runner's operation generator: a seed fixes every agent's
// sequence, operations only use devices the agent has, and fault operations
// appear only when asked for.
import { deepEqual, equal, notDeepEqual, notEqual, ok } from "node:assert/strict";
import {
  describeOp,
  digestOps,
  OP_KINDS,
  OpGenerator,
  type StressDeviceKind,
  type StressOp,
} from "../../src/stress/ops.ts";
import { assignDevices, stressDeviceKinds } from "../../src/stress/runner.ts";

const DEVICES: StressDeviceKind[] = ["edu", "ide", "e1000", "edu"];

function take(seed: number, agent: number, n: number, faults = false): StressOp[] {
  const g = new OpGenerator(seed, agent, DEVICES, { faults });
  return Array.from({ length: n }, () => g.next());
}

Deno.test("the same seed and agent give the same operations; another seed or agent does not", () => {
  deepEqual(take(1234, 0, 500), take(1234, 0, 500));
  notDeepEqual(take(1234, 0, 50), take(1235, 0, 50));
  notDeepEqual(take(1234, 0, 50), take(1234, 1, 50));
  // A prefix of a longer run is the shorter run: what --ops shrinking relies on.
  deepEqual(take(99, 1, 300).slice(0, 120), take(99, 1, 120));
});

Deno.test("operations only use devices of the kind they need", () => {
  const needs: Partial<Record<StressOp["kind"], StressDeviceKind>> = {
    "edu-copy": "edu",
    "remap-live": "edu",
    "map-unmap": "edu",
    "perm-probe": "edu",
    "oob-probe": "edu",
    "flood": "edu",
    "ide-rw": "ide",
    "ide-flush": "ide",
    "ide-remap-live": "ide",
    "nic-loop": "e1000",
  };
  const seen = new Set<string>();
  for (const op of take(7, 0, 5000)) {
    seen.add(op.kind);
    const kind = needs[op.kind];
    if (kind) equal(DEVICES[op.device], kind, describeOp(op));
    else ok(op.device >= 0 && op.device < DEVICES.length, describeOp(op));
  }
  deepEqual([...seen].sort(), OP_KINDS.filter((k) => k !== "fault").sort());
  const eduOnly = new OpGenerator(7, 0, ["e1000"]);
  for (let i = 0; i < 500; i++) {
    const op = eduOnly.next();
    ok(["nic-loop", "dte", "flush"].includes(op.kind), op.kind);
  }
});

Deno.test("fault operations appear only with faults on", () => {
  ok(!take(5, 0, 5000).some((op) => op.kind === "fault"));
  const faults = take(5, 0, 5000, true).filter((op) => op.kind === "fault");
  ok(faults.length > 0);
  ok(
    faults.every((op) =>
      op.kind === "fault" && ["stall", "stall-timeout", "crash", "kill"].includes(op.fault)
    ),
  );
});

Deno.test("operation digests tell sequences apart", () => {
  const a = take(3, 0, 100).map(describeOp);
  const b = take(3, 0, 100).map(describeOp);
  equal(digestOps(a), digestOps(b));
  b[50] = `${b[50]} changed`;
  notEqual(digestOps(a), digestOps(b));
  notEqual(digestOps(a), digestOps(a.slice(0, 99)));
});

Deno.test("device mix and assignment: one IDE controller, every agent an edu while there are enough", () => {
  deepEqual(stressDeviceKinds(1), ["edu"]);
  deepEqual(stressDeviceKinds(6), ["edu", "ide", "e1000", "edu", "e1000", "edu"]);
  equal(stressDeviceKinds(16).filter((k) => k === "ide").length, 1);
  const kinds = stressDeviceKinds(6);
  const owners = assignDevices(kinds, 3);
  for (let a = 0; a < 3; a++) {
    ok(kinds.some((k, i) => k === "edu" && owners[i] === a), `agent ${a}`);
  }
  deepEqual(owners.filter((o) => o === 0).length, 2);
});
