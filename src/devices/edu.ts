/**
 * The edu device: QEMU's educational PCI device (1234:11e8), the minimal
 * DMA-capable device, with a DMA engine that reports faults.
 *
 * Register map (BAR0, 1 MiB MMIO; see QEMU's docs/specs/edu.rst):
 *
 * | offset | register |
 * |---|---|
 * | 0x00 | identification, RO 0x010000ed |
 * | 0x04 | liveness: reads back the inverse of what was written |
 * | 0x08 | factorial: write n, read n! (32-bit) once status bit 0 clears |
 * | 0x20 | status: bit 0 computing (RO), bit 7 raise interrupt 0x1 after factorial, **bit 8 DMA error (W1C, dmaworks extension)** |
 * | 0x24 | interrupt status (RO) |
 * | 0x60 | interrupt raise (WO): OR into interrupt status |
 * | 0x64 | interrupt acknowledge (WO): clear bits; INTx drops when all clear |
 * | 0x80 | DMA source address |
 * | 0x88 | DMA destination address |
 * | 0x90 | DMA count |
 * | 0x98 | DMA command: bit 0 start, bit 1 direction (0 RAM → device, 1 device → RAM), bit 2 raise interrupt 0x100 when done |
 * | 0xa0 | **DMA fault address (RO, dmaworks extension)**: the IOVA that faulted |
 * | 0xa8 | **DMA fault code (RO, dmaworks extension)**: see {@linkcode EDU_FAULT_CODES} |
 * | 0xb0 | **DMA stop (WO, dmaworks extension)**: any write ends a repeating DMA after its current iteration |
 * | 0xb8 | **DMA iterations (RO, dmaworks extension)**: transfers completed since reset |
 *
 * DMA command extensions (dmaworks): bit 3 **repeat** (run the transfer again
 * and again until 0xb0 is written or a transfer fails; the interrupt, if
 * asked for, is raised once, when it stops) and bit 4 **copy** (RAM → RAM
 * through the buffer: read `count` bytes at the source into the buffer, then
 * write them to the destination; both addresses are DMA addresses and the
 * direction bit is ignored). Together they make edu a continuous DMA engine
 * for concurrency tests.
 *
 * Differences from QEMU 7.2, on purpose: a DMA runs as soon as it is started
 * (no 100 ms virtual timer); a transfer that does not fit the 4 KiB buffer at
 * 0x40000 (QEMU aborts the whole emulator) or that faults is refused or
 * stopped, sets status bit 8, records the fault and still completes with
 * interrupt 0x100 when bit 2 asked for it; accesses of a size the device does
 * not accept read all-ones (QEMU's qtest shows 0). MSI is not implemented:
 * the capability is present but its enable bit is hardwired to 0.
 *
 * @module
 */

import type { DmaFaultKind } from "../dma/dma_result.ts";
import { bigintToAddress } from "../util/address.ts";
import type { DeviceDescriptor, DeviceEnv, DeviceModel } from "./device_model.ts";

/**
 * Base of the device's 4 KiB DMA buffer in the device's own address space.
 *
 * @example
 * ```ts
 * import { EDU_DMA_BUFFER_BASE, EDU_DMA_BUFFER_SIZE } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * const end = EDU_DMA_BUFFER_BASE + EDU_DMA_BUFFER_SIZE;
 * const fits = (addr: number, count: number) => addr >= EDU_DMA_BUFFER_BASE && addr + count <= end;
 * equal(fits(0x40000, 4096), true); // the whole buffer (QEMU's edu.rst: at 0x40000)
 * equal(fits(0x40800, 4096), false); // runs past its end: refused, fault code "bad-range"
 * ```
 */
export const EDU_DMA_BUFFER_BASE = 0x40000;
/**
 * Size of the DMA buffer.
 *
 * @example
 * ```ts
 * import { EDU_DMA_BUFFER_SIZE } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * equal(EDU_DMA_BUFFER_SIZE, 4 * 1024); // 4 KiB, QEMU's DMA_SIZE in hw/misc/edu.c
 * equal(Math.ceil(10_000 / EDU_DMA_BUFFER_SIZE), 3); // moving 10000 bytes takes 3 transfers
 * ```
 */
