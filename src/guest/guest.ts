/**
 * What a guest program sees: a CPU's view of the machine. Guest programs run
 * in guest agents ("vCPUs"), which may block, so every access here is
 * synchronous, like an instruction.
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";

/** Options for {@linkcode Guest.waitIrq}. */
export interface WaitIrqOptions {
  /** Give up after this many milliseconds (default 5000). */
  timeoutMs?: number;
}

/**
 * A CPU's view of the machine, for guest programs and guest drivers.
 *
 * Physical accesses (`read*`/`write*`) reach RAM directly and MMIO through
 * the owning device's mailbox; unassigned addresses read all-ones and drop
 * writes. Memory writes are posted; port writes are not (PCI I/O writes are
 * non-posted), and a read never passes an earlier write to the same target.
 */
export interface Guest {
  /** Guest RAM, for direct (cache-coherent) access. */
  readonly memory: GuestMemory;
  /** This agent's index (1 … 15). */
  readonly agentIndex: number;

  /** Reads a byte of physical memory. @param address Physical address. @returns The value. */
  read8(address: number): number;
  /** Reads 16 bits. @param address Physical address. @returns The value. */
  read16(address: number): number;
  /** Reads 32 bits. @param address Physical address. @returns The value. */
  read32(address: number): number;
  /** Reads 64 bits. @param address Physical address. @returns The value. */
  read64(address: number): bigint;
  /** Writes a byte. @param address Physical address. @param value The value. */
  write8(address: number, value: number): void;
  /** Writes 16 bits. @param address Physical address. @param value The value. */
  write16(address: number, value: number): void;
  /** Writes 32 bits. @param address Physical address. @param value The value. */
  write32(address: number, value: number): void;
  /** Writes 64 bits. @param address Physical address. @param value The value. */
  write64(address: number, value: bigint): void;

  /** Reads a byte from an I/O port. @param port Port number. @returns The value. */
  in8(port: number): number;
  /** Reads 16 bits from an I/O port. @param port Port number. @returns The value. */
  in16(port: number): number;
  /** Reads 32 bits from an I/O port. @param port Port number. @returns The value. */
  in32(port: number): number;
  /** Writes a byte to an I/O port. @param port Port number. @param value The value. */
  out8(port: number, value: number): void;
  /** Writes 16 bits to an I/O port. @param port Port number. @param value The value. */
  out16(port: number, value: number): void;
  /** Writes 32 bits to an I/O port. @param port Port number. @param value The value. */
  out32(port: number, value: number): void;

  /**
   * Whether interrupt line `line` is asserted.
   *
   * @param line GSI (0–23).
   * @returns The level.
   */
  irqLevel(line: number): boolean;
  /**
   * Waits until interrupt line `line` is asserted.
   *
   * @param line GSI (0–23).
   * @param options Timeout.
   * @returns `true` when asserted, `false` on timeout.
   */
  waitIrq(line: number, options?: WaitIrqOptions): boolean;
  /**
   * Sleeps while the 64-bit RAM value at `address` equals `expected`, until
   * the IOMMU's COMPLETION_WAIT stores there (it wakes such sleepers), or the
   * timeout: MONITOR/MWAIT for a completion semaphore, so a polling guest
   * gives its CPU back. Other writers do not wake it: re-check and loop.
   *
   * @param address 8-byte aligned guest-physical address in RAM.
   * @param expected The value seen last.
   * @param options Longest sleep (default 1 ms).
   */
  waitMemory(address: number, expected: bigint, options?: { timeoutMs?: number }): void;
  /**
   * Sleeps (blocks this agent only).
   *
   * @param ms Milliseconds.
   */
  sleep(ms: number): void;
  /**
   * Advances the machine's trace epoch: DMA trace records carry the epoch
   * before and after their copy, so a checker can order device accesses
   * against what the guest did (e.g. "page P was invalidated at epoch E").
   *
   * @returns The new epoch.
   */
  traceMark(): number;
  /**
   * Sends a line to the machine's log.
   *
   * @param message The line.
   */
  log(message: string): void;
}

/** A guest program: the default export of a workload module. */
export type GuestProgram = (guest: Guest, options: Readonly<Record<string, string>>) => unknown;
