/**
 * The command line: the QEMU subset dmaworks accepts (so a QEMU command line
 * for this machine runs with `dmaworks` in place of `qemu-system-x86_64`),
 * plus dmaworks' own options. Parsed with `node:util`'s `parseArgs` after
 * QEMU's single-dash long options are normalised.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_RAM_SIZE } from "../memory/guest_memory.ts";
import { parseTraceCategories, type TraceCategory } from "../machine/trace_categories.ts";

/** A `-device` option. */
export interface DeviceOption {
  /** The driver name (`edu`, `piix3-ide`, …). */
  readonly driver: string;
  /** Its properties, in order, with the generic ones (`id`, `addr`, `bus`) included. */
  readonly properties: ReadonlyMap<string, string>;
}

/** The parsed command line. */
export interface CommandLine {
  /** Guest RAM size in bytes. */
  readonly ramSize: number;
  /** Whether `-m` was given (it then overrides a `--config` file's memory). */
  readonly ramSizeGiven: boolean;
  /** `-name`. */
  readonly name: string | undefined;
  /** `-S`: do not start the guest. */
  readonly paused: boolean;
  /** `-qtest CHARDEV`. */
  readonly qtest: string | undefined;
  /** `-qtest-log FILE`. */
  readonly qtestLog: string | undefined;
  /** `-device`s in order. */
  readonly devices: readonly DeviceOption[];
  /** `-drive`s (raw text). */
  readonly drives: readonly string[];
  /** `-netdev`s (raw text). */
  readonly netdevs: readonly string[];
  /** `-object`s (raw text). */
  readonly objects: readonly string[];
  /** `--workload NAME[,opt=value…]`. */
  readonly workload: string | undefined;
  /** `-h`/`--help`. */
  readonly help: boolean;
  /** `--version`. */
  readonly version: boolean;
  /** `--narrow-permissions`: run device workers with only the permissions they need. */
  readonly narrowPermissions: boolean;
  /** `--config FILE`: a JSON machine description. */
  readonly config: string | undefined;
  /** `--machines N`: run N machines. */
  readonly machines: number | undefined;
  /** `-d`/`--trace CATEGORIES` (all of them, merged). */
  readonly trace: readonly TraceCategory[] | undefined;
  /** `-d help`. */
  readonly traceHelp: boolean;
  /** `-D`/`--trace-file FILE`: trace lines go there instead of stderr. */
  readonly traceFile: string | undefined;
  /** `--dma-trace FILE`: one line per DMA transaction. */
  readonly dmaTrace: string | undefined;
}

/** An error in the command line (the message names the bad option or value). */
export class CommandLineError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "CommandLineError";
  }
}

/** QEMU options written with one dash, mapped to their `parseArgs` names. */
const QEMU_OPTIONS: Readonly<Record<string, string>> = {
  "-machine": "--machine",
  "-M": "--machine",
  "-m": "--m",
  "-accel": "--accel",
  "-display": "--display",
  "-nodefaults": "--nodefaults",
  "-no-user-config": "--no-user-config",
  "-name": "--name",
  "-S": "--S",
  "-qtest": "--qtest",
  "-qtest-log": "--qtest-log",
  "-device": "--device",
  "-drive": "--drive",
  "-netdev": "--netdev",
  "-object": "--object",
  "-d": "--trace",
  "-D": "--trace-file",
  "-h": "--help",
  "-help": "--help",
  "-version": "--version",
};

/** Accelerators accepted by `-accel` (all mean the same here: dmaworks has no CPU to accelerate). */
const ACCELERATORS = ["qtest", "tcg", "kvm"];

/**
 * Splits a QEMU option value `head,key=value,…` (`,,` is a literal comma).
 *
 * @param text The option value.
 * @returns The leading bare word (if any) and the properties in order.
 *
 * @example
 * ```ts
 * import { parseKeyValues } from "./args.ts";
 * import { equal } from "node:assert/strict";
 * const { head, properties } = parseKeyValues("edu,id=e0,addr=04.0");
 * equal(head, "edu");
 * equal(properties.get("addr"), "04.0");
 * equal(parseKeyValues("file=a,,b.img").properties.get("file"), "a,b.img");
 * ```
 */
