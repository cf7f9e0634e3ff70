/**
 * The stress runner's operations and their seeded generator. An operation
 * is drawn from the agent's random stream and the static list of its devices
 * only, never from what happened at run time, so a seed gives every agent
 * the same sequence of operations on every run (what `--replay` relies on).
 *
 * @module
 */

import { type Random, seededRandom } from "../util/random.ts";
import { DATA_SLOTS, HUGE_SLOTS, TRANSIENT_SLOTS } from "./stress_layout.ts";

/** Device kinds the runner drives. */
export type StressDeviceKind = "edu" | "ide" | "e1000";

/**
 * How a change to the page tables is invalidated (then COMPLETION_WAIT):
 * `page` INVALIDATE_IOMMU_PAGES of the one 4 KiB page (S = 0), `range` an
 * aligned S = 1 range around it, `domain` all of the domain's pages,
 * `devtab-domain` INVALIDATE_DEVTAB_ENTRY then all pages, `all`
 * INVALIDATE_IOMMU_ALL, `page-iotlb` the page plus INVALIDATE_IOTLB_PAGES.
 */
export type InvalidateKind = "page" | "range" | "domain" | "devtab-domain" | "all" | "page-iotlb";

/**
 * A flush with nothing changed: an {@linkcode InvalidateKind}, or
 * INVALIDATE_DEVTAB_ENTRY alone, INVALIDATE_IOTLB_PAGES alone, a bare
 * COMPLETION_WAIT (with or without its interrupt), or PREFETCH_IOMMU_PAGES.
 */
export type FlushKind = InvalidateKind | "devtab" | "iotlb" | "cw" | "cw-interrupt" | "prefetch";

/** One operation of a guest agent. `device` is the agent's device number. */
export type StressOp =
  /** edu copies `length` bytes between two data slots (integrity, ordering before status). */
  | {
    readonly kind: "edu-copy";
    readonly device: number;
    readonly src: number;
    readonly dst: number;
    readonly offset: number;
    readonly length: number;
    readonly irq: boolean;
    readonly seed: number;
  }
  /** IDE writes sectors from data slots, reads them back into others (or a 2 MiB page). */
  | {
    readonly kind: "ide-rw";
    readonly device: number;
    readonly channel: number;
    readonly lba: number;
    readonly sectors: number;
    readonly first: number;
    readonly huge: boolean;
    readonly seed: number;
  }
  /** IDE FLUSH CACHE: what was written is now durable. */
  | { readonly kind: "ide-flush"; readonly device: number; readonly channel: number }
  /** e1000 sends frames to itself (MAC loopback) and checks what it receives. */
  | {
    readonly kind: "nic-loop";
    readonly device: number;
    readonly sizes: readonly number[];
    readonly seed: number;
  }
  /** edu copies continuously while its source or destination page is remapped and poisoned. */
  | {
    readonly kind: "remap-live";
    readonly device: number;
    readonly huge: boolean;
    readonly rounds: ReadonlyArray<{ readonly src: boolean; readonly flush: InvalidateKind }>;
    readonly seed: number;
  }
  /** IDE reads into data slots while some of them are remapped and poisoned. */
  | {
    readonly kind: "ide-remap-live";
    readonly device: number;
    readonly channel: number;
    readonly lba: number;
    readonly sectors: number;
    readonly remaps: ReadonlyArray<{ readonly slot: number; readonly flush: InvalidateKind }>;
  }
  /** Map a 4 KiB or 2 MiB page, DMA into it, unmap it, poison it, and check DMA there faults. */
  | {
    readonly kind: "map-unmap";
    readonly device: number;
    readonly huge: boolean;
    readonly slot: number;
    readonly flush: InvalidateKind;
    readonly offset: number;
    readonly length: number;
    readonly seed: number;
  }
  /** A write through a read-only mapping or a read through a write-only one must fault. */
  | {
    readonly kind: "perm-probe";
    readonly device: number;
    readonly mode: "write-ro" | "read-wo";
    readonly slot: number;
  }
  /** A mapping to memory outside RAM or to MMIO must fault and touch nothing. */
  | {
    readonly kind: "oob-probe";
    readonly device: number;
    readonly target: "above-ram" | "own-mmio" | "far";
    readonly slot: number;
  }
  /** Device-table changes. */
  | {
    readonly kind: "dte";
    readonly device: number;
    readonly change: "block" | "block-tv" | "domain" | "suppress-all" | "suppress-repeated";
  }
  /** A flush with nothing changed. */
  | { readonly kind: "flush"; readonly device: number; readonly flush: FlushKind }
  /** Faults until the event log overflows, then restart it. */
  | { readonly kind: "flood"; readonly device: number }
  /** Ask the runner to break a device worker. */
  | {
    readonly kind: "fault";
    readonly device: number;
    readonly fault: "stall" | "stall-timeout" | "crash" | "kill";
  };

