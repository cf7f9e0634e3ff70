/**
 * The Machine: guest RAM, the address map, PCI bus 0, interrupt lines, the
 * device workers and guest agents, all owned by the main isolate, which never
 * blocks.
 *
 * @module
 */

import type { DeviceDescriptor } from "../devices/device_model.ts";
import { ATTACHED_DEVICES, deviceType, PLANNED_DEVICE_TYPES } from "../devices/registry.ts";
import type { DiskAttachment } from "../devices/device_model.ts";
import { frameRingBytes } from "../net/frame_ring.ts";
import "../net/backends.ts";
import { type Netdev, type NetdevConfig, netdevFactory, netdevTypes } from "../net/netdev.ts";
import { PcapWriter } from "../net/pcap_writer.ts";
import { RingNetPort } from "../net/ring_net_port.ts";
import { ringDoorbell } from "../shared/doorbell.ts";
import { AddressMap, type AddressSpaceKind } from "../memory/address_map.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import {
  formatPciAddress,
  type PciAddress,
  PciBus,
  q35IntxLine,
  requesterId,
} from "../pci/pci_bus.ts";
import { PciFunction } from "../pci/pci_function.ts";
import { WAKE_MESSAGE } from "../shared/doorbell.ts";
import { IrqLines } from "../shared/irq_lines.ts";
import {
  MACHINE_BLOCK_WORDS,
  MAX_IRQ_SOURCES,
  MAX_PRODUCERS,
  RequestOp,
  ResponseStatus,
} from "../shared/layout.ts";
import { RingReader } from "../shared/register_ring.ts";
import { publishRoutes } from "../shared/route_table.ts";
import { checkRange, FOUR_GIB } from "../util/address.ts";
import type { AgentInit, AgentMessage } from "./agent_runtime.ts";
import { createWorker, DeviceHost, type WorkerPermissions } from "./device_host.ts";
import { MainHub } from "./main_hub.ts";
import { VirtualClock } from "./virtual_clock.ts";
import { AMD_VI_PCI, AmdViIommu, type IommuCounters } from "../iommu/amd_vi.ts";
import { AMD_VI_MMIO_BASE, AMD_VI_MMIO_SIZE } from "../iommu/amd_vi_registers.ts";
import { WorkerLink } from "../iommu/worker_link.ts";
import { MachineBlock, TargetCtrl } from "../shared/layout.ts";
import type { DmaTraceReader, DmaTraceRecord } from "../dma/dma_trace.ts";
import { DmaInjector, type InjectionPattern } from "../dma/dma_inject.ts";
import { ObservedMemory } from "../memory/observed_memory.ts";
import { type DiskFaults, validateDiskFaults } from "../storage/faulty_disk.ts";
import {
  type DmaTraceDevice,
  type DmaTransaction,
  DmaTransactionGrouper,
  formatDmaTransaction,
} from "../dma/dma_trace_lines.ts";
import { DEVICE_TRACE_CATEGORY, type TraceCategory } from "./trace_categories.ts";

/** One device of a machine configuration. */
export interface DeviceConfig {
  /** Device type, e.g. `edu`. */
  type: string;
  /** Instance id (default: type plus a number). */
  id?: string;
  /** PCI slot and function as QEMU writes them (`4`, `04.0`); default: the first free slot. */
  addr?: string;
  /** Type-specific properties (strings, as on the command line). */
  properties?: Record<string, string>;
}

/** A disk image (`-drive`). */
export interface DriveConfig {
  /** The id devices refer to (`drive=`). */
  id: string;
  /** Raw image file; omit for an in-memory disk. */
  file?: string;
  /** Size of an in-memory disk in bytes (default 64 MiB). */
  size?: number;
  /** Writes fail with an ATA error. */
  readonly?: boolean;
  /** Image format: only `raw`. */
  format?: "raw";
  /**
   * Make the storage fail on purpose (reliability tests: a full disk, bad
   * sectors, a failing flush, a dead or slow disk); see {@linkcode DiskFaults}.
   */
  faults?: DiskFaults;
}

/** A packet capture (`-object filter-dump`). */
export interface CaptureConfig {
  /** Object id. */
  id: string;
  /** The netdev whose frames are captured. */
  netdev: string;
  /** pcap file to write. */
  file: string;
}

/** A machine configuration. */
export interface MachineConfig {
  /** Guest RAM in bytes (default 256 MiB). */
  ramSize?: number;
  /** Machine name (`-name`). */
  name?: string;
  /** Devices, in slot-assignment order (disks with `type: "ide-hd"` attach to their controller). */
  devices?: DeviceConfig[];
  /** Disk images. */
  drives?: DriveConfig[];
  /** Network backends. */
  netdevs?: NetdevConfig[];
  /** Packet captures. */
  captures?: CaptureConfig[];
  /** How long a register access may wait for a device before it counts as hung (ms, default 10000). */
  accessTimeoutMs?: number;
  /** Put the virtual clock under qtest control (default false). */
  qtestClock?: boolean;
  /**
   * Run each device worker with only the Deno permissions it needs (none for
   * edu). Needs the unstable `worker-options` feature (`"unstable":
   * ["worker-options"]` in deno.json or `--unstable-worker-options`); Deno
   * exits the process if it is off, so this defaults to `false`.
   */
  narrowWorkerPermissions?: boolean;
  /**
   * Longest wait for a device's IOTLB acknowledgement when the guest set
   * Control.InvTimeOut to 0 (no timeout): the emulator's watchdog (ms,
   * default 60000).
   */
  invalidationWatchdogMs?: number;
  /**
   * Record every DMA run of every device in a trace (see
   * {@linkcode Machine.onDmaTrace}); `capacity` is each device's ring size in
   * records, `intervalMs` how often the main isolate drains the rings.
   * `lossless`: a device whose ring is full waits for the next drain (up to a
   * second) instead of dropping records, so checkers that need every record
   * stay sound when the main isolate is slow (at some cost in device speed).
   */
  dmaTrace?: boolean | { capacity?: number; intervalMs?: number; lossless?: boolean };
  /**
   * Trace categories (`-d`): the machine emits a `trace` event per traced
   * happening (see {@linkcode MachineEvent}). `dma` turns the DMA trace rings
   * on and reports one line per DMA transaction.
   */
  trace?: readonly TraceCategory[];
  /**
   * Fuzzing: fill the first DMA read of every byte of guest RAM (by a device
   * or by the IOMMU's table walks) with these patterns and check every DMA
   * run (see `src/dma/dma_inject.ts` and {@linkcode Machine.dmaInjector}).
   */
  dmaInject?: { readonly patterns: readonly InjectionPattern[] };
  /**
   * Deliberate bugs, to show that the invariant checkers catch them.
   * `skipInvalidationAck`: the IOMMU completes invalidations without waiting
   * for the device workers' acknowledgements. `plantedBug`: a device model
   * bug for the fuzzer to find (`edu-dma-bounds`: edu forgets the end of its
   * DMA buffer in its range check).
   */
  faultInjection?: { skipInvalidationAck?: boolean; plantedBug?: PlantedBug };
}

/** Device model bugs {@linkcode MachineConfig.faultInjection} can plant (for fuzzer tests). */
export type PlantedBug = "edu-dma-bounds";

/** Translation counters of one device, as the machine reports them. */
export interface DeviceIommuCounters {
  /** Device id. */
  readonly id: string;
  /** Translations served by the worker's cache or snapshot. */
  readonly hits: number;
  /** Translations that needed the main isolate. */
  readonly misses: number;
  /** Translations published into the worker's snapshot. */
  readonly fills: number;
  /** Invalidations the worker acknowledged. */
  readonly invalidations: number;
  /** Translation faults the worker saw. */
  readonly faults: number;
  /** Invalidations that timed out (the worker was stopped). */
  readonly timeouts: number;
}

/** The machine's IOMMU counters. */
export interface MachineIommuCounters {
  /** The IOMMU's own counters. */
  readonly iommu: IommuCounters;
  /** Per device. */
  readonly devices: readonly DeviceIommuCounters[];
}

/** A device as the machine reports it. */
export interface DeviceInfo {
  /** Instance id. */
  readonly id: string;
  /** Device type. */
  readonly type: string;
  /** PCI address, e.g. `00:04.0`. */
  readonly address: string;
  /** PCI requester id. */
  readonly requesterId: number;
  /** Interrupt lines (GSIs) the device drives. */
  readonly irqLines: readonly number[];
  /** Why the device failed, if it did. */
  readonly failure?: string;
}

