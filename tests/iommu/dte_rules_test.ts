// amd-vi.md §2: how a device-table entry is interpreted, one table row per
// rule: IommuEn, DeviceID bounds, V/TV, reserved bits, IR/IW, modes 0 and 7,
// the exclusion range, the MSI window, and SA/SE event suppression.
import { deepEqual, equal, ok } from "node:assert/strict";
import { commands } from "../../src/iommu/commands.ts";
import {
  assertEvents,
  assertFault,
  assertTranslated,
  b,
  DATA,
  DEV_TAB,
  entry,
  type ExpectedEvent,
  hx,
  NOT_RAM,
  PAGE,
  R,
  Rig,
} from "./rig.ts";

const RID = 0x18; // 00:03.0
const IOVA = 0x12_3457;

/** A DTE that translates identically with full access (V, TV, Mode 0, IR, IW). */
const IDENTITY = {
  valid: true,
  translationValid: true,
  readable: true,
  writable: true,
  domainId: 7,
} as const;

Deno.test("IommuEn = 0: every access passes untranslated, with no event", () => {
  const rows: Array<{ name: string; setup: (rig: Rig) => void; rid?: number }> = [
    { name: "zeroed DTE", setup: () => {} },
    { name: "V=1 TV=0 (blocked when enabled)", setup: (r) => r.writeDte(RID, { valid: true }) },
    {
      name: "Mode 0 with IR=IW=0",
      setup: (r) => r.writeDte(RID, { valid: true, translationValid: true }),
    },
    {
      name: "reserved bits",
      setup: (r) => r.writeDte(RID, IDENTITY, { q0: b(63) | b(4), q1: b(106) }),
    },
    {
      name: "Mode 7",
      setup: (r) => r.writeDte(RID, { ...IDENTITY, mode: 7 }),
    },
    {
      name: "Mode 3 with a root outside RAM",
      setup: (r) => r.writeDte(RID, { ...IDENTITY, mode: 3, root: NOT_RAM }),
    },
    { name: "DeviceID beyond the table", setup: () => {}, rid: 0xffff },
  ];
  for (const row of rows) {
    const rig = new Rig({ enable: false });
    row.setup(rig);
    for (const access of [1, 2] as const) {
      for (const iova of [0, IOVA, 0xfee0_0000, 2 ** 52 + 0x1000]) {
        const { answer, events } = rig.resolve(row.rid ?? RID, iova, access);
        const what = `${row.name}, access ${access}, IOVA ${hx(iova)}`;
        assertTranslated(answer, iova, what, 3);
        assertEvents(events, [], what);
      }
    }
    equal(rig.iommu.counters.faults, 0, row.name);
    deepEqual(rig.memory.reads, [], `${row.name}: no DTE or table was read`);
  }
});

Deno.test("DeviceID beyond the table size: IO_PAGE_FAULT (PR=0), never an out-of-bounds read", () => {
  // Size 0: one 4 KiB page, 128 DTEs (DeviceIDs 0 … 0x7f). A valid-looking
  // identity DTE sits just past the end, at DeviceID 0x80's slot.
  const rows: Array<{ size: number; rid: number; inside: boolean }> = [
    { size: 0, rid: 0x00, inside: true },
    { size: 0, rid: 0x7f, inside: true },
    { size: 0, rid: 0x80, inside: false },
    { size: 0, rid: 0x81, inside: false },
    { size: 0, rid: 0xffff, inside: false },
    { size: 1, rid: 0x80, inside: true },
    { size: 1, rid: 0xff, inside: true },
    { size: 1, rid: 0x100, inside: false },
    { size: 0x1ff, rid: 0xffff, inside: true },
  ];
  for (const row of rows) {
    // A 2 MiB table (Size 0x1FF) lives at 12 MiB, clear of the rings.
    const devTab = row.size === 0x1ff ? 0xc0_0000 : DEV_TAB;
    const rig = new Rig({ devTabSize: row.size, devTab });
    const tableEnd = devTab + (row.size + 1) * PAGE;
    for (const rid of [row.rid, tableEnd / 32 - devTab / 32]) {
      if (rig.memory.isRam(devTab + rid * 32, 32)) {
        rig.writeDte(rid, { ...IDENTITY, domainId: 0x55 });
      }
    }
    rig.memory.reads.length = 0;
    for (const access of [1, 2] as const) {
      const { answer, events } = rig.resolve(row.rid, IOVA, access);
      const what = `Size ${hx(row.size)}, DeviceID ${hx(row.rid)}, access ${access}`;
      if (row.inside) {
        assertTranslated(answer, IOVA, what, 3);
        assertEvents(events, [], what);
      } else {
        assertFault(answer, "no-translation", what);
        assertEvents(events, [{
          name: "IO_PAGE_FAULT",
          deviceId: row.rid,
          flags: { rw: access === 2 },
          address: BigInt(IOVA),
        }], what);
      }
    }
    const outside = rig.memory.reads.filter((a) => a >= tableEnd && a < tableEnd + 0x1_0000);
    deepEqual(outside, [], `Size ${hx(row.size)}: nothing read past the table end`);
  }
});

