/**
 * Machine descriptions in JSON (`--config machine.json`): everything the
 * QEMU-style flags express (memory, devices with their addresses and
 * properties, drives, netdevs, captures, the IOMMU, the workload, the number
 * of machines, tracing), validated field by field. An error names the field
 * by its path, e.g. `Invalid machine config field
 * "devices[2].properties.addr": expected "SS.F", got "zz"`.
 *
 * Relative file names in a description (`drives[].file`,
 * `captures[].file`, `workload`, `traceFile`, `dmaTrace`) are relative to
 * the description file's directory.
 *
 * @example A machine with an IOMMU, an edu device and a disk in memory
 * ```ts
 * import { parseMachineFile } from "./machine_file.ts";
 * import { equal } from "node:assert/strict";
 * const description = parseMachineFile({
 *   memory: "512M",
 *   devices: [
 *     { type: "amd-iommu", addr: "01.0" },
 *     { type: "edu", id: "edu0", addr: "04.0" },
 *     { type: "piix3-ide", id: "ide", addr: "02.0" },
 *     { type: "ide-hd", properties: { drive: "d0", bus: "ide.0" } },
 *   ],
 *   drives: [{ id: "d0", size: "64M" }],
 *   workload: { name: "disk-copy", options: { size: "4M" } },
 * });
 * equal(description.config.ramSize, 512 * 2 ** 20);
 * equal(description.config.devices?.length, 4);
 * equal(description.workload?.options.size, "4M");
 * ```
 *
 * @module
 */

import { isAbsolute, join } from "node:path";
import {
  ATTACHED_DEVICES,
  deviceType,
  deviceTypeNames,
  MAIN_ISOLATE_DEVICES,
} from "../devices/registry.ts";
import type { NetdevConfig } from "../net/netdev.ts";
import { netdevTypes } from "../net/netdev.ts";
import "../net/backends.ts";
import { resolveWorkload, type WorkloadSpec } from "../workloads/registry.ts";
import type { CaptureConfig, DeviceConfig, DriveConfig, MachineConfig } from "./machine.ts";
import { parseTraceCategories, type TraceCategory } from "./trace_categories.ts";
import { type DiskFaults, DiskFaultsError, validateDiskFaults } from "../storage/faulty_disk.ts";

/** A property value in a description: strings as on the command line; numbers and booleans are converted (`true` → `on`). */
export type MachineFileValue = string | number | boolean;

/** A device (`-device TYPE,id=…,addr=…,prop=…`). */
export interface MachineFileDevice {
  /** The device type: `amd-iommu`, `edu`, `piix3-ide`, `ide-hd`, `e1000`. */
  type: string;
  /** Its id (default: the type and a number). */
  id?: string;
  /** PCI slot and function, `SS` or `SS.F` in hex (PCI devices; default: the first free slot). */
  addr?: string;
  /** `pcie.0` for PCI devices; for `ide-hd` the controller's bus, `ID.N`. */
  bus?: string;
  /** The type's properties (`id`, `addr` and `bus` may also be given here, as on the command line). */
  properties?: Record<string, MachineFileValue>;
}

/** A drive (`-drive if=none,id=…,file=…`); attach it with an `ide-hd` device. */
export interface MachineFileDrive {
  /** The id `ide-hd` devices name with `drive`. */
  id: string;
  /** A raw image file. */
  file?: string;
  /** An in-memory disk of this size: bytes, or a string with a K/M/G/T suffix (bare: MiB, as `-drive size=`). */
  size?: number | string;
  /** Writes fail with an ATA error (default false). */
  readonly?: boolean;
  /** Only `raw`. */
  format?: "raw";
  /**
   * Make the disk fail on purpose (fault injection; see {@linkcode DiskFaults}):
   * `spaceBytes` may also be a size string like `"1M"`.
   */
  faults?: Omit<DiskFaults, "spaceBytes"> & { readonly spaceBytes?: number | string };
}

/** A network backend (`-netdev TYPE,id=…,prop=…`). */
export interface MachineFileNetdev {
  /** `hub` or `dgram`. */
  type: string;
  /** The id NICs name with `netdev`. */
  id: string;
  /** The backend's properties (`hubid` for a hub; `local.port`, `remote.host`, … for dgram). */
  properties?: Record<string, MachineFileValue>;
}

