/**
 * An ATA hard disk as its controller sees it: the task-file registers of one
 * drive, its command state machine (IDENTIFY DEVICE, PIO and DMA reads and
 * writes in 28- and 48-bit forms, FLUSH CACHE, SET FEATURES), its PIO data
 * buffer and its IDENTIFY data. The drive does not move DMA data itself: it
 * asks its channel's bus master through {@linkcode AtaPort.startDma} and is
 * told the outcome with {@linkcode AtaDisk.finishDma}.
 *
 * Register behaviour follows QEMU's IDE model (hw/ide/core.c) where guests
 * depend on it (reset values, HOB, writes ignored while BSY or DRQ, what an
 * absent device reads); command outcomes follow ATA/ATAPI-6 where QEMU
 * differs: an LBA range outside the disk ends the command with IDNF (QEMU:
 * ABRT), a transfer mode the drive does not support is refused, and commands
 * outside the supported set end with ABRT (QEMU implements some more).
 *
 * @module
 */

import { type DiskBackend, SECTOR_SIZE } from "../storage/disk_backend.ts";

/**
 * Status register bits.
 *
 * @example
 * ```ts
 * import { AtaStatus } from "./ata_disk.ts";
 * import { equal } from "node:assert/strict";
 * equal(AtaStatus.DRDY | AtaStatus.DSC, 0x50); // a ready disk
 * ```
 */
export const AtaStatus = {
  /** Busy. */
  BSY: 0x80,
  /** Device ready. */
  DRDY: 0x40,
  /** Device fault. */
  DF: 0x20,
  /** Seek complete (obsolete, still reported). */
  DSC: 0x10,
  /** Data request. */
  DRQ: 0x08,
  /** Error. */
  ERR: 0x01,
} as const;

/**
 * Error register bits.
 *
 * @example
 * ```ts
 * import { AtaError } from "./ata_disk.ts";
 * import { equal } from "node:assert/strict";
 * equal(AtaError.IDNF, 0x10);
 * ```
 */
export const AtaError = {
  /** Command aborted. */
  ABRT: 0x04,
  /** ID not found: the address is outside the disk. */
  IDNF: 0x10,
  /** Uncorrectable data error (a read failed). */
  UNC: 0x40,
} as const;

/**
 * The commands the drive implements (any other aborts).
 *
 * @example
 * ```ts
 * import { AtaCommand } from "./ata_disk.ts";
 * import { equal } from "node:assert/strict";
 * equal(AtaCommand.READ_DMA_EXT, 0x25);
 * ```
 */
export const AtaCommand = {
  /** IDENTIFY DEVICE. */
  IDENTIFY_DEVICE: 0xec,
  /** READ SECTORS (PIO, LBA28). */
  READ_SECTORS: 0x20,
  /** READ SECTORS EXT (PIO, LBA48). */
  READ_SECTORS_EXT: 0x24,
  /** WRITE SECTORS (PIO, LBA28). */
  WRITE_SECTORS: 0x30,
  /** WRITE SECTORS EXT (PIO, LBA48). */
  WRITE_SECTORS_EXT: 0x34,
  /** READ DMA (LBA28). */
  READ_DMA: 0xc8,
  /** READ DMA EXT (LBA48). */
  READ_DMA_EXT: 0x25,
  /** WRITE DMA (LBA28). */
  WRITE_DMA: 0xca,
  /** WRITE DMA EXT (LBA48). */
  WRITE_DMA_EXT: 0x35,
  /** FLUSH CACHE. */
  FLUSH_CACHE: 0xe7,
  /** FLUSH CACHE EXT. */
  FLUSH_CACHE_EXT: 0xea,
  /** SET FEATURES. */
  SET_FEATURES: 0xef,
} as const;

/**
 * Task-file register offsets (command block).
 *
 * @example
 * ```ts
 * import { AtaRegister } from "./ata_disk.ts";
 * import { equal } from "node:assert/strict";
 * equal(0x1f0 + AtaRegister.STATUS_COMMAND, 0x1f7);
 * ```
 */
export const AtaRegister = {
  /** Data (16 or 32 bits). */
  DATA: 0,
  /** Error (read) / Features (write). */
  ERROR_FEATURES: 1,
  /** Sector count. */
  SECTOR_COUNT: 2,
  /** LBA low / sector number. */
  LBA_LOW: 3,
  /** LBA mid / cylinder low. */
  LBA_MID: 4,
  /** LBA high / cylinder high. */
  LBA_HIGH: 5,
  /** Device: bit 6 LBA, bit 4 DEV, bits 3:0 LBA 27:24 or head. */
  DEVICE: 6,
  /** Status (read, acknowledges INTRQ) / Command (write). */
  STATUS_COMMAND: 7,
} as const;

/** Device register bits. */
const DEV_LBA = 0x40;
const DEV_SELECT = 0x10;
/** Bits QEMU reads back as 1 in the device register (obsolete bits 7 and 5). */
const DEV_ALWAYS_ON = 0xa0;
/** Largest LBA28 capacity reported in IDENTIFY words 60–61. */
const LBA28_MAX = 0x0fff_ffff;
/** Log lines per drive before further errors are only counted. */
const LOG_LIMIT = 16;

/**
 * A DMA data phase the drive asks its bus master for.
 *
 * @example
 * ```ts
 * import type { AtaDmaRequest } from "./ata_disk.ts";
 * import { MemoryDisk } from "../storage/memory_disk.ts";
 * const request: AtaDmaRequest = { toMemory: true, offset: 0, length: 4096, backend: new MemoryDisk(1 << 20) };
 * ```
 */
