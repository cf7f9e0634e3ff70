/**
 * DMA pattern injection, for fuzzing: the first time a device (or the IOMMU,
 * walking its tables) reads a byte of guest RAM that nothing has written, the
 * byte is filled with fuzzer data first. A fuzzer then needs no model of
 * where descriptors, PRD tables, page tables, device-table entries or
 * commands live: whatever the device fetches is fuzzer data. Every fill is
 * recorded, so a failing run can be replayed as plain memory writes.
 *
 * One shared block serves the whole machine: a bitmap with one bit per byte
 * of RAM ("written or read already"), up to eight patterns, and a ring of fill
 * records that every device worker and the main isolate append to and the
 * main isolate drains. The same hook checks an oracle on every access: the
 * physical range a DMA touches must be guest RAM.
 *
 * The idea is QEMU's generic-fuzz DMA pattern injection
 * (tests/qtest/fuzz/generic_fuzz.c): a pattern repeats, and one byte of it
 * grows by a stride on every repetition, so a fill of descriptors gets
 * increasing addresses or lengths.
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  INJECT_PATTERN_BASE,
  INJECT_PATTERN_BYTES,
  INJECT_PATTERNS,
  INJECT_RECORD_BASE,
  InjectHeader,
  InjectPattern,
  InjectRecord,
  WORD,
} from "../shared/layout.ts";
import { FOUR_GIB } from "../util/address.ts";
import type { DmaAccess } from "./mmu.ts";

/** One fill pattern. */
export interface InjectionPattern {
  /** The bytes that repeat (1 to 32). */
  readonly data: Uint8Array;
  /** The byte (index into `data`) that changes on every repetition. */
  readonly index: number;
  /** What is added to that byte on every repetition (mod 256). */
  readonly stride: number;
}

/** A fill, as drained by the main isolate. */
export interface InjectedFill {
  /** Guest-physical address of the first filled byte. */
  readonly address: number;
  /** The bytes written there. */
  readonly data: Uint8Array;
  /** The guest operation in progress when the device read them. */
  readonly op: number;
}

/** Options for {@linkcode DmaInjector}. */
export interface DmaInjectorOptions {
  /** An existing block to attach to (a device worker); omit to create one. */
  buffer?: SharedArrayBuffer;
  /** Fill records the ring holds (a power of two; default 4096). */
  capacity?: number;
  /** The most bytes one record fills (default 4096). */
  maxRecordBytes?: number;
  /** The most bytes one access fills; the rest stays as it is (default 64 KiB). */
  maxFillBytes?: number;
}

const DEFAULT_CAPACITY = 4096;

/**
 * Bytes of an injection block for `ramBytes` of guest RAM.
 *
 * @param ramBytes Guest RAM size.
 * @param capacity Fill records (a power of two).
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import { dmaInjectBytes } from "./dma_inject.ts";
 * import { ok } from "node:assert/strict";
 * ok(dmaInjectBytes(1 << 20) > (1 << 20) / 8);
 * ```
 */
export function dmaInjectBytes(ramBytes: number, capacity: number = DEFAULT_CAPACITY): number {
  return (INJECT_RECORD_BASE + capacity * InjectRecord.WORDS + Math.ceil(ramBytes / 32)) * WORD;
}

/**
 * The bytes a pattern produces for a fill of `length` bytes.
 *
 * @param pattern The pattern.
 * @param length Bytes.
 * @returns The fill.
 *
 * @example
 * ```ts
 * import { patternBytes } from "./dma_inject.ts";
 * import { deepEqual } from "node:assert/strict";
 * const p = { data: new Uint8Array([0x10, 0xaa]), index: 0, stride: 1 };
 * deepEqual([...patternBytes(p, 6)], [0x10, 0xaa, 0x11, 0xaa, 0x12, 0xaa]);
 * ```
 */
export function patternBytes(pattern: InjectionPattern, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const n = pattern.data.length;
  if (n === 0) return out;
  for (let j = 0; j < length; j++) {
    const k = j % n;
    let v = pattern.data[k]!;
    if (k === pattern.index) v += pattern.stride * Math.floor(j / n);
    out[j] = v & 0xff;
  }
  return out;
}

