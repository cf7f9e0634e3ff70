// amd-vi.md §4 and §1 (command ring): command decoding and reserved bits,
// illegal commands and how software restarts the processor, COMPLETION_WAIT
// (store, interrupt, no-op), hardware errors, the ring registers, and the
// S-bit range encoding.
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { AmdViStatus } from "../../src/iommu/amd_vi_registers.ts";
import { commands, decodeCommand, decodeRange, encodeRange } from "../../src/iommu/commands.ts";
import { MAX_ADDRESS } from "../../src/util/address.ts";
import { assertEvents, b, C, CMD_BUF, hx, NOT_RAM, PAGE, R, Rig, SEM } from "./rig.ts";

const S = AmdViStatus;

/** A COMPLETION_WAIT storing `data` at SEM + `slot` * 8. */
function store(data: bigint, slot = 0): [bigint, bigint] {
  return commands.completionWait({ storeAddress: SEM + slot * 8, storeData: data });
}

/** A command word pair from an opcode and operands. */
function op(code: number, q0 = 0n, q1 = 0n): [bigint, bigint] {
  return [(BigInt(code) << 60n) | q0, q1];
}

/** Legal bits per opcode (the LEGAL table of src/iommu/commands.ts). */
const LEGAL: Record<number, [bigint, bigint]> = {
  1: [0xf00f_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn],
  2: [0xffff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn],
  3: [0xf000_ffff_000f_ffffn, 0xffff_ffff_ffff_f007n],
  4: [0xf000_ffff_ff00_ffffn, 0xffff_ffff_ffff_f001n],
  5: [0xf000_0000_0000_ffffn, 0n],
  6: [0xf000_0000_ff00_ffffn, 0xffff_ffff_ffff_f011n],
  8: [0xf000_0000_0000_0000n, 0n],
};

Deno.test("Each of the 8 opcodes decodes with its operands", () => {
  const rows: Array<{ name: string; words: [bigint, bigint]; expected: unknown }> = [
    {
      name: "COMPLETION_WAIT s, i, f",
      words: op(1, 0x000f_ffff_ffff_fff8n | 7n, 0xfedc_ba98_7654_3210n),
      expected: {
        op: "COMPLETION_WAIT",
        store: true,
        interrupt: true,
        flush: true,
        storeAddress: 0x000f_ffff_ffff_fff8,
        storeData: 0xfedc_ba98_7654_3210n,
      },
    },
    {
      name: "COMPLETION_WAIT no-op",
      words: op(1),
      expected: {
        op: "COMPLETION_WAIT",
        store: false,
        interrupt: false,
        flush: false,
        storeAddress: 0,
        storeData: 0n,
      },
    },
    {
      name: "INVALIDATE_DEVTAB_ENTRY",
      words: op(2, 0xbeefn),
      expected: { op: "INVALIDATE_DEVTAB_ENTRY", deviceId: 0xbeef },
    },
    {
      name: "INVALIDATE_IOMMU_PAGES one page",
      words: op(3, 0x1234n << 32n, 0x5000n),
      expected: {
        op: "INVALIDATE_IOMMU_PAGES",
        domainId: 0x1234,
        range: { start: 0x5000, end: 0x5fff },
        pde: false,
      },
    },
    {
      name: "INVALIDATE_IOMMU_PAGES all, PDE",
      words: op(3, 0xffffn << 32n, 0x7fff_ffff_ffff_f003n),
      expected: {
        op: "INVALIDATE_IOMMU_PAGES",
        domainId: 0xffff,
        range: { start: 0, end: MAX_ADDRESS },
        pde: true,
      },
    },
    {
      name: "INVALIDATE_IOTLB_PAGES",
      words: op(4, 0x18n | (0x20n << 24n) | (0x18n << 32n), 0x2ff001n),
      expected: {
        op: "INVALIDATE_IOTLB_PAGES",
        deviceId: 0x18,
        range: { start: 0x20_0000, end: 0x3f_ffff },
      },
    },
    {
      name: "INVALIDATE_INTERRUPT_TABLE",
      words: op(5, 0x0100n),
      expected: { op: "INVALIDATE_INTERRUPT_TABLE", deviceId: 0x100 },
    },
    {
      name: "PREFETCH_IOMMU_PAGES",
      words: op(6, 0x20n | (5n << 24n), 0x1234_5000n | 0x10n),
      expected: {
        op: "PREFETCH_IOMMU_PAGES",
        deviceId: 0x20,
        count: 5,
        address: 0x1234_5000,
        invalidate: true,
      },
    },
    {
      name: "COMPLETE_PPR_REQUEST (no PPR support)",
      words: op(7, 0x20n),
      expected: { op: "ILLEGAL" },
    },
    { name: "INVALIDATE_IOMMU_ALL", words: op(8), expected: { op: "INVALIDATE_IOMMU_ALL" } },
  ];
  for (const row of rows) {
    const decoded = decodeCommand(...row.words);
    const actual = decoded.op === "ILLEGAL" ? { op: "ILLEGAL" } : decoded;
    deepEqual(actual, row.expected, row.name);
  }
  // The encoders produce what they claim.
  deepEqual(decodeCommand(...commands.invalidateAll()), { op: "INVALIDATE_IOMMU_ALL" });
  deepEqual(decodeCommand(...commands.invalidateDevtabEntry(0x18)), {
    op: "INVALIDATE_DEVTAB_ENTRY",
    deviceId: 0x18,
  });
  deepEqual(decodeCommand(...commands.invalidateInterruptTable(0x18)), {
    op: "INVALIDATE_INTERRUPT_TABLE",
    deviceId: 0x18,
  });
  deepEqual(decodeCommand(...commands.prefetchPages({ deviceId: 3, address: 0x7000, count: 2 })), {
    op: "PREFETCH_IOMMU_PAGES",
    deviceId: 3,
    count: 2,
    address: 0x7000,
    invalidate: false,
  });
  deepEqual(decodeCommand(...store(5n)), {
    op: "COMPLETION_WAIT",
    store: true,
    interrupt: false,
    flush: false,
    storeAddress: SEM,
    storeData: 5n,
  });
});

