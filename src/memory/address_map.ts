/**
 * The machine's address map: the MMIO and port-I/O regions that devices
 * register and move (BAR programming), with lookup by address.
 *
 * @module
 */

import { checkRange, hex } from "../util/address.ts";

/** The two address spaces a CPU reaches: memory (MMIO) and port I/O. */
export type AddressSpaceKind = "mmio" | "pio";

/** Access sizes of a single register access, in bytes. */
export type AccessSize = 1 | 2 | 4 | 8;

/** A region as registered in the address map. */
export interface IoRegion {
  /** Unique id, assigned by {@linkcode AddressMap.add}. */
  readonly id: number;
  /** Human-readable name, e.g. `edu.bar0`. */
  readonly name: string;
  /** Which address space the region lives in. */
  readonly space: AddressSpaceKind;
  /** Size in bytes. */
  readonly size: number;
  /** Current base address (meaningful while mapped). */
  readonly base: number;
  /** Whether the region currently decodes accesses. */
  readonly mapped: boolean;
  /** Higher wins where regions overlap; equal priorities: the older region wins. */
  readonly priority: number;
  /** Who handles accesses: an index into the machine's targets (0 = main isolate). */
  readonly target: number;
  /** The region number inside the target (a BAR index or a fixed-region index). */
  readonly targetRegion: number;
  /** Largest access the region implements natively; larger ones are split. */
  readonly maxAccess: 4 | 8;
}

/** Options for {@linkcode AddressMap.add}. */
export interface AddRegionOptions {
  /** Human-readable name. */
  name: string;
  /** Address space. */
  space: AddressSpaceKind;
  /** Size in bytes, positive. */
  size: number;
  /** Initial base address; when omitted the region starts unmapped. */
  base?: number;
  /** Overlap priority (default 0). */
  priority?: number;
  /** Target that handles the accesses (0 = main isolate). */
  target: number;
  /** Region number inside the target. */
  targetRegion: number;
  /** Largest native access size (default 4). */
  maxAccess?: 4 | 8;
}

/** The result of a lookup: the region and the offset inside it. */
export interface RegionHit {
  /** The region that decodes the access. */
  readonly region: IoRegion;
  /** Offset of the access inside the region. */
  readonly offset: number;
}

const PIO_LIMIT = 0x1_0000;

/**
 * MMIO and port-I/O regions with lookup and relocation.
 *
 * Accesses that do not fall entirely inside one mapped region are unassigned:
 * the bus answers reads with all-ones (a PCI master abort) and drops writes.
 *
 * @example Register a region, move it, look it up
 * ```ts
 * import { AddressMap } from "./address_map.ts";
 * import { equal } from "node:assert/strict";
 * const map = new AddressMap();
 * const id = map.add({ name: "bar0", space: "mmio", size: 0x1000, target: 1, targetRegion: 0 });
 * equal(map.lookup("mmio", 0xfe00_0000, 4), undefined);
 * map.move(id, 0xfe00_0000);
 * equal(map.lookup("mmio", 0xfe00_0010, 4)?.offset, 0x10);
 * ```
 */
export class AddressMap {
  #regions = new Map<number, IoRegion>();
  #nextId = 1;
  #version = 0;
  #listeners: Array<() => void> = [];
  #sorted: IoRegion[] = [];

  /**
   * Increments on every change; lets readers cache lookups.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { equal } from "node:assert/strict";
   * const map = new AddressMap();
   * const before = map.version;
   * const id = map.add({ name: "bar0", space: "mmio", size: 0x1000, target: 1, targetRegion: 0 });
   * map.move(id, 0xfe00_0000);
   * equal(map.version, before + 2);
   * ```
   */
  get version(): number {
    return this.#version;
  }

  /**
   * All regions, mapped or not, ordered by priority then age.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { deepEqual } from "node:assert/strict";
   * const map = new AddressMap();
   * map.add({ name: "low", space: "pio", size: 8, base: 0x60, target: 0, targetRegion: 0 });
   * map.add({ name: "high", space: "pio", size: 8, priority: 1, target: 0, targetRegion: 1 });
   * deepEqual(map.regions.map((r) => `${r.name} ${r.mapped}`), ["high false", "low true"]);
   * ```
   */
  get regions(): readonly IoRegion[] {
    return this.#sorted;
  }

