/**
 * AMD-Vi register offsets, bit definitions and encodings (AMD publication
 * 48882; see ../shared/reference/amd-vi.md).
 *
 * @module
 */

/**
 * The IOMMU's MMIO window base on the reference machine.
 *
 * @example
 * ```ts
 * import { AMD_VI_MMIO_BASE, AmdViReg } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // The Control register's guest-physical address.
 * equal(AMD_VI_MMIO_BASE + AmdViReg.CONTROL, 0xfed8_0018);
 * equal(AMD_VI_MMIO_BASE % 0x4000, 0); // 16 KiB aligned, as the spec requires
 * ```
 */
export const AMD_VI_MMIO_BASE = 0xfed8_0000;
/**
 * Size of the MMIO window (16 KiB).
 *
 * @example
 * ```ts
 * import { AMD_VI_MMIO_SIZE, AmdViReg } from "./amd_vi_registers.ts";
 * import { ok } from "node:assert/strict";
 * // Every register, the head/tail/status ones included, lies inside the window.
 * ok(Object.values(AmdViReg).every((offset) => offset + 8 <= AMD_VI_MMIO_SIZE));
 * ```
 */
export const AMD_VI_MMIO_SIZE = 0x4000;

/**
 * MMIO register offsets.
 *
 * @example
 * ```ts
 * import { AmdViReg } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // Spec offsets: Control at 0x18, the command buffer's head/tail pair at 0x2000.
 * equal(AmdViReg.CONTROL, 0x18);
 * equal(AmdViReg.CMD_TAIL - AmdViReg.CMD_HEAD, 8);
 * equal(AmdViReg.STATUS, 0x2020);
 * ```
 */
export const AmdViReg = {
  DEV_TAB_BASE: 0x0000,
  CMD_BUF_BASE: 0x0008,
  EVT_LOG_BASE: 0x0010,
  CONTROL: 0x0018,
  EXCL_BASE: 0x0020,
  EXCL_LIMIT: 0x0028,
  EXT_FEATURE: 0x0030,
  CMD_HEAD: 0x2000,
  CMD_TAIL: 0x2008,
  EVT_HEAD: 0x2010,
  EVT_TAIL: 0x2018,
  STATUS: 0x2020,
} as const;

/**
 * Control register bits.
 *
 * @example
 * ```ts
 * import { AmdViControl, bits } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // What a driver writes: IOMMU, event log and command buffer on, InvTimeOut 1 ms.
 * const control = AmdViControl.IOMMU_EN | AmdViControl.EVENT_LOG_EN | AmdViControl.CMD_BUF_EN |
 *   (1n << AmdViControl.INV_TIMEOUT_SHIFT);
 * equal(control, 0x1025n);
 * equal(bits(control, 7, 5), 1n);
 * ```
 */
export const AmdViControl = {
  IOMMU_EN: 1n << 0n,
  HT_TUN_EN: 1n << 1n,
  EVENT_LOG_EN: 1n << 2n,
  EVENT_INT_EN: 1n << 3n,
  COM_WAIT_INT_EN: 1n << 4n,
  /** InvTimeOut, bits 7:5. */
  INV_TIMEOUT_SHIFT: 5n,
  PASS_PW: 1n << 8n,
  RES_PASS_PW: 1n << 9n,
  COHERENT: 1n << 10n,
  ISOC: 1n << 11n,
  CMD_BUF_EN: 1n << 12n,
} as const;

/**
 * Status register bits.
 *
 * @example
 * ```ts
 * import { AmdViStatus } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // Status as read after a COMPLETION_WAIT with interrupt, both rings running.
 * const status = 0x1cn;
 * equal((status & AmdViStatus.COM_WAIT_INT) !== 0n, true);
 * equal((status & AmdViStatus.EVENT_OVERFLOW) !== 0n, false);
 * equal(status & (AmdViStatus.EVENT_LOG_RUN | AmdViStatus.CMD_BUF_RUN), 0x18n);
 * ```
 */
