/**
 * The fuzzer's child process: runs fuzz sessions one after another for the
 * driver. It reads one JSON start message per line on standard input and
 * writes each session's reports as JSON lines on standard output. A child
 * process (rather than a worker) keeps the device workers top-level, where
 * Deno starts them fast, and lets the driver kill a run whose main isolate
 * hangs; what the process prints before it dies of an uncaught error is the
 * failure report.
 *
 * @module
 */

import type { PlantedBug } from "../machine/machine.ts";
import { type FuzzSessionMessage, runFuzzSession } from "./fuzz_session.ts";

/** A start message as it travels as JSON (pattern bytes as arrays). */
export interface FuzzChildStart {
  /** The requests. */
  readonly lines: readonly string[];
  /** DMA patterns. */
  readonly patterns: ReadonlyArray<
    { readonly data: readonly number[]; readonly index: number; readonly stride: number }
  >;
  /** A deliberate bug to plant. */
  readonly plantedBug?: PlantedBug;
  /** Probe the IOMMU's command processor at the end. */
  readonly finish: boolean;
}

const encoder = new TextEncoder();

function send(message: FuzzSessionMessage): void {
  const data = encoder.encode(`${JSON.stringify(message)}\n`);
  let done = 0;
  while (done < data.length) done += Deno.stdout.writeSync(data.subarray(done));
}

/**
 * Serves start messages from `input` until it ends.
 *
 * @param input Standard input (or a test stream).
 * @param post Where reports go (standard output).
 * @returns Resolves when the input ends.
 *
 * @example
 * ```ts
 * import { serveFuzzChild } from "./fuzz_child.ts";
 * import { equal } from "node:assert/strict";
 * const start = { lines: ["inl 0xcfc"], patterns: [], finish: false };
 * const input = ReadableStream.from([new TextEncoder().encode(`${JSON.stringify(start)}\n`)]);
 * const types: string[] = [];
 * await serveFuzzChild(input, (m) => types.push(m.type));
 * equal(types.at(-1), "done");
 * ```
 */
export async function serveFuzzChild(
  input: ReadableStream<Uint8Array>,
  post: (message: FuzzSessionMessage) => void,
): Promise<void> {
  let pending = "";
  for await (const text of input.pipeThrough(new TextDecoderStream())) {
    pending += text;
    for (;;) {
      const nl = pending.indexOf("\n");
      if (nl < 0) break;
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim() === "") continue;
      const start = JSON.parse(line) as FuzzChildStart;
      await runFuzzSession({
        type: "start",
        lines: start.lines,
        patterns: start.patterns.map((p) => ({ ...p, data: new Uint8Array(p.data) })),
        finish: start.finish,
        ...(start.plantedBug !== undefined ? { plantedBug: start.plantedBug } : {}),
      }, post);
    }
  }
}

if (import.meta.main) {
  await serveFuzzChild(Deno.stdin.readable, send);
}
