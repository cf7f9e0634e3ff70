// amd-vi.md §1 (registers) as far as §§2–5 depend on it: 4- and 8-byte
// accesses with merged 32-bit halves, ExtFeature and what Linux derives from
// it, Control's unsupported bits, the base registers' masks and unused offsets.
import { equal } from "node:assert/strict";
import { AMD_VI_EXT_FEATURE, AmdViStatus } from "../../src/iommu/amd_vi_registers.ts";
import { AmdViIommu } from "../../src/iommu/amd_vi.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { C, hx, R, Rig } from "./rig.ts";

/** A fresh IOMMU at its reset state. */
function fresh(): AmdViIommu {
  return new AmdViIommu(new GuestMemory({ size: 1 << 20 }));
}

Deno.test("32-bit halves merge into the 64-bit register (low then high, high then low)", () => {
  const rows: Array<{ reg: number; value: bigint; expected: bigint }> = [
    { reg: R.DEV_TAB_BASE, value: 0x000f_1234_5678_9001n, expected: 0x000f_1234_5678_9001n },
    { reg: R.DEV_TAB_BASE, value: 0x0000_0001_0000_01ffn, expected: 0x0000_0001_0000_01ffn },
    // Bits 11:9 and 63:52 are not part of DevTabBase.
    { reg: R.DEV_TAB_BASE, value: 0xfff0_0000_0000_0e00n, expected: 0n },
    { reg: R.EXCL_BASE, value: 0x0000_0002_4000_0003n, expected: 0x0000_0002_4000_0003n },
    { reg: R.EXCL_LIMIT, value: 0x0000_0002_4fff_f000n, expected: 0x0000_0002_4fff_ffffn },
  ];
  for (const row of rows) {
    for (const order of ["low-high", "high-low", "8-byte"]) {
      const iommu = fresh();
      const lo = row.value & 0xffff_ffffn;
      const hi = row.value >> 32n;
      if (order === "low-high") {
        iommu.writeRegister(row.reg, 4, lo);
        iommu.writeRegister(row.reg + 4, 4, hi);
      } else if (order === "high-low") {
        iommu.writeRegister(row.reg + 4, 4, hi);
        iommu.writeRegister(row.reg, 4, lo);
      } else {
        iommu.writeRegister(row.reg, 8, row.value);
      }
      const what = `${hx(row.reg)} ← ${hx(row.value)} (${order})`;
      equal(iommu.readRegister(row.reg, 8), row.expected, what);
      equal(iommu.readRegister(row.reg, 4), row.expected & 0xffff_ffffn, `${what}: low half`);
      equal(iommu.readRegister(row.reg + 4, 4), row.expected >> 32n, `${what}: high half`);
    }
  }
});

Deno.test("CmdBufBase and EvtLogBase written as two 32-bit halves, low then high (x86 memcpy_toio)", () => {
  // Regression (fixed): amd-vi.md §1 says to accept 4-byte accesses and merge the 32-bit
  // halves. AmdViIommu.#write64 applies the "ComLen/EventLen < 8 → ignore"
  // rule to the merged value of each half write, so the low-half write (merged
  // with a high half whose length is still 0) is dropped, and the high-half write
  // then stores a base whose bits 31:12 are 0. Linux writes these registers
  // with memcpy_toio(), which on x86-64 issues two 4-byte movsl stores, low half
  // first. Expected: base | length; actual: only the high half's bits.
  const rows = [
    { reg: R.CMD_BUF_BASE, value: 0x0900_0000_0020_0000n },
    { reg: R.EVT_LOG_BASE, value: 0x0900_0000_0021_0000n },
    { reg: R.CMD_BUF_BASE, value: 0x0800_0001_0000_3000n },
  ];
  for (const row of rows) {
    const iommu = fresh();
    iommu.writeRegister(row.reg, 4, row.value & 0xffff_ffffn);
    iommu.writeRegister(row.reg + 4, 4, row.value >> 32n);
    equal(iommu.readRegister(row.reg, 8), row.value, `${hx(row.reg)} ← ${hx(row.value)}`);
  }
});

Deno.test("A half write keeps the other half", () => {
  const iommu = fresh();
  iommu.writeRegister(R.DEV_TAB_BASE, 8, 0x0000_0003_0010_0001n);
  iommu.writeRegister(R.DEV_TAB_BASE, 4, 0x0020_0000n);
  equal(iommu.readRegister(R.DEV_TAB_BASE, 8), 0x0000_0003_0020_0000n);
  iommu.writeRegister(R.DEV_TAB_BASE + 4, 4, 0x5n);
  equal(iommu.readRegister(R.DEV_TAB_BASE, 8), 0x0000_0005_0020_0000n);
});

Deno.test("CmdBufBase and EvtLogBase written as 8 bytes read back their base and length", () => {
  const rig = new Rig({ enable: false });
  rig.setControl(0n, C.CMD_BUF_EN | C.EVENT_LOG_EN);
  const rows: Array<{ reg: number; value: bigint; expected: bigint }> = [
    { reg: R.CMD_BUF_BASE, value: 0x0900_0000_0030_0000n, expected: 0x0900_0000_0030_0000n },
    { reg: R.CMD_BUF_BASE, value: 0xf80f_ffff_ffff_ffffn, expected: 0x080f_ffff_ffff_f000n },
    { reg: R.EVT_LOG_BASE, value: 0x0f00_0001_0000_0000n, expected: 0x0f00_0001_0000_0000n },
    { reg: R.EVT_LOG_BASE, value: 0x0800_0000_0031_0fffn, expected: 0x0800_0000_0031_0000n },
  ];
  for (const row of rows) {
    rig.write(row.reg, row.value);
    equal(rig.read(row.reg), row.expected, `${hx(row.reg)} ← ${hx(row.value)}`);
  }
});

