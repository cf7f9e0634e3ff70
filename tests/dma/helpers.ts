// Shared helpers of the DMA tests.
import { deepEqual, fail } from "node:assert/strict";
import type { DmaFaultKind, DmaLoad, DmaResult } from "../../src/dma/dma_result.ts";
import type { DmaAccess } from "../../src/dma/mmu.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";

/** 64 KiB of RAM below 4 GiB, the PCI hole up to 4 GiB, 64 KiB above. */
export const LOW = 0x1_0000;
/** 2^32. */
export const GIB4 = 0x1_0000_0000;
/** The first address above RAM in {@linkcode splitRam}. */
export const TOP = GIB4 + 0x1_0000;

/** A small machine with RAM below and above the 4 GiB boundary. */
export function splitRam(): GuestMemory {
  const ram = new GuestMemory({ size: 2 * LOW, lowLimit: LOW });
  // A recognisable, position-dependent pattern.
  for (let i = 0; i < ram.bytes.length; i++) ram.bytes[i] = (i * 13 + 7) & 0xff;
  return ram;
}

/** Asserts two byte arrays are equal, naming the first difference. */
export function sameBytes(actual: Uint8Array, expected: Uint8Array, message = ""): void {
  if (actual.length !== expected.length) {
    fail(`${message}: length ${actual.length} !== ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      fail(
        `${message}: first difference at byte 0x${i.toString(16)}: ` +
          `0x${actual[i]!.toString(16)} !== 0x${expected[i]!.toString(16)}`,
      );
    }
  }
}

/**
 * Asserts RAM equals `before` except for the given patches
 * (buffer offset → bytes).
 */
export function onlyChanged(
  ram: GuestMemory,
  before: Uint8Array,
  patches: ReadonlyArray<readonly [number, ArrayLike<number>]>,
  message = "RAM",
): void {
  const expected = before.slice();
  for (const [offset, bytes] of patches) expected.set(bytes, offset);
  sameBytes(ram.bytes, expected, message);
}

/** Asserts `r` is a fault with exactly these fields. */
export function isFault(
  r: DmaResult | DmaLoad<unknown>,
  kind: DmaFaultKind,
  address: number,
  access: DmaAccess,
  transferred: number,
): void {
  deepEqual(r, { ok: false, kind, address, access, transferred });
}

/** Asserts a load succeeded and returns its value. */
export function loaded<T>(r: DmaLoad<T>): T {
  if (!r.ok) fail(`load failed: ${r.kind} at 0x${r.address.toString(16)}`);
  return r.value;
}

/** Asserts a call succeeded. */
export function succeeded(r: DmaResult): void {
  deepEqual(r, { ok: true });
}

/** `n` bytes counting up from `start`. */
export function ramp(n: number, start = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
}
