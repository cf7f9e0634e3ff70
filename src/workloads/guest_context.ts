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

  read8(address: number): number {
    return this.#guest.read8(address);
  }
  read16(address: number): number {
    return this.#guest.read16(address);
  }
  read32(address: number): number {
    return this.#guest.read32(address);
  }
  read64(address: number): bigint {
    return this.#guest.read64(address);
  }
  write8(address: number, value: number): void {
    this.#guest.write8(address, value);
  }
  write16(address: number, value: number): void {
    this.#guest.write16(address, value);
  }
  write32(address: number, value: number): void {
    this.#guest.write32(address, value);
  }
  write64(address: number, value: bigint): void {
    this.#guest.write64(address, value);
  }
  in8(port: number): number {
    return this.#guest.in8(port);
  }
  in16(port: number): number {
    return this.#guest.in16(port);
  }
  in32(port: number): number {
    return this.#guest.in32(port);
  }
  out8(port: number, value: number): void {
    this.#guest.out8(port, value);
  }
  out16(port: number, value: number): void {
    this.#guest.out16(port, value);
  }
  out32(port: number, value: number): void {
    this.#guest.out32(port, value);
  }
  irqLevel(line: number): boolean {
    return this.#guest.irqLevel(line);
  }
  waitIrq(line: number, options?: WaitIrqOptions): boolean {
    return this.#guest.waitIrq(line, options);
  }
  waitMemory(address: number, expected: bigint, options?: { timeoutMs?: number }): void {
    this.#guest.waitMemory(address, expected, options);
  }
  sleep(ms: number): void {
    this.#guest.sleep(ms);
  }
  traceMark(): number {
    return this.#guest.traceMark();
  }
  log(message: string): void {
    this.#guest.log(message);
  }

  // ---- Devices ----

  functions(): readonly GuestPciFunction[] {
    if (!this.#functions) {
      const found = enumeratePci(this);
      assignPciResources(this, found);
      this.#functions = found;
    }
    return this.#functions;
  }

  find(kind: WorkloadDeviceKind): GuestPciFunction[] {
    const ids = IDS[kind];
    if (!ids) throw new WorkloadError(`Unknown device kind '${kind}'`);
    return this.functions().filter((f) => f.vendorId === ids[0] && f.deviceId === ids[1]);
  }

  describe(fn: GuestPciFunction): string {
    const kind = this.#kind(fn) ??
      `${fn.vendorId.toString(16).padStart(4, "0")}:${fn.deviceId.toString(16).padStart(4, "0")}`;
    return `${kind} 00:${fn.device.toString(16).padStart(2, "0")}.${fn.function}`;
  }

  irqLine(fn: GuestPciFunction): number {
    return 20 + ((fn.device + Math.max(1, fn.interruptPin) - 1) % 4);
  }

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

  edu(fn: GuestPciFunction): EduDriver {
    this.domain(fn);
    return new EduDriver(this, { base: this.#bar(fn, 0), irqLine: this.irqLine(fn) });
  }

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

  step(step: string, ok: boolean, detail: string): boolean {
    this.#steps.push({ step, ok, detail });
    this.log(`${ok ? "ok  " : "FAIL"} ${step}: ${detail}`);
    return ok;
  }

  metric(name: string, value: WorkloadMetric): void {
    this.#metrics[name] = value;
  }

  summary(): WorkloadSummary {
    return {
      ok: this.#steps.length > 0 && this.#steps.every((s) => s.ok),
      steps: [...this.#steps],
      metrics: { ...this.#metrics },
    };
  }
}
