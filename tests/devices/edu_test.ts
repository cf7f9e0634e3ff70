import { deepEqual, equal, ok } from "node:assert/strict";
import { DmaContext, type DmaContextOptions } from "../../src/dma/dma_context.ts";
import { Permission } from "../../src/dma/mmu.ts";
import type { DeviceEnv } from "../../src/devices/device_model.ts";
import {
  EDU_DESCRIPTOR,
  EDU_DMA_BUFFER_BASE,
  EDU_DMA_BUFFER_SIZE,
  EDU_FAULT_CODES,
  EduDevice,
  EduDmaCommand,
  EduIrq,
  EduStatus,
} from "../../src/devices/edu.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { PageMmu } from "../dma/page_mmu.ts";

const MIB = 1024 * 1024;
const GIB4 = 0x1_0000_0000;
const ALL_ONES_64 = 0xffff_ffff_ffff_ffffn;

/** A one-thread host for a device model: records interrupts, runs deferred work on demand. */
class FakeEnv implements DeviceEnv {
  readonly dma: DmaContext;
  readonly irqCalls: Array<[number, boolean]> = [];
  readonly logs: string[] = [];
  readonly tasks: Array<() => void | Promise<void>> = [];

  constructor(dma: DmaContext) {
    this.dma = dma;
  }

  setIrq(pin: number, level: boolean): void {
    this.irqCalls.push([pin, level]);
  }

  log(message: string): void {
    this.logs.push(message);
  }

  defer(task: () => void | Promise<void>): void {
    this.tasks.push(task);
  }

  /** Runs deferred tasks (and the tasks they defer) until none is left. */
  async run(): Promise<number> {
    let n = 0;
    for (let task = this.tasks.shift(); task; task = this.tasks.shift()) {
      await task();
      n++;
    }
    return n;
  }

  /** The current INTx level as the device last set it. */
  get level(): boolean {
    return this.irqCalls.at(-1)?.[1] ?? false;
  }
}

interface Rig {
  ram: GuestMemory;
  env: FakeEnv;
  edu: EduDevice;
  /** 32-bit register read. */
  r(offset: number): number;
  /** 32-bit register write. */
  w(offset: number, value: number): void;
  /** 64-bit register read. */
  r64(offset: number): bigint;
  /** 64-bit register write. */
  w64(offset: number, value: bigint): void;
}

function rig(
  options: {
    ram?: GuestMemory;
    dma?: DmaContextOptions;
    properties?: Record<string, string>;
  } = {},
): Rig {
  const ram = options.ram ?? new GuestMemory({ size: 1 * MIB });
  const env = new FakeEnv(new DmaContext(ram, { requesterId: 0x20, ...options.dma }));
  const edu = new EduDevice(env, options.properties ?? {});
  return {
    ram,
    env,
    edu,
    r: (offset) => edu.read(0, offset, 4),
    w: (offset, value) => edu.write(0, offset, 4, value),
    r64: (offset) => edu.read64(0, offset),
    w64: (offset, value) => edu.write64(0, offset, value),
  };
}

/** Programs and starts a DMA with 64-bit register writes. */
function startDma(t: Rig, src: bigint, dst: bigint, count: bigint, command: number): void {
  t.w64(0x80, src);
  t.w64(0x88, dst);
  t.w64(0x90, count);
  t.w64(0x98, BigInt(command | EduDmaCommand.RUN));
}

function pattern(n: number, start = 0x11): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i * 7) & 0xff);
}

/** n! mod 2^32. */
function factorial32(n: number): number {
  let r = 1n;
  for (let i = 2n; i <= BigInt(n); i++) r = (r * i) & 0xffff_ffffn;
  return Number(r);
}

// ---------------------------------------------------------------------------
// Description

