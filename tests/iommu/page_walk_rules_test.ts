// amd-vi.md §3: the I/O page walk through the model (AmdViIommu.resolve):
// modes 1–6 and the IOVA range check, leaves at L1/L2/L3, NextLevel = 7 page
// sizes, level skipping, NextLevel ordering, reserved bits, the present bit at
// every level, permissions AND-ed across levels, table reads outside RAM, and
// the RW flag of the events.
import { deepEqual, equal } from "node:assert/strict";
import { MAX_ADDRESS } from "../../src/util/address.ts";
import {
  assertEvents,
  assertFault,
  assertTranslated,
  b,
  DATA,
  entry,
  GIB,
  hx,
  indexAt,
  MIB,
  nl7Address,
  NOT_RAM,
  PAGE,
  Rig,
  SHIFT,
} from "./rig.ts";

const RID = 0x20; // 00:04.0
const DOMAIN = 0x2a;

/** A rig with a DTE of `mode` levels (IR, IW) and its root table. */
function domain(mode: number): { rig: Rig; root: number } {
  const rig = new Rig();
  const root = rig.table();
  rig.writeDte(RID, {
    valid: true,
    translationValid: true,
    mode,
    root,
    readable: true,
    writable: true,
    domainId: DOMAIN,
  });
  return { rig, root };
}

/** The IO_PAGE_FAULT a walk failure logs. */
function walkFault(
  iova: number,
  access: 1 | 2,
  flags: { pr?: boolean; pe?: boolean; rz?: boolean },
) {
  return {
    name: "IO_PAGE_FAULT" as const,
    deviceId: RID,
    domainId: DOMAIN,
    flags: { ...flags, rw: access === 2 },
    address: BigInt(iova),
  };
}

/** Asserts that both a read and a write at `iova` fault with `flags`, logging one event each. */
function assertWalkFault(
  rig: Rig,
  iova: number,
  flags: { pr?: boolean; pe?: boolean; rz?: boolean },
  what: string,
): void {
  for (const access of [1, 2] as const) {
    const { answer, events } = rig.resolve(RID, iova, access);
    assertFault(answer, flags.pe ? "permission" : "no-translation", `${what}, access ${access}`);
    assertEvents(events, [walkFault(iova, access, flags)], `${what}, access ${access}`);
  }
}

/** Asserts that both a read and a write at `iova` translate to `phys`, with no event. */
function assertWalk(rig: Rig, iova: number, phys: number, what: string, perms = 3): void {
  for (const access of [1, 2] as const) {
    if ((perms & access) === 0) continue;
    const { answer, events } = rig.resolve(RID, iova, access);
    assertTranslated(answer, phys, `${what}, access ${access}`, perms);
    assertEvents(events, [], `${what}, access ${access}`);
  }
}

Deno.test("Modes 1–6: a 4 KiB page at the top of each mode's range translates", () => {
  for (let mode = 1; mode <= 6; mode++) {
    const { rig, root } = domain(mode);
    const top = Math.min(2 ** (12 + 9 * mode), MAX_ADDRESS + 1);
    const iova = top - PAGE;
    const phys = DATA + mode * PAGE;
    const tables = rig.map(root, mode, iova, { address: phys });
    equal(tables.filter((t) => t !== undefined).length, mode, `mode ${mode}: one table per level`);
    assertWalk(rig, iova + 0xabc, phys + 0xabc, `mode ${mode}, IOVA ${hx(iova + 0xabc)}`);
    // IOVA 0 goes through a different path: not mapped.
    assertWalkFault(rig, 0x123, {}, `mode ${mode}, IOVA 0x123`);
  }
});

Deno.test("Modes 1–4: an IOVA ≥ 2^(12 + 9·Mode) faults (PR = 1) instead of aliasing", () => {
  for (let mode = 1; mode <= 4; mode++) {
    const { rig, root } = domain(mode);
    const span = 2 ** (12 + 9 * mode);
    // Map IOVA 0x5000 and the top page: an alias of span + 0x5000 would hit the first.
    rig.map(root, mode, 0x5000, { address: DATA });
    rig.map(root, mode, span - PAGE, { address: DATA + PAGE });
    assertWalk(rig, 0x5123, DATA + 0x123, `mode ${mode}, IOVA 0x5123`);
    for (const iova of [span, span + 0x5123, span * 2 - 1, MAX_ADDRESS - 0xfff]) {
      assertWalkFault(rig, iova, { pr: true }, `mode ${mode}, IOVA ${hx(iova)}`);
    }
  }
});

