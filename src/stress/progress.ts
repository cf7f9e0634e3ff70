/**
 * The stress runner's progress display: one line rewritten in place on a
 * terminal, plain lines at an interval otherwise (logs, CI).
 *
 * @module
 */

import type { StressProgress } from "./runner.ts";

/**
 * One progress line.
 *
 * @param p The progress.
 * @returns The line (no newline).
 *
 * @example
 * ```ts
 * import { formatProgress } from "./progress.ts";
 * import { equal } from "node:assert/strict";
 * equal(
 *   formatProgress({ run: "run", elapsedMs: 2500, durationMs: 10000, ops: 800, opsPerSecond: 321.4, violations: 0, devicesAlive: 6, devices: 6 }),
 *   "run 2.5s/10s | 800 ops (321/s) | violations 0 | devices 6/6 | 7.5s left",
 * );
 * ```
 */
export function formatProgress(p: StressProgress): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const time = p.durationMs > 0 ? `${s(p.elapsedMs)}/${s(p.durationMs)}` : s(p.elapsedMs);
  const left = p.durationMs > 0 ? ` | ${s(Math.max(0, p.durationMs - p.elapsedMs))} left` : "";
  return `${p.run} ${time} | ${p.ops} ops (${
    Math.round(p.opsPerSecond)
  }/s) | violations ${p.violations} | devices ${p.devicesAlive}/${p.devices}${left}`;
}

/** Options for {@linkcode ProgressPrinter}. */
export interface ProgressPrinterOptions {
  /** Rewrite one line in place (a terminal). */
  readonly tty: boolean;
  /** Where text goes. */
  readonly write: (text: string) => void;
  /** Without a terminal, the interval between lines (ms, default 5000). */
  readonly plainIntervalMs?: number;
}

/**
 * Prints progress.
 *
 * @example Plain lines every five seconds
 * ```ts
 * import { ProgressPrinter } from "./progress.ts";
 * import { equal } from "node:assert/strict";
 * const out: string[] = [];
 * const printer = new ProgressPrinter({ tty: false, write: (t) => out.push(t) });
 * const p = { run: "run", durationMs: 0, ops: 1, opsPerSecond: 1, violations: 0, devicesAlive: 1, devices: 1 };
 * printer.update({ ...p, elapsedMs: 250 });
 * printer.update({ ...p, elapsedMs: 5300 });
 * equal(out.length, 1);
 * ```
 */
export class ProgressPrinter {
  #options: ProgressPrinterOptions;
  #nextPlain: number;
  #shown = false;
  #run = "";

  /**
   * Creates a printer.
   *
   * @param options Terminal or not, and where to write.
   */
  constructor(options: ProgressPrinterOptions) {
    this.#options = options;
    this.#nextPlain = options.plainIntervalMs ?? 5000;
  }

  /**
   * Shows progress.
   *
   * @param p The progress.
   *
   * @example
   * ```ts
   * import { ProgressPrinter } from "./progress.ts";
   * import { equal } from "node:assert/strict";
   * const out: string[] = [];
   * const printer = new ProgressPrinter({ tty: true, write: (t) => out.push(t) });
   * const p = { run: "run", durationMs: 0, ops: 5, opsPerSecond: 50, violations: 0, devicesAlive: 1, devices: 1 };
   * printer.update({ ...p, elapsedMs: 100 });
   * equal(out[0], "\r\x1b[Krun 0.1s | 5 ops (50/s) | violations 0 | devices 1/1");
   * ```
   */
  update(p: StressProgress): void {
    if (p.run !== this.#run) {
      this.#run = p.run;
      this.#nextPlain = this.#options.plainIntervalMs ?? 5000;
    }
    if (this.#options.tty) {
      this.#options.write(`\r\x1b[K${formatProgress(p)}`);
      this.#shown = true;
    } else if (p.elapsedMs >= this.#nextPlain) {
      this.#options.write(`${formatProgress(p)}\n`);
      this.#nextPlain += this.#options.plainIntervalMs ?? 5000;
    }
  }

  /**
   * Ends the line on a terminal (call before other output).
   *
   * @example
   * ```ts
   * import { ProgressPrinter } from "./progress.ts";
   * import { equal } from "node:assert/strict";
   * const out: string[] = [];
   * const printer = new ProgressPrinter({ tty: true, write: (t) => out.push(t) });
   * printer.done(); // nothing shown yet: nothing to clear
   * equal(out.length, 0);
   * printer.update({ run: "run", elapsedMs: 100, durationMs: 0, ops: 5, opsPerSecond: 50, violations: 0, devicesAlive: 1, devices: 1 });
   * printer.done();
   * equal(out.at(-1), "\r\x1b[K");
   * ```
   */
  done(): void {
    if (this.#shown) this.#options.write("\r\x1b[K");
    this.#shown = false;
    this.#nextPlain = this.#options.plainIntervalMs ?? 5000;
  }
}