Deno.test("edu: descriptor", () => {
  equal(EDU_DESCRIPTOR.type, "edu");
  equal(EDU_DESCRIPTOR.pci.vendorId, 0x1234);
  equal(EDU_DESCRIPTOR.pci.deviceId, 0x11e8);
  equal(EDU_DESCRIPTOR.pci.revision, 0x10);
  equal(EDU_DESCRIPTOR.pci.classCode, 0x00ff00);
  equal(EDU_DESCRIPTOR.pci.interruptPin, 1);
  deepEqual(EDU_DESCRIPTOR.pci.bars, [{ index: 0, kind: "mmio", size: 0x10_0000 }]);
  deepEqual(EDU_DESCRIPTOR.regions.map((r) => [r.kind, r.size, r.bar, r.maxAccess]), [
    ["mmio", 0x10_0000, 0, 8],
  ]);
  deepEqual(EDU_DESCRIPTOR.irqs, [{ kind: "intx" }]);
  equal(EDU_DMA_BUFFER_BASE, 0x40000);
  equal(EDU_DMA_BUFFER_SIZE, 4096);
  deepEqual(EDU_FAULT_CODES, {
    "none": 0,
    "bad-range": 1,
    "no-translation": 2,
    "permission": 3,
    "outside-ram": 4,
    "mmio-target": 5,
    "bus-master-disabled": 6,
  });
});

// ---------------------------------------------------------------------------
// Registers

Deno.test("edu: reset values of every register", () => {
  const t = rig();
  const regs: Array<[number, number]> = [
    [0x00, 0x010000ed],
    [0x04, 0],
    [0x08, 0],
    [0x20, 0],
    [0x24, 0],
    [0x80, 0],
    [0x88, 0],
    [0x90, 0],
    [0x98, 0],
    [0xa0, 0],
    [0xa8, 0],
  ];
  for (const [offset, value] of regs) equal(t.r(offset), value, `0x${offset.toString(16)}`);
  for (const offset of [0x80, 0x88, 0x90, 0x98, 0xa0, 0xa8]) equal(t.r64(offset), 0n);
  equal(t.env.irqCalls.length, 0);
  equal(t.env.tasks.length, 0);
});

Deno.test("edu: unimplemented offsets read all-ones", () => {
  const t = rig();
  for (const offset of [0x01, 0x02, 0x0c, 0x10, 0x1c, 0x28, 0x5c, 0x68, 0x7c]) {
    equal(t.r(offset), 0xffff_ffff, `0x${offset.toString(16)}`);
  }
  for (const offset of [0x84, 0x8c, 0x94, 0x9c, 0xa4, 0xac, 0xb0, 0x100, 0xf_fffc]) {
    equal(t.r(offset), 0xffff_ffff, `0x${offset.toString(16)}`);
    equal(t.r64(offset), ALL_ONES_64);
  }
});

Deno.test("edu: accesses of other sizes below 0x80 read all-ones and write nothing", () => {
  const t = rig();
  for (const offset of [0x00, 0x01, 0x04, 0x08, 0x20, 0x24, 0x7f]) {
    equal(t.edu.read(0, offset, 1), 0xff);
    equal(t.edu.read(0, offset, 2), 0xffff);
    equal(t.r64(offset), ALL_ONES_64, "8-byte reads below 0x80");
  }
  t.edu.write(0, 0x04, 2, 0x1234);
  t.edu.write(0, 0x04, 1, 0x12);
  t.w64(0x04, 0x1234n);
  equal(t.r(0x04), 0, "liveness unchanged");
  t.edu.write(0, 0x08, 2, 5);
  t.w64(0x08, 5n);
  equal(t.env.tasks.length, 0, "no factorial started");
  t.edu.write(0, 0x60, 1, 1);
  t.w64(0x60, 1n);
  equal(t.r(0x24), 0, "no interrupt raised");
});

Deno.test("edu: 4- and 8-byte accesses at 0x80 and above, other sizes read all-ones", () => {
  const t = rig();
  t.w64(0x80, 0x1_2345_6789_abcdn);
  equal(t.r64(0x80), 0x1_2345_6789_abcdn);
  equal(t.r(0x80), 0x6789_abcd, "a 4-byte read returns the low half");
  equal(t.edu.read(0, 0x80, 2), 0xffff);
  equal(t.edu.read(0, 0x80, 1), 0xff);
  t.edu.write(0, 0x80, 2, 0);
  t.edu.write(0, 0x80, 1, 0);
  equal(t.r64(0x80), 0x1_2345_6789_abcdn, "1- and 2-byte writes are ignored");
  t.w(0x80, 0xfeed_f00d);
  equal(t.r64(0x80), 0xfeed_f00dn, "a 4-byte write sets the whole register (zero-extended)");
  t.w(0x88, -1);
  equal(t.r64(0x88), 0xffff_ffffn, "unsigned");
  t.w64(0x90, ALL_ONES_64);
  equal(t.r64(0x90), ALL_ONES_64);
  // The fault registers are read-only.
  t.w64(0xa0, 5n);
  t.w64(0xa8, 5n);
  t.w(0xa0, 5);
  equal(t.r64(0xa0), 0n);
  equal(t.r64(0xa8), 0n);
});

