/**
 * Where the stress runner puts things: guest RAM regions, each device's IOVA
 * windows, and the control block in guest RAM through which the guest agents
 * and the runner (main isolate) share the IOMMU lock, progress counters,
 * latency histograms and page events. Defined once, here, by name.
 *
 * The control block is a run of 32-bit words at {@linkcode STRESS_RAM.control};
 * both sides address it as an `Int32Array` over guest RAM and use only
 * `Atomics` on it.
 *
 * @module
 */

/** 4 KiB. */
export const PAGE_4K = 0x1000;
/** 2 MiB. */
export const PAGE_2M = 0x20_0000;

/**
 * Guest RAM layout of a stress machine.
 *
 * @example
 * ```ts
 * import { STRESS_RAM, agentSlice } from "./stress_layout.ts";
 * import { equal } from "node:assert/strict";
 * equal(agentSlice(0).base, STRESS_RAM.agents);
 * equal(agentSlice(1).base - agentSlice(0).base, STRESS_RAM.agentStride);
 * ```
 */
export const STRESS_RAM = {
  /** RAM size. */
  size: 512 * 1024 * 1024,
  /** The control block (1 MiB). */
  control: 0x0010_0000,
  /** Control block size in bytes. */
  controlSize: 0x0010_0000,
  /** The IOMMU's device table, command ring and event log (owned by the setup agent). */
  iommu: 0x0020_0000,
  /** Size of the IOMMU region. */
  iommuSize: 0x0020_0000,
  /** First agent's slice. */
  agents: 0x0200_0000,
  /** Bytes per agent slice. */
  agentStride: 0x0180_0000,
  /** Most agents (guest agents 1 … 15 of a machine). */
  maxAgents: 15,
} as const;

/**
 * One agent's slice of RAM: page tables and small driver pages, driver
 * memory (NIC rings and buffers), a pool of 4 KiB pages and a pool of 2 MiB
 * pages. Every DMA of the agent's devices lands inside its slice.
 */
export interface AgentSlice {
  /** First byte. */
  readonly base: number;
  /** One past the last byte. */
  readonly end: number;
  /** Page tables, PRD tables (2 MiB). */
  readonly tables: { readonly base: number; readonly size: number };
  /** NIC driver memory (2 MiB). */
  readonly drivers: { readonly base: number; readonly size: number };
  /** 4 KiB data pages (4 MiB). */
  readonly pages: { readonly base: number; readonly size: number };
  /** 2 MiB data pages (16 MiB, 2 MiB aligned). */
  readonly hugePages: { readonly base: number; readonly size: number };
}

/**
 * The RAM slice of agent `index` (0-based among the stress agents).
 *
 * @param index Agent number.
 * @returns Its slice.
 *
 * @example
 * ```ts
 * import { agentSlice, PAGE_2M } from "./stress_layout.ts";
 * import { equal } from "node:assert/strict";
 * equal(agentSlice(2).hugePages.base % PAGE_2M, 0);
 * ```
 */
export function agentSlice(index: number): AgentSlice {
  if (!(Number.isInteger(index) && index >= 0 && index < STRESS_RAM.maxAgents)) {
    throw new RangeError(`Invalid stress agent ${index}: 0 to ${STRESS_RAM.maxAgents - 1}`);
  }
  const base = STRESS_RAM.agents + index * STRESS_RAM.agentStride;
  return {
    base,
    end: base + STRESS_RAM.agentStride,
    tables: { base, size: 0x20_0000 },
    drivers: { base: base + 0x20_0000, size: 0x20_0000 },
    pages: { base: base + 0x40_0000, size: 0x40_0000 },
    hugePages: { base: base + 0x80_0000, size: 0x100_0000 },
  };
}

/**
 * Each device's IOVA windows (every device has its own page tables, so the
 * windows repeat per device). All lie above the agents' RAM, so the PRD
 * table pages the IDE driver addresses by their physical address (mapped
 * 1:1) never collide with them.
 *
 * @example
 * ```ts
 * import { IOVA } from "./stress_layout.ts";
 * import { ok } from "node:assert/strict";
 * ok(IOVA.nic >= 2 ** 32); // the NIC's rings live above 4 GiB
 * ```
 */
export const IOVA = {
  /** Source page of a live remap (a repeating edu copy reads it). */
  streamSrc: 0x4000_0000,
  /** Destination page of a live remap. */
  streamDst: 0x4000_1000,
  /** Persistent 4 KiB data slots, contiguous in IOVA, scattered in RAM. */
  data: 0x4100_0000,
  /** Transient 4 KiB mappings (map/unmap, permission and out-of-RAM probes). */
  transient: 0x4200_0000,
  /** Never mapped: DMA here faults with no translation. */
  hole: 0x4300_0000,
  /** Transient 2 MiB mappings. */
  huge: 0x4400_0000,
  /** NIC rings and buffers (above 4 GiB: 64-bit descriptors). */
  nic: 0x1_0000_0000,
} as const;

/** Data slots per device kind. */
export const DATA_SLOTS = { edu: 8, ide: 64, e1000: 0 } as const;
/** Transient 4 KiB slots per device. */
export const TRANSIENT_SLOTS = 16;
/** Transient 2 MiB slots per device. */
export const HUGE_SLOTS = 2;

/** IOMMU command ring entries (ComLen 9). */
export const CMD_ENTRIES = 512;
/** Event log entries (EventLen 8): small, so floods overflow it quickly. */
export const EVENT_ENTRIES = 256;

/**
 * Word offsets of the control block header.
 *
 * @example
 * ```ts
 * import { Ctl } from "./stress_layout.ts";
 * import { equal } from "node:assert/strict";
 * equal(Ctl.STOP, 1);
 * ```
 */
