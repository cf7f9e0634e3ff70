import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { AddressMap } from "../../src/memory/address_map.ts";
import {
  MACHINE_BLOCK_WORDS,
  MachineBlock,
  MAX_ROUTES,
  RouteEntry,
} from "../../src/shared/layout.ts";
import { publishRoutes, type Route, RouteReader } from "../../src/shared/route_table.ts";

function machineBlock(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4));
}

function sampleMap(): AddressMap {
  const map = new AddressMap();
  map.add({
    name: "edu",
    space: "mmio",
    size: 0x10_0000,
    base: 0xfe00_0000,
    target: 3,
    targetRegion: 0,
    maxAccess: 8,
  });
  map.add({ name: "ide", space: "pio", size: 8, base: 0x1f0, target: 1, targetRegion: 2 });
  map.add({ name: "unmapped", space: "mmio", size: 0x1000, target: 4, targetRegion: 0 });
  map.add({
    name: "high",
    space: "mmio",
    size: 2 ** 33,
    base: 0x1_2345_6000,
    target: 2,
    targetRegion: 1,
  });
  return map;
}

const SAMPLE_ROUTES: Route[] = [
  { space: "mmio", base: 0xfe00_0000, size: 0x10_0000, target: 3, targetRegion: 0, maxAccess: 8 },
  { space: "pio", base: 0x1f0, size: 8, target: 1, targetRegion: 2, maxAccess: 4 },
  { space: "mmio", base: 0x1_2345_6000, size: 2 ** 33, target: 2, targetRegion: 1, maxAccess: 4 },
];

Deno.test("RouteReader on an empty table finds nothing", () => {
  const reader = new RouteReader(machineBlock());
  deepEqual(reader.routes, []);
  equal(reader.lookup("mmio", 0), undefined);
  equal(reader.lookup("pio", 0xcf8), undefined);
});

Deno.test("publishRoutes: mapped regions only, every field, versions step by 2", () => {
  const b = machineBlock();
  const map = sampleMap();
  equal(Atomics.load(b, MachineBlock.ROUTE_VERSION), 0);
  publishRoutes(b, map.regions);
  equal(Atomics.load(b, MachineBlock.ROUTE_VERSION), 2);
  equal(Atomics.load(b, MachineBlock.ROUTE_COUNT), 3);
  const reader = new RouteReader(b);
  deepEqual(reader.routes, SAMPLE_ROUTES);
  publishRoutes(b, map.regions);
  equal(Atomics.load(b, MachineBlock.ROUTE_VERSION), 4, "even between rewrites");
});

Deno.test("RouteReader.lookup: edges and spaces", () => {
  const b = machineBlock();
  publishRoutes(b, sampleMap().regions);
  const reader = new RouteReader(b);
  equal(reader.lookup("mmio", 0xfe00_0000)?.target, 3);
  equal(reader.lookup("mmio", 0xfe0f_ffff)?.target, 3);
  equal(reader.lookup("mmio", 0xfe10_0000), undefined);
  equal(reader.lookup("mmio", 0xfdff_ffff), undefined);
  equal(reader.lookup("pio", 0x1f7)?.targetRegion, 2);
  equal(reader.lookup("pio", 0x1f8), undefined);
  equal(reader.lookup("mmio", 0x1f0), undefined, "spaces are separate");
  equal(reader.lookup("mmio", 0x1_2345_6000 + 2 ** 33 - 1)?.target, 2);
  equal(reader.lookup("mmio", 0x1_2345_6000 + 2 ** 33), undefined);
});

Deno.test("RouteReader follows republished tables", () => {
  const b = machineBlock();
  const map = sampleMap();
  publishRoutes(b, map.regions);
  const reader = new RouteReader(b);
  equal(reader.lookup("mmio", 0xfe00_0000)?.target, 3);
  const edu = map.regions.find((r) => r.name === "edu")!;
  map.move(edu.id, 0xfd00_0000);
  publishRoutes(b, map.regions);
  equal(reader.lookup("mmio", 0xfe00_0000), undefined);
  equal(reader.lookup("mmio", 0xfd00_0000)?.target, 3);
  map.move(edu.id, undefined);
  publishRoutes(b, map.regions);
  equal(reader.routes.length, 2);
  publishRoutes(b, []);
  deepEqual(reader.routes, []);
});

Deno.test("RouteReader caches the table until the version changes", () => {
  const b = machineBlock();
  publishRoutes(b, sampleMap().regions);
  const reader = new RouteReader(b);
  equal(reader.lookup("mmio", 0xfe00_0000)?.target, 3);
  // Change an entry behind the reader's back without moving the version.
  Atomics.store(b, MachineBlock.ROUTE_BASE + RouteEntry.TARGET, 9);
  equal(reader.lookup("mmio", 0xfe00_0000)?.target, 3, "cached");
  Atomics.add(b, MachineBlock.ROUTE_VERSION, 2);
  equal(reader.lookup("mmio", 0xfe00_0000)?.target, 9, "re-read after the version moved");
});

