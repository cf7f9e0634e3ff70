// The PIIX3 IDE controller driven over qtest, as QEMU's ide-test drives its
// model: every scenario of ide_scenarios.ts with the values dmaworks must
// show (the same ones ide_qemu_test.ts compares with QEMU), and the errors
// where dmaworks follows the specifications instead of QEMU.
import { deepEqual, equal, ok } from "node:assert/strict";
import { AtaError, AtaStatus } from "../../src/devices/ata_disk.ts";
import { BmStatus } from "../../src/devices/ide_bus_master.ts";
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
  pioRead,
  pioScenario,
  pioWrite,
  PRD,
  resetValues,
  taskFile,
  writePrd,
} from "./ide_scenarios.ts";
import { BM, dmaworksSession, ideMachine, type Io, tempImage } from "./qtest_harness.ts";

const READY = AtaStatus.DRDY | AtaStatus.DSC;
const ABORTED = AtaStatus.DRDY | AtaStatus.ERR;
const MIB = 1 << 20;

async function session<T>(
  run: (io: Io) => Promise<T>,
  options: { readonly?: boolean; image?: Uint8Array } = {},
): Promise<T> {
  await using image = await tempImage(options.image ?? pattern(4 * MIB, 9));
  const m = ideMachine([{ file: image.path, bus: 0, readonly: options.readonly ?? false }]);
  await using io = await dmaworksSession(m.config);
  return await run(io);
}

Deno.test("qtest: configuration space of 00:02.0", async () => {
  const r = await session(configSpace);
  const reset = r["reset"] as number[];
  deepEqual(reset.slice(0, 4), [0x7010_8086, 0x0280_0000, 0x0101_8000, 0]);
  deepEqual(reset.slice(4, 12), [0, 0, 0, 0, 1, 0, 0, 0x1100_1af4]);
  ok(reset.slice(12).every((v) => v === 0), "no capabilities, no interrupt pin");
  deepEqual(r, {
    reset,
    bar4Mask: 0xffff_fff1,
    bar0: 0,
    command: 0x5,
    status: 0x280,
    bar4: BM | 1,
    bmic: 0,
  });
});

Deno.test("qtest: reset values", async () => {
  deepEqual(await session(resetValues), {
    primary: [0, 1, 1, 0, 0, 0xa0, READY],
    primaryAlt: READY,
    secondary: [0, 0, 0, 0, 0, 0, 0],
    secondaryAlt: 0,
    dataByte: 0,
    dataWord: 0,
    dataDword: 0,
    bmBytes: [0, 0xff, 0, 0xff, 0, 0, 0, 0, 0, 0xff, 0, 0xff, 0, 0, 0, 0],
    bmWords: [0xffff, 0xffff, 0, 0xffff],
    bmDwords: [0xffff_ffff, 0, 0xffff_ffff, 0],
  });
});

Deno.test("qtest: bus-master register semantics", async () => {
  deepEqual(await session(busMasterRegisters), {
    seen: [9, 1, 0, 0x60, 0x20, 0xffff_fffc, 0xffff_12fc, 0x3456_12fc, 0x1234_5674, 0x3456_12fc],
  });
});

Deno.test("qtest: IDENTIFY DEVICE, an absent slave", async () => {
  const r = await session(identifyScenario);
  const master = r["master"] as { before: number; words: number[]; after: number };
  equal(master.before, READY | AtaStatus.DRQ);
  equal(master.after, READY);
  equal(master.words[0], 0x40);
  deepEqual(master.words.slice(60, 62), [8192, 0]);
  deepEqual(master.words.slice(100, 104), [8192, 0, 0, 0]);
  equal(r["irq"], false, "acknowledged by the status read after the data");
  equal(r["slaveStatus"], 0);
  deepEqual(r["slaveAfter"], [0, 0, 0]);
});

Deno.test("qtest: unsupported commands abort; nIEN masks", async () => {
  const r = await session(abortScenario);
  for (const entry of r["out"] as Array<Record<string, unknown>>) {
    deepEqual({ ...entry, command: 0 }, {
      command: 0,
      raised: true,
      alt: ABORTED,
      bmis: BmStatus.INTERRUPT,
      error: AtaError.ABRT,
      status: ABORTED,
      lowered: true,
    });
  }
  deepEqual(r["masked"], { raised: false, bmis: 0 });
});