export const Ctl = {
  /** {@linkcode CONTROL_MAGIC} once the setup agent has initialised everything. */
  MAGIC: 0,
  /** Non-zero: every agent stops after its current operation. */
  STOP: 1,
  /** The IOMMU lock: 0 free, else the holder's agent number + 1. */
  LOCK: 2,
  /** Software's command ring tail (bytes). */
  CMD_TAIL: 3,
  /** The command ring head last read from the IOMMU. */
  CMD_HEAD: 4,
  /** Device table base. */
  DEVTAB: 5,
  /** Command ring base. */
  CMD_BASE: 6,
  /** Event log base. */
  EVT_BASE: 7,
  /** Event log overflows seen. */
  OVERFLOWS: 8,
  /** Events other than page faults and timeouts. */
  OTHER_EVENTS: 9,
  /** Violations the agents found. */
  VIOLATIONS: 10,
  /** Lock waits that took more than a millisecond. */
  LOCK_CONTENDED: 11,
  /** IO_PAGE_FAULT events drained, per requester id (256 words). */
  PAGE_FAULTS: 64,
  /** IOTLB_INV_TIMEOUT events drained, per requester id (256 words). */
  TIMEOUTS: 320,
  /** First agent block. */
  AGENTS: 1024,
  /** Words per agent block. */
  AGENT_WORDS: 8192,
} as const;

/** What {@linkcode Ctl.MAGIC} holds once set up ("STRS"). */
export const CONTROL_MAGIC = 0x5352_5453;

/**
 * Word offsets inside an agent's block of the control block.
 *
 * @example
 * ```ts
 * import { AgentCtl, Ctl, agentWord } from "./stress_layout.ts";
 * import { equal } from "node:assert/strict";
 * equal(agentWord(1, AgentCtl.OPS), Ctl.AGENTS + Ctl.AGENT_WORDS);
 * ```
 */
export const AgentCtl = {
  /** Operations completed. */
  OPS: 0,
  /** 1 while the agent is between a trace mark and the publication of its page event. */
  PENDING: 1,
  /** Page-event ring head (the runner consumes). */
  EVT_HEAD: 2,
  /** Page-event ring tail (the agent produces). */
  EVT_TAIL: 3,
  /** Fault requests the runner has carried out. */
  FAULT_ACK: 4,
  /** The operation running (its kind's number). */
  CURRENT: 5,
  /** 1 once the agent finished. */
  DONE: 6,
  /** Operations skipped because their device had died (counted in OPS too). */
  SKIPPED: 7,
  /** The agent's COMPLETION_WAIT semaphore (64-bit, words 8–9). */
  SEM: 8,
  /** Invalidation latency histogram: bucket k counts waits in [2^k, 2^(k+1)) µs. */
  LATENCY: 16,
  /** Operations by kind. */
  KIND_OPS: 64,
  /** Operations by the agent's device number. */
  DEVICE_OPS: 112,
  /** Checks performed by kind (see {@linkcode CHECK_NAMES}). */
  CHECKS: 160,
  /** Page-event ring. */
  RING: 1024,
} as const;

/** Latency histogram buckets. */
export const LATENCY_BUCKETS = 32;
/** Page events the ring holds. */
export const EVENT_RING_ENTRIES = (Ctl.AGENT_WORDS - AgentCtl.RING) / 4;
/** Devices per agent the counters can tell apart. */
export const MAX_AGENT_DEVICES = 48;

/**
 * The checks the agents count.
 *
 * @example
 * ```ts
 * import { AgentCtl, agentWord, CHECK_NAMES } from "./stress_layout.ts";
 * import { equal } from "node:assert/strict";
 * // Agent 2's word counting `poison` checks.
 * const word = agentWord(2, AgentCtl.CHECKS + CHECK_NAMES.indexOf("poison"));
 * equal(word, 1024 + 2 * 8192 + 160 + 2);
 * ```
 */
export const CHECK_NAMES = [
  "integrity",
  "ordering",
  "poison",
  "permission",
  "visibility",
  "out-of-ram",
  "durability",
  "dte",
  "overflow",
] as const;

/** A check's name. */
export type CheckName = typeof CHECK_NAMES[number];

/**
 * The word index of `word` in agent `agent`'s block.
 *
 * @param agent Agent number (0-based).
 * @param word Offset from {@linkcode AgentCtl}.
 * @returns Index into the control block's words.
 *
 * @example
 * ```ts
 * import { AgentCtl, agentWord } from "./stress_layout.ts";
 * import { equal } from "node:assert/strict";
 * equal(agentWord(0, AgentCtl.SEM) % 2, 0); // 8-byte aligned
 * ```
 */
export function agentWord(agent: number, word: number): number {
  return Ctl.AGENTS + agent * Ctl.AGENT_WORDS + word;
}

/** Page event kinds in the ring. */
export const PageEventKind = {
  /** The page's translation was removed and the removal completed. */
  INVALID: 1,
  /** The page is about to be mapped (used) again. */
  REUSE: 2,
} as const;

/**
 * The control block's words over a RAM buffer.
 *
 * @param buffer Guest RAM's SharedArrayBuffer.
 * @returns The words.
 *
 * @example
 * ```ts
 * import { controlWords, Ctl } from "./stress_layout.ts";
 * import { equal } from "node:assert/strict";
 * const words = controlWords(new SharedArrayBuffer(4 << 20));
 * equal(Atomics.load(words, Ctl.STOP), 0);
 * ```
 */
export function controlWords(buffer: SharedArrayBuffer): Int32Array<SharedArrayBuffer> {
  return new Int32Array(buffer, STRESS_RAM.control, STRESS_RAM.controlSize / 4);
}
