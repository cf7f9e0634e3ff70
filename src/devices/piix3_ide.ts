/**
 * The PIIX3 IDE controller (8086:7010, class 0x010180): two legacy channels
 * (primary 0x1F0–0x1F7 + 0x3F6 on IRQ 14, secondary 0x170–0x177 + 0x376 on
 * IRQ 15), each with up to two ATA disks, and bus-master DMA through BAR4
 * (16 bytes of I/O, channel n at +8n).
 *
 * The model is a plain class: it decodes register accesses, keeps each
 * channel's device control and interrupt state, and connects each drive's
 * DMA data phase to its channel's {@linkcode BusMasterDma}. Transfers run as
 * deferred asynchronous work, so both channels move data at once and keep
 * answering their registers while they do.
 *
 * Register behaviour matches QEMU 7.2's `piix3-ide` where a guest can see it
 * (configuration space, reset values, what an empty channel reads, BMIS
 * write semantics, the unimplemented bus-master bytes reading 0xff). Where
 * QEMU deviates from the specifications, dmaworks follows them:
 *
 * - a DMA fault (IOMMU, master abort, Bus Master Enable clear) sets BMIS
 *   Error and ends the command with ERR/ABRT and an interrupt (QEMU
 *   completes the command as if the data had moved);
 * - the BMIC direction bit must match the command (else the same error);
 * - PRD addresses have bit 0 cleared, and a table ends at its 64 KiB
 *   boundary (QEMU stops after 4 KiB: 512 entries);
 * - SRST holds the drives busy until it is released, and the reset raises
 *   no interrupt;
 * - clearing BMIC Start during a transfer stops it after the current chunk
 *   and the command ends with ABRT (QEMU waits for the transfer to finish).
 *
 * @module
 */

import type { DmaFault } from "../dma/dma_result.ts";
import { describeDmaFault } from "../dma/dma_result.ts";
import type { DiskBackend } from "../storage/disk_backend.ts";
import { openDiskBackend } from "../storage/open_disk.ts";
import { AtaDisk, type AtaDmaRequest, AtaError, AtaRegister } from "./ata_disk.ts";
import type { DeviceDescriptor, DeviceEnv, DeviceModel, DiskAttachment } from "./device_model.ts";
import { BmStatus, BusMasterDma, type BusMasterOutcome } from "./ide_bus_master.ts";

/**
 * Device control register bits (0x3F6 / 0x376, write).
 *
 * @example
 * ```ts
 * import { IdeControl } from "./piix3_ide.ts";
 * import { equal } from "node:assert/strict";
 * equal(IdeControl.SRST | IdeControl.NIEN, 0x06); // reset with interrupts masked
 * ```
 */
export const IdeControl = {
  /** Interrupts disabled. */
  NIEN: 0x02,
  /** Software reset. */
  SRST: 0x04,
  /** Read the "high order bytes" of the LBA48 registers. */
  HOB: 0x80,
} as const;

/**
 * Region numbers of the controller's descriptor.
 *
 * @example
 * ```ts
 * import { PIIX3_IDE_DESCRIPTOR, Piix3IdeRegion } from "./piix3_ide.ts";
 * import { equal } from "node:assert/strict";
 * equal(PIIX3_IDE_DESCRIPTOR.regions[Piix3IdeRegion.CMD1]?.fixedBase, 0x170);
 * ```
 */
export const Piix3IdeRegion = {
  /** Primary command block, 0x1F0–0x1F7. */
  CMD0: 0,
  /** Primary control block, 0x3F6. */
  CTL0: 1,
  /** Secondary command block, 0x170–0x177. */
  CMD1: 2,
  /** Secondary control block, 0x376. */
  CTL1: 3,
  /** Bus-master registers (BAR4). */
  BMDMA: 4,
} as const;