Deno.test("edu: liveness reads back the inverse of what was written", () => {
  const t = rig();
  const cases: Array<[number, number]> = [
    [0, 0xffff_ffff],
    [0xffff_ffff, 0],
    [0x12345678, 0xedcba987],
    [0x8000_0000, 0x7fff_ffff],
    [-1, 0],
  ];
  for (const [written, read] of cases) {
    t.w(0x04, written);
    equal(t.r(0x04), read, `~0x${(written >>> 0).toString(16)}`);
  }
});

Deno.test("edu: identification is read-only", () => {
  const t = rig();
  t.w(0x00, 0);
  equal(t.r(0x00), 0x010000ed);
});

// ---------------------------------------------------------------------------
// Factorial

Deno.test("edu: factorial, including 32-bit overflow", async () => {
  const t = rig();
  for (const n of [0, 1, 2, 5, 12, 13, 20, 33, 34, 100]) {
    t.w(0x08, n);
    equal(t.r(0x20) & EduStatus.COMPUTING, EduStatus.COMPUTING, "computing");
    equal(t.r(0x08), n, "the operand until the result is ready");
    equal(t.env.tasks.length, 1);
    await t.env.run();
    equal(t.r(0x20) & EduStatus.COMPUTING, 0);
    equal(t.r(0x08), factorial32(n), `${n}!`);
  }
  equal(factorial32(13), 1932053504, "13! mod 2^32");
  equal(factorial32(34), 0);
  equal(t.env.irqCalls.length, 0, "no interrupt unless asked");
});

Deno.test("edu: a factorial write while computing is ignored", async () => {
  const t = rig();
  t.w(0x08, 5);
  t.w(0x08, 7);
  equal(t.env.tasks.length, 1);
  await t.env.run();
  equal(t.r(0x08), 120);
});

Deno.test("edu: status bit 7 raises interrupt 0x1 when a factorial completes", async () => {
  const t = rig();
  t.w(0x20, EduStatus.IRQ_FACT);
  equal(t.r(0x20), EduStatus.IRQ_FACT);
  t.w(0x08, 4);
  equal(t.r(0x20), EduStatus.IRQ_FACT | EduStatus.COMPUTING);
  equal(t.env.level, false);
  await t.env.run();
  equal(t.r(0x08), 24);
  equal(t.r(0x24), EduIrq.FACT);
  deepEqual(t.env.irqCalls, [[0, true]]);
  t.w(0x64, EduIrq.FACT);
  equal(t.r(0x24), 0);
  equal(t.env.level, false);
  // Clearing bit 7 stops the interrupts.
  t.w(0x20, 0);
  equal(t.r(0x20), 0);
  t.w(0x08, 3);
  await t.env.run();
  equal(t.r(0x24), 0);
  equal(t.env.level, false);
  // Status bit 0 is read-only.
  t.w(0x20, EduStatus.COMPUTING);
  equal(t.r(0x20), 0);
});

// ---------------------------------------------------------------------------
// Interrupts

Deno.test("edu: raise and acknowledge drive the INTx level", () => {
  const t = rig();
  t.w(0x60, 0x4);
  equal(t.r(0x24), 0x4);
  equal(t.env.level, true);
  t.w(0x60, 0x8000_0010);
  equal(t.r(0x24), 0x8000_0014);
  t.w(0x64, 0x4);
  equal(t.r(0x24), 0x8000_0010);
  equal(t.env.level, true, "still pending bits: the line stays up");
  t.w(0x64, 0x8000_0000);
  equal(t.env.level, true);
  t.w(0x64, 0x10);
  equal(t.r(0x24), 0);
  equal(t.env.level, false);
  ok(t.env.irqCalls.every(([pin]) => pin === 0));
  // The status register itself ignores writes.
  t.w(0x24, 0xff);
  equal(t.r(0x24), 0);
  // Acknowledging nothing keeps the line low; raising nothing keeps it low.
  t.w(0x64, 0xffff_ffff);
  t.w(0x60, 0);
  equal(t.env.level, false);
  // Reading the ack/raise registers returns all-ones (write-only).
  equal(t.r(0x60), 0xffff_ffff);
  equal(t.r(0x64), 0xffff_ffff);
});

// ---------------------------------------------------------------------------
// DMA

