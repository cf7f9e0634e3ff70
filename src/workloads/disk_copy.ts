/**
 * The `disk-copy` workload: copies a region of an IDE disk by DMA through
 * the IOMMU and proves the copy with CRC-32 checksums.
 *
 * It finds the drives of every PIIX3 IDE controller (IDENTIFY on each
 * channel and unit). The source is the first drive; the destination is the
 * second drive when there is one, otherwise the region right after the
 * source on the same drive. With `mode=pattern` (the default) it first
 * writes a seeded pattern to the source (each sector carries its LBA and
 * bytes derived from the seed and the LBA, so a sector at the wrong place is
 * caught), flushes, and knows the checksum to expect; with `mode=existing`
 * it copies what is there. It then reads the source chunk by chunk (READ DMA
 * through the controller's IOMMU domain), checks it, writes each chunk to
 * the destination (WRITE DMA), flushes (FLUSH CACHE), reads the destination
 * back and compares checksums.
 *
 * Options: `size` (bytes to copy, default 8M), `chunk` (bytes per DMA
 * command, default 1M, at most 32M), `seed` (default 1), `mode`
 * (`pattern` or `existing`), `lba` (first source sector, default 0).
 *
 * Metrics: `bytes`, `chunks`, `crc32` (of the data), `source`,
 * `destination`, `read_mib_s`, `write_mib_s`, `verify_mib_s`, `iommu`.
 *
 * @module
 */

import type { IdeDriver, IdeIdentity } from "../guest/ide_driver.ts";
import type { GuestPciFunction } from "../guest/pci.ts";
import { crc32 } from "../util/crc32.ts";
import { seededRandom } from "../util/random.ts";
import { type WorkloadContext, WorkloadError, type WorkloadSummary } from "./workload.ts";

const SECTOR = 512;

/** The options `disk-copy` accepts. */
export const DISK_COPY_OPTIONS: readonly string[] = ["size", "chunk", "seed", "mode", "lba"];

interface Drive {
  readonly fn: GuestPciFunction;
  readonly channel: 0 | 1;
  readonly unit: 0 | 1;
  readonly identity: IdeIdentity;
  readonly name: string;
}

/**
 * Fills `out` with the pattern of the sectors starting at `lba`: the LBA as
 * a 64-bit little-endian number, the seed, then seeded bytes.
 *
 * @param out Whole sectors.
 * @param lba The first sector's LBA.
 * @param seed The run's seed.
 */
function pattern(out: Uint8Array, lba: number, seed: number): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let s = 0; s * SECTOR < out.length; s++) {
    const at = s * SECTOR;
    const sector = lba + s;
    const random = seededRandom((seed ^ Math.imul(sector, 0x9e37_79b1)) >>> 0);
    view.setUint32(at, sector % 2 ** 32, true);
    view.setUint32(at + 4, Math.floor(sector / 2 ** 32), true);
    view.setUint32(at + 8, seed >>> 0, true);
    for (let i = 12; i < SECTOR; i += 4) view.setUint32(at + i, random.int(2 ** 32), true);
  }
}

function mibPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? Math.round((bytes / 2 ** 20) / (ms / 1000) * 10) / 10 : 0;
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

/** Finds every drive that answers IDENTIFY. */
function findDrives(ctx: WorkloadContext): Drive[] {
  const drives: Drive[] = [];
  for (const fn of ctx.find("ide")) {
    for (const channel of [0, 1] as const) {
      for (const unit of [0, 1] as const) {
        const probe = ctx.ide(fn, { channel, unit, bufferBytes: 4096 });
        let identity: IdeIdentity;
        try {
          identity = probe.identify();
        } catch {
          continue; // no drive there
        }
        if (identity.sectors === 0) continue;
        drives.push({
          fn,
          channel,
          unit,
          identity,
          name: `${ctx.describe(fn)} ${channel === 0 ? "primary" : "secondary"} ${
            unit === 0 ? "master" : "slave"
          }`,
        });
      }
    }
  }
  return drives;
}

