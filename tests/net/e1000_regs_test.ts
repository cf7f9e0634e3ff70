// Register semantics of the e1000 model, one thread, no machine. Reset values
// were read from QEMU 7.2 (`-machine q35 -device e1000,addr=03.0`, qtest
// readl after programming BAR0); differences are the documented ones.
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  E1000_DEFAULT_MAC,
  E1000_DESCRIPTOR,
  e1000DefaultProperties,
  validateE1000Properties,
} from "../../src/devices/e1000.ts";
import { buildEeprom, EEPROM_SUM, EepromMicrowire } from "../../src/devices/e1000_eeprom.ts";
import { E1000Icr, E1000Reg, E1000Stat } from "../../src/devices/e1000_regs.ts";
import { deviceType, PLANNED_DEVICE_TYPES } from "../../src/devices/registry.ts";
import { parseMac } from "../../src/net/ethernet.ts";
import { frameTo, NIC_MAC, Rig, RxRing, TxRing } from "./e1000_rig.ts";

const R = E1000Reg;

Deno.test("e1000: descriptor matches QEMU 7.2's config space", () => {
  const pci = E1000_DESCRIPTOR.pci;
  equal(pci.vendorId, 0x8086);
  equal(pci.deviceId, 0x100e);
  equal(pci.revision, 3);
  equal(pci.classCode, 0x020000); // inl 0x08 = 0x02000003
  equal(pci.interruptPin, 1);
  deepEqual(pci.bars, [
    { index: 0, kind: "mmio", size: 0x20000 }, // sizing reads 0xfffe0000
    { index: 1, kind: "pio", size: 0x40 }, // sizing reads 0xffffffc1
  ]);
  deepEqual(E1000_DESCRIPTOR.irqs, [{ kind: "intx" }]);
  const type = deviceType("e1000");
  ok(type?.nic);
  deepEqual(type?.properties, ["netdev", "mac", "romfile"]);
  ok(!PLANNED_DEVICE_TYPES.includes("e1000"));
});

Deno.test("e1000: properties are validated with the property's name", () => {
  validateE1000Properties({ mac: "52-54-00-AA-BB-CC", romfile: "", netdev: "n0" });
  let message = "";
  try {
    validateE1000Properties({ mac: "52:54:00:12:34" });
  } catch (e) {
    message = (e as Error).message;
  }
  equal(message, "Invalid mac '52:54:00:12:34': expected six hex bytes like 52:54:00:12:34:56");
  try {
    validateE1000Properties({ mac: "01:00:5e:00:00:01" });
  } catch (e) {
    message = (e as Error).message;
  }
  equal(message, "Invalid mac '01:00:5e:00:00:01': a multicast address");
  equal(E1000_DEFAULT_MAC, "52:54:00:12:34:56");
  equal(e1000DefaultProperties(2).mac, "52:54:00:12:34:58");
});

Deno.test("e1000: reset values as QEMU 7.2 reads them", () => {
  const t = new Rig();
  const expected: Array<[number, number]> = [
    [R.CTRL, 0x0014_0240],
    [R.STATUS, 0x8008_0783],
    [R.EECD, 0x188],
    [R.EERD, 0],
    [R.CTRL_EXT, 0],
    [R.MDIC, 0],
    [R.VET, 0x8100],
    [R.ICR, 0],
    [R.ICS, 0],
    [R.IMS, 0],
    [R.IMC, 0],
    [R.RCTL, 0],
    [R.TCTL, 0],
    [R.LEDCTL, 0x602],
    [R.PBA, 0x0010_0030],
    [R.RDLEN, 0],
    [R.RA, 0x1200_5452],
    [R.RA + 4, 0x8000_5634],
    [R.MANC, 0x0022_2300],
    [E1000Stat.MPC, 0],
    [E1000Stat.GPRC, 0],
  ];
  for (const [offset, value] of expected) {
    equal(t.r(offset), value, `register 0x${offset.toString(16)}`);
  }
  equal(t.env.irqCalls.length, 0);
});

