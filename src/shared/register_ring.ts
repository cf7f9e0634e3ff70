/**
 * The register mailbox: one single-producer single-consumer ring per
 * producer inside each target's block (DESIGN.md, "Shared memory").
 *
 * Writes are posted (the producer does not wait), reads wait for their
 * answer, and because each producer has one FIFO ring per target, a read
 * never passes an earlier write of the same producer. Every request is taken
 * exactly once, so read side effects happen exactly once.
 *
 * Memory ordering: the producer fills a slot with plain stores and publishes
 * it with `Atomics.store` of TAIL; the consumer reads TAIL with `Atomics.load`
 * before reading the slot, so the slot contents happen-before its use. The
 * response words are written before RESP_SEQ is stored, and read after it is
 * loaded, with the same argument.
 *
 * @module
 */

import {
  MAX_PRODUCERS,
  ResponseStatus,
  RING_SLOTS,
  RingHeader,
  ringOffset,
  RingSlot,
  TargetCtrl,
  TargetState,
} from "./layout.ts";

const MASK = RING_SLOTS - 1;

/** A request as the consumer sees it (one object reused for every slot). */
export interface RingRequest {
  /** Producer index. */
  producer: number;
  /** A `RequestOp`. */
  op: number;
  /** Region number (device targets) or address space (main target: 0 MMIO, 1 PIO). */
  region: number;
  /** Offset, or address low word. */
  offsetLo: number;
  /** Address high word (address-routed requests). */
  offsetHi: number;
  /** Access size. */
  size: number;
  /** Write value, low word. */
  valueLo: number;
  /** Write value, high word. */
  valueHi: number;
  /** Sequence number to answer with. */
  seq: number;
}

/**
 * Producer side of one ring.
 *
 * @example Post a write and a read, answer the read
 * ```ts
 * import { RingReader, RingWriter } from "./register_ring.ts";
 * import { RequestOp, TARGET_BLOCK_WORDS, ResponseStatus } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * const block = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
 * const writer = new RingWriter(block, 1);
 * writer.push(RequestOp.Write, 0, 0x10, 0, 4, 7, 0);
 * const seq = writer.push(RequestOp.Read, 0, 0x10, 0, 4, 0, 0);
 * const reader = new RingReader(block);
 * let reg = 0;
 * reader.drain((r) => {
 *   if (r.op === RequestOp.Write) reg = r.valueLo;
 *   else reader.respond(r.producer, r.seq, ResponseStatus.Ok, reg, 0);
 * });
 * equal(writer.answered(seq), true);
 * equal(writer.responseLo, 7);
 * ```
 */
export class RingWriter {
  #block: Int32Array;
  #base: number;
  #tail: number;
  #seq = 0;

  /**
   * Creates the instance.
   *
   * @param block The target block's words.
   * @param producer This producer's index.
   */
  constructor(block: Int32Array, producer: number) {
    this.#block = block;
    this.#base = ringOffset(producer);
    this.#tail = Atomics.load(block, this.#base + RingHeader.TAIL);
    // Resume the ring's sequence, so a new producer on a reused ring never
    // reuses the number of a request still in flight.
    this.#seq = Atomics.load(block, this.#base + RingHeader.NEXT_SEQ);
  }

  /** The word index of the ring's HEAD (wait on it when the ring is full). */
  get headIndex(): number {
    return this.#base + RingHeader.HEAD;
  }

  /** The word index of RESP_SEQ (wait on it for an answer). */
  get responseIndex(): number {
    return this.#base + RingHeader.RESP_SEQ;
  }

