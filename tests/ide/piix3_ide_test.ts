// The PIIX3 IDE model in one thread: descriptor, registers, IDENTIFY, PIO,
// non-data commands, resets, interrupts and every ATA error the model reports.
import { deepEqual, equal, ok } from "node:assert/strict";
import { AtaCommand, AtaError, AtaStatus, identifyDevice } from "../../src/devices/ata_disk.ts";
import { BmStatus } from "../../src/devices/ide_bus_master.ts";
import { IdeControl, PIIX3_IDE_DESCRIPTOR } from "../../src/devices/piix3_ide.ts";
import { deviceType, PLANNED_DEVICE_TYPES } from "../../src/devices/registry.ts";
import { MemoryDisk } from "../../src/storage/memory_disk.ts";
import {
  cmdBase,
  FailingDisk,
  GatedDisk,
  ideRig,
  MIB,
  pattern,
  pioRead,
  pioWrite,
  setTaskFile,
} from "./ide_rig.ts";

const READY = AtaStatus.DRDY | AtaStatus.DSC; // 0x50
const ABORTED = AtaStatus.DRDY | AtaStatus.ERR; // 0x41

function identifyWords(t: ReturnType<typeof ideRig>, bus = 0, unit = 0): number[] {
  const base = cmdBase(bus);
  t.outb(base + 6, 0xa0 | (unit << 4));
  t.outb(base + 7, AtaCommand.IDENTIFY_DEVICE);
  equal(t.inb(base + 7), READY | AtaStatus.DRQ);
  const words = Array.from({ length: 256 }, () => t.inw(base));
  equal(t.inb(base + 7), READY);
  return words;
}

function ataString(words: number[], at: number, count: number): string {
  return words.slice(at, at + count).map((w) => String.fromCharCode(w >> 8, w & 0xff)).join("");
}

// ---------------------------------------------------------------------------
// Description

Deno.test("piix3-ide: descriptor as QEMU's piix3-ide, registered with two disk buses", () => {
  const d = PIIX3_IDE_DESCRIPTOR;
  equal(d.type, "piix3-ide");
  equal(d.pci.vendorId, 0x8086);
  equal(d.pci.deviceId, 0x7010);
  equal(d.pci.classCode, 0x010180);
  equal(d.pci.interruptPin, 0);
  equal(d.pci.status, 0x0280);
  deepEqual(d.pci.bars, [{ index: 4, kind: "pio", size: 16 }]);
  deepEqual(d.regions.map((r) => [r.kind, r.size, r.fixedBase ?? `bar${r.bar}`]), [
    ["pio", 8, 0x1f0],
    ["pio", 1, 0x3f6],
    ["pio", 8, 0x170],
    ["pio", 1, 0x376],
    ["pio", 16, "bar4"],
  ]);
  deepEqual(d.irqs, [{ kind: "isa", line: 14 }, { kind: "isa", line: 15 }]);
  const type = deviceType("piix3-ide");
  equal(type?.diskBuses, 2);
  equal(type?.descriptor, d);
  ok(!PLANNED_DEVICE_TYPES.includes("piix3-ide") && !PLANNED_DEVICE_TYPES.includes("ide-hd"));
});

// ---------------------------------------------------------------------------
// Registers

Deno.test("piix3-ide: reset values with a disk on the primary master, empty secondary", () => {
  const t = ideRig();
  deepEqual([1, 2, 3, 4, 5, 6, 7].map((r) => t.inb(0x1f0 + r)), [0, 1, 1, 0, 0, 0xa0, READY]);
  equal(t.inb(0x3f6), READY);
  deepEqual([1, 2, 3, 4, 5, 6, 7].map((r) => t.inb(0x170 + r)), [0, 0, 0, 0, 0, 0, 0]);
  equal(t.inb(0x376), 0);
  equal(t.inb(0x1f0), 0, "a byte read of the data port (a word read, as QEMU)");
  equal(t.inw(0x1f0), 0, "no data phase");
  equal(t.inl(0x1f0), 0);
  deepEqual(Array.from({ length: 16 }, (_, i) => t.inb(0xc000 + i)), [
    0,
    0xff,
    0,
    0xff,
    0,
    0,
    0,
    0,
    0,
    0xff,
    0,
    0xff,
    0,
    0,
    0,
    0,
  ]);
  equal(t.inl(0xc000), 0xffff_ffff, "BMIC/BMIS take byte accesses only (as QEMU)");
  equal(t.inw(0xc002), 0xffff);
  equal(t.inw(0xc003), 0x00ff, "an unaligned word is two bytes");
  deepEqual(t.env.levels, [false, false]);
});

