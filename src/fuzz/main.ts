/**
 * `deno task fuzz`: the guest-input fuzzer's command line.
 *
 * ```sh
 * deno task fuzz --duration 10m            # a 10-minute campaign, random seed
 * deno task fuzz --seed 42 --runs 200      # 200 runs, reproducible
 * deno task fuzz --plant edu-dma-bounds    # show that a planted bug is found
 * deno task fuzz --replay fuzz-out/x.qtest # replay a reproducer with the oracles
 * ```
 *
 * Each distinct failure is minimised and written to `--out` (default
 * `fuzz-out`) as `NAME.qtest` (replay with `dmaworks … -qtest stdio <
 * NAME.qtest`, the command is in `NAME.json`) and `NAME.json`. The exit code
 * is 1 when anything failed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { PlantedBug } from "../machine/machine.ts";
import { fuzz, FuzzExecutor } from "./fuzz_runner.ts";
import { readRepro, writeRepro } from "./repro.ts";

const HELP = `Usage: deno task fuzz [options]

Fuzzes the dmaworks fuzz machine (IOMMU, PIIX3 IDE, two e1000s, edu) over
qtest, filling every region a device DMA-reads first with fuzzer data.

  --seed N          campaign seed (default: from the clock)
  --duration TIME   run for TIME (e.g. 90s, 10m, 1h)
  --runs N          run N runs (default 100 without --duration)
  --ops N           operations per run (default 120)
  --out DIR         where reproducers go (default fuzz-out)
  --plant BUG       plant a deliberate bug: edu-dma-bounds
  --no-minimize     write failing runs as they are
  --max-tests N     replays per minimisation (default 400)
  --replay FILE     replay a reproducer (.qtest) with the oracles and exit
  -h, --help        this text
`;

const PLANTS: readonly PlantedBug[] = ["edu-dma-bounds"];

/**
 * Parses a duration: a number with an optional unit (ms, s, m, h; default s).
 *
 * @param text E.g. `10m`.
 * @returns Milliseconds.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./main.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseDuration("10m"), 600_000);
 * equal(parseDuration("1.5s"), 1500);
 * ```
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`Invalid duration '${text}': e.g. 90s, 10m, 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Number(m[1]) * unit;
}

function integer(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`Invalid ${what} '${text}'`);
  return n;
}

/**
 * Runs the fuzzer's command line.
 *
 * @param args Arguments (without the program name).
 * @returns The exit code: 0 nothing failed, 1 a failure (or a bad option).
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * import { equal } from "node:assert/strict";
 * equal(await main(["--bogus"]), 1);
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        seed: { type: "string" },
        duration: { type: "string" },
        runs: { type: "string" },
        ops: { type: "string" },
        out: { type: "string" },
        plant: { type: "string" },
        "no-minimize": { type: "boolean" },
        "max-tests": { type: "string" },
        replay: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`fuzz: ${(error as Error).message}`);
    return 1;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  try {
    if (values.plant !== undefined && !PLANTS.includes(values.plant as PlantedBug)) {
      throw new Error(`Unknown planted bug '${values.plant}' (known: ${PLANTS.join(", ")})`);
    }
    if (values.replay !== undefined) {
      const repro = await readRepro(values.replay);
      const plantedBug = (values.plant ?? repro.meta.plantedBug) as PlantedBug | undefined;
      await using executor = new FuzzExecutor();
      const r = await executor.run(repro.lines, {
        finish: repro.meta.failure.kind === "completion-wait",
        ...(plantedBug !== undefined ? { plantedBug } : {}),
      });
      if (r.failure) {
        console.log(`fuzz: replay failed: ${r.failure.kind}: ${r.failure.message.split("\n")[0]}`);
        return 1;
      }
      console.log(`fuzz: replay of ${repro.lines.length} requests: no failure`);
      return 0;
    }
    const out = values.out ?? "fuzz-out";
    const seed = integer(values.seed, "seed") ?? (Date.now() >>> 0);
    const durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
    const runs = integer(values.runs, "run count");
    const ops = integer(values.ops, "operation count");
    const maxTests = integer(values["max-tests"], "test count");
    const plantedBug = values.plant as PlantedBug | undefined;
    console.log(
      `fuzz: seed ${seed}${durationMs === undefined ? "" : `, ${durationMs / 1000} s`}${
        runs === undefined ? "" : `, ${runs} runs`
      }${plantedBug ? `, planted bug ${plantedBug}` : ""}`,
    );
    const started = performance.now();
    const result = await fuzz({
      seed,
      ...(runs !== undefined ? { runs } : {}),
      ...(durationMs !== undefined ? { durationMs } : {}),
      ...(ops !== undefined ? { ops } : {}),
      ...(plantedBug !== undefined ? { plantedBug } : {}),
      ...(maxTests !== undefined ? { maxTests } : {}),
      minimize: !values["no-minimize"],
      log: (line) =>
        console.log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`),
      onProgress: (p) =>
        console.log(
          `[${
            ((performance.now() - started) / 1000).toFixed(0).padStart(4)
          } s] ${p.runs} runs, ${p.ops} requests, ${p.fills} fills, ${p.failingRuns} failing runs`,
        ),
      onFailure: async (found) => {
        const name = `${found.failure.key.replaceAll(/[^\w.-]+/g, "_")}-${found.seed}-${found.run}`;
        const lines = found.reproducer?.lines ?? found.executed;
        const path = await writeRepro(out, {
          name,
          lines,
          failure: found.reproducer?.failure ?? found.failure,
          seed: found.seed,
          run: found.run,
          runSeed: found.runSeed,
          ...(found.plantedBug !== undefined ? { plantedBug: found.plantedBug } : {}),
          ...(found.reproducer ? { reproduced: found.reproducer.reproduced } : {}),
        });
        console.log(
          `fuzz: ${found.failure.kind} (${found.failure.key}): ${lines.length} requests in ${path}${
            found.reproducer ? ` (reproduced ${found.reproducer.reproduced} of 3)` : ""
          }`,
        );
      },
    });
    console.log(
      `fuzz: ${result.runs} runs, ${result.ops} requests, ${result.fills} fills in ${
        (result.ms / 1000).toFixed(0)
      } s: ${result.failures.length} failures (${result.failingRuns} failing runs)`,
    );
    return result.failures.length === 0 ? 0 : 1;
  } catch (error) {
    console.error(`fuzz: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