export const AmdViStatus = {
  EVENT_OVERFLOW: 1n << 0n,
  EVENT_LOG_INT: 1n << 1n,
  COM_WAIT_INT: 1n << 2n,
  EVENT_LOG_RUN: 1n << 3n,
  CMD_BUF_RUN: 1n << 4n,
} as const;

/**
 * Extended feature bits dmaworks implements.
 *
 * @example
 * ```ts
 * import { AmdViFeature, bits } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // The HATS field is bits 11:10 (spec: 10b = six levels).
 * equal(bits(AmdViFeature.HATS_6_LEVELS, 11, 10), 2n);
 * equal(AmdViFeature.IA_SUP, 0x40n); // IASup is bit 6
 * ```
 */
export const AmdViFeature = {
  /** PREFETCH_IOMMU_PAGES. */
  PREF_SUP: 1n << 0n,
  /** INVALIDATE_IOMMU_ALL. */
  IA_SUP: 1n << 6n,
  /** HATS = 2: six page-table levels. */
  HATS_6_LEVELS: 2n << 10n,
} as const;

/**
 * The ExtFeature value: only what is implemented.
 *
 * @example
 * ```ts
 * import { AMD_VI_EXT_FEATURE, AmdViFeature, bit } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * equal(AMD_VI_EXT_FEATURE, 0x841n);
 * equal(bit(AMD_VI_EXT_FEATURE, 1), false); // no PPRSup
 * equal(AMD_VI_EXT_FEATURE & AmdViFeature.IA_SUP, AmdViFeature.IA_SUP);
 * ```
 */
export const AMD_VI_EXT_FEATURE: bigint = AmdViFeature.PREF_SUP | AmdViFeature.IA_SUP |
  AmdViFeature.HATS_6_LEVELS;

/**
 * The highest paging mode the IOMMU walks (from HATS).
 *
 * @example
 * ```ts
 * import { AMD_VI_EXT_FEATURE, AMD_VI_MAX_LEVELS, bits } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // HATS encodes levels − 4.
 * equal(AMD_VI_MAX_LEVELS, Number(bits(AMD_VI_EXT_FEATURE, 11, 10)) + 4);
 * equal(12 + 9 * AMD_VI_MAX_LEVELS, 66); // six levels cover a 64-bit IOVA
 * ```
 */
export const AMD_VI_MAX_LEVELS = 6;

/**
 * Event codes (bits 63:60 of an event entry's first qword).
 *
 * @example
 * ```ts
 * import { AmdViEvent, bits } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // An IO_PAGE_FAULT entry for device 00:03.0 with RW and PR set.
 * const q0 = (BigInt(AmdViEvent.IO_PAGE_FAULT) << 60n) | (1n << 53n) | (1n << 52n) | 0x18n;
 * equal(Number(bits(q0, 63, 60)), AmdViEvent.IO_PAGE_FAULT);
 * equal(Number(bits(q0, 15, 0)), 0x18);
 * ```
 */
export const AmdViEvent = {
  ILLEGAL_DEV_TABLE_ENTRY: 0x1,
  IO_PAGE_FAULT: 0x2,
  DEV_TAB_HARDWARE_ERROR: 0x3,
  PAGE_TAB_HARDWARE_ERROR: 0x4,
  ILLEGAL_COMMAND_ERROR: 0x5,
  COMMAND_HARDWARE_ERROR: 0x6,
  IOTLB_INV_TIMEOUT: 0x7,
  INVALID_DEVICE_REQUEST: 0x8,
} as const;

/**
 * Event flag bits, as bit numbers of an event entry's first qword.
 *
 * @example
 * ```ts
 * import { AmdViEventFlag, bit } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // A page fault on a write (RW) to a present page (PR).
 * const q0 = 0x2030_0000_0000_0018n;
 * equal(bit(q0, Number(AmdViEventFlag.RW)), true);
 * equal(bit(q0, Number(AmdViEventFlag.PR)), true);
 * equal(bit(q0, Number(AmdViEventFlag.TR)), false);
 * ```
 */
