/**
 * A guest driver for the edu device.
 *
 * @module
 */

import type { Guest } from "./guest.ts";

/** Options for {@linkcode EduDriver.dma}. */
export interface EduDmaOptions {
  /** Raise interrupt 0x100 when done and wait for it (default false: poll). */
  interrupt?: boolean;
  /** Give up after this long (ms, default 5000). */
  timeoutMs?: number;
}

/** The outcome of a DMA. */
export interface EduDmaResult {
  /** Whether the device reported success. */
  readonly ok: boolean;
  /** The fault code register (0 = none). */
  readonly faultCode: number;
  /** The fault address register. */
  readonly faultAddress: bigint;
}

/**
 * Drives an edu device whose BAR0 is mapped at `base`.
 *
 * @example
 * ```ts
 * // The default export of a guest program (run with `machine.runGuest(url)`); edu's BAR0 at 0xfe000000.
 * import type { Guest } from "./guest.ts";
 * import { EduDriver } from "./edu_driver.ts";
 *
 * function program(guest: Guest): number {
 *   const edu = new EduDriver(guest, { base: 0xfe000000, irqLine: 20 });
 *   return edu.factorial(5); // 120
 * }
 * ```
 */
export class EduDriver {
  #guest: Guest;
  #base: number;
  #irqLine: number;

  /**
   * Creates a driver.
   *
   * @param guest The CPU.
   * @param location BAR0 address and the device's interrupt line.
   */
  constructor(guest: Guest, location: { base: number; irqLine: number }) {
    this.#guest = guest;
    this.#base = location.base;
    this.#irqLine = location.irqLine;
  }

  /**
   * The identification register (0x010000ed).
   *
   * @example
   * ```ts
   * import type { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(edu: EduDriver): void {
   *   equal(edu.identify(), 0x010000ed); // version 1.0, "ed"
   * }
   * ```
   */
  identify(): number {
    return this.#guest.read32(this.#base);
  }

  /**
   * Writes the liveness register and reads it back.
   *
   * @param value Any 32-bit value.
   * @returns What the device returns (the inverse).
   *
   * @example
   * ```ts
   * import type { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(edu: EduDriver): void {
   *   equal(edu.liveness(0x1234_5678), 0xedcb_a987); // the bitwise inverse
   * }
   * ```
   */
  liveness(value: number): number {
    this.#guest.write32(this.#base + 0x04, value);
    return this.#guest.read32(this.#base + 0x04);
  }

