/**
 * The bus-master IDE function of one channel (the 1994 "Programming
 * Interface for Bus Master IDE Controller"): its three registers (BMIC,
 * BMIS, BMIDTP) and its DMA engine, which walks the PRD table and moves a
 * drive's data between its storage and guest memory through the DMA API
 * (and therefore the IOMMU).
 *
 * The engine reads the whole PRD table before it moves anything (as QEMU
 * does), so the three PRD-size outcomes are known up front: shorter than the
 * transfer (nothing moves, no interrupt, Active cleared), equal (interrupt,
 * Active cleared) and longer (interrupt, Active stays set). Then it moves the
 * data in chunks, each chunk its own DMA transactions and disk operations:
 * between chunks the channel's registers are answered, invalidations are
 * acknowledged, and a stop or reset takes effect.
 *
 * A chunk is translated into runs with `DmaContext.map` (the DMA layer merges
 * physically contiguous pages). Long runs go straight between the disk and
 * guest RAM (a read into or a write from the mapping's view: no copy); short
 * runs (scattered pages) go through one bounce buffer per chunk, which turns
 * hundreds of tiny disk operations into one. Mappings are released as soon
 * as their disk operation ends, and an invalidation that revokes one while
 * the disk operation runs is acknowledged only after that release.
 *
 * @module
 */

import type { DmaContext, DmaMapping } from "../dma/dma_context.ts";
import type { DmaFault } from "../dma/dma_result.ts";
import type { DmaAccess } from "../dma/mmu.ts";
import { SECTOR_SIZE } from "../storage/disk_backend.ts";
import type { AtaDmaRequest } from "./ata_disk.ts";

/** BMIC (command register) bits. */
export const BmCommand = {
  /** Start/stop bus master. */
  START: 0x01,
  /** Read/write control: 1 = the bus master writes memory (an ATA read). */
  TO_MEMORY: 0x08,
} as const;

/** BMIS (status register) bits. */
export const BmStatus = {
  /** Bus master IDE active. */
  ACTIVE: 0x01,
  /** An error (a PCI target or master abort) ended the transfer; write 1 to clear. */
  ERROR: 0x02,
  /** The drive raised its interrupt; write 1 to clear. */
  INTERRUPT: 0x04,
  /** Drive 0 is DMA capable (software-set). */
  DRIVE0_DMA: 0x20,
  /** Drive 1 is DMA capable (software-set). */
  DRIVE1_DMA: 0x40,
} as const;

/** Bus-master register offsets within a channel's 8 bytes. */
export const BmRegister = {
  /** BMIC. */
  COMMAND: 0,
  /** BMIS. */
  STATUS: 2,
  /** BMIDTP: the PRD table's address (bits 31:2). */
  TABLE: 4,
} as const;

/** PRD entry: end-of-table flag in the second dword. */
export const PRD_EOT = 0x8000_0000;
/** A PRD table never crosses a 64 KiB boundary (bus-master specification). */
export const PRD_TABLE_REGION = 0x1_0000;

const PAGE = 4096;

/** The PRD table as read at the start of a transfer. */
export interface PrdTable {
  /** Always `true` (a fault has `ok: false`). */
  readonly ok: true;
  /** Region addresses (bus addresses: IOVAs with an IOMMU; bit 0 cleared). */
  readonly addresses: number[];
  /** Region byte counts (0 in the table means 64 KiB; bit 0 cleared). */
  readonly lengths: number[];
  /** Sum of the byte counts. */
  readonly total: number;
  /** Whether an entry had EOT set (else the table ended at its 64 KiB boundary). */
  readonly eot: boolean;
}

/** How a transfer ended. */
export type BusMasterOutcome =
  /** Every byte moved; `longer`: the PRD table described more bytes than the transfer. */
  | { readonly kind: "complete"; readonly longer: boolean }
  /** The PRD table described fewer bytes than the transfer: nothing moved. */
  | { readonly kind: "short" }
  /** A DMA access failed (`where`: reading the PRD table or a data buffer). */
  | {
    readonly kind: "fault";
    readonly where: "prd-table" | "buffer";
    readonly fault: DmaFault;
    readonly bytesDone: number;
  }
  /** BMIC's direction bit does not match the command. */
  | { readonly kind: "direction" }
  /** The disk failed. */
  | { readonly kind: "io-error"; readonly error: unknown; readonly bytesDone: number }
  /** Stopped (BMIC Start cleared, or the channel reset) between chunks. */
  | { readonly kind: "cancelled"; readonly bytesDone: number };

