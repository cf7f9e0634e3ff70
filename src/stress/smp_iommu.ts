/**
 * A guest IOMMU driver for several vCPUs at once, as an SMP kernel has one:
 * the device table, command ring and event log are shared, their software
 * state (the ring's tail) lives in guest RAM, and a spinlock in guest RAM
 * serialises the command ring and the event log. Each agent waits for its
 * own COMPLETION_WAIT semaphore outside the lock. The agents wait on each
 * other only for that lock: guest code waiting on guest code, which no
 * emulator thread ever does.
 *
 * Also here: I/O page tables built by one agent for its own devices.
 *
 * @module
 */

import type { PageAllocator } from "../guest/amd_vi_driver.ts";
import type { Guest } from "../guest/guest.ts";
import {
  AMD_VI_MMIO_BASE,
  AmdViControl,
  AmdViReg,
  AmdViStatus,
} from "../iommu/amd_vi_registers.ts";
import { commands } from "../iommu/commands.ts";
import { encodeDte } from "../iommu/device_table.ts";
import { decodeEvent, type IommuEvent } from "../iommu/events.ts";
import { LEVEL_SHIFT } from "../iommu/page_walk.ts";
import {
  AgentCtl,
  agentWord,
  CMD_ENTRIES,
  CONTROL_MAGIC,
  controlWords,
  Ctl,
  EVENT_ENTRIES,
  LATENCY_BUCKETS,
  PAGE_2M,
  PAGE_4K,
  STRESS_RAM,
} from "./stress_layout.ts";

/** Access a mapping allows. */
export type Perms = "r" | "w" | "rw";

/** Options for {@linkcode SmpIommu.setup}. */
export interface SmpIommuSetupOptions {
  /** Control.InvTimeOut code (4: 1 s, 5: 10 s). */
  readonly invTimeout: number;
  /** Device-table entries (default 256). */
  readonly entries?: number;
}

/** DTE fields a stress agent sets. */
export interface StressDte {
  /** TV (false: every DMA faults with PR = 0). */
  readonly translate: boolean;
  /** Page-table root. */
  readonly root: number;
  /** Paging levels. */
  readonly levels: number;
  /** DomainID. */
  readonly domainId: number;
  /** IR and IW (false: every DMA faults with PE = 1). */
  readonly allow: boolean;
  /** SA. */
  readonly suppressAll?: boolean;
  /** SE. */
  readonly suppressRepeated?: boolean;
}

/** How long a completion may take before the agent reports a hang (ms). */
const COMPLETION_LIMIT_MS = 20_000;

function permBits(perms: Perms): bigint {
  return (perms.includes("r") ? 1n << 61n : 0n) | (perms.includes("w") ? 1n << 62n : 0n);
}

/**
 * The shared IOMMU driver of the stress agents.
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { commands } from "../iommu/commands.ts";
 * import { SmpIommu } from "./smp_iommu.ts";
 * function setupAgent(guest: Guest): void {
 *   SmpIommu.setup(guest, { invTimeout: 5 }); // once, by the setup agent
 * }
 * function agent(guest: Guest, n: number): void {
 *   const iommu = new SmpIommu(guest, n);
 *   iommu.flush([commands.invalidateAll()]);
 * }
 * ```
 */
export class SmpIommu {
  #guest: Guest;
  #words: Int32Array<SharedArrayBuffer>;
  #agent: number;
  #mmio: number;
  #seq = 0n;
  #sem: number;
  #holding = false;