Deno.test("Reserved bits of every opcode (the LEGAL masks) make the command illegal; legal bits do not", () => {
  for (const [code, [legal0, legal1]] of Object.entries(LEGAL)) {
    for (const [word, legal] of [[0, legal0], [1, legal1]] as const) {
      for (let n = 0; n < (word === 0 ? 60 : 64); n++) {
        const bit = b(n);
        const words = word === 0 ? op(Number(code), bit) : op(Number(code), 0n, bit);
        const decoded = decodeCommand(...words);
        const what = `opcode ${code}, q${word} bit ${n}`;
        if (legal & bit) notEqual(decoded.op, "ILLEGAL", what);
        else equal(decoded.op, "ILLEGAL", what);
      }
    }
  }
  // INVALIDATE_DEVTAB_ENTRY tolerates every reserved bit at once.
  equal(
    decodeCommand(0x2fff_ffff_ffff_ffffn, ~0n & 0xffff_ffff_ffff_ffffn).op,
    "INVALIDATE_DEVTAB_ENTRY",
  );
  // Opcodes 0, 7 and 9–15 are illegal whatever the operands.
  for (const code of [0, 7, 9, 10, 11, 12, 13, 14, 15]) {
    equal(decodeCommand(...op(code)).op, "ILLEGAL", `opcode ${code}`);
  }
});