/** Options for {@linkcode BusMasterDma}. */
export interface BusMasterOptions {
  /** Bytes per chunk (default 1 MiB). */
  chunkSize?: number;
  /**
   * Runs at least this long (on average over a chunk) go straight between
   * the disk and guest RAM; shorter ones through the bounce buffer
   * (default 64 KiB).
   */
  directRun?: number;
  /** Called when BMIC's Start bit goes from 0 to 1. */
  onStart?: () => void;
  /** Called when BMIC's Start bit goes from 1 to 0. */
  onStop?: () => void;
}

interface Cursor {
  index: number;
  within: number;
}

interface Runs {
  readonly maps: DmaMapping[];
  readonly mapped: number;
  readonly fault: DmaFault | undefined;
}

/**
 * One channel's bus master.
 *
 * @example Registers: BMIS write-1-to-clear, BMIDTP dword aligned
 * ```ts
 * import { BmStatus, BusMasterDma } from "./ide_bus_master.ts";
 * import { DmaContext } from "../dma/dma_context.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const bm = new BusMasterDma(new DmaContext(new GuestMemory({ size: 1 << 20 })));
 * bm.status |= BmStatus.INTERRUPT | BmStatus.ERROR;
 * bm.writeRegister(2, 1, BmStatus.INTERRUPT | BmStatus.DRIVE0_DMA);
 * equal(bm.readRegister(2, 1), BmStatus.ERROR | BmStatus.DRIVE0_DMA);
 * bm.writeRegister(4, 4, 0x12345677);
 * equal(bm.readRegister(4, 4), 0x12345674);
 * ```
 */
export class BusMasterDma {
  /** BMIC (Start and direction). */
  command = 0;
  /** BMIS. */
  status = 0;
  /** BMIDTP. */
  table = 0;
  #dma: DmaContext;
  #chunk: number;
  #directRun: number;
  #onStart: () => void;
  #onStop: () => void;
  #tableStart = 0;
  #bounce: Uint8Array | undefined;
  #prd = new Uint8Array(PAGE + 8);
  #prdView = new DataView(this.#prd.buffer);

  /**
   * Creates a bus master in its reset state.
   *
   * @param dma The controller's DMA context.
   * @param options Chunking and Start/Stop listeners.
   */
  constructor(dma: DmaContext, options: BusMasterOptions = {}) {
    this.#dma = dma;
    this.#chunk = options.chunkSize ?? 1 << 20;
    if (!(Number.isInteger(this.#chunk) && this.#chunk >= SECTOR_SIZE)) {
      throw new RangeError(`Invalid chunk size ${options.chunkSize}: at least 512 bytes`);
    }
    this.#directRun = options.directRun ?? 64 * 1024;
    this.#onStart = options.onStart ?? (() => {});
    this.#onStop = options.onStop ?? (() => {});
  }

  /** Whether Start is set and the engine is active. */
  get active(): boolean {
    return (this.command & BmCommand.START) !== 0 && (this.status & BmStatus.ACTIVE) !== 0;
  }

  /**
   * Reads `size` bytes at `offset` (0–7). Bytes 1 and 3 are not implemented
   * and read 0xff, as on QEMU's PIIX.
   *
   * @param offset Offset in the channel's registers.
   * @param size 1, 2 or 4.
   * @returns The value.
   */
  readRegister(offset: number, size: number): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.#readByte(offset + i);
    return value >>> 0;
  }

  #readByte(at: number): number {
    switch (at) {
      case BmRegister.COMMAND:
        return this.command;
      case BmRegister.STATUS:
        return this.status;
      case 4:
      case 5:
      case 6:
      case 7:
        return (this.table >>> (8 * (at - 4))) & 0xff;
      default:
        return 0xff;
    }
  }

