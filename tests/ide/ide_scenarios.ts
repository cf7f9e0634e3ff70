// Register-level IDE scenarios over qtest. Each returns what it observed, so
// the same scenario checks dmaworks alone (ide_qtest_test.ts) and compares
// dmaworks with QEMU 7.2 (ide_qemu_test.ts).
import { BM, type Io } from "./qtest_harness.ts";
import { pattern } from "./pattern.ts";
export { pattern };

/** Where scenarios put PRD tables and buffers (guest-physical, in RAM). */
export const PRD = 0x10_0000;
/** Data buffers. */
export const BUF = 0x20_0000;

const SECTOR = 512;

/** Programs LBA28 or LBA48 address and count on the primary channel. */
export async function taskFile(
  io: Io,
  o: { lba: number; count: number; lba48?: boolean; unit?: number; base?: number },
): Promise<void> {
  const base = o.base ?? 0x1f0;
  const dev = 0x40 | ((o.unit ?? 0) << 4);
  if (o.lba48) {
    await io.outb(base + 6, dev);
    const high = Math.floor(o.lba / 0x100_0000);
    await io.outb(base + 2, (o.count >> 8) & 0xff);
    await io.outb(base + 2, o.count & 0xff);
    await io.outb(base + 3, high & 0xff);
    await io.outb(base + 3, o.lba & 0xff);
    await io.outb(base + 4, (high >> 8) & 0xff);
    await io.outb(base + 4, (o.lba >> 8) & 0xff);
    await io.outb(base + 5, (high >> 16) & 0xff);
    await io.outb(base + 5, (o.lba >> 16) & 0xff);
  } else {
    await io.outb(base + 6, dev | (Math.floor(o.lba / 0x100_0000) & 0x0f));
    await io.outb(base + 2, o.count & 0xff);
    await io.outb(base + 3, o.lba & 0xff);
    await io.outb(base + 4, (o.lba >> 8) & 0xff);
    await io.outb(base + 5, (o.lba >> 16) & 0xff);
  }
}

/** The task file as read back (error, count, LBA bytes, device, status). */
export async function taskFileState(io: Io, base = 0x1f0): Promise<number[]> {
  const out: number[] = [];
  for (const reg of [1, 2, 3, 4, 5, 6, 7]) out.push(await io.inb(base + reg));
  return out;
}

/** Writes a PRD table (EOT on the last entry). */
export async function writePrd(
  io: Io,
  at: number,
  entries: ReadonlyArray<readonly [number, number]>,
): Promise<void> {
  const bytes = new Uint8Array(entries.length * 8);
  const v = new DataView(bytes.buffer);
  entries.forEach(([address, count], i) => {
    v.setUint32(i * 8, address >>> 0, true);
    v.setUint32(
      i * 8 + 4,
      ((count & 0xffff) | (i === entries.length - 1 ? 0x8000_0000 : 0)) >>> 0,
      true,
    );
  });
  await io.write(at, bytes);
}

/** What a DMA command left in the registers. */
export interface DmaRecord {
  bmis: number;
  status: number;
  error: number;
  irq: boolean;
}

/** Issues a DMA command as ata_bmdma does, polls for its end, stops the engine. */
export async function dma(
  io: Io,
  o: { write?: boolean; lba: number; count: number; lba48?: boolean; prd?: number; dir?: number },
): Promise<DmaRecord> {
  const write = o.write ?? false;
  const dir = o.dir ?? (write ? 0 : 0x08);
  await io.outl(BM + 4, o.prd ?? PRD);
  await io.outb(BM + 2, 0x06);
  await io.outb(BM, dir);
  await taskFile(io, o);
  await io.outb(0x1f7, write ? (o.lba48 ? 0x35 : 0xca) : (o.lba48 ? 0x25 : 0xc8));
  await io.outb(BM, dir | 1);
  const bmis = await io.waitDma();
  const irq = io.client.irqLevel(14);
  await io.outb(BM, dir);
  const error = await io.inb(0x1f1);
  const status = await io.inb(0x1f7);
  return { bmis, status, error, irq };
}

