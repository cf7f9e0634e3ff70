/**
 * A guest driver for the e1000 (82540EM), written the way a small OS driver
 * drives it: reset through CTRL.RST, the MAC address from the EEPROM (with
 * its checksum checked), receive and transmit rings and buffers in a RAM
 * region the driver owns, reached by the device through an IOVA window that
 * the guest IOMMU driver maps when there is an IOMMU, and send/receive with
 * either polling or interrupts.
 *
 * @module
 */

import { E1000Icr, E1000Reg, E1000Stat, E1000TxCmd } from "../devices/e1000_regs.ts";
import type { AmdViDriver, IommuDomain } from "./amd_vi_driver.ts";
import type { Guest } from "./guest.ts";

const R = E1000Reg;
const DESC = 16;
const PAGE = 4096;

/** Receive buffer sizes the device supports. */
export type E1000BufferSize = 256 | 512 | 1024 | 2048 | 4096 | 8192 | 16384;

/** Options for {@linkcode E1000Driver}. */
export interface E1000DriverOptions {
  /** BAR0 (MMIO) address. */
  readonly mmioBase: number;
  /** The NIC's interrupt line (GSI), for interrupt-driven waits. */
  readonly irqLine?: number;
  /** A RAM region (guest-physical, 4 KiB aligned) the driver owns for its rings and buffers. */
  readonly memory: { readonly base: number; readonly size: number };
  /**
   * The device-visible address (IOVA) of `memory.base` (default: the same as
   * the physical address, for a machine without an IOMMU or a device in
   * pass-through).
   */
  readonly iova?: number;
  /** Map the region at `iova` in this domain of the guest IOMMU driver (and attach the NIC to it). */
  readonly iommu?: {
    readonly driver: AmdViDriver;
    readonly domain: IommuDomain;
    /** The NIC's requester id (slot << 3 | function). */
    readonly requesterId: number;
  };
  /** Receive descriptors (a multiple of 8, default 64). */
  readonly rxDescriptors?: number;
  /** Transmit descriptors (a multiple of 8, default 64). */
  readonly txDescriptors?: number;
  /** Receive buffer size (default 2048). */
  readonly bufferSize?: E1000BufferSize;
  /** Transmit buffer size per descriptor (default 2048; longer frames use several descriptors). */
  readonly txBufferSize?: number;
}

/** Options for {@linkcode E1000Driver.init}. */
export interface E1000InitOptions {
  /** Receive every unicast frame (RCTL.UPE). */
  readonly promiscuous?: boolean;
  /** Receive broadcast frames (RCTL.BAM, default true). */
  readonly broadcast?: boolean;
  /** Receive every multicast frame (RCTL.MPE). */
  readonly allMulticast?: boolean;
  /** Frames up to 16 KiB (RCTL.LPE). */
  readonly longFrames?: boolean;
  /** Keep the FCS in received frames (default false: RCTL.SECRC strips it). */
  readonly keepCrc?: boolean;
  /** Pad short frames on transmit (TCTL.PSP, default true). */
  readonly padShort?: boolean;
  /** Interrupt causes to enable in IMS (default none: polling). */
  readonly interrupts?: number;
}

/** A received frame. */
export interface E1000RxFrame {
  /** The frame (and FCS, when kept). */
  readonly data: Uint8Array;
  /** OR of the error bytes of its descriptors (0x80 RXE: a DMA error). */
  readonly errors: number;
  /** Descriptors it used. */
  readonly descriptors: number;
}

/** Statistics counters (read-to-clear on the device: each call returns counts since the last). */
export interface E1000Stats {
  /** Good packets received. */
  readonly received: number;
  /** Good packets transmitted. */
  readonly transmitted: number;
  /** Missed packets (receive FIFO overrun). */
  readonly missed: number;
  /** Receive no-buffer events. */
  readonly noBuffers: number;
}

function bsizeBits(size: E1000BufferSize): number {
  switch (size) {
    case 2048:
      return 0;
    case 1024:
      return 1 << 16;
    case 512:
      return 2 << 16;
    case 256:
      return 3 << 16;
    case 16384:
      return (1 << 16) | 0x0200_0000;
    case 8192:
      return (2 << 16) | 0x0200_0000;
    case 4096:
      return (3 << 16) | 0x0200_0000;
  }
}

