/**
 * A PCI function's 256-byte configuration space: identity, command and
 * status, BARs with sizing, capability lists and the interrupt pin/line.
 *
 * @module
 */

import { hex } from "../util/address.ts";

/**
 * Offsets of the standard type-0 header registers.
 *
 * @example
 * ```ts
 * import { PciConfig, PciFunction } from "./pci_function.ts";
 * import { equal } from "node:assert/strict";
 * const edu = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
 * equal(edu.read(PciConfig.DEVICE_ID, 2), 0x11e8);
 * equal(PciConfig.BAR0 + 4 * 5, 0x24); // BAR5, the last of the six
 * ```
 */
export const PciConfig = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION: 0x08,
  CLASS_PROG: 0x09,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  CAPABILITY_LIST: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

/**
 * Command register bits.
 *
 * @example
 * ```ts
 * import { PciCommand, PciConfig, PciFunction } from "./pci_function.ts";
 * import { equal } from "node:assert/strict";
 * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
 * fn.write(PciConfig.COMMAND, 2, PciCommand.MEMORY | PciCommand.BUS_MASTER);
 * equal(fn.busMaster, true);
 * equal(fn.command & PciCommand.INTX_DISABLE, 0);
 * ```
 */
export const PciCommand = {
  IO: 0x0001,
  MEMORY: 0x0002,
  BUS_MASTER: 0x0004,
  PARITY: 0x0040,
  SERR: 0x0100,
  INTX_DISABLE: 0x0400,
} as const;

/**
 * Status register bits.
 *
 * @example
 * ```ts
 * import { PciConfig, PciFunction, PciStatus } from "./pci_function.ts";
 * import { equal } from "node:assert/strict";
 * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
 * fn.setStatusBits(PciStatus.RECEIVED_MASTER_ABORT);
 * equal(fn.read(PciConfig.STATUS, 2) & PciStatus.RECEIVED_MASTER_ABORT, 0x2000);
 * fn.write(PciConfig.STATUS, 2, PciStatus.RECEIVED_MASTER_ABORT); // write 1 to clear
 * equal(fn.read(PciConfig.STATUS, 2) & PciStatus.RECEIVED_MASTER_ABORT, 0);
 * ```
 */
export const PciStatus = {
  INTERRUPT: 0x0008,
  CAP_LIST: 0x0010,
  MASTER_DATA_PARITY: 0x0100,
  SIGNALED_TARGET_ABORT: 0x0800,
  RECEIVED_TARGET_ABORT: 0x1000,
  RECEIVED_MASTER_ABORT: 0x2000,
  SIGNALED_SYSTEM_ERROR: 0x4000,
  DETECTED_PARITY: 0x8000,
} as const;

/** Status bits that software clears by writing 1. */
const STATUS_W1C = 0xf900;

/** A base address register. */
export interface PciBarSpec {
  /** BAR index 0–5 (a 64-bit BAR also uses index + 1). */
  readonly index: number;
  /** Memory or I/O space. */
  readonly kind: "mmio" | "pio";
  /** Size in bytes: a power of two, at least 16 for memory and 4 for I/O. */
  readonly size: number;
  /** A 64-bit memory BAR. */
  readonly is64?: boolean;
  /** Prefetchable memory. */
  readonly prefetchable?: boolean;
}

/** A capability in the capability list. */
export interface PciCapabilitySpec {
  /** Config-space offset of the capability header (dword aligned, ≥ 0x40). */
  readonly offset: number;
  /** Capability id (e.g. 0x05 MSI, 0x0f AMD secure device). */
  readonly id: number;
  /** The bytes after the id and next-pointer bytes. */
  readonly body: readonly number[];
  /** Writable bits of the body, byte for byte (default: read-only). */
  readonly writeMask?: readonly number[];
}