/** Reads `count` sectors by PIO (words), or undefined when DRQ is missing. */
export async function pioRead(io: Io, lba: number, count: number): Promise<Uint8Array | undefined> {
  await taskFile(io, { lba, count });
  await io.outb(0x1f7, 0x20);
  const out = new Uint8Array(count * SECTOR);
  const v = new DataView(out.buffer);
  for (let s = 0; s < count; s++) {
    let status = 0;
    for (let i = 0; i < 1000 && ((status = await io.inb(0x3f6)) & 0x80); i++) { /* poll */ }
    if (!(status & 0x08)) return undefined;
    await io.inb(0x1f7);
    for (let i = 0; i < 256; i++) v.setUint16(s * SECTOR + i * 2, await io.inw(0x1f0), true);
  }
  return out;
}

/** Writes sectors by PIO (words); returns the final status. */
export async function pioWrite(io: Io, lba: number, data: Uint8Array): Promise<number> {
  const count = data.length / SECTOR;
  await taskFile(io, { lba, count });
  await io.outb(0x1f7, 0x30);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let s = 0; s < count; s++) {
    let status = 0;
    for (let i = 0; i < 1000 && ((status = await io.inb(0x3f6)) & 0x80); i++) { /* poll */ }
    if (!(status & 0x08)) return status;
    for (let i = 0; i < 256; i++) await io.outw(0x1f0, v.getUint16(s * SECTOR + i * 2, true));
  }
  for (let i = 0; i < 1000 && (await io.inb(0x3f6)) & 0x80; i++) { /* poll */ }
  return await io.inb(0x1f7);
}

/** IDENTIFY DEVICE on the primary channel: the status before the data, the words, the status after. */
export async function identify(
  io: Io,
  unit = 0,
): Promise<{ before: number; words: number[]; after: number }> {
  await io.outb(0x1f6, 0xa0 | (unit << 4));
  await io.outb(0x1f7, 0xec);
  const before = await io.inb(0x3f6);
  const words: number[] = [];
  for (let i = 0; i < 256; i++) words.push(await io.inw(0x1f0));
  const after = await io.inb(0x1f7);
  return { before, words, after };
}

// ---------------------------------------------------------------------------
// Scenarios

/** Configuration space of 00:02.0: reset, BAR4 sizing, after firmware set-up. */
export async function configSpace(io: Io): Promise<Record<string, unknown>> {
  const reset: number[] = [];
  for (let r = 0; r < 256; r += 4) reset.push(await io.cfgRead(r, 4));
  await io.cfgWrite(0x20, 4, 0xffff_ffff);
  const bar4Mask = await io.cfgRead(0x20, 4);
  await io.cfgWrite(0x10, 4, 0xffff_ffff); // BARs 0-3 are not implemented
  const bar0 = await io.cfgRead(0x10, 4);
  await io.setupPci();
  return {
    reset,
    bar4Mask,
    bar0,
    command: await io.cfgRead(4, 2),
    status: await io.cfgRead(6, 2),
    bar4: await io.cfgRead(0x20, 4),
    bmic: await io.inb(BM),
  };
}

/** Task files and bus-master registers after reset, by byte, word and dword. */
export async function resetValues(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  const bmBytes: number[] = [];
  for (let i = 0; i < 16; i++) bmBytes.push(await io.inb(BM + i));
  return {
    primary: await taskFileState(io, 0x1f0),
    primaryAlt: await io.inb(0x3f6),
    secondary: await taskFileState(io, 0x170),
    secondaryAlt: await io.inb(0x376),
    dataByte: await io.inb(0x1f0),
    dataWord: await io.inw(0x1f0),
    dataDword: await io.inl(0x1f0),
    bmBytes,
    bmWords: [await io.inw(BM), await io.inw(BM + 2), await io.inw(BM + 4), await io.inw(BM + 8)],
    bmDwords: [await io.inl(BM), await io.inl(BM + 4), await io.inl(BM + 8), await io.inl(BM + 12)],
  };
}

