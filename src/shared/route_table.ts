/**
 * The route table: the address map's mapped regions, published by the main
 * isolate into the machine block so that guest agents route MMIO/PIO
 * accesses straight to the owning target's mailbox.
 *
 * Main is the only writer; it brackets each rewrite with a version counter
 * (odd while writing, a seqlock). Agents copy the table into a local cache and
 * revalidate it with one atomic load per access.
 *
 * @module
 */

import type { AddressSpaceKind, IoRegion } from "../memory/address_map.ts";
import { FOUR_GIB } from "../util/address.ts";
import { MachineBlock, MAX_ROUTES, RouteEntry } from "./layout.ts";

/** A route as an agent sees it. */
export interface Route {
  /** Address space. */
  readonly space: AddressSpaceKind;
  /** Base address. */
  readonly base: number;
  /** Size in bytes. */
  readonly size: number;
  /** Target index (0 = main isolate). */
  readonly target: number;
  /** Region number inside the target. */
  readonly targetRegion: number;
  /** Largest native access size. */
  readonly maxAccess: 4 | 8;
}

function lo(n: number): number {
  return n % FOUR_GIB | 0;
}
function hi(n: number): number {
  return Math.floor(n / FOUR_GIB) | 0;
}

/**
 * Writes the mapped regions into the route table (main isolate only).
 *
 * @param block The machine block's words.
 * @param regions The address map's regions (unmapped ones are skipped).
 *
 * @example
 * ```ts
 * import { publishRoutes, RouteReader } from "./route_table.ts";
 * import { AddressMap } from "../memory/address_map.ts";
 * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * const block = new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4));
 * const map = new AddressMap();
 * map.add({ name: "r", space: "mmio", size: 0x1000, base: 0xfe000000, target: 2, targetRegion: 0 });
 * publishRoutes(block, map.regions);
 * equal(new RouteReader(block).lookup("mmio", 0xfe000004)?.target, 2);
 * ```
 */
export function publishRoutes(block: Int32Array, regions: readonly IoRegion[]): void {
  const mapped = regions.filter((r) => r.mapped);
  if (mapped.length > MAX_ROUTES) {
    throw new RangeError(
      `Cannot publish ${mapped.length} regions: the route table holds ${MAX_ROUTES}`,
    );
  }
  const v = Atomics.load(block, MachineBlock.ROUTE_VERSION);
  Atomics.store(block, MachineBlock.ROUTE_VERSION, (v + 1) | 0);
  mapped.forEach((r, i) => {
    const e = MachineBlock.ROUTE_BASE + i * RouteEntry.WORDS;
    Atomics.store(block, e + RouteEntry.SPACE, r.space === "mmio" ? 0 : 1);
    Atomics.store(block, e + RouteEntry.BASE_LO, lo(r.base));
    Atomics.store(block, e + RouteEntry.BASE_HI, hi(r.base));
    Atomics.store(block, e + RouteEntry.SIZE_LO, lo(r.size));
    Atomics.store(block, e + RouteEntry.SIZE_HI, hi(r.size));
    Atomics.store(block, e + RouteEntry.TARGET, r.target);
    Atomics.store(block, e + RouteEntry.TARGET_REGION, r.targetRegion);
    Atomics.store(block, e + RouteEntry.MAX_ACCESS, r.maxAccess);
  });
  Atomics.store(block, MachineBlock.ROUTE_COUNT, mapped.length);
  Atomics.store(block, MachineBlock.ROUTE_VERSION, (v + 2) | 0);
}

/**
 * An agent's cached view of the route table.
 *
 * @example
 * ```ts
 * import { RouteReader } from "./route_table.ts";
 * import { MACHINE_BLOCK_WORDS } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * const reader = new RouteReader(new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4)));
 * equal(reader.lookup("pio", 0xcf8), undefined);
 * ```
 */
export class RouteReader {
  #block: Int32Array;
  #version = -1;
  #routes: Route[] = [];

  /**
   * Creates the instance.
   *
   * @param block The machine block's words.
   */
  constructor(block: Int32Array) {
    this.#block = block;
  }

  /** The current routes (refreshed if main changed them). */
  get routes(): readonly Route[] {
    this.#refresh();
    return this.#routes;
  }

  /**
   * Finds the route that decodes `address`.
   *
   * @param space Address space.
   * @param address The address.
   * @returns The route, or `undefined` when unassigned.
   */
  lookup(space: AddressSpaceKind, address: number): Route | undefined {
    this.#refresh();
    for (const r of this.#routes) {
      if (r.space === space && address >= r.base && address < r.base + r.size) return r;
    }
    return undefined;
  }

  #refresh(): void {
    const b = this.#block;
    if (Atomics.load(b, MachineBlock.ROUTE_VERSION) === this.#version) return;
    for (;;) {
      const v1 = Atomics.load(b, MachineBlock.ROUTE_VERSION);
      if (v1 & 1) continue; // main is rewriting; it finishes in microseconds
      const count = Atomics.load(b, MachineBlock.ROUTE_COUNT);
      const routes: Route[] = [];
      for (let i = 0; i < count && i < MAX_ROUTES; i++) {
        const e = MachineBlock.ROUTE_BASE + i * RouteEntry.WORDS;
        routes.push({
          space: Atomics.load(b, e + RouteEntry.SPACE) === 0 ? "mmio" : "pio",
          base: (Atomics.load(b, e + RouteEntry.BASE_HI) >>> 0) * FOUR_GIB +
            (Atomics.load(b, e + RouteEntry.BASE_LO) >>> 0),
          size: (Atomics.load(b, e + RouteEntry.SIZE_HI) >>> 0) * FOUR_GIB +
            (Atomics.load(b, e + RouteEntry.SIZE_LO) >>> 0),
          target: Atomics.load(b, e + RouteEntry.TARGET),
          targetRegion: Atomics.load(b, e + RouteEntry.TARGET_REGION),
          maxAccess: Atomics.load(b, e + RouteEntry.MAX_ACCESS) === 8 ? 8 : 4,
        });
      }
      if (Atomics.load(b, MachineBlock.ROUTE_VERSION) === v1) {
        this.#routes = routes;
        this.#version = v1;
        return;
      }
    }
  }
}