/** Something that happened in the machine. */
export type MachineEvent =
  | { readonly type: "log"; readonly source: string; readonly message: string }
  | { readonly type: "device-failed"; readonly id: string; readonly reason: string }
  | { readonly type: "irq"; readonly line: number; readonly level: boolean }
  | {
    readonly type: "trace";
    readonly category: TraceCategory;
    /** The device id (or the IOMMU's). */
    readonly source: string;
    readonly message: string;
  };

/** Options for {@linkcode Machine.runGuest}. */
export interface RunGuestOptions {
  /** Options passed to the program. */
  options?: Record<string, string>;
  /** Kill the agent after this long (ms, default: no limit). */
  timeoutMs?: number;
  /** This machine's index among several running the program (its `machineIndex`, default 0). */
  machineIndex?: number;
  /** How many machines run the program (its `machineCount`, default 1). */
  machineCount?: number;
}

/** A register region served by the main isolate itself (chipset registers, the IOMMU). */
export interface LocalRegion {
  /**
   * Reads `size` bytes at `offset`.
   *
   * @param offset Offset in the region.
   * @param size 1, 2, 4 or 8.
   * @returns The value.
   */
  read(offset: number, size: number): bigint;
  /**
   * Writes `size` bytes at `offset`.
   *
   * @param offset Offset in the region.
   * @param size 1, 2, 4 or 8.
   * @param value The value.
   */
  write(offset: number, size: number, value: bigint): void;
}

interface MachineDevice {
  readonly id: string;
  readonly descriptor: DeviceDescriptor;
  readonly address: PciAddress;
  readonly fn: PciFunction;
  readonly host: DeviceHost;
  readonly regionIds: number[];
  readonly irqSources: number[];
  readonly irqLines: number[];
  readonly properties: Readonly<Record<string, string>>;
  link?: WorkerLink;
}

const AGENT_URL = new URL("../../workers/agent_worker.ts", import.meta.url);

/** How long a terminated device worker may still finish the copy it had begun. */
const TERMINATION_GRACE_MS = 100;

function ones(size: number): bigint {
  return (1n << BigInt(8 * size)) - 1n;
}

function parseAddr(text: string): PciAddress {
  const m = /^(?:0*([0-9a-f]{1,2}))(?:\.([0-7]))?$/i.exec(text.trim());
  if (!m) throw new Error(`Invalid PCI address '${text}': expected SLOT or SLOT.FN, e.g. 04.0`);
  const device = parseInt(m[1]!, 16);
  if (device > 31) throw new Error(`Invalid PCI address '${text}': slot must be 0 to 1f`);
  return { device, function: m[2] ? Number(m[2]) : 0 };
}

/**
 * A machine: RAM, the address map, PCI, interrupts, device workers and
 * guest agents.
 *
 * @example Start a machine with an edu device and read its id register
 * ```ts
 * import { Machine } from "./machine.ts";
 * import { equal } from "node:assert/strict";
 * await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
 * // Program BAR0 and enable memory decoding through config mechanism #1.
 * await machine.out(0xcf8, 4, 0x80002010);
 * await machine.out(0xcfc, 4, 0xfe000000);
 * await machine.out(0xcf8, 4, 0x80002004);
 * await machine.out(0xcfc, 2, 0x0002);
 * equal(await machine.read(0xfe000000, 4), 0x010000edn);
 * ```
 */
export class Machine {
  /** Guest RAM. */
  readonly memory: GuestMemory;
  /** MMIO and port regions. */
  readonly addressMap: AddressMap;
  /** PCI bus 0. */
  readonly pci: PciBus;
  /** Interrupt lines. */
  readonly irq: IrqLines;
  /** The virtual clock. */
  readonly clock: VirtualClock;
  /** The machine's name. */
  readonly name: string;
  #config: MachineConfig;
  #hub: MainHub;
  #machineBlock: SharedArrayBuffer;
  #devices: MachineDevice[] = [];
  #local: LocalRegion[] = [];
  #listeners: Array<(event: MachineEvent) => void> = [];
  #agentReader: RingReader;
  #agentBusy = new Set<number>();
  #freeAgents: number[] = [];
  #agents = new Map<number, Worker>();
  #started = false;
  #stopped = false;
  #irqSeen = -1;
  #irqMask = 0;
  #nextSource = 0;
  #iommu: AmdViIommu | undefined;
  #traceReaders: Array<{ id: string; reader: DmaTraceReader }> = [];
  #traceListeners: Array<(device: string, records: readonly DmaTraceRecord[]) => void> = [];
  #traceBacklog: Array<DmaTraceRecord & { device: string }> = [];
  #traceTimer: ReturnType<typeof setInterval> | undefined;
  #injector: DmaInjector | undefined;
  #dmaLines: DmaTransactionGrouper | undefined;
  #transactionListeners: Array<(t: DmaTransaction, device: DmaTraceDevice) => void> = [];

