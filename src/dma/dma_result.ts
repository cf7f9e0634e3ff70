/**
 * Typed outcomes of DMA API calls.
 *
 * @module
 */

import type { DmaAccess } from "./mmu.ts";

/**
 * Why a DMA access failed.
 *
 * - `no-translation`: the IOMMU has no valid translation (not present, DMA
 *   blocked by the device-table entry, malformed tables).
 * - `permission`: a translation exists but does not allow this access.
 * - `outside-ram`: the (translated) address is not backed by anything.
 * - `mmio-target`: the address is in the MMIO hole; DMA reaches RAM only, so
 *   this is a master abort (no device-to-device DMA, no re-entrancy).
 * - `bus-master-disabled`: the function's Bus Master Enable bit is clear.
 */
export type DmaFaultKind =
  | "no-translation"
  | "permission"
  | "outside-ram"
  | "mmio-target"
  | "bus-master-disabled";

/** A successful DMA call. */
export interface DmaOk {
  /** Always `true`. */
  readonly ok: true;
}

/** A failed DMA call: which address failed, why, and how far it got. */
export interface DmaFault {
  /** Always `false`. */
  readonly ok: false;
  /** Why the access failed. */
  readonly kind: DmaFaultKind;
  /** The device-visible address (IOVA) at which it failed. */
  readonly address: number;
  /** The direction of the failed access. */
  readonly access: DmaAccess;
  /**
   * Bytes transferred before the fault. For a write they reached memory; for a
   * read they were copied into the caller's buffer (the rest is untouched).
   */
  readonly transferred: number;
}

/** Outcome of `read`, `write`, `fill` and the sized stores. */
export type DmaResult = DmaOk | DmaFault;

/** Outcome of a sized load: the value, or the fault. */
export type DmaLoad<T> = { readonly ok: true; readonly value: T } | DmaFault;

/**
 * The shared success value (no allocation per call).
 *
 * @example
 * ```ts
 * import { DMA_OK, type DmaResult } from "./dma_result.ts";
 * import { equal } from "node:assert/strict";
 * const result: DmaResult = DMA_OK;
 * equal(result.ok, true);
 * equal(Object.isFrozen(DMA_OK), true); // shared, so nobody may change it
 * ```
 */
export const DMA_OK: DmaOk = Object.freeze({ ok: true });

/**
 * Builds a fault value.
 *
 * @param kind Why.
 * @param address Where (IOVA).
 * @param access Read or write.
 * @param transferred Bytes moved before the fault.
 * @returns The fault.
 *
 * @example
 * ```ts
 * import { dmaFault } from "./dma_result.ts";
 * import { equal } from "node:assert/strict";
 * equal(dmaFault("permission", 0x1000, "write", 0).kind, "permission");
 * ```
 */
export function dmaFault(
  kind: DmaFaultKind,
  address: number,
  access: DmaAccess,
  transferred: number,
): DmaFault {
  return { ok: false, kind, address, access, transferred };
}

/**
 * A human-readable description of a fault, in the project's error style.
 *
 * @param fault The fault.
 * @returns E.g. `Cannot write IOVA 0x1000: permission denied`.
 *
 * @example
 * ```ts
 * import { describeDmaFault, dmaFault } from "./dma_result.ts";
 * import { equal } from "node:assert/strict";
 * equal(
 *   describeDmaFault(dmaFault("no-translation", 0x1000, "read", 0)),
 *   "Cannot read IOVA 0x1000: no translation",
 * );
 * ```
 */
export function describeDmaFault(fault: DmaFault): string {
  const why: Record<DmaFaultKind, string> = {
    "no-translation": "no translation",
    "permission": "permission denied",
    "outside-ram": "outside RAM",
    "mmio-target": "target is MMIO (master abort)",
    "bus-master-disabled": "bus mastering disabled",
  };
  return `Cannot ${fault.access} IOVA 0x${fault.address.toString(16)}: ${why[fault.kind]}`;
}