  /**
   * Attaches agent `agent` to an IOMMU that {@linkcode SmpIommu.setup} set up.
   *
   * @param guest The CPU.
   * @param agent Agent number (0-based).
   */
  constructor(guest: Guest, agent: number) {
    this.#guest = guest;
    this.#words = controlWords(guest.memory.buffer);
    this.#agent = agent;
    this.#mmio = AMD_VI_MMIO_BASE;
    this.#sem = STRESS_RAM.control + agentWord(agent, AgentCtl.SEM) * 4;
    if (Atomics.load(this.#words, Ctl.MAGIC) !== CONTROL_MAGIC) {
      throw new Error("The stress IOMMU was not set up");
    }
    this.#seq = guest.memory.atomicLoad64(this.#sem);
  }

  /**
   * Initialises the IOMMU in Linux's order, with the shared state in the
   * control block: every DTE blocks DMA (V = 1, TV = 0), a 512-entry command
   * ring, a 256-entry event log, then INVALIDATE_IOMMU_ALL and a completion.
   *
   * @param guest The CPU.
   * @param options InvTimeOut and the device table size.
   */
  static setup(guest: Guest, options: SmpIommuSetupOptions): void {
    const words = controlWords(guest.memory.buffer);
    const m = guest.memory;
    const mmio = AMD_VI_MMIO_BASE;
    const reg = (offset: number) => guest.read64(mmio + offset);
    const setReg = (offset: number, value: bigint) => guest.write64(mmio + offset, value);
    const control = (set: bigint, clear: bigint) =>
      setReg(AmdViReg.CONTROL, (reg(AmdViReg.CONTROL) & ~clear) | set);
    const c = AmdViControl;
    for (const bit of [c.CMD_BUF_EN, c.EVENT_INT_EN, c.EVENT_LOG_EN, c.IOMMU_EN]) control(0n, bit);
    control(c.COHERENT | (BigInt(options.invTimeout) << c.INV_TIMEOUT_SHIFT), 7n << 5n);
    const entries = options.entries ?? 256;
    const tablePages = Math.ceil((entries * 32) / PAGE_4K);
    const devtab = STRESS_RAM.iommu;
    const cmdBase = devtab + tablePages * PAGE_4K;
    const evtBase = cmdBase + CMD_ENTRIES * 16;
    m.fill(STRESS_RAM.iommu, STRESS_RAM.iommuSize, 0);
    m.fill(STRESS_RAM.control, STRESS_RAM.controlSize, 0);
    const [q0, q1] = encodeDte({ valid: true });
    for (let i = 0; i < entries; i++) {
      m.atomicStore64(devtab + i * 32 + 8, q1);
      m.atomicStore64(devtab + i * 32, q0);
    }
    setReg(AmdViReg.DEV_TAB_BASE, BigInt(devtab) | BigInt(tablePages - 1));
    setReg(AmdViReg.CMD_BUF_BASE, BigInt(cmdBase) | (BigInt(Math.log2(CMD_ENTRIES)) << 56n));
    guest.write32(mmio + AmdViReg.CMD_HEAD, 0);
    guest.write32(mmio + AmdViReg.CMD_TAIL, 0);
    control(c.CMD_BUF_EN, 0n);
    setReg(AmdViReg.EVT_LOG_BASE, BigInt(evtBase) | (BigInt(Math.log2(EVENT_ENTRIES)) << 56n));
    guest.write32(mmio + AmdViReg.EVT_HEAD, 0);
    guest.write32(mmio + AmdViReg.EVT_TAIL, 0);
    control(c.EVENT_LOG_EN, 0n);
    control(c.IOMMU_EN, 0n);
    Atomics.store(words, Ctl.DEVTAB, devtab);
    Atomics.store(words, Ctl.CMD_BASE, cmdBase);
    Atomics.store(words, Ctl.EVT_BASE, evtBase);
    Atomics.store(words, Ctl.CMD_TAIL, 0);
    Atomics.store(words, Ctl.CMD_HEAD, 0);
    Atomics.store(words, Ctl.MAGIC, CONTROL_MAGIC);
    // The setup agent flushes with the first agent's semaphore, then resets it.
    const iommu = new SmpIommu(guest, 0);
    iommu.flush([commands.invalidateAll()]);
    m.atomicStore64(STRESS_RAM.control + agentWord(0, AgentCtl.SEM) * 4, 0n);
    for (let k = 0; k < LATENCY_BUCKETS; k++) {
      Atomics.store(words, agentWord(0, AgentCtl.LATENCY + k), 0);
    }
  }

  /** Takes the IOMMU lock (spins briefly, then sleeps on the lock word). */
  lock(): void {
    const w = this.#words;
    const me = this.#agent + 1;
    let contended = false;
    for (let spins = 0;; spins++) {
      const held = Atomics.compareExchange(w, Ctl.LOCK, 0, me);
      if (held === 0) break;
      if (held === me) throw new Error("The stress IOMMU lock is not re-entrant");
      if (spins > 64) {
        if (!contended) Atomics.add(w, Ctl.LOCK_CONTENDED, 1);
        contended = true;
        Atomics.wait(w, Ctl.LOCK, held, 1);
      }
    }
    this.#holding = true;
  }

  /** Releases the IOMMU lock. */
  unlock(): void {
    this.#holding = false;
    Atomics.store(this.#words, Ctl.LOCK, 0);
    Atomics.notify(this.#words, Ctl.LOCK, 1);
  }

  /**
   * Runs `work` holding the lock.
   *
   * @param work What to do.
   * @returns What it returned.
   */
  withLock<T>(work: () => T): T {
    this.lock();
    try {
      return work();
    } finally {
      this.unlock();
    }
  }

  #check(): void {
    if (!this.#holding) throw new Error("The stress IOMMU lock is not held");
  }

  /**
   * Queues commands and moves the tail (the lock must be held). The tail
   * register write is read back before returning, so it reaches the IOMMU
   * before another agent's later write of the tail.
   *
   * @param list Commands.
   */
  submitLocked(list: ReadonlyArray<[bigint, bigint]>): void {
    this.#check();
    const g = this.#guest;
    const w = this.#words;
    const size = CMD_ENTRIES * 16;
    const base = Atomics.load(w, Ctl.CMD_BASE);
    let tail = Atomics.load(w, Ctl.CMD_TAIL);
    let head = Atomics.load(w, Ctl.CMD_HEAD);
    for (const [q0, q1] of list) {
      const next = (tail + 16) % size;
      if (next === head) {
        const deadline = performance.now() + COMPLETION_LIMIT_MS;
        while (next === (head = g.read32(this.#mmio + AmdViReg.CMD_HEAD) & 0x7fff0)) {
          if (performance.now() > deadline) {
            throw new Error("Timed out waiting for command-buffer space");
          }
          g.sleep(0);
        }
        Atomics.store(w, Ctl.CMD_HEAD, head);
      }
      g.memory.write64(base + tail, q0);
      g.memory.write64(base + tail + 8, q1);
      tail = next;
    }
    Atomics.store(w, Ctl.CMD_TAIL, tail);
    g.write32(this.#mmio + AmdViReg.CMD_TAIL, tail);
    g.read32(this.#mmio + AmdViReg.CMD_TAIL);
  }

  /**
   * Queues a COMPLETION_WAIT on this agent's semaphore (the lock must be
   * held) and returns its sequence number; {@linkcode SmpIommu.waitFor} waits.
   *
   * @param options `interrupt` also sets ComWaitInt.
   * @returns The sequence number.
   */
  completionLocked(options: { interrupt?: boolean } = {}): bigint {
    const seq = ++this.#seq;
    this.submitLocked([
      commands.completionWait({ storeAddress: this.#sem, storeData: seq, ...options }),
    ]);
    return seq;
  }

  /**
   * Waits until this agent's semaphore reaches `seq` and records the wait in
   * the agent's latency histogram.
   *
   * @param seq From {@linkcode SmpIommu.completionLocked}.
   * @param since When the commands were queued (`performance.now()`).
   * @returns The latency in ms.
   */
  waitFor(seq: bigint, since: number): number {
    const m = this.#guest.memory;
    const deadline = performance.now() + COMPLETION_LIMIT_MS;
    for (;;) {
      const now = m.atomicLoad64(this.#sem);
      if (BigInt.asIntN(64, now - seq) >= 0n) break;
      this.#guest.waitMemory(this.#sem, now, { timeoutMs: 1 });
      if (performance.now() > deadline) {
        throw new Error(
          `COMPLETION_WAIT ${seq} did not complete in ${COMPLETION_LIMIT_MS} ms (status 0x${
            this.status().toString(16)
          })`,
        );
      }
    }
    const ms = performance.now() - since;
    const us = Math.max(1, ms * 1000);
    const bucket = Math.min(LATENCY_BUCKETS - 1, Math.floor(Math.log2(us)));
    Atomics.add(this.#words, agentWord(this.#agent, AgentCtl.LATENCY + bucket), 1);
    return ms;
  }

  /**
   * Queues `list` and a COMPLETION_WAIT under the lock, then waits outside it.
   *
   * @param list Commands.
   * @param options `interrupt` also sets ComWaitInt.
   * @returns The latency in ms.
   */
  flush(list: ReadonlyArray<[bigint, bigint]>, options: { interrupt?: boolean } = {}): number {
    const since = performance.now();
    const seq = this.withLock(() => {
      this.submitLocked(list);
      return this.completionLocked(options);
    });
    return this.waitFor(seq, since);
  }

  /**
   * Writes a device's DTE (word 1 first, so V changes last; as Linux). Does
   * not invalidate.
   *
   * @param rid Requester id.
   * @param dte The fields.
   */
  writeDte(rid: number, dte: StressDte): void {
    const [q0, q1] = encodeDte({
      valid: true,
      translationValid: dte.translate,
      mode: dte.levels,
      root: dte.root,
      readable: dte.allow,
      writable: dte.allow,
      domainId: dte.domainId,
      suppressAll: dte.suppressAll ?? false,
      suppressRepeated: dte.suppressRepeated ?? false,
    });
    const at = Atomics.load(this.#words, Ctl.DEVTAB) + rid * 32;
    this.#guest.memory.atomicStore64(at + 8, q1);
    this.#guest.memory.atomicStore64(at, q0);
  }

  /** The Status register. */
  status(): bigint {
    return this.#guest.read64(this.#mmio + AmdViReg.STATUS);
  }

  /**
   * Clears write-1-to-clear Status bits.
   *
   * @param bits The bits.
   */
  clearStatus(bits: bigint): void {
    this.#guest.write32(this.#mmio + AmdViReg.STATUS, Number(bits & 0xffn));
  }

  /**
   * Consumes every new event (the lock must be held) and counts them in the
   * control block: page faults and invalidation timeouts by requester id,
   * everything else as other events.
   *
   * @returns The events, oldest first.
   */
  drainEventsLocked(): IommuEvent[] {
    this.#check();
    const g = this.#guest;
    const w = this.#words;
    const base = Atomics.load(w, Ctl.EVT_BASE);
    const size = EVENT_ENTRIES * 16;
    let head = g.read32(this.#mmio + AmdViReg.EVT_HEAD) & 0x7fff0;
    const tail = g.read32(this.#mmio + AmdViReg.EVT_TAIL) & 0x7fff0;
    const events: IommuEvent[] = [];
    while (head !== tail) {
      const at = base + head;
      const e = decodeEvent(g.memory.read64(at), g.memory.read64(at + 8));
      events.push(e);
      const rid = e.deviceId & 0xff;
      if (e.name === "IO_PAGE_FAULT") Atomics.add(w, Ctl.PAGE_FAULTS + rid, 1);
      else if (e.name === "IOTLB_INV_TIMEOUT") Atomics.add(w, Ctl.TIMEOUTS + rid, 1);
      else Atomics.add(w, Ctl.OTHER_EVENTS, 1);
      head = (head + 16) % size;
    }
    if (events.length > 0) {
      g.write32(this.#mmio + AmdViReg.EVT_HEAD, head);
      this.clearStatus(AmdViStatus.EVENT_LOG_INT);
    }
    return events;
  }

  /**
   * Whether the event log overflowed, and if so restarts it (Linux's order:
   * clear EventLogEn, clear EventOverflow, set EventLogEn). The lock must be
   * held.
   *
   * @returns Whether it had overflowed.
   */
  recoverOverflowLocked(): boolean {
    this.#check();
    if ((this.status() & AmdViStatus.EVENT_OVERFLOW) === 0n) return false;
    Atomics.add(this.#words, Ctl.OVERFLOWS, 1);
    const g = this.#guest;
    const reg = AmdViReg.CONTROL;
    const c = AmdViControl;
    g.write64(this.#mmio + reg, g.read64(this.#mmio + reg) & ~c.EVENT_LOG_EN);
    this.drainEventsLocked();
    this.clearStatus(AmdViStatus.EVENT_OVERFLOW | AmdViStatus.EVENT_LOG_INT);
    g.write64(this.#mmio + reg, g.read64(this.#mmio + reg) | c.EVENT_LOG_EN);
    // Register writes are posted, and a device's next fault reaches the IOMMU
    // by another path: read back so the log runs before the caller goes on.
    this.status();
    return true;
  }
}

/**
 * I/O page tables: 4-level trees whose tables come from an agent's table
 * pages; 4 KiB and 2 MiB leaves, written with 64-bit atomic stores.
 *
 * @example
 * ```ts
 * import { IoPageTables } from "./smp_iommu.ts";
 * import { PageAllocator } from "../guest/amd_vi_driver.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const m = new GuestMemory({ size: 1 << 22 });
 * const tables = new IoPageTables(m, new PageAllocator(m, { base: 0x10_0000, size: 0x10_0000 }));
 * const root = tables.createRoot();
 * equal(tables.set(root, { iova: 0x4000_0000, phys: 0x30_0000, perms: "rw" }), undefined);
 * equal(tables.set(root, { iova: 0x4000_0000, phys: 0x30_1000, perms: "r" }), 0x30_0000);
 * ```
 */
export class IoPageTables {
  /** Paging levels of every tree. */
  static readonly LEVELS = 4;
  #memory: Guest["memory"];
  #pages: PageAllocator;

  /**
   * Creates the builder.
   *
   * @param memory Guest RAM.
   * @param pages Where tables come from.
   */
  constructor(memory: Guest["memory"], pages: PageAllocator) {
    this.#memory = memory;
    this.#pages = pages;
  }

  /**
   * Allocates an empty root table.
   *
   * @returns Its physical address.
   */
  createRoot(): number {
    return this.#pages.allocate();
  }

  #slot(root: number, iova: number, level: number): number {
    const m = this.#memory;
    let table = root;
    for (let l = IoPageTables.LEVELS; l > level; l--) {
      const at = table + (Math.floor(iova / 2 ** LEVEL_SHIFT[l]!) % 512) * 8;
      const e = m.atomicLoad64(at);
      const next = (e >> 9n) & 7n;
      if ((e & 1n) === 0n) {
        const page = this.#pages.allocate();
        m.atomicStore64(at, BigInt(page) | (BigInt(l - 1) << 9n) | (3n << 61n) | 1n);
        table = page;
      } else if (next === 0n || next === 7n) {
        throw new Error(`IOVA 0x${iova.toString(16)} is inside a large page`);
      } else {
        table = Number(e & 0x000f_ffff_ffff_f000n);
      }
    }
    return table + (Math.floor(iova / 2 ** LEVEL_SHIFT[level]!) % 512) * 8;
  }

  /**
   * Maps, remaps (one atomic store of the leaf) or unmaps (`phys`
   * undefined) one page. Does not invalidate.
   *
   * @param root The tree's root.
   * @param leaf IOVA, physical page (undefined: unmap), permissions and page size.
   * @returns The physical page mapped before, if any.
   */
  set(
    root: number,
    leaf: { iova: number; phys: number | undefined; perms?: Perms; pageSize?: number },
  ): number | undefined {
    const size = leaf.pageSize ?? PAGE_4K;
    if (size !== PAGE_4K && size !== PAGE_2M) throw new RangeError(`Unsupported page size ${size}`);
    if (leaf.iova % size !== 0 || (leaf.phys ?? 0) % size !== 0) {
      throw new RangeError(`Page 0x${leaf.iova.toString(16)} is not aligned to ${size}`);
    }
    const at = this.#slot(root, leaf.iova, size === PAGE_4K ? 1 : 2);
    const old = this.#memory.atomicLoad64(at);
    const value = leaf.phys === undefined
      ? 0n
      : BigInt(leaf.phys) | permBits(leaf.perms ?? "rw") | (1n << 60n) | 1n;
    this.#memory.atomicStore64(at, value);
    return (old & 1n) ? Number(old & 0x000f_ffff_ffff_f000n) : undefined;
  }
}
