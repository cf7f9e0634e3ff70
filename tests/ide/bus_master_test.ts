// Bus-master DMA of the PIIX3 model in one thread: the PRD walk and its three
// outcomes, hostile PRD tables, faults (IOMMU, MMIO, Bus Master Enable), the
// direction check, chunking, concurrency, stop and reset mid-transfer, and
// the interplay of mappings with invalidations.
import { deepEqual, equal, ok } from "node:assert/strict";
import { Permission } from "../../src/dma/mmu.ts";
import { AtaError, AtaStatus } from "../../src/devices/ata_disk.ts";
import { BmStatus } from "../../src/devices/ide_bus_master.ts";
import { IdeControl } from "../../src/devices/piix3_ide.ts";
import { MemoryDisk } from "../../src/storage/memory_disk.ts";
import { PAGE, PageMmu } from "../dma/page_mmu.ts";
import { FailingDisk, GatedDisk, ideRig, MIB, pattern, runDma, writePrd } from "./ide_rig.ts";

const READY = AtaStatus.DRDY | AtaStatus.DSC;
const ABORTED = AtaStatus.DRDY | AtaStatus.ERR;
const DONE = { bmis: BmStatus.INTERRUPT, status: READY, error: 0, irqs: 1 };
const BUS_ERROR = {
  bmis: BmStatus.ERROR | BmStatus.INTERRUPT,
  status: ABORTED,
  error: AtaError.ABRT,
  irqs: 1,
};

async function fillDisk(t: ReturnType<typeof ideRig>, key: string, data: Uint8Array, at = 0) {
  await t.backends.get(key)!.write(at, data);
}

async function diskBytes(t: ReturnType<typeof ideRig>, key: string, at: number, length: number) {
  const out = new Uint8Array(length);
  await t.backends.get(key)!.read(at, out);
  return out;
}

function isFilled(bytes: Uint8Array, value: number): boolean {
  return bytes.every((b) => b === value);
}

// ---------------------------------------------------------------------------
// Data, both directions, both command forms

Deno.test("READ DMA and WRITE DMA (+EXT): data both ways, one interrupt, BMIS Interrupt", async () => {
  const t = ideRig();
  const data = pattern(96 * 1024, 2);
  await fillDisk(t, "0.0", data, 8 * 512);
  writePrd(t.ram, 0x1000, [[0x10_0000, 0], [0x20_0000, 0x8000]]);
  deepEqual(await runDma(t, { lba: 8, count: 192, prd: 0x1000 }), DONE);
  deepEqual(t.ram.bytes.slice(0x10_0000, 0x11_0000), data.subarray(0, 0x10000));
  deepEqual(t.ram.bytes.slice(0x20_0000, 0x20_8000), data.subarray(0x10000));
  equal(t.inb(0x1f3), 200 & 0xff, "LBA advanced past the transfer (as QEMU)");
  equal(t.inb(0x1f2), 0);
  const fresh = pattern(96 * 1024, 3);
  t.ram.write(0x10_0000, fresh.subarray(0, 0x10000));
  t.ram.write(0x20_0000, fresh.subarray(0x10000));
  deepEqual(
    await runDma(t, { write: true, lba: 2 ** 12, count: 192, prd: 0x1000, lba48: true }),
    DONE,
  );
  deepEqual(await diskBytes(t, "0.0", 2 ** 12 * 512, fresh.length), fresh);
  t.ram.fill(0x10_0000, 0x10000, 0);
  deepEqual(
    await runDma(t, { lba: 2 ** 12, count: 128, prd: 0x1000, lba48: true, startFirst: true }),
    {
      ...DONE,
      bmis: BmStatus.ACTIVE | BmStatus.INTERRUPT,
    },
    "a PRD table longer than the transfer leaves Active set",
  );
  deepEqual(t.ram.bytes.slice(0x10_0000, 0x11_0000), fresh.subarray(0, 0x10000));
});