Deno.test("piix3-ide: bus-master registers: BMIC bits 0 and 3, BMIS RW1C and bits 5-6, BMIDTP dword aligned", () => {
  const t = ideRig();
  t.outb(0xc000, 0xff);
  equal(t.inb(0xc000), 0x09);
  equal(t.inb(0xc002) & BmStatus.ACTIVE, BmStatus.ACTIVE, "Start sets Active");
  t.outb(0xc000, 0x00);
  equal(t.inb(0xc002), 0, "Stop clears Active");
  t.outb(0xc002, 0xff);
  equal(t.inb(0xc002), 0x60, "only the drive-capable bits are writable");
  t.outl(0xc004, 0xffff_ffff);
  equal(t.inl(0xc004), 0xffff_fffc);
  t.outb(0xc005, 0x12);
  equal(t.inl(0xc004), 0xffff_12fc, "byte writes update one byte");
  t.outw(0xc006, 0x3456);
  equal(t.inw(0xc006), 0x3456);
  equal(t.inb(0xc00c), 0, "the secondary channel's registers are separate");
  t.outl(0xc008, 0x0060_0009); // a dword write to BMIC/BMIS is ignored (as QEMU)
  equal(t.inb(0xc008), 0);
  t.outw(0xc00a, 0x0060);
  equal(t.inb(0xc00a), 0);
});

Deno.test("piix3-ide: task-file writes reach both drives, reads come from the selected one", () => {
  const t = ideRig({ disks: [{ unit: 0 }, { unit: 1, size: 2 * MIB }] });
  t.outb(0x1f2, 0x12);
  t.outb(0x1f3, 0x34);
  t.outb(0x1f6, 0x10); // select the slave
  equal(t.inb(0x1f6), 0xb0, "bits 7 and 5 read as 1");
  deepEqual([t.inb(0x1f2), t.inb(0x1f3)], [0x12, 0x34]);
  t.outb(0x1f6, 0x00);
  deepEqual([t.inb(0x1f2), t.inb(0x1f3)], [0x12, 0x34]);
  // IDENTIFY on each returns its own capacity.
  const w0 = identifyWords(t, 0, 0);
  const w1 = identifyWords(t, 0, 1);
  equal(w0[60], (4 * MIB / 512) & 0xffff);
  equal(w1[60], (2 * MIB / 512) & 0xffff);
  equal(ataString(w0, 10, 10).trim(), "QM00013");
  equal(ataString(w1, 10, 10).trim(), "QM00014");
});

Deno.test("piix3-ide: an absent slave reads status and error 0 and ignores commands", () => {
  const t = ideRig();
  t.outb(0x1f6, 0xb0);
  t.outb(0x1f2, 0x55);
  equal(t.inb(0x1f7), 0);
  equal(t.inb(0x3f6), 0);
  equal(t.inb(0x1f1), 0);
  equal(t.inb(0x1f2), 0x55, "the slot latches task-file writes");
  t.outb(0x1f7, AtaCommand.IDENTIFY_DEVICE);
  equal(t.inb(0x1f7), 0);
  equal(t.env.raises[0], 0);
  t.outb(0x1f6, 0xa0);
  equal(t.inb(0x1f7), READY);
});

