// What the model publishes into a worker's IOTLB snapshot after a miss
// (AmdViIommu.fill) and the run an answer covers (AmdViIommu.resolve): the
// page plus up to 31 valid neighbours, never the exclusion range or the MSI
// window, and the DTE state record (PassThrough / Identity / Translate / Unknown).
import { deepEqual, equal, ok } from "node:assert/strict";
import { DteState } from "../../src/shared/layout.ts";
import { b, DATA, GIB, hx, NOT_RAM, PAGE, R, Rig } from "./rig.ts";

const RID = 0x28; // 00:05.0
const DOMAIN = 0x31;
const MSI_BASE = 0xfee0_0000;
const MSI_END = 0xfef0_0000;

/** A mode-`mode` domain; returns the rig and root. */
function translating(
  mode = 3,
  dte: { readable?: boolean; writable?: boolean; exclusion?: boolean } = {},
) {
  const rig = new Rig();
  const root = rig.table();
  rig.writeDte(RID, {
    valid: true,
    translationValid: true,
    mode,
    root,
    readable: dte.readable ?? true,
    writable: dte.writable ?? true,
    domainId: DOMAIN,
    exclusion: dte.exclusion ?? false,
  });
  return { rig, root };
}

/** Maps `count` consecutive 4 KiB pages from `iova` to `phys` (read-only when `write` is false). */
function mapRun(rig: Rig, root: number, iova: number, phys: number, count: number, write = true) {
  for (let i = 0; i < count; i++) {
    rig.map(root, 3, iova + i * PAGE, { address: phys + i * PAGE, write });
  }
}

/** Expected snapshot translations of 4 KiB pages. */
function pages(iova: number, phys: number, count: number, perms = 3) {
  return Array.from({ length: count }, (_, i) => ({
    rid: RID,
    shift: 12,
    iovaBase: iova + i * PAGE,
    physBase: phys + i * PAGE,
    perms,
    domain: DOMAIN,
  }));
}

Deno.test("fill: the page that missed and up to 31 valid neighbours", () => {
  const rows = [
    { name: "40 mapped pages, miss on the first", mapped: 40, miss: 0, expected: 32 },
    { name: "40 mapped pages, miss mid-page on the 9th", mapped: 40, miss: 8, expected: 32 },
    { name: "40 mapped pages, miss on the 20th", mapped: 40, miss: 19, expected: 21 },
    { name: "a single page", mapped: 1, miss: 0, expected: 1 },
    { name: "exactly 32 pages", mapped: 32, miss: 0, expected: 32 },
  ];
  const iova = GIB;
  for (const row of rows) {
    const { rig, root } = translating();
    mapRun(rig, root, iova, DATA, row.mapped);
    const missAt = iova + row.miss * PAGE + 0x123;
    const before = rig.iommu.counters.fills;
    const { dte, translations } = rig.iommu.fill(RID, missAt);
    deepEqual(
      dte,
      { rid: RID, state: DteState.Translate, perms: 3, domain: DOMAIN, exclusion: undefined },
      `${row.name}: DTE record`,
    );
    deepEqual(
      translations,
      pages(iova + row.miss * PAGE, DATA + row.miss * PAGE, row.expected),
      row.name,
    );
    equal(rig.iommu.counters.fills - before, row.expected, `${row.name}: counted`);
  }
});

Deno.test("fill: stops at the first invalid neighbour", () => {
  const rows: Array<{ name: string; breakPage: (rig: Rig, root: number, iova: number) => void }> = [
    { name: "not present", breakPage: () => {} },
    {
      name: "reserved bit",
      breakPage: (rig, root, iova) => rig.map(root, 3, iova, { address: DATA, extra: b(52) }),
    },
    {
      name: "table outside RAM",
      breakPage: (rig, root, iova) => {
        const tables = rig.path(root, 3, iova - PAGE, 2);
        // Point the L2 entry covering the next 2 MiB at a table outside RAM.
        rig.setEntry(tables[2]!, 2, iova, BigInt(NOT_RAM) | (1n << 9n) | (3n << 61n) | 1n);
      },
    },
  ];
  for (const row of rows) {
    const { rig, root } = translating();
    // Ten pages up to a 2 MiB boundary, the broken one, then more valid pages.
    const start = 0x20_0000 - 10 * PAGE;
    mapRun(rig, root, start, DATA, 10);
    row.breakPage(rig, root, 0x20_0000);
    if (row.name !== "table outside RAM") mapRun(rig, root, 0x20_1000, DATA + 0x1_0000, 20);
    const { translations } = rig.iommu.fill(RID, start);
    deepEqual(translations, pages(start, DATA, 10), row.name);
    deepEqual(rig.events(), [], `${row.name}: fill logs nothing`);
  }
});