/** What a PCI function looks like. */
export interface PciFunctionSpec {
  /** Vendor id. */
  readonly vendorId: number;
  /** Device id. */
  readonly deviceId: number;
  /** Class code: base class << 16 | subclass << 8 | programming interface. */
  readonly classCode: number;
  /** Revision id. */
  readonly revision?: number;
  /** Subsystem vendor id (default 0x1af4, as QEMU). */
  readonly subsystemVendorId?: number;
  /** Subsystem id (default 0x1100, as QEMU). */
  readonly subsystemId?: number;
  /** Header type byte (default 0). */
  readonly headerType?: number;
  /** Interrupt pin: 0 none, 1 INTA … 4 INTD. */
  readonly interruptPin?: number;
  /** Initial status register bits (besides the capability-list bit). */
  readonly status?: number;
  /** Base address registers. */
  readonly bars?: readonly PciBarSpec[];
  /** Capabilities, linked in the order given. */
  readonly capabilities?: readonly PciCapabilitySpec[];
  /** Extra initial bytes of device-specific registers: offset → byte. */
  readonly registers?: Readonly<Record<number, number>>;
  /** Device-specific writable bytes: offset → write mask. */
  readonly registerWriteMask?: Readonly<Record<number, number>>;
}

/** A decoded BAR: where its region currently sits. */
export interface BarState {
  /** The BAR's description. */
  readonly spec: PciBarSpec;
  /** The programmed address (meaningful when `decoding`). */
  readonly address: number;
  /**
   * Whether the BAR decodes: its space is enabled in the command register,
   * it is not being sized (all-ones) and its address is representable.
   */
  readonly decoding: boolean;
}

function checkSpec(spec: PciFunctionSpec): void {
  const used = new Set<number>();
  for (const bar of spec.bars ?? []) {
    const slots = bar.is64 ? [bar.index, bar.index + 1] : [bar.index];
    for (const slot of slots) {
      if (slot < 0 || slot > 5 || used.has(slot)) {
        throw new RangeError(`Invalid BAR index ${bar.index}`);
      }
      used.add(slot);
    }
    const min = bar.kind === "mmio" ? 16 : 4;
    const powerOfTwo = Number.isSafeInteger(bar.size) && Number.isInteger(Math.log2(bar.size));
    if (!powerOfTwo || bar.size < min) {
      throw new RangeError(
        `Invalid BAR ${bar.index} size ${hex(bar.size)}: must be a power of two ≥ ${min}`,
      );
    }
    if (!bar.is64 && bar.size > 2 ** 31) {
      throw new RangeError(
        `Invalid BAR ${bar.index} size ${hex(bar.size)}: a 32-bit BAR holds at most 2 GiB`,
      );
    }
    if (bar.kind === "pio" && (bar.is64 || bar.size > 256)) {
      throw new RangeError(`Invalid I/O BAR ${bar.index}: at most 256 bytes, 32-bit`);
    }
  }
}

/**
 * One PCI function's configuration space.
 *
 * Reads and writes follow the PCI rules: read-only fields ignore writes,
 * status error bits are write-1-to-clear, BARs keep their type bits and
 * answer sizing writes with their size mask.
 *
 * @example Size a BAR
 * ```ts
 * import { PciFunction } from "./pci_function.ts";
 * import { equal } from "node:assert/strict";
 * const fn = new PciFunction({
 *   vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00,
 *   bars: [{ index: 0, kind: "mmio", size: 0x100000 }],
 * });
 * fn.write(0x10, 4, 0xffffffff);
 * equal(fn.read(0x10, 4), 0xfff00000);
 * fn.write(0x10, 4, 0xfe000000);
 * equal(fn.read(0x10, 4), 0xfe000000);
 * ```
 */
export class PciFunction {
  /** The function's description. */
  readonly spec: PciFunctionSpec;
  #config = new Uint8Array(256);
  #wmask = new Uint8Array(256);
  #w1cmask = new Uint8Array(256);
  #listeners: Array<(offset: number, size: number) => void> = [];
  #intxLevel = () => false;

  /**
   * Builds the configuration space at its reset values.
   *
   * @param spec What the function is.
   */
  constructor(spec: PciFunctionSpec) {
    checkSpec(spec);
    this.spec = spec;
    this.reset();
  }

