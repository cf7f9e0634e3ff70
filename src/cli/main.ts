/**
 * The dmaworks command line: `deno task start` runs the default headless
 * machine; QEMU-style options build other machines; `-qtest` serves QEMU's
 * qtest protocol.
 *
 * @example Run the default machine
 * ```sh
 * deno run -A jsr:@dmaworks/dmaworks/cli
 * ```
 *
 * @module
 */

import denoConfig from "../../deno.json" with { type: "json" };
import {
  ATTACHED_DEVICES,
  deviceType,
  deviceTypeNames,
  MAIN_ISOLATE_DEVICES,
  PLANNED_DEVICE_TYPES,
} from "../devices/registry.ts";
import {
  type CaptureConfig,
  type DeviceConfig,
  type DriveConfig,
  Machine,
  type MachineConfig,
} from "../machine/machine.ts";
import type { NetdevConfig } from "../net/netdev.ts";
import { startQtest } from "../qtest/qtest_server.ts";
import {
  type CommandLine,
  CommandLineError,
  HELP_TEXT,
  parseCommandLine,
  parseKeyValues,
  parseSize,
} from "./args.ts";

export type { CommandLine, DeviceOption } from "./args.ts";

/** Where the CLI writes. */
export interface CliIo {
  /** Normal output (summaries). */
  readonly stdout: (text: string) => void;
  /** Diagnostics and logs. */
  readonly stderr: (text: string) => void;
}

const encoder = new TextEncoder();

/** The process's standard streams. */
export const PROCESS_IO: CliIo = {
  stdout: (text) => void Deno.stdout.writeSync(encoder.encode(text)),
  stderr: (text) => void Deno.stderr.writeSync(encoder.encode(text)),
};

/** Built-in workloads by name. */
const WORKLOADS: Readonly<Record<string, URL>> = {
  demo: new URL("../workloads/demo.ts", import.meta.url),
};

/** Devices of the machine `deno task start` runs when no -device is given. */
export const DEFAULT_DEVICES: readonly DeviceConfig[] = [
  { type: "amd-iommu", id: "iommu0", addr: "01.0" },
  { type: "piix3-ide", id: "ide", addr: "02.0" },
  { type: "ide-hd", properties: { drive: "disk0", bus: "ide.0" } },
  { type: "edu", id: "edu0", addr: "04.0" },
  { type: "e1000", id: "nic0", addr: "03.0", properties: { netdev: "net0" } },
  { type: "e1000", id: "nic1", addr: "05.0", properties: { netdev: "net1" } },
];

/** Network backends of the default machine: both NICs on hub 0, so they reach each other. */
export const DEFAULT_NETDEVS: readonly NetdevConfig[] = [
  { type: "hub", id: "net0", properties: { hubid: "0" } },
  { type: "hub", id: "net1", properties: { hubid: "0" } },
];

/**
 * Drives of the default machine: a 64 MiB in-memory disk for the IDE controller.
 *
 * @example
 * ```ts
 * import { DEFAULT_DRIVES } from "./main.ts";
 * import { equal } from "node:assert/strict";
 * equal(DEFAULT_DRIVES[0]?.size, 64 * 1024 * 1024);
 * ```
 */
export const DEFAULT_DRIVES: readonly DriveConfig[] = [{ id: "disk0", size: 64 * 1024 * 1024 }];

const GENERIC_DEVICE_PROPERTIES = ["id", "addr", "bus"];

function deviceConfig(driver: string, properties: ReadonlyMap<string, string>): DeviceConfig {
  const attached = ATTACHED_DEVICES[driver];
  if (attached) {
    const own: Record<string, string> = {};
    let id: string | undefined;
    for (const [key, value] of properties) {
      if (key === "id") id = value;
      else if (attached.includes(key)) own[key] = value;
      else throw new CommandLineError(`Device '${driver}' has no property '${key}'`);
    }
    return { type: driver, ...(id !== undefined ? { id } : {}), properties: own };
  }
  if (driver in MAIN_ISOLATE_DEVICES) {
    const config: DeviceConfig = { type: driver };
    for (const [key, value] of properties) {
      if (key === "id") config.id = value;
      else if (key === "addr") config.addr = value;
      else if (key === "bus") {
        if (value !== "pcie.0") {
          throw new CommandLineError(`Unknown bus '${value}' for device '${driver}': only pcie.0`);
        }
      } else throw new CommandLineError(`Device '${driver}' has no property '${key}'`);
    }
    return config;
  }
  const type = deviceType(driver);
  if (!type) {
    if (PLANNED_DEVICE_TYPES.includes(driver)) {
      throw new CommandLineError(
        `Device '${driver}' is not available yet in this version of dmaworks`,
      );
    }
    throw new CommandLineError(`Unknown device '${driver}' (see -device help)`);
  }
  const config: DeviceConfig = { type: driver };
  const own: Record<string, string> = {};
  for (const [key, value] of properties) {
    if (key === "id") config.id = value;
    else if (key === "addr") config.addr = value;
    else if (key === "bus") {
      if (value !== "pcie.0") {
        throw new CommandLineError(`Unknown bus '${value}' for device '${driver}': only pcie.0`);
      }
    } else if (type.properties.includes(key)) own[key] = value;
    else throw new CommandLineError(`Device '${driver}' has no property '${key}'`);
  }
  if (Object.keys(own).length > 0) config.properties = own;
  return config;
}