Deno.test("piix3-ide: HOB selects the previous values of the LBA48 registers; any write clears it", () => {
  const t = ideRig();
  for (const [reg, a, b] of [[2, 0x01, 0x02], [3, 0x11, 0x12], [4, 0x21, 0x22], [5, 0x31, 0x32]]) {
    t.outb(0x1f0 + reg!, a!);
    t.outb(0x1f0 + reg!, b!);
  }
  t.outb(0x1f1, 0x44);
  t.outb(0x1f1, 0x45);
  t.outb(0x3f6, IdeControl.HOB);
  deepEqual([1, 2, 3, 4, 5].map((r) => t.inb(0x1f0 + r)), [0x44, 0x01, 0x11, 0x21, 0x31]);
  t.outb(0x1f2, 0x02); // clears HOB (and shifts again)
  deepEqual([2, 3].map((r) => t.inb(0x1f0 + r)), [0x02, 0x12]);
});

Deno.test("piix3-ide: word accesses to byte registers are split into bytes", () => {
  const t = ideRig();
  t.outw(0x1f2, 0x3412);
  deepEqual([t.inb(0x1f2), t.inb(0x1f3)], [0x12, 0x34]);
  equal(t.inw(0x1f2), 0x3412);
  equal(t.inw(0x1f6), (READY << 8) | 0xa0);
  equal(t.inl(0x1f4), 0xffff_ffff, "only the data port takes dwords (as QEMU)");
  t.outl(0x1f2, 0x11223344);
  equal(t.inb(0x1f2), 0x12);
  // A byte read of the data port consumes a word; a byte write is ignored.
  t.outb(0x1f6, 0xa0);
  t.outb(0x1f7, AtaCommand.IDENTIFY_DEVICE);
  equal(t.inb(0x1f0), 0x40);
  t.outb(0x1f0, 0x99);
  equal(t.inw(0x1f0), 8, "word 1: cylinders of a 4 MiB disk");
});

// ---------------------------------------------------------------------------
// IDENTIFY DEVICE

Deno.test("IDENTIFY DEVICE: strings from the ide-hd properties, sizes, DMA modes, features", () => {
  const sectors = 0x1234_5678; // beyond LBA28: words 60-61 saturate
  const t = ideRig({
    disks: [{
      backend: new MemoryDisk(sectors * 512),
      properties: { serial: "SN-42", model: "DMAWORKS TEST DISK", ver: "1.2" },
    }],
  });
  const w = identifyWords(t);
  equal(t.env.raises[0], 1, "one interrupt when the data is ready");
  equal(w[0], 0x0040);
  equal(ataString(w, 10, 10), "SN-42".padEnd(20));
  equal(ataString(w, 23, 4), "1.2".padEnd(8));
  equal(ataString(w, 27, 20), "DMAWORKS TEST DISK".padEnd(40));
  equal(w[47], 0, "no READ/WRITE MULTIPLE");
  equal(w[49], 0x0b00, "IORDY, LBA, DMA");
  equal(w[60]! | (w[61]! << 16), 0x0fff_ffff);
  deepEqual(w.slice(100, 104), [0x5678, 0x1234, 0, 0]);
  equal(w[62], 0x07);
  equal(w[63], 0x07);
  equal(w[88], 0x203f, "UDMA 0-5 supported, 5 selected");
  equal(w[82], 0x4020);
  equal(w[83], 0x7400, "FLUSH CACHE, FLUSH CACHE EXT, LBA48");
  equal(w[85], 0x4020, "write cache enabled");
  equal(w[86], 0x3400);
  deepEqual([w[1], w[3], w[6]], [16383, 16, 63]);
  deepEqual(
    identifyDevice(sectors, { serial: "SN-42", model: "DMAWORKS TEST DISK", firmware: "1.2" }),
    Uint16Array.from(w),
  );
});