  /**
   * Restores every register to its reset value.
   *
   * @example
   * ```ts
   * import { PciFunction } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * fn.write(0x04, 2, 0x0006);
   * equal(fn.command, 0x0006);
   * fn.reset();
   * equal(fn.command, 0);
   * equal(fn.read(0x00, 2), 0x1234); // identity is kept
   * ```
   */
  reset(): void {
    const spec = this.spec;
    const c = this.#config;
    c.fill(0);
    this.#wmask.fill(0);
    this.#w1cmask.fill(0);
    this.#set16(PciConfig.VENDOR_ID, spec.vendorId);
    this.#set16(PciConfig.DEVICE_ID, spec.deviceId);
    c[PciConfig.REVISION] = spec.revision ?? 0;
    c[PciConfig.CLASS_PROG] = spec.classCode & 0xff;
    c[PciConfig.CLASS_PROG + 1] = (spec.classCode >> 8) & 0xff;
    c[PciConfig.CLASS_PROG + 2] = (spec.classCode >> 16) & 0xff;
    c[PciConfig.HEADER_TYPE] = spec.headerType ?? 0;
    this.#set16(PciConfig.SUBSYSTEM_VENDOR_ID, spec.subsystemVendorId ?? 0x1af4);
    this.#set16(PciConfig.SUBSYSTEM_ID, spec.subsystemId ?? 0x1100);
    c[PciConfig.INTERRUPT_PIN] = spec.interruptPin ?? 0;
    this.#set16(PciConfig.STATUS, spec.status ?? 0);
    // Writable: command IO/MEM/BME/SERR/INTx-disable (as QEMU), cache line size, interrupt line.
    const command = PciCommand.IO | PciCommand.MEMORY | PciCommand.BUS_MASTER | PciCommand.SERR |
      PciCommand.INTX_DISABLE;
    this.#wmask[PciConfig.COMMAND] = command & 0xff;
    this.#wmask[PciConfig.COMMAND + 1] = command >> 8;
    this.#w1cmask[PciConfig.STATUS] = STATUS_W1C & 0xff;
    this.#w1cmask[PciConfig.STATUS + 1] = STATUS_W1C >> 8;
    this.#wmask[PciConfig.CACHE_LINE_SIZE] = 0xff;
    this.#wmask[PciConfig.INTERRUPT_LINE] = 0xff;
    for (const bar of spec.bars ?? []) this.#initBar(bar);
    const caps = spec.capabilities ?? [];
    if (caps.length > 0) {
      c[PciConfig.STATUS] = c[PciConfig.STATUS]! | PciStatus.CAP_LIST;
      c[PciConfig.CAPABILITY_LIST] = caps[0]!.offset;
    }
    caps.forEach((cap, i) => {
      if (cap.offset < 0x40 || cap.offset % 4 !== 0 || cap.offset + 2 + cap.body.length > 256) {
        throw new RangeError(`Invalid capability offset ${hex(cap.offset)}`);
      }
      c[cap.offset] = cap.id;
      c[cap.offset + 1] = caps[i + 1]?.offset ?? 0;
      cap.body.forEach((byte, j) => {
        c[cap.offset + 2 + j] = byte;
        this.#wmask[cap.offset + 2 + j] = cap.writeMask?.[j] ?? 0;
      });
    });
    for (const [offset, byte] of Object.entries(spec.registers ?? {})) c[Number(offset)] = byte;
    for (const [offset, mask] of Object.entries(spec.registerWriteMask ?? {})) {
      this.#wmask[Number(offset)] = mask;
    }
  }

  #initBar(bar: PciBarSpec): void {
    const offset = PciConfig.BAR0 + bar.index * 4;
    let low: number;
    if (bar.kind === "pio") {
      low = 0x1;
    } else {
      low = (bar.is64 ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
    }
    this.#set32(offset, low);
    const mask = bar.kind === "pio" ? ~(bar.size - 1) & ~0x3 : ~(bar.size - 1) & ~0xf;
    this.#setMask32(offset, mask >>> 0);
    if (bar.is64) {
      const highMask = bar.size > 2 ** 32 ? (~(bar.size / 2 ** 32 - 1)) >>> 0 : 0xffffffff;
      this.#setMask32(offset + 4, highMask);
    }
  }

