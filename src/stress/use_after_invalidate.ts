/**
 * The trace checker for invariant 1 (DESIGN.md): after a COMPLETION_WAIT
 * completes, no device accesses a physical page through a translation an
 * earlier invalidation removed.
 *
 * The guest stamps page events with the trace epoch: `invalid` right after
 * the completion (before it poisons the page), `reuse` right before the page
 * is mapped again. Every DMA trace record carries the epoch before and after
 * its copy. A record that touched page P with `epochEnd ≥ E` (it was still
 * running, or started, after P's invalidation completed) and `epochStart < R`
 * (it began before P was mapped again, so it cannot be using the new mapping)
 * used the removed translation.
 *
 * @module
 */

import type { DmaTraceRecord } from "../dma/dma_trace.ts";

/** A page event (see the remap storm workload). */
export interface PageEpochEvent {
  /** `invalid` or `reuse`. */
  readonly kind: "invalid" | "reuse";
  /** Physical page address. */
  readonly page: number;
  /** Trace epoch. */
  readonly epoch: number;
}

/** A use-after-invalidate found in the trace. */
export interface UseAfterInvalidate {
  /** The device that made the access. */
  readonly device: string;
  /** The record. */
  readonly record: DmaTraceRecord;
  /** The page it touched. */
  readonly page: number;
  /** The epoch at which the page's invalidation had completed. */
  readonly invalidAt: number;
}

const PAGE = 4096;

/**
 * Checks trace records against page events.
 *
 * @param records Trace records with their device ids.
 * @param events Page events in epoch order.
 * @returns Every violation found.
 *
 * @example
 * ```ts
 * import { findUseAfterInvalidate } from "./use_after_invalidate.ts";
 * import { equal } from "node:assert/strict";
 * const events = [{ kind: "invalid" as const, page: 0x5000, epoch: 10 }];
 * const late = { device: "edu0", requesterId: 0x20, access: "write" as const, iova: 0, address: 0x5000, length: 64, result: "ok" as const, epochStart: 9, epochEnd: 10 };
 * equal(findUseAfterInvalidate([late], events).length, 1);
 * equal(findUseAfterInvalidate([{ ...late, epochEnd: 9 }], events).length, 0);
 * ```
 */
export function findUseAfterInvalidate(
  records: Iterable<DmaTraceRecord & { device: string }>,
  events: readonly PageEpochEvent[],
): UseAfterInvalidate[] {
  const intervals = new Map<number, Array<{ invalid: number; reuse: number }>>();
  for (const e of events) {
    const list = intervals.get(e.page) ?? [];
    if (e.kind === "invalid") {
      list.push({ invalid: e.epoch, reuse: Infinity });
      intervals.set(e.page, list);
    } else {
      const open = list.at(-1);
      if (open && open.reuse === Infinity) open.reuse = e.epoch;
    }
  }
  const found: UseAfterInvalidate[] = [];
  for (const r of records) {
    if (r.result !== "ok" || r.length === 0) continue;
    const first = Math.floor(r.address / PAGE);
    const last = Math.floor((r.address + r.length - 1) / PAGE);
    for (let p = first; p <= last; p++) {
      const page = p * PAGE;
      for (const span of intervals.get(page) ?? []) {
        if (r.epochEnd >= span.invalid && r.epochStart < span.reuse) {
          const { device, ...record } = r;
          found.push({ device, record, page, invalidAt: span.invalid });
        }
      }
    }
  }
  return found;
}

/** How many invalidation intervals {@linkcode UseAfterInvalidateChecker} keeps per page. */
const KEEP_INTERVALS = 8;

/**
 * The streaming form of {@linkcode findUseAfterInvalidate}, for runs too
 * long to keep their whole trace: page events are added as they are
 * published, trace records are checked one at a time (the caller checks a
 * record only once every event up to its `epochEnd` has been added). Each
 * page keeps its last few invalidation intervals, so a record that arrives
 * implausibly late may be checked against fewer intervals than it could
 * have been (a missed violation, never a false one).
 *
 * @example
 * ```ts
 * import { UseAfterInvalidateChecker } from "./use_after_invalidate.ts";
 * import { equal } from "node:assert/strict";
 * const checker = new UseAfterInvalidateChecker();
 * checker.addEvent({ kind: "invalid", page: 0x5000, epoch: 10 });
 * checker.addEvent({ kind: "reuse", page: 0x5000, epoch: 20 });
 * const r = { device: "edu0", requesterId: 0x20, access: "write" as const, iova: 0, address: 0x5000, length: 64, result: "ok" as const, epochStart: 9, epochEnd: 10 };
 * equal(checker.check(r).length, 1);
 * equal(checker.check({ ...r, epochStart: 20, epochEnd: 21 }).length, 0);
 * ```
 */
export class UseAfterInvalidateChecker {
  #intervals = new Map<number, Array<{ invalid: number; reuse: number }>>();

