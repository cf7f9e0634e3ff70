/**
 * Command-buffer entries: decoding with the reserved-bit checks of dmaworks'
 * feature set, the S-bit range encoding, and encoders for guest drivers.
 *
 * @module
 */

import { MAX_ADDRESS } from "../util/address.ts";
import { AmdViCommand, bit, bits } from "./amd_vi_registers.ts";

/** An invalidation range (inclusive bounds). */
export interface InvalidationRange {
  /** First byte. */
  readonly start: number;
  /** Last byte (inclusive), clamped to 2^53 − 1. */
  readonly end: number;
}

/** A decoded command. */
export type IommuCommand =
  | {
    readonly op: "COMPLETION_WAIT";
    readonly store: boolean;
    readonly interrupt: boolean;
    readonly flush: boolean;
    readonly storeAddress: number;
    readonly storeData: bigint;
  }
  | { readonly op: "INVALIDATE_DEVTAB_ENTRY"; readonly deviceId: number }
  | {
    readonly op: "INVALIDATE_IOMMU_PAGES";
    readonly domainId: number;
    readonly range: InvalidationRange;
    readonly pde: boolean;
  }
  | {
    readonly op: "INVALIDATE_IOTLB_PAGES";
    readonly deviceId: number;
    readonly range: InvalidationRange;
  }
  | { readonly op: "INVALIDATE_INTERRUPT_TABLE"; readonly deviceId: number }
  | {
    readonly op: "PREFETCH_IOMMU_PAGES";
    readonly deviceId: number;
    readonly count: number;
    readonly address: number;
    readonly invalidate: boolean;
  }
  | { readonly op: "INVALIDATE_IOMMU_ALL" }
  | { readonly op: "ILLEGAL"; readonly reason: string };

/** Legal bits of both words per opcode (everything else is reserved). */
const LEGAL: Record<number, readonly [bigint, bigint]> = {
  [AmdViCommand.COMPLETION_WAIT]: [0xf00f_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn],
  // Reserved bits of INVALIDATE_DEVTAB_ENTRY are tolerated (Linux has set some).
  [AmdViCommand.INVALIDATE_DEVTAB_ENTRY]: [0xffff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn],
  // PASID (19:0) and GN are accepted and ignored (no guest translation), as VirtualBox does.
  [AmdViCommand.INVALIDATE_IOMMU_PAGES]: [0xf000_ffff_000f_ffffn, 0xffff_ffff_ffff_f007n],
  // DeviceID, MaxPend 31:24, QueueID 47:32; S and the address.
  [AmdViCommand.INVALIDATE_IOTLB_PAGES]: [0xf000_ffff_ff00_ffffn, 0xffff_ffff_ffff_f001n],
  [AmdViCommand.INVALIDATE_INTERRUPT_TABLE]: [0xf000_0000_0000_ffffn, 0n],
  // DeviceID, PFCount 31:24; S, Inval and the address (no PASID/GN without GT).
  [AmdViCommand.PREFETCH_IOMMU_PAGES]: [0xf000_0000_ff00_ffffn, 0xffff_ffff_ffff_f011n],
  [AmdViCommand.INVALIDATE_IOMMU_ALL]: [0xf000_0000_0000_0000n, 0n],
};

/**
 * Decodes the S-bit range encoding of INVALIDATE_IOMMU_PAGES and friends:
 * S = 0 is one 4 KiB page; S = 1 is the naturally aligned 2^(n+1) bytes,
 * where n is the lowest zero bit of the address at or above bit 12
 * (0x7FFF_FFFF_FFFF_F000 means everything).
 *
 * @param address The address field (bits 63:12 of the second word).
 * @param s The S bit.
 * @returns The inclusive range.
 *
 * @example
 * ```ts
 * import { decodeRange } from "./commands.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(decodeRange(0x5000n, false), { start: 0x5000, end: 0x5fff });
 * deepEqual(decodeRange(0x2ff000n, true), { start: 0x200000, end: 0x3fffff }); // 2 MiB at 2 MiB
 * deepEqual(decodeRange(0x11000n, true), { start: 0x10000, end: 0x13fff });
 * ```
 */
export function decodeRange(address: bigint, s: boolean): InvalidationRange {
  const a = address & ~0xfffn;
  if (!s) {
    const start = Number(BigInt.asUintN(64, a));
    return start > MAX_ADDRESS
      ? { start: MAX_ADDRESS, end: MAX_ADDRESS }
      : { start, end: Math.min(start + 0xfff, MAX_ADDRESS) };
  }
  let n = 12;
  while (n < 64 && ((a >> BigInt(n)) & 1n) === 1n) n++;
  const size = 1n << BigInt(n + 1);
  const start = n + 1 >= 64 ? 0n : a & ~(size - 1n);
  const end = n + 1 >= 64 ? (1n << 64n) - 1n : start + size - 1n;
  const max = BigInt(MAX_ADDRESS);
  return { start: Number(start > max ? max : start), end: Number(end > max ? max : end) };
}

