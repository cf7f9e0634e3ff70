/**
 * Delta debugging (after Zeller's ddmin): the smallest list of operations
 * that still makes a test fail, found by removing ever smaller chunks, then
 * single operations, while the failure stays. A search that runs to its end
 * gives a 1-minimal list: removing any one of its operations makes the
 * failure go away.
 *
 * @module
 */

/** Options for {@linkcode minimizeList}. */
export interface MinimizeOptions {
  /** Stop after this many tests (default 400): the result is then smaller, not minimal. */
  maxTests?: number;
  /** Called after each test that kept the failure, with the new size. */
  onProgress?: (size: number, tests: number) => void;
}

/** What {@linkcode minimizeList} found. */
export interface MinimizeResult<T> {
  /** The smallest failing list found. */
  readonly items: T[];
  /** Tests run. */
  readonly tests: number;
  /** Whether the search ran to the end (otherwise `maxTests` stopped it). */
  readonly complete: boolean;
}

/**
 * Shrinks `items` while `fails` keeps returning true. `fails(items)` itself
 * is assumed true.
 *
 * @param items The failing list.
 * @param fails Runs the test on a candidate list.
 * @param options Test budget and progress.
 * @returns The smallest failing list found.
 *
 * @example
 * ```ts
 * import { minimizeList } from "./minimize.ts";
 * import { deepEqual } from "node:assert/strict";
 * const items = Array.from({ length: 50 }, (_, i) => i);
 * // "Fails" whenever 7 and 31 are both present.
 * const r = await minimizeList(items, (c) => Promise.resolve(c.includes(7) && c.includes(31)));
 * deepEqual(r.items, [7, 31]);
 * ```
 */
export async function minimizeList<T>(
  items: readonly T[],
  fails: (candidate: T[]) => Promise<boolean>,
  options: MinimizeOptions = {},
): Promise<MinimizeResult<T>> {
  const maxTests = options.maxTests ?? 400;
  let current = [...items];
  let tests = 0;
  const attempt = async (candidate: T[]): Promise<boolean> => {
    tests++;
    const ok = await fails(candidate);
    if (ok) options.onProgress?.(candidate.length, tests);
    return ok;
  };
  // Complements of chunks of `current.length / n` items, as in ddmin; but a
  // pass goes on from where the last removal happened instead of starting
  // over, and keeps its chunk size (halving it next), which about halves the
  // tests when the failure needs a handful of items spread over the list.
  let n = 2;
  while (current.length >= 2) {
    const chunk = Math.ceil(current.length / n);
    let reduced = false;
    let start = 0;
    while (start < current.length) {
      if (tests >= maxTests) return { items: current, tests, complete: false };
      const complement = [...current.slice(0, start), ...current.slice(start + chunk)];
      if (complement.length > 0 && await attempt(complement)) {
        current = complement;
        reduced = true;
      } else {
        start += chunk;
      }
    }
    if (chunk === 1) {
      // A pass of single removals that removed nothing: 1-minimal.
      if (!reduced) break;
    } else {
      n = Math.max(2, Math.ceil(current.length / Math.ceil(chunk / 2)));
    }
  }
  return { items: current, tests, complete: true };
}
