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
 * The first run of a transfer decides how it moves. Long runs (contiguous
 * buffers) go straight between the disk and guest RAM: each chunk is mapped
 * with `DmaContext.map` (the DMA layer merges physically contiguous pages)
 * and the disk reads into, or writes from, the mappings' views; a mapping is
 * released as soon as its disk operation ends, and an invalidation that
 * revokes it meanwhile is acknowledged only after that release. Short runs
 * (scattered pages) go through two bounce buffers, so that one disk
 * operation per chunk replaces hundreds and the disk operation of one chunk
 * overlaps the copy of the next; those copies use fresh translations and
 * hold no mapping across a disk operation. The next chunk's regions are
 * hinted to the IOMMU (`DmaContext.prefetch`) while a chunk moves.
 *
 * @module
 */

import type { DmaContext, DmaMapping } from "../dma/dma_context.ts";
import type { DmaFault } from "../dma/dma_result.ts";
import type { DmaAccess } from "../dma/mmu.ts";
import { SECTOR_SIZE } from "../storage/disk_backend.ts";
import type { AtaDmaRequest } from "./ata_disk.ts";

/**
 * BMIC (command register) bits.
 *
 * @example
 * ```ts
 * import { BmCommand } from "./ide_bus_master.ts";
 * import { equal } from "node:assert/strict";
 * equal(BmCommand.START | BmCommand.TO_MEMORY, 0x09); // start a READ DMA
 * ```
 */
export const BmCommand = {
  /** Start/stop bus master. */
  START: 0x01,
  /** Read/write control: 1 = the bus master writes memory (an ATA read). */
  TO_MEMORY: 0x08,
} as const;

/**
 * BMIS (status register) bits.
 *
 * @example
 * ```ts
 * import { BmStatus } from "./ide_bus_master.ts";
 * import { equal } from "node:assert/strict";
 * equal(BmStatus.ERROR | BmStatus.INTERRUPT, 0x06); // write these to BMIS to clear them
 * ```
 */
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

/**
 * Bus-master register offsets within a channel's 8 bytes.
 *
 * @example
 * ```ts
 * import { BmRegister } from "./ide_bus_master.ts";
 * import { equal } from "node:assert/strict";
 * equal(0xc000 + 8 + BmRegister.TABLE, 0xc00c); // the secondary channel's BMIDTP
 * ```
 */
export const BmRegister = {
  /** BMIC. */
  COMMAND: 0,
  /** BMIS. */
  STATUS: 2,
  /** BMIDTP: the PRD table's address (bits 31:2). */
  TABLE: 4,
} as const;

/**
 * PRD entry: end-of-table flag in the second dword.
 *
 * @example
 * ```ts
 * import { PRD_EOT } from "./ide_bus_master.ts";
 * import { equal } from "node:assert/strict";
 * equal((PRD_EOT | 0x1000) >>> 0, 0x8000_1000); // last entry, 4 KiB
 * ```
 */
export const PRD_EOT = 0x8000_0000;
/**
 * A PRD table never crosses a 64 KiB boundary (bus-master specification).
 *
 * @example
 * ```ts
 * import { PRD_TABLE_REGION } from "./ide_bus_master.ts";
 * import { equal } from "node:assert/strict";
 * equal(PRD_TABLE_REGION / 8, 8192); // entries a table can hold
 * ```
 */
export const PRD_TABLE_REGION = 0x1_0000;

const PAGE = 4096;

/**
 * The PRD table as read at the start of a transfer.
 *
 * @example
 * ```ts
 * import type { PrdTable } from "./ide_bus_master.ts";
 * const table: PrdTable = { ok: true, addresses: [0x10000], lengths: [0x10000], total: 0x10000, eot: true };
 * ```
 */
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

/**
 * How a transfer ended.
 *
 * @example
 * ```ts
 * import type { BusMasterOutcome } from "./ide_bus_master.ts";
 * const outcome: BusMasterOutcome = { kind: "complete", longer: false };
 * ```
 */
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

/**
 * Options for {@linkcode BusMasterDma}.
 *
 * @example
 * ```ts
 * import type { BusMasterOptions } from "./ide_bus_master.ts";
 * const options: BusMasterOptions = { chunkSize: 1 << 20, directRun: 64 * 1024 };
 * ```
 */