Deno.test("IDENTIFY DEVICE: QEMU's defaults; 32-bit data reads; non-ASCII replaced", () => {
  const t = ideRig({ disks: [{ bus: 1, unit: 1, properties: { model: "DISK\u00e9" } }] });
  t.outb(0x176, 0xb0);
  t.outb(0x177, AtaCommand.IDENTIFY_DEVICE);
  const dwords = Array.from({ length: 128 }, () => t.inl(0x170));
  equal(t.inb(0x177), READY);
  const words = dwords.flatMap((d) => [d & 0xffff, d >>> 16]);
  equal(ataString(words, 10, 10).trim(), "QM00016");
  equal(ataString(words, 23, 4).trim(), "2.5+");
  equal(ataString(words, 27, 20).trim(), "DISK?");
  equal(t.env.raises[1], 1);
  equal(t.env.raises[0], 0);
});

// ---------------------------------------------------------------------------
// PIO

Deno.test("READ/WRITE SECTORS: data, an interrupt per sector, LBA registers advance", async () => {
  const t = ideRig();
  const data = pattern(3 * 512, 3);
  await pioWrite(t, { lba: 0x1a05, data });
  equal(t.inb(0x1f7), READY);
  equal(t.env.raises[0], 3, "one interrupt per sector written");
  deepEqual([t.inb(0x1f3), t.inb(0x1f4), t.inb(0x1f5), t.inb(0x1f2)], [0x08, 0x1a, 0x00, 0]);
  const disk = new Uint8Array(3 * 512);
  await t.backends.get("0.0")!.read(0x1a05 * 512, disk);
  deepEqual(disk, data);
  const back = await pioRead(t, { lba: 0x1a05, count: 3 });
  deepEqual(back, data);
  equal(t.inb(0x1f7), READY, "no DRQ after the last sector");
  equal(t.env.raises[0], 6);
});

Deno.test("READ/WRITE SECTORS EXT: 48-bit addresses, 32-bit data port", async () => {
  const t = ideRig({ disks: [{ backend: new MemoryDisk(2 ** 41) }] }); // 2 TiB, sparse
  const lba = 2 ** 31 + 5;
  const data = pattern(1024, 9);
  setTaskFile(t, { lba, count: 2, lba48: true });
  t.outb(0x1f7, AtaCommand.WRITE_SECTORS_EXT);
  const view = new DataView(data.buffer);
  for (let s = 0; s < 2; s++) {
    await t.env.settle();
    equal(t.inb(0x1f7) & AtaStatus.DRQ, AtaStatus.DRQ);
    for (let i = 0; i < 512; i += 4) t.outl(0x1f0, view.getUint32(s * 512 + i, true));
  }
  await t.env.settle();
  equal(t.inb(0x1f7), READY);
  t.outb(0x3f6, IdeControl.HOB);
  equal(t.inb(0x1f3), 0x80, "LBA bits 31:24 read back with HOB");
  t.outb(0x3f6, 0);
  deepEqual(await pioRead(t, { lba, count: 2, lba48: true }), data);
});

Deno.test("READ SECTORS: count 0 means 256 (LBA28) and 65536 (LBA48)", async () => {
  const t = ideRig({ disks: [{ size: 64 * MIB }] });
  const data = await pioRead(t, { lba: 0, count: 0 });
  equal(data.length, 256 * 512);
  equal(t.inb(0x1f7), READY);
  setTaskFile(t, { lba: 0, count: 0, lba48: true });
  t.outb(0x1f7, AtaCommand.READ_SECTORS_EXT);
  await t.env.settle();
  for (let i = 0; i < 256; i++) t.inw(0x1f0);
  await t.env.settle();
  // The second sector is loaded: 65534 left, and the count registers show it.
  equal(t.inb(0x1f2), 0xfe);
  t.outb(0x3f6, IdeControl.HOB);
  equal(t.inb(0x1f2), 0xff);
  t.outb(0x3f6, IdeControl.SRST);
  t.outb(0x3f6, 0);
  equal(t.inb(0x1f7), READY);
});