Deno.test("sector count 0 transfers 256 sectors (LBA28) and 65536 sectors (LBA48)", async () => {
  const t = ideRig({ ramSize: 48 * MIB, disks: [{ size: 40 * MIB }] });
  const data = pattern(32 * MIB, 5);
  await fillDisk(t, "0.0", data);
  const prd = Array.from(
    { length: 512 },
    (_, i) => [0x100_0000 + i * 0x10000, 0] as [number, number],
  );
  writePrd(t.ram, 0x1000, prd);
  deepEqual(await runDma(t, { lba: 0, count: 0, prd: 0x1000 }), { ...DONE, bmis: 5 });
  deepEqual(t.ram.bytes.slice(0x100_0000, 0x102_0000), data.subarray(0, 0x2_0000));
  equal(t.ram.read8(0x102_0000), 0, "exactly 128 KiB");
  deepEqual(await runDma(t, { lba: 0, count: 0, prd: 0x1000, lba48: true }), DONE);
  deepEqual(t.ram.bytes.slice(0x100_0000, 0x300_0000), data);
});

Deno.test("through an IOMMU: scattered 4 KiB pages, far more than 1024 of them, one command", async () => {
  const mmu = new PageMmu();
  const t = ideRig({ ramSize: 32 * MIB, dma: { mmu }, disks: [{ size: 32 * MIB }] });
  const pages = 2560; // 10 MiB; QEMU fails a command above 1024 scattered pages
  const iova = 0x4000_0000;
  const phys = (i: number) => 0x20_0000 + ((i * 37) % 4000) * PAGE;
  for (let i = 0; i < pages; i++) mmu.mapPage(iova / PAGE + i, phys(i) / PAGE);
  mmu.mapPage(0x3000_0000 / PAGE, 0x1000 / PAGE, Permission.Read); // the PRD table
  const data = pattern(pages * PAGE, 7);
  await fillDisk(t, "0.0", data);
  writePrd(
    t.ram,
    0x1000,
    Array.from({ length: pages / 16 }, (_, i) => [iova + i * 0x10000, 0] as [number, number]),
  );
  deepEqual(await runDma(t, { lba: 0, count: pages * 8, prd: 0x3000_0000, lba48: true }), DONE);
  for (let i = 0; i < pages; i++) {
    const got = t.ram.bytes.subarray(phys(i), phys(i) + PAGE);
    if (!got.every((b, j) => b === data[i * PAGE + j])) throw new Error(`Page ${i} differs`);
  }
  equal(mmu.pins.filter((p) => p.releases === 0).length, 0, "every mapping released");
  // And back: write the scattered pages to another place on the disk.
  deepEqual(
    await runDma(t, {
      write: true,
      lba: pages * 8,
      count: pages * 8,
      prd: 0x3000_0000,
      lba48: true,
    }),
    DONE,
  );
  deepEqual(await diskBytes(t, "0.0", pages * PAGE, pages * PAGE), data);
});

// ---------------------------------------------------------------------------
// The PRD walk

Deno.test("PRD outcomes: shorter (no data, no interrupt), equal, longer (Active stays set)", async () => {
  const t = ideRig();
  await fillDisk(t, "0.0", pattern(4096, 1));
  t.ram.fill(0x10000, 0x2000, 0xee);
  // Shorter: one sector asked, 256 bytes described. QEMU's "one sector short PRDT" test.
  writePrd(t.ram, 0x1000, [[0x10000, 256]]);
  deepEqual(await runDma(t, { lba: 0, count: 1, prd: 0x1000 }), {
    bmis: 0,
    status: READY,
    error: 0,
    irqs: 0,
  });
  ok(isFilled(t.ram.bytes.subarray(0x10000, 0x12000), 0xee), "nothing moved");
  // Shorter over several entries, for a write: the disk is untouched.
  writePrd(t.ram, 0x1000, [[0x10000, 512], [0x11000, 510]]);
  deepEqual(await runDma(t, { write: true, lba: 0, count: 2, prd: 0x1000 }), {
    bmis: 0,
    status: READY,
    error: 0,
    irqs: 0,
  });
  deepEqual(await diskBytes(t, "0.0", 0, 4096), pattern(4096, 1));
  // Equal.
  writePrd(t.ram, 0x1000, [[0x10000, 512], [0x11000, 512]]);
  deepEqual(await runDma(t, { lba: 0, count: 2, prd: 0x1000 }), DONE);
  // Longer.
  writePrd(t.ram, 0x1000, [[0x10000, 4096]]);
  deepEqual(await runDma(t, { lba: 0, count: 2, prd: 0x1000 }), {
    ...DONE,
    bmis: BmStatus.ACTIVE | BmStatus.INTERRUPT,
  });
  deepEqual(t.ram.bytes.slice(0x10000, 0x10400), pattern(4096, 1).subarray(0, 1024));
  ok(isFilled(t.ram.bytes.subarray(0x10400, 0x11000), 0xee), "only the transfer's bytes moved");
});