export function parseKeyValues(
  text: string,
): { head: string | undefined; properties: Map<string, string> } {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ",") {
      if (text[i + 1] === ",") {
        current += ",";
        i++;
      } else {
        parts.push(current);
        current = "";
      }
    } else {
      current += c;
    }
  }
  parts.push(current);
  let head: string | undefined;
  const properties = new Map<string, string>();
  parts.forEach((part, index) => {
    const eq = part.indexOf("=");
    if (eq < 0) {
      if (index === 0) head = part;
      else if (part === "help") properties.set("help", "on");
      else {throw new CommandLineError(
          `Invalid parameter '${part}' in '${text}': expected key=value`,
        );}
      return;
    }
    const key = part.slice(0, eq);
    if (key === "") {
      throw new CommandLineError(`Invalid parameter '${part}' in '${text}': empty key`);
    }
    if (properties.has(key)) {
      throw new CommandLineError(`Parameter '${key}' given twice in '${text}'`);
    }
    properties.set(key, part.slice(eq + 1));
  });
  return { head, properties };
}

/**
 * Parses a size as QEMU does: a number with an optional suffix B/K/M/G/T
 * (case-insensitive); `defaultUnit` applies without a suffix.
 *
 * @param text E.g. `512`, `512M`, `2G`, `1.5G`.
 * @param defaultUnit Multiplier for a bare number (QEMU's `-m` uses MiB).
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import { parseSize } from "./args.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseSize("512", 2 ** 20), 512 * 2 ** 20);
 * equal(parseSize("2G", 1), 2 * 2 ** 30);
 * ```
 */
export function parseSize(text: string, defaultUnit: number): number {
  const m = /^(\d+(?:\.\d+)?)([bkmgt])?$/i.exec(text.trim());
  if (!m) {
    throw new CommandLineError(
      `Invalid size '${text}': expected a number with an optional K/M/G/T suffix`,
    );
  }
  const units: Record<string, number> = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
  const unit = m[2] ? units[m[2].toLowerCase()]! : defaultUnit;
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new CommandLineError(`Invalid size '${text}': not a whole number of bytes`);
  }
  return bytes;
}

function normalise(args: readonly string[]): string[] {
  return args.map((arg) => {
    if (arg.startsWith("--") || !arg.startsWith("-") || arg === "-") return arg;
    const mapped = QEMU_OPTIONS[arg];
    if (mapped) return mapped;
    throw new CommandLineError(`Unknown option '${arg}' (see --help)`);
  });
}

/** The option as the user wrote it: QEMU options with one dash. */
function userSpelling(option: string): string {
  const qemu = Object.entries(QEMU_OPTIONS).find(([, long]) => long === option);
  return qemu ? qemu[0] : option;
}

function describeParseError(error: Error & { code?: string }): string {
  const quoted = /'(-[^' ]+)/.exec(error.message)?.[1] ?? "";
  switch (error.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `Unknown option '${userSpelling(quoted)}' (see --help)`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `Unexpected argument '${/'([^']*)'/.exec(error.message)?.[1] ?? ""}'`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return error.message.includes("argument missing")
        ? `Option '${userSpelling(quoted)}' needs a value`
        : `Option '${userSpelling(quoted)}' does not take a value`;
    default:
      return error.message.replace(/\.$/, "");
  }
}

function parseMachine(values: readonly string[]): void {
  for (const value of values) {
    const { head, properties } = parseKeyValues(value);
    const type = properties.get("type") ?? head;
    if (type !== undefined && type !== "q35" && !/^pc-q35-[\d.]+$/.test(type)) {
      throw new CommandLineError(`Unsupported machine type '${type}': dmaworks emulates q35 only`);
    }
    for (const [key, v] of properties) {
      if (key === "type") continue;
      if (key === "accel") {
        for (const a of v.split(":")) {
          if (!ACCELERATORS.includes(a)) throw new CommandLineError(`Unknown accelerator '${a}'`);
        }
        continue;
      }
      throw new CommandLineError(`Unsupported machine property '${key}'`);
    }
  }
}

