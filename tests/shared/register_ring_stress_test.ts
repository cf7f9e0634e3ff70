// Two producer workers hammer one consumer (this thread) through the register
// ring, the doorbell and the DoorbellWaiter, as guest agents do with a device.
import { deepEqual, equal } from "node:assert/strict";
import { DoorbellWaiter } from "../../src/shared/doorbell.ts";
import {
  RequestOp,
  ResponseStatus,
  TARGET_BLOCK_WORDS,
  TargetCtrl,
  TargetState,
} from "../../src/shared/layout.ts";
import { RingReader, type RingRequest } from "../../src/shared/register_ring.ts";
import type { ProducerReport } from "./workers/ring_producer.ts";

const SEED = 0x2545f491;
const OPS = 10_000;
const PRODUCERS = [1, 2];

Deno.test(`register ring stress: ${PRODUCERS.length} producers × ${OPS} ops (seed 0x${SEED.toString(16)})`, async () => {
  const buffer = new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4);
  const block = new Int32Array(buffer);
  Atomics.store(block, TargetCtrl.STATE, TargetState.Running);
  const reader = new RingReader(block, 3);
  const waiter = new DoorbellWaiter(block);
  // Consumer-side bookkeeping, per producer.
  const writes = new Map<number, number>(PRODUCERS.map((p) => [p, 0]));
  const reads = new Map<number, number>(PRODUCERS.map((p) => [p, 0]));
  const lastSeq = new Map<number, number>(PRODUCERS.map((p) => [p, 0]));
  let counter = 0;
  const errors: string[] = [];
  const reports: ProducerReport[] = [];
  let stop = false;
  const handle = (r: RingRequest) => {
    const p = r.producer;
    if (!writes.has(p)) {
      errors.push(`request from unknown producer ${p}`);
      return;
    }
    if (r.seq !== lastSeq.get(p)! + 1) {
      errors.push(`producer ${p}: seq ${r.seq} after ${lastSeq.get(p)}`);
    }
    lastSeq.set(p, r.seq);
    if (r.op === RequestOp.Write) {
      const k = writes.get(p)! + 1;
      if (r.valueLo !== k) errors.push(`producer ${p}: write ${r.valueLo} arrived as write ${k}`);
      writes.set(p, k);
      counter += r.valueHi;
    } else if (r.op === RequestOp.Read) {
      const n = reads.get(p)! + 1;
      reads.set(p, n);
      reader.respond(p, r.seq, ResponseStatus.Ok, writes.get(p)!, n);
    } else {
      errors.push(`producer ${p}: unexpected op ${r.op}`);
    }
  };
  const workers = PRODUCERS.map(() =>
    new Worker(new URL("./workers/ring_producer.ts", import.meta.url), { type: "module" })
  );
  // A liveness guard: a hang becomes a failure instead of a stuck test run.
  const guard = setTimeout(() => {
    errors.push("the stress run did not finish within 30 s");
    stop = true;
    waiter.wake();
  }, 30_000);
  try {
    workers.forEach((worker, i) => {
      worker.onmessage = (e: MessageEvent<ProducerReport | { type: "wake" }>) => {
        if (e.data.type === "wake") waiter.wake();
        else if (e.data.type === "done") {
          reports.push(e.data);
          waiter.wake();
        }
      };
      worker.onerror = (e) => {
        e.preventDefault();
        errors.push(`producer worker ${i} failed: ${e.message}`);
        stop = true;
        waiter.wake();
      };
      worker.postMessage({ buffer, producer: PRODUCERS[i], seed: SEED + i, ops: OPS });
    });
    while (!stop) {
      reader.drain(handle);
      if (reports.length === PRODUCERS.length && !reader.hasWork()) break;
      await waiter.wait(() => reader.hasWork());
    }
  } finally {
    clearTimeout(guard);
    for (const worker of workers) worker.terminate();
  }
  deepEqual(errors, [], `seed 0x${SEED.toString(16)}`);
  equal(reports.length, PRODUCERS.length);
  let sum = 0;
  for (const report of reports) {
    deepEqual(report.errors, [], `producer ${report.producer}, seed 0x${SEED.toString(16)}`);
    equal(writes.get(report.producer), report.writes, "every write taken exactly once");
    equal(reads.get(report.producer), report.reads, "every read taken exactly once");
    equal(report.writes + report.reads, OPS);
    equal(lastSeq.get(report.producer), OPS);
    sum += report.sum;
  }
  equal(counter, sum, "the counter saw every posted delta exactly once");
});
