/**
 * Ethernet frame helpers shared by the NIC model, the network backends and
 * the guest driver: MAC address parsing and formatting, address classes, the
 * frame check sequence (CRC-32) and frame construction.
 *
 * Frames travel between dmaworks NICs and backends without their FCS and
 * without padding, the way QEMU's net layer carries them.
 *
 * @module
 */

import { crc32 } from "../util/crc32.ts";

/**
 * Bytes in a MAC address.
 *
 * @example
 * ```ts
 * import { MAC_BYTES, parseMac } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseMac("52:54:00:12:34:56").length, MAC_BYTES); // 48 bits, IEEE 802
 * ```
 */
export const MAC_BYTES = 6;
/**
 * Bytes in an Ethernet header (destination, source, EtherType).
 *
 * @example
 * ```ts
 * import { buildFrame, ETH_HEADER_BYTES } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * const src = [2, 0, 0, 0, 0, 1];
 * const frame = buildFrame({ dst: [2, 0, 0, 0, 0, 2], src, etherType: 0x0800 });
 * equal(frame.length, ETH_HEADER_BYTES); // 6 + 6 + 2 (IEEE 802.3)
 * equal((frame[ETH_HEADER_BYTES - 2]! << 8) | frame[ETH_HEADER_BYTES - 1]!, 0x0800); // EtherType
 * ```
 */
export const ETH_HEADER_BYTES = 14;
/**
 * The shortest frame on the wire without its FCS (64 bytes with it).
 *
 * @example
 * ```ts
 * import { BROADCAST_MAC, buildFrame, ETH_FCS_BYTES, ETH_MIN_FRAME } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * const src = [2, 0, 0, 0, 0, 1];
 * const arp = buildFrame({ dst: BROADCAST_MAC, src, payload: new Uint8Array(28) });
 * equal(arp.length < ETH_MIN_FRAME, true); // 42 bytes: padded to 60 on the wire
 * equal(ETH_MIN_FRAME + ETH_FCS_BYTES, 64); // IEEE 802.3's minimum frame size
 * ```
 */
export const ETH_MIN_FRAME = 60;
/**
 * Bytes of the frame check sequence.
 *
 * @example
 * ```ts
 * import { ETH_FCS_BYTES, ethernetCrc32 } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * const wire = new Uint8Array(60 + ETH_FCS_BYTES);
 * const fcs = ethernetCrc32(wire.subarray(0, 60));
 * new DataView(wire.buffer).setUint32(60, fcs, true); // appended least significant byte first
 * equal(ethernetCrc32(wire), 0x2144df1c); // the CRC-32 residue of a frame with a good FCS
 * ```
 */
export const ETH_FCS_BYTES = 4;
/**
 * The broadcast address.
 *
 * @example
 * ```ts
 * import { BROADCAST_MAC, buildFrame, formatMac, isBroadcast } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatMac(BROADCAST_MAC), "ff:ff:ff:ff:ff:ff");
 * equal(isBroadcast(buildFrame({ dst: BROADCAST_MAC, src: [2, 0, 0, 0, 0, 1] })), true);
 * equal(Object.isFrozen(BROADCAST_MAC), true); // shared: nobody may change it
 * ```
 */
