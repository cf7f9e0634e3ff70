/**
 * A guest driver for the AMD-Vi IOMMU, written the way Linux drives it:
 * initialisation order, a device table, command and event rings, I/O page
 * tables built from a page allocator, map/unmap of 4 KiB, 2 MiB and 1 GiB
 * pages, strict-mode flushes (INVALIDATE_IOMMU_PAGES over aligned
 * power-of-two ranges, then COMPLETION_WAIT storing a sequence number that
 * is polled) and an event-log reader.
 *
 * @module
 */

import {
  AMD_VI_MMIO_BASE,
  AmdViControl,
  AmdViReg,
  AmdViStatus,
} from "../iommu/amd_vi_registers.ts";
import { commands } from "../iommu/commands.ts";
import { encodeDte } from "../iommu/device_table.ts";
import { decodeEvent, type IommuEvent } from "../iommu/events.ts";
import { LEVEL_SHIFT } from "../iommu/page_walk.ts";
import type { Guest } from "./guest.ts";
import { pciConfigRead } from "./pci.ts";

const PAGE = 4096;

/** Permissions of a mapping. */
export type MapPermissions = "r" | "w" | "rw";

/** Options for {@linkcode AmdViDriver}. */
export interface AmdViDriverOptions {
  /** A RAM region the driver owns: tables, rings and page tables come from here. */
  readonly region: { readonly base: number; readonly size: number };
  /** MMIO base (default: read from the IOMMU's PCI capability, else 0xFED80000). */
  readonly mmioBase?: number;
  /** Device-table entries (default 256: DeviceIDs 00:00.0 … 00:1f.7). */
  readonly deviceTableEntries?: number;
  /** Control.InvTimeOut code (default 4: 1 s, as Linux). */
  readonly invTimeout?: number;
  /** How long to poll a completion (ms, default 2000). */
  readonly completionTimeoutMs?: number;
}

/** An I/O page-table domain. */
export interface IommuDomain {
  /** DomainID. */
  readonly id: number;
  /** Paging mode (levels). */
  readonly levels: number;
  /** Root table (physical). */
  readonly root: number;
}

/** Options for {@linkcode AmdViDriver.map}. */
export interface MapOptions {
  /** IOVA (aligned to the page size). */
  readonly iova: number;
  /** Physical address (aligned to the page size). */
  readonly phys: number;
  /** Bytes (a multiple of the page size). */
  readonly size: number;
  /** Access allowed (default `rw`). */
  readonly perms?: MapPermissions;
  /** Page size: 4 KiB (default), 2 MiB or 1 GiB. */
  readonly pageSize?: 4096 | 2097152 | 1073741824;
}

/**
 * A page allocator over a RAM region (tables are zeroed on allocation).
 *
 * @example
 * ```ts
 * import { PageAllocator } from "./amd_vi_driver.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const a = new PageAllocator(new GuestMemory({ size: 1 << 20 }), { base: 0x10000, size: 0x4000 });
 * const p = a.allocate();
 * equal(p, 0x10000);
 * a.free(p);
 * equal(a.allocate(), 0x10000);
 * ```
 */
export class PageAllocator {
  #memory: Guest["memory"];
  #next: number;
  #end: number;
  #free: number[] = [];

  /**
   * Creates an allocator.
   *
   * @param memory Guest RAM.
   * @param region The pages to hand out (4 KiB aligned).
   */
  constructor(memory: Guest["memory"], region: { base: number; size: number }) {
    this.#memory = memory;
    this.#next = Math.ceil(region.base / PAGE) * PAGE;
    this.#end = region.base + region.size;
  }

