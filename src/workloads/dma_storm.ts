/**
 * The `dma-storm` workload: every edu device copies seeded random data
 * between IOVA windows at once, round after round, while the guest remaps
 * pages under them; every byte is verified.
 *
 * Each edu device gets a read-only source window and a write-only
 * destination window of `pages` pages in its own IOMMU domain. A round
 * fills a random range of each device's source with seeded bytes and poisons
 * a random destination range, starts a copy (RAM → device buffer → RAM,
 * `size` bytes at most) on every device, and, every `remap` rounds and while
 * those copies run, points pages the copies do not use at fresh physical
 * pages (a 64-bit store of the leaf, INVALIDATE_IOMMU_PAGES and
 * COMPLETION_WAIT) and poisons the old ones. It then waits for every copy
 * and compares the destination with the source. Poisoned pages must stay
 * poisoned until they are reused (a device that wrote through a stale
 * translation would change them), and after each remap one device tries to
 * copy into its read-only window: the IOMMU must refuse it, log an
 * IO_PAGE_FAULT and let nothing land. Without an IOMMU the devices copy
 * between physical addresses and nothing is remapped.
 *
 * Options: `rounds` (default 200), `size` (bytes per copy, 1–4096, default
 * 4096), `pages` (per window, default 16), `remap` (every N rounds, default
 * 4; 0: never), `seed` (default 1).
 *
 * Metrics: `devices`, `transfers`, `bytes`, `copy_mib_s`, `remaps`,
 * `invalidations`, `permission_faults`, `unexpected_faults`, `mismatches`,
 * `stale_writes`.
 *
 * @module
 */

import type { IommuDomain } from "../guest/amd_vi_driver.ts";
import type { EduDriver } from "../guest/edu_driver.ts";
import type { GuestPciFunction } from "../guest/pci.ts";
import { seededRandom } from "../util/random.ts";
import {
  type DmaBuffer,
  type WorkloadContext,
  WorkloadError,
  type WorkloadSummary,
} from "./workload.ts";

/** The options `dma-storm` accepts. */
export const DMA_STORM_OPTIONS: readonly string[] = ["rounds", "size", "pages", "remap", "seed"];

const PAGE = 4096;
/** What an old page is filled with once its translation is gone. */
const POISON = 0xee;
/** edu's fault code for a permission fault (see EDU_FAULT_CODES). */
const PERMISSION_FAULT = 3;

interface StormDevice {
  readonly fn: GuestPciFunction;
  readonly name: string;
  readonly edu: EduDriver;
  readonly domain: IommuDomain | undefined;
  readonly src: DmaBuffer;
  readonly dst: DmaBuffer;
  /** The physical page behind each page of the windows, as mapped now. */
  readonly srcPages: number[];
  readonly dstPages: number[];
  /** Poisoned pages waiting to be reused. */
  readonly spares: number[];
  transfers: number;
  mismatches: number;
  faults: number;
}

interface Copy {
  readonly device: StormDevice;
  readonly from: number;
  readonly to: number;
  readonly length: number;
  readonly data: Uint8Array;
}

/** Reads or writes `length` bytes at `offset` of a window through its current pages. */
function windowBytes(
  ctx: WorkloadContext,
  pages: readonly number[],
  offset: number,
  target: Uint8Array,
  write: boolean,
): void {
  let done = 0;
  while (done < target.length) {
    const at = offset + done;
    const page = Math.floor(at / PAGE);
    const n = Math.min(target.length - done, PAGE - (at % PAGE));
    const phys = pages[page]! + (at % PAGE);
    const part = target.subarray(done, done + n);
    if (write) ctx.memory.write(phys, part);
    else ctx.memory.read(phys, part);
    done += n;
  }
}

