/**
 * The {@linkcode WorkloadContext} every guest program receives: the agent's
 * CPU plus device discovery, drivers, a RAM allocator, per-device IOMMU
 * domains and the summary being built.
 *
 * @module
 */

import { AmdViDriver, type IommuDomain } from "../guest/amd_vi_driver.ts";
import { E1000Driver } from "../guest/e1000_driver.ts";
import { EduDriver } from "../guest/edu_driver.ts";
import type { Guest, WaitIrqOptions } from "../guest/guest.ts";
import { IdeDriver } from "../guest/ide_driver.ts";
import { assignPciResources, enumeratePci, type GuestPciFunction } from "../guest/pci.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  type DmaBuffer,
  type DmaBufferOptions,
  type E1000DriverChoice,
  type IdeDriverChoice,
  type WorkloadContext,
  type WorkloadDeviceKind,
  WorkloadError,
  type WorkloadMetric,
  type WorkloadStep,
  type WorkloadSummary,
} from "./workload.ts";
import { WorkloadOptions } from "./workload_options.ts";

const PAGE = 4096;
/** Where buffers start in guest RAM (below: room for a guest's own fixed addresses). */
const HEAP_BASE = 0x0100_0000;
/** Where each device's IOVAs start: inside edu's 28-bit DMA mask, away from RAM addresses in use. */
const IOVA_BASE = 0x0800_0000;
/** Bytes of RAM for the IOMMU's tables, command buffer and event log. */
const IOMMU_TABLE_BYTES = 0x0080_0000;

const IDS: Readonly<Record<WorkloadDeviceKind, readonly [number, number]>> = {
  edu: [0x1234, 0x11e8],
  ide: [0x8086, 0x7010],
  e1000: [0x8086, 0x100e],
  iommu: [0x1022, 0x0008],
};

/** Largest DMA address each device kind drives (edu: QEMU's 28-bit mask). */
const IOVA_LIMIT: Partial<Record<WorkloadDeviceKind, number>> = { edu: 2 ** 28 };

function roundUp(bytes: number): number {
  return Math.ceil(bytes / PAGE) * PAGE;
}

/** Where a context runs: its options and which machine of how many. */
export interface GuestContextInit {
  /** The `opt=value` options. */
  readonly options?: Readonly<Record<string, string>>;
  /** This machine's index (default 0). */
  readonly machineIndex?: number;
  /** Machines running the workload (default 1). */
  readonly machineCount?: number;
}

/**
 * The context, wrapping a {@linkcode Guest} (every `Guest` method is passed
 * through unchanged).
 *
 * @example
 * ```ts
 * import { GuestContext } from "./guest_context.ts";
 * import { AgentBus } from "../machine/agent_runtime.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { MACHINE_BLOCK_WORDS, TARGET_BLOCK_WORDS } from "../shared/layout.ts";
 * import { equal } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 64 << 20 });
 * const bus = new AgentBus({
 *   type: "init", index: 1, memory: ram.descriptor(),
 *   machine: new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4),
 *   targets: [new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4)], ports: [],
 *   program: "", options: {}, accessTimeoutMs: 100,
 * }, { postMessage: () => {} });
 * const ctx = new GuestContext(bus, { options: { rounds: "2" } });
 * equal(ctx.options.integer("rounds", 1), 2);
 * equal(ctx.allocate(100), 0x0100_0000);
 * ctx.step("allocation", true, "one page");
 * equal(ctx.summary().ok, true);
 * ```
 */
export class GuestContext implements WorkloadContext {
  /** Guest RAM. */
  readonly memory: GuestMemory;
  /** This agent's index. */
  readonly agentIndex: number;
  /** The options. */
  readonly options: WorkloadOptions;
  /** This machine's index. */
  readonly machineIndex: number;
  /** Machines running the workload. */
  readonly machineCount: number;
  #guest: Guest;
  #functions: GuestPciFunction[] | undefined;
  #iommu: AmdViDriver | null | undefined;
  #domains = new Map<number, IommuDomain>();
  #iovaNext = new Map<number, number>();
  #heap = HEAP_BASE;
  #steps: WorkloadStep[] = [];
  #metrics: Record<string, WorkloadMetric> = {};

