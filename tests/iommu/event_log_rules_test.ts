// amd-vi.md §5 and §1 (event ring): the raw entry format of every event the
// model can raise, entry-before-tail ordering, wrap, full and overflow, the
// restart sequence, Status RW1C semantics, EvtTail ownership and the
// interrupt level.
import { deepEqual, equal, ok } from "node:assert/strict";
import { AmdViStatus } from "../../src/iommu/amd_vi_registers.ts";
import { commands } from "../../src/iommu/commands.ts";
import { b, C, DATA, EVT_LOG, NOT_RAM, R, Rig } from "./rig.ts";

const S = AmdViStatus;
const RID = 0x00a3; // 00:14.3 (the rig's table has 256 DTEs)

/** q0 of an event from its fields (independently of src/iommu/events.ts). */
function q0(
  code: number,
  fields: { deviceId?: number; domainId?: number; flagBits?: number[]; type?: number },
): bigint {
  let v = BigInt(code) << 60n;
  v |= BigInt(fields.deviceId ?? 0);
  v |= BigInt(fields.domainId ?? 0) << 32n;
  for (const n of fields.flagBits ?? []) v |= b(n);
  v |= BigInt(fields.type ?? 0) << 57n;
  return v;
}

// Flag bit numbers.
const PR = 52;
const RW = 53;
const PE = 54;
const RZ = 55;

Deno.test("Entry format of every event the model raises (raw q0/q1 in the log)", async () => {
  const rows: Array<{
    name: string;
    trigger: (rig: Rig) => void | Promise<void>;
    entry: [bigint, bigint];
  }> = [
    {
      name: "ILLEGAL_DEV_TABLE_ENTRY (reserved bit, write)",
      trigger: (r) => {
        r.writeDte(RID, { valid: true, translationValid: true, domainId: 0x4567 }, { q0: b(63) });
        r.iommu.resolve(RID, 0x1_2345_6787, 2);
      },
      entry: [q0(1, { deviceId: RID, flagBits: [RZ, RW] }), 0x1_2345_6784n],
    },
    {
      name: "ILLEGAL_DEV_TABLE_ENTRY (Mode 7, read)",
      trigger: (r) => {
        r.writeDte(RID, { valid: true, translationValid: true, mode: 7, readable: true });
        r.iommu.resolve(RID, 0x5003, 1);
      },
      entry: [q0(1, { deviceId: RID }), 0x5000n],
    },
    {
      name: "IO_PAGE_FAULT (permission, write)",
      trigger: (r) => {
        r.writeDte(RID, { valid: true, translationValid: true, readable: true, domainId: 0x4567 });
        r.iommu.resolve(RID, 0xabc_def1, 2);
      },
      entry: [q0(2, { deviceId: RID, domainId: 0x4567, flagBits: [PR, RW, PE] }), 0xabc_def1n],
    },
    {
      name: "IO_PAGE_FAULT (TV = 0, read)",
      trigger: (r) => {
        r.writeDte(0xff, { valid: true, domainId: 0xffff });
        r.iommu.resolve(0xff, 0x10, 1);
      },
      entry: [q0(2, { deviceId: 0xff, domainId: 0xffff }), 0x10n],
    },
    {
      name: "IO_PAGE_FAULT (reserved PTE bit)",
      trigger: (r) => {
        const root = r.table();
        r.map(root, 1, 0x3000, { address: DATA, extra: b(54) });
        r.writeDte(RID, {
          valid: true,
          translationValid: true,
          mode: 1,
          root,
          readable: true,
          writable: true,
          domainId: 9,
        });
        r.iommu.resolve(RID, 0x3008, 1);
      },
      entry: [q0(2, { deviceId: RID, domainId: 9, flagBits: [PR, RZ] }), 0x3008n],
    },
    {
      name: "IO_PAGE_FAULT (DeviceID beyond the table)",
      trigger: (r) => void r.iommu.resolve(0xfedc, 0x7777_0000, 2),
      entry: [q0(2, { deviceId: 0xfedc, flagBits: [RW] }), 0x7777_0000n],
    },
    {
      name: "DEV_TAB_HARDWARE_ERROR",
      trigger: (r) => {
        r.write(R.DEV_TAB_BASE, BigInt(NOT_RAM) | 0x1ffn);
        r.iommu.resolve(RID, 0x1000, 2);
      },
      entry: [q0(3, { deviceId: RID, flagBits: [RW], type: 1 }), BigInt(NOT_RAM + RID * 32)],
    },
    {
      name: "PAGE_TAB_HARDWARE_ERROR",
      trigger: (r) => {
        r.writeDte(RID, {
          valid: true,
          translationValid: true,
          mode: 2,
          root: NOT_RAM,
          readable: true,
          writable: true,
          domainId: 0x4567,
        });
        r.iommu.resolve(RID, 0x40_0000, 1);
      },
      entry: [q0(4, { deviceId: RID, domainId: 0x4567, type: 1 }), BigInt(NOT_RAM + 2 * 8)],
    },
    {
      name: "ILLEGAL_COMMAND_ERROR",
      trigger: (r) => r.submit([commands.invalidateAll(), [0xf000_0000_0000_0000n, 0n]]),
      entry: [q0(5, {}), 0x20_0010n],
    },
    {
      name: "COMMAND_HARDWARE_ERROR",
      trigger: (r) => r.submit([commands.completionWait({ storeAddress: NOT_RAM + 8 })]),
      entry: [q0(6, { type: 1 }), BigInt(NOT_RAM + 8)],
    },
  ];
  for (const row of rows) {
    const rig = new Rig();
    await row.trigger(rig);
    deepEqual(rig.rawEvents(), [row.entry], row.name);
  }
});

