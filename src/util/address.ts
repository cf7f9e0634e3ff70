/**
 * Address and integer helpers shared by every layer.
 *
 * Guest addresses are JavaScript numbers. They must be safe integers
 * (below 2^53) and non-negative; a value that cannot be represented exactly is
 * rejected with a clear error instead of silently wrapping.
 *
 * @module
 */

/**
 * The largest address dmaworks can represent exactly (2^53 − 1).
 *
 * @example
 * ```ts
 * import { checkAddress, MAX_ADDRESS } from "./address.ts";
 * import { equal, throws } from "node:assert/strict";
 * equal(checkAddress(MAX_ADDRESS), 2 ** 53 - 1);
 * throws(() => checkAddress(MAX_ADDRESS + 1), RangeError);
 * ```
 */
export const MAX_ADDRESS: number = Number.MAX_SAFE_INTEGER;

/**
 * 2^32, the base of high RAM on a q35-style machine.
 *
 * @example
 * ```ts
 * import { FOUR_GIB } from "./address.ts";
 * import { equal } from "node:assert/strict";
 * // The high half of a 64-bit register pair, and the address it forms.
 * equal(Math.floor(0x1_2345_6000 / FOUR_GIB), 1);
 * equal(2 * FOUR_GIB + 0x1000, 0x2_0000_1000);
 * ```
 */
export const FOUR_GIB = 0x1_0000_0000;

/**
 * Formats a number or bigint as `0x…` lower-case hex, zero-padded to `digits`.
 *
 * @param value The value to format.
 * @param digits The minimum number of hex digits.
 * @returns The formatted string.
 *
 * @example Format an address
 * ```ts
 * import { hex } from "./address.ts";
 * import { equal } from "node:assert/strict";
 * equal(hex(0x1000), "0x1000");
 * equal(hex(0xab, 4), "0x00ab");
 * ```
 */
export function hex(value: number | bigint, digits = 1): string {
  if (value < 0) return `-0x${(-BigInt(value)).toString(16).padStart(digits, "0")}`;
  return `0x${value.toString(16).padStart(digits, "0")}`;
}

/**
 * Checks that `address` is a non-negative safe integer and returns it.
 *
 * @param address The address to check.
 * @param what What the address is, for the error message.
 * @returns The address unchanged.
 * @throws {RangeError} If the address is negative, fractional or ≥ 2^53.
 *
 * @example Reject an address that does not fit
 * ```ts
 * import { checkAddress } from "./address.ts";
 * import { throws } from "node:assert/strict";
 * checkAddress(0x1000);
 * throws(() => checkAddress(2 ** 53), RangeError);
 * throws(() => checkAddress(-1), RangeError);
 * ```
 */
export function checkAddress(address: number, what = "address"): number {
  if (!Number.isSafeInteger(address) || address < 0) {
    throw new RangeError(
      `Invalid ${what} ${String(address)}: must be an integer from 0 to 2^53-1`,
    );
  }
  return address;
}

/**
 * Checks that `length` is a non-negative safe integer and that
 * `address + length` does not exceed 2^53.
 *
 * @param address The start address, already checked.
 * @param length The length to check.
 * @returns The length unchanged.
 * @throws {RangeError} If the length is invalid or the range overflows.
 *
 * @example
 * ```ts
 * import { checkRange } from "./address.ts";
 * import { throws } from "node:assert/strict";
 * checkRange(0x1000, 16);
 * throws(() => checkRange(2 ** 53 - 2, 16), RangeError);
 * ```
 */
export function checkRange(address: number, length: number): number {
  checkAddress(address);
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Invalid length ${String(length)}: must be a non-negative integer`);
  }
  if (length > MAX_ADDRESS + 1 - address) {
    throw new RangeError(
      `Invalid range ${hex(address)}+${hex(length)}: ends beyond 2^53`,
    );
  }
  return length;
}

/**
 * Converts a 64-bit bigint (for example a descriptor's buffer address) to an
 * address number, or returns `undefined` when it is not representable.
 *
 * @param value The unsigned 64-bit value.
 * @returns The address, or `undefined` when it is ≥ 2^53 or negative.
 *
 * @example
 * ```ts
 * import { bigintToAddress } from "./address.ts";
 * import { equal } from "node:assert/strict";
 * equal(bigintToAddress(0x1000n), 0x1000);
 * equal(bigintToAddress(0xffff_ffff_ffff_ffffn), undefined);
 * ```
 */
export function bigintToAddress(value: bigint): number | undefined {
  if (value < 0n || value > BigInt(MAX_ADDRESS)) return undefined;
  return Number(value);
}

/**
 * Combines two 32-bit halves into a number, or `undefined` when the result
 * would not be a safe integer.
 *
 * @param lo The low 32 bits (treated as unsigned).
 * @param hi The high 32 bits (treated as unsigned).
 * @returns `hi * 2^32 + lo`, or `undefined` if ≥ 2^53.
 *
 * @example
 * ```ts
 * import { joinHalves } from "./address.ts";
 * import { equal } from "node:assert/strict";
 * equal(joinHalves(0x1000, 1), 0x1_0000_1000);
 * equal(joinHalves(0, 0x0020_0000), undefined);
 * ```
 */
export function joinHalves(lo: number, hi: number): number | undefined {
  const h = hi >>> 0;
  if (h >= 0x20_0000) return undefined;
  return h * FOUR_GIB + (lo >>> 0);
}