function deviceHelp(cl: CommandLine): string | undefined {
  for (const d of cl.devices) {
    if (d.driver === "help" || d.driver === "?") {
      const lines = [
        ...Object.entries(MAIN_ISOLATE_DEVICES).map(([n, d]) =>
          `name "${n}", bus PCI, desc "${d}"`
        ),
        ...deviceTypeNames().map((n) => {
          const t = deviceType(n)!;
          return `name "${n}", bus PCI, desc "${t.descriptor.description}"`;
        }),
      ].sort();
      return `${lines.join("\n")}\n`;
    }
    if (d.properties.has("help")) {
      if (d.driver in MAIN_ISOLATE_DEVICES) {
        return `${d.driver} options:\n${
          GENERIC_DEVICE_PROPERTIES.map((p) => `  ${p}=<str>`).join("\n")
        }\n`;
      }
      const type = deviceType(d.driver);
      if (!type) throw new CommandLineError(`Unknown device '${d.driver}' (see -device help)`);
      const props = [...GENERIC_DEVICE_PROPERTIES, ...type.properties];
      return `${d.driver} options:\n${props.map((p) => `  ${p}=<str>`).join("\n")}\n`;
    }
  }
  return undefined;
}

/**
 * Builds a machine configuration from a parsed command line.
 *
 * @param cl The command line.
 * @returns The configuration.
 *
 * @example
 * ```ts
 * import { machineConfig } from "./main.ts";
 * import { parseCommandLine } from "./args.ts";
 * import { equal } from "node:assert/strict";
 * const config = machineConfig(parseCommandLine(["-device", "edu,addr=05.0"]));
 * equal(config.devices?.[0]?.addr, "05.0");
 * ```
 */
export function machineConfig(cl: CommandLine): MachineConfig {
  const explicit = cl.devices.length > 0 || cl.qtest !== undefined || cl.drives.length > 0 ||
    cl.netdevs.length > 0;
  const devices = explicit
    ? cl.devices.map((d) => deviceConfig(d.driver, d.properties))
    : [...DEFAULT_DEVICES];
  const drives: DriveConfig[] = explicit ? [] : [...DEFAULT_DRIVES];
  cl.drives.forEach((text, index) => {
    const { drive, attach } = parseDrive(text, index);
    drives.push(drive);
    if (attach) {
      if (!devices.some((d) => d.type === "piix3-ide")) {
        devices.push({ type: "piix3-ide", id: "ide" });
      }
      const controller = devices.find((d) => d.type === "piix3-ide")!;
      devices.push({
        type: "ide-hd",
        properties: {
          drive: drive.id,
          bus: `${controller.id ?? "piix3-ide0"}.${attach.bus}`,
          unit: String(attach.unit),
        },
      });
    }
  });
  const netdevs = [...(explicit ? [] : DEFAULT_NETDEVS), ...cl.netdevs.map(parseNetdev)];
  const captures = cl.objects.map(parseObject);
  const config: MachineConfig = {
    ramSize: cl.ramSize,
    devices,
    ...(drives.length > 0 ? { drives } : {}),
    ...(netdevs.length > 0 ? { netdevs } : {}),
    ...(captures.length > 0 ? { captures } : {}),
    qtestClock: cl.qtest !== undefined,
    narrowWorkerPermissions: cl.narrowPermissions,
  };
  if (cl.name !== undefined) config.name = cl.name;
  return config;
}

const DRIVE_KEYS = [
  "file",
  "format",
  "if",
  "id",
  "readonly",
  "index",
  "media",
  "cache",
  "aio",
  "size",
];