export const AmdViEventFlag = {
  GN: 48n,
  NX: 49n,
  US: 50n,
  I: 51n,
  PR: 52n,
  RW: 53n,
  PE: 54n,
  RZ: 55n,
  TR: 56n,
} as const;

/**
 * Command opcodes (bits 63:60 of a command's first qword).
 *
 * @example
 * ```ts
 * import { AmdViCommand } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // INVALIDATE_IOMMU_ALL: the opcode is all the command holds.
 * const q0 = BigInt(AmdViCommand.INVALIDATE_IOMMU_ALL) << 60n;
 * equal(q0, 0x8000_0000_0000_0000n);
 * equal(Number(q0 >> 60n), AmdViCommand.INVALIDATE_IOMMU_ALL);
 * ```
 */
export const AmdViCommand = {
  COMPLETION_WAIT: 0x1,
  INVALIDATE_DEVTAB_ENTRY: 0x2,
  INVALIDATE_IOMMU_PAGES: 0x3,
  INVALIDATE_IOTLB_PAGES: 0x4,
  INVALIDATE_INTERRUPT_TABLE: 0x5,
  PREFETCH_IOMMU_PAGES: 0x6,
  COMPLETE_PPR_REQUEST: 0x7,
  INVALIDATE_IOMMU_ALL: 0x8,
} as const;

/**
 * Hardware error types (event Type field).
 *
 * @example
 * ```ts
 * import { AmdViErrorType, AmdViEvent, bits } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * // A PAGE_TAB_HARDWARE_ERROR whose table read was master-aborted: Type is q0 bits 58:57.
 * const q0 = (BigInt(AmdViEvent.PAGE_TAB_HARDWARE_ERROR) << 60n) |
 *   (AmdViErrorType.MASTER_ABORT << 57n);
 * equal(bits(q0, 58, 57), AmdViErrorType.MASTER_ABORT);
 * equal(AmdViErrorType.DATA_ERROR, 3n); // spec: 11b
 * ```
 */
export const AmdViErrorType = {
  MASTER_ABORT: 1n,
  TARGET_ABORT: 2n,
  DATA_ERROR: 3n,
} as const;

/**
 * InvTimeOut in milliseconds for Control bits 7:5 (0: no timeout).
 *
 * @param code The 3-bit field.
 * @returns Milliseconds, `Infinity` for none or a reserved code.
 *
 * @example
 * ```ts
 * import { invTimeoutMs } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * equal(invTimeoutMs(1), 1);
 * equal(invTimeoutMs(4), 1000);
 * equal(invTimeoutMs(0), Infinity);
 * ```
 */
export function invTimeoutMs(code: number): number {
  return code >= 1 && code <= 6 ? 10 ** (code - 1) : Infinity;
}

/**
 * Bits `hi:lo` of a 64-bit value.
 *
 * @param value The value.
 * @param hi Highest bit.
 * @param lo Lowest bit.
 * @returns The field.
 *
 * @example
 * ```ts
 * import { bits } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * equal(bits(0xf000n, 15, 12), 0xfn);
 * ```
 */
export function bits(value: bigint, hi: number, lo: number): bigint {
  return (value >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n);
}

/**
 * Bit `n` of a 64-bit value.
 *
 * @param value The value.
 * @param n Bit number.
 * @returns Whether it is set.
 *
 * @example
 * ```ts
 * import { bit } from "./amd_vi_registers.ts";
 * import { equal } from "node:assert/strict";
 * equal(bit(4n, 2), true);
 * ```
 */
export function bit(value: bigint, n: number): boolean {
  return ((value >> BigInt(n)) & 1n) === 1n;
}
