/**
 * Guest RAM: one SharedArrayBuffer shared by every agent, laid out like a
 * q35 machine (RAM from 0 up to the PCI hole, the rest above 4 GiB).
 *
 * @module
 */

import { checkRange, FOUR_GIB, hex } from "../util/address.ts";

/**
 * Default guest RAM size: 256 MiB.
 *
 * @example
 * ```ts
 * import { DEFAULT_RAM_SIZE, q35LowSize } from "./guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * equal(DEFAULT_RAM_SIZE, 0x1000_0000);
 * // The default machine has all its RAM below 4 GiB.
 * equal(q35LowSize(DEFAULT_RAM_SIZE), DEFAULT_RAM_SIZE);
 * ```
 */
export const DEFAULT_RAM_SIZE: number = 256 * 1024 * 1024;

/** One contiguous block of guest RAM in the guest-physical address space. */
export interface RamBlock {
  /** Guest-physical base address. */
  readonly base: number;
  /** Size in bytes. */
  readonly size: number;
  /** Byte offset of the block inside the SharedArrayBuffer. */
  readonly offset: number;
}

/** Options for {@linkcode GuestMemory}. */
export interface GuestMemoryOptions {
  /** RAM size in bytes (default 256 MiB); a multiple of 4 KiB. */
  size?: number;
  /**
   * How much RAM sits below 4 GiB at most. Defaults to the q35 rule: 2.75 GiB
   * when the RAM is smaller than that, 2 GiB otherwise.
   */
  lowLimit?: number;
}

/** What a worker needs to attach to the same guest RAM. */
export interface GuestMemoryDescriptor {
  /** The RAM buffer. */
  readonly buffer: SharedArrayBuffer;
  /** Bytes of RAM below 4 GiB. */
  readonly lowSize: number;
}

/**
 * The q35 default below-4 GiB limit for RAM smaller than 2.75 GiB.
 *
 * @example
 * ```ts
 * import { Q35_LOW_LIMIT_SMALL, q35LowSize } from "./guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * equal(Q35_LOW_LIMIT_SMALL, 2.75 * 2 ** 30); // QEMU's q35: lowmem 0xb0000000
 * equal(q35LowSize(Q35_LOW_LIMIT_SMALL - 4096), Q35_LOW_LIMIT_SMALL - 4096);
 * ```
 */
export const Q35_LOW_LIMIT_SMALL = 0xb000_0000;
/**
 * The q35 below-4 GiB limit once RAM reaches 2.75 GiB.
 *
 * @example
 * ```ts
 * import { Q35_LOW_LIMIT_LARGE, Q35_LOW_LIMIT_SMALL, q35LowSize } from "./guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * // From 2.75 GiB on, only 2 GiB stays low; the rest moves above 4 GiB.
 * equal(q35LowSize(Q35_LOW_LIMIT_SMALL), Q35_LOW_LIMIT_LARGE);
 * equal(Q35_LOW_LIMIT_LARGE, 2 ** 31);
 * ```
 */
export const Q35_LOW_LIMIT_LARGE = 0x8000_0000;

/**
 * Returns the q35 split of `size` bytes of RAM into below- and above-4 GiB parts.
 *
 * @param size RAM size in bytes.
 * @param lowLimit Optional override of the below-4 GiB limit.
 * @returns The number of bytes below 4 GiB.
 *
 * @example
 * ```ts
 * import { q35LowSize } from "./guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * equal(q35LowSize(256 * 2 ** 20), 256 * 2 ** 20);
 * equal(q35LowSize(8 * 2 ** 30), 2 ** 31);
 * ```
 */
export function q35LowSize(size: number, lowLimit?: number): number {
  const limit = lowLimit ??
    (size >= Q35_LOW_LIMIT_SMALL ? Q35_LOW_LIMIT_LARGE : Q35_LOW_LIMIT_SMALL);
  return Math.min(size, limit);
}