function pagesOf(offset: number, length: number): number[] {
  const first = Math.floor(offset / PAGE);
  const last = Math.floor((offset + length - 1) / PAGE);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/**
 * Runs the workload.
 *
 * @param ctx The workload context.
 * @returns The summary.
 *
 * @example
 * ```ts
 * // deno task start -device amd-iommu -device edu -device edu --workload dma-storm,rounds=1000
 * import { Machine } from "../machine/machine.ts";
 * import { isWorkloadSummary } from "./workload.ts";
 * import { ok } from "node:assert/strict";
 * await using machine = await Machine.create({
 *   devices: [{ type: "amd-iommu" }, { type: "edu" }, { type: "edu" }],
 * });
 * const summary = await machine.runGuest(new URL("./dma_storm.ts", import.meta.url), {
 *   options: { rounds: "20" },
 * });
 * ok(isWorkloadSummary(summary) && summary.ok);
 * ```
 */
export default function dmaStorm(ctx: WorkloadContext): WorkloadSummary {
  const o = ctx.options;
  o.expectOnly(DMA_STORM_OPTIONS);
  const rounds = o.integer("rounds", 200, { min: 1, max: 100_000_000 });
  const size = o.integer("size", PAGE, { min: 1, max: PAGE });
  const pageCount = o.integer("pages", 16, { min: 2, max: 4096 });
  const remapEvery = o.integer("remap", 4, { min: 0 });
  const seed = o.integer("seed", 1, { min: 0, max: 0xffff_ffff });
  const fns = ctx.find("edu");
  if (fns.length === 0) {
    throw new WorkloadError("dma-storm needs an edu device (-device edu)");
  }
  const random = seededRandom(seed);
  const iommu = ctx.iommu();
  const windowBytesTotal = pageCount * PAGE;
  const devices: StormDevice[] = fns.map((fn) => {
    const edu = ctx.edu(fn);
    const src = ctx.dmaBuffer(fn, windowBytesTotal, { perms: "r" });
    const dst = ctx.dmaBuffer(fn, windowBytesTotal, { perms: "w" });
    const spareBase = iommu && remapEvery > 0 ? ctx.allocate(4 * PAGE) : 0;
    const spares = spareBase ? [0, 1, 2, 3].map((i) => spareBase + i * PAGE) : [];
    for (const page of spares) ctx.memory.fill(page, PAGE, POISON);
    return {
      fn,
      name: ctx.describe(fn),
      edu,
      domain: ctx.domain(fn),
      src,
      dst,
      srcPages: Array.from({ length: pageCount }, (_, i) => src.phys + i * PAGE),
      dstPages: Array.from({ length: pageCount }, (_, i) => dst.phys + i * PAGE),
      spares,
      transfers: 0,
      mismatches: 0,
      faults: 0,
    };
  });
  ctx.metric("devices", devices.length);
  let remaps = 0;
  let invalidations = 0;
  let staleWrites = 0;
  let permissionChecks = 0;
  let permissionFaults = 0;
  let bytes = 0;

  /** Takes a poisoned page, checking no device wrote it since it was unmapped. */
  const takeSpare = (device: StormDevice): number => {
    const page = device.spares.shift()!;
    const view = ctx.memory.view(page, PAGE);
    if (view.some((b) => b !== POISON)) {
      staleWrites++;
      ctx.log(`${device.name}: page 0x${page.toString(16)} changed after its invalidation`);
    }
    return page;
  };

  /** Remaps one source and one destination page no copy in flight uses. */
  const remap = (device: StormDevice, busy: ReadonlySet<string>): void => {
    for (const side of ["src", "dst"] as const) {
      const pages = side === "src" ? device.srcPages : device.dstPages;
      const window = side === "src" ? device.src : device.dst;
      const free = pages.map((_, i) => i).filter((i) => !busy.has(`${side}${i}`));
      if (free.length === 0 || device.spares.length === 0) continue;
      const index = free[random.int(free.length)]!;
      const fresh = takeSpare(device);
      const iova = window.iova + index * PAGE;
      const old = pages[index]!;
      iommu!.remap(device.domain!, { iova, phys: fresh, perms: side === "src" ? "r" : "w" });
      iommu!.flushPages(device.domain!, { iova, size: PAGE });
      pages[index] = fresh;
      // The invalidation has completed: no device may touch the old page any more.
      ctx.memory.fill(old, PAGE, POISON);
      device.spares.push(old);
      remaps++;
      invalidations++;
    }
  };

  /** A copy into the read-only window must fault, be logged, and change nothing. */
  const permissionCheck = (device: StormDevice): void => {
    permissionChecks++;
    const before = new Uint8Array(64);
    windowBytes(ctx, device.srcPages, PAGE, before, false);
    device.edu.startCopy({ src: device.src.iova, dst: device.src.iova + PAGE, length: 64 });
    const r = device.edu.waitDma();
    const after = new Uint8Array(64);
    windowBytes(ctx, device.srcPages, PAGE, after, false);
    const rid = (device.fn.device << 3) | device.fn.function;
    const logged = iommu!.readEvents().some((e) =>
      e.name === "IO_PAGE_FAULT" && e.deviceId === rid && e.flags.pe
    );
    if (
      !r.ok && r.faultCode === PERMISSION_FAULT && logged && after.every((b, i) => b === before[i])
    ) {
      permissionFaults++;
    }
  };

  const start = performance.now();
  for (let round = 0; round < rounds; round++) {
    const copies: Copy[] = [];
    const busy = new Map<StormDevice, Set<string>>();
    for (const device of devices) {
      const length = 1 + random.int(size);
      const from = random.int(windowBytesTotal - length + 1);
      const to = random.int(windowBytesTotal - length + 1);
      const data = new Uint8Array(length);
      for (let i = 0; i < length; i++) data[i] = random.int(256);
      windowBytes(ctx, device.srcPages, from, data, true);
      windowBytes(ctx, device.dstPages, to, new Uint8Array(length).fill(POISON), true);
      busy.set(
        device,
        new Set([
          ...pagesOf(from, length).map((p) => `src${p}`),
          ...pagesOf(to, length).map((p) => `dst${p}`),
        ]),
      );
      copies.push({ device, from, to, length, data });
    }
    for (const c of copies) {
      c.device.edu.startCopy({
        src: c.device.src.iova + c.from,
        dst: c.device.dst.iova + c.to,
        length: c.length,
      });
    }
    const remapping = iommu !== undefined && remapEvery > 0 && (round + 1) % remapEvery === 0;
    if (remapping) { for (const device of devices) remap(device, busy.get(device)!); }
    for (const c of copies) {
      const r = c.device.edu.waitDma();
      c.device.transfers++;
      if (!r.ok) {
        c.device.faults++;
        ctx.log(
          `${c.device.name}: copy faulted (code ${r.faultCode} at 0x${
            r.faultAddress.toString(16)
          })`,
        );
        continue;
      }
      const got = new Uint8Array(c.length);
      windowBytes(ctx, c.device.dstPages, c.to, got, false);
      if (got.some((b, i) => b !== c.data[i])) c.device.mismatches++;
      else bytes += c.length;
    }
    if (remapping) permissionCheck(devices[round % devices.length]!);
  }
  const ms = performance.now() - start;
  for (const device of devices) {
    ctx.step(
      `${device.name} copies`,
      device.faults === 0 && device.mismatches === 0,
      `${device.transfers} copies of up to ${size} bytes IOVA 0x${
        device.src.iova.toString(16)
      } -> 0x${
        device.dst.iova.toString(16)
      }, ${device.mismatches} mismatches, ${device.faults} faults`,
    );
  }
  if (iommu && remapEvery > 0) {
    for (const device of devices) while (device.spares.length > 0) takeSpare(device);
    ctx.step(
      "remaps under DMA",
      staleWrites === 0,
      `${remaps} pages remapped while copies ran, ${invalidations} invalidations completed, ${staleWrites} old pages written after their invalidation`,
    );
    ctx.step(
      "permission faults",
      permissionFaults === permissionChecks,
      `${permissionFaults} of ${permissionChecks} copies into a read-only window refused, logged as IO_PAGE_FAULT, nothing written`,
    );
  } else {
    ctx.step(
      "remaps under DMA",
      true,
      iommu ? "remap=0: no remapping" : "no IOMMU: devices copy between physical addresses",
    );
  }
  const transfers = devices.reduce((n, d) => n + d.transfers, 0);
  ctx.metric("transfers", transfers);
  ctx.metric("bytes", bytes);
  ctx.metric("copy_mib_s", ms > 0 ? Math.round(bytes / 2 ** 20 / (ms / 1000) * 100) / 100 : 0);
  ctx.metric("remaps", remaps);
  ctx.metric("invalidations", invalidations);
  ctx.metric("permission_faults", permissionFaults);
  ctx.metric("unexpected_faults", devices.reduce((n, d) => n + d.faults, 0));
  ctx.metric("mismatches", devices.reduce((n, d) => n + d.mismatches, 0));
  ctx.metric("stale_writes", staleWrites);
  return ctx.summary();
}