Deno.test("An entry is written before the tail advances", () => {
  const rig = new Rig();
  const seen: Array<{ offset: number; tail: bigint }> = [];
  rig.memory.onWrite = (address) => {
    if (address >= EVT_LOG && address < EVT_LOG + rig.evtSize) {
      seen.push({ offset: address - EVT_LOG, tail: rig.read(R.EVT_TAIL) });
    }
  };
  for (let i = 0; i < 5; i++) rig.iommu.resolve(0x8000 + i, i * 0x1000, 1);
  rig.memory.onWrite = undefined;
  equal(seen.length, 10, "two 64-bit writes per entry");
  for (const [i, { offset, tail }] of seen.entries()) {
    const entry = Math.floor(i / 2) * 16;
    equal(offset, entry + (i % 2) * 8, `write ${i}: offset`);
    equal(tail, BigInt(entry), `write ${i}: the tail still points at the entry`);
  }
  equal(rig.read(R.EVT_TAIL), 0x50n);
});

/** Logs one event (an out-of-range DeviceID fault) whose address tags it. */
function fault(rig: Rig, tag: number): void {
  rig.iommu.resolve(0xffff, tag * 0x1000, 1);
}

Deno.test("The tail wraps at the end of the log", () => {
  const rig = new Rig({ eventLen: 8 }); // 256 entries
  equal(rig.evtSize, 4096);
  const tags: number[] = [];
  for (let i = 0; i < 600; i++) {
    fault(rig, i);
    if (i % 100 === 99) { for (const e of rig.events()) tags.push(Number(e.address / 0x1000n)); }
  }
  deepEqual(tags, Array.from({ length: 600 }, (_, i) => i), "every entry, in order");
  equal(rig.read(R.EVT_TAIL), BigInt((600 * 16) % 4096));
  equal(rig.status() & S.EVENT_OVERFLOW, 0n);
});