/** One illegal command per row, as it goes through the ring. */
const ILLEGAL_ROWS: Array<{ name: string; words: [bigint, bigint] }> = [
  { name: "opcode 0", words: op(0) },
  { name: "COMPLETE_PPR_REQUEST", words: op(7, 0x18n) },
  ...[9, 10, 11, 12, 13, 14, 15].map((code) => ({ name: `opcode ${code}`, words: op(code) })),
  { name: "COMPLETION_WAIT q0 bit 52", words: op(1, b(52)) },
  { name: "COMPLETION_WAIT q0 bit 59", words: op(1, b(59) | 1n | BigInt(SEM)) },
  { name: "INVALIDATE_IOMMU_PAGES q0 bit 20", words: op(3, b(20)) },
  { name: "INVALIDATE_IOMMU_PAGES q0 bit 48", words: op(3, b(48)) },
  { name: "INVALIDATE_IOMMU_PAGES q1 bit 3", words: op(3, 0n, b(3)) },
  { name: "INVALIDATE_IOTLB_PAGES q0 bit 16", words: op(4, b(16)) },
  { name: "INVALIDATE_IOTLB_PAGES q1 bit 2 (GN)", words: op(4, 0n, b(2)) },
  { name: "INVALIDATE_INTERRUPT_TABLE q0 bit 16", words: op(5, b(16)) },
  { name: "INVALIDATE_INTERRUPT_TABLE q1 bit 0", words: op(5, 0n, 1n) },
  { name: "PREFETCH_IOMMU_PAGES q0 bit 32 (PASID)", words: op(6, b(32)) },
  { name: "PREFETCH_IOMMU_PAGES q1 bit 2 (GN)", words: op(6, 0n, b(2)) },
  { name: "INVALIDATE_IOMMU_ALL q0 bit 0", words: op(8, 1n) },
  { name: "INVALIDATE_IOMMU_ALL q1 bit 63", words: op(8, 0n, b(63)) },
];

Deno.test("An illegal command: ILLEGAL_COMMAND_ERROR at its address, CmdBufRun cleared, head left on it", async () => {
  for (const row of ILLEGAL_ROWS) {
    const rig = new Rig();
    // Two good commands, the illegal one, then a store that must not run.
    await rig.submit([store(1n, 0), commands.invalidateAll(), row.words, store(2n, 1)]);
    const failing = CMD_BUF + 2 * 16;
    assertEvents(
      rig.events(),
      [{ name: "ILLEGAL_COMMAND_ERROR", address: BigInt(failing) }],
      row.name,
    );
    equal(rig.memory.read64(SEM), 1n, `${row.name}: the earlier store ran`);
    equal(rig.memory.read64(SEM + 8), 0n, `${row.name}: the later store did not`);
    equal(rig.status() & S.CMD_BUF_RUN, 0n, `${row.name}: CmdBufRun cleared`);
    equal(rig.read(R.CMD_HEAD), 0x20n, `${row.name}: head at the failing command`);
    equal(rig.read(R.CMD_TAIL), 0x40n, `${row.name}: tail unchanged`);
    equal(rig.iommu.counters.commands, 2, `${row.name}: two commands executed`);
  }
});

Deno.test("After an illegal command nothing runs until software clears CmdBufEn, fixes head/tail and sets CmdBufEn", async () => {
  for (const fix of ["skip the command", "rewrite the command in place", "reset head and tail"]) {
    const rig = new Rig();
    await rig.submit([op(9), store(2n, 1)]);
    equal(rig.memory.read64(SEM + 8), 0n);
    // Neither rewriting the tail nor rewriting Control unchanged restarts it.
    rig.write(R.CMD_TAIL, rig.read(R.CMD_TAIL), 4);
    rig.setControl(0n);
    rig.setControl(C.CMD_BUF_EN);
    await rig.iommu.idle();
    equal(rig.memory.read64(SEM + 8), 0n, `${fix}: still stopped`);
    // Software's fix, with CmdBufEn cleared (Linux's amd_iommu_reset_cmd_buffer order).
    rig.setControl(0n, C.CMD_BUF_EN);
    if (fix === "skip the command") {
      rig.write(R.CMD_HEAD, 0x10n, 4);
    } else if (fix === "rewrite the command in place") {
      rig.memory.write64(CMD_BUF, commands.invalidateAll()[0]);
    } else {
      rig.write(R.CMD_HEAD, 0n, 4);
      rig.write(R.CMD_TAIL, 0n, 4);
      rig.tail = 0;
    }
    equal(rig.memory.read64(SEM + 8), 0n, `${fix}: nothing ran while CmdBufEn = 0`);
    rig.setControl(C.CMD_BUF_EN);
    await rig.iommu.idle();
    if (fix === "reset head and tail") await rig.submit([store(2n, 1)]);
    equal(rig.memory.read64(SEM + 8), 2n, `${fix}: the later command ran`);
    equal(rig.status() & S.CMD_BUF_RUN, S.CMD_BUF_RUN, `${fix}: running again`);
    equal(rig.read(R.CMD_HEAD), rig.read(R.CMD_TAIL), `${fix}: drained`);
    equal(rig.events().length, 1, `${fix}: one ILLEGAL_COMMAND_ERROR in all`);
  }
});

