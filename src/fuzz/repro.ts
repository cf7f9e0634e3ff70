/**
 * Reproducers on disk: `NAME.qtest` holds the qtest requests (one per line,
 * nothing else, so `dmaworks <fuzz machine> -qtest stdio < NAME.qtest`
 * replays them) and `NAME.json` what they reproduce and how to run them.
 *
 * @module
 */

import type { PlantedBug } from "../machine/machine.ts";
import { FUZZ_MACHINE_ARGS } from "./fuzz_machine.ts";
import type { FuzzFailure } from "./fuzz_target.ts";

/** The metadata of a reproducer (`NAME.json`). */
export interface ReproMeta {
  /** What the requests make happen. */
  readonly failure: FuzzFailure;
  /** The campaign seed and run that found it. */
  readonly seed?: number;
  /** The run index. */
  readonly run?: number;
  /** The run's seed. */
  readonly runSeed?: number;
  /** A planted bug the failure needs (only `deno task fuzz --replay` can plant it). */
  readonly plantedBug?: PlantedBug;
  /** The machine's command line. */
  readonly machineArgs: readonly string[];
  /** How to replay it. */
  readonly replay: string;
  /** Of three replays after minimisation, how many failed the same way. */
  readonly reproduced?: number;
}

/** A reproducer read back. */
export interface Repro {
  /** The requests. */
  readonly lines: string[];
  /** Its metadata. */
  readonly meta: ReproMeta;
}

/**
 * The shell command that replays `qtestFile` on the dmaworks command line.
 *
 * @param qtestFile The `.qtest` file.
 * @returns The command.
 *
 * @example
 * ```ts
 * import { replayCommand } from "./repro.ts";
 * import { match } from "node:assert/strict";
 * match(replayCommand("x.qtest"), /-qtest stdio -qtest-log none < x\.qtest$/);
 * ```
 */
export function replayCommand(qtestFile: string): string {
  const quote = (a: string) => /^[\w.,=:\/-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`;
  return `deno run -A src/cli/main.ts ${
    FUZZ_MACHINE_ARGS.map(quote).join(" ")
  } -qtest stdio -qtest-log none < ${quote(qtestFile)}`;
}

/**
 * Writes `DIR/NAME.qtest` and `DIR/NAME.json`.
 *
 * @param dir The directory (created if needed).
 * @param repro Name, requests and metadata (without `machineArgs` and `replay`).
 * @returns The path of the `.qtest` file.
 *
 * @example
 * ```ts
 * import { readRepro, writeRepro } from "./repro.ts";
 * import { deepEqual } from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const failure = { kind: "hang" as const, message: "m", op: 0, key: "hang" };
 * const path = await writeRepro(dir, { name: "r1", lines: ["inb 0x1f7"], failure });
 * deepEqual((await readRepro(path)).lines, ["inb 0x1f7"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeRepro(
  dir: string,
  repro: {
    name: string;
    lines: readonly string[];
  } & Omit<ReproMeta, "machineArgs" | "replay">,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const { name, lines, ...rest } = repro;
  const qtest = `${dir}/${name}.qtest`;
  const meta: ReproMeta = {
    ...rest,
    machineArgs: FUZZ_MACHINE_ARGS,
    replay: rest.plantedBug === undefined
      ? replayCommand(qtest)
      : `deno task fuzz --replay ${qtest} (needs the planted bug '${rest.plantedBug}')`,
  };
  await Deno.writeTextFile(qtest, lines.map((l) => `${l}\n`).join(""));
  await Deno.writeTextFile(`${dir}/${name}.json`, `${JSON.stringify(meta, null, 2)}\n`);
  return qtest;
}

/**
 * Reads a reproducer written by {@linkcode writeRepro}.
 *
 * @param qtestFile The `.qtest` file (its `.json` sits next to it).
 * @returns The requests and metadata.
 *
 * @example
 * ```ts
 * import { readRepro, writeRepro } from "./repro.ts";
 * import { equal } from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const failure = { kind: "fail-reply" as const, message: "m", op: 0, key: "fail-reply" };
 * await writeRepro(dir, { name: "r", lines: ["inb 0x1f7", "", "inb 0x3f6"], failure });
 * const repro = await readRepro(`${dir}/r.qtest`);
 * equal(repro.lines.length, 2);
 * equal(repro.meta.failure.kind, "fail-reply");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readRepro(qtestFile: string): Promise<Repro> {
  const text = await Deno.readTextFile(qtestFile);
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const meta = JSON.parse(
    await Deno.readTextFile(qtestFile.replace(/\.qtest$/, "") + ".json"),
  ) as ReproMeta;
  return { lines, meta };
}