/**
 * Guest RAM in one SharedArrayBuffer.
 *
 * Creating it does not touch the pages: the operating system provides zero
 * pages lazily, so an 8 GiB machine costs nothing until the guest writes.
 * Every accessor is bounds-checked against the RAM blocks and throws a
 * `RangeError` for addresses outside RAM; the machine's address space (not
 * this class) turns such accesses into master aborts.
 *
 * @example Create RAM and access it
 * ```ts
 * import { GuestMemory } from "./guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 16 * 1024 * 1024 });
 * ram.write32(0x1000, 0xdeadbeef);
 * equal(ram.read32(0x1000), 0xdeadbeef);
 * equal(ram.read8(0x1000), 0xef);
 * ```
 */
export class GuestMemory {
  /** The shared buffer holding all RAM. */
  readonly buffer: SharedArrayBuffer;
  /** A byte view of the whole buffer. */
  readonly bytes: Uint8Array<SharedArrayBuffer>;
  /** Total RAM size in bytes. */
  readonly size: number;
  /** Bytes of RAM below 4 GiB (guest-physical 0 … lowSize). */
  readonly lowSize: number;
  /** Bytes of RAM above 4 GiB (guest-physical 4 GiB … 4 GiB + highSize). */
  readonly highSize: number;
  /** The RAM blocks in guest-physical order. */
  readonly blocks: readonly RamBlock[];
  #view: DataView<SharedArrayBuffer>;
  #big: BigUint64Array<SharedArrayBuffer> | undefined;
  #signed: BigInt64Array<SharedArrayBuffer> | undefined;