Deno.test("Leaves with NextLevel = 0: 4 KiB at L1, 2 MiB at L2, 1 GiB at L3", () => {
  const rows = [
    { level: 1, size: PAGE, iova: 0x7_4000_5000, phys: DATA + 0x3000, offsets: [0, 0x7ff, 0xfff] },
    {
      level: 2,
      size: 2 * MIB,
      iova: 0x7_4060_0000,
      phys: 0x140_0000,
      offsets: [0, 0x1234, 0x1f_ffff],
    },
    {
      level: 3,
      size: GIB,
      iova: 0x7_4000_0000,
      phys: 3 * GIB,
      offsets: [0, 0x12_3456, 0x3fff_ffff],
    },
    // Address bits below the page size are ignored in a leaf (SPA = Addr with
    // the low shift[L] bits cleared).
    {
      level: 2,
      size: 2 * MIB,
      iova: 0x20_0000,
      phys: 0x140_0000,
      addressBits: 0x1_5000,
      offsets: [0x10],
    },
  ];
  for (const row of rows) {
    const { rig, root } = domain(4);
    rig.map(root, 4, row.iova, { address: row.phys + (row.addressBits ?? 0) }, row.level);
    for (const offset of row.offsets) {
      const iova = row.iova + offset;
      const what = `L${row.level} leaf, IOVA ${hx(iova)}`;
      assertWalk(rig, iova, row.phys + offset, what);
      const answer = rig.iommu.resolve(RID, iova, 1);
      equal(answer.ok && answer.length, row.size - offset, `${what}: run to the page end`);
    }
    // The neighbouring page of the same size is not mapped.
    assertWalkFault(rig, row.iova + row.size, {}, `L${row.level} leaf: next page`);
  }
});

Deno.test("NextLevel = 7 leaves: sizes strictly between the level's shift and the next level's", () => {
  const valid = [
    { level: 1, size: 8 * 1024 },
    { level: 1, size: 16 * 1024 },
    { level: 1, size: 64 * 1024 },
    { level: 1, size: MIB },
    { level: 2, size: 4 * MIB },
    { level: 2, size: 16 * MIB },
    { level: 2, size: 512 * MIB },
    { level: 3, size: 2 * GIB },
  ];
  for (const row of valid) {
    const { rig, root } = domain(4);
    const iova = 0x80_0000_0000 + 3 * row.size; // an odd multiple: not 2 MiB/1 GiB aligned for free
    const phys = Math.max(row.size, 0x200_0000);
    const leaf = entry({ address: nl7Address(phys, row.size), next: 7 });
    // Replicated over every slot the page covers (as Linux writes it).
    const tables = rig.path(root, 4, iova, row.level);
    const slotSize = 2 ** SHIFT[row.level]!;
    for (let off = 0; off < row.size; off += slotSize) {
      rig.setEntry(tables[row.level]!, row.level, iova + off, leaf);
    }
    for (const offset of [0, 0x1234, row.size / 2 + 0x10, row.size - 1]) {
      const what = `NL7 ${row.size / 1024} KiB page at L${row.level}, offset ${hx(offset)}`;
      assertWalk(rig, iova + offset, phys + offset, what);
      const answer = rig.iommu.resolve(RID, iova + offset, 1);
      equal(answer.ok && answer.length, row.size - offset, `${what}: run to the page end`);
    }
  }
  const invalid = [
    { name: "2 MiB at L1 (= the L2 size)", mode: 4, level: 1, size: 2 * MIB },
    { name: "4 MiB at L1", mode: 4, level: 1, size: 4 * MIB },
    { name: "8 KiB at L2 (≤ the L2 size)", mode: 4, level: 2, size: 8 * 1024 },
    { name: "1 MiB at L2", mode: 4, level: 2, size: MIB },
    { name: "2 MiB at L2 (must be NextLevel 0)", mode: 4, level: 2, size: 2 * MIB },
    { name: "1 GiB at L2 (= the L3 size)", mode: 4, level: 2, size: GIB },
    { name: "1 GiB at L3", mode: 4, level: 3, size: GIB },
    { name: "8 KiB at L6", mode: 6, level: 6, size: 8 * 1024 },
    { name: "2^52 bytes at L6", mode: 6, level: 6, size: 2 ** 52 },
  ];
  for (const row of invalid) {
    const { rig, root } = domain(row.mode);
    const iova = 0;
    const tables = rig.path(root, row.mode, iova, row.level);
    rig.setEntry(
      tables[row.level]!,
      row.level,
      iova,
      entry({ address: nl7Address(0, row.size), next: 7 }),
    );
    assertWalkFault(rig, iova + 0x10, { pr: true }, `NL7 ${row.name}`);
  }
});