export interface AtaDmaRequest {
  /** Device → memory (a read command); `false`: memory → device. */
  readonly toMemory: boolean;
  /** First byte on the disk. */
  readonly offset: number;
  /** Bytes to move (whole sectors). */
  readonly length: number;
  /** The drive's storage. */
  readonly backend: DiskBackend;
}

/**
 * How a DMA data phase ended, as the bus master tells the drive.
 *
 * @example
 * ```ts
 * import type { AtaDmaResult } from "./ata_disk.ts";
 * import { AtaError } from "./ata_disk.ts";
 * const failed: AtaDmaResult = { kind: "error", error: AtaError.ABRT, bytesDone: 512 };
 * ```
 */
export type AtaDmaResult =
  /** Every byte moved. */
  | { readonly kind: "done" }
  /**
   * The PRD table described fewer bytes than the command: no data moved; the
   * command ends without an interrupt (QEMU's behaviour, which its tests pin).
   */
  | { readonly kind: "short" }
  /** The transfer failed after `bytesDone` bytes; the command ends with ERR and `error`. */
  | { readonly kind: "error"; readonly error: number; readonly bytesDone: number };

/**
 * What a drive needs from its channel.
 *
 * @example
 * ```ts
 * import type { AtaPort } from "./ata_disk.ts";
 * const port: AtaPort = {
 *   raiseIrq: () => {},
 *   startDma: () => {},
 *   defer: (task) => void task(),
 *   log: (message) => console.log(message),
 * };
 * ```
 */
export interface AtaPort {
  /** Asserts the drive's interrupt request (INTRQ). */
  raiseIrq(): void;
  /**
   * Enters a DMA data phase: the bus master moves the data when it is
   * started and reports with {@linkcode AtaDisk.finishDma}.
   *
   * @param request What to move.
   */
  startDma(request: AtaDmaRequest): void;
  /**
   * Runs work after the current register access returns.
   *
   * @param task The work.
   */
  defer(task: () => Promise<void>): void;
  /**
   * Logs a guest-visible event.
   *
   * @param message The message.
   */
  log(message: string): void;
}

/**
 * The strings IDENTIFY DEVICE reports.
 *
 * @example
 * ```ts
 * import type { AtaIdentity } from "./ata_disk.ts";
 * const identity: AtaIdentity = { serial: "QM00013", model: "QEMU HARDDISK", firmware: "2.5+" };
 * ```
 */
export interface AtaIdentity {
  /** Serial number (20 characters). */
  readonly serial: string;
  /** Model number (40 characters). */
  readonly model: string;
  /** Firmware revision (8 characters). */
  readonly firmware: string;
}

/**
 * Options for {@linkcode AtaDisk}.
 *
 * @example
 * ```ts
 * import type { AtaDiskOptions } from "./ata_disk.ts";
 * import { MemoryDisk } from "../storage/memory_disk.ts";
 * const options: AtaDiskOptions = { unit: 0, backend: new MemoryDisk(1 << 20), identity: { serial: "S1" } };
 * ```
 */
export interface AtaDiskOptions {
  /** Unit on the channel (0 master, 1 slave). */
  readonly unit: number;
  /** The drive's storage; absent for a slot with no drive. */
  readonly backend?: DiskBackend;
  /** Why the storage could not be opened (the drive is present but aborts every command). */
  readonly openError?: string;
  /** IDENTIFY strings (defaults: QEMU's). */
  readonly identity?: Partial<AtaIdentity>;
  /** Name used in log lines (e.g. the drive id). */
  readonly name?: string;
}

/** CHS geometry as QEMU guesses it for a disk without a partition table. */
function geometry(sectors: number): { cylinders: number; heads: number; sectors: number } {
  const cylinders = Math.min(16383, Math.max(2, Math.floor(sectors / (16 * 63))));
  return { cylinders, heads: 16, sectors: 63 };
}

/** An ATA string: space padded, two characters per word, high byte first. */
function putString(words: Uint16Array, at: number, text: string, length: number): void {
  for (let i = 0; i < length; i += 2) {
    const hi = i < text.length ? text.charCodeAt(i) : 0x20;
    const lo = i + 1 < text.length ? text.charCodeAt(i + 1) : 0x20;
    const clean = (c: number) => (c >= 0x20 && c <= 0x7e ? c : 0x3f);
    words[at + i / 2] = (clean(hi) << 8) | clean(lo);
  }
}

/**
 * Builds the IDENTIFY DEVICE data of a disk (words laid out as QEMU 7.2's
 * `ide_identify`, minus the features this drive does not implement: READ/
 * WRITE MULTIPLE, SMART and TRIM).
 *
 * @param sectors Capacity in sectors.
 * @param identity Serial, model and firmware strings.
 * @returns 256 words.
 *
 * @example
 * ```ts
 * import { identifyDevice } from "./ata_disk.ts";
 * import { equal } from "node:assert/strict";
 * const words = identifyDevice(131072, { serial: "S1", model: "DISK", firmware: "1.0" });
 * equal(words[60]! | (words[61]! << 16), 131072); // LBA28 capacity
 * equal(words[83]! & 0x0400, 0x0400); // LBA48 supported
 * ```
 */
