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

  /**
   * The change counter; it moves whenever any source changes.
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal, notEqual } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * const before = irq.seq;
   * irq.setSource(0, true);
   * notEqual(irq.seq, before);
   * const after = irq.seq;
   * irq.setSource(0, true); // no change of level
   * equal(irq.seq, after);
   * ```
   */
  get seq(): number {
    return Atomics.load(this.#block, MachineBlock.IRQ_SEQ);
  }

  /**
   * Word index of the change counter (for `Atomics.wait`).
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * irq.setSource(3, true);
   * equal(Atomics.load(irq.words, irq.seqIndex), irq.seq);
   * equal(Atomics.wait(irq.words, irq.seqIndex, irq.seq + 1, 0), "not-equal");
   * ```
   */
  get seqIndex(): number {
    return MachineBlock.IRQ_SEQ;
  }

  /**
   * The shared words.
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * const block = new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4));
   * const irq = new IrqLines(block);
   * equal(irq.words, block);
   * // Another thread's view of the same words sees the same lines.
   * irq.route(2, 11);
   * irq.setSource(2, true);
   * equal(new IrqLines(irq.words).lineLevel(11), true);
   * ```
   */
  get words(): Int32Array {
    return this.#block;
  }

  /**
   * Initialises every source as unrouted (main isolate, at machine creation).
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * irq.setSource(5, true);
   * equal(irq.lineLevel(0), true); // zeroed words route every source to line 0
   * irq.clear();
   * equal(irq.sourceLevel(5), false);
   * equal(irq.lineMask(), 0);
   * ```
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
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal, throws } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * irq.clear();
   * irq.setSource(0, true);
   * irq.route(0, 22);
   * equal(irq.lineLevel(22), true);
   * irq.route(0, -1); // unrouted: drives no line
   * equal(irq.lineMask(), 0);
   * throws(() => irq.route(0, 24), RangeError);
   * ```
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
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * irq.clear();
   * irq.route(0, 20);
   * irq.setSource(0, true);
   * irq.mask(0, true);
   * equal(irq.lineLevel(20), false);
   * equal(irq.sourceLevel(0), true); // the source still holds its pin
   * irq.mask(0, false);
   * equal(irq.lineLevel(20), true);
   * ```
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
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * let changes = 0;
   * const block = new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4));
   * const irq = new IrqLines(block, () => changes++);
   * irq.setSource(1, true);
   * irq.setSource(1, true); // same level: no change reported
   * irq.setSource(1, false);
   * equal(changes, 2);
   * ```
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
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * irq.clear();
   * irq.setSource(7, true);
   * equal(irq.sourceLevel(7), true);
   * equal(irq.sourceLevel(8), false);
   * ```
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
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * irq.clear();
   * irq.route(4, 21);
   * irq.setSource(4, true);
   * equal(irq.lineLevel(21), true);
   * equal(irq.lineLevel(20), false);
   * equal(irq.lineLevel(99), false); // no such line
   * ```
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
   *
   * @example
   * ```ts
   * import { IrqLines } from "./irq_lines.ts";
   * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
   * import { equal } from "node:assert/strict";
   * const irq = new IrqLines(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
   * irq.clear();
   * irq.route(0, 1);
   * irq.route(1, 23);
   * irq.setSource(0, true);
   * irq.setSource(1, true);
   * equal(irq.lineMask(), (1 << 1) | (1 << 23));
   * ```
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
