import { equal, ok, throws } from "node:assert/strict";
import { IrqLines } from "../../src/shared/irq_lines.ts";
import {
  IRQ_LINES,
  MACHINE_BLOCK_WORDS,
  MachineBlock,
  MAX_IRQ_SOURCES,
} from "../../src/shared/layout.ts";
import { runWaiter } from "./waiter_harness.ts";

function lines(onChange?: () => void): IrqLines {
  const irq = new IrqLines(
    new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)),
    onChange,
  );
  irq.clear();
  return irq;
}

Deno.test("IrqLines.clear leaves every source unrouted, low and unmasked", () => {
  const irq = lines();
  for (let s = 0; s < MAX_IRQ_SOURCES; s++) {
    equal(Atomics.load(irq.words, MachineBlock.IRQ_ROUTE + s), -1);
    equal(irq.sourceLevel(s), false);
    equal(Atomics.load(irq.words, MachineBlock.IRQ_MASK + s), 0);
  }
  equal(irq.lineMask(), 0);
  for (let gsi = 0; gsi < IRQ_LINES; gsi++) equal(irq.lineLevel(gsi), false);
  // An unrouted source drives nothing.
  irq.setSource(5, true);
  equal(irq.lineMask(), 0);
  equal(irq.sourceLevel(5), true);
});

Deno.test("IrqLines: a line is the wired-OR of its unmasked sources", () => {
  const irq = lines();
  irq.route(0, 20);
  irq.route(1, 20);
  irq.route(2, 21);
  irq.setSource(0, true);
  equal(irq.lineLevel(20), true);
  irq.setSource(1, true);
  irq.setSource(0, false);
  equal(irq.lineLevel(20), true, "source 1 still holds the line");
  equal(irq.lineLevel(21), false);
  irq.setSource(1, false);
  equal(irq.lineLevel(20), false);
  irq.setSource(2, true);
  equal(irq.lineMask(), 1 << 21);
});

Deno.test("IrqLines: masking hides a source without changing its level", () => {
  const irq = lines();
  irq.route(3, 22);
  irq.route(4, 22);
  irq.setSource(3, true);
  irq.mask(3, true);
  equal(irq.sourceLevel(3), true);
  equal(irq.lineLevel(22), false);
  equal(irq.lineMask(), 0);
  irq.setSource(4, true);
  equal(irq.lineLevel(22), true, "the other source is not masked");
  irq.setSource(4, false);
  irq.mask(3, false);
  equal(irq.lineLevel(22), true);
  equal(irq.lineMask(), 1 << 22);
});

Deno.test("IrqLines.lineMask covers lines 0 to 23", () => {
  const irq = lines();
  irq.route(0, 0);
  irq.route(1, 14);
  irq.route(2, 23);
  irq.route(MAX_IRQ_SOURCES - 1, 9);
  for (const s of [0, 1, 2, MAX_IRQ_SOURCES - 1]) irq.setSource(s, true);
  equal(irq.lineMask(), (1 << 0 | 1 << 14 | 1 << 23 | 1 << 9) >>> 0);
  // Re-routing an asserted source moves its assertion.
  irq.route(1, 15);
  equal(irq.lineLevel(14), false);
  equal(irq.lineLevel(15), true);
  irq.route(1, -1);
  equal(irq.lineLevel(15), false);
  equal(irq.lineLevel(24), false);
});

// Regression (fixed) (src/shared/irq_lines.ts, lineLevel, line ~132): the line number is not
// validated, and unrouted sources are stored with route -1, so lineLevel(-1)
// reports true whenever an unrouted source is asserted. The value reaches it
// unchecked from Guest.irqLevel/waitIrq (src/machine/agent_runtime.ts:169-177)
// and Machine (src/machine/machine.ts:720). Fix: return false (or throw a
// RangeError) unless `Number.isInteger(gsi) && gsi >= 0 && gsi < IRQ_LINES`.
Deno.test("IrqLines.lineLevel of a line that does not exist is false", () => {
  const irq = lines();
  irq.setSource(1, true); // asserted but unrouted
  equal(irq.lineLevel(-1), false);
  equal(irq.lineLevel(0.5), false);
});

Deno.test("IrqLines: seq moves on every change and only then", () => {
  let notified = 0;
  const irq = lines(() => notified++);
  equal(irq.seqIndex, MachineBlock.IRQ_SEQ);
  const s0 = irq.seq;
  irq.route(0, 20);
  equal(irq.seq, s0 + 1, "route");
  irq.setSource(0, true);
  equal(irq.seq, s0 + 2, "level change");
  irq.setSource(0, true);
  equal(irq.seq, s0 + 2, "same level: no change");
  irq.mask(0, true);
  equal(irq.seq, s0 + 3, "mask");
  irq.mask(0, true);
  equal(irq.seq, s0 + 3, "same mask: no change");
  irq.mask(0, false);
  irq.setSource(0, false);
  equal(irq.seq, s0 + 5);
  equal(notified, 5, "onChange follows seq");
});

Deno.test("IrqLines: invalid sources and lines are rejected", () => {
  const irq = lines();
  for (const source of [-1, MAX_IRQ_SOURCES, 1.5, NaN]) {
    throws(() => irq.setSource(source, true), RangeError);
    throws(() => irq.mask(source, true), RangeError);
    throws(() => irq.route(source, 20), RangeError);
    throws(() => irq.sourceLevel(source), RangeError);
  }
  for (const gsi of [-2, IRQ_LINES, 0.5, NaN]) throws(() => irq.route(0, gsi), RangeError);
  irq.route(0, IRQ_LINES - 1);
  irq.route(0, -1);
});

Deno.test("IrqLines: two views of one block agree (another thread's view)", () => {
  const a = lines();
  const b = new IrqLines(a.words);
  a.route(7, 20);
  b.setSource(7, true);
  equal(a.lineLevel(20), true);
  equal(a.seq, b.seq);
});

Deno.test("IrqLines: a level change wakes a thread waiting on seq", async () => {
  const irq = lines();
  irq.route(0, 20);
  let level = false;
  const done = await runWaiter(
    {
      buffer: irq.words.buffer as SharedArrayBuffer,
      mode: "raw",
      index: irq.seqIndex,
      timeoutMs: 10_000,
    },
    () => irq.setSource(0, level = !level),
  );
  ok(done.result === "ok" || done.result === "not-equal", done.result);
});
