import { equal, throws } from "node:assert/strict";
import {
  formatPciAddress,
  PCI_CONFIG_ADDRESS_PORT,
  PCI_CONFIG_DATA_PORT,
  PciBus,
  Q35_HOST_BRIDGE,
  q35IntxLine,
  requesterId,
} from "../../src/pci/pci_bus.ts";
import { PciFunction } from "../../src/pci/pci_function.ts";

/** CONFIG_ADDRESS for bus 0. */
function cfg(device: number, fn: number, register: number): number {
  return (0x8000_0000 | (device << 11) | (fn << 8) | register) >>> 0;
}

function edu(): PciFunction {
  return new PciFunction({
    vendorId: 0x1234,
    deviceId: 0x11e8,
    revision: 0x10,
    classCode: 0x00ff00,
    interruptPin: 1,
    bars: [{ index: 0, kind: "mmio", size: 0x10_0000 }],
  });
}

Deno.test("PciBus: port numbers", () => {
  equal(PCI_CONFIG_ADDRESS_PORT, 0xcf8);
  equal(PCI_CONFIG_DATA_PORT, 0xcfc);
});

Deno.test("PciBus: CONFIG_ADDRESS bits 1:0 read as 0", () => {
  const bus = new PciBus();
  equal(bus.configAddress, 0);
  bus.writeAddress(0x8000_0003);
  equal(bus.configAddress, 0x8000_0000);
  bus.writeAddress(0xffff_ffff);
  equal(bus.configAddress, 0xffff_fffc);
  bus.writeAddress(-1);
  equal(bus.configAddress, 0xffff_fffc, "unsigned");
  // The low bits do not select a register: 0x8000000b reads dword 0x08.
  bus.writeAddress(0x8000_000b);
  equal(bus.readData(0, 4), 0x0600_0000);
});

Deno.test("PciBus: without the enable bit nothing answers and writes are dropped", () => {
  const bus = new PciBus();
  bus.writeAddress(0x0000_0000);
  equal(bus.readData(0, 4), 0xffff_ffff);
  equal(bus.readData(0, 2), 0xffff);
  equal(bus.readData(3, 1), 0xff);
  bus.writeAddress(0x0000_003c);
  bus.writeData(0, 1, 0x0b);
  bus.writeAddress(cfg(0, 0, 0x3c));
  equal(bus.readData(0, 1), 0, "the disabled write did not reach 00:00.0");
});

Deno.test("PciBus: other buses and empty slots read all-ones", () => {
  const bus = new PciBus();
  bus.add({ device: 4, function: 0 }, edu());
  const absent = [
    cfg(4, 0, 0) | (1 << 16), // bus 1
    (cfg(4, 0, 0) | (0xff << 16)) >>> 0, // bus 255
    cfg(5, 0, 0), // empty slot
    cfg(4, 1, 0), // empty function
    cfg(31, 7, 0),
  ];
  for (const address of absent) {
    bus.writeAddress(address);
    equal(bus.readData(0, 4), 0xffff_ffff, address.toString(16));
    equal(bus.readData(2, 2), 0xffff);
    equal(bus.readData(1, 1), 0xff);
    bus.writeData(0, 4, 0); // dropped, no exception
  }
  bus.writeAddress(cfg(4, 0, 0));
  equal(bus.readData(0, 4), 0x11e8_1234);
});

Deno.test("PciBus: CONFIG_DATA at offsets 0–3 with widths 1, 2 and 4", () => {
  const bus = new PciBus();
  bus.writeAddress(cfg(0, 0, 0x00));
  const cases: Array<[number, number, number]> = [
    [0, 4, 0x29c0_8086],
    [0, 2, 0x8086],
    [2, 2, 0x29c0],
    [1, 2, 0xc080],
    [0, 1, 0x86],
    [1, 1, 0x80],
    [2, 1, 0xc0],
    [3, 1, 0x29],
  ];
  for (const [offset, size, value] of cases) {
    equal(bus.readData(offset, size), value, `readData(${offset}, ${size})`);
  }
  // Writes at each offset land in the selected dword.
  bus.add({ device: 4, function: 0 }, edu());
  bus.writeAddress(cfg(4, 0, 0x3c));
  bus.writeData(0, 1, 0x0b);
  equal(bus.readData(0, 4), 0x0000_010b);
  bus.writeAddress(cfg(4, 0, 0x04));
  bus.writeData(0, 2, 0x0006);
  equal(bus.readData(0, 2), 0x0006);
  bus.writeData(1, 1, 0x04);
  equal(bus.readData(0, 2), 0x0406);
  bus.writeAddress(cfg(4, 0, 0x10));
  bus.writeData(2, 2, 0xfe00);
  equal(bus.readData(0, 4), 0xfe00_0000);
  bus.writeData(3, 1, 0xfd);
  equal(bus.readData(0, 4), 0xfd00_0000);
  bus.writeData(0, 4, 0xffff_ffff);
  equal(bus.readData(0, 4), 0xfff0_0000);
  equal(bus.get({ device: 4, function: 0 })!.read(0x10, 4), 0xfff0_0000);
});