Deno.test("PRD entries: 0 means 64 KiB, bit 0 of address and count is ignored, sectors may span entries", async () => {
  const t = ideRig();
  const data = pattern(0x10000 + 1024, 4);
  await fillDisk(t, "0.0", data);
  writePrd(t.ram, 0x1000, [[0x10_0001, 0], [0x20_0000, 0x0101], [0x30_0000, 0x301]]);
  deepEqual(await runDma(t, { lba: 0, count: 130, prd: 0x1000 }), DONE);
  deepEqual(t.ram.bytes.slice(0x10_0000, 0x11_0000), data.subarray(0, 0x10000));
  deepEqual(t.ram.bytes.slice(0x20_0000, 0x20_0100), data.subarray(0x10000, 0x10100));
  deepEqual(t.ram.bytes.slice(0x30_0000, 0x30_0300), data.subarray(0x10100, 0x10400));
});

Deno.test("a PRD table without EOT ends at its 64 KiB boundary: no endless walk", async () => {
  const t = ideRig();
  // 8192 entries of 2 bytes, none with EOT: 16 KiB described, 32 KiB asked → short.
  writePrd(t.ram, 0x2_0000, Array.from({ length: 8192 }, () => [0x50_0000, 2, false] as const));
  deepEqual(await runDma(t, { lba: 0, count: 64, prd: 0x2_0000 }), {
    bmis: 0,
    status: READY,
    error: 0,
    irqs: 0,
  });
  // A table that starts 8 bytes before the boundary: one entry, then the table ends.
  writePrd(t.ram, 0x2_fff8, [[0x50_0000, 512, false], [0x60_0000, 512, true]]);
  await fillDisk(t, "0.0", pattern(1024, 6));
  deepEqual(await runDma(t, { lba: 0, count: 1, prd: 0x2_fff8 }), DONE);
  deepEqual(await runDma(t, { lba: 0, count: 2, prd: 0x2_fff8 }), {
    bmis: 0,
    status: READY,
    error: 0,
    irqs: 0,
  });
  // A table at 4 mod 8: entries straddle page boundaries.
  writePrd(t.ram, 0x3_0ffc, [[0x70_0000, 512], [0x71_0000, 512]]);
  deepEqual(await runDma(t, { lba: 0, count: 2, prd: 0x3_0ffc }), DONE);
  deepEqual(t.ram.bytes.slice(0x71_0000, 0x71_0200), pattern(1024, 6).subarray(512));
});

Deno.test("the BMIC direction must match the command", async () => {
  const t = ideRig();
  t.ram.fill(0x10000, 4096, 0xee);
  writePrd(t.ram, 0x1000, [[0x10000, 4096]]);
  deepEqual(await runDma(t, { lba: 0, count: 8, prd: 0x1000, toMemory: false }), BUS_ERROR);
  ok(isFilled(t.ram.bytes.subarray(0x10000, 0x11000), 0xee));
  deepEqual(
    await runDma(t, { write: true, lba: 0, count: 8, prd: 0x1000, toMemory: true }),
    BUS_ERROR,
  );
  ok(isFilled(await diskBytes(t, "0.0", 0, 4096), 0));
  equal(t.env.logs.filter((l) => /direction/.test(l)).length, 2);
});

// ---------------------------------------------------------------------------
// Faults

Deno.test("PRD table or buffer in MMIO (or beyond RAM): BMIS Error, ABRT, nothing moves", async () => {
  const t = ideRig(); // 16 MiB of RAM: 16 MiB … 4 GiB is the PCI hole
  writePrd(t.ram, 0x1000, [[0xfeb0_0000, 4096]]);
  deepEqual(await runDma(t, { lba: 0, count: 8, prd: 0x1000 }), BUS_ERROR);
  deepEqual(await runDma(t, { lba: 0, count: 8, prd: 0xfeb0_0000 }), BUS_ERROR, "table in MMIO");
  writePrd(t.ram, 0x1000, [[0xffff_f000, 0x2000]]); // runs past 4 GiB: outside RAM
  deepEqual(await runDma(t, { lba: 0, count: 16, prd: 0x1000 }), BUS_ERROR);
  ok(
    t.env.logs.some((l) => /PRD table fault: Cannot read IOVA 0xfeb00000: target is MMIO/.test(l)),
  );
  ok(t.env.logs.some((l) => /buffer fault: Cannot write IOVA 0xfeb00000/.test(l)));
});

