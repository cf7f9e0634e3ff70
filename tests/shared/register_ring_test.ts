import { deepEqual, equal, ok } from "node:assert/strict";
import {
  MAX_PRODUCERS,
  RequestOp,
  ResponseStatus,
  RING_SLOTS,
  RingHeader,
  ringOffset,
  TARGET_BLOCK_WORDS,
  TargetCtrl,
  TargetState,
} from "../../src/shared/layout.ts";
import {
  failTarget,
  RingReader,
  type RingRequest,
  RingWriter,
} from "../../src/shared/register_ring.ts";
import { runWaiter } from "./waiter_harness.ts";

function block(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
}

/** Copies the reused request object. */
function collect(reader: RingReader): RingRequest[] {
  const out: RingRequest[] = [];
  reader.drain((r) => out.push({ ...r }));
  return out;
}

Deno.test("RingWriter/RingReader: one producer's requests come out in FIFO order with every field", () => {
  const b = block();
  const writer = new RingWriter(b, 3);
  const seqs: number[] = [];
  for (let i = 0; i < 10; i++) {
    seqs.push(writer.push(RequestOp.Write, i, 0x100 + i, i * 2, 4, 0x1000 + i, -i));
  }
  deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const reader = new RingReader(b);
  ok(reader.hasWork());
  ok(reader.hasWorkFor(3));
  equal(reader.hasWorkFor(2), false);
  const got = collect(reader);
  deepEqual(
    got,
    seqs.map((seq, i) => ({
      producer: 3,
      op: RequestOp.Write,
      region: i,
      offsetLo: 0x100 + i,
      offsetHi: i * 2,
      size: 4,
      valueLo: 0x1000 + i,
      valueHi: -i,
      seq,
    })),
  );
  equal(reader.hasWork(), false);
  equal(collect(reader).length, 0, "each request is taken once");
});

Deno.test("RingWriter: 32-bit words round-trip (the consumer sees them as Int32)", () => {
  const b = block();
  const writer = new RingWriter(b, 0);
  writer.push(RequestOp.Write, 0, 0xffff_fffc, 0x8000_0000, 8, 0xdead_beef, 0xffff_ffff);
  const [r] = collect(new RingReader(b));
  ok(r);
  equal(r.offsetLo >>> 0, 0xffff_fffc);
  equal(r.offsetHi >>> 0, 0x8000_0000);
  equal(r.valueLo >>> 0, 0xdead_beef);
  equal(r.valueHi >>> 0, 0xffff_ffff);
  equal(r.size, 8);
});

Deno.test("RingWriter: the ring is full at 64 entries and frees slots as the consumer takes them", () => {
  equal(RING_SLOTS, 64);
  const b = block();
  const writer = new RingWriter(b, 1);
  const reader = new RingReader(b);
  for (let i = 0; i < RING_SLOTS; i++) {
    equal(writer.full, false, `before push ${i}`);
    writer.push(RequestOp.Write, 0, i, 0, 4, i, 0);
  }
  equal(writer.full, true);
  const first = reader.take(1);
  equal(first?.offsetLo, 0);
  equal(writer.full, false);
  writer.push(RequestOp.Write, 0, 64, 0, 4, 64, 0);
  equal(writer.full, true);
  const rest = collect(reader).map((r) => r.offsetLo);
  deepEqual(rest, Array.from({ length: 64 }, (_, i) => i + 1), "order kept across the wrap");
  equal(writer.full, false);
});

Deno.test("RingWriter/RingReader: many wraps, including the Int32 wrap of HEAD and TAIL", () => {
  const b = block();
  const base = ringOffset(2);
  // Start just below 2^31 so that the indices wrap to negative numbers.
  Atomics.store(b, base + RingHeader.HEAD, 0x7fff_fff0);
  Atomics.store(b, base + RingHeader.TAIL, 0x7fff_fff0);
  const writer = new RingWriter(b, 2);
  const reader = new RingReader(b);
  let sent = 0;
  let received = 0;
  for (let round = 0; round < 20; round++) {
    const burst = 1 + ((round * 37) % RING_SLOTS);
    for (let i = 0; i < burst; i++) {
      ok(!writer.full);
      writer.push(RequestOp.Write, 0, sent++, 0, 4, 0, 0);
    }
    reader.drain((r) => {
      equal(r.offsetLo, received++);
    });
  }
  equal(received, sent);
  ok(Atomics.load(b, base + RingHeader.TAIL) < 0, "TAIL wrapped");
});