Deno.test("PciBus: the q35 host bridge reset values", () => {
  const bus = new PciBus();
  const cases: Array<[number, number]> = [
    [0x00, 0x29c0_8086],
    [0x04, 0x0000_0000],
    [0x08, 0x0600_0000],
    [0x0c, 0x0000_0000],
    [0x10, 0x0000_0000],
    [0x2c, 0x1100_1af4],
    [0x34, 0x0000_0000],
    [0x3c, 0x0000_0000],
    [0x50, 0x0000_0010],
    [0x60, 0xb000_0000],
    [0x9c, 0x0038_0200],
  ];
  for (const [register, value] of cases) {
    bus.writeAddress(cfg(0, 0, register));
    equal(bus.readData(0, 4), value, `0x${register.toString(16)}`);
  }
  equal(Q35_HOST_BRIDGE.vendorId, 0x8086);
  equal(Q35_HOST_BRIDGE.deviceId, 0x29c0);
});

Deno.test("PciBus: host bridge bytes 0x40–0xff are writable except 0x9c–0x9e", () => {
  const bus = new PciBus();
  const bridge = bus.get({ device: 0, function: 0 })!;
  const initial = Array.from({ length: 256 }, (_, i) => bridge.read(i, 1));
  for (let register = 0x40; register < 0x100; register += 4) {
    bus.writeAddress(cfg(0, 0, register));
    bus.writeData(0, 4, 0xa55a_c33c);
  }
  for (let offset = 0x40; offset < 0x100; offset++) {
    const readOnly = offset >= 0x9c && offset <= 0x9e;
    const written = [0x3c, 0xc3, 0x5a, 0xa5][offset % 4]!;
    equal(bridge.read(offset, 1), readOnly ? initial[offset] : written, `0x${offset.toString(16)}`);
  }
  equal(bridge.read(0x9c, 4), 0xa538_0200);
  // The standard header keeps its rules.
  bus.writeAddress(cfg(0, 0, 0x00));
  bus.writeData(0, 4, 0);
  equal(bus.readData(0, 4), 0x29c0_8086);
});

Deno.test("PciBus.add, get and freeSlot", () => {
  const bus = new PciBus();
  equal(bus.freeSlot(), 1);
  equal(bus.freeSlot(0), 1, "slot 0 is the host bridge");
  const a = edu();
  bus.add({ device: 1, function: 0 }, a);
  equal(bus.get({ device: 1, function: 0 }), a);
  equal(bus.get({ device: 1, function: 1 }), undefined);
  equal(bus.freeSlot(), 2);
  bus.add({ device: 3, function: 0 }, edu());
  equal(bus.freeSlot(), 2);
  bus.add({ device: 2, function: 0 }, edu());
  equal(bus.freeSlot(), 4);
  equal(bus.freeSlot(3), 4);
  equal(bus.freeSlot(10), 10);
  throws(
    () => bus.add({ device: 1, function: 0 }, edu()),
    (e: unknown) => e instanceof Error && /^PCI address 00:01\.0 is already in use/.test(e.message),
  );
  for (
    const address of [
      { device: 32, function: 0 },
      { device: -1, function: 0 },
      { device: 1, function: 8 },
      { device: 1, function: -1 },
    ]
  ) {
    throws(() => bus.add(address, edu()), RangeError, JSON.stringify(address));
  }
  for (let slot = 4; slot < 32; slot++) bus.add({ device: slot, function: 0 }, edu());
  throws(
    () => bus.freeSlot(),
    (e: unknown) => e instanceof Error && /^Cannot add a PCI device/.test(e.message),
  );
});

Deno.test("q35IntxLine: PIRQ E–H swizzle", () => {
  const cases: Array<[number, number, number]> = [
    [4, 1, 20], // edu
    [3, 1, 23], // e1000
    [1, 1, 21],
    [2, 1, 22], // PIIX3 IDE
    [0, 1, 20],
    [4, 2, 21],
    [4, 4, 23],
    [5, 1, 21],
    [31, 4, 22],
  ];
  for (const [slot, pin, gsi] of cases) {
    equal(q35IntxLine(slot, pin), gsi, `slot ${slot} pin ${pin}`);
  }
  for (let slot = 0; slot < 32; slot++) {
    for (let pin = 1; pin <= 4; pin++) {
      const gsi = q35IntxLine(slot, pin);
      equal(gsi >= 20 && gsi <= 23, true);
      equal(q35IntxLine(slot + 4, pin), gsi, "period 4");
    }
  }
});

Deno.test("requesterId and formatPciAddress", () => {
  const cases: Array<[number, number, number, string]> = [
    [0, 0, 0x00, "00:00.0"],
    [1, 0, 0x08, "00:01.0"],
    [4, 0, 0x20, "00:04.0"],
    [3, 2, 0x1a, "00:03.2"],
    [0x10, 0, 0x80, "00:10.0"],
    [0x1f, 7, 0xff, "00:1f.7"],
  ];
  for (const [device, fn, rid, text] of cases) {
    equal(requesterId({ device, function: fn }), rid);
    equal(formatPciAddress({ device, function: fn }), text);
  }
});

Deno.test("PciBus: functions other than 0 are addressed by CONFIG_ADDRESS bits 10:8", () => {
  const bus = new PciBus();
  const f0 = edu();
  const f3 = new PciFunction({ vendorId: 0x8086, deviceId: 0x7010, classCode: 0x010180 });
  bus.add({ device: 6, function: 0 }, f0);
  bus.add({ device: 6, function: 3 }, f3);
  bus.writeAddress(cfg(6, 3, 0));
  equal(bus.readData(0, 4), 0x7010_8086);
  bus.writeAddress(cfg(6, 0, 0));
  equal(bus.readData(0, 4), 0x11e8_1234);
});