Deno.test("IOMMU faults: an unmapped PRD table, a read-only buffer, a hole mid-transfer", async () => {
  const mmu = new PageMmu();
  const t = ideRig({ dma: { mmu } });
  mmu.mapPage(0x100, 0x1, Permission.Read); // PRD table at IOVA 0x100000 → phys 0x1000
  for (let i = 0; i < 4; i++) mmu.mapPage(0x200 + i, 0x10 + i);
  mmu.mapPage(0x300, 0x20, Permission.Read);
  const data = pattern(16384, 8);
  await fillDisk(t, "0.0", data);
  deepEqual(await runDma(t, { lba: 0, count: 8, prd: 0x50_0000 }), BUS_ERROR, "table unmapped");
  writePrd(t.ram, 0x1000, [[0x30_0000, 4096]]);
  deepEqual(await runDma(t, { lba: 0, count: 8, prd: 0x10_0000 }), BUS_ERROR, "read-only buffer");
  ok(isFilled(t.ram.bytes.subarray(0x20000, 0x21000), 0));
  // Pages 0-3 mapped, page 4 not: the first 16 KiB land, nothing after.
  t.ram.fill(0x15000, 0x1000, 0xee);
  writePrd(t.ram, 0x1000, [[0x20_0000, 0x8000]]);
  deepEqual(await runDma(t, { lba: 0, count: 64, prd: 0x10_0000 }), BUS_ERROR);
  deepEqual(t.ram.bytes.slice(0x10000, 0x14000), data);
  ok(isFilled(t.ram.bytes.subarray(0x15000, 0x16000), 0xee));
  equal(t.inb(0x1f3), 32, "the LBA registers point at the first sector not transferred");
  ok(t.env.logs.some((l) => /Cannot write IOVA 0x204000: no translation/.test(l)));
  equal(mmu.pins.filter((p) => p.releases === 0).length, 0);
});

Deno.test("WRITE DMA with a fault: only whole sectors read before it reach the disk, nothing else", async () => {
  const mmu = new PageMmu();
  const t = ideRig({ dma: { mmu }, model: { chunkSize: 4096 } });
  mmu.mapPage(0x100, 0x1, Permission.Read);
  mmu.mapPage(0x200, 0x10, Permission.Read);
  await fillDisk(t, "0.0", new Uint8Array(16384).fill(0x33));
  const data = pattern(4096, 12);
  t.ram.write(0x10000, data);
  // 4 KiB mapped, then 1 KiB + 256 bytes that fault: sectors 0-7 reach the disk.
  writePrd(t.ram, 0x1000, [[0x20_0000, 4096], [0x20_1000, 0x500]]);
  const r = await runDma(t, { write: true, lba: 0, count: 10, prd: 0x10_0000 });
  deepEqual(r, BUS_ERROR);
  deepEqual(await diskBytes(t, "0.0", 0, 4096), data);
  ok(
    isFilled(await diskBytes(t, "0.0", 4096, 8192), 0x33),
    "no zeros written for unreadable memory",
  );
  // A fault inside a sector: the partial sector is not written either.
  mmu.mapPage(0x201, 0x11, Permission.Read);
  writePrd(t.ram, 0x1000, [[0x20_0000, 0x0], [0x21_0000, 0x400]]); // 64 KiB: pages 2+ fault
  await fillDisk(t, "0.0", new Uint8Array(16384).fill(0x44));
  deepEqual(await runDma(t, { write: true, lba: 0, count: 130, prd: 0x10_0000 }), BUS_ERROR);
  ok(isFilled(await diskBytes(t, "0.0", 8192, 8192), 0x44));
});