Deno.test("edu: DMA of one byte from RAM into the device", async () => {
  const t = rig();
  t.ram.write8(0x1000, 0xab);
  startDma(t, 0x1000n, 0x40000n, 1n, 0);
  equal(t.r64(0x98), 1n, "RUN reads 1 until the transfer is done");
  await t.env.run();
  equal(t.edu.buffer[0], 0xab);
  equal(t.r64(0x98), 0n);
  equal(t.r(0x20), 0, "no error");
  equal(t.r(0x24), 0, "no interrupt without command bit 2");
  equal(t.env.irqCalls.length, 0);
});

Deno.test("edu: DMA of one byte from the device into RAM, with the interrupt", async () => {
  const t = rig();
  t.edu.buffer[5] = 0xcd;
  const before = t.ram.bytes.slice();
  startDma(t, 0x40005n, 0x2000n, 1n, EduDmaCommand.TO_RAM | EduDmaCommand.IRQ);
  equal(t.r64(0x98), 0x7n);
  await t.env.run();
  equal(t.ram.read8(0x2000), 0xcd);
  before[0x2000] = 0xcd;
  deepEqual(t.ram.bytes, before, "only that byte changed");
  equal(
    t.r64(0x98),
    BigInt(EduDmaCommand.TO_RAM | EduDmaCommand.IRQ),
    "RUN clears, the rest stays",
  );
  equal(t.r(0x24), EduIrq.DMA);
  deepEqual(t.env.irqCalls, [[0, true]]);
  equal(t.r(0x20), 0);
});

Deno.test("edu: DMA of exactly 4096 bytes at 0x40000 in both directions (QEMU 7.2 aborts)", async () => {
  const t = rig();
  const data = pattern(4096);
  t.ram.write(0x10000, data);
  startDma(t, 0x10000n, 0x40000n, 4096n, 0);
  await t.env.run();
  deepEqual(t.edu.buffer, data);
  equal(t.r(0x20), 0);
  startDma(t, 0x40000n, 0x20000n, 4096n, EduDmaCommand.TO_RAM);
  await t.env.run();
  deepEqual(t.ram.view(0x20000, 4096), data);
  equal(t.r(0x20), 0);
  equal(t.r64(0xa8), 0n);
  // The last byte of the buffer alone.
  t.edu.buffer[4095] = 0x99;
  startDma(t, 0x40fffn, 0x30000n, 1n, EduDmaCommand.TO_RAM);
  await t.env.run();
  equal(t.ram.read8(0x30000), 0x99);
  equal(t.r(0x20), 0);
});

Deno.test("edu: a zero-length DMA completes without touching anything", async () => {
  const t = rig();
  const before = t.ram.bytes.slice();
  startDma(t, 0x40000n, 0x1000n, 0n, EduDmaCommand.TO_RAM | EduDmaCommand.IRQ);
  await t.env.run();
  deepEqual(t.ram.bytes, before);
  equal(t.r(0x20), 0);
  equal(t.r(0x24), EduIrq.DMA);
});

Deno.test("edu: transfers that do not fit the buffer are refused, reported and still complete", async () => {
  // [src, dst, count, direction, the buffer-side address reported]
  const cases: Array<[bigint, bigint, bigint, number, bigint]> = [
    [0x1000n, 0x40000n, 4097n, 0, 0x40000n], // too long
    [0x40000n, 0x1000n, 4097n, EduDmaCommand.TO_RAM, 0x40000n],
    [0x1000n, 0x3ffffn, 1n, 0, 0x3ffffn], // starts below the buffer
    [0x1000n, 0x41000n, 1n, 0, 0x41000n], // starts at its end
    [0x1000n, 0x40001n, 4096n, 0, 0x40001n], // ends beyond it
    [0x40f00n, 0x1000n, 0x101n, EduDmaCommand.TO_RAM, 0x40f00n],
    [0x1000n, 0xffff_ffff_ffff_ff00n, 0x200n, 0, 0xffff_ffff_ffff_ff00n], // wraps in 64 bits
    [0x1000n, 0x40000n, ALL_ONES_64, 0, 0x40000n],
    [0x0n, 0x0n, 1n, 0, 0n],
  ];
  for (const [src, dst, count, direction, reported] of cases) {
    const t = rig();
    t.ram.write(0x1000, pattern(0x200));
    t.edu.buffer.set(pattern(4096, 0x77));
    const ramBefore = t.ram.bytes.slice();
    const bufferBefore = t.edu.buffer.slice();
    const what = `src 0x${src.toString(16)} dst 0x${dst.toString(16)} count 0x${
      count.toString(16)
    }`;
    startDma(t, src, dst, count, direction | EduDmaCommand.IRQ);
    await t.env.run();
    deepEqual(t.ram.bytes, ramBefore, `${what}: RAM untouched`);
    deepEqual(t.edu.buffer, bufferBefore, `${what}: buffer untouched`);
    equal(t.r(0x20) & EduStatus.DMA_ERROR, EduStatus.DMA_ERROR, `${what}: status bit 8`);
    equal(t.r64(0xa8), BigInt(EDU_FAULT_CODES["bad-range"]), `${what}: fault code`);
    equal(t.r(0xa8), EDU_FAULT_CODES["bad-range"]);
    equal(t.r64(0xa0), reported, `${what}: fault address`);
    equal(t.r(0x24), EduIrq.DMA, `${what}: interrupt 0x100 still raised`);
    equal(t.env.level, true);
    equal(t.r64(0x98) & BigInt(EduDmaCommand.RUN), 0n, `${what}: completed`);
    ok(t.env.logs.length > 0, "the refusal is logged");
  }
});