  /**
   * Wraps a CPU.
   *
   * @param guest The agent's bus.
   * @param init Options and placement.
   */
  constructor(guest: Guest, init: GuestContextInit = {}) {
    this.#guest = guest;
    this.memory = guest.memory;
    this.agentIndex = guest.agentIndex;
    this.options = new WorkloadOptions(init.options ?? {});
    this.machineIndex = init.machineIndex ?? 0;
    this.machineCount = init.machineCount ?? 1;
  }

  // ---- Guest, passed through ----

  /**
   * Reads a byte of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @returns The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const at = ctx.allocate(4096);
   *   ctx.write8(at, 0x5a);
   *   equal(ctx.read8(at), 0x5a);
   *   equal(ctx.read8(at + 1), 0); // allocations are zeroed
   * }
   * ```
   */
  read8(address: number): number {
    return this.#guest.read8(address);
  }
  /**
   * Reads 16 bits of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @returns The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const at = ctx.allocate(4096);
   *   ctx.write32(at, 0x1234_5678);
   *   equal(ctx.read16(at), 0x5678); // little-endian
   *   equal(ctx.read16(at + 2), 0x1234);
   * }
   * ```
   */
  read16(address: number): number {
    return this.#guest.read16(address);
  }
  /**
   * Reads 32 bits of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @returns The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   for (const fn of ctx.find("edu")) {
   *     const bar0 = fn.bars.find((b) => b.index === 0)!.address;
   *     equal(ctx.read32(bar0), 0x010000ed); // edu's identification register
   *   }
   * }
   * ```
   */
  read32(address: number): number {
    return this.#guest.read32(address);
  }
  /**
   * Reads 64 bits of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @returns The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const at = ctx.allocate(8);
   *   ctx.write32(at, 0xffff_ffff);
   *   equal(ctx.read64(at), 0xffff_ffffn);
   * }
   * ```
   */
  read64(address: number): bigint {
    return this.#guest.read64(address);
  }
  /**
   * Writes a byte of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const at = ctx.allocate(4096);
   *   ctx.write8(at + 3, 0x12);
   *   equal(ctx.read32(at), 0x1200_0000); // the top byte of the little-endian word
   * }
   * ```
   */
  write8(address: number, value: number): void {
    this.#guest.write8(address, value);
  }
  /**
   * Writes 16 bits of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const at = ctx.allocate(4096);
   *   ctx.write16(at, 0xbeef);
   *   equal(ctx.read8(at), 0xef);
   *   equal(ctx.read8(at + 1), 0xbe);
   * }
   * ```
   */
  write16(address: number, value: number): void {
    this.#guest.write16(address, value);
  }
  /**
   * Writes 32 bits of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   for (const fn of ctx.find("edu")) {
   *     const bar0 = fn.bars.find((b) => b.index === 0)!.address;
   *     ctx.write32(bar0 + 0x04, 0x1234_5678); // edu's liveness register
   *     equal(ctx.read32(bar0 + 0x04), 0xedcb_a987); // reads back inverted
   *   }
   * }
   * ```
   */
  write32(address: number, value: number): void {
    this.#guest.write32(address, value);
  }
  /**
   * Writes 64 bits of physical memory (RAM or MMIO).
   *
   * @param address Physical address.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const at = ctx.allocate(8);
   *   ctx.write64(at, 0x1_0000_0002n);
   *   equal(ctx.read32(at), 2);
   *   equal(ctx.read32(at + 4), 1);
   * }
   * ```
   */
  write64(address: number, value: bigint): void {
    this.#guest.write64(address, value);
  }
  /**
   * Reads a byte from an I/O port.
   *
   * @param port Port number.
   * @returns The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   ctx.out32(0xcf8, 0x8000_0008); // PCI 00:00.0, the dword at 0x08
   *   equal(ctx.in8(0xcfc + 3), 0x06); // base class: a bridge
   * }
   * ```
   */
  in8(port: number): number {
    return this.#guest.in8(port);
  }
  /**
   * Reads 16 bits from an I/O port.
   *
   * @param port Port number.
   * @returns The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   ctx.out32(0xcf8, 0x8000_0000); // PCI 00:00.0, vendor and device id
   *   equal(ctx.in16(0xcfc), 0x8086); // the q35 host bridge is Intel's
   * }
   * ```
   */
  in16(port: number): number {
    return this.#guest.in16(port);
  }
  /**
   * Reads 32 bits from an I/O port.
   *
   * @param port Port number.
   * @returns The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   ctx.out32(0xcf8, 0x8000_0000); // PCI 00:00.0, vendor and device id
   *   equal(ctx.in32(0xcfc), 0x29c0_8086);
   * }
   * ```
   */
  in32(port: number): number {
    return this.#guest.in32(port);
  }
  /**
   * Writes a byte to an I/O port.
   *
   * @param port Port number.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   ctx.out8(0x1f6, 0xe0); // select the master drive of the primary IDE channel
   *   equal(ctx.in8(0x1f6), 0xe0);
   * }
   * ```
   */
  out8(port: number, value: number): void {
    this.#guest.out8(port, value);
  }
  /**
   * Writes 16 bits to an I/O port.
   *
   * @param port Port number.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   ctx.out32(0xcf8, 0x8000_2004); // PCI 00:04.0, the command register
   *   ctx.out16(0xcfc, 0x0006); // memory decoding and bus mastering
   *   equal(ctx.in16(0xcfc) & 0x0006, 0x0006);
   * }
   * ```
   */
  out16(port: number, value: number): void {
    this.#guest.out16(port, value);
  }
  /**
   * Writes 32 bits to an I/O port.
   *
   * @param port Port number.
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   ctx.out32(0xcf8, 0x8000_2000); // PCI 00:04.0, vendor and device id
   *   equal(ctx.in32(0xcfc), 0x11e8_1234); // an edu device in slot 4
   * }
   * ```
   */
  out32(port: number, value: number): void {
    this.#guest.out32(port, value);
  }
  /**
   * Whether interrupt line `line` is asserted.
   *
   * @param line GSI (0–23).
   * @returns The level.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   *
   * function program(ctx: GuestContext): void {
   *   const [fn] = ctx.find("edu");
   *   if (!fn) return;
   *   ctx.edu(fn).raise(0x1);
   *   while (!ctx.irqLevel(ctx.irqLine(fn))) ctx.sleep(1); // edu raises its line level-triggered
   *   ctx.edu(fn).acknowledge(0x1);
   * }
   * ```
   */
  irqLevel(line: number): boolean {
    return this.#guest.irqLevel(line);
  }
  /**
   * Waits until interrupt line `line` is asserted.
   *
   * @param line GSI (0–23).
   * @param options Timeout.
   * @returns `true` when asserted, `false` on timeout.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const [fn] = ctx.find("edu");
   *   if (!fn) return;
   *   const edu = ctx.edu(fn);
   *   edu.raise(0x1);
   *   equal(ctx.waitIrq(ctx.irqLine(fn), { timeoutMs: 1000 }), true);
   *   edu.acknowledge(0x1);
   * }
   * ```
   */
  waitIrq(line: number, options?: WaitIrqOptions): boolean {
    return this.#guest.waitIrq(line, options);
  }
  /**
   * Sleeps while the 64-bit RAM value at `address` equals `expected`, until the
   * IOMMU's COMPLETION_WAIT stores there (it wakes such sleepers), or the timeout.
   * Other writers do not wake it: re-check and loop.
   *
   * @param address 8-byte aligned guest-physical address in RAM.
   * @param expected The value seen last.
   * @param options Longest sleep (default 1 ms).
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   *
   * function program(ctx: GuestContext, semaphore: number): bigint {
   *   let value = ctx.read64(semaphore);
   *   while (value === 0n) {
   *     ctx.waitMemory(semaphore, value, { timeoutMs: 10 }); // instead of spinning
   *     value = ctx.read64(semaphore);
   *   }
   *   return value;
   * }
   * ```
   */
  waitMemory(address: number, expected: bigint, options?: { timeoutMs?: number }): void {
    this.#guest.waitMemory(address, expected, options);
  }
  /**
   * Sleeps (blocks this agent only).
   *
   * @param ms Milliseconds.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   *
   * function program(ctx: GuestContext, status: number): number {
   *   let value = ctx.read32(status);
   *   for (let tries = 0; value & 0x1 && tries < 100; tries++) {
   *     ctx.sleep(1); // give the CPU back between polls
   *     value = ctx.read32(status);
   *   }
   *   return value;
   * }
   * ```
   */
  sleep(ms: number): void {
    this.#guest.sleep(ms);
  }
  /**
   * Advances the machine's trace epoch: DMA trace records carry the epoch before
   * and after their copy, so a checker can order device accesses against what the
   * guest did.
   *
   * @returns The new epoch.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { ok } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const before = ctx.traceMark(); // DMA records after this carry a later epoch
   *   ctx.iommu()?.flushAll();
   *   const after = ctx.traceMark();
   *   ok(after > before);
   *   ctx.metric("flush_epochs", `${before}..${after}`);
   * }
   * ```
   */
  traceMark(): number {
    return this.#guest.traceMark();
  }
  /**
   * Sends a line to the machine's log.
   *
   * @param message The line.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   *
   * function program(ctx: GuestContext): void {
   *   for (const fn of ctx.functions()) {
   *     ctx.log(`found ${ctx.describe(fn)}`); // e.g. "found edu 00:04.0"
   *   }
   * }
   * ```
   */
  log(message: string): void {
    this.#guest.log(message);
  }

