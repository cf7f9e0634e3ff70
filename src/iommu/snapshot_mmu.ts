/**
 * The device worker's MMU: translations from a local cache, backed by the
 * shared IOTLB snapshot, backed by a synchronous miss request to the main
 * isolate; invalidations noticed through a shared generation at every DMA
 * transaction and acknowledged once no transaction or live mapping still
 * uses an invalidated translation.
 *
 * @module
 */

import type { DmaAccess, Mmu, MmuPin, MmuResult, Translation } from "../dma/mmu.ts";
import { ringDoorbell, spinWait, type WakeTarget } from "../shared/doorbell.ts";
import { DteState, SnapshotHeader, TargetCtrl } from "../shared/layout.ts";
import { FOUR_GIB, MAX_ADDRESS } from "../util/address.ts";
import { type SnapshotDte, SnapshotReader } from "./iotlb_snapshot.ts";

/** What an invalidation covers, as sent to workers. */
export type InvalidationScope =
  | { readonly kind: "all" }
  | {
    readonly kind: "domain";
    readonly domain: number;
    readonly start: number;
    readonly end: number;
  }
  | { readonly kind: "device"; readonly rid: number; readonly start: number; readonly end: number };

/** The invalidation message the main isolate sends over the IOMMU channel. */
export interface InvalidationMessage {
  /** Always `invalidate`. */
  readonly type: "invalidate";
  /** The generation this invalidation was published as. */
  readonly gen: number;
  /** What it covers. */
  readonly scope: InvalidationScope;
}

/**
 * A translation prefetch hint a worker sends to the main isolate over the IOMMU channel.
 *
 * @example
 * ```ts
 * import type { PrefetchMessage } from "./snapshot_mmu.ts";
 * const hint: PrefetchMessage = { type: "prefetch", rid: 0x10, iova: 0x4000_0000, length: 1 << 20 };
 * ```
 */
export interface PrefetchMessage {
  /** Always `prefetch`. */
  readonly type: "prefetch";
  /** Requester id. */
  readonly rid: number;
  /** Start of the range. */
  readonly iova: number;
  /** Bytes. */
  readonly length: number;
}

/** Counters a worker keeps about its translations. */
export interface MmuCounters {
  /** Translations served from the local cache or the snapshot. */
  hits: number;
  /** Translations that needed the main isolate. */
  misses: number;
  /** Invalidations acknowledged. */
  invalidations: number;
  /** Faults returned. */
  faults: number;
}

interface LocalEntry {
  readonly iovaBase: number;
  readonly end: number;
  readonly physBase: number;
  readonly perms: number;
}

interface CachedDte {
  readonly record: SnapshotDte;
  /** The entry covering every address (pass-through and identity states). */
  readonly all: LocalEntry | undefined;
  /** The exclusion range as an entry. */
  readonly exclusion: LocalEntry | undefined;
}

interface Pin {
  readonly rid: number;
  readonly domain: number;
  readonly start: number;
  readonly end: number;
  readonly createdGen: number;
  readonly onInvalidate: () => void;
  notified: boolean;
  released: boolean;
}

/** Options for {@linkcode SnapshotMmu}. */
export interface SnapshotMmuOptions {
  /** The snapshot buffer. */
  readonly snapshot: SharedArrayBuffer;
  /** The device's target control words (INV_REQ_GEN, INV_ACK_GEN). */
  readonly ctrl: Int32Array;
  /** The main isolate's control words (to wake it). */
  readonly mainCtrl: Int32Array;
  /** Where wake messages for the main isolate go. */
  readonly toMain: WakeTarget;
  /** How long a miss may wait for the main isolate (ms, default 30000). */
  readonly missTimeoutMs?: number;
  /** Sends a prefetch hint to the main isolate (default: hints are dropped). */
  readonly sendPrefetch?: (message: PrefetchMessage) => void;
}

const ACCESS_BITS: Record<DmaAccess, number> = { read: 1, write: 2 };
/** Slots of the direct-mapped translation cache (a power of two). */
const DIRECT_SLOTS = 1024;
const PAGE = 4096;
const INV_PAGE = 1 / PAGE;

function overlaps(pin: Pin, start: number, end: number): boolean {
  return pin.start <= end && start < pin.end;
}

function scopeCovers(scope: InvalidationScope, pin: Pin): boolean {
  switch (scope.kind) {
    case "all":
      return true;
    case "domain":
      return pin.domain === scope.domain && overlaps(pin, scope.start, scope.end);
    case "device":
      return pin.rid === scope.rid && overlaps(pin, scope.start, scope.end);
  }
}

