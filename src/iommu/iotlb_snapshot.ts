/**
 * The shared IOTLB snapshot of one device worker: a hash table of
 * translations plus device-table records, written only by the main isolate
 * and read by the worker without locks.
 *
 * Every entry and record has its own sequence word (a seqlock). The writer
 * makes it odd, stores the fields, then makes it even again; a reader loads
 * the sequence, the fields, and the sequence again, and uses the entry only
 * if both loads saw the same even value. All accesses are `Atomics`
 * operations, which JavaScript makes sequentially consistent, so a reader
 * either sees a whole entry or rejects it: no torn translation is ever used.
 *
 * @module
 */

import {
  DteRecord,
  SNAPSHOT_BUCKET,
  SNAPSHOT_BUCKETS,
  SNAPSHOT_DTE_BASE,
  SNAPSHOT_ENTRY_BASE,
  SNAPSHOT_MAX_RIDS,
  SNAPSHOT_WORDS,
  SnapshotEntry,
  SnapshotHeader,
} from "../shared/layout.ts";
import { FOUR_GIB } from "../util/address.ts";

const PAGE = 4096;

/** A translation as stored in a snapshot. */
export interface SnapshotTranslation {
  /** Requester id. */
  rid: number;
  /** Page size as a power of two (12 … 52). */
  shift: number;
  /** IOVA of the page base. */
  iovaBase: number;
  /** Physical address of the page base. */
  physBase: number;
  /** Permission bits (1 read, 2 write). */
  perms: number;
  /** DomainID the translation is tagged with. */
  domain: number;
}

/** A device-table record as stored in a snapshot. */
export interface SnapshotDte {
  /** Requester id. */
  rid: number;
  /** A `DteState`. */
  state: number;
  /** Permissions for the `Identity` state. */
  perms: number;
  /** DomainID. */
  domain: number;
  /** Exclusion range (inclusive byte bounds), when it applies to this requester. */
  exclusion: { base: number; limit: number } | undefined;
}

/**
 * The bucket a (requester, page) key lives in.
 *
 * @param rid Requester id.
 * @param shift Page shift.
 * @param pageLo 4 KiB page number of the page base, low word.
 * @param pageHi High word.
 * @returns The bucket index.
 *
 * @example
 * ```ts
 * import { snapshotBucket } from "./iotlb_snapshot.ts";
 * import { ok } from "node:assert/strict";
 * const b = snapshotBucket(0x20, 12, 5, 0);
 * ok(b >= 0 && b < 1024);
 * ```
 */
export function snapshotBucket(rid: number, shift: number, pageLo: number, pageHi: number): number {
  let h = Math.imul(pageLo ^ 0x9e37_79b9, 0x85eb_ca6b);
  h ^= Math.imul(pageHi + (shift << 20) + (rid << 4), 0xc2b2_ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b_3c6d);
  h ^= h >>> 13;
  return h & (SNAPSHOT_BUCKETS - 1);
}

function split(page: number): [number, number] {
  return [page % FOUR_GIB | 0, Math.floor(page / FOUR_GIB) | 0];
}

function join(lo: number, hi: number): number {
  return (hi >>> 0) * FOUR_GIB + (lo >>> 0);
}

/**
 * The main isolate's side: publishes translations and records, keeps a
 * shadow index to find them again for invalidation.
 *
 * @example
 * ```ts
 * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
 * import { SNAPSHOT_WORDS } from "../shared/layout.ts";
 * import { equal } from "node:assert/strict";
 * const buffer = new SharedArrayBuffer(SNAPSHOT_WORDS * 4);
 * const writer = new SnapshotWriter(buffer);
 * writer.insert({ rid: 0x20, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 3, domain: 7 });
 * const hit = new SnapshotReader(buffer).lookup(0x20, 0x5123);
 * equal(hit?.physBase, 0x9000);
 * writer.remove((t) => t.domain === 7);
 * equal(new SnapshotReader(buffer).lookup(0x20, 0x5123), undefined);
 * ```
 */
