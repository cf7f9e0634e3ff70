/**
 * One fuzz run inside the fuzzer's child process: builds a
 * {@linkcode FuzzTarget}, runs the requests it was sent, and reports each
 * request (with the fills made while it ran) and each failure to the driver
 * as it happens, so the driver knows how far a run got if the process hangs
 * or dies.
 *
 * @module
 */

import type { InjectionPattern } from "../dma/dma_inject.ts";
import type { PlantedBug } from "../machine/machine.ts";
import { type FillLine, type FuzzFailure, FuzzTarget } from "./fuzz_target.ts";

/** What the driver sends to start a run. */
export interface FuzzSessionStart {
  /** Always `start`. */
  readonly type: "start";
  /** The requests. */
  readonly lines: readonly string[];
  /** DMA patterns; empty for a replay (fills are plain writes then). */
  readonly patterns: readonly InjectionPattern[];
  /** A deliberate bug to plant. */
  readonly plantedBug?: PlantedBug;
  /** Probe the IOMMU's command processor at the end. */
  readonly finish: boolean;
}

/** What a session reports. */
export type FuzzSessionMessage =
  | {
    /** A request ran. */
    readonly type: "op";
    /** Its index. */
    readonly index: number;
    /** The request (probes are made up by the session). */
    readonly line: string;
    /** Its reply. */
    readonly reply: string;
    /** Fills made while requests ran, each with the index it belongs before. */
    readonly fills: readonly FillLine[];
  }
  | { readonly type: "failure"; readonly failure: FuzzFailure }
  | { readonly type: "done" };

/**
 * Runs one session: the requests in order until the first failure, then the
 * end-of-run probes, then stops the machine.
 *
 * @param start The run.
 * @param post Where reports go (the child's standard output).
 * @returns Resolves when the machine is stopped.
 *
 * @example
 * ```ts
 * import { runFuzzSession, type FuzzSessionMessage } from "./fuzz_session.ts";
 * import { equal } from "node:assert/strict";
 * const seen: FuzzSessionMessage[] = [];
 * await runFuzzSession(
 *   { type: "start", lines: ["outl 0xcf8 0x80000000", "inl 0xcfc"], patterns: [], finish: false },
 *   (m) => seen.push(m),
 * );
 * const last = seen.filter((m) => m.type === "op").at(-1);
 * equal(last?.type === "op" && last.reply, "OK 0x29c08086");
 * ```
 */
export async function runFuzzSession(
  start: FuzzSessionStart,
  post: (message: FuzzSessionMessage) => void,
): Promise<void> {
  const target = await FuzzTarget.create({
    patterns: start.patterns,
    ...(start.plantedBug !== undefined ? { plantedBug: start.plantedBug } : {}),
  });
  let reported = 0;
  const report = (): boolean => {
    while (reported < target.failures.length) {
      post({ type: "failure", failure: target.failures[reported++]! });
    }
    return reported > 0;
  };
  try {
    let index = 0;
    for (const line of start.lines) {
      const r = await target.execute(line, index);
      post({ type: "op", index, line, reply: r.reply, fills: r.fills });
      index++;
      if (report()) break;
    }
    if (start.finish && !report()) {
      for (const p of await target.finish(index)) {
        post({ type: "op", index: index++, line: p.line, reply: p.reply, fills: p.fills });
      }
    } else if (!report()) {
      await target.settle();
    }
    report();
  } finally {
    await target.close();
  }
  report();
  post({ type: "done" });
}