Deno.test("Full at (tail + 16) % size == head: N − 1 entries, then overflow stops the log until restarted", () => {
  const rig = new Rig({ eventLen: 8, control: C.EVENT_INT_EN });
  for (let i = 0; i < 255; i++) fault(rig, i);
  equal(rig.read(R.EVT_TAIL), 0xff0n, "255 entries");
  equal(rig.status() & (S.EVENT_OVERFLOW | S.EVENT_LOG_RUN), S.EVENT_LOG_RUN);
  deepEqual(rig.irq, [true], "EventLogInt raised the line");
  // Acknowledge EventLogInt: the line drops.
  rig.write(R.STATUS, S.EVENT_LOG_INT, 4);
  deepEqual(rig.irq, [true, false]);
  // The 256th: overflow. Entry dropped, EventLogRun cleared, interrupt raised.
  fault(rig, 255);
  equal(rig.read(R.EVT_TAIL), 0xff0n, "tail unchanged");
  equal(rig.memory.read64(EVT_LOG + 0xff0), 0n, "nothing written in the free slot");
  equal(rig.status() & S.EVENT_OVERFLOW, S.EVENT_OVERFLOW, "EventOverflow");
  equal(rig.status() & S.EVENT_LOG_RUN, 0n, "EventLogRun cleared");
  deepEqual(rig.irq, [true, false, true], "overflow raised the line");
  const dropped = rig.iommu.counters.eventsDropped;
  // Consuming entries does not restart the log, nor does a W1C of the overflow alone.
  const first = rig.events();
  equal(first.length, 255);
  deepEqual(
    first.map((e) => Number(e.address / 0x1000n)),
    Array.from({ length: 255 }, (_, i) => i),
  );
  fault(rig, 256);
  rig.write(R.STATUS, S.EVENT_OVERFLOW, 4);
  equal(rig.status() & S.EVENT_OVERFLOW, 0n, "overflow cleared by W1C");
  fault(rig, 257);
  equal(rig.read(R.EVT_TAIL), 0xff0n, "still stopped");
  equal(rig.iommu.counters.eventsDropped - dropped, 2);
  // Linux's restart: clear EventLogEn, W1C the overflow, set EventLogEn.
  rig.setControl(0n, C.EVENT_LOG_EN);
  rig.write(R.STATUS, S.EVENT_OVERFLOW, 4);
  rig.setControl(C.EVENT_LOG_EN);
  equal(rig.status() & (S.EVENT_OVERFLOW | S.EVENT_LOG_RUN), S.EVENT_LOG_RUN, "running again");
  fault(rig, 258);
  fault(rig, 259);
  deepEqual(rig.events().map((e) => Number(e.address / 0x1000n)), [258, 259], "logging resumed");
  equal(rig.read(R.EVT_TAIL), 0x10n, "at the old tail, wrapped");
});

Deno.test("Overflow without EventIntEn sets EventOverflow but raises no interrupt", () => {
  const rig = new Rig({ eventLen: 8 });
  for (let i = 0; i < 256; i++) fault(rig, i);
  equal(rig.status() & S.EVENT_OVERFLOW, S.EVENT_OVERFLOW);
  deepEqual(rig.irq, []);
  // Enabling EventIntEn now raises the level (EventLogInt and EventOverflow are pending).
  rig.setControl(C.EVENT_INT_EN);
  deepEqual(rig.irq, [true]);
  rig.write(R.STATUS, S.EVENT_OVERFLOW, 4);
  deepEqual(rig.irq, [true], "EventLogInt still pending");
  rig.write(R.STATUS, S.EVENT_LOG_INT, 4);
  deepEqual(rig.irq, [true, false]);
});

Deno.test("EventLogInt is set per entry", () => {
  const rig = new Rig();
  for (let i = 0; i < 3; i++) {
    equal(rig.status() & S.EVENT_LOG_INT, 0n, `before event ${i}`);
    fault(rig, i);
    equal(rig.status() & S.EVENT_LOG_INT, S.EVENT_LOG_INT, `after event ${i}`);
    rig.write(R.STATUS, S.EVENT_LOG_INT, 4);
  }
  // Nothing logged (a successful translation): not set.
  rig.writeDte(RID, { valid: false });
  rig.iommu.resolve(RID, 0, 1);
  equal(rig.status() & S.EVENT_LOG_INT, 0n);
});