  /**
   * Registers a listener for writes (called with the written offset and size).
   *
   * @param listener Called after each write.
   *
   * @example
   * ```ts
   * import { PciFunction } from "./pci_function.ts";
   * import { deepEqual } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * const writes: Array<[number, number]> = [];
   * fn.onWrite((offset, size) => writes.push([offset, size]));
   * fn.write(0x04, 2, 0x0002);
   * fn.write(0x00, 2, 0xffff); // read-only, but still reported
   * deepEqual(writes, [[0x04, 2], [0x00, 2]]);
   * ```
   */
  onWrite(listener: (offset: number, size: number) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Connects the function's INTx pin state, shown in Status bit 3.
   *
   * @param level Returns the current INTx level.
   *
   * @example
   * ```ts
   * import { PciFunction, PciStatus } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({
   *   vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00, interruptPin: 1,
   * });
   * let asserted = false;
   * fn.setIntxSource(() => asserted);
   * equal(fn.read(0x06, 2) & PciStatus.INTERRUPT, 0);
   * asserted = true;
   * equal(fn.read(0x06, 2) & PciStatus.INTERRUPT, PciStatus.INTERRUPT);
   * ```
   */
  setIntxSource(level: () => boolean): void {
    this.#intxLevel = level;
  }

  /**
   * Reads `size` bytes at `offset` (little-endian). Bytes past 0xff read as 0xff.
   *
   * @param offset Config-space offset, 0–255.
   * @param size 1, 2 or 4.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { PciFunction } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * equal(fn.read(0x00, 4), 0x11e81234);
   * equal(fn.read(0x02, 2), 0x11e8);
   * equal(fn.read(0x0a, 2), 0x00ff); // subclass and base class
   * equal(fn.read(0xfe, 4), 0xffff0000); // bytes past 0xff read as 0xff
   * ```
   */
  read(offset: number, size: number): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) {
      const at = offset + i;
      let byte = at < 256 ? this.#config[at]! : 0xff;
      if (at === PciConfig.STATUS && this.#intxLevel()) byte |= PciStatus.INTERRUPT;
      value = value * 256 + byte;
    }
    return value >>> 0;
  }

  /**
   * Writes `size` bytes of `value` at `offset`, honouring write masks.
   *
   * @param offset Config-space offset, 0–255.
   * @param size 1, 2 or 4.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { PciFunction, PciStatus } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * fn.write(0x00, 2, 0xabcd); // vendor id is read-only
   * equal(fn.read(0x00, 2), 0x1234);
   * fn.setStatusBits(PciStatus.RECEIVED_MASTER_ABORT);
   * fn.write(0x06, 2, PciStatus.RECEIVED_MASTER_ABORT); // write 1 to clear
   * equal(fn.read(0x06, 2), 0);
   * ```
   */
  write(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      if (at >= 256) break;
      const byte = (value >>> (8 * i)) & 0xff;
      const wm = this.#wmask[at]!;
      const w1c = this.#w1cmask[at]!;
      this.#config[at] = (this.#config[at]! & ~wm & ~(w1c & byte)) | (byte & wm);
    }
    for (const listener of this.#listeners) listener(offset, size);
  }

  /**
   * Sets status bits from the device side (e.g. Received Master Abort).
   *
   * @param bits Bits to set.
   *
   * @example
   * ```ts
   * import { PciFunction, PciStatus } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * fn.setStatusBits(PciStatus.RECEIVED_TARGET_ABORT);
   * equal(fn.read(0x06, 2), PciStatus.RECEIVED_TARGET_ABORT);
   * ```
   */
  setStatusBits(bits: number): void {
    this.#set16(PciConfig.STATUS, this.#get16(PciConfig.STATUS) | bits);
  }

