// The PIIX3 IDE controller's DMA throughput: 64 MiB of READ DMA EXT into
// guest RAM, driven over qtest (the commands and BMIS polling of a driver,
// through the qtest server), from a raw image in the page cache:
//
// - with the IOMMU: 4 KiB pages mapped physically contiguous, and scattered
//   (each page 37 pages from the previous one in a 96 MiB pool);
// - without: contiguous 64 KiB PRD regions; scattered 4 KiB regions with
//   QEMU's 512-entry table limit (32 commands) and with full 8192-entry
//   tables (2 commands);
// - the baseline, in the same run: a plain read of the file into a
//   SharedArrayBuffer (1 MiB reads), and, when qemu-system-x86_64 is
//   installed, QEMU 7.2 doing the same qtest-driven transfers.
//
//   deno bench -A tests/bench/ide_bench.ts     (or: deno task bench)
//
// Goal: scattered pages at ≥ 1.5× QEMU's scattered throughput.
import { dmaworksSession, ideMachine, type Io, QEMU, qemuSession } from "../ide/qtest_harness.ts";
import type { BenchCommand } from "./ide_bench_guest.ts";

const TOTAL = 64 * 1024 * 1024;
const ROUNDS = 7;
const WARMUP = 2;
const GUEST = new URL("./ide_bench_guest.ts", import.meta.url);

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

function gbps(ms: number): number {
  return TOTAL / (ms * 1e6);
}

/** How the driver waits for a command: polling BMIS, or for IRQ 14 (as an OS driver does). */
type Wait = "poll" | "irq";

/** One qtest-driven pass: every command as ata_bmdma issues it. */
async function pass(io: Io, commands: readonly BenchCommand[], wait: Wait): Promise<number> {
  const start = performance.now();
  let lba = 0;
  for (const { prd, sectors } of commands) {
    const count = sectors === 65536 ? 0 : sectors;
    await Promise.all([
      io.outl(0xc004, prd),
      io.outb(0xc002, 0x06),
      io.outb(0xc000, 0x08),
      io.outb(0x1f6, 0x40),
      io.outb(0x1f2, (count >> 8) & 0xff),
      io.outb(0x1f2, count & 0xff),
      io.outb(0x1f3, 0),
      io.outb(0x1f3, lba & 0xff),
      io.outb(0x1f4, 0),
      io.outb(0x1f4, (lba >> 8) & 0xff),
      io.outb(0x1f5, 0),
      io.outb(0x1f5, (lba >> 16) & 0xff),
      io.outb(0x1f7, 0x25),
      io.outb(0xc000, 0x09),
    ]);
    if (wait === "irq") {
      if (!(await io.client.waitIrq(14, { timeoutMs: 30_000 }))) {
        throw new Error(`${io.name}: no interrupt`);
      }
    } else {
      while (!((await io.inb(0xc002)) & 0x04)) { /* poll BMIS until Interrupt */ }
    }
    const status = await io.inb(0x1f7);
    if (status !== 0x50) {
      throw new Error(`${io.name}: READ DMA EXT ended with status 0x${status.toString(16)}`);
    }
    await Promise.all([io.outb(0xc000, 0x08), io.outb(0xc002, 0x06)]);
    lba += sectors;
  }
  return performance.now() - start;
}

/** Checks the first and last pages of the destination against the image. */
async function verify(io: Io, image: Uint8Array, layout: string): Promise<void> {
  const PAGE = 4096;
  for (const i of [0, TOTAL / PAGE - 1]) {
    const phys = layout === "scattered"
      ? 0x0400_0000 + ((i * 37) % 24576) * PAGE
      : 0x0400_0000 + i * PAGE;
    const got = await io.read(phys, PAGE);
    if (!got.every((b, j) => b === image[i * PAGE + j])) {
      throw new Error(`${io.name}: page ${i} differs`);
    }
  }
}

async function dmaworks(
  file: string,
  image: Uint8Array,
  options: { iommu: boolean; layout: string; table?: string },
): Promise<Record<Wait, number>> {
  const m = ideMachine([{ file, bus: 0, readonly: true }], { iommu: options.iommu });
  await using io = await dmaworksSession({ ...m.config, ramSize: 512 * 1024 * 1024 });
  const commands = await io.machine!.runGuest(GUEST, {
    options: {
      iommu: options.iommu ? "on" : "off",
      layout: options.layout,
      ...(options.table ? { table: options.table } : {}),
    },
  }) as BenchCommand[];
  const result = await rounds(io, commands);
  await verify(io, image, options.layout);
  return result;
}

/** Warm-up passes, then the median of {@linkcode ROUNDS} passes, for both ways of waiting. */
async function rounds(io: Io, commands: readonly BenchCommand[]): Promise<Record<Wait, number>> {
  await io.client.command("irq_intercept_in ioapic");
  const result = { poll: 0, irq: 0 };
  for (const wait of ["poll", "irq"] as const) {
    const times: number[] = [];
    for (let r = 0; r < WARMUP + ROUNDS; r++) {
      const ms = await pass(io, commands, wait);
      if (r >= WARMUP) times.push(ms);
    }
    result[wait] = median(times);
  }
  return result;
}