Deno.test("ExtFeature is read-only 0x841: PreFSup, IASup, HATS = 2, and what Linux reads from it", () => {
  const iommu = fresh();
  equal(AMD_VI_EXT_FEATURE, 0x841n);
  equal(iommu.readRegister(R.EXT_FEATURE, 8), 0x841n);
  equal(iommu.readRegister(R.EXT_FEATURE, 4), 0x841n);
  equal(iommu.readRegister(R.EXT_FEATURE + 4, 4), 0n);
  iommu.writeRegister(R.EXT_FEATURE, 8, 0xffff_ffff_ffff_ffffn);
  iommu.writeRegister(R.EXT_FEATURE, 4, 0n);
  equal(iommu.readRegister(R.EXT_FEATURE, 8), 0x841n, "writes ignored");
  const efr = iommu.readRegister(R.EXT_FEATURE, 8);
  const bit = (n: number) => Number((efr >> BigInt(n)) & 1n);
  // Linux's amd_iommu_types.h FEATURE_* bits and early_amd_iommu_init.
  const rows: Array<[string, number]> = [
    ["PreFSup (0)", bit(0)],
    ["PPRSup (1)", bit(1)],
    ["XTSup (2)", bit(2)],
    ["NXSup (3)", bit(3)],
    ["GTSup (4)", bit(4)],
    ["IASup (6): Linux sends INVALIDATE_IOMMU_ALL", bit(6)],
    ["GASup (7)", bit(7)],
    ["HESup (8)", bit(8)],
    ["PCSup (9)", bit(9)],
  ];
  const expected = [1, 0, 0, 0, 0, 1, 0, 0, 0];
  for (const [i, [name, value]] of rows.entries()) equal(value, expected[i], name);
  const hats = Number((efr >> 10n) & 3n);
  equal(hats, 2, "HATS");
  equal(hats + 4, 6, "Linux: amd_iommu_hpt_level = HATS + 4 = 6 levels");
});

Deno.test("Control: bits 12:0 are stored, unsupported bits (13 and up) read as zero", () => {
  const rows: Array<{ value: bigint; expected: bigint }> = [
    { value: 0xffff_ffff_ffff_ffffn, expected: 0x1fffn },
    { value: 1n << 59n, expected: 0n }, // IRTCacheDis: Linux probes its writability
    { value: (1n << 13n) | (1n << 14n) | (1n << 15n) | (1n << 16n) | (1n << 17n), expected: 0n },
    { value: 1n << 50n, expected: 0n }, // XTEn
    { value: 0x1fffn, expected: 0x1fffn },
    { value: 4n << 5n, expected: 4n << 5n }, // InvTimeOut = 1 s, as Linux writes it
    { value: C.COHERENT | C.ISOC | C.PASS_PW | C.RES_PASS_PW | C.HT_TUN_EN, expected: 0xf02n },
  ];
  for (const row of rows) {
    const iommu = fresh();
    iommu.writeRegister(R.CONTROL, 8, row.value);
    equal(iommu.readRegister(R.CONTROL, 8), row.expected, hx(row.value));
    equal(iommu.readRegister(R.CONTROL + 4, 4), 0n, `${hx(row.value)}: high half`);
  }
});

Deno.test("Unused offsets read 0 and ignore writes", () => {
  const offsets = [
    0x38,
    0x40,
    0x48,
    0x50,
    0x58,
    0xe0,
    0x100,
    0x180,
    0x1000,
    0x1ff8,
    0x2028,
    0x2030,
    0x2090,
    0x3ff8,
  ];
  const iommu = fresh();
  for (const offset of offsets) {
    iommu.writeRegister(offset, 8, 0xffff_ffff_ffff_ffffn);
    iommu.writeRegister(offset + 4, 4, 0xffff_ffffn);
    equal(iommu.readRegister(offset, 8), 0n, hx(offset));
    equal(iommu.readRegister(offset, 4), 0n, `${hx(offset)} low`);
    equal(iommu.readRegister(offset + 4, 4), 0n, `${hx(offset)} high`);
  }
  // And the real registers were not disturbed.
  for (const reg of Object.values(R)) {
    if (reg === R.EXCL_LIMIT) equal(iommu.readRegister(reg, 8), 0xfffn, hx(reg));
    else if (reg === R.EXT_FEATURE) equal(iommu.readRegister(reg, 8), 0x841n, hx(reg));
    else equal(iommu.readRegister(reg, 8), 0n, hx(reg));
  }
});

Deno.test("Head and tail registers accept 4-byte accesses (Linux writel/readl)", () => {
  const rig = new Rig();
  rig.setControl(0n, C.CMD_BUF_EN | C.EVENT_LOG_EN);
  rig.write(R.CMD_HEAD, 0x30n, 4);
  rig.write(R.CMD_TAIL, 0x30n, 4);
  rig.write(R.EVT_HEAD, 0x50n, 4);
  rig.write(R.EVT_TAIL, 0x60n, 4);
  equal(rig.read(R.CMD_HEAD, 4), 0x30n);
  equal(rig.read(R.CMD_TAIL, 4), 0x30n);
  equal(rig.read(R.EVT_HEAD, 4), 0x50n);
  equal(rig.read(R.EVT_TAIL, 4), 0x60n);
  equal(rig.read(R.EVT_TAIL + 4, 4), 0n);
  // The high half of a head/tail register is reserved: writing it changes nothing.
  rig.write(R.CMD_TAIL + 4, 0xffff_ffffn, 4);
  equal(rig.read(R.CMD_TAIL), 0x30n);
  equal(rig.status() & AmdViStatus.CMD_BUF_RUN, 0n);
});