function parseRam(value: string | undefined): number {
  if (value === undefined) return DEFAULT_RAM_SIZE;
  const { head, properties } = parseKeyValues(value);
  const sizeText = properties.get("size") ?? head;
  for (const key of properties.keys()) {
    if (key !== "size") throw new CommandLineError(`Unsupported -m parameter '${key}'`);
  }
  if (sizeText === undefined) throw new CommandLineError(`Invalid -m '${value}': no size given`);
  const size = parseSize(sizeText, 2 ** 20);
  if (size < 2 ** 20 || size % 4096 !== 0) {
    throw new CommandLineError(
      `Invalid memory size '${sizeText}': must be at least 1M and a multiple of 4K`,
    );
  }
  return size;
}

function parseDevice(value: string): DeviceOption {
  const { head, properties } = parseKeyValues(value);
  const driver = properties.get("driver") ?? head;
  properties.delete("driver");
  if (!driver) throw new CommandLineError(`Invalid -device '${value}': no driver name`);
  return { driver, properties };
}

/**
 * Parses the command line.
 *
 * @param args The arguments (without the program name).
 * @returns The parsed command line.
 * @throws {CommandLineError} For unknown options, bad values and unsupported features.
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./args.ts";
 * import { equal } from "node:assert/strict";
 * const cl = parseCommandLine(["-machine", "q35", "-m", "512", "-device", "edu,id=e0", "-qtest", "stdio"]);
 * equal(cl.ramSize, 512 * 2 ** 20);
 * equal(cl.devices[0]?.driver, "edu");
 * equal(cl.qtest, "stdio");
 * ```
 */
export function parseCommandLine(args: readonly string[]): CommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args: normalise(args),
      strict: true,
      allowPositionals: false,
      options: {
        machine: { type: "string", multiple: true },
        m: { type: "string" },
        accel: { type: "string", multiple: true },
        display: { type: "string" },
        nodefaults: { type: "boolean" },
        "no-user-config": { type: "boolean" },
        name: { type: "string" },
        S: { type: "boolean" },
        qtest: { type: "string" },
        "qtest-log": { type: "string" },
        device: { type: "string", multiple: true },
        drive: { type: "string", multiple: true },
        netdev: { type: "string", multiple: true },
        object: { type: "string", multiple: true },
        workload: { type: "string" },
        "narrow-permissions": { type: "boolean" },
        config: { type: "string" },
        machines: { type: "string" },
        trace: { type: "string", multiple: true },
        "trace-file": { type: "string" },
        "dma-trace": { type: "string" },
        help: { type: "boolean" },
        version: { type: "boolean" },
      },
    });
  } catch (error) {
    if (error instanceof CommandLineError) throw error;
    throw new CommandLineError(describeParseError(error as Error & { code?: string }));
  }
  const v = parsed.values;
  parseMachine(v.machine ?? []);
  for (const accel of v.accel ?? []) {
    const { head } = parseKeyValues(accel);
    if (head === undefined || !ACCELERATORS.includes(head)) {
      throw new CommandLineError(`Unknown accelerator '${accel}'`);
    }
  }
  if (v.display !== undefined && v.display !== "none") {
    throw new CommandLineError(
      `Unsupported display '${v.display}': dmaworks is headless, use -display none`,
    );
  }
  let name = v.name;
  if (name !== undefined && name.includes("=")) {
    const { head, properties } = parseKeyValues(name);
    name = properties.get("guest") ?? head;
  }
  let trace: TraceCategory[] | undefined;
  let traceHelp = false;
  for (const text of v.trace ?? []) {
    if (text === "help" || text === "?") {
      traceHelp = true;
      continue;
    }
    try {
      trace = [...new Set([...(trace ?? []), ...parseTraceCategories(text)])];
    } catch (error) {
      throw new CommandLineError((error as Error).message);
    }
  }
  let machines: number | undefined;
  if (v.machines !== undefined) {
    machines = /^\d+$/.test(v.machines.trim()) ? Number(v.machines) : NaN;
    if (!(machines >= 1 && machines <= MAX_MACHINES)) {
      throw new CommandLineError(
        `Invalid --machines '${v.machines}': a whole number from 1 to ${MAX_MACHINES}`,
      );
    }
  }
  for (
    const [option, value] of [
      ["--config", v.config],
      ["-D", v["trace-file"]],
      ["--dma-trace", v["dma-trace"]],
    ] as const
  ) {
    if (value === "") throw new CommandLineError(`Option '${option}' needs a file name`);
  }
  return {
    ramSize: parseRam(v.m),
    ramSizeGiven: v.m !== undefined,
    name,
    paused: v.S ?? false,
    qtest: v.qtest,
    qtestLog: v["qtest-log"],
    devices: (v.device ?? []).map(parseDevice),
    drives: v.drive ?? [],
    netdevs: v.netdev ?? [],
    objects: v.object ?? [],
    workload: v.workload,
    help: v.help ?? false,
    version: v.version ?? false,
    narrowPermissions: v["narrow-permissions"] ?? false,
    config: v.config,
    machines,
    trace,
    traceHelp,
    traceFile: v["trace-file"],
    dmaTrace: v["dma-trace"],
  };
}