Deno.test("A DTE outside RAM: DEV_TAB_HARDWARE_ERROR, Type 1, with the DTE address", () => {
  const rig = new Rig({ devTab: NOT_RAM, devTabSize: 0x1ff });
  const rows = [
    { rid: 0, access: 1 },
    { rid: 0x18, access: 2 },
    { rid: 0xffff, access: 1 },
  ] as const;
  for (const row of rows) {
    const { answer, events } = rig.resolve(row.rid, IOVA, row.access);
    const what = `DeviceID ${hx(row.rid)}, access ${row.access}`;
    assertFault(answer, "no-translation", what);
    assertEvents(events, [{
      name: "DEV_TAB_HARDWARE_ERROR",
      deviceId: row.rid,
      flags: { rw: row.access === 2 },
      type: 1,
      address: BigInt(NOT_RAM + row.rid * 32),
    }], what);
  }
});

Deno.test("V = 0: untranslated and unchecked, whatever the rest of the entry says", () => {
  const garbage: Array<{ name: string; q0: bigint; q1: bigint }> = [
    { name: "all zero", q0: 0n, q1: 0n },
    { name: "TV, Mode 0, IR=IW=0", q0: 0b10n, q1: 0x1234n },
    { name: "TV, Mode 7, root outside RAM", q0: 0b10n | (7n << 9n) | BigInt(NOT_RAM), q1: 9n },
    { name: "Mode 3, root outside RAM, IR only", q0: (3n << 9n) | BigInt(NOT_RAM) | b(61), q1: 0n },
    { name: "every reserved bit", q0: 0xfffe_ffff_ffff_fffen, q1: 0xffff_ffff_ffff_ffffn },
  ];
  for (const row of garbage) {
    const rig = new Rig();
    rig.writeDte(RID, [row.q0, row.q1]);
    for (const access of [1, 2] as const) {
      const { answer, events } = rig.resolve(RID, IOVA, access);
      assertTranslated(answer, IOVA, `${row.name}, access ${access}`, 3);
      assertEvents(events, [], row.name);
    }
    equal(rig.iommu.counters.faults, 0, row.name);
  }
});

Deno.test("V = 1, TV = 0: IO_PAGE_FAULT (PR = 0) with the DTE's DomainID, access aborted", () => {
  const rows = [
    { domainId: 0, access: 1, iova: 0 },
    { domainId: 0x1234, access: 1, iova: IOVA },
    { domainId: 0xffff, access: 2, iova: 0x7_ffff_ffff_f001 },
  ] as const;
  for (const row of rows) {
    const rig = new Rig();
    // IR/IW and a Mode do not matter without TV.
    rig.writeDte(RID, { valid: true, domainId: row.domainId, readable: true, writable: true });
    const { answer, events } = rig.resolve(RID, row.iova, row.access);
    const what = `DomainID ${hx(row.domainId)}, access ${row.access}`;
    assertFault(answer, "no-translation", what);
    assertEvents(events, [{
      name: "IO_PAGE_FAULT",
      deviceId: RID,
      domainId: row.domainId,
      flags: { rw: row.access === 2 },
      address: BigInt(row.iova),
    }], what);
  }
});

