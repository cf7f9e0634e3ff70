/**
 * What the stress runner tells its guest agents and what they answer: the
 * plans passed (as JSON) in the agents' options, and their results.
 *
 * @module
 */

import type { StressDeviceKind } from "./ops.ts";

/** What went wrong, by the invariant it breaks. */
export type StressViolationKind =
  /** Invariant 1: a device used a translation after its invalidation completed. */
  | "use-after-invalidate"
  /** Invariant 2: an access the tables deny landed, or did not fault. */
  | "permission"
  /** Invariant 2: a denied access was not reported (device status or event log). */
  | "visibility"
  /** Invariant 3: a device touched memory outside RAM, or another agent's memory. */
  | "out-of-ram"
  /** Invariant 3/4: data moved by DMA is not what was sent, or was lost. */
  | "integrity"
  /** Invariant 4: data written and flushed is not on the disk image. */
  | "durability"
  /** Invariant 5: completion status or an interrupt came before the data. */
  | "ordering"
  /** An access the tables allow faulted. */
  | "unexpected-fault"
  /** A device failed without an injected fault, or an operation threw or hung. */
  | "failure";

/** One device as an agent sees it. */
export interface StressDevicePlan {
  /** Machine device id. */
  readonly id: string;
  /** Kind. */
  readonly kind: StressDeviceKind;
  /** Requester id. */
  readonly rid: number;
  /** BAR0 (edu, e1000). */
  readonly mmio: number;
  /** BAR4, the bus-master registers (IDE). */
  readonly bm: number;
  /** The two DomainIDs the device switches between. */
  readonly domains: readonly [number, number];
}

/** The plan of the setup agent (PCI resources, the IOMMU). */
export interface StressSetupPlan {
  /** Always `setup`. */
  readonly role: "setup";
  /** Control.InvTimeOut code. */
  readonly invTimeout: number;
}

/** The plan of one stress agent. */
export interface StressAgentPlan {
  /** Always `agent`. */
  readonly role: "agent";
  /** Agent number (0-based). */
  readonly agent: number;
  /** The run's seed. */
  readonly seed: number;
  /** Operations to run (0: until told to stop). */
  readonly ops: number;
  /** Fault operations are included. */
  readonly faults: boolean;
  /** InvTimeOut in ms. */
  readonly invTimeoutMs: number;
  /** The agent's devices. */
  readonly devices: readonly StressDevicePlan[];
  /** Stop every agent at the first violation. */
  readonly stopOnViolation: boolean;
}

/** A PCI function found by the setup agent. */
export interface StressFunction {
  /** Slot. */
  readonly slot: number;
  /** Vendor id. */
  readonly vendorId: number;
  /** Device id. */
  readonly deviceId: number;
  /** BAR addresses by index. */
  readonly bars: Readonly<Record<number, number>>;
}

/** What the setup agent returns. */
export interface StressSetupResult {
  /** Every function on bus 0. */
  readonly functions: readonly StressFunction[];
}

/** A violation an agent found. */
export interface StressAgentViolation {
  /** Which invariant. */
  readonly kind: StressViolationKind;
  /** What happened. */
  readonly message: string;
  /** The device involved. */
  readonly device?: string;
  /** The physical page involved. */
  readonly page?: number;
  /** The agent's operation number (0-based). */
  readonly op: number;
  /** The agent's recent history, oldest first. */
  readonly history: readonly string[];
}

/** Sectors an agent wrote and flushed: the image must hold them. */
export interface StressDurableSectors {
  /** IDE controller id. */
  readonly device: string;
  /** Channel (drive). */
  readonly channel: number;
  /** `[lba, checksum]` pairs. */
  readonly sectors: ReadonlyArray<readonly [number, number]>;
}

/** What a stress agent returns. */
export interface StressAgentResult {
  /** Agent number. */
  readonly agent: number;
  /** Operations drawn. */
  readonly ops: number;
  /** Operations skipped (their device had died). */
  readonly skipped: number;
  /** Operations abandoned because their device died during them. */
  readonly aborted: number;
  /** Digest of the operations drawn (see `digestOps`). */
  readonly digest: number;
  /** Violations found. */
  readonly violations: readonly StressAgentViolation[];
  /** The last lines of the agent's history. */
  readonly history: readonly string[];
  /** Flushed sectors for the durability check. */
  readonly durable: readonly StressDurableSectors[];
  /** Devices that died, with the operation that noticed. */
  readonly dead: ReadonlyArray<{ readonly device: string; readonly op: number }>;
  /** Fault injections the agent asked for. */
  readonly faults: ReadonlyArray<
    { readonly device: string; readonly kind: string; readonly op: number }
  >;
}

/** The prefix of an agent's log line that asks the runner for a fault. */
export const FAULT_REQUEST_PREFIX = "stress:fault ";

/** A fault request (the JSON after {@linkcode FAULT_REQUEST_PREFIX}). */
export interface StressFaultRequest {
  /** Agent number (its FAULT_ACK word is bumped when done). */
  readonly agent: number;
  /** Device id. */
  readonly device: string;
  /** What to do. */
  readonly kind: "stall" | "crash" | "kill";
  /** Stall length (ms). */
  readonly ms: number;
}
