/**
 * Trace categories (`-d CATEGORY[,…]`, like QEMU's `-d`): which events a
 * machine reports as readable trace lines.
 *
 * @module
 */

/** A trace category. */
export type TraceCategory = "dma" | "iommu" | "ide" | "e1000" | "edu";

/**
 * Every category with what it reports (the `-d help` text).
 *
 * @example
 * ```ts
 * import { parseTraceCategories, TRACE_CATEGORIES } from "./trace_categories.ts";
 * import { deepEqual, match } from "node:assert/strict";
 * deepEqual(parseTraceCategories("all"), Object.keys(TRACE_CATEGORIES));
 * match(TRACE_CATEGORIES.dma, /IOVA/);
 * ```
 */
export const TRACE_CATEGORIES: Readonly<Record<TraceCategory, string>> = {
  dma: "every DMA transaction: device, IOVA, guest-physical address, length, direction, result",
  iommu:
    "AMD-Vi: control changes, commands, invalidations and their acknowledgements, translation misses, events logged",
  ide: "PIIX3 IDE: commands, DMA requests and their outcomes, interrupts, resets",
  e1000:
    "e1000: resets, control registers, frames sent and received (or dropped), interrupts, ring errors",
  edu: "edu: DMA transfers and their outcomes, factorials, interrupts",
};

/**
 * The category each device type's trace lines belong to.
 *
 * @example
 * ```ts
 * import { DEVICE_TRACE_CATEGORY, parseTraceCategories } from "./trace_categories.ts";
 * import { equal, ok } from "node:assert/strict";
 * // `-d dma,ide`: the IDE controller's lines are shown, the e1000's are not.
 * const enabled = new Set<string | undefined>(parseTraceCategories("dma,ide"));
 * ok(enabled.has(DEVICE_TRACE_CATEGORY["piix3-ide"]));
 * ok(!enabled.has(DEVICE_TRACE_CATEGORY["e1000"]));
 * equal(DEVICE_TRACE_CATEGORY["virtio-net"], undefined); // no trace category
 * ```
 */
export const DEVICE_TRACE_CATEGORY: Readonly<Record<string, TraceCategory>> = {
  "piix3-ide": "ide",
  "e1000": "e1000",
  "edu": "edu",
};

/**
 * Parses a `-d` value: categories separated by commas, or `all`.
 *
 * @param text E.g. `dma,iommu`.
 * @returns The categories, without duplicates.
 * @throws {Error} Naming an unknown category.
 *
 * @example
 * ```ts
 * import { parseTraceCategories } from "./trace_categories.ts";
 * import { deepEqual, throws } from "node:assert/strict";
 * deepEqual(parseTraceCategories("dma,iommu"), ["dma", "iommu"]);
 * deepEqual(parseTraceCategories("all").length, 5);
 * throws(() => parseTraceCategories("dma,disk"), /Unknown trace category 'disk'/);
 * ```
 */
export function parseTraceCategories(text: string): TraceCategory[] {
  const names = Object.keys(TRACE_CATEGORIES) as TraceCategory[];
  const out: TraceCategory[] = [];
  for (const part of text.split(",").map((p) => p.trim())) {
    if (part === "all") {
      for (const name of names) if (!out.includes(name)) out.push(name);
      continue;
    }
    if (!(names as string[]).includes(part)) {
      throw new Error(
        `Unknown trace category '${part}' (known: ${names.join(", ")}, all; see -d help)`,
      );
    }
    if (!out.includes(part as TraceCategory)) out.push(part as TraceCategory);
  }
  return out;
}

/**
 * The `-d help` text.
 *
 * @returns One line per category.
 *
 * @example
 * ```ts
 * import { traceHelp } from "./trace_categories.ts";
 * import { match } from "node:assert/strict";
 * match(traceHelp(), /^Log items \(comma separated\):\ndma /);
 * ```
 */
export function traceHelp(): string {
  const entries = Object.entries(TRACE_CATEGORIES);
  const width = Math.max(...entries.map(([name]) => name.length), 3);
  return [
    "Log items (comma separated):",
    ...entries.map(([name, what]) => `${name.padEnd(width)}  ${what}`),
    `${"all".padEnd(width)}  every category`,
    "",
  ].join("\n");
}