/**
 * The worker-side MMU.
 *
 * @example A pass-through requester translates to itself
 * ```ts
 * import { SnapshotMmu } from "./snapshot_mmu.ts";
 * import { SnapshotWriter } from "./iotlb_snapshot.ts";
 * import { DteState } from "../shared/layout.ts";
 * import { equal } from "node:assert/strict";
 * const writer = new SnapshotWriter();
 * writer.setDte({ rid: 0x20, state: DteState.PassThrough, perms: 3, domain: 0, exclusion: undefined });
 * const mmu = new SnapshotMmu({
 *   snapshot: writer.buffer, ctrl: new Int32Array(new SharedArrayBuffer(64)),
 *   mainCtrl: new Int32Array(new SharedArrayBuffer(64)), toMain: { postMessage: () => {} },
 * });
 * mmu.beginTransaction();
 * const t = mmu.translate(0x20, 0x1234, 16, "write");
 * equal(t.ok && t.address, 0x1234);
 * ```
 */
export class SnapshotMmu implements Mmu {
  /** Counters. */
  readonly counters: MmuCounters = { hits: 0, misses: 0, invalidations: 0, faults: 0 };
  #reader: SnapshotReader;
  #words: Int32Array;
  #ctrl: Int32Array;
  #mainCtrl: Int32Array;
  #toMain: WakeTarget;
  #missTimeout: number;
  #seenGen: number;
  #ackedGen: number;
  #msgGen: number;
  #local = new Map<number, Map<number, LocalEntry>>();
  #pagesRid = -1;
  #pages: Map<number, LocalEntry> | undefined;
  #directPage = new Float64Array(DIRECT_SLOTS).fill(-1);
  #directRid = new Int32Array(DIRECT_SLOTS);
  #direct: Array<LocalEntry | undefined> = new Array(DIRECT_SLOTS).fill(undefined);
  #dtes = new Map<number, CachedDte>();
  #dteRid = -1;
  #dteCached: CachedDte | undefined;
  #result: { ok: true; address: number; length: number; permissions: number } = {
    ok: true,
    address: 0,
    length: 0,
    permissions: 0,
  };
  #last: LocalEntry | undefined;
  #lastRid = -1;
  #missSeq: number;
  #pins = new Set<Pin>();
  #depth = 0;
  #txn = 0;
  #sendPrefetch: ((message: PrefetchMessage) => void) | undefined;

  /**
   * Creates the MMU over a snapshot.
   *
   * @param options Snapshot, control words and wake target.
   */
  constructor(options: SnapshotMmuOptions) {
    this.#reader = new SnapshotReader(options.snapshot);
    this.#words = this.#reader.words;
    this.#ctrl = options.ctrl;
    this.#mainCtrl = options.mainCtrl;
    this.#toMain = options.toMain;
    this.#sendPrefetch = options.sendPrefetch;
    this.#missTimeout = options.missTimeoutMs ?? 30_000;
    this.#seenGen = Atomics.load(this.#ctrl, TargetCtrl.INV_REQ_GEN);
    this.#ackedGen = Atomics.load(this.#ctrl, TargetCtrl.INV_ACK_GEN);
    this.#msgGen = this.#seenGen;
    this.#missSeq = Atomics.load(this.#words, SnapshotHeader.MISS_REQ_SEQ);
  }

  /**
   * Live pinned mappings.
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { equal } from "node:assert/strict";
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const snapshot = new SnapshotWriter().buffer;
   * const mmu = new SnapshotMmu({ snapshot, ctrl, mainCtrl, toMain: { postMessage() {} } });
   * const pin = mmu.pin(0x20, 0x5000, 0x1000, () => {});
   * equal(mmu.livePins, 1);
   * pin.release();
   * equal(mmu.livePins, 0);
   * ```
   */
  get livePins(): number {
    return this.#pins.size;
  }

  /**
   * Whether an invalidation is waiting to be acknowledged (the host's work
   * loop calls {@linkcode SnapshotMmu.poll} when this is true).
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { TargetCtrl } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const snapshot = new SnapshotWriter().buffer;
   * const mmu = new SnapshotMmu({ snapshot, ctrl, mainCtrl, toMain: { postMessage() {} } });
   * Atomics.store(ctrl, TargetCtrl.INV_REQ_GEN, 1); // main publishes an invalidation
   * equal(mmu.pending, true);
   * mmu.poll(); // nothing pinned: acknowledged at once
   * equal(mmu.pending, false);
   * ```
   */
  get pending(): boolean {
    return Atomics.load(this.#ctrl, TargetCtrl.INV_REQ_GEN) !== this.#ackedGen;
  }

  /**
   * Whether a new invalidation generation has not been looked at yet.
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { TargetCtrl } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const snapshot = new SnapshotWriter().buffer;
   * const mmu = new SnapshotMmu({ snapshot, ctrl, mainCtrl, toMain: { postMessage() {} } });
   * Atomics.store(ctrl, TargetCtrl.INV_REQ_GEN, 1);
   * equal(mmu.needsPoll, true);
   * mmu.beginTransaction(); // a transaction looks at the new generation
   * equal(mmu.needsPoll, false);
   * ```
   */
  get needsPoll(): boolean {
    return Atomics.load(this.#ctrl, TargetCtrl.INV_REQ_GEN) !== this.#seenGen;
  }

  /**
   * Start of a DMA transaction: revalidate against invalidations.
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { TargetCtrl } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const snapshot = new SnapshotWriter().buffer;
   * const mmu = new SnapshotMmu({ snapshot, ctrl, mainCtrl, toMain: { postMessage() {} } });
   * mmu.beginTransaction();
   * equal(Atomics.load(ctrl, TargetCtrl.TXN) & 1, 1); // odd: a copy may be in flight
   * mmu.endTransaction();
   * equal(Atomics.load(ctrl, TargetCtrl.TXN) & 1, 0);
   * ```
   */
  beginTransaction(): void {
    if (this.#depth++ === 0) {
      // Publish "a copy may be in flight" before anything is translated.
      Atomics.store(this.#ctrl, TargetCtrl.TXN, this.#txn = (this.#txn + 1) | 1);
      if (Atomics.load(this.#ctrl, TargetCtrl.INV_REQ_GEN) !== this.#seenGen) this.#catchUp();
    }
  }

  /**
   * End of a DMA transaction: publish the counters, mark no copy in flight.
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState, TargetCtrl } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.setDte({
   *   rid: 0x20, state: DteState.PassThrough, perms: 3, domain: 0, exclusion: undefined,
   * });
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const mmu = new SnapshotMmu({
   *   snapshot: writer.buffer,
   *   ctrl,
   *   mainCtrl,
   *   toMain: { postMessage() {} },
   * });
   * mmu.beginTransaction();
   * mmu.translate(0x20, 0x1000, 4, "read");
   * mmu.endTransaction();
   * equal(Atomics.load(ctrl, TargetCtrl.MMU_HITS), 1); // counters published for main
   * ```
   */
  endTransaction(): void {
    if (this.#depth === 0 || --this.#depth > 0) return;
    const c = this.counters;
    const w = this.#ctrl;
    Atomics.store(w, TargetCtrl.MMU_HITS, c.hits);
    Atomics.store(w, TargetCtrl.MMU_MISSES, c.misses);
    Atomics.store(w, TargetCtrl.MMU_FAULTS, c.faults);
    Atomics.store(w, TargetCtrl.MMU_INVALIDATIONS, c.invalidations);
    Atomics.store(w, TargetCtrl.TXN, this.#txn = (this.#txn + 1) | 0);
  }

  /**
   * Asks the main isolate to fill the snapshot for `[iova, iova + length)`
   * ahead of use (skipped when the range's first page is cached already).
   *
   * @param rid Requester id.
   * @param iova Start of the range.
   * @param length Bytes.
   *
   * @example
   * ```ts
   * import { type PrefetchMessage, SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { deepEqual } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.setDte({
   *   rid: 0x20, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined,
   * });
   * writer.insert({
   *   rid: 0x20, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 3, domain: 1,
   * });
   * const hints: PrefetchMessage[] = [];
   * const mmu = new SnapshotMmu({
   *   snapshot: writer.buffer,
   *   ctrl: new Int32Array(new SharedArrayBuffer(64)),
   *   mainCtrl: new Int32Array(new SharedArrayBuffer(64)),
   *   toMain: { postMessage() {} },
   *   sendPrefetch: (m) => hints.push(m),
   * });
   * mmu.prefetch(0x20, 0x5000, 0x2000); // first page cached: no hint
   * mmu.prefetch(0x20, 0x8000, 0x2000);
   * deepEqual(hints, [{ type: "prefetch", rid: 0x20, iova: 0x8000, length: 0x2000 }]);
   * ```
   */
  prefetch(rid: number, iova: number, length: number): void {
    if (!this.#sendPrefetch || this.#find(rid, iova) !== undefined) return;
    this.#sendPrefetch({ type: "prefetch", rid, iova, length });
  }

  /**
   * Between transactions (idle): acknowledge what can be acknowledged.
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { TargetCtrl } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const snapshot = new SnapshotWriter().buffer;
   * const mmu = new SnapshotMmu({ snapshot, ctrl, mainCtrl, toMain: { postMessage() {} } });
   * Atomics.store(ctrl, TargetCtrl.INV_REQ_GEN, 4);
   * mmu.poll();
   * equal(Atomics.load(ctrl, TargetCtrl.INV_ACK_GEN), 4);
   * equal(mmu.counters.invalidations, 1);
   * ```
   */
  poll(): void {
    this.#catchUp();
  }

  /**
   * Handles an invalidation message from the main isolate.
   *
   * @param message The message.
   *
   * @example A live mapping holds the acknowledgement until it is released
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { TargetCtrl } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const snapshot = new SnapshotWriter().buffer;
   * const mmu = new SnapshotMmu({ snapshot, ctrl, mainCtrl, toMain: { postMessage() {} } });
   * let told = 0;
   * const pin = mmu.pin(0x20, 0x5000, 0x1000, () => told++);
   * Atomics.store(ctrl, TargetCtrl.INV_REQ_GEN, 1);
   * mmu.onInvalidation({ type: "invalidate", gen: 1, scope: { kind: "all" } });
   * equal(told, 1);
   * equal(mmu.pending, true);
   * pin.release();
   * equal(mmu.pending, false);
   * ```
   */
  onInvalidation(message: InvalidationMessage): void {
    for (const pin of this.#pins) {
      if (pin.notified || pin.released || ((pin.createdGen - message.gen) | 0) >= 0) continue;
      if (!scopeCovers(message.scope, pin)) continue;
      pin.notified = true;
      pin.onInvalidate();
    }
    if (((message.gen - this.#msgGen) | 0) > 0) this.#msgGen = message.gen;
    this.#catchUp();
  }

  #catchUp(): void {
    const req = Atomics.load(this.#ctrl, TargetCtrl.INV_REQ_GEN);
    if (req !== this.#seenGen) {
      // Every translation cached here may be one the invalidation removed:
      // drop them all; the snapshot (already cleaned by main) refills us.
      this.#local.clear();
      this.#directPage.fill(-1);
      this.#direct.fill(undefined);
      this.#pages = undefined;
      this.#pagesRid = -1;
      this.#dtes.clear();
      this.#dteCached = undefined;
      this.#dteRid = -1;
      this.#last = undefined;
      this.#lastRid = -1;
      this.#seenGen = req;
    }
    if (req === this.#ackedGen) return;
    for (const pin of this.#pins) {
      if (pin.released || ((pin.createdGen - req) | 0) >= 0) continue;
      // A mapping older than this invalidation: we must know whether the
      // invalidation covers it (from the messages) and, if so, wait for its release.
      if (((this.#msgGen - req) | 0) < 0) return;
      if (pin.notified) return;
    }
    this.#ackedGen = req;
    this.counters.invalidations++;
    Atomics.store(this.#ctrl, TargetCtrl.MMU_INVALIDATIONS, this.counters.invalidations);
    Atomics.store(this.#ctrl, TargetCtrl.INV_ACK_GEN, req);
    ringDoorbell(this.#mainCtrl, this.#toMain);
  }

  /**
   * Translates one access.
   *
   * @param rid Requester id.
   * @param iova The address.
   * @param _length Requested length (answers cover their whole page).
   * @param access Read or write.
   * @returns The translation or the fault.
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { deepEqual } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.setDte({
   *   rid: 0x20, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined,
   * });
   * writer.insert({
   *   rid: 0x20, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 1, domain: 1,
   * });
   * const mmu = new SnapshotMmu({
   *   snapshot: writer.buffer,
   *   ctrl: new Int32Array(new SharedArrayBuffer(64)),
   *   mainCtrl: new Int32Array(new SharedArrayBuffer(64)),
   *   toMain: { postMessage() {} },
   *   missTimeoutMs: 1, // no main isolate answers misses here
   * });
   * deepEqual({ ...mmu.translate(0x20, 0x5010, 4, "read") }, {
   *   ok: true, address: 0x9010, length: 0xff0, permissions: 1,
   * });
   * deepEqual(mmu.translate(0x20, 0x5010, 4, "write"), { ok: false, kind: "no-translation" });
   * ```
   */
  translate(rid: number, iova: number, _length: number, access: DmaAccess): MmuResult {
    const need = ACCESS_BITS[access];
    let entry = this.#last;
    if (
      entry === undefined || rid !== this.#lastRid || iova < entry.iovaBase || iova >= entry.end
    ) {
      entry = this.#find(rid, iova);
    }
    if (entry !== undefined && (entry.perms & need)) {
      this.counters.hits++;
      this.#last = entry;
      this.#lastRid = rid;
      // One result object, reused: the caller reads it before translating again.
      const r = this.#result;
      r.address = entry.physBase + (iova - entry.iovaBase);
      r.length = entry.end - iova;
      r.permissions = entry.perms;
      return r;
    }
    return this.#miss(rid, iova, access);
  }

  /**
   * A translation from the caches only (no request to the main isolate, no
   * fault logged): lets the DMA layer merge physically contiguous pages.
   *
   * @param rid Requester id.
   * @param iova The address.
   * @param access Read or write.
   * @returns The translation, or `undefined` when not cached or not permitted.
   *
   * @example
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.setDte({
   *   rid: 0x20, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined,
   * });
   * writer.insert({
   *   rid: 0x20, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 1, domain: 1,
   * });
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const mmu = new SnapshotMmu({
   *   snapshot: writer.buffer,
   *   ctrl,
   *   mainCtrl,
   *   toMain: { postMessage() {} },
   * });
   * equal(mmu.translateCached(0x20, 0x5800, "read")?.address, 0x9800);
   * equal(mmu.translateCached(0x20, 0x5800, "write"), undefined); // read-only page
   * equal(mmu.translateCached(0x20, 0x7000, "read"), undefined); // not cached: no miss request
   * ```
   */
  translateCached(rid: number, iova: number, access: DmaAccess): Translation | undefined {
    const entry = this.#find(rid, iova);
    if (entry === undefined || !(entry.perms & ACCESS_BITS[access])) return undefined;
    this.counters.hits++;
    const r = this.#result;
    r.address = entry.physBase + (iova - entry.iovaBase);
    r.length = entry.end - iova;
    r.permissions = entry.perms;
    return r;
  }

  #dte(rid: number): CachedDte | undefined {
    if (rid === this.#dteRid && this.#dteCached !== undefined) return this.#dteCached;
    let dte = this.#dtes.get(rid);
    if (dte === undefined) {
      const record = this.#reader.dte(rid);
      if (record === undefined) return undefined;
      const all = record.state === DteState.PassThrough || record.state === DteState.Identity
        ? {
          iovaBase: 0,
          end: MAX_ADDRESS + 1,
          physBase: 0,
          perms: record.state === DteState.PassThrough ? 3 : record.perms,
        }
        : undefined;
      const ex = record.exclusion;
      dte = {
        record,
        all,
        exclusion: ex
          ? { iovaBase: ex.base, end: ex.limit + 1, physBase: ex.base, perms: 3 }
          : undefined,
      };
      this.#dtes.set(rid, dte);
    }
    this.#dteRid = rid;
    this.#dteCached = dte;
    return dte;
  }

  #find(rid: number, iova: number): LocalEntry | undefined {
    const dte = this.#dte(rid);
    if (dte === undefined || dte.record.state === DteState.Unknown) return undefined;
    const ex = dte.exclusion;
    if (ex !== undefined && iova >= ex.iovaBase && iova < ex.end) return ex;
    if (dte.all !== undefined) return dte.all;
    const page = Math.floor(iova * INV_PAGE); // exact: a power-of-two scale
    // A direct-mapped cache in front of the per-requester maps: one typed-array
    // compare on the hot path.
    const slot = page & (DIRECT_SLOTS - 1);
    if (this.#directPage[slot] === page && this.#directRid[slot] === rid) return this.#direct[slot];
    let pages = rid === this.#pagesRid ? this.#pages : this.#local.get(rid);
    let entry = pages?.get(page);
    if (entry === undefined) {
      const t = this.#reader.lookup(rid, iova);
      if (t === undefined) return undefined;
      entry = {
        iovaBase: t.iovaBase,
        end: t.iovaBase + 2 ** t.shift,
        physBase: t.physBase,
        perms: t.perms,
      };
      if (!pages) this.#local.set(rid, pages = new Map());
      pages.set(page, entry);
      this.#pagesRid = rid;
      this.#pages = pages;
    }
    this.#directPage[slot] = page;
    this.#directRid[slot] = rid;
    this.#direct[slot] = entry;
    return entry;
  }

  #miss(rid: number, iova: number, access: DmaAccess): MmuResult {
    this.counters.misses++;
    const w = this.#words;
    const seq = (this.#missSeq = (this.#missSeq + 1) | 0);
    Atomics.store(w, SnapshotHeader.MISS_RID, rid);
    Atomics.store(w, SnapshotHeader.MISS_IOVA_LO, iova % FOUR_GIB | 0);
    Atomics.store(w, SnapshotHeader.MISS_IOVA_HI, Math.floor(iova / FOUR_GIB) | 0);
    Atomics.store(w, SnapshotHeader.MISS_ACCESS, ACCESS_BITS[access]);
    Atomics.store(w, SnapshotHeader.MISS_REQ_SEQ, seq);
    ringDoorbell(this.#mainCtrl, this.#toMain);
    const deadline = performance.now() + this.#missTimeout;
    for (;;) {
      const observed = Atomics.load(w, SnapshotHeader.MISS_RESP_SEQ);
      if (observed === seq) break;
      const left = deadline - performance.now();
      if (left <= 0 || !spinWait(w, SnapshotHeader.MISS_RESP_SEQ, observed, left)) {
        if (Atomics.load(w, SnapshotHeader.MISS_RESP_SEQ) === seq) break;
        this.counters.faults++;
        return { ok: false, kind: "no-translation" };
      }
    }
    const status = Atomics.load(w, SnapshotHeader.MISS_STATUS);
    if (status !== 0) {
      this.counters.faults++;
      return { ok: false, kind: status === 2 ? "permission" : "no-translation" };
    }
    const base = (Atomics.load(w, SnapshotHeader.MISS_BASE_HI) >>> 0) * FOUR_GIB +
      (Atomics.load(w, SnapshotHeader.MISS_BASE_LO) >>> 0);
    const phys = (Atomics.load(w, SnapshotHeader.MISS_PHYS_HI) >>> 0) * FOUR_GIB +
      (Atomics.load(w, SnapshotHeader.MISS_PHYS_LO) >>> 0);
    const length = (Atomics.load(w, SnapshotHeader.MISS_LEN_HI) >>> 0) * FOUR_GIB +
      (Atomics.load(w, SnapshotHeader.MISS_LEN_LO) >>> 0);
    const perms = Atomics.load(w, SnapshotHeader.MISS_PERMS);
    const entry: LocalEntry = { iovaBase: base, end: base + length, physBase: phys, perms };
    this.#last = entry;
    this.#lastRid = rid;
    return {
      ok: true,
      address: phys + (iova - base),
      length: entry.end - iova,
      permissions: perms,
    };
  }

  /**
   * Registers a live mapping.
   *
   * @param rid Requester id.
   * @param iova Start.
   * @param length Length.
   * @param onInvalidate Called once if an invalidation covers it.
   * @returns The pin.
   *
   * @example Only invalidations that cover the mapping call back
   * ```ts
   * import { SnapshotMmu } from "./snapshot_mmu.ts";
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { TargetCtrl } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const ctrl = new Int32Array(new SharedArrayBuffer(64));
   * const mainCtrl = new Int32Array(new SharedArrayBuffer(64));
   * const snapshot = new SnapshotWriter().buffer;
   * const mmu = new SnapshotMmu({ snapshot, ctrl, mainCtrl, toMain: { postMessage() {} } });
   * let told = false;
   * mmu.pin(0x20, 0x5000, 0x1000, () => (told = true));
   * Atomics.store(ctrl, TargetCtrl.INV_REQ_GEN, 1);
   * const scope = { kind: "device", rid: 0x20, start: 0x9000, end: 0x9fff } as const;
   * mmu.onInvalidation({ type: "invalidate", gen: 1, scope });
   * equal(told, false);
   * equal(mmu.pending, false); // acknowledged without waiting for the mapping
   * ```
   */
  pin(rid: number, iova: number, length: number, onInvalidate: () => void): MmuPin {
    const pin: Pin = {
      rid,
      domain: this.#dte(rid)?.record.domain ?? -1,
      start: iova,
      end: iova + length,
      createdGen: this.#seenGen,
      onInvalidate,
      notified: false,
      released: false,
    };
    this.#pins.add(pin);
    return {
      release: () => {
        if (pin.released) return;
        pin.released = true;
        this.#pins.delete(pin);
        this.#catchUp();
      },
    };
  }
}