  // ---- Devices ----

  /**
   * The PCI functions on bus 0, with BARs assigned and decoding and bus mastering
   * enabled (done once, on first use).
   *
   * @returns Every function, the host bridge included.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const host = ctx.functions().find((fn) => fn.device === 0 && fn.function === 0);
   *   equal(host?.vendorId, 0x8086); // the q35 host bridge
   *   equal(ctx.functions(), ctx.functions()); // enumerated once
   * }
   * ```
   */
  functions(): readonly GuestPciFunction[] {
    if (!this.#functions) {
      const found = enumeratePci(this);
      assignPciResources(this, found);
      this.#functions = found;
    }
    return this.#functions;
  }

  /**
   * The functions of one kind, in slot order.
   *
   * @param kind `edu`, `ide` (PIIX3), `e1000` or `iommu` (AMD-Vi).
   * @returns The functions (empty when there is none).
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   for (const fn of ctx.find("edu")) {
   *     equal(ctx.edu(fn).identify(), 0x010000ed);
   *   }
   *   ctx.metric("e1000_count", ctx.find("e1000").length);
   * }
   * ```
   */
  find(kind: WorkloadDeviceKind): GuestPciFunction[] {
    const ids = IDS[kind];
    if (!ids) throw new WorkloadError(`Unknown device kind '${kind}'`);
    return this.functions().filter((f) => f.vendorId === ids[0] && f.deviceId === ids[1]);
  }