Deno.test("qtest: PIO, DMA outcomes, HOB, SET FEATURES and FLUSH", async () => {
  const pio = await session(pioScenario);
  deepEqual(pio, {
    writeStatus: READY,
    afterWrite: [0, 0, 103, 0, 0, 0xe0, READY],
    same: true,
    afterRead: [0, 0, 103, 0, 0, 0xe0, READY],
    zeroSector: false,
  });
  const d = await session(dmaScenario);
  deepEqual(d, {
    equal: { bmis: BmStatus.INTERRUPT, status: READY, error: 0, irq: true },
    equalTaskFile: [0, 0, 2, 0, 0, 0xe0, READY],
    equalData: true,
    longer: { bmis: BmStatus.ACTIVE | BmStatus.INTERRUPT, status: READY, error: 0, irq: true },
    longerData: true,
    longerUntouched: true,
    shorter: { bmis: 0, status: READY, error: 0, irq: false },
    shorterUntouched: true,
    write: { bmis: BmStatus.INTERRUPT, status: READY, error: 0, irq: true },
    writeTaskFile: [0, 0, 194, 0, 0, 0xe0, READY],
    writeData: true,
  });
  const hob = await session(hobScenario);
  deepEqual(hob, {
    current: [0, 0x34, 0xab, 0x89, 0x67, 0xe0, READY],
    hob: [0x11, 0x12, 0x45, 0x23, 0x01],
    afterWrite: 0x55,
  });
  const f = await session(featuresScenario);
  deepEqual(f["initialModes"], [7, 7, 0x203f]);
  deepEqual(f["modes"], [7, 7, 0x3f]);
  deepEqual(f["flush"], [READY, 0, READY, 0]);
  deepEqual((f["out"] as number[][]).at(-1), [0x77, 0, ABORTED, AtaError.ABRT]);
});

// ---------------------------------------------------------------------------
// Where dmaworks follows the specifications (QEMU differs: see ide_qemu_test.ts)

Deno.test("qtest: an LBA range outside the disk ends with IDNF, for PIO and DMA", async () => {
  await session(async (io) => {
    await io.setupPci();
    await taskFile(io, { lba: 8192, count: 1 });
    await io.outb(0x1f7, 0x20);
    deepEqual([await io.inb(0x1f7), await io.inb(0x1f1)], [ABORTED, AtaError.IDNF]);
    // The drive refuses the command before the bus master starts: the
    // interrupt sets BMIS Interrupt, and Start then sets Active.
    await writePrd(io, PRD, [[BUF, 0x1000]]);
    deepEqual(await dma(io, { lba: 8190, count: 8, lba48: true }), {
      bmis: BmStatus.ACTIVE | BmStatus.INTERRUPT,
      status: ABORTED,
      error: AtaError.IDNF,
      irq: false, // not intercepted in this session
    });
  });
});

Deno.test("qtest: DMA faults end with BMIS Error and ABRT; nothing moves", async () => {
  await session(async (io) => {
    await io.setupPci();
    await io.client.command("irq_intercept_in ioapic");
    await io.memset(BUF, 0x1000, 0xee);
    // A buffer in the PCI hole (a master abort).
    await writePrd(io, PRD, [[0xfeb0_0000, 0x1000]]);
    const fault = {
      bmis: BmStatus.ERROR | BmStatus.INTERRUPT,
      status: ABORTED,
      error: AtaError.ABRT,
      irq: true,
    };
    deepEqual(await dma(io, { lba: 0, count: 8 }), fault);
    // The PRD table itself in the hole.
    deepEqual(await dma(io, { lba: 0, count: 8, prd: 0xfeb0_0000 }), fault);
    // The direction bit disagrees with the command.
    await writePrd(io, PRD, [[BUF, 0x1000]]);
    deepEqual(await dma(io, { lba: 0, count: 8, dir: 0 }), fault);
    ok((await io.read(BUF, 0x1000)).every((b) => b === 0xee));
    // Bus Master Enable clear.
    await io.cfgWrite(0x04, 2, 0x1);
    deepEqual(await dma(io, { lba: 0, count: 8 }), fault);
    ok((await io.read(BUF, 0x1000)).every((b) => b === 0xee));
    await io.cfgWrite(0x04, 2, 0x5);
    deepEqual(await dma(io, { lba: 0, count: 8 }), {
      ...fault,
      bmis: BmStatus.INTERRUPT,
      status: READY,
      error: 0,
    });
  });
});

Deno.test("qtest: a read-only drive refuses writes, its image is unchanged", async () => {
  const image = pattern(4 * MIB, 9);
  await session(async (io) => {
    await io.setupPci();
    const status = await pioWrite(io, 0, new Uint8Array(512));
    equal(status, ABORTED);
    equal(await io.inb(0x1f1), AtaError.ABRT);
    await writePrd(io, PRD, [[BUF, 0x1000]]);
    deepEqual(await dma(io, { write: true, lba: 0, count: 8 }), {
      bmis: BmStatus.ACTIVE | BmStatus.INTERRUPT,
      status: ABORTED,
      error: AtaError.ABRT,
      irq: false,
    });
    const back = await pioRead(io, 0, 1);
    deepEqual(back, image.subarray(0, 512));
  }, { readonly: true, image });
});
