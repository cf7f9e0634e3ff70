// Helpers of the reliability tests: an IDE machine (with edu as the "other
// device" that must keep working) driven over qtest, an IOMMU set up from the
// main isolate, and DMA commands started without waiting for their end.
import type { MachineConfig } from "../../src/machine/machine.ts";
import type { DriveConfig } from "../../src/machine/machine.ts";
import { commands } from "../../src/iommu/commands.ts";
import { decodeEvent, type IommuEvent } from "../../src/iommu/events.ts";
import { BM, dmaworksSession, type Io } from "../ide/qtest_harness.ts";
import { taskFile } from "../ide/ide_scenarios.ts";
import { pattern } from "../ide/pattern.ts";

export { BM, type Io };

export const MIB = 1 << 20;
/** Where tests put PRD tables. */
export const PRD = 0x10_0000;
/** Data buffers (identity-mapped by {@linkcode iommuUp}). */
export const BUF = 0x200_0000;
/** edu's BAR0. */
export const EDU = 0xfe00_0000;
const IOMMU = 0xfed8_0000;
const DEV_TAB = 0x20_0000;
const CMD = 0x21_0000;
const EVT = 0x22_0000;
const SEM = 0x23_0000;
const ROOT = 0x24_0000;

/** A machine with a PIIX3 IDE (disks as given, all on the primary channel unless `bus`), edu and optionally the IOMMU. */
export async function ideSession(
  drives: ReadonlyArray<DriveConfig & { bus?: number }>,
  options: { iommu?: boolean; accessTimeoutMs?: number; invalidationWatchdogMs?: number } = {},
): Promise<Io> {
  const config: MachineConfig = {
    ramSize: 256 * MIB,
    devices: [
      ...(options.iommu ? [{ type: "amd-iommu", addr: "01.0" }] : []),
      { type: "piix3-ide", id: "ide", addr: "02.0" },
      ...drives.map((d) => ({
        type: "ide-hd",
        properties: { drive: d.id, bus: `ide.${d.bus ?? 0}` },
      })),
      { type: "edu", id: "edu", addr: "04.0" },
    ],
    drives: drives.map(({ bus: _bus, ...d }) => d),
    ...(options.accessTimeoutMs !== undefined ? { accessTimeoutMs: options.accessTimeoutMs } : {}),
    ...(options.invalidationWatchdogMs !== undefined
      ? { invalidationWatchdogMs: options.invalidationWatchdogMs }
      : {}),
  };
  const io = await dmaworksSession(config);
  await io.setupPci();
  // edu's BAR0 and memory decoding.
  await io.outl(0xcf8, 0x8000_2010);
  await io.outl(0xcfc, EDU);
  await io.outl(0xcf8, 0x8000_2004);
  await io.outw(0xcfc, 0x6);
  return io;
}

async function readl(io: Io, address: number): Promise<number> {
  const reply = await io.client.command(`readl 0x${address.toString(16)}`);
  const m = /^OK (0x[0-9a-f]+)$/.exec(reply);
  if (!m) throw new Error(`readl 0x${address.toString(16)} answered ${reply}`);
  return Number(BigInt(m[1]!));
}

/** Where {@linkcode eduWorks} copies through edu's buffer (within its 28-bit DMA mask). */
const EDU_SRC = 0x300_0000;
const EDU_DST = 0x300_1000;
const EDU_BUFFER = 0x4_0000;

/**
 * Whether edu still works, the "other device" that must not notice a fault:
 * its identification register, a factorial, and a DMA round trip (RAM → its
 * buffer → RAM) that must bring back what it took.
 */
export async function eduWorks(io: Io): Promise<boolean> {
  if (await readl(io, EDU) !== 0x010000ed) return false;
  await io.writel(EDU + 0x08, 5);
  while (await readl(io, EDU + 0x20) & 1) { /* computing */ }
  if (await readl(io, EDU + 0x08) !== 120) return false;
  const data = pattern(256, 11);
  await io.write(EDU_SRC, data);
  await io.memset(EDU_DST, data.length, 0);
  for (const [src, dst, cmd] of [[EDU_SRC, EDU_BUFFER, 1], [EDU_BUFFER, EDU_DST, 3]] as const) {
    await io.writel(EDU + 0x80, src);
    await io.writel(EDU + 0x88, dst);
    await io.writel(EDU + 0x90, data.length);
    await io.writel(EDU + 0x98, cmd);
    while (await readl(io, EDU + 0x98) & 1) { /* copying */ }
  }
  if (await readl(io, EDU + 0x20) & 0x100) return false; // DMA error
  const back = await io.read(EDU_DST, data.length);
  return back.every((b, i) => b === data[i]);
}

/** A raw image file holding `data`, removed (with its directory) on dispose. */
export async function tempImage(data: Uint8Array): Promise<AsyncDisposable & { path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "dmaworks-faults-" });
  const path = `${dir}/disk.img`;
  await Deno.writeFile(path, data);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** Writes a PRD table for `bytes` at `buffer` in 64 KiB entries. */
export async function prdFor(io: Io, buffer: number, bytes: number, at = PRD): Promise<void> {
  const entries = Math.ceil(bytes / 0x1_0000);
  const table = new Uint8Array(entries * 8);
  const v = new DataView(table.buffer);
  for (let i = 0; i < entries; i++) {
    const count = Math.min(0x1_0000, bytes - i * 0x1_0000);
    v.setUint32(i * 8, buffer + i * 0x1_0000, true);
    v.setUint32(i * 8 + 4, ((count & 0xffff) | (i === entries - 1 ? 0x8000_0000 : 0)) >>> 0, true);
  }
  await io.write(at, table);
}

