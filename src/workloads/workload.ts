/**
 * The workload API: what a workload module (`--workload ./my_workload.ts`)
 * exports and what it receives. A workload is a module whose default export
 * is a {@linkcode Workload}: a function that runs in a guest agent (a vCPU
 * worker, so every access is synchronous), gets a {@linkcode WorkloadContext}
 * (the CPU plus the machine's devices, ready-made drivers, a memory
 * allocator and typed options) and returns a {@linkcode WorkloadSummary},
 * which the command line prints (any other value is printed as JSON).
 *
 * This API is stable: fields and methods may be added, none are removed or
 * change meaning within a major version.
 *
 * @example A workload (the module's default export: `export default factorials;`)
 * ```ts
 * import type { WorkloadContext, WorkloadSummary } from "./workload.ts";
 *
 * function factorials(ctx: WorkloadContext): WorkloadSummary {
 *   const rounds = ctx.options.integer("rounds", 3, { min: 1 });
 *   for (const fn of ctx.find("edu")) {
 *     const edu = ctx.edu(fn);
 *     let good = 0;
 *     for (let i = 0; i < rounds; i++) if (edu.factorial(5) === 120) good++;
 *     ctx.step(`${ctx.describe(fn)} factorial`, good === rounds, `${good} of ${rounds}`);
 *   }
 *   return ctx.summary();
 * }
 * ```
 *
 * @module
 */

import type { AmdViDriver, IommuDomain, MapPermissions } from "../guest/amd_vi_driver.ts";
import type { E1000Driver } from "../guest/e1000_driver.ts";
import type { EduDriver } from "../guest/edu_driver.ts";
import type { Guest } from "../guest/guest.ts";
import type { IdeDriver } from "../guest/ide_driver.ts";
import type { GuestPciFunction } from "../guest/pci.ts";
import type { WorkloadOptions } from "./workload_options.ts";

/** One checked step of a workload, as the summary lists it. */
export interface WorkloadStep {
  /** What was done, e.g. `edu 00:04.0 DMA`. */
  readonly step: string;
  /** Whether it worked. */
  readonly ok: boolean;
  /** Details for a human. */
  readonly detail: string;
}

/** A measured value: a number or a short text (a checksum, a MAC address). */
export type WorkloadMetric = number | string;

/**
 * What a workload returns for the command line to print: the steps (each
 * `ok` or `FAIL`) and the metrics (`name: value`). The run fails (exit code
 * 1) when `ok` is false.
 */
export interface WorkloadSummary {
  /** Whether every step passed. */
  readonly ok: boolean;
  /** The steps, in order. */
  readonly steps: readonly WorkloadStep[];
  /** Measurements by name (units in the name: `latency_p50_us`, `throughput_mbit_s`). */
  readonly metrics: Readonly<Record<string, WorkloadMetric>>;
}

/** Device kinds {@linkcode WorkloadContext.find} knows by their PCI ids. */
export type WorkloadDeviceKind = "edu" | "ide" | "e1000" | "iommu";

/** A buffer in guest RAM that a device reaches by DMA. */
export interface DmaBuffer {
  /** Guest-physical address (the CPU's view). */
  readonly phys: number;
  /** The address the device uses: an IOVA in its domain, or `phys` without an IOMMU. */
  readonly iova: number;
  /** Bytes (a whole number of 4 KiB pages). */
  readonly size: number;
}

/** Options for {@linkcode WorkloadContext.dmaBuffer}. */
export interface DmaBufferOptions {
  /** What the device may do (default `rw`). */
  readonly perms?: MapPermissions;
}

/** Options for {@linkcode WorkloadContext.ide}. */
export interface IdeDriverChoice {
  /** Channel: 0 primary (default), 1 secondary. */
  readonly channel?: 0 | 1;
  /** Drive on the channel: 0 master (default), 1 slave. */
  readonly unit?: 0 | 1;
  /** Bytes of the driver's DMA buffer (default 4 MiB; at most 32 MiB are used per command). */
  readonly bufferBytes?: number;
}

/** Options for {@linkcode WorkloadContext.e1000}. */
export interface E1000DriverChoice {
  /** Receive descriptors (multiple of 8, default 64). */
  readonly rxDescriptors?: number;
  /** Transmit descriptors (multiple of 8, default 64). */
  readonly txDescriptors?: number;
}

/**
 * What a workload receives: the CPU ({@linkcode Guest}: synchronous MMIO,
 * port I/O, RAM, interrupt waits) plus the machine's devices and drivers.
 *
 * Device discovery enumerates PCI bus 0 and assigns BARs like firmware on
 * first use. With an IOMMU, the context initialises it (as Linux does) on
 * first use and gives every device it hands a driver or buffer for its own
 * domain, so all DMA goes through IOVAs; without one, devices use physical
 * addresses. RAM for buffers comes from a bump allocator over low RAM from
 * 16 MiB up.
 */
