// Side by side with QEMU 7.2: the same qtest register sequences against
// `qemu-system-x86_64 -S -machine q35 -nodefaults -qtest stdio` with a
// `piix3-ide` at 02.0 and against dmaworks, comparing what each observed.
// Skipped when qemu-system-x86_64 is not on PATH.
//
// Deliberate differences (dmaworks follows the specifications; asserted on
// dmaworks alone in ide_qtest_test.ts):
// - IDENTIFY: no READ/WRITE MULTIPLE (words 47, 59), no SMART (words 82 and
//   85 bit 0), no TRIM (words 69, 169): dmaworks does not implement them.
// - SET FEATURES refuses transfer modes the drive does not support.
// - An LBA range outside the disk is IDNF (QEMU: ABRT).
// - DMA faults set BMIS Error and end with ABRT (QEMU completes silently).
import { deepEqual, equal } from "node:assert/strict";
import {
  abortScenario,
  BUF,
  busMasterRegisters,
  configSpace,
  dma,
  dmaScenario,
  featuresScenario,
  hobScenario,
  identifyScenario,
  pattern,
  pioScenario,
  PRD,
  resetValues,
  taskFile,
  writePrd,
} from "./ide_scenarios.ts";
import {
  dmaworksSession,
  ideMachine,
  type Io,
  QEMU,
  qemuSession,
  tempImage,
} from "./qtest_harness.ts";

const ignore = QEMU === undefined;

/** IDENTIFY words dmaworks reports differently on purpose (see the header). */
const IDENTIFY_DIFFERENCES: Readonly<Record<number, [qemu: number, dmaworks: number]>> = {
  47: [0x8010, 0],
  59: [0x0110, 0],
  69: [0x4000, 0],
  82: [0x4021, 0x4020],
  85: [0x4021, 0x4020],
  169: [0x0001, 0],
};

async function sideBySide(
  scenario: (io: Io) => Promise<Record<string, unknown>>,
  options: { slave?: boolean; secondary?: boolean } = {},
): Promise<[Record<string, unknown>, Record<string, unknown>]> {
  const image = pattern(4 * 1024 * 1024, 9);
  await using a = await tempImage(image);
  await using b = await tempImage(image);
  const disks = (file: string) => [
    { file, bus: 0 },
    ...(options.secondary ? [{ file: `${file}.2`, bus: 1 }] : []),
  ];
  const q = ideMachine(disks(a.path));
  const d = ideMachine(disks(b.path));
  await using qemu = qemuSession(q.qemu);
  await using ours = await dmaworksSession(d.config);
  return await Promise.all([scenario(qemu), scenario(ours)]);
}

Deno.test({
  name: "QEMU: piix3-ide configuration space, BAR4 sizing and set-up",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(configSpace);
    deepEqual(ours, qemu);
    equal((qemu["reset"] as number[])[0], 0x7010_8086, "sanity: the comparison saw the device");
  },
});

Deno.test({
  name: "QEMU: task-file and bus-master reset values, byte, word and dword reads",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(resetValues);
    deepEqual(ours, qemu);
  },
});

Deno.test({
  name: "QEMU: BMIC, BMIS (write 1 to clear) and BMIDTP write semantics",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(busMasterRegisters);
    deepEqual(ours, qemu);
  },
});

Deno.test({
  name: "QEMU: IDENTIFY DEVICE word for word, but for the documented differences",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(identifyScenario);
    const qw = (qemu["master"] as { words: number[] }).words;
    const ow = (ours["master"] as { words: number[] }).words;
    for (const [word, [q, d]] of Object.entries(IDENTIFY_DIFFERENCES)) {
      equal(qw[Number(word)], q, `QEMU word ${word}`);
      equal(ow[Number(word)], d, `dmaworks word ${word}`);
      ow[Number(word)] = q;
    }
    deepEqual(ours, qemu);
  },
});

Deno.test({
  name: "QEMU: commands neither implements abort with the same registers and interrupt",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(abortScenario);
    deepEqual(ours, qemu);
  },
});

Deno.test({
  name: "QEMU: PIO READ/WRITE SECTORS, data and task file",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(pioScenario);
    deepEqual(ours, qemu);
    equal(qemu["same"], true);
  },
});

Deno.test({
  name: "QEMU: READ/WRITE DMA, the three PRD-size outcomes, data and task file",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(dmaScenario);
    deepEqual(ours, qemu);
    equal(qemu["equalData"], true);
  },
});

Deno.test({
  name: "QEMU: LBA48 HOB read-back",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(hobScenario);
    deepEqual(ours, qemu);
  },
});

Deno.test({
  name: "QEMU: SET FEATURES and FLUSH CACHE",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(featuresScenario);
    deepEqual(ours, qemu);
  },
});

/** What the deliberate differences look like on both. */
async function differences(io: Io): Promise<Record<string, unknown>> {
  await io.setupPci();
  await taskFile(io, { lba: 8192, count: 1 });
  await io.outb(0x1f7, 0x20);
  const beyond = [await io.inb(0x1f7), await io.inb(0x1f1)];
  await io.memset(BUF, 0x1000, 0xee);
  await writePrd(io, PRD, [[BUF, 0x1000]]);
  await io.cfgWrite(0x04, 2, 0x1); // Bus Master Enable off
  const noBusMaster = await dma(io, { lba: 0, count: 8 });
  const untouched = (await io.read(BUF, 0x1000)).every((b) => b === 0xee);
  await io.cfgWrite(0x04, 2, 0x5);
  await writePrd(io, PRD, [[0xfeb0_0000, 0x1000]]);
  const mmioBuffer = await dma(io, { lba: 0, count: 8 });
  return { beyond, noBusMaster, untouched, mmioBuffer };
}

Deno.test({
  name: "QEMU: the deliberate differences, shown on both",
  ignore,
  async fn() {
    const [qemu, ours] = await sideBySide(differences);
    const ok = { bmis: 4, status: 0x50, error: 0, irq: false };
    const fault = { bmis: 6, status: 0x41, error: 0x04, irq: false };
    // QEMU: ABRT for the range, and DMA "succeeds" with Bus Master Enable clear
    // (Active stays set, as its ide-test notes) or into MMIO, moving nothing.
    deepEqual(qemu, {
      beyond: [0x41, 0x04],
      noBusMaster: { ...ok, bmis: 5 },
      untouched: true,
      mmioBuffer: ok,
    });
    deepEqual(ours, {
      beyond: [0x41, 0x10],
      noBusMaster: fault,
      untouched: true,
      mmioBuffer: fault,
    });
  },
});
