/**
 * The stress runner's guest program, run in every guest agent (vCPU
 * worker). With `role: "setup"` it assigns PCI resources and sets up the
 * shared IOMMU; with `role: "agent"` it drives its own devices through its
 * own I/O page tables with a seeded stream of operations (see `ops.ts`) and
 * checks, guest-side, what a guest can see of the invariants: data moved by
 * DMA arrives whole and before the completion status, poisoned pages stay
 * poisoned, denied accesses fault, are reported by the device and logged by
 * the IOMMU, the event log overflows as the specification says, and flushed
 * disk sectors are recorded for the runner to find on the image.
 *
 * @module
 */

import { PageAllocator } from "../guest/amd_vi_driver.ts";
import { E1000Driver } from "../guest/e1000_driver.ts";
import type { Guest } from "../guest/guest.ts";
import { IdeDriver } from "../guest/ide_driver.ts";
import { assignPciResources, enumeratePci } from "../guest/pci.ts";
import { E1000Rctl, E1000Reg } from "../devices/e1000_regs.ts";
import { AmdViStatus } from "../iommu/amd_vi_registers.ts";
import { commands } from "../iommu/commands.ts";
import type { IommuEvent } from "../iommu/events.ts";
import type {
  StressAgentPlan,
  StressAgentResult,
  StressAgentViolation,
  StressDevicePlan,
  StressDurableSectors,
  StressFaultRequest,
  StressSetupPlan,
  StressSetupResult,
  StressViolationKind,
} from "./agent_plan.ts";
import { FAULT_REQUEST_PREFIX } from "./agent_plan.ts";
import {
  describeOp,
  digestOps,
  type FlushKind,
  type InvalidateKind,
  OP_KINDS,
  OpGenerator,
  type StressOp,
} from "./ops.ts";
import { PageEventWriter } from "./page_events.ts";
import { IoPageTables, type Perms, SmpIommu } from "./smp_iommu.ts";
import {
  checksum,
  eduAlive,
  eduCopy,
  eduLiveness,
  type EduOutcome,
  eduStart,
  eduStop,
  eduWait,
  fillPattern,
  firstDifference,
  firstNot,
  POISON,
} from "./stress_devices.ts";
import {
  AgentCtl,
  agentSlice,
  agentWord,
  CHECK_NAMES,
  type CheckName,
  controlWords,
  Ctl,
  DATA_SLOTS,
  EVENT_ENTRIES,
  IOVA,
  MAX_AGENT_DEVICES,
  PAGE_2M,
  PAGE_4K,
} from "./stress_layout.ts";

const HISTORY = 128;
const VIOLATION_HISTORY = 24;
const QUARANTINE_4K = 8;
const QUARANTINE_2M = 2;
const NIC_MEMORY = 0x2_0000;
const NIC_DESCRIPTORS = 16;
const SECTOR = 512;
/** edu fault codes (the device's fault code register). */
const FAULT = { noTranslation: 2, permission: 3, outsideRam: 4, mmioTarget: 5 } as const;

interface DteState {
  translate: boolean;
  allow: boolean;
  domain: 0 | 1;
  suppressAll: boolean;
  suppressRepeated: boolean;
}

interface Disk {
  readonly ide: IdeDriver;
  readonly sectors: Map<number, { sum: number; flushed: boolean }>;
}

interface Device {
  readonly plan: StressDevicePlan;
  readonly index: number;
  alive: boolean;
  readonly root: number;
  readonly dte: DteState;
  /** Physical pages of the data slots. */
  readonly data: number[];
  /** Pages mapped for drivers (PRD tables, NIC rings), never remapped. */
  readonly fixed: number[];
  nic?: E1000Driver;
  disks?: Disk[];
}

class Stop extends Error {}

/**
 * One stress agent.
 */
class StressAgent {
  readonly #g: Guest;
  readonly #plan: StressAgentPlan;
  readonly #words: Int32Array<SharedArrayBuffer>;
  readonly #iommu: SmpIommu;
  readonly #events: PageEventWriter;
  readonly #tables: IoPageTables;
  readonly #tablePages: PageAllocator;
  readonly #pool: number[] = [];
  readonly #hugePool: number[] = [];
  readonly #quarantine: number[] = [];
  readonly #hugeQuarantine: number[] = [];
  readonly #devices: Device[] = [];
  readonly #history: string[] = [];
  readonly #violations: StressAgentViolation[] = [];
  readonly #dead: Array<{ device: string; op: number }> = [];
  readonly #faults: Array<{ device: string; kind: string; op: number }> = [];
  #op = 0;
  #skipped = 0;
  #aborted = 0;
  #digest = digestOps([]);

  constructor(guest: Guest, plan: StressAgentPlan) {
    this.#g = guest;
    this.#plan = plan;
    this.#words = controlWords(guest.memory.buffer);
    this.#iommu = new SmpIommu(guest, plan.agent);
    this.#events = new PageEventWriter(guest, plan.agent);
    const slice = agentSlice(plan.agent);
    this.#tablePages = new PageAllocator(guest.memory, slice.tables);
    this.#tables = new IoPageTables(guest.memory, this.#tablePages);
    for (let p = slice.pages.base; p < slice.pages.base + slice.pages.size; p += PAGE_4K) {
      this.#pool.push(p);
    }
    const huge = slice.hugePages;
    for (let p = huge.base; p < huge.base + huge.size; p += PAGE_2M) this.#hugePool.push(p);
  }

  // ---- Bookkeeping ----

  #log(line: string): void {
    this.#history.push(line);
    if (this.#history.length > HISTORY) this.#history.shift();
  }