Deno.test("PIO data-phase violations: wrong direction, beyond the block, byte access, no DRQ", async () => {
  const t = ideRig();
  // Writes while the drive sends data are ignored and do not advance.
  t.outb(0x1f6, 0xa0);
  t.outb(0x1f7, AtaCommand.IDENTIFY_DEVICE);
  t.outw(0x1f0, 0x1234);
  t.outb(0x1f0, 0x12);
  equal(t.inw(0x1f0), 0x0040, "the first word is still word 0");
  for (let i = 1; i < 256; i++) t.inw(0x1f0);
  equal(t.inw(0x1f0), 0, "past the block: 0, no data phase");
  // Reads while the drive expects data return 0 and do not advance.
  await t.backends.get("0.0")!.write(0, new Uint8Array(512).fill(0x77));
  setTaskFile(t, { lba: 0, count: 1, lba48: false });
  t.outb(0x1f7, AtaCommand.WRITE_SECTORS);
  equal(t.inw(0x1f0), 0);
  equal(t.inl(0x1f0), 0);
  for (let i = 0; i < 256; i++) t.outw(0x1f0, 0x0101);
  t.outw(0x1f0, 0xffff); // beyond the block: the drive is busy, ignored
  await t.env.settle();
  equal(t.inb(0x1f7), READY);
  const sector = new Uint8Array(512);
  await t.backends.get("0.0")!.read(0, sector);
  ok(sector.every((b) => b === 1));
  // Data-port accesses without a data phase do nothing.
  t.outw(0x1f0, 0x5555);
  equal(t.inw(0x1f0), 0);
  equal(t.inb(0x1f7), READY);
});

Deno.test("commands and task-file writes while BSY or DRQ are ignored", async () => {
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ backend: gated }] });
  gated.closeGate();
  setTaskFile(t, { lba: 8, count: 1, lba48: false });
  t.outb(0x1f7, AtaCommand.READ_SECTORS);
  t.env.start();
  await Promise.resolve();
  equal(t.inb(0x1f7) & AtaStatus.BSY, AtaStatus.BSY);
  t.outb(0x1f3, 0x99); // ignored while busy
  t.outb(0x1f7, AtaCommand.IDENTIFY_DEVICE); // ignored
  t.outb(0x1f6, 0xb0); // cannot switch drives mid-command
  gated.open();
  await t.env.settle();
  equal(t.inb(0x1f7), READY | AtaStatus.DRQ);
  equal(t.inb(0x1f6), 0xe0);
  t.outb(0x1f7, AtaCommand.FLUSH_CACHE); // DRQ: ignored
  t.outb(0x1f2, 0x42); // ignored
  equal(t.inb(0x1f2), 0);
  for (let i = 0; i < 256; i++) t.inw(0x1f0);
  equal(t.inb(0x1f3), 9, "the LBA advanced past sector 8, not to 0x99");
  deepEqual(gated.ops, ["read 4096 512"]);
});

// ---------------------------------------------------------------------------
// Errors

Deno.test("every command the drive does not implement ends with ABRT and an interrupt", () => {
  const t = ideRig();
  const implemented = new Set<number>(Object.values(AtaCommand));
  for (let command = 0; command < 256; command++) {
    if (implemented.has(command)) continue;
    const before = t.env.raises[0]!;
    t.outb(0x1f7, command);
    equal(t.inb(0x1f1), AtaError.ABRT, `command 0x${command.toString(16)}`);
    equal(t.inb(0x1f7), ABORTED);
    equal(t.env.raises[0], before + 1);
  }
  equal(t.env.queued, 0);
});