  /**
   * Calls `listener` after every change of the map.
   *
   * @param listener Called with no arguments.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { equal } from "node:assert/strict";
   * const map = new AddressMap();
   * let changes = 0;
   * map.onChange(() => changes++);
   * const id = map.add({ name: "bar0", space: "mmio", size: 0x1000, target: 1, targetRegion: 0 });
   * map.move(id, 0xfe00_0000);
   * map.move(id, 0xfe00_0000); // already there: no change
   * equal(changes, 2);
   * ```
   */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Registers a region.
   *
   * @param options Region description.
   * @returns The new region's id.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { equal, throws } from "node:assert/strict";
   * const map = new AddressMap();
   * const port = { space: "pio", size: 8, target: 0, targetRegion: 0 } as const;
   * const id = map.add({ ...port, name: "com1", base: 0x3f8 });
   * equal(map.lookup("pio", 0x3fd, 1)?.region.id, id);
   * throws(() => map.add({ ...port, name: "bad", base: 0xfffc }), /beyond port 0xffff/);
   * ```
   */
  add(options: AddRegionOptions): number {
    if (!Number.isSafeInteger(options.size) || options.size <= 0) {
      throw new RangeError(`Invalid size ${String(options.size)} for region ${options.name}`);
    }
    const id = this.#nextId++;
    const region: IoRegion = {
      id,
      name: options.name,
      space: options.space,
      size: options.size,
      base: options.base ?? 0,
      mapped: options.base !== undefined,
      priority: options.priority ?? 0,
      target: options.target,
      targetRegion: options.targetRegion,
      maxAccess: options.maxAccess ?? 4,
    };
    if (region.mapped) this.#checkPlacement(region, region.base);
    this.#regions.set(id, region);
    this.#changed();
    return id;
  }

  /**
   * Moves a region to `base` and maps it, or unmaps it when `base` is `undefined`.
   *
   * @param id Region id.
   * @param base New base address, or `undefined` to unmap.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { equal } from "node:assert/strict";
   * const map = new AddressMap();
   * const id = map.add({ name: "bar0", space: "mmio", size: 0x1000, target: 1, targetRegion: 0 });
   * map.move(id, 0xfe00_0000); // the guest programs the BAR
   * equal(map.lookup("mmio", 0xfe00_0004, 4)?.offset, 4);
   * map.move(id, undefined); // memory decoding off
   * equal(map.lookup("mmio", 0xfe00_0004, 4), undefined);
   * equal(map.get(id).base, 0xfe00_0000); // kept for the next mapping
   * ```
   */
  move(id: number, base: number | undefined): void {
    const region = this.get(id);
    if (base === undefined) {
      if (!region.mapped) return;
      this.#regions.set(id, { ...region, mapped: false });
    } else {
      if (region.mapped && region.base === base) return;
      this.#checkPlacement(region, base);
      this.#regions.set(id, { ...region, base, mapped: true });
    }
    this.#changed();
  }

  /**
   * Removes a region.
   *
   * @param id Region id.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { equal, throws } from "node:assert/strict";
   * const map = new AddressMap();
   * const id = map.add({ name: "bar0", space: "mmio", size: 0x1000, target: 1, targetRegion: 0 });
   * map.remove(id);
   * equal(map.regions.length, 0);
   * throws(() => map.get(id), /Unknown region id/);
   * ```
   */
  remove(id: number): void {
    if (this.#regions.delete(id)) this.#changed();
  }

  /**
   * Returns the region with `id`.
   *
   * @param id Region id.
   * @returns The region.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { equal } from "node:assert/strict";
   * const map = new AddressMap();
   * const id = map.add({ name: "bar0", space: "mmio", size: 0x4000, target: 1, targetRegion: 0 });
   * const region = map.get(id);
   * equal(region.name, "bar0");
   * equal(region.mapped, false); // added without a base
   * equal(region.maxAccess, 4); // the default
   * ```
   */
  get(id: number): IoRegion {
    const region = this.#regions.get(id);
    if (!region) throw new RangeError(`Unknown region id ${id}`);
    return region;
  }

  /**
   * Finds the mapped region that decodes `size` bytes at `address`.
   *
   * @param space Address space.
   * @param address Start address.
   * @param size Access size.
   * @returns The region and offset, or `undefined` when unassigned.
   *
   * @example
   * ```ts
   * import { AddressMap } from "./address_map.ts";
   * import { equal } from "node:assert/strict";
   * const map = new AddressMap();
   * const region = { space: "mmio", target: 1, targetRegion: 0 } as const;
   * map.add({ ...region, name: "bar0", size: 0x1000, base: 0xfe00_0000 });
   * map.add({ ...region, name: "win", size: 0x100, base: 0xfe00_0800, priority: 1 });
   * equal(map.lookup("mmio", 0xfe00_0810, 4)?.region.name, "win"); // higher priority wins
   * equal(map.lookup("mmio", 0xfe00_0010, 4)?.offset, 0x10);
   * equal(map.lookup("mmio", 0xfe00_0ffe, 4), undefined); // straddles the end
   * equal(map.lookup("pio", 0xfe00_0010, 4), undefined); // another space
   * ```
   */
  lookup(space: AddressSpaceKind, address: number, size: number): RegionHit | undefined {
    for (const region of this.#sorted) {
      if (!region.mapped || region.space !== space) continue;
      const offset = address - region.base;
      if (offset >= 0 && offset < region.size) {
        return offset + size <= region.size ? { region, offset } : undefined;
      }
    }
    return undefined;
  }

  #checkPlacement(region: IoRegion, base: number): void {
    checkRange(base, region.size);
    if (region.space === "pio" && base + region.size > PIO_LIMIT) {
      throw new RangeError(`Cannot map ${region.name} at port ${hex(base)}: beyond port 0xffff`);
    }
  }

  #changed(): void {
    this.#version++;
    this.#sorted = [...this.#regions.values()].sort((a, b) =>
      b.priority - a.priority || a.id - b.id
    );
    for (const listener of this.#listeners) listener();
  }
}