/** A packet capture (`-object filter-dump,id=…,netdev=…,file=…`). */
export interface MachineFileCapture {
  /** The capture's id. */
  id: string;
  /** The netdev whose frames are written. */
  netdev: string;
  /** The pcap file. */
  file: string;
}

/** A workload with options, the object form of `--workload NAME,opt=value`. */
export interface MachineFileWorkload {
  /** A built-in workload or a module file. */
  name: string;
  /** Its options. */
  options?: Record<string, MachineFileValue>;
}

/** A machine description file. Every field is optional. */
export interface MachineFile {
  /** The machine's name (`-name`). */
  name?: string;
  /** Guest RAM: bytes, or a string with a K/M/G/T suffix (bare: MiB, as `-m`). */
  memory?: number | string;
  /** How many identical machines to run, their NICs linked by the in-process hubs (`--machines`). */
  machines?: number;
  /** Devices, in slot-assignment order. */
  devices?: MachineFileDevice[];
  /** Drives. */
  drives?: MachineFileDrive[];
  /** Network backends. */
  netdevs?: MachineFileNetdev[];
  /** Packet captures. */
  captures?: MachineFileCapture[];
  /** The workload: `NAME[,opt=value…]` or `{ name, options }` (`--workload`). */
  workload?: string | MachineFileWorkload;
  /** Trace categories, `"dma,iommu"` or `["dma", "iommu"]` (`-d`). */
  trace?: string | string[];
  /** Where trace lines go instead of stderr (`-D`). */
  traceFile?: string;
  /** A file for one line per DMA transaction (`--dma-trace`). */
  dmaTrace?: string;
  /** Run device workers with only the permissions they need (`--narrow-permissions`). */
  narrowPermissions?: boolean;
}

/** A validated description. */
export interface MachineDescription {
  /** The machine configuration (for each machine). */
  readonly config: MachineConfig;
  /** How many machines (`machines`), when given. */
  readonly machines?: number;
  /** The workload, when given. */
  readonly workload?: WorkloadSpec;
  /** Trace categories, when given. */
  readonly trace?: readonly TraceCategory[];
  /** The trace log file, resolved. */
  readonly traceFile?: string;
  /** The DMA trace file, resolved. */
  readonly dmaTrace?: string;
}

/**
 * A field of a machine description is invalid; `field` is its path (e.g.
 * `devices[2].properties.addr`, empty for the file as a whole).
 *
 * @example
 * ```ts
 * import { MachineFileError, parseMachineFile } from "./machine_file.ts";
 * import { equal } from "node:assert/strict";
 * try {
 *   parseMachineFile({ devices: [{ type: "edu", addr: "zz" }] });
 * } catch (error) {
 *   equal((error as MachineFileError).field, "devices[0].addr");
 * }
 * ```
 */
export class MachineFileError extends Error {
  /** The path of the bad field. */
  readonly field: string;

  /**
   * Creates the error.
   *
   * @param field The field's path (empty: the whole description).
   * @param problem What is wrong with it.
   */
  constructor(field: string, problem: string) {
    super(
      field === ""
        ? `Invalid machine config: ${problem}`
        : `Invalid machine config field "${field}": ${problem}`,
    );
    this.name = "MachineFileError";
    this.field = field;
  }
}

const TOP_FIELDS = [
  "name",
  "memory",
  "machines",
  "devices",
  "drives",
  "netdevs",
  "captures",
  "workload",
  "trace",
  "traceFile",
  "dmaTrace",
  "narrowPermissions",
];
const ID = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const ID_RULE = 'an id (a letter, then letters, digits, "-", "." or "_")';
const MAX_MACHINES = 64;
const HUB_KEYS = ["hubid"];
const DGRAM_KEYS = [
  "local.type",
  "local.host",
  "local.port",
  "remote.type",
  "remote.host",
  "remote.port",
];

/** Whether a string contains control characters (which have no place in names and paths). */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) < 0x20) return true;
  return false;
}