Deno.test("fill: neighbours carry their own size and the AND of every level's permissions", () => {
  const { rig, root } = translating(3, { writable: false });
  // A 2 MiB page, then a 4 KiB page, then a hole.
  rig.map(root, 3, 0x4000_0000, { address: 0x140_0000 }, 2);
  rig.map(root, 3, 0x4020_0000, { address: DATA, write: false });
  const { translations } = rig.iommu.fill(RID, 0x4010_0000);
  deepEqual(translations, [
    { rid: RID, shift: 21, iovaBase: 0x4000_0000, physBase: 0x140_0000, perms: 1, domain: DOMAIN },
    { rid: RID, shift: 12, iovaBase: 0x4020_0000, physBase: DATA, perms: 1, domain: DOMAIN },
  ]);
});

Deno.test("fill: never includes pages in the exclusion range", () => {
  const base = 0x300_0000;
  const rows = [
    {
      name: "EX, range after the page",
      ex: true,
      allow: false,
      miss: base - 5 * PAGE,
      expected: 5,
    },
    {
      name: "Allow, range after the page",
      ex: false,
      allow: true,
      miss: base - 5 * PAGE,
      expected: 5,
    },
    { name: "miss inside the range", ex: true, allow: false, miss: base + PAGE, expected: 0 },
    {
      name: "not applicable to the DTE",
      ex: false,
      allow: false,
      miss: base - 5 * PAGE,
      expected: 32,
    },
  ];
  for (const row of rows) {
    const { rig, root } = translating(3, { exclusion: row.ex });
    mapRun(rig, root, base - 16 * PAGE, DATA, 64);
    rig.write(R.EXCL_LIMIT, BigInt(base + PAGE));
    rig.write(R.EXCL_BASE, BigInt(base) | 1n | (row.allow ? 2n : 0n));
    const { dte, translations } = rig.iommu.fill(RID, row.miss);
    const applies = row.ex || row.allow;
    deepEqual(
      dte.exclusion,
      applies ? { base, limit: base + 2 * PAGE - 1 } : undefined,
      `${row.name}: the record carries the range`,
    );
    equal(translations.length, row.expected, row.name);
    if (applies) {
      ok(
        translations.every((t) =>
          t.iovaBase + 2 ** t.shift <= base || t.iovaBase >= base + 2 * PAGE
        ),
        `${row.name}: nothing overlaps the range`,
      );
    }
  }
});

Deno.test("fill: never includes pages in the MSI window", () => {
  const { rig, root } = translating();
  mapRun(rig, root, MSI_BASE - 8 * PAGE, DATA, 16);
  mapRun(rig, root, MSI_END, DATA + 0x10_0000, 4);
  const before = rig.iommu.fill(RID, MSI_BASE - 8 * PAGE);
  deepEqual(before.translations, pages(MSI_BASE - 8 * PAGE, DATA, 8), "stops at the window");
  for (const iova of [MSI_BASE, MSI_BASE + 0x5000, MSI_END - 1]) {
    deepEqual(rig.iommu.fill(RID, iova).translations, [], `miss at ${hx(iova)}`);
  }
  deepEqual(rig.iommu.fill(RID, MSI_END).translations, pages(MSI_END, DATA + 0x10_0000, 4));
});