Deno.test("INVALIDATE_DEVTAB_ENTRY tolerates reserved bits", async () => {
  const rig = new Rig();
  await rig.submit([[0x2fff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn], store(3n)]);
  assertEvents(rig.events(), [], "no event");
  equal(rig.memory.read64(SEM), 3n);
  equal(rig.iommu.counters.invalidations, 1);
});

Deno.test("COMPLETION_WAIT: s stores the 64-bit data, i sets ComWaitInt (interrupt only with ComWaitIntEn), s=0 i=0 is a no-op", async () => {
  const rows = [
    { s: true, i: false, comWaitIntEn: false, data: 0xdead_beef_0123_4567n },
    { s: true, i: false, comWaitIntEn: true, data: 0xffff_ffff_ffff_ffffn },
    { s: false, i: true, comWaitIntEn: false, data: 7n },
    { s: false, i: true, comWaitIntEn: true, data: 7n },
    { s: true, i: true, comWaitIntEn: true, data: 0x8000_0000_0000_0001n },
    { s: false, i: false, comWaitIntEn: true, data: 0x1234n },
  ];
  for (const row of rows) {
    const rig = new Rig({ control: row.comWaitIntEn ? C.COM_WAIT_INT_EN : 0n });
    rig.memory.write64(SEM, 0x5555n);
    const q0 = (1n << 60n) | BigInt(SEM) | (row.s ? 1n : 0n) | (row.i ? 2n : 0n);
    await rig.submit([[q0, row.data]]);
    const what = `s=${+row.s} i=${+row.i} ComWaitIntEn=${+row.comWaitIntEn}`;
    equal(rig.memory.read64(SEM), row.s ? row.data : 0x5555n, `${what}: store`);
    equal((rig.status() & S.COM_WAIT_INT) !== 0n, row.i, `${what}: ComWaitInt`);
    const raised = row.i && row.comWaitIntEn;
    deepEqual(rig.irq, raised ? [true] : [], `${what}: setIrq calls`);
    equal(rig.iommu.irqLevel, raised, `${what}: interrupt level`);
    assertEvents(rig.events(), [], what);
    equal(rig.status() & S.CMD_BUF_RUN, S.CMD_BUF_RUN, `${what}: still running`);
    // W1C of ComWaitInt drops the line.
    rig.write(R.STATUS, S.COM_WAIT_INT, 4);
    equal(rig.status() & S.COM_WAIT_INT, 0n);
    deepEqual(rig.irq, raised ? [true, false] : [], `${what}: lowered after W1C`);
  }
});

Deno.test("COMPLETION_WAIT storing outside RAM: COMMAND_HARDWARE_ERROR Type 1, the processor stops", async () => {
  for (const address of [NOT_RAM, 0xfed8_0000, 0x000f_ffff_ffff_fff8]) {
    const rig = new Rig();
    await rig.submit([
      store(1n),
      commands.completionWait({ storeAddress: address, storeData: 9n }),
      store(2n, 1),
    ]);
    const what = `store at ${hx(address)}`;
    assertEvents(rig.events(), [{
      name: "COMMAND_HARDWARE_ERROR",
      type: 1,
      address: BigInt(address),
    }], what);
    equal(rig.status() & S.CMD_BUF_RUN, 0n, `${what}: CmdBufRun cleared`);
    equal(rig.read(R.CMD_HEAD), 0x10n, `${what}: head at the failing command`);
    equal(rig.memory.read64(SEM + 8), 0n, `${what}: the next command did not run`);
  }
});

