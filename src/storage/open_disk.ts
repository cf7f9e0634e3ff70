/**
 * Opens the storage behind a disk attachment: its raw image file, or an
 * in-memory disk.
 *
 * @module
 */

import type { DiskAttachment } from "../devices/device_model.ts";
import type { DiskBackend } from "./disk_backend.ts";
import { FaultyDisk } from "./faulty_disk.ts";
import { MemoryDisk } from "./memory_disk.ts";
import { RawImage } from "./raw_image.ts";

/**
 * Default size of an in-memory disk (64 MiB).
 *
 * @example
 * ```ts
 * import { DEFAULT_MEMORY_DISK_SIZE } from "./open_disk.ts";
 * import { equal } from "node:assert/strict";
 * equal(DEFAULT_MEMORY_DISK_SIZE, 64 * 1024 * 1024);
 * ```
 */
export const DEFAULT_MEMORY_DISK_SIZE: number = 64 * 1024 * 1024;

/**
 * Opens a disk's storage: the raw image `disk.file` (read-only when
 * `disk.readonly`), else an in-memory disk of `disk.size` bytes; with
 * `disk.faults`, wrapped in a {@linkcode FaultyDisk}.
 *
 * @param disk The attachment.
 * @returns The backend.
 * @throws {Error} When the image cannot be opened.
 *
 * @example
 * ```ts
 * import { openDiskBackend } from "./open_disk.ts";
 * import { equal } from "node:assert/strict";
 * const disk = openDiskBackend({
 *   kind: "disk", drive: "d0", size: 1 << 20, readonly: false, bus: 0, unit: 0, properties: {},
 * });
 * equal(disk.size, 1 << 20);
 * await disk.close();
 * ```
 */
export function openDiskBackend(disk: DiskAttachment): DiskBackend {
  const backend = disk.file !== undefined
    ? RawImage.openSync(disk.file, { readonly: disk.readonly })
    : new MemoryDisk(disk.size ?? DEFAULT_MEMORY_DISK_SIZE, { readonly: disk.readonly });
  return disk.faults ? new FaultyDisk(backend, disk.faults) : backend;
}