Deno.test("an LBA range outside the disk ends with IDNF before any data moves", async () => {
  const sectors = (4 * MIB) / 512;
  const t = ideRig();
  const cases: Array<[number, number, number, boolean]> = [
    [AtaCommand.READ_SECTORS, sectors, 1, false],
    [AtaCommand.READ_SECTORS, sectors - 1, 2, false],
    [AtaCommand.WRITE_SECTORS, sectors - 1, 0, false], // 0 = 256 sectors
    [AtaCommand.READ_DMA, 0x0fff_ffff, 1, false],
    [AtaCommand.WRITE_DMA, sectors, 1, false],
    [AtaCommand.READ_SECTORS_EXT, 2 ** 40, 1, true],
    [AtaCommand.READ_DMA_EXT, 0, 0, true], // 0 = 65536 sectors: 32 MiB > 4 MiB
    [AtaCommand.WRITE_DMA_EXT, sectors - 8, 9, true],
    [AtaCommand.WRITE_SECTORS_EXT, 2 ** 48 - 1, 1, true],
  ];
  for (const [command, lba, count, lba48] of cases) {
    setTaskFile(t, { lba, count, lba48 });
    t.outb(0x1f7, command);
    equal(t.inb(0x1f1), AtaError.IDNF, `0x${command.toString(16)} at ${lba}`);
    equal(t.inb(0x1f7), ABORTED);
  }
  await t.env.settle();
  equal(t.env.queued, 0);
  // CHS sector 0 does not exist either.
  t.outb(0x1f6, 0xa0);
  t.outb(0x1f2, 1);
  t.outb(0x1f3, 0);
  t.outb(0x1f7, AtaCommand.READ_SECTORS);
  equal(t.inb(0x1f1), AtaError.IDNF);
});

Deno.test("CHS addressing uses the geometry IDENTIFY reports", async () => {
  const t = ideRig();
  const data = pattern(512, 31);
  await t.backends.get("0.0")!.write(((1 * 16 + 2) * 63 + 4) * 512, data);
  t.outb(0x1f6, 0xa2); // head 2, CHS
  t.outb(0x1f2, 1);
  t.outb(0x1f3, 5); // sector 5 (1-based)
  t.outb(0x1f4, 1); // cylinder 1
  t.outb(0x1f5, 0);
  t.outb(0x1f7, AtaCommand.READ_SECTORS);
  await t.env.settle();
  const words = Array.from({ length: 256 }, () => t.inw(0x1f0));
  deepEqual(new Uint8Array(Uint16Array.from(words).buffer), data);
  equal(t.inb(0x1f3), 6, "the sector number advanced");
});

Deno.test("a read-only disk refuses writes with ABRT and logs why; reads work", async () => {
  const t = ideRig({ disks: [{ readonly: true }] });
  for (
    const command of [
      AtaCommand.WRITE_SECTORS,
      AtaCommand.WRITE_SECTORS_EXT,
      AtaCommand.WRITE_DMA,
      AtaCommand.WRITE_DMA_EXT,
    ]
  ) {
    setTaskFile(t, { lba: 0, count: 1, lba48: command === 0x34 || command === 0x35 });
    t.outb(0x1f7, command);
    equal(t.inb(0x1f7), ABORTED);
    equal(t.inb(0x1f1), AtaError.ABRT);
  }
  ok(t.env.logs.some((l) => /read-only/.test(l)));
  equal((await pioRead(t, { lba: 0, count: 1 })).length, 512);
  t.outb(0x1f7, AtaCommand.FLUSH_CACHE);
  await t.env.settle();
  equal(t.inb(0x1f7), READY);
});

Deno.test("a disk that fails: reads end with UNC, writes and flushes with ABRT, the model survives", async () => {
  const t = ideRig({ disks: [{ backend: new FailingDisk(4 * MIB) }] });
  setTaskFile(t, { lba: 7, count: 2, lba48: false });
  t.outb(0x1f7, AtaCommand.READ_SECTORS);
  await t.env.settle();
  equal(t.inb(0x1f7), ABORTED);
  equal(t.inb(0x1f1), AtaError.UNC);
  equal(t.inb(0x1f3), 7, "the LBA registers point at the failed sector");
  setTaskFile(t, { lba: 7, count: 1, lba48: false });
  t.outb(0x1f7, AtaCommand.WRITE_SECTORS);
  for (let i = 0; i < 256; i++) t.outw(0x1f0, i);
  await t.env.settle();
  equal(t.inb(0x1f7), ABORTED);
  equal(t.inb(0x1f1), AtaError.ABRT);
  t.outb(0x1f7, AtaCommand.FLUSH_CACHE_EXT);
  await t.env.settle();
  equal(t.inb(0x1f7), ABORTED);
  equal(t.inb(0x1f1), AtaError.ABRT);
  ok(t.env.logs.filter((l) => /Input\/output error/.test(l)).length >= 3);
  // IDENTIFY does not touch the disk and still works.
  identifyWords(t);
});

