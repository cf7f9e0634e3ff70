/**
 * The main isolate's end of a NIC's frame rings: a {@linkcode NetPort} that
 * network backends connect to.
 *
 * @module
 */

import { FrameRing } from "./frame_ring.ts";
import type { NetPort } from "./netdev.ts";

/**
 * A NIC's port on the main isolate. The machine's hub calls `pump()` to move
 * transmitted frames to the backend.
 *
 * @example
 * ```ts
 * import { RingNetPort } from "./ring_net_port.ts";
 * import { FrameRing, frameRingBytes } from "./frame_ring.ts";
 * import { equal } from "node:assert/strict";
 * const tx = new SharedArrayBuffer(frameRingBytes(65536));
 * const rx = new SharedArrayBuffer(frameRingBytes(65536));
 * const port = new RingNetPort("nic0", { tx, rx, wakeDevice: () => {} });
 * const sent: number[] = [];
 * port.onTransmit((f) => sent.push(f.length));
 * new FrameRing(tx).push(new Uint8Array(60)); // the NIC transmits
 * port.pump();
 * equal(sent[0], 60);
 * equal(port.deliver(new Uint8Array(64)), true);
 * equal(new FrameRing(rx).pop()?.length, 64); // the NIC receives
 * ```
 */
export class RingNetPort implements NetPort {
  /** The NIC's device id. */
  readonly id: string;
  #tx: FrameRing;
  #rx: FrameRing;
  #wake: () => void;
  #handler: ((frame: Uint8Array) => void) | undefined;

  /**
   * Creates the port over a NIC's rings.
   *
   * @param id The NIC's id.
   * @param rings The transmit ring (NIC → main), the receive ring (main → NIC)
   *   and how to wake the NIC's worker.
   */
  constructor(
    id: string,
    rings: { tx: SharedArrayBuffer; rx: SharedArrayBuffer; wakeDevice: () => void },
  ) {
    this.id = id;
    this.#tx = new FrameRing(rings.tx);
    this.#rx = new FrameRing(rings.rx);
    this.#wake = rings.wakeDevice;
  }

  /** Frames the NIC could not receive because its queue was full. */
  get dropped(): number {
    return this.#rx.dropped;
  }

  deliver(frame: Uint8Array): boolean {
    const queued = this.#rx.push(frame);
    this.#wake();
    return queued;
  }

  onTransmit(handler: (frame: Uint8Array) => void): void {
    this.#handler = handler;
  }

  /** Whether transmitted frames are waiting. */
  get hasWork(): boolean {
    return this.#tx.readable;
  }

  /**
   * Moves up to `max` transmitted frames to the handler (frames with no
   * handler connected are discarded, as a NIC with no peer).
   *
   * @param max Frames per call (default 64).
   * @returns Whether any frame moved.
   */
  pump(max = 64): boolean {
    let moved = false;
    for (let i = 0; i < max; i++) {
      const frame = this.#tx.pop();
      if (!frame) break;
      moved = true;
      this.#handler?.(frame);
    }
    return moved;
  }
}