/**
 * Decodes one 16-byte command.
 *
 * @param q0 First word.
 * @param q1 Second word.
 * @returns The command, or `ILLEGAL` with the reason (unknown opcode, a
 *   reserved bit, or a command of an unsupported feature).
 *
 * @example
 * ```ts
 * import { decodeCommand } from "./commands.ts";
 * import { equal } from "node:assert/strict";
 * equal(decodeCommand(0x8000_0000_0000_0000n, 0n).op, "INVALIDATE_IOMMU_ALL");
 * equal(decodeCommand(0x8000_0000_0000_0001n, 0n).op, "ILLEGAL");
 * equal(decodeCommand(0x7000_0000_0000_0000n, 0n).op, "ILLEGAL"); // no PPR support
 * ```
 */
export function decodeCommand(q0: bigint, q1: bigint): IommuCommand {
  const op = Number(bits(q0, 63, 60));
  const legal = LEGAL[op];
  if (!legal) {
    return {
      op: "ILLEGAL",
      reason: op === AmdViCommand.COMPLETE_PPR_REQUEST
        ? "COMPLETE_PPR_REQUEST without PPR support"
        : `unknown opcode ${op}`,
    };
  }
  if ((q0 & ~legal[0]) !== 0n || (q1 & ~legal[1]) !== 0n) {
    return { op: "ILLEGAL", reason: `reserved bits set in opcode ${op}` };
  }
  switch (op) {
    case AmdViCommand.COMPLETION_WAIT:
      return {
        op: "COMPLETION_WAIT",
        store: bit(q0, 0),
        interrupt: bit(q0, 1),
        flush: bit(q0, 2),
        storeAddress: Number(bits(q0, 51, 3)) * 8,
        storeData: q1,
      };
    case AmdViCommand.INVALIDATE_DEVTAB_ENTRY:
      return { op: "INVALIDATE_DEVTAB_ENTRY", deviceId: Number(bits(q0, 15, 0)) };
    case AmdViCommand.INVALIDATE_IOMMU_PAGES:
      return {
        op: "INVALIDATE_IOMMU_PAGES",
        domainId: Number(bits(q0, 47, 32)),
        range: decodeRange(q1, bit(q1, 0)),
        pde: bit(q1, 1),
      };
    case AmdViCommand.INVALIDATE_IOTLB_PAGES:
      return {
        op: "INVALIDATE_IOTLB_PAGES",
        deviceId: Number(bits(q0, 15, 0)),
        range: decodeRange(q1, bit(q1, 0)),
      };
    case AmdViCommand.INVALIDATE_INTERRUPT_TABLE:
      return { op: "INVALIDATE_INTERRUPT_TABLE", deviceId: Number(bits(q0, 15, 0)) };
    case AmdViCommand.PREFETCH_IOMMU_PAGES:
      return {
        op: "PREFETCH_IOMMU_PAGES",
        deviceId: Number(bits(q0, 15, 0)),
        count: Number(bits(q0, 31, 24)),
        address: decodeRange(q1, bit(q1, 0)).start,
        invalidate: bit(q1, 4),
      };
    default:
      return { op: "INVALIDATE_IOMMU_ALL" };
  }
}

/** Encoders of every command a guest driver sends. */
export interface CommandEncoders {
  /** COMPLETION_WAIT. */
  completionWait(
    options: { storeAddress?: number; storeData?: bigint; interrupt?: boolean; flush?: boolean },
  ): [bigint, bigint];
  /** INVALIDATE_DEVTAB_ENTRY. */
  invalidateDevtabEntry(deviceId: number): [bigint, bigint];
  /** INVALIDATE_IOMMU_PAGES (PDE = 1). */
  invalidatePages(options: { domainId: number; start?: number; size?: number }): [bigint, bigint];
  /** INVALIDATE_IOTLB_PAGES. */
  invalidateIotlbPages(
    options: { deviceId: number; start?: number; size?: number },
  ): [bigint, bigint];
  /** INVALIDATE_INTERRUPT_TABLE. */
  invalidateInterruptTable(deviceId: number): [bigint, bigint];
  /** PREFETCH_IOMMU_PAGES. */
  prefetchPages(options: { deviceId: number; address: number; count?: number }): [bigint, bigint];
  /** INVALIDATE_IOMMU_ALL. */
  invalidateAll(): [bigint, bigint];
}

/**
 * Command encoders for guest drivers.
 *
 * @example
 * ```ts
 * import { commands, decodeCommand } from "./commands.ts";
 * import { equal } from "node:assert/strict";
 * const [q0, q1] = commands.invalidatePages({ domainId: 3, start: 0x200000, size: 0x200000 });
 * const c = decodeCommand(q0, q1);
 * equal(c.op === "INVALIDATE_IOMMU_PAGES" && c.range.end, 0x3fffff);
 * ```
 */