/** The most machines `--machines` runs in one process. */
export const MAX_MACHINES = 64;

/** The `--help` text. */
export const HELP_TEXT = `Usage: dmaworks [options]

Runs a headless q35-style machine: guest RAM, PCI, DMA-capable devices in
their own workers. With no options it runs the default machine and the demo
workload, prints a summary and exits.

QEMU options (a QEMU command line for this machine runs unchanged):
  -machine q35[,accel=A]    the machine type (q35 only; pc-q35-* accepted)
  -M q35                    same as -machine
  -m SIZE                   guest RAM (default 256M; suffixes K/M/G/T, bare = MiB)
  -accel qtest|tcg|kvm      accepted and ignored (there is no CPU to accelerate)
  -display none             the only display (dmaworks is headless)
  -nodefaults               accepted (no default devices are added anyway)
  -no-user-config           accepted
  -name NAME                machine name
  -S                        do not start the guest (useful with -qtest)
  -qtest CHARDEV            serve QEMU's qtest protocol on stdio, unix:PATH[,server=on]
                            or tcp:127.0.0.1:PORT[,server=on]
  -qtest-log FILE           qtest log file (default stderr; /dev/null or none: off)
  -device DRIVER[,prop=v…]  add a device; -device help lists drivers,
                            -device DRIVER,help lists its properties
                            generic properties: id=ID, addr=SLOT[.FN], bus=pcie.0
  -drive …, -netdev …, -object …
                            disks, networks and capture (with the IDE and e1000 devices)

  -d CAT[,CAT…]             trace categories: dma, iommu, ide, e1000, edu, all
                            (-d help lists them); lines go to stderr
  -D FILE                   write trace lines to FILE instead

dmaworks options:
  --config FILE             a JSON machine description (see README.md); flags
                            given as well override its scalars (-m, -name,
                            --workload, -d, …) and append to its lists
                            (-device, -drive, -netdev, -object)
  --machines N              run N machines (1-64), each with its own RAM, IOMMU
                            and devices; their NICs share the in-process hubs
  --workload NAME[,opt=v…]  guest program to run on each machine (default: demo;
                            --workload help lists the built-in ones)
  --trace CAT[,CAT…]        same as -d;  --trace-file FILE  same as -D
  --dma-trace FILE          write one line per DMA transaction to FILE
  --narrow-permissions      run device workers with only the Deno permissions they
                            need (needs "unstable": ["worker-options"])
  -h, --help                this text
  --version                 print the version
`;
