/**
 * The fuzzer's driver: runs each fuzz run on a fresh machine in a child
 * process (so a run that hangs the main isolate is stopped, and one that
 * kills the process is reported with what it printed),
 * turns a failing run into a minimised qtest reproducer by delta debugging
 * over its requests, and runs campaigns of many seeded runs.
 *
 * @module
 */

import type { InjectionPattern } from "../dma/dma_inject.ts";
import type { PlantedBug } from "../machine/machine.ts";
import { generateProgram } from "./fuzz_ops.ts";
import type { FuzzChildStart } from "./fuzz_child.ts";
import type { FuzzSessionMessage } from "./fuzz_session.ts";
import type { FuzzFailure } from "./fuzz_target.ts";
import { minimizeList } from "./minimize.ts";

const CHILD_URL = new URL("./fuzz_child.ts", import.meta.url);
const CONFIG_URL = new URL("../../deno.json", import.meta.url);

/** Options for {@linkcode FuzzExecutor.run}. */
export interface RunOptions {
  /** DMA patterns (fuzzing); none for a replay. */
  patterns?: readonly InjectionPattern[];
  /** A deliberate bug to plant. */
  plantedBug?: PlantedBug;
  /** Probe the IOMMU's command processor at the end (default true). */
  finish?: boolean;
  /** A run that reports nothing for this long is hung (ms, default 30000). */
  hangMs?: number;
}

/** What a run did. */
export interface RunOutcome {
  /**
   * The requests that ran, with the fuzzer's fills as plain `write`
   * requests before the request during which the device read them: replaying
   * these without injection repeats the run.
   */
  readonly executed: string[];
  /** The first failure, if any. */
  readonly failure?: FuzzFailure;
  /** Requests run. */
  readonly ops: number;
  /** Fills made. */
  readonly fills: number;
}

/** Reads lines from a byte stream, with a timeout per line. */
class LineQueue {
  #lines: string[] = [];
  #ended = false;
  #wake: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, onText?: (text: string) => void) {
    this.done = (async () => {
      let pending = "";
      try {
        for await (const text of stream.pipeThrough(new TextDecoderStream())) {
          onText?.(text);
          pending += text;
          let nl;
          while ((nl = pending.indexOf("\n")) >= 0) {
            this.#lines.push(pending.slice(0, nl));
            pending = pending.slice(nl + 1);
          }
          this.#wake?.();
        }
      } catch {
        // The process was killed.
      }
      this.#ended = true;
      this.#wake?.();
    })();
  }

  /** The next line, `undefined` at the end, or `null` after `timeoutMs`. */
  async next(timeoutMs: number): Promise<string | undefined | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      while (this.#lines.length === 0 && !this.#ended) {
        const timedOut = await new Promise<boolean>((resolve) => {
          this.#wake = () => resolve(false);
          timer = setTimeout(() => resolve(true), timeoutMs);
        });
        clearTimeout(timer);
        this.#wake = undefined;
        if (timedOut) return null;
      }
      return this.#lines.shift();
    } finally {
      clearTimeout(timer);
    }
  }
}

interface Child {
  readonly process: Deno.ChildProcess;
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly stdout: LineQueue;
  readonly stderr: LineQueue;
  stderrTail: string;
}

/**
 * Runs fuzz sessions in a child process (`fuzz_child.ts`), one after another,
 * and replaces the child when a run kills or hangs it. A run's failure may be
 * found by the child's oracles, or be the child's death (an uncaught error:
 * the tail of what it printed) or its silence (a hang).
 *
 * @example
 * ```ts
 * import { FuzzExecutor } from "./fuzz_runner.ts";
 * import { deepEqual, equal } from "node:assert/strict";
 * await using executor = new FuzzExecutor();
 * const r = await executor.run(["outl 0xcf8 0x80002000", "inl 0xcfc"], { finish: false });
 * equal(r.failure, undefined);
 * deepEqual(r.executed, ["outl 0xcf8 0x80002000", "inl 0xcfc"]);
 * ```
 */
export class FuzzExecutor implements AsyncDisposable {
  #child: Child | undefined;