Deno.test("Reserved DTE bits: ILLEGAL_DEV_TABLE_ENTRY (RZ = 1), address = IOVA & ~3", () => {
  const reserved: Array<{ word: 0 | 1; bit: number }> = [];
  for (const n of [2, 3, 4, 5, 6, ...range(52, 60), 63]) reserved.push({ word: 0, bit: n });
  // qw1 bit k is DTE bit 64 + k: GCR3 80–95 (qw1 16–31), 106 (qw1 42), 107–127 (qw1 43–63).
  for (const n of [...range(16, 31), 42, ...range(43, 63)]) reserved.push({ word: 1, bit: n });
  for (const row of reserved) {
    const rig = new Rig();
    const extra = row.word === 0 ? { q0: b(row.bit) } : { q1: b(row.bit) };
    rig.writeDte(RID, { ...IDENTITY, domainId: 0x42 }, extra);
    for (const access of [1, 2] as const) {
      const { answer, events } = rig.resolve(RID, IOVA, access);
      const what = `DTE bit ${row.word * 64 + row.bit}, access ${access}`;
      assertFault(answer, "no-translation", what);
      assertEvents(events, [{
        name: "ILLEGAL_DEV_TABLE_ENTRY",
        deviceId: RID,
        flags: { rz: true, rw: access === 2 },
        address: BigInt(IOVA) & ~3n,
      }], what);
    }
  }
});

Deno.test("Tolerated DTE bits (I, IoCtl, Cache, SD, SysMgt, SE, SA, EX, qw2/qw3 without IV) are accepted", () => {
  const tolerated: Array<{ name: string; q1?: bigint; q2?: bigint; q3?: bigint }> = [
    { name: "I (96)", q1: b(32) },
    { name: "SE (97)", q1: b(33) },
    { name: "SA (98)", q1: b(34) },
    { name: "IoCtl (100:99)", q1: 3n << 35n },
    { name: "Cache (101)", q1: b(37) },
    { name: "SD (102)", q1: b(38) },
    { name: "EX (103)", q1: b(39) },
    { name: "SysMgt (105:104)", q1: 3n << 40n },
    { name: "all of them", q1: 0x3ffn << 32n },
    { name: "interrupt words with IV = 0", q2: 0xffff_ffff_ffff_fffen, q3: ~0n },
  ];
  for (const row of tolerated) {
    const rig = new Rig();
    rig.writeDte(RID, IDENTITY, { q1: row.q1 ?? 0n });
    const at = rig.dteAddress(RID);
    rig.memory.write64(at + 16, BigInt.asUintN(64, row.q2 ?? 0n));
    rig.memory.write64(at + 24, BigInt.asUintN(64, row.q3 ?? 0n));
    for (const access of [1, 2] as const) {
      const { answer, events } = rig.resolve(RID, IOVA, access);
      assertTranslated(answer, IOVA, `${row.name}, access ${access}`, 3);
      assertEvents(events, [], row.name);
    }
  }
});

Deno.test("DTE.IR/IW are checked first in every mode, before any page-table read", () => {
  // The root is outside RAM: a table read would be a PAGE_TAB_HARDWARE_ERROR.
  for (let mode = 0; mode <= 7; mode++) {
    for (const { readable, writable, access } of PERMISSION_DENIALS) {
      const rig = new Rig();
      rig.writeDte(RID, {
        valid: true,
        translationValid: true,
        mode,
        root: NOT_RAM,
        readable,
        writable,
        domainId: 0x99,
      });
      rig.memory.reads.length = 0;
      const answer = rig.iommu.resolve(RID, IOVA, access);
      const reads = [...rig.memory.reads];
      const events = rig.events();
      const what = `Mode ${mode}, IR=${+readable} IW=${+writable}, access ${access}`;
      assertFault(answer, "permission", what);
      assertEvents(events, [{
        name: "IO_PAGE_FAULT",
        deviceId: RID,
        domainId: 0x99,
        flags: { pr: true, pe: true, rw: access === 2 },
        address: BigInt(IOVA),
      }], what);
      const dte = rig.dteAddress(RID);
      deepEqual(
        reads.filter((a) => a < dte || a >= dte + 32),
        [],
        `${what}: nothing but the DTE was read`,
      );
    }
  }
});

const PERMISSION_DENIALS = [
  { readable: false, writable: false, access: 1 },
  { readable: false, writable: false, access: 2 },
  { readable: false, writable: true, access: 1 },
  { readable: true, writable: false, access: 2 },
] as const;

