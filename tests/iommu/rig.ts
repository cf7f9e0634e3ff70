// A test rig for the AMD-Vi model: guest RAM, an IOMMU set up the way Linux
// sets it up (device table, 512-entry command and event rings, IommuEn), DTE
// and page-table writers, command submission and event-log readback.
import { deepEqual, equal } from "node:assert/strict";
import { AmdViIommu, type AmdViOptions } from "../../src/iommu/amd_vi.ts";
import { AmdViControl, AmdViReg } from "../../src/iommu/amd_vi_registers.ts";
import { encodeDte } from "../../src/iommu/device_table.ts";
import {
  decodeEvent,
  type IommuEvent,
  type IommuEventFlags,
  type IommuEventName,
} from "../../src/iommu/events.ts";
import type { TranslationAnswer } from "../../src/iommu/worker_link.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";

/** 4 KiB. */
export const PAGE = 4096;
/** 1 MiB. */
export const MIB = 1 << 20;
/** 1 GiB. */
export const GIB = 2 ** 30;
/** Guest RAM size of the rig: 64 MiB, all below 4 GiB. */
export const RAM_SIZE = 64 * MIB;
/** An address well outside guest RAM (and outside the MMIO windows). */
export const NOT_RAM = 0x1000_0000;

/** Device table (physical). */
export const DEV_TAB = 0x10_0000;
/** Command buffer (512 entries, 8 KiB). */
export const CMD_BUF = 0x20_0000;
/** Event log (512 entries, 8 KiB). */
export const EVT_LOG = 0x21_0000;
/** A completion-wait semaphore page. */
export const SEM = 0x22_0000;
/** Page-table pages are allocated from here. */
export const TABLES = 0x40_0000;
/** Data pages used as translation targets start here. */
export const DATA = 0x100_0000;

/** IOVA bit at which level L's index starts. */
export const SHIFT: readonly number[] = [0, 12, 21, 30, 39, 48, 57];

/** Control bits. */
export const C = AmdViControl;
/** Register offsets. */
export const R = AmdViReg;

/** Bit `n` as a bigint. */
export function b(n: number): bigint {
  return 1n << BigInt(n);
}

/** The 9-bit index of `iova` at `level`. */
export function indexAt(iova: number, level: number): number {
  return Math.floor(iova / 2 ** SHIFT[level]!) % 512;
}

/** Fields of an I/O page-table entry. */
export interface EntryFields {
  /** Address bits 51:12 (for NextLevel 7, including the size encoding). */
  address: number;
  /** NextLevel (default 0: a leaf of the level's size). */
  next?: number;
  /** IR (default true). */
  read?: boolean;
  /** IW (default true). */
  write?: boolean;
  /** PR (default true). */
  present?: boolean;
  /** Extra bits OR-ed in (reserved bits, U, FC). */
  extra?: bigint;
}

/** Encodes an I/O page-table entry. */
export function entry(f: EntryFields): bigint {
  let e = BigInt(f.address) & 0x000f_ffff_ffff_f000n;
  if (f.present ?? true) e |= 1n;
  e |= BigInt(f.next ?? 0) << 9n;
  if (f.read ?? true) e |= b(61);
  if (f.write ?? true) e |= b(62);
  return e | (f.extra ?? 0n);
}

/**
 * The address field of a NextLevel = 7 leaf mapping `size` bytes at `phys`
 * (both powers of two, `phys` aligned): bits 12 … n−1 set, bit n clear, for
 * size 2^(n+1).
 */
export function nl7Address(phys: number, size: number): number {
  return phys + size / 2 - PAGE;
}

/** GuestMemory that records the 64-bit reads and writes the IOMMU makes. */
export class SpyMemory extends GuestMemory {
  /** Addresses read with read64 / atomicLoad64. */
  readonly reads: number[] = [];
  /** Addresses and values written with write64 / atomicStore64. */
  readonly writes: Array<{ address: number; value: bigint }> = [];
  /** Called before every 64-bit write. */
  onWrite: ((address: number, value: bigint) => void) | undefined;

  override read64(address: number): bigint {
    this.reads.push(address);
    return super.read64(address);
  }
  override atomicLoad64(address: number): bigint {
    this.reads.push(address);
    return super.atomicLoad64(address);
  }
  override write64(address: number, value: bigint): void {
    this.onWrite?.(address, value);
    this.writes.push({ address, value });
    super.write64(address, value);
  }
  override atomicStore64(address: number, value: bigint): void {
    this.onWrite?.(address, value);
    this.writes.push({ address, value });
    super.atomicStore64(address, value);
  }
}

/** Options of {@linkcode Rig}. */
export interface RigOptions {
  /** DevTabBase.Size (default 1: 8 KiB, DeviceIDs 0 … 0xFF). */
  devTabSize?: number;
  /** DevTabBase address (default {@linkcode DEV_TAB}). */
  devTab?: number;
  /** Set IommuEn at the end of the setup (default true). */
  enable?: boolean;
  /** EvtLogBase.EventLen (default 9). */
  eventLen?: number;
  /** CmdBufBase.ComLen (default 9). */
  comLen?: number;
  /** Extra Control bits to set at the end (e.g. EventIntEn). */
  control?: bigint;
  /** IOMMU options other than setIrq (which the rig records). */
  iommu?: Omit<AmdViOptions, "setIrq">;
}

