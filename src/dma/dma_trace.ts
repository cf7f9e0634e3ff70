/**
 * The DMA trace: one record per contiguous run a DMA transaction moves (or
 * per fault), written by the device worker into a shared ring and drained by
 * the main isolate. Each record carries the trace epoch before and after its
 * copy, so a checker can order device accesses against guest events (for
 * example "this page was invalidated and poisoned at epoch E").
 *
 * @module
 */

import { MachineBlock, TraceHeader, TraceRecord } from "../shared/layout.ts";
import { FOUR_GIB } from "../util/address.ts";
import type { DmaFaultKind } from "./dma_result.ts";
import type { DmaAccess } from "./mmu.ts";

/** One traced DMA run. */
export interface DmaTraceRecord {
  /** Requester id. */
  readonly requesterId: number;
  /** Read (device reads memory) or write. */
  readonly access: DmaAccess;
  /** IOVA of the run. */
  readonly iova: number;
  /** Physical address of the run (0 for a fault). */
  readonly address: number;
  /** Bytes. */
  readonly length: number;
  /** `ok` or the fault kind. */
  readonly result: "ok" | DmaFaultKind;
  /** Trace epoch before the copy. */
  readonly epochStart: number;
  /** Trace epoch after the copy. */
  readonly epochEnd: number;
  /**
   * Whether the record continues the transaction (one DMA call) of the
   * device's previous record: a transfer whose IOVAs map to physically
   * scattered pages is traced as one record per contiguous run.
   */
  readonly continued?: boolean;
}

const RESULTS: ReadonlyArray<"ok" | DmaFaultKind> = [
  "ok",
  "no-translation",
  "permission",
  "outside-ram",
  "mmio-target",
  "bus-master-disabled",
];

/**
 * Default ring capacity in records.
 *
 * @example
 * ```ts
 * import { DMA_TRACE_CAPACITY, dmaTraceBytes } from "./dma_trace.ts";
 * import { equal } from "node:assert/strict";
 * equal(DMA_TRACE_CAPACITY & (DMA_TRACE_CAPACITY - 1), 0); // a power of two
 * equal(dmaTraceBytes(), dmaTraceBytes(DMA_TRACE_CAPACITY)); // the default ring
 * equal(dmaTraceBytes(), (8 + 65536 * 8) * 4); // header + 8-word records: 2 MiB
 * ```
 */
export const DMA_TRACE_CAPACITY = 1 << 16;

/**
 * Bytes of a trace ring of `capacity` records.
 *
 * @param capacity Records (a power of two).
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import { dmaTraceBytes } from "./dma_trace.ts";
 * import { equal } from "node:assert/strict";
 * equal(dmaTraceBytes(16), (8 + 16 * 8) * 4);
 * ```
 */
export function dmaTraceBytes(capacity: number = DMA_TRACE_CAPACITY): number {
  return (TraceHeader.SIZE + capacity * TraceRecord.WORDS) * 4;
}

/**
 * The device worker's side of a trace ring.
 *
 * @example
 * ```ts
 * import { DmaTraceReader, DmaTraceWriter, dmaTraceBytes } from "./dma_trace.ts";
 * import { equal } from "node:assert/strict";
 * const ring = new SharedArrayBuffer(dmaTraceBytes(16));
 * const machine = new Int32Array(new SharedArrayBuffer(64));
 * const writer = new DmaTraceWriter(ring, machine);
 * writer.record({ requesterId: 0x20, access: "write", iova: 0x1000, address: 0x9000, length: 16, result: "ok" });
 * const [r] = new DmaTraceReader(ring).drain();
 * equal(r?.address, 0x9000);
 * ```
 */
export class DmaTraceWriter {
  #w: Int32Array;
  #machine: Int32Array;
  #mask: number;
  #start = 0;

  /**
   * Creates a writer.
   *
   * @param ring The ring buffer.
   * @param machine The machine block's words (for the trace epoch).
   */
  constructor(ring: SharedArrayBuffer, machine: Int32Array) {
    this.#w = new Int32Array(ring);
    this.#machine = machine;
    this.#mask = (this.#w.length - TraceHeader.SIZE) / TraceRecord.WORDS - 1;
  }