Deno.test("A command fetched from outside RAM: COMMAND_HARDWARE_ERROR Type 1 with the command address", async () => {
  const rig = new Rig();
  rig.setControl(0n, C.CMD_BUF_EN);
  rig.write(R.CMD_BUF_BASE, BigInt(NOT_RAM) | (9n << 56n));
  rig.setControl(C.CMD_BUF_EN);
  rig.write(R.CMD_TAIL, 0x20n, 4);
  await rig.iommu.idle();
  assertEvents(rig.events(), [{
    name: "COMMAND_HARDWARE_ERROR",
    type: 1,
    address: BigInt(NOT_RAM),
  }], "fetch");
  equal(rig.status() & S.CMD_BUF_RUN, 0n, "CmdBufRun cleared");
  equal(rig.read(R.CMD_HEAD), 0n, "head at the failing command");
});

Deno.test("The ring wraps: a 256-entry ring filled to its end and past it, in order", async () => {
  const rig = new Rig({ comLen: 8 });
  equal(rig.cmdSize, 4096);
  let n = 0;
  // 250 commands, then 200 more that wrap past the end (software never fills the last slot).
  for (const batch of [250, 5, 1, 200]) {
    const list: Array<[bigint, bigint]> = [];
    for (let i = 0; i < batch; i++, n++) list.push(store(BigInt(n + 1), n % 512));
    await rig.submit(list);
    equal(rig.read(R.CMD_HEAD), BigInt((n * 16) % 4096), `after ${n} commands: head`);
    equal(rig.read(R.CMD_TAIL), BigInt((n * 16) % 4096), `after ${n} commands: tail`);
  }
  equal(rig.iommu.counters.commands, n);
  for (let i = 0; i < n; i++) equal(rig.memory.read64(SEM + (i % 512) * 8), BigInt(i + 1));
  // Executed in ring order: the stores happened in sequence 1 … n.
  const stored = rig.memory.writes.filter((w) => w.address >= SEM && w.address < SEM + PAGE);
  deepEqual(stored.map((w) => w.value), Array.from({ length: n }, (_, i) => BigInt(i + 1)));
  assertEvents(rig.events(), [], "no event");
});

Deno.test("CMD_HEAD is writable only while CmdBufRun = 0; head/tail writes at or beyond the size are ignored", () => {
  const rig = new Rig(); // 512 entries: 8 KiB
  const rows: Array<
    { name: string; reg: number; value: bigint; running: boolean; expected: bigint }
  > = [
    { name: "head while running", reg: R.CMD_HEAD, value: 0x100n, running: true, expected: 0n },
    {
      name: "head while stopped",
      reg: R.CMD_HEAD,
      value: 0x100n,
      running: false,
      expected: 0x100n,
    },
    { name: "head = size", reg: R.CMD_HEAD, value: 0x2000n, running: false, expected: 0x100n },
    { name: "head beyond", reg: R.CMD_HEAD, value: 0x7fff0n, running: false, expected: 0x100n },
    { name: "head last entry", reg: R.CMD_HEAD, value: 0x1ff0n, running: false, expected: 0x1ff0n },
    {
      name: "head low bits masked",
      reg: R.CMD_HEAD,
      value: 0x12fn,
      running: false,
      expected: 0x120n,
    },
    { name: "tail = size", reg: R.CMD_TAIL, value: 0x2000n, running: false, expected: 0n },
    { name: "tail beyond", reg: R.CMD_TAIL, value: 0x4_0000n, running: false, expected: 0n },
    { name: "tail last entry", reg: R.CMD_TAIL, value: 0x1ff0n, running: false, expected: 0x1ff0n },
    {
      name: "tail low bits masked",
      reg: R.CMD_TAIL,
      value: 0x10fn,
      running: false,
      expected: 0x100n,
    },
  ];
  for (const row of rows) {
    // The processor stays idle: head == tail while running, CmdBufEn = 0 otherwise.
    if (row.running) rig.setControl(C.CMD_BUF_EN);
    else rig.setControl(0n, C.CMD_BUF_EN);
    equal((rig.status() & S.CMD_BUF_RUN) !== 0n, row.running, row.name);
    rig.write(row.reg, row.value, 4);
    equal(rig.read(row.reg), row.expected, row.name);
  }
});

