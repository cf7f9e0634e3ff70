/**
 * Guest-side helpers of the stress agents: edu DMA that notices a dead
 * device instead of waiting out a timeout, liveness checks for every device
 * kind, seeded data patterns and checksums.
 *
 * @module
 */

import type { Guest } from "../guest/guest.ts";
import { EduDmaCommand, EduStatus } from "../devices/edu.ts";

/** The byte a page holds once its translation was invalidated. */
export const POISON = 0xee;

const ALL_ONES_32 = 0xffff_ffff;
const ALL_ONES_64 = 0xffff_ffff_ffff_ffffn;

/** edu registers the agents use. */
const EduReg = {
  ID: 0x00,
  LIVENESS: 0x04,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_ACK: 0x64,
  SRC: 0x80,
  DST: 0x88,
  COUNT: 0x90,
  CMD: 0x98,
  FAULT_ADDR: 0xa0,
  FAULT_CODE: 0xa8,
  STOP: 0xb0,
} as const;

/** The edu interrupt status bit of a finished DMA. */
const EDU_IRQ_DMA = 0x100;

/** How an edu DMA ended. */
export interface EduOutcome {
  /** The device is gone (its registers read all-ones). */
  readonly dead: boolean;
  /** Success. */
  readonly ok: boolean;
  /** The fault code register (0: none). */
  readonly code: number;
  /** The fault address register. */
  readonly address: number;
}

/**
 * Whether an edu device answers.
 *
 * @param guest The CPU.
 * @param mmio BAR0.
 * @returns `false` once its registers read all-ones.
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { eduAlive } from "./stress_devices.ts";
 * function program(guest: Guest, bar: number): boolean {
 *   return eduAlive(guest, bar);
 * }
 * ```
 */
export function eduAlive(guest: Guest, mmio: number): boolean {
  return guest.read32(mmio + EduReg.ID) !== ALL_ONES_32;
}

/**
 * Starts an edu copy (RAM → RAM through the device's buffer) from `src` to
 * `dst` (DMA addresses), optionally repeating until stopped, or raising the
 * DMA interrupt when done.
 *
 * @param guest The CPU.
 * @param mmio BAR0.
 * @param transfer Addresses, length, repeat and interrupt.
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { eduStart } from "./stress_devices.ts";
 * function program(guest: Guest, bar: number): void {
 *   eduStart(guest, bar, { src: 0x4100_0000, dst: 0x4100_1000, length: 64 });
 * }
 * ```
 */
export function eduStart(
  guest: Guest,
  mmio: number,
  transfer: { src: number; dst: number; length: number; repeat?: boolean; irq?: boolean },
): void {
  guest.write32(mmio + EduReg.STATUS, EduStatus.DMA_ERROR);
  guest.write64(mmio + EduReg.SRC, BigInt(transfer.src));
  guest.write64(mmio + EduReg.DST, BigInt(transfer.dst));
  guest.write64(mmio + EduReg.COUNT, BigInt(transfer.length));
  const cmd = EduDmaCommand.RUN | EduDmaCommand.COPY |
    (transfer.repeat ? EduDmaCommand.REPEAT : 0) | (transfer.irq ? EduDmaCommand.IRQ : 0);
  guest.write64(mmio + EduReg.CMD, BigInt(cmd));
}

/**
 * Waits until the edu DMA stops (its command's RUN bit clears, or with
 * `irq` its DMA interrupt status bit is set), then reads the outcome.
 *
 * @param guest The CPU.
 * @param mmio BAR0.
 * @param options Wait for the interrupt status instead; timeout.
 * @returns The outcome.
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { eduStart, eduWait } from "./stress_devices.ts";
 * function program(guest: Guest, bar: number): boolean {
 *   eduStart(guest, bar, { src: 0x4100_0000, dst: 0x4100_1000, length: 64 });
 *   return eduWait(guest, bar, { timeoutMs: 1000 }).ok;
 * }
 * ```
 */
export function eduWait(
  guest: Guest,
  mmio: number,
  options: { irq?: boolean; timeoutMs?: number } = {},
): EduOutcome {
  const deadline = performance.now() + (options.timeoutMs ?? 5000);
  for (;;) {
    if (options.irq) {
      const s = guest.read32(mmio + EduReg.IRQ_STATUS);
      if (s === ALL_ONES_32) return { dead: true, ok: false, code: 0, address: 0 };
      if (s & EDU_IRQ_DMA) break;
    } else {
      const cmd = guest.read64(mmio + EduReg.CMD);
      if (cmd === ALL_ONES_64) return { dead: true, ok: false, code: 0, address: 0 };
      if (!(cmd & 1n)) break;
    }
    if (performance.now() > deadline) throw new Error("Timed out waiting for an edu DMA");
  }
  return eduOutcome(guest, mmio, options.irq ?? false);
}

function eduOutcome(guest: Guest, mmio: number, ackIrq: boolean): EduOutcome {
  const status = guest.read32(mmio + EduReg.STATUS);
  const code = guest.read64(mmio + EduReg.FAULT_CODE);
  const address = guest.read64(mmio + EduReg.FAULT_ADDR);
  if (status === ALL_ONES_32 || code === ALL_ONES_64) {
    return { dead: true, ok: false, code: 0, address: 0 };
  }
  if (ackIrq) guest.write32(mmio + EduReg.IRQ_ACK, EDU_IRQ_DMA);
  return {
    dead: false,
    ok: (status & EduStatus.DMA_ERROR) === 0,
    code: Number(code),
    address: Number(address),
  };
}