  /**
   * The trace epoch now (read before a copy starts).
   *
   * @example
   * ```ts
   * import { dmaTraceBytes, DmaTraceWriter } from "./dma_trace.ts";
   * import { MachineBlock } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const machine = new Int32Array(new SharedArrayBuffer(64));
   * const writer = new DmaTraceWriter(new SharedArrayBuffer(dmaTraceBytes(16)), machine);
   * Atomics.store(machine, MachineBlock.TRACE_EPOCH, 3); // the main isolate advances it
   * equal(writer.epoch(), 3);
   * ```
   */
  epoch(): number {
    return Atomics.load(this.#machine, MachineBlock.TRACE_EPOCH);
  }

  /**
   * Remembers the epoch at the start of a copy.
   *
   * @example
   * ```ts
   * import { dmaTraceBytes, DmaTraceReader, DmaTraceWriter } from "./dma_trace.ts";
   * import { MachineBlock } from "../shared/layout.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ring = new SharedArrayBuffer(dmaTraceBytes(16));
   * const machine = new Int32Array(new SharedArrayBuffer(64));
   * const writer = new DmaTraceWriter(ring, machine);
   * writer.begin(); // a copy starts at epoch 0
   * Atomics.add(machine, MachineBlock.TRACE_EPOCH, 1); // the guest acts meanwhile
   * const run = { requesterId: 0, access: "read", iova: 0, address: 0, result: "ok" } as const;
   * writer.record({ ...run, length: 8 });
   * const [r] = new DmaTraceReader(ring).drain();
   * deepEqual([r?.epochStart, r?.epochEnd], [0, 1]);
   * ```
   */
  begin(): void {
    this.#start = this.epoch();
  }

  /**
   * Appends a record (epochs: the one remembered by `begin`, and now).
   *
   * @param r The run.
   *
   * @example
   * ```ts
   * import { dmaTraceBytes, DmaTraceReader, DmaTraceWriter } from "./dma_trace.ts";
   * import { equal } from "node:assert/strict";
   * const ring = new SharedArrayBuffer(dmaTraceBytes(16));
   * const writer = new DmaTraceWriter(ring, new Int32Array(new SharedArrayBuffer(64)));
   * const reader = new DmaTraceReader(ring);
   * const fault = { requesterId: 0x20, access: "write", address: 0, length: 0 } as const;
   * writer.record({ ...fault, iova: 2 ** 40, result: "no-translation" });
   * const [r] = reader.drain();
   * equal(r?.iova, 2 ** 40);
   * equal(r?.result, "no-translation");
   * ```
   */
  record(r: Omit<DmaTraceRecord, "epochStart" | "epochEnd">): void {
    const w = this.#w;
    const end = this.epoch();
    const tail = Atomics.load(w, TraceHeader.TAIL);
    if (((tail - Atomics.load(w, TraceHeader.HEAD)) | 0) > this.#mask && !this.#room(tail)) {
      Atomics.add(w, TraceHeader.DROPPED, 1);
      return;
    }
    const at = TraceHeader.SIZE + (tail & this.#mask) * TraceRecord.WORDS;
    const code = Math.max(0, RESULTS.indexOf(r.result));
    w[at + TraceRecord.INFO] = (r.requesterId & 0xffff) | (r.access === "write" ? 1 << 16 : 0) |
      (r.continued ? 1 << 17 : 0) | (code << 24);
    w[at + TraceRecord.IOVA_LO] = r.iova % FOUR_GIB | 0;
    w[at + TraceRecord.IOVA_HI] = Math.floor(r.iova / FOUR_GIB);
    w[at + TraceRecord.PHYS_LO] = r.address % FOUR_GIB | 0;
    w[at + TraceRecord.PHYS_HI] = Math.floor(r.address / FOUR_GIB);
    w[at + TraceRecord.LENGTH] = r.length;
    w[at + TraceRecord.EPOCH_START] = this.#start;
    w[at + TraceRecord.EPOCH_END] = end;
    Atomics.store(w, TraceHeader.TAIL, (tail + 1) | 0);
  }

  /**
   * In lossless mode, waits (a device worker may block on the main isolate)
   * until the consumer has made room; false when it is not lossless or the
   * consumer did not drain within a second.
   */
  #room(tail: number): boolean {
    const w = this.#w;
    if ((Atomics.load(w, TraceHeader.FLAGS) & 1) === 0) return false;
    const deadline = performance.now() + 1000;
    for (;;) {
      const head = Atomics.load(w, TraceHeader.HEAD);
      if (((tail - head) | 0) <= this.#mask) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(w, TraceHeader.HEAD, head, left);
    }
  }
}

/**
 * The main isolate's side: drains records.
 *
 * @example
 * ```ts
 * import { DmaTraceReader, dmaTraceBytes } from "./dma_trace.ts";
 * import { equal } from "node:assert/strict";
 * equal(new DmaTraceReader(new SharedArrayBuffer(dmaTraceBytes(16))).drain().length, 0);
 * ```
 */
export class DmaTraceReader {
  #w: Int32Array;
  #mask: number;

  /**
   * Creates a reader.
   *
   * @param ring The ring buffer.
   * @param options `lossless`: a producer that finds the ring full waits for
   *   a drain (up to a second) instead of dropping the record.
   */
  constructor(ring: SharedArrayBuffer, options: { lossless?: boolean } = {}) {
    this.#w = new Int32Array(ring);
    this.#mask = (this.#w.length - TraceHeader.SIZE) / TraceRecord.WORDS - 1;
    if (options.lossless) Atomics.or(this.#w, TraceHeader.FLAGS, 1);
  }

  /**
   * Records dropped because the ring was full.
   *
   * @example
   * ```ts
   * import { dmaTraceBytes, DmaTraceReader, DmaTraceWriter } from "./dma_trace.ts";
   * import { equal } from "node:assert/strict";
   * const ring = new SharedArrayBuffer(dmaTraceBytes(2)); // room for two records
   * const writer = new DmaTraceWriter(ring, new Int32Array(new SharedArrayBuffer(64)));
   * const reader = new DmaTraceReader(ring);
   * const run = { requesterId: 0, access: "read", address: 0, length: 1, result: "ok" } as const;
   * for (const iova of [0, 1, 2]) writer.record({ ...run, iova });
   * equal(reader.dropped, 1);
   * equal(reader.drain().length, 2);
   * ```
   */
  get dropped(): number {
    return Atomics.load(this.#w, TraceHeader.DROPPED);
  }

  /**
   * Whether records are waiting.
   *
   * @example
   * ```ts
   * import { dmaTraceBytes, DmaTraceReader, DmaTraceWriter } from "./dma_trace.ts";
   * import { equal } from "node:assert/strict";
   * const ring = new SharedArrayBuffer(dmaTraceBytes(16));
   * const writer = new DmaTraceWriter(ring, new Int32Array(new SharedArrayBuffer(64)));
   * const reader = new DmaTraceReader(ring);
   * equal(reader.pending, false);
   * const run = { requesterId: 0, access: "read", iova: 0, address: 0, result: "ok" } as const;
   * writer.record({ ...run, length: 4 });
   * equal(reader.pending, true);
   * reader.drain();
   * equal(reader.pending, false);
   * ```
   */
  get pending(): boolean {
    return Atomics.load(this.#w, TraceHeader.HEAD) !== Atomics.load(this.#w, TraceHeader.TAIL);
  }

  /**
   * Takes every published record.
   *
   * @returns The records, oldest first.
   *
   * @example
   * ```ts
   * import { dmaTraceBytes, DmaTraceReader, DmaTraceWriter } from "./dma_trace.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ring = new SharedArrayBuffer(dmaTraceBytes(16));
   * const writer = new DmaTraceWriter(ring, new Int32Array(new SharedArrayBuffer(64)));
   * const reader = new DmaTraceReader(ring);
   * const run = { requesterId: 0x20, access: "write", length: 4096, result: "ok" } as const;
   * writer.record({ ...run, iova: 0x1000, address: 0x9000 });
   * writer.record({ ...run, iova: 0x2000, address: 0x5000, continued: true }); // same DMA call
   * const records = reader.drain();
   * deepEqual(records.map((r) => r.address), [0x9000, 0x5000]);
   * deepEqual(records.map((r) => r.continued), [false, true]);
   * equal(reader.drain().length, 0); // taken
   * ```
   */
  drain(): DmaTraceRecord[] {
    const w = this.#w;
    const out: DmaTraceRecord[] = [];
    let head = Atomics.load(w, TraceHeader.HEAD);
    const tail = Atomics.load(w, TraceHeader.TAIL);
    while (head !== tail) {
      const at = TraceHeader.SIZE + (head & this.#mask) * TraceRecord.WORDS;
      const info = w[at + TraceRecord.INFO]!;
      out.push({
        requesterId: info & 0xffff,
        access: info & (1 << 16) ? "write" : "read",
        result: RESULTS[(info >>> 24) & 0xff] ?? "ok",
        iova: (w[at + TraceRecord.IOVA_HI]! >>> 0) * FOUR_GIB +
          (w[at + TraceRecord.IOVA_LO]! >>> 0),
        address: (w[at + TraceRecord.PHYS_HI]! >>> 0) * FOUR_GIB +
          (w[at + TraceRecord.PHYS_LO]! >>> 0),
        length: w[at + TraceRecord.LENGTH]! >>> 0,
        epochStart: w[at + TraceRecord.EPOCH_START]!,
        epochEnd: w[at + TraceRecord.EPOCH_END]!,
        continued: (info & (1 << 17)) !== 0,
      });
      head = (head + 1) | 0;
    }
    Atomics.store(w, TraceHeader.HEAD, head);
    Atomics.notify(w, TraceHeader.HEAD); // a lossless producer may wait for room
    return out;
  }
}