/**
 * The injection block, seen from one thread. The main isolate creates it
 * (and passes it to the machine as `dmaInject`); each device worker attaches
 * to its buffer and calls {@linkcode DmaInjector.observe} from its DMA
 * context; the IOMMU's table reads go through
 * {@linkcode DmaInjector.observePhysical}.
 *
 * @example Fill a first read, leave written bytes alone, replay the fill
 * ```ts
 * import { DmaInjector } from "./dma_inject.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { deepEqual, equal } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 1 << 20 });
 * const injector = new DmaInjector(ram);
 * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
 * injector.markWritten(0x1000, 4); // the guest wrote these
 * ram.write32(0x1000, 0x11223344);
 * injector.observe(0x1000, 0x1000, 8, "read"); // a device reads 8 bytes
 * equal(ram.read32(0x1000), 0x11223344);
 * equal(ram.read32(0x1004), 0xabababab);
 * const [fill] = injector.drain();
 * equal(fill?.address, 0x1004);
 * deepEqual([...fill!.data], [0xab, 0xab, 0xab, 0xab]);
 * injector.observe(0x1000, 0x1000, 8, "read"); // not the first read any more
 * equal(injector.drain().length, 0);
 * ```
 */
export class DmaInjector {
  /** The shared block. */
  readonly buffer: SharedArrayBuffer;
  #memory: GuestMemory;
  #w: Int32Array;
  #bytes: Uint8Array;
  #capacity: number;
  #bitmap: number;
  #ramBytes: number;
  #maxRecord: number;
  #maxFill: number;

