/**
 * A raw disk image file: sector N is at byte N × 512 of the file.
 *
 * The file is opened with exactly the access the disk needs (read-only images
 * read-only) and locked like QEMU locks its images (shared for a read-only
 * disk, exclusive for a writable one), so two machines cannot write one image.
 * Transfers go straight between the file and the caller's view, including a
 * view of guest RAM: no intermediate copy.
 *
 * @module
 */

import { checkDiskRange, type DiskBackend, SECTOR_SIZE } from "./disk_backend.ts";

/**
 * Options for {@linkcode RawImage.open}.
 *
 * @example
 * ```ts
 * import { RawImage, type RawImageOptions } from "./raw_image.ts";
 * import { equal } from "node:assert/strict";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array(512));
 * const options: RawImageOptions = { readonly: true };
 * const image = RawImage.openSync(path, options);
 * equal(image.readonly, true);
 * await image.close();
 * await Deno.remove(path);
 * ```
 */
export interface RawImageOptions {
  /** Open read-only; writes are refused (default false). */
  readonly?: boolean;
  /** Skip the image lock (default false). */
  noLock?: boolean;
}

/**
 * A raw image file as a {@linkcode DiskBackend}. Deno files have no
 * positioned I/O, so operations run one at a time (seek, then read or write).
 *
 * @example
 * ```ts
 * import { RawImage } from "./raw_image.ts";
 * import { deepEqual, equal } from "node:assert/strict";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array(1024));
 * {
 *   await using image = await RawImage.open(path);
 *   equal(image.size, 1024);
 *   await image.write(512, new Uint8Array([7, 8]));
 *   await image.flush();
 *   const out = new Uint8Array(2);
 *   await image.read(512, out);
 *   deepEqual([...out], [7, 8]);
 * }
 * await Deno.remove(path);
 * ```
 */
