/**
 * `deno task durability`: kill the emulator with SIGKILL at random points
 * and prove that every write a FLUSH CACHE acknowledged is on the disk image.
 *
 * ```sh
 * deno task durability                         # 20 rounds, seed from the clock
 * deno task durability --rounds 500 --seed 42  # reproducible schedule
 * deno task durability --dir /mnt/disk         # images on another file system
 * deno task durability --plant lose-write      # show that a lost write is caught
 * deno task durability --trace                 # also check the fdatasync order (strace)
 * ```
 *
 * Each round creates a zeroed raw image and starts the real command line
 * (`src/cli/main.ts`, one process: main isolate, IDE worker, IOMMU, guest
 * agent) with the guest of `durability_guest.ts`, which writes groups of
 * sequence-numbered sectors by DMA and flushes after each group. The guest
 * announces each step on its standard output, a pipe this process (the
 * observer) reads; it announces `ACK g` only after it saw group `g`'s FLUSH
 * CACHE complete. The pipe's contents outlive the killed process, so the
 * observer learns every acknowledgement made before the kill. The round
 * kills the process at a point drawn from its seed: a time after the guest
 * is ready, or the moment the guest starts a given WRITE DMA or FLUSH CACHE
 * (so kills land mid-DMA and mid-flush, not only between commands), then
 * reopens the image and checks it with {@linkcode checkImage}: every sector
 * holds its last acknowledged write; only the group in flight may be old,
 * new or torn. The last line the guest wrote tells where the kill landed.
 *
 * What a SIGKILL cannot show: the page cache survives the process, so a
 * kill proves that the emulator handed every acknowledged write to the
 * operating system before completing FLUSH CACHE, not that it reached stable
 * storage. {@linkcode traceFlushes} (`--trace`, needs `strace`) closes that
 * gap for the emulator's side: it records the process's system calls and
 * checks that between every write to the image and the guest's `ACK` there
 * is an `fdatasync` of the image that started after the write and returned
 * 0. Whether `fdatasync` itself is honest is the kernel's and the disk's
 * business (a power cut tests that; a process cannot).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { seededRandom } from "../util/random.ts";
import {
  checkImage,
  DURABILITY_SLOTS,
  type DurabilityCheck,
  groupWrites,
} from "./durability_schedule.ts";
import { DURABILITY_PLANTS, type DurabilityPlant } from "./durability_guest.ts";

const CLI = new URL("../cli/main.ts", import.meta.url);
const GUEST = new URL("./durability_guest.ts", import.meta.url);
const CONFIG = new URL("../../deno.json", import.meta.url);
const SECTOR = 512;
/** The image: the workload's sectors, then as many that must stay zero. */
const IMAGE_BYTES = DURABILITY_SLOTS * SECTOR * 2;

/**
 * Where a round kills the process: `time` kills `delayMs` after the guest
 * is ready; `write` when the guest starts WRITE DMA `index` of group
 * `group`, `flush` when it starts group `group`'s FLUSH CACHE, `idle` when
 * it has finished (with `groups`), each `delayMs` later (0: at once).
 *
 * @example
 * ```ts
 * import type { KillPoint } from "./durability.ts";
 * const midFlush: KillPoint = { trigger: "flush", group: 3, index: 0, delayMs: 0 };
 * console.log(midFlush.trigger);
 * ```
 */
export interface KillPoint {
  /** What the kill waits for. */
  readonly trigger: "time" | "write" | "flush" | "idle";
  /** The group (`write`, `flush`). */
  readonly group: number;
  /** The write command within the group (`write`). */
  readonly index: number;
  /** Milliseconds between the trigger and the kill. */
  readonly delayMs: number;
}

/**
 * Where the guest was when the process died: the last line it wrote
 * (`write`: a WRITE DMA in progress, `flush`: a FLUSH CACHE in progress,
 * `between`: between commands, `starting`: before the guest was ready).
 *
 * @example
 * ```ts
 * import type { KillPhase } from "./durability.ts";
 * const phase: KillPhase = "flush";
 * console.log(phase);
 * ```
 */
