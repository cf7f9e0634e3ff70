/**
 * A disk backend that fails on purpose (reliability tests): a disk that
 * fills up (writes beyond a byte budget fail with ENOSPC), bad sectors
 * (reads or writes of them fail with EIO), a flush that fails, a disk that
 * dies (every operation fails with EIO from some point on), and a slow disk
 * (so a test can act while a transfer or a flush is in progress). Select it
 * for a drive with `faults` in the drive's configuration
 * (`DriveConfig.faults`, or `drives[].faults` in a machine description).
 *
 * @module
 */

import { type DiskBackend, SECTOR_SIZE } from "./disk_backend.ts";

/**
 * What a {@linkcode FaultyDisk} does wrong. Every field is optional; an empty
 * object fails nothing.
 */
export interface DiskFaults {
  /**
   * Bytes that may still be written to sectors not written before through
   * this disk (a thin image on a file system that fills up): a write that
   * needs more fails with ENOSPC and writes nothing. Rewriting sectors
   * already written needs no space.
   */
  readonly spaceBytes?: number;
  /** Sectors (LBAs) whose reads fail with EIO. */
  readonly badReadSectors?: readonly number[];
  /** Sectors (LBAs) whose writes fail with EIO. */
  readonly badWriteSectors?: readonly number[];
  /** Every flush fails with EIO. */
  readonly failFlush?: boolean;
  /** After this many successful operations every operation fails with EIO (the disk died). */
  readonly dieAfterOperations?: number;
  /** Every operation takes at least this long (a slow disk; ms, at most one hour). */
  readonly latencyMs?: number;
}

/** Counts of what a {@linkcode FaultyDisk} did. */
export interface DiskFaultCounters {
  /** Operations failed on purpose (a failure of the wrapped disk is not counted). */
  failed: number;
  /** Operations that succeeded. */
  succeeded: number;
}

/** The longest {@linkcode DiskFaults.latencyMs}: one hour. */
const MAX_LATENCY_MS = 3_600_000;

/** The most sectors a bad-sector list may name. */
const MAX_BAD_SECTORS = 65_536;

const FIELDS = [
  "spaceBytes",
  "badReadSectors",
  "badWriteSectors",
  "failFlush",
  "dieAfterOperations",
  "latencyMs",
] as const;

/**
 * A {@linkcode DiskFaults} value that is not valid: `field` names the
 * offending field (`""` for the value itself), `problem` says what is wrong.
 *
 * @example
 * ```ts
 * import { DiskFaultsError, validateDiskFaults } from "./faulty_disk.ts";
 * import { equal, ok } from "node:assert/strict";
 * try {
 *   validateDiskFaults({ latencyMs: -1 });
 * } catch (error) {
 *   ok(error instanceof DiskFaultsError);
 *   equal(error.field, "latencyMs");
 * }
 * ```
 */
export class DiskFaultsError extends TypeError {
  /** The offending field (`""`: the value itself). */
  readonly field: string;
  /** What is wrong with it. */
  readonly problem: string;

  /**
   * Creates the error.
   *
   * @param field The offending field.
   * @param problem What is wrong with it.
   */
  constructor(field: string, problem: string) {
    super(
      field === ""
        ? `Invalid disk faults: ${problem}`
        : `Invalid disk faults field "${field}": ${problem}`,
    );
    this.name = "DiskFaultsError";
    this.field = field;
    this.problem = problem;
  }
}

function show(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function count(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new DiskFaultsError(field, `expected a non-negative integer, got ${show(value)}`);
  }
  return value;
}

function sectors(value: unknown, field: string): number[] {
  if (!Array.isArray(value)) {
    throw new DiskFaultsError(field, `expected an array of sector numbers, got ${show(value)}`);
  }
  if (value.length > MAX_BAD_SECTORS) {
    throw new DiskFaultsError(field, `at most ${MAX_BAD_SECTORS} sectors, got ${value.length}`);
  }
  return value.map((s, i) => count(s, `${field}[${i}]`));
}

/**
 * Checks that `value` is a valid {@linkcode DiskFaults} (an object with only
 * the known fields, each of the right type and range) and returns a copy of
 * it. A machine checks a drive's `faults` with it before anything starts.
 *
 * @param value The value to check (from a configuration, or JSON).
 * @returns The faults.
 * @throws {DiskFaultsError} When a field is unknown, of the wrong type or out of range.
 *
 * @example
 * ```ts
 * import { validateDiskFaults } from "./faulty_disk.ts";
 * import { deepEqual, throws } from "node:assert/strict";
 * deepEqual(validateDiskFaults({ badReadSectors: [7] }), { badReadSectors: [7] });
 * throws(() => validateDiskFaults({ badSectors: [7] }), /unknown field/);
 * ```
 */
