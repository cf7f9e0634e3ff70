import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  PciCommand,
  PciConfig,
  PciFunction,
  type PciFunctionSpec,
  PciStatus,
} from "../../src/pci/pci_function.ts";

/** The edu function, as the device describes itself. */
const EDU: PciFunctionSpec = {
  vendorId: 0x1234,
  deviceId: 0x11e8,
  revision: 0x10,
  classCode: 0x00ff00,
  interruptPin: 1,
  bars: [{ index: 0, kind: "mmio", size: 0x10_0000 }],
  capabilities: [{
    offset: 0x40,
    id: 0x05,
    body: [0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    writeMask: [0x00, 0x00, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
  }],
};

/** A function with every kind of BAR. */
const ALL_BARS: PciFunctionSpec = {
  vendorId: 0x8086,
  deviceId: 0x100e,
  classCode: 0x020000,
  bars: [
    { index: 0, kind: "mmio", size: 0x2_0000 }, // 128 KiB, 32-bit
    { index: 1, kind: "pio", size: 0x40 },
    { index: 2, kind: "mmio", size: 0x4000, is64: true }, // uses 2 and 3
    { index: 4, kind: "mmio", size: 2 ** 33, is64: true, prefetchable: true }, // 4 and 5
  ],
};

/** Deterministic 32-bit PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function dump(fn: PciFunction): number[] {
  return Array.from({ length: 256 }, (_, i) => fn.read(i, 1));
}

// ---------------------------------------------------------------------------
// Reset values

Deno.test("PciFunction: reset values of the edu function", () => {
  const fn = new PciFunction(EDU);
  const dwords: Array<[number, number]> = [
    [0x00, 0x11e81234],
    [0x04, 0x0010_0000], // status: capability list; command 0
    [0x08, 0x00ff0010], // class 00ff00, revision 0x10
    [0x0c, 0x0000_0000], // header type 0
    [0x10, 0x0000_0000], // BAR0: 32-bit memory, not prefetchable
    [0x14, 0],
    [0x2c, 0x11001af4], // subsystem 1af4:1100, as QEMU
    [0x34, 0x40], // capability pointer
    [0x3c, 0x0000_0100], // pin INTA, line 0
    [0x40, 0x0080_0005], // MSI cap: id 5, next 0, control 0x0080 (64-bit)
  ];
  for (const [offset, value] of dwords) {
    equal(fn.read(offset, 4), value, `dword 0x${offset.toString(16)}`);
  }
  equal(fn.read(PciConfig.VENDOR_ID, 2), 0x1234);
  equal(fn.read(PciConfig.DEVICE_ID, 2), 0x11e8);
  equal(fn.read(PciConfig.STATUS, 2), PciStatus.CAP_LIST);
  equal(fn.read(PciConfig.INTERRUPT_PIN, 1), 1);
  equal(fn.command, 0);
  equal(fn.busMaster, false);
  equal(fn.intxDisabled, false);
});

Deno.test("PciFunction: defaults and spec overrides", () => {
  const plain = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1000, classCode: 0x020000 });
  equal(plain.read(0x06, 2), 0, "no capability list bit without capabilities");
  equal(plain.read(0x34, 1), 0);
  equal(plain.read(0x08, 4), 0x02000000);
  equal(plain.read(0x3d, 1), 0);
  equal(plain.read(0x2c, 4), 0x11001af4);
  const custom = new PciFunction({
    vendorId: 0x8086,
    deviceId: 0x7010,
    classCode: 0x010180,
    revision: 0x00,
    subsystemVendorId: 0x8086,
    subsystemId: 0x1234,
    headerType: 0x80,
    interruptPin: 2,
    status: 0x0280,
    registers: { 0x40: 0x12, 0x41: 0x34 },
    registerWriteMask: { 0x40: 0x0f },
  });
  equal(custom.read(0x08, 4), 0x01018000);
  equal(custom.read(0x2c, 4), 0x12348086);
  equal(custom.read(0x0e, 1), 0x80);
  equal(custom.read(0x3d, 1), 2);
  equal(custom.read(0x06, 2), 0x0280);
  equal(custom.read(0x40, 2), 0x3412);
  custom.write(0x40, 2, 0xffff);
  equal(custom.read(0x40, 2), 0x341f, "registerWriteMask applies per bit");
});

Deno.test("PciFunction.reset restores every register", () => {
  const fn = new PciFunction(EDU);
  const initial = dump(fn);
  fn.write(0x04, 2, 0xffff);
  fn.write(0x10, 4, 0xfe00_0000);
  fn.write(0x3c, 1, 11);
  fn.write(0x0c, 1, 0x10);
  fn.write(0x44, 4, 0xfee0_0000);
  fn.setStatusBits(PciStatus.RECEIVED_MASTER_ABORT);
  ok(dump(fn).some((b, i) => b !== initial[i]));
  fn.reset();
  deepEqual(dump(fn), initial);
});

// ---------------------------------------------------------------------------
// Command and status

Deno.test("PciFunction: command write mask is 0x0507 (as QEMU)", () => {
  const fn = new PciFunction(EDU);
  fn.write(PciConfig.COMMAND, 2, 0xffff);
  equal(fn.command, 0x0507);
  equal(
    fn.command,
    PciCommand.IO | PciCommand.MEMORY | PciCommand.BUS_MASTER | PciCommand.SERR |
      PciCommand.INTX_DISABLE,
  );
  equal(fn.busMaster, true);
  equal(fn.intxDisabled, true);
  fn.write(PciConfig.COMMAND, 2, PciCommand.PARITY);
  equal(fn.command, 0, "parity error response is not writable");
  fn.write(PciConfig.COMMAND, 1, 0x04);
  equal(fn.busMaster, true);
  fn.write(PciConfig.COMMAND + 1, 1, 0x04);
  equal(fn.command, 0x0404);
  equal(fn.intxDisabled, true);
});

Deno.test("PciFunction: status error bits are write-1-to-clear, the rest read-only", () => {
  const fn = new PciFunction({ ...EDU, status: 0x0200 }); // DEVSEL medium (RO)
  fn.setStatusBits(
    PciStatus.MASTER_DATA_PARITY | PciStatus.SIGNALED_TARGET_ABORT |
      PciStatus.RECEIVED_TARGET_ABORT | PciStatus.RECEIVED_MASTER_ABORT |
      PciStatus.SIGNALED_SYSTEM_ERROR | PciStatus.DETECTED_PARITY,
  );
  equal(fn.read(PciConfig.STATUS, 2), 0xf900 | 0x0200 | PciStatus.CAP_LIST);
  fn.write(PciConfig.STATUS, 2, 0);
  equal(fn.read(PciConfig.STATUS, 2), 0xfb10, "writing 0 clears nothing");
  fn.write(PciConfig.STATUS, 2, PciStatus.RECEIVED_MASTER_ABORT);
  equal(fn.read(PciConfig.STATUS, 2), 0xdb10, "only the written bit clears");
  fn.write(PciConfig.STATUS + 1, 1, 0x80); // byte write of the high half
  equal(fn.read(PciConfig.STATUS, 2), 0x5b10);
  fn.write(PciConfig.STATUS, 2, 0xffff);
  equal(fn.read(PciConfig.STATUS, 2), 0x0210, "cap list and DEVSEL are read-only");
  // A dword write to 0x04 sets the command and clears status bits together.
  fn.setStatusBits(PciStatus.SIGNALED_TARGET_ABORT);
  fn.write(PciConfig.COMMAND, 4, 0x0800_0006);
  equal(fn.read(PciConfig.COMMAND, 4), 0x0210_0006);
});

Deno.test("PciFunction: Status bit 3 follows the INTx source and is read-only", () => {
  const fn = new PciFunction(EDU);
  let level = false;
  fn.setIntxSource(() => level);
  equal(fn.read(0x06, 2) & PciStatus.INTERRUPT, 0);
  level = true;
  equal(fn.read(0x06, 2), PciStatus.CAP_LIST | PciStatus.INTERRUPT);
  equal(fn.read(0x06, 1), 0x18);
  equal(fn.read(0x04, 4), 0x0018_0000);
  equal(fn.read(0x07, 1), 0);
  equal(fn.read(0x05, 2), 0x1800);
  fn.write(0x06, 2, 0xffff);
  equal(fn.read(0x06, 2) & PciStatus.INTERRUPT, PciStatus.INTERRUPT, "not cleared by software");
  level = false;
  equal(fn.read(0x06, 2), PciStatus.CAP_LIST);
  fn.write(0x06, 2, PciStatus.INTERRUPT);
  equal(fn.read(0x06, 2), PciStatus.CAP_LIST, "not set by software");
});

Deno.test("PciFunction: interrupt line and cache line size are read/write; identity is read-only", () => {
  const fn = new PciFunction(EDU);
  const initial = dump(fn);
  fn.write(PciConfig.INTERRUPT_LINE, 1, 0x0b);
  equal(fn.read(PciConfig.INTERRUPT_LINE, 1), 0x0b);
  fn.write(PciConfig.INTERRUPT_LINE, 2, 0xffff);
  equal(fn.read(PciConfig.INTERRUPT_LINE, 2), 0x01ff, "pin is read-only");
  fn.write(PciConfig.CACHE_LINE_SIZE, 4, 0xffff_ffff);
  equal(fn.read(PciConfig.CACHE_LINE_SIZE, 4), 0x0000_00ff, "latency, header type, BIST RO");
  for (const offset of [0x00, 0x08, 0x2c, 0x30, 0x34, 0x38]) {
    fn.write(offset, 4, 0xffff_ffff);
    fn.write(offset, 4, 0);
    equal(
      fn.read(offset, 4),
      (initial[offset]! | initial[offset + 1]! << 8 |
        initial[offset + 2]! << 16 | initial[offset + 3]! << 24) >>> 0,
      `0x${offset.toString(16)}`,
    );
  }
});

// ---------------------------------------------------------------------------
// BARs

Deno.test("PciFunction: BAR sizing returns the size mask with the type bits", () => {
  const fn = new PciFunction(ALL_BARS);
  const reset: Array<[number, number]> = [
    [0x10, 0x0000_0000],
    [0x14, 0x0000_0001], // I/O
    [0x18, 0x0000_0004], // 64-bit
    [0x1c, 0],
    [0x20, 0x0000_000c], // 64-bit prefetchable
    [0x24, 0],
  ];
  for (const [offset, value] of reset) {
    equal(fn.read(offset, 4), value, `reset 0x${offset.toString(16)}`);
  }
  for (let offset = 0x10; offset < 0x28; offset += 4) fn.write(offset, 4, 0xffff_ffff);
  const sized: Array<[number, number]> = [
    [0x10, 0xfffe_0000], // 128 KiB
    [0x14, 0xffff_ffc1], // 64 bytes of I/O
    [0x18, 0xffff_c004], // 16 KiB, 64-bit
    [0x1c, 0xffff_ffff],
    [0x20, 0x0000_000c], // 8 GiB: the low dword has no address bits
    [0x24, 0xffff_fffe],
  ];
  for (const [offset, value] of sized) {
    equal(fn.read(offset, 4), value, `sized 0x${offset.toString(16)}`);
  }
  // Type bits are read-only: writing zeros keeps them.
  for (let offset = 0x10; offset < 0x28; offset += 4) fn.write(offset, 4, 0);
  for (const [offset, value] of reset) {
    equal(fn.read(offset, 4), value, `cleared 0x${offset.toString(16)}`);
  }
});

Deno.test("PciFunction: BAR sizing of small and prefetchable 32-bit BARs", () => {
  const fn = new PciFunction({
    vendorId: 1,
    deviceId: 2,
    classCode: 0,
    bars: [
      { index: 0, kind: "mmio", size: 16 },
      { index: 1, kind: "mmio", size: 0x1000, prefetchable: true },
      { index: 2, kind: "pio", size: 4 },
      { index: 3, kind: "pio", size: 256 },
      { index: 5, kind: "mmio", size: 2 ** 31 },
    ],
  });
  const cases: Array<[number, number]> = [
    [0x10, 0xffff_fff0],
    [0x14, 0xffff_f008],
    [0x18, 0xffff_fffd],
    [0x1c, 0xffff_ff01],
    [0x20, 0], // BAR 4 is not implemented
    [0x24, 0x8000_0000],
  ];
  for (const [offset, value] of cases) {
    fn.write(offset, 4, 0xffff_ffff);
    equal(fn.read(offset, 4), value, `0x${offset.toString(16)}`);
  }
  fn.write(0x14, 4, 0xfebf_f123);
  equal(fn.read(0x14, 4), 0xfebf_f008, "address bits below the size are read-only");
});

Deno.test("PciFunction.bars: decoding needs the enable bit, a non-zero address and room below the top", () => {
  const fn = new PciFunction(ALL_BARS);
  const state = () => fn.bars().map((b) => [b.spec.index, b.address, b.decoding]);
  // Reset: nothing decodes.
  deepEqual(state(), [[0, 0, false], [1, 0, false], [2, 0, false], [4, 0, false]]);
  fn.write(0x10, 4, 0xfe00_0000);
  fn.write(0x14, 4, 0xc040);
  fn.write(0x18, 4, 0xfe10_0000);
  fn.write(0x1c, 4, 0);
  fn.write(0x20, 4, 0);
  fn.write(0x24, 4, 0x2); // 8 GiB at 8 GiB
  deepEqual(state(), [
    [0, 0xfe00_0000, false],
    [1, 0xc040, false],
    [2, 0xfe10_0000, false],
    [4, 2 * 2 ** 32, false],
  ], "command disabled");
  fn.write(0x04, 2, PciCommand.MEMORY);
  deepEqual(state().map((s) => s[2]), [true, false, true, true], "memory only");
  fn.write(0x04, 2, PciCommand.IO);
  deepEqual(state().map((s) => s[2]), [false, true, false, false], "I/O only");
  fn.write(0x04, 2, PciCommand.IO | PciCommand.MEMORY);
  deepEqual(state().map((s) => s[2]), [true, true, true, true]);
  // Address 0 does not decode.
  fn.write(0x10, 4, 0);
  equal(fn.bars()[0]!.decoding, false);
  // The sizing pattern does not decode.
  fn.write(0x10, 4, 0xffff_ffff);
  equal(fn.bars()[0]!.address, 0xfffe_0000);
  equal(fn.bars()[0]!.decoding, false);
  // A 32-bit window touching 4 GiB does not decode; one just below does.
  fn.write(0x10, 4, 0xfffc_0000);
  equal(fn.bars()[0]!.decoding, true);
  // I/O: beyond port 0xffff does not decode, the sizing pattern neither.
  fn.write(0x14, 4, 0xffc0);
  equal(fn.bars()[1]!.decoding, true, "a window ending at port 0xffff decodes");
  fn.write(0x14, 4, 0x1_0000);
  equal(fn.bars()[1]!.decoding, false);
  fn.write(0x14, 4, 0xffff_ffff);
  equal(fn.bars()[1]!.decoding, false);
  fn.write(0x14, 4, 0);
  equal(fn.bars()[1]!.decoding, false);
  // 64-bit BAR above 4 GiB.
  fn.write(0x18, 4, 0);
  fn.write(0x1c, 4, 1);
  deepEqual(fn.bars()[2]!.address, 2 ** 32);
  equal(fn.bars()[2]!.decoding, true);
  fn.write(0x1c, 4, 0x1f_ffff); // top of the 2^53 space: the window does not fit
  fn.write(0x18, 4, 0xffff_c000);
  equal(fn.bars()[2]!.decoding, false);
  fn.write(0x1c, 4, 0x20_0000); // beyond 2^53
  fn.write(0x18, 4, 0);
  equal(fn.bars()[2]!.decoding, false);
  fn.write(0x18, 4, 0xffff_ffff);
  fn.write(0x1c, 4, 0xffff_ffff);
  equal(fn.bars()[2]!.decoding, false, "64-bit sizing pattern");
  fn.write(0x18, 4, 0);
  fn.write(0x1c, 4, 0);
  equal(fn.bars()[2]!.decoding, false, "64-bit address 0");
});

Deno.test("PciFunction.bars: a 32-bit window whose end is exactly 4 GiB does not decode", () => {
  const fn = new PciFunction(EDU);
  fn.write(0x04, 2, PciCommand.MEMORY);
  fn.write(0x10, 4, 0xfff0_0000); // 1 MiB ending at 0xffffffff
  equal(fn.bars()[0]!.decoding, false);
  fn.write(0x10, 4, 0xffe0_0000);
  equal(fn.bars()[0]!.decoding, true);
  equal(fn.bars()[0]!.address, 0xffe0_0000);
});

Deno.test("PciFunction: invalid BAR specs are rejected", () => {
  const base = { vendorId: 1, deviceId: 2, classCode: 0 };
  const bad: PciFunctionSpec["bars"][] = [
    [{ index: 6, kind: "mmio", size: 16 }],
    [{ index: -1, kind: "mmio", size: 16 }],
    [{ index: 5, kind: "mmio", size: 16, is64: true }],
    [{ index: 0, kind: "mmio", size: 16 }, { index: 0, kind: "pio", size: 4 }],
    [{ index: 0, kind: "mmio", size: 16, is64: true }, { index: 1, kind: "pio", size: 4 }],
    [{ index: 0, kind: "mmio", size: 8 }],
    [{ index: 0, kind: "mmio", size: 24 }],
    [{ index: 0, kind: "pio", size: 2 }],
    [{ index: 0, kind: "pio", size: 512 }],
    [{ index: 0, kind: "pio", size: 16, is64: true }],
  ];
  for (const bars of bad) {
    throws(
      () => new PciFunction({ ...base, ...(bars ? { bars } : {}) }),
      RangeError,
      JSON.stringify(bars),
    );
  }
});

// ---------------------------------------------------------------------------
// Capabilities

Deno.test("PciFunction: capabilities are linked in order with their write masks", () => {
  const fn = new PciFunction({
    vendorId: 1,
    deviceId: 2,
    classCode: 0,
    capabilities: [
      { offset: 0x50, id: 0x05, body: [0x00, 0x00, 0x11, 0x22], writeMask: [0x01, 0, 0xff, 0xf0] },
      { offset: 0x40, id: 0x09, body: [0x04, 0xaa] },
      { offset: 0xf8, id: 0x10, body: [1, 2, 3, 4, 5, 6] }, // ends at 0xff
    ],
  });
  equal(fn.read(0x06, 2) & PciStatus.CAP_LIST, PciStatus.CAP_LIST);
  equal(fn.read(0x34, 1), 0x50);
  equal(fn.read(0x50, 2), 0x4005, "id 5, next 0x40");
  equal(fn.read(0x40, 2), 0xf809, "id 9, next 0xf8");
  equal(fn.read(0xf8, 2), 0x0010, "last: next 0");
  equal(fn.read(0x52, 4), 0x22110000);
  equal(fn.read(0x42, 2), 0xaa04);
  equal(fn.read(0xfa, 4), 0x04030201);
  // Headers and the pointer are read-only.
  fn.write(0x50, 2, 0xffff);
  fn.write(0x34, 1, 0x80);
  equal(fn.read(0x50, 2), 0x4005);
  equal(fn.read(0x34, 1), 0x50);
  // Bodies follow their write masks (default read-only).
  fn.write(0x52, 4, 0xffff_ffff);
  equal(fn.read(0x52, 4), 0xf2ff_0001);
  fn.write(0x52, 4, 0);
  equal(fn.read(0x52, 4), 0x0200_0000);
  fn.write(0x42, 2, 0);
  equal(fn.read(0x42, 2), 0xaa04);
});

Deno.test("PciFunction: capabilities at invalid offsets are rejected", () => {
  const base = { vendorId: 1, deviceId: 2, classCode: 0 };
  for (const [offset, length] of [[0x3c, 2], [0x42, 2], [0xfc, 4], [0x100, 0]] as const) {
    throws(
      () =>
        new PciFunction({
          ...base,
          capabilities: [{ offset, id: 5, body: new Array(length).fill(0) }],
        }),
      (e: unknown) => e instanceof RangeError && /^Invalid capability offset/.test(e.message),
      `offset 0x${offset.toString(16)}`,
    );
  }
});

Deno.test("PciFunction: the edu MSI capability has its enable bit hardwired to 0", () => {
  const fn = new PciFunction(EDU);
  fn.write(0x42, 2, 0xffff); // message control
  equal(fn.read(0x42, 2), 0x0080);
  fn.write(0x44, 4, 0xffff_ffff);
  equal(fn.read(0x44, 4), 0xffff_fffc, "message address bits 1:0 read-only");
  fn.write(0x48, 4, 0x1234_5678);
  equal(fn.read(0x48, 4), 0x1234_5678, "upper address");
  fn.write(0x4c, 2, 0xbeef);
  equal(fn.read(0x4c, 2), 0xbeef, "data");
  fn.write(0x4e, 2, 0xffff);
  equal(fn.read(0x4e, 2), 0, "beyond the body: read-only");
});

// ---------------------------------------------------------------------------
// Access widths and offsets

Deno.test("PciFunction: every access width at every byte offset reads the same bytes", () => {
  const fn = new PciFunction(EDU);
  fn.setIntxSource(() => true);
  fn.write(0x04, 2, 0x0507);
  fn.write(0x10, 4, 0xfe12_3456);
  fn.write(0x3c, 1, 0x0b);
  fn.write(0x44, 4, 0xfee0_1234);
  fn.write(0x0c, 1, 0x08);
  const bytes = dump(fn);
  for (let offset = 0; offset < 256; offset++) {
    for (const size of [1, 2, 4]) {
      let expected = 0;
      for (let i = size - 1; i >= 0; i--) expected = expected * 256 + (bytes[offset + i] ?? 0xff);
      equal(fn.read(offset, size), expected, `read(0x${offset.toString(16)}, ${size})`);
    }
  }
  equal(fn.read(0xfe, 4), (0xffff_0000 | (bytes[0xff]! << 8) | bytes[0xfe]!) >>> 0);
  equal(fn.read(0x100, 1), 0xff);
});

Deno.test("PciFunction: a wide write equals its byte writes, at every offset (seeded)", () => {
  const seed = 0x5eed_0001;
  const next = prng(seed);
  for (let round = 0; round < 2000; round++) {
    const wide = new PciFunction(ALL_BARS);
    const bytewise = new PciFunction(ALL_BARS);
    wide.setStatusBits(0xf900);
    bytewise.setStatusBits(0xf900);
    const size = [1, 2, 4][next() % 3]!;
    const offset = next() % (257 - size);
    const value = next() & (size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1);
    wide.write(offset, size, value);
    for (let i = 0; i < size; i++) bytewise.write(offset + i, 1, (value >>> (8 * i)) & 0xff);
    deepEqual(dump(wide), dump(bytewise), `seed ${seed} round ${round}: write(${offset}, ${size})`);
  }
});

Deno.test("PciFunction: writes straddling a dword reach both registers", () => {
  const fn = new PciFunction(EDU);
  fn.write(0x3b, 2, 0x0bff); // byte 0x3b (RO, reserved) and interrupt line 0x3c
  equal(fn.read(0x3c, 1), 0x0b);
  equal(fn.read(0x3b, 1), 0);
  fn.write(0x0f, 2, 0xff00); // BIST (RO) and the BAR's low byte (type bits RO)
  equal(fn.read(0x10, 4), 0);
  fn.write(0xfe, 4, 0xffff_ffff); // partly beyond the config space: ignored there
  equal(fn.read(0xfe, 2), 0);
});

Deno.test("PciFunction.onWrite: listeners see every write", () => {
  const fn = new PciFunction(EDU);
  const seen: Array<[number, number]> = [];
  fn.onWrite((offset, size) => seen.push([offset, size]));
  fn.write(0x04, 2, 6);
  fn.write(0x10, 4, 0xfe00_0000);
  fn.write(0x00, 4, 0); // read-only, still reported
  deepEqual(seen, [[0x04, 2], [0x10, 4], [0x00, 4]]);
});

// Regression (fixed) (src/pci/pci_function.ts, checkSpec, the size test
// `(bar.size & (bar.size - 1)) !== 0 && bar.size <= 2 ** 31`): `&` works on
// 32-bit integers, so sizes above 2^31 are never checked and fractional sizes
// are truncated first. A 64-bit BAR of 3 × 2^32 bytes, a 32-bit BAR of 4 GiB
// (its size mask computes to 0, so the BAR can never be programmed) and a
// 16.5-byte BAR are all accepted. Fix: require `Number.isSafeInteger(size)`,
// test the power of two with `2 ** Math.round(Math.log2(size)) === size` (or
// BigInt), and reject sizes > 2^31 unless `is64`.
Deno.test("PciFunction: BAR sizes that are not powers of two or too big for 32 bits are rejected", () => {
  const base = { vendorId: 1, deviceId: 2, classCode: 0 };
  const bad: NonNullable<PciFunctionSpec["bars"]>[] = [
    [{ index: 0, kind: "mmio", size: 3 * 2 ** 32, is64: true }],
    [{ index: 0, kind: "mmio", size: 2 ** 32 }],
    [{ index: 0, kind: "mmio", size: 16.5 }],
  ];
  for (const bars of bad) {
    throws(() => new PciFunction({ ...base, bars }), RangeError, JSON.stringify(bars));
  }
});