Deno.test("CmdBufBase: ignored while running, ComLen < 8 ignored, a write resets head and tail", () => {
  const rig = new Rig();
  const base = BigInt(CMD_BUF) | (9n << 56n);
  // Running: ignored.
  rig.write(R.CMD_BUF_BASE, 0x30_0000n | (8n << 56n));
  equal(rig.read(R.CMD_BUF_BASE), base, "ignored while CmdBufRun");
  rig.setControl(0n, C.CMD_BUF_EN);
  rig.write(R.CMD_HEAD, 0x40n, 4);
  rig.write(R.CMD_TAIL, 0x80n, 4);
  for (const comLen of [0n, 1n, 7n]) {
    rig.write(R.CMD_BUF_BASE, 0x30_0000n | (comLen << 56n));
    equal(rig.read(R.CMD_BUF_BASE), base, `ComLen ${comLen} ignored`);
    equal(rig.read(R.CMD_HEAD), 0x40n, `ComLen ${comLen}: head kept`);
  }
  rig.write(R.CMD_BUF_BASE, 0x30_0000n | (15n << 56n) | 0xfffn);
  equal(rig.read(R.CMD_BUF_BASE), 0x30_0000n | (15n << 56n), "accepted, masked");
  equal(rig.read(R.CMD_HEAD), 0n, "head reset");
  equal(rig.read(R.CMD_TAIL), 0n, "tail reset");
  // ComLen 15: 32768 entries, 512 KiB: the last entry is now a legal tail.
  rig.write(R.CMD_TAIL, 0x7fff0n);
  equal(rig.read(R.CMD_TAIL), 0x7fff0n);
});

Deno.test("Processing starts only when the tail is written, or CmdBufEn/IommuEn turn on with head ≠ tail", async () => {
  const rows: Array<
    {
      name: string;
      setup: Partial<{ cmdBufEn: boolean; iommuEn: boolean }>;
      start: (rig: Rig) => void;
    }
  > = [
    { name: "tail write", setup: {}, start: (r) => r.write(R.CMD_TAIL, BigInt(r.tail), 4) },
    {
      name: "CmdBufEn after the tail",
      setup: { cmdBufEn: false },
      start: (r) => r.setControl(C.CMD_BUF_EN),
    },
    {
      name: "IommuEn after the tail",
      setup: { iommuEn: false },
      start: (r) => r.setControl(C.IOMMU_EN),
    },
  ];
  for (const row of rows) {
    const rig = new Rig({ enable: row.setup.iommuEn ?? true });
    if (row.setup.cmdBufEn === false) rig.setControl(0n, C.CMD_BUF_EN);
    rig.queue([store(11n)]);
    await rig.iommu.idle();
    equal(rig.memory.read64(SEM), 0n, `${row.name}: written to memory only`);
    // Other register writes do not start it.
    rig.write(R.EVT_HEAD, 0n, 4);
    rig.write(R.STATUS, 0n, 4);
    rig.write(R.EXCL_BASE, 0n);
    await rig.iommu.idle();
    equal(rig.memory.read64(SEM), 0n, `${row.name}: still not run`);
    if (row.name !== "tail write") {
      rig.write(R.CMD_TAIL, BigInt(rig.tail), 4);
      await rig.iommu.idle();
      equal(rig.memory.read64(SEM), 0n, `${row.name}: the tail alone does not run it`);
    }
    row.start(rig);
    await rig.iommu.idle();
    equal(rig.memory.read64(SEM), 11n, `${row.name}: ran`);
  }
});