  #spawn(): Child {
    const process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", CONFIG_URL.pathname, "--allow-read", CHILD_URL.pathname],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    const child: Child = {
      process,
      stdin: process.stdin.getWriter(),
      stdout: new LineQueue(process.stdout),
      stderr: undefined as unknown as LineQueue,
      stderrTail: "",
    };
    (child as { stderr: LineQueue }).stderr = new LineQueue(process.stderr, (text) => {
      child.stderrTail = (child.stderrTail + text).slice(-4000);
    });
    return child;
  }

  async #kill(child: Child): Promise<void> {
    if (this.#child === child) this.#child = undefined;
    try {
      child.process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.stdin.close().catch(() => {});
    await child.process.status;
    await child.stdout.done;
    await child.stderr.done;
  }

  /**
   * Runs requests against a fresh fuzz machine.
   *
   * @param lines The qtest requests.
   * @param options Patterns, planted bug, probes, hang limit.
   * @returns What happened.
   */
  async run(lines: readonly string[], options: RunOptions = {}): Promise<RunOutcome> {
    const hangMs = options.hangMs ?? 30_000;
    const child = this.#child ??= this.#spawn();
    const ops: string[] = [];
    const fills: Array<{ op: number; line: string }> = [];
    let failure: FuzzFailure | undefined;
    const start: FuzzChildStart = {
      lines,
      patterns: (options.patterns ?? []).map((p) => ({ ...p, data: [...p.data] })),
      finish: options.finish ?? true,
      ...(options.plantedBug !== undefined ? { plantedBug: options.plantedBug } : {}),
    };
    let broken = false;
    try {
      await child.stdin.write(new TextEncoder().encode(`${JSON.stringify(start)}\n`));
    } catch {
      broken = true;
    }
    for (;;) {
      const text = broken ? undefined : await child.stdout.next(hangMs);
      if (text === null) {
        failure ??= {
          kind: "hang",
          message: `No progress for ${hangMs} ms at request ${ops.length}: '${
            (lines[ops.length] ?? "(the end-of-run probes)").slice(0, 120)
          }'`,
          op: ops.length,
          key: "hang",
        };
        if (ops.length < lines.length) ops.push(lines[ops.length]!);
        await this.#kill(child);
        break;
      }
      if (text === undefined) {
        await this.#kill(child);
        const tail = child.stderrTail.trim().split("\n").slice(-12).join("\n");
        failure ??= {
          kind: "uncaught",
          message: `The fuzz process died: ${tail || "(nothing printed)"}`,
          op: ops.length,
          key: "uncaught",
        };
        if (ops.length < lines.length) ops.push(lines[ops.length]!);
        break;
      }
      const m = JSON.parse(text) as FuzzSessionMessage;
      if (m.type === "op") {
        ops[m.index] = m.line;
        fills.push(...m.fills);
      } else if (m.type === "failure") {
        failure ??= m.failure;
      } else if (m.type === "done") {
        break;
      }
    }
    const byOp = new Map<number, string[]>();
    for (const f of fills) {
      const list = byOp.get(f.op) ?? [];
      list.push(f.line);
      byOp.set(f.op, list);
    }
    const executed: string[] = [];
    ops.forEach((line, i) => executed.push(...(byOp.get(i) ?? []), line));
    return { executed, ops: ops.length, fills: fills.length, ...(failure ? { failure } : {}) };
  }

  /** Stops the child process. */
  async close(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    await child.stdin.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      child.process.status,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 5000))),
    ]);
    clearTimeout(timer);
    if (status === undefined) await this.#kill(child);
    await child.stdout.done;
    await child.stderr.done;
  }

  /** Stops the child process (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Options for {@linkcode minimizeFailure}. */
export interface MinimizeFailureOptions {
  /** The executor to replay with (default: a new one, closed at the end). */
  executor?: FuzzExecutor;
  /** The planted bug of the failing run. */
  plantedBug?: PlantedBug;
  /** Replays allowed (default 400). */
  maxTests?: number;
  /** Progress messages. */
  log?: (line: string) => void;
}

/** A minimised reproducer. */
export interface Reproducer {
  /** The qtest requests. */
  readonly lines: string[];
  /** The failure they reproduce (from the last successful replay). */
  readonly failure: FuzzFailure;
  /** Replays it took. */
  readonly tests: number;
  /** Of three final replays, how many failed the same way. */
  readonly reproduced: number;
}