Deno.test("Mode 0 with IR/IW: identity with the permissions enforced", () => {
  const rows = [
    { readable: true, writable: true, access: 1, ok: true },
    { readable: true, writable: true, access: 2, ok: true },
    { readable: true, writable: false, access: 1, ok: true },
    { readable: true, writable: false, access: 2, ok: false },
    { readable: false, writable: true, access: 1, ok: false },
    { readable: false, writable: true, access: 2, ok: true },
    { readable: false, writable: false, access: 1, ok: false },
    { readable: false, writable: false, access: 2, ok: false },
  ] as const;
  for (const row of rows) {
    const rig = new Rig();
    rig.writeDte(RID, { ...IDENTITY, readable: row.readable, writable: row.writable });
    const { answer, events } = rig.resolve(RID, IOVA, row.access);
    const what = `IR=${+row.readable} IW=${+row.writable}, access ${row.access}`;
    if (row.ok) {
      assertTranslated(answer, IOVA, what, (row.readable ? 1 : 0) | (row.writable ? 2 : 0));
      assertEvents(events, [], what);
    } else {
      assertFault(answer, "permission", what);
      assertEvents(events, [{
        name: "IO_PAGE_FAULT",
        deviceId: RID,
        domainId: 7,
        flags: { pr: true, pe: true, rw: row.access === 2 },
        address: BigInt(IOVA),
      }], what);
    }
  }
});

Deno.test("Mode 7: ILLEGAL_DEV_TABLE_ENTRY with RZ = 0, address = IOVA & ~3", () => {
  for (const access of [1, 2] as const) {
    for (const iova of [0, 3, IOVA, 0xfff_ffff_fffe]) {
      const rig = new Rig();
      rig.writeDte(RID, { ...IDENTITY, mode: 7, root: DATA });
      const { answer, events } = rig.resolve(RID, iova, access);
      const what = `access ${access}, IOVA ${hx(iova)}`;
      assertFault(answer, "no-translation", what);
      assertEvents(events, [{
        name: "ILLEGAL_DEV_TABLE_ENTRY",
        deviceId: RID,
        flags: { rw: access === 2 },
        address: BigInt(iova) & ~3n,
      }], what);
    }
  }
});

// ------------------------------------------------------------------ exclusion range

const EXCL_BASE = 0x300_0000;
const EXCL_LIMIT = 0x300_1000; // last page of the range: 0x3001000–0x3001FFF
/** IOVA → the physical page the tables map it to (read-only leaves). */
const EXCL_MAPPED: ReadonlyArray<[number, number]> = [
  [EXCL_BASE - PAGE, DATA],
  [EXCL_BASE, DATA + PAGE],
  [EXCL_BASE + PAGE, DATA + 2 * PAGE],
  [EXCL_LIMIT + PAGE, DATA + 3 * PAGE],
];

/** A mode-3 domain mapping the pages around the range read-only. */
function exclusionRig(options: { exEn: boolean; allow: boolean; ex: boolean }): Rig {
  const rig = new Rig();
  const root = rig.table();
  for (const [iova, phys] of EXCL_MAPPED) rig.map(root, 3, iova, { address: phys, write: false });
  rig.writeDte(RID, { ...IDENTITY, mode: 3, root, exclusion: options.ex });
  rig.write(R.EXCL_LIMIT, BigInt(EXCL_LIMIT));
  rig.write(
    R.EXCL_BASE,
    BigInt(EXCL_BASE) | (options.exEn ? 1n : 0n) | (options.allow ? 2n : 0n),
  );
  return rig;
}

/** The physical address the tables give `iova`. */
function mappedPhys(iova: number): number {
  const page = Math.floor(iova / PAGE) * PAGE;
  const hit = EXCL_MAPPED.find(([i]) => i === page);
  return hit![1] + (iova - page);
}