Deno.test("a disk whose image cannot be opened aborts every command and says why", () => {
  const t = ideRig({ disks: [{ openError: "Cannot open disk image 'x.img': Permission denied" }] });
  ok(
    t.env.logs.some((l) =>
      /drive 'd0': Cannot open disk image 'x\.img': Permission denied/.test(l)
    ),
  );
  equal(t.inb(0x1f7), READY, "the drive is there");
  for (const command of [AtaCommand.IDENTIFY_DEVICE, AtaCommand.READ_DMA, AtaCommand.FLUSH_CACHE]) {
    t.outb(0x1f7, command);
    equal(t.inb(0x1f7), ABORTED);
    equal(t.inb(0x1f1), AtaError.ABRT);
  }
  ok(t.env.logs.some((l) => /no usable image/.test(l)));
  // A hostile guest cannot flood the log.
  for (let i = 0; i < 100; i++) t.outb(0x1f7, AtaCommand.READ_DMA);
  ok(t.env.logs.length < 25);
});

// ---------------------------------------------------------------------------
// FLUSH CACHE, SET FEATURES

Deno.test("FLUSH CACHE completes only after the disk's flush resolved", async () => {
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ backend: gated }] });
  for (const command of [AtaCommand.FLUSH_CACHE, AtaCommand.FLUSH_CACHE_EXT]) {
    gated.closeGate();
    const before = t.env.raises[0]!;
    t.outb(0x1f7, command);
    const settled = t.env.settle();
    await Promise.resolve();
    equal(t.inb(0x3f6) & AtaStatus.BSY, AtaStatus.BSY, "busy while the flush runs");
    equal(t.env.raises[0], before, "no interrupt yet");
    gated.open();
    await settled;
    equal(t.inb(0x1f7), READY);
    equal(t.env.raises[0], before + 1);
  }
  deepEqual(gated.ops, ["flush", "flushed", "flush", "flushed"]);
});

Deno.test("SET FEATURES: transfer modes update IDENTIFY, unsupported ones and subcommands abort", async () => {
  const t = ideRig();
  const setFeatures = (feature: number, count = 0) => {
    t.outb(0x1f1, feature);
    t.outb(0x1f2, count);
    t.outb(0x1f7, AtaCommand.SET_FEATURES);
    return [t.inb(0x1f7), t.inb(0x1f1)];
  };
  deepEqual(setFeatures(0x03, 0x44), [READY, 0]); // UDMA 4
  let w = identifyWords(t);
  deepEqual([w[62], w[63], w[88]], [0x07, 0x07, 0x103f]);
  deepEqual(setFeatures(0x03, 0x22), [READY, 0]); // MWDMA 2
  w = identifyWords(t);
  deepEqual([w[62], w[63], w[88]], [0x07, 0x0407, 0x3f]);
  deepEqual(setFeatures(0x03, 0x0c), [READY, 0]); // PIO 4
  deepEqual(setFeatures(0x03, 0x46), [ABORTED, AtaError.ABRT], "UDMA 6 is not supported");
  deepEqual(setFeatures(0x03, 0x23), [ABORTED, AtaError.ABRT], "MWDMA 3 does not exist");
  deepEqual(setFeatures(0x03, 0x0d), [ABORTED, AtaError.ABRT], "PIO 5");
  deepEqual(setFeatures(0x03, 0x80), [ABORTED, AtaError.ABRT]);
  for (const f of [0xaa, 0x55, 0xcc, 0x66, 0x05, 0x85, 0x42, 0xc2]) {
    deepEqual(setFeatures(f), [READY, 0]);
  }
  deepEqual(setFeatures(0x77), [ABORTED, AtaError.ABRT]);
  // Write cache off: flushes (as QEMU), IDENTIFY word 85 follows.
  t.outb(0x1f1, 0x82);
  t.outb(0x1f7, AtaCommand.SET_FEATURES);
  await t.env.settle();
  equal(t.inb(0x1f7), READY);
  equal(identifyWords(t)[85], 0x4000);
  deepEqual(setFeatures(0x02), [READY, 0]);
  equal(identifyWords(t)[85], 0x4020);
});

