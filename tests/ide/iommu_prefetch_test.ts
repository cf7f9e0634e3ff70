// The IOMMU plumbing the IDE controller's transfers rely on: AmdViIommu.fill
// reading neighbouring 4 KiB leaves straight from their level-1 table must
// publish exactly what a full walk of every page publishes; a prefetch hint
// from a device worker fills the snapshot ahead of the device's accesses,
// never beyond what the tables allow and never logging a fault.
import { deepEqual, equal, ok } from "node:assert/strict";
import { walkPageTable } from "../../src/iommu/page_walk.ts";
import { decodeDte } from "../../src/iommu/device_table.ts";
import type { SnapshotTranslation } from "../../src/iommu/iotlb_snapshot.ts";
import { Machine } from "../../src/machine/machine.ts";
import { DATA, entry, PAGE, Rig } from "../iommu/rig.ts";

const RID = 0x10;
const DOMAIN = 7;

/** What fill published before the fast path: a full walk of every page, in order. */
function reference(rig: Rig, iova: number, count: number): SnapshotTranslation[] {
  const at = rig.dteAddress(RID);
  const dte = decodeDte(rig.memory.read64(at), rig.memory.read64(at + 8));
  const out: SnapshotTranslation[] = [];
  let walk = walkPageTable(rig.memory, { dte, iova, access: 0 });
  for (let i = 0; i < count && walk.ok; i++) {
    out.push({
      rid: RID,
      shift: walk.shift,
      iovaBase: walk.iovaBase,
      physBase: walk.physBase,
      perms: walk.perms,
      domain: DOMAIN,
    });
    walk = walkPageTable(rig.memory, { dte, iova: walk.iovaBase + 2 ** walk.shift, access: 0 });
  }
  return out;
}

Deno.test("fill: leaves read from their table equal full walks, whatever the entries hold", () => {
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 40; round++) {
    const rig = new Rig();
    const root = rig.table();
    rig.writeDte(RID, {
      valid: true,
      translationValid: true,
      mode: 3,
      root,
      readable: true,
      writable: round % 5 !== 0,
      domainId: DOMAIN,
    });
    const base = 0x4000_0000 + random(4) * 0x20_0000;
    // 1100 pages across three level-1 tables: mostly plain leaves, some
    // read-only, a few holes, reserved bits, NextLevel 7 or a bad NextLevel.
    for (let i = 0; i < 1100; i++) {
      const kind = random(100);
      const iova = base + i * PAGE;
      const phys = DATA + random(2000) * PAGE;
      if (kind < 3) continue; // hole
      const leaf = kind < 6
        ? entry({ address: phys, extra: 1n << 55n }) // reserved bit
        : kind < 8
        ? entry({ address: phys, next: 3 }) // NextLevel above the leaf level
        : entry({ address: phys, write: kind % 2 === 0 });
      const tables = rig.path(root, 3, iova);
      rig.setEntry(tables[1]!, 1, iova, leaf);
    }
    // Read-only directory entry for the second 2 MiB region.
    if (round % 3 === 0) {
      const tables = rig.path(root, 3, base + 0x20_0000);
      const at = tables[2]! + (Math.floor((base + 0x20_0000) / 0x20_0000) % 512) * 8;
      rig.memory.write64(at, rig.memory.read64(at) & ~(1n << 62n));
    }
    for (const start of [0, 1, 511, 512, 700]) {
      const iova = base + start * PAGE;
      const fast = rig.iommu.fill(RID, iova, 600).translations;
      deepEqual(fast, reference(rig, iova, 600), `round ${round}, start ${start}`);
      deepEqual(rig.iommu.fill(RID, iova).translations, reference(rig, iova, 32));
    }
    deepEqual(rig.events(), [], "fills never log");
  }
});

Deno.test("prefetch hints: 8 MiB of scattered pages through the IOMMU, read and written, miss rarely", async () => {
  await using machine = await Machine.create({
    ramSize: 256 * 1024 * 1024,
    devices: [
      { type: "amd-iommu", addr: "01.0" },
      { type: "piix3-ide", id: "ide", addr: "02.0" },
      { type: "ide-hd", properties: { drive: "d0", bus: "ide.0" } },
    ],
    drives: [{ id: "d0", size: 64 * 1024 * 1024 }],
  });
  const r = await machine.runGuest(new URL("../fixtures/ide_iommu_guest.ts", import.meta.url), {
    options: { steps: "scatter" },
  }) as { scatter: { same: boolean; back: boolean } };
  deepEqual([r.scatter.same, r.scatter.back], [true, true]);
  const ide = machine.iommuCounters()!.devices.find((d) => d.id === "ide")!;
  // 2048 scattered pages read and written, and 8 MiB through the driver's own
  // buffer both ways: 8192 page translations, 256 misses at one per 32 pages
  // (the neighbours a miss fills). Hints ahead of each chunk leave few.
  ok(ide.misses < 128, `${ide.misses} misses`);
  ok(ide.fills >= 2048, `${ide.fills} fills`);
  equal(ide.faults, 0);
});
