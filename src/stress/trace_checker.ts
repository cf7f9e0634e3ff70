/**
 * The stress runner's checker of the DMA trace: every run a device moves is
 * checked against the RAM map (a successful run lies inside RAM, and inside
 * the RAM of the agent that owns the device), and, once every page event up
 * to its end epoch is known, against the pages the agents invalidated
 * (invariant 1, see {@linkcode UseAfterInvalidateChecker}).
 *
 * @module
 */

import type { DmaTraceRecord } from "../dma/dma_trace.ts";
import type { StressPageEvent } from "./page_events.ts";
import { UseAfterInvalidateChecker } from "./use_after_invalidate.ts";

/** A violation found in the trace. */
export interface TraceViolation {
  /** Which invariant. */
  readonly kind: "use-after-invalidate" | "out-of-ram";
  /** What happened. */
  readonly message: string;
  /** The device. */
  readonly device: string;
  /** The physical page involved. */
  readonly page: number;
  /** The record, formatted. */
  readonly record: string;
}

/** Options for {@linkcode TraceChecker}. */
export interface TraceCheckerOptions {
  /** Whether `[address, address + length)` is RAM. */
  readonly inRam: (address: number, length: number) => boolean;
  /** Each device's RAM: its runs must stay inside (devices not listed are not checked). */
  readonly owners: ReadonlyMap<string, { readonly base: number; readonly end: number }>;
  /** Records kept per device for histories (default 16). */
  readonly recent?: number;
}

/** Counters of a {@linkcode TraceChecker}. */
export interface TraceCheckerStats {
  /** Records received. */
  records: number;
  /** Records checked against page events. */
  checked: number;
  /** Page events received. */
  events: number;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Formats a trace record on one line.
 *
 * @param r The record.
 * @returns The line.
 *
 * @example
 * ```ts
 * import { formatRecord } from "./trace_checker.ts";
 * import { equal } from "node:assert/strict";
 * equal(
 *   formatRecord({ requesterId: 0x20, access: "write", iova: 0x1000, address: 0x9000, length: 16, result: "ok", epochStart: 3, epochEnd: 4 }),
 *   "write iova 0x1000 -> 0x9000 +16 ok @3..4",
 * );
 * ```
 */
export function formatRecord(r: DmaTraceRecord): string {
  return `${r.access} iova ${hex(r.iova)} -> ${
    hex(r.address)
  } +${r.length} ${r.result} @${r.epochStart}..${r.epochEnd}`;
}

/**
 * The streaming trace checker.
 *
 * @example
 * ```ts
 * import { TraceChecker } from "./trace_checker.ts";
 * import { equal } from "node:assert/strict";
 * const checker = new TraceChecker({
 *   inRam: (a, n) => a + n <= 1 << 20,
 *   owners: new Map([["edu0", { base: 0x8000, end: 0x10000 }]]),
 * });
 * checker.addEvents([{ kind: "invalid", page: 0x9000, size: 4096, epoch: 5 }]);
 * const late = { requesterId: 0x20, access: "write" as const, iova: 0, address: 0x9000, length: 8, result: "ok" as const, epochStart: 4, epochEnd: 6 };
 * equal(checker.addRecords("edu0", [late]).length, 0); // not yet known to be complete
 * equal(checker.advance(7).length, 1);
 * equal(checker.addRecords("edu0", [{ ...late, address: 0x20000, epochEnd: 4 }])[0]?.kind, "out-of-ram");
 * ```
 */
export class TraceChecker {
  /** Counters. */
  readonly stats: TraceCheckerStats = { records: 0, checked: 0, events: 0 };
  #options: TraceCheckerOptions;
  #uai = new UseAfterInvalidateChecker();
  #waiting: DmaTraceRecord[] = [];
  #waitingDevice: string[] = [];
  #recent = new Map<string, DmaTraceRecord[]>();

  /**
   * Creates a checker.
   *
   * @param options The RAM map and the owners of the devices.
   */
  constructor(options: TraceCheckerOptions) {
    this.#options = options;
  }

  /**
   * Adds page events (in each agent's order).
   *
   * @param events The events.
   */
  addEvents(events: readonly StressPageEvent[]): void {
    for (const e of events) this.#uai.addEvent(e);
    this.stats.events += events.length;
  }

  /**
   * Takes a device's new records: checks where they landed now, and keeps
   * them for the check against page events.
   *
   * @param device Device id.
   * @param records Its records.
   * @returns Violations found now.
   */
  addRecords(device: string, records: readonly DmaTraceRecord[]): TraceViolation[] {
    const found: TraceViolation[] = [];
    const owner = this.#options.owners.get(device);
    let recent = this.#recent.get(device);
    if (!recent) this.#recent.set(device, recent = []);
    const keep = this.#options.recent ?? 16;
    for (const r of records) {
      this.stats.records++;
      recent.push(r);
      if (recent.length > keep) recent.shift();
      if (r.result !== "ok" || r.length === 0) continue;
      if (!this.#options.inRam(r.address, r.length)) {
        found.push({
          kind: "out-of-ram",
          message: `${device} moved ${r.length} bytes at ${hex(r.address)}, outside RAM`,
          device,
          page: r.address,
          record: formatRecord(r),
        });
      } else if (owner && (r.address < owner.base || r.address + r.length > owner.end)) {
        found.push({
          kind: "out-of-ram",
          message: `${device} moved ${r.length} bytes at ${
            hex(r.address)
          }, outside its agent's memory ${hex(owner.base)}-${hex(owner.end)}`,
          device,
          page: r.address,
          record: formatRecord(r),
        });
      }
      this.#waiting.push(r);
      this.#waitingDevice.push(device);
    }
    return found;
  }

  #check(r: DmaTraceRecord, device: string): TraceViolation[] {
    return this.#uai.check({ ...r, device }).map((v) => ({
      kind: "use-after-invalidate" as const,
      message: `${v.device} ${r.access === "write" ? "wrote" : "read"} page ${
        hex(v.page)
      } (epochs ${r.epochStart}..${r.epochEnd}) after its invalidation completed at epoch ${v.invalidAt}`,
      device: v.device,
      page: v.page,
      record: formatRecord(r),
    }));
  }

  /**
   * Checks every waiting record that ended before `watermark`: the caller
   * guarantees that every page event with a smaller epoch has been added.
   *
   * @param watermark An epoch.
   * @returns Violations found.
   */
  advance(watermark: number): TraceViolation[] {
    const found: TraceViolation[] = [];
    const still: DmaTraceRecord[] = [];
    const stillDevice: string[] = [];
    const waiting = this.#waiting;
    for (let i = 0; i < waiting.length; i++) {
      const r = waiting[i]!;
      const device = this.#waitingDevice[i]!;
      if (r.epochEnd < watermark) {
        this.stats.checked++;
        if (this.#uai.touches(r)) found.push(...this.#check(r, device));
      } else {
        still.push(r);
        stillDevice.push(device);
      }
    }
    this.#waiting = still;
    this.#waitingDevice = stillDevice;
    return found;
  }

  /**
   * Checks every waiting record (every page event has been added).
   *
   * @returns Violations found.
   */
  finish(): TraceViolation[] {
    return this.advance(Infinity);
  }

  /**
   * The device's most recent records, formatted.
   *
   * @param device Device id.
   * @returns Oldest first.
   */
  recent(device: string): string[] {
    return (this.#recent.get(device) ?? []).map(formatRecord);
  }
}