Deno.test("Invalidation commands complete and are counted; PREFETCH and INVALIDATE_INTERRUPT_TABLE are legal", async () => {
  const rows: Array<{ name: string; words: [bigint, bigint]; invalidations: number }> = [
    {
      name: "INVALIDATE_IOMMU_PAGES one page",
      words: commands.invalidatePages({ domainId: 3, start: 0x5000, size: PAGE }),
      invalidations: 1,
    },
    {
      name: "INVALIDATE_IOMMU_PAGES all",
      words: commands.invalidatePages({ domainId: 3 }),
      invalidations: 1,
    },
    { name: "INVALIDATE_IOMMU_ALL", words: commands.invalidateAll(), invalidations: 1 },
    {
      name: "INVALIDATE_DEVTAB_ENTRY",
      words: commands.invalidateDevtabEntry(0x18),
      invalidations: 1,
    },
    {
      name: "INVALIDATE_IOTLB_PAGES",
      words: commands.invalidateIotlbPages({ deviceId: 0x18 }),
      invalidations: 1,
    },
    {
      name: "INVALIDATE_INTERRUPT_TABLE",
      words: commands.invalidateInterruptTable(0x18),
      invalidations: 0,
    },
    {
      name: "PREFETCH_IOMMU_PAGES",
      words: commands.prefetchPages({ deviceId: 0x18, address: 0x5000, count: 4 }),
      invalidations: 0,
    },
    { name: "COMPLETION_WAIT no-op", words: op(1), invalidations: 0 },
  ];
  for (const row of rows) {
    const rig = new Rig();
    await rig.submit([row.words, store(1n)]);
    assertEvents(rig.events(), [], row.name);
    equal(rig.memory.read64(SEM), 1n, `${row.name}: completed before the store`);
    equal(rig.iommu.counters.invalidations, row.invalidations, `${row.name}: invalidations`);
    equal(rig.iommu.counters.commands, 2, `${row.name}: commands`);
    equal(rig.status() & S.CMD_BUF_RUN, S.CMD_BUF_RUN, row.name);
  }
});

Deno.test("decodeRange: S = 0 is one page, S = 1 the aligned 2^(n+1) bytes, 0x7FFF_FFFF_FFFF_F000 everything", () => {
  const rows: Array<{ address: bigint; s: boolean; start: number; end: number }> = [
    { address: 0n, s: false, start: 0, end: 0xfff },
    { address: 0x5000n, s: false, start: 0x5000, end: 0x5fff },
    { address: 0x5fffn, s: false, start: 0x5000, end: 0x5fff }, // bits 11:0 ignored
    { address: 0x0n, s: true, start: 0, end: 0x1fff }, // bit 12 clear: 8 KiB
    { address: 0x2000n, s: true, start: 0x2000, end: 0x3fff },
    { address: 0x11000n, s: true, start: 0x1_0000, end: 0x1_3fff },
    { address: 0x2ff000n, s: true, start: 0x20_0000, end: 0x3f_ffff },
    { address: 0xff000n, s: true, start: 0, end: 0x1f_ffff },
    { address: 0x4_3fff_f000n, s: true, start: 0x4_0000_0000, end: 0x4_7fff_ffff },
    { address: 0x7_ffff_ffff_f000n, s: true, start: 0, end: 2 ** 52 - 1 },
    { address: 0x7fff_ffff_ffff_f000n, s: true, start: 0, end: MAX_ADDRESS },
    { address: 0x7fff_ffff_ffff_f003n, s: true, start: 0, end: MAX_ADDRESS },
    { address: 0xffff_ffff_ffff_f000n, s: true, start: 0, end: MAX_ADDRESS },
  ];
  for (const row of rows) {
    deepEqual(
      decodeRange(row.address, row.s),
      { start: row.start, end: row.end },
      `${hx(row.address)} S=${+row.s}`,
    );
  }
});

Deno.test("encodeRange round-trips through decodeRange for aligned power-of-two ranges", () => {
  for (let shift = 12; shift <= 52; shift++) {
    const size = 2 ** shift;
    for (const multiple of [0, 1, 3, 7]) {
      const start = multiple * size;
      if (start + size - 1 > MAX_ADDRESS) continue;
      const encoded = encodeRange(start, size);
      const s = (encoded & 1n) === 1n;
      equal(s, size > PAGE, `size 2^${shift}: S bit`);
      deepEqual(
        decodeRange(encoded, s),
        { start, end: start + size - 1 },
        `start ${hx(start)}, size 2^${shift}`,
      );
    }
  }
  // "Everything" both ways.
  equal(encodeRange(), 0x7fff_ffff_ffff_f001n);
  deepEqual(decodeRange(encodeRange(), true), { start: 0, end: MAX_ADDRESS });
  ok(encodeRange(0, 2 ** 53) === 0x7fff_ffff_ffff_f001n);
});
