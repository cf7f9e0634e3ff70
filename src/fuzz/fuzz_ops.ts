/**
 * The fuzzer's operation generator: from a seed, a list of qtest requests
 * that attack every device of the fuzz machine and the IOMMU, and the DMA
 * patterns that fill whatever the devices fetch from memory nobody wrote.
 *
 * Operations are a mix of blind ones (port and MMIO accesses anywhere in a
 * device's window, configuration writes to any register, random memory) and
 * structure-aware ones that reach deep states: firmware-style BAR assignment,
 * an IOMMU set up the way Linux does with device-table entries and page
 * tables (then damaged), IDE commands with PRD tables, e1000 rings with
 * descriptors, edu DMA with edge-case ranges, IOMMU commands. Values are
 * biased towards edges (0, all-ones, sizes around powers of two, addresses
 * at the ends of RAM, in the MMIO hole and above RAM).
 *
 * @module
 */

import type { InjectionPattern } from "../dma/dma_inject.ts";
import { seededRandom } from "../util/random.ts";
import { FuzzLayout as L } from "./fuzz_machine.ts";

/** What one run executes. */
export interface FuzzProgram {
  /** qtest requests, in order. */
  readonly lines: string[];
  /** DMA injection patterns. */
  readonly patterns: InjectionPattern[];
}

/** Options for {@linkcode generateProgram}. */
export interface GenerateOptions {
  /** Operations after the set-up (default 120). */
  ops?: number;
}

const hex = (v: number | bigint): string => `0x${v.toString(16)}`;
const SIZES = ["b", "w", "l", "q"] as const;
const PORT_SIZES = ["b", "w", "l"] as const;
const SIZE_BYTES: Record<string, number> = { b: 1, w: 2, l: 4, q: 8 };
const PAGE = 4096;
const RIDS = [L.IDE_SLOT << 3, L.E1000A_SLOT << 3, L.EDU_SLOT << 3, L.E1000B_SLOT << 3];
/** IOVA window the generator maps to the data area (in addition to identity). */
const IOVA_WINDOW = 0x4000_0000;

type Rand = ReturnType<typeof seededRandom>;

/** Page tables the generator builds in guest RAM for one domain. */
class Domain {
  readonly id: number;
  readonly mode: number;
  readonly root: number;
  /** Directory entries written so far: table address → index → next table. */
  #dirs = new Map<number, Map<number, number>>();
  #gen: Generator;

  constructor(gen: Generator, id: number, mode: number) {
    this.#gen = gen;
    this.id = id;
    this.mode = mode;
    this.root = gen.allocPage();
  }

  /** Maps `iova` → `phys` with a leaf at `level` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB). */
  map(iova: number, phys: number, level: number, perms: number): void {
    const g = this.#gen;
    if (level > this.mode) return;
    const span = 12 + 9 * this.mode;
    if (span < 53 && iova >= 2 ** span) return;
    let table = this.root;
    for (let l = this.mode; l > level; l--) {
      const index = Math.floor(iova / 2 ** (12 + 9 * (l - 1))) % 512;
      let dirs = this.#dirs.get(table);
      if (!dirs) this.#dirs.set(table, dirs = new Map());
      let next = dirs.get(index);
      if (next === undefined) {
        next = g.allocPage();
        if (next < 0) return;
        dirs.set(index, next);
        const pde = 1n | (BigInt(l - 1) << 9n) | BigInt(next) | (3n << 61n);
        g.emit(`writeq ${hex(table + index * 8)} ${hex(pde)}`);
      }
      table = next;
    }
    const index = Math.floor(iova / 2 ** (12 + 9 * (level - 1))) % 512;
    let pte = 1n | BigInt(phys) | (BigInt(perms & 3) << 61n);
    if (g.rand.next() < 0.05) pte |= 1n << BigInt(52 + g.rand.int(7)); // a reserved bit
    if (g.rand.next() < 0.03) pte |= 7n << 9n; // NextLevel 7 (page size encoded in the address)
    g.emit(`writeq ${hex(table + index * 8)} ${hex(pte)}`);
  }

