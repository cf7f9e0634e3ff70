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
import { formatDmaTransaction } from "../dma/dma_trace_lines.ts";
import {
  loadMachineFile,
  type MachineDescription,
  MachineFileError,
} from "../machine/machine_file.ts";
import { type TraceCategory, traceHelp } from "../machine/trace_categories.ts";
import { resolveWorkload, workloadHelp, type WorkloadSpec } from "../workloads/registry.ts";
import { formatWorkloadResult } from "../workloads/summary.ts";
import { WorkloadError } from "../workloads/workload.ts";
import {
  type CommandLine,
  CommandLineError,
  HELP_TEXT,
  parseCommandLine,
  parseKeyValues,
  parseSize,
} from "./args.ts";
import { TraceOutput } from "./trace_output.ts";

export type { CommandLine, DeviceOption } from "./args.ts";
export type { TraceCategory } from "../machine/trace_categories.ts";

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
  // Main-isolate devices (the IOMMU) take the PCI properties only.
  const onMain = driver in MAIN_ISOLATE_DEVICES;
  const type = onMain ? undefined : deviceType(driver);
  if (!onMain && !type) {
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
    } else if (type?.properties.includes(key)) own[key] = value;
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
 * Builds a machine configuration from a parsed command line and, with
 * `--config`, the description file's configuration: flags override the
 * file's scalars (`-m`, `-name`, `--narrow-permissions`) and append to its
 * lists (`-device`, `-drive`, `-netdev`, `-object`). Without either, the
 * default machine.
 *
 * @param cl The command line.
 * @param file The configuration from `--config`, if any.
 * @returns The configuration.
 *
 * @example
 * ```ts
 * import { machineConfig } from "./main.ts";
 * import { parseCommandLine } from "./args.ts";
 * import { equal } from "node:assert/strict";
 * const config = machineConfig(parseCommandLine(["-device", "edu,addr=05.0"]));
 * equal(config.devices?.[0]?.addr, "05.0");
 * const merged = machineConfig(parseCommandLine(["-device", "edu"]), {
 *   ramSize: 64 * 2 ** 20,
 *   devices: [{ type: "amd-iommu" }],
 * });
 * equal(merged.devices?.map((d) => d.type).join(), "amd-iommu,edu");
 * equal(merged.ramSize, 64 * 2 ** 20);
 * ```
 */