  /** The last lines of the history, from the start of an operation. */
  #recentOps(): string[] {
    const h = this.#history;
    let start = Math.max(0, h.length - VIOLATION_HISTORY);
    while (start > 0 && start > h.length - 2 * VIOLATION_HISTORY && !h[start]!.startsWith("#")) {
      start--;
    }
    return h.slice(start);
  }

  #count(check: CheckName, n = 1): void {
    Atomics.add(
      this.#words,
      agentWord(this.#plan.agent, AgentCtl.CHECKS + CHECK_NAMES.indexOf(check)),
      n,
    );
  }

  #violate(
    kind: StressViolationKind,
    message: string,
    where: { device?: Device; page?: number } = {},
  ): void {
    this.#log(`  VIOLATION ${kind}: ${message}`);
    this.#violations.push({
      kind,
      message,
      op: this.#op,
      ...(where.device ? { device: where.device.plan.id } : {}),
      ...(where.page !== undefined ? { page: where.page } : {}),
      history: this.#recentOps(),
    });
    Atomics.add(this.#words, Ctl.VIOLATIONS, 1);
    if (this.#plan.stopOnViolation) Atomics.store(this.#words, Ctl.STOP, 1);
  }

  #hex(n: number): string {
    return `0x${n.toString(16)}`;
  }

  // ---- Pages ----

  #take(huge = false, quiet = false): number {
    const page = (huge ? this.#hugePool : this.#pool).shift();
    if (page === undefined) throw new Error(`Agent ${this.#plan.agent} ran out of pages`);
    const size = huge ? PAGE_2M : PAGE_4K;
    const epoch = this.#events.publish("reuse", page, size);
    if (!quiet) this.#log(`  reuse ${this.#hex(page)}${huge ? " (2M)" : ""} @${epoch}`);
    return page;
  }

  /** The page's translation was removed and the removal completed: poison and quarantine it. */
  #retire(page: number, huge = false): void {
    const size = huge ? PAGE_2M : PAGE_4K;
    const epoch = this.#events.publish("invalid", page, size);
    this.#log(`  invalid ${this.#hex(page)}${huge ? " (2M)" : ""} @${epoch}`);
    this.#g.memory.fill(page, size, POISON);
    const q = huge ? this.#hugeQuarantine : this.#quarantine;
    q.push(page);
    if (q.length > (huge ? QUARANTINE_2M : QUARANTINE_4K)) {
      const old = q.shift()!;
      this.#checkPoisoned(old, size, "on leaving quarantine");
      (huge ? this.#hugePool : this.#pool).push(old);
    }
  }

  #checkPoisoned(page: number, size: number, when: string): boolean {
    this.#count("poison");
    const at = firstNot(this.#g.memory.view(page, size), POISON);
    if (at < 0) return true;
    this.#violate(
      "use-after-invalidate",
      `invalidated page ${
        this.#hex(page)
      } was written after its invalidation completed (byte ${at} = ${
        this.#hex(this.#g.memory.read8(page + at))
      }, checked ${when})`,
      { page },
    );
    return false;
  }

  // ---- IOMMU ----

  #domainId(d: Device): number {
    return d.plan.domains[d.dte.domain];
  }

  #writeDte(d: Device): void {
    this.#iommu.writeDte(d.plan.rid, {
      translate: d.dte.translate,
      allow: d.dte.allow,
      root: d.root,
      levels: IoPageTables.LEVELS,
      domainId: this.#domainId(d),
      suppressAll: d.dte.suppressAll,
      suppressRepeated: d.dte.suppressRepeated,
    });
  }

  #map(d: Device, iova: number, phys: number | undefined, perms: Perms = "rw", huge = false) {
    return this.#tables.set(d.root, {
      iova,
      phys,
      perms,
      pageSize: huge ? PAGE_2M : PAGE_4K,
    });
  }

  /** The commands of an invalidation of `[iova, iova + size)` in `d`'s domain. */
  #invalidation(
    d: Device,
    kind: FlushKind,
    iova: number,
    size: number,
  ): Array<[bigint, bigint]> {
    const domainId = this.#domainId(d);
    const rid = d.plan.rid;
    switch (kind) {
      case "page":
        return [commands.invalidatePages({ domainId, start: iova, size })];
      case "range": {
        // An aligned power-of-two range around the change, up to 1 GiB.
        let span = size * 2 ** (1 + ((iova / PAGE_4K + this.#op) % 6));
        span = Math.min(span, 2 ** 30);
        return [commands.invalidatePages({
          domainId,
          start: Math.floor(iova / span) * span,
          size: span,
        })];
      }
      case "domain":
        return [commands.invalidatePages({ domainId })];
      case "devtab-domain":
        return [commands.invalidateDevtabEntry(rid), commands.invalidatePages({ domainId })];
      case "all":
        return [commands.invalidateAll()];
      case "page-iotlb":
        return [
          commands.invalidatePages({ domainId, start: iova, size }),
          commands.invalidateIotlbPages({ deviceId: rid, start: iova, size }),
        ];
      case "devtab":
        return [commands.invalidateDevtabEntry(rid)];
      case "iotlb":
        return [commands.invalidateIotlbPages({ deviceId: rid })];
      case "prefetch":
        return [commands.prefetchPages({ deviceId: rid, address: iova, count: 4 })];
      case "cw":
      case "cw-interrupt":
        return [];
    }
  }

  #invalidate(d: Device, kind: InvalidateKind, iova: number, size: number): void {
    const ms = this.#iommu.flush(this.#invalidation(d, kind, iova, size));
    this.#log(`  flush ${kind} ${this.#hex(iova)}+${this.#hex(size)} (${ms.toFixed(2)} ms)`);
  }

  // ---- Setup ----

  init(): void {
    const slice = agentSlice(this.#plan.agent);
    let driverMemory = slice.drivers.base;
    this.#plan.devices.forEach((plan, index) => {
      const d: Device = {
        plan,
        index,
        alive: true,
        root: this.#tables.createRoot(),
        dte: {
          translate: true,
          allow: true,
          domain: 0,
          suppressAll: false,
          suppressRepeated: false,
        },
        data: [],
        fixed: [],
      };
      this.#devices.push(d);
      for (let s = 0; s < DATA_SLOTS[plan.kind]; s++) {
        const page = this.#take(false, true);
        this.#g.memory.fill(page, PAGE_4K, 0);
        d.data.push(page);
        this.#map(d, IOVA.data + s * PAGE_4K, page);
      }
      if (plan.kind === "ide") {
        d.disks = [0, 1].map((channel) => {
          const prd = this.#tablePages.allocate(2);
          d.fixed.push(prd);
          this.#map(d, prd, prd, "r"); // the driver gives the PRD table's physical address
          return {
            ide: new IdeDriver(this.#g, {
              bmBase: plan.bm,
              channel,
              region: { base: prd, size: 2 * PAGE_4K },
              timeoutMs: 3000,
            }),
            sectors: new Map(),
          };
        });
      }
      if (plan.kind === "e1000") {
        const base = driverMemory;
        driverMemory += NIC_MEMORY;
        for (let off = 0; off < NIC_MEMORY; off += PAGE_4K) {
          d.fixed.push(base + off);
          this.#map(d, IOVA.nic + off, base + off);
        }
      }
      this.#writeDte(d);
      this.#iommu.flush([
        commands.invalidateDevtabEntry(plan.rid),
        commands.invalidatePages({ domainId: this.#domainId(d) }),
      ]);
      if (d.disks) { for (const disk of d.disks) disk.ide.identify(); }
      this.#log(
        `init ${plan.id} (${plan.kind}, rid ${this.#hex(plan.rid)}): root ${
          this.#hex(d.root)
        }, data pages ${d.data.map((p) => this.#hex(p)).join(" ")}`,
      );
      if (plan.kind === "e1000") {
        const nic = new E1000Driver(this.#g, {
          mmioBase: plan.mmio,
          memory: { base: d.fixed[0]!, size: NIC_MEMORY },
          iova: IOVA.nic,
          rxDescriptors: NIC_DESCRIPTORS,
          txDescriptors: NIC_DESCRIPTORS,
        });
        nic.init();
        nic.setRegister(E1000Reg.RCTL, nic.register(E1000Reg.RCTL) | E1000Rctl.LBM_MAC);
        d.nic = nic;
      }
    });
  }

  // ---- Liveness ----

  #alive(d: Device): boolean {
    if (!d.alive) return false;
    const g = this.#g;
    switch (d.plan.kind) {
      case "edu":
        d.alive = eduAlive(g, d.plan.mmio);
        break;
      case "ide":
        d.alive = g.in8(d.plan.bm + 2) !== 0xff;
        break;
      case "e1000":
        d.alive = g.read32(d.plan.mmio + E1000Reg.STATUS) !== 0xffff_ffff;
        break;
    }
    if (!d.alive) {
      this.#dead.push({ device: d.plan.id, op: this.#op });
      this.#log(`  device ${d.plan.id} is dead (registers read all-ones)`);
    }
    return d.alive;
  }

  /** Throws Stop when the device died during the operation. */
  #outcome(d: Device, r: EduOutcome): EduOutcome {
    if (r.dead) {
      this.#alive(d);
      throw new Stop();
    }
    return r;
  }

  // ---- Checks ----

  /**
   * Compares `expected` with RAM at `phys` right after the device reported
   * completion; a mismatch that heals a moment later is an ordering
   * violation, one that stays is an integrity violation.
   */
  #checkData(d: Device, phys: number, expected: Uint8Array, what: string): boolean {
    const view = this.#g.memory.view(phys, expected.length);
    this.#count("integrity");
    this.#count("ordering");
    const at = firstDifference(view, expected);
    if (at < 0) return true;
    const seen = view[at]!;
    this.#g.sleep(5);
    const later = firstDifference(view, expected);
    if (later < 0) {
      this.#violate(
        "ordering",
        `${what}: byte ${at} at ${this.#hex(phys + at)} was 0x${
          seen.toString(16)
        } when the device reported completion, correct 5 ms later`,
        { device: d, page: phys + at },
      );
    } else {
      this.#violate(
        "integrity",
        `${what}: byte ${later} at ${this.#hex(phys + later)} is 0x${
          view[later]!.toString(16)
        }, expected 0x${expected[later]!.toString(16)}`,
        { device: d, page: phys + later },
      );
    }
    return false;
  }

  #expectOk(d: Device, r: EduOutcome, what: string): boolean {
    this.#outcome(d, r);
    if (r.ok) return true;
    this.#violate(
      "unexpected-fault",
      `${what}: the device faulted (code ${r.code} at ${this.#hex(r.address)}) on a mapped page`,
      { device: d },
    );
    return false;
  }

  /**
   * Runs an edu copy that must fault, holding the IOMMU lock so the event
   * log holds only this device's events, and checks the device's report
   * and the IOMMU's event.
   */
  #probe(
    d: Device,
    transfer: { src: number; dst: number; length: number },
    expect: {
      code: number;
      address: number;
      event?: { pr: boolean; pe: boolean; rw: boolean };
      events?: number;
    },
    what: string,
  ): void {
    const iommu = this.#iommu;
    iommu.withLock(() => {
      iommu.drainEventsLocked();
      iommu.recoverOverflowLocked();
      const r = this.#outcome(d, eduCopy(this.#g, d.plan.mmio, transfer));
      const events = iommu.drainEventsLocked();
      const overflowed = iommu.recoverOverflowLocked();
      this.#checkFault(d, r, expect, events, overflowed, what);
    });
  }

  #checkFault(
    d: Device,
    r: EduOutcome,
    expect: {
      code: number;
      address: number;
      event?: { pr: boolean; pe: boolean; rw: boolean };
      events?: number;
    },
    events: readonly IommuEvent[] | undefined,
    overflowed: boolean,
    what: string,
  ): void {
    this.#count("permission");
    if (r.ok) {
      this.#violate("permission", `${what}: the DMA succeeded, it must fault`, { device: d });
      return;
    }
    this.#count("visibility");
    if (r.code !== expect.code || r.address !== expect.address) {
      this.#violate(
        "visibility",
        `${what}: the device reported fault code ${r.code} at ${
          this.#hex(r.address)
        }, expected ${expect.code} at ${this.#hex(expect.address)}`,
        { device: d },
      );
    }
    this.#log(`  fault code ${r.code} at ${this.#hex(r.address)} (as expected)`);
    if (events === undefined || overflowed) return;
    const own = events.filter((e) => e.name === "IO_PAGE_FAULT" && e.deviceId === d.plan.rid);
    const want = expect.events ?? (expect.event ? 1 : 0);
    if (own.length !== want) {
      this.#violate(
        "visibility",
        `${what}: ${own.length} IO_PAGE_FAULT events for ${d.plan.id}, expected ${want}`,
        { device: d },
      );
      return;
    }
    const e = own[0];
    const flags = expect.event;
    if (!e || !flags) return;
    if (
      e.address !== BigInt(expect.address) || e.flags.pr !== flags.pr ||
      e.flags.pe !== flags.pe || e.flags.rw !== flags.rw
    ) {
      this.#violate(
        "visibility",
        `${what}: IO_PAGE_FAULT at ${this.#hex(Number(e.address))} PR=${+e.flags.pr} PE=${+e.flags
          .pe} RW=${+e.flags.rw}, expected ${this.#hex(expect.address)} PR=${+flags.pr} PE=${+flags
          .pe} RW=${+flags.rw}`,
        { device: d },
      );
    }
  }

  // ---- Operations ----

  #eduCopy(d: Device, op: Extract<StressOp, { kind: "edu-copy" }>): void {
    const m = this.#g.memory;
    const expected = new Uint8Array(op.length);
    fillPattern(expected, op.seed);
    const src = d.data[op.src]! + op.offset;
    const dst = d.data[op.dst]! + op.offset;
    m.write(src, expected);
    m.write(dst, expected.map((b) => b ^ 0xff));
    eduStart(this.#g, d.plan.mmio, {
      src: IOVA.data + op.src * PAGE_4K + op.offset,
      dst: IOVA.data + op.dst * PAGE_4K + op.offset,
      length: op.length,
      irq: op.irq,
    });
    const r = eduWait(this.#g, d.plan.mmio, { irq: op.irq });
    if (this.#expectOk(d, r, "edu copy")) {
      this.#checkData(
        d,
        dst,
        expected,
        `edu copy of ${op.length} bytes${op.irq ? " (interrupt)" : ""}`,
      );
    }
  }

  #remapLive(d: Device, op: Extract<StressOp, { kind: "remap-live" }>): void {
    const g = this.#g;
    const m = g.memory;
    const huge = op.huge;
    const srcSize = huge ? PAGE_2M : PAGE_4K;
    const srcIova = huge ? IOVA.huge : IOVA.streamSrc;
    const offset = huge ? (op.seed % 512) * PAGE_4K : 0;
    const pattern = new Uint8Array(PAGE_4K);
    fillPattern(pattern, op.seed, POISON);
    let src = this.#take(huge);
    m.write(src + offset, pattern);
    let dst = this.#take();
    m.fill(dst, PAGE_4K, 0);
    this.#map(d, srcIova, src, "r", huge);
    this.#map(d, IOVA.streamDst, dst, "rw");
    eduStart(g, d.plan.mmio, {
      src: srcIova + offset,
      dst: IOVA.streamDst,
      length: PAGE_4K,
      repeat: true,
    });
    let running = true;
    try {
      for (const round of op.rounds) {
        if (round.src) {
          const fresh = this.#take(huge);
          m.write(fresh + offset, pattern);
          const old = this.#map(d, srcIova, fresh, "r", huge)!;
          src = fresh;
          this.#invalidate(d, round.flush, srcIova, srcSize);
          this.#retire(old, huge);
        } else {
          const fresh = this.#take();
          m.fill(fresh, PAGE_4K, 0);
          const old = this.#map(d, IOVA.streamDst, fresh, "rw")!;
          dst = fresh;
          this.#invalidate(d, round.flush, IOVA.streamDst, PAGE_4K);
          this.#retire(old);
        }
        this.#count("poison");
        if (m.view(dst, PAGE_4K).includes(POISON)) {
          this.#violate(
            "use-after-invalidate",
            `poison reached the destination ${
              this.#hex(dst)
            }: the device read a source page after its invalidation completed`,
            { device: d, page: dst },
          );
        }
      }
      running = false;
      const stopped = eduStop(g, d.plan.mmio);
      if (!this.#expectOk(d, stopped, "repeating copy under remaps")) return;
      // One more copy, waited for: the destination must now hold the source.
      const last = eduCopy(g, d.plan.mmio, {
        src: srcIova + offset,
        dst: IOVA.streamDst,
        length: PAGE_4K,
      });
      if (this.#expectOk(d, last, "copy after remaps")) {
        this.#checkData(d, dst, pattern, "copy after remaps");
      }
    } finally {
      if (running && d.alive) eduStop(g, d.plan.mmio);
      if (d.alive) {
        this.#map(d, srcIova, undefined, "r", huge);
        this.#map(d, IOVA.streamDst, undefined);
        this.#invalidate(d, "domain", srcIova, srcSize);
        this.#retire(src, huge);
        this.#retire(dst);
      }
    }
  }

  #mapUnmap(d: Device, op: Extract<StressOp, { kind: "map-unmap" }>): void {
    const m = this.#g.memory;
    const size = op.huge ? PAGE_2M : PAGE_4K;
    const base = (op.huge ? IOVA.huge : IOVA.transient) + op.slot * size;
    const page = this.#take(op.huge);
    m.fill(page, size, 0);
    this.#map(d, base, page, "rw", op.huge);
    const expected = new Uint8Array(op.length);
    fillPattern(expected, op.seed);
    m.write(d.data[0]!, expected);
    const r = eduCopy(this.#g, d.plan.mmio, {
      src: IOVA.data,
      dst: base + op.offset,
      length: op.length,
    });
    if (this.#expectOk(d, r, `copy into a new ${op.huge ? "2 MiB" : "4 KiB"} mapping`)) {
      this.#checkData(d, page + op.offset, expected, "copy into a new mapping");
    }
    this.#map(d, base, undefined, "rw", op.huge);
    this.#invalidate(d, op.flush, base, size);
    this.#retire(page, op.huge);
    this.#probe(
      d,
      { src: IOVA.data, dst: base + op.offset, length: op.length },
      {
        code: FAULT.noTranslation,
        address: base + op.offset,
        event: { pr: false, pe: false, rw: true },
      },
      "copy into an unmapped page",
    );
    this.#checkPoisoned(page, size, "after a DMA to its unmapped IOVA");
  }

  #permProbe(d: Device, op: Extract<StressOp, { kind: "perm-probe" }>): void {
    const m = this.#g.memory;
    const iova = IOVA.transient + op.slot * PAGE_4K;
    const page = this.#take();
    const content = new Uint8Array(PAGE_4K);
    fillPattern(content, this.#op);
    m.write(page, content);
    const write = op.mode === "write-ro";
    this.#map(d, iova, page, write ? "r" : "w");
    const witness = d.data[1]!;
    m.fill(witness, 64, 0x5a);
    this.#probe(
      d,
      write ? { src: IOVA.data, dst: iova, length: 64 } : {
        src: iova,
        dst: IOVA.data + PAGE_4K,
        length: 64,
      },
      { code: FAULT.permission, address: iova, event: { pr: true, pe: true, rw: write } },
      write ? "write through a read-only mapping" : "read through a write-only mapping",
    );
    this.#count("permission");
    if (write && firstDifference(m.view(page, PAGE_4K), content) >= 0) {
      this.#violate("permission", "a write through a read-only mapping reached memory", {
        device: d,
        page,
      });
    }
    if (!write && firstNot(m.view(witness, 64), 0x5a) >= 0) {
      this.#violate("permission", "a denied read delivered data to the destination", {
        device: d,
        page: witness,
      });
    }
    this.#map(d, iova, undefined);
    this.#invalidate(d, "page", iova, PAGE_4K);
    this.#retire(page);
  }

  #oobProbe(d: Device, op: Extract<StressOp, { kind: "oob-probe" }>): void {
    const g = this.#g;
    const m = g.memory;
    const iova = IOVA.transient + op.slot * PAGE_4K;
    // RAM is all below 4 GiB: the hole below 4 GiB is MMIO space (a master
    // abort), the space above 4 GiB is outside RAM.
    const phys = op.target === "above-ram"
      ? 2 ** 32 + op.slot * PAGE_4K
      : op.target === "own-mmio"
      ? d.plan.mmio
      : 2 ** 52 - (op.slot + 1) * PAGE_4K;
    const code = op.target === "own-mmio" ? FAULT.mmioTarget : FAULT.outsideRam;
    this.#map(d, iova, phys);
    try {
      this.#count("out-of-ram");
      fillPattern(m.view(d.data[0]!, 64), this.#op);
      const w = this.#outcome(
        d,
        eduCopy(g, d.plan.mmio, { src: IOVA.data, dst: iova, length: 64 }),
      );
      this.#checkFault(
        d,
        w,
        { code, address: iova },
        undefined,
        false,
        `DMA write to ${op.target}`,
      );
      const witness = d.data[1]!;
      m.fill(witness, 64, 0x5a);
      const r = this.#outcome(
        d,
        eduCopy(g, d.plan.mmio, { src: iova, dst: IOVA.data + PAGE_4K, length: 64 }),
      );
      this.#checkFault(
        d,
        r,
        { code, address: iova },
        undefined,
        false,
        `DMA read from ${op.target}`,
      );
      if (firstNot(m.view(witness, 64), 0x5a) >= 0) {
        this.#violate("out-of-ram", `a DMA read from ${op.target} delivered data`, {
          device: d,
          page: witness,
        });
      }
      if (op.target === "own-mmio" && !eduLiveness(g, d.plan.mmio, this.#op)) {
        if (this.#alive(d)) {
          this.#violate("out-of-ram", "a DMA aimed at the device's own registers changed them", {
            device: d,
          });
        }
      }
    } finally {
      this.#map(d, iova, undefined);
      if (d.alive) this.#invalidate(d, "page", iova, PAGE_4K);
    }
  }

  #idePages(first: number, pages: number): number[] {
    return Array.from({ length: pages }, (_, i) => (first + i) % DATA_SLOTS.ide);
  }

  #ideFailed(d: Device, disk: Disk, lba: number, sectors: number, what: string, why: string) {
    for (let s = lba; s < lba + sectors; s++) disk.sectors.delete(s);
    if (!this.#alive(d)) throw new Stop();
    this.#violate("unexpected-fault", `${what}: ${why}`, { device: d });
  }

  #ideRw(d: Device, op: Extract<StressOp, { kind: "ide-rw" }>): void {
    const m = this.#g.memory;
    const disk = d.disks![op.channel]!;
    const pages = op.sectors / 8;
    const data = new Uint8Array(op.sectors * SECTOR);
    fillPattern(data, op.seed);
    const wslots = this.#idePages(op.first, pages);
    wslots.forEach((s, i) => m.write(d.data[s]!, data.subarray(i * PAGE_4K, (i + 1) * PAGE_4K)));
    const w = disk.ide.transfer({
      write: true,
      lba: op.lba,
      count: op.sectors,
      regions: wslots.map((s) => ({ address: IOVA.data + s * PAGE_4K, length: PAGE_4K })),
    });
    if (!w.ok) return this.#ideFailed(d, disk, op.lba, op.sectors, "WRITE DMA", w.description);
    for (let s = 0; s < op.sectors; s++) {
      disk.sectors.set(op.lba + s, {
        sum: checksum(data.subarray(s * SECTOR, (s + 1) * SECTOR)),
        flushed: false,
      });
    }
    if (op.huge) {
      const page = this.#take(true);
      m.fill(page, data.length, 0);
      const iova = IOVA.huge + PAGE_2M;
      this.#map(d, iova, page, "rw", true);
      const regions = [];
      for (let at = 0; at < data.length; at += 0x1_0000) {
        regions.push({ address: iova + at, length: Math.min(0x1_0000, data.length - at) });
      }
      try {
        const r = disk.ide.transfer({ write: false, lba: op.lba, count: op.sectors, regions });
        if (!r.ok) {
          return this.#ideFailed(d, disk, op.lba, 0, "READ DMA into a 2 MiB page", r.description);
        }
        this.#checkData(d, page, data, `READ DMA of ${op.sectors} sectors into a 2 MiB page`);
      } finally {
        this.#map(d, iova, undefined, "rw", true);
        if (d.alive) {
          this.#invalidate(d, op.seed % 2 ? "range" : "domain", iova, PAGE_2M);
          this.#retire(page, true);
        }
      }
      return;
    }
    const rslots = this.#idePages(op.first + pages, pages);
    for (const s of rslots) m.fill(d.data[s]!, PAGE_4K, 0);
    const r = disk.ide.transfer({
      write: false,
      lba: op.lba,
      count: op.sectors,
      regions: rslots.map((s) => ({ address: IOVA.data + s * PAGE_4K, length: PAGE_4K })),
    });
    if (!r.ok) return this.#ideFailed(d, disk, op.lba, 0, "READ DMA", r.description);
    rslots.every((s, i) =>
      this.#checkData(
        d,
        d.data[s]!,
        data.subarray(i * PAGE_4K, (i + 1) * PAGE_4K),
        `READ DMA of ${op.sectors} sectors, page ${i}`,
      )
    );
  }

  #ideFlush(d: Device, channel: number): void {
    const disk = d.disks![channel]!;
    const r = disk.ide.command(0xe7); // FLUSH CACHE
    if (!r.ok) {
      if (!this.#alive(d)) throw new Stop();
      this.#violate("unexpected-fault", `FLUSH CACHE failed: ${r.description}`, { device: d });
      return;
    }
    for (const s of disk.sectors.values()) s.flushed = true;
    this.#count("durability");
  }

  #ideRemapLive(d: Device, op: Extract<StressOp, { kind: "ide-remap-live" }>): void {
    const m = this.#g.memory;
    const disk = d.disks![op.channel]!;
    const pages = op.sectors / 8;
    disk.ide.startTransfer({
      write: false,
      lba: op.lba,
      count: op.sectors,
      regions: Array.from({ length: pages }, (_, s) => ({
        address: IOVA.data + s * PAGE_4K,
        length: PAGE_4K,
      })),
    });
    for (const remap of op.remaps) {
      const fresh = this.#take();
      m.fill(fresh, PAGE_4K, 0);
      const iova = IOVA.data + remap.slot * PAGE_4K;
      const old = this.#map(d, iova, fresh)!;
      d.data[remap.slot] = fresh;
      this.#invalidate(d, remap.flush, iova, PAGE_4K);
      this.#retire(old);
    }
    const r = disk.ide.finishTransfer();
    if (!r.ok) this.#ideFailed(d, disk, op.lba, 0, "READ DMA under remaps", r.description);
  }

  #nicLoop(d: Device, op: Extract<StressOp, { kind: "nic-loop" }>): void {
    const nic = d.nic!;
    const mac = nic.macAddress;
    const frames = op.sizes.map((size, i) => {
      const f = new Uint8Array(size);
      fillPattern(f, op.seed + i);
      f.set(mac, 0);
      f.set(mac, 6);
      f[12] = 0x88;
      f[13] = 0xb5;
      return f;
    });
    for (const f of frames) {
      if (!nic.queue(f)) {
        this.#violate("failure", "the transmit ring is full after the previous frames completed", {
          device: d,
        });
        return;
      }
    }
    nic.flush();
    for (const [i, f] of frames.entries()) {
      const rx = this.#receive(nic, 2000);
      if (!rx) {
        if (!this.#alive(d)) throw new Stop();
        this.#violate(
          "integrity",
          `frame ${i} of ${frames.length} (${f.length} bytes) was lost in loopback`,
          {
            device: d,
          },
        );
        return;
      }
      this.#count("integrity");
      const body = rx.data.subarray(0, f.length);
      const at = firstDifference(body, f);
      if (rx.errors !== 0 || rx.data.length !== Math.max(60, f.length) || at >= 0) {
        this.#violate(
          "integrity",
          `frame ${i}: received ${rx.data.length} bytes (errors 0x${
            rx.errors.toString(16)
          }), sent ${f.length}; first difference at ${at}`,
          { device: d },
        );
        return;
      }
    }
    nic.waitTransmitted(2000);
  }

  #receive(nic: E1000Driver, timeoutMs: number) {
    const deadline = performance.now() + timeoutMs;
    for (let spins = 0;; spins++) {
      const frame = nic.poll();
      if (frame) return frame;
      if (performance.now() > deadline) return undefined;
      if (spins > 100) this.#g.sleep(1);
    }
  }

  /** Every page a device reaches through its tables (for a device-table block). */
  #mappedPages(d: Device): number[] {
    return [...d.data, ...d.fixed];
  }

  #dte(d: Device, op: Extract<StressOp, { kind: "dte" }>): void {
    const iommu = this.#iommu;
    const rid = d.plan.rid;
    const edu = d.plan.kind === "edu";
    const change = !edu && op.change.startsWith("suppress") ? "domain" : op.change;
    this.#count("dte");
    if (change === "domain") {
      const old = this.#domainId(d);
      d.dte.domain = d.dte.domain === 0 ? 1 : 0;
      this.#writeDte(d);
      iommu.flush([
        commands.invalidateDevtabEntry(rid),
        commands.invalidatePages({ domainId: old }),
      ]);
      this.#log(`  domain ${old} -> ${this.#domainId(d)}`);
      return;
    }
    if (change === "block" || change === "block-tv") {
      const pages = this.#mappedPages(d);
      if (change === "block") d.dte.allow = false;
      else d.dte.translate = false;
      this.#writeDte(d);
      iommu.flush([
        commands.invalidateDevtabEntry(rid),
        commands.invalidatePages({ domainId: this.#domainId(d) }),
      ]);
      for (const page of pages) this.#events.publish("invalid", page);
      this.#log(`  blocked (${change}): ${pages.length} pages invalid`);
      if (edu) {
        for (const page of d.data) this.#g.memory.fill(page, PAGE_4K, POISON);
        this.#probe(
          d,
          { src: IOVA.data, dst: IOVA.data + PAGE_4K, length: 64 },
          change === "block"
            ? {
              code: FAULT.permission,
              address: IOVA.data,
              event: { pr: true, pe: true, rw: false },
            }
            : {
              code: FAULT.noTranslation,
              address: IOVA.data,
              event: { pr: false, pe: false, rw: false },
            },
          `DMA with the device-table entry ${
            change === "block" ? "denying access" : "not translating"
          }`,
        );
        for (const page of d.data) {
          this.#checkPoisoned(page, PAGE_4K, "while the device was blocked");
        }
      }
      for (const page of pages) this.#events.publish("reuse", page);
      for (const page of d.data) this.#g.memory.fill(page, PAGE_4K, 0);
      d.dte.allow = true;
      d.dte.translate = true;
      this.#writeDte(d);
      iommu.flush([
        commands.invalidateDevtabEntry(rid),
        commands.invalidatePages({ domainId: this.#domainId(d) }),
      ]);
      return;
    }
    // Fault suppression (edu): SA logs nothing, SE logs the first fault only.
    const all = change === "suppress-all";
    if (all) d.dte.suppressAll = true;
    else d.dte.suppressRepeated = true;
    this.#writeDte(d);
    try {
      iommu.withLock(() => {
        const since = performance.now();
        iommu.submitLocked([commands.invalidateDevtabEntry(rid)]);
        iommu.waitFor(iommu.completionLocked(), since);
        iommu.drainEventsLocked();
        iommu.recoverOverflowLocked();
        const probes = all ? 2 : 3;
        let last: EduOutcome | undefined;
        for (let i = 0; i < probes; i++) {
          last = this.#outcome(
            d,
            eduCopy(this.#g, d.plan.mmio, { src: IOVA.hole, dst: IOVA.data, length: 16 }),
          );
          this.#checkFault(
            d,
            last,
            { code: FAULT.noTranslation, address: IOVA.hole },
            undefined,
            false,
            `DMA with ${all ? "SA" : "SE"} set`,
          );
        }
        const events = iommu.drainEventsLocked();
        const overflowed = iommu.recoverOverflowLocked();
        if (!overflowed && last) {
          this.#checkFault(
            d,
            last,
            {
              code: FAULT.noTranslation,
              address: IOVA.hole,
              ...(all ? {} : { event: { pr: false, pe: false, rw: false } }),
              events: all ? 0 : 1,
            },
            events,
            false,
            `${probes} faults with ${all ? "SA (none logged)" : "SE (the first logged)"}`,
          );
        }
      });
    } finally {
      d.dte.suppressAll = false;
      d.dte.suppressRepeated = false;
      this.#writeDte(d);
      iommu.flush([commands.invalidateDevtabEntry(rid)]);
    }
  }

  #flush(d: Device | undefined, kind: FlushKind): void {
    const iova = IOVA.data + ((this.#op * 7) % 8) * PAGE_4K;
    const cw = kind === "cw" || kind === "cw-interrupt";
    const list = d
      ? this.#invalidation(d, kind, iova, PAGE_4K)
      : cw
      ? []
      : [commands.invalidateAll()];
    const ms = this.#iommu.flush(list, { interrupt: kind === "cw-interrupt" });
    if (kind === "cw-interrupt") {
      this.#count("visibility");
      const status = this.#iommu.status();
      if ((status & AmdViStatus.COM_WAIT_INT) === 0n) {
        this.#violate(
          "visibility",
          "COMPLETION_WAIT with i = 1 completed without setting ComWaitInt",
        );
      }
      this.#iommu.clearStatus(AmdViStatus.COM_WAIT_INT);
    }
    this.#log(`  ${kind} (${ms.toFixed(2)} ms)`);
  }

  #flood(d: Device): void {
    const iommu = this.#iommu;
    const g = this.#g;
    iommu.withLock(() => {
      iommu.drainEventsLocked();
      iommu.recoverOverflowLocked();
      const n = EVENT_ENTRIES + 16;
      for (let i = 0; i < n; i++) {
        const address = IOVA.hole + (i % 16) * PAGE_4K;
        const r = this.#outcome(
          d,
          eduCopy(g, d.plan.mmio, { src: address, dst: IOVA.data, length: 8 }),
        );
        if (r.ok || r.code !== FAULT.noTranslation) {
          this.#violate(
            "permission",
            `flood DMA ${i} to an unmapped IOVA did not fault (code ${r.code})`,
            {
              device: d,
            },
          );
          return;
        }
      }
      this.#count("overflow");
      const status = iommu.status();
      if ((status & AmdViStatus.EVENT_OVERFLOW) === 0n) {
        this.#violate(
          "visibility",
          `${n} faults into a ${EVENT_ENTRIES}-entry event log did not set EventOverflow (status 0x${
            status.toString(16)
          })`,
          { device: d },
        );
      }
      if (
        (status & AmdViStatus.EVENT_LOG_RUN) !== 0n && (status & AmdViStatus.EVENT_OVERFLOW) !== 0n
      ) {
        this.#violate("visibility", "the event log kept running after it overflowed", {
          device: d,
        });
      }
      const events = iommu.drainEventsLocked();
      if (events.length > EVENT_ENTRIES - 1) {
        this.#violate(
          "visibility",
          `${events.length} events in a ${EVENT_ENTRIES}-entry log (at most ${
            EVENT_ENTRIES - 1
          } fit)`,
          { device: d },
        );
      }
      iommu.recoverOverflowLocked();
      this.#log(`  flood: ${n} faults, ${events.length} events logged, log restarted`);
      const r = this.#outcome(
        d,
        eduCopy(g, d.plan.mmio, { src: IOVA.hole, dst: IOVA.data, length: 8 }),
      );
      const after = iommu.drainEventsLocked();
      this.#checkFault(
        d,
        r,
        {
          code: FAULT.noTranslation,
          address: IOVA.hole,
          event: { pr: false, pe: false, rw: false },
        },
        after,
        iommu.recoverOverflowLocked(),
        "a fault after the event log was restarted",
      );
    });
  }

  #fault(d: Device, op: Extract<StressOp, { kind: "fault" }>): void {
    let kind = op.fault;
    const alive = this.#devices.filter((x) => x.alive).length;
    // Keep one device per agent alive, so the agent keeps moving data.
    if ((kind === "crash" || kind === "kill" || kind === "stall-timeout") && alive <= 1) {
      kind = "stall";
    }
    const ms = kind === "stall"
      ? 100
      : kind === "stall-timeout"
      ? this.#plan.invTimeoutMs + 800
      : 0;
    const request: StressFaultRequest = {
      agent: this.#plan.agent,
      device: d.plan.id,
      kind: kind === "stall-timeout" ? "stall" : kind,
      ms,
    };
    const w = this.#words;
    const ack = agentWord(this.#plan.agent, AgentCtl.FAULT_ACK);
    const before = Atomics.load(w, ack);
    this.#faults.push({ device: d.plan.id, kind, op: this.#op });
    this.#log(`  asking the runner: ${kind} ${d.plan.id}`);
    this.#g.log(FAULT_REQUEST_PREFIX + JSON.stringify(request));
    const deadline = performance.now() + 5000;
    while (Atomics.load(w, ack) === before) {
      if (performance.now() > deadline) throw new Error("The runner did not carry out a fault");
      Atomics.wait(w, ack, before, 10);
    }
    if (kind === "stall") return;
    if (kind === "stall-timeout") {
      this.#g.sleep(30); // let the worker start hanging
      this.#iommu.flush([commands.invalidatePages({ domainId: this.#domainId(d) })]);
      if (this.#alive(d)) return; // it woke before the invalidation reached it
      this.#count("visibility");
      const timeouts = this.#iommu.withLock(() => {
        this.#iommu.drainEventsLocked();
        return Atomics.load(w, Ctl.TIMEOUTS + (d.plan.rid & 0xff));
      });
      if (timeouts === 0) {
        this.#violate(
          "visibility",
          `${d.plan.id} was stopped but no IOTLB_INV_TIMEOUT was logged`,
          {
            device: d,
          },
        );
      }
      return;
    }
    const until = performance.now() + 5000;
    while (this.#alive(d)) {
      if (performance.now() > until) {
        this.#violate("failure", `${d.plan.id} still answers after an injected ${kind}`, {
          device: d,
        });
        return;
      }
      this.#g.sleep(5);
    }
  }

  #execute(op: StressOp): void {
    const d = op.device >= 0 ? this.#devices[op.device] : undefined;
    if (op.kind === "flush") return this.#flush(d?.alive ? d : undefined, op.flush);
    if (!d || !d.alive) {
      this.#skipped++;
      Atomics.add(this.#words, agentWord(this.#plan.agent, AgentCtl.SKIPPED), 1);
      return;
    }
    switch (op.kind) {
      case "edu-copy":
        return this.#eduCopy(d, op);
      case "remap-live":
        return this.#remapLive(d, op);
      case "map-unmap":
        return this.#mapUnmap(d, op);
      case "perm-probe":
        return this.#permProbe(d, op);
      case "oob-probe":
        return this.#oobProbe(d, op);
      case "ide-rw":
        return this.#ideRw(d, op);
      case "ide-flush":
        return this.#ideFlush(d, op.channel);
      case "ide-remap-live":
        return this.#ideRemapLive(d, op);
      case "nic-loop":
        return this.#nicLoop(d, op);
      case "dte":
        return this.#dte(d, op);
      case "flood":
        return this.#flood(d);
      case "fault":
        return this.#fault(d, op);
    }
  }

  run(): StressAgentResult {
    const plan = this.#plan;
    const w = this.#words;
    const a = plan.agent;
    const generator = new OpGenerator(
      plan.seed,
      a,
      plan.devices.map((d) => d.kind),
      { faults: plan.faults },
    );
    while (plan.ops === 0 || this.#op < plan.ops) {
      if (Atomics.load(w, Ctl.STOP) !== 0) break;
      const op = generator.next();
      const line = describeOp(op);
      this.#digest = digestOps([line], this.#digest);
      this.#log(`#${this.#op} ${line}`);
      const kind = OP_KINDS.indexOf(op.kind);
      Atomics.store(w, agentWord(a, AgentCtl.CURRENT), kind);
      const d = op.device >= 0 ? this.#devices[op.device] : undefined;
      try {
        this.#execute(op);
      } catch (error) {
        if (d?.alive && this.#alive(d) || !d) {
          if (!(error instanceof Stop)) {
            this.#violate(
              "failure",
              `${op.kind} threw while its device still answers: ${(error as Error).message}`,
              d ? { device: d } : {},
            );
          }
        } else {
          this.#aborted++;
          this.#log(`  aborted: ${d.plan.id} died`);
        }
      }
      Atomics.add(w, agentWord(a, AgentCtl.KIND_OPS + kind), 1);
      if (d && d.index < MAX_AGENT_DEVICES) {
        Atomics.add(w, agentWord(a, AgentCtl.DEVICE_OPS + d.index), 1);
      }
      Atomics.add(w, agentWord(a, AgentCtl.OPS), 1);
      this.#op++;
    }
    return this.#finish();
  }

  #finish(): StressAgentResult {
    const durable: StressDurableSectors[] = [];
    for (const d of this.#devices) {
      if (!d.disks) continue;
      d.disks.forEach((disk, channel) => {
        if (d.alive) {
          try {
            this.#ideFlush(d, channel);
          } catch {
            // a device that died now keeps what earlier flushes made durable
          }
        }
        const sectors: Array<[number, number]> = [];
        for (const [lba, s] of disk.sectors) if (s.flushed) sectors.push([lba, s.sum]);
        durable.push({ device: d.plan.id, channel, sectors });
      });
    }
    for (const page of this.#quarantine) this.#checkPoisoned(page, PAGE_4K, "at the end");
    for (const page of this.#hugeQuarantine) this.#checkPoisoned(page, PAGE_2M, "at the end");
    Atomics.store(this.#words, agentWord(this.#plan.agent, AgentCtl.DONE), 1);
    return {
      agent: this.#plan.agent,
      ops: this.#op,
      skipped: this.#skipped,
      aborted: this.#aborted,
      digest: this.#digest,
      violations: this.#violations,
      history: this.#history.slice(),
      durable,
      dead: this.#dead,
      faults: this.#faults,
    };
  }
}

function setup(guest: Guest, plan: StressSetupPlan): StressSetupResult {
  const functions = enumeratePci(guest);
  assignPciResources(guest, functions);
  SmpIommu.setup(guest, { invTimeout: plan.invTimeout });
  return {
    functions: functions.map((f) => ({
      slot: f.device,
      vendorId: f.vendorId,
      deviceId: f.deviceId,
      bars: Object.fromEntries(f.bars.map((b) => [b.index, b.address])),
    })),
  };
}

/**
 * The guest program of the stress runner's agents.
 *
 * @param guest The CPU.
 * @param options `plan`: a {@linkcode StressSetupPlan} or {@linkcode StressAgentPlan} as JSON.
 * @returns The setup result or the agent's result.
 *
 * @example
 * ```ts
 * import type { Machine } from "../machine/machine.ts";
 * import type { StressAgentPlan } from "./agent_plan.ts";
 * async function runPlan(machine: Machine, plan: StressAgentPlan): Promise<unknown> {
 *   return await machine.runGuest(new URL("./stress_agent.ts", import.meta.url), {
 *     options: { plan: JSON.stringify(plan) },
 *   });
 * }
 * ```
 */
export default function stressAgent(
  guest: Guest,
  options: Readonly<Record<string, string>>,
): StressSetupResult | StressAgentResult {
  const plan = JSON.parse(options.plan ?? "{}") as StressSetupPlan | StressAgentPlan;
  if (plan.role === "setup") return setup(guest, plan);
  if (plan.role !== "agent") throw new Error("The stress agent needs a plan");
  const agent = new StressAgent(guest, plan);
  agent.init();
  return agent.run();
}
