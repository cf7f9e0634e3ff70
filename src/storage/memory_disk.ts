/**
 * An in-memory disk: storage that lives as long as the machine. Blocks are
 * allocated on first write, so an empty 64 MiB disk costs nothing.
 *
 * @module
 */

import { checkDiskRange, type DiskBackend, SECTOR_SIZE } from "./disk_backend.ts";

const BLOCK = 64 * 1024;

/**
 * A sparse in-memory disk.
 *
 * @example
 * ```ts
 * import { MemoryDisk } from "./memory_disk.ts";
 * import { deepEqual } from "node:assert/strict";
 * const disk = new MemoryDisk(1 << 20);
 * await disk.write(512, new Uint8Array([1, 2, 3]));
 * const out = new Uint8Array(4);
 * await disk.read(511, out);
 * deepEqual([...out], [0, 1, 2, 3]);
 * ```
 */
export class MemoryDisk implements DiskBackend {
  /** Capacity in bytes. */
  readonly size: number;
  /** Writes are refused. */
  readonly readonly: boolean;
  #blocks = new Map<number, Uint8Array>();

  /**
   * Creates an empty (all-zero) disk.
   *
   * @param size Capacity in bytes (rounded up to whole sectors).
   * @param options `readonly: true` refuses writes.
   */
  constructor(size: number, options: { readonly?: boolean } = {}) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`Invalid disk size ${String(size)}: must be a non-negative integer`);
    }
    this.size = Math.ceil(size / SECTOR_SIZE) * SECTOR_SIZE;
    this.readonly = options.readonly ?? false;
  }

  /**
   * Copies bytes out of the disk.
   *
   * @param offset Byte offset.
   * @param dest Destination.
   * @returns Resolves when done.
   *
   * @example
   * ```ts
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { deepEqual, rejects } from "node:assert/strict";
   * const disk = new MemoryDisk(1000); // 1024 bytes: whole sectors
   * const out = new Uint8Array(4).fill(9);
   * await disk.read(1020, out); // never written: zeros
   * deepEqual([...out], [0, 0, 0, 0]);
   * await rejects(disk.read(1022, out), RangeError);
   * ```
   */
  read(offset: number, dest: Uint8Array): Promise<void> {
    return this.#each(offset, dest.length, (block, within, done, n) => {
      if (block) dest.set(block.subarray(within, within + n), done);
      else dest.fill(0, done, done + n);
    }, false);
  }

  /**
   * Copies bytes into the disk.
   *
   * @param offset Byte offset.
   * @param src Source.
   * @returns Resolves when done; rejects for a read-only disk.
   *
   * @example
   * ```ts
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { deepEqual, rejects } from "node:assert/strict";
   * const disk = new MemoryDisk(1 << 20);
   * await disk.write(65535, new Uint8Array([1, 2])); // across two 64 KiB blocks
   * const out = new Uint8Array(2);
   * await disk.read(65535, out);
   * deepEqual([...out], [1, 2]);
   * const cdrom = new MemoryDisk(4096, { readonly: true });
   * await rejects(cdrom.write(0, out), Deno.errors.PermissionDenied);
   * ```
   */
  write(offset: number, src: Uint8Array): Promise<void> {
    if (this.readonly) {
      return Promise.reject(new Deno.errors.PermissionDenied("The disk is read-only"));
    }
    return this.#each(offset, src.length, (block, within, done, n) => {
      block!.set(src.subarray(done, done + n), within);
    }, true);
  }

  /** Calls `part` for each block piece of `[offset, offset + length)` (allocating blocks when asked). */
  #each(
    offset: number,
    length: number,
    part: (block: Uint8Array | undefined, within: number, done: number, n: number) => void,
    allocate: boolean,
  ): Promise<void> {
    try {
      checkDiskRange(this.size, offset, length);
      let done = 0;
      while (done < length) {
        const at = offset + done;
        const index = Math.floor(at / BLOCK);
        const within = at - index * BLOCK;
        const n = Math.min(BLOCK - within, length - done);
        let block = this.#blocks.get(index);
        if (!block && allocate) this.#blocks.set(index, block = new Uint8Array(BLOCK));
        part(block, within, done, n);
        done += n;
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Nothing to make durable.
   *
   * @returns A resolved promise.
   *
   * @example
   * ```ts
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const disk = new MemoryDisk(4096);
   * await disk.write(0, new Uint8Array([1]));
   * await disk.flush();
   * const out = new Uint8Array(1);
   * await disk.read(0, out);
   * equal(out[0], 1);
   * ```
   */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Drops the contents.
   *
   * @returns A resolved promise.
   *
   * @example
   * ```ts
   * import { MemoryDisk } from "./memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const disk = new MemoryDisk(4096);
   * await disk.write(0, new Uint8Array([1]));
   * await disk.close();
   * const out = new Uint8Array(1);
   * await disk.read(0, out);
   * equal(out[0], 0); // the contents are gone
   * ```
   */
  close(): Promise<void> {
    this.#blocks.clear();
    return Promise.resolve();
  }
}
