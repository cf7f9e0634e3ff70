/**
 * A single-producer single-consumer ring of Ethernet frames in shared
 * memory, between a NIC's device worker and the main isolate (one ring per
 * direction). Frames are stored as a 4-byte length followed by the bytes,
 * padded to 4; a frame never wraps (a record that would wrap is preceded by
 * a wrap marker). The producer publishes with `Atomics.store` of TAIL; the
 * consumer frees space with `Atomics.store` of HEAD.
 *
 * @module
 */

/** Header words of a frame ring. */
export const FrameRingHeader = {
  /** Byte offset the consumer reads next (consumer-owned). */
  HEAD: 0,
  /** Byte offset the producer writes next (producer-owned). */
  TAIL: 1,
  /** Frames dropped because the ring was full (producer-owned). */
  DROPPED: 2,
  /** Frames ever written (producer-owned). */
  FRAMES: 3,
  /** Header size in bytes. */
  BYTES: 64,
} as const;

/** The largest frame a ring carries (e1000 with LPE: 16 KiB). */
export const MAX_FRAME = 16384;

const WRAP = 0xffff_ffff;

/**
 * Bytes of a ring with `capacity` bytes of frame space.
 *
 * @param capacity Frame space in bytes (a multiple of 4, ≥ 2 × MAX_FRAME).
 * @returns Buffer size.
 *
 * @example
 * ```ts
 * import { frameRingBytes } from "./frame_ring.ts";
 * import { equal } from "node:assert/strict";
 * equal(frameRingBytes(65536), 65536 + 64);
 * ```
 */
export function frameRingBytes(capacity = 256 * 1024): number {
  return FrameRingHeader.BYTES + capacity;
}

function pad(n: number): number {
  return (n + 3) & ~3;
}

/**
 * One end of a frame ring (use `push` on the producer side, `pop` on the
 * consumer side; each side must be used by one thread only).
 *
 * @example
 * ```ts
 * import { FrameRing, frameRingBytes } from "./frame_ring.ts";
 * import { deepEqual } from "node:assert/strict";
 * const buffer = new SharedArrayBuffer(frameRingBytes(4 * 16384));
 * const tx = new FrameRing(buffer);
 * const rx = new FrameRing(buffer);
 * tx.push(new Uint8Array([1, 2, 3]));
 * deepEqual(rx.pop(), new Uint8Array([1, 2, 3]));
 * ```
 */
export class FrameRing {
  /** The shared buffer. */
  readonly buffer: SharedArrayBuffer;
  #words: Int32Array;
  #bytes: Uint8Array;
  #view: DataView;
  #capacity: number;

  /**
   * Attaches to a ring buffer.
   *
   * @param buffer The ring (from {@linkcode frameRingBytes}).
   */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#words = new Int32Array(buffer, 0, FrameRingHeader.BYTES / 4);
    this.#capacity = buffer.byteLength - FrameRingHeader.BYTES;
    this.#bytes = new Uint8Array(buffer, FrameRingHeader.BYTES, this.#capacity);
    this.#view = new DataView(buffer, FrameRingHeader.BYTES, this.#capacity);
  }

  /** Frames dropped because the ring was full. */
  get dropped(): number {
    return Atomics.load(this.#words, FrameRingHeader.DROPPED);
  }

  /** Frames ever pushed. */
  get frames(): number {
    return Atomics.load(this.#words, FrameRingHeader.FRAMES);
  }

  /** Whether a frame is waiting. */
  get readable(): boolean {
    return Atomics.load(this.#words, FrameRingHeader.HEAD) !==
      Atomics.load(this.#words, FrameRingHeader.TAIL);
  }

  /**
   * Appends a frame (producer side). A full ring drops the frame and counts it.
   *
   * @param frame The frame (at most {@linkcode MAX_FRAME} bytes).
   * @returns Whether it was queued.
   */
  push(frame: Uint8Array): boolean {
    if (frame.length > MAX_FRAME) {
      throw new RangeError(`Cannot queue a frame of ${frame.length} bytes: at most ${MAX_FRAME}`);
    }
    const w = this.#words;
    const cap = this.#capacity;
    const head = Atomics.load(w, FrameRingHeader.HEAD);
    let tail = Atomics.load(w, FrameRingHeader.TAIL);
    const need = 4 + pad(frame.length);
    const used = (tail - head + cap) % cap;
    // Room for the record, a possible wrap marker, and one spare word so that
    // a full ring is not mistaken for an empty one.
    let extra = 0;
    if (tail + need > cap) extra = cap - tail;
    if (used + need + extra + 4 > cap) {
      Atomics.add(w, FrameRingHeader.DROPPED, 1);
      return false;
    }
    if (extra > 0) {
      this.#view.setUint32(tail, WRAP, true);
      tail = 0;
    }
    this.#view.setUint32(tail, frame.length, true);
    this.#bytes.set(frame, tail + 4);
    tail = (tail + need) % cap;
    Atomics.add(w, FrameRingHeader.FRAMES, 1);
    Atomics.store(w, FrameRingHeader.TAIL, tail);
    return true;
  }

  /**
   * Takes the next frame (consumer side).
   *
   * @returns A copy of the frame, or `undefined` when the ring is empty.
   */
  pop(): Uint8Array | undefined {
    const w = this.#words;
    const cap = this.#capacity;
    let head = Atomics.load(w, FrameRingHeader.HEAD);
    const tail = Atomics.load(w, FrameRingHeader.TAIL);
    if (head === tail) return undefined;
    let length = this.#view.getUint32(head, true);
    if (length === WRAP) {
      head = 0;
      length = this.#view.getUint32(0, true);
    }
    const frame = this.#bytes.slice(head + 4, head + 4 + length);
    Atomics.store(w, FrameRingHeader.HEAD, (head + 4 + pad(length)) % cap);
    return frame;
  }
}