  /** The target's state (a `TargetState`). */
  get targetState(): number {
    return Atomics.load(this.#block, TargetCtrl.STATE);
  }

  /** Whether every slot is in use. */
  get full(): boolean {
    return ((this.#tail - Atomics.load(this.#block, this.#base + RingHeader.HEAD)) | 0) >=
      RING_SLOTS;
  }

  /**
   * Fills the next slot and publishes it. The caller must check `full` first.
   *
   * @returns The request's sequence number.
   */
  push(
    op: number,
    region: number,
    offsetLo: number,
    offsetHi: number,
    size: number,
    valueLo: number,
    valueHi: number,
  ): number {
    const b = this.#block;
    const slot = this.#base + RingHeader.SIZE + (this.#tail & MASK) * RingSlot.WORDS;
    const seq = (this.#seq = (this.#seq + 1) | 0);
    Atomics.store(b, this.#base + RingHeader.NEXT_SEQ, seq);
    b[slot + RingSlot.OP] = op;
    b[slot + RingSlot.REGION] = region;
    b[slot + RingSlot.OFFSET_LO] = offsetLo;
    b[slot + RingSlot.OFFSET_HI] = offsetHi;
    b[slot + RingSlot.SIZE] = size;
    b[slot + RingSlot.VAL_LO] = valueLo;
    b[slot + RingSlot.VAL_HI] = valueHi;
    b[slot + RingSlot.SEQ] = seq;
    this.#tail = (this.#tail + 1) | 0;
    Atomics.store(b, this.#base + RingHeader.TAIL, this.#tail);
    return seq;
  }

  /**
   * Whether request `seq` has been answered (or the target failed).
   *
   * @param seq The sequence number from `push`.
   * @returns `true` once the response words hold its answer.
   */
  answered(seq: number): boolean {
    if (Atomics.load(this.#block, this.#base + RingHeader.RESP_SEQ) === seq) return true;
    const state = Atomics.load(this.#block, TargetCtrl.STATE);
    return state === TargetState.Failed || state === TargetState.Stopped;
  }

  /** Status of the last answer (a `ResponseStatus`; Failed when the target died). */
  get responseStatus(): number {
    if (Atomics.load(this.#block, this.#base + RingHeader.RESP_SEQ) !== this.#seq) {
      return ResponseStatus.Failed;
    }
    return Atomics.load(this.#block, this.#base + RingHeader.RESP_STATUS);
  }

  /** Low word of the last answer. */
  get responseLo(): number {
    return Atomics.load(this.#block, this.#base + RingHeader.RESP_LO);
  }

  /** High word of the last answer. */
  get responseHi(): number {
    return Atomics.load(this.#block, this.#base + RingHeader.RESP_HI);
  }
}

/**
 * Consumer side: drains every producer's ring of one target.
 *
 * @example
 * ```ts
 * import { RingReader } from "./register_ring.ts";
 * import { TARGET_BLOCK_WORDS } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * const reader = new RingReader(new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4)));
 * equal(reader.hasWork(), false);
 * ```
 */
export class RingReader {
  #block: Int32Array;
  #request: RingRequest = {
    producer: 0,
    op: 0,
    region: 0,
    offsetLo: 0,
    offsetHi: 0,
    size: 0,
    valueLo: 0,
    valueHi: 0,
    seq: 0,
  };
  #producers: number;

  /**
   * Creates the instance.
   *
   * @param block The target block's words.
   * @param producers How many rings to serve (default all).
   */
  constructor(block: Int32Array, producers = 16) {
    this.#block = block;
    this.#producers = producers;
  }

  /**
   * Whether one producer's ring holds a request.
   *
   * @param producer Producer index.
   * @returns `true` when a request is waiting.
   */
  hasWorkFor(producer: number): boolean {
    const base = ringOffset(producer);
    return Atomics.load(this.#block, base + RingHeader.HEAD) !==
      Atomics.load(this.#block, base + RingHeader.TAIL);
  }

  /** Whether any ring holds a request. */
  hasWork(): boolean {
    const b = this.#block;
    for (let p = 0; p < this.#producers; p++) {
      const base = ringOffset(p);
      if (Atomics.load(b, base + RingHeader.HEAD) !== Atomics.load(b, base + RingHeader.TAIL)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Takes every published request in ring order and hands each to `handler`.
   * The handler must answer reads (and synchronous writes) with `respond`
   * before it returns.
   *
   * @param handler Called once per request with a reused request object.
   * @returns The number of requests handled.
   */
  drain(handler: (request: RingRequest) => void): number {
    const b = this.#block;
    const r = this.#request;
    let count = 0;
    for (let p = 0; p < this.#producers; p++) {
      const base = ringOffset(p);
      let head = Atomics.load(b, base + RingHeader.HEAD);
      const tail = Atomics.load(b, base + RingHeader.TAIL);
      if (head === tail) continue;
      while (head !== tail) {
        const slot = base + RingHeader.SIZE + (head & MASK) * RingSlot.WORDS;
        r.producer = p;
        r.op = b[slot + RingSlot.OP]!;
        r.region = b[slot + RingSlot.REGION]!;
        r.offsetLo = b[slot + RingSlot.OFFSET_LO]!;
        r.offsetHi = b[slot + RingSlot.OFFSET_HI]!;
        r.size = b[slot + RingSlot.SIZE]!;
        r.valueLo = b[slot + RingSlot.VAL_LO]!;
        r.valueHi = b[slot + RingSlot.VAL_HI]!;
        r.seq = b[slot + RingSlot.SEQ]!;
        head = (head + 1) | 0;
        Atomics.store(b, base + RingHeader.HEAD, head);
        handler(r);
        count++;
      }
      Atomics.notify(b, base + RingHeader.HEAD);
    }
    return count;
  }

  /**
   * Takes the next request of one producer's ring, if any.
   *
   * @param producer Producer index.
   * @returns The (reused) request object, or `undefined` when the ring is empty.
   */
  take(producer: number): RingRequest | undefined {
    const b = this.#block;
    const base = ringOffset(producer);
    const head = Atomics.load(b, base + RingHeader.HEAD);
    if (head === Atomics.load(b, base + RingHeader.TAIL)) return undefined;
    const slot = base + RingHeader.SIZE + (head & MASK) * RingSlot.WORDS;
    const r = this.#request;
    r.producer = producer;
    r.op = b[slot + RingSlot.OP]!;
    r.region = b[slot + RingSlot.REGION]!;
    r.offsetLo = b[slot + RingSlot.OFFSET_LO]!;
    r.offsetHi = b[slot + RingSlot.OFFSET_HI]!;
    r.size = b[slot + RingSlot.SIZE]!;
    r.valueLo = b[slot + RingSlot.VAL_LO]!;
    r.valueHi = b[slot + RingSlot.VAL_HI]!;
    r.seq = b[slot + RingSlot.SEQ]!;
    Atomics.store(b, base + RingHeader.HEAD, (head + 1) | 0);
    Atomics.notify(b, base + RingHeader.HEAD);
    return r;
  }

  /**
   * Answers request `seq` of `producer` and wakes a synchronous waiter.
   *
   * @param producer Producer index.
   * @param seq The request's sequence number.
   * @param status A `ResponseStatus`.
   * @param lo Value, low word.
   * @param hi Value, high word.
   */
  respond(producer: number, seq: number, status: number, lo: number, hi: number): void {
    const b = this.#block;
    const base = ringOffset(producer);
    Atomics.store(b, base + RingHeader.RESP_LO, lo);
    Atomics.store(b, base + RingHeader.RESP_HI, hi);
    Atomics.store(b, base + RingHeader.RESP_STATUS, status);
    Atomics.store(b, base + RingHeader.RESP_SEQ, seq);
    Atomics.notify(b, base + RingHeader.RESP_SEQ);
  }
}

/**
 * Marks a target failed and wakes every producer waiting for an answer from
 * it; their reads complete with all-ones.
 *
 * @param block The target block's words.
 *
 * @example
 * ```ts
 * import { failTarget } from "./register_ring.ts";
 * import { TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * const block = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
 * failTarget(block);
 * equal(block[TargetCtrl.STATE], TargetState.Failed);
 * ```
 */
export function failTarget(block: Int32Array): void {
  Atomics.store(block, TargetCtrl.STATE, TargetState.Failed);
  for (let p = 0; p < MAX_PRODUCERS; p++) {
    Atomics.notify(block, ringOffset(p) + RingHeader.RESP_SEQ);
    Atomics.notify(block, ringOffset(p) + RingHeader.HEAD);
  }
}
