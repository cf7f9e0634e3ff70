/**
 * The e1000's EEPROM: the 64-word image of an 82540EM (Intel 8254x SDM
 * tables 5-2 and 5-3, the same words as QEMU's e1000 template) with the MAC
 * address in words 0–2, the device id in words 11 and 13 and a checksum in
 * word 0x3f that makes the 64 words sum to 0xBABA; and the Microwire serial
 * interface that drivers bit-bang through EECD.
 *
 * @module
 */

import { E1000Eecd } from "./e1000_regs.ts";

/**
 * Words in the EEPROM.
 *
 * @example
 * ```ts
 * import { buildEeprom, EEPROM_WORDS } from "./e1000_eeprom.ts";
 * import { equal } from "node:assert/strict";
 * const words = buildEeprom(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), 0x100e);
 * equal(words.length, EEPROM_WORDS); // 64 16-bit words: a 1 Kbit Microwire EEPROM
 * ```
 */
export const EEPROM_WORDS = 64;
/**
 * The checksum word.
 *
 * @example
 * ```ts
 * import { buildEeprom, EEPROM_CHECKSUM_WORD, EEPROM_SUM, EEPROM_WORDS } from "./e1000_eeprom.ts";
 * import { equal } from "node:assert/strict";
 * equal(EEPROM_CHECKSUM_WORD, EEPROM_WORDS - 1); // the last word
 * const words = buildEeprom(new Uint8Array(6), 0x100e);
 * const sum = words.subarray(0, EEPROM_CHECKSUM_WORD).reduce((a, b) => (a + b) & 0xffff, 0);
 * equal(words[EEPROM_CHECKSUM_WORD], (EEPROM_SUM - sum) & 0xffff);
 * ```
 */
export const EEPROM_CHECKSUM_WORD = 0x3f;
/**
 * What the 64 words sum to (modulo 2^16) in a valid image.
 *
 * @example
 * ```ts
 * import { buildEeprom, EEPROM_SUM } from "./e1000_eeprom.ts";
 * import { equal } from "node:assert/strict";
 * const sum = (w: Uint16Array) => w.reduce((a, b) => (a + b) & 0xffff, 0);
 * const words = buildEeprom(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), 0x100e);
 * equal(sum(words), EEPROM_SUM); // 0xBABA, as the 8254x SDM fixes it: a valid image
 * words[0] = words[0]! ^ 1; // corrupt the MAC address
 * equal(sum(words) === EEPROM_SUM, false);
 * ```
 */
export const EEPROM_SUM = 0xbaba;

/** The Microwire READ opcode (after the start bit). */
const MICROWIRE_READ = 0x6;

// deno-fmt-ignore
const TEMPLATE: readonly number[] = [
  0x0000, 0x0000, 0x0000, 0x0000, 0xffff, 0x0000, 0x0000, 0x0000,
  0x3000, 0x1000, 0x6403, 0x0000, 0x8086, 0x0000, 0x8086, 0x3040,
  0x0008, 0x2000, 0x7e14, 0x0048, 0x1000, 0x00d8, 0x0000, 0x2700,
  0x6cc9, 0x3150, 0x0722, 0x040b, 0x0984, 0x0000, 0xc000, 0x0706,
  0x1008, 0x0000, 0x0f04, 0x7fff, 0x4d01, 0xffff, 0xffff, 0xffff,
  0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
  0x0100, 0x4000, 0x121c, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
  0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0x0000,
];

/**
 * Builds the EEPROM image for a MAC address and device id.
 *
 * @param mac The six MAC bytes.
 * @param deviceId The PCI device id (0x100e for the 82540EM).
 * @returns 64 words whose sum is 0xBABA.
 *
 * @example
 * ```ts
 * import { buildEeprom, EEPROM_SUM } from "./e1000_eeprom.ts";
 * import { equal } from "node:assert/strict";
 * const words = buildEeprom(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), 0x100e);
 * equal(words[0], 0x5452);
 * equal(words.reduce((a, b) => (a + b) & 0xffff, 0), EEPROM_SUM);
 * ```
 */
export function buildEeprom(mac: Uint8Array, deviceId: number): Uint16Array {
  const words = Uint16Array.from(TEMPLATE);
  for (let i = 0; i < 3; i++) words[i] = ((mac[2 * i + 1] ?? 0) << 8) | (mac[2 * i] ?? 0);
  words[11] = deviceId;
  words[13] = deviceId;
  let sum = 0;
  for (let i = 0; i < EEPROM_CHECKSUM_WORD; i++) sum = (sum + words[i]!) & 0xffff;
  words[EEPROM_CHECKSUM_WORD] = (EEPROM_SUM - sum) & 0xffff;
  return words;
}

