/**
 * Waking a consumer that waits asynchronously (the main isolate, an idle
 * device worker) after publishing work in shared memory.
 *
 * `Atomics.waitAsync` is not used for this: in Deno its wake-ups can be lost
 * when the event loop is parked (denoland/deno#14786, still seen in 2.9), and
 * it does not keep the event loop alive. Instead the consumer raises a
 * `WAITING` flag, re-checks for work and then awaits a message; a producer
 * that finds the flag raised swaps it to 0 and sends one wake message. With
 * sequentially consistent atomics either the consumer's re-check sees the
 * work or the producer's swap sees the flag, so no wake-up is lost, and the
 * message keeps the consumer's event loop alive.
 *
 * Synchronous waiters (guest agents, a device waiting for a translation) use
 * `Atomics.wait` directly; see {@linkcode spinWait}.
 *
 * @module
 */

import { TargetCtrl } from "./layout.ts";

/** The message a producer sends to wake a consumer. */
export const WAKE_MESSAGE = "wake";

/** Something a wake message can be posted to (a MessagePort or Worker). */
export interface WakeTarget {
  /** Posts a message. */
  postMessage(message: unknown): void;
}

/**
 * Producer side: signals that work was published to the target whose control
 * words are `ctrl`, and sends a wake message if it is asleep.
 *
 * @param ctrl The target's control words.
 * @param wake Where to post the wake message.
 *
 * @example
 * ```ts
 * import { ringDoorbell } from "./doorbell.ts";
 * import { TargetCtrl } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * const ctrl = new Int32Array(new SharedArrayBuffer(64));
 * const sent: unknown[] = [];
 * Atomics.store(ctrl, TargetCtrl.WAITING, 1);
 * ringDoorbell(ctrl, { postMessage: (m) => sent.push(m) });
 * equal(sent.length, 1);
 * ringDoorbell(ctrl, { postMessage: (m) => sent.push(m) });
 * equal(sent.length, 1); // already awake: no second message
 * ```
 */
export function ringDoorbell(ctrl: Int32Array, wake: WakeTarget | undefined): void {
  Atomics.add(ctrl, TargetCtrl.DOORBELL, 1);
  if (
    Atomics.load(ctrl, TargetCtrl.WAITING) === 1 &&
    Atomics.exchange(ctrl, TargetCtrl.WAITING, 0) === 1
  ) {
    // Two wake-ups: the notify is fast when it works; the message always
    // arrives and keeps the consumer's event loop alive.
    Atomics.notify(ctrl, TargetCtrl.WAITING);
    wake?.postMessage(WAKE_MESSAGE);
  }
}

/**
 * Consumer side: an asynchronous wait for "something was published".
 *
 * Route every wake message the consumer receives to {@linkcode DoorbellWaiter.wake}.
 *
 * @example
 * ```ts
 * import { DoorbellWaiter, ringDoorbell } from "./doorbell.ts";
 * import { equal } from "node:assert/strict";
 * const ctrl = new Int32Array(new SharedArrayBuffer(64));
 * const waiter = new DoorbellWaiter(ctrl);
 * let work = false;
 * const done = waiter.wait(() => work);
 * work = true;
 * ringDoorbell(ctrl, { postMessage: () => waiter.wake() });
 * await done;
 * equal(work, true);
 * ```
 */
export class DoorbellWaiter {
  #ctrl: Int32Array;
  #resolve: (() => void) | undefined;

  /**
   * Creates the instance.
   *
   * @param ctrl The consumer's control words.
   */
  constructor(ctrl: Int32Array) {
    this.#ctrl = ctrl;
  }

  /** Wakes a pending {@linkcode DoorbellWaiter.wait} (from a wake message or locally). */
  wake(): void {
    Atomics.store(this.#ctrl, TargetCtrl.WAITING, 0);
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.();
  }

  /**
   * Resolves once `hasWork()` is true or a wake arrives (which may be
   * spurious: callers loop).
   *
   * @param hasWork Checks shared memory for published work.
   * @returns A promise that resolves when there may be work.
   */
  wait(hasWork: () => boolean): Promise<void> {
    Atomics.store(this.#ctrl, TargetCtrl.WAITING, 1);
    if (hasWork()) {
      Atomics.store(this.#ctrl, TargetCtrl.WAITING, 0);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }
}

/** How many times a synchronous waiter polls before it sleeps. */
export const SPIN_LIMIT = 4000;

/**
 * Waits synchronously until `i32[index]` differs from `expected`: spins
 * briefly (most answers arrive within microseconds), then sleeps in
 * `Atomics.wait`. Only for agents allowed to block (DESIGN.md).
 *
 * @param i32 The shared words.
 * @param index Word index.
 * @param expected The value to wait away from.
 * @param timeoutMs Give up after this long.
 * @returns `true` when the value changed or a notify arrived (callers
 *   re-check their condition), `false` on timeout.
 *
 * @example
 * ```ts
 * import { spinWait } from "./doorbell.ts";
 * import { equal } from "node:assert/strict";
 * const w = new Int32Array(new SharedArrayBuffer(8));
 * equal(spinWait(w, 0, 1, 10), true); // already different
 * equal(spinWait(w, 0, 0, 10), false); // times out
 * ```
 */
export function spinWait(
  i32: Int32Array,
  index: number,
  expected: number,
  timeoutMs: number,
): boolean {
  for (let i = 0; i < SPIN_LIMIT; i++) {
    if (Atomics.load(i32, index) !== expected) return true;
  }
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return Atomics.load(i32, index) !== expected;
    // Any wake counts: a notify without a change (a failed target waking its
    // waiters) must reach the caller, which re-checks its own condition.
    if (Atomics.wait(i32, index, expected, left) !== "timed-out") return true;
  }
}