Deno.test("Bus Master Enable clear: refused at the start, and mid-transfer between chunks", async () => {
  let bme = false;
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({
    dma: { busMaster: () => bme },
    disks: [{ backend: gated }],
    model: { chunkSize: 16384 },
  });
  await fillDisk(t, "0.0", pattern(65536, 9));
  writePrd(t.ram, 0x1000, [[0x10000, 0]]);
  deepEqual(await runDma(t, { lba: 0, count: 128, prd: 0x1000 }), BUS_ERROR);
  ok(t.env.logs.some((l) => /bus mastering disabled/.test(l)));
  bme = true;
  t.ram.fill(0x10000, 0x10000, 0xee);
  gated.closeGate();
  gated.onWait = () => {
    // The first chunk is being read: disable bus mastering, then let it finish.
    gated.onWait = undefined;
    bme = false;
    gated.open();
  };
  deepEqual(await runDma(t, { lba: 0, count: 128, prd: 0x1000 }), BUS_ERROR);
  deepEqual(t.ram.bytes.slice(0x10000, 0x14000), pattern(65536, 9).subarray(0, 16384));
  ok(isFilled(t.ram.bytes.subarray(0x14000, 0x20000), 0xee), "nothing after the first chunk");
});

Deno.test("a disk error during DMA: UNC for a read, ABRT for a write, no BMIS Error", async () => {
  const t = ideRig({ disks: [{ backend: new FailingDisk(4 * MIB) }] });
  writePrd(t.ram, 0x1000, [[0x10000, 4096]]);
  deepEqual(await runDma(t, { lba: 3, count: 8, prd: 0x1000 }), {
    bmis: BmStatus.INTERRUPT,
    status: ABORTED,
    error: AtaError.UNC,
    irqs: 1,
  });
  equal(t.inb(0x1f3), 3);
  deepEqual(await runDma(t, { write: true, lba: 3, count: 8, prd: 0x1000 }), {
    bmis: BmStatus.INTERRUPT,
    status: ABORTED,
    error: AtaError.ABRT,
    irqs: 1,
  });
  ok(t.env.logs.some((l) => /disk read failed: Input\/output error/.test(l)));
});

// ---------------------------------------------------------------------------
// Chunks: registers, stop, reset, concurrency, invalidation

Deno.test("a long transfer answers its registers between chunks", async () => {
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ backend: gated }], model: { chunkSize: 65536 } });
  writePrd(
    t.ram,
    0x1000,
    Array.from({ length: 16 }, (_, i) => [0x10_0000 + i * 0x10000, 0] as [number, number]),
  );
  const seen: number[][] = [];
  gated.onWait = () => {
    seen.push([t.inb(0xc002), t.inb(0x3f6), t.inw(0x1f0)]);
    t.outb(0x1f3, 0x77); // ignored: DRQ is set during the data phase
  };
  deepEqual(await runDma(t, { lba: 0, count: 2048, prd: 0x1000, lba48: true }), DONE);
  equal(seen.length, 16, "one disk read per chunk");
  deepEqual(seen[7], [BmStatus.ACTIVE, READY | AtaStatus.DRQ, 0]);
  equal(t.inb(0x1f3), 0, "LBA 2048");
});

Deno.test("clearing BMIC Start mid-transfer stops it after the chunk: ABRT, no more data", async () => {
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ backend: gated }], model: { chunkSize: 8192 } });
  await fillDisk(t, "0.0", pattern(65536, 13));
  t.ram.fill(0x10000, 0x10000, 0xee);
  writePrd(t.ram, 0x1000, [[0x10000, 0]]);
  gated.onWait = () => {
    gated.onWait = undefined;
    t.outb(0xc000, 0x08); // stop
  };
  const r = await runDma(t, { lba: 0, count: 128, prd: 0x1000 });
  deepEqual(r, { bmis: BmStatus.INTERRUPT, status: ABORTED, error: AtaError.ABRT, irqs: 1 });
  deepEqual(t.ram.bytes.slice(0x10000, 0x12000), pattern(65536, 13).subarray(0, 8192));
  ok(isFilled(t.ram.bytes.subarray(0x12000, 0x20000), 0xee));
});

Deno.test("SRST mid-transfer: the transfer stops, no completion interrupt, the drive is ready", async () => {
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ backend: gated }], model: { chunkSize: 8192 } });
  t.ram.fill(0x10000, 0x10000, 0xee);
  writePrd(t.ram, 0x1000, [[0x10000, 0]]);
  gated.onWait = () => {
    gated.onWait = undefined;
    t.outb(0x3f6, IdeControl.SRST);
    t.outb(0x3f6, 0);
  };
  const r = await runDma(t, { lba: 0, count: 128, prd: 0x1000 });
  equal(r.irqs, 0);
  equal(r.status, READY);
  equal(r.error, 1, "the diagnostic code");
  equal(r.bmis & BmStatus.INTERRUPT, 0);
  ok(isFilled(t.ram.bytes.subarray(0x12000, 0x20000), 0xee));
  // The channel works afterwards.
  writePrd(t.ram, 0x1000, [[0x10000, 512]]);
  deepEqual(await runDma(t, { lba: 0, count: 1, prd: 0x1000 }), DONE);
});