export type KillPhase = "starting" | "between" | "write" | "flush" | "idle";

/**
 * Options of {@linkcode durabilityRound} and {@linkcode runDurability}.
 *
 * @example
 * ```ts
 * import type { DurabilityOptions } from "./durability.ts";
 * const options: DurabilityOptions = { plant: "lose-write", groups: 2 };
 * console.log(options.plant);
 * ```
 */
export interface DurabilityOptions {
  /** A bug for the guest to plant (default `none`). */
  plant?: DurabilityPlant;
  /** Where images go (default: the system's temporary directory). */
  dir?: string;
  /** Stop after this many groups and wait to be killed (default: never stop). */
  groups?: number;
  /** Give up on a round whose kill point is not reached in this time (ms, default 60000). */
  watchdogMs?: number;
}

/**
 * What one round found.
 *
 * @example
 * ```ts
 * import type { DurabilityRound } from "./durability.ts";
 * const failed = (r: DurabilityRound) =>
 *   r.error !== undefined || r.check.lost.length > 0 || r.check.stray.length > 0;
 * console.log(typeof failed);
 * ```
 */
export interface DurabilityRound {
  /** The guest's seed. */
  readonly seed: number;
  /** Where the kill was planned. */
  readonly kill: KillPoint;
  /** Where the guest was when it died. */
  readonly phase: KillPhase;
  /** The last line the guest wrote (without the `durability ` prefix). */
  readonly lastLine: string;
  /** The last group whose FLUSH CACHE the guest saw complete (0: none). */
  readonly acknowledged: number;
  /** The image check. */
  readonly check: DurabilityCheck;
  /** Why the round could not be judged (the process exited by itself, …). */
  readonly error?: string;
}

/**
 * Whether a round failed: an error, a lost acknowledged write, or a stray write.
 *
 * @param round The round.
 * @returns `true` when it failed.
 *
 * @example
 * ```ts
 * import { roundFailed } from "./durability.ts";
 * import { equal } from "node:assert/strict";
 * equal(roundFailed({
 *   seed: 1, kill: { trigger: "time", group: 0, index: 0, delayMs: 5 }, phase: "write",
 *   lastLine: "W 2 0", acknowledged: 1, check: { good: 512, newer: 0, torn: 0, lost: [], stray: [] },
 * }), false);
 * ```
 */
export function roundFailed(round: DurabilityRound): boolean {
  return round.error !== undefined || round.check.lost.length > 0 ||
    round.check.stray.length > 0;
}

function guestSpec(
  seed: number,
  options: { plant?: DurabilityPlant; groups?: number; end: string },
): string {
  return `${GUEST.pathname},seed=${seed},groups=${options.groups ?? 0},end=${options.end},plant=${
    options.plant ?? "none"
  }`;
}

/** The command line of the emulator process a round starts (without the executable). */
function emulatorArgs(image: string, guest: string): string[] {
  return [
    "run",
    "--no-prompt",
    "--config",
    CONFIG.pathname,
    "--allow-read",
    `--allow-write=${image}`,
    CLI.pathname,
    "--narrow-permissions",
    "-machine",
    "q35",
    "-m",
    "64",
    "-nodefaults",
    "-display",
    "none",
    "-device",
    "amd-iommu",
    "-device",
    "piix3-ide,id=ide",
    "-drive",
    `file=${image},if=ide,format=raw`,
    "--workload",
    guest,
  ];
}

async function zeroedImage(dir: string | undefined): Promise<string> {
  const image = await Deno.makeTempFile({
    prefix: "dmaworks-durability-",
    suffix: ".img",
    ...(dir !== undefined ? { dir } : {}),
  });
  await Deno.writeFile(image, new Uint8Array(IMAGE_BYTES));
  // The zeros are where the check starts from: make them durable too.
  using file = await Deno.open(image, { write: true });
  await file.syncData();
  return image;
}

/** Splits a byte stream into lines, calling `line` for each. */
async function readLines(stream: ReadableStream<Uint8Array>, line: (text: string) => void) {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      line(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) line(pending);
}