export function identifyDevice(sectors: number, identity: AtaIdentity): Uint16Array {
  const w = new Uint16Array(256);
  const chs = geometry(sectors);
  w[0] = 0x0040; // fixed device
  w[1] = chs.cylinders;
  w[3] = chs.heads;
  w[4] = 512 * chs.sectors; // retired
  w[5] = 512; // retired
  w[6] = chs.sectors;
  putString(w, 10, identity.serial, 20);
  w[20] = 3; // retired: buffer type
  w[21] = 512; // retired: buffer size
  w[22] = 4; // obsolete: ECC bytes
  putString(w, 23, identity.firmware, 8);
  putString(w, 27, identity.model, 40);
  w[48] = 1; // dword I/O
  w[49] = (1 << 11) | (1 << 9) | (1 << 8); // IORDY, LBA, DMA
  w[51] = 0x200; // PIO timing (obsolete)
  w[52] = 0x200; // DMA timing (obsolete)
  w[53] = 7; // words 54–58, 64–70 and 88 valid
  w[54] = chs.cylinders;
  w[55] = chs.heads;
  w[56] = chs.sectors;
  const chsCapacity = chs.cylinders * chs.heads * chs.sectors;
  w[57] = chsCapacity & 0xffff;
  w[58] = chsCapacity >>> 16;
  const lba28 = Math.min(sectors, LBA28_MAX);
  w[60] = lba28 & 0xffff;
  w[61] = lba28 >>> 16;
  w[62] = 0x07; // single-word DMA 0–2 supported
  w[63] = 0x07; // multiword DMA 0–2 supported
  w[64] = 0x03; // PIO 3–4 supported
  w[65] = 120;
  w[66] = 120;
  w[67] = 120;
  w[68] = 120;
  w[80] = 0xf0; // ATA-4 … ATA-7
  w[81] = 0x16;
  w[82] = (1 << 14) | (1 << 5); // NOP, write cache
  w[83] = (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10); // FLUSH CACHE (EXT), LBA48
  w[84] = 1 << 14;
  w[85] = (1 << 14) | (1 << 5); // NOP, write cache enabled
  w[86] = (1 << 13) | (1 << 12) | (1 << 10);
  w[87] = 1 << 14;
  w[88] = 0x3f | (1 << 13); // UDMA 0–5 supported, UDMA 5 selected
  w[93] = 1 | (1 << 14) | 0x2000; // hardware reset result
  w[100] = sectors % 0x10000;
  w[101] = Math.floor(sectors / 0x10000) % 0x10000;
  w[102] = Math.floor(sectors / 0x1_0000_0000) % 0x10000;
  w[103] = Math.floor(sectors / 0x1_0000_0000_0000) % 0x10000;
  w[106] = 0x6000; // one logical sector per physical sector
  return w;
}

/** What a PIO data phase does when its buffer has been transferred. */
type PioEnd = () => void;

/**
 * One ATA drive (or the empty slot of an absent one, which still latches
 * task-file writes as QEMU's does).
 *
 * @example IDENTIFY DEVICE over PIO
 * ```ts
 * import { AtaDisk, AtaStatus } from "./ata_disk.ts";
 * import { MemoryDisk } from "../storage/memory_disk.ts";
 * import { equal } from "node:assert/strict";
 * let irqs = 0;
 * const disk = new AtaDisk({
 *   raiseIrq: () => irqs++, startDma: () => {}, defer: () => {}, log: () => {},
 * }, { unit: 0, backend: new MemoryDisk(1 << 20) });
 * disk.execute(0xec);
 * equal(disk.status, AtaStatus.DRDY | AtaStatus.DSC | AtaStatus.DRQ);
 * equal(irqs, 1);
 * const word0 = disk.readData(2);
 * equal(word0, 0x0040);
 * for (let i = 1; i < 256; i++) disk.readData(2);
 * equal(disk.status, AtaStatus.DRDY | AtaStatus.DSC);
 * ```
 */
export class AtaDisk {
  /** Unit on the channel (0 master, 1 slave). */
  readonly unit: number;
  /** Whether a drive is attached to this slot. */
  readonly present: boolean;
  #port: AtaPort;
  #backend: DiskBackend | undefined;
  #openError: string | undefined;
  #name: string;
  #identity: AtaIdentity;
  #identify: Uint16Array | undefined;
  #writeCache = true;
  #logged = 0;

  // Task file (current and previous, "high order byte", values).
  #feature = 0;
  #hobFeature = 0;
  #nsector = 0;
  #hobNsector = 0;
  #sector = 0;
  #hobSector = 0;
  #lcyl = 0;
  #hobLcyl = 0;
  #hcyl = 0;
  #hobHcyl = 0;
  #select = DEV_ALWAYS_ON;
  #status = 0;
  #error = 0;

  // PIO data phase.
  #buffer = new Uint8Array(SECTOR_SIZE);
  #bufferView = new DataView(this.#buffer.buffer);
  #pos = 0;
  #end = 0;
  #pioIn = true;
  #pioEnd: PioEnd | undefined;

  // The command in progress: addressing and what is left.
  #lba48 = false;
  #lba = 0;
  #left = 0;
  /** In a DMA data phase (between `startDma` and `finishDma`). */
  #dmaPhase = false;
  /** Bumped by every reset: asynchronous work of an older epoch is dropped. */
  #epoch = 0;

