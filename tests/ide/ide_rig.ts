// A one-thread rig for the PIIX3 IDE model: guest RAM, a DMA context (with an
// optional test IOMMU), the controller with in-memory or test disks, port-level
// accessors and helpers for PRD tables and ATA commands.
import { DmaContext, type DmaContextOptions } from "../../src/dma/dma_context.ts";
import type { DeviceEnv, DiskAttachment } from "../../src/devices/device_model.ts";
import { Piix3Ide, type Piix3IdeOptions } from "../../src/devices/piix3_ide.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import type { DiskBackend } from "../../src/storage/disk_backend.ts";
import { MemoryDisk } from "../../src/storage/memory_disk.ts";
import { pattern } from "./pattern.ts";
export { pattern };

/** Where the rig pretends BAR4 is (ports 0xc000–0xc00f). */
export const BM_BASE = 0xc000;
/** 1 MiB. */
export const MIB = 1 << 20;

/** A one-thread device host: records interrupts and logs, runs deferred work on demand. */
export class FakeEnv implements DeviceEnv {
  readonly dma: DmaContext;
  readonly disks: DiskAttachment[];
  readonly logs: string[] = [];
  /** Current level of each interrupt output. */
  readonly levels: boolean[] = [false, false];
  /** Rising edges seen per interrupt output. */
  readonly raises: number[] = [0, 0];
  #queue: Array<() => void | Promise<void>> = [];
  #running = new Set<Promise<void>>();

  constructor(dma: DmaContext, disks: DiskAttachment[]) {
    this.dma = dma;
    this.disks = disks;
  }

  setIrq(pin: number, level: boolean): void {
    if (level && !this.levels[pin]) this.raises[pin]!++;
    this.levels[pin] = level;
  }

  log(message: string): void {
    this.logs.push(message);
  }

  defer(task: () => void | Promise<void>): void {
    this.#queue.push(task);
  }