export class RawImage implements DiskBackend, AsyncDisposable {
  /** The image path. */
  readonly path: string;
  /** Capacity in bytes: the file size rounded up to whole sectors (as QEMU). */
  readonly size: number;
  /** Writes are refused. */
  readonly readonly: boolean;
  #file: Deno.FsFile;
  #fileSize: number;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(path: string, file: Deno.FsFile, fileSize: number, readonly: boolean) {
    this.path = path;
    this.#file = file;
    this.#fileSize = fileSize;
    this.size = Math.ceil(fileSize / SECTOR_SIZE) * SECTOR_SIZE;
    this.readonly = readonly;
  }

  /**
   * Opens an image (synchronously: a device model opens its disks while it is
   * built).
   *
   * @param path The image file.
   * @param options Read-only, locking.
   * @returns The image.
   * @throws {Error} When the file cannot be opened or locked, or is not a regular file.
   *
   * @example
   * ```ts
   * import { RawImage } from "./raw_image.ts";
   * import { throws } from "node:assert/strict";
   * throws(() => RawImage.openSync("/nonexistent/disk.img"), /Cannot open disk image/);
   * ```
   */
  static openSync(path: string, options: RawImageOptions = {}): RawImage {
    const readonly = options.readonly ?? false;
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: !readonly });
    } catch (error) {
      throw new Error(`Cannot open disk image '${path}': ${(error as Error).message}`);
    }
    try {
      const info = file.statSync();
      if (!info.isFile) throw new Error("not a regular file");
      if (!(options.noLock ?? false) && !file.tryLockSync(!readonly)) {
        throw new Error(
          `it is locked by another user (${readonly ? "a writer" : "a reader or writer"})`,
        );
      }
      return new RawImage(path, file, info.size, readonly);
    } catch (error) {
      file.close();
      throw new Error(`Cannot open disk image '${path}': ${(error as Error).message}`);
    }
  }

  /**
   * Opens an image.
   *
   * @param path The image file.
   * @param options Read-only, locking.
   * @returns The image.
   * @throws {Error} When the file cannot be opened or locked, or is not a regular file.
   *
   * @example
   * ```ts
   * import { RawImage } from "./raw_image.ts";
   * import { equal, rejects } from "node:assert/strict";
   * const path = await Deno.makeTempFile();
   * await Deno.writeFile(path, new Uint8Array(1000));
   * const image = await RawImage.open(path, { readonly: true });
   * equal(image.size, 1024); // rounded up to whole sectors
   * await rejects(image.write(0, new Uint8Array(1)), Deno.errors.PermissionDenied);
   * await image.close();
   * await Deno.remove(path);
   * ```
   */
  static open(path: string, options: RawImageOptions = {}): Promise<RawImage> {
    try {
      return Promise.resolve(RawImage.openSync(path, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #serial<T>(job: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`Disk image '${this.path}' is closed`));
    const run = this.#queue.then(job, job);
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Reads `dest.length` bytes at `offset` (bytes past the end of the file read
   * as zeros).
   *
   * @param offset Byte offset.
   * @param dest Destination (a view of guest RAM is read into directly).
   * @returns Resolves when `dest` is filled.
   *
   * @example
   * ```ts
   * import { RawImage } from "./raw_image.ts";
   * import { deepEqual } from "node:assert/strict";
   * const path = await Deno.makeTempFile();
   * await Deno.writeFile(path, new Uint8Array(1000).fill(1));
   * const image = await RawImage.open(path);
   * const out = new Uint8Array(24);
   * await image.read(990, out);
   * deepEqual([...out.subarray(8, 12)], [1, 1, 0, 0]); // past the file's end: zeros
   * await image.close();
   * await Deno.remove(path);
   * ```
   */
  read(offset: number, dest: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      checkDiskRange(this.size, offset, dest.length);
      const inFile = Math.max(0, Math.min(dest.length, this.#fileSize - offset));
      if (inFile < dest.length) dest.fill(0, inFile);
      if (inFile === 0) return;
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < inFile) {
        const n = await this.#file.read(
          done === 0 && inFile === dest.length ? dest : dest.subarray(done, inFile),
        );
        if (n === null || n === 0) {
          // The file shrank under us: what is gone reads as zeros.
          dest.fill(0, done, inFile);
          break;
        }
        done += n;
      }
    });
  }

  /**
   * Writes `src` at `offset`.
   *
   * @param offset Byte offset.
   * @param src Source (a view of guest RAM is written from directly).
   * @returns Resolves when the file has every byte; rejects for a read-only image.
   *
   * @example
   * ```ts
   * import { RawImage } from "./raw_image.ts";
   * import { equal, rejects } from "node:assert/strict";
   * const path = await Deno.makeTempFile();
   * await Deno.writeFile(path, new Uint8Array(1000));
   * const image = await RawImage.open(path);
   * await image.write(1020, new Uint8Array([1, 2, 3, 4])); // the file grows to the last sector
   * equal((await Deno.stat(path)).size, 1024);
   * await rejects(image.write(1024, new Uint8Array(1)), RangeError); // past the capacity
   * await image.close();
   * await Deno.remove(path);
   * ```
   */
  write(offset: number, src: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      if (this.readonly) {
        throw new Deno.errors.PermissionDenied(`Disk image '${this.path}' is read-only`);
      }
      checkDiskRange(this.size, offset, src.length);
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < src.length) {
        done += await this.#file.write(done === 0 ? src : src.subarray(done));
      }
      this.#fileSize = Math.max(this.#fileSize, offset + src.length);
    });
  }

  /**
   * `fdatasync`s the file (nothing to do for a read-only image).
   *
   * @returns Resolves once the data is on stable storage.
   *
   * @example
   * ```ts
   * import { RawImage } from "./raw_image.ts";
   * import { deepEqual, rejects } from "node:assert/strict";
   * const path = await Deno.makeTempFile();
   * await Deno.writeFile(path, new Uint8Array(512));
   * const image = await RawImage.open(path);
   * await image.write(0, new Uint8Array([7]));
   * await image.flush();
   * deepEqual((await Deno.readFile(path)).subarray(0, 2), new Uint8Array([7, 0]));
   * await image.close();
   * await rejects(image.flush(), /is closed/);
   * await Deno.remove(path);
   * ```
   */
  flush(): Promise<void> {
    return this.#serial(async () => {
      if (!this.readonly) await this.#file.syncData();
    });
  }

  /**
   * Waits for operations in flight, then closes the file (idempotent).
   *
   * @returns Resolves when closed.
   *
   * @example
   * ```ts
   * import { RawImage } from "./raw_image.ts";
   * import { equal, rejects } from "node:assert/strict";
   * const path = await Deno.makeTempFile();
   * await Deno.writeFile(path, new Uint8Array(512));
   * const image = await RawImage.open(path);
   * const write = image.write(0, new Uint8Array([5]));
   * await image.close(); // waits for the write
   * await image.close();
   * await write;
   * equal((await Deno.readFile(path))[0], 5);
   * await rejects(image.read(0, new Uint8Array(1)), /is closed/);
   * await Deno.remove(path);
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    this.#file.close();
  }

  /** Closes the image (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