/**
 * Static description of the PIIX3 IDE function, as QEMU's `piix3-ide`.
 *
 * @example
 * ```ts
 * import { PIIX3_IDE_DESCRIPTOR } from "./piix3_ide.ts";
 * import { equal } from "node:assert/strict";
 * equal(PIIX3_IDE_DESCRIPTOR.pci.classCode, 0x010180);
 * ```
 */
export const PIIX3_IDE_DESCRIPTOR: DeviceDescriptor = {
  type: "piix3-ide",
  description: "Intel PIIX3 IDE controller (8086:7010) with bus-master DMA",
  pci: {
    vendorId: 0x8086,
    deviceId: 0x7010,
    classCode: 0x010180, // mass storage, IDE, legacy mode, bus master capable
    revision: 0,
    interruptPin: 0, // legacy IRQs 14 and 15, no INTx
    status: 0x0280, // fast back-to-back capable, DEVSEL medium (as QEMU)
    bars: [{ index: 4, kind: "pio", size: 16 }],
  },
  regions: [
    { name: "ide.cmd0", kind: "pio", size: 8, fixedBase: 0x1f0 },
    { name: "ide.ctl0", kind: "pio", size: 1, fixedBase: 0x3f6 },
    { name: "ide.cmd1", kind: "pio", size: 8, fixedBase: 0x170 },
    { name: "ide.ctl1", kind: "pio", size: 1, fixedBase: 0x376 },
    { name: "ide.bmdma", kind: "pio", size: 16, bar: 4 },
  ],
  irqs: [{ kind: "isa", line: 14 }, { kind: "isa", line: 15 }],
};

/**
 * Options for {@linkcode Piix3Ide} (tests inject storage and tune chunking).
 *
 * @example
 * ```ts
 * import type { Piix3IdeOptions } from "./piix3_ide.ts";
 * import { MemoryDisk } from "../storage/memory_disk.ts";
 * const options: Piix3IdeOptions = { openDisk: (disk) => new MemoryDisk(disk.size ?? 1 << 20), chunkSize: 1 << 16 };
 * ```
 */
export interface Piix3IdeOptions {
  /** Opens a disk's storage (default: its image file, or an in-memory disk). */
  openDisk?: (disk: DiskAttachment) => DiskBackend;
  /** Bytes per DMA chunk (default 1 MiB). */
  chunkSize?: number;
  /** Average run length from which DMA goes straight to guest RAM (default `Infinity`: always bounce). */
  directRun?: number;
}

/** Command names for trace lines. */
const COMMAND_NAMES: Readonly<Record<number, string>> = {
  0xec: "IDENTIFY DEVICE",
  0x20: "READ SECTORS",
  0x24: "READ SECTORS EXT",
  0x30: "WRITE SECTORS",
  0x34: "WRITE SECTORS EXT",
  0xc8: "READ DMA",
  0x25: "READ DMA EXT",
  0xca: "WRITE DMA",
  0x35: "WRITE DMA EXT",
  0xe7: "FLUSH CACHE",
  0xea: "FLUSH CACHE EXT",
  0xef: "SET FEATURES",
};

const hex2 = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;

/** One IDE channel: two drive slots, device control, INTRQ and the bus master. */
class IdeChannel {
  readonly index: number;
  readonly drives: [AtaDisk, AtaDisk];
  readonly bm: BusMasterDma;
  #env: DeviceEnv;
  #control = 0;
  #irqPending = false;
  #line = false;
  #pending: { request: AtaDmaRequest; drive: AtaDisk } | undefined;
  #running = false;
  #runToken = 0;
  #stops = 0;