  /** Deferred tasks not started yet. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Starts every queued task (they run concurrently, like the device worker's). */
  start(): void {
    for (const task of this.#queue.splice(0)) {
      const p: Promise<void> = Promise.resolve().then(task).finally(() => this.#running.delete(p));
      this.#running.add(p);
    }
  }

  /** Runs deferred work (and what it defers) until nothing is queued or running. */
  async settle(): Promise<void> {
    for (let rounds = 0; rounds < 1_000_000; rounds++) {
      this.start();
      if (this.#running.size === 0) return;
      await Promise.race(this.#running);
    }
    throw new Error("Deferred work did not settle");
  }
}

/** One disk of a rig. */
export interface RigDisk {
  bus?: number;
  unit?: number;
  /** In-memory size (default 4 MiB) when no backend is given. */
  size?: number;
  /** A test backend. */
  backend?: DiskBackend;
  readonly?: boolean;
  properties?: Record<string, string>;
  /** `openDisk` throws this message for the disk. */
  openError?: string;
}

/** Options of {@linkcode ideRig}. */
export interface IdeRigOptions {
  /** Disks (default: one 4 MiB disk on the primary master). */
  disks?: RigDisk[];
  /** Guest RAM size (default 16 MiB). */
  ramSize?: number;
  /** DMA context options (an MMU, the bus-master gate). */
  dma?: DmaContextOptions;
  /** Model options (chunking). */
  model?: Piix3IdeOptions;
}

/** The rig. */
export interface IdeRig {
  ram: GuestMemory;
  env: FakeEnv;
  ide: Piix3Ide;
  /** Backends by "bus.unit". */
  backends: Map<string, DiskBackend>;
  inb(port: number): number;
  inw(port: number): number;
  inl(port: number): number;
  outb(port: number, value: number): void;
  outw(port: number, value: number): void;
  outl(port: number, value: number): void;
}

function decode(port: number): { region: number; offset: number } {
  if (port >= 0x1f0 && port <= 0x1f7) return { region: 0, offset: port - 0x1f0 };
  if (port === 0x3f6) return { region: 1, offset: 0 };
  if (port >= 0x170 && port <= 0x177) return { region: 2, offset: port - 0x170 };
  if (port === 0x376) return { region: 3, offset: 0 };
  if (port >= BM_BASE && port < BM_BASE + 16) return { region: 4, offset: port - BM_BASE };
  throw new RangeError(`Port 0x${port.toString(16)} is not the controller's`);
}

/** Builds a controller with its disks. */
export function ideRig(options: IdeRigOptions = {}): IdeRig {
  const ram = new GuestMemory({ size: options.ramSize ?? 16 * MIB });
  const dma = new DmaContext(ram, { requesterId: 0x10, ...options.dma });
  const specs = options.disks ?? [{}];
  const attachments: DiskAttachment[] = specs.map((d, i) => ({
    kind: "disk",
    drive: `d${i}`,
    size: d.size ?? 4 * MIB,
    readonly: d.readonly ?? false,
    bus: d.bus ?? 0,
    unit: d.unit ?? 0,
    properties: d.properties ?? {},
  }));
  const backends = new Map<string, DiskBackend>();
  const env = new FakeEnv(dma, attachments);
  const ide = new Piix3Ide(env, {}, {
    ...options.model,
    openDisk: (a) => {
      const spec = specs[attachments.indexOf(a)]!;
      if (spec.openError !== undefined) throw new Error(spec.openError);
      const backend = spec.backend ?? new MemoryDisk(a.size!, { readonly: a.readonly });
      backends.set(`${a.bus}.${a.unit}`, backend);
      return backend;
    },
  });
  const read = (port: number, size: 1 | 2 | 4) => {
    const { region, offset } = decode(port);
    return ide.read(region, offset, size);
  };
  const write = (port: number, size: 1 | 2 | 4, value: number) => {
    const { region, offset } = decode(port);
    ide.write(region, offset, size, value);
  };
  return {
    ram,
    env,
    ide,
    backends,
    inb: (p) => read(p, 1),
    inw: (p) => read(p, 2),
    inl: (p) => read(p, 4),
    outb: (p, v) => write(p, 1, v),
    outw: (p, v) => write(p, 2, v),
    outl: (p, v) => write(p, 4, v),
  };
}

/** Task-file base of a channel. */
export function cmdBase(bus: number): number {
  return bus === 0 ? 0x1f0 : 0x170;
}

/** Control port of a channel. */
export function ctlPort(bus: number): number {
  return bus === 0 ? 0x3f6 : 0x376;
}

/** Bus-master registers of a channel. */
export function bmBase(bus: number): number {
  return BM_BASE + 8 * bus;
}

/** A PRD entry: [address, byte count (0 = 64 KiB), end of table]. */
export type PrdEntry = [address: number, count: number, eot?: boolean];

/** Writes a PRD table into RAM (EOT on the last entry unless an entry says otherwise). */
export function writePrd(ram: GuestMemory, at: number, entries: readonly PrdEntry[]): void {
  entries.forEach(([address, count, eot], i) => {
    ram.write32(at + i * 8, address >>> 0);
    const last = eot ?? i === entries.length - 1;
    ram.write32(at + i * 8 + 4, ((count & 0xffff) | (last ? 0x8000_0000 : 0)) >>> 0);
  });
}

/** Programs LBA and count for a command (LBA48 writes the high bytes first). */
export function setTaskFile(
  t: IdeRig,
  command: { bus?: number; unit?: number; lba: number; count: number; lba48: boolean },
): void {
  const base = cmdBase(command.bus ?? 0);
  const dev = 0x40 | ((command.unit ?? 0) << 4);
  const { lba, count } = command;
  if (command.lba48) {
    t.outb(base + 6, dev);
    t.outb(base + 2, (count >> 8) & 0xff);
    t.outb(base + 2, count & 0xff);
    const high = Math.floor(lba / 0x100_0000);
    t.outb(base + 3, high & 0xff);
    t.outb(base + 3, lba & 0xff);
    t.outb(base + 4, (high >> 8) & 0xff);
    t.outb(base + 4, (lba >> 8) & 0xff);
    t.outb(base + 5, (high >> 16) & 0xff);
    t.outb(base + 5, (lba >> 16) & 0xff);
  } else {
    t.outb(base + 6, dev | (Math.floor(lba / 0x100_0000) & 0x0f));
    t.outb(base + 2, count & 0xff);
    t.outb(base + 3, lba & 0xff);
    t.outb(base + 4, (lba >> 8) & 0xff);
    t.outb(base + 5, (lba >> 16) & 0xff);
  }
}

/** What a DMA command left behind. */
export interface DmaOutcome {
  /** BMIS after the command. */
  bmis: number;
  /** Status register (read last: acknowledges the interrupt). */
  status: number;
  /** Error register. */
  error: number;
  /** Rising edges of the channel's interrupt during the command. */
  irqs: number;
}

/** Options of {@linkcode runDma}. */
export interface RunDmaOptions {
  bus?: number;
  unit?: number;
  /** Read (device → memory) or write. */
  write?: boolean;
  lba?: number;
  count: number;
  lba48?: boolean;
  /** PRD table address. */
  prd: number;
  /** BMIC direction bit (default: matching the command). */
  toMemory?: boolean;
  /** Start the bus master before issuing the command (default false: after, as Linux). */
  startFirst?: boolean;
}

/** Issues a DMA command the way Linux's ata_bmdma does and waits for it to settle. */
export async function runDma(t: IdeRig, o: RunDmaOptions): Promise<DmaOutcome> {
  const bus = o.bus ?? 0;
  const bm = bmBase(bus);
  const base = cmdBase(bus);
  const lba48 = o.lba48 ?? false;
  const write = o.write ?? false;
  const command = write ? (lba48 ? 0x35 : 0xca) : (lba48 ? 0x25 : 0xc8);
  const dir = (o.toMemory ?? !write) ? 0x08 : 0;
  const before = t.env.raises[bus]!;
  t.outl(bm + 4, o.prd);
  t.outb(bm + 2, 0x06); // clear interrupt and error
  t.outb(bm, dir);
  if (o.startFirst) t.outb(bm, dir | 1);
  setTaskFile(t, { bus, unit: o.unit ?? 0, lba: o.lba ?? 0, count: o.count, lba48 });
  t.outb(base + 7, command);
  if (!o.startFirst) t.outb(bm, dir | 1);
  await t.env.settle();
  const bmis = t.inb(bm + 2);
  const error = t.inb(base + 1);
  const status = t.inb(base + 7);
  t.outb(bm, dir); // stop, as the driver does after the interrupt
  return { bmis, status, error, irqs: t.env.raises[bus]! - before };
}

/** Reads `sectors` sectors by PIO (READ SECTORS), checking DRQ before each block. */
export async function pioRead(
  t: IdeRig,
  o: { bus?: number; unit?: number; lba: number; count: number; lba48?: boolean },
): Promise<Uint8Array> {
  const base = cmdBase(o.bus ?? 0);
  setTaskFile(t, { ...o, lba48: o.lba48 ?? false });
  t.outb(base + 7, o.lba48 ? 0x24 : 0x20);
  const n = o.count === 0 ? (o.lba48 ? 65536 : 256) : o.count;
  const out = new Uint8Array(n * 512);
  const view = new DataView(out.buffer);
  for (let s = 0; s < n; s++) {
    await t.env.settle();
    const status = t.inb(base + 7);
    if (!(status & 0x08)) {
      throw new Error(`No DRQ for sector ${s} (status 0x${status.toString(16)})`);
    }
    for (let i = 0; i < 256; i++) view.setUint16(s * 512 + i * 2, t.inw(base), true);
  }
  return out;
}

/** Writes sectors by PIO (WRITE SECTORS). */
export async function pioWrite(
  t: IdeRig,
  o: { bus?: number; unit?: number; lba: number; data: Uint8Array; lba48?: boolean },
): Promise<void> {
  const base = cmdBase(o.bus ?? 0);
  const n = o.data.length / 512;
  setTaskFile(t, { ...o, count: n, lba48: o.lba48 ?? false });
  t.outb(base + 7, o.lba48 ? 0x34 : 0x30);
  const view = new DataView(o.data.buffer, o.data.byteOffset, o.data.byteLength);
  for (let s = 0; s < n; s++) {
    await t.env.settle();
    const status = t.inb(base + 7);
    if (!(status & 0x08)) {
      throw new Error(`No DRQ for sector ${s} (status 0x${status.toString(16)})`);
    }
    for (let i = 0; i < 256; i++) t.outw(base, view.getUint16(s * 512 + i * 2, true));
  }
  await t.env.settle();
}

/** A backend wrapper whose operations wait for `open()` and are recorded in order. */
export class GatedDisk implements DiskBackend {
  readonly inner: DiskBackend;
  readonly ops: string[] = [];
  #gate: Promise<void> = Promise.resolve();
  #openGate: (() => void) | undefined;
  /** Operations waiting at the gate. */
  waiting = 0;
  /** Called when an operation reaches the gate. */
  onWait: (() => void) | undefined;

  constructor(inner: DiskBackend) {
    this.inner = inner;
  }

  get size(): number {
    return this.inner.size;
  }

  get readonly(): boolean {
    return this.inner.readonly;
  }

  /** Closes the gate: operations from now on wait for `open()`. */
  closeGate(): void {
    this.#gate = new Promise<void>((resolve) => (this.#openGate = resolve));
  }

  /** Opens the gate. */
  open(): void {
    this.#openGate?.();
    this.#openGate = undefined;
    this.#gate = Promise.resolve();
  }

  async #pass(op: string): Promise<void> {
    this.ops.push(op);
    this.waiting++;
    this.onWait?.();
    await this.#gate;
    this.waiting--;
  }

  async read(offset: number, dest: Uint8Array): Promise<void> {
    await this.#pass(`read ${offset} ${dest.length}`);
    await this.inner.read(offset, dest);
  }

  async write(offset: number, src: Uint8Array): Promise<void> {
    await this.#pass(`write ${offset} ${src.length}`);
    await this.inner.write(offset, src);
  }

  async flush(): Promise<void> {
    await this.#pass("flush");
    await this.inner.flush();
    this.ops.push("flushed");
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A backend whose every operation fails like a broken disk. */
export class FailingDisk implements DiskBackend {
  readonly size: number;
  readonly readonly = false;
  constructor(size: number) {
    this.size = size;
  }
  read(): Promise<void> {
    return Promise.reject(new Error("Input/output error (os error 5)"));
  }
  write(): Promise<void> {
    return Promise.reject(new Error("Input/output error (os error 5)"));
  }
  flush(): Promise<void> {
    return Promise.reject(new Error("Input/output error (os error 5)"));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