Deno.test("Exclusion range: ExEn and (EX or Allow) and base ≤ addr ≤ limit|0xFFF → untranslated, unchecked", () => {
  const configs = [
    { exEn: true, allow: false, ex: true, applies: true },
    { exEn: true, allow: true, ex: false, applies: true },
    { exEn: true, allow: true, ex: true, applies: true },
    { exEn: false, allow: true, ex: true, applies: false },
    { exEn: true, allow: false, ex: false, applies: false },
  ];
  const addresses = [
    { iova: EXCL_BASE - 1, inside: false },
    { iova: EXCL_BASE, inside: true },
    { iova: EXCL_BASE + 0x1234, inside: true },
    { iova: EXCL_LIMIT, inside: true },
    { iova: EXCL_LIMIT + 0xfff, inside: true }, // the last byte of the limit page
    { iova: EXCL_LIMIT + 0x1000, inside: false }, // the next byte
  ];
  for (const config of configs) {
    for (const { iova, inside } of addresses) {
      const excluded = config.applies && inside;
      for (const access of [1, 2] as const) {
        const rig = exclusionRig(config);
        const { answer, events } = rig.resolve(RID, iova, access);
        const what = `ExEn=${+config.exEn} Allow=${+config.allow} EX=${+config.ex}, IOVA ${
          hx(iova)
        }, access ${access}`;
        if (excluded) {
          assertTranslated(answer, iova, what, 3);
          assertEvents(events, [], what);
        } else if (access === 1) {
          assertTranslated(answer, mappedPhys(iova), what, 1);
          assertEvents(events, [], what);
        } else {
          // Translated normally: the read-only leaf refuses the write.
          assertFault(answer, "permission", what);
          assertEvents(events, [{
            name: "IO_PAGE_FAULT",
            deviceId: RID,
            domainId: 7,
            flags: { pr: true, pe: true, rw: true },
            address: BigInt(iova),
          }], what);
        }
      }
    }
  }
});

Deno.test("Exclusion range: no permission check (a DTE without IR/IW, or a broken table, still passes)", () => {
  const dtes = [
    { name: "Mode 0, IR=IW=0", dte: { valid: true, translationValid: true, exclusion: true } },
    {
      name: "Mode 4, root outside RAM",
      dte: { ...IDENTITY, mode: 4, root: NOT_RAM, exclusion: true },
    },
    {
      name: "Mode 3, IR=IW=0, root outside RAM",
      dte: { valid: true, translationValid: true, mode: 3, root: NOT_RAM, exclusion: true },
    },
  ];
  for (const row of dtes) {
    const rig = new Rig();
    rig.writeDte(RID, row.dte);
    rig.write(R.EXCL_LIMIT, BigInt(EXCL_LIMIT));
    rig.write(R.EXCL_BASE, BigInt(EXCL_BASE) | 1n);
    for (const access of [1, 2] as const) {
      const inside = rig.resolve(RID, EXCL_BASE + 0x10, access);
      assertTranslated(inside.answer, EXCL_BASE + 0x10, `${row.name}: inside`, 3);
      assertEvents(inside.events, [], row.name);
      const outside = rig.resolve(RID, EXCL_BASE - 0x10, access);
      equal(outside.answer.ok, false, `${row.name}: outside the range the DTE applies`);
      equal(outside.events.length, 1, `${row.name}: outside the range the fault is logged`);
    }
  }
});

Deno.test("ExclBase and ExclLimit read back masked, the limit with bits 11:0 set", () => {
  const rig = new Rig();
  const rows: Array<{ base: bigint; limit: bigint; baseBack: bigint; limitBack: bigint }> = [
    { base: 0n, limit: 0n, baseBack: 0n, limitBack: 0xfffn },
    { base: 0x300_0003n, limit: 0x300_1000n, baseBack: 0x300_0003n, limitBack: 0x300_1fffn },
    {
      base: 0xffff_ffff_ffff_ffffn,
      limit: 0xffff_ffff_ffff_ffffn,
      baseBack: 0x000f_ffff_ffff_f003n,
      limitBack: 0x000f_ffff_ffff_ffffn,
    },
    { base: 0x1234_5ffcn, limit: 0x1234_5678n, baseBack: 0x1234_5000n, limitBack: 0x1234_5fffn },
  ];
  for (const row of rows) {
    rig.write(R.EXCL_BASE, row.base);
    rig.write(R.EXCL_LIMIT, row.limit);
    equal(rig.read(R.EXCL_BASE), row.baseBack, `ExclBase ${hx(row.base)}`);
    equal(rig.read(R.EXCL_LIMIT), row.limitBack, `ExclLimit ${hx(row.limit)}`);
    equal(rig.read(R.EXCL_LIMIT, 4), row.limitBack & 0xffff_ffffn, "low half");
  }
});

// ------------------------------------------------------------------ MSI window