/**
 * Runs the workload.
 *
 * @param ctx The workload context.
 * @returns The summary.
 *
 * @example
 * ```ts
 * // deno task start --workload disk-copy,size=16M,chunk=2M
 * import { Machine } from "../machine/machine.ts";
 * import { isWorkloadSummary } from "./workload.ts";
 * import { ok } from "node:assert/strict";
 * await using machine = await Machine.create({
 *   devices: [
 *     { type: "amd-iommu" },
 *     { type: "piix3-ide", id: "ide" },
 *     { type: "ide-hd", properties: { drive: "a", bus: "ide.0" } },
 *     { type: "ide-hd", properties: { drive: "b", bus: "ide.1" } },
 *   ],
 *   drives: [{ id: "a", size: 4 << 20 }, { id: "b", size: 4 << 20 }],
 * });
 * const summary = await machine.runGuest(new URL("./disk_copy.ts", import.meta.url), {
 *   options: { size: "1M", chunk: "256K" },
 * });
 * ok(isWorkloadSummary(summary) && summary.ok);
 * ```
 */
export default function diskCopy(ctx: WorkloadContext): WorkloadSummary {
  const o = ctx.options;
  o.expectOnly(DISK_COPY_OPTIONS);
  const size = o.size("size", 8 << 20, { min: SECTOR, max: 2 ** 40 });
  const chunk = o.size("chunk", 1 << 20, { min: SECTOR, max: 32 << 20 });
  const seed = o.integer("seed", 1, { min: 0, max: 0xffff_ffff });
  const mode = o.string("mode", "pattern", ["pattern", "existing"]);
  const firstLba = o.integer("lba", 0, { min: 0 });
  if (size % SECTOR !== 0 || chunk % SECTOR !== 0) {
    throw new WorkloadError(
      `Invalid workload options size=${size}, chunk=${chunk}: both must be whole sectors (512 bytes)`,
    );
  }
  const drives = findDrives(ctx);
  if (drives.length === 0) {
    throw new WorkloadError(
      "disk-copy needs an IDE disk (-device piix3-ide with -device ide-hd, or -drive …,if=ide)",
    );
  }
  const sectors = size / SECTOR;
  const source = drives[0]!;
  const target = drives[1] ?? source;
  const targetLba = target === source ? firstLba + sectors : 0;
  ctx.step(
    "drives",
    true,
    drives.map((d) => `${d.name}: '${d.identity.model}' ${d.identity.sectors} sectors`).join("; "),
  );
  for (
    const [drive, lba, what] of [[source, firstLba, "source"], [
      target,
      targetLba,
      "target",
    ]] as const
  ) {
    if (lba + sectors > drive.identity.sectors) {
      throw new WorkloadError(
        `disk-copy: the ${what} range (LBA ${lba} + ${sectors} sectors) does not fit ${drive.name} (${drive.identity.sectors} sectors); use a smaller size= or a larger disk`,
      );
    }
  }
  const bufferBytes = Math.min(chunk, 32 << 20);
  const open = (drive: Drive): IdeDriver => {
    const driver = ctx.ide(drive.fn, { channel: drive.channel, unit: drive.unit, bufferBytes });
    driver.identify(); // selects LBA48 commands when the drive has them
    return driver;
  };
  const src = open(source);
  const dst = target === source ? src : open(target);
  /** Reads by DMA into a poisoned buffer, so a read that moved nothing cannot pass for data. */
  const read = (driver: IdeDriver, lba: number, count: number): Uint8Array => {
    ctx.memory.fill(driver.bufferPhysical, count * SECTOR, 0xa5);
    return driver.readDma(lba, count);
  };
  const iommu = ctx.iommu() !== undefined;
  const where = (d: IdeDriver) =>
    iommu ? ` through IOVA 0x${d.bufferAddress.toString(16)}` : " at physical addresses";
  ctx.metric("source", `${source.name} LBA ${firstLba}`);
  ctx.metric("destination", `${target.name} LBA ${targetLba}`);
  ctx.metric("iommu", iommu ? "on" : "off");

  // 1. The seeded pattern (or nothing: copy what is there).
  let expected: number | undefined;
  if (mode === "pattern") {
    let crc = 0;
    const data = new Uint8Array(bufferBytes);
    try {
      for (let done = 0; done < sectors;) {
        const n = Math.min(bufferBytes / SECTOR, sectors - done);
        const part = data.subarray(0, n * SECTOR);
        pattern(part, firstLba + done, seed);
        crc = crc32(part, crc);
        src.writeDma(firstLba + done, part);
        done += n;
      }
      src.flush();
      expected = crc;
      ctx.step(
        "write pattern",
        true,
        `${size} bytes, seed ${seed}, CRC-32 ${hex32(crc)}, WRITE DMA${where(src)} + FLUSH CACHE`,
      );
    } catch (error) {
      ctx.step("write pattern", false, (error as Error).message);
      return ctx.summary();
    }
  }

  // 2. Read the source, check it, write each chunk to the destination.
  let sourceCrc = 0;
  let readMs = 0;
  let writeMs = 0;
  let chunks = 0;
  let firstBad: number | undefined;
  try {
    const want = new Uint8Array(bufferBytes);
    for (let done = 0; done < sectors;) {
      const n = Math.min(bufferBytes / SECTOR, sectors - done);
      let t = performance.now();
      const data = read(src, firstLba + done, n);
      readMs += performance.now() - t;
      sourceCrc = crc32(data, sourceCrc);
      if (mode === "pattern" && firstBad === undefined) {
        const expect = want.subarray(0, n * SECTOR);
        pattern(expect, firstLba + done, seed);
        const bad = data.findIndex((b, i) => b !== expect[i]);
        if (bad >= 0) firstBad = firstLba + done + Math.floor(bad / SECTOR);
      }
      t = performance.now();
      dst.writeDma(targetLba + done, data);
      writeMs += performance.now() - t;
      chunks++;
      done += n;
    }
    const t = performance.now();
    dst.flush();
    writeMs += performance.now() - t;
  } catch (error) {
    ctx.step("copy", false, (error as Error).message);
    return ctx.summary();
  }
  if (expected !== undefined) {
    ctx.step(
      "read source",
      sourceCrc === expected && firstBad === undefined,
      firstBad === undefined
        ? `READ DMA${where(src)}, CRC-32 ${hex32(sourceCrc)} as written`
        : `sector ${firstBad} differs from the pattern (CRC-32 ${hex32(sourceCrc)}, expected ${
          hex32(expected)
        })`,
    );
  }
  ctx.step(
    "copy",
    true,
    `${chunks} chunks of up to ${bufferBytes} bytes to ${target.name} LBA ${targetLba}${
      where(dst)
    }, flushed`,
  );

  // 3. Read the copy back and compare.
  let copyCrc = 0;
  let verifyMs = 0;
  try {
    for (let done = 0; done < sectors;) {
      const n = Math.min(bufferBytes / SECTOR, sectors - done);
      const t = performance.now();
      const data = read(dst, targetLba + done, n);
      verifyMs += performance.now() - t;
      copyCrc = crc32(data, copyCrc);
      done += n;
    }
  } catch (error) {
    ctx.step("verify copy", false, (error as Error).message);
    return ctx.summary();
  }
  ctx.step(
    "verify copy",
    copyCrc === sourceCrc,
    `CRC-32 of the copy ${hex32(copyCrc)}, of the source ${hex32(sourceCrc)}`,
  );
  ctx.metric("bytes", size);
  ctx.metric("chunks", chunks);
  ctx.metric("crc32", hex32(sourceCrc));
  ctx.metric("read_mib_s", mibPerSecond(size, readMs));
  ctx.metric("write_mib_s", mibPerSecond(size, writeMs));
  ctx.metric("verify_mib_s", mibPerSecond(size, verifyMs));
  return ctx.summary();
}