Deno.test("publishRoutes: at most MAX_ROUTES regions", () => {
  const b = machineBlock();
  const map = new AddressMap();
  for (let i = 0; i < MAX_ROUTES; i++) {
    map.add({
      name: `r${i}`,
      space: "mmio",
      size: 0x1000,
      base: 0xe000_0000 + i * 0x1000,
      target: 1,
      targetRegion: i,
    });
  }
  map.add({ name: "off", space: "mmio", size: 0x1000, target: 1, targetRegion: 999 }); // unmapped: not counted
  publishRoutes(b, map.regions);
  const reader = new RouteReader(b);
  equal(reader.routes.length, MAX_ROUTES);
  equal(
    reader.lookup("mmio", 0xe000_0000 + (MAX_ROUTES - 1) * 0x1000)?.targetRegion,
    MAX_ROUTES - 1,
  );
  map.add({ name: "one too many", space: "pio", size: 4, base: 0x80, target: 1, targetRegion: 0 });
  const version = Atomics.load(b, MachineBlock.ROUTE_VERSION);
  throws(
    () => publishRoutes(b, map.regions),
    (e: unknown) => e instanceof RangeError && /^Cannot publish 129 regions/.test(e.message),
  );
  equal(Atomics.load(b, MachineBlock.ROUTE_VERSION), version, "the table was not touched");
  equal(reader.routes.length, MAX_ROUTES);
  equal(reader.lookup("pio", 0x80), undefined);
});

Deno.test("RouteReader waits while the version is odd and never returns a half-written table", async () => {
  const b = machineBlock();
  publishRoutes(b, sampleMap().regions); // version 2
  // Main is "mid-rewrite": version odd, entries half written.
  Atomics.store(b, MachineBlock.ROUTE_VERSION, 3);
  Atomics.store(b, MachineBlock.ROUTE_BASE + RouteEntry.TARGET, 77);
  Atomics.store(b, MachineBlock.ROUTE_COUNT, 1);
  const worker = new Worker(new URL("./workers/route_reader.ts", import.meta.url), {
    type: "module",
  });
  try {
    const routes = await new Promise<Route[]>((resolve, reject) => {
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
      worker.onmessage = (e: MessageEvent<{ type: string; routes?: Route[] }>) => {
        if (e.data.type === "reading") {
          // Finish the rewrite a little later, from this (never blocking) thread.
          setTimeout(() => {
            const map = new AddressMap();
            map.add({
              name: "final",
              space: "mmio",
              size: 0x1000,
              base: 0xfeb0_0000,
              target: 5,
              targetRegion: 6,
            });
            const region = map.regions[0]!;
            const e0 = MachineBlock.ROUTE_BASE;
            Atomics.store(b, e0 + RouteEntry.SPACE, 0);
            Atomics.store(b, e0 + RouteEntry.BASE_LO, region.base | 0);
            Atomics.store(b, e0 + RouteEntry.BASE_HI, 0);
            Atomics.store(b, e0 + RouteEntry.SIZE_LO, region.size);
            Atomics.store(b, e0 + RouteEntry.SIZE_HI, 0);
            Atomics.store(b, e0 + RouteEntry.TARGET, 5);
            Atomics.store(b, e0 + RouteEntry.TARGET_REGION, 6);
            Atomics.store(b, e0 + RouteEntry.MAX_ACCESS, 4);
            Atomics.store(b, MachineBlock.ROUTE_COUNT, 1);
            Atomics.store(b, MachineBlock.ROUTE_VERSION, 4);
          }, 30);
        } else if (e.data.type === "routes") {
          resolve(e.data.routes!);
        }
      };
      worker.postMessage({ buffer: b.buffer });
    });
    deepEqual(routes, [
      { space: "mmio", base: 0xfeb0_0000, size: 0x1000, target: 5, targetRegion: 6, maxAccess: 4 },
    ]);
  } finally {
    worker.terminate();
  }
});

Deno.test("publishRoutes writes Int32 halves that readers recombine unsigned", () => {
  const b = machineBlock();
  const map = new AddressMap();
  map.add({
    name: "top",
    space: "mmio",
    size: 0x8000_0000,
    base: 0xffff_ffff_0000,
    target: 1,
    targetRegion: 0,
  });
  publishRoutes(b, map.regions);
  const e0 = MachineBlock.ROUTE_BASE;
  equal(Atomics.load(b, e0 + RouteEntry.BASE_LO), 0xffff_0000 | 0);
  equal(Atomics.load(b, e0 + RouteEntry.BASE_HI), 0xffff);
  const [route] = new RouteReader(b).routes;
  ok(route);
  equal(route.base, 0xffff_ffff_0000);
  equal(route.size, 0x8000_0000);
});