export interface WorkloadContext extends Guest {
  /** The `opt=value` options given after the workload name, with typed getters. */
  readonly options: WorkloadOptions;
  /** This machine's index (0 … `machineCount` − 1) when the CLI runs several (`--machines N`). */
  readonly machineIndex: number;
  /** How many machines run this workload at once (1 unless `--machines N`). */
  readonly machineCount: number;
  /**
   * The PCI functions on bus 0, with BARs assigned and decoding and bus
   * mastering enabled (done once, on first use).
   *
   * @returns Every function, the host bridge included.
   */
  functions(): readonly GuestPciFunction[];
  /**
   * The functions of one kind, in slot order.
   *
   * @param kind `edu`, `ide` (PIIX3), `e1000` or `iommu` (AMD-Vi).
   * @returns The functions (empty when there is none).
   */
  find(kind: WorkloadDeviceKind): GuestPciFunction[];
  /**
   * A readable name, e.g. `edu 00:04.0`.
   *
   * @param fn A function from {@linkcode WorkloadContext.find}.
   * @returns The name.
   */
  describe(fn: GuestPciFunction): string;
  /**
   * The interrupt line (GSI) the function's INTx pin reaches on q35.
   *
   * @param fn The function.
   * @returns The line.
   */
  irqLine(fn: GuestPciFunction): number;
  /**
   * The IOMMU driver, initialised on first use.
   *
   * @returns The driver, or `undefined` when the machine has no IOMMU.
   */
  iommu(): AmdViDriver | undefined;
  /**
   * The function's IOMMU domain, created and attached on first use.
   *
   * @param fn The function.
   * @returns The domain, or `undefined` without an IOMMU.
   */
  domain(fn: GuestPciFunction): IommuDomain | undefined;
  /**
   * Allocates guest RAM (zeroed, 4 KiB aligned, below 4 GiB).
   *
   * @param bytes How much (rounded up to 4 KiB).
   * @returns The guest-physical address.
   * @throws {WorkloadError} When RAM runs out (give the machine more with `-m`).
   */
  allocate(bytes: number): number;
  /**
   * Allocates RAM and makes it reachable by `fn`'s DMA: mapped at fresh
   * IOVAs in its domain (with an IOMMU), or at its physical address.
   *
   * @param fn The device.
   * @param bytes How much (rounded up to 4 KiB).
   * @param options Permissions.
   * @returns The buffer.
   */
  dmaBuffer(fn: GuestPciFunction, bytes: number, options?: DmaBufferOptions): DmaBuffer;
  /**
   * A driver for an edu device.
   *
   * @param fn An `edu` function.
   * @returns The driver.
   */
  edu(fn: GuestPciFunction): EduDriver;
  /**
   * A driver for one drive of a PIIX3 IDE controller, its DMA buffer mapped
   * for the controller.
   *
   * @param fn An `ide` function.
   * @param options Channel, unit and buffer size.
   * @returns The driver (nothing sent to the drive yet).
   */
  ide(fn: GuestPciFunction, options?: IdeDriverChoice): IdeDriver;
  /**
   * A driver for an e1000, its rings and buffers in RAM the context
   * allocated (and mapped for the NIC). Call `init()` on it next.
   *
   * @param fn An `e1000` function.
   * @param options Ring sizes.
   * @returns The driver.
   */
  e1000(fn: GuestPciFunction, options?: E1000DriverChoice): E1000Driver;
  /**
   * Records a checked step (also sent to the machine log).
   *
   * @param step What was done.
   * @param ok Whether it worked.
   * @param detail Details.
   * @returns `ok`.
   */
  step(step: string, ok: boolean, detail: string): boolean;
  /**
   * Records a measurement.
   *
   * @param name Name, with its unit (`copy_mib_s`).
   * @param value The value.
   */
  metric(name: string, value: WorkloadMetric): void;
  /**
   * The summary of the steps and metrics recorded so far.
   *
   * @returns The summary; `ok` when there is at least one step and none failed.
   */
  summary(): WorkloadSummary;
}

/**
 * A workload: the default export of a workload module. It may be async, but
 * the context's accesses are synchronous, so most workloads are not.
 */
export type Workload = (
  ctx: WorkloadContext,
  options: Readonly<Record<string, string>>,
) => unknown;

/**
 * An error a workload throws for a condition the user can fix (a missing
 * device, a bad option): the command line prints its message without a
 * stack trace.
 *
 * @example
 * ```ts
 * import { WorkloadError } from "./workload.ts";
 * import { equal } from "node:assert/strict";
 * const error = new WorkloadError("This workload needs an edu device (-device edu)");
 * equal(error.name, "WorkloadError");
 * ```
 */
export class WorkloadError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "WorkloadError";
  }
}

/**
 * Whether a workload's result is a {@linkcode WorkloadSummary}.
 *
 * @param value What the workload returned.
 * @returns Whether it has `ok`, `steps` and `metrics`.
 *
 * @example
 * ```ts
 * import { isWorkloadSummary } from "./workload.ts";
 * import { equal } from "node:assert/strict";
 * equal(isWorkloadSummary({ ok: true, steps: [], metrics: {} }), true);
 * equal(isWorkloadSummary({ answer: 42 }), false);
 * ```
 */
export function isWorkloadSummary(value: unknown): value is WorkloadSummary {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  return typeof v.ok === "boolean" && Array.isArray(v.steps) &&
    v.metrics !== null && typeof v.metrics === "object";
}
