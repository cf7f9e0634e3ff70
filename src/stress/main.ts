/**
 * `deno task stress`: the concurrency stress runner's command line.
 *
 * ```sh
 * deno task stress --duration 60s --report stress.html --json stress.json
 * deno task stress --seed 7 --ops 500 --devices 8 --agents 3 --faults
 * deno task stress --duration 10s --inject-bug skip-ack   # the checker must catch it
 * deno task stress --replay 7 --ops 120 --inject-bug skip-ack
 * ```
 *
 * Exit status: 0 without violations (or a replay that did not reproduce),
 * 1 with violations, 2 for a usage error.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ProgressPrinter } from "./progress.ts";
import { renderStressReport, replayCommand } from "./report.ts";
import {
  runStress,
  type StressOptions,
  type StressResult,
  type StressViolation,
} from "./runner.ts";

const USAGE = `Usage: deno task stress [options]

Runs N device workers and M guest agents with a seeded random mix of DMA,
remaps, device-table changes, flushes and (with --faults) worker faults, and
checks the invariants of the architecture contract. Stops at the first
violation, prints the seed and the shortest history it has, and exits 1.

Options:
  --seed N            seed (default: from the clock)
  --duration T        how long to run: 60s, 2m, 500ms, or seconds (default 10s;
                      with --ops and no --duration: until the operations are done)
  --ops N             operations per guest agent
  --devices N         device workers, 1 to 16 (default 6: edu, IDE, e1000, ...)
  --agents M          guest agents, 1 to 15 and at most N (default 2)
  --faults            stall, crash and kill device workers
  --inject-bug BUG    build the machine with a deliberate bug (skip-ack: the
                      IOMMU completes invalidations without the workers'
                      acknowledgements)
  --replay SEED       run the same operation sequences again, up to --attempts
                      times, until the violation shows again
  --attempts N        runs of a replay (default 3)
  --no-shrink         do not re-run a failing seed with fewer operations
  --json FILE         write the result as JSON
  --report FILE       write an HTML report (self-contained, opens offline)
  --quiet             no progress
  -h, --help          this text
`;

/** Where the command line writes. */
export interface StressIo {
  /** Text for the user. */
  readonly write: (text: string) => void;
  /** Whether that is a terminal (progress is rewritten in place). */
  readonly tty: boolean;
}

/**
 * Parses a duration: `60s`, `2m`, `500ms`, `1h` or a number of seconds.
 *
 * @param text The text.
 * @returns Milliseconds.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./main.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseDuration("60s"), 60_000);
 * equal(parseDuration("1.5m"), 90_000);
 * equal(parseDuration("250ms"), 250);
 * equal(parseDuration("5"), 5000);
 * ```
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`Invalid duration '${text}': e.g. 60s, 2m, 500ms`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Math.round(Number(m[1]) * unit);
}

function integer(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new Error(`Invalid --${name} '${text}': an integer of at least ${min}`);
  }
  return Number(text);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function describeViolations(
  lines: string[],
  violations: readonly StressViolation[],
  count: number,
  histories: boolean,
): void {
  const shown = Math.min(violations.length, histories ? 3 : 5);
  for (const [i, v] of violations.slice(0, shown).entries()) {
    lines.push("");
    lines.push(
      `${i + 1}. ${v.kind} (found by the ${v.source === "trace" ? "trace checker" : v.source})`,
    );
    lines.push(`   ${v.message}`);
    const where = [
      v.agent !== undefined ? `agent ${v.agent}` : "",
      v.op !== undefined ? `operation ${v.op}` : "",
      v.device ? `device ${v.device}` : "",
      v.page !== undefined ? `page ${hex(v.page)}` : "",
    ].filter(Boolean).join(", ");
    if (where) lines.push(`   ${where}`);
    if (histories && v.history.length > 0) {
      lines.push(`   history${v.agent !== undefined ? ` of agent ${v.agent}` : ""}:`);
      for (const h of v.history) lines.push(`     ${h}`);
    }
    if (histories && v.deviceTrace.length > 0) {
      lines.push(`   ${v.device}'s last DMA (oldest first):`);
      for (const h of v.deviceTrace) lines.push(`     ${h}`);
    }
  }
  if (count > shown) lines.push("", `... and ${count - shown} more (see --json)`);
}

/**
 * Describes a result for the terminal: the summary, or each violation with
 * its history and the replay command.
 *
 * @param result The result.
 * @returns Lines of text.
 *
 * @example
 * ```ts
 * import { runStress } from "./runner.ts";
 * import { describeResult } from "./main.ts";
 * import { ok } from "node:assert/strict";
 * const text = describeResult(await runStress({ seed: 5, ops: 20, devices: 1, agents: 1 }));
 * ok(text.includes("seed 5"));
 * ```
 */