Deno.test("MSI window 0xFEE00000–0xFEEFFFFF is never translated, even for a faulting DTE", () => {
  const dtes: Array<{ name: string; setup: (rig: Rig) => void; rid?: number }> = [
    { name: "V=1 TV=0", setup: (r) => r.writeDte(RID, { valid: true }) },
    {
      name: "Mode 0, IR=IW=0",
      setup: (r) => r.writeDte(RID, { valid: true, translationValid: true }),
    },
    { name: "reserved bits", setup: (r) => r.writeDte(RID, IDENTITY, { q0: b(63) }) },
    { name: "Mode 7", setup: (r) => r.writeDte(RID, { ...IDENTITY, mode: 7 }) },
    {
      name: "Mode 3, root outside RAM",
      setup: (r) => r.writeDte(RID, { ...IDENTITY, mode: 3, root: NOT_RAM }),
    },
    {
      name: "Mode 3 mapping the window elsewhere",
      setup: (r) => {
        const root = r.table();
        for (const iova of [0xfee0_0000, 0xfeef_f000, 0xfedf_f000, 0xfef0_0000]) {
          r.map(root, 3, iova, { address: DATA });
        }
        r.writeDte(RID, { ...IDENTITY, mode: 3, root });
      },
    },
    { name: "DeviceID beyond the table", setup: () => {}, rid: 0x1000 },
  ];
  for (const row of dtes) {
    const rig = new Rig();
    row.setup(rig);
    const rid = row.rid ?? RID;
    for (const access of [1, 2] as const) {
      for (const iova of [0xfee0_0000, 0xfee0_1234, 0xfeef_ffff]) {
        const { answer, events } = rig.resolve(rid, iova, access);
        const what = `${row.name}, IOVA ${hx(iova)}, access ${access}`;
        assertTranslated(answer, iova, what);
        assertEvents(events, [], what);
      }
      // Just outside the window the DTE applies again.
      for (const iova of [0xfedf_ffff, 0xfef0_0000]) {
        const { answer, events } = rig.resolve(rid, iova, access);
        const what = `${row.name}, IOVA ${hx(iova)}, access ${access}`;
        if (row.name.startsWith("Mode 3 mapping")) {
          assertTranslated(answer, DATA + (iova % PAGE), what);
        } else {
          equal(answer.ok, false, what);
          equal(events.length, 1, `${what}: one event`);
        }
      }
    }
  }
});

// ------------------------------------------------------------------ SA / SE

/** Ways to make a translation fail, with the event each logs when not suppressed. */
const FAULTS: Array<{
  name: string;
  setup: (rig: Rig, flags: { suppressAll?: boolean; suppressRepeated?: boolean }) => void;
  event: (iova: number) => ExpectedEvent;
  suppressible: boolean;
}> = [
  {
    name: "V=1 TV=0",
    setup: (r, f) => r.writeDte(RID, { valid: true, domainId: 3, ...f }),
    event: (iova) => ({
      name: "IO_PAGE_FAULT",
      deviceId: RID,
      domainId: 3,
      address: BigInt(iova),
    }),
    suppressible: true,
  },
  {
    name: "DTE without IR",
    setup: (r, f) => r.writeDte(RID, { ...IDENTITY, readable: false, domainId: 3, ...f }),
    event: (iova) => ({
      name: "IO_PAGE_FAULT",
      deviceId: RID,
      domainId: 3,
      flags: { pr: true, pe: true },
      address: BigInt(iova),
    }),
    suppressible: true,
  },
  {
    name: "not-present leaf",
    setup: (r, f) => {
      const root = r.table();
      r.map(root, 2, 0, { address: DATA, present: false });
      r.writeDte(RID, { ...IDENTITY, mode: 2, root, domainId: 3, ...f });
    },
    event: (iova) => ({
      name: "IO_PAGE_FAULT",
      deviceId: RID,
      domainId: 3,
      address: BigInt(iova),
    }),
    suppressible: true,
  },
  {
    name: "reserved bit in a PTE",
    setup: (r, f) => {
      const root = r.table();
      for (let i = 0; i < 4; i++) r.map(root, 2, i * PAGE, { address: DATA, extra: b(52) });
      r.writeDte(RID, { ...IDENTITY, mode: 2, root, domainId: 3, ...f });
    },
    event: (iova) => ({
      name: "IO_PAGE_FAULT",
      deviceId: RID,
      domainId: 3,
      flags: { pr: true, rz: true },
      address: BigInt(iova),
    }),
    suppressible: true,
  },
  {
    name: "reserved DTE bit",
    setup: (r, f) => r.writeDte(RID, { ...IDENTITY, ...f }, { q0: b(5) }),
    event: (iova) => ({
      name: "ILLEGAL_DEV_TABLE_ENTRY",
      deviceId: RID,
      flags: { rz: true },
      address: BigInt(iova),
    }),
    suppressible: false,
  },
  {
    name: "Mode 7",
    setup: (r, f) => r.writeDte(RID, { ...IDENTITY, mode: 7, ...f }),
    event: (iova) => ({ name: "ILLEGAL_DEV_TABLE_ENTRY", deviceId: RID, address: BigInt(iova) }),
    suppressible: false,
  },
  {
    name: "page table outside RAM",
    setup: (r, f) => r.writeDte(RID, { ...IDENTITY, mode: 2, root: NOT_RAM, domainId: 3, ...f }),
    event: () => ({
      name: "PAGE_TAB_HARDWARE_ERROR",
      deviceId: RID,
      domainId: 3,
      type: 1,
      address: BigInt(NOT_RAM),
    }),
    suppressible: false,
  },
];