export function machineConfig(cl: CommandLine, file?: MachineConfig): MachineConfig {
  const explicit = file !== undefined || cl.devices.length > 0 || cl.qtest !== undefined ||
    cl.drives.length > 0 || cl.netdevs.length > 0;
  const devices = explicit
    ? [...(file?.devices ?? []), ...cl.devices.map((d) => deviceConfig(d.driver, d.properties))]
    : [...DEFAULT_DEVICES];
  const drives: DriveConfig[] = explicit ? [...(file?.drives ?? [])] : [...DEFAULT_DRIVES];
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
  const netdevs = [
    ...(explicit ? file?.netdevs ?? [] : DEFAULT_NETDEVS),
    ...cl.netdevs.map(parseNetdev),
  ];
  const captures = [...(file?.captures ?? []), ...cl.objects.map(parseObject)];
  const config: MachineConfig = {
    ramSize: cl.ramSizeGiven ? cl.ramSize : file?.ramSize ?? cl.ramSize,
    devices,
    ...(drives.length > 0 ? { drives } : {}),
    ...(netdevs.length > 0 ? { netdevs } : {}),
    ...(captures.length > 0 ? { captures } : {}),
    qtestClock: cl.qtest !== undefined,
    narrowWorkerPermissions: cl.narrowPermissions || (file?.narrowWorkerPermissions ?? false),
  };
  const name = cl.name ?? file?.name;
  if (name !== undefined) config.name = name;
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

/**
 * The configurations of `count` machines built from one: with several,
 * each gets a name with its index, NICs without `mac=` get addresses unique
 * across the machines (52:54:00:12:XX:56 and up, where XX = 0x34 + k on
 * machine k), and `{machine}` in a drive's or capture's file
 * name becomes the machine's index. A writable image, a capture file
 * without `{machine}` or a `dgram` netdev cannot be shared by several
 * machines: that is an error.
 *
 * @param config The configuration.
 * @param count How many machines.
 * @returns One configuration per machine.
 * @throws {CommandLineError} Naming what cannot be shared.
 *
 * @example
 * ```ts
 * import { machineConfigs } from "./main.ts";
 * import { equal } from "node:assert/strict";
 * const [a, b] = machineConfigs({ devices: [{ type: "e1000" }] }, 2);
 * equal(a?.devices?.[0]?.properties?.mac, "52:54:00:12:34:56");
 * equal(b?.devices?.[0]?.properties?.mac, "52:54:00:12:35:56");
 * equal(b?.name, "dmaworks-1");
 * ```
 */
export function machineConfigs(config: MachineConfig, count: number): MachineConfig[] {
  const placeholder = (text: string, k: number) => text.replaceAll("{machine}", String(k));
  if (count > 1) {
    for (const drive of config.drives ?? []) {
      if (drive.file !== undefined && !drive.readonly && !drive.file.includes("{machine}")) {
        throw new CommandLineError(
          `Drive '${drive.id}': with ${count} machines every machine would write '${drive.file}': put {machine} in the file name (e.g. disk{machine}.img) or make the drive read-only`,
        );
      }
    }
    for (const capture of config.captures ?? []) {
      if (!capture.file.includes("{machine}")) {
        throw new CommandLineError(
          `Capture '${capture.id}': with ${count} machines put {machine} in its file name (e.g. net{machine}.pcap)`,
        );
      }
    }
    for (const netdev of config.netdevs ?? []) {
      if (netdev.type === "dgram") {
        throw new CommandLineError(
          `Netdev '${netdev.id}': a dgram netdev binds one UDP port, so it serves one machine (link machines with a hub)`,
        );
      }
    }
  }
  return Array.from({ length: count }, (_, k) => {
    let nic = 0;
    const devices = (config.devices ?? []).map((d) => {
      if (count === 1 || !deviceType(d.type)?.nic || d.properties?.["mac"] !== undefined) return d;
      const mac = `52:54:00:12:${(0x34 + k).toString(16)}:${(0x56 + nic++).toString(16)}`;
      return { ...d, properties: { ...d.properties, mac } };
    });
    const machine: MachineConfig = {
      ...config,
      devices,
      ...(config.drives
        ? {
          drives: config.drives.map((d) =>
            d.file === undefined ? d : { ...d, file: placeholder(d.file, k) }
          ),
        }
        : {}),
      ...(config.captures
        ? { captures: config.captures.map((c) => ({ ...c, file: placeholder(c.file, k) })) }
        : {}),
    };
    if (count > 1) machine.name = `${config.name ?? "dmaworks"}-${k}`;
    return machine;
  });
}

/** Everything a run needs, from the command line and the `--config` file. */
interface RunPlan {
  readonly configs: MachineConfig[];
  readonly workload: WorkloadSpec | undefined;
  readonly trace: readonly TraceCategory[];
  readonly traceFile: string | undefined;
  readonly dmaTrace: string | undefined;
}

function plan(cl: CommandLine, file: MachineDescription | undefined): RunPlan {
  const count = cl.machines ?? file?.machines ?? 1;
  if (count > 1 && (cl.qtest !== undefined || cl.paused)) {
    throw new CommandLineError(
      `${cl.qtest !== undefined ? "-qtest" : "-S"} drives one machine: use it without --machines`,
    );
  }
  const trace = cl.trace ?? file?.trace ?? [];
  const base = machineConfig(cl, file?.config);
  const configs = machineConfigs(
    trace.length > 0 ? { ...base, trace } : base,
    count,
  );
  const runs = cl.qtest === undefined && !cl.paused;
  let workload: WorkloadSpec | undefined;
  if (runs) {
    workload = cl.workload !== undefined
      ? resolveWorkload(cl.workload)
      : file?.workload ?? resolveWorkload("demo");
  }
  const dmaTrace = cl.dmaTrace ?? file?.dmaTrace;
  if (dmaTrace !== undefined) {
    for (const c of configs) c.dmaTrace = true;
  }
  return { configs, workload, trace, traceFile: cl.traceFile ?? file?.traceFile, dmaTrace };
}

/** Writes the DMA trace file: one line per transaction of every machine. */
class DmaTraceFile {
  #out: TraceOutput;
  #seq = 0;
  #machines: Machine[] = [];

  constructor(out: TraceOutput) {
    this.#out = out;
    out.line(
      "# dmaworks DMA trace: one line per DMA transaction (dir=read: the device read guest memory)",
    );
  }

  attach(machine: Machine, index: number): void {
    machine.onDmaTransaction((t, device) => {
      this.#out.line(formatDmaTransaction(t, device, { seq: ++this.#seq, machine: index }));
    });
    this.#machines.push(machine);
  }

  /** After the machines stopped (their last transactions are in): what was dropped. */
  async close(): Promise<void> {
    const dropped = this.#machines.reduce((n, m) => n + m.dmaTraceDropped, 0);
    if (dropped > 0) this.#out.line(`# ${dropped} records dropped: a trace ring was full`);
    this.#out.line(`# ${this.#seq} transactions`);
    await this.#out.close();
  }
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
  let run: RunPlan;
  let configPath: string | undefined;
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
    if (cl.traceHelp) {
      io.stdout(traceHelp());
      return 0;
    }
    if (cl.workload === "help" || cl.workload === "?") {
      io.stdout(workloadHelp());
      return 0;
    }
    const help = deviceHelp(cl);
    if (help !== undefined) {
      io.stdout(help);
      return 0;
    }
    configPath = cl.config;
    const file = cl.config === undefined ? undefined : await loadMachineFile(cl.config);
    run = plan(cl, file);
  } catch (error) {
    if (
      error instanceof CommandLineError || error instanceof WorkloadError ||
      error instanceof MachineFileError
    ) {
      const where = error instanceof MachineFileError && configPath !== undefined
        ? `${configPath}: `
        : "";
      io.stderr(`dmaworks: ${where}${error.message}\n`);
      return 1;
    }
    throw error;
  }
  let traceOut: TraceOutput | undefined;
  let dmaFile: DmaTraceFile | undefined;
  try {
    if (run.trace.length > 0) {
      traceOut = run.traceFile === undefined
        ? TraceOutput.to(io.stderr)
        : await TraceOutput.open(run.traceFile);
    }
    if (run.dmaTrace !== undefined) {
      dmaFile = new DmaTraceFile(await TraceOutput.open(run.dmaTrace));
    }
  } catch (error) {
    io.stderr(`dmaworks: ${(error as Error).message}\n`);
    await traceOut?.close();
    return 1;
  }
  const machines: Machine[] = [];
  try {
    return await runMachines(cl, run, machines, io, traceOut, dmaFile);
  } finally {
    await Promise.all(machines.map((m) => m.stop()));
    await dmaFile?.close();
    await traceOut?.close();
    if (traceOut?.error) io.stderr(`dmaworks: trace file: ${traceOut.error.message}\n`);
  }
}