  /**
   * A readable name, e.g. `edu 00:04.0`.
   *
   * @param fn A function from {@linkcode GuestContext.find}.
   * @returns The name.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { match } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   for (const fn of ctx.find("ide")) {
   *     match(ctx.describe(fn), /^ide 00:[0-9a-f]{2}\.[0-7]$/);
   *   }
   * }
   * ```
   */
  describe(fn: GuestPciFunction): string {
    const kind = this.#kind(fn) ??
      `${fn.vendorId.toString(16).padStart(4, "0")}:${fn.deviceId.toString(16).padStart(4, "0")}`;
    return `${kind} 00:${fn.device.toString(16).padStart(2, "0")}.${fn.function}`;
  }

  /**
   * The interrupt line (GSI) the function's INTx pin reaches on q35.
   *
   * @param fn The function.
   * @returns The line.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { ok } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   for (const fn of ctx.find("e1000")) {
   *     const line = ctx.irqLine(fn);
   *     ok(line >= 20 && line <= 23); // PCI slots share GSIs 20–23
   *   }
   * }
   * ```
   */
  irqLine(fn: GuestPciFunction): number {
    return 20 + ((fn.device + Math.max(1, fn.interruptPin) - 1) % 4);
  }

  /**
   * The IOMMU driver, initialised on first use.
   *
   * @returns The driver, or `undefined` when the machine has no IOMMU.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const iommu = ctx.iommu();
   *   equal(iommu !== undefined, ctx.find("iommu").length > 0);
   *   equal(ctx.iommu(), iommu); // initialised once
   * }
   * ```
   */
  iommu(): AmdViDriver | undefined {
    if (this.#iommu === undefined) {
      if (this.find("iommu").length === 0) {
        this.#iommu = null;
      } else {
        const driver = new AmdViDriver(this, {
          region: { base: this.allocate(IOMMU_TABLE_BYTES), size: IOMMU_TABLE_BYTES },
          completionTimeoutMs: 10_000,
        });
        driver.init();
        this.#iommu = driver;
      }
    }
    return this.#iommu ?? undefined;
  }