export const EDU_DMA_BUFFER_SIZE = 4096;

/**
 * Status register bits.
 *
 * @example
 * ```ts
 * import { EduStatus } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * const status = 0x101; // a read of register 0x20
 * equal(status & EduStatus.COMPUTING, EduStatus.COMPUTING); // the factorial is not ready yet
 * equal(status & EduStatus.IRQ_FACT, 0); // and will not raise an interrupt
 * equal(status & EduStatus.DMA_ERROR, EduStatus.DMA_ERROR); // write this bit back to clear it
 * ```
 */
export const EduStatus = {
  /** A factorial is being computed. */
  COMPUTING: 0x01,
  /** Raise interrupt 0x1 when a factorial completes. */
  IRQ_FACT: 0x80,
  /** The last DMA failed (dmaworks extension; write 1 to clear). */
  DMA_ERROR: 0x100,
} as const;

/**
 * DMA command bits.
 *
 * @example
 * ```ts
 * import { EduDmaCommand } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * const toRam = EduDmaCommand.RUN | EduDmaCommand.TO_RAM | EduDmaCommand.IRQ;
 * equal(toRam, 0x7); // edu.rst: start, device to RAM, interrupt 0x100 when done
 * const copyLoop = EduDmaCommand.RUN | EduDmaCommand.COPY | EduDmaCommand.REPEAT;
 * equal(copyLoop, 0x19); // RAM to RAM until 0xb0 is written (dmaworks extensions)
 * ```
 */
export const EduDmaCommand = {
  /** Start (reads 1 while running). */
  RUN: 0x1,
  /** 1: device → RAM; 0: RAM → device. */
  TO_RAM: 0x2,
  /** Raise interrupt 0x100 when done. */
  IRQ: 0x4,
  /** Repeat until stopped (dmaworks extension). */
  REPEAT: 0x8,
  /** RAM → RAM copy through the buffer (dmaworks extension). */
  COPY: 0x10,
} as const;

/**
 * Interrupt status bits raised by the device itself.
 *
 * @example
 * ```ts
 * import { EduIrq } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * const irqStatus = 0x100; // a read of register 0x24
 * equal(irqStatus & EduIrq.DMA, EduIrq.DMA); // the DMA ended: write 0x100 to 0x64 to acknowledge
 * equal(irqStatus & EduIrq.FACT, 0); // no factorial done
 * ```
 */
export const EduIrq = {
  /** Factorial done. */
  FACT: 0x1,
  /** DMA done (or failed). */
  DMA: 0x100,
} as const;

/**
 * Codes in the DMA fault code register (0xa8).
 *
 * @example
 * ```ts
 * import { EDU_FAULT_CODES } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * const code = 3; // a read of register 0xa8
 * equal(Object.entries(EDU_FAULT_CODES).find(([, c]) => c === code)?.[0], "permission");
 * equal(EDU_FAULT_CODES["bad-range"], 1); // outside the buffer: no DMA was tried
 * ```
 */
export const EDU_FAULT_CODES: Readonly<Record<DmaFaultKind | "none" | "bad-range", number>> = {
  "none": 0,
  "bad-range": 1,
  "no-translation": 2,
  "permission": 3,
  "outside-ram": 4,
  "mmio-target": 5,
  "bus-master-disabled": 6,
};

/**
 * Static description of the edu device.
 *
 * @example
 * ```ts
 * import { EDU_DESCRIPTOR } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * equal(EDU_DESCRIPTOR.pci.vendorId, 0x1234); // QEMU's edu, 1234:11e8
 * equal(EDU_DESCRIPTOR.pci.deviceId, 0x11e8);
 * equal(EDU_DESCRIPTOR.regions[0]?.size, 1 << 20); // BAR0: 1 MiB of MMIO
 * ```
 */