/**
 * Every operation kind, in counter order.
 *
 * @example
 * ```ts
 * import { OP_KINDS } from "./ops.ts";
 * import { equal } from "node:assert/strict";
 * import { AgentCtl } from "./stress_layout.ts";
 * // An agent's per-kind counter for `dte` operations.
 * equal(AgentCtl.KIND_OPS + OP_KINDS.indexOf("dte"), 64 + 9);
 * equal(OP_KINDS.length <= AgentCtl.DEVICE_OPS - AgentCtl.KIND_OPS, true); // counters fit
 * ```
 */
export const OP_KINDS = [
  "edu-copy",
  "ide-rw",
  "ide-flush",
  "nic-loop",
  "remap-live",
  "ide-remap-live",
  "map-unmap",
  "perm-probe",
  "oob-probe",
  "dte",
  "flush",
  "flood",
  "fault",
] as const satisfies ReadonlyArray<StressOp["kind"]>;

/** An operation kind. */
export type StressOpKind = typeof OP_KINDS[number];

/** Sectors of each IDE disk the runner attaches. */
export const STRESS_DISK_SECTORS = 32768;

const INVALIDATE_4K: readonly InvalidateKind[] = [
  "page",
  "range",
  "domain",
  "devtab-domain",
  "all",
  "page-iotlb",
];
const INVALIDATE_2M: readonly InvalidateKind[] = ["range", "domain", "devtab-domain", "all"];
const FLUSHES: readonly FlushKind[] = [
  ...INVALIDATE_4K,
  "devtab",
  "iotlb",
  "cw",
  "cw-interrupt",
  "prefetch",
];

/** Options of the generator. */
export interface OpGeneratorOptions {
  /** Include worker stalls, crashes and kills. */
  readonly faults?: boolean;
}

interface Weighted {
  readonly kind: StressOpKind;
  readonly weight: number;
  readonly needs: StressDeviceKind | "any";
}

const WEIGHTS: readonly Weighted[] = [
  { kind: "edu-copy", weight: 14, needs: "edu" },
  { kind: "ide-rw", weight: 10, needs: "ide" },
  { kind: "ide-flush", weight: 3, needs: "ide" },
  { kind: "nic-loop", weight: 10, needs: "e1000" },
  { kind: "remap-live", weight: 14, needs: "edu" },
  { kind: "ide-remap-live", weight: 5, needs: "ide" },
  { kind: "map-unmap", weight: 10, needs: "edu" },
  { kind: "perm-probe", weight: 4, needs: "edu" },
  { kind: "oob-probe", weight: 3, needs: "edu" },
  { kind: "dte", weight: 5, needs: "any" },
  { kind: "flush", weight: 8, needs: "any" },
  { kind: "flood", weight: 0.3, needs: "edu" },
  { kind: "fault", weight: 0.12, needs: "any" },
];

/**
 * The random stream of agent `agent` for run seed `seed`.
 *
 * @param seed The run's seed.
 * @param agent Agent number (0-based).
 * @returns A generator.
 *
 * @example
 * ```ts
 * import { agentRandom } from "./ops.ts";
 * import { equal, notEqual } from "node:assert/strict";
 * equal(agentRandom(7, 1).next(), agentRandom(7, 1).next());
 * notEqual(agentRandom(7, 1).next(), agentRandom(7, 2).next());
 * ```
 */