/**
 * Stops a repeating edu DMA and waits until it has stopped.
 *
 * @param guest The CPU.
 * @param mmio BAR0.
 * @returns The outcome (a fault while repeating shows here).
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { eduStart, eduStop } from "./stress_devices.ts";
 * function program(guest: Guest, bar: number): boolean {
 *   eduStart(guest, bar, { src: 0x4100_0000, dst: 0x4200_0000, length: 4096, repeat: true });
 *   return eduStop(guest, bar).ok;
 * }
 * ```
 */
export function eduStop(guest: Guest, mmio: number): EduOutcome {
  guest.write64(mmio + EduReg.STOP, 1n);
  return eduWait(guest, mmio);
}

/**
 * One edu copy, waited for.
 *
 * @param guest The CPU.
 * @param mmio BAR0.
 * @param transfer Addresses and length.
 * @returns The outcome.
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { eduCopy } from "./stress_devices.ts";
 * function program(guest: Guest, bar: number): boolean {
 *   return eduCopy(guest, bar, { src: 0x4100_0000, dst: 0x4300_0000, length: 16 }).ok;
 * }
 * ```
 */
export function eduCopy(
  guest: Guest,
  mmio: number,
  transfer: { src: number; dst: number; length: number },
): EduOutcome {
  eduStart(guest, mmio, transfer);
  return eduWait(guest, mmio);
}

/**
 * Writes the edu liveness register and reads it back (the device answers
 * with the inverse).
 *
 * @param guest The CPU.
 * @param mmio BAR0.
 * @param value A 32-bit value.
 * @returns Whether the device answered with the inverse.
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { eduLiveness } from "./stress_devices.ts";
 * function program(guest: Guest, bar: number): boolean {
 *   return eduLiveness(guest, bar, 0x1234);
 * }
 * ```
 */
export function eduLiveness(guest: Guest, mmio: number, value: number): boolean {
  guest.write32(mmio + EduReg.LIVENESS, value);
  return guest.read32(mmio + EduReg.LIVENESS) === (~value >>> 0);
}

/**
 * Fills `out` with bytes from a seeded xorshift stream; with `avoid`, that
 * byte value never appears (it becomes `avoid - 1`).
 *
 * @param out Where to write.
 * @param seed Any 32-bit value.
 * @param avoid A byte value to leave out (e.g. {@linkcode POISON}).
 *
 * @example
 * ```ts
 * import { fillPattern, POISON } from "./stress_devices.ts";
 * import { deepEqual, ok } from "node:assert/strict";
 * const a = new Uint8Array(4096), b = new Uint8Array(4096);
 * fillPattern(a, 7, POISON);
 * fillPattern(b, 7, POISON);
 * deepEqual(a, b);
 * ok(!a.includes(POISON));
 * ```
 */
export function fillPattern(out: Uint8Array, seed: number, avoid?: number): void {
  let x = (seed ^ 0x2545_f491) >>> 0 || 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
    if (i + 1 < out.length) out[i + 1] = (x >>> 8) & 0xff;
    if (i + 2 < out.length) out[i + 2] = (x >>> 16) & 0xff;
    if (i + 3 < out.length) out[i + 3] = x >>> 24;
  }
  if (avoid !== undefined) {
    for (let i = 0; i < out.length; i++) if (out[i] === avoid) out[i] = (avoid - 1) & 0xff;
  }
}

/**
 * FNV-1a of a byte range.
 *
 * @param bytes The bytes.
 * @returns The 32-bit checksum.
 *
 * @example
 * ```ts
 * import { checksum } from "./stress_devices.ts";
 * import { equal } from "node:assert/strict";
 * equal(checksum(new Uint8Array(0)), 0x811c9dc5);
 * ```
 */
export function checksum(bytes: Uint8Array): number {
  let h = 0x811c_9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x0100_0193);
  return h >>> 0;
}

/**
 * The first offset where `bytes` differs from `value` (every byte), or -1.
 *
 * @param bytes The bytes (a view of guest RAM, say).
 * @param value A byte value.
 * @returns The offset, or -1 when every byte is `value`.
 *
 * @example
 * ```ts
 * import { firstNot } from "./stress_devices.ts";
 * import { equal } from "node:assert/strict";
 * equal(firstNot(new Uint8Array([7, 7, 7]), 7), -1);
 * equal(firstNot(new Uint8Array([7, 8, 7]), 7), 1);
 * ```
 */
export function firstNot(bytes: Uint8Array, value: number): number {
  // Compare 32 bits at a time where aligned: poisoned 2 MiB pages are checked often.
  const start = (4 - (bytes.byteOffset % 4)) % 4;
  for (let i = 0; i < Math.min(start, bytes.length); i++) if (bytes[i] !== value) return i;
  const words = Math.floor((bytes.length - start) / 4);
  if (words > 0) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + start, words);
    const v = (value * 0x0101_0101) >>> 0;
    for (let i = 0; i < words; i++) {
      if (w[i] !== v) {
        for (let j = start + i * 4; j < start + i * 4 + 4; j++) if (bytes[j] !== value) return j;
      }
    }
  }
  for (let i = start + words * 4; i < bytes.length; i++) if (bytes[i] !== value) return i;
  return -1;
}

/**
 * The first offset where two byte ranges differ, or -1.
 *
 * @param a One range.
 * @param b The other (same length).
 * @returns The offset, or -1 when equal.
 *
 * @example
 * ```ts
 * import { firstDifference } from "./stress_devices.ts";
 * import { equal } from "node:assert/strict";
 * equal(firstDifference(new Uint8Array([1, 2]), new Uint8Array([1, 3])), 1);
 * ```
 */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
