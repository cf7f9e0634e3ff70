/**
 * PCI bus 0 with the q35 host bridge and configuration mechanism #1
 * (CONFIG_ADDRESS at port 0xCF8, CONFIG_DATA at 0xCFC–0xCFF).
 *
 * @module
 */

import { PciFunction, type PciFunctionSpec } from "./pci_function.ts";

/**
 * Port of CONFIG_ADDRESS.
 *
 * @example
 * ```ts
 * import { PCI_CONFIG_ADDRESS_PORT } from "./pci_bus.ts";
 * import { equal } from "node:assert/strict";
 * // Mechanism #1: enable bit 31 | bus 0 | device 3 | function 0 | register 0x10 (BAR0).
 * const value = 0x8000_0000 | (3 << 11) | (0 << 8) | 0x10;
 * equal(value >>> 0, 0x8000_1810);
 * equal(PCI_CONFIG_ADDRESS_PORT, 0xcf8); // fixed by the PCI specification
 * ```
 */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
/**
 * Port of CONFIG_DATA.
 *
 * @example
 * ```ts
 * import { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT } from "./pci_bus.ts";
 * import { equal } from "node:assert/strict";
 * // A 16-bit read of config offset 0x02 uses CONFIG_DATA's byte 2.
 * const port = PCI_CONFIG_DATA_PORT + (0x02 & 3);
 * equal(port, 0xcfe);
 * equal(PCI_CONFIG_DATA_PORT - PCI_CONFIG_ADDRESS_PORT, 4);
 * ```
 */
export const PCI_CONFIG_DATA_PORT = 0xcfc;

/**
 * The q35 host bridge (8086:29c0) at 00:00.0, with its reset register values
 * (GGC 0x50, PCIEXBAR 0x60, SMRAM 0x9d) as the reference machine shows them.
 * Its chipset registers (0x40–0xff, except the SMRAM group) are plain
 * read/write storage: dmaworks has no BIOS shadowing, SMM or ECAM to steer.
 *
 * @example
 * ```ts
 * import { Q35_HOST_BRIDGE } from "./pci_bus.ts";
 * import { PciFunction } from "./pci_function.ts";
 * import { equal } from "node:assert/strict";
 * const bridge = new PciFunction(Q35_HOST_BRIDGE);
 * equal(bridge.read(0x00, 4), 0x29c0_8086);
 * equal(bridge.read(0x60, 4), 0xb000_0000); // PCIEXBAR: QEMU's 0xb0000000, not enabled
 * ```
 */
export const Q35_HOST_BRIDGE: PciFunctionSpec = {
  vendorId: 0x8086,
  deviceId: 0x29c0,
  classCode: 0x060000,
  registers: { 0x50: 0x10, 0x63: 0xb0, 0x9d: 0x02, 0x9e: 0x38 },
  registerWriteMask: Object.fromEntries(
    Array.from({ length: 0xc0 }, (_, i) => 0x40 + i)
      .filter((offset) => offset < 0x9c || offset > 0x9e)
      .map((offset) => [offset, 0xff]),
  ),
};

/** A bus:device.function address on bus 0. */
export interface PciAddress {
  /** Device (slot) number, 0–31. */
  readonly device: number;
  /** Function number, 0–7. */
  readonly function: number;
}

/**
 * Formats a device/function as QEMU does (`00:04.0`).
 *
 * @param address Slot and function.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { formatPciAddress } from "./pci_bus.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatPciAddress({ device: 4, function: 0 }), "00:04.0");
 * ```
 */
export function formatPciAddress(address: PciAddress): string {
  return `00:${address.device.toString(16).padStart(2, "0")}.${address.function}`;
}

/**
 * The requester id of a function on bus 0.
 *
 * @param address Slot and function.
 * @returns `dev << 3 | fn`.
 *
 * @example
 * ```ts
 * import { requesterId } from "./pci_bus.ts";
 * import { equal } from "node:assert/strict";
 * equal(requesterId({ device: 4, function: 0 }), 0x20);
 * ```
 */
