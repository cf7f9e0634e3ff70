import { deepEqual, equal, throws } from "node:assert/strict";
import { SgList } from "../../src/dma/sg_list.ts";

Deno.test("SgList: starts empty", () => {
  const sg = new SgList();
  deepEqual(sg.entries, []);
  equal(sg.size, 0);
});

Deno.test("SgList: adjacent pieces merge, others do not", () => {
  const sg = new SgList();
  sg.add(0x1000, 0x800);
  sg.add(0x1800, 0x800); // continues the previous piece
  sg.add(0x2000, 0x10); // and again
  sg.add(0x8000, 0x100); // a gap
  sg.add(0x7f00, 0x100); // ends where the previous one starts: no backward merge
  sg.add(0x8000, 0x10); // follows the last piece
  deepEqual(sg.entries, [
    { address: 0x1000, length: 0x1010 },
    { address: 0x8000, length: 0x100 },
    { address: 0x7f00, length: 0x110 },
  ]);
  equal(sg.size, 0x1010 + 0x100 + 0x110);
});

Deno.test("SgList: the same range twice is two pieces", () => {
  const sg = new SgList();
  sg.add(0x1000, 0x10);
  sg.add(0x1000, 0x10);
  equal(sg.entries.length, 2);
  equal(sg.size, 0x20);
});

Deno.test("SgList: zero-length pieces are ignored and do not break merging", () => {
  const sg = new SgList();
  sg.add(0x1000, 0);
  deepEqual(sg.entries, []);
  sg.add(0x1000, 0x10);
  sg.add(0x5000, 0);
  sg.add(0x1010, 0x10);
  deepEqual(sg.entries, [{ address: 0x1000, length: 0x20 }]);
  equal(sg.size, 0x20);
});

Deno.test("SgList: pieces above 4 GiB and near 2^53", () => {
  const sg = new SgList();
  sg.add(0xffff_f000, 0x1000);
  sg.add(0x1_0000_0000, 0x1000); // merges across the 4 GiB boundary
  sg.add(2 ** 53 - 0x10, 0x10); // ends exactly at 2^53
  deepEqual(sg.entries, [
    { address: 0xffff_f000, length: 0x2000 },
    { address: 2 ** 53 - 0x10, length: 0x10 },
  ]);
});

Deno.test("SgList: invalid pieces are rejected and change nothing", () => {
  const sg = new SgList();
  sg.add(0x1000, 0x10);
  const bad: Array<[number, number]> = [
    [-1, 1],
    [0.5, 1],
    [NaN, 1],
    [2 ** 53, 1],
    [0x1000, -1],
    [0x1000, 1.5],
    [0x1000, NaN],
    [2 ** 53 - 2, 4],
  ];
  for (const [address, length] of bad) {
    throws(() => sg.add(address, length), RangeError, `add(${address}, ${length})`);
  }
  deepEqual(sg.entries, [{ address: 0x1000, length: 0x10 }]);
  equal(sg.size, 0x10);
});

Deno.test("SgList.clear", () => {
  const sg = new SgList();
  sg.add(0x1000, 0x10);
  sg.add(0x3000, 0x10);
  const old = sg.entries;
  sg.clear();
  deepEqual(sg.entries, []);
  equal(sg.size, 0);
  equal(old.length, 2, "a list obtained before clear() is not mutated");
  sg.add(0x1010, 4); // no merge with a cleared piece
  deepEqual(sg.entries, [{ address: 0x1010, length: 4 }]);
});
