/**
 * The built-in workloads by name, and the resolution of `--workload
 * NAME[,opt=value…]` (a built-in name or a module file) to a module URL and
 * its options.
 *
 * @module
 */

import { parseKeyValues } from "../cli/args.ts";
import { WorkloadError } from "./workload.ts";

/** A built-in workload. */
export interface BuiltinWorkload {
  /** The `--workload` name. */
  readonly name: string;
  /** One line for `--workload help`. */
  readonly description: string;
  /** Its options, for `--workload help`. */
  readonly options: string;
  /** The module. */
  readonly url: URL;
}

/**
 * The built-in workloads.
 *
 * @example
 * ```ts
 * import { BUILTIN_WORKLOADS, resolveWorkload } from "./registry.ts";
 * import { equal } from "node:assert/strict";
 * const storm = BUILTIN_WORKLOADS.find((w) => w.name === "dma-storm");
 * equal(resolveWorkload("dma-storm,rounds=10").url.href, storm?.url.href);
 * equal(BUILTIN_WORKLOADS[0]?.name, "demo"); // the default
 * ```
 */
export const BUILTIN_WORKLOADS: readonly BuiltinWorkload[] = [
  {
    name: "demo",
    description: "a short tour of every device (the default)",
    options: "none",
    url: new URL("./demo.ts", import.meta.url),
  },
  {
    name: "disk-copy",
    description: "copy a disk region by DMA through the IOMMU, verify CRC-32 checksums",
    options: "size=8M chunk=1M seed=1 mode=pattern|existing lba=0",
    url: new URL("./disk_copy.ts", import.meta.url),
  },
  {
    name: "net-pingpong",
    description: "latency percentiles and throughput between two e1000s",
    options: "count=200 size=64 burst=2000 role=auto|ping|pong timeout=30000",
    url: new URL("./net_pingpong.ts", import.meta.url),
  },
  {
    name: "dma-storm",
    description: "edu devices copy through IOMMU mappings remapped under them, verified",
    options: "rounds=200 size=4096 pages=16 remap=4 seed=1",
    url: new URL("./dma_storm.ts", import.meta.url),
  },
];

/** A workload chosen by `--workload`. */
export interface WorkloadSpec {
  /** The built-in name, or the module file's name. */
  readonly name: string;
  /** The module. */
  readonly url: URL;
  /** Its `opt=value` options. */
  readonly options: Readonly<Record<string, string>>;
}

/**
 * Resolves `NAME[,opt=value…]`: a built-in workload, or a module given by
 * path (relative to `base`) or URL, ending in `.ts`, `.js`, `.mts` or `.mjs`.
 *
 * @param spec The option value.
 * @param base Where relative paths start (default: the current directory).
 * @returns The module and options.
 * @throws {WorkloadError} For an unknown name or a malformed option list.
 *
 * @example
 * ```ts
 * import { resolveWorkload } from "./registry.ts";
 * import { equal } from "node:assert/strict";
 * const spec = resolveWorkload("disk-copy,size=16M");
 * equal(spec.name, "disk-copy");
 * equal(spec.options.size, "16M");
 * equal(resolveWorkload("./w.ts", new URL("file:///tmp/")).url.href, "file:///tmp/w.ts");
 * ```
 */
export function resolveWorkload(spec: string, base?: URL): WorkloadSpec {
  let parsed;
  try {
    parsed = parseKeyValues(spec);
  } catch (error) {
    throw new WorkloadError(`Invalid workload '${spec}': ${(error as Error).message}`);
  }
  const { head, properties } = parsed;
  if (!head) throw new WorkloadError(`Invalid workload '${spec}': no name`);
  const options = Object.fromEntries(properties);
  const builtin = BUILTIN_WORKLOADS.find((w) => w.name === head);
  if (builtin) return { name: builtin.name, url: builtin.url, options };
  const isUrl = /^[a-z][a-z0-9+.-]+:/i.test(head);
  if (!/\.(ts|js|mts|mjs)$/.test(head)) {
    throw new WorkloadError(
      `Unknown workload '${head}' (built in: ${
        BUILTIN_WORKLOADS.map((w) => w.name).join(", ")
      }; or a module file ending in .ts or .js)`,
    );
  }
  const url = isUrl ? new URL(head) : new URL(head, base ?? new URL(`file://${Deno.cwd()}/`));
  return { name: url.pathname.split("/").at(-1) ?? head, url, options };
}

/**
 * The `--workload help` text.
 *
 * @returns The built-in workloads with their options.
 *
 * @example
 * ```ts
 * import { workloadHelp } from "./registry.ts";
 * import { match } from "node:assert/strict";
 * match(workloadHelp(), /disk-copy/);
 * ```
 */
export function workloadHelp(): string {
  const width = Math.max(...BUILTIN_WORKLOADS.map((w) => w.name.length));
  return [
    "Built-in workloads (--workload NAME[,opt=value…]):",
    ...BUILTIN_WORKLOADS.flatMap((w) => [
      `  ${w.name.padEnd(width)}  ${w.description}`,
      `  ${" ".repeat(width)}  options: ${w.options}`,
    ]),
    "Or a module: --workload ./my_workload.ts[,opt=value…] (see README.md, Workloads)",
    "",
  ].join("\n");
}