export const commands: CommandEncoders = {
  /**
   * COMPLETION_WAIT.
   *
   * @param options Store address/data, interrupt, flush.
   * @returns The command words.
   */
  completionWait(
    options: { storeAddress?: number; storeData?: bigint; interrupt?: boolean; flush?: boolean },
  ): [bigint, bigint] {
    let q0 = BigInt(AmdViCommand.COMPLETION_WAIT) << 60n;
    if (options.storeAddress !== undefined) {
      q0 |= (BigInt(options.storeAddress) & 0x000f_ffff_ffff_fff8n) | 1n;
    }
    if (options.interrupt) q0 |= 2n;
    if (options.flush) q0 |= 4n;
    return [q0, BigInt.asUintN(64, options.storeData ?? 0n)];
  },
  /**
   * INVALIDATE_DEVTAB_ENTRY.
   *
   * @param deviceId Requester id.
   * @returns The command words.
   */
  invalidateDevtabEntry(deviceId: number): [bigint, bigint] {
    return [(BigInt(AmdViCommand.INVALIDATE_DEVTAB_ENTRY) << 60n) | BigInt(deviceId & 0xffff), 0n];
  },
  /**
   * INVALIDATE_IOMMU_PAGES for an aligned power-of-two range (or everything
   * when `size` is omitted), with PDE = 1 as Linux sends it.
   *
   * @param options DomainID, start and size.
   * @returns The command words.
   */
  invalidatePages(options: { domainId: number; start?: number; size?: number }): [bigint, bigint] {
    const q0 = (BigInt(AmdViCommand.INVALIDATE_IOMMU_PAGES) << 60n) |
      (BigInt(options.domainId & 0xffff) << 32n);
    return [q0, encodeRange(options.start, options.size) | 2n];
  },
  /**
   * INVALIDATE_IOTLB_PAGES.
   *
   * @param options DeviceID, start and size.
   * @returns The command words.
   */
  invalidateIotlbPages(
    options: { deviceId: number; start?: number; size?: number },
  ): [bigint, bigint] {
    const q0 = (BigInt(AmdViCommand.INVALIDATE_IOTLB_PAGES) << 60n) |
      BigInt(options.deviceId & 0xffff) |
      (BigInt(options.deviceId & 0xffff) << 32n);
    return [q0, encodeRange(options.start, options.size)];
  },
  /**
   * INVALIDATE_INTERRUPT_TABLE.
   *
   * @param deviceId Requester id.
   * @returns The command words.
   */
  invalidateInterruptTable(deviceId: number): [bigint, bigint] {
    return [
      (BigInt(AmdViCommand.INVALIDATE_INTERRUPT_TABLE) << 60n) | BigInt(deviceId & 0xffff),
      0n,
    ];
  },
  /**
   * PREFETCH_IOMMU_PAGES.
   *
   * @param options DeviceID, address and page count.
   * @returns The command words.
   */
  prefetchPages(options: { deviceId: number; address: number; count?: number }): [bigint, bigint] {
    const q0 = (BigInt(AmdViCommand.PREFETCH_IOMMU_PAGES) << 60n) |
      BigInt(options.deviceId & 0xffff) |
      (BigInt((options.count ?? 1) & 0xff) << 24n);
    return [q0, BigInt(options.address) & ~0xfffn];
  },
  /**
   * INVALIDATE_IOMMU_ALL.
   *
   * @returns The command words.
   */
  invalidateAll(): [bigint, bigint] {
    return [BigInt(AmdViCommand.INVALIDATE_IOMMU_ALL) << 60n, 0n];
  },
};

/**
 * The S-bit encoding of an aligned range, as Linux's `build_inv_address`.
 *
 * @param start First byte (default 0).
 * @param size Bytes (default: everything).
 * @returns Address bits with S (bit 0) set when more than one page.
 *
 * @example
 * ```ts
 * import { encodeRange } from "./commands.ts";
 * import { equal } from "node:assert/strict";
 * equal(encodeRange(0x5000, 0x1000), 0x5000n);
 * equal(encodeRange(0x200000, 0x200000), 0x2ff001n);
 * equal(encodeRange(), 0x7fff_ffff_ffff_f001n);
 * ```
 */
export function encodeRange(start?: number, size?: number): bigint {
  if (start === undefined || size === undefined) return 0x7fff_ffff_ffff_f000n | 1n;
  const s = BigInt(start) & ~0xfffn;
  const end = BigInt(start) + BigInt(Math.max(size, 1)) - 1n;
  if (size <= 4096 && (s >> 12n) === (end >> 12n)) return s;
  let msb = 63;
  const diff = s ^ end;
  while (msb > 0 && ((diff >> BigInt(msb)) & 1n) === 0n) msb--;
  if (msb > 51) return 0x7fff_ffff_ffff_f000n | 1n;
  return ((s | ((1n << BigInt(msb)) - 1n)) & ~0xfffn) | 1n;
}
