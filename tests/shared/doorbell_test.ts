import { deepEqual, equal, ok } from "node:assert/strict";
import {
  DoorbellWaiter,
  ringDoorbell,
  SPIN_LIMIT,
  spinWait,
  WAKE_MESSAGE,
} from "../../src/shared/doorbell.ts";
import { TargetCtrl } from "../../src/shared/layout.ts";
import { runWaiter } from "./waiter_harness.ts";

function ctrl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(TargetCtrl.SIZE * 4));
}

Deno.test("ringDoorbell: counts every ring and posts one wake only when WAITING", () => {
  const c = ctrl();
  const sent: unknown[] = [];
  const target = { postMessage: (m: unknown) => sent.push(m) };
  ringDoorbell(c, target);
  equal(Atomics.load(c, TargetCtrl.DOORBELL), 1);
  deepEqual(sent, [], "awake consumer: no message");
  Atomics.store(c, TargetCtrl.WAITING, 1);
  ringDoorbell(c, target);
  deepEqual(sent, [WAKE_MESSAGE]);
  equal(WAKE_MESSAGE, "wake");
  equal(Atomics.load(c, TargetCtrl.WAITING), 0, "the producer took the flag");
  ringDoorbell(c, target);
  ringDoorbell(c, target);
  equal(sent.length, 1, "exactly one wake per sleep");
  equal(Atomics.load(c, TargetCtrl.DOORBELL), 4);
  // No wake target: the flag is still consumed, nothing throws.
  Atomics.store(c, TargetCtrl.WAITING, 1);
  ringDoorbell(c, undefined);
  equal(Atomics.load(c, TargetCtrl.WAITING), 0);
  equal(Atomics.load(c, TargetCtrl.DOORBELL), 5);
});

Deno.test("DoorbellWaiter: resolves at once when work is already there", async () => {
  const c = ctrl();
  const waiter = new DoorbellWaiter(c);
  let checks = 0;
  await waiter.wait(() => (checks++, true));
  equal(checks, 1);
  equal(Atomics.load(c, TargetCtrl.WAITING), 0);
});

Deno.test("DoorbellWaiter: sleeps with WAITING raised until a doorbell wakes it", async () => {
  const c = ctrl();
  const waiter = new DoorbellWaiter(c);
  let work = false;
  let resolved = false;
  const done = waiter.wait(() => work).then(() => (resolved = true));
  equal(Atomics.load(c, TargetCtrl.WAITING), 1);
  await Promise.resolve();
  equal(resolved, false);
  work = true;
  const sent: unknown[] = [];
  ringDoorbell(c, {
    postMessage: (m) => {
      sent.push(m);
      waiter.wake();
    },
  });
  await done;
  ok(resolved);
  equal(sent.length, 1);
  equal(Atomics.load(c, TargetCtrl.WAITING), 0);
});

Deno.test("DoorbellWaiter: a wake without a pending wait is harmless", async () => {
  const c = ctrl();
  const waiter = new DoorbellWaiter(c);
  waiter.wake();
  waiter.wake();
  let work = false;
  const p = waiter.wait(() => work);
  work = true;
  waiter.wake();
  await p;
});

Deno.test("DoorbellWaiter + ringDoorbell across a MessageChannel: no lost wake-up in 500 rounds", async () => {
  const c = ctrl();
  const waiter = new DoorbellWaiter(c);
  const channel = new MessageChannel();
  channel.port1.onmessage = () => waiter.wake();
  try {
    let published = 0;
    let consumed = 0;
    for (let round = 0; round < 500; round++) {
      // Alternate publishing before and after the consumer goes to sleep.
      if (round % 2 === 0) {
        published++;
        ringDoorbell(c, channel.port2);
      }
      while (consumed === published) {
        const sleep = waiter.wait(() => consumed !== published);
        if (round % 2 === 1 && consumed === published) {
          published++;
          ringDoorbell(c, channel.port2);
        }
        await sleep;
      }
      consumed = published;
    }
    equal(consumed, 500);
  } finally {
    channel.port1.close();
    channel.port2.close();
  }
});

Deno.test("spinWait: returns true at once when the word already differs", () => {
  const w = new Int32Array(new SharedArrayBuffer(8));
  Atomics.store(w, 1, 5);
  equal(spinWait(w, 1, 4, 1000), true);
  ok(SPIN_LIMIT > 0);
});

Deno.test("spinWait: times out when nothing changes", () => {
  const w = new Int32Array(new SharedArrayBuffer(8));
  equal(spinWait(w, 0, 0, 0), false);
  equal(spinWait(w, 0, 0, 5), false);
  equal(spinWait(w, 0, 0, -1), false);
});

Deno.test("spinWait: a blocked thread returns true when another thread changes the word", async () => {
  const w = new Int32Array(new SharedArrayBuffer(8));
  const done = await runWaiter(
    { buffer: w.buffer as SharedArrayBuffer, mode: "spin", index: 1, timeoutMs: 10_000 },
    () => {
      Atomics.add(w, 1, 1);
      Atomics.notify(w, 1);
    },
  );
  equal(done.result, "true");
  ok(done.value >= 1);
});
