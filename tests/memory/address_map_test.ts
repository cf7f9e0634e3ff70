import { deepEqual, equal, notEqual, ok, throws } from "node:assert/strict";
import { type AddRegionOptions, AddressMap } from "../../src/memory/address_map.ts";

function region(overrides: Partial<AddRegionOptions> = {}): AddRegionOptions {
  return {
    name: "r",
    space: "mmio",
    size: 0x1000,
    target: 1,
    targetRegion: 0,
    ...overrides,
  };
}

Deno.test("AddressMap.add: defaults and the region record", () => {
  const map = new AddressMap();
  const a = map.add(region({ name: "a" }));
  const b = map.add(region({
    name: "b",
    space: "pio",
    size: 0x10,
    base: 0x1f0,
    priority: 3,
    target: 2,
    targetRegion: 5,
    maxAccess: 8,
  }));
  notEqual(a, b);
  deepEqual(map.get(a), {
    id: a,
    name: "a",
    space: "mmio",
    size: 0x1000,
    base: 0,
    mapped: false,
    priority: 0,
    target: 1,
    targetRegion: 0,
    maxAccess: 4,
  });
  deepEqual(map.get(b), {
    id: b,
    name: "b",
    space: "pio",
    size: 0x10,
    base: 0x1f0,
    mapped: true,
    priority: 3,
    target: 2,
    targetRegion: 5,
    maxAccess: 8,
  });
});

Deno.test("AddressMap.add: invalid sizes and placements are rejected", () => {
  const map = new AddressMap();
  for (const size of [0, -1, 1.5, NaN, Infinity]) {
    throws(() => map.add(region({ size })), RangeError);
  }
  throws(() => map.add(region({ base: -1 })), RangeError);
  throws(() => map.add(region({ base: 0.5 })), RangeError);
  throws(() => map.add(region({ base: 2 ** 53 - 0x800 })), RangeError);
  equal(map.regions.length, 0, "a rejected region is not registered");
  equal(map.version, 0);
});

Deno.test("AddressMap: an unmapped region does not decode", () => {
  const map = new AddressMap();
  const id = map.add(region());
  equal(map.lookup("mmio", 0, 4), undefined);
  equal(map.lookup("mmio", 0x10, 4), undefined);
  map.move(id, 0xfe00_0000);
  equal(map.lookup("mmio", 0xfe00_0000, 4)?.region.id, id);
  map.move(id, undefined);
  equal(map.get(id).mapped, false);
  equal(map.lookup("mmio", 0xfe00_0000, 4), undefined);
});

Deno.test("AddressMap.lookup: offsets, edges and spaces", () => {
  const map = new AddressMap();
  const id = map.add(region({ base: 0xfe00_0000 }));
  const cases: Array<[number, number, number | undefined]> = [
    [0xfe00_0000, 1, 0],
    [0xfe00_0000, 8, 0],
    [0xfe00_0010, 4, 0x10],
    [0xfe00_0ffc, 4, 0xffc], // last dword
    [0xfe00_0fff, 1, 0xfff], // last byte
    [0xfe00_0ffe, 4, undefined], // straddles the end: unassigned
    [0xfe00_0ff9, 8, undefined],
    [0xfe00_1000, 1, undefined], // just past the end
    [0xfdff_ffff, 1, undefined], // just before
    [0xfdff_fffe, 4, undefined], // straddles the start
  ];
  for (const [address, size, offset] of cases) {
    const hit = map.lookup("mmio", address, size);
    equal(hit?.offset, offset, `lookup(${address.toString(16)}, ${size})`);
    if (offset !== undefined) equal(hit?.region.id, id);
  }
  equal(map.lookup("pio", 0xfe00_0000, 1), undefined, "spaces are separate");
});

Deno.test("AddressMap.move relocates a region; moving in place changes nothing", () => {
  const map = new AddressMap();
  const id = map.add(region({ base: 0xfe00_0000 }));
  const v = map.version;
  map.move(id, 0xfe00_0000);
  equal(map.version, v, "moving to the same base is not a change");
  map.move(id, 0xfd00_0000);
  equal(map.version, v + 1);
  equal(map.get(id).base, 0xfd00_0000);
  equal(map.lookup("mmio", 0xfe00_0000, 4), undefined);
  equal(map.lookup("mmio", 0xfd00_0004, 4)?.offset, 4);
  map.move(id, undefined);
  const v2 = map.version;
  map.move(id, undefined);
  equal(map.version, v2, "unmapping an unmapped region is not a change");
  throws(() => map.move(999, 0x1000), RangeError);
  throws(() => map.move(id, -0x1000), RangeError);
  equal(map.get(id).mapped, false, "a rejected move leaves the region as it was");
});