Deno.test("both channels move data at the same time", async () => {
  const a = new GatedDisk(new MemoryDisk(4 * MIB));
  const b = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ bus: 0, backend: a }, { bus: 1, backend: b }] });
  await a.inner.write(0, pattern(8192, 21));
  await b.inner.write(0, pattern(8192, 22));
  writePrd(t.ram, 0x1000, [[0x10000, 8192]]);
  writePrd(t.ram, 0x2000, [[0x20000, 8192]]);
  a.closeGate();
  b.closeGate();
  let both = false;
  const check = () => {
    if (a.waiting === 1 && b.waiting === 1) {
      both = true;
      a.open();
      b.open();
    }
  };
  a.onWait = check;
  b.onWait = check;
  const [ra, rb] = await Promise.all([
    runDma(t, { bus: 0, lba: 0, count: 16, prd: 0x1000 }),
    runDma(t, { bus: 1, lba: 0, count: 16, prd: 0x2000 }),
  ]);
  ok(both, "both disk reads were in flight at once");
  deepEqual([ra, rb], [DONE, DONE]);
  deepEqual(t.ram.bytes.slice(0x10000, 0x12000), pattern(8192, 21));
  deepEqual(t.ram.bytes.slice(0x20000, 0x22000), pattern(8192, 22));
  deepEqual(t.env.raises, [1, 1]);
});

Deno.test("a mapping held across a disk read is released only after it, even when invalidated", async () => {
  const mmu = new PageMmu({ coalesce: true });
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ dma: { mmu }, disks: [{ backend: gated }] });
  mmu.mapPage(0x100, 0x1, Permission.Read);
  for (let i = 0; i < 16; i++) mmu.mapPage(0x200 + i, 0x100 + i); // 64 KiB contiguous: direct
  await fillDisk(t, "0.0", pattern(65536, 14));
  writePrd(t.ram, 0x1000, [[0x20_0000, 0]]);
  let during: { invalidated: number; unreleased: number } | undefined;
  gated.onWait = () => {
    const n = mmu.invalidate(0x20_0000, 0x10000);
    during = { invalidated: n, unreleased: mmu.pins.filter((p) => p.releases === 0).length };
  };
  deepEqual(await runDma(t, { lba: 0, count: 128, prd: 0x10_0000 }), DONE);
  deepEqual(during, { invalidated: 1, unreleased: 1 }, "held while the read ran");
  equal(mmu.pins.filter((p) => p.releases === 0).length, 0, "released after it");
  deepEqual(t.ram.bytes.slice(0x10_0000, 0x11_0000), pattern(65536, 14));
});

Deno.test("scattered pages revoked during the disk read are re-translated: nothing lands in an unmapped page", async () => {
  const mmu = new PageMmu();
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ dma: { mmu }, disks: [{ backend: gated }] });
  mmu.mapPage(0x100, 0x1, Permission.Read);
  for (let i = 0; i < 8; i++) mmu.mapPage(0x200 + i, 0x100 + 2 * i); // scattered: bounce
  await fillDisk(t, "0.0", pattern(32768, 15));
  t.ram.fill(0x10_0000, 0x10000, 0xee);
  writePrd(t.ram, 0x1000, [[0x20_0000, 32768]]);
  gated.onWait = () => {
    // The guest unmaps page 5 and invalidates while the disk read runs.
    mmu.unmapPage(0x205);
    mmu.invalidate(0x20_5000, PAGE);
  };
  deepEqual(await runDma(t, { lba: 0, count: 64, prd: 0x10_0000 }), BUS_ERROR);
  deepEqual(t.ram.bytes.slice(0x10_0000, 0x10_1000), pattern(32768, 15).subarray(0, 4096));
  ok(isFilled(t.ram.bytes.subarray(0x10_a000, 0x10_b000), 0xee), "page 5's old frame untouched");
  ok(t.env.logs.some((l) => /Cannot write IOVA 0x205000: no translation/.test(l)));
});