/** How a value reads in an error message. */
function show(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") {
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}…"` : text;
  }
  return String(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Parses a size: a number is bytes; a string has a K/M/G/T suffix or `unit` applies. */
function size(value: unknown, unit: number): number | undefined {
  if (typeof value === "number") {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== "string") return undefined;
  const m = /^(\d+(?:\.\d+)?)([bkmgt])?$/i.exec(value.trim());
  if (!m) return undefined;
  const units: Record<string, number> = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
  const bytes = Number(m[1]) * (m[2] ? units[m[2].toLowerCase()]! : unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A drive's `faults`: {@linkcode validateDiskFaults}, with sizes like "1M" for `spaceBytes`. */
function readDiskFaults(v: Validator, value: unknown, field: string): DiskFaults {
  if (!isObject(value)) v.fail(field, `expected an object, got ${show(value)}`);
  const faults: Record<string, unknown> = { ...value };
  if (typeof faults.spaceBytes === "string") {
    const bytes = size(faults.spaceBytes, 1);
    if (bytes === undefined) {
      v.fail(
        `${field}.spaceBytes`,
        `expected bytes or a size like "1M", got ${show(faults.spaceBytes)}`,
      );
    }
    faults.spaceBytes = bytes;
  }
  try {
    return validateDiskFaults(faults);
  } catch (error) {
    if (!(error instanceof DiskFaultsError)) throw error;
    v.fail(error.field === "" ? field : `${field}.${error.field}`, error.problem);
  }
}

class Validator {
  readonly #base: string | undefined;

  constructor(base: string | undefined) {
    this.#base = base;
  }

  fail(field: string, problem: string): never {
    throw new MachineFileError(field, problem);
  }

  object(value: unknown, field: string, known: readonly string[]): Record<string, unknown> {
    if (!isObject(value)) this.fail(field, `expected an object, got ${show(value)}`);
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        this.fail(
          field === "" ? key : `${field}.${key}`,
          `unknown field (known: ${known.join(", ")})`,
        );
      }
    }
    return value;
  }

  array(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, `expected an array, got ${show(value)}`);
    return value;
  }

  string(value: unknown, field: string): string {
    if (typeof value !== "string" || value === "") {
      this.fail(field, `expected a non-empty string, got ${show(value)}`);
    }
    if (hasControl(value)) this.fail(field, "control characters are not allowed");
    return value;
  }

  id(value: unknown, field: string): string {
    if (typeof value !== "string" || !ID.test(value)) {
      this.fail(field, `expected ${ID_RULE}, got ${show(value)}`);
    }
    return value;
  }

  boolean(value: unknown, field: string): boolean {
    if (typeof value !== "boolean") this.fail(field, `expected true or false, got ${show(value)}`);
    return value;
  }

  /** A property value as the command line would carry it. */
  scalar(value: unknown, field: string): string {
    if (typeof value === "string") {
      if (hasControl(value)) this.fail(field, "control characters are not allowed");
      return value;
    }
    if (typeof value === "number" && Number.isFinite(value)) return String(value);
    if (typeof value === "boolean") return value ? "on" : "off";
    this.fail(field, `expected a string, number or boolean, got ${show(value)}`);
  }

  properties(value: unknown, field: string): Record<string, string> {
    if (value === undefined) return {};
    if (!isObject(value)) this.fail(field, `expected an object, got ${show(value)}`);
    const out: Record<string, string> = {};
    for (const [key, v] of Object.entries(value)) out[key] = this.scalar(v, `${field}.${key}`);
    return out;
  }

  path(value: unknown, field: string): string {
    const text = this.string(value, field);
    return this.#base === undefined || isAbsolute(text) ? text : join(this.#base, text);
  }
}

interface PendingDevice {
  readonly index: number;
  readonly field: string;
  readonly type: string;
  readonly id: string | undefined;
  readonly idField: string;
  readonly addr: string | undefined;
  readonly addrField: string;
  readonly properties: Record<string, string>;
}

