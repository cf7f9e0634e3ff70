/**
 * A guest driver for one drive of a PIIX3 IDE channel, written the way
 * Linux's libata `ata_piix`/`ata_bmdma` drives it: IDENTIFY DEVICE, PIO reads
 * and writes (32-bit data port), bus-master DMA with PRD tables, FLUSH CACHE,
 * SET FEATURES, and decoding of the status, error and BMIS registers.
 *
 * With an IOMMU the driver maps its PRD table and DMA buffer into the
 * device's domain through {@linkcode AmdViDriver} and programs IOVAs, as a
 * DMA-API driver does; without one it programs physical addresses.
 *
 * @module
 */

import type { AmdViDriver, IommuDomain } from "./amd_vi_driver.ts";
import type { Guest } from "./guest.ts";

const SECTOR = 512;
const PAGE = 4096;
const PRD_EOT = 0x8000_0000;

/** Status register bits. */
const ST = { BSY: 0x80, DRDY: 0x40, DF: 0x20, DRQ: 0x08, ERR: 0x01 } as const;
/** BMIS bits. */
const BM = { ACTIVE: 0x01, ERROR: 0x02, INTERRUPT: 0x04 } as const;

/**
 * A memory region of the driver (physical).
 *
 * @example
 * ```ts
 * import type { IdeDriverRegion } from "./ide_driver.ts";
 * const region: IdeDriverRegion = { base: 0x0300_0000, size: 0x0020_0000 }; // a table page, then the buffer
 * ```
 */
export interface IdeDriverRegion {
  /** Physical base (page aligned). */
  readonly base: number;
  /** Bytes (at least two pages: a PRD table page and one buffer page). */
  readonly size: number;
}

/**
 * Options for {@linkcode IdeDriver}.
 *
 * @example
 * ```ts
 * import type { IdeDriverOptions } from "./ide_driver.ts";
 * const options: IdeDriverOptions = { bmBase: 0xc000, channel: 1, unit: 0, region: { base: 0x0300_0000, size: 0x10_0000 } };
 * ```
 */
export interface IdeDriverOptions {
  /** BAR4's I/O address (the bus-master registers). */
  readonly bmBase: number;
  /** Channel: 0 primary (0x1F0, IRQ 14), 1 secondary (0x170, IRQ 15). Default 0. */
  readonly channel?: number;
  /** Drive on the channel: 0 master, 1 slave. Default 0. */
  readonly unit?: number;
  /** RAM the driver owns: a PRD table page, then the DMA buffer. */
  readonly region: IdeDriverRegion;
  /**
   * The IOMMU driver and the device's domain: the region is mapped at
   * `iova` (default 0xd000_0000) and the device is given IOVAs.
   */
  readonly iommu?: {
    readonly driver: AmdViDriver;
    readonly domain: IommuDomain;
    readonly iova?: number;
  };
  /** Longest wait for a command (ms, default 5000). */
  readonly timeoutMs?: number;
}

/**
 * What IDENTIFY DEVICE reports, decoded.
 *
 * @example
 * ```ts
 * import type { IdeIdentity } from "./ide_driver.ts";
 * const describe = (id: IdeIdentity) => `${id.model} (${id.sectors} sectors)`;
 * ```
 */
export interface IdeIdentity {
  /** Model number. */
  readonly model: string;
  /** Serial number. */
  readonly serial: string;
  /** Firmware revision. */
  readonly firmware: string;
  /** Capacity in sectors (LBA48 when supported, else LBA28). */
  readonly sectors: number;
  /** Capacity reported in words 60–61 (LBA28). */
  readonly lba28Sectors: number;
  /** Whether the 48-bit feature set is supported. */
  readonly lba48: boolean;
  /** Multiword DMA modes supported (bit mask of word 63). */
  readonly mdmaModes: number;
  /** Ultra DMA modes supported (bit mask of word 88). */
  readonly udmaModes: number;
  /** The Ultra DMA mode selected, if any. */
  readonly udmaSelected: number | undefined;
  /** Whether FLUSH CACHE EXT is supported. */
  readonly flushExt: boolean;
  /** The raw 256 words. */
  readonly words: Uint16Array;
}