async function runMachines(
  cl: CommandLine,
  run: RunPlan,
  machines: Machine[],
  io: CliIo,
  traceOut: TraceOutput | undefined,
  dmaFile: DmaTraceFile | undefined,
): Promise<number> {
  const count = run.configs.length;
  for (const [k, config] of run.configs.entries()) {
    let machine: Machine;
    try {
      machine = await Machine.create(config);
    } catch (error) {
      io.stderr(`dmaworks: ${count > 1 ? `machine ${k}: ` : ""}${(error as Error).message}\n`);
      return 1;
    }
    machines.push(machine);
    const prefix = count > 1 ? `machine ${k}: ` : "";
    machine.onEvent((event) => {
      if (event.type === "log") io.stderr(`${prefix}[${event.source}] ${event.message}\n`);
      else if (event.type === "device-failed") {
        io.stderr(`dmaworks: ${prefix}device ${event.id} failed: ${event.reason}\n`);
      } else if (event.type === "trace") {
        traceOut?.line(
          `${event.category}: ${count > 1 ? `m${k} ` : ""}${event.source}: ${event.message}`,
        );
      }
    });
    dmaFile?.attach(machine, k);
  }
  if (cl.qtest !== undefined) {
    let handle;
    try {
      handle = await startQtest(
        machines[0]!,
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
  const workload = run.workload;
  if (!workload) return 0;
  for (const [k, machine] of machines.entries()) {
    const config = run.configs[k]!;
    io.stderr(`dmaworks: machine '${machine.name}' with ${config.ramSize! / 2 ** 20} MiB RAM\n`);
    const iommu = machine.iommuDevice();
    const devices = [...(iommu ? [iommu] : []), ...machine.devices()]
      .sort((a, b) => a.address.localeCompare(b.address));
    for (const d of devices) {
      io.stderr(`dmaworks: ${d.address} ${d.type} (id ${d.id}, IRQ ${d.irqLines.join(",")})\n`);
    }
  }
  const options = Object.entries(workload.options).map(([k, v]) => `,${k}=${v}`).join("");
  io.stderr(
    `dmaworks: running workload ${workload.name}${options}${
      count > 1 ? ` on ${count} machines` : ""
    }\n`,
  );
  const results = await Promise.allSettled(
    machines.map((machine, k) =>
      machine.runGuest(workload.url, {
        options: { ...workload.options },
        machineIndex: k,
        machineCount: count,
      })
    ),
  );
  let ok = true;
  for (const [k, result] of results.entries()) {
    const title = count > 1 ? `Summary of machine ${k} (${machines[k]!.name})` : "Summary";
    if (result.status === "rejected") {
      io.stderr(
        `dmaworks: ${count > 1 ? `machine ${k}: ` : ""}${(result.reason as Error).message}\n`,
      );
      ok = false;
      continue;
    }
    const summary = formatWorkloadResult(result.value, title);
    io.stdout(summary.text);
    ok &&= summary.ok;
  }
  return ok ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
