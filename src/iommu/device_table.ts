/**
 * Device table entries: decoding and validation of the 256-bit DTE.
 *
 * @module
 */

import { bit, bits } from "./amd_vi_registers.ts";

/** A decoded device-table entry (the fields DMA translation uses). */
export interface DeviceTableEntry {
  /** V: the entry is valid. */
  readonly valid: boolean;
  /** TV: the translation fields are valid. */
  readonly translationValid: boolean;
  /** Paging mode 0–7 (number of levels; 0 = no translation). */
  readonly mode: number;
  /** Page-table root (physical address). */
  readonly root: number;
  /** IR: read permission. */
  readonly readable: boolean;
  /** IW: write permission. */
  readonly writable: boolean;
  /** DomainID. */
  readonly domainId: number;
  /** SE: suppress repeated IO_PAGE_FAULT events. */
  readonly suppressRepeated: boolean;
  /** SA: suppress all IO_PAGE_FAULT events. */
  readonly suppressAll: boolean;
  /** EX: the exclusion range applies to this device. */
  readonly exclusion: boolean;
  /** Whether reserved (must-be-zero) bits are set (an illegal entry). */
  readonly reservedBitsSet: boolean;
}

/**
 * Must-be-zero bits of DTE word 0 for dmaworks' feature set (no PPR, GT, GIo
 * support): bits 6:2, 60:52 and 63.
 *
 * @example
 * ```ts
 * import { decodeDte, DTE_Q0_RESERVED } from "./device_table.ts";
 * import { equal } from "node:assert/strict";
 * equal(DTE_Q0_RESERVED & (1n << 55n), 1n << 55n); // GV: guest translation, unsupported
 * equal(decodeDte(0x6000_0000_0001_0603n | (1n << 55n), 0n).reservedBitsSet, true);
 * equal(DTE_Q0_RESERVED & ((1n << 61n) | (1n << 62n)), 0n); // IR and IW are allowed
 * ```
 */
export const DTE_Q0_RESERVED = 0x9ff0_0000_0000_007cn;
/**
 * Must-be-zero bits of DTE word 1 for dmaworks' feature set: the guest CR3
 * fields (bits 95:80 and 127:107, no GT support) and reserved bit 106. The
 * IOTLB-enable bit I (96) and the IoCtl/Cache/SD/SysMgt fields are accepted:
 * Linux writes some of them (including I = 1 by accident in some kernels).
 *
 * @example
 * ```ts
 * import { decodeDte, DTE_Q1_RESERVED } from "./device_table.ts";
 * import { equal } from "node:assert/strict";
 * const q0 = 0x6000_0000_0001_0603n; // V | TV | mode 3 | IR | IW
 * equal(decodeDte(q0, 5n | (1n << 32n)).reservedBitsSet, false); // DomainID 5 with I = 1
 * equal(decodeDte(q0, 5n | (1n << 16n)).reservedBitsSet, true); // GCR3 bit: no GT
 * equal(DTE_Q1_RESERVED & 0xffffn, 0n); // DomainID bits 15:0 are never reserved
 * ```
 */
export const DTE_Q1_RESERVED = 0xffff_fc00_ffff_0000n;

/**
 * Decodes a DTE from its first two 64-bit words (the interrupt-remapping words
 * 2–3 do not affect DMA; they are checked only when IV = 1, which dmaworks
 * does not use for DMA).
 *
 * @param q0 Word 0 (bits 63:0).
 * @param q1 Word 1 (bits 127:64).
 * @returns The decoded entry.
 *
 * @example
 * ```ts
 * import { decodeDte } from "./device_table.ts";
 * import { equal } from "node:assert/strict";
 * // V | TV | Mode 3 | root 0x10000 | IR | IW; DomainID 5
 * const dte = decodeDte(0x6000_0000_0001_0603n, 5n);
 * equal(dte.mode, 3);
 * equal(dte.root, 0x10000);
 * equal(dte.domainId, 5);
 * equal(dte.reservedBitsSet, false);
 * ```
 */
export function decodeDte(q0: bigint, q1: bigint): DeviceTableEntry {
  return {
    valid: bit(q0, 0),
    translationValid: bit(q0, 1),
    mode: Number(bits(q0, 11, 9)),
    root: Number(bits(q0, 51, 12)) * 4096,
    readable: bit(q0, 61),
    writable: bit(q0, 62),
    domainId: Number(bits(q1, 15, 0)),
    suppressRepeated: bit(q1, 33),
    suppressAll: bit(q1, 34),
    exclusion: bit(q1, 39),
    reservedBitsSet: (q0 & DTE_Q0_RESERVED) !== 0n || (q1 & DTE_Q1_RESERVED) !== 0n,
  };
}

/**
 * Encodes the DMA fields of a DTE (what a guest driver writes).
 *
 * @param fields The fields to set.
 * @returns Words 0 and 1.
 *
 * @example
 * ```ts
 * import { decodeDte, encodeDte } from "./device_table.ts";
 * import { equal } from "node:assert/strict";
 * const [q0, q1] = encodeDte({ valid: true, translationValid: true, mode: 4, root: 0x200000, readable: true, writable: false, domainId: 9 });
 * const d = decodeDte(q0, q1);
 * equal(d.mode, 4);
 * equal(d.writable, false);
 * ```
 */
export function encodeDte(fields: {
  valid: boolean;
  translationValid?: boolean;
  mode?: number;
  root?: number;
  readable?: boolean;
  writable?: boolean;
  domainId?: number;
  suppressRepeated?: boolean;
  suppressAll?: boolean;
  exclusion?: boolean;
}): [bigint, bigint] {
  let q0 = 0n;
  if (fields.valid) q0 |= 1n;
  if (fields.translationValid) q0 |= 2n;
  q0 |= BigInt((fields.mode ?? 0) & 7) << 9n;
  q0 |= BigInt(Math.floor((fields.root ?? 0) / 4096)) << 12n;
  if (fields.readable) q0 |= 1n << 61n;
  if (fields.writable) q0 |= 1n << 62n;
  let q1 = BigInt((fields.domainId ?? 0) & 0xffff);
  if (fields.suppressRepeated) q1 |= 1n << 33n;
  if (fields.suppressAll) q1 |= 1n << 34n;
  if (fields.exclusion) q1 |= 1n << 39n;
  return [q0, q1];
}