Deno.test("Status: RW1C bits clear on 1 only, RO bits ignore writes, a high-half write clears nothing", async () => {
  const W1C = S.EVENT_OVERFLOW | S.EVENT_LOG_INT | S.COM_WAIT_INT;
  const RO = S.EVENT_LOG_RUN | S.CMD_BUF_RUN;
  const rows: Array<
    { name: string; offset: number; size: number; value: bigint; cleared: bigint }
  > = [
    { name: "8-byte 0", offset: R.STATUS, size: 8, value: 0n, cleared: 0n },
    { name: "4-byte 0", offset: R.STATUS, size: 4, value: 0n, cleared: 0n },
    { name: "RO bits written 1", offset: R.STATUS, size: 4, value: RO, cleared: 0n },
    {
      name: "EventOverflow",
      offset: R.STATUS,
      size: 4,
      value: S.EVENT_OVERFLOW,
      cleared: S.EVENT_OVERFLOW,
    },
    {
      name: "EventLogInt",
      offset: R.STATUS,
      size: 4,
      value: S.EVENT_LOG_INT,
      cleared: S.EVENT_LOG_INT,
    },
    {
      name: "ComWaitInt",
      offset: R.STATUS,
      size: 8,
      value: S.COM_WAIT_INT,
      cleared: S.COM_WAIT_INT,
    },
    { name: "high half all ones", offset: R.STATUS + 4, size: 4, value: 0xffff_ffffn, cleared: 0n },
    {
      name: "8-byte all ones",
      offset: R.STATUS,
      size: 8,
      value: 0xffff_ffff_ffff_ffffn,
      cleared: W1C,
    },
    { name: "4-byte all ones", offset: R.STATUS, size: 4, value: 0xffff_ffffn, cleared: W1C },
  ];
  for (const row of rows) {
    const rig = new Rig({ eventLen: 8 });
    // All three W1C bits set: ComWaitInt, then 255 entries (EventLogInt) and an overflow.
    await rig.submit([commands.completionWait({ interrupt: true })]);
    for (let i = 0; i < 256; i++) fault(rig, i);
    const start = rig.status();
    equal(start & (W1C | RO), W1C | S.CMD_BUF_RUN, `${row.name}: start state`);
    rig.write(row.offset, row.value, row.size);
    equal(rig.status(), start & ~row.cleared, row.name);
  }
  // With both RO bits set (a running log and ring), writes never change them.
  const rig = new Rig();
  equal(rig.status(), RO);
  for (const value of [0n, RO, 0xffff_ffff_ffff_ffffn]) {
    rig.write(R.STATUS, value);
    equal(rig.status(), RO, `write ${value.toString(16)}`);
  }
});

Deno.test("EvtTail is writable only while EventLogRun = 0 (and below the log size)", () => {
  const rig = new Rig();
  rig.write(R.EVT_TAIL, 0x100n, 4);
  equal(rig.read(R.EVT_TAIL), 0n, "ignored while running");
  rig.setControl(0n, C.EVENT_LOG_EN);
  equal(rig.status() & S.EVENT_LOG_RUN, 0n);
  const rows = [
    { value: 0x100n, expected: 0x100n },
    { value: 0x2000n, expected: 0x100n }, // = size (512 entries)
    { value: 0x1ff0n, expected: 0x1ff0n },
    { value: 0x20fn, expected: 0x200n },
  ];
  for (const row of rows) {
    rig.write(R.EVT_TAIL, row.value, 4);
    equal(rig.read(R.EVT_TAIL), row.expected, `tail ${row.value.toString(16)}`);
  }
  // EvtHead belongs to software: writable while running.
  rig.setControl(C.EVENT_LOG_EN);
  rig.write(R.EVT_HEAD, 0x40n, 4);
  equal(rig.read(R.EVT_HEAD), 0x40n);
  rig.write(R.EVT_HEAD, 0x2000n, 4);
  equal(rig.read(R.EVT_HEAD), 0x40n, "head beyond the size ignored");
});