const MARKER = /^durability (READY|IDLE|W (\d+) (\d+)|F (\d+)|ACK (\d+))$/;

/**
 * Runs one round: start the emulator with the durability guest, kill it
 * with SIGKILL at `kill`, check the image.
 *
 * @param seed The guest's seed.
 * @param kill Where to kill it.
 * @param options A planted bug, the image directory, …
 * @returns What the round found.
 *
 * @example
 * ```ts
 * import { durabilityRound, roundFailed } from "./durability.ts";
 * import { equal } from "node:assert/strict";
 * const round = await durabilityRound(1, { trigger: "flush", group: 2, index: 0, delayMs: 0 });
 * equal(roundFailed(round), false);
 * ```
 */
export async function durabilityRound(
  seed: number,
  kill: KillPoint,
  options: DurabilityOptions = {},
): Promise<DurabilityRound> {
  const image = await zeroedImage(options.dir);
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: emulatorArgs(
        image,
        guestSpec(seed, { ...options, end: options.groups !== undefined ? "idle" : "exit" }),
      ),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    const stderr = new Response(child.stderr).text();
    let acknowledged = 0;
    let lastLine = "";
    let phase: KillPhase = "starting";
    let killed = false;
    const other: string[] = [];
    const timers: ReturnType<typeof setTimeout>[] = [];
    const doKill = () => {
      if (killed) return;
      killed = true;
      try {
        child.kill("SIGKILL");
      } catch {
        // It is gone already.
      }
    };
    const killIn = (ms: number) => {
      if (ms <= 0) doKill();
      else timers.push(setTimeout(doKill, ms));
    };
    const watchdogMs = options.watchdogMs ?? 60_000;
    timers.push(setTimeout(doKill, watchdogMs));
    try {
      await readLines(child.stdout, (line) => {
        const m = MARKER.exec(line);
        if (!m) {
          other.push(line);
          if (other.length > 40) other.shift();
          return;
        }
        lastLine = m[1]!;
        if (m[1] === "READY") {
          phase = "between";
          if (kill.trigger === "time") killIn(kill.delayMs);
        } else if (m[1] === "IDLE") {
          phase = "idle";
          if (kill.trigger === "idle") killIn(kill.delayMs);
        } else if (m[2] !== undefined) {
          phase = "write";
          if (
            kill.trigger === "write" && Number(m[2]) === kill.group && Number(m[3]) === kill.index
          ) killIn(kill.delayMs);
        } else if (m[4] !== undefined) {
          phase = "flush";
          if (kill.trigger === "flush" && Number(m[4]) === kill.group) killIn(kill.delayMs);
        } else {
          phase = "between";
          acknowledged = Math.max(acknowledged, Number(m[5]));
        }
      });
    } finally {
      // Whatever happened, the emulator does not outlive the round.
      for (const t of timers) clearTimeout(t);
      doKill(); // nothing when it is gone already
      await stderr.catch(() => "");
    }
    const status = await child.status;
    const printed = (await stderr).trim();
    let error: string | undefined;
    if (status.signal !== "SIGKILL") {
      error = `The emulator exited by itself (code ${status.code}) before its kill point: ${
        [...other, printed].join("\n").slice(-2000)
      }`;
    } else if (phase === "starting") {
      error =
        `The watchdog killed the emulator after ${watchdogMs} ms, before the guest was ready: ${
          [...other, printed].join("\n").slice(-2000)
        }`;
    } else if (!isAtKillPoint(kill, lastLine, acknowledged)) {
      error = `The watchdog killed the emulator after ${watchdogMs} ms, at '${lastLine}'`;
    }
    const check = checkImage(await Deno.readFile(image), seed, acknowledged);
    return {
      seed,
      kill,
      phase,
      lastLine,
      acknowledged,
      check,
      ...(error !== undefined ? { error } : {}),
    };
  } finally {
    await Deno.remove(image).catch(() => {});
  }
}

