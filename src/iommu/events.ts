/**
 * Event log entries: encoding (the IOMMU writes them) and decoding (guest
 * drivers and tests read them).
 *
 * @module
 */

import { AmdViEvent } from "./amd_vi_registers.ts";

/** Names of the event codes. */
export type IommuEventName =
  | "ILLEGAL_DEV_TABLE_ENTRY"
  | "IO_PAGE_FAULT"
  | "DEV_TAB_HARDWARE_ERROR"
  | "PAGE_TAB_HARDWARE_ERROR"
  | "ILLEGAL_COMMAND_ERROR"
  | "COMMAND_HARDWARE_ERROR"
  | "IOTLB_INV_TIMEOUT"
  | "INVALID_DEVICE_REQUEST"
  | "UNKNOWN";

/** Event flag bits (q0 bits 48–56). */
export interface IommuEventFlags {
  /** GN: guest (PASID) request. */
  gn?: boolean;
  /** NX: execute request. */
  nx?: boolean;
  /** US: user-mode request. */
  us?: boolean;
  /** I: interrupt request (not a memory access). */
  i?: boolean;
  /** PR: the page (entry) was present. */
  pr?: boolean;
  /** RW: 1 = write. */
  rw?: boolean;
  /** PE: permission violation. */
  pe?: boolean;
  /** RZ: reserved bits set (0 with PR = 1: invalid level encoding). */
  rz?: boolean;
  /** TR: translation request. */
  tr?: boolean;
}

/** A decoded event. */
export interface IommuEvent {
  /** Event code (1–8). */
  readonly code: number;
  /** Its name. */
  readonly name: IommuEventName;
  /** DeviceID (requester id). */
  readonly deviceId: number;
  /** DomainID (IO_PAGE_FAULT, PAGE_TAB_HARDWARE_ERROR). */
  readonly domainId: number;
  /** Flags. */
  readonly flags: Required<IommuEventFlags>;
  /** Type field (hardware errors: 1 master abort, 2 target abort, 3 data error). */
  readonly type: number;
  /** The address field (q1). */
  readonly address: bigint;
}

const NAMES: Record<number, IommuEventName> = {
  1: "ILLEGAL_DEV_TABLE_ENTRY",
  2: "IO_PAGE_FAULT",
  3: "DEV_TAB_HARDWARE_ERROR",
  4: "PAGE_TAB_HARDWARE_ERROR",
  5: "ILLEGAL_COMMAND_ERROR",
  6: "COMMAND_HARDWARE_ERROR",
  7: "IOTLB_INV_TIMEOUT",
  8: "INVALID_DEVICE_REQUEST",
};

const FLAG_BITS: ReadonlyArray<[keyof IommuEventFlags, bigint]> = [
  ["gn", 48n],
  ["nx", 49n],
  ["us", 50n],
  ["i", 51n],
  ["pr", 52n],
  ["rw", 53n],
  ["pe", 54n],
  ["rz", 55n],
  ["tr", 56n],
];

/**
 * Builds a 16-byte event entry.
 *
 * @param code Event code (see `AmdViEvent`).
 * @param fields DeviceID, DomainID (q0 47:32), flags, Type (q0 59:57 or 58:57) and address (q1).
 * @returns The two 64-bit words.
 *
 * @example
 * ```ts
 * import { decodeEvent, encodeEvent } from "./events.ts";
 * import { equal } from "node:assert/strict";
 * const [q0, q1] = encodeEvent(2, { deviceId: 0x20, domainId: 7, flags: { pr: true, rw: true, pe: true }, address: 0x5000n });
 * const e = decodeEvent(q0, q1);
 * equal(e.name, "IO_PAGE_FAULT");
 * equal(e.domainId, 7);
 * equal(e.flags.pe && e.flags.rw && !e.flags.rz, true);
 * ```
 */
export function encodeEvent(
  code: number,
  fields: {
    deviceId?: number;
    domainId?: number;
    flags?: IommuEventFlags;
    type?: number;
    address?: bigint;
  },
): [bigint, bigint] {
  let q0 = (BigInt(code) & 0xfn) << 60n;
  q0 |= BigInt((fields.deviceId ?? 0) & 0xffff);
  q0 |= BigInt((fields.domainId ?? 0) & 0xffff) << 32n;
  for (const [name, n] of FLAG_BITS) {
    if (fields.flags?.[name]) q0 |= 1n << n;
  }
  q0 |= BigInt((fields.type ?? 0) & 7) << 57n;
  return [BigInt.asUintN(64, q0), BigInt.asUintN(64, fields.address ?? 0n)];
}

/**
 * Decodes a 16-byte event entry.
 *
 * @param q0 First word.
 * @param q1 Second word.
 * @returns The event.
 *
 * @example
 * ```ts
 * import { decodeEvent } from "./events.ts";
 * import { equal } from "node:assert/strict";
 * equal(decodeEvent(0x5000_0000_0000_0000n, 0x1000n).name, "ILLEGAL_COMMAND_ERROR");
 * ```
 */
export function decodeEvent(q0: bigint, q1: bigint): IommuEvent {
  const code = Number((q0 >> 60n) & 0xfn);
  const flags = {} as Required<IommuEventFlags>;
  for (const [name, n] of FLAG_BITS) flags[name] = ((q0 >> n) & 1n) === 1n;
  const wideType = code === AmdViEvent.INVALID_DEVICE_REQUEST;
  return {
    code,
    name: NAMES[code] ?? "UNKNOWN",
    deviceId: Number(q0 & 0xffffn),
    domainId: Number((q0 >> 32n) & 0xffffn),
    flags,
    type: Number((q0 >> 57n) & (wideType ? 7n : 3n)),
    address: q1,
  };
}
