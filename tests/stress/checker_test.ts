// The stress runner's checkers without a machine: the trace checker holds a
// record until every page event up to its end is known, catches accesses
// outside RAM and outside the owning agent's memory; the page-event ring's
// PENDING protocol; the use-after-invalidate index with 2 MiB pages.
import { deepEqual, equal, ok } from "node:assert/strict";
import type { DmaTraceRecord } from "../../src/dma/dma_trace.ts";
import type { Guest } from "../../src/guest/guest.ts";
import { PageEventReader, PageEventWriter } from "../../src/stress/page_events.ts";
import { relevantHistory } from "../../src/stress/runner.ts";
import { firstNot } from "../../src/stress/stress_devices.ts";
import {
  AgentCtl,
  agentWord,
  controlWords,
  EVENT_RING_ENTRIES,
  STRESS_RAM,
} from "../../src/stress/stress_layout.ts";
import { TraceChecker } from "../../src/stress/trace_checker.ts";
import { UseAfterInvalidateChecker } from "../../src/stress/use_after_invalidate.ts";

const record = (r: Partial<DmaTraceRecord>): DmaTraceRecord => ({
  requesterId: 0x20,
  access: "write",
  iova: 0x4000_0000,
  address: 0x300_0000,
  length: 4096,
  result: "ok",
  epochStart: 1,
  epochEnd: 1,
  ...r,
});

function checker() {
  return new TraceChecker({
    inRam: (a, n) => a >= 0 && a + n <= STRESS_RAM.size,
    owners: new Map([["edu0", { base: 0x200_0000, end: 0x380_0000 }]]),
  });
}

Deno.test("a record is checked only below the watermark, then against every interval of its pages", () => {
  const c = checker();
  c.addEvents([{ kind: "invalid", page: 0x300_0000, size: 4096, epoch: 10 }]);
  // Ran across the invalidation: a violation, but only once epoch 12 is complete.
  equal(c.addRecords("edu0", [record({ epochStart: 9, epochEnd: 11 })]).length, 0);
  equal(c.advance(11).length, 0);
  const found = c.advance(12);
  equal(found.length, 1);
  equal(found[0]?.kind, "use-after-invalidate");
  equal(found[0]?.page, 0x300_0000);
  // Finished before the invalidation completed: fine.
  c.addRecords("edu0", [record({ epochStart: 8, epochEnd: 9 })]);
  equal(c.finish().length, 0);
  // After the page is reused, new accesses are fine; late old ones are not.
  c.addEvents([{ kind: "reuse", page: 0x300_0000, size: 4096, epoch: 20 }]);
  c.addRecords("edu0", [
    record({ epochStart: 20, epochEnd: 21 }),
    record({ epochStart: 19, epochEnd: 21 }),
  ]);
  equal(c.finish().length, 1);
  deepEqual(c.stats, { records: 4, checked: 4, events: 2 });
});

Deno.test("successful runs outside RAM or outside the agent's memory are violations at once; faults are not", () => {
  const c = checker();
  const outside = c.addRecords("edu0", [record({ address: STRESS_RAM.size - 8, length: 16 })]);
  equal(outside[0]?.kind, "out-of-ram");
  ok(outside[0]?.message.includes("outside RAM"));
  const foreign = c.addRecords("edu0", [record({ address: 0x380_0000 })]);
  ok(foreign[0]?.message.includes("outside its agent's memory"));
  equal(
    c.addRecords("edu0", [record({ address: 0x100, result: "permission", length: 4 })]).length,
    0,
  );
  equal(c.addRecords("nic9", [record({ address: 0x100 })]).length, 0); // no owner known
  equal(c.recent("edu0").length, 3);
});

Deno.test("a 2 MiB invalidation covers all of its 4 KiB pages", () => {
  const uai = new UseAfterInvalidateChecker();
  uai.addEvent({ kind: "invalid", page: 0x400_0000, size: 0x20_0000, epoch: 5 });
  const hit = { device: "edu0", ...record({ address: 0x41f_f000, epochStart: 4, epochEnd: 6 }) };
  equal(uai.check(hit).length, 1);
  ok(uai.touches(hit));
  equal(uai.check({ ...hit, address: 0x420_0000 }).length, 0);
  uai.addEvent({ kind: "reuse", page: 0x400_0000, size: 0x20_0000, epoch: 7 });
  equal(uai.check({ ...hit, epochStart: 7, epochEnd: 8 }).length, 0);
  equal(uai.pages, 512);
});