Deno.test("Level skipping: an L4 PDE may point straight at an L2 (or L1) table", () => {
  const rows = [
    { name: "L4 → L2", next: 2, iova: 0x80_0020_3000, ok: true },
    { name: "L4 → L2, skipped L3 bits nonzero", next: 2, iova: 0x80_4020_3000, ok: false },
    { name: "L4 → L2, top skipped bit", next: 2, iova: 0xc0_0020_3000, ok: false },
    { name: "L4 → L1", next: 1, iova: 0x80_0000_3000, ok: true },
    { name: "L4 → L1, skipped L2 bits nonzero", next: 1, iova: 0x80_0020_3000, ok: false },
    { name: "L4 → L1, skipped L3 bits nonzero", next: 1, iova: 0x80_4000_3000, ok: false },
  ];
  for (const row of rows) {
    const { rig, root } = domain(4);
    const lower = rig.table();
    rig.setEntry(root, 4, row.iova, entry({ address: lower, next: row.next }));
    let l1 = lower;
    if (row.next === 2) {
      l1 = rig.table();
      rig.setEntry(lower, 2, row.iova, entry({ address: l1, next: 1 }));
    }
    rig.setEntry(l1, 1, row.iova, entry({ address: DATA + 0x7000 }));
    const iova = row.iova + 0x321;
    if (row.ok) assertWalk(rig, iova, DATA + 0x7321, row.name);
    else assertWalkFault(rig, iova, { pr: true }, row.name);
  }
});

Deno.test("NextLevel ≥ the current level faults (PR = 1, RZ = 0)", () => {
  const rows: Array<{ level: number; next: number }> = [];
  for (let next = 1; next <= 6; next++) rows.push({ level: 1, next }); // at L1 only 0 and 7 are leaves
  for (let next = 2; next <= 6; next++) rows.push({ level: 2, next });
  for (const next of [3, 4, 5, 6]) rows.push({ level: 3, next });
  rows.push({ level: 4, next: 4 }, { level: 4, next: 6 });
  for (const row of rows) {
    const { rig, root } = domain(4);
    const iova = 0x1234_5000;
    const tables = rig.path(root, 4, iova, row.level);
    // Point at a real, fully populated table so only the level matters.
    const target = rig.table();
    for (let i = 0; i < 512; i++) {
      rig.memory.write64(target + i * 8, entry({ address: DATA, next: 0 }));
    }
    rig.setEntry(tables[row.level]!, row.level, iova, entry({ address: target, next: row.next }));
    assertWalkFault(rig, iova, { pr: true }, `L${row.level} entry with NextLevel ${row.next}`);
  }
});

