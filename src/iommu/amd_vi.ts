/**
 * The AMD-Vi IOMMU model: register file, device-table handling, page walk,
 * command processor, event log, and the IOTLB snapshots of the device workers
 * it feeds and invalidates. It lives on the main isolate and never blocks:
 * commands run when the tail is written, and a COMPLETION_WAIT awaits the
 * workers' acknowledgements.
 *
 * Spec semantics follow ../shared/reference/amd-vi.md; where implementations
 * disagree, the choices are recorded in ARCHITECTURE.md ("AMD-Vi decisions").
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import type { PciFunctionSpec } from "../pci/pci_function.ts";
import { DteState } from "../shared/layout.ts";
import { hex, MAX_ADDRESS } from "../util/address.ts";
import {
  AMD_VI_EXT_FEATURE,
  AMD_VI_MAX_LEVELS,
  AMD_VI_MMIO_BASE,
  AmdViControl,
  AmdViEvent,
  AmdViReg,
  AmdViStatus,
  bits,
  invTimeoutMs,
} from "./amd_vi_registers.ts";
import { decodeCommand, type IommuCommand } from "./commands.ts";
import { decodeDte, type DeviceTableEntry } from "./device_table.ts";
import { decodeEvent, encodeEvent, type IommuEvent, type IommuEventFlags } from "./events.ts";
import type { SnapshotDte, SnapshotTranslation } from "./iotlb_snapshot.ts";
import {
  LEVEL_SHIFT,
  PDE_RESERVED,
  runLength,
  walkPageTable,
  type WalkResult,
  type WalkSuccess,
} from "./page_walk.ts";
import type { InvalidationScope } from "./snapshot_mmu.ts";
import type { TranslationAnswer, TranslationSource, WorkerLink } from "./worker_link.ts";

/**
 * The IOMMU's PCI function (1022:0008, class 08/06/00) with its secure-device capability.
 *
 * @example
 * ```ts
 * import { AMD_VI_PCI } from "./amd_vi.ts";
 * import { PciFunction } from "../pci/pci_function.ts";
 * import { equal } from "node:assert/strict";
 * const fn = new PciFunction(AMD_VI_PCI);
 * equal(fn.read(0x34, 1), 0x40); // capability list starts at the secure device capability
 * equal(fn.read(0x40, 1), 0x0f); // capability id 0x0F
 * equal(fn.read(0x44, 4), 0xfed8_0001); // IOMMU base address low, Enable set
 * ```
 */
