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

  /** The identification register (0x010000ed). */
  identify(): number {
    return this.#guest.read32(this.#base);
  }

  /**
   * Writes the liveness register and reads it back.
   *
   * @param value Any 32-bit value.
   * @returns What the device returns (the inverse).
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
   */
  raise(bits: number): void {
    this.#guest.write32(this.#base + 0x60, bits);
  }

  /**
   * Acknowledges interrupt bits.
   *
   * @param bits Bits to clear.
   */
  acknowledge(bits: number): void {
    this.#guest.write32(this.#base + 0x64, bits);
  }

  /** The interrupt status register. */
  interruptStatus(): number {
    return this.#guest.read32(this.#base + 0x24);
  }

  /**
   * Starts a repeating DMA (dmaworks extension): `copy` moves `length` bytes
   * from `src` to `dst` (both DMA addresses) through the device buffer again
   * and again; otherwise the given direction repeats.
   *
   * @param transfer Addresses, length, copy or direction.
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
   */
  waitDma(timeoutMs = 5000): EduDmaResult {
    const g = this.#guest;
    const deadline = performance.now() + timeoutMs;
    while (g.read64(this.#base + 0x98) & 1n) {
      if (performance.now() > deadline) throw new Error("Timed out waiting for the DMA");
    }
    const status = g.read32(this.#base + 0x20);
    return {
      ok: (status & 0x100) === 0,
      faultCode: Number(g.read64(this.#base + 0xa8)),
      faultAddress: g.read64(this.#base + 0xa0),
    };
  }

  /** Transfers completed since reset (dmaworks extension). */
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
    } else {
      const deadline = performance.now() + timeout;
      while (g.read64(this.#base + 0x98) & 1n) {
        if (performance.now() > deadline) throw new Error("Timed out waiting for the DMA");
      }
    }
    const status = g.read32(this.#base + 0x20);
    return {
      ok: (status & 0x100) === 0,
      faultCode: Number(g.read64(this.#base + 0xa8)),
      faultAddress: g.read64(this.#base + 0xa0),
    };
  }
}