Deno.test("DTE.SA suppresses IO_PAGE_FAULT logging (the access still fails), never other events", () => {
  for (const fault of FAULTS) {
    const rig = new Rig();
    fault.setup(rig, { suppressAll: true });
    const before = rig.iommu.counters.faults;
    for (const iova of [0, PAGE, 2 * PAGE]) {
      const { answer, events } = rig.resolve(RID, iova, 1);
      equal(answer.ok, false, `${fault.name}: the access fails`);
      assertEvents(events, fault.suppressible ? [] : [fault.event(iova)], fault.name);
    }
    equal(rig.iommu.counters.faults - before, 3, `${fault.name}: every fault is counted`);
  }
});

Deno.test("DTE.SE logs the first IO_PAGE_FAULT, then suppresses until INVALIDATE_DEVTAB_ENTRY / INVALIDATE_IOMMU_ALL", async () => {
  for (const fault of FAULTS) {
    for (
      const rearm of [
        { name: "INVALIDATE_DEVTAB_ENTRY", command: commands.invalidateDevtabEntry(RID) },
        { name: "INVALIDATE_IOMMU_ALL", command: commands.invalidateAll() },
      ]
    ) {
      const rig = new Rig();
      fault.setup(rig, { suppressRepeated: true });
      const what = `${fault.name}, re-armed by ${rearm.name}`;
      const expect = (iova: number, logged: boolean) => {
        const { answer, events } = rig.resolve(RID, iova, 1);
        equal(answer.ok, false, `${what}: IOVA ${hx(iova)} fails`);
        assertEvents(events, logged ? [fault.event(iova)] : [], `${what}: IOVA ${hx(iova)}`);
      };
      expect(0, true);
      expect(PAGE, !fault.suppressible);
      expect(2 * PAGE, !fault.suppressible);
      // Another device's DTE invalidation does not re-arm this one.
      await rig.submit([commands.invalidateDevtabEntry(RID + 1)]);
      expect(3 * PAGE, !fault.suppressible);
      await rig.submit([rearm.command]);
      expect(PAGE, true);
      expect(2 * PAGE, !fault.suppressible);
    }
  }
});

Deno.test("DTE.SE is per device: another device's first fault is still logged", () => {
  const rig = new Rig();
  rig.writeDte(RID, { valid: true, domainId: 3, suppressRepeated: true });
  rig.writeDte(RID + 1, { valid: true, domainId: 4, suppressRepeated: true });
  const rows = [
    { rid: RID, logged: true },
    { rid: RID, logged: false },
    { rid: RID + 1, logged: true },
    { rid: RID + 1, logged: false },
    { rid: RID, logged: false },
  ];
  for (const [i, row] of rows.entries()) {
    const { events } = rig.resolve(row.rid, i * PAGE, 2);
    equal(events.length, row.logged ? 1 : 0, `row ${i}: DeviceID ${hx(row.rid)}`);
  }
  ok(rig.iommu.counters.faults >= rows.length);
});

Deno.test("Rig sanity: page-table entries are laid out as amd-vi.md §3 says", () => {
  // Guards the rig itself: PR | NextLevel | address | IR | IW.
  equal(entry({ address: 0x5000, next: 2 }), 0x6000_0000_0000_5401n);
  equal(entry({ address: 0x5000, read: false, write: false, present: false }), 0x5000n);
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