  /**
   * Creates the block for `memory`, or attaches to an existing one.
   *
   * @param memory Guest RAM (fills are written into it).
   * @param options An existing block, ring capacity, fill limits.
   */
  constructor(memory: GuestMemory, options: DmaInjectorOptions = {}) {
    this.#memory = memory;
    this.#maxRecord = options.maxRecordBytes ?? 4096;
    this.#maxFill = options.maxFillBytes ?? 64 * 1024;
    if (options.buffer) {
      this.buffer = options.buffer;
      this.#w = new Int32Array(this.buffer);
      this.#capacity = Atomics.load(this.#w, InjectHeader.CAPACITY);
      this.#ramBytes = Atomics.load(this.#w, InjectHeader.RAM_BYTES);
    } else {
      const capacity = options.capacity ?? DEFAULT_CAPACITY;
      if (!(capacity > 0 && (capacity & (capacity - 1)) === 0)) {
        throw new RangeError(`Invalid capacity ${capacity}: must be a power of two`);
      }
      this.#capacity = capacity;
      this.#ramBytes = memory.size;
      this.buffer = new SharedArrayBuffer(dmaInjectBytes(memory.size, capacity));
      this.#w = new Int32Array(this.buffer);
      Atomics.store(this.#w, InjectHeader.CAPACITY, capacity);
      Atomics.store(this.#w, InjectHeader.RAM_BYTES, memory.size);
      Atomics.store(this.#w, InjectHeader.ENABLED, 1);
    }
    this.#bytes = new Uint8Array(this.buffer);
    this.#bitmap = INJECT_RECORD_BASE + this.#capacity * InjectRecord.WORDS;
  }

  /**
   * Whether first reads are filled (otherwise accesses are only checked).
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.enabled = false; // only check accesses
   * injector.observe(0x1000, 0x1000, 4, "read");
   * equal(ram.read32(0x1000), 0);
   * injector.enabled = true;
   * injector.observe(0x1000, 0x1000, 4, "read");
   * equal(ram.read32(0x1000), 0xabab_abab);
   * ```
   */
  get enabled(): boolean {
    return Atomics.load(this.#w, InjectHeader.ENABLED) === 1;
  }

  /**
   * Turns the filling of first reads on or off; accesses are checked either way.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const injector = new DmaInjector(new GuestMemory({ size: 1 << 20 }));
   * injector.enabled = false;
   * injector.observe(0xffffc, 0xffffc, 8, "read"); // past the end of RAM: still caught
   * equal(injector.violation?.count, 1);
   * ```
   */
  set enabled(on: boolean) {
    Atomics.store(this.#w, InjectHeader.ENABLED, on ? 1 : 0);
  }

  /**
   * The guest operation in progress; fills carry it.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.op = 3; // the fuzzer runs its fourth operation
   * injector.observe(0x2000, 0x2000, 4, "read");
   * equal(injector.drain()[0]?.op, 3);
   * ```
   */
  get op(): number {
    return Atomics.load(this.#w, InjectHeader.OP);
  }

  /**
   * Sets the guest operation that the following fills belong to.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const injector = new DmaInjector(new GuestMemory({ size: 1 << 20 }));
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.observe(0x1000, 0x1000, 4, "read");
   * injector.op = 1; // the guest's next operation
   * injector.observe(0x2000, 0x2000, 4, "read");
   * deepEqual(injector.drain().map((f) => f.op), [0, 1]);
   * ```
   */
  set op(index: number) {
    Atomics.store(this.#w, InjectHeader.OP, index);
  }

  /**
   * Fills skipped because the record ring was full.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram, { capacity: 1 });
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.observe(0x1000, 0x1000, 4, "read");
   * injector.observe(0x2000, 0x2000, 4, "read"); // the ring holds one record
   * equal(injector.dropped, 1);
   * equal(injector.drain().length, 1);
   * ```
   */
  get dropped(): number {
    return Atomics.load(this.#w, InjectHeader.DROPPED);
  }

  /**
   * The first access whose physical range was not guest RAM, if any: an
   * oracle that must never fire.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * equal(injector.violation, undefined);
   * injector.observe(0xffffc, 0xffffc, 8, "read"); // a DMA run past the end of RAM
   * deepEqual(injector.violation, { address: 0xffffc, length: 8, count: 1 });
   * ```
   */
  get violation(): { address: number; length: number; count: number } | undefined {
    const count = Atomics.load(this.#w, InjectHeader.VIOLATIONS);
    if (count === 0) return undefined;
    return {
      address: (Atomics.load(this.#w, InjectHeader.VIOLATION_HI) >>> 0) * FOUR_GIB +
        (Atomics.load(this.#w, InjectHeader.VIOLATION_LO) >>> 0),
      length: Atomics.load(this.#w, InjectHeader.VIOLATION_LENGTH) >>> 0,
      count,
    };
  }

  /**
   * Sets the patterns (before the machine starts; at most 8, each 1 to 32 bytes).
   *
   * @param patterns The patterns; none means nothing is filled.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, throws } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * injector.setPatterns([{ data: new Uint8Array([0x00, 0x10]), index: 1, stride: 0x10 }]);
   * injector.observe(0x1000, 0x1000, 6, "read");
   * deepEqual([...ram.view(0x1000, 6)], [0, 0x10, 0, 0x20, 0, 0x30]);
   * const long = { data: new Uint8Array(33), index: 0, stride: 0 };
   * throws(() => injector.setPatterns([long]), /Invalid pattern length 33/);
   * ```
   */
  setPatterns(patterns: readonly InjectionPattern[]): void {
    if (patterns.length > INJECT_PATTERNS) {
      throw new RangeError(
        `Too many patterns: ${patterns.length}, the limit is ${INJECT_PATTERNS}`,
      );
    }
    patterns.forEach((p, i) => {
      if (p.data.length < 1 || p.data.length > INJECT_PATTERN_BYTES) {
        throw new RangeError(
          `Invalid pattern length ${p.data.length}: 1 to ${INJECT_PATTERN_BYTES}`,
        );
      }
      const at = INJECT_PATTERN_BASE + i * InjectPattern.WORDS;
      this.#w[at + InjectPattern.LENGTH] = p.data.length;
      this.#w[at + InjectPattern.INDEX] = p.index % p.data.length;
      this.#w[at + InjectPattern.STRIDE] = p.stride & 0xff;
      this.#bytes.set(p.data, (at + InjectPattern.DATA) * WORD);
    });
    Atomics.store(this.#w, InjectHeader.PATTERN_COUNT, patterns.length);
  }

  #pattern(i: number): InjectionPattern {
    const at = INJECT_PATTERN_BASE + i * InjectPattern.WORDS;
    const length = this.#w[at + InjectPattern.LENGTH]!;
    const start = (at + InjectPattern.DATA) * WORD;
    return {
      data: this.#bytes.slice(start, start + length),
      index: this.#w[at + InjectPattern.INDEX]!,
      stride: this.#w[at + InjectPattern.STRIDE]!,
    };
  }

  /**
   * Marks guest-physical memory as written (by the guest, e.g. a qtest
   * `write`): it is never filled. Addresses outside RAM are ignored.
   *
   * @param address Guest-physical address.
   * @param length Bytes.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.markWritten(0x1000, 2); // the guest wrote two bytes
   * injector.observe(0x1000, 0x1000, 4, "read");
   * equal(ram.read32(0x1000), 0xabab_0000); // only the other two were filled
   * ```
   */
  markWritten(address: number, length: number): void {
    let done = 0;
    while (done < length) {
      const run = this.#memory.ramRunLength(address + done, length - done);
      if (run === 0) {
        done++; // not RAM: skip a byte (callers pass small ranges around holes)
        continue;
      }
      const offset = this.#memory.offsetOf(address + done, run);
      this.#claim(offset, offset + run, false);
      done += run;
    }
  }

  /**
   * The DMA observer (see `DmaContextOptions.observe`): called with each
   * contiguous run of RAM a DMA is about to read or write. Checks the run,
   * marks writes, and fills the never-touched bytes of reads.
   *
   * @param address Guest-physical address of the run.
   * @param offset Its offset in the RAM buffer.
   * @param length Bytes.
   * @param access Read or write.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.observe(0x3000, 0x3000, 4, "write"); // a device writes first
   * injector.observe(0x3000, 0x3000, 8, "read");
   * equal(ram.read64(0x3000), 0xabab_abab_0000_0000n);
   * deepEqual(injector.drain().map((f) => f.address), [0x3004]);
   * ```
   */
  observe(address: number, offset: number, length: number, access: DmaAccess): void {
    if (
      !(offset >= 0 && offset + length <= this.#ramBytes) ||
      this.#memory.offsetOf(address, length) !== offset
    ) {
      this.#violation(address, length);
      return;
    }
    if (Atomics.load(this.#w, InjectHeader.ENABLED) === 0) return;
    this.#claim(offset, offset + length, access === "read");
  }

  /**
   * The observer for accesses by guest-physical address (the IOMMU's table
   * reads and its event-log and completion writes, on the main isolate).
   * Ranges outside RAM are left to the memory's own checks.
   *
   * @param address Guest-physical address.
   * @param length Bytes.
   * @param access Read or write.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.observePhysical(0x5000, 8, "read"); // the IOMMU reads a device-table entry
   * equal(ram.read64(0x5000), 0xabab_abab_abab_ababn);
   * injector.observePhysical(0xfee0_0000, 4, "read"); // not RAM: left alone
   * equal(injector.violation, undefined);
   * ```
   */
  observePhysical(address: number, length: number, access: DmaAccess): void {
    if (Atomics.load(this.#w, InjectHeader.ENABLED) === 0) return;
    const offset = this.#memory.offsetOf(address, length);
    if (offset >= 0) this.#claim(offset, offset + length, access === "read");
  }

  #violation(address: number, length: number): void {
    if (Atomics.add(this.#w, InjectHeader.VIOLATIONS, 1) === 0) {
      Atomics.store(this.#w, InjectHeader.VIOLATION_LO, address % FOUR_GIB | 0);
      Atomics.store(this.#w, InjectHeader.VIOLATION_HI, Math.floor(address / FOUR_GIB));
      Atomics.store(this.#w, InjectHeader.VIOLATION_LENGTH, length);
    }
  }

  /**
   * Sets the bitmap bits of [start, end); with `fill`, fills the bytes whose
   * bits this call set (first touches), run by run.
   */
  #claim(start: number, end: number, fill: boolean): void {
    const w = this.#w;
    let run = -1;
    let budget = this.#maxFill;
    let pos = start;
    while (pos < end) {
      const word = Math.floor(pos / 32);
      const bit = pos - word * 32;
      const top = Math.min(32, bit + (end - pos));
      const n = top - bit;
      const mask = n === 32 ? -1 : (((1 << n) - 1) << bit) | 0;
      const old = Atomics.or(w, this.#bitmap + word, mask);
      if (fill) {
        const claimed = mask & ~old;
        if (claimed === mask) {
          if (run < 0) run = pos;
        } else {
          for (let b = bit; b < top; b++) {
            const at = word * 32 + b;
            if (claimed & (1 << b)) {
              if (run < 0) run = at;
            } else if (run >= 0) {
              budget = this.#fillRun(run, at, budget);
              run = -1;
            }
          }
        }
      }
      pos = word * 32 + top;
    }
    if (run >= 0) this.#fillRun(run, end, budget);
  }

  /** Fills [start, end) in records; returns the budget left. */
  #fillRun(start: number, end: number, budget: number): number {
    const count = Atomics.load(this.#w, InjectHeader.PATTERN_COUNT);
    if (count === 0) return budget;
    let at = start;
    while (at < end && budget > 0) {
      const length = Math.min(end - at, this.#maxRecord, budget);
      const seq = this.#reserve();
      if (seq < 0) {
        Atomics.add(this.#w, InjectHeader.DROPPED, 1);
        return 0;
      }
      const p = Atomics.add(this.#w, InjectHeader.FILLS, 1) % count;
      this.#memory.bytes.set(patternBytes(this.#pattern(p), length), at);
      const slot = INJECT_RECORD_BASE + (seq & (this.#capacity - 1)) * InjectRecord.WORDS;
      const w = this.#w;
      w[slot + InjectRecord.OFFSET] = at;
      w[slot + InjectRecord.LENGTH] = length;
      w[slot + InjectRecord.PATTERN] = p;
      w[slot + InjectRecord.OP] = Atomics.load(w, InjectHeader.OP);
      Atomics.store(w, slot + InjectRecord.READY, (seq + 1) | 0);
      at += length;
      budget -= length;
    }
    return budget;
  }

  #reserve(): number {
    const w = this.#w;
    for (;;) {
      const tail = Atomics.load(w, InjectHeader.TAIL);
      if (((tail - Atomics.load(w, InjectHeader.HEAD)) | 0) >= this.#capacity) return -1;
      if (Atomics.compareExchange(w, InjectHeader.TAIL, tail, (tail + 1) | 0) === tail) return tail;
    }
  }

  /**
   * Takes every published fill record (main isolate).
   *
   * @returns The fills, oldest first.
   *
   * @example
   * ```ts
   * import { DmaInjector } from "./dma_inject.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 2 << 20, lowLimit: 1 << 20 });
   * const injector = new DmaInjector(ram);
   * injector.setPatterns([{ data: new Uint8Array([0xab]), index: 0, stride: 0 }]);
   * injector.observe(0x1000, 0x1000, 4, "read");
   * injector.observePhysical(2 ** 32, 2, "read"); // high RAM
   * const fills = injector.drain();
   * deepEqual(fills.map((f) => [f.address, f.data.length]), [[0x1000, 4], [2 ** 32, 2]]);
   * equal(injector.drain().length, 0); // taken
   * ```
   */
  drain(): InjectedFill[] {
    const w = this.#w;
    const out: InjectedFill[] = [];
    let head = Atomics.load(w, InjectHeader.HEAD);
    for (;;) {
      const slot = INJECT_RECORD_BASE + (head & (this.#capacity - 1)) * InjectRecord.WORDS;
      if (Atomics.load(w, slot + InjectRecord.READY) !== ((head + 1) | 0)) break;
      const offset = w[slot + InjectRecord.OFFSET]! >>> 0;
      const length = w[slot + InjectRecord.LENGTH]!;
      const lowSize = this.#memory.lowSize;
      out.push({
        address: offset < lowSize ? offset : FOUR_GIB + offset - lowSize,
        data: patternBytes(this.#pattern(w[slot + InjectRecord.PATTERN]!), length),
        op: w[slot + InjectRecord.OP]!,
      });
      head = (head + 1) | 0;
      Atomics.store(w, InjectHeader.HEAD, head);
    }
    return out;
  }
}