  /**
   * Creates a drive in its power-on state.
   *
   * @param port The channel the drive sits on.
   * @param options Unit, storage and identity.
   */
  constructor(port: AtaPort, options: AtaDiskOptions) {
    this.#port = port;
    this.unit = options.unit;
    this.present = options.backend !== undefined || options.openError !== undefined;
    this.#backend = options.backend;
    this.#openError = options.openError;
    this.#name = options.name ?? `unit ${options.unit}`;
    this.#identity = {
      serial: options.identity?.serial ?? "QM00001",
      model: options.identity?.model ?? "QEMU HARDDISK",
      firmware: options.identity?.firmware ?? "2.5+",
    };
    this.#powerOn();
  }

  /**
   * Capacity in sectors (0 without usable storage).
   *
   * @example
   * ```ts
   * import { AtaDisk } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * equal(new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) }).sectors, 2048);
   * equal(new AtaDisk(port, { unit: 1 }).sectors, 0); // no drive in this slot
   * ```
   */
  get sectors(): number {
    return this.#backend ? Math.floor(this.#backend.size / SECTOR_SIZE) : 0;
  }

  /**
   * The status register (0 for an absent drive).
   *
   * @example
   * ```ts
   * import { AtaDisk, AtaStatus } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * equal(new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) }).status, AtaStatus.DRDY | AtaStatus.DSC);
   * equal(new AtaDisk(port, { unit: 1 }).status, 0); // an absent drive
   * ```
   */
  get status(): number {
    return this.present ? this.#status : 0;
  }

  /**
   * The error register (0 for an absent drive).
   *
   * @example
   * ```ts
   * import { AtaDisk, AtaError, AtaStatus } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * disk.execute(0x00); // NOP: not implemented
   * equal(disk.status & AtaStatus.ERR, AtaStatus.ERR);
   * equal(disk.error, AtaError.ABRT);
   * ```
   */
  get error(): number {
    return this.present ? this.#error : 0;
  }

  /**
   * Whether the drive is executing a command or transferring data (BSY or DRQ).
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * equal(disk.busy, false);
   * disk.execute(AtaCommand.IDENTIFY_DEVICE); // DRQ: 512 bytes to read
   * equal(disk.busy, true);
   * ```
   */
  get busy(): boolean {
    return (this.#status & (AtaStatus.BSY | AtaStatus.DRQ)) !== 0;
  }

  /**
   * Whether the write cache is enabled (SET FEATURES 0x02 / 0x82).
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * equal(disk.writeCache, true);
   * disk.writeRegister(AtaRegister.ERROR_FEATURES, 0x82); // disable the write cache
   * disk.execute(AtaCommand.SET_FEATURES);
   * equal(disk.writeCache, false);
   * ```
   */
  get writeCache(): boolean {
    return this.#writeCache;
  }

  #powerOn(): void {
    this.#resetRegisters();
    this.#error = 0;
  }

  /** The task file after a reset: QEMU's `ide_reset`, then the disk signature. */
  #resetRegisters(): void {
    this.#feature = 0;
    this.#hobFeature = 0;
    this.#nsector = 0;
    this.#hobNsector = 0;
    this.#sector = 0;
    this.#hobSector = 0;
    this.#lcyl = 0;
    this.#hobLcyl = 0;
    this.#hcyl = 0;
    this.#hobHcyl = 0;
    this.#select = DEV_ALWAYS_ON;
    this.#status = AtaStatus.DRDY | AtaStatus.DSC;
    this.#signature();
    this.#stopPio();
  }

  /** The ATA signature of a disk in the task file (QEMU's `ide_set_signature`). */
  #signature(): void {
    this.#select &= ~0x0f;
    this.#nsector = 1;
    this.#sector = 1;
    this.#lcyl = 0;
    this.#hcyl = 0;
  }

  /**
   * Latches a write to task-file register `reg` (1–6); the previous value
   * becomes the "high order byte" read back with HOB.
   *
   * @param reg Register offset 1–6.
   * @param value The byte.
   *
   * @example
   * ```ts
   * import { AtaDisk, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * disk.writeRegister(AtaRegister.SECTOR_COUNT, 0x12); // LBA48: high byte first
   * disk.writeRegister(AtaRegister.SECTOR_COUNT, 0x34);
   * equal(disk.readRegister(AtaRegister.SECTOR_COUNT, false), 0x34);
   * equal(disk.readRegister(AtaRegister.SECTOR_COUNT, true), 0x12); // HOB
   * ```
   */
  writeRegister(reg: number, value: number): void {
    const v = value & 0xff;
    switch (reg) {
      case AtaRegister.ERROR_FEATURES:
        this.#hobFeature = this.#feature;
        this.#feature = v;
        break;
      case AtaRegister.SECTOR_COUNT:
        this.#hobNsector = this.#nsector;
        this.#nsector = v;
        break;
      case AtaRegister.LBA_LOW:
        this.#hobSector = this.#sector;
        this.#sector = v;
        break;
      case AtaRegister.LBA_MID:
        this.#hobLcyl = this.#lcyl;
        this.#lcyl = v;
        break;
      case AtaRegister.LBA_HIGH:
        this.#hobHcyl = this.#hcyl;
        this.#hcyl = v;
        break;
      case AtaRegister.DEVICE:
        this.#select = v | DEV_ALWAYS_ON;
        break;
    }
  }

  /**
   * Reads task-file register `reg` (1–6).
   *
   * @param reg Register offset 1–6.
   * @param hob Read the high order bytes (device control HOB bit).
   * @returns The byte.
   *
   * @example
   * ```ts
   * import { AtaDisk, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * equal(disk.readRegister(AtaRegister.SECTOR_COUNT, false), 1); // the disk signature
   * equal(disk.readRegister(AtaRegister.LBA_MID, false), 0);
   * equal(disk.readRegister(AtaRegister.DEVICE, false), 0xa0); // obsolete bits read 1
   * ```
   */
  readRegister(reg: number, hob: boolean): number {
    switch (reg) {
      case AtaRegister.ERROR_FEATURES:
        return this.present ? (hob ? this.#hobFeature : this.#error) : 0;
      case AtaRegister.SECTOR_COUNT:
        return hob ? this.#hobNsector : this.#nsector;
      case AtaRegister.LBA_LOW:
        return hob ? this.#hobSector : this.#sector;
      case AtaRegister.LBA_MID:
        return hob ? this.#hobLcyl : this.#lcyl;
      case AtaRegister.LBA_HIGH:
        return hob ? this.#hobHcyl : this.#hcyl;
      case AtaRegister.DEVICE:
        return this.#select;
      default:
        return 0;
    }
  }

  /**
   * The unit the device register selects (0 or 1; both drives of a channel latch it).
   *
   * @example
   * ```ts
   * import { AtaDisk, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * equal(disk.selectedUnit, 0);
   * disk.writeRegister(AtaRegister.DEVICE, 0x10); // DEV: the slave
   * equal(disk.selectedUnit, 1);
   * ```
   */
  get selectedUnit(): number {
    return (this.#select & DEV_SELECT) ? 1 : 0;
  }

  // ---- PIO data port ----

  /**
   * Reads 2 or 4 bytes from the data port (0 outside a device → host data phase).
   *
   * @param size 2 or 4.
   * @returns The data.
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const backend = new MemoryDisk(1 << 20);
   * await backend.write(512, new Uint8Array(512).fill(0x5a));
   * const tasks: Array<() => Promise<void>> = [];
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: (t: () => Promise<void>) => void tasks.push(t), log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend });
   * equal(disk.readData(2), 0); // no data phase
   * disk.writeRegister(AtaRegister.SECTOR_COUNT, 1);
   * disk.writeRegister(AtaRegister.LBA_LOW, 1);
   * disk.writeRegister(AtaRegister.DEVICE, 0x40); // LBA
   * disk.execute(AtaCommand.READ_SECTORS);
   * for (const t of tasks.splice(0)) await t(); // the disk read
   * equal(disk.readData(4), 0x5a5a5a5a);
   * ```
   */
  readData(size: 2 | 4): number {
    if (!this.present || !(this.#status & AtaStatus.DRQ) || !this.#pioIn) return 0;
    if (this.#pos + size > this.#end) return 0;
    const v = size === 2
      ? this.#bufferView.getUint16(this.#pos, true)
      : this.#bufferView.getUint32(this.#pos, true);
    this.#pos += size;
    if (this.#pos >= this.#end) this.#pioDone();
    return v;
  }

  /**
   * Writes 2 or 4 bytes to the data port (ignored outside a host → device data phase).
   *
   * @param size 2 or 4.
   * @param value The data.
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { deepEqual } from "node:assert/strict";
   * const backend = new MemoryDisk(1 << 20);
   * const tasks: Array<() => Promise<void>> = [];
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: (t: () => Promise<void>) => void tasks.push(t), log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend });
   * disk.writeRegister(AtaRegister.SECTOR_COUNT, 1);
   * disk.writeRegister(AtaRegister.LBA_LOW, 0);
   * disk.writeRegister(AtaRegister.DEVICE, 0x40); // LBA
   * disk.execute(AtaCommand.WRITE_SECTORS);
   * for (let i = 0; i < 128; i++) disk.writeData(4, 0x04030201);
   * for (const t of tasks.splice(0)) await t(); // the disk write
   * const sector = new Uint8Array(4);
   * await backend.read(0, sector);
   * deepEqual(sector, new Uint8Array([1, 2, 3, 4]));
   * ```
   */
  writeData(size: 2 | 4, value: number): void {
    if (!this.present || !(this.#status & AtaStatus.DRQ) || this.#pioIn) return;
    if (this.#pos + size > this.#end) return;
    if (size === 2) this.#bufferView.setUint16(this.#pos, value & 0xffff, true);
    else this.#bufferView.setUint32(this.#pos, value >>> 0, true);
    this.#pos += size;
    if (this.#pos >= this.#end) this.#pioDone();
  }

  #startPio(length: number, deviceToHost: boolean, end: PioEnd): void {
    this.#pos = 0;
    this.#end = length;
    this.#pioIn = deviceToHost;
    this.#pioEnd = end;
    if (!(this.#status & AtaStatus.ERR)) this.#status |= AtaStatus.DRQ;
  }

  #stopPio(): void {
    this.#pos = 0;
    this.#end = 0;
    this.#pioEnd = undefined;
    this.#status &= ~AtaStatus.DRQ;
  }

  #pioDone(): void {
    const end = this.#pioEnd;
    this.#stopPio();
    end?.();
  }

  // ---- Reset ----

  /**
   * SRST asserted: the drive stops what it was doing and shows BSY.
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk, AtaStatus } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * disk.execute(AtaCommand.IDENTIFY_DEVICE);
   * disk.assertReset();
   * equal(disk.status, AtaStatus.BSY);
   * equal(disk.readData(2), 0); // the data phase was abandoned
   * ```
   */
  assertReset(): void {
    this.#epoch++;
    this.#dmaPhase = false;
    this.#stopPio();
    this.#status = AtaStatus.BSY;
  }

  /**
   * SRST released: the drive completes its reset (signature, diagnostic code 0x01).
   *
   * @example
   * ```ts
   * import { AtaDisk, AtaStatus } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * disk.assertReset();
   * disk.completeReset();
   * equal(disk.status, AtaStatus.DRDY | AtaStatus.DSC);
   * equal(disk.error, 0x01); // diagnostic code: passed
   * ```
   */
  completeReset(): void {
    this.#epoch++;
    this.#dmaPhase = false;
    this.#resetRegisters();
    this.#error = 0x01; // diagnostic code: device 0 passed, device 1 passed or absent
  }

  // ---- Commands ----

  /**
   * Executes `command` (ignored while BSY or DRQ, and by an absent drive).
   *
   * @param command The command byte.
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk, type AtaDmaRequest, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { deepEqual } from "node:assert/strict";
   * const requests: AtaDmaRequest[] = [];
   * const port = { raiseIrq: () => {}, startDma: (r: AtaDmaRequest) => void requests.push(r), defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * disk.writeRegister(AtaRegister.SECTOR_COUNT, 8);
   * disk.writeRegister(AtaRegister.LBA_LOW, 16);
   * disk.writeRegister(AtaRegister.DEVICE, 0x40); // LBA
   * disk.execute(AtaCommand.READ_DMA);
   * deepEqual(requests.map((r) => [r.toMemory, r.offset, r.length]), [[true, 16 * 512, 8 * 512]]);
   * ```
   */
  execute(command: number): void {
    if (!this.present || this.busy) return;
    this.#error = 0;
    if (this.#openError !== undefined || !this.#backend) {
      this.#log(
        `Command 0x${hex2(command)} aborted: the disk has no usable image (${
          this.#openError ?? "no storage"
        })`,
      );
      this.#abort();
      return;
    }
    const backend = this.#backend;
    switch (command) {
      case AtaCommand.IDENTIFY_DEVICE:
        this.#identifyCommand();
        break;
      case AtaCommand.READ_SECTORS:
      case AtaCommand.READ_SECTORS_EXT:
        this.#readPio(backend, command === AtaCommand.READ_SECTORS_EXT);
        break;
      case AtaCommand.WRITE_SECTORS:
      case AtaCommand.WRITE_SECTORS_EXT:
        this.#writePio(backend, command === AtaCommand.WRITE_SECTORS_EXT);
        break;
      case AtaCommand.READ_DMA:
      case AtaCommand.READ_DMA_EXT:
        this.#dma(backend, false, command === AtaCommand.READ_DMA_EXT);
        break;
      case AtaCommand.WRITE_DMA:
      case AtaCommand.WRITE_DMA_EXT:
        this.#dma(backend, true, command === AtaCommand.WRITE_DMA_EXT);
        break;
      case AtaCommand.FLUSH_CACHE:
      case AtaCommand.FLUSH_CACHE_EXT:
        this.#flushCommand(backend);
        break;
      case AtaCommand.SET_FEATURES:
        this.#setFeatures(backend);
        break;
      default:
        this.#abort();
    }
  }

  /** Ends the command with ERR and `bits` in the error register, and interrupts. */
  #fail(bits: number): void {
    this.#stopPio();
    this.#status = AtaStatus.DRDY | AtaStatus.ERR;
    this.#error = bits;
    this.#port.raiseIrq();
  }

  #abort(): void {
    this.#fail(AtaError.ABRT);
  }

  /** Ends the command successfully and interrupts. */
  #complete(): void {
    this.#status = AtaStatus.DRDY | AtaStatus.DSC;
    this.#port.raiseIrq();
  }

  #identifyData(): Uint16Array {
    this.#identify ??= identifyDevice(this.sectors, this.#identity);
    return this.#identify;
  }

  #identifyCommand(): void {
    const words = this.#identifyData();
    for (let i = 0; i < 256; i++) this.#bufferView.setUint16(i * 2, words[i]!, true);
    this.#status = AtaStatus.DRDY | AtaStatus.DSC;
    this.#startPio(SECTOR_SIZE, true, () => {});
    this.#port.raiseIrq();
  }

  /**
   * Decodes the command's address and count into `#lba`/`#left`; returns
   * false (after failing the command with IDNF) when the range is not on the disk.
   */
  #decodeRange(lba48: boolean): boolean {
    this.#lba48 = lba48;
    let count: number;
    if (lba48) {
      count = (this.#hobNsector << 8) | this.#nsector;
      if (count === 0) count = 65536;
    } else {
      count = this.#nsector === 0 ? 256 : this.#nsector;
    }
    let lba: number;
    if (this.#select & DEV_LBA) {
      lba = lba48
        ? ((this.#hobHcyl * 256 + this.#hobLcyl) * 256 + this.#hobSector) * 0x100_0000 +
          ((this.#hcyl << 16) | (this.#lcyl << 8) | this.#sector)
        : ((this.#select & 0x0f) * 0x100_0000) + ((this.#hcyl << 16) | (this.#lcyl << 8) |
          this.#sector);
    } else {
      // CHS, with the geometry IDENTIFY reports.
      const chs = geometry(this.sectors);
      const cylinder = (this.#hcyl << 8) | this.#lcyl;
      const head = this.#select & 0x0f;
      if (this.#sector === 0 || this.#sector > chs.sectors || head >= chs.heads) {
        this.#fail(AtaError.IDNF);
        return false;
      }
      lba = (cylinder * chs.heads + head) * chs.sectors + this.#sector - 1;
    }
    if (lba + count > this.sectors) {
      this.#fail(AtaError.IDNF);
      return false;
    }
    this.#lba = lba;
    this.#left = count;
    return true;
  }

  /** Writes `lba` back into the address registers (as QEMU's `ide_set_sector`). */
  #setLba(lba: number): void {
    if (this.#select & DEV_LBA) {
      if (this.#lba48) {
        this.#sector = lba & 0xff;
        this.#lcyl = (lba >>> 8) & 0xff;
        this.#hcyl = (lba >>> 16) & 0xff;
        const high = Math.floor(lba / 0x100_0000);
        this.#hobSector = high & 0xff;
        this.#hobLcyl = (high >>> 8) & 0xff;
        this.#hobHcyl = (high >>> 16) & 0xff;
      } else {
        this.#select = (this.#select & ~0x0f) | (Math.floor(lba / 0x100_0000) & 0x0f);
        this.#hcyl = (lba >>> 16) & 0xff;
        this.#lcyl = (lba >>> 8) & 0xff;
        this.#sector = lba & 0xff;
      }
    } else {
      const chs = geometry(this.sectors);
      const cylinder = Math.floor(lba / (chs.heads * chs.sectors));
      const r = lba % (chs.heads * chs.sectors);
      this.#hcyl = (cylinder >>> 8) & 0xff;
      this.#lcyl = cylinder & 0xff;
      this.#select = (this.#select & ~0x0f) | (Math.floor(r / chs.sectors) & 0x0f);
      this.#sector = (r % chs.sectors) + 1;
    }
  }

  /** Sets the sector count register to `count` (as QEMU keeps it: the low byte). */
  #setCount(count: number): void {
    this.#nsector = count & 0xff;
    if (this.#lba48) this.#hobNsector = (count >>> 8) & 0xff;
  }

  #readPio(backend: DiskBackend, lba48: boolean): void {
    if (!this.#decodeRange(lba48)) return;
    this.#readNextSector(backend);
  }

  #readNextSector(backend: DiskBackend): void {
    const epoch = this.#epoch;
    const lba = this.#lba;
    this.#status = AtaStatus.DRDY | AtaStatus.DSC | AtaStatus.BSY;
    this.#port.defer(async () => {
      try {
        await backend.read(lba * SECTOR_SIZE, this.#buffer);
      } catch (error) {
        if (epoch !== this.#epoch) return;
        this.#log(`Read of sector ${lba} failed: ${message(error)}`);
        this.#setLba(lba);
        this.#fail(AtaError.UNC);
        return;
      }
      if (epoch !== this.#epoch) return;
      this.#lba = lba + 1;
      this.#left--;
      this.#setLba(this.#lba);
      this.#setCount(this.#left);
      this.#status = AtaStatus.DRDY | AtaStatus.DSC;
      this.#startPio(SECTOR_SIZE, true, () => {
        if (this.#left > 0) this.#readNextSector(backend);
      });
      this.#port.raiseIrq();
    });
  }

  #writePio(backend: DiskBackend, lba48: boolean): void {
    if (backend.readonly) {
      this.#log("Write refused: the disk is read-only");
      this.#abort();
      return;
    }
    if (!this.#decodeRange(lba48)) return;
    this.#status = AtaStatus.DRDY | AtaStatus.DSC;
    this.#startPio(SECTOR_SIZE, false, () => this.#writeSector(backend));
  }

  #writeSector(backend: DiskBackend): void {
    const epoch = this.#epoch;
    const lba = this.#lba;
    this.#status = AtaStatus.DRDY | AtaStatus.DSC | AtaStatus.BSY;
    this.#port.defer(async () => {
      try {
        await backend.write(lba * SECTOR_SIZE, this.#buffer);
        if (this.#left === 1 && !this.#writeCache) await backend.flush();
      } catch (error) {
        if (epoch !== this.#epoch) return;
        this.#log(`Write of sector ${lba} failed: ${message(error)}`);
        this.#setLba(lba);
        this.#fail(AtaError.ABRT);
        return;
      }
      if (epoch !== this.#epoch) return;
      this.#lba = lba + 1;
      this.#left--;
      this.#setLba(this.#lba);
      this.#setCount(this.#left);
      this.#status = AtaStatus.DRDY | AtaStatus.DSC;
      if (this.#left > 0) this.#startPio(SECTOR_SIZE, false, () => this.#writeSector(backend));
      this.#port.raiseIrq();
    });
  }

  #dma(backend: DiskBackend, write: boolean, lba48: boolean): void {
    if (write && backend.readonly) {
      this.#log("Write refused: the disk is read-only");
      this.#abort();
      return;
    }
    if (!this.#decodeRange(lba48)) return;
    // As QEMU: DRQ stays set for the whole DMA data phase (the data port reads 0).
    this.#status = AtaStatus.DRDY | AtaStatus.DSC | AtaStatus.DRQ;
    this.#pioIn = true;
    this.#pos = this.#end = 0;
    this.#dmaPhase = true;
    this.#port.startDma({
      toMemory: !write,
      offset: this.#lba * SECTOR_SIZE,
      length: this.#left * SECTOR_SIZE,
      backend,
    });
  }

  /**
   * Whether the drive is in a DMA data phase started by {@linkcode AtaPort.startDma}.
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk, AtaRegister } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * const port = { raiseIrq: () => {}, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * disk.writeRegister(AtaRegister.DEVICE, 0x40); // LBA 1, one sector (the reset values)
   * disk.execute(AtaCommand.READ_DMA);
   * equal(disk.inDma, true);
   * await disk.finishDma({ kind: "done" });
   * equal(disk.inDma, false);
   * ```
   */
  get inDma(): boolean {
    return this.#dmaPhase;
  }

  /**
   * Ends the DMA data phase with `result`. For a write with the write cache
   * disabled the data is flushed first. `beforeInterrupt` runs right before
   * the drive interrupts (the bus master updates its status there), and not
   * at all if the drive was reset meanwhile.
   *
   * @param result How the transfer ended.
   * @param beforeInterrupt Called just before the status changes and INTRQ rises.
   * @returns Resolves when the command has ended.
   *
   * @example
   * ```ts
   * import { AtaCommand, AtaDisk, AtaError, AtaRegister, AtaStatus } from "./ata_disk.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { equal } from "node:assert/strict";
   * let irqs = 0;
   * const port = { raiseIrq: () => void irqs++, startDma: () => {}, defer: () => {}, log: () => {} };
   * const disk = new AtaDisk(port, { unit: 0, backend: new MemoryDisk(1 << 20) });
   * disk.writeRegister(AtaRegister.DEVICE, 0x40); // LBA
   * disk.execute(AtaCommand.READ_DMA);
   * await disk.finishDma({ kind: "error", error: AtaError.ABRT, bytesDone: 0 });
   * equal(disk.status, AtaStatus.DRDY | AtaStatus.ERR);
   * equal(disk.error, AtaError.ABRT);
   * equal(irqs, 1);
   * ```
   */
  async finishDma(result: AtaDmaResult, beforeInterrupt: () => void = () => {}): Promise<void> {
    const epoch = this.#epoch;
    if (!this.#dmaPhase) return;
    const lba = this.#lba;
    const sectors = this.#left;
    if (result.kind === "done" && !this.#writeCache && this.#backend && !this.#backend.readonly) {
      try {
        await this.#backend.flush();
      } catch (error) {
        if (epoch !== this.#epoch) return;
        this.#log(`Flush after a DMA write failed: ${message(error)}`);
        this.#dmaPhase = false;
        beforeInterrupt();
        this.#fail(AtaError.ABRT);
        return;
      }
      if (epoch !== this.#epoch) return;
    }
    this.#dmaPhase = false;
    beforeInterrupt();
    switch (result.kind) {
      case "done":
        this.#lba = lba + sectors;
        this.#left = 0;
        this.#setLba(this.#lba);
        this.#setCount(0);
        this.#complete();
        break;
      case "short":
        this.#status = AtaStatus.DRDY | AtaStatus.DSC;
        break;
      case "error": {
        const done = Math.floor(result.bytesDone / SECTOR_SIZE);
        this.#setLba(lba + Math.min(done, sectors - 1));
        this.#setCount(sectors - done);
        this.#fail(result.error);
        break;
      }
    }
  }

  #flushCommand(backend: DiskBackend): void {
    const epoch = this.#epoch;
    this.#status = AtaStatus.DRDY | AtaStatus.BSY;
    this.#port.defer(async () => {
      try {
        await backend.flush();
      } catch (error) {
        if (epoch !== this.#epoch) return;
        this.#log(`Flush failed: ${message(error)}`);
        this.#abort();
        return;
      }
      if (epoch === this.#epoch) this.#complete();
    });
  }

  #setFeatures(backend: DiskBackend): void {
    const words = this.#identifyData();
    switch (this.#feature) {
      case 0x02: // enable write cache
        this.#writeCache = true;
        words[85] = (1 << 14) | (1 << 5);
        this.#complete();
        return;
      case 0x82: // disable write cache: flush what it holds (as QEMU)
        this.#writeCache = false;
        words[85] = 1 << 14;
        this.#flushCommand(backend);
        return;
      case 0x03: { // set transfer mode from the sector count
        const mode = this.#nsector & 0x07;
        const base = { 62: 0x07, 63: 0x07, 88: 0x3f };
        switch (this.#nsector >> 3) {
          case 0x00: // PIO default
          case 0x01: // PIO flow control mode (PIO 0–4 supported)
            if ((this.#nsector >> 3) === 1 && mode > 4) return this.#abort();
            break;
          case 0x02: // single-word DMA 0–2
            if (mode > 2) return this.#abort();
            base[62] |= 1 << (mode + 8);
            break;
          case 0x04: // multiword DMA 0–2
            if (mode > 2) return this.#abort();
            base[63] |= 1 << (mode + 8);
            break;
          case 0x08: // Ultra DMA 0–5
            if (mode > 5) return this.#abort();
            base[88] |= 1 << (mode + 8);
            break;
          default:
            return this.#abort();
        }
        words[62] = base[62];
        words[63] = base[63];
        words[88] = base[88];
        this.#complete();
        return;
      }
      case 0xcc: // reverting to power-on defaults enable
      case 0x66: // … disable
      case 0xaa: // read look-ahead enable
      case 0x55: // … disable
      case 0x05: // advanced power management
      case 0x85:
      case 0x69:
      case 0x67:
      case 0x96:
      case 0x9a:
      case 0x42: // automatic acoustic management
      case 0xc2:
        this.#complete();
        return;
      default:
        this.#abort();
    }
  }

  #log(text: string): void {
    this.#logged++;
    if (this.#logged <= LOG_LIMIT) this.#port.log(`ide: ${this.#name}: ${text}`);
    else if (this.#logged === LOG_LIMIT + 1) {
      this.#port.log(`ide: ${this.#name}: further errors are not logged`);
    }
  }
}

function hex2(value: number): string {
  return value.toString(16).padStart(2, "0");
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