  /**
   * Allocates `pages` contiguous, zeroed 4 KiB pages.
   *
   * @param pages How many (default 1).
   * @returns The physical address.
   *
   * @example
   * ```ts
   * import { PageAllocator } from "./amd_vi_driver.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, throws } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * ram.write32(0x10000, 0xdead);
   * const pages = new PageAllocator(ram, { base: 0x10000, size: 0x3000 });
   * equal(pages.allocate(), 0x10000);
   * equal(ram.read32(0x10000), 0); // zeroed
   * equal(pages.allocate(2), 0x11000); // two contiguous pages
   * throws(() => pages.allocate(), /Out of IOMMU table memory/);
   * ```
   */
  allocate(pages = 1): number {
    let address: number | undefined;
    if (pages === 1) address = this.#free.pop();
    if (address === undefined) {
      if (this.#next + pages * PAGE > this.#end) throw new Error("Out of IOMMU table memory");
      address = this.#next;
      this.#next += pages * PAGE;
    }
    this.#memory.fill(address, pages * PAGE, 0);
    return address;
  }

  /**
   * Returns a page.
   *
   * @param address The page.
   *
   * @example
   * ```ts
   * import { PageAllocator } from "./amd_vi_driver.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, throws } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const pages = new PageAllocator(ram, { base: 0x10000, size: 0x2000 });
   * const first = pages.allocate();
   * equal(pages.allocate(), 0x11000);
   * throws(() => pages.allocate(), /Out of IOMMU table memory/);
   * pages.free(first);
   * equal(pages.allocate(), first); // a freed page is handed out again
   * ```
   */
  free(address: number): void {
    this.#free.push(address);
  }
}

function permBits(perms: MapPermissions): bigint {
  return (perms.includes("r") ? 1n << 61n : 0n) | (perms.includes("w") ? 1n << 62n : 0n);
}

/**
 * The driver.
 *
 * @example
 * ```ts
 * // The default export of a guest program (run with `machine.runGuest(url)`): maps a page for 00:04.0.
 * import type { Guest } from "./guest.ts";
 * import { AmdViDriver } from "./amd_vi_driver.ts";
 *
 * function program(guest: Guest): void {
 *   const iommu = new AmdViDriver(guest, { region: { base: 0x100_0000, size: 0x100_0000 } });
 *   iommu.init();
 *   const domain = iommu.createDomain();
 *   iommu.attach(0x20, domain);
 *   iommu.map(domain, { iova: 0x1000_0000, phys: 0x20_0000, size: 0x1000 });
 *   // … DMA through IOVA 0x1000_0000 …
 *   iommu.unmap(domain, { iova: 0x1000_0000, size: 0x1000 }); // flushes and waits
 * }
 * ```
 */
export class AmdViDriver {
  #guest: Guest;
  #options: AmdViDriverOptions;
  #mmio: number;
  #pages: PageAllocator;
  #devTab = 0;
  #entries: number;
  #cmdBase = 0;
  #cmdSize = 0;
  #tail = 0;
  #head = 0;
  #evtBase = 0;
  #evtSize = 0;
  #sem = 0;
  #seq = 0n;
  #nextDomain = 1;

  /**
   * Creates the driver (call {@linkcode AmdViDriver.init} next).
   *
   * @param guest The CPU.
   * @param options Memory region and tuning.
   */
  constructor(guest: Guest, options: AmdViDriverOptions) {
    this.#guest = guest;
    this.#options = options;
    this.#mmio = options.mmioBase ?? AmdViDriver.findMmioBase(guest) ?? AMD_VI_MMIO_BASE;
    this.#pages = new PageAllocator(guest.memory, options.region);
    this.#entries = options.deviceTableEntries ?? 256;
  }