/** BMIC, BMIS and BMIDTP write semantics. */
export async function busMasterRegisters(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  const seen: number[] = [];
  const note = async (port: number, size: 1 | 2 | 4) =>
    seen.push(
      size === 1 ? await io.inb(port) : size === 2 ? await io.inw(port) : await io.inl(port),
    );
  await io.outb(BM, 0xff);
  await note(BM, 1);
  await note(BM + 2, 1);
  await io.outb(BM, 0x00);
  await note(BM + 2, 1);
  await io.outb(BM + 2, 0xff);
  await note(BM + 2, 1);
  await io.outb(BM + 2, 0x20);
  await note(BM + 2, 1);
  await io.outl(BM + 4, 0xffff_ffff);
  await note(BM + 4, 4);
  await io.outb(BM + 5, 0x12);
  await note(BM + 4, 4);
  await io.outw(BM + 6, 0x3456);
  await note(BM + 4, 4);
  await io.outl(BM + 0xc, 0x1234_5677);
  await note(BM + 0xc, 4);
  await note(BM + 4, 4);
  return { seen };
}

/** IDENTIFY DEVICE of the primary master and of an absent slave. */
export async function identifyScenario(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  await io.client.command("irq_intercept_in ioapic");
  const master = await identify(io, 0);
  const irq = io.client.irqLevel(14);
  await io.outb(0x1f6, 0xb0);
  const slaveStatus = await io.inb(0x1f7);
  await io.outb(0x1f7, 0xec);
  const slaveAfter = [await io.inb(0x1f7), await io.inb(0x1f1), await io.inw(0x1f0)];
  return { master, irq, slaveStatus, slaveAfter };
}

/** Commands that abort, with the interrupt they raise and how a status read drops it. */
export async function abortScenario(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  await io.client.command("irq_intercept_in ioapic");
  const out: unknown[] = [];
  for (const command of [0x00, 0x2f, 0xff]) {
    await io.outb(0x1f6, 0xa0);
    await io.outb(0x1f7, command);
    const raised = io.client.irqLevel(14);
    const alt = await io.inb(0x3f6);
    const bmis = await io.inb(BM + 2);
    const error = await io.inb(0x1f1);
    const status = await io.inb(0x1f7);
    out.push({ command, raised, alt, bmis, error, status, lowered: !io.client.irqLevel(14) });
    await io.outb(BM + 2, 0x04);
  }
  // nIEN masks: no interrupt.
  await io.outb(0x3f6, 0x02);
  await io.outb(0x1f7, 0x00);
  const masked = { raised: io.client.irqLevel(14), bmis: await io.inb(BM + 2) };
  await io.inb(0x1f7);
  await io.outb(0x3f6, 0x00);
  return { out, masked };
}

/** PIO writes and reads, with the task file after each. */
export async function pioScenario(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  const data = pattern(3 * SECTOR, 5);
  const writeStatus = await pioWrite(io, 100, data);
  const afterWrite = await taskFileState(io);
  const back = await pioRead(io, 100, 3);
  const afterRead = await taskFileState(io);
  const zero = await pioRead(io, 2000, 1);
  return {
    writeStatus,
    afterWrite,
    same: back !== undefined && back.every((b, i) => b === data[i]),
    afterRead,
    zeroSector: zero?.every((b) => b === 0),
  };
}

