/**
 * The durability workload and its checker. A guest writes groups of
 * sequence-numbered sectors and flushes after each group; the writes of group
 * `g` are a function of the seed and `g` only, so after a crash the checker
 * knows exactly what each sector must hold given the last group whose FLUSH
 * CACHE was acknowledged.
 *
 * @module
 */

import { seededRandom } from "../util/random.ts";

/**
 * Sectors the workload writes (the first `DURABILITY_SLOTS` of the disk).
 *
 * @example
 * ```ts
 * import { DURABILITY_SLOTS, groupWrites } from "./durability_schedule.ts";
 * import { ok } from "node:assert/strict";
 * ok(groupWrites(1, 1).every((w) => w.slot + w.count <= DURABILITY_SLOTS));
 * ```
 */
export const DURABILITY_SLOTS = 512;
/** Bytes per sector. */
const SECTOR = 512;
const MAGIC = 0x5344_5744; // "DWDS" little-endian

/**
 * One write command of a group: `count` sectors from `slot`.
 *
 * @example
 * ```ts
 * import type { GroupWrite } from "./durability_schedule.ts";
 * const w: GroupWrite = { slot: 10, count: 8 }; // WRITE DMA of sectors 10–17
 * console.log(w.slot);
 * ```
 */
export interface GroupWrite {
  /** First sector. */
  readonly slot: number;
  /** Sectors. */
  readonly count: number;
}

/**
 * The write commands of group `group` (1, 2, …).
 *
 * @param seed The run's seed.
 * @param group The group number.
 * @returns The commands, in order.
 *
 * @example
 * ```ts
 * import { groupWrites } from "./durability_schedule.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(groupWrites(1, 5), groupWrites(1, 5));
 * ```
 */
export function groupWrites(seed: number, group: number): GroupWrite[] {
  const r = seededRandom((Math.imul(seed, 0x9e37_79b1) ^ group) >>> 0);
  const writes: GroupWrite[] = [];
  for (let n = 1 + r.int(6); n > 0; n--) {
    const count = 1 + r.int(8);
    writes.push({ slot: r.int(DURABILITY_SLOTS - count + 1), count });
  }
  return writes;
}

/**
 * The 512 bytes group `group` writes to sector `slot`: a header (magic,
 * group, slot) and seeded payload.
 *
 * @param seed The run's seed.
 * @param group The group.
 * @param slot The sector.
 * @returns The sector.
 *
 * @example
 * ```ts
 * import { sectorRecord } from "./durability_schedule.ts";
 * import { equal } from "node:assert/strict";
 * const s = sectorRecord(1, 7, 3);
 * equal(new DataView(s.buffer).getUint32(4, true), 7);
 * ```
 */
export function sectorRecord(seed: number, group: number, slot: number): Uint8Array {
  const out = new Uint8Array(SECTOR);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, group, true);
  v.setUint32(8, slot, true);
  v.setUint32(12, seed >>> 0, true);
  const r = seededRandom(
    (seed ^ Math.imul(group, 0x85eb_ca6b) ^ Math.imul(slot, 0xc2b2_ae35)) >>> 0,
  );
  for (let i = 16; i < SECTOR; i++) out[i] = r.int(256);
  return out;
}

/**
 * A sector that does not hold what the acknowledged flushes promise.
 *
 * @example
 * ```ts
 * import type { LostSector } from "./durability_schedule.ts";
 * // Sector 7 must hold group 12's record; it holds group 9's.
 * const lost: LostSector = { slot: 7, expected: 12, found: 9 };
 * console.log(lost.slot);
 * ```
 */
export interface LostSector {
  /** The sector. */
  readonly slot: number;
  /** The group whose data it must hold (0: zeros, never written). */
  readonly expected: number;
  /** The group whose record it holds, if it holds one. */
  readonly found: number | undefined;
}

/**
 * What {@linkcode checkImage} found.
 *
 * @example
 * ```ts
 * import type { DurabilityCheck } from "./durability_schedule.ts";
 * const asPromised = (c: DurabilityCheck) => c.lost.length === 0 && c.stray.length === 0;
 * console.log(typeof asPromised);
 * ```
 */