/** What {@linkcode Rig.resolve} returned, with the events it logged. */
export interface Outcome {
  /** The answer. */
  answer: TranslationAnswer;
  /** Events logged by this access (read from the event log in RAM). */
  events: IommuEvent[];
}

/** The rig. */
export class Rig {
  /** Guest RAM (a spy: reads and writes are recorded). */
  readonly memory: SpyMemory;
  /** The IOMMU. */
  readonly iommu: AmdViIommu;
  /** Every setIrq call, in order. */
  readonly irq: boolean[] = [];
  /** DevTabBase address. */
  readonly devTab: number;
  #nextTable = TABLES;
  #tail = 0;
  #cmdSize: number;
  #evtSize: number;

  /** Builds RAM and an IOMMU and initialises it in Linux's order. */
  constructor(options: RigOptions = {}) {
    this.memory = new SpyMemory({ size: RAM_SIZE });
    this.iommu = new AmdViIommu(this.memory, {
      ...options.iommu,
      setIrq: (level) => this.irq.push(level),
    });
    this.devTab = options.devTab ?? DEV_TAB;
    const comLen = options.comLen ?? 9;
    const eventLen = options.eventLen ?? 9;
    this.#cmdSize = 16 << comLen;
    this.#evtSize = 16 << eventLen;
    // Disable, device table, command buffer, event log, enable (Linux's early_enable_iommu).
    this.write(R.CONTROL, 0n);
    this.write(R.DEV_TAB_BASE, BigInt(this.devTab) | BigInt(options.devTabSize ?? 1));
    this.write(R.CMD_BUF_BASE, BigInt(CMD_BUF) | (BigInt(comLen) << 56n));
    this.setControl(0n, C.CMD_BUF_EN);
    this.write(R.CMD_HEAD, 0n, 4);
    this.write(R.CMD_TAIL, 0n, 4);
    this.setControl(C.CMD_BUF_EN);
    this.write(R.EVT_LOG_BASE, BigInt(EVT_LOG) | (BigInt(eventLen) << 56n));
    this.write(R.EVT_HEAD, 0n, 4);
    this.write(R.EVT_TAIL, 0n, 4);
    this.setControl(C.EVENT_LOG_EN);
    if (options.enable ?? true) this.setControl(C.IOMMU_EN);
    if (options.control !== undefined) this.setControl(options.control);
    this.memory.reads.length = 0;
    this.memory.writes.length = 0;
  }

  /** Command buffer size in bytes. */
  get cmdSize(): number {
    return this.#cmdSize;
  }
  /** Event log size in bytes. */
  get evtSize(): number {
    return this.#evtSize;
  }

  /** Reads a register. */
  read(offset: number, size = 8): bigint {
    return this.iommu.readRegister(offset, size);
  }
  /** Writes a register. */
  write(offset: number, value: bigint, size = 8): void {
    this.iommu.writeRegister(offset, size, value);
  }
  /** Read-modify-write of Control (as Linux's iommu_feature_enable/disable). */
  setControl(set: bigint, clear = 0n): void {
    this.write(R.CONTROL, (this.read(R.CONTROL) & ~clear) | set);
  }
  /** The Status register. */
  status(): bigint {
    return this.read(R.STATUS);
  }

  /** The physical address of `rid`'s DTE. */
  dteAddress(rid: number): number {
    return this.devTab + rid * 32;
  }

  /**
   * Writes a DTE: encoded fields (with extra bits OR-ed into qw0/qw1) or raw words.
   */
  writeDte(
    rid: number,
    fields: Parameters<typeof encodeDte>[0] | [bigint, bigint],
    extra: { q0?: bigint; q1?: bigint } = {},
  ): void {
    const [q0, q1] = Array.isArray(fields) ? fields : encodeDte(fields);
    const at = this.dteAddress(rid);
    this.memory.write64(at + 8, q1 | (extra.q1 ?? 0n));
    this.memory.write64(at, q0 | (extra.q0 ?? 0n));
  }

  /** Allocates a zeroed page-table page. */
  table(): number {
    const at = this.#nextTable;
    this.#nextTable += PAGE;
    this.memory.fill(at, PAGE, 0);
    return at;
  }

  /** Writes `value` into the slot of `table` (a level-`level` table) that `iova` indexes. */
  setEntry(table: number, level: number, iova: number, value: bigint): number {
    const at = table + indexAt(iova, level) * 8;
    this.memory.write64(at, value);
    return at;
  }