  /**
   * Writes `size` bytes of `value` at `offset` (0–7), lowest byte first.
   *
   * @param offset Offset in the channel's registers.
   * @param size 1, 2 or 4.
   * @param value The value.
   */
  writeRegister(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.#writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  #writeByte(at: number, byte: number): void {
    switch (at) {
      case BmRegister.COMMAND: {
        const was = this.command & BmCommand.START;
        this.command = byte & (BmCommand.START | BmCommand.TO_MEMORY);
        if ((byte & BmCommand.START) && !was) {
          this.#tableStart = this.table;
          this.status |= BmStatus.ACTIVE;
          this.#onStart();
        } else if (!(byte & BmCommand.START) && was) {
          this.status &= ~BmStatus.ACTIVE;
          this.#onStop();
        }
        break;
      }
      case BmRegister.STATUS:
        // Bits 5–6 are plain storage, 1–2 write-1-to-clear, 0 read-only.
        this.status = (byte & 0x60) | (this.status & BmStatus.ACTIVE) |
          (this.status & ~byte & (BmStatus.ERROR | BmStatus.INTERRUPT));
        break;
      case 4:
      case 5:
      case 6:
      case 7: {
        const shift = 8 * (at - 4);
        const mask = (0xff << shift) >>> 0;
        const v = at === 4 ? byte & ~3 : byte;
        this.table = ((this.table & ~mask) | (v << shift)) >>> 0;
        break;
      }
    }
  }

  /** Resets the registers (power-on). */
  reset(): void {
    this.command = 0;
    this.status = 0;
    this.table = 0;
    this.#tableStart = 0;
  }

  /**
   * Reads the PRD table at the address latched when Start was set: entries
   * until one with EOT or until the table's 64 KiB region ends. The table is
   * read a page at a time so that nothing after the EOT entry is touched
   * (no spurious IOMMU fault).
   *
   * @returns The table, or the fault that stopped the read.
   */
  readPrdTable(): PrdTable | DmaFault {
    const addresses: number[] = [];
    const lengths: number[] = [];
    let total = 0;
    let at = this.#tableStart;
    const limit = Math.floor(at / PRD_TABLE_REGION) * PRD_TABLE_REGION + PRD_TABLE_REGION;
    while (at + 8 <= limit) {
      const pageEnd = Math.min(limit, (Math.floor(at / PAGE) + 1) * PAGE);
      let bytes = Math.floor((pageEnd - at) / 8) * 8;
      if (bytes === 0) bytes = 8; // an entry that straddles a page boundary
      const r = this.#dma.read(at, this.#prd.subarray(0, bytes));
      if (!r.ok) return r;
      const v = this.#prdView;
      for (let i = 0; i < bytes; i += 8) {
        const address = (v.getUint32(i, true) & ~1) >>> 0;
        const word = v.getUint32(i + 4, true);
        const length = (word & 0xfffe) || 0x1_0000;
        addresses.push(address);
        lengths.push(length);
        total += length;
        if (word & PRD_EOT) return { ok: true, addresses, lengths, total, eot: true };
      }
      at += bytes;
    }
    return { ok: true, addresses, lengths, total, eot: false };
  }

  /**
   * Moves a drive's data phase: checks the direction bit, reads the PRD
   * table, then moves `request.length` bytes chunk by chunk.
   *
   * @param request What the drive asked for.
   * @param cancelled Polled between chunks: stop when it returns true.
   * @returns How the transfer ended.
   */
  async transfer(
    request: AtaDmaRequest,
    cancelled: () => boolean = () => false,
  ): Promise<BusMasterOutcome> {
    if (request.toMemory !== ((this.command & BmCommand.TO_MEMORY) !== 0)) {
      return { kind: "direction" };
    }
    const table = this.readPrdTable();
    if (!table.ok) return { kind: "fault", where: "prd-table", fault: table, bytesDone: 0 };
    if (table.total < request.length) return { kind: "short" };
    const cursor: Cursor = { index: 0, within: 0 };
    let done = 0;
    while (done < request.length) {
      if (cancelled()) return { kind: "cancelled", bytesDone: done };
      const n = Math.min(this.#chunk, request.length - done);
      const runs = this.#mapRuns(table, cursor, n, request.toMemory ? "write" : "read");
      let moved: number;
      try {
        moved = request.toMemory
          ? await this.#toMemory(request, done, runs)
          : await this.#toDisk(request, done, runs);
      } catch (error) {
        return { kind: "io-error", error, bytesDone: done };
      } finally {
        for (const m of runs.maps) m.release();
      }
      if (moved < 0) return this.#lastFault(done);
      if (runs.fault) {
        return { kind: "fault", where: "buffer", fault: runs.fault, bytesDone: done + moved };
      }
      done += n;
    }
    return { kind: "complete", longer: table.total > request.length };
  }

  #pendingFault: DmaFault | undefined;

  #lastFault(done: number): BusMasterOutcome {
    const fault = this.#pendingFault!;
    this.#pendingFault = undefined;
    return { kind: "fault", where: "buffer", fault, bytesDone: done + fault.transferred };
  }

