/**
 * Interrupt lines in shared memory: every interrupt source (a device's INTx
 * pin or a fixed ISA line) has a level word; a line (GSI) is asserted while
 * any unmasked source routed to it is. Level-triggered, wired-OR, like PCI
 * INTx.
 *
 * @module
 */

import { IRQ_LINES, MachineBlock, MAX_IRQ_SOURCES } from "./layout.ts";

/**
 * A view of the machine block's interrupt words, usable from any thread.
 *
 * @example
 * ```ts
 * import { IrqLines } from "./irq_lines.ts";
 * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
 * irq.route(0, 20);
 * irq.route(1, 20);
 * irq.setSource(0, true);
 * irq.setSource(1, true);
 * irq.setSource(0, false);
 * equal(irq.lineLevel(20), true); // source 1 still holds the shared line
 * irq.mask(1, true);
 * equal(irq.lineLevel(20), false);
 * ```
 */
export class IrqLines {
  #block: Int32Array;
  #onChange: (() => void) | undefined;

  /**
   * Creates the instance.
   *
   * @param block The machine block's words.
   * @param onChange Called after a source changes level (e.g. to wake main).
   */
  constructor(block: Int32Array, onChange?: () => void) {
    this.#block = block;
    this.#onChange = onChange;
  }

  /** The change counter; it moves whenever any source changes. */
  get seq(): number {
    return Atomics.load(this.#block, MachineBlock.IRQ_SEQ);
  }

  /** Word index of the change counter (for `Atomics.wait`). */
  get seqIndex(): number {
    return MachineBlock.IRQ_SEQ;
  }

  /** The shared words. */
  get words(): Int32Array {
    return this.#block;
  }

  /**
   * Initialises every source as unrouted (main isolate, at machine creation).
   */
  clear(): void {
    for (let s = 0; s < MAX_IRQ_SOURCES; s++) {
      Atomics.store(this.#block, MachineBlock.IRQ_ROUTE + s, -1);
      Atomics.store(this.#block, MachineBlock.IRQ_LEVEL + s, 0);
      Atomics.store(this.#block, MachineBlock.IRQ_MASK + s, 0);
    }
  }

  /**
   * Routes `source` to line `gsi` (main isolate, during setup).
   *
   * @param source Source index.
   * @param gsi Line number, 0 … 23, or -1 to unroute.
   */
  route(source: number, gsi: number): void {
    this.#check(source);
    if (gsi !== -1 && !(Number.isInteger(gsi) && gsi >= 0 && gsi < IRQ_LINES)) {
      throw new RangeError(`Invalid interrupt line ${gsi}`);
    }
    Atomics.store(this.#block, MachineBlock.IRQ_ROUTE + source, gsi);
    this.#bump();
  }

  /**
   * Masks or unmasks a source (PCI command INTx Disable).
   *
   * @param source Source index.
   * @param masked Whether the source is masked.
   */
  mask(source: number, masked: boolean): void {
    this.#check(source);
    if (
      Atomics.exchange(this.#block, MachineBlock.IRQ_MASK + source, masked ? 1 : 0) !==
        (masked ? 1 : 0)
    ) {
      this.#bump();
    }
  }

  /**
   * Sets a source's level; wakes waiters when it changes.
   *
   * @param source Source index.
   * @param level Asserted or not.
   */
  setSource(source: number, level: boolean): void {
    this.#check(source);
    const v = level ? 1 : 0;
    if (Atomics.exchange(this.#block, MachineBlock.IRQ_LEVEL + source, v) !== v) this.#bump();
  }

  /**
   * A source's level (regardless of masking).
   *
   * @param source Source index.
   * @returns Whether the source asserts its pin.
   */
  sourceLevel(source: number): boolean {
    this.#check(source);
    return Atomics.load(this.#block, MachineBlock.IRQ_LEVEL + source) !== 0;
  }

  /**
   * The level of line `gsi`: any unmasked source routed to it is asserted.
   *
   * @param gsi Line number.
   * @returns Whether the line is asserted.
   */
  lineLevel(gsi: number): boolean {
    if (!(Number.isInteger(gsi) && gsi >= 0 && gsi < IRQ_LINES)) return false;
    const b = this.#block;
    for (let s = 0; s < MAX_IRQ_SOURCES; s++) {
      if (
        Atomics.load(b, MachineBlock.IRQ_ROUTE + s) === gsi &&
        Atomics.load(b, MachineBlock.IRQ_LEVEL + s) !== 0 &&
        Atomics.load(b, MachineBlock.IRQ_MASK + s) === 0
      ) return true;
    }
    return false;
  }

  /**
   * The levels of all lines as a bit mask (bit n = line n).
   *
   * @returns The mask.
   */
  lineMask(): number {
    const b = this.#block;
    let mask = 0;
    for (let s = 0; s < MAX_IRQ_SOURCES; s++) {
      const gsi = Atomics.load(b, MachineBlock.IRQ_ROUTE + s);
      if (
        gsi >= 0 && Atomics.load(b, MachineBlock.IRQ_LEVEL + s) !== 0 &&
        Atomics.load(b, MachineBlock.IRQ_MASK + s) === 0
      ) mask |= 1 << gsi;
    }
    return mask >>> 0;
  }

  #bump(): void {
    Atomics.add(this.#block, MachineBlock.IRQ_SEQ, 1);
    Atomics.notify(this.#block, MachineBlock.IRQ_SEQ);
    this.#onChange?.();
  }

  #check(source: number): void {
    if (!(Number.isInteger(source) && source >= 0 && source < MAX_IRQ_SOURCES)) {
      throw new RangeError(`Invalid interrupt source ${source}`);
    }
  }
}