Deno.test("AddressMap.remove and get", () => {
  const map = new AddressMap();
  const id = map.add(region({ base: 0x1000 }));
  const v = map.version;
  map.remove(id);
  equal(map.version, v + 1);
  equal(map.lookup("mmio", 0x1000, 1), undefined);
  throws(
    () => map.get(id),
    (e: unknown) => e instanceof RangeError && /^Unknown region id/.test(e.message),
  );
  map.remove(id);
  equal(map.version, v + 1, "removing an unknown id is not a change");
  equal(map.regions.length, 0);
});

Deno.test("AddressMap: higher priority wins where regions overlap", () => {
  const map = new AddressMap();
  const big = map.add(region({ name: "big", size: 0x10000, base: 0x10000, priority: 0 }));
  const small = map.add(region({ name: "small", size: 0x100, base: 0x18000, priority: 1 }));
  equal(map.lookup("mmio", 0x18010, 4)?.region.id, small);
  equal(map.lookup("mmio", 0x18010, 4)?.offset, 0x10);
  equal(map.lookup("mmio", 0x17ffc, 4)?.region.id, big);
  equal(map.lookup("mmio", 0x18100, 4)?.region.id, big);
  equal(map.lookup("mmio", 0x18100, 4)?.offset, 0x8100);
  // An access straddling the end of the winning region is unassigned, even
  // though the lower-priority region covers all of it.
  equal(map.lookup("mmio", 0x180fe, 4), undefined);
  // A lower-priority region added later does not take over.
  const low = map.add(region({ name: "low", size: 0x100, base: 0x18000, priority: -1 }));
  equal(map.lookup("mmio", 0x18010, 4)?.region.id, small);
  map.move(small, undefined);
  equal(map.lookup("mmio", 0x18010, 4)?.region.id, big);
  map.move(big, undefined);
  equal(map.lookup("mmio", 0x18010, 4)?.region.id, low);
});

Deno.test("AddressMap: equal priority, the older region wins", () => {
  const map = new AddressMap();
  const older = map.add(region({ name: "older", base: 0x1000 }));
  const newer = map.add(region({ name: "newer", base: 0x1800 }));
  equal(map.lookup("mmio", 0x1900, 4)?.region.id, older);
  equal(map.lookup("mmio", 0x2100, 4)?.region.id, newer);
  // Moving does not make a region younger.
  map.move(older, 0x1400);
  equal(map.lookup("mmio", 0x1900, 4)?.region.id, older);
  // Order of `regions`: priority descending, then age.
  const top = map.add(region({ name: "top", base: 0x9000, priority: 5 }));
  deepEqual(map.regions.map((r) => r.id), [top, older, newer]);
});

Deno.test("AddressMap: port I/O beyond 0xffff is rejected", () => {
  const map = new AddressMap();
  const ok1 = map.add(region({ space: "pio", size: 0x10, base: 0xfff0 }));
  equal(map.lookup("pio", 0xffff, 1)?.region.id, ok1);
  throws(
    () => map.add(region({ space: "pio", size: 0x11, base: 0xfff0 })),
    (e: unknown) => e instanceof RangeError && /^Cannot map .*beyond port 0xffff/.test(e.message),
  );
  throws(() => map.add(region({ space: "pio", size: 4, base: 0x1_0000 })), RangeError);
  const id = map.add(region({ space: "pio", size: 8 }));
  throws(() => map.move(id, 0xfffc), RangeError);
  equal(map.get(id).mapped, false);
  // MMIO has no such limit.
  map.add(region({ space: "mmio", size: 0x1000, base: 0xffff_f000 }));
  map.add(region({ space: "mmio", size: 0x1000, base: 0x1_0000_0000 }));
});

Deno.test("AddressMap: version and onChange follow every change", () => {
  const map = new AddressMap();
  let calls = 0;
  const seen: number[] = [];
  map.onChange(() => {
    calls++;
    seen.push(map.version);
  });
  let second = 0;
  map.onChange(() => second++);
  equal(map.version, 0);
  const id = map.add(region());
  map.move(id, 0x1000);
  map.move(id, 0x1000); // no change
  map.move(id, undefined);
  map.move(id, undefined); // no change
  map.remove(id);
  map.remove(id); // no change
  equal(calls, 4);
  equal(second, 4);
  equal(map.version, 4);
  deepEqual(seen, [1, 2, 3, 4], "listeners see the updated map");
  ok(map.regions.length === 0);
});

Deno.test("AddressMap: listeners see the new region list", () => {
  const map = new AddressMap();
  const observed: number[] = [];
  map.onChange(() => observed.push(map.regions.length));
  map.add(region({ base: 0x1000 }));
  map.add(region({ base: 0x3000 }));
  deepEqual(observed, [1, 2]);
});