/**
 * The registers a command left behind.
 *
 * @example
 * ```ts
 * import { describeIdeError, type IdeCommandResult } from "./ide_driver.ts";
 * import { equal } from "node:assert/strict";
 * const registers = { status: 0x41, error: 0x10, bmStatus: 0 };
 * const result: IdeCommandResult = { ...registers, ok: false, description: describeIdeError(registers) };
 * equal(result.description, "status 0x41 (DRDY ERR), error 0x10 (IDNF)");
 * ```
 */
export interface IdeCommandResult {
  /** Status register. */
  readonly status: number;
  /** Error register. */
  readonly error: number;
  /** BMIS (DMA commands; 0 for others). */
  readonly bmStatus: number;
  /** Whether the command succeeded (no ERR, no BMIS error, BMIS interrupt for DMA). */
  readonly ok: boolean;
  /** A readable description of what went wrong (empty when ok). */
  readonly description: string;
}

/**
 * A region of a DMA transfer in the device's address space (IOVA with an IOMMU).
 *
 * @example
 * ```ts
 * import type { IdeDmaRegion } from "./ide_driver.ts";
 * const regions: IdeDmaRegion[] = [{ address: 0xd000_1000, length: 0x10000 }, { address: 0xd002_0000, length: 512 }];
 * ```
 */
export interface IdeDmaRegion {
  /** Bus address. */
  readonly address: number;
  /** Bytes (even, at most 64 KiB). */
  readonly length: number;
}

/**
 * A DMA command for {@linkcode IdeDriver.transfer}.
 *
 * @example
 * ```ts
 * import type { IdeTransferRequest } from "./ide_driver.ts";
 * const request: IdeTransferRequest = {
 *   write: false,
 *   lba: 0,
 *   count: 8,
 *   regions: [{ address: 0xd000_1000, length: 4096 }],
 * };
 * ```
 */
export interface IdeTransferRequest {
  /** Memory → disk (WRITE DMA); else disk → memory. */
  readonly write: boolean;
  /** First sector. */
  readonly lba: number;
  /** Sectors (0 means 256, or 65536 for the EXT form). */
  readonly count: number;
  /** The PRD regions (ignored when `prdAddress` is given). */
  readonly regions: readonly IdeDmaRegion[];
  /** Use the EXT (LBA48) command (default: when the range needs it). */
  readonly lba48?: boolean;
  /** Program this PRD table address instead of building a table (hostile tests). */
  readonly prdAddress?: number;
}

/**
 * A failed command.
 *
 * @example
 * ```ts
 * import { IdeError } from "./ide_driver.ts";
 * import { equal } from "node:assert/strict";
 * const error = new IdeError("READ DMA at 0", {
 *   status: 0x41,
 *   error: 0x04,
 *   bmStatus: 0x06,
 *   ok: false,
 *   description: "status 0x41 (DRDY ERR), error 0x04 (ABRT), BMIS 0x06 (ERROR INTERRUPT)",
 * });
 * equal(error.message, "READ DMA at 0 failed: status 0x41 (DRDY ERR), error 0x04 (ABRT), BMIS 0x06 (ERROR INTERRUPT)");
 * ```
 */
export class IdeError extends Error {
  /** The registers. */
  readonly result: IdeCommandResult;

  /**
   * Creates the error.
   *
   * @param what What was attempted.
   * @param result The registers.
   */
  constructor(what: string, result: IdeCommandResult) {
    super(`${what} failed: ${result.description}`);
    this.name = "IdeError";
    this.result = result;
  }
}

/**
 * Describes status, error and BMIS values the way a driver reports them.
 *
 * @param registers The three registers (`bmStatus` 0 for PIO commands).
 * @returns E.g. `status 0x41 (DRDY ERR), error 0x10 (IDNF)`.
 *
 * @example
 * ```ts
 * import { describeIdeError } from "./ide_driver.ts";
 * import { equal } from "node:assert/strict";
 * equal(
 *   describeIdeError({ status: 0x41, error: 0x04, bmStatus: 0x06 }),
 *   "status 0x41 (DRDY ERR), error 0x04 (ABRT), BMIS 0x06 (ERROR INTERRUPT)",
 * );
 * ```
 */