export class SnapshotWriter {
  /** The shared buffer. */
  readonly buffer: SharedArrayBuffer;
  #words: Int32Array;
  #index = new Map<string, number>();
  #entries = new Map<number, SnapshotTranslation>();
  #victim = new Uint8Array(SNAPSHOT_BUCKETS);
  #shiftCounts = new Map<number, number>();

  /**
   * Creates a writer over `buffer` (a new empty snapshot when omitted).
   *
   * @param buffer A buffer of {@linkcode SNAPSHOT_WORDS} words.
   */
  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(SNAPSHOT_WORDS * 4)) {
    this.buffer = buffer;
    this.#words = new Int32Array(buffer);
    for (let i = 0; i < SNAPSHOT_MAX_RIDS; i++) {
      Atomics.store(this.#words, SNAPSHOT_DTE_BASE + i * DteRecord.WORDS + DteRecord.RID, -1);
    }
  }

  /**
   * Number of translations published.
   *
   * @example
   * ```ts
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * equal(writer.size, 0);
   * writer.insert({
   *   rid: 0x20, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 3, domain: 7,
   * });
   * writer.insert({
   *   rid: 0x20, shift: 12, iovaBase: 0x6000, physBase: 0xa000, perms: 3, domain: 7,
   * });
   * equal(writer.size, 2);
   * ```
   */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The published translations (a copy).
   *
   * @example
   * ```ts
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * const t = { rid: 0x20, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 1, domain: 7 };
   * writer.insert(t);
   * deepEqual(writer.translations(), [t]);
   * writer.translations().pop(); // a copy: the snapshot keeps its entry
   * equal(writer.size, 1);
   * ```
   */
  translations(): SnapshotTranslation[] {
    return [...this.#entries.values()];
  }

  /**
   * Publishes a translation (replacing one with the same key, evicting a
   * bucket neighbour if the bucket is full).
   *
   * @param t The translation.
   *
   * @example A second insert of the same page replaces the first
   * ```ts
   * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.insert({
   *   rid: 0x20, shift: 21, iovaBase: 0x20_0000, physBase: 0x80_0000, perms: 3, domain: 1,
   * });
   * writer.insert({
   *   rid: 0x20, shift: 21, iovaBase: 0x20_0000, physBase: 0xc0_0000, perms: 1, domain: 1,
   * });
   * equal(writer.size, 1);
   * const hit = new SnapshotReader(writer.buffer).lookup(0x20, 0x21_2345);
   * equal(hit?.physBase, 0xc0_0000);
   * equal(hit?.perms, 1);
   * ```
   */
  insert(t: SnapshotTranslation): void {
    const page = t.iovaBase / PAGE;
    const [pageLo, pageHi] = split(page);
    const key = `${t.rid}:${t.shift}:${page}`;
    let slot = this.#index.get(key);
    if (slot === undefined) {
      const bucket = snapshotBucket(t.rid, t.shift, pageLo, pageHi);
      const first = bucket * SNAPSHOT_BUCKET;
      for (let i = 0; i < SNAPSHOT_BUCKET; i++) {
        if (!this.#entries.has(first + i)) {
          slot = first + i;
          break;
        }
      }
      if (slot === undefined) {
        slot = first + (this.#victim[bucket]! % SNAPSHOT_BUCKET);
        this.#victim[bucket] = (this.#victim[bucket]! + 1) & 0xff;
        this.#clear(slot);
      }
      this.#index.set(key, slot);
    } else {
      this.#untrackShift(this.#entries.get(slot)!.shift);
    }
    this.#entries.set(slot, { ...t });
    this.#trackShift(t.shift);
    const w = this.#words;
    const e = SNAPSHOT_ENTRY_BASE + slot * SnapshotEntry.WORDS;
    const seq = Atomics.load(w, e + SnapshotEntry.SEQ);
    Atomics.store(w, e + SnapshotEntry.SEQ, (seq | 1) + (seq & 1 ? 2 : 0));
    const [physLo, physHi] = split(t.physBase / PAGE);
    Atomics.store(w, e + SnapshotEntry.RID, t.rid);
    Atomics.store(w, e + SnapshotEntry.SHIFT, t.shift);
    Atomics.store(w, e + SnapshotEntry.PAGE_LO, pageLo);
    Atomics.store(w, e + SnapshotEntry.PAGE_HI, pageHi);
    Atomics.store(w, e + SnapshotEntry.PHYS_LO, physLo);
    Atomics.store(w, e + SnapshotEntry.PHYS_HI, physHi);
    Atomics.store(w, e + SnapshotEntry.PERMS_DOMAIN, (t.perms & 3) | ((t.domain & 0xffff) << 16));
    Atomics.store(w, e + SnapshotEntry.SEQ, (Atomics.load(w, e + SnapshotEntry.SEQ) + 1) | 0);
  }

  /**
   * Removes every translation for which `match` returns true.
   *
   * @param match The filter.
   * @returns How many were removed.
   *
   * @example
   * ```ts
   * import { SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.insert({
   *   rid: 0x20, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 3, domain: 1,
   * });
   * writer.insert({
   *   rid: 0x20, shift: 12, iovaBase: 0x6000, physBase: 0xa000, perms: 3, domain: 1,
   * });
   * writer.insert({
   *   rid: 0x28, shift: 12, iovaBase: 0x5000, physBase: 0xb000, perms: 3, domain: 2,
   * });
   * equal(writer.remove((t) => t.domain === 1), 2);
   * equal(writer.remove((t) => t.domain === 1), 0);
   * equal(writer.size, 1);
   * ```
   */
  remove(match: (t: SnapshotTranslation) => boolean): number {
    let removed = 0;
    for (const [slot, t] of [...this.#entries]) {
      if (match(t)) {
        this.#clear(slot);
        removed++;
      }
    }
    return removed;
  }

  #clear(slot: number): void {
    const t = this.#entries.get(slot);
    if (!t) return;
    this.#entries.delete(slot);
    this.#index.delete(`${t.rid}:${t.shift}:${t.iovaBase / PAGE}`);
    this.#untrackShift(t.shift);
    const w = this.#words;
    const e = SNAPSHOT_ENTRY_BASE + slot * SnapshotEntry.WORDS;
    const seq = Atomics.load(w, e + SnapshotEntry.SEQ);
    Atomics.store(w, e + SnapshotEntry.SEQ, (seq + 1) | 0);
    Atomics.store(w, e + SnapshotEntry.RID, -1);
    Atomics.store(w, e + SnapshotEntry.SEQ, (seq + 2) | 0);
  }

  #trackShift(shift: number): void {
    const n = (this.#shiftCounts.get(shift) ?? 0) + 1;
    this.#shiftCounts.set(shift, n);
    if (n === 1) this.#publishShifts();
  }

  #untrackShift(shift: number): void {
    const n = (this.#shiftCounts.get(shift) ?? 1) - 1;
    if (n === 0) this.#shiftCounts.delete(shift);
    else this.#shiftCounts.set(shift, n);
    if (n === 0) this.#publishShifts();
  }

  #publishShifts(): void {
    let lo = 0;
    let hi = 0;
    for (const shift of this.#shiftCounts.keys()) {
      if (shift < 44) lo |= 1 << (shift - 12);
      else hi |= 1 << (shift - 44);
    }
    Atomics.store(this.#words, SnapshotHeader.SHIFT_MASK_LO, lo);
    Atomics.store(this.#words, SnapshotHeader.SHIFT_MASK_HI, hi);
  }

  /**
   * Publishes (or replaces) the device-table record of `record.rid`.
   *
   * @param record The record.
   *
   * @example
   * ```ts
   * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * const reader = new SnapshotReader(writer.buffer);
   * writer.setDte({
   *   rid: 8, state: DteState.Translate, perms: 0, domain: 5, exclusion: undefined,
   * });
   * equal(reader.dte(8)?.state, DteState.Translate);
   * writer.setDte({ rid: 8, state: DteState.Identity, perms: 1, domain: 5, exclusion: undefined });
   * equal(reader.dte(8)?.state, DteState.Identity); // replaced, not added
   * ```
   */
  setDte(record: SnapshotDte): void {
    const w = this.#words;
    let slot = -1;
    let free = -1;
    for (let i = 0; i < SNAPSHOT_MAX_RIDS; i++) {
      const rid = Atomics.load(w, SNAPSHOT_DTE_BASE + i * DteRecord.WORDS + DteRecord.RID);
      if (rid === record.rid) slot = i;
      if (rid === -1 && free < 0) free = i;
    }
    if (slot < 0) slot = free;
    if (slot < 0) {
      throw new RangeError(
        `Cannot publish more than ${SNAPSHOT_MAX_RIDS} requester ids in one snapshot`,
      );
    }
    const r = SNAPSHOT_DTE_BASE + slot * DteRecord.WORDS;
    const seq = Atomics.load(w, r + DteRecord.SEQ);
    Atomics.store(w, r + DteRecord.SEQ, (seq | 1) + (seq & 1 ? 2 : 0));
    Atomics.store(w, r + DteRecord.RID, record.rid);
    Atomics.store(w, r + DteRecord.STATE, record.state);
    Atomics.store(w, r + DteRecord.PERMS, record.perms);
    Atomics.store(w, r + DteRecord.DOMAIN, record.domain);
    const ex = record.exclusion;
    Atomics.store(w, r + DteRecord.EXCL, ex ? 1 : 0);
    const [bLo, bHi] = split(ex ? Math.floor(ex.base / PAGE) : 0);
    const [lLo, lHi] = split(ex ? Math.floor(ex.limit / PAGE) : 0);
    Atomics.store(w, r + DteRecord.EXCL_BASE_LO, bLo);
    Atomics.store(w, r + DteRecord.EXCL_BASE_HI, bHi);
    Atomics.store(w, r + DteRecord.EXCL_LIMIT_LO, lLo);
    Atomics.store(w, r + DteRecord.EXCL_LIMIT_HI, lHi);
    Atomics.store(w, r + DteRecord.SEQ, (Atomics.load(w, r + DteRecord.SEQ) + 1) | 0);
  }

  /**
   * Withdraws the device-table record of `rid` (its state becomes unknown).
   *
   * @param rid Requester id.
   *
   * @example
   * ```ts
   * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.setDte({
   *   rid: 8, state: DteState.PassThrough, perms: 3, domain: 0, exclusion: undefined,
   * });
   * writer.clearDte(8);
   * equal(new SnapshotReader(writer.buffer).dte(8), undefined);
   * ```
   */
  clearDte(rid: number): void {
    const w = this.#words;
    for (let i = 0; i < SNAPSHOT_MAX_RIDS; i++) {
      const r = SNAPSHOT_DTE_BASE + i * DteRecord.WORDS;
      if (Atomics.load(w, r + DteRecord.RID) !== rid) continue;
      const seq = Atomics.load(w, r + DteRecord.SEQ);
      Atomics.store(w, r + DteRecord.SEQ, (seq | 1) + (seq & 1 ? 2 : 0));
      Atomics.store(w, r + DteRecord.RID, -1);
      Atomics.store(w, r + DteRecord.SEQ, (Atomics.load(w, r + DteRecord.SEQ) + 1) | 0);
    }
  }

  /**
   * Withdraws everything.
   *
   * @example
   * ```ts
   * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.setDte({
   *   rid: 8, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined,
   * });
   * writer.insert({ rid: 8, shift: 12, iovaBase: 0x5000, physBase: 0x9000, perms: 3, domain: 1 });
   * writer.clearAll();
   * const reader = new SnapshotReader(writer.buffer);
   * equal(writer.size, 0);
   * equal(reader.lookup(8, 0x5000), undefined);
   * equal(reader.dte(8), undefined);
   * ```
   */
  clearAll(): void {
    for (const slot of [...this.#entries.keys()]) this.#clear(slot);
    const w = this.#words;
    for (let i = 0; i < SNAPSHOT_MAX_RIDS; i++) {
      const rid = Atomics.load(w, SNAPSHOT_DTE_BASE + i * DteRecord.WORDS + DteRecord.RID);
      if (rid !== -1) this.clearDte(rid);
    }
  }
}

/**
 * The worker's side: lock-free lookups of entries and records.
 *
 * @example
 * ```ts
 * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
 * import { DteState } from "../shared/layout.ts";
 * import { equal } from "node:assert/strict";
 * const writer = new SnapshotWriter();
 * writer.setDte({ rid: 8, state: DteState.PassThrough, perms: 3, domain: 0, exclusion: undefined });
 * equal(new SnapshotReader(writer.buffer).dte(8)?.state, DteState.PassThrough);
 * ```
 */
export class SnapshotReader {
  #w: Int32Array;
  #hit: SnapshotTranslation = { rid: 0, shift: 0, iovaBase: 0, physBase: 0, perms: 0, domain: 0 };

  /**
   * Creates a reader over a snapshot buffer.
   *
   * @param buffer The snapshot.
   */
  constructor(buffer: SharedArrayBuffer) {
    this.#w = new Int32Array(buffer);
  }

  /**
   * The snapshot's words (for the miss mailbox).
   *
   * @example
   * ```ts
   * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { SNAPSHOT_WORDS } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * const reader = new SnapshotReader(writer.buffer);
   * equal(reader.words.buffer, writer.buffer);
   * equal(reader.words.length, SNAPSHOT_WORDS);
   * ```
   */
  get words(): Int32Array {
    return this.#w;
  }

  /**
   * Finds the translation of `iova` for `rid`. The returned object is reused
   * by the next call: copy what you keep.
   *
   * @param rid Requester id.
   * @param iova The address.
   * @returns The translation, or `undefined`.
   *
   * @example
   * ```ts
   * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * writer.insert({
   *   rid: 0x20, shift: 21, iovaBase: 0x20_0000, physBase: 0x80_0000, perms: 3, domain: 1,
   * });
   * const reader = new SnapshotReader(writer.buffer);
   * const hit = reader.lookup(0x20, 0x21_2345); // inside the 2 MiB page
   * equal(hit?.iovaBase, 0x20_0000);
   * equal(hit?.physBase, 0x80_0000);
   * equal(reader.lookup(0x28, 0x21_2345), undefined); // another requester
   * ```
   */
  lookup(rid: number, iova: number): SnapshotTranslation | undefined {
    const w = this.#w;
    const lo = Atomics.load(w, SnapshotHeader.SHIFT_MASK_LO);
    const hi = Atomics.load(w, SnapshotHeader.SHIFT_MASK_HI);
    for (let k = 0; k < 41; k++) {
      const bit = k < 32 ? (lo >>> k) & 1 : (hi >>> (k - 32)) & 1;
      if (!bit) continue;
      const shift = 12 + k;
      const size = 2 ** shift;
      const base = Math.floor(iova / size) * size;
      if (this.#probe(rid, shift, base)) return this.#hit;
    }
    return undefined;
  }

  #probe(rid: number, shift: number, base: number): boolean {
    const w = this.#w;
    const page = base / PAGE;
    const [pageLo, pageHi] = split(page);
    const first = snapshotBucket(rid, shift, pageLo, pageHi) * SNAPSHOT_BUCKET;
    for (let i = 0; i < SNAPSHOT_BUCKET; i++) {
      const e = SNAPSHOT_ENTRY_BASE + (first + i) * SnapshotEntry.WORDS;
      for (let attempt = 0; attempt < 64; attempt++) {
        const s1 = Atomics.load(w, e + SnapshotEntry.SEQ);
        if (s1 & 1) continue; // being rewritten: main finishes in nanoseconds
        if (
          Atomics.load(w, e + SnapshotEntry.RID) !== rid ||
          Atomics.load(w, e + SnapshotEntry.SHIFT) !== shift ||
          Atomics.load(w, e + SnapshotEntry.PAGE_LO) !== pageLo ||
          Atomics.load(w, e + SnapshotEntry.PAGE_HI) !== pageHi
        ) {
          if (Atomics.load(w, e + SnapshotEntry.SEQ) === s1) break; // a stable non-match
          continue;
        }
        const physLo = Atomics.load(w, e + SnapshotEntry.PHYS_LO);
        const physHi = Atomics.load(w, e + SnapshotEntry.PHYS_HI);
        const pd = Atomics.load(w, e + SnapshotEntry.PERMS_DOMAIN);
        if (Atomics.load(w, e + SnapshotEntry.SEQ) !== s1) continue;
        const hit = this.#hit;
        hit.rid = rid;
        hit.shift = shift;
        hit.iovaBase = base;
        hit.physBase = join(physLo, physHi) * PAGE;
        hit.perms = pd & 3;
        hit.domain = pd >>> 16;
        return true;
      }
    }
    return false;
  }

  /**
   * The device-table record of `rid`, if published.
   *
   * @param rid Requester id.
   * @returns A fresh record object, or `undefined`.
   *
   * @example
   * ```ts
   * import { SnapshotReader, SnapshotWriter } from "./iotlb_snapshot.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const writer = new SnapshotWriter();
   * const exclusion = { base: 0x10_0000, limit: 0x1f_ffff };
   * writer.setDte({ rid: 8, state: DteState.Translate, perms: 0, domain: 3, exclusion });
   * const reader = new SnapshotReader(writer.buffer);
   * deepEqual(reader.dte(8)?.exclusion, exclusion);
   * equal(reader.dte(9), undefined);
   * ```
   */
  dte(rid: number): SnapshotDte | undefined {
    const w = this.#w;
    for (let i = 0; i < SNAPSHOT_MAX_RIDS; i++) {
      const r = SNAPSHOT_DTE_BASE + i * DteRecord.WORDS;
      for (let attempt = 0; attempt < 64; attempt++) {
        const s1 = Atomics.load(w, r + DteRecord.SEQ);
        if (s1 & 1) continue;
        if (Atomics.load(w, r + DteRecord.RID) !== rid) {
          if (Atomics.load(w, r + DteRecord.SEQ) === s1) break;
          continue;
        }
        const record: SnapshotDte = {
          rid,
          state: Atomics.load(w, r + DteRecord.STATE),
          perms: Atomics.load(w, r + DteRecord.PERMS),
          domain: Atomics.load(w, r + DteRecord.DOMAIN),
          exclusion: Atomics.load(w, r + DteRecord.EXCL)
            ? {
              base: join(
                Atomics.load(w, r + DteRecord.EXCL_BASE_LO),
                Atomics.load(w, r + DteRecord.EXCL_BASE_HI),
              ) * PAGE,
              limit: join(
                    Atomics.load(w, r + DteRecord.EXCL_LIMIT_LO),
                    Atomics.load(w, r + DteRecord.EXCL_LIMIT_HI),
                  ) *
                  PAGE + PAGE - 1,
            }
            : undefined,
        };
        if (Atomics.load(w, r + DteRecord.SEQ) !== s1) continue;
        return record;
      }
    }
    return undefined;
  }
}