export interface BusMasterOptions {
  /** Bytes per chunk (default 1 MiB). */
  chunkSize?: number;
  /**
   * Runs at least this long (on average over a chunk) go straight between
   * the disk and guest RAM; shorter ones through the bounce buffer. Default
   * `Infinity`: everything bounces, because an asynchronous disk operation
   * into a mapping's view could land after a worker was stopped on the
   * invalidation-timeout path (see `DmaContext.transact`); a finite value
   * trades that guarantee for zero-copy transfers.
   */
  directRun?: number;
  /** Called when BMIC's Start bit goes from 0 to 1. */
  onStart?: () => void;
  /** Called when BMIC's Start bit goes from 1 to 0. */
  onStop?: () => void;
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
    this.#directRun = options.directRun ?? Infinity;
    this.#onStart = options.onStart ?? (() => {});
    this.#onStop = options.onStop ?? (() => {});
  }

  /**
   * Whether Start is set and the engine is active.
   *
   * @example
   * ```ts
   * import { BmCommand, BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const bm = new BusMasterDma(new DmaContext(new GuestMemory({ size: 1 << 20 })));
   * equal(bm.active, false);
   * bm.writeRegister(0, 1, BmCommand.START);
   * equal(bm.active, true);
   * bm.writeRegister(0, 1, 0); // stop
   * equal(bm.active, false);
   * ```
   */
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
   *
   * @example
   * ```ts
   * import { BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const bm = new BusMasterDma(new DmaContext(new GuestMemory({ size: 1 << 20 })));
   * bm.table = 0x0012_3400;
   * equal(bm.readRegister(4, 4), 0x0012_3400); // BMIDTP
   * equal(bm.readRegister(5, 1), 0x34); // one of its bytes
   * equal(bm.readRegister(1, 1), 0xff); // byte 1 is not implemented
   * ```
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
   *
   * @example
   * ```ts
   * import { BmCommand, BmStatus, BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * let starts = 0;
   * const bm = new BusMasterDma(new DmaContext(new GuestMemory({ size: 1 << 20 })), {
   *   onStart: () => starts++,
   * });
   * bm.writeRegister(0, 1, BmCommand.START | BmCommand.TO_MEMORY);
   * bm.writeRegister(0, 1, BmCommand.START | BmCommand.TO_MEMORY); // already started
   * equal(starts, 1);
   * equal(bm.status & BmStatus.ACTIVE, BmStatus.ACTIVE);
   * ```
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

  /**
   * Resets the registers (power-on).
   *
   * @example
   * ```ts
   * import { BmCommand, BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const bm = new BusMasterDma(new DmaContext(new GuestMemory({ size: 1 << 20 })));
   * bm.writeRegister(4, 4, 0x1000);
   * bm.writeRegister(0, 1, BmCommand.START);
   * bm.reset();
   * equal(bm.active, false);
   * equal(bm.readRegister(4, 4), 0);
   * ```
   */
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
   *
   * @example
   * ```ts
   * import { BmCommand, BusMasterDma, PRD_EOT } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const memory = new GuestMemory({ size: 1 << 20 });
   * memory.write32(0x1000, 0x20000); // 4 KiB at 0x20000
   * memory.write32(0x1004, 0x1000);
   * memory.write32(0x1008, 0x21000); // 512 bytes right after it, last entry
   * memory.write32(0x100c, PRD_EOT | 0x200);
   * const bm = new BusMasterDma(new DmaContext(memory));
   * bm.writeRegister(4, 4, 0x1000); // BMIDTP
   * bm.writeRegister(0, 1, BmCommand.START); // latches the table's address
   * const table = { ok: true, addresses: [0x20000], lengths: [0x1200], total: 0x1200, eot: true };
   * deepEqual(bm.readPrdTable(), table); // adjacent regions merged
   * ```
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
        const last = addresses.length - 1;
        if (last >= 0 && addresses[last]! + lengths[last]! === address) {
          lengths[last]! += length; // physically (or IOVA-) adjacent: one region
        } else {
          addresses.push(address);
          lengths.push(length);
        }
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
   *
   * @example
   * ```ts
   * import { BmCommand, BusMasterDma, PRD_EOT } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { MemoryDisk } from "../storage/memory_disk.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const memory = new GuestMemory({ size: 1 << 20 });
   * memory.write32(0x1000, 0x20000); // one 512-byte region, last entry
   * memory.write32(0x1004, PRD_EOT | 512);
   * const backend = new MemoryDisk(1 << 20);
   * await backend.write(0, new Uint8Array(512).fill(0xab));
   * const bm = new BusMasterDma(new DmaContext(memory));
   * bm.writeRegister(4, 4, 0x1000);
   * bm.writeRegister(0, 1, BmCommand.START | BmCommand.TO_MEMORY);
   * const outcome = await bm.transfer({ toMemory: true, offset: 0, length: 512, backend });
   * deepEqual(outcome, { kind: "complete", longer: false });
   * equal(memory.read8(0x201ff), 0xab);
   * ```
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
    const run = new Run(this, request, table, cancelled);
    const outcome = await run.move();
    return outcome ?? { kind: "complete", longer: table.total > request.length };
  }

  /**
   * The DMA context (for the transfer runs this module makes).
   *
   * @example
   * ```ts
   * import { BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const dma = new DmaContext(new GuestMemory({ size: 1 << 20 }));
   * equal(new BusMasterDma(dma).dma, dma);
   * ```
   */
  get dma(): DmaContext {
    return this.#dma;
  }

  /**
   * Bytes per chunk.
   *
   * @example
   * ```ts
   * import { BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, throws } from "node:assert/strict";
   * const dma = new DmaContext(new GuestMemory({ size: 1 << 20 }));
   * equal(new BusMasterDma(dma).chunkSize, 1 << 20);
   * equal(new BusMasterDma(dma, { chunkSize: 65536 }).chunkSize, 65536);
   * throws(() => new BusMasterDma(dma, { chunkSize: 100 }), /Invalid chunk size 100/);
   * ```
   */
  get chunkSize(): number {
    return this.#chunk;
  }

  /**
   * The average run length from which a chunk goes straight to guest RAM.
   *
   * @example
   * ```ts
   * import { BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const dma = new DmaContext(new GuestMemory({ size: 1 << 20 }));
   * equal(new BusMasterDma(dma).directRun, Infinity); // everything bounces
   * equal(new BusMasterDma(dma, { directRun: 65536 }).directRun, 65536);
   * ```
   */
  get directRun(): number {
    return this.#directRun;
  }

  /**
   * One of the two bounce buffers (allocated on first use).
   *
   * @example
   * ```ts
   * import { BusMasterDma } from "./ide_bus_master.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, notEqual } from "node:assert/strict";
   * const bm = new BusMasterDma(new DmaContext(new GuestMemory({ size: 1 << 20 })), {
   *   chunkSize: 4096,
   * });
   * equal(bm.bounce(0).length, 4096); // one chunk
   * equal(bm.bounce(0), bm.bounce(0)); // allocated once
   * notEqual(bm.bounce(0), bm.bounce(1));
   * ```
   */
  bounce(index: 0 | 1): Uint8Array {
    return this.#bounces[index] ??= new Uint8Array(this.#chunk);
  }

  #bounces: [Uint8Array | undefined, Uint8Array | undefined] = [undefined, undefined];
}

