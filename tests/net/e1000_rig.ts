// A one-thread host for the e1000 model: RAM, a DMA context (optionally
// through a test IOMMU), a fake network connection, interrupts recorded,
// deferred work run on demand, and helpers that lay out rings in RAM the way
// a driver does.
import { DmaContext, type DmaContextOptions } from "../../src/dma/dma_context.ts";
import type { DeviceEnv, DeviceNet } from "../../src/devices/device_model.ts";
import { E1000Device } from "../../src/devices/e1000.ts";
import { E1000Reg, E1000TxCmd } from "../../src/devices/e1000_regs.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";

export const MIB = 1024 * 1024;

/** A fake network connection: what the NIC sent, and frames waiting for it. */
export class FakeNet implements DeviceNet {
  readonly sent: Uint8Array[] = [];
  readonly inbound: Uint8Array[] = [];
  /** When false, `transmit` refuses (a full frame ring). */
  accept = true;
  /** Frames the host could not queue for the NIC (its ring was full). */
  dropped = 0;

  transmit(frame: Uint8Array): boolean {
    if (!this.accept) return false;
    this.sent.push(frame.slice());
    return true;
  }

  receive(): Uint8Array | undefined {
    return this.inbound.shift();
  }

  get pending(): boolean {
    return this.inbound.length > 0;
  }
}

export class FakeEnv implements DeviceEnv {
  readonly dma: DmaContext;
  readonly net?: DeviceNet;
  readonly irqCalls: Array<[number, boolean]> = [];
  readonly logs: string[] = [];
  readonly tasks: Array<() => void | Promise<void>> = [];

  constructor(dma: DmaContext, net?: DeviceNet) {
    this.dma = dma;
    if (net !== undefined) this.net = net;
  }

  setIrq(pin: number, level: boolean): void {
    this.irqCalls.push([pin, level]);
  }

  log(message: string): void {
    this.logs.push(message);
  }

  defer(task: () => void | Promise<void>): void {
    this.tasks.push(task);
  }

  /** Runs deferred tasks (and what they defer) until none is left; returns how many ran. */
  async run(limit = 100_000): Promise<number> {
    let n = 0;
    for (let task = this.tasks.shift(); task; task = this.tasks.shift()) {
      await task();
      if (++n > limit) throw new Error("Deferred work does not end");
    }
    return n;
  }

  /** The INTx level as the device last set it. */
  get level(): boolean {
    return this.irqCalls.at(-1)?.[1] ?? false;
  }
}

export interface RigOptions {
  ram?: GuestMemory;
  dma?: DmaContextOptions;
  properties?: Record<string, string>;
  /** No network connection at all (a NIC with no netdev). */
  noNet?: boolean;
}

/** A device with its environment. */
export class Rig {
  readonly ram: GuestMemory;
  readonly net: FakeNet;
  readonly env: FakeEnv;
  readonly nic: E1000Device;

  constructor(options: RigOptions = {}) {
    this.ram = options.ram ?? new GuestMemory({ size: 16 * MIB });
    this.net = new FakeNet();
    this.env = new FakeEnv(
      new DmaContext(this.ram, { requesterId: 0x18, ...options.dma }),
      options.noNet ? undefined : this.net,
    );
    this.nic = new E1000Device(this.env, options.properties ?? {});
  }

  r(offset: number): number {
    return this.nic.read(0, offset, 4);
  }

  w(offset: number, value: number): void {
    this.nic.write(0, offset, 4, value >>> 0);
  }

  run(): Promise<number> {
    return this.env.run();
  }

  /** Reads and clears ICR. */
  icr(): number {
    return this.r(E1000Reg.ICR);
  }
}

/** Where a test's rings and buffers live (device-visible and CPU-visible addresses). */
export interface RingLayout {
  /** Device-visible address of the descriptor ring. */
  ring: number;
  /** CPU (physical) address of the ring, when different (IOMMU). */
  ringPhys?: number;
  /** Device-visible address of the first buffer. */
  buffers: number;
  /** CPU address of the first buffer. */
  buffersPhys?: number;
  /** Descriptors (a multiple of 8). */
  count: number;
  /** Bytes between buffers. */
  stride?: number;
}

/** A transmit ring under test control. */
export class TxRing {
  readonly rig: Rig;
  readonly layout: Required<RingLayout>;
  tail = 0;

  constructor(rig: Rig, layout: RingLayout, options: { psp?: boolean; enable?: boolean } = {}) {
    this.rig = rig;
    this.layout = {
      ringPhys: layout.ring,
      buffersPhys: layout.buffers,
      stride: 0x4000,
      ...layout,
    };
    rig.w(E1000Reg.TDBAL, layout.ring % 2 ** 32);
    rig.w(E1000Reg.TDBAH, Math.floor(layout.ring / 2 ** 32));
    rig.w(E1000Reg.TDLEN, layout.count * 16);
    rig.w(E1000Reg.TDH, 0);
    rig.w(E1000Reg.TDT, 0);
    if (options.enable ?? true) rig.w(E1000Reg.TCTL, 0x2 | (options.psp ?? true ? 0x8 : 0));
  }