/** Whether the guest got to the kill point (so the kill was not the watchdog's). */
function isAtKillPoint(kill: KillPoint, lastLine: string, acknowledged: number): boolean {
  switch (kill.trigger) {
    case "time":
      return true;
    case "idle":
      return lastLine === "IDLE";
    case "flush":
      return acknowledged >= kill.group || lastLine === `F ${kill.group}`;
    case "write": {
      if (acknowledged >= kill.group) return true;
      const m = /^W (\d+) (\d+)$/.exec(lastLine);
      return lastLine === `F ${kill.group}` ||
        (m !== null && Number(m[1]) === kill.group && Number(m[2]) >= kill.index);
    }
  }
}

/**
 * What {@linkcode runDurability} found.
 *
 * @example
 * ```ts
 * import type { DurabilityResult } from "./durability.ts";
 * const passed = (r: DurabilityResult) => r.failed.length === 0;
 * console.log(typeof passed);
 * ```
 */
export interface DurabilityResult {
  /** The run's seed (every round's seed and kill point derive from it). */
  readonly seed: number;
  /** Every round. */
  readonly rounds: DurabilityRound[];
  /** Rounds that lost an acknowledged write, wrote astray or could not be judged. */
  readonly failed: DurabilityRound[];
}

/**
 * Draws round `i`'s seed and kill point from the run's random stream: a
 * third each killed at a time after the guest is ready (up to
 * `maxKillMs`), as a WRITE DMA starts, and as a FLUSH CACHE starts (group up
 * to `maxGroup`, 0–2 ms later).
 *
 * @param random The run's random numbers.
 * @param maxKillMs Latest time for `time` kills.
 * @param maxGroup Latest group for `write` and `flush` kills.
 * @returns The seed and the kill point.
 */
function drawRound(
  random: ReturnType<typeof seededRandom>,
  maxKillMs: number,
  maxGroup: number,
): { seed: number; kill: KillPoint } {
  const seed = random.int(0x7fff_ffff);
  const which = random.int(3);
  const group = 1 + random.int(maxGroup);
  const index = random.int(groupWrites(seed, group).length);
  const delayMs = random.int(3);
  if (which === 0) {
    return {
      seed,
      kill: { trigger: "time", group: 0, index: 0, delayMs: random.int(maxKillMs + 1) },
    };
  }
  if (which === 1) return { seed, kill: { trigger: "write", group, index, delayMs } };
  return { seed, kill: { trigger: "flush", group, index: 0, delayMs } };
}

/**
 * Runs `rounds` rounds, their seeds and kill points drawn from `seed`.
 *
 * @param rounds How many.
 * @param options The run's seed (default from the clock), the latest kill
 *   time and group, round options, a progress callback.
 * @returns Every round and the failed ones.
 *
 * @example
 * ```ts
 * import { runDurability } from "./durability.ts";
 * import { equal } from "node:assert/strict";
 * const result = await runDurability(1, { seed: 3, maxKillMs: 50, maxGroup: 2 });
 * equal(result.failed.length, 0);
 * ```
 */
export async function runDurability(
  rounds: number,
  options: DurabilityOptions & {
    seed?: number;
    maxKillMs?: number;
    maxGroup?: number;
    log?: (round: DurabilityRound, index: number) => void;
  } = {},
): Promise<DurabilityResult> {
  const seed = options.seed ?? (Date.now() >>> 0);
  const random = seededRandom(seed);
  const all: DurabilityRound[] = [];
  for (let i = 0; i < rounds; i++) {
    const plan = drawRound(random, options.maxKillMs ?? 1000, options.maxGroup ?? 24);
    const round = await durabilityRound(plan.seed, plan.kill, options);
    all.push(round);
    options.log?.(round, i);
  }
  return { seed, rounds: all, failed: all.filter(roundFailed) };
}

/**
 * What {@linkcode traceFlushes} found.
 *
 * @example
 * ```ts
 * import type { FlushTrace } from "./durability.ts";
 * const sound = (t: FlushTrace) => t.violations.length === 0 && t.acknowledged > 0;
 * console.log(typeof sound);
 * ```
 */
