/**
 * The AMD-Vi I/O page-table walk (amd-vi.md §3): modes 1–6, leaves at any
 * level, NextLevel = 7 page sizes, level skipping with the skipped-bits check,
 * reserved-bit checks and permissions AND-ed across the DTE and every level.
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import { MAX_ADDRESS } from "../util/address.ts";
import { bits } from "./amd_vi_registers.ts";
import type { DeviceTableEntry } from "./device_table.ts";

/**
 * IOVA bit at which level L's 9-bit index starts (index 0 unused).
 *
 * @example
 * ```ts
 * import { LEVEL_SHIFT } from "./page_walk.ts";
 * import { equal } from "node:assert/strict";
 * // The level-2 table index of IOVA 0x4060_0000: bits 29:21.
 * const iova = 0x4060_0000;
 * equal(Math.floor(iova / 2 ** (LEVEL_SHIFT[2] ?? 0)) % 512, 3);
 * equal(2 ** (LEVEL_SHIFT[2] ?? 0), 0x20_0000); // a level-2 leaf maps 2 MiB
 * ```
 */
export const LEVEL_SHIFT: readonly number[] = [0, 12, 21, 30, 39, 48, 57];

/**
 * Reserved bits of a leaf entry (NextLevel 0 or 7): bits 58:52 (U and FC allowed).
 *
 * @example
 * ```ts
 * import { PTE_RESERVED } from "./page_walk.ts";
 * import { equal } from "node:assert/strict";
 * // A leaf with PR | IR | IW | FC mapping 0x5000: nothing reserved is set.
 * const pte = (1n << 62n) | (1n << 61n) | (1n << 60n) | 0x5000n | 1n;
 * equal(pte & PTE_RESERVED, 0n);
 * equal(((pte | (1n << 52n)) & PTE_RESERVED) !== 0n, true); // bit 52 is reserved
 * ```
 */
export const PTE_RESERVED = 0x07f0_0000_0000_0000n;
/**
 * Reserved bits of a directory entry: bits 60:52.
 *
 * @example
 * ```ts
 * import { PDE_RESERVED, PTE_RESERVED } from "./page_walk.ts";
 * import { equal } from "node:assert/strict";
 * // U (59) and FC (60) are reserved in a directory entry, allowed in a leaf.
 * const fc = 1n << 60n;
 * equal(fc & PDE_RESERVED, fc);
 * equal(fc & PTE_RESERVED, 0n);
 * ```
 */
export const PDE_RESERVED = 0x1ff0_0000_0000_0000n;

/** A successful walk. */
export interface WalkSuccess {
  /** Always true. */
  readonly ok: true;
  /** Page size as a power of two. */
  readonly shift: number;
  /** IOVA of the page base. */
  readonly iovaBase: number;
  /** Physical address of the page base. */
  readonly physBase: number;
  /** Permissions (1 read, 2 write) AND-ed over the DTE and every level. */
  readonly perms: number;
}

/** A walk that ended in an IO_PAGE_FAULT. */
export interface WalkPageFault {
  /** Always false. */
  readonly ok: false;
  /** Always `io-page-fault`. */
  readonly kind: "io-page-fault";
  /** PR: the entry was present. */
  readonly present: boolean;
  /** PE: a permission check failed. */
  readonly permission: boolean;
  /** RZ: reserved bits were set. */
  readonly reserved: boolean;
}

/** A walk that could not read a table entry (PAGE_TAB_HARDWARE_ERROR). */
export interface WalkHardwareError {
  /** Always false. */
  readonly ok: false;
  /** Always `page-table-hardware-error`. */
  readonly kind: "page-table-hardware-error";
  /** Physical address of the entry that could not be read. */
  readonly entryAddress: number;
}

/** The outcome of {@linkcode walkPageTable}. */
export type WalkResult = WalkSuccess | WalkPageFault | WalkHardwareError;

function pageFault(present: boolean, permission = false, reserved = false): WalkPageFault {
  return { ok: false, kind: "io-page-fault", present, permission, reserved };
}

/** The lowest clear bit of `value` at or above bit 12. */
function lowestZeroFrom12(value: bigint): number {
  let n = 12;
  while (n < 64 && ((value >> BigInt(n)) & 1n) === 1n) n++;
  return n;
}

