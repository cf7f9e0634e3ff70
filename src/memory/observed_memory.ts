/**
 * Guest RAM with an observer: every read and write through this object is
 * reported (address, length, direction) before it happens. The machine hands
 * one to the IOMMU when DMA injection is on, so the fuzzer sees (and can fill)
 * every device-table entry, page-table entry and command the IOMMU fetches.
 *
 * @module
 */

import { GuestMemory, type GuestMemoryDescriptor } from "./guest_memory.ts";

/**
 * Called before each access.
 *
 * @param address Guest-physical address.
 * @param length Bytes.
 * @param access Read or write.
 */
export type MemoryObserver = (address: number, length: number, access: "read" | "write") => void;

/**
 * Guest RAM that reports its accesses. It shares the buffer of the RAM it
 * was made from.
 *
 * @example
 * ```ts
 * import { GuestMemory } from "./guest_memory.ts";
 * import { ObservedMemory } from "./observed_memory.ts";
 * import { deepEqual } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 1 << 20 });
 * const seen: string[] = [];
 * const observed = new ObservedMemory(ram.descriptor(), (a, n, d) => seen.push(`${d} ${a} ${n}`));
 * observed.write64(0x100, 5n);
 * observed.atomicLoad64(0x100);
 * deepEqual(seen, ["write 256 8", "read 256 8"]);
 * ```
 */
export class ObservedMemory extends GuestMemory {
  #observe: MemoryObserver;

  /**
   * Attaches to existing RAM.
   *
   * @param descriptor The RAM (from {@linkcode GuestMemory.descriptor}).
   * @param observe Called before each access.
   */
  constructor(descriptor: GuestMemoryDescriptor, observe: MemoryObserver) {
    super(descriptor);
    this.#observe = observe;
  }

  /** @inheritdoc */
  override read8(address: number): number {
    this.#observe(address, 1, "read");
    return super.read8(address);
  }
  /** @inheritdoc */
  override read16(address: number): number {
    this.#observe(address, 2, "read");
    return super.read16(address);
  }
  /** @inheritdoc */
  override read32(address: number): number {
    this.#observe(address, 4, "read");
    return super.read32(address);
  }
  /** @inheritdoc */
  override read64(address: number): bigint {
    this.#observe(address, 8, "read");
    return super.read64(address);
  }
  /** @inheritdoc */
  override atomicLoad64(address: number): bigint {
    this.#observe(address, 8, "read");
    return super.atomicLoad64(address);
  }
  /** @inheritdoc */
  override read(address: number, dest: Uint8Array): void {
    this.#observe(address, dest.length, "read");
    super.read(address, dest);
  }
  /** @inheritdoc */
  override view(address: number, length: number): Uint8Array<SharedArrayBuffer> {
    this.#observe(address, length, "read");
    return super.view(address, length);
  }
  /** @inheritdoc */
  override write8(address: number, value: number): void {
    this.#observe(address, 1, "write");
    super.write8(address, value);
  }
  /** @inheritdoc */
  override write16(address: number, value: number): void {
    this.#observe(address, 2, "write");
    super.write16(address, value);
  }
  /** @inheritdoc */
  override write32(address: number, value: number): void {
    this.#observe(address, 4, "write");
    super.write32(address, value);
  }
  /** @inheritdoc */
  override write64(address: number, value: bigint): void {
    this.#observe(address, 8, "write");
    super.write64(address, value);
  }
  /** @inheritdoc */
  override atomicStore64(address: number, value: bigint): void {
    this.#observe(address, 8, "write");
    super.atomicStore64(address, value);
  }
  /** @inheritdoc */
  override write(address: number, src: Uint8Array): void {
    this.#observe(address, src.length, "write");
    super.write(address, src);
  }
  /** @inheritdoc */
  override fill(address: number, length: number, value: number): void {
    this.#observe(address, length, "write");
    super.fill(address, length, value);
  }
}