Deno.test("e1000: EEPROM through EERD: MAC, device id, checksum 0xBABA", () => {
  const t = new Rig({ properties: { mac: "52:54:00:12:34:56" } });
  const words: number[] = [];
  for (let i = 0; i < 64; i++) {
    t.w(R.EERD, (i << 8) | 1);
    const v = t.r(R.EERD);
    equal(v & 0xffff, (i << 8) | 0x10, `word ${i}: address and DONE`);
    words.push(v >>> 16);
  }
  deepEqual(words.slice(0, 3), [0x5452, 0x1200, 0x5634]);
  equal(words[11], 0x100e);
  equal(words[13], 0x100e);
  equal(words[0x3f], 0x79ad); // QEMU 7.2: readl EERD for word 0x3f = 0x79ad3f10
  equal(words.reduce((a, b) => (a + b) & 0xffff, 0), EEPROM_SUM);
  // Beyond the EEPROM: DONE without data, as QEMU.
  t.w(R.EERD, (0x40 << 8) | 1);
  equal(t.r(R.EERD), 0x4010);
  // Without START the register reads back as written.
  t.w(R.EERD, 0x0300);
  equal(t.r(R.EERD), 0x0300);
});

Deno.test("e1000: EEPROM through EECD: Microwire bit-banging reads the same words", () => {
  const t = new Rig({ properties: { mac: "02:11:22:33:44:55" } });
  const CS = 2, SK = 1, DI = 4, DO = 8;
  const readWord = (address: number) => {
    t.w(R.EECD, 0); // CS low: idle
    t.w(R.EECD, CS);
    const bits = [1, 1, 0];
    for (let i = 5; i >= 0; i--) bits.push((address >> i) & 1);
    for (const bit of bits) {
      t.w(R.EECD, CS | (bit ? DI : 0));
      t.w(R.EECD, CS | SK | (bit ? DI : 0));
    }
    let word = 0;
    for (let i = 0; i < 16; i++) {
      t.w(R.EECD, CS | SK);
      t.w(R.EECD, CS);
      word = (word << 1) | ((t.r(R.EECD) & DO) ? 1 : 0);
    }
    return word;
  };
  const image = buildEeprom(parseMac("02:11:22:33:44:55"), 0x100e);
  for (const address of [0, 1, 2, 11, 0x3f]) equal(readWord(address), image[address]);
  equal(t.r(R.EECD) & 0x180, 0x180, "PRES and GNT");
  // The state machine alone: a write opcode does not read.
  const ee = new EepromMicrowire(image);
  ee.write(CS);
  equal(ee.read() & DO, DO, "DO idles high");
});

Deno.test("e1000: ICR clears on read exactly once; ICS, IMS, IMC drive INTx", () => {
  const t = new Rig();
  t.w(R.ICS, E1000Icr.TXDW | E1000Icr.LSC);
  equal(t.r(R.ICS), 5, "ICS reads as ICR");
  equal(t.env.level, false, "masked: no interrupt");
  t.w(R.IMS, E1000Icr.LSC);
  equal(t.env.level, true);
  equal(t.r(R.IMS), E1000Icr.LSC);
  t.w(R.IMC, E1000Icr.LSC);
  equal(t.env.level, false);
  equal(t.r(R.IMS), 0);
  t.w(R.IMS, E1000Icr.LSC | E1000Icr.TXDW);
  equal(t.env.level, true);
  equal(t.r(R.ICR), 5, "the read returns the causes");
  equal(t.env.level, false, "and deasserts the line");
  equal(t.r(R.ICR), 0, "a second read sees them cleared");
  equal(t.r(R.ICS), 0);
  // Writing ICR clears the bits written (W1C).
  t.w(R.ICS, E1000Icr.RXT0 | E1000Icr.RXO);
  t.w(R.ICR, E1000Icr.RXT0);
  equal(t.r(R.ICR), E1000Icr.RXO);
  // Reserved bits 31:17 are not kept.
  t.w(R.ICS, 0xfffe_0000);
  equal(t.r(R.ICR), 0);
  // Exactly one line change per edge.
  const calls = t.env.irqCalls.map(([, level]) => level);
  deepEqual(calls, [true, false, true, false]);
});