/**
 * Walks the I/O page tables of `dte` for `iova`.
 *
 * @param memory Guest RAM (the tables live there).
 * @param request The DTE (modes 1–6), the IOVA, and the access to check
 *   (1 read, 2 write, 0 none: a prefetch).
 * @returns The translation or why it failed.
 *
 * @example A 4 KiB mapping through a 3-level table
 * ```ts
 * import { walkPageTable } from "./page_walk.ts";
 * import { decodeDte } from "./device_table.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 1 << 20 });
 * const pde = (next: number, level: number) => BigInt(next) | BigInt(level << 9) | (3n << 61n) | 1n;
 * ram.write64(0x10000, pde(0x11000, 2)); // L3 index 0 -> L2 table
 * ram.write64(0x11000, pde(0x12000, 1)); // L2 index 0 -> L1 table
 * ram.write64(0x12000 + 5 * 8, 0x80000n | (1n << 61n) | 1n); // L1 index 5 -> 0x80000, read-only
 * const dte = decodeDte(0x6000_0000_0001_0603n, 1n);
 * const ok = walkPageTable(ram, { dte, iova: 0x5123, access: 1 });
 * equal(ok.ok && ok.physBase, 0x80000);
 * const denied = walkPageTable(ram, { dte, iova: 0x5123, access: 2 });
 * equal(!denied.ok && denied.kind === "io-page-fault" && denied.permission, true);
 * ```
 */
export function walkPageTable(
  memory: GuestMemory,
  request: { dte: DeviceTableEntry; iova: number; access: number },
): WalkResult {
  const { dte, iova, access } = request;
  let level = dte.mode;
  // The top level indexes IOVA bits up to 12 + 9 * mode; higher bits must be 0
  // (like skipped levels above the root).
  const span = 12 + 9 * level;
  if (span < 53 && iova >= 2 ** span) return pageFault(true);
  let perms = (dte.readable ? 1 : 0) | (dte.writable ? 2 : 0);
  let table = dte.root;
  for (;;) {
    const shift = LEVEL_SHIFT[level]!;
    const index = Math.floor(iova / 2 ** shift) % 512;
    const entryAddress = table + index * 8;
    if (!memory.isRam(entryAddress, 8)) {
      return { ok: false, kind: "page-table-hardware-error", entryAddress };
    }
    // Aligned 64-bit entries are read atomically, as the hardware reads them: a
    // guest rewriting an entry concurrently is seen either before or after.
    const e = entryAddress % 8 === 0
      ? memory.atomicLoad64(entryAddress)
      : memory.read64(entryAddress);
    if ((e & 1n) === 0n) return pageFault(false);
    const next = Number(bits(e, 11, 9));
    const leaf = next === 0 || next === 7;
    if ((e & (leaf ? PTE_RESERVED : PDE_RESERVED)) !== 0n) return pageFault(true, false, true);
    perms &= Number(bits(e, 62, 61));
    if (access !== 0 && (perms & access) === 0) return pageFault(true, true);
    const address = Number(bits(e, 51, 12)) * 4096;
    if (leaf) {
      let pageShift = shift;
      if (next === 7) {
        const n = lowestZeroFrom12(bits(e, 51, 0));
        pageShift = n + 1;
        const upper = level < 6 ? LEVEL_SHIFT[level + 1]! : 0;
        if (!(shift < pageShift && pageShift < upper)) return pageFault(true);
      }
      const size = 2 ** pageShift;
      const iovaBase = Math.floor(iova / size) * size;
      const physBase = pageShift >= 52 ? 0 : Math.floor(address / size) * size;
      return { ok: true, shift: pageShift, iovaBase, physBase, perms };
    }
    if (next >= level) return pageFault(true);
    // Level skipping: the IOVA bits that the skipped levels would index must be 0.
    const low = LEVEL_SHIFT[next + 1]!;
    if (Math.floor(iova / 2 ** low) % 2 ** (shift - low) !== 0) return pageFault(true);
    table = address;
    level = next;
  }
}

/**
 * Bytes from `iova` to the end of a successful walk's page, clamped so the
 * sum stays a safe integer.
 *
 * @param walk The walk.
 * @param iova The address inside the page.
 * @returns The run length.
 *
 * @example
 * ```ts
 * import { runLength } from "./page_walk.ts";
 * import { equal } from "node:assert/strict";
 * equal(runLength({ ok: true, shift: 12, iovaBase: 0x5000, physBase: 0, perms: 3 }, 0x5100), 0xf00);
 * ```
 */
export function runLength(walk: WalkSuccess, iova: number): number {
  return Math.min(walk.iovaBase + 2 ** walk.shift, MAX_ADDRESS + 1) - iova;
}