export const AMD_VI_PCI: PciFunctionSpec = {
  vendorId: 0x1022,
  deviceId: 0x0008,
  classCode: 0x080600,
  interruptPin: 1,
  capabilities: [
    {
      // Secure device capability, laid out as the reference machine's: CapType 3
      // (IOMMU), IotlbSup, EFRSup; BAR at 0xFED80000 with Enable set (the window
      // is fixed and always decodes); range not valid; PAsize 48, VAsize 64,
      // GVAsize 48.
      offset: 0x40,
      id: 0x0f,
      body: [
        0x03, // CapType 3, CapRev 0
        0x09, // IotlbSup (bit 24), EFRSup (bit 27)
        ...[0x01, 0x00, 0xd8, 0xfe], // base low: Enable | 0xFED80000
        ...[0x00, 0x00, 0x00, 0x00], // base high
        ...[0x00, 0x00, 0x00, 0xff], // range: RngValid 0, LastDevice 0xff
        ...[0x40, 0x30, 0x20, 0x00], // misc 0: GVAsize 2, PAsize 48, VAsize 64
      ],
    },
    {
      // MSI capability, present for layout fidelity; its enable bit is hardwired
      // to 0: dmaworks delivers the IOMMU interrupt as INTx.
      offset: 0x54,
      id: 0x05,
      body: [0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    },
  ],
};

/** Counters of the IOMMU. */
export interface IommuCounters {
  /** Translation requests from workers (misses) resolved by the main isolate. */
  resolves: number;
  /** Translations published into snapshots. */
  fills: number;
  /** Invalidation commands executed. */
  invalidations: number;
  /** Translation faults (logged or suppressed). */
  faults: number;
  /** Events written to the event log. */
  events: number;
  /** Events dropped (log disabled, full or overflowed). */
  eventsDropped: number;
  /** Commands executed. */
  commands: number;
  /** Workers stopped because they did not acknowledge in time. */
  timeouts: number;
}

/** Options for {@linkcode AmdViIommu}. */
export interface AmdViOptions {
  /** Sets the IOMMU's interrupt line level. */
  setIrq?: (level: boolean) => void;
  /** Stops a worker that did not acknowledge an invalidation in time; resolves once it can no longer touch memory. */
  failWorker?: (link: WorkerLink, reason: string) => Promise<void>;
  /**
   * Longest wait for an acknowledgement when Control.InvTimeOut is 0 ("no
   * timeout"): a watchdog against a worker that hangs (default 60 s).
   */
  watchdogMs?: number;
  /** Neighbouring 4 KiB pages filled into a snapshot after a miss (default 31). */
  neighbours?: number;
  /** Called if the command processor hits an internal error (it then stops, like CmdBufRun = 0). */
  onError?: (error: unknown) => void;
  /**
   * Receives a readable line for each traced happening (`-d iommu`): control
   * and table-base writes, commands, invalidations and their
   * acknowledgements, translation misses and events.
   */
  trace?: (message: string) => void;
}

/** `00:04.0` for a requester id. */
function bdf(rid: number): string {
  const hex2 = (n: number) => n.toString(16).padStart(2, "0");
  return `${hex2(rid >> 8)}:${hex2((rid >> 3) & 0x1f)}.${rid & 7}`;
}

function describeCommand(command: Exclude<IommuCommand, { op: "ILLEGAL" }>): string {
  const fields = Object.entries(command).filter(([key]) => key !== "op").map(([key, value]) => {
    if (key === "deviceId") return `dev=${bdf(value as number)}`;
    if (value !== null && typeof value === "object") {
      const r = value as { start: number; end: number };
      return `range=0x${r.start.toString(16)}-0x${r.end.toString(16)}`;
    }
    if (typeof value === "number" || typeof value === "bigint") {
      return key === "domainId" || key === "count"
        ? `${key}=${value}`
        : `${key}=0x${value.toString(16)}`;
    }
    return `${key}=${value}`;
  });
  return [command.op, ...fields].join(" ");
}

function describeScope(scope: InvalidationScope): string {
  switch (scope.kind) {
    case "all":
      return "all";
    case "domain":
      return `domain ${scope.domain} 0x${scope.start.toString(16)}-0x${scope.end.toString(16)}`;
    case "device":
      return `device ${bdf(scope.rid)} 0x${scope.start.toString(16)}-0x${scope.end.toString(16)}`;
  }
}

/** What a translation resolves to, with the cacheable state. */
type Translated =
  | {
    readonly ok: true;
    readonly state: number;
    readonly answer: TranslationAnswer & { ok: true };
    readonly dte: DeviceTableEntry | undefined;
    readonly walk: WalkSuccess | undefined;
  }
  | { readonly ok: false; readonly kind: "no-translation" | "permission" };

const MSI_BASE = 0xfee0_0000;
const MSI_LIMIT = 0xfeef_ffff;
const OFFSET_MASK = 0x7fff0n;
const BASE_MASK = 0x0f0f_ffff_ffff_f000n;
const CONTROL_MASK = 0x1fffn; // bits 12:0; unsupported features read as zero
const STATUS_W1C = AmdViStatus.EVENT_OVERFLOW | AmdViStatus.EVENT_LOG_INT |
  AmdViStatus.COM_WAIT_INT;
const RECENT_EVENTS = 256;

function toBig(n: number): bigint {
  return BigInt(n);
}

/**
 * The IOMMU.
 *
 * @example Translate through a DTE in mode 0 (identity, permissions enforced)
 * ```ts
 * import { AmdViIommu } from "./amd_vi.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { encodeDte } from "./device_table.ts";
 * import { equal } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 4 << 20 });
 * const iommu = new AmdViIommu(ram);
 * iommu.writeRegister(0x0000, 8, 0x100000n); // device table at 1 MiB, one page
 * const [q0, q1] = encodeDte({ valid: true, translationValid: true, readable: true });
 * ram.write64(0x100000 + 0x20 * 32, q0);
 * ram.write64(0x100000 + 0x20 * 32 + 8, q1);
 * iommu.writeRegister(0x0018, 8, 1n); // IommuEn
 * equal(iommu.resolve(0x20, 0x5000, 1).ok, true);
 * equal(iommu.resolve(0x20, 0x5000, 2).ok, false); // no IW
 * ```
 */
export class AmdViIommu implements TranslationSource {
  /** Counters. */
  readonly counters: IommuCounters = {
    resolves: 0,
    fills: 0,
    invalidations: 0,
    faults: 0,
    events: 0,
    eventsDropped: 0,
    commands: 0,
    timeouts: 0,
  };
  #memory: GuestMemory;
  #options: AmdViOptions;
  #devTabBase = 0n;
  #cmdBase = 0n;
  #evtBase = 0n;
  #control = 0n;
  #exclBase = 0n;
  #exclLimit = 0n;
  #cmdHead = 0n;
  #cmdTail = 0n;
  #evtHead = 0n;
  #evtTail = 0n;
  #status = 0n;
  #links: WorkerLink[] = [];
  #faulted = new Set<number>();
  #recent: IommuEvent[] = [];
  #pending: Promise<void>[] = [];
  #processing = false;
  #again = false;
  #ringEpoch = 0;
  #irqLevel = false;
  #idleWaiters: Array<() => void> = [];

  /**
   * Creates an IOMMU at its reset state (everything disabled).
   *
   * @param memory Guest RAM (tables, commands and the event log live there).
   * @param options Interrupt, worker-stopping callback and tuning.
   */
  constructor(memory: GuestMemory, options: AmdViOptions = {}) {
    this.#memory = memory;
    this.#options = options;
  }

  /**
   * The MMIO window base.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const iommu = new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
   * equal(iommu.mmioBase, 0xfed80000); // as the secure-device capability's BAR says
   * ```
   */
  get mmioBase(): number {
    return AMD_VI_MMIO_BASE;
  }

  /**
   * Whether Control.IommuEn is set.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const iommu = new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
   * equal(iommu.enabled, false);
   * equal(iommu.resolve(0x20, 0x5000, 2).ok, true); // disabled: everything passes through
   * iommu.writeRegister(0x0018, 8, 1n); // Control.IommuEn
   * equal(iommu.enabled, true);
   * ```
   */
  get enabled(): boolean {
    return (this.#control & AmdViControl.IOMMU_EN) !== 0n;
  }

  /**
   * The last events written (or dropped), oldest first (for tests and tracing).
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { encodeDte } from "./device_table.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 2 << 20 });
   * const iommu = new AmdViIommu(ram);
   * iommu.writeRegister(0x0000, 8, 0x100000n); // device table at 1 MiB
   * const [q0, q1] = encodeDte({ valid: true, domainId: 3 }); // V = 1, TV = 0: every access faults
   * ram.write64(0x100000 + 0x20 * 32, q0);
   * ram.write64(0x100000 + 0x20 * 32 + 8, q1);
   * iommu.writeRegister(0x0018, 8, 1n); // IommuEn (the event log stays off)
   * iommu.resolve(0x20, 0x5000, 1);
   * equal(iommu.recentEvents.at(-1)?.name, "IO_PAGE_FAULT");
   * equal(iommu.recentEvents.at(-1)?.domainId, 3);
   * equal(iommu.counters.eventsDropped, 1); // recorded here, not in the guest's log
   * ```
   */
  get recentEvents(): readonly IommuEvent[] {
    return this.#recent;
  }

  /**
   * Connects a device worker's IOTLB.
   *
   * @param link The link.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { SnapshotReader } from "./iotlb_snapshot.ts";
   * import { WorkerLink } from "./worker_link.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const iommu = new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
   * const hub = new MainHub();
   * const { port1, port2 } = new MessageChannel();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port: port1, wake: () => undefined, source: iommu,
   * });
   * iommu.attach(link);
   * // The IOMMU is off: the worker may use every address untranslated.
   * equal(new SnapshotReader(link.snapshot.buffer).dte(0x20)?.state, DteState.PassThrough);
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  attach(link: WorkerLink): void {
    this.#links.push(link);
    if (!this.enabled) link.publishPassThrough();
  }

  /**
   * The connected workers' links.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { WorkerLink } from "./worker_link.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { TARGET_BLOCK_WORDS } from "../shared/layout.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const iommu = new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
   * equal(iommu.links.length, 0);
   * const hub = new MainHub();
   * const { port1, port2 } = new MessageChannel();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port: port1, wake: () => undefined, source: iommu,
   * });
   * iommu.attach(link);
   * deepEqual(iommu.links.map((l) => l.id), ["dev0"]);
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  get links(): readonly WorkerLink[] {
    return this.#links;
  }

  // ---------------------------------------------------------------- registers

  /**
   * Reads a register (4- and 8-byte accesses are architectural; 1- and 2-byte
   * reads return the addressed bytes).
   *
   * @param offset Offset in the MMIO window.
   * @param size 1, 2, 4 or 8.
   * @returns The value.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { AMD_VI_EXT_FEATURE } from "./amd_vi_registers.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const iommu = new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
   * equal(iommu.readRegister(0x0030, 8), AMD_VI_EXT_FEATURE); // Extended Feature
   * equal(iommu.readRegister(0x0028, 8), 0xfffn); // Exclusion Limit: bits 11:0 read as 1
   * equal(iommu.readRegister(0x0029, 1), 0x0fn); // a narrow read returns the addressed byte
   * ```
   */
  readRegister(offset: number, size: number): bigint {
    const base = offset & ~7;
    const value = this.#read64(base);
    const shift = BigInt((offset & 7) * 8);
    return size >= 8 ? value : (value >> shift) & ((1n << BigInt(size * 8)) - 1n);
  }

  #read64(offset: number): bigint {
    switch (offset) {
      case AmdViReg.DEV_TAB_BASE:
        return this.#devTabBase;
      case AmdViReg.CMD_BUF_BASE:
        return this.#cmdBase;
      case AmdViReg.EVT_LOG_BASE:
        return this.#evtBase;
      case AmdViReg.CONTROL:
        return this.#control;
      case AmdViReg.EXCL_BASE:
        return this.#exclBase;
      case AmdViReg.EXCL_LIMIT:
        return this.#exclLimit | 0xfffn;
      case AmdViReg.EXT_FEATURE:
        return AMD_VI_EXT_FEATURE;
      case AmdViReg.CMD_HEAD:
        return this.#cmdHead;
      case AmdViReg.CMD_TAIL:
        return this.#cmdTail;
      case AmdViReg.EVT_HEAD:
        return this.#evtHead;
      case AmdViReg.EVT_TAIL:
        return this.#evtTail;
      case AmdViReg.STATUS:
        return this.#status;
      default:
        return 0n;
    }
  }

  /**
   * Writes a register. A 4-byte (or narrower) write updates those bytes of
   * the 64-bit register and runs its side effects; for Status the other bytes
   * count as 0, so a partial write never clears write-1-to-clear bits it did
   * not name.
   *
   * @param offset Offset in the MMIO window.
   * @param size 1, 2, 4 or 8.
   * @param value The value.
   *
   * @example Program the command buffer base in two halves, as Linux does
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const iommu = new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
   * iommu.writeRegister(0x0008, 4, 0x80000n); // base low
   * iommu.writeRegister(0x000c, 4, 0x0800_0000n); // base high: ComLen 8 (256 entries)
   * equal(iommu.readRegister(0x0008, 8), 0x0800_0000_0008_0000n);
   * iommu.writeRegister(0x0008, 8, 0x0100_0000_0009_0000n); // ComLen 1: invalid, ignored
   * equal(iommu.readRegister(0x0008, 8), 0x0800_0000_0008_0000n);
   * ```
   */
  writeRegister(offset: number, size: number, value: bigint): void {
    const base = offset & ~7;
    let full: bigint;
    if (size >= 8) {
      full = BigInt.asUintN(64, value);
    } else {
      const shift = BigInt((offset & 7) * 8);
      const mask = ((1n << BigInt(size * 8)) - 1n) << shift;
      const current = base === AmdViReg.STATUS ? 0n : this.#read64(base);
      full = (current & ~mask) | ((BigInt.asUintN(size * 8, value) << shift) & mask);
    }
    // Bytes 7 (bits 63:56, the length field of the ring bases) written?
    const lengthWritten = size >= 8 || (offset & 7) + size > 7;
    this.#write64(base, full, lengthWritten);
  }

  #write64(offset: number, value: bigint, lengthWritten = true): void {
    switch (offset) {
      case AmdViReg.DEV_TAB_BASE:
        this.#devTabBase = value & 0x000f_ffff_ffff_f1ffn;
        this.#options.trace?.(
          `device table at 0x${(this.#devTabBase & ~0x1ffn).toString(16)}, ${
            (Number(this.#devTabBase & 0x1ffn) + 1) * 128
          } entries`,
        );
        return;
      case AmdViReg.CMD_BUF_BASE:
        // A length below 8 entries is invalid; only judge it when the write
        // carries it (Linux writes the low half first, then the high half).
        if (this.#cmdRun || (lengthWritten && bits(value, 59, 56) < 8n)) return;
        this.#cmdBase = value & BASE_MASK;
        this.#cmdHead = 0n;
        this.#cmdTail = 0n;
        this.#ringEpoch++;
        this.#options.trace?.(
          `command buffer at 0x${(this.#cmdBase & 0x000f_ffff_ffff_f000n).toString(16)}, ${
            this.#cmdSize / 16n
          } entries`,
        );
        return;
      case AmdViReg.EVT_LOG_BASE:
        if (this.#evtRun || (lengthWritten && bits(value, 59, 56) < 8n)) return;
        this.#evtBase = value & BASE_MASK;
        this.#evtHead = 0n;
        this.#evtTail = 0n;
        this.#options.trace?.(
          `event log at 0x${(this.#evtBase & 0x000f_ffff_ffff_f000n).toString(16)}, ${
            this.#evtSize / 16n
          } entries`,
        );
        return;
      case AmdViReg.CONTROL:
        this.#writeControl(value & CONTROL_MASK);
        return;
      case AmdViReg.EXCL_BASE:
        this.#exclBase = value & 0x000f_ffff_ffff_f003n;
        this.#invalidateAllWorkers();
        return;
      case AmdViReg.EXCL_LIMIT:
        this.#exclLimit = value & 0x000f_ffff_ffff_f000n;
        this.#invalidateAllWorkers();
        return;
      case AmdViReg.CMD_HEAD: {
        const head = value & OFFSET_MASK;
        if (this.#cmdRun || head >= this.#cmdSize) return;
        this.#cmdHead = head;
        return;
      }
      case AmdViReg.CMD_TAIL: {
        const tail = value & OFFSET_MASK;
        if (tail >= this.#cmdSize) return;
        this.#cmdTail = tail;
        this.#kick();
        return;
      }
      case AmdViReg.EVT_HEAD: {
        const head = value & OFFSET_MASK;
        if (head >= this.#evtSize) return;
        this.#evtHead = head;
        return;
      }
      case AmdViReg.EVT_TAIL: {
        const tail = value & OFFSET_MASK;
        if (this.#evtRun || tail >= this.#evtSize) return;
        this.#evtTail = tail;
        return;
      }
      case AmdViReg.STATUS:
        this.#status &= ~(value & STATUS_W1C);
        this.#updateIrq();
        return;
    }
  }

  get #cmdRun(): boolean {
    return (this.#status & AmdViStatus.CMD_BUF_RUN) !== 0n;
  }
  get #evtRun(): boolean {
    return (this.#status & AmdViStatus.EVENT_LOG_RUN) !== 0n;
  }
  get #cmdSize(): bigint {
    return 16n << bits(this.#cmdBase, 59, 56);
  }
  get #evtSize(): bigint {
    return 16n << bits(this.#evtBase, 59, 56);
  }

  #writeControl(value: bigint): void {
    const old = this.#control;
    this.#control = value;
    const changed = old ^ value;
    if (changed !== 0n) {
      this.#options.trace?.(
        `control 0x${value.toString(16)}: IommuEn=${value & 1n} CmdBufEn=${
          (value >> 12n) & 1n
        } EventLogEn=${(value >> 2n) & 1n} EventIntEn=${(value >> 3n) & 1n} ComWaitIntEn=${
          (value >> 4n) & 1n
        } InvTimeOut=${(value >> 5n) & 7n}`,
      );
    }
    const en = (value & AmdViControl.IOMMU_EN) !== 0n;
    if (changed & (AmdViControl.CMD_BUF_EN | AmdViControl.IOMMU_EN)) {
      if (en && (value & AmdViControl.CMD_BUF_EN)) this.#status |= AmdViStatus.CMD_BUF_RUN;
      else this.#status &= ~AmdViStatus.CMD_BUF_RUN;
      this.#ringEpoch++;
    }
    if (changed & (AmdViControl.EVENT_LOG_EN | AmdViControl.IOMMU_EN)) {
      if (en && (value & AmdViControl.EVENT_LOG_EN)) {
        this.#status |= AmdViStatus.EVENT_LOG_RUN;
        this.#status &= ~AmdViStatus.EVENT_OVERFLOW;
      } else {
        this.#status &= ~AmdViStatus.EVENT_LOG_RUN;
      }
    }
    if (changed & AmdViControl.IOMMU_EN) {
      // Translation semantics change for every device: flush every cache.
      this.#invalidateAllWorkers();
    }
    this.#updateIrq();
    this.#kick();
  }

  #invalidateAllWorkers(): void {
    this.#faulted.clear();
    for (const link of this.#links) {
      void link.invalidate({ kind: "all" }, this.#waitLimitMs());
      if (!this.enabled) link.publishPassThrough();
    }
  }

  #updateIrq(): void {
    const c = this.#control;
    const s = this.#status;
    const level = ((c & AmdViControl.EVENT_INT_EN) !== 0n &&
      (s & (AmdViStatus.EVENT_LOG_INT | AmdViStatus.EVENT_OVERFLOW)) !== 0n) ||
      ((c & AmdViControl.COM_WAIT_INT_EN) !== 0n && (s & AmdViStatus.COM_WAIT_INT) !== 0n);
    if (level !== this.#irqLevel) {
      this.#irqLevel = level;
      this.#options.setIrq?.(level);
    }
  }

  /**
   * The interrupt line level the IOMMU drives.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { commands } from "./commands.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const levels: boolean[] = [];
   * const iommu = new AmdViIommu(ram, { setIrq: (level) => levels.push(level) });
   * iommu.writeRegister(0x0008, 8, 0x0800_0000_0008_0000n); // command buffer at 0x80000
   * iommu.writeRegister(0x0018, 8, 0x1011n); // IommuEn, ComWaitIntEn, CmdBufEn
   * const [q0, q1] = commands.completionWait({ interrupt: true });
   * ram.write64(0x80000, q0);
   * ram.write64(0x80008, q1);
   * iommu.writeRegister(0x2008, 8, 16n); // tail: one command
   * await iommu.idle();
   * equal(iommu.irqLevel, true);
   * iommu.writeRegister(0x2020, 8, 0x4n); // Status.ComWaitInt is write-1-to-clear
   * equal(iommu.irqLevel, false);
   * equal(levels.join(), "true,false");
   * ```
   */
  get irqLevel(): boolean {
    return this.#irqLevel;
  }

  // ---------------------------------------------------------------- event log

  /** Writes an event; returns whether it reached the log. */
  #log(code: number, fields: Parameters<typeof encodeEvent>[1]): boolean {
    const [q0, q1] = encodeEvent(code, fields);
    const event = decodeEvent(q0, q1);
    this.#recent.push(event);
    if (this.#recent.length > RECENT_EVENTS) this.#recent.shift();
    this.#options.trace?.(
      `event ${event.name} dev=${bdf(event.deviceId)} domain=${event.domainId} address=0x${
        event.address.toString(16)
      }${event.flags.rw ? " write" : " read"}${event.flags.pr ? " present" : ""}${
        event.flags.pe ? " permission" : ""
      }${event.flags.rz ? " reserved" : ""}${
        !this.#evtRun || (this.#status & AmdViStatus.EVENT_OVERFLOW) ? " (dropped: log off)" : ""
      }`,
    );
    if (!this.#evtRun || (this.#status & AmdViStatus.EVENT_OVERFLOW)) {
      this.counters.eventsDropped++;
      return false;
    }
    const size = this.#evtSize;
    const next = (this.#evtTail + 16n) % size;
    if (next === this.#evtHead) {
      // Full (the log holds N - 1 entries): overflow stops the log until software restarts it.
      this.#status |= AmdViStatus.EVENT_OVERFLOW;
      this.#status &= ~AmdViStatus.EVENT_LOG_RUN;
      this.counters.eventsDropped++;
      this.#updateIrq();
      return false;
    }
    const address = Number((this.#evtBase & 0x000f_ffff_ffff_f000n) + this.#evtTail);
    if (this.#memory.isRam(address, 16)) {
      // The entry first, then the tail: a consumer never sees a half-written entry.
      this.#memory.write64(address, q0);
      this.#memory.write64(address + 8, q1);
    }
    this.#evtTail = next;
    this.#status |= AmdViStatus.EVENT_LOG_INT;
    this.counters.events++;
    this.#updateIrq();
    return true;
  }

  #pageFault(
    rid: number,
    dte: DeviceTableEntry | undefined,
    flags: IommuEventFlags,
    address: number,
  ): void {
    this.counters.faults++;
    if (dte?.valid) {
      if (dte.suppressAll) return;
      if (dte.suppressRepeated && this.#faulted.has(rid)) return;
    }
    const logged = this.#log(AmdViEvent.IO_PAGE_FAULT, {
      deviceId: rid,
      domainId: dte?.domainId ?? 0,
      flags,
      address: toBig(address),
    });
    // SE suppresses repeats of a fault software was told about.
    if (logged) this.#faulted.add(rid);
  }

  // ---------------------------------------------------------------- translation

  #exclusionRange(dte: DeviceTableEntry): { base: number; limit: number } | undefined {
    const ex = this.#exclBase;
    if ((ex & 1n) === 0n || (!(ex & 2n) && !dte.exclusion)) return undefined;
    const base = Number(ex & 0x000f_ffff_ffff_f000n);
    const limit = Number(this.#exclLimit | 0xfffn);
    return base <= limit ? { base, limit: Math.min(limit, MAX_ADDRESS) } : undefined;
  }

  /**
   * The full translation algorithm of amd-vi.md §2–3, with event logging when
   * `log` is set.
   */
  #translate(rid: number, iova: number, access: number, log: boolean): Translated {
    const passThrough = (state: number, perms: number, dte?: DeviceTableEntry): Translated => ({
      ok: true,
      state,
      answer: { ok: true, iovaBase: iova, physBase: iova, length: MAX_ADDRESS + 1 - iova, perms },
      dte,
      walk: undefined,
    });
    if (!this.enabled) return passThrough(DteState.PassThrough, 3);
    if (iova >= MSI_BASE && iova <= MSI_LIMIT) {
      // The MSI window is never DMA-translated.
      return {
        ok: true,
        state: DteState.Unknown,
        answer: {
          ok: true,
          iovaBase: iova,
          physBase: iova,
          length: MSI_LIMIT + 1 - iova,
          perms: 3,
        },
        dte: undefined,
        walk: undefined,
      };
    }
    const rw = access === 2;
    const tableBytes = (Number(this.#devTabBase & 0x1ffn) + 1) * 4096;
    if (rid * 32 + 32 > tableBytes) {
      // A DeviceID beyond the table: a fault, never an out-of-bounds read.
      this.counters.faults++;
      if (log) {
        this.#log(AmdViEvent.IO_PAGE_FAULT, { deviceId: rid, flags: { rw }, address: toBig(iova) });
      }
      return { ok: false, kind: "no-translation" };
    }
    const dteAddress = Number(this.#devTabBase & 0x000f_ffff_ffff_f000n) + rid * 32;
    if (!this.#memory.isRam(dteAddress, 16)) {
      this.counters.faults++;
      if (log) {
        this.#log(AmdViEvent.DEV_TAB_HARDWARE_ERROR, {
          deviceId: rid,
          flags: { rw },
          type: 1,
          address: toBig(dteAddress),
        });
      }
      return { ok: false, kind: "no-translation" };
    }
    const dte = this.#readDte(dteAddress);
    if (!dte.valid) return passThrough(DteState.PassThrough, 3, dte);
    if (dte.reservedBitsSet) {
      this.counters.faults++;
      if (log) {
        this.#log(AmdViEvent.ILLEGAL_DEV_TABLE_ENTRY, {
          deviceId: rid,
          flags: { rw, rz: true },
          address: toBig(iova) & ~3n,
        });
      }
      return { ok: false, kind: "no-translation" };
    }
    const excl = this.#exclusionRange(dte);
    if (excl && iova >= excl.base && iova <= excl.limit) {
      return {
        ok: true,
        state: DteState.Unknown,
        answer: {
          ok: true,
          iovaBase: iova,
          physBase: iova,
          length: excl.limit + 1 - iova,
          perms: 3,
        },
        dte,
        walk: undefined,
      };
    }
    if (!dte.translationValid) {
      if (log) this.#pageFault(rid, dte, { rw }, iova);
      else this.counters.faults++;
      return { ok: false, kind: "no-translation" };
    }
    const dtePerms = (dte.readable ? 1 : 0) | (dte.writable ? 2 : 0);
    if (access !== 0 && (dtePerms & access) === 0) {
      if (log) this.#pageFault(rid, dte, { rw, pr: true, pe: true }, iova);
      else this.counters.faults++;
      return { ok: false, kind: "permission" };
    }
    if (dte.mode === 0) return passThrough(DteState.Identity, dtePerms, dte);
    if (dte.mode > AMD_VI_MAX_LEVELS) {
      // Mode 7 is a reserved encoding of the DTE: an illegal entry (RZ = 0: bad encoding).
      this.counters.faults++;
      if (log) {
        this.#log(AmdViEvent.ILLEGAL_DEV_TABLE_ENTRY, {
          deviceId: rid,
          flags: { rw },
          address: toBig(iova) & ~3n,
        });
      }
      return { ok: false, kind: "no-translation" };
    }
    const walk = walkPageTable(this.#memory, { dte, iova, access });
    if (!walk.ok) {
      if (walk.kind === "page-table-hardware-error") {
        this.counters.faults++;
        if (log) {
          this.#log(AmdViEvent.PAGE_TAB_HARDWARE_ERROR, {
            deviceId: rid,
            domainId: dte.domainId,
            flags: { rw },
            type: 1,
            address: toBig(walk.entryAddress),
          });
        }
        return { ok: false, kind: "no-translation" };
      }
      if (log) {
        this.#pageFault(
          rid,
          dte,
          { rw, pr: walk.present, pe: walk.permission, rz: walk.reserved },
          iova,
        );
      } else {
        this.counters.faults++;
      }
      return { ok: false, kind: walk.permission ? "permission" : "no-translation" };
    }
    return {
      ok: true,
      state: DteState.Translate,
      answer: {
        ok: true,
        iovaBase: iova,
        physBase: walk.physBase + (iova - walk.iovaBase),
        length: this.#clampRun(iova, runLength(walk, iova), excl),
        perms: walk.perms,
      },
      dte,
      walk,
    };
  }

  /**
   * Translates one access for a device (a worker's miss), logging a fault in
   * the event log when it fails.
   *
   * @param rid Requester id.
   * @param iova The address.
   * @param access 1 read, 2 write.
   * @returns The answer.
   *
   * @example Translate through a one-level page table
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { encodeDte } from "./device_table.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 4 << 20 });
   * const iommu = new AmdViIommu(ram);
   * iommu.writeRegister(0x0000, 8, 0x100000n); // device table at 1 MiB
   * const dte = encodeDte({
   *   valid: true, translationValid: true, mode: 1, root: 0x200000, readable: true, writable: true,
   * });
   * ram.write64(0x100000 + 0x20 * 32, dte[0]);
   * ram.write64(0x100000 + 0x20 * 32 + 8, dte[1]);
   * // IOVA 0x5000 -> 0x300000, read-only:
   * ram.write64(0x200000 + 5 * 8, 0x300000n | (1n << 61n) | 1n);
   * iommu.writeRegister(0x0018, 8, 1n); // IommuEn
   * deepEqual(iommu.resolve(0x20, 0x5123, 1), {
   *   ok: true, iovaBase: 0x5123, physBase: 0x300123, length: 0xedd, perms: 1,
   * });
   * deepEqual(iommu.resolve(0x20, 0x5123, 2), { ok: false, kind: "permission" });
   * equal(iommu.resolve(0x20, 0x6000, 1).ok, false); // not present
   * ```
   */
  resolve(rid: number, iova: number, access: number): TranslationAnswer {
    this.counters.resolves++;
    const t = this.#translate(rid, iova, access, true);
    this.#options.trace?.(
      `miss dev=${bdf(rid)} iova=0x${iova.toString(16)} ${access & 2 ? "write" : "read"} -> ${
        t.ok
          ? `gpa=0x${
            (t.answer.physBase + (iova - t.answer.iovaBase)).toString(16)
          } run=${t.answer.length} perms=${t.answer.perms & 1 ? "r" : "-"}${
            t.answer.perms & 2 ? "w" : "-"
          }`
          : t.kind
      }`,
    );
    return t.ok ? t.answer : t;
  }

  /**
   * What a worker's snapshot may cache after a successful miss: the DTE
   * record and the page plus its valid neighbours (so a sequential transfer
   * does not pay one round trip per page).
   *
   * Neighbours that are 4 KiB leaves of the same level-1 table as the page
   * before them are read straight from that table, with the directory walk
   * of the first (the permissions of the directory levels AND-ed with the
   * leaf's, as a full walk computes them); anything else takes a full walk.
   *
   * @param rid Requester id.
   * @param iova The address that missed.
   * @param pages Most translations to return (default: the page and `neighbours` more).
   * @returns The record and translations.
   *
   * @example A miss publishes the page and its mapped neighbours
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { encodeDte } from "./device_table.ts";
   * import { DteState } from "../shared/layout.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 4 << 20 });
   * const iommu = new AmdViIommu(ram);
   * iommu.writeRegister(0x0000, 8, 0x100000n); // device table at 1 MiB
   * const dte = encodeDte({
   *   valid: true, translationValid: true, mode: 1, root: 0x200000, readable: true, writable: true,
   *   domainId: 5,
   * });
   * ram.write64(0x100000 + 0x20 * 32, dte[0]);
   * ram.write64(0x100000 + 0x20 * 32 + 8, dte[1]);
   * ram.write64(0x200000 + 5 * 8, 0x300000n | (3n << 61n) | 1n); // IOVA 0x5000 -> 0x300000
   * ram.write64(0x200000 + 6 * 8, 0x380000n | (3n << 61n) | 1n); // IOVA 0x6000 -> 0x380000
   * iommu.writeRegister(0x0018, 8, 1n); // IommuEn
   * const { dte: record, translations } = iommu.fill(0x20, 0x5000);
   * equal(record.state, DteState.Translate);
   * // Both pages, then the walk stops at the hole at 0x7000:
   * deepEqual(translations.map((t) => t.physBase), [0x300000, 0x380000]);
   * ```
   */
  fill(
    rid: number,
    iova: number,
    pages?: number,
  ): { dte: SnapshotDte; translations: SnapshotTranslation[] } {
    const { record, dte } = this.#record(rid);
    if (record.state !== DteState.Translate || dte === undefined) {
      return { dte: record, translations: [] };
    }
    const ex = record.exclusion;
    // A published page must not overlap a range that is never translated (the
    // MSI window, the exclusion range): the worker would translate through it.
    const untranslated = (start: number, end: number) =>
      (ex !== undefined && start <= ex.limit && ex.base < end) ||
      (start <= MSI_LIMIT && MSI_BASE < end);
    const translations: SnapshotTranslation[] = [];
    let walk: WalkResult = walkPageTable(this.#memory, { dte, iova, access: 0 });
    const count = pages ?? (this.#options.neighbours ?? 31) + 1;
    let leaves: LeafTable | undefined;
    for (let i = 0; i < count && walk.ok; i++) {
      if (untranslated(walk.iovaBase, walk.iovaBase + 2 ** walk.shift)) break;
      translations.push({
        rid,
        shift: walk.shift,
        iovaBase: walk.iovaBase,
        physBase: walk.physBase,
        perms: walk.perms,
        domain: dte.domainId,
      });
      const next = walk.iovaBase + 2 ** walk.shift;
      if (next > MAX_ADDRESS) break;
      let fast: WalkSuccess | undefined;
      if (walk.shift === 12) {
        const region = Math.floor(next / 2 ** 21);
        if (leaves?.region !== region) leaves = leafTable(this.#memory, dte, next);
        fast = leaves && leafEntry(this.#memory, leaves, next);
      }
      walk = fast ?? walkPageTable(this.#memory, { dte, iova: next, access: 0 });
    }
    this.counters.fills += translations.length;
    return { dte: record, translations };
  }

  /** Shortens a translated run so it stops before the MSI window or the exclusion range. */
  #clampRun(
    iova: number,
    length: number,
    excl: { base: number; limit: number } | undefined,
  ): number {
    let end = iova + length;
    if (iova < MSI_BASE && end > MSI_BASE) end = MSI_BASE;
    if (excl !== undefined && iova < excl.base && end > excl.base) end = excl.base;
    return end - iova;
  }

  /** Reads the DMA words of a DTE (each 64-bit word atomically; the table is 32-byte aligned). */
  #readDte(address: number): DeviceTableEntry {
    const m = this.#memory;
    const aligned = address % 8 === 0;
    const q0 = aligned ? m.atomicLoad64(address) : m.read64(address);
    const q1 = aligned ? m.atomicLoad64(address + 8) : m.read64(address + 8);
    return decodeDte(q0, q1);
  }

  /** The cacheable state of a requester's DTE (no events are logged). */
  #record(rid: number): { record: SnapshotDte; dte: DeviceTableEntry | undefined } {
    const unknown = {
      record: { rid, state: DteState.Unknown, perms: 0, domain: 0, exclusion: undefined },
      dte: undefined,
    };
    if (!this.enabled) {
      return {
        record: { rid, state: DteState.PassThrough, perms: 3, domain: 0, exclusion: undefined },
        dte: undefined,
      };
    }
    const tableBytes = (Number(this.#devTabBase & 0x1ffn) + 1) * 4096;
    if (rid * 32 + 32 > tableBytes) return unknown;
    const dteAddress = Number(this.#devTabBase & 0x000f_ffff_ffff_f000n) + rid * 32;
    if (!this.#memory.isRam(dteAddress, 16)) return unknown;
    const dte = this.#readDte(dteAddress);
    if (!dte.valid) {
      return {
        record: { rid, state: DteState.PassThrough, perms: 3, domain: 0, exclusion: undefined },
        dte,
      };
    }
    if (dte.reservedBitsSet || !dte.translationValid || dte.mode > AMD_VI_MAX_LEVELS) {
      return unknown;
    }
    const perms = (dte.readable ? 1 : 0) | (dte.writable ? 2 : 0);
    const state = dte.mode === 0 ? DteState.Identity : DteState.Translate;
    return {
      record: { rid, state, perms, domain: dte.domainId, exclusion: this.#exclusionRange(dte) },
      dte,
    };
  }

  // ---------------------------------------------------------------- commands

  #kick(): void {
    if (this.#processing) {
      this.#again = true;
      return;
    }
    if (!this.#cmdRun || this.#cmdHead === this.#cmdTail) {
      this.#notifyIdle();
      return;
    }
    this.#processing = true;
    queueMicrotask(async () => {
      try {
        await this.#process();
      } catch (error) {
        // A bug here must not kill the process: stop the ring, keep the machine.
        this.#stopCommands();
        this.#options.onError?.(error);
      } finally {
        this.#processing = false;
        if (this.#again) {
          this.#again = false;
          this.#kick();
        } else {
          this.#notifyIdle();
        }
      }
    });
  }

  #notifyIdle(): void {
    if (this.#processing) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /**
   * Resolves when the command processor has nothing left to do (tests).
   *
   * @returns A promise.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { commands } from "./commands.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const iommu = new AmdViIommu(ram);
   * iommu.writeRegister(0x0008, 8, 0x0800_0000_0008_0000n); // command buffer at 0x80000
   * iommu.writeRegister(0x0018, 8, 0x1001n); // IommuEn, CmdBufEn
   * const [q0, q1] = commands.completionWait({ storeAddress: 0x90000, storeData: 0x5eedn });
   * ram.write64(0x80000, q0);
   * ram.write64(0x80008, q1);
   * iommu.writeRegister(0x2008, 8, 16n); // tail: the command runs asynchronously
   * await iommu.idle();
   * equal(ram.read64(0x90000), 0x5eedn);
   * equal(iommu.readRegister(0x2000, 8), 16n); // head caught up with tail
   * ```
   */
  idle(): Promise<void> {
    if (!this.#processing && (!this.#cmdRun || this.#cmdHead === this.#cmdTail)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #stopCommands(): void {
    this.#status &= ~AmdViStatus.CMD_BUF_RUN;
    this.#ringEpoch++;
  }

  async #process(): Promise<void> {
    while (this.#cmdRun && this.#cmdHead !== this.#cmdTail) {
      const epoch = this.#ringEpoch;
      const address = Number(this.#cmdBase & 0x000f_ffff_ffff_f000n) + Number(this.#cmdHead);
      if (!this.#memory.isRam(address, 16)) {
        this.#log(AmdViEvent.COMMAND_HARDWARE_ERROR, { type: 1, address: toBig(address) });
        this.#stopCommands();
        return;
      }
      const command = decodeCommand(this.#memory.read64(address), this.#memory.read64(address + 8));
      if (command.op === "ILLEGAL") {
        this.#log(AmdViEvent.ILLEGAL_COMMAND_ERROR, { address: toBig(address) });
        this.#stopCommands();
        return;
      }
      this.counters.commands++;
      this.#options.trace?.(`command ${describeCommand(command)}`);
      const ok = await this.#execute(command, address);
      if (epoch !== this.#ringEpoch) return; // the ring was stopped or reprogrammed meanwhile
      if (!ok) {
        this.#stopCommands();
        return;
      }
      this.#cmdHead = (this.#cmdHead + 16n) % this.#cmdSize;
    }
  }

  /** Executes one command; false when it failed (a hardware error was logged). */
  async #execute(
    command: Exclude<IommuCommand, { op: "ILLEGAL" }>,
    address: number,
  ): Promise<boolean> {
    switch (command.op) {
      case "COMPLETION_WAIT": {
        // Every earlier command, including every acknowledgement, completes first.
        const pending = this.#pending;
        this.#pending = [];
        await Promise.all(pending);
        if (command.store) {
          if (!this.#memory.isRam(command.storeAddress, 8)) {
            this.#log(AmdViEvent.COMMAND_HARDWARE_ERROR, {
              type: 1,
              address: toBig(command.storeAddress),
            });
            return false;
          }
          // Atomic, so a guest polling the semaphore with Atomics sees the whole value.
          this.#memory.atomicStore64(command.storeAddress, command.storeData);
          this.#memory.notify64(command.storeAddress);
        }
        this.#options.trace?.(
          `COMPLETION_WAIT done after ${pending.length} acknowledgements${
            command.store
              ? `: stored 0x${command.storeData.toString(16)} at 0x${
                command.storeAddress.toString(16)
              }`
              : ""
          }${command.interrupt ? ", ComWaitInt" : ""}`,
        );
        if (command.interrupt) {
          this.#status |= AmdViStatus.COM_WAIT_INT;
          this.#updateIrq();
        }
        return true;
      }
      case "INVALIDATE_DEVTAB_ENTRY":
        this.counters.invalidations++;
        this.#faulted.delete(command.deviceId);
        this.#broadcast(
          { kind: "device", rid: command.deviceId, start: 0, end: MAX_ADDRESS },
          address,
          (link) => {
            link.dropDevice(command.deviceId);
          },
        );
        return true;
      case "INVALIDATE_IOMMU_PAGES":
        this.counters.invalidations++;
        this.#broadcast({ kind: "domain", domain: command.domainId, ...command.range }, address);
        return true;
      case "INVALIDATE_IOTLB_PAGES":
        this.counters.invalidations++;
        this.#broadcast({ kind: "device", rid: command.deviceId, ...command.range }, address);
        return true;
      case "INVALIDATE_INTERRUPT_TABLE":
        // No interrupt remapping is modelled: nothing is cached.
        return true;
      case "PREFETCH_IOMMU_PAGES": {
        for (const link of this.#links) {
          if (!link.rids.includes(command.deviceId)) continue;
          const count = Math.max(1, command.count);
          for (let i = 0; i < count; i++) {
            const iova = command.address + i * 4096;
            if (iova > MAX_ADDRESS) break;
            const t = this.#translate(command.deviceId, iova, 0, false);
            if (t.ok) link.prefetch(command.deviceId, iova);
          }
        }
        return true;
      }
      case "INVALIDATE_IOMMU_ALL":
        this.counters.invalidations++;
        this.#faulted.clear();
        this.#broadcast({ kind: "all" }, address);
        return true;
    }
  }

  #waitLimitMs(): number {
    const code = Number(bits(this.#control, 7, 5));
    const ms = invTimeoutMs(code);
    return Number.isFinite(ms) ? ms : this.#options.watchdogMs ?? 60_000;
  }

  /**
   * Starts an invalidation on every worker it may concern; the wait for their
   * acknowledgements becomes part of the next COMPLETION_WAIT.
   */
  #broadcast(
    scope: InvalidationScope,
    commandAddress: number,
    before?: (link: WorkerLink) => void,
  ): void {
    const timeout = this.#waitLimitMs();
    for (const link of this.#links) {
      if (!link.concerns(scope)) continue;
      before?.(link);
      this.#pending.push(this.#invalidateOne(link, scope, timeout, commandAddress));
    }
  }

  async #invalidateOne(
    link: WorkerLink,
    scope: InvalidationScope,
    timeout: number,
    commandAddress: number,
  ): Promise<void> {
    const trace = this.#options.trace;
    const started = trace ? performance.now() : 0;
    trace?.(`invalidate ${describeScope(scope)} -> ${link.id}`);
    const outcome = await link.invalidate(scope, timeout);
    trace?.(
      `invalidate ${describeScope(scope)} -> ${link.id}: ${outcome} after ${
        (performance.now() - started).toFixed(2)
      } ms`,
    );
    if (outcome !== "timed-out") return;
    this.counters.timeouts++;
    this.#log(AmdViEvent.IOTLB_INV_TIMEOUT, {
      deviceId: link.rids[0] ?? 0,
      address: toBig(commandAddress) & ~0xfn,
    });
    const reason =
      `Device ${link.id} did not acknowledge an IOTLB invalidation within ${timeout} ms`;
    await (this.#options.failWorker?.(link, reason) ?? Promise.resolve());
  }

  /**
   * A description of the register state (for logs and tests).
   *
   * @returns One line.
   *
   * @example
   * ```ts
   * import { AmdViIommu } from "./amd_vi.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const iommu = new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
   * iommu.writeRegister(0x0018, 8, 1n); // IommuEn
   * equal(iommu.describe(), "control 0x1 status 0x0 cmd 0x0/0x0 evt 0x0/0x0");
   * ```
   */
  describe(): string {
    return `control ${hex(this.#control)} status ${hex(this.#status)} cmd ${hex(this.#cmdHead)}/${
      hex(this.#cmdTail)
    } evt ${hex(this.#evtHead)}/${hex(this.#evtTail)}`;
  }
}

/** The level-1 table a walk of `iova` reaches, with the permissions of the levels above it. */
interface LeafTable {
  /** IOVA bits 63:21 of the region the table maps. */
  readonly region: number;
  /** The table's physical address. */
  readonly table: number;
  /** The DTE's and every directory entry's permissions, AND-ed. */
  readonly perms: number;
}

/**
 * The directory part of the walk of `iova` (the same checks as
 * `walkPageTable`, with no access to check): the level-1 table it reaches,
 * or `undefined` when the walk ends any other way (a leaf above level 1, a
 * fault, an entry outside RAM), which the caller then walks in full.
 */
function leafTable(
  memory: GuestMemory,
  dte: DeviceTableEntry,
  iova: number,
): LeafTable | undefined {
  let level = dte.mode;
  const span = 12 + 9 * level;
  if (span < 53 && iova >= 2 ** span) return undefined;
  let perms = (dte.readable ? 1 : 0) | (dte.writable ? 2 : 0);
  let table = dte.root;
  while (level > 1) {
    const shift = LEVEL_SHIFT[level]!;
    const entryAddress = table + (Math.floor(iova / 2 ** shift) % 512) * 8;
    if (entryAddress % 8 !== 0 || !memory.isRam(entryAddress, 8)) return undefined;
    const e = memory.atomicLoad64(entryAddress);
    if ((e & 1n) === 0n || (e & PDE_RESERVED) !== 0n) return undefined;
    const next = Number(bits(e, 11, 9));
    if (next === 0 || next === 7 || next >= level) return undefined;
    perms &= Number(bits(e, 62, 61));
    const low = LEVEL_SHIFT[next + 1]!;
    if (Math.floor(iova / 2 ** low) % 2 ** (shift - low) !== 0) return undefined;
    table = Number(bits(e, 51, 12)) * 4096;
    level = next;
  }
  return { region: Math.floor(iova / 2 ** 21), table, perms };
}

/**
 * The 4 KiB translation of `iova` from its level-1 table, when its entry is
 * a present, plain leaf (NextLevel 0, no reserved bit); `undefined` sends the
 * caller to a full walk.
 */
function leafEntry(memory: GuestMemory, leaves: LeafTable, iova: number): WalkSuccess | undefined {
  const entryAddress = leaves.table + (Math.floor(iova / 4096) % 512) * 8;
  if (!memory.isRam(entryAddress, 8)) return undefined;
  const e = memory.atomicLoad64(entryAddress);
  const lo = Number(e & 0xffff_ffffn);
  const hi = Number(e >> 32n);
  // Present, NextLevel 0, reserved bits 58:52 clear.
  if ((lo & 1) === 0 || ((lo >>> 9) & 7) !== 0 || ((hi >>> 20) & 0x7f) !== 0) return undefined;
  return {
    ok: true,
    shift: 12,
    iovaBase: Math.floor(iova / 4096) * 4096,
    physBase: (hi & 0xf_ffff) * 0x1_0000_0000 + ((lo & 0xffff_f000) >>> 0),
    perms: leaves.perms & ((hi >>> 29) & 3),
  };
}