/** Splits a device's generic fields (`id`, `addr`, `bus`) from its own properties. */
function readDevice(v: Validator, raw: unknown, index: number): PendingDevice {
  const field = `devices[${index}]`;
  const d = v.object(raw, field, ["type", "id", "addr", "bus", "properties"]);
  if (d.type === undefined) v.fail(`${field}.type`, "required");
  const type = v.string(d.type, `${field}.type`);
  const attached = ATTACHED_DEVICES[type];
  const iommu = type in MAIN_ISOLATE_DEVICES;
  const pci = deviceType(type);
  if (!attached && !iommu && !pci) {
    const known = [
      ...deviceTypeNames(),
      ...Object.keys(MAIN_ISOLATE_DEVICES),
      ...Object.keys(ATTACHED_DEVICES),
    ]
      .sort();
    v.fail(`${field}.type`, `unknown device type ${show(type)} (known: ${known.join(", ")})`);
  }
  const properties = v.properties(d.properties, `${field}.properties`);
  const generic = (key: "id" | "addr" | "bus"): [string | undefined, string] => {
    const top = d[key];
    const inner = properties[key];
    if (top !== undefined && inner !== undefined) {
      v.fail(`${field}.properties.${key}`, `given twice (also ${field}.${key})`);
    }
    if (inner !== undefined && !(attached?.includes(key))) {
      delete properties[key];
      return [inner, `${field}.properties.${key}`];
    }
    return [top === undefined ? undefined : v.scalar(top, `${field}.${key}`), `${field}.${key}`];
  };
  const [id, idField] = generic("id");
  if (id !== undefined) v.id(id, idField);
  const [addr, addrField] = generic("addr");
  const [bus, busField] = generic("bus");
  if (attached) {
    if (addr !== undefined) v.fail(addrField, `${type} is not a PCI device: it has no addr`);
    if (bus !== undefined && d.bus !== undefined) properties["bus"] = bus;
  } else if (bus !== undefined && bus !== "pcie.0") {
    v.fail(busField, `expected "pcie.0" (the only PCI bus), got ${show(bus)}`);
  }
  const allowed = attached ?? (iommu ? [] : pci!.properties);
  for (const key of Object.keys(properties)) {
    if (!allowed.includes(key)) {
      v.fail(
        `${field}.properties.${key}`,
        allowed.length === 0
          ? `unknown property (${type} has none)`
          : `unknown property (${type} has: ${allowed.join(", ")})`,
      );
    }
    try {
      pci?.validate?.({ [key]: properties[key]! });
    } catch (error) {
      v.fail(`${field}.properties.${key}`, (error as Error).message);
    }
  }
  return { index, field, type, id, idField, addr, addrField, properties };
}

/**
 * Validates a parsed machine description and turns it into a machine
 * configuration, the workload and the run options.
 *
 * @param value The parsed JSON.
 * @param options `base`: the directory relative file names start from (default: as written).
 * @returns The description.
 * @throws {MachineFileError} Naming the first invalid field.
 *
 * @example
 * ```ts
 * import { parseMachineFile } from "./machine_file.ts";
 * import { throws } from "node:assert/strict";
 * throws(
 *   () => parseMachineFile({ devices: [{ type: "edu" }, { type: "edu" }, { type: "edu", properties: { addr: "zz" } }] }),
 *   { message: 'Invalid machine config field "devices[2].properties.addr": expected "SS.F" (slot 00-1f, function 0-7), got "zz"' },
 * );
 * ```
 */
