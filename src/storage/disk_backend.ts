/**
 * The storage contract of a disk: what an ATA device model reads and writes,
 * independent of where the bytes live (a raw image file, memory).
 *
 * @module
 */

/**
 * The size of a logical sector in bytes.
 *
 * @example
 * ```ts
 * import { SECTOR_SIZE } from "./disk_backend.ts";
 * import { equal } from "node:assert/strict";
 * equal(1024 * SECTOR_SIZE, 512 * 1024);
 * ```
 */
export const SECTOR_SIZE = 512;

/**
 * A disk's storage. Offsets and lengths are in bytes; device models transfer
 * whole sectors. Every method may reject (an I/O error, a permission denied
 * by the host): callers turn that into a guest-visible error.
 *
 * `read` and `write` accept views of a `SharedArrayBuffer`, so a device can
 * move data straight between the storage and a mapping of guest RAM.
 * Implementations run one operation at a time, in call order, so a write
 * followed by a read of the same sectors reads what was written.
 *
 * @example
 * ```ts
 * import type { DiskBackend } from "./disk_backend.ts";
 * import { MemoryDisk } from "./memory_disk.ts";
 * import { equal } from "node:assert/strict";
 * const disk: DiskBackend = new MemoryDisk(4096);
 * await disk.write(512, new Uint8Array([1, 2]));
 * await disk.flush();
 * const out = new Uint8Array(2);
 * await disk.read(512, out);
 * equal(out[1], 2);
 * await disk.close();
 * ```
 */
export interface DiskBackend {
  /** Capacity in bytes (a multiple of {@linkcode SECTOR_SIZE}). */
  readonly size: number;
  /** Writes are refused (`write` rejects). */
  readonly readonly: boolean;
  /**
   * Fills `dest` with the bytes at `offset`.
   *
   * @param offset Byte offset; `offset + dest.length` must not exceed `size`.
   * @param dest Where the bytes go (may alias guest RAM).
   * @returns Resolves once every byte of `dest` is filled.
   */
  read(offset: number, dest: Uint8Array): Promise<void>;
  /**
   * Stores `src` at `offset`.
   *
   * @param offset Byte offset; `offset + src.length` must not exceed `size`.
   * @param src The bytes (may alias guest RAM).
   * @returns Resolves once the storage has accepted every byte.
   */
  write(offset: number, src: Uint8Array): Promise<void>;
  /**
   * Makes every accepted write durable (`fdatasync` for a file).
   *
   * @returns Resolves once the data is on stable storage.
   */
  flush(): Promise<void>;
  /**
   * Releases the storage (closes the file); waits for operations in flight.
   *
   * @returns Resolves when closed.
   */
  close(): Promise<void>;
}

/**
 * Checks that `[offset, offset + length)` is a whole range inside a disk of
 * `size` bytes.
 *
 * @param size Disk size in bytes.
 * @param offset Start offset.
 * @param length Number of bytes.
 * @throws {RangeError} When the range is not inside the disk.
 *
 * @example
 * ```ts
 * import { checkDiskRange } from "./disk_backend.ts";
 * import { throws } from "node:assert/strict";
 * checkDiskRange(1024, 512, 512);
 * throws(() => checkDiskRange(1024, 1000, 512), RangeError);
 * ```
 */
export function checkDiskRange(size: number, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
    offset + length > size
  ) {
    throw new RangeError(
      `Invalid disk range: ${length} bytes at offset ${offset} of a ${size}-byte disk`,
    );
  }
}