/** `-drive file=…,format=raw,if=none,id=…[,readonly=on]` or the short `if=ide` form. */
function parseDrive(
  text: string,
  position: number,
): { drive: DriveConfig; attach?: { bus: number; unit: number } } {
  const { head, properties } = parseKeyValues(text);
  if (head !== undefined) {
    throw new CommandLineError(`Invalid -drive '${text}': expected key=value pairs`);
  }
  for (const key of properties.keys()) {
    if (!DRIVE_KEYS.includes(key)) {
      throw new CommandLineError(`Unsupported -drive parameter '${key}'`);
    }
  }
  const format = properties.get("format") ?? "raw";
  if (format !== "raw") {
    throw new CommandLineError(`Unsupported drive format '${format}': dmaworks reads raw images`);
  }
  const media = properties.get("media") ?? "disk";
  if (media !== "disk") {
    throw new CommandLineError(`Unsupported drive media '${media}': disks only`);
  }
  const readonly = parseOnOff(properties.get("readonly") ?? "off", "readonly");
  const file = properties.get("file");
  const size = properties.get("size");
  if (file === undefined && size === undefined) {
    throw new CommandLineError(
      `Invalid -drive '${text}': needs file= (or size= for an in-memory disk)`,
    );
  }
  const iface = properties.get("if") ?? "ide";
  if (iface !== "none" && iface !== "ide") {
    throw new CommandLineError(`Unsupported drive interface '${iface}': none or ide`);
  }
  const index = properties.has("index") ? Number(properties.get("index")) : position;
  if (!(Number.isInteger(index) && index >= 0 && index <= 3)) {
    throw new CommandLineError(`Invalid drive index '${properties.get("index")}': 0 to 3 for IDE`);
  }
  const drive: DriveConfig = {
    id: properties.get("id") ?? `ide${index}-hd0`,
    format: "raw",
    readonly,
  };
  if (file !== undefined) drive.file = file;
  else drive.size = parseSize(size!, 2 ** 20);
  return iface === "ide" ? { drive, attach: { bus: index >> 1, unit: index & 1 } } : { drive };
}

function parseOnOff(value: string, what: string): boolean {
  if (["on", "true", "yes"].includes(value)) return true;
  if (["off", "false", "no"].includes(value)) return false;
  throw new CommandLineError(`Invalid ${what} '${value}': on or off`);
}

/** `-netdev TYPE,id=ID[,…]`. */
function parseNetdev(text: string): NetdevConfig {
  const { head, properties } = parseKeyValues(text);
  const type = properties.get("type") ?? head;
  if (!type) throw new CommandLineError(`Invalid -netdev '${text}': no type`);
  const id = properties.get("id");
  if (!id) throw new CommandLineError(`Invalid -netdev '${text}': no id=`);
  properties.delete("type");
  properties.delete("id");
  return { type, id, properties: Object.fromEntries(properties) };
}

/** `-object filter-dump,id=ID,netdev=NET,file=PATH`. */
function parseObject(text: string): CaptureConfig {
  const { head, properties } = parseKeyValues(text);
  const type = properties.get("qom-type") ?? head;
  if (type !== "filter-dump") {
    throw new CommandLineError(`Unsupported -object '${type ?? text}': only filter-dump`);
  }
  for (const key of properties.keys()) {
    if (!["id", "netdev", "file", "maxlen", "qom-type"].includes(key)) {
      throw new CommandLineError(`Unsupported filter-dump parameter '${key}'`);
    }
  }
  const id = properties.get("id");
  const netdev = properties.get("netdev");
  const file = properties.get("file");
  if (!id || !netdev || !file) {
    throw new CommandLineError(
      `Invalid -object '${text}': filter-dump needs id=, netdev= and file=`,
    );
  }
  return { id, netdev, file };
}

function resolveWorkload(spec: string): { url: URL; options: Record<string, string> } {
  const { head, properties } = parseKeyValues(spec);
  if (!head) throw new CommandLineError(`Invalid --workload '${spec}': no name`);
  const builtin = WORKLOADS[head];
  const url = builtin ??
    (/^[a-z][a-z0-9+.-]*:/i.test(head) ? new URL(head) : new URL(head, `file://${Deno.cwd()}/`));
  if (!builtin && !/\.(ts|js|mjs|mts)$/.test(url.pathname)) {
    throw new CommandLineError(
      `Unknown workload '${head}' (built in: ${Object.keys(WORKLOADS).join(", ")})`,
    );
  }
  return { url, options: Object.fromEntries(properties) };
}