export function requesterId(address: PciAddress): number {
  return (address.device << 3) | address.function;
}

/**
 * The q35 INTx routing: a PCI device in slot `slot` asserting pin `pin`
 * (1 = INTA) drives PIRQ E–H, that is GSI 20–23, as `(slot + pin − 1) mod 4`.
 *
 * @param slot Device number.
 * @param pin Interrupt pin, 1–4.
 * @returns The GSI.
 *
 * @example
 * ```ts
 * import { q35IntxLine } from "./pci_bus.ts";
 * import { equal } from "node:assert/strict";
 * equal(q35IntxLine(4, 1), 20); // edu at 00:04.0
 * equal(q35IntxLine(3, 1), 23); // e1000 at 00:03.0
 * ```
 */
export function q35IntxLine(slot: number, pin: number): number {
  return 20 + ((slot + pin - 1) % 4);
}

/**
 * Bus 0 and configuration mechanism #1.
 *
 * CONFIG_ADDRESS is decoded only by 32-bit accesses to 0xCF8, as the PCI
 * specification says (bits 1:0 read as 0); other accesses to 0xCF8–0xCFB do
 * not reach it. CONFIG_DATA accepts every width at every byte offset.
 *
 * @example Read the host bridge id through the ports
 * ```ts
 * import { PciBus } from "./pci_bus.ts";
 * import { equal } from "node:assert/strict";
 * const bus = new PciBus();
 * bus.writeAddress(0x80000000);
 * equal(bus.readData(0, 4), 0x29c08086);
 * equal(bus.readData(2, 2), 0x29c0);
 * ```
 */
export class PciBus {
  #functions = new Map<number, PciFunction>();
  #address = 0;

  /** Creates bus 0 with the host bridge at 00:00.0. */
  constructor() {
    this.add({ device: 0, function: 0 }, new PciFunction(Q35_HOST_BRIDGE));
  }

  /**
   * Plugs a function in.
   *
   * @param address Where.
   * @param fn The function.
   *
   * @example
   * ```ts
   * import { PciBus } from "./pci_bus.ts";
   * import { PciFunction } from "./pci_function.ts";
   * import { equal, throws } from "node:assert/strict";
   * const bus = new PciBus();
   * const edu = new PciFunction({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 });
   * bus.add({ device: 4, function: 0 }, edu);
   * equal(bus.get({ device: 4, function: 0 }), edu);
   * throws(() => bus.add({ device: 4, function: 0 }, edu), /already in use/);
   * throws(() => bus.add({ device: 32, function: 0 }, edu), RangeError);
   * ```
   */
  add(address: PciAddress, fn: PciFunction): void {
    if (
      !(address.device >= 0 && address.device < 32 && address.function >= 0 && address.function < 8)
    ) {
      throw new RangeError(`Invalid PCI address ${formatPciAddress(address)}`);
    }
    const key = requesterId(address);
    if (this.#functions.has(key)) {
      throw new Error(`PCI address ${formatPciAddress(address)} is already in use`);
    }
    this.#functions.set(key, fn);
  }

  /**
   * The function at `address`, if any.
   *
   * @param address Where.
   * @returns The function.
   *
   * @example
   * ```ts
   * import { PciBus } from "./pci_bus.ts";
   * import { equal } from "node:assert/strict";
   * const bus = new PciBus();
   * equal(bus.get({ device: 0, function: 0 })?.spec.deviceId, 0x29c0); // the host bridge
   * equal(bus.get({ device: 5, function: 0 }), undefined);
   * ```
   */
  get(address: PciAddress): PciFunction | undefined {
    return this.#functions.get(requesterId(address));
  }