/**
 * Shrinks a failing run's executed requests (replayed without injection:
 * fills are plain writes) to a small list that fails the same way.
 *
 * @param executed The run's executed requests.
 * @param failure Its failure.
 * @param options Planted bug, budget, progress.
 * @returns The reproducer, or `undefined` when the replay does not fail.
 *
 * @example
 * ```ts
 * import { minimizeFailure } from "./fuzz_runner.ts";
 * import { equal } from "node:assert/strict";
 * // A run that does not fail cannot be minimised.
 * const failure = { kind: "fail-reply" as const, message: "", op: 0, key: "fail-reply" };
 * const r = await minimizeFailure(["inl 0xcfc"], failure, { maxTests: 1 });
 * equal(r, undefined);
 * ```
 */
export async function minimizeFailure(
  executed: readonly string[],
  failure: FuzzFailure,
  options: MinimizeFailureOptions = {},
): Promise<Reproducer | undefined> {
  const finish = failure.kind === "completion-wait";
  const replayOptions: RunOptions = {
    finish,
    ...(options.plantedBug !== undefined ? { plantedBug: options.plantedBug } : {}),
    ...(failure.kind === "hang" ? { hangMs: 15_000 } : {}),
  };
  const own = options.executor === undefined ? new FuzzExecutor() : undefined;
  const executor = options.executor ?? own!;
  try {
    return await minimizeWith(executor, executed, failure, replayOptions, options);
  } finally {
    await own?.close();
  }
}

async function minimizeWith(
  executor: FuzzExecutor,
  executed: readonly string[],
  failure: FuzzFailure,
  replayOptions: RunOptions,
  options: MinimizeFailureOptions,
): Promise<Reproducer | undefined> {
  let last = failure;
  const fails = async (lines: string[]): Promise<boolean> => {
    const r = await executor.run(lines, replayOptions);
    if (r.failure?.key !== failure.key) return false;
    last = r.failure;
    return true;
  };
  // A session stops at its first failure, so nothing after the cause ran.
  const prefix = [...executed];
  if (!await fails(prefix)) {
    options.log?.("The failure did not reproduce on replay");
    return undefined;
  }
  const result = await minimizeList(prefix, fails, {
    maxTests: options.maxTests ?? 400,
    onProgress: (size, tests) => options.log?.(`  minimising: ${size} requests (${tests} replays)`),
  });
  let reproduced = 0;
  for (let i = 0; i < 3; i++) if (await fails(result.items)) reproduced++;
  return { lines: result.items, failure: last, tests: result.tests + 4, reproduced };
}

/** Options for {@linkcode fuzz}. */
export interface FuzzOptions {
  /** Campaign seed (default: from the clock). */
  seed?: number;
  /** Stop after this many runs. */
  runs?: number;
  /** Stop after this long (ms). Without `runs` or `durationMs`: 100 runs. */
  durationMs?: number;
  /** Operations per run (default 120). */
  ops?: number;
  /** Plant a deliberate bug (to show the fuzzer finds it). */
  plantedBug?: PlantedBug;
  /** Minimise failures (default true). */
  minimize?: boolean;
  /** Replays per minimisation (default 400). */
  maxTests?: number;
  /** Stop at the first failure (default false: go on, one report per distinct failure). */
  stopOnFailure?: boolean;
  /** Called for each distinct failure found (minimised when asked). */
  onFailure?: (found: FoundFailure) => void | Promise<void>;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Called about every `progressMs` (default 30000) with the counts so far. */
  onProgress?: (
    progress: { runs: number; ops: number; fills: number; failingRuns: number },
  ) => void;
  /** How often `onProgress` is called (ms). */
  progressMs?: number;
}

/** A failure a campaign found. */
export interface FoundFailure {
  /** The campaign seed. */
  readonly seed: number;
  /** The run that failed. */
  readonly run: number;
  /** The run's own seed (`generateProgram(runSeed)`). */
  readonly runSeed: number;
  /** The failure. */
  readonly failure: FuzzFailure;
  /** The run's executed requests (replayable). */
  readonly executed: string[];
  /** The minimised reproducer, when minimisation succeeded. */
  readonly reproducer?: Reproducer;
  /** The planted bug, if any. */
  readonly plantedBug?: PlantedBug;
}