// Regression (fixed): amd-vi.md §2: 0xFEE0_0000–0xFEEF_FFFF is never DMA-translated. A 1 GiB
// leaf at IOVA 0xC000_0000 covers the window. AmdViIommu.fill() only checks
// the first byte of each page (skip(iova), skip(next)), so it publishes the
// whole 1 GiB translation into the worker snapshot, and SnapshotMmu#find
// (which checks the exclusion range but not the MSI window) then translates
// 0xFEE0_0000 through it. Likewise resolve() answers a miss at 0xFED0_0000
// with a run (length) to the end of the 1 GiB page, through the window, and
// SnapshotMmu.translate() reuses that answer (#last) for later addresses.
// Expected: no published translation covers the window (publish nothing, or
// 4 KiB pieces outside it), and an answer's run stops at 0xFEE0_0000.
Deno.test("fill: a large page overlapping the MSI window is not published across it", () => {
  const { rig, root } = translating();
  rig.map(root, 3, 0xc000_0000, { address: GIB }, 3);
  const { translations } = rig.iommu.fill(RID, 0xc000_0000);
  ok(
    translations.every((t) => t.iovaBase + 2 ** t.shift <= MSI_BASE || t.iovaBase >= MSI_END),
    `published ${JSON.stringify(translations)}`,
  );
});

Deno.test("resolve: an answer's run through a large page stops at the MSI window", () => {
  // Regression (fixed): see above (AmdViIommu.#translate: length = runLength(walk, iova)).
  const { rig, root } = translating();
  rig.map(root, 3, 0xc000_0000, { address: GIB }, 3);
  const answer = rig.iommu.resolve(RID, 0xfed0_0000, 2);
  ok(answer.ok);
  equal(answer.physBase, GIB + 0x3ed0_0000);
  ok(answer.iovaBase + answer.length <= MSI_BASE, `run ${hx(answer.length)} crosses the window`);
});

// Regression (fixed): amd-vi.md §2: addresses in the exclusion range are untranslated. With a
// 2 MiB leaf at 0x20_0000 and the range at 0x30_0000–0x30_1FFF inside it,
// AmdViIommu.fill() publishes the whole 2 MiB page (it checks only the page's
// first byte), and resolve() at 0x20_0000 answers a run to 0x40_0000 through
// the range. SnapshotMmu#find checks the record's exclusion range before the
// pages, so the published page is harmless there, but SnapshotMmu.translate()
// reuses its #last entry (the miss answer) before calling #find, so a DMA in
// that run reaches the range translated. Expected: the answer's run stops at
// the range base and no published translation overlaps the range.
Deno.test("fill: a large page overlapping the exclusion range is not published across it", () => {
  const { rig, root } = translating(3, { exclusion: true });
  rig.map(root, 3, 0x20_0000, { address: 0x140_0000 }, 2);
  rig.write(R.EXCL_LIMIT, 0x30_1000n);
  rig.write(R.EXCL_BASE, 0x30_0000n | 1n);
  const { translations } = rig.iommu.fill(RID, 0x20_0000);
  ok(
    translations.every((t) => t.iovaBase + 2 ** t.shift <= 0x30_0000 || t.iovaBase >= 0x30_2000),
    `published ${JSON.stringify(translations)}`,
  );
});

Deno.test("resolve: an answer's run through a large page stops at the exclusion range", () => {
  // Regression (fixed): see above (AmdViIommu.#translate: length = runLength(walk, iova)).
  const { rig, root } = translating(3, { exclusion: true });
  rig.map(root, 3, 0x20_0000, { address: 0x140_0000 }, 2);
  rig.write(R.EXCL_LIMIT, 0x30_1000n);
  rig.write(R.EXCL_BASE, 0x30_0000n | 1n);
  const answer = rig.iommu.resolve(RID, 0x20_0000, 1);
  ok(answer.ok);
  equal(answer.physBase, 0x140_0000);
  // Inside the range itself the answer is untranslated.
  const inside = rig.iommu.resolve(RID, 0x30_0010, 1);
  ok(inside.ok && inside.physBase === 0x30_0010);
  ok(answer.iovaBase + answer.length <= 0x30_0000, `run ${hx(answer.length)} crosses the range`);
});

Deno.test("resolve: a 4 KiB answer's run ends at the page end; untranslated runs stop at the window/range", () => {
  const { rig, root } = translating();
  mapRun(rig, root, 0x5000, DATA, 2);
  const a = rig.iommu.resolve(RID, 0x5100, 1);
  deepEqual(a, { ok: true, iovaBase: 0x5100, physBase: DATA + 0x100, length: 0xf00, perms: 3 });
  const msi = rig.iommu.resolve(RID, MSI_BASE + 0x10, 2);
  deepEqual(msi, {
    ok: true,
    iovaBase: MSI_BASE + 0x10,
    physBase: MSI_BASE + 0x10,
    length: MSI_END - MSI_BASE - 0x10,
    perms: 3,
  });
});