/**
 * The driver.
 *
 * @example
 * ```ts
 * // The default export of a guest program (run with `machine.runGuest(url)`): a broadcast, then one frame back.
 * import type { Guest } from "./guest.ts";
 * import { E1000Driver } from "./e1000_driver.ts";
 *
 * function program(guest: Guest, options: Record<string, string>) {
 *   const nic = new E1000Driver(guest, {
 *     mmioBase: Number(options.bar0 ?? 0xfeb80000),
 *     irqLine: 23,
 *     memory: { base: 0x0200_0000, size: 0x0080_0000 },
 *   });
 *   const mac = nic.init();
 *   const frame = new Uint8Array(60).fill(0xff, 0, 6); // to everyone
 *   frame.set(mac, 6);
 *   nic.send(frame);
 *   return nic.receive({ timeoutMs: 1000 });
 * }
 * ```
 */
export class E1000Driver {
  #guest: Guest;
  #mmio: number;
  #irqLine: number | undefined;
  #base: number;
  #iova: number;
  #size: number;
  #iommu: E1000DriverOptions["iommu"];
  #rxCount: number;
  #txCount: number;
  #bufSize: E1000BufferSize;
  #txBufSize: number;
  #rxRing = 0;
  #txRing = 0;
  #rxBufs = 0;
  #txBufs = 0;
  #rxNext = 0;
  #txTail = 0;
  #txClean = 0;
  #mac = new Uint8Array(6);