export function parseMachineFile(
  value: unknown,
  options: { base?: string } = {},
): MachineDescription {
  const v: Validator = new Validator(options.base);
  if (!isObject(value)) v.fail("", `expected a JSON object, got ${show(value)}`);
  const file = v.object(value, "", TOP_FIELDS);
  const config: MachineConfig = {};
  if (file.name !== undefined) config.name = v.string(file.name, "name");
  if (file.memory !== undefined) {
    const bytes = size(file.memory, 2 ** 20);
    if (bytes === undefined) {
      v.fail("memory", `expected bytes or a size like "512M", got ${show(file.memory)}`);
    }
    if (bytes < 2 ** 20 || bytes % 4096 !== 0 || bytes > 2 ** 40) {
      v.fail(
        "memory",
        `expected at least 1M, at most 1T and a multiple of 4K, got ${show(file.memory)}`,
      );
    }
    config.ramSize = bytes;
  }
  let machines: number | undefined;
  if (file.machines !== undefined) {
    if (
      typeof file.machines !== "number" || !Number.isInteger(file.machines) ||
      file.machines < 1 || file.machines > MAX_MACHINES
    ) {
      v.fail(
        "machines",
        `expected a whole number from 1 to ${MAX_MACHINES}, got ${show(file.machines)}`,
      );
    }
    machines = file.machines;
  }

  // Drives.
  const drives: DriveConfig[] = [];
  const driveField = new Map<string, string>();
  for (
    const [i, raw] of (file.drives === undefined ? [] : v.array(file.drives, "drives")).entries()
  ) {
    const field = `drives[${i}]`;
    const d = v.object(raw, field, ["id", "file", "size", "readonly", "format", "faults"]);
    if (d.id === undefined) v.fail(`${field}.id`, "required");
    const id = v.id(d.id, `${field}.id`);
    if (driveField.has(id)) {
      v.fail(`${field}.id`, `duplicate drive id "${id}" (also ${driveField.get(id)})`);
    }
    driveField.set(id, `${field}.id`);
    if (d.format !== undefined && d.format !== "raw") {
      v.fail(`${field}.format`, `expected "raw" (the only format), got ${show(d.format)}`);
    }
    if (d.file !== undefined && d.size !== undefined) {
      v.fail(field, 'give "file" (a raw image) or "size" (an in-memory disk), not both');
    }
    const drive: DriveConfig = { id, format: "raw" };
    if (d.readonly !== undefined) drive.readonly = v.boolean(d.readonly, `${field}.readonly`);
    if (d.file !== undefined) drive.file = v.path(d.file, `${field}.file`);
    else if (d.size !== undefined) {
      const bytes = size(d.size, 2 ** 20);
      if (bytes === undefined || bytes < 512 || bytes % 512 !== 0) {
        v.fail(
          `${field}.size`,
          `expected a whole number of 512-byte sectors like "64M", got ${show(d.size)}`,
        );
      }
      drive.size = bytes;
    } else v.fail(field, 'needs "file" (a raw image) or "size" (an in-memory disk)');
    if (d.faults !== undefined) drive.faults = readDiskFaults(v, d.faults, `${field}.faults`);
    drives.push(drive);
  }

  // Network backends.
  const netdevs: NetdevConfig[] = [];
  const netdevField = new Map<string, string>();
  for (
    const [i, raw] of (file.netdevs === undefined ? [] : v.array(file.netdevs, "netdevs")).entries()
  ) {
    const field = `netdevs[${i}]`;
    const n = v.object(raw, field, ["type", "id", "properties"]);
    if (n.type === undefined) v.fail(`${field}.type`, "required");
    const type = v.string(n.type, `${field}.type`);
    if (!netdevTypes().includes(type)) {
      v.fail(
        `${field}.type`,
        `unknown netdev type ${show(type)} (known: ${netdevTypes().join(", ")})`,
      );
    }
    if (n.id === undefined) v.fail(`${field}.id`, "required");
    const id = v.id(n.id, `${field}.id`);
    if (netdevField.has(id)) {
      v.fail(`${field}.id`, `duplicate netdev id "${id}" (also ${netdevField.get(id)})`);
    }
    netdevField.set(id, `${field}.id`);
    const properties = v.properties(n.properties, `${field}.properties`);
    const keys = type === "hub" ? HUB_KEYS : type === "dgram" ? DGRAM_KEYS : undefined;
    for (const key of Object.keys(properties)) {
      if (keys && !keys.includes(key)) {
        v.fail(`${field}.properties.${key}`, `unknown property (${type} has: ${keys.join(", ")})`);
      }
      if (
        key.endsWith(".port") &&
        (!/^\d{1,5}$/.test(properties[key]!) || Number(properties[key]) > 65535)
      ) {
        v.fail(
          `${field}.properties.${key}`,
          `expected a port from 0 to 65535, got ${show(properties[key])}`,
        );
      }
    }
    if (type === "hub") {
      const hubid = properties["hubid"];
      if (hubid === undefined) v.fail(`${field}.properties.hubid`, "required (the hub's number)");
      if (!/^\d{1,10}$/.test(hubid) || Number(hubid) > 0x7fff_ffff) {
        v.fail(
          `${field}.properties.hubid`,
          `expected a number from 0 to 2147483647, got ${show(hubid)}`,
        );
      }
    }
    if (type === "dgram" && properties["remote.port"] === undefined) {
      v.fail(`${field}.properties.remote.port`, "required (where frames are sent)");
    }
    netdevs.push({ type, id, properties });
  }

  // Captures.
  const captures: CaptureConfig[] = [];
  const captureIds = new Set<string>();
  for (
    const [i, raw] of (file.captures === undefined ? [] : v.array(file.captures, "captures"))
      .entries()
  ) {
    const field = `captures[${i}]`;
    const c = v.object(raw, field, ["id", "netdev", "file"]);
    for (const key of ["id", "netdev", "file"]) {
      if (c[key] === undefined) v.fail(`${field}.${key}`, "required");
    }
    const id = v.id(c.id, `${field}.id`);
    if (captureIds.has(id)) v.fail(`${field}.id`, `duplicate capture id "${id}"`);
    captureIds.add(id);
    const netdev = v.string(c.netdev, `${field}.netdev`);
    if (!netdevField.has(netdev)) {
      v.fail(
        `${field}.netdev`,
        `no netdev "${netdev}" (${listOf("netdevs", [...netdevField.keys()])})`,
      );
    }
    captures.push({ id, netdev, file: v.path(c.file, `${field}.file`) });
  }

  // Devices.
  const pending = (file.devices === undefined ? [] : v.array(file.devices, "devices")).map((
    raw,
    i,
  ) => readDevice(v, raw, i));
  const devices = checkDevices(v, pending, driveField, netdevField);

  config.devices = devices;
  if (drives.length > 0) config.drives = drives;
  if (netdevs.length > 0) config.netdevs = netdevs;
  if (captures.length > 0) config.captures = captures;
  if (file.narrowPermissions !== undefined) {
    config.narrowWorkerPermissions = v.boolean(file.narrowPermissions, "narrowPermissions");
  }

  const description: {
    config: MachineConfig;
    machines?: number;
    workload?: WorkloadSpec;
    trace?: readonly TraceCategory[];
    traceFile?: string;
    dmaTrace?: string;
  } = { config };
  if (machines !== undefined) description.machines = machines;
  if (file.workload !== undefined) {
    description.workload = readWorkload(v, file.workload, options.base);
  }
  if (file.trace !== undefined) {
    const parts = typeof file.trace === "string"
      ? [[file.trace, "trace"] as const]
      : v.array(file.trace, "trace").map((t, i) =>
        [v.string(t, `trace[${i}]`), `trace[${i}]`] as const
      );
    const categories: TraceCategory[] = [];
    for (const [text, field] of parts) {
      try {
        for (const c of parseTraceCategories(v.string(text, field))) {
          if (!categories.includes(c)) categories.push(c);
        }
      } catch (error) {
        v.fail(field, (error as Error).message);
      }
    }
    description.trace = categories;
  }
  if (file.traceFile !== undefined) description.traceFile = v.path(file.traceFile, "traceFile");
  if (file.dmaTrace !== undefined) description.dmaTrace = v.path(file.dmaTrace, "dmaTrace");
  return description;
}