export function describeIdeError(
  registers: { status: number; error: number; bmStatus: number },
): string {
  const names = (value: number, table: Array<[number, string]>) =>
    table.filter(([bit]) => value & bit).map(([, n]) => n).join(" ");
  const hex = (v: number) => `0x${v.toString(16).padStart(2, "0")}`;
  const status = names(registers.status, [
    [0x80, "BSY"],
    [0x40, "DRDY"],
    [0x20, "DF"],
    [0x10, "DSC"],
    [0x08, "DRQ"],
    [0x01, "ERR"],
  ]);
  const parts = [`status ${hex(registers.status)} (${status || "none"})`];
  if (registers.status & ST.ERR) {
    const error = names(registers.error, [
      [0x80, "ICRC"],
      [0x40, "UNC"],
      [0x20, "MC"],
      [0x10, "IDNF"],
      [0x08, "MCR"],
      [0x04, "ABRT"],
      [0x02, "NM"],
      [0x01, "AMNF"],
    ]);
    parts.push(`error ${hex(registers.error)} (${error || "none"})`);
  }
  if (registers.bmStatus) {
    const bm = names(registers.bmStatus, [[0x01, "ACTIVE"], [0x02, "ERROR"], [0x04, "INTERRUPT"]]);
    parts.push(`BMIS ${hex(registers.bmStatus)} (${bm || "none"})`);
  }
  return parts.join(", ");
}

/** Decodes an ATA string (two characters per word, high byte first). */
function ataString(words: Uint16Array, at: number, count: number): string {
  let s = "";
  for (let i = 0; i < count; i++) {
    s += String.fromCharCode(words[at + i]! >> 8, words[at + i]! & 0xff);
  }
  return s.trimEnd();
}

/**
 * The driver.
 *
 * @example
 * ```ts
 * // The default export of a guest program (run with `machine.runGuest(url)`); BAR4 at I/O port 0xc000.
 * import type { Guest } from "./guest.ts";
 * import { IdeDriver } from "./ide_driver.ts";
 *
 * function program(guest: Guest): boolean {
 *   const ide = new IdeDriver(guest, {
 *     bmBase: 0xc000,
 *     region: { base: 0x300_0000, size: 0x10_0000 },
 *   });
 *   ide.identify();
 *   ide.writeDma(0, new Uint8Array(4096).fill(0x5a));
 *   const back = ide.readDma(0, 8); // 8 sectors
 *   ide.flush();
 *   return back.every((b) => b === 0x5a);
 * }
 * ```
 */
export class IdeDriver {
  #guest: Guest;
  #cmd: number;
  #ctl: number;
  #bm: number;
  #irq: number;
  #unit: number;
  #timeout: number;
  #prdPhys: number;
  #bufPhys: number;
  #bufSize: number;
  #prdBus: number;
  #bufBus: number;
  #lba48 = true;
  #flushExt = true;
  #dir = 0;

  /**
   * Creates the driver and, with an IOMMU, maps its region into the domain.
   *
   * @param guest The CPU.
   * @param options Where the controller and the driver's memory are.
   */
  constructor(guest: Guest, options: IdeDriverOptions) {
    this.#guest = guest;
    const channel = options.channel ?? 0;
    this.#cmd = channel === 0 ? 0x1f0 : 0x170;
    this.#ctl = channel === 0 ? 0x3f6 : 0x376;
    this.#bm = options.bmBase + 8 * channel;
    this.#irq = channel === 0 ? 14 : 15;
    this.#unit = options.unit ?? 0;
    this.#timeout = options.timeoutMs ?? 5000;
    const { base, size } = options.region;
    if (base % PAGE !== 0 || size % PAGE !== 0 || size < 2 * PAGE) {
      throw new RangeError("The IDE driver's region must be page aligned and at least two pages");
    }
    this.#prdPhys = base;
    this.#bufPhys = base + PAGE;
    // One PRD table page holds 512 entries of 64 KiB: 32 MiB per command at most.
    this.#bufSize = Math.min(size - PAGE, 512 * 0x1_0000);
    this.#prdBus = base;
    this.#bufBus = this.#bufPhys;
    if (options.iommu) {
      const iova = options.iommu.iova ?? 0xd000_0000;
      options.iommu.driver.map(options.iommu.domain, { iova, phys: base, size, perms: "rw" });
      this.#prdBus = iova;
      this.#bufBus = iova + PAGE;
    }
  }

