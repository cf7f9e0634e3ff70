/**
 * A small seeded pseudo-random generator (mulberry32): the same seed gives
 * the same sequence on every machine, so a failing run can be replayed.
 *
 * @module
 */

/** A seeded random source. */
export interface Random {
  /** The seed it started from. */
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /**
   * An integer in [0, n).
   *
   * @param n Upper bound (exclusive).
   * @returns The integer.
   */
  int(n: number): number;
  /**
   * One element of `items`.
   *
   * @param items A non-empty list.
   * @returns The element.
   */
  pick<T>(items: readonly T[]): T;
}

/**
 * Creates a seeded generator.
 *
 * @param seed Any 32-bit integer.
 * @returns The generator.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./random.ts";
 * import { equal } from "node:assert/strict";
 * const a = seededRandom(42);
 * const b = seededRandom(42);
 * equal(a.int(1000), b.int(1000));
 * ```
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b_79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed: seed >>> 0,
    next,
    int: (n) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]) => {
      if (items.length === 0) throw new RangeError("Cannot pick from an empty list");
      return items[Math.floor(next() * items.length)]!;
    },
  };
}