Deno.test("Reserved bits: PTE 58:52 and PDE 60:52 → IO_PAGE_FAULT PR = 1, RZ = 1", () => {
  const rows: Array<{ name: string; level: number; bit: number; leaf: boolean; ok: boolean }> = [];
  for (let bit = 52; bit <= 58; bit++) {
    rows.push({ name: "L1 PTE", level: 1, bit, leaf: true, ok: false });
  }
  for (let bit = 52; bit <= 58; bit++) {
    rows.push({ name: "L2 PTE", level: 2, bit, leaf: true, ok: false });
  }
  rows.push({ name: "L1 PTE U", level: 1, bit: 59, leaf: true, ok: true });
  rows.push({ name: "L1 PTE FC", level: 1, bit: 60, leaf: true, ok: true });
  rows.push({ name: "L3 PTE FC", level: 3, bit: 60, leaf: true, ok: true });
  rows.push({ name: "L1 PTE bit 63", level: 1, bit: 63, leaf: true, ok: true });
  for (let bit = 52; bit <= 60; bit++) {
    rows.push({ name: "L2 PDE", level: 2, bit, leaf: false, ok: false });
  }
  for (let bit = 52; bit <= 60; bit++) {
    rows.push({ name: "L4 PDE", level: 4, bit, leaf: false, ok: false });
  }
  rows.push({ name: "L3 PDE bit 63", level: 3, bit: 63, leaf: false, ok: true });
  rows.push({ name: "L2 PDE A and D (5, 6)", level: 2, bit: 5, leaf: false, ok: true });
  rows.push({ name: "L1 PTE A and D (5, 6)", level: 1, bit: 6, leaf: true, ok: true });
  for (const row of rows) {
    const { rig, root } = domain(4);
    const iova = 0x3_c060_5000;
    const leafLevel = row.leaf ? row.level : 1;
    const tables = rig.map(root, 4, iova, { address: DATA + 0x200_0000 }, leafLevel);
    const at = tables[row.level]! + indexAt(iova, row.level) * 8;
    rig.memory.write64(at, rig.memory.read64(at) | b(row.bit));
    const what = `${row.name} bit ${row.bit}`;
    const pageSize = 2 ** SHIFT[leafLevel]!;
    const physBase = Math.floor((DATA + 0x200_0000) / pageSize) * pageSize;
    if (row.ok) {
      assertWalk(rig, iova + 0x10, physBase + (iova % pageSize) + 0x10, what);
    } else {
      assertWalkFault(rig, iova + 0x10, { pr: true, rz: true }, what);
    }
  }
  // A NextLevel = 7 leaf uses the PTE mask too.
  const { rig, root } = domain(4);
  const tables = rig.path(root, 4, 0, 1);
  for (const slot of [0, 1]) {
    rig.memory.write64(
      tables[1]! + slot * 8,
      entry({ address: nl7Address(DATA, 8192), next: 7, extra: b(58) }),
    );
  }
  assertWalkFault(rig, 0x1010, { pr: true, rz: true }, "NL7 PTE bit 58");
});

Deno.test("The present bit is honoured at every level (PR = 0), before any other check", () => {
  for (let mode = 1; mode <= 6; mode++) {
    for (let level = mode; level >= 1; level--) {
      for (const garbage of [0n, b(55) | b(60) | (5n << 9n)]) {
        const { rig, root } = domain(mode);
        const iova = 0x40_2000_3000;
        const fits = mode >= 4 || iova < 2 ** (12 + 9 * mode);
        const at = fits ? iova : 0x3000;
        const tables = rig.map(root, mode, at, { address: DATA, read: false, write: false });
        const slot = tables[level]! + indexAt(at, level) * 8;
        // Clear PR (and, for the second row, add reserved bits, a bad level and no permissions).
        rig.memory.write64(slot, (rig.memory.read64(slot) & ~1n & ~(3n << 61n)) | garbage);
        const what = `mode ${mode}, not-present entry at L${level}${
          garbage ? " with garbage" : ""
        }`;
        assertWalkFault(rig, at + 8, {}, what);
      }
    }
  }
});