export function agentRandom(seed: number, agent: number): Random {
  // Spread (seed, agent) over 32 bits so neighbouring seeds do not share streams.
  let h = (seed >>> 0) ^ Math.imul(agent + 1, 0x9e37_79b1);
  h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
  return seededRandom((h ^ (h >>> 16)) >>> 0);
}

/**
 * Generates operations for an agent that owns devices of kinds `devices`.
 *
 * @example Same seed, same operations
 * ```ts
 * import { OpGenerator } from "./ops.ts";
 * import { deepEqual } from "node:assert/strict";
 * const take = () => {
 *   const g = new OpGenerator(42, 0, ["edu", "ide", "e1000"]);
 *   return Array.from({ length: 20 }, () => g.next());
 * };
 * deepEqual(take(), take());
 * ```
 */
export class OpGenerator {
  #rng: Random;
  #devices: readonly StressDeviceKind[];
  #table: Weighted[];
  #total: number;

  /**
   * Creates the generator.
   *
   * @param seed The run's seed.
   * @param agent Agent number.
   * @param devices The agent's devices, by kind, in its order.
   * @param options Whether fault operations are included.
   */
  constructor(
    seed: number,
    agent: number,
    devices: readonly StressDeviceKind[],
    options: OpGeneratorOptions = {},
  ) {
    this.#rng = agentRandom(seed, agent);
    this.#devices = devices;
    this.#table = WEIGHTS.filter((w) =>
      (w.kind !== "fault" || options.faults === true) &&
      (w.needs === "any" ? devices.length > 0 : devices.includes(w.needs))
    );
    if (this.#table.length === 0) {
      // An agent without devices still flushes (every flush needs a device
      // number only for device-scoped commands).
      this.#table = [{ kind: "flush", weight: 1, needs: "any" }];
    }
    this.#total = this.#table.reduce((sum, w) => sum + w.weight, 0);
  }

  #device(kind: StressDeviceKind | "any"): number {
    const candidates: number[] = [];
    this.#devices.forEach((k, i) => {
      if (kind === "any" || k === kind) candidates.push(i);
    });
    return candidates.length === 0 ? -1 : this.#rng.pick(candidates);
  }

  /**
   * The next operation.
   *
   * @returns It.
   */
  next(): StressOp {
    const rng = this.#rng;
    let x = rng.next() * this.#total;
    let entry = this.#table[this.#table.length - 1]!;
    for (const w of this.#table) {
      if (x < w.weight) {
        entry = w;
        break;
      }
      x -= w.weight;
    }
    const device = this.#device(entry.needs);
    const seed = rng.int(0x7fff_ffff);
    switch (entry.kind) {
      case "edu-copy": {
        const length = 1 + rng.int(4096);
        const src = rng.int(DATA_SLOTS.edu);
        let dst = rng.int(DATA_SLOTS.edu - 1);
        if (dst >= src) dst++;
        return {
          kind: "edu-copy",
          device,
          src,
          dst,
          offset: rng.int(4096 - length + 1),
          length,
          irq: rng.next() < 0.3,
          seed,
        };
      }
      case "ide-rw": {
        const sectors = 8 * (1 + rng.int(32)); // 4 KiB … 128 KiB
        return {
          kind: "ide-rw",
          device,
          channel: rng.int(2),
          lba: 8 * rng.int((STRESS_DISK_SECTORS - sectors) / 8),
          sectors,
          first: rng.int(DATA_SLOTS.ide),
          huge: rng.next() < 0.25,
          seed,
        };
      }
      case "ide-flush":
        return { kind: "ide-flush", device, channel: rng.int(2) };
      case "nic-loop": {
        const frames = 1 + rng.int(6);
        return {
          kind: "nic-loop",
          device,
          sizes: Array.from({ length: frames }, () => 60 + rng.int(1455)),
          seed,
        };
      }
      case "remap-live": {
        const huge = rng.next() < 0.2;
        const rounds = Array.from({ length: 2 + rng.int(5) }, () => ({
          src: huge || rng.next() < 0.5,
          flush: rng.pick(huge ? INVALIDATE_2M : INVALIDATE_4K),
        }));
        return { kind: "remap-live", device, huge, rounds, seed };
      }
      case "ide-remap-live": {
        const sectors = 8 * (16 + rng.int(49)); // 64 KiB … 256 KiB
        return {
          kind: "ide-remap-live",
          device,
          channel: rng.int(2),
          lba: 8 * rng.int((STRESS_DISK_SECTORS - sectors) / 8),
          sectors,
          remaps: Array.from({ length: 1 + rng.int(3) }, () => ({
            slot: rng.int(sectors / 8),
            flush: rng.pick(INVALIDATE_4K),
          })),
        };
      }
      case "map-unmap": {
        const huge = rng.next() < 0.3;
        const length = 1 + rng.int(4096);
        return {
          kind: "map-unmap",
          device,
          huge,
          slot: rng.int(huge ? HUGE_SLOTS : TRANSIENT_SLOTS),
          flush: rng.pick(huge ? INVALIDATE_2M : INVALIDATE_4K),
          offset: rng.int((huge ? 0x20_0000 : 0x1000) - length + 1),
          length,
          seed,
        };
      }
      case "perm-probe":
        return {
          kind: "perm-probe",
          device,
          mode: rng.next() < 0.5 ? "write-ro" : "read-wo",
          slot: rng.int(TRANSIENT_SLOTS),
        };
      case "oob-probe":
        return {
          kind: "oob-probe",
          device,
          target: rng.pick(["above-ram", "own-mmio", "far"] as const),
          slot: rng.int(TRANSIENT_SLOTS),
        };
      case "dte":
        return {
          kind: "dte",
          device,
          change: rng.pick(
            ["block", "block-tv", "domain", "suppress-all", "suppress-repeated"] as const,
          ),
        };
      case "flush":
        return { kind: "flush", device, flush: rng.pick(FLUSHES) };
      case "flood":
        return { kind: "flood", device };
      case "fault": {
        // Mostly stalls, which the device survives; a few of each lethal kind.
        const x = rng.next();
        const fault = x < 0.7 ? "stall" : x < 0.8 ? "stall-timeout" : x < 0.9 ? "crash" : "kill";
        return { kind: "fault", device, fault };
      }
    }
  }
}

