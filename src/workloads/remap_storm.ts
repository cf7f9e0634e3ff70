/**
 * The remap storm: every edu device copies continuously (repeat + copy DMA)
 * from a read-only source IOVA to a destination IOVA while this guest
 * program remaps both under them, flushes with a random mix of
 * invalidations, and poisons each old page right after its COMPLETION_WAIT.
 *
 * It checks, guest-side: no poison ever reaches a destination page (a device
 * read an old source page after its invalidation completed), every poisoned
 * page stays poisoned until it is reused (no device wrote an old destination
 * page), and writes through a read-only mapping fault without landing
 * (permissions). It returns its event log (page invalidated or reused at
 * trace epoch E) so a trace-based checker ({@linkcode findUseAfterInvalidate})
 * can order every device access against it exactly.
 *
 * @module
 */

import { AmdViDriver, type IommuDomain } from "../guest/amd_vi_driver.ts";
import { EduDriver } from "../guest/edu_driver.ts";
import type { Guest } from "../guest/guest.ts";
import { assignPciResources, enumeratePci } from "../guest/pci.ts";
import { commands } from "../iommu/commands.ts";
import { seededRandom } from "../util/random.ts";

/** The byte a page is filled with once invalidated. */
export const POISON = 0xee;

/** A page event of the storm, stamped with the trace epoch. */
export interface PageEvent {
  /** `invalid`: the page's translation was removed and the removal completed. `reuse`: it is about to be mapped again. */
  readonly kind: "invalid" | "reuse";
  /** Physical page. */
  readonly page: number;
  /** Trace epoch. */
  readonly epoch: number;
}

/** What the storm reports. */
export interface RemapStormResult {
  /** The seed. */
  readonly seed: number;
  /** Rounds run. */
  readonly rounds: number;
  /** Page events for the trace checker. */
  readonly events: readonly PageEvent[];
  /** Guest-side invariant violations (empty when all is well). */
  readonly violations: readonly string[];
  /** DMA iterations each device completed. */
  readonly iterations: readonly number[];
  /** Permission checks performed. */
  readonly permissionChecks: number;
}

const SRC_IOVA = 0x10_0000;
const DST_IOVA = 0x20_0000;
const TABLES = { base: 0x0100_0000, size: 0x0080_0000 };
const POOL_BASE = 0x0200_0000;
const POOL_PAGES = 512;
const PAGE = 4096;

interface StormDevice {
  readonly edu: EduDriver;
  readonly rid: number;
  readonly domain: IommuDomain;
  readonly pattern: number;
  src: number;
  dst: number;
}

/**
 * Runs the storm.
 *
 * @param guest The CPU.
 * @param options `seed` (default 1), `rounds` (default 200), `quarantine` (pages held poisoned, default 8).
 * @returns The report.
 *
 * @example
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import type { RemapStormResult } from "./remap_storm.ts";
 * import { equal, ok } from "node:assert/strict";
 * await using machine = await Machine.create({
 *   devices: [{ type: "amd-iommu" }, { type: "edu" }],
 * });
 * const r = await machine.runGuest(new URL("./remap_storm.ts", import.meta.url), {
 *   options: { seed: "7", rounds: "20" },
 * }) as RemapStormResult;
 * ok(r.rounds > 0);
 * equal(r.violations.length, 0);
 * ```
 */