  /**
   * Creates the driver (call {@linkcode E1000Driver.init} next).
   *
   * @param guest The CPU.
   * @param options Where the device and the driver's memory are.
   */
  constructor(guest: Guest, options: E1000DriverOptions) {
    this.#guest = guest;
    this.#mmio = options.mmioBase;
    this.#irqLine = options.irqLine;
    this.#base = options.memory.base;
    this.#size = options.memory.size;
    this.#iova = options.iova ?? options.memory.base;
    this.#iommu = options.iommu;
    this.#rxCount = options.rxDescriptors ?? 64;
    this.#txCount = options.txDescriptors ?? 64;
    this.#bufSize = options.bufferSize ?? 2048;
    this.#txBufSize = options.txBufferSize ?? 2048;
    for (const [what, n] of [["rxDescriptors", this.#rxCount], ["txDescriptors", this.#txCount]]) {
      if (!(Number.isInteger(n) && (n as number) >= 8 && (n as number) % 8 === 0)) {
        throw new RangeError(`Invalid ${what} ${n}: a multiple of 8`);
      }
    }
    if (this.#base % PAGE || this.#iova % PAGE) {
      throw new RangeError("The driver's memory and its IOVA must be 4 KiB aligned");
    }
    const roundUp = (n: number) => Math.ceil(n / PAGE) * PAGE;
    this.#txRing = 0;
    this.#rxRing = roundUp(this.#txCount * DESC);
    this.#txBufs = this.#rxRing + roundUp(this.#rxCount * DESC);
    this.#rxBufs = this.#txBufs + roundUp(this.#txCount * this.#txBufSize);
    const need = this.#rxBufs + roundUp(this.#rxCount * this.#bufSize);
    if (need > this.#size) {
      throw new RangeError(`The e1000 driver needs ${need} bytes of memory, got ${this.#size}`);
    }
  }

  /**
   * The MAC address read from the EEPROM by {@linkcode E1000Driver.init}.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { deepEqual } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): string {
   *   const mac = nic.init();
   *   deepEqual(nic.macAddress, mac); // a copy each time: changing it changes nothing
   *   return [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
   * }
   * ```
   */
  get macAddress(): Uint8Array {
    return this.#mac.slice();
  }

  /**
   * Reads a register.
   *
   * @param offset Register offset in BAR0.
   * @returns Its value.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { E1000Reg } from "../devices/e1000_regs.ts";
   *
   * function program(nic: E1000Driver): boolean {
   *   return (nic.register(E1000Reg.STATUS) & 0x2) !== 0; // STATUS.LU: link up
   * }
   * ```
   */
  register(offset: number): number {
    return this.#guest.read32(this.#mmio + offset) >>> 0;
  }

  /**
   * Writes a register.
   *
   * @param offset Register offset in BAR0.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { E1000Reg } from "../devices/e1000_regs.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   nic.setRegister(E1000Reg.ITR, 1000); // at most one interrupt per 256 µs
   *   equal(nic.register(E1000Reg.ITR), 1000);
   * }
   * ```
   */
  setRegister(offset: number, value: number): void {
    this.#guest.write32(this.#mmio + offset, value >>> 0);
  }

  /**
   * Resets the device (CTRL.RST), masks every interrupt and clears pending causes.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { E1000Reg } from "../devices/e1000_regs.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   nic.reset();
   *   equal(nic.register(E1000Reg.RCTL) & 0x2, 0); // the receiver is off until init()
   *   nic.init();
   * }
   * ```
   */
  reset(): void {
    this.setRegister(R.CTRL, this.register(R.CTRL) | 0x0400_0000);
    const deadline = performance.now() + 1000;
    while (this.register(R.CTRL) & 0x0400_0000) {
      if (performance.now() > deadline) throw new Error("The e1000 did not finish its reset");
    }
    this.setRegister(R.IMC, 0xffff_ffff);
    this.register(R.ICR);
  }

  /**
   * Reads an EEPROM word through EERD.
   *
   * @param word Word address (0–63).
   * @returns The word.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   const mac = nic.init();
   *   equal(nic.readEeprom(0), mac[0]! | (mac[1]! << 8)); // words 0–2: the MAC, low byte first
   * }
   * ```
   */
  readEeprom(word: number): number {
    this.setRegister(R.EERD, (word << 8) | 1);
    const deadline = performance.now() + 1000;
    for (;;) {
      const v = this.register(R.EERD);
      if (v & 0x10) return v >>> 16;
      if (performance.now() > deadline) throw new Error("The e1000 EEPROM did not answer");
    }
  }

  /**
   * Checks the EEPROM checksum: the 64 words sum to 0xBABA.
   *
   * @returns Whether the image is valid.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { ok } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   ok(nic.eepromValid(), "the EEPROM's 64 words do not sum to 0xBABA");
   * }
   * ```
   */
  eepromValid(): boolean {
    let sum = 0;
    for (let i = 0; i < 64; i++) sum = (sum + this.readEeprom(i)) & 0xffff;
    return sum === 0xbaba;
  }

  /**
   * Resets the device, reads its MAC from the EEPROM, maps the driver's
   * memory through the IOMMU (when configured), sets up both rings and
   * enables the receiver and transmitter.
   *
   * @param options Receive filter, frame sizes and interrupts.
   * @returns The MAC address.
   *
   * @example
   * ```ts
   * import { E1000Driver } from "./e1000_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   const mac = nic.init({ promiscuous: true, interrupts: E1000Driver.INTERRUPTS });
   *   equal(mac.length, 6);
   *   equal(nic.txFree, 63); // all but one of the 64 transmit descriptors
   * }
   * ```
   */
  init(options: E1000InitOptions = {}): Uint8Array {
    this.reset();
    if (!this.eepromValid()) throw new Error("The e1000 EEPROM checksum is not 0xBABA");
    for (let i = 0; i < 3; i++) {
      const word = this.readEeprom(i);
      this.#mac[2 * i] = word & 0xff;
      this.#mac[2 * i + 1] = word >>> 8;
    }
    const m = this.#mac;
    if (this.#iommu) {
      const { driver, domain, requesterId } = this.#iommu;
      driver.map(domain, {
        iova: this.#iova,
        phys: this.#base,
        size: this.#regionSize(),
        perms: "rw",
      });
      driver.attach(requesterId, domain);
    }
    this.setRegister(R.RA, m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24));
    this.setRegister(R.RA + 4, m[4]! | (m[5]! << 8) | 0x8000_0000);
    for (let i = 0; i < 128; i++) this.setRegister(R.MTA + 4 * i, 0);
    const mem = this.#guest.memory;
    mem.fill(this.#base, this.#rxBufs, 0);
    // Transmit ring.
    this.#setBase(R.TDBAL, this.#iova + this.#txRing);
    this.setRegister(R.TDLEN, this.#txCount * DESC);
    this.setRegister(R.TDH, 0);
    this.setRegister(R.TDT, 0);
    this.#txTail = 0;
    this.#txClean = 0;
    this.setRegister(
      R.TCTL,
      0x2 | (options.padShort ?? true ? 0x8 : 0) | (0x0f << 4) | (0x40 << 12),
    );
    // Receive ring: every descriptor gets its buffer; RDT one behind RDH.
    for (let i = 0; i < this.#rxCount; i++) {
      const at = this.#base + this.#rxRing + i * DESC;
      mem.write64(at, BigInt(this.#iova + this.#rxBufs + i * this.#bufSize));
      mem.write64(at + 8, 0n);
    }
    this.#setBase(R.RDBAL, this.#iova + this.#rxRing);
    this.setRegister(R.RDLEN, this.#rxCount * DESC);
    this.setRegister(R.RDH, 0);
    this.setRegister(R.RDT, this.#rxCount - 1);
    this.#rxNext = 0;
    let rctl = 0x2 | bsizeBits(this.#bufSize);
    if (options.promiscuous) rctl |= 0x8;
    if (options.allMulticast) rctl |= 0x10;
    if (options.longFrames) rctl |= 0x20;
    if (options.broadcast ?? true) rctl |= 0x8000;
    if (!options.keepCrc) rctl |= 0x0400_0000;
    this.setRegister(R.RCTL, rctl);
    if (options.interrupts) this.setRegister(R.IMS, options.interrupts);
    return this.macAddress;
  }

  #regionSize(): number {
    return Math.ceil((this.#rxBufs + this.#rxCount * this.#bufSize) / PAGE) * PAGE;
  }

  #setBase(lowReg: number, address: number): void {
    this.setRegister(lowReg + 4, Math.floor(address / 2 ** 32));
    this.setRegister(lowReg, address % 2 ** 32);
  }

  /**
   * Transmit descriptors free for new frames.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   nic.init();
   *   const free = nic.txFree;
   *   nic.queue(new Uint8Array(4000)); // two 2 KiB transmit buffers
   *   equal(nic.txFree, free - 2);
   *   nic.flush();
   * }
   * ```
   */
  get txFree(): number {
    return (this.#txClean - this.#txTail - 1 + this.#txCount) % this.#txCount;
  }

  /**
   * Frees transmit descriptors the device has completed (DD).
   *
   * @returns How many were freed.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   *
   * function program(nic: E1000Driver): number {
   *   nic.init();
   *   nic.send(new Uint8Array(60));
   *   let freed = 0;
   *   while (freed === 0) freed = nic.reclaim(); // until the device writes the descriptor back
   *   return freed; // 1
   * }
   * ```
   */
  reclaim(): number {
    const mem = this.#guest.memory;
    let n = 0;
    while (this.#txClean !== this.#txTail) {
      const at = this.#base + this.#txRing + this.#txClean * DESC;
      const upper = mem.atomicLoad64(at + 8) >> 32n;
      const cmd = Number((mem.atomicLoad64(at + 8) >> 24n) & 0xffn);
      // Only the RS (last) descriptor of a frame reports; earlier ones follow it.
      if (cmd & E1000TxCmd.RS) {
        if (!(upper & 1n)) break;
      } else {
        // Find the frame's RS descriptor.
        let end = this.#txClean;
        while (end !== this.#txTail) {
          const c = Number(
            (mem.atomicLoad64(this.#base + this.#txRing + end * DESC + 8) >> 24n) & 0xffn,
          );
          if (c & E1000TxCmd.RS) break;
          end = (end + 1) % this.#txCount;
        }
        if (end === this.#txTail) break;
        const done = mem.atomicLoad64(this.#base + this.#txRing + end * DESC + 8) >> 32n;
        if (!(done & 1n)) break;
      }
      this.#txClean = (this.#txClean + 1) % this.#txCount;
      n++;
    }
    return n;
  }

  /**
   * Queues a frame (without writing TDT: see {@linkcode E1000Driver.flush}).
   *
   * @param frame The frame (no FCS; up to 16 KiB).
   * @returns Whether it was queued (false: the ring is full).
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   *
   * function program(nic: E1000Driver, frames: Uint8Array[]): number {
   *   let queued = 0;
   *   while (queued < frames.length && nic.queue(frames[queued]!)) queued++;
   *   nic.flush(); // one TDT write for the whole batch
   *   return queued; // fewer than frames.length when the ring filled up
   * }
   * ```
   */
  queue(frame: Uint8Array): boolean {
    const pieces = Math.max(1, Math.ceil(frame.length / this.#txBufSize));
    if (this.txFree < pieces) this.reclaim();
    if (this.txFree < pieces) return false;
    const mem = this.#guest.memory;
    for (let p = 0; p < pieces; p++) {
      const index = this.#txTail;
      const chunk = frame.subarray(p * this.#txBufSize, (p + 1) * this.#txBufSize);
      mem.write(this.#base + this.#txBufs + index * this.#txBufSize, chunk);
      const at = this.#base + this.#txRing + index * DESC;
      const last = p === pieces - 1;
      const cmd = E1000TxCmd.IFCS | (last ? E1000TxCmd.EOP | E1000TxCmd.RS : 0);
      mem.write64(at, BigInt(this.#iova + this.#txBufs + index * this.#txBufSize));
      mem.write64(at + 8, BigInt(((cmd << 24) | chunk.length) >>> 0));
      this.#txTail = (this.#txTail + 1) % this.#txCount;
    }
    return true;
  }

  /**
   * Hands queued frames to the device (writes TDT).
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver, a: Uint8Array, b: Uint8Array): void {
   *   equal(nic.queue(a) && nic.queue(b), true);
   *   nic.flush(); // the device sees both frames from here
   *   nic.waitTransmitted();
   * }
   * ```
   */
  flush(): void {
    this.setRegister(R.TDT, this.#txTail);
  }

  /**
   * Sends a frame.
   *
   * @param frame The frame (no FCS; up to 16 KiB).
   * @param options `wait`: poll until the device has fetched it (default false).
   * @returns Whether it was queued.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   const frame = new Uint8Array(60).fill(0xff, 0, 6); // to everyone
   *   frame.set(nic.init(), 6);
   *   equal(nic.send(frame, { wait: true, timeoutMs: 1000 }), true);
   * }
   * ```
   */
  send(frame: Uint8Array, options: { wait?: boolean; timeoutMs?: number } = {}): boolean {
    if (!this.queue(frame)) return false;
    this.flush();
    if (options.wait) this.waitTransmitted(options.timeoutMs);
    return true;
  }

  /**
   * Waits until the device has completed every queued frame.
   *
   * @param timeoutMs Give up after this long (default 5000).
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver, frame: Uint8Array): void {
   *   nic.init();
   *   for (let i = 0; i < 10; i++) nic.queue(frame);
   *   nic.flush();
   *   nic.waitTransmitted(1000); // throws after a second
   *   equal(nic.txFree, 63); // every descriptor is free again
   * }
   * ```
   */
  waitTransmitted(timeoutMs = 5000): void {
    const deadline = performance.now() + timeoutMs;
    while (this.#txClean !== this.#txTail) {
      this.reclaim();
      if (performance.now() > deadline) {
        throw new Error("Timed out waiting for the e1000 to transmit");
      }
    }
  }

  /**
   * Takes the next received frame if one is complete (polling).
   *
   * @returns The frame, or `undefined`.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   *
   * function program(nic: E1000Driver): number {
   *   let bytes = 0;
   *   for (let frame = nic.poll(); frame; frame = nic.poll()) {
   *     if (frame.errors === 0) bytes += frame.data.length;
   *   }
   *   return bytes; // of the frames received so far
   * }
   * ```
   */
  poll(): E1000RxFrame | undefined {
    const mem = this.#guest.memory;
    const statusOf = (index: number) =>
      mem.atomicLoad64(this.#base + this.#rxRing + index * DESC + 8);
    // Find the end of the frame at #rxNext (EOP), every descriptor done.
    let index = this.#rxNext;
    let count = 0;
    for (;;) {
      const w = statusOf(index);
      if (!(w & (1n << 32n))) return undefined; // DD
      count++;
      if (w & (2n << 32n)) break; // EOP
      index = (index + 1) % this.#rxCount;
      if (count === this.#rxCount) return undefined;
    }
    const parts: Uint8Array[] = [];
    let errors = 0;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const d = (this.#rxNext + i) % this.#rxCount;
      const w = statusOf(d);
      const length = Number(w & 0xffffn);
      errors |= Number((w >> 40n) & 0xffn);
      const part = new Uint8Array(length);
      mem.read(this.#base + this.#rxBufs + d * this.#bufSize, part);
      parts.push(part);
      total += length;
      mem.write64(this.#base + this.#rxRing + d * DESC + 8, 0n);
    }
    const data = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    const last = (this.#rxNext + count - 1) % this.#rxCount;
    this.#rxNext = (last + 1) % this.#rxCount;
    this.setRegister(R.RDT, last);
    return { data, errors, descriptors: count };
  }

  /**
   * Consumes every completed receive descriptor without copying the data
   * (for throughput measurements) and returns them to the device with one
   * RDT write.
   *
   * @param max The most frames to take (default: all that are complete).
   * @returns Frames (EOP descriptors) and bytes consumed.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import type { E1000Driver } from "./e1000_driver.ts";
   *
   * function program(guest: Guest, nic: E1000Driver): number {
   *   guest.sleep(100);
   *   const { frames, bytes } = nic.drain(); // hands the descriptors back with one RDT write
   *   return frames ? bytes / frames : 0; // mean frame size
   * }
   * ```
   */
  drain(max = Infinity): { frames: number; bytes: number } {
    const mem = this.#guest.memory;
    let frames = 0;
    let bytes = 0;
    let last = -1;
    while (frames < max) {
      const at = this.#base + this.#rxRing + this.#rxNext * DESC + 8;
      const w = mem.atomicLoad64(at);
      if (!(w & (1n << 32n))) break;
      bytes += Number(w & 0xffffn);
      if (w & (2n << 32n)) frames++;
      mem.write64(at, 0n);
      last = this.#rxNext;
      this.#rxNext = (this.#rxNext + 1) % this.#rxCount;
    }
    if (last >= 0) this.setRegister(R.RDT, last);
    return { frames, bytes };
  }

  /**
   * Waits for the next received frame, polling or (with an interrupt line
   * and `interrupt: true`) sleeping until the NIC's interrupt.
   *
   * @param options Timeout (default 5000 ms) and the wait style.
   * @returns The frame, or `undefined` on timeout.
   *
   * @example
   * ```ts
   * import { E1000Driver } from "./e1000_driver.ts";
   *
   * function program(nic: E1000Driver): Uint8Array | undefined {
   *   nic.init({ interrupts: E1000Driver.INTERRUPTS });
   *   const frame = nic.receive({ timeoutMs: 1000, interrupt: true }); // sleeps between checks
   *   return frame?.errors === 0 ? frame.data : undefined;
   * }
   * ```
   */
  receive(options: { timeoutMs?: number; interrupt?: boolean } = {}): E1000RxFrame | undefined {
    const deadline = performance.now() + (options.timeoutMs ?? 5000);
    for (;;) {
      const frame = this.poll();
      if (frame) return frame;
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      if (options.interrupt && this.#irqLine !== undefined) {
        this.#guest.waitIrq(this.#irqLine, { timeoutMs: Math.min(left, 100) });
        this.register(R.ICR);
      }
    }
  }

  /**
   * Waits for the NIC's interrupt and reads (and so clears) ICR.
   *
   * @param timeoutMs Give up after this long (default 5000).
   * @returns The causes, or 0 on timeout.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { E1000Icr } from "../devices/e1000_regs.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   nic.init({ interrupts: E1000Icr.TXDW });
   *   nic.send(new Uint8Array(60));
   *   equal(nic.waitInterrupt(1000) & E1000Icr.TXDW, E1000Icr.TXDW); // 0 on timeout
   * }
   * ```
   */
  waitInterrupt(timeoutMs = 5000): number {
    if (this.#irqLine === undefined) throw new Error("No interrupt line given to the e1000 driver");
    if (!this.#guest.waitIrq(this.#irqLine, { timeoutMs })) return 0;
    return this.register(R.ICR);
  }

  /**
   * Reads (and so clears) the main statistics counters.
   *
   * @returns The counts since the last call.
   *
   * @example
   * ```ts
   * import type { E1000Driver } from "./e1000_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(nic: E1000Driver): void {
   *   nic.init();
   *   nic.stats(); // read to clear
   *   nic.send(new Uint8Array(60), { wait: true });
   *   equal(nic.stats().transmitted, 1);
   * }
   * ```
   */
  stats(): E1000Stats {
    return {
      received: this.register(E1000Stat.GPRC),
      transmitted: this.register(E1000Stat.GPTC),
      missed: this.register(E1000Stat.MPC),
      noBuffers: this.register(E1000Stat.RNBC),
    };
  }

  /** Interrupt causes the driver may enable for receive and transmit. */
  static readonly INTERRUPTS: number = E1000Icr.RXT0 | E1000Icr.TXDW | E1000Icr.LSC |
    E1000Icr.RXO | E1000Icr.RXDMT0;
}