/**
 * A one-line description of an operation (for histories).
 *
 * @param op The operation.
 * @returns The line.
 *
 * @example
 * ```ts
 * import { describeOp } from "./ops.ts";
 * import { equal } from "node:assert/strict";
 * equal(describeOp({ kind: "flush", device: 0, flush: "all" }), "flush dev0 all");
 * ```
 */
export function describeOp(op: StressOp): string {
  const { kind, device, ...rest } = op;
  const fields = Object.entries(rest).map(([k, v]) =>
    typeof v === "object" ? `${k}=${JSON.stringify(v)}` : k === "flush" ? String(v) : `${k}=${v}`
  );
  return [kind, `dev${device}`, ...fields].join(" ");
}

/**
 * A 32-bit digest of a sequence of operations (FNV-1a over their
 * descriptions), to compare runs.
 *
 * @param ops The operations' descriptions.
 * @param start Digest so far (default: the FNV offset basis).
 * @returns The digest.
 *
 * @example
 * ```ts
 * import { digestOps } from "./ops.ts";
 * import { equal, notEqual } from "node:assert/strict";
 * equal(digestOps(["a", "b"]), digestOps(["b"], digestOps(["a"])));
 * notEqual(digestOps(["a", "b"]), digestOps(["b", "a"]));
 * ```
 */
export function digestOps(ops: Iterable<string>, start = 0x811c_9dc5): number {
  let h = start >>> 0;
  for (const line of ops) {
    for (let i = 0; i < line.length; i++) {
      h = Math.imul(h ^ line.charCodeAt(i), 0x0100_0193) >>> 0;
    }
    h = Math.imul(h ^ 10, 0x0100_0193) >>> 0;
  }
  return h;
}
