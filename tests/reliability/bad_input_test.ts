// Rows of docs/bad_input.md that no other test proved: an IOMMU event log
// outside RAM, non-architectural 1- and 2-byte IOMMU register accesses, and
// BARs a guest programs over RAM, over the IOMMU's window or over the
// configuration ports.
import { deepEqual, equal } from "node:assert/strict";
import { AmdViStatus } from "../../src/iommu/amd_vi_registers.ts";
import { Machine } from "../../src/machine/machine.ts";
import { C, EVT_LOG, NOT_RAM, R, Rig } from "../iommu/rig.ts";

Deno.test("IOMMU event log outside RAM: entries go nowhere, the log still advances and interrupts", () => {
  const rig = new Rig({ control: C.EVENT_INT_EN });
  rig.setControl(0n, C.EVENT_LOG_EN);
  rig.write(R.EVT_LOG_BASE, BigInt(NOT_RAM) | (8n << 56n));
  rig.setControl(C.EVENT_LOG_EN);
  const before = rig.memory.view(EVT_LOG, 4096).slice();
  rig.memory.writes.length = 0;
  for (let i = 0; i < 3; i++) rig.iommu.resolve(0xffff, 0x1000 * i, 1); // beyond the table
  equal(rig.memory.writes.length, 0, "nothing written anywhere");
  deepEqual(rig.memory.view(EVT_LOG, 4096), before);
  equal(rig.read(R.EVT_TAIL), 0x30n, "three entries accounted for");
  equal(rig.status() & AmdViStatus.EVENT_LOG_INT, AmdViStatus.EVENT_LOG_INT);
  equal(rig.irq.at(-1), true);
});

Deno.test("IOMMU 1- and 2-byte register accesses (not architectural): their bytes only", () => {
  const rig = new Rig();
  equal(rig.read(R.EXT_FEATURE, 1), 0x41n);
  equal(rig.read(R.EXT_FEATURE + 1, 2), 0x08n);
  const control = rig.read(R.CONTROL);
  rig.write(R.CONTROL + 1, 0xffn, 1); // bits 15:8: only 12 (CmdBufEn) and below are stored
  equal(rig.read(R.CONTROL), (control & ~0xff00n) | 0x1f00n);
  equal(rig.read(R.CONTROL, 1), control & 0xffn, "byte 0 kept");
  rig.write(R.EXT_FEATURE, 0xffffn, 2);
  equal(rig.read(R.EXT_FEATURE), 0x841n, "read-only");
  // Status: a byte write clears only the write-1-to-clear bits it names.
  rig.iommu.resolve(0xffff, 0, 1);
  const status = rig.status();
  equal(status & AmdViStatus.EVENT_LOG_INT, AmdViStatus.EVENT_LOG_INT);
  rig.write(R.STATUS + 1, 0xffn, 1);
  equal(rig.status(), status, "a write to byte 1 clears nothing in byte 0");
  rig.write(R.STATUS, AmdViStatus.EVENT_LOG_INT, 1);
  equal(rig.status() & AmdViStatus.EVENT_LOG_INT, 0n);
});

Deno.test("BARs over RAM, the IOMMU window or the config ports take nothing over", async () => {
  await using machine = await Machine.create({
    devices: [
      { type: "amd-iommu", addr: "01.0" },
      { type: "e1000", addr: "03.0" },
      { type: "edu", addr: "04.0" },
    ],
  });
  const config = async (slot: number, reg: number, size: 2 | 4, value: number) => {
    await machine.out(0xcf8, 4, 0x8000_0000 | (slot << 11) | reg);
    await machine.out(0xcfc, size, value);
  };
  await config(4, 0x04, 2, 0x0002); // edu: memory decoding
  // edu BAR0 over RAM at 1 MiB: RAM answers (QEMU and real chipsets give RAM priority too).
  await config(4, 0x10, 4, 0x0010_0000);
  machine.memory.write32(0x10_0000, 0x1234_5678);
  equal(await machine.read(0x10_0000, 4), 0x1234_5678n);
  await machine.write(0x10_0004, 4, 0xaaaa_5555);
  equal(machine.memory.read32(0x10_0004), 0xaaaa_5555);
  // edu BAR0 over the IOMMU's registers: the IOMMU answers (ExtFeature, not edu's 0x10000ed).
  await config(4, 0x10, 4, 0xfed8_0000);
  equal(await machine.read(0xfed8_0030, 8), 0x841n);
  equal(await machine.read(0xfed8_0000, 4), 0n);
  // e1000 I/O BAR (64 bytes) at 0xcc0, over 0xcf8–0xcff: configuration still works.
  await config(3, 0x14, 4, 0x0cc0);
  await config(3, 0x04, 2, 0x0001);
  await machine.out(0xcf8, 4, 0x8000_1800);
  equal(await machine.in(0xcfc, 4), 0x100e_8086);
  await machine.out(0xcc0, 4, 0x0008); // IOADDR = STATUS, below the config ports
  equal(await machine.in(0xcc4, 4), 0x8008_0783);
  // The edu BAR moved back decodes again.
  await config(4, 0x10, 4, 0xfe00_0000);
  equal(await machine.read(0xfe00_0000, 4), 0x0100_00edn);
});
