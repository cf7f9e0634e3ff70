/**
 * The machine's virtual clock (QEMU_CLOCK_VIRTUAL). Under qtest it moves only
 * when the client steps it; otherwise it follows the host's monotonic clock.
 *
 * @module
 */

/** A timer on the virtual clock. */
interface Timer {
  readonly deadline: bigint;
  readonly callback: () => void;
}

/**
 * The virtual clock.
 *
 * @example Step the clock under qtest control
 * ```ts
 * import { VirtualClock } from "./virtual_clock.ts";
 * import { equal } from "node:assert/strict";
 * const clock = new VirtualClock({ qtest: true });
 * let fired = false;
 * clock.setTimer(1000n, () => (fired = true));
 * equal(clock.step(), 1000n); // to the next deadline
 * equal(fired, true);
 * equal(clock.step(500n), 1500n);
 * equal(clock.set(100n), 1500n); // never goes back
 * ```
 */
export class VirtualClock {
  #qtest: boolean;
  #now = 0n;
  #origin = performance.now();
  #timers: Timer[] = [];

  /**
   * Creates a clock at time 0.
   *
   * @param options `qtest: true` stops the clock until stepped.
   */
  constructor(options: { qtest?: boolean } = {}) {
    this.#qtest = options.qtest ?? false;
  }

  /**
   * Whether the clock is under qtest control.
   *
   * @example
   * ```ts
   * import { VirtualClock } from "./virtual_clock.ts";
   * import { equal } from "node:assert/strict";
   * equal(new VirtualClock({ qtest: true }).qtest, true);
   * equal(new VirtualClock().qtest, false);
   * ```
   */
  get qtest(): boolean {
    return this.#qtest;
  }

  /**
   * The current virtual time in nanoseconds.
   *
   * @returns Nanoseconds since the machine started.
   *
   * @example
   * ```ts
   * import { VirtualClock } from "./virtual_clock.ts";
   * import { equal, ok } from "node:assert/strict";
   * const stopped = new VirtualClock({ qtest: true });
   * equal(stopped.now(), 0n); // moves only when stepped
   * stopped.step(250n);
   * equal(stopped.now(), 250n);
   * const running = new VirtualClock();
   * const t = running.now();
   * ok(running.now() >= t); // follows the host's monotonic clock
   * ```
   */
  now(): bigint {
    if (!this.#qtest) {
      const real = BigInt(Math.floor((performance.now() - this.#origin) * 1e6));
      if (real > this.#now) this.#now = real;
      this.#fire();
    }
    return this.#now;
  }

  /**
   * Runs `callback` when the clock reaches `deadline`.
   *
   * @param deadline Virtual time in ns.
   * @param callback The callback.
   *
   * @example
   * ```ts
   * import { VirtualClock } from "./virtual_clock.ts";
   * import { deepEqual } from "node:assert/strict";
   * const clock = new VirtualClock({ qtest: true });
   * const fired: string[] = [];
   * clock.setTimer(300n, () => fired.push("late"));
   * clock.setTimer(100n, () => fired.push("early"));
   * clock.set(200n);
   * deepEqual(fired, ["early"]);
   * clock.set(300n);
   * deepEqual(fired, ["early", "late"]);
   * ```
   */
  setTimer(deadline: bigint, callback: () => void): void {
    this.#timers.push({ deadline, callback });
    this.#timers.sort((a, b) => (a.deadline < b.deadline ? -1 : a.deadline > b.deadline ? 1 : 0));
  }

  /**
   * Advances by `ns`, or to the next timer deadline when `ns` is omitted
   * (staying put when no timer is pending, as QEMU does).
   *
   * @param ns Nanoseconds (≥ 0).
   * @returns The new time.
   *
   * @example
   * ```ts
   * import { VirtualClock } from "./virtual_clock.ts";
   * import { equal, throws } from "node:assert/strict";
   * const clock = new VirtualClock({ qtest: true });
   * equal(clock.step(), 0n); // no timer pending: stays put
   * clock.setTimer(40n, () => {});
   * equal(clock.step(), 40n);
   * equal(clock.step(10n), 50n);
   * throws(() => clock.step(-1n), RangeError);
   * ```
   */
  step(ns?: bigint): bigint {
    if (ns === undefined) {
      const next = this.#timers[0];
      return next ? this.set(next.deadline) : this.#now;
    }
    if (ns < 0n) throw new RangeError(`Cannot step the clock by ${ns} ns: must not be negative`);
    return this.set(this.#now + ns);
  }

  /**
   * Advances to `ns` (no-op when already past it), firing due timers.
   *
   * @param ns Target time.
   * @returns The new time.
   *
   * @example
   * ```ts
   * import { VirtualClock } from "./virtual_clock.ts";
   * import { equal } from "node:assert/strict";
   * const clock = new VirtualClock({ qtest: true });
   * let fired = false;
   * clock.setTimer(1_000n, () => (fired = true));
   * equal(clock.set(2_000n), 2_000n);
   * equal(fired, true);
   * equal(clock.set(1_500n), 2_000n); // never goes back
   * ```
   */
  set(ns: bigint): bigint {
    if (ns > this.#now) this.#now = ns;
    this.#fire();
    return this.#now;
  }

  #fire(): void {
    while (this.#timers.length > 0 && this.#timers[0]!.deadline <= this.#now) {
      this.#timers.shift()!.callback();
    }
  }
}