export interface FlushTrace {
  /** `ACK` lines the guest wrote. */
  readonly acknowledged: number;
  /** Writes to the image the process made. */
  readonly imageWrites: number;
  /** `fdatasync`/`fsync` calls on the image that returned 0. */
  readonly syncs: number;
  /** Acknowledgements written while a write to the image was not yet made durable. */
  readonly violations: Array<{ group: number; unsynced: number }>;
}

/**
 * Checks the order of system calls recorded by `strace -f -y` (see
 * {@linkcode traceFlushes}): every write to `image` that started before the
 * guest wrote `ACK g` must have returned, and an `fdatasync` (or `fsync`)
 * of `image` that started after it returned must have returned 0, before
 * that `ACK`. strace handles each thread's stops in the order they happen
 * and a thread cannot go on past a stop before strace resumes it, so a
 * system call's exit that caused the `ACK` is logged before the `ACK`.
 *
 * @param trace strace's output (`-f -y -s 64`; `-qq` optional).
 * @param image The image's path as strace shows it (the real path).
 * @returns What was found.
 *
 * @example
 * ```ts
 * import { checkFlushTrace } from "./durability.ts";
 * import { deepEqual, equal } from "node:assert/strict";
 * const good = [
 *   '7 write(9</d.img>, "DWDS"..., 512) = 512',
 *   "8 fdatasync(9</d.img> <unfinished ...>",
 *   "8 <... fdatasync resumed>) = 0",
 *   '7 write(1<pipe:[5]>, "durability ACK 1\\n", 17) = 17',
 * ].join("\n");
 * equal(checkFlushTrace(good, "/d.img").violations.length, 0);
 * const bad = [
 *   '7 write(9</d.img>, "DWDS"..., 512) = 512',
 *   '7 write(1<pipe:[5]>, "durability ACK 1\\n", 17) = 17',
 * ].join("\n");
 * deepEqual(checkFlushTrace(bad, "/d.img").violations, [{ group: 1, unsynced: 1 }]);
 * ```
 */
export function checkFlushTrace(trace: string, image: string): FlushTrace {
  interface Write {
    exited: boolean;
    covered: boolean;
  }
  interface Call {
    name: string;
    write?: Write;
    covers?: Write[];
  }
  const writes: Write[] = [];
  const pending = new Map<string, Call>();
  const violations: FlushTrace["violations"] = [];
  let acknowledged = 0;
  let syncs = 0;
  const onImage = `<${image}>`;
  const exit = (call: Call, result: number) => {
    if (call.write) call.write.exited = true;
    if (call.covers && result === 0) {
      syncs++;
      for (const w of call.covers) w.covered = true;
    }
  };
  for (const line of trace.split("\n")) {
    // strace pads the pid column (`5020  write(…`) to a width that depends
    // on the pids, so any run of spaces separates it from the call.
    const m = /^(?:\[pid\s+)?(\d+)\]?\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, rest] = m as unknown as [string, string, string];
    const result = Number(/\)\s+= (-?\d+)/.exec(rest)?.[1] ?? NaN);
    const resumed = /^<\.\.\. (\w+) resumed>/.exec(rest);
    if (resumed) {
      const call = pending.get(pid);
      pending.delete(pid);
      if (call) exit(call, result);
      continue;
    }
    const enter = /^(\w+)\((\d+)(<[^>]*>)?/.exec(rest);
    if (!enter) continue;
    const [, name, fd, path] = enter as unknown as [string, string, string, string | undefined];
    const call: Call = { name };
    if (/^(write|writev|pwrite64|pwritev2?)$/.test(name)) {
      if (path === onImage) {
        call.write = { exited: false, covered: false };
        writes.push(call.write);
      } else if (fd === "1") {
        const ack = /"durability ACK (\d+)\\n"/.exec(rest);
        if (ack) {
          acknowledged++;
          const unsynced = writes.filter((w) => !w.covered).length;
          if (unsynced > 0) violations.push({ group: Number(ack[1]), unsynced });
        }
      }
    } else if ((name === "fdatasync" || name === "fsync") && path === onImage) {
      call.covers = writes.filter((w) => w.exited && !w.covered);
    } else continue;
    if (rest.endsWith("<unfinished ...>")) pending.set(pid, call);
    else exit(call, result);
  }
  return { acknowledged, imageWrites: writes.length, syncs, violations };
}