Deno.test("edu: a refused transfer without command bit 2 raises no interrupt", async () => {
  const t = rig();
  startDma(t, 0x1000n, 0x50000n, 1n, 0);
  await t.env.run();
  equal(t.r(0x20), EduStatus.DMA_ERROR);
  equal(t.r(0x24), 0);
  equal(t.env.irqCalls.length, 0);
});

Deno.test("edu: status bit 8 is write-1-to-clear and a later good DMA resets the fault registers", async () => {
  const t = rig();
  startDma(t, 0x1000n, 0x50000n, 1n, 0);
  await t.env.run();
  equal(t.r(0x20), EduStatus.DMA_ERROR);
  t.w(0x20, 0);
  equal(t.r(0x20), EduStatus.DMA_ERROR, "writing 0 keeps it");
  t.w(0x20, EduStatus.IRQ_FACT);
  equal(t.r(0x20), EduStatus.DMA_ERROR | EduStatus.IRQ_FACT, "bit 7 writes do not clear it");
  t.w(0x20, EduStatus.DMA_ERROR | EduStatus.IRQ_FACT);
  equal(t.r(0x20), EduStatus.IRQ_FACT, "cleared by writing 1");
  startDma(t, 0x1000n, 0x50000n, 1n, 0);
  await t.env.run();
  ok(t.r64(0xa8) !== 0n);
  startDma(t, 0x1000n, 0x40000n, 1n, 0);
  await t.env.run();
  equal(t.r64(0xa8), 0n, "fault code reset by the next transfer");
  equal(t.r64(0xa0), 0n, "fault address reset by the next transfer");
  equal(t.r(0x20) & EduStatus.DMA_ERROR, EduStatus.DMA_ERROR, "the status bit stays until cleared");
});

Deno.test("edu: with Bus Master Enable clear the DMA faults with code 6 and touches nothing", async () => {
  const t = rig({ dma: { busMaster: () => false } });
  t.edu.buffer.set(pattern(16));
  const before = t.ram.bytes.slice();
  startDma(t, 0x40000n, 0x3000n, 16n, EduDmaCommand.TO_RAM | EduDmaCommand.IRQ);
  await t.env.run();
  deepEqual(t.ram.bytes, before);
  equal(t.r(0x20), EduStatus.DMA_ERROR);
  equal(t.r64(0xa8), 6n);
  equal(t.r64(0xa0), 0x3000n);
  equal(t.r(0x24), EduIrq.DMA);
  const bufferBefore = t.edu.buffer.slice();
  startDma(t, 0x3000n, 0x40000n, 16n, 0);
  await t.env.run();
  deepEqual(t.edu.buffer, bufferBefore, "a refused read does not fill the buffer");
  equal(t.r64(0xa8), 6n);
});