export interface DurabilityCheck {
  /** Sectors that hold what the acknowledged flushes promise. */
  readonly good: number;
  /** Sectors the unacknowledged (in-flight) group rewrote that hold its data. */
  readonly newer: number;
  /**
   * Sectors the in-flight group was rewriting that hold a mix of the old and
   * the new data, byte for byte (allowed: that write was never acknowledged).
   */
  readonly torn: number;
  /** Sectors that hold neither: each a lost acknowledged write (or garbage). */
  readonly lost: LostSector[];
  /** Sectors after the workload's that are not zero (a write landed in the wrong place). */
  readonly stray: number[];
}

function groupOf(sector: Uint8Array): number | undefined {
  const v = new DataView(sector.buffer, sector.byteOffset, SECTOR);
  return v.getUint32(0, true) === MAGIC ? v.getUint32(4, true) : undefined;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether every byte of `sector` is the byte of `a` or of `b` at that place. */
function mixOf(sector: Uint8Array, a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < sector.length; i++) {
    if (sector[i] !== a[i] && sector[i] !== b[i]) return false;
  }
  return true;
}

/**
 * Checks an image after a crash, given the last group whose FLUSH CACHE the
 * guest saw complete. Every sector must hold the last write of an
 * acknowledged group (zeros when none wrote it), except a sector the next
 * group (in flight at the crash, never acknowledged) writes: that one may
 * hold the old data, the new data or a byte-wise mix of both (a torn
 * write), nothing else. Sectors after the workload's must be zeros.
 *
 * @param image The image's bytes (at least `DURABILITY_SLOTS` sectors).
 * @param seed The run's seed.
 * @param acknowledged The last group whose flush was acknowledged (0: none).
 * @returns What was found; the image is as promised when `lost` and `stray` are empty.
 *
 * @example
 * ```ts
 * import { checkImage, groupWrites, sectorRecord } from "./durability_schedule.ts";
 * import { equal } from "node:assert/strict";
 * const image = new Uint8Array(512 * 512);
 * for (const w of groupWrites(3, 1)) {
 *   for (let s = w.slot; s < w.slot + w.count; s++) image.set(sectorRecord(3, 1, s), s * 512);
 * }
 * equal(checkImage(image, 3, 1).lost.length, 0);
 * // Group 1 acknowledged but not on the image: every sector it wrote is lost.
 * equal(checkImage(new Uint8Array(512 * 512), 3, 1).lost.length > 0, true);
 * ```
 */
export function checkImage(image: Uint8Array, seed: number, acknowledged: number): DurabilityCheck {
  if (image.length < DURABILITY_SLOTS * SECTOR) {
    throw new RangeError(
      `The image holds ${image.length} bytes, fewer than the ${DURABILITY_SLOTS} sectors checked`,
    );
  }
  const expected = new Array<number>(DURABILITY_SLOTS).fill(0);
  for (let g = 1; g <= acknowledged; g++) {
    for (const w of groupWrites(seed, g)) {
      for (let s = w.slot; s < w.slot + w.count; s++) expected[s] = g;
    }
  }
  const inFlight = new Set<number>();
  for (const w of groupWrites(seed, acknowledged + 1)) {
    for (let s = w.slot; s < w.slot + w.count; s++) inFlight.add(s);
  }
  const zero = new Uint8Array(SECTOR);
  let good = 0;
  let newer = 0;
  let torn = 0;
  const lost: LostSector[] = [];
  for (let s = 0; s < DURABILITY_SLOTS; s++) {
    const sector = image.subarray(s * SECTOR, (s + 1) * SECTOR);
    const want = expected[s]!;
    const old = want === 0 ? zero : sectorRecord(seed, want, s);
    if (same(sector, old)) {
      good++;
      continue;
    }
    if (inFlight.has(s)) {
      const next = sectorRecord(seed, acknowledged + 1, s);
      if (same(sector, next)) {
        newer++;
        continue;
      }
      if (mixOf(sector, old, next)) {
        torn++;
        continue;
      }
    }
    lost.push({ slot: s, expected: want, found: groupOf(sector) });
  }
  const stray: number[] = [];
  for (let s = DURABILITY_SLOTS; s * SECTOR < image.length; s++) {
    if (image.subarray(s * SECTOR, (s + 1) * SECTOR).some((b) => b !== 0)) stray.push(s);
  }
  return { good, newer, torn, lost, stray };
}