  constructor(
    index: number,
    env: DeviceEnv,
    slots: [DiskSlot, DiskSlot],
    options: Piix3IdeOptions,
  ) {
    this.index = index;
    this.#env = env;
    const port = (drive: () => AtaDisk) => ({
      raiseIrq: () => this.#raiseIrq(),
      startDma: (request: AtaDmaRequest) => this.#startDma(request, drive()),
      defer: (task: () => Promise<void>) => env.defer(task),
      log: (message: string) => env.log(message),
    });
    const make = (unit: 0 | 1) => {
      const slot = slots[unit];
      const drive: AtaDisk = new AtaDisk(port(() => drive), { unit, ...slot });
      return drive;
    };
    this.drives = [make(0), make(1)];
    this.bm = new BusMasterDma(env.dma, {
      ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
      ...(options.directRun !== undefined ? { directRun: options.directRun } : {}),
      onStart: () => this.#maybeRun(),
      onStop: () => this.#stops++,
    });
  }

  /** The drive the device register selects. */
  get selected(): AtaDisk {
    return this.drives[this.drives[0].selectedUnit]!;
  }

  get #empty(): boolean {
    return !this.drives[0].present && !this.drives[1].present;
  }

  readCommandBlock(offset: number, size: number): number {
    if (offset === AtaRegister.DATA) {
      // A byte read of the data port reads a word and keeps its low byte (as QEMU).
      const data = this.selected.readData(size === 4 ? 4 : 2);
      return size === 1 ? data & 0xff : data;
    }
    if (size === 4) return 0xffff_ffff; // only the data port takes dwords
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.#readByte(offset + i);
    return value >>> 0;
  }

  #readByte(reg: number): number {
    if (this.#empty) return 0;
    const drive = this.selected;
    if (reg === AtaRegister.STATUS_COMMAND) {
      this.#irqPending = false;
      this.#updateLine();
      return drive.status;
    }
    return drive.readRegister(reg, (this.#control & IdeControl.HOB) !== 0);
  }

  writeCommandBlock(offset: number, size: number, value: number): void {
    if (offset === AtaRegister.DATA) {
      if (size !== 1) this.selected.writeData(size === 4 ? 4 : 2, value);
      return;
    }
    if (size === 4) return;
    for (let i = 0; i < size; i++) this.#writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  #writeByte(reg: number, byte: number): void {
    const selected = this.selected;
    if (reg === AtaRegister.STATUS_COMMAND) {
      this.#control &= ~IdeControl.HOB;
      // Writing the command register acknowledges a pending interrupt (as QEMU).
      this.#irqPending = false;
      this.#updateLine();
      this.#env.trace?.(
        `channel ${this.index} unit ${selected.unit}: command ${hex2(byte)} ${
          COMMAND_NAMES[byte] ?? "(not implemented)"
        }${selected.present ? "" : " (no drive)"}`,
      );
      selected.execute(byte);
      return;
    }
    // The command block is ignored while the selected drive is busy.
    if (selected.busy) return;
    this.#control &= ~IdeControl.HOB;
    for (const drive of this.drives) drive.writeRegister(reg, byte);
  }

  readControl(): number {
    return this.#empty ? 0 : this.selected.status; // alternate status: no acknowledge
  }

  writeControl(byte: number): void {
    const was = this.#control;
    this.#control = byte;
    if ((byte & IdeControl.SRST) && !(was & IdeControl.SRST)) {
      this.#env.trace?.(`channel ${this.index}: software reset`);
      this.#cancelDma();
      for (const drive of this.drives) drive.assertReset();
      this.#irqPending = false;
    } else if (!(byte & IdeControl.SRST) && (was & IdeControl.SRST)) {
      for (const drive of this.drives) drive.completeReset();
    }
    this.#updateLine();
  }

  #raiseIrq(): void {
    this.#irqPending = true;
    this.#updateLine();
  }

  #updateLine(): void {
    const level = this.#irqPending && !(this.#control & IdeControl.NIEN);
    if (level === this.#line) return;
    this.#line = level;
    this.#env.trace?.(
      `channel ${this.index}: IRQ ${14 + this.index} ${level ? "raised" : "lowered"}${
        level ? `, status ${hex2(this.selected.status)}` : ""
      }`,
    );
    if (level) this.bm.status |= BmStatus.INTERRUPT;
    this.#env.setIrq(this.index, level);
  }

  // ---- DMA ----

  #startDma(request: AtaDmaRequest, drive: AtaDisk): void {
    this.#env.trace?.(
      `channel ${this.index} unit ${drive.unit}: DMA ${
        request.toMemory ? "disk -> memory" : "memory -> disk"
      } lba ${request.offset / 512} sectors ${request.length / 512} (${request.length} bytes)`,
    );
    this.#pending = { request, drive };
    this.#maybeRun();
  }

  #maybeRun(): void {
    if (this.#running || !this.#pending || !this.bm.active) return;
    const { request, drive } = this.#pending;
    this.#pending = undefined;
    this.#running = true;
    const token = ++this.#runToken;
    const stops = this.#stops;
    this.#env.defer(async () => {
      let outcome: BusMasterOutcome;
      try {
        outcome = await this.bm.transfer(
          request,
          () => token !== this.#runToken || stops !== this.#stops,
        );
      } finally {
        this.#running = false;
      }
      if (token === this.#runToken) await this.#settle(outcome, request, drive);
      this.#maybeRun();
    });
  }

  /** A reset: the transfer in flight (if any) stops at its next chunk and is forgotten. */
  #cancelDma(): void {
    this.#runToken++;
    this.#pending = undefined;
  }

  async #settle(outcome: BusMasterOutcome, request: AtaDmaRequest, drive: AtaDisk): Promise<void> {
    const bm = this.bm;
    const where = `ide: channel ${this.index} unit ${drive.unit}`;
    this.#env.trace?.(
      `channel ${this.index} unit ${drive.unit}: DMA ${outcome.kind}${
        "bytesDone" in outcome ? ` after ${outcome.bytesDone} bytes` : ""
      }`,
    );
    switch (outcome.kind) {
      case "complete":
        await drive.finishDma({ kind: "done" }, () => {
          if (!outcome.longer) bm.status &= ~BmStatus.ACTIVE;
        });
        return;
      case "short":
        await drive.finishDma({ kind: "short" }, () => (bm.status &= ~BmStatus.ACTIVE));
        return;
      case "direction":
        this.#env.log(
          `${where}: DMA refused: BMIC direction (${
            request.toMemory ? "memory to device" : "device to memory"
          }) does not match the ${request.toMemory ? "read" : "write"} command`,
        );
        await this.#busError(drive, 0);
        return;
      case "fault":
        this.#env.log(`${where}: DMA ${describeFault(outcome.where, outcome.fault)}`);
        await this.#busError(drive, outcome.bytesDone);
        return;
      case "io-error":
        this.#env.log(
          `${where}: disk ${request.toMemory ? "read" : "write"} failed: ${
            outcome.error instanceof Error ? outcome.error.message : String(outcome.error)
          }`,
        );
        await drive.finishDma(
          {
            kind: "error",
            error: request.toMemory ? AtaError.UNC : AtaError.ABRT,
            bytesDone: outcome.bytesDone,
          },
          () => (bm.status &= ~BmStatus.ACTIVE),
        );
        return;
      case "cancelled":
        this.#env.log(`${where}: DMA stopped by BMIC after ${outcome.bytesDone} bytes`);
        await drive.finishDma({
          kind: "error",
          error: AtaError.ABRT,
          bytesDone: outcome.bytesDone,
        });
        return;
    }
  }

  async #busError(drive: AtaDisk, bytesDone: number): Promise<void> {
    await drive.finishDma({ kind: "error", error: AtaError.ABRT, bytesDone }, () => {
      this.bm.status = (this.bm.status | BmStatus.ERROR) & ~BmStatus.ACTIVE;
    });
  }

  dispose(): void {
    this.#cancelDma();
  }
}