  /**
   * The command register.
   *
   * @example
   * ```ts
   * import { PciCommand, PciFunction } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * fn.write(0x04, 2, 0xffff);
   * // Only IO, MEMORY, BUS_MASTER, SERR and INTX_DISABLE are writable.
   * equal(fn.command, 0x0507);
   * equal(fn.command & PciCommand.PARITY, 0);
   * ```
   */
  get command(): number {
    return this.#get16(PciConfig.COMMAND);
  }

  /**
   * Whether Bus Master Enable is set.
   *
   * @example
   * ```ts
   * import { PciCommand, PciFunction } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * equal(fn.busMaster, false);
   * fn.write(0x04, 2, PciCommand.MEMORY | PciCommand.BUS_MASTER);
   * equal(fn.busMaster, true);
   * ```
   */
  get busMaster(): boolean {
    return (this.command & PciCommand.BUS_MASTER) !== 0;
  }

  /**
   * Whether INTx assertion is disabled by the command register.
   *
   * @example
   * ```ts
   * import { PciCommand, PciFunction } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * equal(fn.intxDisabled, false);
   * fn.write(0x04, 2, PciCommand.INTX_DISABLE);
   * equal(fn.intxDisabled, true);
   * ```
   */
  get intxDisabled(): boolean {
    return (this.command & PciCommand.INTX_DISABLE) !== 0;
  }

  /**
   * The decoded state of every BAR.
   *
   * @returns One entry per BAR in the spec.
   *
   * @example
   * ```ts
   * import { PciCommand, PciFunction } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const fn = new PciFunction({
   *   vendorId: 0x1234,
   *   deviceId: 0x11e8,
   *   classCode: 0x00ff00,
   *   bars: [{ index: 0, kind: "mmio", size: 0x1000 }],
   * });
   * fn.write(0x10, 4, 0xfe000000);
   * equal(fn.bars()[0]?.decoding, false); // memory space still disabled
   * fn.write(0x04, 2, PciCommand.MEMORY);
   * equal(fn.bars()[0]?.address, 0xfe000000);
   * equal(fn.bars()[0]?.decoding, true);
   * ```
   */
  bars(): BarState[] {
    const command = this.command;
    return (this.spec.bars ?? []).map((spec) => {
      const offset = PciConfig.BAR0 + spec.index * 4;
      const enabled = spec.kind === "pio"
        ? (command & PciCommand.IO) !== 0
        : (command & PciCommand.MEMORY) !== 0;
      const low = this.#get32(offset);
      const lowAddress = spec.kind === "pio" ? (low & ~0x3) >>> 0 : (low & ~0xf) >>> 0;
      const high = spec.is64 ? this.#get32(offset + 4) : 0;
      const address = high * 2 ** 32 + lowAddress;
      // As in QEMU, a memory BAR whose window would reach the top of the 32-bit
      // space does not decode (that excludes the all-ones pattern software
      // writes while sizing), an I/O BAR must end by port 0xffff, and address 0
      // never decodes.
      const limit = spec.kind === "pio"
        ? 0x1_0000
        : spec.is64
        ? Number.MAX_SAFE_INTEGER
        : 0xffff_ffff;
      const decoding = enabled && address !== 0 && address + spec.size <= limit;
      return { spec, address, decoding };
    });
  }

  #get16(offset: number): number {
    return this.#config[offset]! | (this.#config[offset + 1]! << 8);
  }
  #get32(offset: number): number {
    return (this.#get16(offset) | (this.#get16(offset + 2) << 16)) >>> 0;
  }
  #set16(offset: number, value: number): void {
    this.#config[offset] = value & 0xff;
    this.#config[offset + 1] = (value >> 8) & 0xff;
  }
  #set32(offset: number, value: number): void {
    this.#set16(offset, value & 0xffff);
    this.#set16(offset + 2, value >>> 16);
  }
  #setMask32(offset: number, mask: number): void {
    for (let i = 0; i < 4; i++) this.#wmask[offset + i] = (mask >>> (8 * i)) & 0xff;
  }
}