  /**
   * Builds a machine (no workers yet: call {@linkcode Machine.start}).
   *
   * @param config The configuration.
   */
  constructor(config: MachineConfig = {}) {
    this.#config = config;
    this.name = config.name ?? "dmaworks";
    this.memory = new GuestMemory(config.ramSize === undefined ? {} : { size: config.ramSize });
    if (config.dmaInject) {
      this.#injector = new DmaInjector(this.memory);
      this.#injector.setPatterns(config.dmaInject.patterns);
    }
    this.#machineBlock = new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4);
    const machineWords = new Int32Array(this.#machineBlock);
    this.irq = new IrqLines(machineWords, () => this.#hub?.wake());
    this.irq.clear();
    this.clock = new VirtualClock({ qtest: config.qtestClock ?? false });
    this.#hub = new MainHub();
    this.#agentReader = new RingReader(this.#hub.words);
    for (let i = MAX_PRODUCERS - 1; i >= 1; i--) this.#freeAgents.push(i);
    this.addressMap = new AddressMap();
    this.addressMap.onChange(() => publishRoutes(machineWords, this.addressMap.regions));
    this.pci = new PciBus();
    this.#addChipsetRegions();
    const attached: DeviceConfig[] = [];
    for (const device of config.devices ?? []) {
      if (device.type === "amd-iommu") this.#addIommu(device);
      else if (device.type in ATTACHED_DEVICES) attached.push(device);
      else this.#addDevice(device);
    }
    for (const disk of attached) this.#attachDisk(disk);
    this.#checkNetConfig();
    if (this.#iommu) {
      for (const device of this.#devices) this.#linkToIommu(device, this.#iommu);
    }
    if (this.#injector) {
      for (const device of this.#devices) device.host.enableInjection(this.#injector.buffer);
    }
    if (config.trace?.includes("dma")) this.#groupTransactions();
    if (config.dmaTrace || config.trace?.includes("dma")) {
      const options = typeof config.dmaTrace === "object" ? config.dmaTrace : {};
      for (const device of this.#devices) {
        const reader = device.host.enableTrace(options.capacity, {
          lossless: options.lossless ?? false,
        });
        this.#traceReaders.push({ id: device.id, reader });
      }
    }
    this.#hub.addTask({ step: () => this.#serveAgents(), hasWork: () => this.#agentWork() });
    this.#hub.addTask({
      step: () => this.#watchIrq(),
      hasWork: () => this.irq.seq !== this.#irqSeen,
    });
    this.#irqSeen = this.irq.seq;
  }

  /**
   * Builds and starts a machine.
   *
   * @param config The configuration.
   * @returns The running machine.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   ramSize: 64 << 20,
   *   devices: [{ type: "amd-iommu" }, { type: "edu", addr: "04.0" }],
   * });
   * equal(machine.memory.size, 64 << 20);
   * equal(machine.devices()[0]?.address, "00:04.0");
   * ```
   */
  static async create(config: MachineConfig = {}): Promise<Machine> {
    const machine = new Machine(config);
    try {
      await machine.start();
    } catch (error) {
      await machine.stop();
      throw error;
    }
    return machine;
  }

  /**
   * Listens to machine events (logs, device failures, interrupt changes).
   *
   * @param listener Called for each event.
   * @returns A function that removes the listener.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { deepEqual } from "node:assert/strict";
   * await using machine = await Machine.create({ devices: [{ type: "edu", id: "a" }] });
   * const failed: string[] = [];
   * const off = machine.onEvent((e) => {
   *   if (e.type === "device-failed") failed.push(e.id);
   * });
   * await machine.injectFault({ kind: "kill-device", device: "a" });
   * off();
   * deepEqual(failed, ["a"]);
   * ```
   */
  onEvent(listener: (event: MachineEvent) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  #emit(event: MachineEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  /**
   * Registers a region the main isolate serves itself (chipset registers,
   * the IOMMU).
   *
   * @param options Name, space, size, base and handlers.
   * @returns The region id in the address map.
   *
   * @example A scratch I/O port served by the main isolate
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * let latch = 0x42n;
   * machine.addLocalRegion({
   *   name: "scratch",
   *   space: "pio",
   *   size: 1,
   *   base: 0x510,
   *   region: { read: () => latch, write: (_offset, _size, value) => void (latch = value) },
   * });
   * equal(await machine.in(0x510, 1), 0x42);
   * await machine.out(0x510, 1, 0x17);
   * equal(latch, 0x17n);
   * ```
   */
  addLocalRegion(options: {
    name: string;
    space: AddressSpaceKind;
    size: number;
    base: number;
    maxAccess?: 4 | 8;
    priority?: number;
    region: LocalRegion;
  }): number {
    this.#local.push(options.region);
    return this.addressMap.add({
      name: options.name,
      space: options.space,
      size: options.size,
      base: options.base,
      target: 0,
      targetRegion: this.#local.length - 1,
      maxAccess: options.maxAccess ?? 4,
      priority: options.priority ?? 0,
    });
  }

  #addChipsetRegions(): void {
    this.addLocalRegion({
      name: "pci-conf-idx",
      space: "pio",
      size: 4,
      base: 0xcf8,
      region: {
        read: (offset, size) =>
          offset === 0 && size === 4 ? BigInt(this.pci.configAddress) : ones(size),
        write: (offset, size, value) => {
          if (offset === 0 && size === 4) this.pci.writeAddress(Number(value));
        },
      },
    });
    this.addLocalRegion({
      name: "ich9-rst-cnt",
      space: "pio",
      size: 1,
      base: 0xcf9,
      priority: 1,
      region: { read: () => 0n, write: () => {} },
    });
    this.addLocalRegion({
      name: "pci-conf-data",
      space: "pio",
      size: 4,
      base: 0xcfc,
      region: {
        read: (offset, size) => BigInt(this.pci.readData(offset, size)),
        write: (offset, size, value) =>
          this.pci.writeData(offset, size, Number(value & 0xffff_ffffn)),
      },
    });
  }

  #addDevice(config: DeviceConfig): void {
    const type = deviceType(config.type);
    if (!type) {
      if (PLANNED_DEVICE_TYPES.includes(config.type)) {
        throw new Error(`Device '${config.type}' is not available yet in this version of dmaworks`);
      }
      throw new Error(`Unknown device type '${config.type}'`);
    }
    const descriptor = type.descriptor;
    for (const key of Object.keys(config.properties ?? {})) {
      if (!type.properties.includes(key)) {
        throw new Error(`Device '${config.type}' has no property '${key}'`);
      }
    }
    const instance = this.#devices.filter((d) => d.descriptor.type === config.type).length;
    const properties: Record<string, string> = {
      ...type.defaults?.(instance),
      ...config.properties,
    };
    try {
      type.validate?.(properties);
    } catch (error) {
      throw new Error(`Device '${config.type}': ${(error as Error).message}`);
    }
    const planted = this.#config.faultInjection?.plantedBug;
    if (planted?.startsWith(`${config.type}-`)) properties["x-planted-bug"] = planted;
    const target = this.#devices.length + 1;
    if (target >= 64) throw new Error("Cannot add more than 63 devices");
    const address = config.addr !== undefined
      ? parseAddr(config.addr)
      : { device: this.pci.freeSlot(), function: 0 };
    const id = config.id ??
      `${config.type}${this.#devices.filter((d) => d.descriptor.type === config.type).length}`;
    if (this.#devices.some((d) => d.id === id)) throw new Error(`Duplicate device id '${id}'`);
    const fn = new PciFunction(descriptor.pci);
    this.pci.add(address, fn);
    const traceCategory = DEVICE_TRACE_CATEGORY[config.type];
    const irqSources: number[] = [];
    const irqLines: number[] = [];
    for (const spec of descriptor.irqs) {
      const source = this.#nextSource++;
      if (source >= MAX_IRQ_SOURCES) throw new Error("Cannot add device: out of interrupt sources");
      const line = spec.kind === "isa"
        ? spec.line
        : q35IntxLine(address.device, descriptor.pci.interruptPin ?? 1);
      this.irq.route(source, line);
      irqSources.push(source);
      irqLines.push(line);
      if (spec.kind === "intx") fn.setIntxSource(() => this.irq.sourceLevel(source));
    }
    const regionIds = descriptor.regions.map((region, index) =>
      this.addressMap.add({
        name: `${id}.${region.name}`,
        space: region.kind,
        size: region.size,
        ...(region.fixedBase !== undefined ? { base: region.fixedBase } : {}),
        target,
        targetRegion: index,
        maxAccess: region.maxAccess ?? 4,
      })
    );
    const host = new DeviceHost(this.#hub, {
      id,
      descriptor,
      properties,
      memory: this.memory.descriptor(),
      machineBlock: this.#machineBlock,
      requesterId: requesterId(address),
      irqSources,
      permissions: "none" satisfies WorkerPermissions,
      narrowPermissions: this.#config.narrowWorkerPermissions ?? false,
      accessTimeoutMs: this.#config.accessTimeoutMs ?? 10_000,
      onLog: (message) => this.#emit({ type: "log", source: id, message }),
      onFailure: (reason) => this.#emit({ type: "device-failed", id, reason }),
      ...(traceCategory !== undefined && this.#config.trace?.includes(traceCategory)
        ? {
          onTrace: (message: string) =>
            this.#emit({ type: "trace", category: traceCategory, source: id, message }),
        }
        : {}),
    });
    const device: MachineDevice = {
      id,
      descriptor,
      address,
      fn,
      host,
      regionIds,
      irqSources,
      irqLines,
      properties,
    };
    fn.onWrite(() => this.#syncFunction(device));
    this.#devices.push(device);
  }

  #attachDisk(config: DeviceConfig): void {
    const props = config.properties ?? {};
    for (const key of Object.keys(props)) {
      if (!ATTACHED_DEVICES[config.type]!.includes(key)) {
        throw new Error(`Device '${config.type}' has no property '${key}'`);
      }
    }
    const driveId = props["drive"];
    if (!driveId) throw new Error(`Device '${config.type}' needs a drive= property`);
    const drive = (this.#config.drives ?? []).find((d) => d.id === driveId);
    if (!drive) throw new Error(`Device '${config.type}': no drive with id '${driveId}'`);
    if ((drive.format ?? "raw") !== "raw") {
      throw new Error(`Drive '${drive.id}': only format=raw is supported`);
    }
    let faults: DiskFaults | undefined;
    try {
      faults = drive.faults === undefined ? undefined : validateDiskFaults(drive.faults);
    } catch (error) {
      throw new Error(`Drive '${drive.id}': ${(error as Error).message}`);
    }
    const bus = props["bus"];
    const controllers = this.#devices.filter((d) => deviceType(d.descriptor.type)?.diskBuses);
    let controller: MachineDevice | undefined = controllers[0];
    let busIndex = 0;
    if (bus !== undefined) {
      const m = /^(.+)\.(\d+)$/.exec(bus);
      controller = m ? controllers.find((d) => d.id === m[1]) : undefined;
      busIndex = m ? Number(m[2]) : -1;
      if (!controller) throw new Error(`Device '${config.type}': no disk controller bus '${bus}'`);
    }
    if (!controller) {
      throw new Error(`Device '${config.type}' needs a disk controller (e.g. -device piix3-ide)`);
    }
    const buses = deviceType(controller.descriptor.type)!.diskBuses!;
    if (!(busIndex >= 0 && busIndex < buses)) {
      throw new Error(
        `Device '${config.type}': bus '${bus}' does not exist (${controller.id} has ${buses})`,
      );
    }
    const unit = props["unit"] === undefined ? 0 : Number(props["unit"]);
    if (unit !== 0 && unit !== 1) throw new Error(`Device '${config.type}': unit must be 0 or 1`);
    const taken = this.#disks.find((d) =>
      d.controller === controller && d.bus === busIndex && d.unit === unit
    );
    if (taken) {
      throw new Error(
        `Device '${config.type}': ${controller.id}.${busIndex} unit ${unit} is already in use`,
      );
    }
    if (this.#disks.some((d) => d.drive === drive.id)) {
      throw new Error(`Drive '${drive.id}' is attached twice`);
    }
    const { drive: _drive, bus: _bus, unit: _unit, ...rest } = props;
    const disk: DiskAttachment = {
      kind: "disk",
      drive: drive.id,
      ...(drive.file !== undefined
        ? { file: drive.file }
        : { size: drive.size ?? 64 * 1024 * 1024 }),
      readonly: drive.readonly ?? false,
      ...(faults !== undefined ? { faults } : {}),
      bus: busIndex,
      unit,
      properties: rest,
    };
    this.#disks.push({ controller, bus: busIndex, unit, drive: drive.id });
    controller.host.attachDisk(disk);
  }

  #disks: Array<{ controller: MachineDevice; bus: number; unit: number; drive: string }> = [];

  #checkNetConfig(): void {
    const ids = new Set<string>();
    for (const n of this.#config.netdevs ?? []) {
      if (ids.has(n.id)) throw new Error(`Duplicate netdev id '${n.id}'`);
      if (!netdevFactory(n.type)) {
        throw new Error(
          `Unknown netdev type '${n.type}' (available: ${netdevTypes().join(", ") || "none"})`,
        );
      }
      ids.add(n.id);
    }
    for (const c of this.#config.captures ?? []) {
      if (!ids.has(c.netdev)) throw new Error(`Capture '${c.id}': no netdev with id '${c.netdev}'`);
    }
    for (const device of this.#devices) {
      if (!deviceType(device.descriptor.type)?.nic) continue;
      const netdev = device.properties["netdev"];
      if (netdev === undefined) continue; // a NIC with no peer: its frames go nowhere, as in QEMU
      if (!ids.has(netdev)) throw new Error(`Device '${device.id}': no netdev with id '${netdev}'`);
      if (this.#ports.some((p) => p.netdev === netdev)) {
        // QEMU allows one NIC per netdev (use a hub for more).
        throw new Error(`Netdev '${netdev}' is already used by another NIC`);
      }
      const tx = new SharedArrayBuffer(frameRingBytes());
      const rx = new SharedArrayBuffer(frameRingBytes());
      device.host.setNet({ tx, rx });
      const host = device.host;
      const port = new RingNetPort(device.id, {
        tx,
        rx,
        wakeDevice: () => {
          const worker = host.worker;
          if (worker) ringDoorbell(host.words, worker);
        },
      });
      this.#ports.push({ port, netdev });
      this.#hub.addTask({ step: () => port.pump(), hasWork: () => port.hasWork });
    }
  }

  #ports: Array<{ port: RingNetPort; netdev: string }> = [];
  #netdevs: Netdev[] = [];
  #captures: PcapWriter[] = [];

  async #startNetwork(): Promise<void> {
    for (const config of this.#config.netdevs ?? []) {
      this.#netdevs.push(await netdevFactory(config.type)!(config));
    }
    for (const c of this.#config.captures ?? []) {
      const netdev = this.#netdevs.find((n) => n.id === c.netdev)!;
      const pcap = await PcapWriter.create(c.file);
      this.#captures.push(pcap);
      netdev.addTap((frame) => pcap.write(frame));
    }
    for (const { port, netdev } of this.#ports) {
      this.#netdevs.find((n) => n.id === netdev)!.connect(port);
    }
  }

  /**
   * The network backends (after start).
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * await using machine = new Machine({
   *   netdevs: [{ type: "hub", id: "net0", properties: { hubid: "7" } }],
   * });
   * equal(machine.netdevs.length, 0); // backends are created by start
   * await machine.start();
   * deepEqual(machine.netdevs.map((n) => n.id), ["net0"]);
   * ```
   */
  get netdevs(): readonly Netdev[] {
    return this.#netdevs;
  }

  #addIommu(config: DeviceConfig): void {
    if (this.#iommu) throw new Error("Only one amd-iommu device is supported");
    for (const key of Object.keys(config.properties ?? {})) {
      throw new Error(`Device 'amd-iommu' has no property '${key}'`);
    }
    const address = config.addr !== undefined
      ? parseAddr(config.addr)
      : { device: this.pci.freeSlot(), function: 0 };
    const id = config.id ?? "iommu0";
    const fn = new PciFunction(AMD_VI_PCI);
    this.pci.add(address, fn);
    const source = this.#nextSource++;
    const line = q35IntxLine(address.device, 1);
    this.irq.route(source, line);
    fn.setIntxSource(() => this.irq.sourceLevel(source));
    fn.onWrite(() => this.irq.mask(source, fn.intxDisabled));
    const inject = this.#injector;
    const memory = inject
      ? new ObservedMemory(this.memory.descriptor(), (a, n, d) => inject.observePhysical(a, n, d))
      : this.memory;
    const iommu = new AmdViIommu(memory, {
      onError: (error) =>
        this.#emit({
          type: "log",
          source: id,
          message: `Internal error (command processing stopped): ${
            error instanceof Error ? error.stack ?? error.message : String(error)
          }`,
        }),
      setIrq: (level) => this.irq.setSource(source, level),
      failWorker: (link, reason) => this.#failWorker(link, reason),
      watchdogMs: this.#config.invalidationWatchdogMs ?? 60_000,
      ...(this.#config.trace?.includes("iommu")
        ? {
          trace: (message: string) =>
            this.#emit({ type: "trace", category: "iommu", source: id, message }),
        }
        : {}),
    });
    this.#iommu = iommu;
    this.#iommuInfo = { id, address, line };
    this.addLocalRegion({
      name: `${id}.mmio`,
      space: "mmio",
      size: AMD_VI_MMIO_SIZE,
      base: AMD_VI_MMIO_BASE,
      maxAccess: 8,
      priority: 1,
      region: {
        read: (offset, size) => iommu.readRegister(offset, size),
        write: (offset, size, value) => iommu.writeRegister(offset, size, value),
      },
    });
  }

  #iommuInfo: { id: string; address: PciAddress; line: number } | undefined;

  #linkToIommu(device: MachineDevice, iommu: AmdViIommu): void {
    const channel = new MessageChannel();
    const host = device.host;
    const link = new WorkerLink(this.#hub, {
      id: device.id,
      rids: [requesterId(device.address)],
      ctrl: host.words,
      port: channel.port1,
      wake: () => host.worker,
      source: iommu,
      skipAcknowledgement: this.#config.faultInjection?.skipInvalidationAck ?? false,
    });
    host.setIommu({ snapshot: link.snapshot.buffer, port: channel.port2 });
    device.link = link;
    iommu.attach(link);
  }

  /** Stops a worker that missed an invalidation deadline; resolves once it cannot touch memory. */
  async #failWorker(link: WorkerLink, reason: string): Promise<void> {
    const device = this.#devices.find((d) => d.link === link);
    if (!device) return;
    device.host.fail(reason);
    // terminate() stops the worker at its next interrupt check, not at once: a
    // step it has begun (a DMA copy, which is synchronous JavaScript inside a
    // transaction) still completes. Wait longer than any such step before the
    // invalidation completes. (The SPIN model checks this path: without the
    // wait, a copy can land after the completion.)
    await new Promise((resolve) => setTimeout(resolve, TERMINATION_GRACE_MS));
  }

  /**
   * Injects a fault into a running machine (reliability tests):
   * `stall-device` makes a device worker hang for `ms` (no register answers,
   * no IOTLB acknowledgements); `crash-device` makes it fail as if its model
   * threw; `kill-device` terminates its worker abruptly.
   *
   * The returned promise resolves once the fault has taken effect: a stall
   * once the worker has begun it (or the device failed before it could), a
   * crash or a kill once the device is marked failed. Callers that only need
   * the fault to happen eventually may ignore it.
   *
   * @param fault What to break.
   * @returns Resolves once the fault has taken effect.
   * @throws {Error} When no device has that id.
   *
   * @example Stall a device, then find it declared failed
   * ```ts
   * import { Machine } from "@dmaworks/dmaworks";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   devices: [{ type: "edu", id: "edu0", addr: "04.0" }],
   *   accessTimeoutMs: 200,
   * });
   * await machine.out(0xcf8, 4, 0x80002010);
   * await machine.out(0xcfc, 4, 0xfe000000);
   * await machine.out(0xcf8, 4, 0x80002004);
   * await machine.out(0xcfc, 2, 0x0002);
   * await machine.injectFault({ kind: "stall-device", device: "edu0", ms: 60_000 });
   * equal(await machine.read(0xfe000000, 4), 0xffffffffn); // times out: failed
   * equal(machine.devices()[0]?.failure !== undefined, true);
   * ```
   */
  injectFault(
    fault:
      | { kind: "stall-device"; device: string; ms: number }
      | { kind: "crash-device"; device: string; uncaught?: boolean }
      | { kind: "kill-device"; device: string },
  ): Promise<void> {
    const device = this.#devices.find((d) => d.id === fault.device);
    if (!device) throw new Error(`Unknown device '${fault.device}'`);
    if (fault.kind === "stall-device") return device.host.stall(fault.ms);
    if (fault.kind === "crash-device") {
      device.host.control({
        type: "crash",
        message: "Injected crash",
        uncaught: fault.uncaught ?? false,
      });
    } else device.host.fail(`Device ${fault.device} was killed (injected fault)`);
    return device.host.failed;
  }

  /**
   * The DMA injector, for machines built with `dmaInject` (fuzzing).
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal, ok } from "node:assert/strict";
   * await using fuzzed = new Machine({ dmaInject: { patterns: [] } });
   * ok(fuzzed.dmaInjector);
   * await using plain = new Machine();
   * equal(plain.dmaInjector, undefined);
   * ```
   */
  get dmaInjector(): DmaInjector | undefined {
    return this.#injector;
  }

  /**
   * The IOMMU, when the machine has one.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal, ok } from "node:assert/strict";
   * await using machine = await Machine.create({ devices: [{ type: "amd-iommu" }] });
   * const iommu = machine.iommu;
   * ok(iommu);
   * equal(iommu.enabled, false); // until the guest driver sets Control.IommuEn
   * // The registers the CPU sees through the MMIO window:
   * equal(await machine.read(iommu.mmioBase + 0x30, 8), iommu.readRegister(0x30, 8));
   * ```
   */
  get iommu(): AmdViIommu | undefined {
    return this.#iommu;
  }

  /**
   * The IOMMU's PCI function, described like {@linkcode Machine.devices}
   * describes device workers (the IOMMU runs on the main isolate, so it is
   * not among them).
   *
   * @returns Its id, address and interrupt line, or `undefined` without an IOMMU.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({ devices: [{ type: "amd-iommu", addr: "01.0" }] });
   * equal(machine.iommuDevice()?.address, "00:01.0");
   * equal(machine.iommuDevice()?.type, "amd-iommu");
   * ```
   */
  iommuDevice(): DeviceInfo | undefined {
    const info = this.#iommuInfo;
    if (!info) return undefined;
    return {
      id: info.id,
      type: "amd-iommu",
      address: formatPciAddress(info.address),
      requesterId: requesterId(info.address),
      irqLines: [info.line],
    };
  }

  /**
   * The IOMMU's counters and each device's translation counters.
   *
   * @returns The counters, or `undefined` without an IOMMU.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   devices: [{ type: "amd-iommu" }, { type: "edu", id: "edu0" }],
   * });
   * const counters = machine.iommuCounters();
   * equal(counters?.devices[0]?.id, "edu0");
   * equal(counters?.devices[0]?.faults, 0);
   * ```
   */
  iommuCounters(): MachineIommuCounters | undefined {
    const iommu = this.#iommu;
    if (!iommu) return undefined;
    return {
      iommu: { ...iommu.counters },
      devices: this.#devices.map((d) => {
        const w = d.host.words;
        return {
          id: d.id,
          hits: Atomics.load(w, TargetCtrl.MMU_HITS),
          misses: Atomics.load(w, TargetCtrl.MMU_MISSES),
          fills: d.link?.counters.fills ?? 0,
          invalidations: Atomics.load(w, TargetCtrl.MMU_INVALIDATIONS),
          faults: Atomics.load(w, TargetCtrl.MMU_FAULTS),
          timeouts: d.link?.counters.timeouts ?? 0,
        };
      }),
    };
  }

  /** Applies a function's command register and BARs to the address map, BME and INTx mask. */
  #syncFunction(device: MachineDevice): void {
    const fn = device.fn;
    const bars = fn.bars();
    device.descriptor.regions.forEach((region, index) => {
      if (region.bar === undefined) return;
      const bar = bars.find((b) => b.spec.index === region.bar);
      this.addressMap.move(device.regionIds[index]!, bar?.decoding ? bar.address : undefined);
    });
    device.host.setBusMaster(fn.busMaster);
    device.descriptor.irqs.forEach((spec, pin) => {
      if (spec.kind === "intx") this.irq.mask(device.irqSources[pin]!, fn.intxDisabled);
    });
  }

  /**
   * Starts every device worker.
   *
   * @example Construct, then start (Machine.create does both)
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal, rejects } from "node:assert/strict";
   * await using machine = new Machine({ devices: [{ type: "edu", addr: "04.0" }] });
   * await rejects(machine.queryDevicePermissions("edu0", [{ name: "net" }]), /not running/);
   * await machine.start();
   * await machine.start(); // a second start does nothing
   * equal((await machine.queryDevicePermissions("edu0", [{ name: "net" }])).length, 1);
   * ```
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await Promise.all(this.#devices.map((d) => d.host.start()));
    await this.#startNetwork();
    if (this.#traceReaders.length > 0) {
      const trace = this.#config.dmaTrace;
      const interval = typeof trace === "object" ? trace.intervalMs ?? 5 : 5;
      this.#traceTimer = setInterval(() => this.#drainTrace(), interval);
    }
  }

  #drainTrace(): void {
    for (const { id, reader } of this.#traceReaders) {
      if (!reader.pending) continue;
      const records = reader.drain();
      this.#dmaLines?.push(id, records);
      if (this.#traceListeners.length > 0) {
        for (const listener of this.#traceListeners) listener(id, records);
      } else if (this.#config.dmaTrace && this.#transactionListeners.length === 0) {
        for (const r of records) this.#traceBacklog.push({ ...r, device: id });
        const cap = 1 << 22;
        if (this.#traceBacklog.length > cap) {
          this.#traceBacklog.splice(0, this.#traceBacklog.length - cap);
        }
      }
    }
    this.#dmaLines?.settle();
  }

  /** Starts grouping drained records into transactions (for `-d dma` and transaction listeners). */
  #groupTransactions(): void {
    if (this.#dmaLines) return;
    const tracing = this.#config.trace?.includes("dma") ?? false;
    this.#dmaLines = new DmaTransactionGrouper((t) => {
      const device = this.#devices.find((d) => d.id === t.device);
      const where = { address: device ? formatPciAddress(device.address) : "?", name: t.device };
      if (tracing) {
        this.#emit({
          type: "trace",
          category: "dma",
          source: t.device,
          message: formatDmaTransaction(t, where),
        });
      }
      for (const listener of this.#transactionListeners) listener(t, where);
    });
  }

  /**
   * Receives each DMA transaction (one DMA call of a device: its runs and
   * the fault that ended it, if any) once it is complete, in each device's
   * order (machines built with `dmaTrace`, or tracing `dma`).
   *
   * @param listener Called with the transaction and where its device sits.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { deepEqual } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   devices: [{ type: "edu", addr: "04.0" }],
   *   dmaTrace: true,
   * });
   * const seen: string[] = [];
   * machine.onDmaTransaction((t, where) => seen.push(`${where.address} ${t.access} ${t.length}`));
   * await machine.out(0xcf8, 4, 0x8000_2010); // 00:04.0 BAR0
   * await machine.out(0xcfc, 4, 0xfe00_0000);
   * await machine.out(0xcf8, 4, 0x8000_2004); // command: memory decoding, bus mastering
   * await machine.out(0xcfc, 2, 0x0006);
   * await machine.write(0xfe00_0080, 8, 0x1_0000n); // edu DMA source: RAM
   * await machine.write(0xfe00_0088, 8, 0x4_0000n); // destination: edu's buffer
   * await machine.write(0xfe00_0090, 8, 64n); // count
   * await machine.write(0xfe00_0098, 8, 1n); // start: RAM to device
   * await machine.read(0xfe00_0098, 8); // answered once the DMA is done
   * machine.drainDmaTrace();
   * machine.drainDmaTrace(); // a drain without new records completes the transaction
   * deepEqual(seen, ["00:04.0 read 64"]);
   * ```
   */
  onDmaTransaction(listener: (transaction: DmaTransaction, device: DmaTraceDevice) => void): void {
    this.#groupTransactions();
    this.#transactionListeners.push(listener);
  }

  /**
   * Receives DMA trace records as they are drained (machines built with
   * `dmaTrace`). Without a listener here or on
   * {@linkcode Machine.onDmaTransaction}, records are kept for
   * {@linkcode Machine.drainDmaTrace}.
   *
   * @param listener Called with the device id and its new records.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { deepEqual } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   devices: [{ type: "edu", addr: "04.0" }],
   *   dmaTrace: true,
   * });
   * const seen: string[] = [];
   * machine.onDmaTrace((device, records) =>
   *   seen.push(...records.map((r) => `${device} 0x${r.iova.toString(16)}`))
   * );
   * await machine.out(0xcf8, 4, 0x8000_2010); // 00:04.0 BAR0
   * await machine.out(0xcfc, 4, 0xfe00_0000);
   * await machine.out(0xcf8, 4, 0x8000_2004); // command: memory decoding, bus mastering
   * await machine.out(0xcfc, 2, 0x0006);
   * await machine.write(0xfe00_0080, 8, 0x1_0000n); // edu DMA source: RAM
   * await machine.write(0xfe00_0088, 8, 0x4_0000n); // destination: edu's buffer
   * await machine.write(0xfe00_0090, 8, 64n); // count
   * await machine.write(0xfe00_0098, 8, 1n); // start: RAM to device
   * await machine.read(0xfe00_0098, 8); // answered once the DMA is done
   * deepEqual(machine.drainDmaTrace(), []); // the listener took the records
   * deepEqual(seen, ["edu0 0x10000"]);
   * ```
   */
  onDmaTrace(listener: (device: string, records: readonly DmaTraceRecord[]) => void): void {
    this.#traceListeners.push(listener);
  }

  /**
   * Drains every device's trace ring now and returns what no listener took.
   *
   * @returns The records with their device ids, in drain order.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   devices: [{ type: "edu", addr: "04.0" }],
   *   dmaTrace: true,
   * });
   * await machine.out(0xcf8, 4, 0x8000_2010); // 00:04.0 BAR0
   * await machine.out(0xcfc, 4, 0xfe00_0000);
   * await machine.out(0xcf8, 4, 0x8000_2004); // command: memory decoding, bus mastering
   * await machine.out(0xcfc, 2, 0x0006);
   * await machine.write(0xfe00_0080, 8, 0x1_0000n); // edu DMA source: RAM
   * await machine.write(0xfe00_0088, 8, 0x4_0000n); // destination: edu's buffer
   * await machine.write(0xfe00_0090, 8, 64n); // count
   * await machine.write(0xfe00_0098, 8, 1n); // start: RAM to device
   * await machine.read(0xfe00_0098, 8); // answered once the DMA is done
   * const [record] = machine.drainDmaTrace();
   * equal(record?.device, "edu0");
   * equal(record?.access, "read");
   * equal(record?.address, 0x1_0000);
   * equal(record?.length, 64);
   * equal(machine.drainDmaTrace().length, 0);
   * ```
   */
  drainDmaTrace(): Array<DmaTraceRecord & { device: string }> {
    this.#drainTrace();
    return this.#traceBacklog.splice(0);
  }

  /**
   * Records dropped because a trace ring was full.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   devices: [{ type: "edu", addr: "04.0" }],
   *   dmaTrace: { capacity: 2, intervalMs: 60_000 }, // a tiny ring, drained only on demand
   * });
   * await machine.out(0xcf8, 4, 0x8000_2010); // 00:04.0 BAR0
   * await machine.out(0xcfc, 4, 0xfe00_0000);
   * await machine.out(0xcf8, 4, 0x8000_2004); // command: memory decoding, bus mastering
   * await machine.out(0xcfc, 2, 0x0006);
   * await machine.write(0xfe00_0080, 8, 0x1_0000n); // edu DMA source: RAM
   * await machine.write(0xfe00_0088, 8, 0x4_0000n); // destination: edu's buffer
   * await machine.write(0xfe00_0090, 8, 64n); // count
   * for (let i = 0; i < 3; i++) await machine.write(0xfe00_0098, 8, 1n); // three DMAs
   * await machine.read(0xfe00_0098, 8);
   * equal(machine.dmaTraceDropped, 1);
   * equal(machine.drainDmaTrace().length, 2);
   * ```
   */
  get dmaTraceDropped(): number {
    return this.#traceReaders.reduce((sum, r) => sum + r.reader.dropped, 0);
  }

  /**
   * Advances the trace epoch (see {@linkcode Guest.traceMark}).
   *
   * @returns The new epoch.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * equal(machine.traceMark(), 1); // DMA records written from now on carry epoch 1
   * equal(machine.traceMark(), 2);
   * ```
   */
  traceMark(): number {
    return Atomics.add(new Int32Array(this.#machineBlock), MachineBlock.TRACE_EPOCH, 1) + 1;
  }

  /**
   * Stops every agent and device worker; idempotent.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * const machine = await Machine.create({ devices: [{ type: "edu" }] });
   * await machine.stop(); // what `await using` does
   * await machine.stop();
   * equal(machine.devices().length, 1);
   * ```
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#traceTimer);
    for (const worker of this.#agents.values()) worker.terminate();
    this.#agents.clear();
    await Promise.all(this.#devices.map((d) => d.host.close()));
    if (this.#traceReaders.length > 0) {
      // What the devices traced before they stopped.
      this.#drainTrace();
      this.#dmaLines?.flush();
    }
    for (const device of this.#devices) device.link?.close();
    await Promise.allSettled(this.#netdevs.map((n) => n.close()));
    await Promise.allSettled(this.#captures.map((c) => c.close()));
    this.#hub.close();
  }

  /** Stops the machine (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * The machine's devices.
   *
   * @returns One entry per device.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { deepEqual } from "node:assert/strict";
   * await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
   * deepEqual(machine.devices().map((d) => `${d.address} ${d.type} ${d.id}`), ["00:04.0 edu edu0"]);
   * ```
   */
  devices(): DeviceInfo[] {
    return this.#devices.map((d) => ({
      id: d.id,
      type: d.descriptor.type,
      address: formatPciAddress(d.address),
      requesterId: requesterId(d.address),
      irqLines: d.irqLines,
      ...(d.host.failure !== undefined ? { failure: d.host.failure } : {}),
    }));
  }

  /**
   * Asks a device's worker which Deno permissions it holds (see
   * `narrowWorkerPermissions`): the worker answers itself, so this is what
   * the runtime enforces on it.
   *
   * @param id The device's id.
   * @param descriptors What to ask about.
   * @returns One state per descriptor, in order.
   * @throws {Error} When there is no such device or its worker is not running.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { deepEqual, rejects } from "node:assert/strict";
   * await using machine = await Machine.create({
   *   devices: [{ type: "edu", addr: "04.0" }],
   *   narrowWorkerPermissions: true,
   * });
   * // edu's worker holds no permission: each query answers "prompt", never "granted".
   * const asked: Deno.PermissionDescriptor[] = [{ name: "net" }, { name: "read" }];
   * deepEqual(await machine.queryDevicePermissions("edu0", asked), ["prompt", "prompt"]);
   * await rejects(machine.queryDevicePermissions("nic0", asked), /No device with id 'nic0'/);
   * ```
   */
  queryDevicePermissions(
    id: string,
    descriptors: readonly Deno.PermissionDescriptor[],
  ): Promise<Deno.PermissionState[]> {
    const device = this.#devices.find((d) => d.id === id);
    if (!device) return Promise.reject(new Error(`No device with id '${id}'`));
    return device.host.queryPermissions(descriptors);
  }

  // ---- Bus accesses from the main isolate (qtest, tests, the API) ----

  async #access(
    space: AddressSpaceKind,
    address: number,
    size: number,
    value?: bigint,
  ): Promise<bigint> {
    const write = value !== undefined;
    if (space === "mmio" && this.memory.isRam(address, size)) {
      return this.#ramAccess(address, size, value);
    }
    const hit = this.addressMap.lookup(space, address, size);
    const partialRam = space === "mmio" &&
      (this.memory.isRam(address) || this.memory.isRam(address + size - 1));
    if (!hit || partialRam) {
      if (size > 1 && (partialRam || this.#overlapsAnyRegion(space, address, size))) {
        // No single region decodes the whole access: one byte at a time, like QEMU.
        let result = 0n;
        for (let i = 0; i < size; i++) {
          const byte = write ? (value >> BigInt(8 * i)) & 0xffn : undefined;
          const b = await this.#access(space, address + i, 1, byte);
          result |= (b & 0xffn) << BigInt(8 * i);
        }
        return write ? 0n : result;
      }
      return write ? 0n : ones(size);
    }
    const region = hit.region;
    if (region.target === 0) {
      const local = this.#local[region.targetRegion]!;
      let result = 0n;
      if (size === 8 && region.maxAccess === 4) {
        if (write) {
          local.write(hit.offset, 4, value & 0xffff_ffffn);
          local.write(hit.offset + 4, 4, value >> 32n);
        } else {
          result = local.read(hit.offset, 4) | (local.read(hit.offset + 4, 4) << 32n);
        }
      } else if (write) {
        local.write(hit.offset, size, value);
      } else {
        result = local.read(hit.offset, size) & ones(size);
      }
      // A register on the main isolate can change interrupt state (INTx
      // Disable in a command register masks a line): report the change before
      // the access completes, as QEMU does, not when the watcher next runs
      // (a mask and an unmask in between would cancel out unreported).
      this.#watchIrq();
      return result;
    }
    const device = this.#devices[region.target - 1]!;
    if (write) {
      // Main-isolate writes wait for the device (like a non-posted write) so
      // that interrupt state is current when the caller continues.
      await device.host.write(region.targetRegion, hit.offset, size, value, { sync: true });
      this.#watchIrq();
      return 0n;
    }
    const v = await device.host.read(region.targetRegion, hit.offset, size);
    this.#watchIrq();
    return v;
  }

  #ramAccess(address: number, size: number, value: bigint | undefined): bigint {
    const m = this.memory;
    if (value === undefined) {
      switch (size) {
        case 1:
          return BigInt(m.read8(address));
        case 2:
          return BigInt(m.read16(address));
        case 4:
          return BigInt(m.read32(address));
        default:
          return m.read64(address);
      }
    }
    switch (size) {
      case 1:
        m.write8(address, Number(value & 0xffn));
        break;
      case 2:
        m.write16(address, Number(value & 0xffffn));
        break;
      case 4:
        m.write32(address, Number(value & 0xffff_ffffn));
        break;
      default:
        m.write64(address, value);
    }
    return 0n;
  }

  #overlapsAnyRegion(space: AddressSpaceKind, address: number, size: number): boolean {
    for (let i = 0; i < size; i++) {
      if (this.addressMap.lookup(space, address + i, 1)) return true;
    }
    return false;
  }

  #checkSize(size: number): void {
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      throw new RangeError(`Invalid access size ${String(size)}: must be 1, 2, 4 or 8`);
    }
  }

  /**
   * Reads physical memory (RAM or MMIO) like a CPU.
   *
   * @param address Physical address.
   * @param size 1, 2, 4 or 8 bytes.
   * @returns The value; unassigned addresses read all-ones.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
   * equal(await machine.read(0xfe00_0000, 4), 0xffff_ffffn); // nothing there yet: all-ones
   * await machine.out(0xcf8, 4, 0x8000_2010); // 00:04.0 BAR0
   * await machine.out(0xcfc, 4, 0xfe00_0000);
   * await machine.out(0xcf8, 4, 0x8000_2004); // command: memory decoding
   * await machine.out(0xcfc, 2, 0x0002);
   * equal(await machine.read(0xfe00_0000, 4), 0x0100_00edn); // edu's identification
   * ```
   */
  read(address: number, size: number): Promise<bigint> {
    checkRange(address, size);
    this.#checkSize(size);
    return this.#access("mmio", address, size);
  }

  /**
   * Writes physical memory (RAM or MMIO) like a CPU.
   *
   * @param address Physical address.
   * @param size 1, 2, 4 or 8 bytes.
   * @param value The value (truncated to `size`).
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await machine.write(0x1000, 8, 0x1122_3344_5566_7788n); // RAM
   * equal(await machine.read(0x1004, 4), 0x1122_3344n);
   * ```
   */
  async write(address: number, size: number, value: bigint | number): Promise<void> {
    checkRange(address, size);
    this.#checkSize(size);
    await this.#access("mmio", address, size, BigInt.asUintN(8 * size, BigInt(value)));
  }

  /**
   * Reads an I/O port.
   *
   * @param port Port number.
   * @param size 1, 2 or 4.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await machine.out(0xcf8, 4, 0x8000_0000); // 00:00.0, register 0
   * equal(await machine.in(0xcfc, 4), 0x29c0_8086); // the q35 host bridge
   * ```
   */
  async in(port: number, size: number): Promise<number> {
    this.#checkPort(port, size);
    return Number(await this.#access("pio", port, size));
  }

  /**
   * Writes an I/O port.
   *
   * @param port Port number.
   * @param size 1, 2 or 4.
   * @param value The value (truncated to `size`).
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await machine.out(0xcf8, 4, 0x8000_0000);
   * equal(await machine.in(0xcf8, 4), 0x8000_0000);
   * ```
   */
  async out(port: number, size: number, value: number | bigint): Promise<void> {
    this.#checkPort(port, size);
    await this.#access("pio", port, size, BigInt.asUintN(8 * size, BigInt(value)));
  }

  #checkPort(port: number, size: number): void {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
      throw new RangeError(`Invalid I/O port ${String(port)}: must be 0 to 0xffff`);
    }
    if (size !== 1 && size !== 2 && size !== 4) {
      throw new RangeError(`Invalid port access size ${String(size)}`);
    }
  }

  /**
   * Reads `length` bytes of physical memory: RAM directly, MMIO with the
   * largest aligned accesses the region takes.
   *
   * @param address Physical address.
   * @param length Number of bytes.
   * @returns The bytes.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { deepEqual } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await machine.writeMemory(0x2000, new Uint8Array([1, 2, 3]));
   * deepEqual(await machine.readMemory(0x2000, 3), new Uint8Array([1, 2, 3]));
   * ```
   */
  async readMemory(address: number, length: number): Promise<Uint8Array> {
    checkRange(address, length);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const a = address + done;
      const ram = this.memory.ramRunLength(a, length - done);
      if (ram > 0) {
        this.memory.read(a, out.subarray(done, done + ram));
        done += ram;
        continue;
      }
      const hole = this.#unassignedRun(a, length - done);
      if (hole > 0) {
        out.fill(0xff, done, done + hole); // nothing decodes it: master aborts read all-ones
        done += hole;
        continue;
      }
      const size = this.#chunk(a, length - done);
      const v = await this.#access("mmio", a, size);
      for (let i = 0; i < size; i++) out[done + i] = Number((v >> BigInt(8 * i)) & 0xffn);
      done += size;
    }
    return out;
  }

  /** Bytes from `address` (at most `max`) that neither RAM nor any MMIO region decodes. */
  #unassignedRun(address: number, max: number): number {
    let end = address + max;
    const ram = this.memory.blocks.find((b) => b.base > address);
    if (ram && ram.base < end) end = ram.base;
    for (const r of this.addressMap.regions) {
      if (!r.mapped || r.space !== "mmio") continue;
      if (r.base <= address && address < r.base + r.size) return 0;
      if (r.base > address && r.base < end) end = r.base;
    }
    return end - address;
  }

  /**
   * Writes bytes to physical memory (RAM directly, MMIO in aligned chunks).
   *
   * @param address Physical address.
   * @param data The bytes.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await machine.writeMemory(0x3000, new TextEncoder().encode("dma"));
   * equal(machine.memory.read8(0x3002), "a".charCodeAt(0));
   * ```
   */
  async writeMemory(address: number, data: Uint8Array): Promise<void> {
    checkRange(address, data.length);
    let done = 0;
    while (done < data.length) {
      const a = address + done;
      const ram = this.memory.ramRunLength(a, data.length - done);
      if (ram > 0) {
        this.memory.write(a, data.subarray(done, done + ram));
        done += ram;
        continue;
      }
      const hole = this.#unassignedRun(a, data.length - done);
      if (hole > 0) {
        done += hole; // writes to nothing are dropped
        continue;
      }
      const size = this.#chunk(a, data.length - done);
      let v = 0n;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[done + i]!);
      await this.#access("mmio", a, size, v);
      done += size;
    }
  }

  /**
   * Fills physical memory with a byte.
   *
   * @param address Physical address.
   * @param length Number of bytes.
   * @param value Byte value (default 0).
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await machine.fillMemory(0x4000, 4096, 0xa5);
   * equal(await machine.read(0x4ffc, 4), 0xa5a5_a5a5n);
   * ```
   */
  async fillMemory(address: number, length: number, value = 0): Promise<void> {
    checkRange(address, length);
    let done = 0;
    while (done < length) {
      const a = address + done;
      const ram = this.memory.ramRunLength(a, length - done);
      if (ram > 0) {
        this.memory.fill(a, ram, value);
        done += ram;
        continue;
      }
      const hole = this.#unassignedRun(a, length - done);
      if (hole > 0) {
        done += hole; // writes to nothing are dropped
        continue;
      }
      const size = this.#chunk(a, length - done);
      let v = 0n;
      for (let i = 0; i < size; i++) v = (v << 8n) | BigInt(value & 0xff);
      await this.#access("mmio", a, size, v);
      done += size;
    }
  }

  /** The access size QEMU would use for an MMIO chunk at `address`. */
  #chunk(address: number, left: number): number {
    let size = 8;
    while (size > left || address % size !== 0) size >>= 1;
    const hit = this.addressMap.lookup("mmio", address, 1);
    if (hit && size > hit.region.maxAccess) size = hit.region.maxAccess;
    // Do not run into RAM that follows.
    while (size > 1 && this.memory.ramRunLength(address + size - 1, 1) > 0) size >>= 1;
    return size;
  }

  // ---- Interrupts ----

  #watchIrq(): boolean {
    const seq = this.irq.seq;
    if (seq === this.#irqSeen) return false;
    this.#irqSeen = seq;
    const mask = this.irq.lineMask();
    const changed = (mask ^ this.#irqMask) >>> 0;
    this.#irqMask = mask;
    for (let line = 0; line < 32; line++) {
      if (changed & (1 << line)) {
        this.#emit({ type: "irq", line, level: (mask & (1 << line)) !== 0 });
      }
    }
    return true;
  }

  /**
   * Waits (without blocking) until interrupt line `line` is asserted.
   *
   * @param line GSI.
   * @param timeoutMs Give up after this long.
   * @returns Whether the line is asserted.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
   * await machine.out(0xcf8, 4, 0x8000_2010); // 00:04.0 BAR0
   * await machine.out(0xcfc, 4, 0xfe00_0000);
   * await machine.out(0xcf8, 4, 0x8000_2004); // command: memory decoding
   * await machine.out(0xcfc, 2, 0x0002);
   * await machine.write(0xfe00_0060, 4, 1); // edu: raise interrupt status bit 0
   * equal(await machine.waitIrq(20, 2000), true); // 00:04.0 INTA is GSI 20 on q35
   * ```
   */
  waitIrq(line: number, timeoutMs = 5000): Promise<boolean> {
    return this.#hub.until(() => this.irq.lineLevel(line), timeoutMs);
  }

  // ---- Guest agents ----

  #agentWork(): boolean {
    for (let k = 1; k < MAX_PRODUCERS; k++) {
      if (!this.#agentBusy.has(k) && this.#agentReader.hasWorkFor(k)) return true;
    }
    return false;
  }

  #serveAgents(): boolean {
    let did = false;
    for (let k = 1; k < MAX_PRODUCERS; k++) {
      while (!this.#agentBusy.has(k)) {
        const r = this.#agentReader.take(k);
        if (!r) break;
        did = true;
        const { op, seq } = r;
        const space: AddressSpaceKind = r.region === 1 ? "pio" : "mmio";
        const address = (r.offsetHi >>> 0) * FOUR_GIB + (r.offsetLo >>> 0);
        const size = r.size;
        const value = op === RequestOp.Read
          ? undefined
          : (BigInt(r.valueHi >>> 0) << 32n) | BigInt(r.valueLo >>> 0);
        this.#agentBusy.add(k);
        const answer = (status: number, v: bigint) => {
          this.#agentReader.respond(
            k,
            seq,
            status,
            Number(v & 0xffff_ffffn) | 0,
            Number(v >> 32n) | 0,
          );
          this.#agentBusy.delete(k);
          this.#hub.wake();
        };
        this.#access(
          space,
          address,
          size,
          value === undefined ? undefined : BigInt.asUintN(8 * size, value),
        )
          .then(
            (v) => {
              if (op !== RequestOp.Write) answer(ResponseStatus.Ok, v);
              else {
                this.#agentBusy.delete(k);
                this.#hub.wake();
              }
            },
            (error) => {
              this.#emit({
                type: "log",
                source: "machine",
                message: `Agent access failed: ${error}`,
              });
              answer(ResponseStatus.Failed, ones(Math.min(size, 8)));
            },
          );
      }
    }
    return did;
  }

  /**
   * Runs a guest program in a new guest agent (vCPU worker) and returns its
   * result. The program module's default export receives a {@linkcode Guest}.
   *
   * @param program URL of the program module.
   * @param options Program options and a time limit.
   * @returns What the program returned.
   *
   * @example
   * ```ts
   * import { Machine } from "./machine.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * const program = "data:text/javascript,export default (guest) => {" +
   *   " guest.out32(0xcf8, 0x80000000); return guest.in32(0xcfc); }";
   * equal(await machine.runGuest(program), 0x29c0_8086);
   * ```
   */
  async runGuest(program: URL | string, options: RunGuestOptions = {}): Promise<unknown> {
    if (!this.#started || this.#stopped) {
      throw new Error("Cannot run a guest program: the machine is not running");
    }
    const index = this.#freeAgents.pop();
    if (index === undefined) {
      throw new Error(`Cannot run more than ${MAX_PRODUCERS - 1} guest agents at once`);
    }
    const ports: MessagePort[] = [];
    for (const device of this.#devices) {
      const channel = new MessageChannel();
      ports.push(channel.port1);
      device.host.attachProducer(channel.port2);
    }
    const worker = createWorker(AGENT_URL, {
      name: `agent ${index}`,
      permissions: "inherit",
      narrow: false,
    });
    this.#agents.set(index, worker);
    const init: AgentInit = {
      type: "init",
      index,
      memory: this.memory.descriptor(),
      machine: this.#machineBlock,
      targets: [this.#hub.block, ...this.#devices.map((d) => d.host.block)],
      ports,
      program: program.toString(),
      options: options.options ?? {},
      accessTimeoutMs: this.#config.accessTimeoutMs ?? 10_000,
      machineIndex: options.machineIndex ?? 0,
      machineCount: options.machineCount ?? 1,
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise<unknown>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<AgentMessage>) => {
          const m = event.data;
          if (m === WAKE_MESSAGE) this.#hub.wake();
          else if (m.type === "log") {
            this.#emit({ type: "log", source: `agent${index}`, message: m.message });
          } else if (m.type === "done") resolve(m.result);
          else if (m.type === "error") reject(new Error(`Guest program failed: ${m.message}`));
        };
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(`Guest agent crashed: ${event.message}`));
        };
        if (options.timeoutMs !== undefined) {
          timer = setTimeout(
            () => reject(new Error(`Guest program timed out after ${options.timeoutMs} ms`)),
            options.timeoutMs,
          );
        }
        worker.postMessage(init, ports);
      });
    } finally {
      clearTimeout(timer);
      worker.terminate();
      this.#agents.delete(index);
      // Requests the agent left behind are still served in order; sequence
      // numbers live in the rings, so the next agent with this index cannot
      // mistake an old answer for its own.
      this.#freeAgents.push(index);
    }
  }
}