Deno.test("RingReader: a read never passes an earlier write of the same producer", () => {
  const b = block();
  const writer = new RingWriter(b, 1);
  const reader = new RingReader(b);
  let register = 0;
  const serve = (r: RingRequest) => {
    if (r.op === RequestOp.Write) register = r.valueLo;
    else reader.respond(r.producer, r.seq, ResponseStatus.Ok, register, 0);
  };
  for (let i = 1; i <= 100; i++) {
    writer.push(RequestOp.Write, 0, 0, 0, 4, i, 0);
    writer.push(RequestOp.Write, 0, 0, 0, 4, i * 10, 0);
    const seq = writer.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
    equal(writer.answered(seq), false);
    if (i % 2) reader.drain(serve);
    else {
      for (let r = reader.take(1); r; r = reader.take(1)) serve(r);
    }
    ok(writer.answered(seq));
    equal(writer.responseLo, i * 10);
  }
});

Deno.test("RingWriter: answered, response words and status", () => {
  const b = block();
  const writer = new RingWriter(b, 4);
  const reader = new RingReader(b);
  const s1 = writer.push(RequestOp.Read, 0, 0x10, 0, 8, 0, 0);
  equal(writer.answered(s1), false);
  const r = reader.take(4);
  ok(r);
  reader.respond(4, r.seq, ResponseStatus.Ok, 0x1234_5678, -1);
  ok(writer.answered(s1));
  equal(writer.responseStatus, ResponseStatus.Ok);
  equal(writer.responseLo, 0x1234_5678);
  equal(writer.responseHi, -1);
  const s2 = writer.push(RequestOp.Read, 0, 0x20, 0, 4, 0, 0);
  equal(writer.answered(s2), false);
  equal(writer.answered(s1), true, "the response words still hold the older answer");
  const r2 = reader.take(4);
  ok(r2);
  reader.respond(4, r2.seq, ResponseStatus.Unassigned, -1, 0);
  ok(writer.answered(s2));
  equal(writer.answered(s1), false);
  equal(writer.responseStatus, ResponseStatus.Unassigned);
  // A synchronous write is answered the same way.
  const s3 = writer.push(RequestOp.WriteSync, 0, 0x30, 0, 4, 7, 0);
  const r3 = reader.take(4);
  ok(r3);
  equal(r3.op, RequestOp.WriteSync);
  reader.respond(4, r3.seq, ResponseStatus.Ok, 0, 0);
  ok(writer.answered(s3));
  // Each ring has its own response words.
  const other = new RingWriter(b, 5);
  const s4 = other.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
  equal(other.answered(s4), false);
  equal(writer.answered(s3), true);
});

Deno.test("RingWriter: a failed or stopped target answers everything with Failed", () => {
  for (const state of [TargetState.Failed, TargetState.Stopped]) {
    const b = block();
    const writer = new RingWriter(b, 0);
    equal(writer.targetState, TargetState.Starting);
    const seq = writer.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
    equal(writer.answered(seq), false);
    Atomics.store(b, TargetCtrl.STATE, state);
    equal(writer.targetState, state);
    ok(writer.answered(seq));
    equal(writer.responseStatus, ResponseStatus.Failed);
  }
  const b = block();
  Atomics.store(b, TargetCtrl.STATE, TargetState.Running);
  const writer = new RingWriter(b, 0);
  const seq = writer.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
  equal(writer.answered(seq), false, "a running target answers only through the ring");
});

Deno.test("RingWriter: a new writer for the same ring continues the sequence and the tail", () => {
  const b = block();
  const first = new RingWriter(b, 6);
  deepEqual([1, 2, 3].map(() => first.push(RequestOp.Write, 0, 0, 0, 4, 0, 0)), [1, 2, 3]);
  const second = new RingWriter(b, 6);
  const seq = second.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
  equal(seq, 4, "no sequence number is reused");
  const got = collect(new RingReader(b));
  deepEqual(got.map((r) => [r.op, r.seq]), [
    [RequestOp.Write, 1],
    [RequestOp.Write, 2],
    [RequestOp.Write, 3],
    [RequestOp.Read, 4],
  ], "no unconsumed request was overwritten");
  equal(Atomics.load(b, ringOffset(6) + RingHeader.NEXT_SEQ), 4);
  // An answer to the old writer's last request is not taken for the new one's.
  const third = new RingWriter(b, 6);
  new RingReader(b).respond(6, 4, ResponseStatus.Ok, 1, 0);
  const s5 = third.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
  equal(s5, 5);
  equal(third.answered(s5), false);
});

Deno.test("RingReader: drains several producers, each in its own order", () => {
  const b = block();
  const producers = [0, 3, MAX_PRODUCERS - 1];
  const writers = producers.map((p) => new RingWriter(b, p));
  for (let i = 0; i < 10; i++) {
    writers.forEach((w, k) => w.push(RequestOp.Write, k, i, 0, 4, producers[k]!, 0));
  }
  const reader = new RingReader(b);
  for (const p of producers) ok(reader.hasWorkFor(p));
  const got = collect(reader);
  equal(got.length, 30);
  for (const p of producers) {
    const mine = got.filter((r) => r.producer === p);
    deepEqual(mine.map((r) => r.offsetLo), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `producer ${p}`);
    ok(mine.every((r) => r.valueLo === p));
  }
  equal(reader.hasWork(), false);
  equal(reader.drain(() => {}), 0);
});