function fakeGuest(ram: SharedArrayBuffer, onMark?: () => void): Guest {
  let epoch = 0;
  return {
    memory: { buffer: ram },
    traceMark: () => {
      onMark?.();
      return ++epoch;
    },
    sleep: () => {},
  } as unknown as Guest;
}

Deno.test("page events: PENDING is up while an epoch is taken and the event not yet published", () => {
  const ram = new SharedArrayBuffer(STRESS_RAM.control + STRESS_RAM.controlSize);
  const reader = new PageEventReader(ram, 2);
  let pendingDuringMark = false;
  const writer = new PageEventWriter(
    fakeGuest(ram, () => (pendingDuringMark = !reader.quiet())),
    1,
  );
  equal(writer.publish("invalid", 0x300_0000), 1);
  ok(pendingDuringMark, "PENDING was not raised before the epoch was taken");
  ok(reader.quiet());
  writer.publish("reuse", 0x300_0000, 0x20_0000);
  deepEqual(reader.drain(), [
    { agent: 1, kind: "invalid", page: 0x300_0000, size: 4096, epoch: 1 },
    { agent: 1, kind: "reuse", page: 0x300_0000, size: 0x20_0000, epoch: 2 },
  ]);
  equal(reader.drain().length, 0);
});

Deno.test("page events: the ring wraps, and a full ring makes the writer give up rather than overwrite", () => {
  const ram = new SharedArrayBuffer(STRESS_RAM.control + STRESS_RAM.controlSize);
  const reader = new PageEventReader(ram, 1);
  const writer = new PageEventWriter(fakeGuest(ram), 0);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < EVENT_RING_ENTRIES - 1; i++) writer.publish("invalid", i * 4096);
    const events = reader.drain();
    equal(events.length, EVENT_RING_ENTRIES - 1);
    equal(events.at(-1)?.page, (EVENT_RING_ENTRIES - 2) * 4096);
  }
  for (let i = 0; i < EVENT_RING_ENTRIES; i++) writer.publish("invalid", 0);
  const words = controlWords(ram);
  // Make the wait for room end at once: pretend 10 s passed.
  const now = performance.now;
  let fake = now.call(performance);
  performance.now = () => (fake += 20_000);
  try {
    let threw = false;
    try {
      writer.publish("invalid", 0);
    } catch (error) {
      threw = (error as Error).message.includes("stopped reading");
    }
    ok(threw);
  } finally {
    performance.now = now;
  }
  equal(Atomics.load(words, agentWord(0, AgentCtl.PENDING)), 0);
});

Deno.test("the history of a violation starts at the operation that last invalidated its page", () => {
  const lines = [
    "#7 edu-copy dev0 src=1",
    "#8 remap-live dev0 huge=true",
    "  reuse 0x2800000 (2M) @40",
    "  invalid 0x2600000 (2M) @44",
    "#9 flush dev0 cw",
  ];
  deepEqual(relevantHistory(lines, 0x2603000), lines.slice(1));
  deepEqual(relevantHistory(lines, 0x9000), lines);
  deepEqual(relevantHistory(lines, undefined), lines);
  // The last invalidation of the page counts, and a long stretch is cut in the middle.
  const long = [
    "#1 map-unmap dev0",
    "  invalid 0x7000 @3",
    "#2 remap-live dev0",
    "  invalid 0x7000 @9",
    ...Array.from({ length: 100 }, (_, i) => `  flush cw ${i}`),
  ];
  const cut = relevantHistory(long, 0x7000);
  equal(cut[0], "#2 remap-live dev0");
  equal(cut.length, 57);
  equal(cut.at(-1), "  flush cw 99");
});

Deno.test("firstNot finds the first odd byte at any alignment", () => {
  const bytes = new Uint8Array(4099).fill(0xee);
  for (const at of [0, 1, 2, 3, 4, 1000, 4095, 4098]) {
    bytes[at] = 0;
    equal(firstNot(bytes.subarray(1), 0xee), at === 0 ? -1 : at - 1);
    equal(firstNot(bytes, 0xee), at);
    bytes[at] = 0xee;
  }
});