/** Starts a DMA command on the primary channel and returns without waiting for it. */
export async function startDma(
  io: Io,
  o: { write: boolean; lba: number; count: number; buffer?: number },
): Promise<void> {
  await prdFor(io, o.buffer ?? BUF, o.count * 512);
  const dir = o.write ? 0 : 0x08;
  await io.outl(BM + 4, PRD);
  await io.outb(BM + 2, 0x06);
  await io.outb(BM, dir);
  await taskFile(io, { lba: o.lba, count: o.count, lba48: o.count > 256 });
  await io.outb(0x1f7, o.write ? (o.count > 256 ? 0x35 : 0xca) : (o.count > 256 ? 0x25 : 0xc8));
  await io.outb(BM, dir | 1);
}

/** Waits for the DMA to end; returns BMIS, status and error. */
export async function endDma(io: Io): Promise<{ bmis: number; status: number; error: number }> {
  const bmis = await io.waitDma(0, 1_000_000);
  await io.outb(BM, 0);
  return { bmis, status: await io.inb(0x1f7), error: await io.inb(0x1f1) };
}

/** FLUSH CACHE on the primary master; returns once BSY clears. */
export async function flush(io: Io): Promise<{ status: number; error: number }> {
  await io.outb(0x1f6, 0xa0);
  await io.outb(0x1f7, 0xe7);
  for (let i = 0; i < 1_000_000 && (await io.inb(0x3f6)) & 0x80; i++) { /* poll */ }
  return { status: await io.inb(0x1f7), error: await io.inb(0x1f1) };
}

let cmdTail = 0;

async function writeq(io: Io, address: number, value: bigint): Promise<void> {
  const reply = await io.client.command(`writeq 0x${address.toString(16)} 0x${value.toString(16)}`);
  if (reply !== "OK") throw new Error(`writeq answered ${reply}`);
}

async function readq(io: Io, address: number): Promise<bigint> {
  const reply = await io.client.command(`readq 0x${address.toString(16)}`);
  return BigInt(reply.split(" ")[1]!);
}

/**
 * Sets the IOMMU up like Linux, with the IDE controller (00:02.0) in a
 * domain that identity-maps the first 64 MiB with 2 MiB pages.
 */
export async function iommuUp(io: Io, options: { invTimeout: number }): Promise<void> {
  await writeq(io, IOMMU + 0x18, 0n);
  await writeq(io, IOMMU + 0x00, BigInt(DEV_TAB));
  await writeq(io, IOMMU + 0x08, BigInt(CMD) | (8n << 56n));
  await writeq(io, IOMMU + 0x10, BigInt(EVT) | (8n << 56n));
  for (const r of [0x2000, 0x2008, 0x2010, 0x2018]) await writeq(io, IOMMU + r, 0n);
  cmdTail = 0;
  for (let i = 0; i < 32; i++) {
    // Level-2 leaves (2 MiB), present, IR | IW.
    await writeq(io, ROOT + i * 8, BigInt(i * 2 * MIB) | 1n | (3n << 61n));
  }
  const rid = 2 << 3;
  await writeq(io, DEV_TAB + rid * 32, 3n | (2n << 9n) | BigInt(ROOT) | (3n << 61n));
  await writeq(io, DEV_TAB + rid * 32 + 8, 1n); // DomainID 1
  const control = 1n | 4n | (1n << 12n) | (BigInt(options.invTimeout) << 5n);
  await writeq(io, IOMMU + 0x18, control);
}

/** Puts a command in the ring and moves the tail. */
export async function submit(io: Io, words: [bigint, bigint]): Promise<void> {
  await writeq(io, CMD + cmdTail, words[0]);
  await writeq(io, CMD + cmdTail + 8, words[1]);
  cmdTail = (cmdTail + 16) % 4096;
  await writeq(io, IOMMU + 0x2008, BigInt(cmdTail));
}

/** INVALIDATE_IOMMU_PAGES (domain 1, everything) then COMPLETION_WAIT; resolves when the store lands. */
export async function flushDomain(io: Io, sequence: bigint): Promise<void> {
  await submit(io, commands.invalidatePages({ domainId: 1 }));
  await submit(io, commands.completionWait({ storeAddress: SEM, storeData: sequence }));
  for (;;) {
    if (await readq(io, SEM) === sequence) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** The event log's entries. */
export async function iommuEvents(io: Io): Promise<IommuEvent[]> {
  const tail = Number(await readq(io, IOMMU + 0x2018));
  const out: IommuEvent[] = [];
  for (let at = 0; at < tail; at += 16) {
    out.push(decodeEvent(await readq(io, EVT + at), await readq(io, EVT + at + 8)));
  }
  return out;
}

/** The LBA (low 24 bits) the task file reports, e.g. of a failed sector. */
export async function taskFileLba(io: Io): Promise<number> {
  return (await io.inb(0x1f3)) | ((await io.inb(0x1f4)) << 8) | ((await io.inb(0x1f5)) << 16);
}

/** Waits (polling, bounded by the test's own timeout) until `ready()` holds. */
export async function until(ready: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await ready())) await new Promise((resolve) => setTimeout(resolve, 2));
}
