/**
 * An event-driven work loop for a consumer that must never block (the main
 * isolate, a device worker): wake messages and local events schedule a run;
 * a run does work until there is none, then sleeps with the `WAITING`
 * protocol of `doorbell.ts`. Long bursts are cut into slices separated by a
 * macrotask, so message handlers (invalidations, I/O) keep running.
 *
 * @module
 */

import { TargetCtrl } from "./layout.ts";

/** Steps per slice before the pump yields to the event loop. */
const SLICE_STEPS = 64;
/** Milliseconds per slice before the pump yields to the event loop. */
const SLICE_MS = 2;

/**
 * The pump.
 *
 * @example
 * ```ts
 * import { WorkPump } from "./work_pump.ts";
 * import { equal } from "node:assert/strict";
 * const ctrl = new Int32Array(new SharedArrayBuffer(64));
 * let pending = 3;
 * let done = 0;
 * const pump = new WorkPump(ctrl, {
 *   step: () => pending > 0 ? (pending--, done++, true) : false,
 *   hasWork: () => pending > 0,
 * });
 * pump.wake();
 * await pump.idle();
 * equal(done, 3);
 * pump.close();
 * ```
 */
export class WorkPump {
  #ctrl: Int32Array;
  #step: () => boolean;
  #hasWork: () => boolean;
  #scheduled = false;
  #closed = false;
  #channel: MessageChannel | undefined;
  #idleWaiters: Array<() => void> = [];
  #fastArmed = false;

  /**
   * Creates the instance.
   *
   * @param ctrl The consumer's control words (for the WAITING flag).
   * @param handlers `step` does one round of work and says whether it did any;
   *   `hasWork` checks cheaply whether a step would do anything.
   */
  constructor(ctrl: Int32Array, handlers: { step: () => boolean; hasWork: () => boolean }) {
    this.#ctrl = ctrl;
    this.#step = handlers.step;
    this.#hasWork = handlers.hasWork;
  }

  /** Schedules a run soon (idempotent). */
  wake(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#run());
  }

  /**
   * Resolves the next time the pump goes to sleep.
   *
   * @returns A promise.
   */
  idle(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.wake();
    });
  }

  /** Stops the pump and releases its channel. */
  close(): void {
    this.#closed = true;
    if (this.#channel) {
      this.#channel.port1.close();
      this.#channel.port2.close();
      this.#channel = undefined;
    }
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  #run(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    const start = performance.now();
    let steps = 0;
    for (;;) {
      Atomics.store(this.#ctrl, TargetCtrl.WAITING, 0);
      if (this.#step()) {
        if (this.#closed) return;
        if (++steps >= SLICE_STEPS || performance.now() - start > SLICE_MS) {
          this.#continueLater();
          return;
        }
        continue;
      }
      // Nothing to do: announce the sleep, then re-check so no wake-up is lost.
      Atomics.store(this.#ctrl, TargetCtrl.WAITING, 1);
      if (!this.#hasWork()) {
        this.#armFastWake();
        break;
      }
    }
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /**
   * Also wait with `Atomics.waitAsync` for the producer's notify: in Deno its
   * wake-up can be lost (the wake message covers that), but when it arrives
   * it is several times faster than the message. One is armed at a time.
   */
  #armFastWake(): void {
    if (this.#fastArmed) return;
    const r = Atomics.waitAsync(this.#ctrl, TargetCtrl.WAITING, 1);
    if (!r.async) return;
    this.#fastArmed = true;
    r.value.then(() => {
      this.#fastArmed = false;
      this.wake();
    });
  }

  #continueLater(): void {
    if (!this.#channel) {
      this.#channel = new MessageChannel();
      this.#channel.port1.onmessage = () => this.#run();
    }
    this.#scheduled = true;
    this.#channel.port2.postMessage(0);
  }
}