/** What a campaign did. */
export interface FuzzResult {
  /** The campaign seed. */
  readonly seed: number;
  /** Runs completed. */
  readonly runs: number;
  /** Requests run. */
  readonly ops: number;
  /** Fills made. */
  readonly fills: number;
  /** Failing runs (all of them, including repeats of a known failure). */
  readonly failingRuns: number;
  /** Distinct failures (by key), in the order found. */
  readonly failures: FoundFailure[];
  /** Wall time (ms). */
  readonly ms: number;
}

/**
 * The seed of run `run` of a campaign.
 *
 * @param seed The campaign seed.
 * @param run The run index.
 * @returns The run's seed.
 *
 * @example
 * ```ts
 * import { runSeed } from "./fuzz_runner.ts";
 * import { notEqual } from "node:assert/strict";
 * notEqual(runSeed(1, 0), runSeed(1, 1));
 * ```
 */
export function runSeed(seed: number, run: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e37_79b1) ^ Math.imul(run + 1, 0x85eb_ca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb_352d) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * Runs a fuzzing campaign: seeded runs, each a fresh machine attacked with a
 * generated program and DMA injection, until the run count or the time is
 * up. Each distinct failure is minimised into a reproducer.
 *
 * @param options Seed, limits, planted bug, callbacks.
 * @returns The campaign's result.
 *
 * @example
 * ```ts ignore
 * import { fuzz } from "./fuzz_runner.ts";
 * const result = await fuzz({ seed: 1, runs: 3 });
 * console.log(result.failures.length); // 0
 * ```
 */
export async function fuzz(options: FuzzOptions = {}): Promise<FuzzResult> {
  const seed = (options.seed ?? Date.now()) >>> 0;
  const start = performance.now();
  const maxRuns = options.runs ?? (options.durationMs === undefined ? 100 : Infinity);
  const deadline = options.durationMs === undefined ? Infinity : start + options.durationMs;
  const failures: FoundFailure[] = [];
  let runs = 0;
  let ops = 0;
  let fills = 0;
  let failingRuns = 0;
  let nextProgress = start + (options.progressMs ?? 30_000);
  await using executor = new FuzzExecutor();
  while (runs < maxRuns && performance.now() < deadline) {
    if (performance.now() >= nextProgress) {
      nextProgress += options.progressMs ?? 30_000;
      options.onProgress?.({ runs, ops, fills, failingRuns });
    }
    const rs = runSeed(seed, runs);
    const program = generateProgram(rs, options.ops === undefined ? {} : { ops: options.ops });
    const outcome = await executor.run(program.lines, {
      patterns: program.patterns,
      ...(options.plantedBug !== undefined ? { plantedBug: options.plantedBug } : {}),
    });
    ops += outcome.ops;
    fills += outcome.fills;
    const run = runs++;
    if (!outcome.failure) continue;
    failingRuns++;
    const failure = outcome.failure;
    options.log?.(`run ${run} (seed ${rs}): ${failure.kind}: ${failure.message.split("\n")[0]}`);
    if (failures.some((f) => f.failure.key === failure.key)) continue;
    let reproducer: Reproducer | undefined;
    if (options.minimize ?? true) {
      reproducer = await minimizeFailure(outcome.executed, failure, {
        executor,
        ...(options.plantedBug !== undefined ? { plantedBug: options.plantedBug } : {}),
        ...(options.maxTests !== undefined ? { maxTests: options.maxTests } : {}),
        ...(options.log ? { log: options.log } : {}),
      });
    }
    const found: FoundFailure = {
      seed,
      run,
      runSeed: rs,
      failure,
      executed: outcome.executed,
      ...(reproducer ? { reproducer } : {}),
      ...(options.plantedBug !== undefined ? { plantedBug: options.plantedBug } : {}),
    };
    failures.push(found);
    await options.onFailure?.(found);
    if (options.stopOnFailure) break;
  }
  return { seed, runs, ops, fills, failingRuns, failures, ms: performance.now() - start };
}