/**
 * The Microwire interface behind EECD: the driver raises CS, clocks in a
 * start bit, the READ opcode and a 6-bit address on DI with SK, then clocks
 * the 16 data bits out of DO, most significant first; further clocks read the
 * following words. Behaves like QEMU's model, bit for bit.
 *
 * @example Read word 0 by bit-banging
 * ```ts
 * import { EepromMicrowire } from "./e1000_eeprom.ts";
 * import { equal } from "node:assert/strict";
 * const ee = new EepromMicrowire(Uint16Array.from({ length: 64 }, (_, i) => 0x1234 + i));
 * const CS = 2, SK = 1, DI = 4, DO = 8;
 * const clockIn = (bit: number) => {
 *   ee.write(CS | (bit ? DI : 0));
 *   ee.write(CS | SK | (bit ? DI : 0));
 * };
 * ee.write(CS);
 * for (const bit of [1, 1, 0, 0, 0, 0, 0, 0, 0]) clockIn(bit); // start, READ (10), address 0
 * let word = 0;
 * for (let i = 0; i < 16; i++) {
 *   ee.write(CS | SK);
 *   ee.write(CS);
 *   word = (word << 1) | ((ee.read() & DO) ? 1 : 0);
 * }
 * equal(word, 0x1234);
 * ```
 */
export class EepromMicrowire {
  #words: Uint16Array;
  #valIn = 0;
  #bitIn = 0;
  #bitOut = 0;
  #reading = false;
  #old = 0;

  /**
   * Attaches to an image.
   *
   * @param words The 64-word image.
   */
  constructor(words: Uint16Array) {
    this.#words = words;
  }

  /**
   * Returns to the idle state (device reset).
   *
   * @example
   * ```ts
   * import { EepromMicrowire } from "./e1000_eeprom.ts";
   * import { E1000Eecd } from "./e1000_regs.ts";
   * import { equal } from "node:assert/strict";
   * const ee = new EepromMicrowire(new Uint16Array(64));
   * ee.write(E1000Eecd.CS | E1000Eecd.SK);
   * equal(ee.read() & (E1000Eecd.CS | E1000Eecd.SK), E1000Eecd.CS | E1000Eecd.SK);
   * ee.reset();
   * equal(ee.read() & (E1000Eecd.CS | E1000Eecd.SK), 0); // chip deselected
   * ```
   */
  reset(): void {
    this.#valIn = 0;
    this.#bitIn = 0;
    this.#bitOut = 0;
    this.#reading = false;
    this.#old = 0;
  }

  /**
   * The EECD value a read returns.
   *
   * @returns PRES and GNT, the latched control bits and DO.
   *
   * @example
   * ```ts
   * import { EepromMicrowire } from "./e1000_eeprom.ts";
   * import { E1000Eecd } from "./e1000_regs.ts";
   * import { equal } from "node:assert/strict";
   * const ee = new EepromMicrowire(new Uint16Array(64));
   * const idle = ee.read();
   * equal(idle & E1000Eecd.PRES, E1000Eecd.PRES); // an EEPROM is present
   * equal(idle & E1000Eecd.GNT, E1000Eecd.GNT); // and the driver may use it
   * equal(idle & E1000Eecd.DO, E1000Eecd.DO); // DO idles high
   * ```
   */
  read(): number {
    let value = E1000Eecd.PRES | E1000Eecd.GNT | this.#old;
    const index = (this.#bitOut >> 4) & 0x3f;
    const bit = (this.#words[index]! >> ((this.#bitOut & 0xf) ^ 0xf)) & 1;
    if (!this.#reading || bit) value |= E1000Eecd.DO;
    return value;
  }

  /**
   * Applies an EECD write.
   *
   * @param value The written value.
   *
   * @example
   * ```ts
   * import { EepromMicrowire } from "./e1000_eeprom.ts";
   * import { E1000Eecd } from "./e1000_regs.ts";
   * import { equal } from "node:assert/strict";
   * const ee = new EepromMicrowire(new Uint16Array(64));
   * ee.write(0xffff_ffff);
   * const latched = E1000Eecd.SK | E1000Eecd.CS | E1000Eecd.DI | E1000Eecd.FWE_MASK | E1000Eecd.REQ;
   * equal(ee.read() & ~(E1000Eecd.PRES | E1000Eecd.GNT | E1000Eecd.DO), latched); // only control bits stick
   * ```
   */
  write(value: number): void {
    const old = this.#old;
    this.#old = value &
      (E1000Eecd.SK | E1000Eecd.CS | E1000Eecd.DI | E1000Eecd.FWE_MASK | E1000Eecd.REQ);
    if (!(value & E1000Eecd.CS)) return;
    if ((value ^ old) & E1000Eecd.CS) {
      // Rising edge of chip select: a new command.
      this.#valIn = 0;
      this.#bitIn = 0;
      this.#bitOut = 0;
      this.#reading = false;
    }
    if (!((value ^ old) & E1000Eecd.SK)) return; // no clock edge
    if (!(value & E1000Eecd.SK)) {
      // Falling edge: the next output bit.
      this.#bitOut = (this.#bitOut + 1) & 0xffff;
      return;
    }
    this.#valIn = ((this.#valIn << 1) | (value & E1000Eecd.DI ? 1 : 0)) >>> 0;
    this.#bitIn = (this.#bitIn + 1) & 0xffff;
    if (this.#bitIn === 9 && !this.#reading) {
      this.#bitOut = (((this.#valIn & 0x3f) << 4) - 1) & 0xffff;
      this.#reading = ((this.#valIn >> 6) & 7) === MICROWIRE_READ;
    }
  }
}
