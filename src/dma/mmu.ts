/**
 * The `Mmu` interface (the seed's `DMAMmu`) and its outcome types.
 *
 * @module
 */

/** The direction of a DMA access, seen from the device. */
export type DmaAccess = "read" | "write";

/**
 * Permission bits of a translation.
 *
 * @example
 * ```ts
 * import { Permission } from "./mmu.ts";
 * import { equal } from "node:assert/strict";
 * // Permissions AND-ed across levels: a read-only level leaves Read only.
 * equal(Permission.ReadWrite & Permission.Read, Permission.Read);
 * equal(Permission.Read | Permission.Write, Permission.ReadWrite);
 * equal((Permission.Read & Permission.Write) === 0, true);
 * ```
 */
export const Permission = {
  /** The device may read. */
  Read: 1,
  /** The device may write. */
  Write: 2,
  /** Both. */
  ReadWrite: 3,
} as const;

/** A successful translation. */
export interface Translation {
  /** Always `true`. */
  readonly ok: true;
  /** The bus (guest-physical) address `iova` translates to. */
  readonly address: number;
  /**
   * How many bytes from `iova` translate contiguously with these permissions
   * (at least 1; may exceed the requested length).
   */
  readonly length: number;
  /** A combination of {@linkcode Permission} bits. */
  readonly permissions: number;
}

/** Why an IOMMU refused a translation. */
export type MmuFaultKind = "no-translation" | "permission";

/** A refused translation. */
export interface MmuFault {
  /** Always `false`. */
  readonly ok: false;
  /** Why. */
  readonly kind: MmuFaultKind;
}

/** The outcome of {@linkcode Mmu.translate}. */
export type MmuResult = Translation | MmuFault;

/** A live mapping registered with an `Mmu` so that invalidations reach it. */
export interface MmuPin {
  /** Releases the pin; an invalidation waiting for it may now complete. */
  release(): void;
}

/**
 * An I/O memory-management unit as seen by one device's DMA context.
 *
 * `translate` is synchronous: an implementation that must ask another thread
 * (a worker's IOTLB miss) blocks the calling device worker, which DESIGN.md
 * allows (devices may block on the main isolate).
 */
export interface Mmu {
  /**
   * Translates `iova` for `requesterId` for an access of `length` bytes.
   * The result object may be reused by the next call: read it first.
   *
   * @param requesterId PCI requester id (bus << 8 | dev << 3 | fn).
   * @param iova The I/O virtual address.
   * @param length Bytes the caller wants; the answer may cover fewer or more.
   * @param access Read or write.
   * @returns The translation or the reason for refusing it.
   */
  translate(requesterId: number, iova: number, length: number, access: DmaAccess): MmuResult;
  /**
   * Translates from caches only: no request to another thread and no fault
   * logged. The DMA layer uses it to merge physically contiguous pages into
   * one copy; `undefined` just stops the merge.
   *
   * @param requesterId PCI requester id.
   * @param iova The address.
   * @param access Read or write.
   * @returns A cached translation, or `undefined`.
   */
  translateCached?(requesterId: number, iova: number, access: DmaAccess): Translation | undefined;
  /**
   * Called at the start of every DMA transaction: the point at which cached
   * translations are revalidated against invalidations. Calls nest: a
   * scatter-gather list, or a sized access that straddles two translations,
   * runs inner calls inside one outer transaction; an implementation counts
   * the depth and treats only the outermost pair as the transaction.
   */
  beginTransaction?(): void;
  /** Called at the end of every DMA transaction (after the last byte moved). */
  endTransaction?(): void;
  /**
   * Registers a live mapping so that an invalidation of any part of it calls
   * `onInvalidate` and waits for the pin's release before it completes.
   *
   * @param requesterId PCI requester id.
   * @param iova Start of the mapped range.
   * @param length Length of the mapped range.
   * @param onInvalidate Called (once) when an invalidation covers the range.
   * @returns The pin to release when the mapping is unmapped.
   */
  pin?(requesterId: number, iova: number, length: number, onInvalidate: () => void): MmuPin;
  /**
   * Hints that `requesterId` will access `[iova, iova + length)` soon, so an
   * IOMMU may translate ahead, off the device's critical path. Never faults,
   * never logs, and has no effect on what a later access is allowed to do.
   *
   * @param requesterId PCI requester id.
   * @param iova Start of the range.
   * @param length Bytes.
   */
  prefetch?(requesterId: number, iova: number, length: number): void;
}

/**
 * The identity MMU: every address translates to itself with full permissions.
 * Used when a machine has no IOMMU; `DmaContext` takes a faster path when no
 * MMU is given at all, this class exists for tests and explicit wiring.
 *
 * @example
 * ```ts
 * import { IdentityMmu } from "./mmu.ts";
 * import { equal } from "node:assert/strict";
 * const t = new IdentityMmu().translate(0x10, 0x5000, 16, "read");
 * equal(t.ok && t.address, 0x5000);
 * ```
 */
export class IdentityMmu implements Mmu {
  /**
   * Translates `iova` to itself.
   *
   * @param _requesterId Ignored.
   * @param iova The address.
   * @param length The requested length.
   * @param _access Ignored.
   * @returns An identity translation of `length` bytes.
   *
   * @example
   * ```ts
   * import { IdentityMmu, Permission } from "./mmu.ts";
   * import { deepEqual } from "node:assert/strict";
   * const t = new IdentityMmu().translate(0x20, 0x1234_5000, 0, "write");
   * deepEqual(t, { ok: true, address: 0x1234_5000, length: 1, permissions: Permission.ReadWrite });
   * ```
   */
  translate(_requesterId: number, iova: number, length: number, _access: DmaAccess): MmuResult {
    return {
      ok: true,
      address: iova,
      length: Math.max(1, length),
      permissions: Permission.ReadWrite,
    };
  }
}