export const BROADCAST_MAC: readonly number[] = Object.freeze([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/**
 * Parses a MAC address written as six hex byte pairs separated by `:` or `-`.
 *
 * @param text E.g. `52:54:00:12:34:56`.
 * @returns The six bytes.
 * @throws {SyntaxError} When `text` is not a MAC address.
 *
 * @example
 * ```ts
 * import { parseMac } from "./ethernet.ts";
 * import { deepEqual, throws } from "node:assert/strict";
 * deepEqual(parseMac("52:54:00:12:34:56"), new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
 * throws(() => parseMac("52:54:00:12:34"));
 * ```
 */
export function parseMac(text: string): Uint8Array {
  const m =
    /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i
      .exec(text.trim());
  if (!m) {
    throw new SyntaxError(
      `Invalid MAC address '${text}': expected six hex bytes like 52:54:00:12:34:56`,
    );
  }
  return Uint8Array.from([m[1], m[3], m[4], m[5], m[6], m[7]], (h) => parseInt(h!, 16));
}

/**
 * Formats a MAC address as QEMU prints it (lower case, `:`-separated).
 *
 * @param mac Six bytes (only the first six are used).
 * @returns E.g. `52:54:00:12:34:56`.
 *
 * @example
 * ```ts
 * import { formatMac } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatMac(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56])), "52:54:00:12:34:56");
 * ```
 */
export function formatMac(mac: ArrayLike<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < MAC_BYTES; i++) {
    parts.push(((mac[i] ?? 0) & 0xff).toString(16).padStart(2, "0"));
  }
  return parts.join(":");
}

/**
 * Whether a destination address is the broadcast address.
 *
 * @param frame A frame (its first six bytes are the destination).
 * @returns Whether it is ff:ff:ff:ff:ff:ff.
 *
 * @example
 * ```ts
 * import { isBroadcast } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * equal(isBroadcast(new Uint8Array(6).fill(0xff)), true);
 * ```
 */
export function isBroadcast(frame: Uint8Array): boolean {
  for (let i = 0; i < MAC_BYTES; i++) if (frame[i] !== 0xff) return false;
  return true;
}

/**
 * Whether a destination address is a group address (multicast or broadcast).
 *
 * @param frame A frame (its first byte's low bit is the group bit).
 * @returns Whether the group bit is set.
 *
 * @example
 * ```ts
 * import { isMulticast } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * equal(isMulticast(new Uint8Array([0x01, 0x00, 0x5e, 0, 0, 1])), true);
 * equal(isMulticast(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56])), false);
 * ```
 */
export function isMulticast(frame: Uint8Array): boolean {
  return ((frame[0] ?? 0) & 1) === 1;
}

/**
 * The Ethernet frame check sequence: CRC-32 (IEEE 802.3) of the frame,
 * transmitted least significant byte first.
 *
 * @param data The frame from the destination address to the end of the payload.
 * @returns The CRC as an unsigned 32-bit number; its little-endian bytes are the FCS.
 *
 * @example
 * ```ts
 * import { ethernetCrc32 } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * equal(ethernetCrc32(new TextEncoder().encode("123456789")), 0xcbf43926);
 * ```
 */
export function ethernetCrc32(data: Uint8Array): number {
  return crc32(data);
}

/** Fields of {@linkcode buildFrame}. */
export interface FrameFields {
  /** Destination address. */
  readonly dst: ArrayLike<number>;
  /** Source address. */
  readonly src: ArrayLike<number>;
  /** EtherType (default 0x88b5, IEEE local experimental). */
  readonly etherType?: number;
  /** Payload bytes. */
  readonly payload?: Uint8Array;
}

/**
 * Builds an Ethernet frame (no FCS, no padding).
 *
 * @param fields Addresses, EtherType and payload.
 * @returns The frame.
 *
 * @example
 * ```ts
 * import { buildFrame, formatMac } from "./ethernet.ts";
 * import { equal } from "node:assert/strict";
 * const f = buildFrame({ dst: [255, 255, 255, 255, 255, 255], src: [2, 0, 0, 0, 0, 1],
 *   payload: new Uint8Array(4) });
 * equal(f.length, 18);
 * equal(formatMac(f.subarray(6)), "02:00:00:00:00:01");
 * ```
 */
export function buildFrame(fields: FrameFields): Uint8Array {
  const payload = fields.payload ?? new Uint8Array(0);
  const frame = new Uint8Array(ETH_HEADER_BYTES + payload.length);
  for (let i = 0; i < MAC_BYTES; i++) {
    frame[i] = fields.dst[i] ?? 0;
    frame[MAC_BYTES + i] = fields.src[i] ?? 0;
  }
  const type = fields.etherType ?? 0x88b5;
  frame[12] = (type >> 8) & 0xff;
  frame[13] = type & 0xff;
  frame.set(payload, ETH_HEADER_BYTES);
  return frame;
}