/** A chunk of a transfer: where it starts in the transfer and its length. */
interface Chunk {
  readonly start: number;
  readonly length: number;
  /** The PRD regions it covers (addresses and lengths, in order). */
  readonly pieces: ReadonlyArray<readonly [address: number, length: number]>;
}

/**
 * One transfer in progress: cuts the PRD regions into chunks and moves them,
 * straight between the disk and mappings of guest RAM when the chunk's runs
 * are long, else through two bounce buffers so that the disk operation of
 * one chunk overlaps the copy of the previous one.
 */
class Run {
  #bm: BusMasterDma;
  #dma: DmaContext;
  #request: AtaDmaRequest;
  #table: PrdTable;
  #cancelled: () => boolean;
  #index = 0;
  #within = 0;

  constructor(
    bm: BusMasterDma,
    request: AtaDmaRequest,
    table: PrdTable,
    cancelled: () => boolean,
  ) {
    this.#bm = bm;
    this.#dma = bm.dma;
    this.#request = request;
    this.#table = table;
    this.#cancelled = cancelled;
  }

  /** The next chunk of the PRD regions, or undefined at the end of the transfer. */
  #next(start: number): Chunk | undefined {
    const total = this.#request.length;
    if (start >= total) return undefined;
    const length = Math.min(this.#bm.chunkSize, total - start);
    const pieces: Array<[number, number]> = [];
    let left = length;
    const t = this.#table;
    while (left > 0) {
      const n = Math.min(t.lengths[this.#index]! - this.#within, left);
      pieces.push([t.addresses[this.#index]! + this.#within, n]);
      left -= n;
      this.#within += n;
      if (this.#within === t.lengths[this.#index]) {
        this.#index++;
        this.#within = 0;
      }
    }
    return { start, length, pieces };
  }

  /** Lets an IOMMU translate a chunk's regions ahead of their use. */
  #hint(chunk: Chunk | undefined): void {
    if (!chunk) return;
    for (const [address, length] of chunk.pieces) this.#dma.prefetch(address, length);
  }

  /** The chunk after `chunk`, without consuming it (for hints). */
  #peek(chunk: Chunk): Chunk | undefined {
    const start = chunk.start + chunk.length;
    const total = this.#request.length;
    if (start >= total) return undefined;
    const t = this.#table;
    let index = this.#index;
    let within = this.#within;
    let left = Math.min(this.#bm.chunkSize, total - start);
    const pieces: Array<[number, number]> = [];
    while (left > 0) {
      const n = Math.min(t.lengths[index]! - within, left);
      pieces.push([t.addresses[index]! + within, n]);
      left -= n;
      within += n;
      if (within === t.lengths[index]) {
        index++;
        within = 0;
      }
    }
    return { start, length: pieces.reduce((sum, p) => sum + p[1], 0), pieces };
  }

  /** Moves every chunk; returns how it failed, or undefined when every byte moved. */
  async move(): Promise<BusMasterOutcome | undefined> {
    const first = this.#next(0);
    if (!first) return undefined;
    this.#hint(first);
    const access: DmaAccess = this.#request.toMemory ? "write" : "read";
    // Probe the first run: a long one means the guest's buffers are
    // contiguous, and the disk can read into (or write from) guest RAM itself.
    const [address, length] = first.pieces[0]!;
    const probe = this.#dma.map(address, length, { access });
    if (!probe.ok) {
      return { kind: "fault", where: "buffer", fault: probe, bytesDone: 0 };
    }
    const direct = probe.mapping.length >= Math.min(this.#bm.directRun, first.length);
    probe.mapping.release();
    if (direct) return await this.#direct(first);
    return this.#request.toMemory
      ? await this.#bounceToMemory(first)
      : await this.#bounceToDisk(first);
  }

  /** Maps a chunk's runs; stops at the first fault. */
  #map(chunk: Chunk, access: DmaAccess): { maps: DmaMapping[]; mapped: number; fault?: DmaFault } {
    const maps: DmaMapping[] = [];
    let mapped = 0;
    for (const [address, length] of chunk.pieces) {
      let at = 0;
      while (at < length) {
        const r = this.#dma.map(address + at, length - at, { access });
        if (!r.ok) return { maps, mapped, fault: { ...r, transferred: mapped } };
        maps.push(r.mapping);
        at += r.mapping.length;
        mapped += r.mapping.length;
      }
    }
    return { maps, mapped };
  }

  /**
   * Chunks with long runs: each run is read from (or written to) the disk
   * through its mapping. A mapping revoked before its disk operation starts
   * is moved through a fresh translation instead.
   */
  async #direct(first: Chunk): Promise<BusMasterOutcome | undefined> {
    const toMemory = this.#request.toMemory;
    const disk = this.#request.backend;
    const access: DmaAccess = toMemory ? "write" : "read";
    for (
      let chunk: Chunk | undefined = first;
      chunk;
      chunk = this.#next(chunk.start + chunk.length)
    ) {
      if (this.#cancelled()) return { kind: "cancelled", bytesDone: chunk.start };
      const { maps, mapped, fault } = this.#map(chunk, access);
      this.#hint(this.#peek(chunk));
      // Only whole sectors read from memory before a fault reach the disk.
      const usable = fault && !toMemory ? Math.floor(mapped / SECTOR_SIZE) * SECTOR_SIZE : mapped;
      let at = 0;
      try {
        for (const m of maps) {
          const n = Math.min(m.length, usable - at);
          if (n <= 0) break;
          const offset = this.#request.offset + chunk.start + at;
          if (m.invalidated) {
            const part = this.#bm.bounce(0).subarray(0, n);
            if (toMemory) {
              await disk.read(offset, part);
              const w = this.#dma.write(m.address, part);
              if (!w.ok) return this.#fault(w, chunk.start + at);
            } else {
              const r = this.#dma.read(m.address, part);
              if (!r.ok) return this.#fault(r, chunk.start + at);
              await disk.write(offset, part);
            }
          } else if (toMemory) {
            await disk.read(offset, n === m.length ? m.view : m.view.subarray(0, n));
          } else {
            await disk.write(offset, n === m.length ? m.view : m.view.subarray(0, n));
          }
          at += m.length;
        }
      } catch (error) {
        return { kind: "io-error", error, bytesDone: chunk.start };
      } finally {
        for (const m of maps) m.release();
      }
      if (fault) return this.#fault(fault, chunk.start);
    }
    return undefined;
  }

  /** Copies `bytes` between a bounce buffer and a chunk's regions through the DMA API. */
  #copy(chunk: Chunk, buffer: Uint8Array, toMemory: boolean): DmaFault | undefined {
    let at = 0;
    for (const [address, length] of chunk.pieces) {
      const part = buffer.subarray(at, at + length);
      const r = toMemory ? this.#dma.write(address, part) : this.#dma.read(address, part);
      if (!r.ok) return { ...r, transferred: at + r.transferred };
      at += length;
    }
    return undefined;
  }

  /** Disk → memory through the bounce buffers: the read of chunk k+1 overlaps the copy of chunk k. */
  async #bounceToMemory(first: Chunk): Promise<BusMasterOutcome | undefined> {
    const disk = this.#request.backend;
    const read = (chunk: Chunk, index: 0 | 1) =>
      disk.read(
        this.#request.offset + chunk.start,
        this.#bm.bounce(index).subarray(0, chunk.length),
      );
    let chunk: Chunk | undefined = first;
    let index: 0 | 1 = 0;
    let pending: Promise<void> | undefined = read(first, 0);
    while (chunk) {
      try {
        await pending;
      } catch (error) {
        return { kind: "io-error", error, bytesDone: chunk.start };
      }
      const next = this.#next(chunk.start + chunk.length);
      const stop = this.#cancelled();
      pending = next && !stop ? read(next, index === 0 ? 1 : 0) : undefined;
      if (!stop) this.#hint(next);
      // The copy happens whatever: the chunk's data is here and its PRD
      // regions were valid when the transfer started.
      const fault = this.#copy(chunk, this.#bm.bounce(index), true);
      if (fault || stop) {
        await pending?.catch(() => {});
        if (fault) return this.#fault(fault, chunk.start);
        return { kind: "cancelled", bytesDone: chunk.start + chunk.length };
      }
      chunk = next;
      index = index === 0 ? 1 : 0;
    }
    return undefined;
  }

  /** Memory → disk through the bounce buffers: the copy of chunk k+1 overlaps the write of chunk k. */
  async #bounceToDisk(first: Chunk): Promise<BusMasterOutcome | undefined> {
    const disk = this.#request.backend;
    let pending: { promise: Promise<void>; start: number } | undefined;
    let index: 0 | 1 = 0;
    const settle = async (): Promise<BusMasterOutcome | undefined> => {
      if (!pending) return undefined;
      const { promise, start } = pending;
      pending = undefined;
      try {
        await promise;
      } catch (error) {
        return { kind: "io-error", error, bytesDone: start };
      }
      return undefined;
    };
    for (
      let chunk: Chunk | undefined = first;
      chunk;
      chunk = this.#next(chunk.start + chunk.length)
    ) {
      if (this.#cancelled()) {
        return (await settle()) ?? { kind: "cancelled", bytesDone: chunk.start };
      }
      const buffer = this.#bm.bounce(index);
      this.#hint(this.#peek(chunk));
      const fault = this.#copy(chunk, buffer, false);
      const failed = await settle();
      if (failed) return failed;
      const whole = fault
        ? Math.floor(fault.transferred / SECTOR_SIZE) * SECTOR_SIZE
        : chunk.length;
      if (whole > 0) {
        pending = {
          promise: disk.write(this.#request.offset + chunk.start, buffer.subarray(0, whole)),
          start: chunk.start,
        };
      }
      if (fault) return (await settle()) ?? this.#fault(fault, chunk.start);
      index = index === 0 ? 1 : 0;
    }
    return await settle();
  }

  #fault(fault: DmaFault, chunkStart: number): BusMasterOutcome {
    return { kind: "fault", where: "buffer", fault, bytesDone: chunkStart + fault.transferred };
  }
}