/**
 * Whether `strace` can trace a process here (for {@linkcode traceFlushes}):
 * it is installed and `ptrace` is allowed.
 *
 * @returns `true` when `strace` traced a child of this process.
 *
 * @example
 * ```ts
 * import { haveStrace } from "./durability.ts";
 * console.log(await haveStrace());
 * ```
 */
export async function haveStrace(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("strace", {
      args: [
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=none",
        "--",
        Deno.execPath(),
        "--version",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Runs the durability guest for `groups` groups under `strace` and checks
 * with {@linkcode checkFlushTrace} that FLUSH CACHE reached `fdatasync`
 * before the guest saw it complete.
 *
 * @param seed The guest's seed.
 * @param options Groups to write (default 8), a planted bug, the image directory.
 * @returns What the trace shows.
 * @throws {Error} When the emulator fails.
 *
 * @example
 * ```ts
 * import { haveStrace, traceFlushes } from "./durability.ts";
 * import { equal } from "node:assert/strict";
 * if (await haveStrace()) {
 *   const trace = await traceFlushes(1, { groups: 2 });
 *   equal(trace.violations.length, 0);
 * }
 * ```
 */
export async function traceFlushes(
  seed: number,
  options: { groups?: number; plant?: DurabilityPlant; dir?: string } = {},
): Promise<FlushTrace> {
  const image = await zeroedImage(options.dir);
  const log = await Deno.makeTempFile({ prefix: "dmaworks-durability-", suffix: ".strace" });
  try {
    const groups = options.groups ?? 8;
    const guest = guestSpec(seed, { ...options, groups, end: "exit" });
    const { code, stdout, stderr } = await new Deno.Command("strace", {
      args: [
        "-f",
        "-qq",
        "-y",
        "-s",
        "64",
        "-o",
        log,
        "-e",
        "trace=write,writev,pwrite64,pwritev,pwritev2,fdatasync,fsync",
        "--",
        Deno.execPath(),
        ...emulatorArgs(image, guest),
      ],
      stdin: "null",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    if (code !== 0) {
      const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
      throw new Error(`The emulator under strace failed (code ${code}): ${text.slice(-2000)}`);
    }
    const trace = checkFlushTrace(await Deno.readTextFile(log), await Deno.realPath(image));
    if (trace.acknowledged !== groups) {
      throw new Error(`The trace shows ${trace.acknowledged} acknowledgements, not ${groups}`);
    }
    return trace;
  } finally {
    await Deno.remove(image).catch(() => {});
    await Deno.remove(log).catch(() => {});
  }
}

const HELP = `Usage: deno task durability [options]

Kills the emulator (its whole process) with SIGKILL at random points while a
guest writes and flushes sequence-numbered sectors on a raw image through the
PIIX3 IDE controller, then proves that every write acknowledged by FLUSH
CACHE is on the image.

  --rounds N        rounds (default 20)
  --seed S          seed of the rounds' schedules and kill points (default: the clock)
  --max-kill-ms MS  latest time-based kill after the guest is ready (default 1000)
  --dir DIR         where images go (default: the temporary directory)
  --plant BUG       plant a bug in the guest: ${DURABILITY_PLANTS.join(", ")}
  --trace           also check under strace that each acknowledged flush
                    reached fdatasync (needs strace)
  -h, --help        this text
`;

function describeKill(k: KillPoint): string {
  switch (k.trigger) {
    case "time":
      return `${k.delayMs} ms after ready`;
    case "write":
      return `at write ${k.index} of group ${k.group} +${k.delayMs} ms`;
    case "flush":
      return `at flush of group ${k.group} +${k.delayMs} ms`;
    case "idle":
      return `when idle +${k.delayMs} ms`;
  }
}

/**
 * The command line.
 *
 * @param args The arguments.
 * @returns The exit code: 0 when every round passed, 1 when one failed, 2 for a bad command line.
 */
async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        rounds: { type: "string" },
        seed: { type: "string" },
        "max-kill-ms": { type: "string" },
        dir: { type: "string" },
        plant: { type: "string" },
        trace: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`durability: ${(error as Error).message}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const integer = (name: string, text: string | undefined, fallback: number, min: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min || n > 0xffff_ffff) {
      throw new Error(`Invalid --${name} ${text}: expected an integer from ${min}`);
    }
    return n;
  };
  let rounds, seed, maxKillMs;
  try {
    rounds = integer("rounds", values.rounds, 20, 1);
    seed = integer("seed", values.seed, Date.now() >>> 0, 0);
    maxKillMs = integer("max-kill-ms", values["max-kill-ms"], 1000, 0);
    if (
      values.plant !== undefined && !DURABILITY_PLANTS.includes(values.plant as DurabilityPlant)
    ) {
      throw new Error(
        `Invalid --plant ${values.plant}: expected one of ${DURABILITY_PLANTS.join(", ")}`,
      );
    }
  } catch (error) {
    console.error(`durability: ${(error as Error).message}`);
    return 2;
  }
  const plant = (values.plant ?? "none") as DurabilityPlant;
  let dir = values.dir;
  if (dir !== undefined && !dir.startsWith("/")) {
    // deno task runs in the repository; a relative --dir means where the task was started.
    dir = `${Deno.env.get("INIT_CWD") ?? Deno.cwd()}/${dir}`;
  }
  const options = { plant, ...(dir !== undefined ? { dir } : {}) };
  console.log(
    `durability: ${rounds} rounds, seed ${seed}${plant !== "none" ? `, planted bug ${plant}` : ""}`,
  );
  let failedTrace = false;
  if (values.trace) {
    if (!(await haveStrace())) {
      console.error("durability: --trace needs strace");
      return 2;
    }
    const trace = await traceFlushes(seed, options);
    failedTrace = trace.violations.length > 0;
    console.log(
      `trace: ${trace.acknowledged} acknowledged flushes, ${trace.imageWrites} image writes, ${trace.syncs} fdatasyncs, ${
        failedTrace
          ? `FAIL: ${trace.violations.length} acknowledged before their writes were synced (first: group ${
            trace.violations[0]!.group
          })`
          : "every acknowledgement after an fdatasync of every earlier write"
      }`,
    );
  }
  const result = await runDurability(rounds, {
    ...options,
    seed,
    maxKillMs,
    log: (r, i) => {
      const c = r.check;
      console.log(
        `round ${i + 1}: seed ${r.seed}, killed ${
          describeKill(r.kill)
        }: ${r.phase} (${r.lastLine}), ${r.acknowledged} acknowledged; sectors ${c.good} as promised, ${c.newer} newer, ${c.torn} torn, ${c.lost.length} lost, ${c.stray.length} stray${
          roundFailed(r) ? "  FAIL" : ""
        }${r.error !== undefined ? `\n  ${r.error}` : ""}`,
      );
    },
  });
  const phases = new Map<KillPhase, number>();
  for (const r of result.rounds) phases.set(r.phase, (phases.get(r.phase) ?? 0) + 1);
  const acked = result.rounds.reduce((n, r) => n + r.acknowledged, 0);
  const torn = result.rounds.reduce((n, r) => n + r.check.torn, 0);
  console.log(
    `durability: ${rounds} rounds (seed ${seed}), killed during ${
      [...phases].map(([p, n]) => `${p} ${n}`).join(", ")
    }; ${acked} acknowledged flushes checked, ${torn} torn sectors in unacknowledged writes; ${result.failed.length} failed`,
  );
  for (const f of result.failed) {
    console.log(
      `  seed ${f.seed}, killed ${describeKill(f.kill)}: ${f.error ?? ""}${
        f.check.lost.length ? ` lost ${JSON.stringify(f.check.lost.slice(0, 5))}` : ""
      }${f.check.stray.length ? ` stray sectors ${f.check.stray.slice(0, 5).join(", ")}` : ""}`,
    );
  }
  return result.failed.length === 0 && !failedTrace ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