  /**
   * Maps the next `length` bytes of the PRD regions (advancing `cursor`),
   * stopping at the first fault.
   */
  #mapRuns(table: PrdTable, cursor: Cursor, length: number, access: DmaAccess): Runs {
    const maps: DmaMapping[] = [];
    let mapped = 0;
    while (mapped < length) {
      const address = table.addresses[cursor.index]! + cursor.within;
      const available = table.lengths[cursor.index]! - cursor.within;
      const r = this.#dma.map(address, Math.min(available, length - mapped), { access });
      if (!r.ok) return { maps, mapped, fault: r };
      const m = r.mapping;
      maps.push(m);
      mapped += m.length;
      cursor.within += m.length;
      if (cursor.within === table.lengths[cursor.index]) {
        cursor.index++;
        cursor.within = 0;
      }
    }
    return { maps, mapped, fault: undefined };
  }

  #bounceBuffer(): Uint8Array {
    return this.#bounce ??= new Uint8Array(this.#chunk);
  }

  #direct(runs: Runs): boolean {
    return runs.maps.length * this.#directRun <= runs.mapped;
  }

  /**
   * Disk → memory for one chunk. Returns the bytes that reached memory, or
   * -1 after a fault of a re-translated (invalidated) run, kept in `#pendingFault`
   * with `transferred` counted from the chunk's start.
   */
  async #toMemory(request: AtaDmaRequest, done: number, runs: Runs): Promise<number> {
    const { maps, mapped } = runs;
    if (mapped === 0) return 0;
    const disk = request.backend;
    const offset = request.offset + done;
    if (this.#direct(runs)) {
      let at = 0;
      for (const m of maps) {
        if (m.invalidated) {
          // Revoked before we used it: move this run through a fresh translation.
          const part = this.#bounceBuffer().subarray(0, m.length);
          await disk.read(offset + at, part);
          const w = this.#dma.write(m.address, part);
          if (!w.ok) return this.#faultAt(w, at);
        } else {
          await disk.read(offset + at, m.view);
        }
        at += m.length;
      }
      return mapped;
    }
    const bounce = this.#bounceBuffer().subarray(0, mapped);
    await disk.read(offset, bounce);
    let at = 0;
    for (const m of maps) {
      const part = bounce.subarray(at, at + m.length);
      if (m.invalidated) {
        const w = this.#dma.write(m.address, part);
        if (!w.ok) return this.#faultAt(w, at);
      } else {
        m.view.set(part);
      }
      at += m.length;
    }
    return mapped;
  }

  /**
   * Memory → disk for one chunk. Only whole sectors read from memory before a
   * fault reach the disk. Returns the bytes written, or -1 after a fault of
   * a re-translated run.
   */
  async #toDisk(request: AtaDmaRequest, done: number, runs: Runs): Promise<number> {
    const { maps, mapped } = runs;
    const whole = runs.fault ? Math.floor(mapped / SECTOR_SIZE) * SECTOR_SIZE : mapped;
    if (whole === 0) return 0;
    const disk = request.backend;
    const offset = request.offset + done;
    if (this.#direct(runs)) {
      let at = 0;
      for (const m of maps) {
        const length = Math.min(m.length, whole - at);
        if (length <= 0) break;
        if (m.invalidated) {
          const part = this.#bounceBuffer().subarray(0, length);
          const r = this.#dma.read(m.address, part);
          if (!r.ok) return this.#faultAt(r, at);
          await disk.write(offset + at, part);
        } else {
          await disk.write(offset + at, length === m.length ? m.view : m.view.subarray(0, length));
        }
        at += m.length;
      }
      return whole;
    }
    // Gather, release the mappings, then one disk write.
    const bounce = this.#bounceBuffer();
    let at = 0;
    for (const m of maps) {
      const length = Math.min(m.length, whole - at);
      if (length <= 0) break;
      bounce.set(length === m.length ? m.view : m.view.subarray(0, length), at);
      at += m.length;
    }
    for (const m of maps) m.release();
    await disk.write(offset, bounce.subarray(0, whole));
    return whole;
  }

  #faultAt(fault: DmaFault, at: number): number {
    this.#pendingFault = { ...fault, transferred: at + fault.transferred };
    return -1;
  }
}