  /**
   * Finds the IOMMU's MMIO base in the secure-device capability of a
   * 1022:0008 function on bus 0.
   *
   * @param guest The CPU.
   * @returns The base, or `undefined` when there is no IOMMU.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { AmdViDriver } from "./amd_vi_driver.ts";
   *
   * function program(guest: Guest): string {
   *   const base = AmdViDriver.findMmioBase(guest);
   *   return base === undefined ? "no IOMMU" : `IOMMU registers at 0x${base.toString(16)}`;
   * }
   * ```
   */
  static findMmioBase(guest: Guest): number | undefined {
    for (let device = 0; device < 32; device++) {
      const id = pciConfigRead(guest, { device, function: 0, offset: 0 }, 4);
      if (id !== 0x0008_1022) continue;
      let cap = pciConfigRead(guest, { device, function: 0, offset: 0x34 }, 1);
      for (let hops = 0; cap >= 0x40 && hops < 48; hops++) {
        const header = pciConfigRead(guest, { device, function: 0, offset: cap }, 4);
        if ((header & 0xff) === 0x0f && ((header >> 16) & 7) === 3) {
          const lo = pciConfigRead(guest, { device, function: 0, offset: cap + 4 }, 4);
          const hi = pciConfigRead(guest, { device, function: 0, offset: cap + 8 }, 4);
          return hi * 2 ** 32 + ((lo & 0xffff_c000) >>> 0);
        }
        cap = (header >> 8) & 0xfc;
      }
    }
    return undefined;
  }

  /**
   * The MMIO base in use.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { AmdViDriver } from "./amd_vi_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest): void {
   *   const iommu = new AmdViDriver(guest, { region: { base: 0x100_0000, size: 0x10_0000 } });
   *   equal(iommu.mmioBase, AmdViDriver.findMmioBase(guest) ?? 0xfed8_0000);
   * }
   * ```
   */
  get mmioBase(): number {
    return this.#mmio;
  }

  /**
   * The page allocator (also for data pages in tests).
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest, iommu: AmdViDriver): void {
   *   const data = iommu.pages.allocate(); // a zeroed page from the driver's region
   *   equal(guest.read32(data), 0);
   *   iommu.map(iommu.createDomain(), { iova: 0x1000_0000, phys: data, size: 4096 });
   * }
   * ```
   */
  get pages(): PageAllocator {
    return this.#pages;
  }

  #reg(offset: number): bigint {
    return this.#guest.read64(this.#mmio + offset);
  }