  /**
   * Creates the directory path for `iova` from a level-`mode` root down to a
   * level-`leafLevel` table (PDEs: PR | IR | IW | NextLevel = level − 1) and
   * returns the table address at each level (index = level).
   */
  path(root: number, mode: number, iova: number, leafLevel = 1): number[] {
    const tables: number[] = [];
    tables[mode] = root;
    let table = root;
    for (let level = mode; level > leafLevel; level--) {
      const at = table + indexAt(iova, level) * 8;
      const e = this.memory.read64(at);
      let next: number;
      if ((e & 1n) === 1n && Number((e >> 9n) & 7n) === level - 1) {
        next = Number(e & 0x000f_ffff_ffff_f000n);
      } else {
        next = this.table();
        this.memory.write64(at, entry({ address: next, next: level - 1 }));
      }
      tables[level - 1] = next;
      table = next;
    }
    return tables;
  }

  /**
   * Maps one page: builds the path and writes the leaf at `leafLevel`.
   * Returns the table address at each level.
   */
  map(
    root: number,
    mode: number,
    iova: number,
    leaf: EntryFields,
    leafLevel = 1,
  ): number[] {
    const tables = this.path(root, mode, iova, leafLevel);
    this.setEntry(tables[leafLevel]!, leafLevel, iova, entry(leaf));
    return tables;
  }

  /** Translates and collects the events the access logged. */
  resolve(rid: number, iova: number, access: 1 | 2): Outcome {
    const answer = this.iommu.resolve(rid, iova, access);
    return { answer, events: this.events() };
  }

  /** Writes commands at the software tail without moving CMD_TAIL. */
  queue(list: ReadonlyArray<readonly [bigint, bigint]>): void {
    for (const [q0, q1] of list) {
      this.memory.write64(CMD_BUF + this.#tail, q0);
      this.memory.write64(CMD_BUF + this.#tail + 8, q1);
      this.#tail = (this.#tail + 16) % this.#cmdSize;
    }
  }

  /** The software command tail (byte offset). */
  get tail(): number {
    return this.#tail;
  }
  set tail(value: number) {
    this.#tail = value;
  }

  /** Queues commands, writes CMD_TAIL (a 4-byte write, as Linux) and waits until idle. */
  async submit(list: ReadonlyArray<readonly [bigint, bigint]>): Promise<void> {
    this.queue(list);
    this.write(R.CMD_TAIL, BigInt(this.#tail), 4);
    await this.iommu.idle();
  }

  /** Raw event-log entries from EVT_HEAD to EVT_TAIL (consumed: head moves to tail). */
  rawEvents(): Array<[bigint, bigint]> {
    const out: Array<[bigint, bigint]> = [];
    let head = Number(this.read(R.EVT_HEAD));
    const tail = Number(this.read(R.EVT_TAIL));
    while (head !== tail) {
      out.push([
        this.memory.read64(EVT_LOG + head),
        this.memory.read64(EVT_LOG + head + 8),
      ]);
      head = (head + 16) % this.#evtSize;
    }
    this.write(R.EVT_HEAD, BigInt(head), 4);
    return out;
  }

  /** Decoded new events (consumed). */
  events(): IommuEvent[] {
    return this.rawEvents().map(([q0, q1]) => decodeEvent(q0, q1));
  }
}

/** An expected event: unlisted flags must be clear, unlisted numbers 0. */
export interface ExpectedEvent {
  /** Event name. */
  name: IommuEventName;
  /** DeviceID. */
  deviceId?: number;
  /** DomainID. */
  domainId?: number;
  /** Flags that must be set (all others clear). */
  flags?: IommuEventFlags;
  /** Type field. */
  type?: number;
  /** Address field. */
  address: bigint;
}

/** Normalises an event for comparison. */
function normal(e: ExpectedEvent | IommuEvent): Record<string, unknown> {
  const f = e.flags ?? {};
  return {
    name: e.name,
    deviceId: e.deviceId ?? 0,
    domainId: e.domainId ?? 0,
    flags: {
      gn: f.gn ?? false,
      nx: f.nx ?? false,
      us: f.us ?? false,
      i: f.i ?? false,
      pr: f.pr ?? false,
      rw: f.rw ?? false,
      pe: f.pe ?? false,
      rz: f.rz ?? false,
      tr: f.tr ?? false,
    },
    type: e.type ?? 0,
    address: `0x${e.address.toString(16)}`,
  };
}

/** Asserts the events equal the expected ones exactly (count, code, fields, flags). */
export function assertEvents(
  actual: readonly IommuEvent[],
  expected: readonly ExpectedEvent[],
  message: string,
): void {
  deepEqual(actual.map(normal), expected.map(normal), message);
}

/** Asserts a successful translation to `phys` (and optionally perms). */
export function assertTranslated(
  answer: TranslationAnswer,
  phys: number,
  message: string,
  perms?: number,
): void {
  equal(answer.ok, true, `${message}: expected a translation, got ${JSON.stringify(answer)}`);
  if (!answer.ok) return;
  equal(answer.physBase, phys, `${message}: physical address`);
  if (perms !== undefined) equal(answer.perms, perms, `${message}: permissions`);
}

/** Asserts a failed translation of the given kind. */
export function assertFault(
  answer: TranslationAnswer,
  kind: "no-translation" | "permission",
  message: string,
): void {
  deepEqual(answer, { ok: false, kind }, message);
}

/** Formats a number as hex for test names. */
export function hx(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}