export const EDU_DESCRIPTOR: DeviceDescriptor = {
  type: "edu",
  description: "QEMU educational PCI device (1234:11e8) with a DMA engine",
  pci: {
    vendorId: 0x1234,
    deviceId: 0x11e8,
    revision: 0x10,
    classCode: 0x00ff00,
    interruptPin: 1,
    bars: [{ index: 0, kind: "mmio", size: 0x10_0000 }],
    // MSI capability laid out as QEMU's (64-bit capable); the enable bit is
    // hardwired to 0 because dmaworks delivers INTx only.
    capabilities: [{
      offset: 0x40,
      id: 0x05,
      body: [0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      writeMask: [0x00, 0x00, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    }],
  },
  regions: [{ name: "edu.bar0", kind: "mmio", size: 0x10_0000, bar: 0, maxAccess: 8 }],
  irqs: [{ kind: "intx" }],
};

const ALL_ONES = 0xffff_ffff;
const ALL_ONES_64 = 0xffff_ffff_ffff_ffffn;

/**
 * Checks `-device edu` properties before a worker starts: `dma_mask` must be
 * a whole number (decimal or 0x hexadecimal) of at most 64 bits.
 *
 * @param properties The properties.
 * @throws {Error} Naming the bad property.
 *
 * @example
 * ```ts
 * import { validateEduProperties } from "./edu.ts";
 * import { throws } from "node:assert/strict";
 * validateEduProperties({ dma_mask: "0xffffffff" });
 * throws(() => validateEduProperties({ dma_mask: "lots" }), /Invalid dma_mask 'lots'/);
 * ```
 */
export function validateEduProperties(properties: Readonly<Record<string, string>>): void {
  const mask = properties["dma_mask"];
  if (mask === undefined) return;
  if (!/^(0x[0-9a-f]{1,16}|\d{1,20})$/i.test(mask.trim()) || BigInt(mask.trim()) >= 1n << 64n) {
    throw new Error(
      `Invalid dma_mask '${mask}': expected a number of at most 64 bits, e.g. 0xffffffff`,
    );
  }
}

/**
 * The edu device model.
 *
 * @example Liveness and factorial without a machine
 * ```ts
 * import { EduDevice } from "./edu.ts";
 * import { DmaContext } from "../dma/dma_context.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const tasks: Array<() => void | Promise<void>> = [];
 * const edu = new EduDevice({
 *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
 *   setIrq: () => {},
 *   log: () => {},
 *   defer: (t) => tasks.push(t),
 * });
 * edu.write(0, 0x04, 4, 0x12345678);
 * equal(edu.read(0, 0x04, 4), 0xedcba987);
 * edu.write(0, 0x08, 4, 5);
 * for (const t of tasks.splice(0)) await t();
 * equal(edu.read(0, 0x08, 4), 120);
 * ```
 */
export class EduDevice implements DeviceModel {
  #env: DeviceEnv;
  #liveness = 0;
  #fact = 0;
  #status = 0;
  #irqStatus = 0;
  #src = 0n;
  #dst = 0n;
  #cnt = 0n;
  #cmd = 0n;
  #faultAddress = 0n;
  #faultCode = 0;
  #dmaMask: bigint;
  #stop = false;
  #iterations = 0n;
  #buffer = new Uint8Array(EDU_DMA_BUFFER_SIZE);
  #plantedBoundsBug: boolean;

  /**
   * Creates the device in its reset state.
   *
   * @param env The host environment.
   * @param properties `-device edu` properties: `dma_mask` (default 0xfffffff, 28 bits, as QEMU).
   */
  constructor(env: DeviceEnv, properties: Readonly<Record<string, string>> = {}) {
    this.#env = env;
    const mask = properties["dma_mask"];
    this.#dmaMask = mask === undefined ? (1n << 28n) - 1n : BigInt.asUintN(64, BigInt(mask));
    // A deliberate bug for the fuzzer's tests (MachineConfig.faultInjection):
    // the range check forgets the end of the buffer.
    this.#plantedBoundsBug = properties["x-planted-bug"] === "edu-dma-bounds";
  }

  /**
   * The device's DMA buffer (for tests and debugging).
   *
   * @example
   * ```ts
   * import { EduDevice } from "./edu.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const memory = new GuestMemory({ size: 1 << 20 });
   * memory.write(0x1000, new Uint8Array([1, 2, 3, 4]));
   * const edu = new EduDevice({
   *   dma: new DmaContext(memory), setIrq: () => {}, log: () => {}, defer: (t) => void t(),
   * });
   * edu.write64(0, 0x80, 0x1000n); // source: RAM
   * edu.write64(0, 0x88, 0x40000n); // destination: the buffer
   * edu.write64(0, 0x90, 4n);
   * edu.write64(0, 0x98, 1n); // start, RAM -> device
   * deepEqual(edu.buffer.subarray(0, 4), new Uint8Array([1, 2, 3, 4]));
   * ```
   */
  get buffer(): Uint8Array {
    return this.#buffer;
  }

  /**
   * Reads a 32-bit register (other sizes read all-ones).
   *
   * @param _region Always 0 (BAR0).
   * @param offset Register offset.
   * @param size Access size.
   * @returns The register value.
   *
   * @example
   * ```ts
   * import { EduDevice } from "./edu.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const edu = new EduDevice({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   * });
   * equal(edu.read(0, 0x00, 4), 0x010000ed); // identification
   * equal(edu.read(0, 0x00, 2), 0xffff); // other sizes read all-ones
   * ```
   */
  read(_region: number, offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return size === 1 ? 0xff : size === 2 ? 0xffff : ALL_ONES;
    if (offset >= 0x80) return Number(BigInt.asUintN(32, this.#read64(offset)));
    switch (offset) {
      case 0x00:
        return 0x010000ed;
      case 0x04:
        return this.#liveness;
      case 0x08:
        return this.#fact;
      case 0x20:
        return this.#status;
      case 0x24:
        return this.#irqStatus;
      default:
        return ALL_ONES;
    }
  }

  /**
   * Reads a 64-bit register (0x80 and above only).
   *
   * @param _region Always 0.
   * @param offset Register offset.
   * @returns The value, all-ones for offsets below 0x80.
   *
   * @example
   * ```ts
   * import { EDU_FAULT_CODES, EduDevice, EduStatus } from "./edu.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const edu = new EduDevice({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: (t) => void t(),
   * });
   * edu.write64(0, 0x90, 8192n); // more than the 4 KiB buffer
   * edu.write64(0, 0x98, 1n); // start
   * equal(edu.read64(0, 0xa8), BigInt(EDU_FAULT_CODES["bad-range"]));
   * equal(edu.read(0, 0x20, 4) & EduStatus.DMA_ERROR, EduStatus.DMA_ERROR);
   * ```
   */
  read64(_region: number, offset: number): bigint {
    return offset < 0x80 ? ALL_ONES_64 : this.#read64(offset);
  }

  #read64(offset: number): bigint {
    switch (offset) {
      case 0x80:
        return this.#src;
      case 0x88:
        return this.#dst;
      case 0x90:
        return this.#cnt;
      case 0x98:
        return this.#cmd;
      case 0xa0:
        return this.#faultAddress;
      case 0xa8:
        return BigInt(this.#faultCode);
      case 0xb8:
        return this.#iterations;
      default:
        return ALL_ONES_64;
    }
  }

  /**
   * Writes a 32-bit register (other sizes are ignored).
   *
   * @param _region Always 0.
   * @param offset Register offset.
   * @param size Access size.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { EduDevice } from "./edu.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const levels: boolean[] = [];
   * const edu = new EduDevice({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: (_pin, level) => levels.push(level), log: () => {}, defer: () => {},
   * });
   * edu.write(0, 0x60, 4, 0x8); // raise interrupt bit 3
   * equal(edu.read(0, 0x24, 4), 0x8);
   * edu.write(0, 0x64, 4, 0x8); // acknowledge it
   * deepEqual(levels, [true, false]);
   * ```
   */
  write(_region: number, offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    if (offset >= 0x80) {
      this.#write64(offset, BigInt(value >>> 0));
      return;
    }
    switch (offset) {
      case 0x04:
        this.#liveness = ~value >>> 0;
        break;
      case 0x08:
        if (this.#status & EduStatus.COMPUTING) break;
        this.#fact = value >>> 0;
        this.#env.trace?.(`factorial of ${this.#fact}`);
        this.#status |= EduStatus.COMPUTING;
        this.#env.defer(() => this.#computeFactorial());
        break;
      case 0x20:
        if (value & EduStatus.IRQ_FACT) this.#status |= EduStatus.IRQ_FACT;
        else this.#status &= ~EduStatus.IRQ_FACT;
        if (value & EduStatus.DMA_ERROR) this.#status &= ~EduStatus.DMA_ERROR;
        break;
      case 0x60:
        this.#raise(value >>> 0);
        break;
      case 0x64:
        this.#lower(value >>> 0);
        break;
    }
  }

  /**
   * Writes a 64-bit register (0x80 and above only).
   *
   * @param _region Always 0.
   * @param offset Register offset.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { EduDevice } from "./edu.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const edu = new EduDevice({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   * });
   * edu.write64(0, 0x80, 0x1_0000_0000n); // a DMA source above 4 GiB
   * equal(edu.read64(0, 0x80), 0x1_0000_0000n);
   * edu.write64(0, 0x04, 1n); // below 0x80: ignored
   * equal(edu.read(0, 0x04, 4), 0);
   * ```
   */
  write64(_region: number, offset: number, value: bigint): void {
    if (offset >= 0x80) this.#write64(offset, value);
  }

  #write64(offset: number, value: bigint): void {
    if (offset === 0xb0) {
      if (this.#cmd & BigInt(EduDmaCommand.RUN)) this.#stop = true;
      return;
    }
    if (this.#cmd & BigInt(EduDmaCommand.RUN)) return; // registers are locked while a DMA runs
    switch (offset) {
      case 0x80:
        this.#src = value;
        break;
      case 0x88:
        this.#dst = value;
        break;
      case 0x90:
        this.#cnt = value;
        break;
      case 0x98:
        if (!(value & BigInt(EduDmaCommand.RUN))) break;
        this.#cmd = value;
        this.#stop = false;
        this.#env.trace?.(
          `DMA start command 0x${value.toString(16)} (${
            value & BigInt(EduDmaCommand.COPY)
              ? "copy"
              : value & BigInt(EduDmaCommand.TO_RAM)
              ? "device -> RAM"
              : "RAM -> device"
          }${value & BigInt(EduDmaCommand.REPEAT) ? ", repeat" : ""}) src 0x${
            this.#src.toString(16)
          } dst 0x${this.#dst.toString(16)} count ${this.#cnt}`,
        );
        this.#env.defer(() => this.#runDma());
        break;
    }
  }

  #computeFactorial(): void {
    let n = this.#fact;
    let result = 1;
    // n! has at least 32 factors of two from n = 34 on, so it is 0 modulo
    // 2^32: no need to loop four billion times for a hostile n.
    if (n >= 34) n = 0, result = 0;
    while (n > 0) {
      result = Math.imul(result, n--) >>> 0;
    }
    this.#fact = result;
    this.#status &= ~EduStatus.COMPUTING;
    if (this.#status & EduStatus.IRQ_FACT) this.#raise(EduIrq.FACT);
  }

  #runDma(): void {
    const cmd = this.#cmd;
    const ok = (cmd & BigInt(EduDmaCommand.COPY)) ? this.#copy() : this.#transfer(cmd);
    if (ok) this.#iterations++;
    if (ok && (cmd & BigInt(EduDmaCommand.REPEAT)) && !this.#stop) {
      this.#env.defer(() => this.#runDma());
      return;
    }
    this.#stop = false;
    this.#cmd &= ~BigInt(EduDmaCommand.RUN);
    this.#env.trace?.(
      ok
        ? `DMA done after ${this.#iterations} transfers in total`
        : `DMA failed: fault code ${this.#faultCode} at 0x${this.#faultAddress.toString(16)}`,
    );
    if (cmd & BigInt(EduDmaCommand.IRQ)) this.#raise(EduIrq.DMA);
  }

  /** One RAM <-> buffer transfer; false when it was refused or faulted. */
  #transfer(cmd: bigint): boolean {
    const toRam = (cmd & BigInt(EduDmaCommand.TO_RAM)) !== 0n;
    const count = this.#cnt;
    const bufferSide = toRam ? this.#src : this.#dst;
    const ramSide = (toRam ? this.#dst : this.#src) & this.#dmaMask;
    const base = BigInt(EDU_DMA_BUFFER_BASE);
    const end = base + BigInt(EDU_DMA_BUFFER_SIZE);
    this.#faultCode = EDU_FAULT_CODES["none"];
    this.#faultAddress = 0n;
    if (
      count > BigInt(EDU_DMA_BUFFER_SIZE) || bufferSide < base ||
      (bufferSide + count > end && !this.#plantedBoundsBug)
    ) {
      this.#fail("bad-range", bufferSide);
      this.#env.log(
        `edu: DMA of ${count} bytes at 0x${bufferSide.toString(16)} is outside the 4 KiB buffer`,
      );
      return false;
    }
    if (count === 0n) return true;
    const at = Number(bufferSide - base);
    const part = this.#plantedBoundsBug
      ? new Uint8Array(this.#buffer.buffer, at, Number(count)) // throws past the end
      : this.#buffer.subarray(at, at + Number(count));
    return this.#move(toRam, ramSide, part);
  }

  /** One RAM -> buffer -> RAM copy (extension). */
  #copy(): boolean {
    const count = this.#cnt;
    this.#faultCode = EDU_FAULT_CODES["none"];
    this.#faultAddress = 0n;
    if (count > BigInt(EDU_DMA_BUFFER_SIZE)) {
      this.#fail("bad-range", count);
      return false;
    }
    const part = this.#buffer.subarray(0, Number(count));
    return this.#move(false, this.#src & this.#dmaMask, part) &&
      this.#move(true, this.#dst & this.#dmaMask, part);
  }

  #move(toRam: boolean, ramSide: bigint, part: Uint8Array): boolean {
    // A guest-programmed address that cannot be represented is a master abort,
    // reported at the address the guest wrote.
    const address = bigintToAddress(ramSide + BigInt(part.length)) === undefined
      ? undefined
      : Number(ramSide);
    if (address === undefined) {
      this.#fail("outside-ram", ramSide);
      this.#env.log(`edu: DMA address 0x${ramSide.toString(16)} is beyond the addressable range`);
      return false;
    }
    const r = toRam ? this.#env.dma.write(address, part) : this.#env.dma.read(address, part);
    if (r.ok) return true;
    this.#fail(r.kind, BigInt(r.address));
    this.#env.log(`edu: DMA ${r.access} fault (${r.kind}) at IOVA 0x${r.address.toString(16)}`);
    return false;
  }

  #fail(code: keyof typeof EDU_FAULT_CODES, address: bigint): void {
    this.#status |= EduStatus.DMA_ERROR;
    this.#faultCode = EDU_FAULT_CODES[code];
    this.#faultAddress = address;
  }

  #raise(bits: number): void {
    this.#env.trace?.(`interrupt status |= 0x${bits.toString(16)}`);
    this.#irqStatus = (this.#irqStatus | bits) >>> 0;
    if (this.#irqStatus) this.#env.setIrq(0, true);
  }

  #lower(bits: number): void {
    this.#env.trace?.(`interrupt acknowledged 0x${bits.toString(16)}`);
    this.#irqStatus = (this.#irqStatus & ~bits) >>> 0;
    if (!this.#irqStatus) this.#env.setIrq(0, false);
  }
}