export function validateDiskFaults(value: unknown): DiskFaults {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new DiskFaultsError("", `expected an object, got ${show(value)}`);
  }
  const raw = value as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      throw new DiskFaultsError(key, `unknown field (known: ${FIELDS.join(", ")})`);
    }
  }
  const out: {
    -readonly [K in keyof DiskFaults]: DiskFaults[K];
  } = {};
  if (raw.spaceBytes !== undefined) out.spaceBytes = count(raw.spaceBytes, "spaceBytes");
  if (raw.badReadSectors !== undefined) {
    out.badReadSectors = sectors(raw.badReadSectors, "badReadSectors");
  }
  if (raw.badWriteSectors !== undefined) {
    out.badWriteSectors = sectors(raw.badWriteSectors, "badWriteSectors");
  }
  if (raw.failFlush !== undefined) {
    if (typeof raw.failFlush !== "boolean") {
      throw new DiskFaultsError("failFlush", `expected true or false, got ${show(raw.failFlush)}`);
    }
    out.failFlush = raw.failFlush;
  }
  if (raw.dieAfterOperations !== undefined) {
    out.dieAfterOperations = count(raw.dieAfterOperations, "dieAfterOperations");
  }
  if (raw.latencyMs !== undefined) {
    const ms = raw.latencyMs;
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > MAX_LATENCY_MS) {
      throw new DiskFaultsError(
        "latencyMs",
        `expected milliseconds from 0 to ${MAX_LATENCY_MS}, got ${show(ms)}`,
      );
    }
    out.latencyMs = ms;
  }
  return out;
}

function osError(code: "EIO" | "ENOSPC", what: string): Error {
  const text = code === "EIO"
    ? "Input/output error (os error 5)"
    : "No space left on device (os error 28)";
  return Object.assign(new Error(`${text}: ${what}`), { code });
}

/** The first sector of `[first, last]` in `set`, if any. */
function firstIn(set: ReadonlySet<number>, first: number, last: number): number | undefined {
  let found: number | undefined;
  if (set.size <= last - first + 1) {
    for (const s of set) {
      if (s >= first && s <= last && (found === undefined || s < found)) found = s;
    }
  } else {
    for (let s = first; s <= last && found === undefined; s++) if (set.has(s)) found = s;
  }
  return found;
}

/**
 * Wraps a backend and fails as {@linkcode DiskFaults} says, the way Deno
 * reports such errors: an `Error` whose `code` is `EIO` or `ENOSPC`. The ATA
 * model turns a failed read into ERR with UNC and a failed write or flush
 * into ERR with ABRT, as for a real disk error.
 *
 * @example A disk with 1 KiB of free space
 * ```ts
 * import { FaultyDisk } from "./faulty_disk.ts";
 * import { MemoryDisk } from "./memory_disk.ts";
 * import { equal, rejects } from "node:assert/strict";
 * const disk = new FaultyDisk(new MemoryDisk(1 << 20), { spaceBytes: 1024 });
 * await disk.write(0, new Uint8Array(1024));
 * await disk.write(0, new Uint8Array(512)); // rewriting needs no space
 * await rejects(disk.write(4096, new Uint8Array(512)), /No space left on device/);
 * equal(disk.counters.failed, 1);
 * await disk.close();
 * ```
 */
export class FaultyDisk implements DiskBackend {
  /** What failed and what did not. */
  readonly counters: DiskFaultCounters = { failed: 0, succeeded: 0 };
  #inner: DiskBackend;
  #faults: DiskFaults;
  #space: number;
  #written = new Set<number>();
  #badRead: Set<number>;
  #badWrite: Set<number>;

  /**
   * Wraps `inner`.
   *
   * @param inner The real storage.
   * @param faults What to fail (checked with {@linkcode validateDiskFaults}).
   * @throws {DiskFaultsError} When `faults` is not valid.
   */
  constructor(inner: DiskBackend, faults: DiskFaults) {
    this.#inner = inner;
    this.#faults = validateDiskFaults(faults);
    this.#space = this.#faults.spaceBytes ?? Infinity;
    this.#badRead = new Set(this.#faults.badReadSectors ?? []);
    this.#badWrite = new Set(this.#faults.badWriteSectors ?? []);
  }

  /**
   * Capacity of the wrapped disk.
   *
   * @example
   * ```ts
   * import { FaultyDisk } from "./faulty_disk.ts";
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * equal(new FaultyDisk(new MemoryDisk(1000), {}).size, 1024);
   * ```
   */
  get size(): number {
    return this.#inner.size;
  }

  /**
   * Whether the wrapped disk is read-only.
   *
   * @example
   * ```ts
   * import { FaultyDisk } from "./faulty_disk.ts";
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { equal, rejects } from "node:assert/strict";
   * const disk = new FaultyDisk(new MemoryDisk(4096, { readonly: true }), {});
   * equal(disk.readonly, true);
   * await rejects(disk.write(0, new Uint8Array(512)), Deno.errors.PermissionDenied);
   * equal(disk.counters.failed, 0); // the wrapped disk refused, not a fault
   * ```
   */
  get readonly(): boolean {
    return this.#inner.readonly;
  }