/** The three PRD-size outcomes of READ DMA, data included, then WRITE DMA read back by PIO. */
export async function dmaScenario(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  await io.client.command("irq_intercept_in ioapic");
  const disk = pattern(8 * SECTOR, 9); // what the image holds at LBA 0
  const result: Record<string, unknown> = {};
  await io.memset(BUF, 0x4000, 0xee);
  await writePrd(io, PRD, [[BUF, SECTOR], [BUF + 0x1000, SECTOR]]);
  result["equal"] = await dma(io, { lba: 0, count: 2 });
  result["equalTaskFile"] = await taskFileState(io);
  const got = await io.read(BUF, SECTOR);
  const got2 = await io.read(BUF + 0x1000, SECTOR);
  result["equalData"] = got.every((b, i) => b === disk[i]) &&
    got2.every((b, i) => b === disk[SECTOR + i]);
  await io.memset(BUF, 0x4000, 0xee);
  await writePrd(io, PRD, [[BUF, 0x1000]]);
  result["longer"] = await dma(io, { lba: 2, count: 1, lba48: true });
  result["longerData"] = (await io.read(BUF, SECTOR)).every((b, i) => b === disk[2 * SECTOR + i]);
  result["longerUntouched"] = (await io.read(BUF + SECTOR, 0x200)).every((b) => b === 0xee);
  await io.memset(BUF, 0x4000, 0xee);
  await writePrd(io, PRD, [[BUF, 256]]);
  result["shorter"] = await dma(io, { lba: 0, count: 1 });
  result["shorterUntouched"] = (await io.read(BUF, 0x1000)).every((b) => b === 0xee);
  // WRITE DMA with two PRD entries, 64 KiB (count 0) then 1 KiB, read back by PIO.
  const data = pattern(0x10400, 13);
  await io.write(BUF, data.subarray(0, 0x10000));
  await io.write(BUF + 0x2_0000, data.subarray(0x10000));
  await writePrd(io, PRD, [[BUF, 0], [BUF + 0x2_0000, 0x400]]);
  result["write"] = await dma(io, { write: true, lba: 64, count: 130 });
  result["writeTaskFile"] = await taskFileState(io);
  const back = await pioRead(io, 64 + 128, 2);
  result["writeData"] = back !== undefined && back.every((b, i) => b === data[0x10000 + i]);
  return result;
}

/** HOB read-back of the LBA48 registers. */
export async function hobScenario(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  await taskFile(io, { lba: 0x0123_4567_89ab, count: 0x1234, lba48: true });
  await io.outb(0x1f1, 0x11);
  await io.outb(0x1f1, 0x22);
  const current = await taskFileState(io);
  await io.outb(0x3f6, 0x80);
  const hob = [
    await io.inb(0x1f1),
    await io.inb(0x1f2),
    await io.inb(0x1f3),
    await io.inb(0x1f4),
    await io.inb(0x1f5),
  ];
  await io.outb(0x1f2, 0x55); // a write clears HOB
  const afterWrite = await io.inb(0x1f2);
  await io.outb(0x3f6, 0x00);
  return { current, hob, afterWrite };
}

/** SET FEATURES subcommands QEMU and dmaworks both accept, FLUSH CACHE (EXT). */
export async function featuresScenario(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  // QEMU rebuilds its IDENTIFY data at the first IDENTIFY, dropping what SET
  // FEATURES changed before it: identify first, so both start from the same state.
  const initial = (await identify(io)).words;
  const out: unknown[] = [];
  for (
    const [feature, count] of [
      [0x03, 0x45],
      [0x03, 0x22],
      [0x03, 0x0c],
      [0x03, 0x00],
      [0x02, 0],
      [0xaa, 0],
      [0x55, 0],
      [0x66, 0],
      [0xcc, 0],
      [0x77, 0],
    ]
  ) {
    await io.outb(0x1f6, 0xa0);
    await io.outb(0x1f1, feature!);
    await io.outb(0x1f2, count!);
    await io.outb(0x1f7, 0xef);
    out.push([feature, count, await io.inb(0x1f7), await io.inb(0x1f1)]);
  }
  const words = (await identify(io)).words;
  const flush: number[] = [];
  for (const command of [0xe7, 0xea]) {
    await io.outb(0x1f7, command);
    let status = 0x80;
    for (let i = 0; i < 1000 && (status & 0x80); i++) status = await io.inb(0x3f6);
    flush.push(await io.inb(0x1f7), await io.inb(0x1f1));
  }
  return {
    out,
    initialModes: [initial[62], initial[63], initial[88]],
    modes: [words[62], words[63], words[88]],
    flush,
  };
}