Deno.test("e1000: register masks: ring lengths in 128-byte units, 16-bit heads and tails", () => {
  const t = new Rig();
  t.w(R.RDLEN, 0xffff_ffff);
  equal(t.r(R.RDLEN), 0xf_ff80);
  t.w(R.TDLEN, 0x1234);
  equal(t.r(R.TDLEN), 0x1200);
  for (const reg of [R.RDH, R.RDT, R.TDH, R.ITR, R.RDTR, R.RADV, R.TIDV, R.TADV]) {
    t.w(reg, 0xffff_ffff);
    equal(t.r(reg), 0xffff, `0x${reg.toString(16)}`);
  }
  t.w(R.RA + 8, 0x1122_3344);
  t.w(R.RA + 12, 0xffff_ffff);
  equal(t.r(R.RA + 8), 0x1122_3344);
  equal(t.r(R.RA + 12), 0x8003_ffff, "RAH keeps AV, AS and the address");
  t.w(R.MTA + 4 * 127, 0xdead_beef);
  equal(t.r(R.MTA + 4 * 127), 0xdead_beef);
  t.w(R.STATUS, 0);
  equal(t.r(R.STATUS), 0x8008_0783, "STATUS is read-only");
  t.w(0x0f80, 0x1234);
  equal(t.r(0x0f80), 0, "unimplemented offsets read 0");
});

Deno.test("e1000: narrow accesses: reads return byte lanes, writes are ignored", () => {
  const t = new Rig();
  equal(t.nic.read(0, R.STATUS + 1, 1), 0x07);
  equal(t.nic.read(0, R.STATUS + 2, 2), 0x8008);
  t.nic.write(0, R.RCTL + 1, 1, 0x80);
  equal(t.r(R.RCTL), 0);
  equal(t.env.logs.length, 1);
});

Deno.test("e1000: the I/O BAR's IOADDR/IODATA window reaches every register", () => {
  const t = new Rig();
  t.nic.write(1, 0, 4, R.STATUS);
  equal(t.nic.read(1, 0, 4), R.STATUS);
  equal(t.nic.read(1, 4, 4), 0x8008_0783);
  t.nic.write(1, 0, 4, R.IMS);
  t.nic.write(1, 4, 4, E1000Icr.LSC);
  equal(t.r(R.IMS), E1000Icr.LSC);
  t.w(R.ICS, E1000Icr.LSC);
  equal(t.env.level, true);
  t.nic.write(1, 0, 4, R.ICR);
  equal(t.nic.read(1, 4, 4), E1000Icr.LSC, "ICR read through IODATA");
  equal(t.env.level, false, "with its side effect");
  equal(t.nic.read(1, 8, 4), 0, "reserved I/O offsets read 0");
  t.nic.write(1, 0, 4, 0xffff_ffff);
  equal(t.nic.read(1, 0, 4), 0x1_ffff, "IOADDR keeps 17 bits");
});

