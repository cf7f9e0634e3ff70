/**
 * Scatter-gather lists (QEMU's `QEMUSGList`): a transfer described as a list
 * of (address, length) pieces in a device's DMA address space.
 *
 * @module
 */

import { checkRange } from "../util/address.ts";

/** One piece of a scatter-gather list. */
export interface SgEntry {
  /** Start address (IOVA). */
  readonly address: number;
  /** Length in bytes. */
  readonly length: number;
}

/**
 * A scatter-gather list. Adjacent pieces are merged as they are added, so a
 * list built from contiguous PRD entries or descriptors stays short.
 *
 * @example
 * ```ts
 * import { SgList } from "./sg_list.ts";
 * import { equal } from "node:assert/strict";
 * const sg = new SgList();
 * sg.add(0x1000, 0x800);
 * sg.add(0x1800, 0x800); // merged with the previous piece
 * sg.add(0x8000, 0x100);
 * equal(sg.entries.length, 2);
 * equal(sg.size, 0x1100);
 * ```
 */
export class SgList {
  #entries: SgEntry[] = [];
  #size = 0;

  /**
   * The pieces, in order.
   *
   * @example
   * ```ts
   * import { SgList } from "./sg_list.ts";
   * import { deepEqual } from "node:assert/strict";
   * const sg = new SgList();
   * sg.add(0x3000, 16);
   * sg.add(0x1000, 16); // kept in order, not sorted
   * deepEqual(sg.entries, [{ address: 0x3000, length: 16 }, { address: 0x1000, length: 16 }]);
   * ```
   */
  get entries(): readonly SgEntry[] {
    return this.#entries;
  }

  /**
   * Total bytes described.
   *
   * @example
   * ```ts
   * import { SgList } from "./sg_list.ts";
   * import { equal } from "node:assert/strict";
   * const sg = new SgList();
   * sg.add(0x1000, 512);
   * sg.add(0x9000, 100);
   * equal(sg.size, 612);
   * ```
   */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends a piece; zero-length pieces are ignored.
   *
   * @param address Start address.
   * @param length Length in bytes.
   *
   * @example
   * ```ts
   * import { SgList } from "./sg_list.ts";
   * import { deepEqual } from "node:assert/strict";
   * const sg = new SgList();
   * sg.add(0x1000, 0x200);
   * sg.add(0x1200, 0); // ignored
   * sg.add(0x1200, 0x200); // merged with the previous piece
   * deepEqual(sg.entries, [{ address: 0x1000, length: 0x400 }]);
   * ```
   */
  add(address: number, length: number): void {
    checkRange(address, length);
    if (length === 0) return;
    const last = this.#entries.at(-1);
    if (last && last.address + last.length === address) {
      this.#entries[this.#entries.length - 1] = {
        address: last.address,
        length: last.length + length,
      };
    } else {
      this.#entries.push({ address, length });
    }
    this.#size += length;
  }

  /**
   * Removes every piece.
   *
   * @example
   * ```ts
   * import { SgList } from "./sg_list.ts";
   * import { equal } from "node:assert/strict";
   * const sg = new SgList();
   * sg.add(0x1000, 0x200);
   * sg.clear();
   * equal(sg.size, 0);
   * equal(sg.entries.length, 0);
   * ```
   */
  clear(): void {
    this.#entries = [];
    this.#size = 0;
  }
}