  /**
   * The first free slot from `from` on.
   *
   * @param from First slot to consider.
   * @returns The slot number.
   *
   * @example
   * ```ts
   * import { PciBus } from "./pci_bus.ts";
   * import { PciFunction } from "./pci_function.ts";
   * import { equal } from "node:assert/strict";
   * const bus = new PciBus();
   * equal(bus.freeSlot(), 1);
   * bus.add(
   *   { device: 1, function: 0 },
   *   new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0 }),
   * );
   * equal(bus.freeSlot(), 2);
   * equal(bus.freeSlot(10), 10);
   * ```
   */
  freeSlot(from = 1): number {
    for (let slot = from; slot < 32; slot++) {
      if (!this.#functions.has(slot << 3)) return slot;
    }
    throw new Error("Cannot add a PCI device: bus 0 has no free slot");
  }

  /**
   * CONFIG_ADDRESS as last written.
   *
   * @example
   * ```ts
   * import { PciBus } from "./pci_bus.ts";
   * import { equal } from "node:assert/strict";
   * const bus = new PciBus();
   * bus.writeAddress(0x80002013);
   * equal(bus.configAddress, 0x80002010); // bits 1:0 read as 0
   * ```
   */
  get configAddress(): number {
    return this.#address;
  }

  /**
   * A 32-bit write to CONFIG_ADDRESS.
   *
   * @param value The value; bits 1:0 are read-only 0.
   *
   * @example
   * ```ts
   * import { PciBus } from "./pci_bus.ts";
   * import { equal } from "node:assert/strict";
   * const bus = new PciBus();
   * bus.writeAddress(0x80000008); // 00:00.0, revision and class
   * equal(bus.readData(0, 4) >>> 8, 0x060000);
   * bus.writeAddress(0x00000000); // enable bit clear: nothing answers
   * equal(bus.readData(0, 4), 0xffffffff);
   * ```
   */
  writeAddress(value: number): void {
    this.#address = (value & ~0x3) >>> 0;
  }

  #target(offset: number): { fn: PciFunction; register: number } | undefined {
    const a = this.#address;
    if (!(a & 0x8000_0000)) return undefined;
    if (((a >>> 16) & 0xff) !== 0) return undefined; // only bus 0 exists
    const fn = this.#functions.get((a >>> 8) & 0xff);
    if (!fn) return undefined;
    return { fn, register: (a & 0xfc) + offset };
  }

  /**
   * A read of CONFIG_DATA.
   *
   * @param offset Byte offset inside the data window (0–3).
   * @param size 1, 2 or 4.
   * @returns The value; all-ones when nothing answers.
   *
   * @example
   * ```ts
   * import { PciBus } from "./pci_bus.ts";
   * import { equal } from "node:assert/strict";
   * const bus = new PciBus();
   * bus.writeAddress(0x80000000);
   * equal(bus.readData(0, 2), 0x8086);
   * equal(bus.readData(3, 1), 0x29);
   * bus.writeAddress(0x80001800); // 00:03.0: empty slot
   * equal(bus.readData(0, 2), 0xffff);
   * ```
   */
  readData(offset: number, size: number): number {
    const t = this.#target(offset);
    if (!t) return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    return t.fn.read(t.register, size);
  }

  /**
   * A write of CONFIG_DATA.
   *
   * @param offset Byte offset inside the data window (0–3).
   * @param size 1, 2 or 4.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { PciBus } from "./pci_bus.ts";
   * import { equal } from "node:assert/strict";
   * const bus = new PciBus();
   * bus.writeAddress(0x8000003c); // interrupt line and pin of 00:00.0
   * bus.writeData(0, 1, 0x0b);
   * equal(bus.readData(0, 1), 0x0b);
   * bus.writeData(1, 1, 0x04); // the pin is read-only
   * equal(bus.readData(1, 1), 0x00);
   * ```
   */
  writeData(offset: number, size: number, value: number): void {
    const t = this.#target(offset);
    if (t) t.fn.write(t.register, size, value);
  }
}