function describeFault(where: "prd-table" | "buffer", fault: DmaFault): string {
  return `${where === "prd-table" ? "PRD table" : "buffer"} fault: ${describeDmaFault(fault)}`;
}

const ALL_ONES = { 1: 0xff, 2: 0xffff, 4: 0xffff_ffff } as const;

/** What a drive slot holds: its storage (or why it has none), its identity. */
interface DiskSlot {
  backend?: DiskBackend;
  openError?: string;
  identity?: { serial?: string; model?: string; firmware?: string };
  name?: string;
}

/**
 * QEMU's default serial number for a drive of the q35 machine's PIIX3: QEMU
 * numbers IDE units as it creates them, and the q35 AHCI's twelve come first.
 */
function defaultSerial(bus: number, unit: number): string {
  return `QM${String(13 + bus * 2 + unit).padStart(5, "0")}`;
}

/**
 * The PIIX3 IDE controller model.
 *
 * @example Read IDENTIFY data from the primary master by PIO
 * ```ts
 * import { Piix3Ide } from "./piix3_ide.ts";
 * import { DmaContext } from "../dma/dma_context.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const ide = new Piix3Ide({
 *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
 *   setIrq: () => {}, log: () => {}, defer: () => {},
 *   disks: [{ kind: "disk", drive: "d0", size: 1 << 20, readonly: false, bus: 0, unit: 0,
 *     properties: { model: "DMAWORKS DISK" } }],
 * });
 * ide.write(0, 6, 1, 0xa0); // select the master
 * ide.write(0, 7, 1, 0xec); // IDENTIFY DEVICE
 * equal(ide.read(0, 7, 1), 0x58); // DRDY DSC DRQ
 * const words = Array.from({ length: 256 }, () => ide.read(0, 0, 2));
 * equal(String.fromCharCode(words[27]! >> 8, words[27]! & 0xff), "DM");
 * await ide.dispose();
 * ```
 */