Deno.test("edu: DMA into the PCI hole faults with code 5 after the bytes that reached RAM", async () => {
  const t = rig({ properties: { dma_mask: "0xffffffff" } });
  t.edu.buffer.set(pattern(16));
  const before = t.ram.bytes.slice();
  startDma(t, 0x40000n, 0xfe00_0000n, 16n, EduDmaCommand.TO_RAM | EduDmaCommand.IRQ);
  await t.env.run();
  deepEqual(t.ram.bytes, before);
  equal(t.r64(0xa8), BigInt(EDU_FAULT_CODES["mmio-target"]));
  equal(t.r64(0xa0), 0xfe00_0000n);
  equal(t.r(0x20), EduStatus.DMA_ERROR);
  equal(t.r(0x24), EduIrq.DMA);
  // Across the end of RAM (1 MiB): the first 4 bytes land, the fault is at 1 MiB.
  startDma(t, 0x40000n, BigInt(MIB - 4), 16n, EduDmaCommand.TO_RAM);
  await t.env.run();
  deepEqual(t.ram.view(MIB - 4, 4), pattern(4));
  equal(t.r64(0xa8), 5n);
  equal(t.r64(0xa0), BigInt(MIB));
});

Deno.test("edu: DMA above the top of RAM faults with code 4", async () => {
  const ram = new GuestMemory({ size: 2 * MIB, lowLimit: 1 * MIB });
  const t = rig({ ram, properties: { dma_mask: "0xffffffffffffffff" } });
  t.edu.buffer.set(pattern(8));
  startDma(t, 0x40000n, BigInt(GIB4 + 0x100), 8n, EduDmaCommand.TO_RAM);
  await t.env.run();
  deepEqual(ram.view(GIB4 + 0x100, 8), pattern(8), "high RAM is reachable");
  equal(t.r(0x20), 0);
  startDma(t, 0x40000n, BigInt(ram.top), 8n, EduDmaCommand.TO_RAM);
  await t.env.run();
  equal(t.r64(0xa8), BigInt(EDU_FAULT_CODES["outside-ram"]));
  equal(t.r64(0xa0), BigInt(ram.top));
});

Deno.test("edu: IOMMU faults are reported with codes 2 and 3", async () => {
  const mmu = new PageMmu().mapPage(1, 9).mapPage(2, 10, Permission.Read);
  const t = rig({ dma: { mmu } });
  t.edu.buffer.set(pattern(16));
  startDma(t, 0x40000n, 0x1ff8n, 16n, EduDmaCommand.TO_RAM);
  await t.env.run();
  equal(t.r64(0xa8), BigInt(EDU_FAULT_CODES["permission"]), "page 2 is read-only");
  equal(t.r64(0xa0), 0x2000n);
  deepEqual(t.ram.view(0x9ff8, 8), pattern(8), "the bytes before the fault landed");
  startDma(t, 0x3000n, 0x40000n, 4n, 0);
  await t.env.run();
  equal(t.r64(0xa8), BigInt(EDU_FAULT_CODES["no-translation"]));
  equal(t.r64(0xa0), 0x3000n);
  ok(mmu.calls.every((c) => c.requesterId === 0x20), "requests carry the requester id");
});

Deno.test("edu: the RAM-side address is clamped to dma_mask (28 bits by default)", async () => {
  const t = rig();
  t.edu.buffer.set(pattern(4));
  startDma(t, 0x40000n, 0x1000_1000n, 4n, EduDmaCommand.TO_RAM);
  await t.env.run();
  deepEqual(t.ram.view(0x1000, 4), pattern(4), "0x10001000 & 0x0fffffff");
  equal(t.r(0x20), 0);
  equal(t.r64(0x88), 0x1000_1000n, "the register keeps the unclamped value");
  // RAM → device: the source is clamped.
  t.ram.write(0x2000, pattern(4, 0x90));
  startDma(t, 0xffff_ffff_f000_2000n, 0x40010n, 4n, 0);
  await t.env.run();
  deepEqual(t.edu.buffer.subarray(0x10, 0x14), pattern(4, 0x90));
  // The buffer side is never clamped.
  startDma(t, 0x1004_0000n, 0x3000n, 4n, EduDmaCommand.TO_RAM);
  await t.env.run();
  equal(t.r64(0xa8), 1n);
  equal(t.r64(0xa0), 0x1004_0000n);
});

Deno.test("edu: a custom dma_mask", async () => {
  const t = rig({ properties: { dma_mask: "0xfff" } });
  t.edu.buffer.set(pattern(4));
  startDma(t, 0x40000n, 0x12345n, 4n, EduDmaCommand.TO_RAM);
  await t.env.run();
  deepEqual(t.ram.view(0x345, 4), pattern(4));
  const decimal = rig({ properties: { dma_mask: "4095" } });
  decimal.edu.buffer.set(pattern(4));
  startDma(decimal, 0x40000n, 0x12345n, 4n, EduDmaCommand.TO_RAM);
  await decimal.env.run();
  deepEqual(decimal.ram.view(0x345, 4), pattern(4));
});