  /** Writes descriptor `index` (CPU side). */
  descriptor(
    index: number,
    fields: { address: number; length: number; cmd: number; upper?: number; lowerExtra?: number },
  ): void {
    const at = this.layout.ringPhys + index * 16;
    const ram = this.rig.ram;
    ram.write64(at, BigInt(fields.address));
    ram.write32(at + 8, ((fields.cmd << 24) | (fields.lowerExtra ?? 0) | fields.length) >>> 0);
    ram.write32(at + 12, fields.upper ?? 0);
  }

  /** Queues a frame in one descriptor at the tail (does not write TDT). */
  queue(frame: Uint8Array, cmd: number = E1000TxCmd.EOP | E1000TxCmd.IFCS | E1000TxCmd.RS): number {
    const index = this.tail;
    const l = this.layout;
    this.rig.ram.write(l.buffersPhys + index * l.stride, frame);
    this.descriptor(index, { address: l.buffers + index * l.stride, length: frame.length, cmd });
    this.tail = (this.tail + 1) % l.count;
    return index;
  }

  /** Writes TDT. */
  kick(): void {
    this.rig.w(E1000Reg.TDT, this.tail);
  }

  /** Queues frames, writes TDT and runs the device. */
  async send(...frames: Uint8Array[]): Promise<void> {
    for (const f of frames) this.queue(f);
    this.kick();
    await this.rig.run();
  }

  /** The status byte of descriptor `index`. */
  status(index: number): number {
    return this.rig.ram.read8(this.layout.ringPhys + index * 16 + 12);
  }
}

/** A receive ring under test control. */
export class RxRing {
  readonly rig: Rig;
  readonly layout: Required<RingLayout>;
  next = 0;

  constructor(rig: Rig, layout: RingLayout, options: { rctl?: number; fill?: number } = {}) {
    this.rig = rig;
    this.layout = { ringPhys: layout.ring, buffersPhys: layout.buffers, stride: 0x4000, ...layout };
    const l = this.layout;
    for (let i = 0; i < l.count; i++) {
      rig.ram.write64(l.ringPhys + i * 16, BigInt(l.buffers + i * l.stride));
      rig.ram.write64(l.ringPhys + i * 16 + 8, 0n);
    }
    rig.w(E1000Reg.RDBAL, layout.ring % 2 ** 32);
    rig.w(E1000Reg.RDBAH, Math.floor(layout.ring / 2 ** 32));
    rig.w(E1000Reg.RDLEN, l.count * 16);
    rig.w(E1000Reg.RDH, 0);
    rig.w(E1000Reg.RDT, options.fill ?? l.count - 1);
    // EN, BAM, SECRC (strip CRC), 2 KiB buffers.
    rig.w(E1000Reg.RCTL, options.rctl ?? (0x2 | 0x8000 | 0x0400_0000));
  }

  /** Descriptor `index`'s write-back: length, status, errors. */
  descriptor(index: number): { length: number; status: number; errors: number; buffer: bigint } {
    const at = this.layout.ringPhys + index * 16;
    const ram = this.rig.ram;
    return {
      buffer: ram.read64(at),
      length: ram.read16(at + 8),
      status: ram.read8(at + 12),
      errors: ram.read8(at + 13),
    };
  }

  /** Bytes of descriptor `index`'s buffer. */
  buffer(index: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.rig.ram.read(this.layout.buffersPhys + index * this.layout.stride, out);
    return out;
  }

  /** Takes the next completed frame (single-descriptor frames), re-arming its descriptor. */
  take(): Uint8Array | undefined {
    const d = this.descriptor(this.next);
    if (!(d.status & 1)) return undefined;
    const frame = this.buffer(this.next, d.length);
    this.rig.ram.write64(this.layout.ringPhys + this.next * 16 + 8, 0n);
    this.rig.w(E1000Reg.RDT, this.next);
    this.next = (this.next + 1) % this.layout.count;
    return frame;
  }
}

/** A frame to `dst` from 02:00:00:00:00:01 with `length` bytes in all, filled with a pattern. */
export function frameTo(dst: ArrayLike<number>, length: number, seed = 1): Uint8Array {
  const f = new Uint8Array(Math.max(length, 14));
  for (let i = 0; i < 6; i++) f[i] = dst[i] ?? 0;
  f.set([0x02, 0, 0, 0, 0, 0x01], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (let i = 14; i < length; i++) f[i] = (seed + i * 7) & 0xff;
  return f.subarray(0, length);
}

/** The default MAC address's bytes. */
export const NIC_MAC: readonly number[] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