Deno.test("fill publishes the DTE state: PassThrough, Identity, Translate or Unknown", () => {
  const rows: Array<{
    name: string;
    setup: (rig: Rig) => void;
    rid?: number;
    enable?: boolean;
    record: {
      state: number;
      perms: number;
      domain: number;
      exclusion?: { base: number; limit: number };
    };
  }> = [
    {
      name: "IommuEn = 0",
      enable: false,
      setup: (r) => r.writeDte(RID, { valid: true }),
      record: { state: DteState.PassThrough, perms: 3, domain: 0 },
    },
    {
      name: "V = 0",
      setup: (r) => r.writeDte(RID, [b(61) | (3n << 9n), 5n]),
      record: { state: DteState.PassThrough, perms: 3, domain: 0 },
    },
    {
      name: "Mode 0, IR only",
      setup: (r) =>
        r.writeDte(RID, { valid: true, translationValid: true, readable: true, domainId: 5 }),
      record: { state: DteState.Identity, perms: 1, domain: 5 },
    },
    {
      name: "Mode 0, IR = IW = 0",
      setup: (r) => r.writeDte(RID, { valid: true, translationValid: true, domainId: 5 }),
      record: { state: DteState.Identity, perms: 0, domain: 5 },
    },
    {
      name: "Mode 0 with EX and an exclusion range",
      setup: (r) => {
        r.writeDte(RID, {
          valid: true,
          translationValid: true,
          writable: true,
          domainId: 5,
          exclusion: true,
        });
        r.write(R.EXCL_LIMIT, 0x30_0000n);
        r.write(R.EXCL_BASE, 0x20_0000n | 1n);
      },
      record: {
        state: DteState.Identity,
        perms: 2,
        domain: 5,
        exclusion: { base: 0x20_0000, limit: 0x30_0fff },
      },
    },
    {
      name: "Mode 4",
      setup: (r) =>
        r.writeDte(RID, {
          valid: true,
          translationValid: true,
          mode: 4,
          root: r.table(),
          readable: true,
          writable: true,
          domainId: 0xffff,
        }),
      record: { state: DteState.Translate, perms: 3, domain: 0xffff },
    },
    {
      name: "V = 1, TV = 0",
      setup: (r) => r.writeDte(RID, { valid: true, domainId: 5 }),
      record: { state: DteState.Unknown, perms: 0, domain: 0 },
    },
    {
      name: "reserved bits",
      setup: (r) =>
        r.writeDte(RID, { valid: true, translationValid: true, readable: true }, { q1: b(42) }),
      record: { state: DteState.Unknown, perms: 0, domain: 0 },
    },
    {
      name: "Mode 7",
      setup: (r) =>
        r.writeDte(RID, { valid: true, translationValid: true, mode: 7, readable: true }),
      record: { state: DteState.Unknown, perms: 0, domain: 0 },
    },
    {
      name: "DeviceID beyond the table",
      rid: 0x4000,
      setup: () => {},
      record: { state: DteState.Unknown, perms: 0, domain: 0 },
    },
    {
      name: "DTE outside RAM",
      setup: (r) => r.write(R.DEV_TAB_BASE, BigInt(NOT_RAM) | 0x1ffn),
      record: { state: DteState.Unknown, perms: 0, domain: 0 },
    },
  ];
  for (const row of rows) {
    const rig = new Rig({ enable: row.enable ?? true });
    row.setup(rig);
    const rid = row.rid ?? RID;
    const { dte, translations } = rig.iommu.fill(rid, 0x5000);
    deepEqual(dte, { rid, exclusion: undefined, ...row.record }, row.name);
    deepEqual(translations, [], `${row.name}: no translations`);
    deepEqual(rig.events(), [], `${row.name}: fill logs nothing`);
  }
});

Deno.test("fill: a Translate DTE whose page faults publishes the record and no translation", () => {
  const { rig } = translating(4);
  const { dte, translations } = rig.iommu.fill(RID, 0x1234_5000);
  equal(dte.state, DteState.Translate);
  deepEqual(translations, []);
  deepEqual(rig.events(), []);
});