  async #wait(): Promise<void> {
    const ms = this.#faults.latencyMs ?? 0;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  #dead(): boolean {
    const limit = this.#faults.dieAfterOperations;
    return limit !== undefined && this.counters.succeeded >= limit;
  }

  #fail(error: Error): Promise<never> {
    this.counters.failed++;
    return Promise.reject(error);
  }

  /**
   * Reads, unless the disk died or a sector is bad.
   *
   * @param offset Byte offset.
   * @param dest Destination.
   * @returns Resolves when `dest` is filled.
   *
   * @example
   * ```ts
   * import { FaultyDisk } from "./faulty_disk.ts";
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { deepEqual, rejects } from "node:assert/strict";
   * const disk = new FaultyDisk(new MemoryDisk(4096), { badReadSectors: [2] });
   * await disk.read(0, new Uint8Array(1024)); // sectors 0 and 1
   * await rejects(disk.read(1000, new Uint8Array(100)), /Input\/output error .*bad sector 2/);
   * deepEqual(disk.counters, { failed: 1, succeeded: 1 });
   * ```
   */
  async read(offset: number, dest: Uint8Array): Promise<void> {
    await this.#wait();
    if (this.#dead()) return this.#fail(osError("EIO", "the disk died"));
    const first = Math.floor(offset / SECTOR_SIZE);
    const last = Math.floor((offset + Math.max(dest.length, 1) - 1) / SECTOR_SIZE);
    const bad = firstIn(this.#badRead, first, last);
    if (bad !== undefined) return this.#fail(osError("EIO", `bad sector ${bad}`));
    await this.#inner.read(offset, dest);
    this.counters.succeeded++;
  }

  /**
   * Writes, unless the disk died, a sector is bad or the space ran out.
   *
   * @param offset Byte offset.
   * @param src Source.
   * @returns Resolves when written.
   *
   * @example
   * ```ts
   * import { FaultyDisk } from "./faulty_disk.ts";
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { rejects } from "node:assert/strict";
   * const faults = { badWriteSectors: [3], dieAfterOperations: 1 };
   * const disk = new FaultyDisk(new MemoryDisk(4096), faults);
   * await rejects(disk.write(1024, new Uint8Array(1024)), /bad sector 3/); // sectors 2 and 3
   * await disk.write(0, new Uint8Array(512));
   * await rejects(disk.write(0, new Uint8Array(512)), /the disk died/);
   * ```
   */
  async write(offset: number, src: Uint8Array): Promise<void> {
    await this.#wait();
    if (this.#dead()) return this.#fail(osError("EIO", "the disk died"));
    const first = Math.floor(offset / SECTOR_SIZE);
    const last = Math.floor((offset + Math.max(src.length, 1) - 1) / SECTOR_SIZE);
    const bad = firstIn(this.#badWrite, first, last);
    if (bad !== undefined) return this.#fail(osError("EIO", `bad sector ${bad}`));
    const fresh: number[] = [];
    if (this.#space !== Infinity) {
      for (let s = first; s <= last; s++) if (!this.#written.has(s)) fresh.push(s);
      const need = fresh.length * SECTOR_SIZE;
      if (need > this.#space) {
        return this.#fail(osError("ENOSPC", `${need} bytes needed, ${this.#space} free`));
      }
      // Taken before the write, so a concurrent write sees it gone.
      this.#space -= need;
      for (const s of fresh) this.#written.add(s);
    }
    try {
      await this.#inner.write(offset, src);
    } catch (error) {
      this.#space += fresh.length * SECTOR_SIZE;
      for (const s of fresh) this.#written.delete(s);
      throw error;
    }
    this.counters.succeeded++;
  }

  /**
   * Flushes, unless flushes fail or the disk died.
   *
   * @returns Resolves when durable.
   *
   * @example
   * ```ts
   * import { FaultyDisk } from "./faulty_disk.ts";
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { deepEqual, rejects } from "node:assert/strict";
   * const disk = new FaultyDisk(new MemoryDisk(4096), { failFlush: true });
   * await disk.write(0, new Uint8Array(512));
   * await rejects(disk.flush(), /flush failed/);
   * deepEqual(disk.counters, { failed: 1, succeeded: 1 });
   * ```
   */
  async flush(): Promise<void> {
    await this.#wait();
    if (this.#dead()) return this.#fail(osError("EIO", "the disk died"));
    if (this.#faults.failFlush) return this.#fail(osError("EIO", "flush failed"));
    await this.#inner.flush();
    this.counters.succeeded++;
  }

  /**
   * Closes the wrapped disk.
   *
   * @returns Resolves when closed.
   *
   * @example
   * ```ts
   * import { FaultyDisk } from "./faulty_disk.ts";
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const inner = new MemoryDisk(4096);
   * await inner.write(0, new Uint8Array([1]));
   * await new FaultyDisk(inner, { dieAfterOperations: 0 }).close(); // even a dead disk closes
   * const out = new Uint8Array(1);
   * await inner.read(0, out);
   * equal(out[0], 0); // the wrapped disk was closed: its contents are gone
   * ```
   */
  close(): Promise<void> {
    return this.#inner.close();
  }
}