  /**
   * Computes n! on the device (32-bit), optionally waiting for its interrupt.
   *
   * @param n The argument.
   * @param options `interrupt: true` waits for interrupt 0x1 instead of polling.
   * @returns n! modulo 2^32.
   *
   * @example
   * ```ts
   * import type { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(edu: EduDriver): void {
   *   equal(edu.factorial(5), 120);
   *   equal(edu.factorial(10, { interrupt: true, timeoutMs: 1000 }), 3_628_800);
   * }
   * ```
   */
  factorial(n: number, options: { interrupt?: boolean; timeoutMs?: number } = {}): number {
    const g = this.#guest;
    const timeout = options.timeoutMs ?? 5000;
    g.write32(this.#base + 0x20, options.interrupt ? 0x80 : 0);
    g.write32(this.#base + 0x08, n);
    if (options.interrupt) {
      if (!g.waitIrq(this.#irqLine, { timeoutMs: timeout })) {
        throw new Error("Timed out waiting for the factorial interrupt");
      }
      const status = g.read32(this.#base + 0x24);
      g.write32(this.#base + 0x64, status & 0x1);
    } else {
      const deadline = performance.now() + timeout;
      while (g.read32(this.#base + 0x20) & 1) {
        if (performance.now() > deadline) throw new Error("Timed out waiting for the factorial");
      }
    }
    return g.read32(this.#base + 0x08);
  }

  /**
   * Raises interrupt bits through the raise register.
   *
   * @param bits Bits to OR into the interrupt status.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest): void {
   *   const edu = new EduDriver(guest, { base: 0xfe00_0000, irqLine: 20 });
   *   edu.raise(0x8);
   *   equal(guest.waitIrq(20, { timeoutMs: 1000 }), true); // the line stays up until acknowledged
   *   edu.acknowledge(0x8);
   * }
   * ```
   */
  raise(bits: number): void {
    this.#guest.write32(this.#base + 0x60, bits);
  }

  /**
   * Acknowledges interrupt bits.
   *
   * @param bits Bits to clear.
   *
   * @example
   * ```ts
   * import type { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(edu: EduDriver): void {
   *   edu.raise(0x3);
   *   edu.acknowledge(0x1);
   *   equal(edu.interruptStatus(), 0x2); // only the bits given are cleared
   *   edu.acknowledge(0x2);
   * }
   * ```
   */
  acknowledge(bits: number): void {
    this.#guest.write32(this.#base + 0x64, bits);
  }

  /**
   * The interrupt status register.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { EduDriver } from "./edu_driver.ts";
   *
   * function program(guest: Guest): number {
   *   const edu = new EduDriver(guest, { base: 0xfe00_0000, irqLine: 20 });
   *   if (!guest.waitIrq(20, { timeoutMs: 1000 })) return 0;
   *   const status = edu.interruptStatus(); // 0x1: factorial done, 0x100: DMA done
   *   edu.acknowledge(status);
   *   return status;
   * }
   * ```
   */
  interruptStatus(): number {
    return this.#guest.read32(this.#base + 0x24);
  }

  /**
   * Starts a repeating DMA (dmaworks extension): `copy` moves `length` bytes
   * from `src` to `dst` (both DMA addresses) through the device buffer again
   * and again; otherwise the given direction repeats.
   *
   * @param transfer Addresses, length, copy or direction.
   *
   * @example
   * ```ts
   * import type { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(edu: EduDriver): void {
   *   edu.startRepeat({ src: 0x40_0000, dst: 0x40_1000, length: 4096, copy: true });
   *   // … change the IOMMU mappings under the running copies …
   *   const { ok, faultCode } = edu.stopRepeat();
   *   equal(ok, true, `fault code ${faultCode}`);
   * }
   * ```
   */
  startRepeat(
    transfer: { src: number; dst: number; length: number; copy?: boolean; toRam?: boolean },
  ): void {
    const g = this.#guest;
    g.write32(this.#base + 0x20, 0x100);
    g.write64(this.#base + 0x80, BigInt(transfer.src));
    g.write64(this.#base + 0x88, BigInt(transfer.dst));
    g.write64(this.#base + 0x90, BigInt(transfer.length));
    g.write64(
      this.#base + 0x98,
      BigInt(1 | 8 | (transfer.copy ? 0x10 : 0) | (transfer.toRam ? 2 : 0)),
    );
  }

  /**
   * Stops a repeating DMA and waits until it has stopped.
   *
   * @param timeoutMs Give up after this long (default 5000).
   * @returns Whether the device reported an error while repeating.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest): void {
   *   const edu = new EduDriver(guest, { base: 0xfe00_0000, irqLine: 20 });
   *   edu.startRepeat({ src: 0x40_0000, dst: 0x40000, length: 4096 }); // RAM → device buffer
   *   guest.sleep(10);
   *   equal(edu.stopRepeat(1000).ok, true); // no DMA error while it repeated
   * }
   * ```
   */
  stopRepeat(timeoutMs = 5000): { ok: boolean; faultCode: number } {
    const g = this.#guest;
    g.write64(this.#base + 0xb0, 1n);
    const deadline = performance.now() + timeoutMs;
    while (g.read64(this.#base + 0x98) & 1n) {
      if (performance.now() > deadline) throw new Error("Timed out stopping a repeating DMA");
    }
    return {
      ok: (g.read32(this.#base + 0x20) & 0x100) === 0,
      faultCode: Number(g.read64(this.#base + 0xa8)),
    };
  }

  /**
   * Starts one RAM → RAM copy through the device buffer (dmaworks
   * extension: the copy bit without repeat) and returns at once, so that
   * several devices can copy at the same time; finish with
   * {@linkcode EduDriver.waitDma}.
   *
   * @param transfer Source and destination DMA addresses (IOVAs with an IOMMU) and length (at most 4096).
   *
   * @example
   * ```ts
   * import type { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(a: EduDriver, b: EduDriver): void {
   *   a.startCopy({ src: 0x40_0000, dst: 0x50_0000, length: 4096 });
   *   b.startCopy({ src: 0x40_1000, dst: 0x50_1000, length: 4096 }); // both devices copy at once
   *   equal(a.waitDma().ok, true);
   *   equal(b.waitDma().ok, true);
   * }
   * ```
   */
  startCopy(transfer: { src: number; dst: number; length: number }): void {
    const g = this.#guest;
    g.write32(this.#base + 0x20, 0x100); // clear a stale DMA error
    g.write64(this.#base + 0x80, BigInt(transfer.src));
    g.write64(this.#base + 0x88, BigInt(transfer.dst));
    g.write64(this.#base + 0x90, BigInt(transfer.length));
    g.write64(this.#base + 0x98, BigInt(1 | 0x10));
  }

  /**
   * Waits (polling) until the device's DMA has finished and reads its outcome.
   *
   * @param timeoutMs Give up after this long (default 5000).
   * @returns Whether it succeeded, with the fault registers.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest, edu: EduDriver): void {
   *   guest.write32(0x40_0000, 0xcafe);
   *   edu.startCopy({ src: 0x40_0000, dst: 0x40_1000, length: 4 });
   *   const result = edu.waitDma(1000);
   *   equal(result.ok, true, `fault ${result.faultCode} at 0x${result.faultAddress.toString(16)}`);
   *   equal(guest.read32(0x40_1000), 0xcafe);
   * }
   * ```
   */
  waitDma(timeoutMs = 5000): EduDmaResult {
    const g = this.#guest;
    const deadline = performance.now() + timeoutMs;
    while (g.read64(this.#base + 0x98) & 1n) {
      if (performance.now() > deadline) throw new Error("Timed out waiting for the DMA");
    }
    return this.#outcome();
  }

  /** The finished DMA's outcome: the status error bit and the fault registers. */
  #outcome(): EduDmaResult {
    const g = this.#guest;
    const status = g.read32(this.#base + 0x20);
    return {
      ok: (status & 0x100) === 0,
      faultCode: Number(g.read64(this.#base + 0xa8)),
      faultAddress: g.read64(this.#base + 0xa0),
    };
  }

  /**
   * Transfers completed since reset (dmaworks extension).
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { EduDriver } from "./edu_driver.ts";
   * import { ok } from "node:assert/strict";
   *
   * function program(guest: Guest, edu: EduDriver): void {
   *   edu.startRepeat({ src: 0x40_0000, dst: 0x40000, length: 4096 }); // RAM → device buffer
   *   guest.sleep(10);
   *   edu.stopRepeat();
   *   ok(edu.iterations() > 0n);
   * }
   * ```
   */
  iterations(): bigint {
    return this.#guest.read64(this.#base + 0xb8);
  }

  /**
   * Runs one DMA between guest memory (an IOVA, or a physical address without
   * an IOMMU) and the device buffer.
   *
   * @param transfer Direction, addresses and length.
   * @param options Interrupt or polling, timeout.
   * @returns Whether it succeeded, with the fault registers.
   *
   * @example
   * ```ts
   * import type { Guest } from "./guest.ts";
   * import { EduDriver } from "./edu_driver.ts";
   * import { equal } from "node:assert/strict";
   *
   * function program(guest: Guest, edu: EduDriver): void {
   *   const buffer = 0x40000; // the device's own buffer
   *   guest.write32(0x40_0000, 0xcafe);
   *   equal(edu.dma({ direction: "to-device", ram: 0x40_0000, buffer, length: 4 }).ok, true);
   *   const back = { direction: "to-ram", ram: 0x40_1000, buffer, length: 4 } as const;
   *   equal(edu.dma(back, { interrupt: true }).ok, true);
   *   equal(guest.read32(0x40_1000), 0xcafe);
   * }
   * ```
   */
  dma(
    transfer: { direction: "to-device" | "to-ram"; ram: number; buffer: number; length: number },
    options: EduDmaOptions = {},
  ): EduDmaResult {
    const g = this.#guest;
    const toRam = transfer.direction === "to-ram";
    g.write32(this.#base + 0x20, 0x100); // clear a stale DMA error
    g.write64(this.#base + 0x80, BigInt(toRam ? transfer.buffer : transfer.ram));
    g.write64(this.#base + 0x88, BigInt(toRam ? transfer.ram : transfer.buffer));
    g.write64(this.#base + 0x90, BigInt(transfer.length));
    g.write64(this.#base + 0x98, BigInt(1 | (toRam ? 2 : 0) | (options.interrupt ? 4 : 0)));
    const timeout = options.timeoutMs ?? 5000;
    if (options.interrupt) {
      if (!g.waitIrq(this.#irqLine, { timeoutMs: timeout })) {
        throw new Error("Timed out waiting for the DMA interrupt");
      }
      g.write32(this.#base + 0x64, 0x100);
      return this.#outcome();
    }
    return this.waitDma(timeout);
  }
}