export class Piix3Ide implements DeviceModel {
  #channels: [IdeChannel, IdeChannel];
  #backends: DiskBackend[] = [];

  /**
   * Creates the controller and opens its disks' storage. A disk whose image
   * cannot be opened stays attached and aborts every command (and the
   * reason is logged).
   *
   * @param env The host environment (its `disks` are attached).
   * @param _properties `-device piix3-ide` properties (none).
   * @param options Storage and chunking overrides (tests).
   */
  constructor(
    env: DeviceEnv,
    _properties: Readonly<Record<string, string>> = {},
    options: Piix3IdeOptions = {},
  ) {
    const open = options.openDisk ?? openDiskBackend;
    const slots: [[DiskSlot, DiskSlot], [DiskSlot, DiskSlot]] = [[{}, {}], [{}, {}]];
    for (const disk of env.disks ?? []) {
      if (!(disk.bus === 0 || disk.bus === 1) || !(disk.unit === 0 || disk.unit === 1)) {
        env.log(`ide: drive '${disk.drive}' names bus ${disk.bus} unit ${disk.unit}: ignored`);
        continue;
      }
      const slot: DiskSlot = {
        name: `drive '${disk.drive}'`,
        identity: {
          serial: disk.properties["serial"] ?? defaultSerial(disk.bus, disk.unit),
          ...(disk.properties["model"] !== undefined ? { model: disk.properties["model"] } : {}),
          ...(disk.properties["ver"] !== undefined ? { firmware: disk.properties["ver"] } : {}),
        },
      };
      try {
        slot.backend = open(disk);
        this.#backends.push(slot.backend);
      } catch (error) {
        slot.openError = error instanceof Error ? error.message : String(error);
        env.log(`ide: drive '${disk.drive}': ${slot.openError}`);
      }
      slots[disk.bus]![disk.unit] = slot;
    }
    this.#channels = [
      new IdeChannel(0, env, slots[0], options),
      new IdeChannel(1, env, slots[1], options),
    ];
  }

  /**
   * Reads a register.
   *
   * @param region Region number (see {@linkcode Piix3IdeRegion}).
   * @param offset Offset in the region.
   * @param size 1, 2 or 4.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { Piix3Ide, Piix3IdeRegion } from "./piix3_ide.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ide = new Piix3Ide({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   * });
   * equal(ide.read(Piix3IdeRegion.CMD0, 7, 1), 0); // no drives: the status reads 0
   * equal(ide.read(Piix3IdeRegion.BMDMA, 1, 1), 0xff); // an unimplemented bus-master byte
   * await ide.dispose();
   * ```
   */
  read(region: number, offset: number, size: 1 | 2 | 4): number {
    switch (region) {
      case Piix3IdeRegion.CMD0:
      case Piix3IdeRegion.CMD1:
        return this.#channels[region >> 1]!.readCommandBlock(offset, size);
      case Piix3IdeRegion.CTL0:
      case Piix3IdeRegion.CTL1:
        return offset === 0 ? this.#channels[region >> 1]!.readControl() : 0xff;
      case Piix3IdeRegion.BMDMA: {
        // BMIC and BMIS take byte accesses only; an aligned wider one reads all-ones (as QEMU).
        if (size > 1 && offset % size === 0 && (offset & 7) < 4) return ALL_ONES[size];
        let value = 0;
        for (let i = size - 1; i >= 0; i--) {
          const at = offset + i;
          value = value * 256 +
            (at < 16 ? this.#channels[at >> 3]!.bm.readRegister(at & 7, 1) : 0xff);
        }
        return value >>> 0;
      }
      default:
        return ALL_ONES[size];
    }
  }

  /**
   * Writes a register.
   *
   * @param region Region number (see {@linkcode Piix3IdeRegion}).
   * @param offset Offset in the region.
   * @param size 1, 2 or 4.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { Piix3Ide, Piix3IdeRegion } from "./piix3_ide.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ide = new Piix3Ide({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   * });
   * ide.write(Piix3IdeRegion.BMDMA, 8 + 4, 4, 0x0010_0000); // the secondary channel's BMIDTP
   * equal(ide.read(Piix3IdeRegion.BMDMA, 8 + 4, 4), 0x0010_0000);
   * ide.write(Piix3IdeRegion.BMDMA, 0, 2, 0x0001); // BMIC takes byte writes only
   * equal(ide.read(Piix3IdeRegion.BMDMA, 0, 1), 0);
   * await ide.dispose();
   * ```
   */
  write(region: number, offset: number, size: 1 | 2 | 4, value: number): void {
    switch (region) {
      case Piix3IdeRegion.CMD0:
      case Piix3IdeRegion.CMD1:
        this.#channels[region >> 1]!.writeCommandBlock(offset, size, value);
        break;
      case Piix3IdeRegion.CTL0:
      case Piix3IdeRegion.CTL1:
        if (offset === 0) this.#channels[region >> 1]!.writeControl(value & 0xff);
        break;
      case Piix3IdeRegion.BMDMA:
        if (size > 1 && offset % size === 0 && (offset & 7) < 4) break;
        for (let i = 0; i < size; i++) {
          const at = offset + i;
          if (at < 16) {
            this.#channels[at >> 3]!.bm.writeRegister(at & 7, 1, (value >>> (8 * i)) & 0xff);
          }
        }
        break;
    }
  }

  /**
   * Stops transfers and closes the disks' storage.
   *
   * @example
   * ```ts
   * import { Piix3Ide } from "./piix3_ide.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { deepEqual } from "node:assert/strict";
   * const closed: string[] = [];
   * const ide = new Piix3Ide({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   *   disks: [{ kind: "disk", drive: "d0", size: 1 << 20, readonly: false, bus: 0, unit: 0, properties: {} }],
   * }, {}, {
   *   openDisk: (disk) =>
   *     Object.assign(new MemoryDisk(1 << 20), { close: async () => void closed.push(disk.drive) }),
   * });
   * await ide.dispose();
   * deepEqual(closed, ["d0"]);
   * ```
   */
  async dispose(): Promise<void> {
    for (const channel of this.#channels) channel.dispose();
    await Promise.allSettled(this.#backends.map((b) => b.close()));
  }
}