  /**
   * The function's IOMMU domain, created and attached on first use.
   *
   * @param fn The function.
   * @returns The domain, or `undefined` without an IOMMU.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal, notEqual } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const [a, b] = ctx.find("edu");
   *   if (!a || !b || !ctx.iommu()) return;
   *   equal(ctx.domain(a), ctx.domain(a)); // one domain per function
   *   notEqual(ctx.domain(a)?.id, ctx.domain(b)?.id);
   * }
   * ```
   */
  domain(fn: GuestPciFunction): IommuDomain | undefined {
    const iommu = this.iommu();
    if (!iommu) return undefined;
    const rid = (fn.device << 3) | fn.function;
    let domain = this.#domains.get(rid);
    if (!domain) {
      domain = iommu.createDomain();
      iommu.attach(rid, domain);
      this.#domains.set(rid, domain);
    }
    return domain;
  }

  /**
   * Allocates guest RAM (zeroed, 4 KiB aligned, below 4 GiB).
   *
   * @param bytes How much (rounded up to 4 KiB).
   * @returns The guest-physical address.
   * @throws {WorkloadError} When RAM runs out (give the machine more with `-m`).
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const a = ctx.allocate(100);
   *   const b = ctx.allocate(8192);
   *   equal(a % 4096, 0);
   *   equal(b - a, 4096); // 100 bytes took a whole page
   *   equal(ctx.read32(b), 0);
   * }
   * ```
   */
  allocate(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new RangeError(`Invalid allocation size ${bytes}: a positive number of bytes`);
    }
    const size = roundUp(bytes);
    const at = this.#heap;
    if (at + size > this.memory.lowSize) {
      throw new WorkloadError(
        `Out of guest RAM for workload buffers: ${size} bytes asked, ${
          Math.max(0, this.memory.lowSize - at)
        } left (give the machine more memory with -m)`,
      );
    }
    this.#heap = at + size;
    this.memory.fill(at, size, 0);
    return at;
  }

  /** The kind of a function, when it is one the context knows. */
  #kind(fn: GuestPciFunction): WorkloadDeviceKind | undefined {
    return (Object.keys(IDS) as WorkloadDeviceKind[]).find((k) =>
      IDS[k][0] === fn.vendorId && IDS[k][1] === fn.deviceId
    );
  }

  /** The first address a device cannot drive. */
  #iovaLimit(fn: GuestPciFunction): number {
    const kind = this.#kind(fn);
    return (kind && IOVA_LIMIT[kind]) ?? 2 ** 48;
  }

  /** Fresh IOVAs in `fn`'s domain, below the device's DMA limit. */
  #iova(fn: GuestPciFunction, size: number): number {
    const rid = (fn.device << 3) | fn.function;
    const at = this.#iovaNext.get(rid) ?? IOVA_BASE;
    const limit = this.#iovaLimit(fn);
    if (at + size > limit) {
      throw new WorkloadError(
        `${this.describe(fn)}: no IOVA space left below 0x${limit.toString(16)} for ${size} bytes`,
      );
    }
    this.#iovaNext.set(rid, at + size);
    return at;
  }

  /**
   * Allocates RAM and makes it reachable by `fn`'s DMA: mapped at fresh IOVAs in
   * its domain (with an IOMMU), or at its physical address.
   *
   * @param fn The device.
   * @param bytes How much (rounded up to 4 KiB).
   * @param options Permissions.
   * @returns The buffer.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const [fn] = ctx.find("edu");
   *   if (!fn) return;
   *   const buffer = ctx.dmaBuffer(fn, 4096, { perms: "r" }); // the device may only read it
   *   ctx.write32(buffer.phys, 0xcafe); // the CPU uses phys, the device iova
   *   const edu = ctx.edu(fn);
   *   const r = edu.dma({ direction: "to-device", ram: buffer.iova, buffer: 0x40000, length: 4 });
   *   equal(r.ok, true);
   * }
   * ```
   */
  dmaBuffer(fn: GuestPciFunction, bytes: number, options: DmaBufferOptions = {}): DmaBuffer {
    const size = roundUp(bytes);
    const phys = this.allocate(size);
    const domain = this.domain(fn);
    if (!domain) {
      const limit = this.#iovaLimit(fn);
      if (phys + size > limit) {
        throw new WorkloadError(
          `${this.describe(fn)} cannot reach RAM at 0x${
            phys.toString(16)
          } (it drives addresses below 0x${
            limit.toString(16)
          }): use a smaller workload or an IOMMU (-device amd-iommu)`,
        );
      }
      return { phys, iova: phys, size };
    }
    const iova = this.#iova(fn, size);
    this.iommu()!.map(domain, { iova, phys, size, perms: options.perms ?? "rw" });
    return { phys, iova, size };
  }

  #bar(fn: GuestPciFunction, index: number): number {
    const bar = fn.bars.find((b) => b.index === index);
    if (!bar || bar.address === 0) {
      throw new WorkloadError(`${this.describe(fn)} has no BAR${index}`);
    }
    return bar.address;
  }

  /**
   * A driver for an edu device.
   *
   * @param fn An `edu` function.
   * @returns The driver.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   for (const fn of ctx.find("edu")) {
   *     equal(ctx.edu(fn).factorial(5), 120);
   *   }
   * }
   * ```
   */
  edu(fn: GuestPciFunction): EduDriver {
    this.domain(fn);
    return new EduDriver(this, { base: this.#bar(fn, 0), irqLine: this.irqLine(fn) });
  }

  /**
   * A driver for one drive of a PIIX3 IDE controller, its DMA buffer mapped for
   * the controller.
   *
   * @param fn An `ide` function.
   * @param options Channel, unit and buffer size.
   * @returns The driver (nothing sent to the drive yet).
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const [fn] = ctx.find("ide");
   *   if (!fn) return;
   *   const disk = ctx.ide(fn, { channel: 0, unit: 0, bufferBytes: 1 << 20 });
   *   equal(disk.bufferSize, 1 << 20);
   *   ctx.step("identify", disk.identify().sectors > 0, "a disk on the primary master");
   * }
   * ```
   */
  ide(fn: GuestPciFunction, options: IdeDriverChoice = {}): IdeDriver {
    const bufferBytes = roundUp(options.bufferBytes ?? 4 << 20);
    const size = bufferBytes + PAGE;
    const base = this.allocate(size);
    const domain = this.domain(fn);
    return new IdeDriver(this, {
      bmBase: this.#bar(fn, 4),
      channel: options.channel ?? 0,
      unit: options.unit ?? 0,
      region: { base, size },
      timeoutMs: 30_000,
      ...(domain ? { iommu: { driver: this.iommu()!, domain, iova: this.#iova(fn, size) } } : {}),
    });
  }

  /**
   * A driver for an e1000, its rings and buffers in RAM the context allocated
   * (and mapped for the NIC). Call `init()` on it next.
   *
   * @param fn An `e1000` function.
   * @param options Ring sizes.
   * @returns The driver.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   const [fn] = ctx.find("e1000");
   *   if (!fn) return;
   *   const nic = ctx.e1000(fn, { rxDescriptors: 256, txDescriptors: 64 });
   *   equal(nic.init().length, 6); // the MAC address
   *   equal(nic.txFree, 63);
   * }
   * ```
   */
  e1000(fn: GuestPciFunction, options: E1000DriverChoice = {}): E1000Driver {
    const rx = options.rxDescriptors ?? 64;
    const tx = options.txDescriptors ?? 64;
    // Rings, then 2 KiB buffers per descriptor (see E1000Driver).
    const size = roundUp(rx * 16) + roundUp(tx * 16) + roundUp(tx * 2048) + roundUp(rx * 2048);
    const base = this.allocate(size);
    const domain = this.domain(fn);
    return new E1000Driver(this, {
      mmioBase: this.#bar(fn, 0),
      irqLine: this.irqLine(fn),
      memory: { base, size },
      rxDescriptors: rx,
      txDescriptors: tx,
      ...(domain
        ? {
          iova: this.#iova(fn, size),
          iommu: { driver: this.iommu()!, domain, requesterId: (fn.device << 3) | fn.function },
        }
        : {}),
    });
  }

  // ---- The summary ----

  /**
   * Records a checked step (also sent to the machine log).
   *
   * @param step What was done.
   * @param ok Whether it worked.
   * @param detail Details.
   * @returns `ok`.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   *
   * function program(ctx: GuestContext): boolean {
   *   const [fn] = ctx.find("edu");
   *   if (!ctx.step("find edu", fn !== undefined, `${ctx.find("edu").length} found`) || !fn) {
   *     return false;
   *   }
   *   const value = ctx.edu(fn).factorial(5);
   *   return ctx.step("factorial", value === 120, `5! = ${value}`);
   * }
   * ```
   */
  step(step: string, ok: boolean, detail: string): boolean {
    this.#steps.push({ step, ok, detail });
    this.log(`${ok ? "ok  " : "FAIL"} ${step}: ${detail}`);
    return ok;
  }

  /**
   * Records a measurement.
   *
   * @param name Name, with its unit (`copy_mib_s`).
   * @param value The value.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext, bytes: number, ms: number): void {
   *   ctx.metric("copy_mib_s", Math.round(bytes / 2 ** 20 / (ms / 1000)));
   *   ctx.metric("mode", "interrupt");
   *   equal(ctx.summary().metrics.mode, "interrupt");
   * }
   * ```
   */
  metric(name: string, value: WorkloadMetric): void {
    this.#metrics[name] = value;
  }

  /**
   * The summary of the steps and metrics recorded so far.
   *
   * @returns The summary; `ok` when there is at least one step and none failed.
   *
   * @example
   * ```ts
   * import type { GuestContext } from "./guest_context.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(ctx: GuestContext): void {
   *   equal(ctx.summary().ok, false); // no step yet
   *   ctx.step("setup", true, "nothing to do");
   *   equal(ctx.summary().ok, true);
   *   ctx.step("check", false, "it failed");
   *   equal(ctx.summary().ok, false);
   * }
   * ```
   */
  summary(): WorkloadSummary {
    return {
      ok: this.#steps.length > 0 && this.#steps.every((s) => s.ok),
      steps: [...this.#steps],
      metrics: { ...this.#metrics },
    };
  }
}