export function describeResult(result: StressResult): string {
  const lines: string[] = [];
  const rate = result.elapsedMs > 0 ? Math.round((result.ops * 1000) / result.elapsedMs) : 0;
  lines.push(
    `seed ${result.seed}: ${result.ops} operations in ${
      (result.elapsedMs / 1000).toFixed(1)
    } s (${rate}/s) by ${result.options.agents} agents on ${result.options.devices} devices`,
  );
  const checks = Object.entries(result.checks).map(([k, v]) => `${k} ${v}`).join(", ");
  lines.push(`checks: ${checks}`);
  lines.push(
    `invalidations: ${result.latency.total} timed, median ${result.latency.p50Us} µs, p99 ${result.latency.p99Us} µs; trace: ${result.trace.records} records, ${result.trace.dropped} dropped`,
  );
  const failed = result.devices.filter((d) => d.failure);
  if (result.faults.length > 0 || failed.length > 0) {
    lines.push(
      `faults injected: ${result.faults.length}; devices failed: ${
        failed.map((d) => d.id).join(", ") || "none"
      }`,
    );
  }
  if (result.ok) {
    lines.push("0 violations");
    return lines.join("\n");
  }
  lines.push(`${result.violationCount} VIOLATION(S), seed ${result.seed}`);
  const shorter = result.shrunk?.reproduced ? result.shrunk : undefined;
  describeViolations(lines, result.violations, result.violationCount, !shorter);
  if (shorter) {
    lines.push(
      "",
      `shrunk: the same sequences cut after ${shorter.ops} operations per agent show it again; the shortest history:`,
    );
    describeViolations(lines, shorter.violations, shorter.violations.length, true);
  } else if (result.shrunk) {
    lines.push(
      "",
      `shrinking: runs cut after ${result.shrunk.ops} operations per agent did not show it again (it needs a rarer thread timing); the history above is the full run's`,
    );
  }
  lines.push("", `replay: ${replayCommand(result)}`);
  return lines.join("\n");
}

/**
 * Runs the command line.
 *
 * @param args Arguments.
 * @param io Output (default: stdout).
 * @returns The exit status.
 *
 * @example
 * ```ts
 * import { stressMain } from "./main.ts";
 * import { equal } from "node:assert/strict";
 * let out = "";
 * const status = await stressMain(["--ops", "20", "--devices", "1", "--agents", "1"], {
 *   write: (text) => out += text,
 *   tty: false,
 * });
 * equal(status, 0, out);
 * ```
 */
export async function stressMain(args: readonly string[], io?: StressIo): Promise<number> {
  const out: StressIo = io ?? {
    write: (text) => Deno.stdout.writeSync(new TextEncoder().encode(text)),
    tty: Deno.stdout.isTerminal(),
  };
  let values;
  try {
    values = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        seed: { type: "string" },
        duration: { type: "string" },
        ops: { type: "string" },
        devices: { type: "string" },
        agents: { type: "string" },
        faults: { type: "boolean" },
        "inject-bug": { type: "string" },
        replay: { type: "string" },
        attempts: { type: "string" },
        "no-shrink": { type: "boolean" },
        json: { type: "string" },
        report: { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    out.write(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  let options: StressOptions;
  const replay = values.replay !== undefined;
  try {
    const bug = values["inject-bug"];
    if (bug !== undefined && bug !== "skip-ack") {
      throw new Error(`Unknown --inject-bug '${bug}': the only bug is skip-ack`);
    }
    if (replay && values.seed !== undefined && values.seed !== values.replay) {
      throw new Error("Give the seed once: --replay SEED replaces --seed");
    }
    const seed = integer(replay ? "replay" : "seed", values.replay ?? values.seed, 0);
    if (seed !== undefined && seed > 0xffff_ffff) throw new Error(`Invalid seed ${seed}`);
    const ops = integer("ops", values.ops, 1);
    const devices = integer("devices", values.devices, 1);
    const agents = integer("agents", values.agents, 1);
    const attempts = integer("attempts", values.attempts, 1);
    const durationMs = values.duration !== undefined ? parseDuration(values.duration) : undefined;
    if (durationMs === 0) throw new Error("Invalid --duration: must be more than 0");
    options = {
      ...(seed !== undefined ? { seed } : {}),
      ...(durationMs !== undefined ? { durationMs } : {}),
      ...(ops !== undefined ? { ops } : {}),
      ...(devices !== undefined ? { devices } : {}),
      ...(agents !== undefined ? { agents } : {}),
      faults: values.faults ?? false,
      ...(bug ? { injectBug: bug } : {}),
      attempts: attempts ?? (replay ? 3 : 1),
      shrink: !replay && !values["no-shrink"],
    };
  } catch (error) {
    out.write(`${(error as Error).message}\n`);
    return 2;
  }
  const printer = new ProgressPrinter({ tty: out.tty, write: out.write });
  if (!values.quiet) options.onProgress = (p) => printer.update(p);
  let result: StressResult;
  try {
    result = await runStress(options);
  } catch (error) {
    printer.done();
    out.write(`${(error as Error).message}\n`);
    return 2;
  } finally {
    printer.done();
  }
  const command = `deno task stress ${args.join(" ")}`.trim();
  // `deno task` runs in the repository; files go where the user ran it.
  const place = (path: string) => {
    const from = path.startsWith("/") ? undefined : Deno.env.get("INIT_CWD");
    return from ? `${from}/${path}` : path;
  };
  if (values.json) {
    await Deno.writeTextFile(
      place(values.json),
      JSON.stringify({ command, replay: replayCommand(result), ...result }, null, 2) + "\n",
    );
  }
  if (values.report) {
    await Deno.writeTextFile(place(values.report), renderStressReport(result, { command }));
  }
  out.write(describeResult(result) + "\n");
  if (replay) {
    out.write(
      result.ok
        ? `replay of seed ${result.seed}: no violation in ${result.attempts} attempt(s)\n`
        : `replay of seed ${result.seed}: reproduced on attempt ${result.attempts}\n`,
    );
  }
  if (values.json) out.write(`JSON: ${place(values.json)}\n`);
  if (values.report) out.write(`report: ${place(values.report)}\n`);
  return result.ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await stressMain(Deno.args));