  /**
   * Bytes the driver's DMA buffer holds (a larger transfer is split).
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { IdeDriver } from "./ide_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest): void {
   *   const region = { base: 0x300_0000, size: 0x10_0000 };
   *   const ide = new IdeDriver(guest, { bmBase: 0xc000, region });
   *   equal(ide.bufferSize, 0x10_0000 - 4096); // the region after its PRD table page
   * }
   * ```
   */
  get bufferSize(): number {
    return this.#bufSize;
  }

  /**
   * The DMA buffer's bus address (IOVA with an IOMMU).
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { IdeDriver } from "./ide_driver.ts";
   * import type { AmdViDriver, IommuDomain } from "./amd_vi_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest, driver: AmdViDriver, domain: IommuDomain): void {
   *   const region = { base: 0x300_0000, size: 0x10_0000 };
   *   const ide = new IdeDriver(guest, { bmBase: 0xc000, region, iommu: { driver, domain } });
   *   equal(ide.bufferAddress, 0xd000_1000); // the IOVA the controller is given
   * }
   * ```
   */
  get bufferAddress(): number {
    return this.#bufBus;
  }

  /**
   * The DMA buffer's physical address.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { IdeDriver } from "./ide_driver.ts";
   * import type { AmdViDriver, IommuDomain } from "./amd_vi_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest, driver: AmdViDriver, domain: IommuDomain): void {
   *   const region = { base: 0x300_0000, size: 0x10_0000 };
   *   const ide = new IdeDriver(guest, { bmBase: 0xc000, region, iommu: { driver, domain } });
   *   equal(ide.bufferPhysical, 0x300_1000); // where the CPU finds the data
   * }
   * ```
   */
  get bufferPhysical(): number {
    return this.#bufPhys;
  }

  // ---- Low level ----