Deno.test("Permissions are AND-ed across the DTE and every level", () => {
  type Perm = "r" | "w" | "rw" | "-";
  const rows: Array<
    { dte: Perm; pdes: [Perm, Perm, Perm]; leaf: Perm; read: boolean; write: boolean }
  > = [
    { dte: "rw", pdes: ["rw", "rw", "rw"], leaf: "rw", read: true, write: true },
    { dte: "rw", pdes: ["rw", "rw", "rw"], leaf: "r", read: true, write: false },
    { dte: "rw", pdes: ["rw", "rw", "rw"], leaf: "w", read: false, write: true },
    { dte: "rw", pdes: ["rw", "rw", "rw"], leaf: "-", read: false, write: false },
    { dte: "rw", pdes: ["r", "rw", "rw"], leaf: "rw", read: true, write: false }, // L4 PDE without IW
    { dte: "rw", pdes: ["rw", "r", "rw"], leaf: "rw", read: true, write: false }, // L3 PDE without IW
    { dte: "rw", pdes: ["rw", "rw", "r"], leaf: "rw", read: true, write: false }, // L2 PDE without IW
    { dte: "rw", pdes: ["rw", "w", "rw"], leaf: "rw", read: false, write: true },
    { dte: "rw", pdes: ["r", "w", "rw"], leaf: "rw", read: false, write: false },
    { dte: "r", pdes: ["rw", "rw", "rw"], leaf: "rw", read: true, write: false },
    { dte: "w", pdes: ["rw", "rw", "rw"], leaf: "rw", read: false, write: true },
    { dte: "r", pdes: ["rw", "rw", "rw"], leaf: "w", read: false, write: false },
  ];
  const has = (p: Perm, c: "r" | "w") => p.includes(c);
  for (const row of rows) {
    const rig = new Rig();
    const root = rig.table();
    rig.writeDte(RID, {
      valid: true,
      translationValid: true,
      mode: 4,
      root,
      readable: has(row.dte, "r"),
      writable: has(row.dte, "w"),
      domainId: DOMAIN,
    });
    const iova = 0x12_3456_7000;
    const tables = rig.map(root, 4, iova, {
      address: DATA,
      read: has(row.leaf, "r"),
      write: has(row.leaf, "w"),
    });
    for (const [i, level] of [4, 3, 2].entries()) {
      const slot = tables[level]! + indexAt(iova, level) * 8;
      const p = row.pdes[i]!;
      const e = rig.memory.read64(slot) & ~(3n << 61n);
      rig.memory.write64(slot, e | (has(p, "r") ? b(61) : 0n) | (has(p, "w") ? b(62) : 0n));
    }
    const perms = (row.read ? 1 : 0) | (row.write ? 2 : 0);
    const what = `DTE ${row.dte}, PDEs ${row.pdes.join("/")}, leaf ${row.leaf}`;
    for (const access of [1, 2] as const) {
      const allowed = access === 1 ? row.read : row.write;
      const { answer, events } = rig.resolve(RID, iova + 0x44, access);
      if (allowed) {
        assertTranslated(answer, DATA + 0x44, `${what}, access ${access}`, perms);
        assertEvents(events, [], what);
      } else {
        assertFault(answer, "permission", `${what}, access ${access}`);
        // A DTE denial (before the walk) and a table denial log the same event.
        assertEvents(
          events,
          [walkFault(iova + 0x44, access, { pr: true, pe: true })],
          `${what}, access ${access}`,
        );
      }
    }
  }
});

Deno.test("A table entry outside RAM: PAGE_TAB_HARDWARE_ERROR, Type 1, entry address, DomainID", () => {
  const rows = [
    { name: "root outside RAM", broken: 4 },
    { name: "L3 table outside RAM", broken: 3 },
    { name: "L2 table outside RAM", broken: 2 },
    { name: "L1 table outside RAM", broken: 1 },
  ];
  const iova = 0x12_3456_7000;
  for (const row of rows) {
    for (const access of [1, 2] as const) {
      const { rig, root } = domain(4);
      let expected: number;
      if (row.broken === 4) {
        rig.writeDte(RID, {
          valid: true,
          translationValid: true,
          mode: 4,
          root: NOT_RAM,
          readable: true,
          writable: true,
          domainId: DOMAIN,
        });
        expected = NOT_RAM + indexAt(iova, 4) * 8;
      } else {
        const tables = rig.path(root, 4, iova, row.broken + 1);
        rig.setEntry(
          tables[row.broken + 1]!,
          row.broken + 1,
          iova,
          entry({ address: NOT_RAM, next: row.broken }),
        );
        expected = NOT_RAM + indexAt(iova, row.broken) * 8;
      }
      const { answer, events } = rig.resolve(RID, iova + 0x10, access);
      const what = `${row.name}, access ${access}`;
      assertFault(answer, "no-translation", what);
      assertEvents(events, [{
        name: "PAGE_TAB_HARDWARE_ERROR",
        deviceId: RID,
        domainId: DOMAIN,
        flags: { rw: access === 2 },
        type: 1,
        address: BigInt(expected),
      }], what);
    }
  }
});

Deno.test("Event RW flag: set for writes only, across every walk fault kind", () => {
  const { rig, root } = domain(3);
  rig.map(root, 3, 0x1000, { address: DATA, present: false });
  rig.map(root, 3, 0x2000, { address: DATA, extra: b(53) });
  rig.map(root, 3, 0x3000, { address: DATA, read: false, write: false });
  const seen: boolean[] = [];
  for (const iova of [0x1000, 0x2000, 0x3000]) {
    for (const access of [1, 2] as const) {
      const { events } = rig.resolve(RID, iova, access);
      equal(events.length, 1);
      seen.push(events[0]!.flags.rw);
    }
  }
  deepEqual(seen, [false, true, false, true, false, true]);
});
