/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and `cksum -a crc32b`),
 * computable in pieces.
 *
 * @module
 */

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb8_8320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * The CRC-32 of `data`, continuing from the CRC of the bytes before it.
 *
 * @param data The bytes.
 * @param previous The CRC of everything before `data` (default 0: `data` is the start).
 * @returns The CRC as an unsigned 32-bit number.
 *
 * @example
 * ```ts
 * import { crc32 } from "./crc32.ts";
 * import { equal } from "node:assert/strict";
 * const text = new TextEncoder().encode("123456789");
 * equal(crc32(text), 0xcbf43926);
 * equal(crc32(text.subarray(4), crc32(text.subarray(0, 4))), 0xcbf43926);
 * ```
 */
export function crc32(data: Uint8Array, previous = 0): number {
  let c = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