Deno.test("EvtLogBase: ignored while EventLogRun, EventLen < 8 ignored, a write resets head and tail", () => {
  const rig = new Rig();
  const base = BigInt(EVT_LOG) | (9n << 56n);
  rig.write(R.EVT_LOG_BASE, 0x30_0000n | (8n << 56n));
  equal(rig.read(R.EVT_LOG_BASE), base, "ignored while running");
  fault(rig, 1);
  equal(rig.read(R.EVT_TAIL), 0x10n);
  rig.setControl(0n, C.EVENT_LOG_EN);
  for (const len of [0n, 7n]) {
    rig.write(R.EVT_LOG_BASE, 0x30_0000n | (len << 56n));
    equal(rig.read(R.EVT_LOG_BASE), base, `EventLen ${len} ignored`);
    equal(rig.read(R.EVT_TAIL), 0x10n, `EventLen ${len}: tail kept`);
  }
  rig.write(R.EVT_LOG_BASE, 0x30_0000n | (8n << 56n));
  equal(rig.read(R.EVT_LOG_BASE), 0x30_0000n | (8n << 56n), "accepted");
  equal(rig.read(R.EVT_TAIL), 0n, "tail reset");
  equal(rig.read(R.EVT_HEAD), 0n, "head reset");
  rig.setControl(C.EVENT_LOG_EN);
  fault(rig, 2);
  equal(rig.memory.read64(0x30_0008), 0x2000n, "logged at the new base");
});

Deno.test("Interrupt level = (EventLogInt | EventOverflow) & EventIntEn | ComWaitInt & ComWaitIntEn", async () => {
  const rows: Array<
    { eventIntEn: boolean; comWaitIntEn: boolean; event: boolean; comWait: boolean }
  > = [];
  for (const eventIntEn of [false, true]) {
    for (const comWaitIntEn of [false, true]) {
      for (const event of [false, true]) {
        for (const comWait of [false, true]) {
          rows.push({ eventIntEn, comWaitIntEn, event, comWait });
        }
      }
    }
  }
  for (const row of rows) {
    const rig = new Rig({
      control: (row.eventIntEn ? C.EVENT_INT_EN : 0n) | (row.comWaitIntEn ? C.COM_WAIT_INT_EN : 0n),
    });
    if (row.event) fault(rig, 1);
    if (row.comWait) await rig.submit([commands.completionWait({ interrupt: true })]);
    const level = (row.event && row.eventIntEn) || (row.comWait && row.comWaitIntEn);
    const what = JSON.stringify(row);
    equal(rig.iommu.irqLevel, level, what);
    deepEqual(rig.irq, level ? [true] : [], `${what}: setIrq calls`);
    // Clearing both pending bits lowers it; toggling the enables follows the level.
    rig.setControl(0n, C.EVENT_INT_EN | C.COM_WAIT_INT_EN);
    equal(rig.iommu.irqLevel, false, `${what}: enables cleared`);
    rig.setControl(C.EVENT_INT_EN | C.COM_WAIT_INT_EN);
    equal(rig.iommu.irqLevel, row.event || row.comWait, `${what}: enables set again`);
    rig.write(R.STATUS, S.EVENT_LOG_INT | S.COM_WAIT_INT, 4);
    equal(rig.iommu.irqLevel, false, `${what}: acknowledged`);
    ok(rig.irq.every((v, i) => i === 0 || v !== rig.irq[i - 1]), `${what}: only level changes`);
  }
});