Deno.test("edu: DMA registers are locked while RUN is set", async () => {
  const t = rig();
  t.ram.write(0x1000, pattern(8));
  startDma(t, 0x1000n, 0x40000n, 8n, 0);
  t.w64(0x80, 0x5000n);
  t.w64(0x88, 0x40100n);
  t.w64(0x90, 1n);
  t.w(0x90, 2);
  t.w64(0x98, BigInt(EduDmaCommand.RUN | EduDmaCommand.TO_RAM));
  equal(t.r64(0x80), 0x1000n);
  equal(t.r64(0x88), 0x40000n);
  equal(t.r64(0x90), 8n);
  equal(t.r64(0x98), 1n);
  equal(t.env.tasks.length, 1, "no second transfer queued");
  await t.env.run();
  deepEqual(t.edu.buffer.subarray(0, 8), pattern(8));
  t.w64(0x80, 0x5000n);
  equal(t.r64(0x80), 0x5000n, "unlocked once done");
});

Deno.test("edu: a command write without RUN is ignored", async () => {
  const t = rig();
  t.w64(0x98, BigInt(EduDmaCommand.TO_RAM | EduDmaCommand.IRQ));
  equal(t.r64(0x98), 0n);
  equal(t.env.tasks.length, 0);
  // 32-bit writes start transfers too.
  t.w(0x80, 0x40000);
  t.w(0x88, 0x1000);
  t.w(0x90, 1);
  t.edu.buffer[0] = 0x5a;
  t.w(0x98, EduDmaCommand.RUN | EduDmaCommand.TO_RAM);
  equal(t.env.tasks.length, 1);
  await t.env.run();
  equal(t.ram.read8(0x1000), 0x5a);
});

// Regression (fixed) (src/devices/edu.ts, #runDma, lines 319-324): the RAM-side address is only
// checked to be < 2^53 (bigintToAddress); with a wide dma_mask a guest can
// program an address just below 2^53 and a count that ends beyond it, and
// DmaContext.write/read then throws a RangeError (checkRange) out of the
// deferred task — an uncaught exception in the device worker from guest
// input (DESIGN.md invariant 3). Expected: the transfer faults with code 4
// (outside-ram) at the RAM address. Fix: before calling the DMA context,
// `if (ramSide + count > BigInt(MAX_ADDRESS) + 1n)` fail with "outside-ram"
// at `ramSide` (no byte of such a range is RAM).
Deno.test("edu: a RAM range ending beyond 2^53 faults instead of throwing", async () => {
  const t = rig({ properties: { dma_mask: "0xffffffffffffffff" } });
  const address = 2n ** 53n - 0x10n;
  startDma(t, 0x40000n, address, 0x100n, EduDmaCommand.TO_RAM | EduDmaCommand.IRQ);
  let thrown: unknown;
  try {
    await t.env.run();
  } catch (error) {
    thrown = error;
  }
  equal(thrown, undefined, `the deferred DMA threw: ${String(thrown)}`);
  equal(t.r64(0xa8), BigInt(EDU_FAULT_CODES["outside-ram"]));
  equal(t.r64(0xa0), address);
  equal(t.r(0x24), EduIrq.DMA);
});

// Regression (fixed) (src/devices/edu.ts, #runDma, line 321): when the RAM-side address is
// not representable (≥ 2^53), the fault is built with
// `dmaFault("outside-ram", Number.MAX_SAFE_INTEGER, …)`, so the guest-visible
// fault address register (0xa0) reads 0x1fffffffffffff instead of the address
// the guest programmed. Fix: in that branch call `this.#fail("outside-ram",
// ramSide)` directly (the fault address register is a bigint already).
Deno.test("edu: an unrepresentable RAM address is reported as programmed", async () => {
  const t = rig({ properties: { dma_mask: "0xffffffffffffffff" } });
  startDma(t, 0x40000n, 0xffff_ffff_0000_0000n, 4n, EduDmaCommand.TO_RAM);
  await t.env.run();
  equal(t.r64(0xa8), BigInt(EDU_FAULT_CODES["outside-ram"]));
  equal(t.r64(0xa0), 0xffff_ffff_0000_0000n);
});