Deno.test("RingReader: serves only the rings it was told about", () => {
  const b = block();
  new RingWriter(b, 5).push(RequestOp.Write, 0, 0, 0, 4, 0, 0);
  new RingWriter(b, 1).push(RequestOp.Write, 0, 0, 0, 4, 0, 0);
  const reader = new RingReader(b, 2);
  equal(reader.drain(() => {}), 1);
  equal(reader.hasWork(), false);
  ok(new RingReader(b).hasWork(), "ring 5 still holds its request");
});

Deno.test("RingReader.take returns one request at a time, then undefined", () => {
  const b = block();
  const writer = new RingWriter(b, 7);
  writer.push(RequestOp.Write, 1, 2, 3, 4, 5, 6);
  writer.push(RequestOp.Read, 9, 8, 7, 2, 0, 0);
  const reader = new RingReader(b);
  equal(reader.take(6), undefined);
  const a = reader.take(7);
  deepEqual({ ...a }, {
    producer: 7,
    op: RequestOp.Write,
    region: 1,
    offsetLo: 2,
    offsetHi: 3,
    size: 4,
    valueLo: 5,
    valueHi: 6,
    seq: 1,
  });
  const c = reader.take(7);
  equal(c?.op, RequestOp.Read);
  equal(c?.seq, 2);
  equal(reader.take(7), undefined);
});

Deno.test("failTarget marks the target failed and completes every pending read", () => {
  const b = block();
  Atomics.store(b, TargetCtrl.STATE, TargetState.Running);
  const writers = [0, 1, 15].map((p) => new RingWriter(b, p));
  const seqs = writers.map((w) => w.push(RequestOp.Read, 0, 0, 0, 4, 0, 0));
  failTarget(b);
  equal(Atomics.load(b, TargetCtrl.STATE), TargetState.Failed);
  writers.forEach((w, i) => {
    ok(w.answered(seqs[i]!));
    equal(w.responseStatus, ResponseStatus.Failed);
  });
});

Deno.test("failTarget wakes a thread blocked in Atomics.wait on its ring's response word", async () => {
  const b = block();
  Atomics.store(b, TargetCtrl.STATE, TargetState.Running);
  const done = await runWaiter(
    {
      buffer: b.buffer as SharedArrayBuffer,
      mode: "raw",
      index: ringOffset(2) + RingHeader.RESP_SEQ,
      timeoutMs: 10_000,
    },
    () => failTarget(b),
  );
  equal(done.result, "ok", "woken by the notify, not by the timeout");
  equal(Atomics.load(b, TargetCtrl.STATE), TargetState.Failed);
});

Deno.test("failTarget wakes a thread blocked on a full ring's HEAD", async () => {
  const b = block();
  const done = await runWaiter(
    {
      buffer: b.buffer as SharedArrayBuffer,
      mode: "raw",
      index: ringOffset(9) + RingHeader.HEAD,
      timeoutMs: 10_000,
    },
    () => failTarget(b),
  );
  equal(done.result, "ok");
});

// Regression (fixed) (src/shared/register_ring.ts failTarget + src/shared/doorbell.ts
// spinWait, used by src/machine/agent_runtime.ts to wait for an answer):
// failTarget() notifies RESP_SEQ without changing it, and spinWait() goes back
// to sleep after every wake-up whose value is unchanged
// (`if (Atomics.load(i32, index) !== expected) return true;` then loops). A
// guest agent waiting for a read from a target that fails therefore sleeps
// until its full timeout instead of completing at once with all-ones. Fix
// (either): make spinWait return `true` when Atomics.wait returns "ok" (a wake
// is reason enough to re-check: every caller loops on its own condition), or
// have failTarget bump a word the waiters watch (e.g. store RESP_STATUS =
// Failed and RESP_SEQ = NEXT_SEQ of each ring, which answered()/responseStatus
// already treat as Failed because STATE is Failed). The agent's ring-full loop
// (spinWait on HEAD) has the same problem and should also check targetState.
Deno.test("failTarget completes a read that an agent is waiting for", async () => {
  const b = block();
  Atomics.store(b, TargetCtrl.STATE, TargetState.Running);
  const done = await runWaiter(
    { buffer: b.buffer as SharedArrayBuffer, mode: "ring-read", producer: 3, timeoutMs: 1500 },
    () => failTarget(b),
  );
  equal(done.result, "answered", "the agent-style wait was not woken by failTarget");
  equal(done.value, ResponseStatus.Failed);
});