  /**
   * Allocates guest RAM, or attaches to an existing buffer.
   *
   * @param options Size and layout, or a descriptor from {@linkcode GuestMemory.descriptor}.
   */
  constructor(options: GuestMemoryOptions | GuestMemoryDescriptor = {}) {
    if ("buffer" in options) {
      this.buffer = options.buffer;
      this.size = options.buffer.byteLength;
      this.lowSize = options.lowSize;
    } else {
      const size = options.size ?? DEFAULT_RAM_SIZE;
      if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
        throw new RangeError(
          `Invalid RAM size ${String(size)}: must be a positive multiple of 4096`,
        );
      }
      if (options.lowLimit !== undefined) {
        const l = options.lowLimit;
        if (!Number.isSafeInteger(l) || l <= 0 || l % 4096 !== 0 || l > Q35_LOW_LIMIT_SMALL) {
          throw new RangeError(
            `Invalid low RAM limit ${String(l)}: must be a multiple of 4096 up to 0xb0000000`,
          );
        }
      }
      try {
        this.buffer = new SharedArrayBuffer(size);
      } catch (error) {
        throw new RangeError(
          `Cannot allocate ${size} bytes of guest RAM: ${(error as Error).message}`,
        );
      }
      this.size = size;
      this.lowSize = q35LowSize(size, options.lowLimit);
    }
    if (!(this.lowSize > 0 && this.lowSize <= this.size)) {
      throw new RangeError(`Invalid low RAM size ${String(this.lowSize)}`);
    }
    this.highSize = this.size - this.lowSize;
    this.bytes = new Uint8Array(this.buffer);
    this.#view = new DataView(this.buffer);
    const blocks: RamBlock[] = [{ base: 0, size: this.lowSize, offset: 0 }];
    if (this.highSize > 0) {
      blocks.push({ base: FOUR_GIB, size: this.highSize, offset: this.lowSize });
    }
    this.blocks = blocks;
  }

  /**
   * What another agent needs to attach to this RAM.
   *
   * @returns The shared buffer and layout.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const attached = new GuestMemory(ram.descriptor()); // what a device worker does
   * ram.write32(0x100, 0xcafe);
   * equal(attached.read32(0x100), 0xcafe);
   * equal(attached.lowSize, ram.lowSize);
   * ```
   */
  descriptor(): GuestMemoryDescriptor {
    return { buffer: this.buffer, lowSize: this.lowSize };
  }

  /**
   * The first guest-physical address above all RAM.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * equal(ram.top, 1 << 20);
   * const split = new GuestMemory({ size: 2 << 20, lowLimit: 1 << 20 });
   * equal(split.top, 2 ** 32 + (1 << 20)); // the second MiB sits above 4 GiB
   * ```
   */
  get top(): number {
    return this.highSize > 0 ? FOUR_GIB + this.highSize : this.lowSize;
  }

  /**
   * Returns the buffer offset of `address`, or -1 when the `length` bytes
   * starting there are not all inside one RAM block.
   *
   * @param address Guest-physical address.
   * @param length Number of bytes (default 1).
   * @returns The offset into {@linkcode GuestMemory.buffer}, or -1.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 2 << 20, lowLimit: 1 << 20 });
   * equal(ram.offsetOf(0x1000), 0x1000);
   * equal(ram.offsetOf(2 ** 32), 1 << 20); // high RAM follows low RAM in the buffer
   * equal(ram.offsetOf((1 << 20) - 2, 4), -1); // runs past the end of low RAM
   * ```
   */
  offsetOf(address: number, length = 1): number {
    if (address < this.lowSize) {
      return address >= 0 && address + length <= this.lowSize ? address : -1;
    }
    if (address >= FOUR_GIB && address + length <= FOUR_GIB + this.highSize) {
      return address - FOUR_GIB + this.lowSize;
    }
    return -1;
  }

  /**
   * How many bytes from `address` (at most `max`) are RAM in one block.
   *
   * @param address Guest-physical address.
   * @param max Upper bound of the answer.
   * @returns The contiguous RAM length, 0 when `address` is not RAM.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * equal(ram.ramRunLength(0x1000, 16), 16);
   * equal(ram.ramRunLength(0xff000, 0x10000), 0x1000); // RAM ends 4 KiB later
   * equal(ram.ramRunLength(0xfee0_0000, 16), 0);
   * ```
   */
  ramRunLength(address: number, max: number): number {
    if (address >= 0 && address < this.lowSize) return Math.min(max, this.lowSize - address);
    if (address >= FOUR_GIB && address < FOUR_GIB + this.highSize) {
      return Math.min(max, FOUR_GIB + this.highSize - address);
    }
    return 0;
  }

  /**
   * Whether `length` bytes at `address` are all guest RAM (in one block).
   *
   * @param address Guest-physical address.
   * @param length Number of bytes.
   * @returns `true` when the whole range is RAM.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * equal(ram.isRam(0xffffc, 4), true);
   * equal(ram.isRam(0xffffc, 8), false); // the last 4 bytes are past the end
   * equal(ram.isRam(0xfee0_0000), false);
   * ```
   */
  isRam(address: number, length = 1): boolean {
    return this.offsetOf(address, length) >= 0;
  }

  #offset(address: number, length: number, op: string): number {
    if (
      !Number.isSafeInteger(address) || !Number.isSafeInteger(length) || address < 0 || length < 0
    ) {
      checkRange(address, length);
    }
    const offset = this.offsetOf(address, length);
    if (offset < 0) {
      checkRange(address, length);
      throw new RangeError(`Cannot ${op} ${length} bytes at ${hex(address)}: outside guest RAM`);
    }
    return offset;
  }

  /**
   * Reads a byte.
   *
   * @param address Guest-physical address.
   * @returns The byte.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write32(0x10, 0x11223344);
   * equal(ram.read8(0x10), 0x44);
   * equal(ram.read8(0x13), 0x11);
   * ```
   */
  read8(address: number): number {
    return this.bytes[this.#offset(address, 1, "read")]!;
  }
  /**
   * Reads a little-endian 16-bit value.
   *
   * @param address Guest-physical address.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write8(0x10, 0x34);
   * ram.write8(0x11, 0x12);
   * equal(ram.read16(0x10), 0x1234);
   * ```
   */
  read16(address: number): number {
    return this.#view.getUint16(this.#offset(address, 2, "read"), true);
  }
  /**
   * Reads a little-endian 32-bit value.
   *
   * @param address Guest-physical address.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write(0x10, new Uint8Array([1, 2, 3, 4]));
   * equal(ram.read32(0x10), 0x04030201);
   * ```
   */
  read32(address: number): number {
    return this.#view.getUint32(this.#offset(address, 4, "read"), true);
  }
  /**
   * Reads a little-endian 64-bit value.
   *
   * @param address Guest-physical address.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal, throws } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write32(0x10, 0xdeadbeef);
   * ram.write32(0x14, 1);
   * equal(ram.read64(0x10), 0x1_dead_beefn);
   * throws(() => ram.read64(0xffffc), /outside guest RAM/);
   * ```
   */
  read64(address: number): bigint {
    return this.#view.getBigUint64(this.#offset(address, 8, "read"), true);
  }
  /**
   * Writes a byte.
   *
   * @param address Guest-physical address.
   * @param value The byte.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write8(0x10, 0xab);
   * equal(ram.read16(0x10), 0x00ab);
   * ```
   */
  write8(address: number, value: number): void {
    this.bytes[this.#offset(address, 1, "write")] = value;
  }
  /**
   * Writes a little-endian 16-bit value.
   *
   * @param address Guest-physical address.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write16(0x10, 0xbeef);
   * deepEqual([...ram.view(0x10, 2)], [0xef, 0xbe]);
   * ```
   */
  write16(address: number, value: number): void {
    this.#view.setUint16(this.#offset(address, 2, "write"), value, true);
  }
  /**
   * Writes a little-endian 32-bit value.
   *
   * @param address Guest-physical address.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write32(0x10, 0xdeadbeef);
   * equal(ram.read16(0x12), 0xdead);
   * ```
   */
  write32(address: number, value: number): void {
    this.#view.setUint32(this.#offset(address, 4, "write"), value, true);
  }
  /**
   * Writes a little-endian 64-bit value.
   *
   * @param address Guest-physical address.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write64(0x10, -1n); // stored as its 64-bit two's complement
   * equal(ram.read64(0x10), 0xffff_ffff_ffff_ffffn);
   * ```
   */
  write64(address: number, value: bigint): void {
    this.#view.setBigUint64(this.#offset(address, 8, "write"), BigInt.asUintN(64, value), true);
  }

  /**
   * Reads an aligned 64-bit value with `Atomics.load` (for polling a value
   * another thread stores, e.g. a completion-wait semaphore).
   *
   * @param address Guest-physical address, 8-byte aligned.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal, throws } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write64(0x40, 7n);
   * equal(ram.atomicLoad64(0x40), 7n);
   * throws(() => ram.atomicLoad64(0x44), /not 8-byte aligned/);
   * ```
   */
  atomicLoad64(address: number): bigint {
    const offset = this.#offset(address, 8, "read");
    if (offset % 8 !== 0) {
      throw new RangeError(`Cannot atomically read ${hex(address)}: not 8-byte aligned`);
    }
    this.#big ??= new BigUint64Array(this.buffer);
    return Atomics.load(this.#big, offset / 8);
  }

  /**
   * Writes an aligned 64-bit value with `Atomics.store`.
   *
   * @param address Guest-physical address, 8-byte aligned.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.atomicStore64(0x40, 0x1234n);
   * equal(ram.read64(0x40), 0x1234n);
   * ```
   */
  atomicStore64(address: number, value: bigint): void {
    const offset = this.#offset(address, 8, "write");
    if (offset % 8 !== 0) {
      throw new RangeError(`Cannot atomically write ${hex(address)}: not 8-byte aligned`);
    }
    this.#big ??= new BigUint64Array(this.buffer);
    Atomics.store(this.#big, offset / 8, BigInt.asUintN(64, value));
  }

  /**
   * Wakes agents sleeping in {@linkcode GuestMemory.wait64} on `address`.
   *
   * @param address Guest-physical address, 8-byte aligned.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const words = new BigInt64Array(ram.buffer);
   * const { value } = Atomics.waitAsync(words, 0x40 / 8, 0n); // a waiter on 0x40
   * ram.atomicStore64(0x40, 1n);
   * ram.notify64(0x40);
   * equal(await value, "ok");
   * ```
   */
  notify64(address: number): void {
    const offset = this.#offset(address, 8, "notify");
    if (offset % 8 !== 0) return;
    this.#signed ??= new BigInt64Array(this.buffer);
    Atomics.notify(this.#signed, offset / 8);
  }

  /**
   * Sleeps (agents only: it blocks) while the 64-bit value at `address` is
   * `expected`, until a {@linkcode GuestMemory.notify64} or the timeout.
   *
   * @param address Guest-physical address, 8-byte aligned.
   * @param expected The value to wait away from.
   * @param timeoutMs Longest sleep.
   * @returns Why it returned.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.atomicStore64(0x40, 1n);
   * equal(ram.wait64(0x40, 0n, 10), "not-equal"); // already changed: no sleep
   * equal(ram.wait64(0x40, 1n, 1), "timed-out");
   * ```
   */
  wait64(address: number, expected: bigint, timeoutMs: number): "ok" | "not-equal" | "timed-out" {
    const offset = this.#offset(address, 8, "wait on");
    if (offset % 8 !== 0) {
      throw new RangeError(`Cannot wait on ${hex(address)}: not 8-byte aligned`);
    }
    this.#signed ??= new BigInt64Array(this.buffer);
    return Atomics.wait(this.#signed, offset / 8, BigInt.asIntN(64, expected), timeoutMs);
  }

  /**
   * Copies RAM at `address` into `dest`.
   *
   * @param address Guest-physical address.
   * @param dest Destination buffer; its whole length is read.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write32(0x10, 0x04030201);
   * const out = new Uint8Array(4);
   * ram.read(0x10, out);
   * deepEqual([...out], [1, 2, 3, 4]);
   * ```
   */
  read(address: number, dest: Uint8Array): void {
    const offset = this.#offset(address, dest.length, "read");
    dest.set(this.bytes.subarray(offset, offset + dest.length));
  }

  /**
   * Copies `src` into RAM at `address`.
   *
   * @param address Guest-physical address.
   * @param src Source bytes.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal, throws } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write(0x10, new Uint8Array([0x78, 0x56, 0x34, 0x12]));
   * equal(ram.read32(0x10), 0x12345678);
   * throws(() => ram.write(0xffffe, new Uint8Array(4)), /outside guest RAM/);
   * ```
   */
  write(address: number, src: Uint8Array): void {
    const offset = this.#offset(address, src.length, "write");
    this.bytes.set(src, offset);
  }

  /**
   * Fills `length` bytes at `address` with `value`.
   *
   * @param address Guest-physical address.
   * @param length Number of bytes.
   * @param value The byte value.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.fill(0x100, 16, 0xff);
   * equal(ram.read64(0x108), 0xffff_ffff_ffff_ffffn);
   * equal(ram.read8(0x110), 0); // just past the fill
   * ```
   */
  fill(address: number, length: number, value: number): void {
    const offset = this.#offset(address, length, "fill");
    this.bytes.fill(value, offset, offset + length);
  }

  /**
   * A view of `length` bytes of RAM at `address` (no copy).
   *
   * @param address Guest-physical address.
   * @param length Number of bytes.
   * @returns A Uint8Array aliasing guest RAM.
   *
   * @example
   * ```ts
   * import { GuestMemory } from "./guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const v = ram.view(0x100, 4);
   * v[0] = 0x2a;
   * equal(ram.read8(0x100), 0x2a);
   * ram.write8(0x101, 1);
   * equal(v[1], 1); // no copy: the view sees later writes
   * ```
   */
  view(address: number, length: number): Uint8Array<SharedArrayBuffer> {
    const offset = this.#offset(address, length, "map");
    return this.bytes.subarray(offset, offset + length);
  }
}