Deno.test("e1000: MDIC reaches the PHY at address 1 with QEMU's values", () => {
  const t = new Rig();
  const mdicRead = (phy: number, reg: number) => {
    t.w(R.MDIC, (2 << 26) | (phy << 21) | (reg << 16));
    return t.r(R.MDIC);
  };
  // Values read from QEMU 7.2.
  const expected: Array<[number, number]> = [
    [0, 0x1820_1140],
    [1, 0x1821_794d],
    [2, 0x1822_0141],
    [3, 0x1823_0c20],
    [4, 0x1824_0de1],
    [5, 0x1825_01e0],
    [6, 0x1826_0000],
    [9, 0x1829_0e00],
    [10, 0x182a_3c00],
    [16, 0x1830_0360],
    [17, 0x1831_ac00],
    [20, 0x1834_0d60],
    [21, 0x1835_0000],
    [7, 0x5827_0000], // not a readable register: ERROR
  ];
  for (const [reg, value] of expected) equal(mdicRead(1, reg) >>> 0, value, `PHY register ${reg}`);
  equal(mdicRead(2, 0) & 0x4000_0000, 0x4000_0000, "another PHY address: ERROR");
  // Restarting auto-negotiation completes it and signals LSC.
  t.w(R.MDIC, (1 << 26) | (1 << 21) | (0 << 16) | 0x1340);
  equal(t.r(R.ICR) & E1000Icr.LSC, E1000Icr.LSC);
  equal(mdicRead(1, 1) & 0x20, 0x20, "BMSR: auto-negotiation complete");
  equal(mdicRead(1, 0) & 0xffff, 0x1140, "ANRESTART self-clears");
  // MDIC with INT_EN raises MDAC.
  t.w(R.MDIC, (2 << 26) | (1 << 21) | (2 << 16) | 0x2000_0000);
  equal(t.r(R.ICR) & E1000Icr.MDAC, E1000Icr.MDAC);
});

Deno.test("e1000: statistics clear on read; 64-bit pairs when the high half is read", async () => {
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  const rx = new RxRing(t, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 });
  await tx.send(frameTo([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 100));
  t.net.inbound.push(frameTo(NIC_MAC, 1000));
  t.nic.onNetReceive();
  await t.run();
  ok(rx.take());
  equal(t.r(E1000Stat.GPTC), 1);
  equal(t.r(E1000Stat.GPTC), 0, "cleared by the read");
  equal(t.r(E1000Stat.TPT), 1);
  equal(t.r(E1000Stat.BPTC), 1);
  equal(t.r(E1000Stat.PTC127), 1, "104 bytes with FCS");
  equal(t.r(E1000Stat.GOTCL), 104);
  equal(t.r(E1000Stat.GOTCL), 104, "the low half alone does not clear");
  equal(t.r(E1000Stat.GOTCH), 0);
  equal(t.r(E1000Stat.GOTCL), 0, "reading the high half cleared both");
  equal(t.r(E1000Stat.GPRC), 1);
  equal(t.r(E1000Stat.TPR), 1);
  equal(t.r(E1000Stat.PRC1023), 1, "1004 bytes with FCS");
  equal(t.r(E1000Stat.GORCL), 1004);
  equal(t.r(E1000Stat.TORL), 1004);
  equal(t.r(E1000Stat.TORH), 0);
  equal(t.r(E1000Stat.MPC), 0);
});

Deno.test("e1000: CTRL.RST resets registers, rings and the interrupt", async () => {
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  t.w(R.IMS, 0xffff);
  await tx.send(frameTo(NIC_MAC, 64));
  equal(t.env.level, true);
  t.w(R.RA, 0x1111_1111);
  t.w(R.CTRL, 0x0414_0240);
  equal(t.env.level, false);
  equal(t.r(R.CTRL), 0x0014_0240, "RST self-clears");
  equal(t.r(R.TCTL), 0);
  equal(t.r(R.TDT), 0);
  equal(t.r(R.TDLEN), 0);
  equal(t.r(R.IMS), 0);
  equal(t.r(R.ICR), 0);
  equal(t.r(R.RA), 0x1200_5452, "RAL0 reloaded from the EEPROM");
  // Setting SLU again after clearing it signals a link change.
  t.w(R.CTRL, 0);
  t.w(R.CTRL, 0x40);
  equal(t.r(R.ICR), E1000Icr.LSC);
});