  /** A directory or leaf entry address the generator wrote, for damage. */
  someTable(): number {
    const tables = [this.root, ...[...this.#dirs.values()].flatMap((m) => [...m.values()])];
    return this.#gen.rand.pick(tables);
  }
}

class Generator {
  readonly rand: Rand;
  readonly lines: string[] = [];
  #nextPage: number = L.PAGE_POOL;
  #cmdTail = 0;
  #iommuUp = false;
  #domains: Domain[] = [];
  #domainOf = new Map<number, Domain>();
  #cwSeq = 1n;

  constructor(seed: number) {
    this.rand = seededRandom(seed);
  }

  emit(line: string): void {
    this.lines.push(line);
  }

  allocPage(): number {
    if (this.#nextPage >= L.PAGE_POOL_END) return -1;
    const page = this.#nextPage;
    this.#nextPage += PAGE;
    return page;
  }

  // ---------------------------------------------------------------- values

  chance(p: number): boolean {
    return this.rand.next() < p;
  }

  u32(): number {
    return (this.rand.int(0x10000) * 0x10000 + this.rand.int(0x10000)) >>> 0;
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** A 32-bit value biased towards edges. */
  value32(): number {
    const r = this.rand;
    switch (r.int(10)) {
      case 0:
        return 0;
      case 1:
        return 0xffff_ffff;
      case 2:
        return 1 << r.int(32) >>> 0;
      case 3:
        return ((1 << r.int(32)) - 1 + r.int(3) - 1) >>> 0;
      case 4:
        return r.int(0x100);
      case 5:
        return r.int(0x10000);
      case 6:
        return this.ramAddress();
      default:
        return this.u32();
    }
  }

  value(size: number): bigint {
    const v = size === 8
      ? (this.chance(0.5) ? this.u64() : BigInt(this.value32()))
      : BigInt(this.value32());
    return BigInt.asUintN(size * 8, v);
  }

  /** A guest-physical address in RAM (mostly where structures and data live). */
  ramAddress(): number {
    const r = this.rand;
    switch (r.int(6)) {
      case 0:
        return L.DATA + r.int((L.DATA_END - L.DATA) / PAGE) * PAGE;
      case 1:
        return L.DATA + r.int(L.DATA_END - L.DATA);
      case 2:
        return r.pick([L.DEV_TABLE, L.CMD_RING, L.EVT_LOG, L.PRD0, L.RING_A_TX, L.RING_B_RX]);
      case 3:
        return L.RAM_SIZE - 1 - r.int(PAGE);
      default:
        return r.int(L.RAM_SIZE);
    }
  }

  /** An address for a device to DMA to or from. */
  dmaAddress(): number {
    const r = this.rand;
    switch (r.int(14)) {
      case 5:
      case 6:
      case 7:
        return L.DATA + r.int((L.DATA_END - L.DATA) / PAGE) * PAGE +
          (this.chance(0.8) ? 0 : r.int(PAGE));
      case 0:
        return IOVA_WINDOW + r.int((L.DATA_END - L.DATA) / PAGE) * PAGE + r.int(2) * r.int(PAGE);
      case 1:
        return r.pick([0xfe00_0000, 0xfee0_0000, 0xfed8_0000, 0xb000_0000, 0xffff_f000]);
      case 2:
        return L.RAM_SIZE - r.int(2 * PAGE);
      case 3:
        return r.pick([0x1_0000_0000, 0x10_0000_0000, 2 ** 52, 2 ** 53 - PAGE]);
      case 4:
        return this.u32();
      default:
        return this.ramAddress() & ~(this.chance(0.8) ? 0xf : 0);
    }
  }

  length(max: number): number {
    const r = this.rand;
    switch (r.int(6)) {
      case 0:
        return 0;
      case 1:
        return max;
      case 2:
        return 1 << r.int(Math.max(1, Math.log2(max + 1) | 0));
      case 3:
        return Math.max(0, (1 << r.int(Math.max(1, Math.log2(max + 1) | 0))) + r.int(3) - 1);
      default:
        return r.int(max + 1);
    }
  }

  // ---------------------------------------------------------------- qtest helpers

  out(port: number, size: number, value: number | bigint): void {
    const s = size === 1 ? "b" : size === 2 ? "w" : "l";
    this.emit(`out${s} ${hex(port)} ${hex(BigInt.asUintN(size * 8, BigInt(value)))}`);
  }

  in(port: number, size: number): void {
    this.emit(`in${size === 1 ? "b" : size === 2 ? "w" : "l"} ${hex(port)}`);
  }

  write(address: number, size: number, value: number | bigint): void {
    const s = SIZES[Math.log2(size)]!;
    this.emit(`write${s} ${hex(address)} ${hex(BigInt.asUintN(size * 8, BigInt(value)))}`);
  }

  read(address: number, size: number): void {
    this.emit(`read${SIZES[Math.log2(size)]!} ${hex(address)}`);
  }

  bytes(address: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const text = [...data].map((b) => b.toString(16).padStart(2, "0")).join("");
    this.emit(`write ${hex(address)} ${hex(data.length)} 0x${text}`);
  }

  config(slot: number, reg: number, size: number, value: number): void {
    this.out(0xcf8, 4, (0x8000_0000 | (slot << 11) | (reg & 0xfc)) >>> 0);
    this.out(0xcfc + (reg & 3), size, value);
  }

  configRead(slot: number, fn: number, reg: number, size: number): void {
    this.out(0xcf8, 4, (0x8000_0000 | (slot << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
    this.in(0xcfc + (reg & 3), size);
  }

  // ---------------------------------------------------------------- set-up

  setUp(): void {
    this.emit("irq_intercept_in ioapic");
    const bars: Array<[number, number, number, number]> = [
      [L.EDU_SLOT, 0x10, L.EDU_BAR0, 0x6],
      [L.E1000A_SLOT, 0x10, L.E1000A_BAR0, 0x7],
      [L.E1000A_SLOT, 0x14, L.E1000A_IO | 1, 0x7],
      [L.E1000B_SLOT, 0x10, L.E1000B_BAR0, 0x7],
      [L.E1000B_SLOT, 0x14, L.E1000B_IO | 1, 0x7],
      [L.IDE_SLOT, 0x20, L.IDE_BM | 1, 0x5],
    ];
    for (const [slot, reg, base] of bars) {
      if (this.chance(0.95)) this.config(slot, reg, 4, base);
    }
    for (const slot of [L.EDU_SLOT, L.E1000A_SLOT, L.E1000B_SLOT, L.IDE_SLOT]) {
      const command = bars.find((b) => b[0] === slot)![3];
      this.config(slot, 0x04, 2, this.chance(0.9) ? command : this.rand.int(8));
    }
    if (this.chance(0.7)) this.iommuInit();
  }

  iommuInit(): void {
    const base = L.IOMMU_MMIO;
    this.write(base + 0x18, 8, 0); // everything off
    this.write(base + 0x00, 8, L.DEV_TABLE | (this.chance(0.9) ? 1 : this.rand.int(0x200)));
    this.write(base + 0x08, 8, BigInt(L.CMD_RING) | (8n << 56n));
    this.write(base + 0x10, 8, BigInt(L.EVT_LOG) | (8n << 56n));
    this.write(base + 0x2000, 8, 0);
    this.write(base + 0x2008, 8, 0);
    this.write(base + 0x2010, 8, 0);
    this.write(base + 0x2018, 8, 0);
    this.#cmdTail = 0;
    // The DTEs (and page tables) go in before the IOMMU is enabled.
    for (const rid of RIDS) {
      if (this.chance(0.9)) this.writeDte(rid);
    }
    const invTimeout = this.rand.pick([0, 0, 0, 0, 3, 4, 5, 6, 2, 1]);
    let control = 1n | 4n | (1n << 12n) | (BigInt(invTimeout) << 5n);
    if (this.chance(0.3)) control |= 8n; // EventIntEn
    if (this.chance(0.3)) control |= 16n; // ComWaitIntEn
    if (this.chance(0.05)) control = this.u64();
    this.write(base + 0x18, 8, control);
    this.#iommuUp = true;
    this.command(
      this.chance(0.5) ? [8n << 60n, 0n] : [2n << 60n | BigInt(this.rand.pick(RIDS)), 0n],
    );
    this.completionWait();
  }

  domainFor(rid: number): Domain | undefined {
    let d = this.#domainOf.get(rid);
    if (d) return d;
    if (this.#domains.length > 0 && this.chance(0.3)) d = this.rand.pick(this.#domains);
    else {
      const mode = this.rand.pick([3, 3, 4, 2, 1, 5, 6]);
      d = new Domain(this, this.#domains.length + 1, mode);
      this.#domains.push(d);
      // Identity maps of the structures and the data, and an IOVA window onto the data.
      const leaf = d.mode >= 2 && this.chance(0.7) ? 2 : 1;
      for (const area of [L.PRD0, L.RING_A_TX, L.RING_B_TX]) {
        if (leaf === 2) d.map(area & ~0x1f_ffff, area & ~0x1f_ffff, 2, 3);
        else for (let p = 0; p < 2; p++) d.map(area + p * PAGE, area + p * PAGE, 1, 3);
      }
      if (leaf === 2) {
        for (let a = L.DATA; a < L.DATA_END; a += 0x20_0000) {
          if (this.chance(0.9)) d.map(a, a, 2, this.chance(0.9) ? 3 : this.rand.int(4));
        }
        for (let a = 0; a < 4 * 0x20_0000; a += 0x20_0000) {
          d.map(IOVA_WINDOW + a, L.DATA + a, 2, 3);
        }
      } else {
        for (let i = 0; i < 16; i++) {
          const page = L.DATA + this.rand.int((L.DATA_END - L.DATA) / PAGE) * PAGE;
          d.map(page, page, 1, this.chance(0.9) ? 3 : this.rand.int(4));
          d.map(IOVA_WINDOW + i * PAGE, page, 1, 3);
        }
      }
    }
    this.#domainOf.set(rid, d);
    return d;
  }

  writeDte(rid: number): void {
    const at = L.DEV_TABLE + rid * 32;
    const r = this.rand;
    let q0 = 0n;
    let q1 = 0n;
    switch (r.int(8)) {
      case 0: // pass-through
        break;
      case 1: // blocked
        q0 = 1n;
        break;
      case 2: // identity with permissions
        q0 = 3n | (BigInt(r.int(4)) << 61n);
        q1 = BigInt(r.int(0x10000));
        break;
      default: {
        const d = this.domainFor(rid)!;
        q0 = 3n | (BigInt(d.mode) << 9n) | BigInt(d.root) | (3n << 61n);
        q1 = BigInt(d.id);
      }
    }
    if (this.chance(0.05)) q0 |= 1n << BigInt(r.pick([2, 3, 4, 5, 6, 52, 53, 60, 63])); // reserved
    if (this.chance(0.05)) q0 = (q0 & ~(7n << 9n)) | (7n << 9n); // mode 7
    if (this.chance(0.1)) q1 |= 1n << BigInt(r.pick([33, 34, 39])); // SE, SA, EX
    this.write(at, 8, q0);
    this.write(at + 8, 8, q1);
    if (this.chance(0.1)) this.write(at + 16, 8, this.u64());
  }

  command(words: [bigint, bigint]): void {
    this.write(L.CMD_RING + this.#cmdTail, 8, words[0]);
    this.write(L.CMD_RING + this.#cmdTail + 8, 8, words[1]);
    this.#cmdTail = (this.#cmdTail + 16) % PAGE;
    this.write(L.IOMMU_MMIO + 0x2008, 8, this.#cmdTail);
  }

  completionWait(): void {
    const store = L.CW_STORE + 8 * this.rand.int(8);
    const flags = 1n | (this.chance(0.3) ? 2n : 0n) | (this.chance(0.1) ? 4n : 0n);
    this.command([(1n << 60n) | BigInt(store) | flags, this.#cwSeq++]);
    this.read(store, 8);
  }

  // ---------------------------------------------------------------- operations

  op(): void {
    const r = this.rand;
    const k = r.int(100);
    if (k < 14) this.eduOp();
    else if (k < 34) this.ideOp();
    else if (k < 54) this.e1000Op();
    else if (k < 70) this.iommuOp();
    else if (k < 78) this.pciOp();
    else if (k < 86) this.memoryOp();
    else if (k < 95) this.blindOp();
    else if (k < 98) this.emit(`clock_step${this.chance(0.5) ? ` ${r.int(10_000_000)}` : ""}`);
    else this.garbage();
  }

  eduOp(): void {
    const r = this.rand;
    const bar = L.EDU_BAR0;
    switch (r.int(6)) {
      case 0:
      case 1:
      case 2: {
        const toRam = this.chance(0.5);
        const bufferSide = 0x40000 + r.pick([0, r.int(4096), 4096 - r.int(64), 4096, r.int(8192)]);
        const count = this.chance(0.2) ? this.value32() : this.length(4096 + 16);
        const ram = this.dmaAddress();
        this.write(bar + 0x80, 8, toRam ? bufferSide : ram);
        this.write(bar + 0x88, 8, toRam ? ram : bufferSide);
        this.write(bar + 0x90, 8, count);
        let cmd = 1 | (toRam ? 2 : 0) | (this.chance(0.5) ? 4 : 0);
        if (this.chance(0.1)) cmd |= 0x10; // copy
        if (this.chance(0.05)) cmd |= 0x8; // repeat (stopped below)
        this.write(bar + 0x98, 8, cmd);
        if (cmd & 0x8) this.write(bar + 0xb0, 8, 1);
        this.read(bar + 0x20, 4);
        break;
      }
      case 3:
        this.write(bar + 0x08, 4, this.value32());
        this.read(bar + 0x08, 4);
        break;
      case 4:
        this.write(bar + r.pick([0x60, 0x64, 0x20, 0x04]), 4, this.value32());
        break;
      default: {
        const size = 1 << r.int(4);
        const offset = this.chance(0.8) ? r.int(0x100) & ~(size - 1) : r.int(0x10_0000 - 8);
        if (this.chance(0.5)) this.write(bar + offset, size, this.value(size));
        else this.read(bar + offset, size);
      }
    }
  }

  ideOp(): void {
    const r = this.rand;
    const channel = r.int(4) === 0 ? 1 : 0;
    const cmdBase = channel ? 0x170 : 0x1f0;
    const ctrl = channel ? 0x376 : 0x3f6;
    const bm = L.IDE_BM + 8 * channel;
    switch (r.int(10)) {
      case 0:
      case 1:
      case 2:
      case 3: { // a DMA command
        const prd = channel ? L.PRD1 : L.PRD0;
        const entries = 1 + r.int(this.chance(0.9) ? 4 : 64);
        const table = new Uint8Array(entries * 8);
        const view = new DataView(table.buffer);
        for (let i = 0; i < entries; i++) {
          view.setUint32(i * 8, this.chance(0.85) ? this.dmaAddress() : this.u32(), true);
          const count = this.chance(0.2) ? r.int(0x10000) : r.pick([512, 1024, 4096, 0, 0x8000]);
          const eot = i === entries - 1 ? (this.chance(0.9) ? 0x8000_0000 : 0) : 0;
          view.setUint32(
            i * 8 + 4,
            (count | eot | (this.chance(0.05) ? this.u32() : 0)) >>> 0,
            true,
          );
        }
        if (this.chance(0.7)) this.bytes(prd, table); // else: what injection puts there
        this.out(bm + 4, 4, this.chance(0.9) ? prd : this.u32());
        this.out(bm + 2, 1, 0x06); // clear error and interrupt
        const read = this.chance(0.5);
        const lba48 = this.chance(0.3);
        const count = this.chance(0.8) ? 1 + r.int(16) : this.length(0x100);
        const lba = this.chance(0.8) ? r.int(8192 - 16) : this.u32() % 0x1000_0000;
        this.taskFile(cmdBase, lba, count, lba48, r.int(4) === 0 ? 1 : 0);
        const startFirst = this.chance(0.3);
        const bmic = (this.chance(0.9) ? (read ? 0x08 : 0) : 0x08 * r.int(2)) | 1;
        if (startFirst) this.out(bm, 1, bmic);
        const opcode = read ? (lba48 ? 0x25 : 0xc8) : (lba48 ? 0x35 : 0xca);
        this.out(cmdBase + 7, 1, this.chance(0.95) ? opcode : r.int(256));
        if (!startFirst) this.out(bm, 1, bmic);
        if (this.chance(0.2)) this.out(bm, 1, 0); // stop it at once
        this.in(bm + 2, 1);
        this.in(cmdBase + 7, 1);
        break;
      }
      case 4: { // PIO, a few words of it
        const write = this.chance(0.5);
        this.taskFile(cmdBase, r.int(8192), 1 + r.int(4), false, 0);
        this.out(cmdBase + 7, 1, write ? 0x30 : 0x20);
        for (let i = r.int(8); i > 0; i--) {
          if (write) this.out(cmdBase, this.chance(0.9) ? 2 : 4, this.u32());
          else this.in(cmdBase, this.chance(0.9) ? 2 : 4);
        }
        break;
      }
      case 5:
        this.out(cmdBase + 6, 1, 0xa0 | (r.int(2) << 4));
        this.out(cmdBase + 7, 1, r.pick([0xec, 0xe7, 0xea, 0xef, 0x91, 0x00, 0xff, r.int(256)]));
        this.in(cmdBase + 7, 1);
        break;
      case 6: // SRST and release
        this.out(ctrl, 1, 0x04 | (r.int(2) << 1));
        this.out(ctrl, 1, r.int(2) << 1);
        break;
      case 7:
        this.out(bm + r.pick([0, 2, 4, 1, 3]), 1, r.int(256));
        break;
      default: {
        const port = r.pick([cmdBase + r.int(8), ctrl, bm + r.int(8), 0x3f7, 0x377]);
        const size = 1 << r.int(3);
        if (this.chance(0.5)) this.out(port, size, this.value32());
        else this.in(port, size);
      }
    }
  }

  taskFile(base: number, lba: number, count: number, lba48: boolean, unit: number): void {
    this.out(base + 6, 1, 0x40 | (unit << 4) | (lba48 ? 0 : (lba >>> 24) & 0xf));
    if (lba48) {
      this.out(base + 2, 1, (count >>> 8) & 0xff);
      this.out(base + 3, 1, (lba >>> 24) & 0xff);
      this.out(base + 4, 1, 0);
      this.out(base + 5, 1, 0);
    }
    this.out(base + 2, 1, count & 0xff);
    this.out(base + 3, 1, lba & 0xff);
    this.out(base + 4, 1, (lba >>> 8) & 0xff);
    this.out(base + 5, 1, (lba >>> 16) & 0xff);
  }

  e1000Op(): void {
    const r = this.rand;
    const b = this.chance(0.5);
    const bar = b ? L.E1000B_BAR0 : L.E1000A_BAR0;
    const io = b ? L.E1000B_IO : L.E1000A_IO;
    const tx = b ? L.RING_B_TX : L.RING_A_TX;
    const rx = b ? L.RING_B_RX : L.RING_A_RX;
    switch (r.int(10)) {
      case 0: // reset and enable
        this.write(bar + 0x0000, 4, this.chance(0.5) ? 0x0400_0000 : 0x40); // RST or SLU
        this.write(
          bar + 0x0100,
          4,
          0x2 | this.rand.pick([0x8018, 0x8000, 0x18, 0]) | (r.int(4) << 16),
        );
        this.write(bar + 0x0400, 4, 0x2 | (this.chance(0.5) ? 0x8 : 0));
        this.write(bar + 0x00d0, 4, this.value32());
        break;
      case 1:
      case 2: { // transmit ring with descriptors
        const n = 8 * (1 + r.int(4));
        this.write(bar + 0x3800, 4, this.chance(0.9) ? tx : this.dmaAddress());
        this.write(bar + 0x3804, 4, this.chance(0.9) ? 0 : this.value32());
        this.write(bar + 0x3808, 4, this.chance(0.9) ? n * 16 : this.value32());
        const count = 1 + r.int(6);
        const ring = new Uint8Array(count * 16);
        const view = new DataView(ring.buffer);
        for (let i = 0; i < count; i++) this.txDescriptor(view, i * 16, i === count - 1);
        if (this.chance(0.75)) this.bytes(tx + (r.int(2) ? 0 : 16 * r.int(n)), ring);
        if (this.chance(0.3)) this.write(bar + 0x3810, 4, r.int(n));
        this.write(bar + 0x0400, 4, 0x2 | (this.chance(0.5) ? 0x8 : 0));
        this.write(bar + 0x3818, 4, this.chance(0.9) ? count % n : this.value32());
        break;
      }
      case 3: { // receive ring
        const n = 8 * (1 + r.int(4));
        this.write(bar + 0x2800, 4, this.chance(0.9) ? rx : this.dmaAddress());
        this.write(bar + 0x2804, 4, 0);
        this.write(bar + 0x2808, 4, this.chance(0.9) ? n * 16 : this.value32());
        const ring = new Uint8Array(n * 16);
        const view = new DataView(ring.buffer);
        for (let i = 0; i < n; i++) {
          view.setBigUint64(i * 16, BigInt(this.chance(0.9) ? this.dmaAddress() : 0), true);
        }
        if (this.chance(0.7)) this.bytes(rx, ring);
        this.write(
          bar + 0x0100,
          4,
          0x2 | 0x8018 | (r.int(4) << 16) | (this.chance(0.2) ? 0x20 : 0),
        );
        this.write(bar + 0x2818, 4, this.chance(0.9) ? n - 1 : this.value32());
        break;
      }
      case 4:
        this.read(bar + 0x00c0, 4); // ICR
        this.read(bar + r.pick([0x3810, 0x2810, 0x0f00, 0x0f04, 0x0008, 0x4074, 0x40c4]), 4);
        break;
      case 5: // EEPROM and PHY
        this.write(bar + 0x0014, 4, 1 | (r.int(256) << 8));
        this.read(bar + 0x0014, 4);
        this.write(bar + 0x0020, 4, this.value32());
        break;
      case 6: // the I/O window
        this.out(io, 4, this.chance(0.8) ? r.pick([0, 8, 0xc0, 0x3818, 0x2818]) : this.value32());
        if (this.chance(0.5)) this.out(io + 4, 4, this.value32());
        else this.in(io + 4, 4);
        break;
      default: {
        const offsets = [
          0x0000,
          0x0008,
          0x0010,
          0x0014,
          0x0018,
          0x0020,
          0x00c0,
          0x00c4,
          0x00c8,
          0x00d0,
          0x00d8,
          0x0100,
          0x0400,
          0x0410,
          0x2800,
          0x2808,
          0x2810,
          0x2818,
          0x2820,
          0x3800,
          0x3808,
          0x3810,
          0x3818,
          0x5200,
          0x5400,
          0x5404,
          0x0f00,
          0x4000,
          0x40f4,
          0x5000,
        ];
        const offset = this.chance(0.8) ? r.pick(offsets) : r.int(0x20000) & ~3;
        const size = this.chance(0.9) ? 4 : 1 << r.int(4);
        if (this.chance(0.6)) this.write(bar + offset, size, this.value(size));
        else this.read(bar + offset, size);
      }
    }
  }

  txDescriptor(view: DataView, at: number, last: boolean): void {
    const r = this.rand;
    view.setBigUint64(at, BigInt(this.dmaAddress()), true);
    const kind = r.int(10);
    if (kind < 6) { // legacy
      view.setUint16(at + 8, this.chance(0.8) ? 14 + r.int(1500) : this.length(0xffff), true);
      let cmd = 0x08 | (last || this.chance(0.3) ? 0x01 : 0) | r.pick([0, 0x02, 0x04, 0x10, 0x40]);
      if (this.chance(0.1)) cmd = r.int(256) & ~0x20;
      view.setUint8(at + 11, cmd);
      view.setUint8(at + 10, r.int(64)); // CSO
      view.setUint8(at + 13, r.int(64)); // CSS
    } else if (kind < 8) { // context
      view.setUint8(at + 0, 14); // IPCSS
      view.setUint8(at + 1, 24); // IPCSO
      view.setUint16(at + 2, r.int(2) ? 0 : r.int(200), true);
      view.setUint8(at + 4, 34); // TUCSS
      view.setUint8(at + 5, r.pick([50, 40, 255])); // TUCSO
      const tse = this.chance(0.5) ? 0x0400_0000 : 0;
      view.setUint32(at + 8, (0x2000_0000 | 0x0300_0000 | tse | r.int(0x10000)) >>> 0, true);
      view.setUint8(at + 13, r.pick([54, 0, 255, r.int(256)])); // HDRLEN
      view.setUint16(at + 14, r.pick([0, 1, 536, 1460, r.int(0x10000)]), true); // MSS
    } else { // data
      const dcmd = 0x20 | 0x08 | (last ? 0x01 : 0) | (this.chance(0.3) ? 0x04 : 0);
      const tse = this.chance(0.3) ? 0x0400_0000 : 0;
      view.setUint32(
        at + 8,
        ((dcmd << 24) | tse | 0x0010_0000 |
          (this.chance(0.8) ? 60 + r.int(4000) : r.int(0x10_0000))) >>>
          0,
        true,
      );
      view.setUint8(at + 13, r.int(4)); // POPTS
    }
  }

  iommuOp(): void {
    const r = this.rand;
    const base = L.IOMMU_MMIO;
    switch (r.int(10)) {
      case 0:
      case 1:
      case 2: {
        const rid = this.chance(0.9) ? r.pick(RIDS) : r.int(0x10000);
        const d = this.#domains.length > 0 ? r.pick(this.#domains) : undefined;
        const range = (): bigint => {
          const s = this.chance(0.5);
          return (this.chance(0.2) ? 0x7fff_ffff_ffff_f000n : BigInt(this.dmaAddress()) & ~0xfffn) |
            (s ? 1n : 0n);
        };
        const options: Array<[bigint, bigint]> = [
          [8n << 60n, 0n],
          [(2n << 60n) | BigInt(rid), 0n],
          [(3n << 60n) | (BigInt(d?.id ?? r.int(0x10000)) << 32n), range() | 2n],
          [(4n << 60n) | BigInt(rid) | (BigInt(r.int(256)) << 24n), range()],
          [(5n << 60n) | BigInt(rid), 0n],
          [(6n << 60n) | BigInt(rid) | (BigInt(r.int(256)) << 24n), range()],
          [(7n << 60n) | BigInt(rid), 0n],
          [this.u64(), this.u64()],
          [BigInt(r.int(16)) << 60n, 0n],
        ];
        this.command(r.pick(options));
        if (this.chance(0.6)) this.completionWait();
        break;
      }
      case 3: { // remap: change an entry, invalidate, wait
        const d = this.#domains.length > 0 ? r.pick(this.#domains) : undefined;
        if (!d || !this.#iommuUp) break;
        const page = L.DATA + r.int((L.DATA_END - L.DATA) / PAGE) * PAGE;
        d.map(this.chance(0.5) ? page : IOVA_WINDOW + r.int(16) * PAGE, page, 1, r.int(4));
        this.command([(3n << 60n) | (BigInt(d.id) << 32n), 0x7fff_ffff_ffff_f003n]);
        this.completionWait();
        break;
      }
      case 4: { // damage a table
        const d = this.#domains.length > 0 ? r.pick(this.#domains) : undefined;
        if (!d) break;
        this.write(d.someTable() + 8 * r.int(512), 8, this.chance(0.5) ? this.u64() : 0n);
        break;
      }
      case 5: { // re-attach a device with a new DTE
        const rid = r.pick(RIDS);
        this.writeDte(rid);
        this.command([(2n << 60n) | BigInt(rid), 0n]);
        this.completionWait();
        break;
      }
      case 6: // status, heads and tails
        this.write(
          base + r.pick([0x2020, 0x2010, 0x2000, 0x2008]),
          8,
          this.chance(0.5) ? this.value32() : this.u64(),
        );
        break;
      case 7: { // control
        const control = this.chance(0.7)
          ? (1n | 4n | (1n << 12n) | (BigInt(r.pick([0, 0, 3, 4, 7, 2, 1])) << 5n) |
            BigInt(r.int(4) << 3))
          : this.u64();
        this.write(base + 0x18, this.chance(0.8) ? 8 : 4, control);
        break;
      }
      case 8: { // base registers, the exclusion range
        const reg = r.pick([0x00, 0x08, 0x10, 0x20, 0x28]);
        this.write(
          base + reg,
          8,
          this.chance(0.5)
            ? BigInt(this.ramAddress() & ~0xfff) | (BigInt(r.int(16)) << 56n) | BigInt(r.int(4))
            : this.u64(),
        );
        break;
      }
      default: {
        const offsets = [
          0,
          8,
          0x10,
          0x18,
          0x20,
          0x28,
          0x30,
          0x2000,
          0x2008,
          0x2010,
          0x2018,
          0x2020,
        ];
        const offset = this.chance(0.8) ? r.pick(offsets) + r.pick([0, 0, 4]) : r.int(0x4000 + 64);
        const size = 1 << r.int(4);
        if (this.chance(0.5)) this.read(base + offset, size);
        else this.write(base + offset, size, this.value(size));
      }
    }
  }

  pciOp(): void {
    const r = this.rand;
    const slot = r.pick([
      0,
      L.IOMMU_SLOT,
      L.IDE_SLOT,
      L.E1000A_SLOT,
      L.EDU_SLOT,
      L.E1000B_SLOT,
      6,
      31,
    ]);
    const fn = this.chance(0.9) ? 0 : r.int(8);
    const reg = this.chance(0.6)
      ? r.pick([0x04, 0x10, 0x14, 0x20, 0x3c, 0x40, 0x44, 0x54])
      : r.int(256);
    const size = r.pick([1, 2, 4]);
    const aligned = reg & ~(size - 1) & 0xff;
    if (this.chance(0.5)) {
      this.out(0xcf8, 4, (0x8000_0000 | (slot << 11) | (fn << 8) | (aligned & 0xfc)) >>> 0);
      this.out(0xcfc + (aligned & 3), size, reg === 0x04 ? r.int(0x800) : this.value32());
    } else {
      this.configRead(slot, fn, aligned, size);
    }
    if (this.chance(0.1)) this.out(0xcf8, r.pick([1, 2, 4]), this.value32()); // a stray index write
  }

  memoryOp(): void {
    const r = this.rand;
    const address = this.ramAddress();
    switch (r.int(4)) {
      case 0: {
        const data = new Uint8Array(1 + r.int(64));
        for (let i = 0; i < data.length; i++) data[i] = r.int(256);
        this.bytes(address, data);
        break;
      }
      case 1:
        this.emit(
          `memset ${hex(address)} ${hex(1 + r.int(PAGE))} ${hex(r.pick([0, 0xff, r.int(256)]))}`,
        );
        break;
      case 2:
        this.read(address & ~7, 8);
        break;
      default: {
        const size = 1 << r.int(4);
        this.write(address & ~(size - 1), size, this.value(size));
      }
    }
  }

  blindOp(): void {
    const r = this.rand;
    if (this.chance(0.5)) {
      const port = r.pick([
        0xcf8,
        0xcf9,
        0xcfc,
        0xcfd,
        0xcfe,
        0xcff,
        0x1f0 + r.int(8),
        0x170 + r.int(8),
        0x3f6,
        0x376,
        L.IDE_BM + r.int(16),
        L.E1000A_IO + r.int(8),
        L.E1000B_IO + r.int(8),
        r.int(0x10000),
      ]);
      const size = r.pick(PORT_SIZES);
      if (this.chance(0.5)) {
        this.emit(`out${size} ${hex(port)} ${hex(this.value(SIZE_BYTES[size]!))}`);
      } else this.emit(`in${size} ${hex(port)}`);
    } else {
      const address = r.pick([
        L.EDU_BAR0 + r.int(0x10_0000),
        L.E1000A_BAR0 + r.int(0x20000),
        L.E1000B_BAR0 + r.int(0x20000),
        L.IOMMU_MMIO + r.int(0x4000),
        0xfee0_0000 + r.int(0x1000),
        0xfe00_0000 + r.int(0x100_0000),
        0xb000_0000 + r.int(0x1000),
      ]);
      const size = r.pick(SIZES);
      const bytes = SIZE_BYTES[size]!;
      const at = this.chance(0.8) ? address - (address % bytes) : address;
      if (this.chance(0.5)) this.emit(`write${size} ${hex(at)} ${hex(this.value(bytes))}`);
      else this.emit(`read${size} ${hex(at)}`);
    }
  }

  garbage(): void {
    const r = this.rand;
    const words = [
      "outl",
      "readq",
      "write",
      "memset",
      "b64write",
      "clock_set",
      "inb",
      "irq_intercept_out",
      "0x",
      "-1",
      "0xffffffffffffffffff",
      "18446744073709551616",
      "",
      "zzz",
      "0x1000",
      "4",
    ];
    const line = Array.from({ length: 1 + r.int(4) }, () => r.pick(words)).join(" ");
    if (line.trim() !== "") this.emit(line);
  }

  /** Probes at the end: every device must still answer. */
  tearDown(): void {
    this.read(L.EDU_BAR0, 4);
    this.read(L.E1000A_BAR0 + 0x0008, 4);
    this.read(L.E1000B_BAR0 + 0x0008, 4);
    this.in(0x3f6, 1);
    this.in(0x376, 1);
    this.read(L.IOMMU_MMIO + 0x2020, 8);
    this.configRead(L.EDU_SLOT, 0, 0, 4);
  }

  patterns(): InjectionPattern[] {
    const r = this.rand;
    const count = 1 + r.int(8);
    const out: InjectionPattern[] = [];
    for (let i = 0; i < count; i++) {
      const kind = r.int(4);
      let data: Uint8Array;
      if (kind === 0) {
        // An 8-byte little-endian RAM address with some low flag bits: chains
        // of descriptors, table entries and PRDs that point into RAM.
        data = new Uint8Array(8);
        new DataView(data.buffer).setBigUint64(
          0,
          BigInt(this.ramAddress() & ~0xfff) | BigInt(r.int(0x1000)) |
            (this.chance(0.5) ? BigInt(r.int(8)) << 61n : 0n),
          true,
        );
      } else if (kind === 1) {
        // A PRD-like entry: address, byte count, maybe EOT.
        data = new Uint8Array(8);
        const v = new DataView(data.buffer);
        v.setUint32(0, this.ramAddress() & ~1, true);
        v.setUint32(
          4,
          (r.pick([512, 4096, 0, 0x10000]) | (this.chance(0.3) ? 0x8000_0000 : 0)) >>> 0,
          true,
        );
      } else {
        data = new Uint8Array(1 + r.int(32));
        for (let j = 0; j < data.length; j++) {
          data[j] = this.chance(0.3) ? r.pick([0, 0xff]) : r.int(256);
        }
      }
      out.push({
        data,
        index: r.int(data.length),
        stride: this.chance(0.5) ? r.pick([1, 0x10, 0x20]) : r.int(256),
      });
    }
    return out;
  }
}

/**
 * Generates one fuzz run from a seed: the same seed always gives the same
 * program.
 *
 * @param seed Any 32-bit integer.
 * @param options How many operations.
 * @returns The requests and the DMA patterns.
 *
 * @example
 * ```ts
 * import { generateProgram } from "./fuzz_ops.ts";
 * import { deepEqual, ok } from "node:assert/strict";
 * const a = generateProgram(7, { ops: 20 });
 * deepEqual(a.lines, generateProgram(7, { ops: 20 }).lines);
 * ok(a.lines.length > 20 && a.patterns.length > 0);
 * ```
 */
export function generateProgram(seed: number, options: GenerateOptions = {}): FuzzProgram {
  const g = new Generator(seed);
  const patterns = g.patterns();
  if (g.chance(0.95)) g.setUp();
  const ops = options.ops ?? 120;
  for (let i = 0; i < ops; i++) g.op();
  g.tearDown();
  return { lines: g.lines, patterns };
}