function listOf(what: string, ids: readonly string[]): string {
  return ids.length === 0 ? `no ${what} are defined` : `${what}: ${ids.join(", ")}`;
}

function readWorkload(v: Validator, raw: unknown, base: string | undefined): WorkloadSpec {
  const baseUrl = base === undefined ? undefined : new URL(`file://${join(base, "/")}`);
  if (typeof raw === "string") {
    try {
      return resolveWorkload(v.string(raw, "workload"), baseUrl);
    } catch (error) {
      v.fail("workload", (error as Error).message);
    }
  }
  const w = v.object(raw, "workload", ["name", "options"]);
  if (w.name === undefined) v.fail("workload.name", "required");
  const name = v.string(w.name, "workload.name");
  if (name.includes(",")) {
    v.fail("workload.name", 'expected a name without options (put them in "options")');
  }
  let spec: WorkloadSpec;
  try {
    spec = resolveWorkload(name, baseUrl);
  } catch (error) {
    v.fail("workload.name", (error as Error).message);
  }
  return { ...spec, options: v.properties(w.options, "workload.options") };
}

/** Cross-checks devices: ids, slots, one IOMMU, NIC netdevs, disks' drives and buses. */
function checkDevices(
  v: Validator,
  pending: readonly PendingDevice[],
  drives: ReadonlyMap<string, string>,
  netdevs: ReadonlyMap<string, string>,
): DeviceConfig[] {
  const ids = new Map<string, string>();
  const slots = new Map<string, string>();
  const perType = new Map<string, number>();
  const controllers: string[] = [];
  let iommu: string | undefined;
  for (const d of pending) {
    const n = perType.get(d.type) ?? 0;
    perType.set(d.type, n + 1);
    const id = d.id ?? (d.type === "amd-iommu" ? "iommu0" : `${d.type}${n}`);
    if (d.id !== undefined) {
      if (ids.has(id)) v.fail(d.idField, `duplicate device id "${id}" (also ${ids.get(id)})`);
      ids.set(id, d.idField);
    }
    if (d.type === "piix3-ide") controllers.push(id);
    if (d.type === "amd-iommu") {
      if (iommu) v.fail(`${d.field}.type`, `only one amd-iommu is supported (also ${iommu})`);
      iommu = d.field;
    }
    if (d.addr !== undefined) {
      const m = /^([0-9a-f]{1,2})(?:\.([0-7]))?$/i.exec(d.addr.trim());
      const slot = m ? parseInt(m[1]!, 16) : NaN;
      if (!m || slot > 0x1f) {
        v.fail(d.addrField, `expected "SS.F" (slot 00-1f, function 0-7), got ${show(d.addr)}`);
      }
      const key = `${slot.toString(16).padStart(2, "0")}.${m[2] ?? "0"}`;
      if (key === "00.0") v.fail(d.addrField, "slot 00.0 is the host bridge");
      if (slots.has(key)) v.fail(d.addrField, `slot ${key} is also used by ${slots.get(key)}`);
      slots.set(key, d.field);
    }
  }
  const nicNetdevs = new Map<string, string>();
  const disks = new Map<string, string>();
  const drivesUsed = new Map<string, string>();
  for (const d of pending) {
    const p = d.properties;
    if (deviceType(d.type)?.nic && p["netdev"] !== undefined) {
      const field = `${d.field}.properties.netdev`;
      const netdev = p["netdev"];
      if (!netdevs.has(netdev)) {
        v.fail(field, `no netdev "${netdev}" (${listOf("netdevs", [...netdevs.keys()])})`);
      }
      if (nicNetdevs.has(netdev)) {
        v.fail(
          field,
          `netdev "${netdev}" is already used by ${
            nicNetdevs.get(netdev)
          } (use a hub for more NICs)`,
        );
      }
      nicNetdevs.set(netdev, d.field);
    }
    if (d.type in ATTACHED_DEVICES) {
      const field = `${d.field}.properties`;
      const drive = p["drive"];
      if (drive === undefined) v.fail(`${field}.drive`, "required (the id of a drive)");
      if (!drives.has(drive)) {
        v.fail(`${field}.drive`, `no drive "${drive}" (${listOf("drives", [...drives.keys()])})`);
      }
      if (drivesUsed.has(drive)) {
        v.fail(`${field}.drive`, `drive "${drive}" is also attached by ${drivesUsed.get(drive)}`);
      }
      drivesUsed.set(drive, d.field);
      if (controllers.length === 0) v.fail(d.field, "needs a piix3-ide controller in devices");
      const bus = p["bus"] ?? `${controllers[0]}.0`;
      const m = /^(.+)\.([01])$/.exec(bus);
      if (!m || !controllers.includes(m[1]!)) {
        v.fail(
          `${field}.bus`,
          `no IDE bus ${show(bus)} (buses: ${
            controllers.flatMap((c) => [`${c}.0`, `${c}.1`]).join(", ")
          })`,
        );
      }
      const unit = p["unit"] ?? "0";
      if (unit !== "0" && unit !== "1") {
        v.fail(`${field}.unit`, `expected 0 or 1, got ${show(unit)}`);
      }
      const key = `${bus} unit ${unit}`;
      if (disks.has(key)) v.fail(d.field, `${key} is also used by ${disks.get(key)}`);
      disks.set(key, d.field);
    }
  }
  return pending.map((d) => {
    const config: DeviceConfig = { type: d.type };
    if (d.id !== undefined) config.id = d.id;
    if (d.addr !== undefined) config.addr = d.addr.trim();
    if (Object.keys(d.properties).length > 0) config.properties = d.properties;
    return config;
  });
}

/**
 * Reads, parses and validates a machine description file; relative file
 * names in it are relative to its directory.
 *
 * @param path The JSON file.
 * @returns The description.
 * @throws {MachineFileError} When the file cannot be read, is not JSON, or a field is invalid.
 *
 * @example
 * ```ts
 * import { loadMachineFile } from "./machine_file.ts";
 * import { equal } from "node:assert/strict";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * try {
 *   await Deno.writeTextFile(path, JSON.stringify({ memory: 64 * 2 ** 20 }));
 *   equal((await loadMachineFile(path)).config.ramSize, 64 * 2 ** 20);
 * } finally {
 *   await Deno.remove(path);
 * }
 * ```
 */
export async function loadMachineFile(path: string): Promise<MachineDescription> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new MachineFileError("", `cannot read '${path}': ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new MachineFileError("", `'${path}' is not valid JSON: ${(error as Error).message}`);
  }
  const absolute = isAbsolute(path) ? path : join(Deno.cwd(), path);
  return parseMachineFile(value, { base: join(absolute, "..") });
}