function formatSummary(result: unknown): { text: string; ok: boolean } {
  if (result && typeof result === "object" && "steps" in result && Array.isArray(result.steps)) {
    const steps = result.steps as Array<{ step: string; ok: boolean; detail: string }>;
    const devices = "devices" in result && Array.isArray(result.devices)
      ? result.devices as string[]
      : [];
    const failed = steps.filter((s) => !s.ok).length;
    const lines = [
      "Summary",
      ...devices.map((d) => `  device ${d}`),
      ...steps.map((s) => `  ${s.ok ? "ok  " : "FAIL"} ${s.step}: ${s.detail}`),
      `${steps.length - failed} of ${steps.length} steps passed`,
    ];
    return { text: `${lines.join("\n")}\n`, ok: failed === 0 };
  }
  return { text: `Result: ${JSON.stringify(result)}\n`, ok: true };
}

/**
 * Runs the command line.
 *
 * @param args Arguments without the program name.
 * @param io Where to write (default: the process's streams).
 * @returns The exit code: 0 success, 1 bad command line or failed workload.
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * import { equal } from "node:assert/strict";
 * let err = "";
 * equal(await main(["-bogus"], { stdout: () => {}, stderr: (t) => (err += t) }), 1);
 * equal(err, "dmaworks: Unknown option '-bogus' (see --help)\n");
 * ```
 */
export async function main(args: readonly string[], io: CliIo = PROCESS_IO): Promise<number> {
  let cl: CommandLine;
  let config: MachineConfig;
  let workload: { url: URL; options: Record<string, string> } | undefined;
  try {
    // `deno task start -- …` passes the "--" through: it is not an option.
    cl = parseCommandLine(args[0] === "--" ? args.slice(1) : args);
    if (cl.help) {
      io.stdout(HELP_TEXT);
      return 0;
    }
    if (cl.version) {
      io.stdout(`dmaworks ${denoConfig.version}\n`);
      return 0;
    }
    const help = deviceHelp(cl);
    if (help !== undefined) {
      io.stdout(help);
      return 0;
    }
    config = machineConfig(cl);
    workload = cl.qtest === undefined && !cl.paused
      ? resolveWorkload(cl.workload ?? "demo")
      : undefined;
  } catch (error) {
    if (error instanceof CommandLineError) {
      io.stderr(`dmaworks: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  let machine: Machine;
  try {
    machine = await Machine.create(config);
  } catch (error) {
    io.stderr(`dmaworks: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    machine.onEvent((event) => {
      if (event.type === "log") io.stderr(`[${event.source}] ${event.message}\n`);
      else if (event.type === "device-failed") {
        io.stderr(`dmaworks: device ${event.id} failed: ${event.reason}\n`);
      }
    });
    if (cl.qtest !== undefined) {
      let handle;
      try {
        handle = await startQtest(
          machine,
          cl.qtest,
          cl.qtestLog === undefined ? {} : { log: cl.qtestLog },
        );
      } catch (error) {
        io.stderr(`dmaworks: ${(error as Error).message}\n`);
        return 1;
      }
      await handle.closed;
      return 0;
    }
    if (cl.paused) {
      io.stderr("dmaworks: machine created and paused (-S); press Ctrl-C to quit\n");
      await new Promise<void>((resolve) => {
        const stop = () => {
          Deno.removeSignalListener("SIGINT", stop);
          resolve();
        };
        Deno.addSignalListener("SIGINT", stop);
      });
      return 0;
    }
    if (!workload) return 0;
    io.stderr(`dmaworks: machine '${machine.name}' with ${config.ramSize! / 2 ** 20} MiB RAM\n`);
    for (const d of machine.devices()) {
      io.stderr(`dmaworks: ${d.address} ${d.type} (id ${d.id}, IRQ ${d.irqLines.join(",")})\n`);
    }
    io.stderr(`dmaworks: running workload ${workload.url.pathname.split("/").at(-1)}\n`);
    let result: unknown;
    try {
      result = await machine.runGuest(workload.url, { options: workload.options });
    } catch (error) {
      io.stderr(`dmaworks: ${(error as Error).message}\n`);
      return 1;
    }
    const summary = formatSummary(result);
    io.stdout(summary.text);
    return summary.ok ? 0 : 1;
  } finally {
    await machine.stop();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