  /**
   * Adds a page event (in epoch order for each page).
   *
   * @param event The event; `size` (default 4 KiB) covers several pages.
   *
   * @example
   * ```ts
   * import { UseAfterInvalidateChecker } from "./use_after_invalidate.ts";
   * import { equal } from "node:assert/strict";
   * const checker = new UseAfterInvalidateChecker();
   * checker.addEvent({ kind: "invalid", page: 0x10000, epoch: 5, size: 3 * 4096 });
   * equal(checker.pages, 3);
   * ```
   */
  addEvent(event: PageEpochEvent & { readonly size?: number }): void {
    const first = Math.floor(event.page / PAGE);
    const count = Math.max(1, Math.ceil((event.size ?? PAGE) / PAGE));
    for (let p = first; p < first + count; p++) {
      let list = this.#intervals.get(p);
      if (event.kind === "invalid") {
        if (!list) this.#intervals.set(p, list = []);
        list.push({ invalid: event.epoch, reuse: Infinity });
        if (list.length > KEEP_INTERVALS) list.shift();
      } else {
        const open = list?.at(-1);
        if (open && open.reuse === Infinity) open.reuse = event.epoch;
      }
    }
  }

  /**
   * Checks one trace record.
   *
   * @param record The record with its device id.
   * @returns The violations it shows (one per page and interval).
   *
   * @example
   * ```ts
   * import { UseAfterInvalidateChecker } from "./use_after_invalidate.ts";
   * import { equal } from "node:assert/strict";
   * const checker = new UseAfterInvalidateChecker();
   * checker.addEvent({ kind: "invalid", page: 0x5000, epoch: 10 });
   * const r = { device: "edu0", requesterId: 0x20, access: "read" as const, iova: 0, address: 0x4ff0, length: 32, result: "ok" as const, epochStart: 9, epochEnd: 12 };
   * const [found] = checker.check(r);
   * equal(found?.page, 0x5000); // the second page of the access
   * equal(found?.invalidAt, 10);
   * equal(checker.check({ ...r, result: "permission" }).length, 0); // a faulted access touched nothing
   * ```
   */
  check(record: DmaTraceRecord & { readonly device: string }): UseAfterInvalidate[] {
    if (record.result !== "ok" || record.length === 0) return [];
    const found: UseAfterInvalidate[] = [];
    const first = Math.floor(record.address / PAGE);
    const last = Math.floor((record.address + record.length - 1) / PAGE);
    for (let p = first; p <= last; p++) {
      for (const span of this.#intervals.get(p) ?? []) {
        if (record.epochEnd >= span.invalid && record.epochStart < span.reuse) {
          const { device, ...rest } = record;
          found.push({ device, record: rest, page: p * PAGE, invalidAt: span.invalid });
        }
      }
    }
    return found;
  }

  /**
   * Whether a record touches a page with an invalidation on record (a cheap
   * test before {@linkcode UseAfterInvalidateChecker.check}).
   *
   * @param record The record.
   * @returns `true` when it might be a violation.
   *
   * @example
   * ```ts
   * import { UseAfterInvalidateChecker } from "./use_after_invalidate.ts";
   * import { equal } from "node:assert/strict";
   * const checker = new UseAfterInvalidateChecker();
   * checker.addEvent({ kind: "invalid", page: 0x5000, epoch: 10 });
   * const r = { requesterId: 0x20, access: "write" as const, iova: 0, address: 0x5000, length: 64, result: "ok" as const, epochStart: 9, epochEnd: 10 };
   * equal(checker.touches(r), true);
   * equal(checker.touches({ ...r, address: 0x6000 }), false);
   * equal(checker.touches({ ...r, epochEnd: 9 }), false); // done before the invalidation completed
   * ```
   */
  touches(record: DmaTraceRecord): boolean {
    if (record.result !== "ok" || record.length === 0) return false;
    const last = Math.floor((record.address + record.length - 1) / PAGE);
    for (let p = Math.floor(record.address / PAGE); p <= last; p++) {
      const list = this.#intervals.get(p);
      if (list) {
        for (const span of list) {
          if (record.epochEnd >= span.invalid && record.epochStart < span.reuse) return true;
        }
      }
    }
    return false;
  }

  /**
   * Pages with at least one invalidation on record.
   *
   * @example
   * ```ts
   * import { UseAfterInvalidateChecker } from "./use_after_invalidate.ts";
   * import { equal } from "node:assert/strict";
   * const checker = new UseAfterInvalidateChecker();
   * checker.addEvent({ kind: "reuse", page: 0x5000, epoch: 1 }); // a reuse alone records nothing
   * equal(checker.pages, 0);
   * checker.addEvent({ kind: "invalid", page: 0x5000, epoch: 2 });
   * checker.addEvent({ kind: "invalid", page: 0x5000, epoch: 3 });
   * equal(checker.pages, 1);
   * ```
   */
  get pages(): number {
    return this.#intervals.size;
  }
}