  #setReg(offset: number, value: bigint): void {
    this.#guest.write64(this.#mmio + offset, value);
  }

  #control(set: bigint, clear: bigint): void {
    // Linux changes Control with a read-modify-write of the whole register.
    this.#setReg(AmdViReg.CONTROL, (this.#reg(AmdViReg.CONTROL) & ~clear) | set);
  }

  /**
   * Initialises the IOMMU in Linux's order: disable, flags, device table
   * (every entry blocks DMA: V = 1, TV = 0), command buffer (512 entries),
   * event log (512 entries), enable, then INVALIDATE_IOMMU_ALL and
   * COMPLETION_WAIT.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { AmdViDriver } from "./amd_vi_driver.ts";
   * import { AmdViStatus } from "../iommu/amd_vi_registers.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest): void {
   *   const iommu = new AmdViDriver(guest, { region: { base: 0x100_0000, size: 0x10_0000 } });
   *   iommu.init(); // from here every device's DMA is blocked until attach() or passThrough()
   *   equal(BigInt(iommu.status()) & AmdViStatus.CMD_BUF_RUN, AmdViStatus.CMD_BUF_RUN);
   * }
   * ```
   */
  init(): void {
    const c = AmdViControl;
    for (const bit of [c.CMD_BUF_EN, c.EVENT_INT_EN, c.EVENT_LOG_EN, c.IOMMU_EN]) {
      this.#control(0n, bit);
    }
    this.#control(
      c.COHERENT | (BigInt(this.#options.invTimeout ?? 4) << c.INV_TIMEOUT_SHIFT),
      7n << 5n,
    );
    const tableBytes = this.#entries * 32;
    const tablePages = Math.ceil(tableBytes / PAGE);
    this.#devTab = this.#pages.allocate(tablePages);
    const [blockQ0, blockQ1] = encodeDte({ valid: true });
    for (let i = 0; i < this.#entries; i++) {
      this.#guest.memory.write64(this.#devTab + i * 32 + 8, blockQ1);
      this.#guest.memory.write64(this.#devTab + i * 32, blockQ0);
    }
    this.#setReg(AmdViReg.DEV_TAB_BASE, BigInt(this.#devTab) | BigInt(tablePages - 1));
    this.#cmdSize = 512 * 16;
    this.#cmdBase = this.#pages.allocate(this.#cmdSize / PAGE);
    this.#setReg(AmdViReg.CMD_BUF_BASE, BigInt(this.#cmdBase) | (9n << 56n));
    this.#control(0n, c.CMD_BUF_EN);
    this.#guest.write32(this.#mmio + AmdViReg.CMD_HEAD, 0);
    this.#guest.write32(this.#mmio + AmdViReg.CMD_TAIL, 0);
    this.#tail = 0;
    this.#head = 0;
    this.#control(c.CMD_BUF_EN, 0n);
    this.#evtSize = 512 * 16;
    this.#evtBase = this.#pages.allocate(this.#evtSize / PAGE);
    this.#setReg(AmdViReg.EVT_LOG_BASE, BigInt(this.#evtBase) | (9n << 56n));
    this.#guest.write32(this.#mmio + AmdViReg.EVT_HEAD, 0);
    this.#guest.write32(this.#mmio + AmdViReg.EVT_TAIL, 0);
    this.#control(c.EVENT_LOG_EN, 0n);
    this.#sem = this.#pages.allocate();
    this.#control(c.IOMMU_EN, 0n);
    this.submit([commands.invalidateAll()]);
    this.completionWait();
  }

  /**
   * Queues commands (waiting for ring space as Linux does) and moves the tail.
   *
   * @param list Commands as word pairs.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { commands } from "../iommu/commands.ts";
   *
   * function program(iommu: AmdViDriver): void {
   *   iommu.submit([
   *     commands.invalidateDevtabEntry(0x20),
   *     commands.invalidatePages({ domainId: 1 }),
   *   ]);
   *   iommu.completionWait(); // both commands have run when this returns
   * }
   * ```
   */
  submit(list: ReadonlyArray<[bigint, bigint]>): void {
    const m = this.#guest.memory;
    for (const [q0, q1] of list) {
      const next = (this.#tail + 16) % this.#cmdSize;
      // Like Linux, re-read the head (an MMIO round trip) only when the ring
      // looks full with the head last seen.
      if (next === this.#head) {
        const deadline = performance.now() + (this.#options.completionTimeoutMs ?? 2000);
        while (next === (this.#head = Number(this.#reg(AmdViReg.CMD_HEAD) & 0x7fff0n))) {
          if (performance.now() > deadline) {
            throw new Error("Timed out waiting for command-buffer space");
          }
        }
      }
      m.write64(this.#cmdBase + this.#tail, q0);
      m.write64(this.#cmdBase + this.#tail + 8, q1);
      this.#tail = next;
    }
    this.#guest.write32(this.#mmio + AmdViReg.CMD_TAIL, this.#tail);
  }

  /**
   * Queues COMPLETION_WAIT storing the next sequence number and polls for it.
   *
   * @param options `interrupt: true` also sets ComWaitInt.
   * @returns The sequence number stored.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(iommu: AmdViDriver): void {
   *   const first = iommu.completionWait();
   *   equal(iommu.completionWait({ interrupt: true }), first + 1n);
   * }
   * ```
   */
  completionWait(options: { interrupt?: boolean } = {}): bigint {
    const seq = ++this.#seq;
    this.submit([commands.completionWait({ storeAddress: this.#sem, storeData: seq, ...options })]);
    const deadline = performance.now() + (this.#options.completionTimeoutMs ?? 2000);
    for (;;) {
      const now = this.#guest.memory.atomicLoad64(this.#sem);
      if (BigInt.asIntN(64, now - seq) >= 0n) break;
      // Sleep until the IOMMU's store (it notifies the word), like MWAIT on the
      // semaphore, instead of spinning a CPU the main isolate needs.
      this.#guest.waitMemory(this.#sem, now, { timeoutMs: 1 });
      if (performance.now() > deadline) {
        throw new Error(
          `Completion-wait loop timed out (sequence ${seq}, status 0x${
            this.status().toString(16)
          })`,
        );
      }
    }
    return seq;
  }

  /**
   * The Status register.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { AmdViStatus } from "../iommu/amd_vi_registers.ts";
   *
   * function program(iommu: AmdViDriver): boolean {
   *   const status = BigInt(iommu.status());
   *   return (status & AmdViStatus.EVENT_LOG_RUN) !== 0n; // false after an event-log overflow
   * }
   * ```
   */
  status(): number {
    return Number(this.#reg(AmdViReg.STATUS) & 0xffff_ffffn);
  }

  /**
   * Creates a domain with an empty root table.
   *
   * @param options Paging levels (default 4, a 48-bit IOVA space).
   * @returns The domain.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { equal, notEqual, throws } from "node:assert/strict";
   *
   * function program(iommu: AmdViDriver): void {
   *   const a = iommu.createDomain();
   *   const b = iommu.createDomain({ levels: 3 }); // a 39-bit IOVA space
   *   notEqual(a.id, b.id);
   *   equal(a.levels, 4);
   *   throws(() => iommu.createDomain({ levels: 7 }), /Invalid paging levels 7/);
   * }
   * ```
   */
  createDomain(options: { levels?: number } = {}): IommuDomain {
    const levels = options.levels ?? 4;
    if (!(levels >= 1 && levels <= 6)) {
      throw new RangeError(`Invalid paging levels ${levels}: must be 1 to 6`);
    }
    return { id: this.#nextDomain++, levels, root: this.#pages.allocate() };
  }

  #writeDte(rid: number, q0: bigint, q1: bigint): void {
    const m = this.#guest.memory;
    const at = this.#devTab + rid * 32;
    // V last when setting, first when clearing (as Linux): write the upper word first.
    m.atomicStore64(at + 8, q1);
    m.atomicStore64(at, q0);
    this.submit([commands.invalidateDevtabEntry(rid)]);
    this.completionWait();
  }

  /**
   * Attaches a device to a domain (DTE: V, TV, Mode, root, IR, IW, DomainID).
   *
   * @param rid Requester id.
   * @param domain The domain.
   * @param options DTE permissions and fault-suppression bits.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   *
   * function program(iommu: AmdViDriver): void {
   *   const domain = iommu.createDomain();
   *   iommu.attach((4 << 3) | 0, domain); // 00:04.0 translates through the domain
   *   iommu.attach((5 << 3) | 0, domain, { writable: false }); // 00:05.0 too, but may only read
   *   iommu.map(domain, { iova: 0x1000_0000, phys: 0x20_0000, size: 0x1000 });
   * }
   * ```
   */
  attach(
    rid: number,
    domain: IommuDomain,
    options: {
      readable?: boolean;
      writable?: boolean;
      suppressAll?: boolean;
      suppressRepeated?: boolean;
    } = {},
  ): void {
    const [q0, q1] = encodeDte({
      valid: true,
      translationValid: true,
      mode: domain.levels,
      root: domain.root,
      readable: options.readable ?? true,
      writable: options.writable ?? true,
      domainId: domain.id,
      suppressAll: options.suppressAll ?? false,
      suppressRepeated: options.suppressRepeated ?? false,
    });
    this.#writeDte(rid, q0, q1);
    this.flushDomain(domain);
  }

  /**
   * Lets a device DMA untranslated (identity domain: Mode 0, IR = IW = 1).
   *
   * @param rid Requester id.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   *
   * function program(iommu: AmdViDriver): void {
   *   iommu.passThrough((4 << 3) | 0); // 00:04.0 DMAs to physical addresses, as without an IOMMU
   *   // … later, take it back:
   *   iommu.detach((4 << 3) | 0);
   * }
   * ```
   */
  passThrough(rid: number): void {
    const [q0, q1] = encodeDte({
      valid: true,
      translationValid: true,
      readable: true,
      writable: true,
    });
    this.#writeDte(rid, q0, q1);
  }

  /**
   * Blocks a device's DMA (V = 1, TV = 0, as current Linux).
   *
   * @param rid Requester id.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   *
   * function program(iommu: AmdViDriver): void {
   *   const domain = iommu.createDomain();
   *   iommu.attach(0x20, domain);
   *   // … DMA by 00:04.0 …
   *   iommu.detach(0x20); // its DMA is blocked from here on, whatever the domain maps
   * }
   * ```
   */
  detach(rid: number): void {
    const [q0, q1] = encodeDte({ valid: true });
    this.#writeDte(rid, q0, q1);
  }

  /**
   * Maps `size` bytes at `iova` to `phys`. Does not flush (the IOMMU caches no
   * non-present entries, NpCache = 0).
   *
   * @param domain The domain.
   * @param options Addresses, size, permissions, page size.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { throws } from "node:assert/strict";
   *
   * function program(iommu: AmdViDriver): void {
   *   const domain = iommu.createDomain();
   *   iommu.map(domain, { iova: 0x1000_0000, phys: 0x20_0000, size: 0x4000, perms: "r" });
   *   const huge = 0x20_0000; // one 2 MiB page
   *   iommu.map(domain, { iova: 0x4000_0000, phys: 0x40_0000, size: huge, pageSize: huge });
   *   throws(() => iommu.map(domain, { iova: 0x800, phys: 0, size: 0x1000 }), /not aligned/);
   * }
   * ```
   */
  map(domain: IommuDomain, options: MapOptions): void {
    const pageSize = options.pageSize ?? PAGE;
    const leafLevel = pageSize === PAGE ? 1 : pageSize === 2 ** 21 ? 2 : 3;
    if (options.iova % pageSize || options.phys % pageSize || options.size % pageSize) {
      throw new RangeError(
        `Cannot map ${options.size} bytes at IOVA 0x${
          options.iova.toString(16)
        }: not aligned to the page size`,
      );
    }
    if (leafLevel > domain.levels) {
      throw new RangeError(`Page size ${pageSize} needs more levels than the domain has`);
    }
    const perms = permBits(options.perms ?? "rw");
    for (let off = 0; off < options.size; off += pageSize) {
      const slot = this.#slot(domain, options.iova + off, leafLevel, true)!;
      // Leaf: PR | address | IR/IW | FC (Linux sets FC in every leaf).
      this.#guest.memory.atomicStore64(slot, BigInt(options.phys + off) | perms | (1n << 60n) | 1n);
    }
  }

  /** The address of the entry that maps `iova` at `level`, creating tables on the way. */
  #slot(domain: IommuDomain, iova: number, level: number, create: boolean): number | undefined {
    const m = this.#guest.memory;
    let table = domain.root;
    for (let l = domain.levels; l > level; l--) {
      const at = table + (Math.floor(iova / 2 ** LEVEL_SHIFT[l]!) % 512) * 8;
      const e = m.read64(at);
      if ((e & 1n) === 0n || ((e >> 9n) & 7n) === 0n || ((e >> 9n) & 7n) === 7n) {
        if (!create) return undefined;
        const next = this.#pages.allocate();
        // Directory entry: PR | NextLevel | address | IR | IW (permissions are in the leaves).
        m.atomicStore64(at, BigInt(next) | (BigInt(l - 1) << 9n) | (3n << 61n) | 1n);
        table = next;
      } else {
        table = Number(e & 0x000f_ffff_ffff_f000n);
      }
    }
    return table + (Math.floor(iova / 2 ** LEVEL_SHIFT[level]!) % 512) * 8;
  }

  /**
   * Points an existing 4 KiB mapping at another physical page (one atomic
   * 64-bit store of the leaf, as a real driver does), without flushing.
   *
   * @param domain The domain.
   * @param options IOVA, the new physical page and permissions.
   * @returns The physical page it mapped before.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(iommu: AmdViDriver): void {
   *   const domain = iommu.createDomain();
   *   iommu.map(domain, { iova: 0x1000_0000, phys: 0x20_0000, size: 0x1000 });
   *   equal(iommu.remap(domain, { iova: 0x1000_0000, phys: 0x30_0000 }), 0x20_0000);
   *   iommu.flushPages(domain, { iova: 0x1000_0000, size: 0x1000 }); // now devices see it
   * }
   * ```
   */
  remap(
    domain: IommuDomain,
    options: { iova: number; phys: number; perms?: MapPermissions },
  ): number | undefined {
    const slot = this.#slot(domain, options.iova, 1, true)!;
    const old = this.#guest.memory.atomicLoad64(slot);
    this.#guest.memory.atomicStore64(
      slot,
      BigInt(options.phys) | permBits(options.perms ?? "rw") | (1n << 60n) | 1n,
    );
    return (old & 1n) ? Number(old & 0x000f_ffff_ffff_f000n) : undefined;
  }

  /**
   * Unmaps and flushes in strict mode: clears the leaves, sends
   * INVALIDATE_IOMMU_PAGES for aligned power-of-two ranges covering the
   * range, then COMPLETION_WAIT. When it returns, no device can reach the
   * old pages through the IOMMU.
   *
   * @param domain The domain.
   * @param options IOVA, size and the page size used to map it.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   *
   * function program(iommu: AmdViDriver): void {
   *   const domain = iommu.createDomain();
   *   iommu.map(domain, { iova: 0x1000_0000, phys: 0x20_0000, size: 0x8000 });
   *   iommu.unmap(domain, { iova: 0x1000_0000, size: 0x8000 }); // invalidates 32 KiB and waits
   *   // a DMA to 0x1000_0000 now faults: the old pages can be reused
   * }
   * ```
   */
  unmap(domain: IommuDomain, options: { iova: number; size: number; pageSize?: number }): void {
    const pageSize = options.pageSize ?? PAGE;
    const leafLevel = pageSize === PAGE ? 1 : pageSize === 2 ** 21 ? 2 : 3;
    for (let off = 0; off < options.size; off += pageSize) {
      const slot = this.#slot(domain, options.iova + off, leafLevel, false);
      if (slot !== undefined) this.#guest.memory.atomicStore64(slot, 0n);
    }
    this.flushPages(domain, { iova: options.iova, size: options.size });
  }

  /**
   * INVALIDATE_IOMMU_PAGES for `[iova, iova + size)` split into naturally
   * aligned power-of-two ranges, then COMPLETION_WAIT.
   *
   * @param domain The domain.
   * @param range IOVA and size.
   *
   * @example
   * ```ts
   * import type { AmdViDriver, IommuDomain } from "./amd_vi_driver.ts";
   *
   * function program(iommu: AmdViDriver, domain: IommuDomain): void {
   *   for (let i = 0; i < 4; i++) {
   *     iommu.remap(domain, { iova: 0x1000_0000 + i * 0x1000, phys: 0x30_0000 + i * 0x1000 });
   *   }
   *   iommu.flushPages(domain, { iova: 0x1000_0000, size: 0x4000 }); // one aligned 16 KiB range
   * }
   * ```
   */
  flushPages(domain: IommuDomain, range: { iova: number; size: number }): void {
    const list: Array<[bigint, bigint]> = [];
    let at = Math.floor(range.iova / PAGE) * PAGE;
    const end = range.iova + range.size;
    while (at < end) {
      let size = PAGE;
      while (at % (size * 2) === 0 && at + size * 2 <= end && size < 2 ** 40) size *= 2;
      list.push(commands.invalidatePages({ domainId: domain.id, start: at, size }));
      at += size;
    }
    this.submit(list);
    this.completionWait();
  }

  /**
   * Flushes a whole domain.
   *
   * @param domain The domain.
   *
   * @example
   * ```ts
   * import type { AmdViDriver, IommuDomain } from "./amd_vi_driver.ts";
   *
   * function program(iommu: AmdViDriver, domain: IommuDomain): void {
   *   iommu.remap(domain, { iova: 0x1000_0000, phys: 0x30_0000 });
   *   iommu.remap(domain, { iova: 0x7000_0000, phys: 0x31_0000 });
   *   iommu.flushDomain(domain); // one command for both pages (and the rest of the domain)
   * }
   * ```
   */
  flushDomain(domain: IommuDomain): void {
    this.submit([commands.invalidatePages({ domainId: domain.id })]);
    this.completionWait();
  }

  /**
   * INVALIDATE_IOMMU_ALL and COMPLETION_WAIT.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import type { AmdViDriver, IommuDomain } from "./amd_vi_driver.ts";
   *
   * function program(guest: Guest, iommu: AmdViDriver, domain: IommuDomain): void {
   *   guest.memory.atomicStore64(domain.root, 0n); // drop the first top-level entry by hand
   *   iommu.flushAll(); // no cached translation or device-table entry survives
   * }
   * ```
   */
  flushAll(): void {
    this.submit([commands.invalidateAll()]);
    this.completionWait();
  }

  /**
   * Reads and consumes every new event-log entry.
   *
   * @returns The decoded events, oldest first.
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   *
   * function program(iommu: AmdViDriver): string[] {
   *   // Each event is returned once: a second call returns only newer ones.
   *   return iommu.readEvents()
   *     .filter((e) => e.name === "IO_PAGE_FAULT")
   *     .map((e) => `device 0x${e.deviceId.toString(16)} at 0x${e.address.toString(16)}`);
   * }
   * ```
   */
  readEvents(): IommuEvent[] {
    const m = this.#guest.memory;
    const events: IommuEvent[] = [];
    let head = Number(this.#reg(AmdViReg.EVT_HEAD) & 0x7fff0n);
    const tail = Number(this.#reg(AmdViReg.EVT_TAIL) & 0x7fff0n);
    while (head !== tail) {
      const at = this.#evtBase + head;
      events.push(decodeEvent(m.read64(at), m.read64(at + 8)));
      m.fill(at, 16, 0);
      head = (head + 16) % this.#evtSize;
      this.#guest.write32(this.#mmio + AmdViReg.EVT_HEAD, head);
    }
    if (events.length > 0) {
      this.#guest.write32(this.#mmio + AmdViReg.STATUS, Number(AmdViStatus.EVENT_LOG_INT));
    }
    return events;
  }

  /**
   * Restarts the event log after an overflow (Linux's order).
   *
   * @example
   * ```ts
   * import type { AmdViDriver } from "./amd_vi_driver.ts";
   * import { AmdViStatus } from "../iommu/amd_vi_registers.ts";
   *
   * function program(iommu: AmdViDriver): number {
   *   const events = iommu.readEvents();
   *   const lost = (BigInt(iommu.status()) & AmdViStatus.EVENT_OVERFLOW) !== 0n;
   *   if (lost) iommu.restartEventLog(); // the IOMMU stopped logging when the ring filled
   *   return events.length;
   * }
   * ```
   */
  restartEventLog(): void {
    const c = AmdViControl;
    this.#control(0n, c.EVENT_LOG_EN);
    this.#guest.write32(this.#mmio + AmdViReg.STATUS, Number(AmdViStatus.EVENT_OVERFLOW));
    this.#control(c.EVENT_LOG_EN, 0n);
  }
}