async function qemu(
  file: string,
  image: Uint8Array,
  layout: string,
): Promise<Record<Wait, number>> {
  // The same PRD tables as dmaworks without an IOMMU, written over qtest.
  // (QEMU's ide-hd refuses a read-only drive.)
  const m = ideMachine([{ file, bus: 0 }]);
  await using io = qemuSession([...m.qemu]);
  await io.setupPci();
  const PAGE = 4096;
  const commands: BenchCommand[] = [];
  const perCommand = 512;
  const perEntry = layout === "scattered" ? PAGE : 0x10000;
  const n = TOTAL / (perCommand * perEntry);
  for (let c = 0; c < n; c++) {
    const table = new Uint8Array(perCommand * 8);
    const v = new DataView(table.buffer);
    for (let e = 0; e < perCommand; e++) {
      const i = c * perCommand + e;
      const address = layout === "scattered"
        ? 0x0400_0000 + ((i * 37) % 24576) * PAGE
        : 0x0400_0000 + i * 0x10000;
      v.setUint32(e * 8, address, true);
      v.setUint32(
        e * 8 + 4,
        ((perEntry & 0xffff) | (e === perCommand - 1 ? 0x8000_0000 : 0)) >>> 0,
        true,
      );
    }
    const at = 0x0e00_0000 + c * 0x1_0000; // in QEMU's 256 MiB, above the data
    await io.write(at, table);
    commands.push({ prd: at, sectors: (perCommand * perEntry) / 512 });
  }
  const result = await rounds(io, commands);
  await verify(io, image, layout);
  return result;
}

/** The baseline: the image read into a SharedArrayBuffer with plain 1 MiB reads. */
async function plainRead(file: string): Promise<number> {
  const ram = new Uint8Array(new SharedArrayBuffer(TOTAL));
  ram.fill(0);
  using f = await Deno.open(file);
  const times: number[] = [];
  for (let r = 0; r < WARMUP + ROUNDS; r++) {
    const start = performance.now();
    for (let at = 0; at < TOTAL; at += 1 << 20) {
      f.seekSync(at, Deno.SeekMode.Start);
      const view = ram.subarray(at, at + (1 << 20));
      let done = 0;
      while (done < view.length) done += (await f.read(view.subarray(done))) ?? view.length;
    }
    if (r >= WARMUP) times.push(performance.now() - start);
  }
  return median(times);
}

async function report(): Promise<void> {
  const image = new Uint8Array(TOTAL);
  for (let at = 0; at < TOTAL; at += 65536) crypto.getRandomValues(image.subarray(at, at + 65536));
  const dir = await Deno.makeTempDir({ prefix: "dmaworks-ide-bench-" });
  const file = `${dir}/disk.img`;
  await Deno.writeFile(file, image);
  try {
    const base = await plainRead(file);
    const line = (label: string, r: Record<Wait, number>) =>
      console.log(
        `${label.padEnd(56)} ${gbps(r.poll).toFixed(2)} GB/s (${(base / r.poll).toFixed(2)}×)  ${
          gbps(r.irq).toFixed(2)
        } GB/s (${(base / r.irq).toFixed(2)}×)`,
      );
    console.log(
      `64 MiB READ DMA EXT over qtest, median of ${ROUNDS} after ${WARMUP} warm-up runs;\n` +
        "GB/s and × plain file read, for a driver polling BMIS and one waiting for IRQ 14",
    );
    console.log(
      `${"plain file read into a SharedArrayBuffer".padEnd(56)} ${gbps(base).toFixed(2)} GB/s`,
    );
    const rows: Array<[string, Record<Wait, number>]> = [];
    for (
      const [label, options] of [
        ["dmaworks, IOMMU, 4 KiB pages contiguous", { iommu: true, layout: "contiguous" }],
        ["dmaworks, IOMMU, 4 KiB pages scattered", { iommu: true, layout: "scattered" }],
        ["dmaworks, no IOMMU, 64 KiB regions contiguous", { iommu: false, layout: "contiguous" }],
        ["dmaworks, no IOMMU, 4 KiB scattered, 512-entry tables", {
          iommu: false,
          layout: "scattered",
        }],
        ["dmaworks, no IOMMU, 4 KiB scattered, 8192-entry tables", {
          iommu: false,
          layout: "scattered",
          table: "full",
        }],
      ] as const
    ) {
      const r = await dmaworks(file, image, options);
      rows.push([label, r]);
      line(label, r);
    }
    if (!QEMU) {
      console.log("QEMU 7.2: qemu-system-x86_64 is not installed, comparison skipped");
      return;
    }
    const contiguous = await qemu(file, image, "contiguous");
    const scattered = await qemu(file, image, "scattered");
    line("QEMU 7.2, no IOMMU, 64 KiB regions contiguous", contiguous);
    line("QEMU 7.2, no IOMMU, 4 KiB scattered (512-entry tables)", scattered);
    for (const [label, r] of rows.filter(([l]) => l.includes("scattered"))) {
      console.log(
        `${label}: ${(scattered.poll / r.poll).toFixed(2)}× (polling), ${
          (scattered.irq / r.irq).toFixed(2)
        }× (IRQ) QEMU's scattered throughput (goal ≥ 1.5×)`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

await report();

// The measurements are the lines printed above: each pass moves 64 MiB through
// a running machine, which does not fit Deno.bench's many short iterations.
Deno.bench({ name: "ide: see the lines printed above", n: 1, warmup: 0 }, () => {});