  #select(): void {
    this.#guest.out8(this.#cmd + 6, 0xe0 | (this.#unit << 4));
  }

  /** Polls the alternate status until BSY clears; returns it. */
  #waitNotBusy(what: string): number {
    const deadline = performance.now() + this.#timeout;
    for (;;) {
      const s = this.#guest.in8(this.#ctl);
      if (!(s & ST.BSY)) return s;
      if (performance.now() > deadline) {
        throw new IdeError(what, this.#result(s, 0, undefined, "timed out with BSY set"));
      }
      this.#guest.waitIrq(this.#irq, { timeoutMs: 1 });
    }
  }

  #result(
    status: number,
    error: number,
    bmStatus: number | undefined,
    why?: string,
  ): IdeCommandResult {
    const dma = bmStatus !== undefined;
    bmStatus ??= 0;
    const ok = why === undefined && !(status & ST.ERR) && !(bmStatus & BM.ERROR) &&
      (!dma || (bmStatus & BM.INTERRUPT) !== 0);
    const description = ok ? "" : why ??
      (!(status & ST.ERR) && dma && !(bmStatus & BM.INTERRUPT) && !(bmStatus & BM.ERROR)
        ? `the PRD table ended before the transfer (${
          describeIdeError({ status, error, bmStatus })
        })`
        : describeIdeError({ status, error, bmStatus }));
    return { status, error, bmStatus, ok, description };
  }

  #taskFile(lba: number, count: number, lba48: boolean): void {
    const g = this.#guest;
    const c = this.#cmd;
    if (lba48) {
      g.out8(c + 6, 0x40 | (this.#unit << 4));
      const high = Math.floor(lba / 0x100_0000);
      g.out8(c + 2, (count >> 8) & 0xff);
      g.out8(c + 3, high & 0xff);
      g.out8(c + 4, (high >> 8) & 0xff);
      g.out8(c + 5, (high >> 16) & 0xff);
      g.out8(c + 2, count & 0xff);
      g.out8(c + 3, lba & 0xff);
      g.out8(c + 4, (lba >> 8) & 0xff);
      g.out8(c + 5, (lba >> 16) & 0xff);
    } else {
      g.out8(c + 6, 0xe0 | (this.#unit << 4) | (Math.floor(lba / 0x100_0000) & 0x0f));
      g.out8(c + 2, count & 0xff);
      g.out8(c + 3, lba & 0xff);
      g.out8(c + 4, (lba >> 8) & 0xff);
      g.out8(c + 5, (lba >> 16) & 0xff);
    }
  }

  /**
   * Runs a non-data command (FLUSH CACHE, SET FEATURES, or any other byte).
   *
   * @param command The command byte.
   * @param registers Features and sector count to program first.
   * @returns The registers after completion.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { ok } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): void {
   *   const result = ide.command(0xef, { feature: 0x82 }); // SET FEATURES: write cache off
   *   ok(result.ok, result.description);
   * }
   * ```
   */
  command(command: number, registers: { feature?: number; count?: number } = {}): IdeCommandResult {
    const g = this.#guest;
    this.#select();
    this.#waitNotBusy(`Command 0x${command.toString(16)}`);
    g.out8(this.#cmd + 1, registers.feature ?? 0);
    g.out8(this.#cmd + 2, registers.count ?? 0);
    g.out8(this.#cmd + 7, command);
    this.#waitNotBusy(`Command 0x${command.toString(16)}`);
    const status = g.in8(this.#cmd + 7);
    return this.#result(status, g.in8(this.#cmd + 1), undefined);
  }

  // ---- Commands ----

  /**
   * IDENTIFY DEVICE.
   *
   * @returns The decoded identity.
   * @throws {IdeError} When the drive aborts (or there is no drive).
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { ok } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): string {
   *   const id = ide.identify();
   *   ok(id.sectors > 0);
   *   return `${id.model} (${id.serial}): ${id.sectors * 512} bytes`;
   * }
   * ```
   */
  identify(): IdeIdentity {
    const g = this.#guest;
    this.#select();
    this.#waitNotBusy("IDENTIFY DEVICE");
    g.out8(this.#cmd + 7, 0xec);
    const status = this.#waitNotBusy("IDENTIFY DEVICE");
    if (!(status & ST.DRQ) || (status & ST.ERR)) {
      const error = g.in8(this.#cmd + 1);
      g.in8(this.#cmd + 7); // acknowledge
      throw new IdeError("IDENTIFY DEVICE", this.#result(status, error, undefined));
    }
    const words = new Uint16Array(256);
    for (let i = 0; i < 256; i += 2) {
      const d = g.in32(this.#cmd);
      words[i] = d & 0xffff;
      words[i + 1] = d >>> 16;
    }
    g.in8(this.#cmd + 7); // acknowledge
    const lba48 = (words[83]! & 0x0400) !== 0;
    this.#lba48 = lba48;
    this.#flushExt = (words[83]! & 0x2000) !== 0;
    const lba28Sectors = words[60]! + words[61]! * 0x10000;
    const sectors = lba48
      ? words[100]! + words[101]! * 0x10000 + words[102]! * 0x1_0000_0000 +
        words[103]! * 0x1_0000_0000_0000
      : lba28Sectors;
    const udma = words[88]! >> 8;
    return {
      model: ataString(words, 27, 20),
      serial: ataString(words, 10, 10),
      firmware: ataString(words, 23, 4),
      sectors,
      lba28Sectors,
      lba48,
      mdmaModes: words[63]! & 0xff,
      udmaModes: words[88]! & 0xff,
      udmaSelected: udma ? 31 - Math.clz32(udma) : undefined,
      flushExt: this.#flushExt,
      words,
    };
  }

  /**
   * Reads sectors by PIO (READ SECTORS, or READ SECTORS EXT beyond LBA28),
   * any number, in commands of up to 256 (65536) sectors.
   *
   * @param lba First sector.
   * @param count Sectors.
   * @returns The data.
   * @throws {IdeError} When a command fails.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): boolean {
   *   const boot = ide.readPio(0, 1);
   *   equal(boot.length, 512);
   *   return boot[510] === 0x55 && boot[511] === 0xaa; // an MBR?
   * }
   * ```
   */
  readPio(lba: number, count: number): Uint8Array {
    const out = new Uint8Array(count * SECTOR);
    const view = new DataView(out.buffer);
    const g = this.#guest;
    this.#pio(lba, count, false, (at) => {
      g.in8(this.#cmd + 7); // acknowledge the sector's interrupt
      for (let i = 0; i < SECTOR; i += 4) view.setUint32(at + i, g.in32(this.#cmd), true);
    });
    return out;
  }

  /**
   * Writes sectors by PIO (WRITE SECTORS / EXT).
   *
   * @param lba First sector.
   * @param data Whole sectors.
   * @throws {IdeError} When a command fails.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { deepEqual, throws } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): void {
   *   ide.writePio(100, new Uint8Array(1024).fill(7)); // sectors 100 and 101
   *   deepEqual(ide.readPio(100, 2), new Uint8Array(1024).fill(7));
   *   throws(() => ide.writePio(0, new Uint8Array(100)), /whole sectors/);
   * }
   * ```
   */
  writePio(lba: number, data: Uint8Array): void {
    if (data.length % SECTOR !== 0) throw new RangeError("PIO writes take whole sectors");
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const g = this.#guest;
    this.#pio(lba, data.length / SECTOR, true, (at) => {
      for (let i = 0; i < SECTOR; i += 4) g.out32(this.#cmd, view.getUint32(at + i, true));
    });
  }

  /**
   * PIO commands for `count` sectors from `lba`: for each sector, waits for
   * DRQ and lets `sector` move its 512 bytes (at byte `at` of the whole transfer).
   */
  #pio(lba: number, count: number, write: boolean, sector: (at: number) => void): void {
    const g = this.#guest;
    const name = write ? "WRITE SECTORS" : "READ SECTORS";
    let done = 0;
    while (done < count) {
      const ext = this.#lba48 && (lba + done + 256 > 0x1000_0000 || count - done > 256);
      const n = Math.min(count - done, ext ? 65536 : 256);
      this.#select();
      this.#waitNotBusy(name);
      this.#taskFile(lba + done, n, ext);
      g.out8(this.#cmd + 7, write ? (ext ? 0x34 : 0x30) : (ext ? 0x24 : 0x20));
      for (let s = 0; s < n; s++) {
        const status = this.#waitNotBusy(name);
        if ((status & ST.ERR) || !(status & ST.DRQ)) {
          throw new IdeError(
            `${name} at ${lba + done + s}`,
            this.#result(g.in8(this.#cmd + 7), g.in8(this.#cmd + 1), undefined),
          );
        }
        sector((done + s) * SECTOR);
      }
      if (write) {
        const status = this.#waitNotBusy(name);
        const result = this.#result(g.in8(this.#cmd + 7), g.in8(this.#cmd + 1), undefined);
        if (!result.ok || (status & ST.DRQ)) throw new IdeError(`${name} at ${lba + done}`, result);
      }
      done += n;
    }
  }

  /**
   * Runs one DMA command over explicit regions (bus addresses): the
   * building block of {@linkcode IdeDriver.readDma} and
   * {@linkcode IdeDriver.writeDma}, and a way to hand the device any
   * scatter list, hostile ones included. Never throws for a device error.
   *
   * @param request Direction, address, count and the PRD regions.
   * @returns The registers after the command.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): void {
   *   const address = ide.bufferAddress;
   *   const read = (length: number) =>
   *     ide.transfer({ write: false, lba: 0, count: 8, regions: [{ address, length }] });
   *   equal(read(4096).ok, true); // 8 sectors, one region
   *   equal(read(512).ok, false); // the PRD table ended before the transfer
   * }
   * ```
   */
  transfer(request: IdeTransferRequest): IdeCommandResult {
    this.startTransfer(request);
    return this.finishTransfer();
  }

  /**
   * Issues a DMA command and starts the bus master, without waiting
   * (finish with {@linkcode IdeDriver.finishTransfer}).
   *
   * @param request Direction, address, count, the PRD regions (or a PRD table address).
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import type { EduDriver } from "./edu_driver.ts";
   * import { ok } from "node:assert/strict";
   *
   * function program(ide: IdeDriver, edu: EduDriver): void {
   *   const regions = [{ address: ide.bufferAddress, length: 4096 }];
   *   ide.startTransfer({ write: false, lba: 0, count: 8, regions });
   *   edu.factorial(12); // another device works while the disk reads
   *   const result = ide.finishTransfer();
   *   ok(result.ok, result.description);
   * }
   * ```
   */
  startTransfer(request: IdeTransferRequest): void {
    const g = this.#guest;
    const m = g.memory;
    let table = this.#prdBus;
    if (request.prdAddress !== undefined) {
      table = request.prdAddress;
    } else {
      const entries = request.regions;
      if (entries.length === 0 || entries.length > PAGE / 8) {
        throw new RangeError(`A PRD table holds 1 to ${PAGE / 8} regions here`);
      }
      entries.forEach((r, i) => {
        m.write32(this.#prdPhys + i * 8, r.address >>> 0);
        const eot = i === entries.length - 1 ? PRD_EOT : 0;
        m.write32(this.#prdPhys + i * 8 + 4, ((r.length & 0xffff) | eot) >>> 0);
      });
    }
    const ext = request.lba48 ??
      (this.#lba48 && (request.lba + request.count > 0x1000_0000 || request.count > 256));
    const dir = request.write ? 0 : 0x08;
    this.#dir = dir;
    this.#select();
    this.#waitNotBusy("DMA");
    g.out32(this.#bm + 4, table);
    g.out8(this.#bm + 2, BM.ERROR | BM.INTERRUPT);
    g.out8(this.#bm, dir);
    this.#taskFile(request.lba, request.count, ext);
    g.out8(this.#cmd + 7, request.write ? (ext ? 0x35 : 0xca) : (ext ? 0x25 : 0xc8));
    g.out8(this.#bm, dir | 1);
  }

  /**
   * Waits for the DMA command started by {@linkcode IdeDriver.startTransfer}:
   * for its interrupt, or for the engine to stop without one (a PRD table
   * shorter than the transfer). Stops the engine and reads the registers.
   *
   * @returns The registers after the command.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest, ide: IdeDriver): number {
   *   const regions = [{ address: ide.bufferAddress, length: 4096 }];
   *   ide.startTransfer({ write: false, lba: 0, count: 8, regions });
   *   const result = ide.finishTransfer(); // the data is in the buffer when ok
   *   equal(result.ok, true, result.description);
   *   return guest.memory.read32(ide.bufferPhysical); // the first word read
   * }
   * ```
   */
  finishTransfer(): IdeCommandResult {
    const g = this.#guest;
    const dir = this.#dir;
    const deadline = performance.now() + this.#timeout;
    let bm = g.in8(this.#bm + 2);
    while ((bm & BM.ACTIVE) && !(bm & BM.INTERRUPT)) {
      if (performance.now() > deadline) {
        g.out8(this.#bm, dir);
        return this.#result(g.in8(this.#ctl), g.in8(this.#cmd + 1), bm, "timed out");
      }
      g.waitIrq(this.#irq, { timeoutMs: 1 });
      bm = g.in8(this.#bm + 2);
    }
    g.out8(this.#bm, dir);
    this.#waitNotBusy("DMA");
    const status = g.in8(this.#cmd + 7);
    const error = g.in8(this.#cmd + 1);
    g.out8(this.#bm + 2, BM.ERROR | BM.INTERRUPT);
    return this.#result(status, error, bm);
  }

  /** PRD regions for `bytes` of the driver's buffer (64 KiB each). */
  #bufferRegions(bytes: number): IdeDmaRegion[] {
    const regions: IdeDmaRegion[] = [];
    for (let at = 0; at < bytes; at += 0x1_0000) {
      regions.push({ address: this.#bufBus + at, length: Math.min(0x1_0000, bytes - at) });
    }
    return regions;
  }

  #maxSectors(lba: number, left: number): { n: number; ext: boolean } {
    const perBuffer = this.#bufSize / SECTOR;
    const ext = this.#lba48 && (lba + Math.min(left, 256) > 0x1000_0000 || left > 256);
    return { n: Math.min(left, perBuffer, ext ? 65536 : 256), ext };
  }

  /**
   * Reads sectors by DMA through the driver's buffer, any number.
   *
   * @param lba First sector.
   * @param count Sectors.
   * @returns The data.
   * @throws {IdeError} When a command fails.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): void {
   *   const data = ide.readDma(0, 16384); // 8 MiB: several commands through the buffer
   *   equal(data.length, 16384 * 512);
   * }
   * ```
   */
  readDma(lba: number, count: number): Uint8Array {
    const out = new Uint8Array(count * SECTOR);
    let done = 0;
    while (done < count) {
      const { n, ext } = this.#maxSectors(lba + done, count - done);
      const r = this.transfer({
        write: false,
        lba: lba + done,
        count: n,
        regions: this.#bufferRegions(n * SECTOR),
        lba48: ext,
      });
      if (!r.ok) throw new IdeError(`READ DMA at ${lba + done}`, r);
      this.#guest.memory.read(this.#bufPhys, out.subarray(done * SECTOR, (done + n) * SECTOR));
      done += n;
    }
    return out;
  }

  /**
   * Writes sectors by DMA through the driver's buffer.
   *
   * @param lba First sector.
   * @param data Whole sectors.
   * @throws {IdeError} When a command fails.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { deepEqual } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): void {
   *   const data = new Uint8Array(8192).map((_, i) => i);
   *   ide.writeDma(2048, data); // 16 sectors
   *   deepEqual(ide.readDma(2048, 16), data);
   * }
   * ```
   */
  writeDma(lba: number, data: Uint8Array): void {
    if (data.length % SECTOR !== 0) throw new RangeError("DMA writes take whole sectors");
    const count = data.length / SECTOR;
    let done = 0;
    while (done < count) {
      const { n, ext } = this.#maxSectors(lba + done, count - done);
      this.#guest.memory.write(this.#bufPhys, data.subarray(done * SECTOR, (done + n) * SECTOR));
      const r = this.transfer({
        write: true,
        lba: lba + done,
        count: n,
        regions: this.#bufferRegions(n * SECTOR),
        lba48: ext,
      });
      if (!r.ok) throw new IdeError(`WRITE DMA at ${lba + done}`, r);
      done += n;
    }
  }

  /**
   * FLUSH CACHE (EXT when IDENTIFY says the drive supports it, word 83
   * bit 13; EXT before `identify`): returns once the drive reports the data
   * on stable storage.
   *
   * @throws {IdeError} When the drive reports an error.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   *
   * function program(ide: IdeDriver): void {
   *   ide.identify(); // learns whether the drive takes FLUSH CACHE EXT
   *   ide.writeDma(0, new Uint8Array(512).fill(1));
   *   ide.flush(); // the sector is on stable storage when this returns
   * }
   * ```
   */
  flush(): void {
    const r = this.command(this.#flushExt ? 0xea : 0xe7);
    if (!r.ok) throw new IdeError("FLUSH CACHE", r);
  }

  /**
   * SET FEATURES.
   *
   * @param feature Subcommand (e.g. 0x03 set transfer mode, 0x82 disable write cache).
   * @param count Sector count value (e.g. 0x45: Ultra DMA mode 5).
   * @returns The registers.
   *
   * @example
   * ```ts
   * import type { IdeDriver } from "./ide_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ide: IdeDriver): void {
   *   const result = ide.setFeatures(0x03, 0x45); // transfer mode: Ultra DMA mode 5
   *   equal(result.ok, true, result.description);
   *   equal(ide.identify().udmaSelected, 5);
   * }
   * ```
   */
  setFeatures(feature: number, count = 0): IdeCommandResult {
    return this.command(0xef, { feature, count });
  }
}