Deno.test("with the write cache disabled a write completes only after a flush", async () => {
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ backend: gated }] });
  t.outb(0x1f1, 0x82);
  t.outb(0x1f7, AtaCommand.SET_FEATURES);
  await t.env.settle();
  gated.ops.length = 0;
  await pioWrite(t, { lba: 0, data: pattern(1024, 1) });
  deepEqual(gated.ops, ["write 0 512", "write 512 512", "flush", "flushed"]);
});

// ---------------------------------------------------------------------------
// Reset and interrupts

Deno.test("SRST: busy while asserted, signature and diagnostic code after, no interrupt", async () => {
  const t = ideRig({ disks: [{ unit: 0 }, { unit: 1 }] });
  setTaskFile(t, { lba: 0x123456, count: 9, lba48: false });
  t.outb(0x1f1, 0x03);
  t.outb(0x1f7, AtaCommand.IDENTIFY_DEVICE);
  equal(t.env.raises[0], 1);
  t.outb(0x3f6, IdeControl.SRST | IdeControl.NIEN);
  equal(t.inb(0x3f6), AtaStatus.BSY);
  deepEqual(t.env.levels, [false, false]);
  t.outb(0x3f6, 0);
  equal(t.inb(0x1f7), READY);
  deepEqual([1, 2, 3, 4, 5, 6].map((r) => t.inb(0x1f0 + r)), [0x01, 1, 1, 0, 0, 0xa0]);
  equal(t.inw(0x1f0), 0, "the IDENTIFY data phase is gone");
  t.outb(0x1f6, 0xb0);
  equal(t.inb(0x1f7), READY, "the slave was reset too");
  equal(t.inb(0x1f1), 0x01);
  equal(t.env.raises[0], 1, "no interrupt from the reset");
  await t.env.settle();
});

Deno.test("SRST during a PIO read drops the read's completion", async () => {
  const gated = new GatedDisk(new MemoryDisk(4 * MIB));
  const t = ideRig({ disks: [{ backend: gated }] });
  gated.closeGate();
  setTaskFile(t, { lba: 0, count: 1, lba48: false });
  t.outb(0x1f7, AtaCommand.READ_SECTORS);
  t.env.start();
  t.outb(0x3f6, IdeControl.SRST);
  t.outb(0x3f6, 0);
  gated.open();
  await t.env.settle();
  equal(t.inb(0x1f7), READY, "no DRQ from the read that was reset");
  equal(t.env.raises[0], 0);
});

Deno.test("INTRQ: status read acknowledges, alternate status does not, nIEN masks the line and BMIS", () => {
  const t = ideRig();
  t.outb(0x1f7, 0x00); // NOP: aborts, interrupts
  equal(t.env.levels[0], true);
  equal(t.inb(0xc002) & BmStatus.INTERRUPT, BmStatus.INTERRUPT, "BMIS Interrupt follows INTRQ");
  t.inb(0x3f6);
  equal(t.env.levels[0], true);
  t.inb(0x1f7);
  equal(t.env.levels[0], false);
  t.outb(0xc002, BmStatus.INTERRUPT);
  t.outb(0x3f6, IdeControl.NIEN);
  t.outb(0x1f7, 0x00);
  equal(t.env.levels[0], false, "masked");
  equal(t.inb(0xc002), 0, "BMIS Interrupt is not set while masked");
  t.outb(0x3f6, 0);
  equal(t.env.levels[0], true, "unmasking shows the pending interrupt");
  equal(t.env.raises[0], 2);
  t.outb(0x1f7, 0x00); // a command write acknowledges, then this one interrupts again
  equal(t.env.raises[0], 3);
  equal(t.env.levels[1], false, "the secondary channel's line is separate");
});