export default function remapStorm(
  guest: Guest,
  options: Readonly<Record<string, string>> = {},
): RemapStormResult {
  const seed = Number(options.seed ?? "1") >>> 0;
  const rounds = Number(options.rounds ?? "200");
  const quarantineSize = Number(options.quarantine ?? "8");
  const rng = seededRandom(seed);
  const violations: string[] = [];
  const events: PageEvent[] = [];
  const fns = enumeratePci(guest);
  assignPciResources(guest, fns);
  const iommu = new AmdViDriver(guest, { region: TABLES });
  iommu.init();
  const pool: number[] = [];
  for (let i = 0; i < POOL_PAGES; i++) pool.push(POOL_BASE + i * PAGE);
  const take = (fill: number): number => {
    const page = pool.shift();
    if (page === undefined) throw new Error("Remap storm ran out of pages");
    events.push({ kind: "reuse", page, epoch: guest.traceMark() });
    guest.memory.fill(page, PAGE, fill);
    return page;
  };
  const devices: StormDevice[] = fns
    .filter((f) => f.vendorId === 0x1234 && f.deviceId === 0x11e8)
    .map((f, k) => {
      const rid = (f.device << 3) | f.function;
      const domain = iommu.createDomain({ levels: 3 });
      iommu.attach(rid, domain);
      const pattern = 0x10 + k;
      const device: StormDevice = {
        edu: new EduDriver(guest, { base: f.bars[0]!.address, irqLine: 20 + ((f.device + 0) % 4) }),
        rid,
        domain,
        pattern,
        src: take(pattern),
        dst: take(0),
      };
      iommu.map(domain, { iova: SRC_IOVA, phys: device.src, size: PAGE, perms: "r" });
      iommu.map(domain, { iova: DST_IOVA, phys: device.dst, size: PAGE, perms: "rw" });
      device.edu.startRepeat({ src: SRC_IOVA, dst: DST_IOVA, length: PAGE, copy: true });
      return device;
    });
  if (devices.length === 0) throw new Error("The remap storm needs at least one edu device");
  const quarantine: number[] = [];
  const verifyPoisoned = (page: number, when: string) => {
    for (let i = 0; i < PAGE; i++) {
      const b = guest.memory.read8(page + i);
      if (b !== POISON) {
        violations.push(
          `${when}: poisoned page 0x${page.toString(16)} was written (byte ${i} = 0x${
            b.toString(16)
          })`,
        );
        return;
      }
    }
  };
  let permissionChecks = 0;
  for (let round = 0; round < rounds; round++) {
    const d = rng.pick(devices);
    const isSrc = rng.next() < 0.5;
    const iova = isSrc ? SRC_IOVA : DST_IOVA;
    const fresh = take(isSrc ? d.pattern : 0);
    const old = iommu.remap(d.domain, { iova, phys: fresh, perms: isSrc ? "r" : "rw" });
    if (isSrc) d.src = fresh;
    else d.dst = fresh;
    switch (rng.int(4)) {
      case 0:
        iommu.flushPages(d.domain, { iova, size: PAGE });
        break;
      case 1:
        iommu.flushDomain(d.domain);
        break;
      case 2:
        iommu.flushAll();
        break;
      default:
        iommu.submit([
          commands.invalidateDevtabEntry(d.rid),
          commands.invalidatePages({ domainId: d.domain.id, start: iova, size: PAGE }),
        ]);
        iommu.completionWait();
    }
    // The invalidation completed: from now on no device may touch the old page.
    if (old !== undefined) {
      events.push({ kind: "invalid", page: old, epoch: guest.traceMark() });
      guest.memory.fill(old, PAGE, POISON);
      quarantine.push(old);
    }
    for (const device of devices) {
      for (let i = 0; i < PAGE; i += 64) {
        if (guest.memory.read8(device.dst + i) === POISON) {
          violations.push(
            `round ${round}: poison copied into the destination of device ${device.rid}: a device read an invalidated page`,
          );
          break;
        }
      }
    }
    if (quarantine.length > quarantineSize) {
      const page = quarantine.shift()!;
      verifyPoisoned(page, `round ${round}`);
      pool.push(page);
    }
    if (round % 25 === 24) {
      // Permissions: a device write through the read-only source mapping must
      // fault and must not land.
      permissionChecks++;
      const stopped = d.edu.stopRepeat();
      if (!stopped.ok) {
        violations.push(
          `round ${round}: device ${d.rid} failed while copying (fault code ${stopped.faultCode})`,
        );
      }
      const before = guest.memory.read8(d.src);
      const r = d.edu.dma({ direction: "to-ram", ram: SRC_IOVA, buffer: 0x40000, length: 64 });
      if (r.ok || r.faultCode !== 3) {
        violations.push(
          `round ${round}: a write through a read-only mapping did not fault with a permission error (code ${r.faultCode})`,
        );
      }
      if (guest.memory.read8(d.src) !== before) {
        violations.push(`round ${round}: a denied write reached memory`);
      }
      d.edu.startRepeat({ src: SRC_IOVA, dst: DST_IOVA, length: PAGE, copy: true });
    }
  }
  const iterations: number[] = [];
  for (const device of devices) {
    const stopped = device.edu.stopRepeat();
    if (!stopped.ok) {
      violations.push(`device ${device.rid} stopped with fault code ${stopped.faultCode}`);
    }
    iterations.push(Number(device.edu.iterations()));
  }
  for (const page of quarantine) verifyPoisoned(page, "end");
  for (const e of iommu.readEvents()) {
    if (!(e.name === "IO_PAGE_FAULT" && e.flags.pe && e.flags.rw)) {
      violations.push(
        `unexpected IOMMU event ${e.name} for device 0x${e.deviceId.toString(16)} at 0x${
          e.address.toString(16)
        }`,
      );
    }
  }
  return { seed, rounds, events, violations, iterations, permissionChecks };
}
