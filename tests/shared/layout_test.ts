import { equal, ok } from "node:assert/strict";
import {
  IRQ_LINES,
  MACHINE_BLOCK_WORDS,
  MachineBlock,
  MAX_IRQ_SOURCES,
  MAX_PRODUCERS,
  MAX_ROUTES,
  RequestOp,
  ResponseStatus,
  RING_SLOTS,
  RING_WORDS,
  RingHeader,
  ringOffset,
  RingSlot,
  RouteEntry,
  TARGET_BLOCK_WORDS,
  TargetCtrl,
  TargetState,
} from "../../src/shared/layout.ts";

/** Asserts a record of word offsets is distinct and fits in `size` words. */
function distinctWithin(name: string, record: Record<string, number>, sizeKey: string): void {
  const size = record[sizeKey]!;
  const offsets = Object.entries(record).filter(([k]) => k !== sizeKey).map(([, v]) => v);
  equal(new Set(offsets).size, offsets.length, `${name}: distinct offsets`);
  for (const o of offsets) ok(o >= 0 && o < size && Number.isInteger(o), `${name}: ${o} < ${size}`);
}

Deno.test("layout: every record's words are distinct and inside the record", () => {
  distinctWithin("TargetCtrl", TargetCtrl, "SIZE");
  distinctWithin("RingHeader", RingHeader, "SIZE");
  distinctWithin("RingSlot", RingSlot, "WORDS");
  distinctWithin("RouteEntry", RouteEntry, "WORDS");
});

Deno.test("layout: rings and target blocks", () => {
  ok(RING_SLOTS > 0 && (RING_SLOTS & (RING_SLOTS - 1)) === 0, "power of two");
  equal(RING_WORDS, RingHeader.SIZE + RING_SLOTS * RingSlot.WORDS);
  equal(ringOffset(0), TargetCtrl.SIZE);
  for (let p = 1; p < MAX_PRODUCERS; p++) equal(ringOffset(p) - ringOffset(p - 1), RING_WORDS);
  equal(TARGET_BLOCK_WORDS, ringOffset(MAX_PRODUCERS));
});

Deno.test("layout: the machine block's areas do not overlap", () => {
  const areas: Array<[string, number, number]> = [
    ["IRQ_SEQ", MachineBlock.IRQ_SEQ, 1],
    ["IRQ_LEVEL", MachineBlock.IRQ_LEVEL, MAX_IRQ_SOURCES],
    ["IRQ_ROUTE", MachineBlock.IRQ_ROUTE, MAX_IRQ_SOURCES],
    ["IRQ_MASK", MachineBlock.IRQ_MASK, MAX_IRQ_SOURCES],
    ["ROUTE_VERSION", MachineBlock.ROUTE_VERSION, 1],
    ["ROUTE_COUNT", MachineBlock.ROUTE_COUNT, 1],
    ["ROUTE_BASE", MachineBlock.ROUTE_BASE, MAX_ROUTES * RouteEntry.WORDS],
  ];
  areas.sort((a, b) => a[1] - b[1]);
  for (let i = 1; i < areas.length; i++) {
    const [prev, start, len] = areas[i - 1]!;
    ok(start + len <= areas[i]![1], `${prev} overlaps ${areas[i]![0]}`);
  }
  const [, lastStart, lastLen] = areas.at(-1)!;
  ok(lastStart + lastLen <= MACHINE_BLOCK_WORDS);
  ok(IRQ_LINES <= 32, "line masks fit 32 bits");
});

Deno.test("layout: enumerations are distinct", () => {
  for (const e of [TargetState, RequestOp, ResponseStatus]) {
    const values = Object.values(e);
    equal(new Set(values).size, values.length);
  }
  equal(ResponseStatus.Ok, 0, "a zeroed response reads as Ok only with a matching sequence");
});
