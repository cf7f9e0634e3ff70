/**
 * The concurrency stress runner: a machine with N device workers (edu, the
 * PIIX3 IDE controller with two disks on image files, e1000 NICs in
 * loopback) and M guest agents that drive them through the AMD-Vi IOMMU
 * with seeded random operations, while the main isolate checks the DMA
 * trace against the agents' page events, injects the worker faults the
 * agents ask for, and finally checks the disk images.
 *
 * Reproducing: the seed fixes every agent's sequence of operations (and
 * the machine: devices, assignment); thread scheduling does not repeat, so a
 * replay runs the same sequences and checks again, and a violation that
 * needs a particular interleaving may take a few attempts (`attempts`).
 *
 * @module
 */

import { type DeviceConfig, type DriveConfig, Machine } from "../machine/machine.ts";
import type {
  StressAgentPlan,
  StressAgentResult,
  StressDevicePlan,
  StressFaultRequest,
  StressSetupPlan,
  StressSetupResult,
  StressViolationKind,
} from "./agent_plan.ts";
import { FAULT_REQUEST_PREFIX } from "./agent_plan.ts";
import { OP_KINDS, STRESS_DISK_SECTORS, type StressDeviceKind, type StressOpKind } from "./ops.ts";
import { PageEventReader } from "./page_events.ts";
import { checksum } from "./stress_devices.ts";
import {
  AgentCtl,
  agentSlice,
  agentWord,
  CHECK_NAMES,
  type CheckName,
  controlWords,
  Ctl,
  LATENCY_BUCKETS,
  MAX_AGENT_DEVICES,
  STRESS_RAM,
} from "./stress_layout.ts";
import { TraceChecker } from "./trace_checker.ts";

const AGENT_PROGRAM = new URL("./stress_agent.ts", import.meta.url);
const SECTOR = 512;
const PUMP_MS = 20;
/** Runs cut after the violating operation that shrinking tries. */
const SHRINK_TRIES = 3;
/** Violations a result keeps (a broken invariant can produce thousands of trace violations). */
export const MAX_VIOLATIONS = 50;
const SAMPLE_MS = 1000;
/** InvTimeOut codes: 10 s normally, 1 s when faults are injected (so timeouts happen). */
const INV_TIMEOUT = { normal: 5, faults: 4 } as const;
const INV_TIMEOUT_MS: Record<number, number> = { 4: 1000, 5: 10_000 };

/** A deliberate bug the checkers must catch. */
export type StressInjectedBug = "skip-ack";

/** Options of {@linkcode runStress}. */
export interface StressOptions {
  /** Seed (default: from the clock). */
  seed?: number;
  /** How long to run (ms, default 10 000; 0: until every agent ran `ops`). */
  durationMs?: number;
  /** Operations per agent (default 0: until the duration ends). */
  ops?: number;
  /** Device workers (1 to 16, default 6). */
  devices?: number;
  /** Guest agents (1 to 15 and at most `devices`, default 2). */
  agents?: number;
  /** Stall, crash and kill device workers (default false). */
  faults?: boolean;
  /** Build the machine with a deliberate bug. */
  injectBug?: StressInjectedBug;
  /** Stop at the first violation (default true). */
  stopOnViolation?: boolean;
  /** Runs until one shows a violation (default 1; replays use more). */
  attempts?: number;
  /** After a violation, re-run with fewer operations to shorten its history (default true). */
  shrink?: boolean;
  /** Called with progress about every `progressIntervalMs`. */
  onProgress?: (progress: StressProgress) => void;
  /** Progress interval (ms, default 250). */
  progressIntervalMs?: number;
}

/** Progress of a run. */
export interface StressProgress {
  /** Which run (attempts, shrinking). */
  readonly run: string;
  /** Milliseconds since the run started. */
  readonly elapsedMs: number;
  /** The run's duration (0: bounded by operations). */
  readonly durationMs: number;
  /** Operations completed. */
  readonly ops: number;
  /** Operations per second over the last interval. */
  readonly opsPerSecond: number;
  /** Violations so far. */
  readonly violations: number;
  /** Devices still alive. */
  readonly devicesAlive: number;
  /** Devices. */
  readonly devices: number;
}

/** A violation, with the shortest history the runner has. */
export interface StressViolation {
  /** Which invariant. */
  readonly kind: StressViolationKind;
  /** What happened. */
  readonly message: string;
  /** Who found it: a guest agent, the trace checker, or the runner. */
  readonly source: "agent" | "trace" | "runner";
  /** The agent (agent violations, and the owner of the device). */
  readonly agent?: number;
  /** The device. */
  readonly device?: string;
  /** The agent's operation number. */
  readonly op?: number;
  /** The physical page. */
  readonly page?: number;
  /** The agent's recent operations and page events, oldest first. */
  readonly history: readonly string[];
  /** The device's most recent DMA trace records, oldest first. */
  readonly deviceTrace: readonly string[];
}

/** A device of the run. */
export interface StressDeviceSummary {
  /** Device id. */
  readonly id: string;
  /** Kind. */
  readonly kind: StressDeviceKind;
  /** PCI address. */
  readonly address: string;
  /** The agent that drives it. */
  readonly agent: number;
  /** Operations on it. */
  readonly ops: number;
  /** Why it failed, if it did. */
  readonly failure?: string;
}

/** The invalidation latency histogram (COMPLETION_WAIT waits of every agent). */
export interface StressLatency {
  /** Bucket k counts waits in [2^k, 2^(k+1)) µs. */
  readonly counts: readonly number[];
  /** Waits. */
  readonly total: number;
  /** Median, µs (lower bound of its bucket). */
  readonly p50Us: number;
  /** 99th percentile, µs (lower bound of its bucket). */
  readonly p99Us: number;
  /** Upper bound of the slowest bucket used, µs. */
  readonly maxUs: number;
}

/** What a run found. */
export interface StressResult {
  /** The seed. */
  readonly seed: number;
  /** Whether no violation was found. */
  readonly ok: boolean;
  /** The options that matter for replay. */
  readonly options: {
    readonly durationMs: number;
    readonly ops: number;
    readonly devices: number;
    readonly agents: number;
    readonly faults: boolean;
    readonly injectBug?: StressInjectedBug;
  };
  /** When the (last) run started (ISO 8601). */
  readonly startedAt: string;
  /** Its length (ms). */
  readonly elapsedMs: number;
  /** Which attempt found the violation, or the number of attempts made. */
  readonly attempts: number;
  /** Operations carried out. */
  readonly ops: number;
  /** Operations drawn but skipped because their device had died. */
  readonly skipped: number;
  /** Operations by kind (skipped ones included). */
  readonly opsByKind: Readonly<Record<StressOpKind, number>>;
  /** Operations carried out by each agent. */
  readonly opsByAgent: readonly number[];
  /** Digests of every agent's operation sequence (equal seeds and counts give equal digests). */
  readonly digests: readonly number[];
  /** Devices. */
  readonly devices: readonly StressDeviceSummary[];
  /** Operations completed per second, sampled every second. */
  readonly throughput: ReadonlyArray<{ readonly t: number; readonly ops: number }>;
  /** Invalidation latency. */
  readonly latency: StressLatency;
  /** Checks performed, by name. */
  readonly checks: Readonly<Record<CheckName | "trace", number>>;
  /** The DMA trace. */
  readonly trace: {
    readonly records: number;
    readonly checked: number;
    readonly dropped: number;
    readonly pageEvents: number;
  };
  /** IOMMU events the agents drained. */
  readonly events: {
    readonly pageFaults: number;
    readonly timeouts: number;
    readonly overflows: number;
    readonly other: number;
  };
  /** Faults injected. */
  readonly faults: ReadonlyArray<
    { readonly atMs: number; readonly device: string; readonly kind: string; readonly ms?: number }
  >;
  /** Violations (empty when all is well). */
  readonly violations: readonly StressViolation[];
  /** A shorter run that shows the violation again, when shrinking found one. */
  readonly shrunk?: {
    /** Operations per agent of the shorter run. */
    readonly ops: number;
    /** Whether it showed a violation. */
    readonly reproduced: boolean;
    /** Runs made. */
    readonly tries: number;
    /** What it found (with shorter histories). */
    readonly violations: readonly StressViolation[];
  };
  /** Violations found in all (only the first {@linkcode MAX_VIOLATIONS} are kept). */
  readonly violationCount: number;
}

interface Normalized {
  seed: number;
  durationMs: number;
  ops: number;
  devices: number;
  agents: number;
  faults: boolean;
  injectBug: StressInjectedBug | undefined;
  stopOnViolation: boolean;
}

/**
 * The device kinds of a run with `n` devices: one IDE controller at most
 * (its ports are fixed), then edu and e1000 alternating.
 *
 * @param n Devices.
 * @returns Their kinds.
 *
 * @example
 * ```ts
 * import { stressDeviceKinds } from "./runner.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(stressDeviceKinds(4), ["edu", "ide", "e1000", "edu"]);
 * ```
 */
export function stressDeviceKinds(n: number): StressDeviceKind[] {
  const kinds: StressDeviceKind[] = [];
  for (let i = 0; i < n; i++) {
    kinds.push(i === 0 ? "edu" : i === 1 ? "ide" : i % 2 === 0 ? "e1000" : "edu");
  }
  return kinds;
}

/**
 * Which agent drives each device: edu devices first, round robin, so every
 * agent gets an edu (which the probes need) while there are enough, then
 * the rest round robin.
 *
 * @param kinds Device kinds.
 * @param agents Agents.
 * @returns The agent of each device.
 *
 * @example
 * ```ts
 * import { assignDevices } from "./runner.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(assignDevices(["edu", "ide", "e1000", "edu"], 2), [0, 0, 1, 1]);
 * ```
 */
export function assignDevices(kinds: readonly StressDeviceKind[], agents: number): number[] {
  const owner = new Array<number>(kinds.length).fill(0);
  let next = 0;
  kinds.forEach((k, i) => {
    if (k === "edu") owner[i] = next++ % agents;
  });
  kinds.forEach((k, i) => {
    if (k !== "edu") owner[i] = next++ % agents;
  });
  return owner;
}

function normalize(options: StressOptions): Normalized {
  const devices = options.devices ?? 6;
  const agents = options.agents ?? 2;
  if (!(Number.isInteger(devices) && devices >= 1 && devices <= 16)) {
    throw new RangeError(`Invalid device count ${devices}: 1 to 16`);
  }
  if (
    !(Number.isInteger(agents) && agents >= 1 && agents <= Math.min(STRESS_RAM.maxAgents, devices))
  ) {
    throw new RangeError(
      `Invalid agent count ${agents}: 1 to ${
        Math.min(STRESS_RAM.maxAgents, devices)
      } (at most one per device)`,
    );
  }
  const ops = options.ops ?? 0;
  if (!(Number.isInteger(ops) && ops >= 0)) throw new RangeError(`Invalid operation count ${ops}`);
  const durationMs = options.durationMs ?? (ops > 0 ? 0 : 10_000);
  if (!(Number.isFinite(durationMs) && durationMs >= 0)) {
    throw new RangeError(`Invalid duration ${durationMs} ms`);
  }
  if (durationMs === 0 && ops === 0) {
    throw new RangeError("Give a duration, an operation count or both");
  }
  const seed = options.seed ?? (Date.now() % 1_000_000_000);
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffff_ffff)) {
    throw new RangeError(`Invalid seed ${seed}: an integer from 0 to 4294967295`);
  }
  return {
    seed,
    durationMs,
    ops,
    devices,
    agents,
    faults: options.faults ?? false,
    injectBug: options.injectBug,
    stopOnViolation: options.stopOnViolation ?? true,
  };
}

/**
 * The part of an agent's history that concerns `page`: from the operation
 * that last invalidated the page (or its 2 MiB page), or else last mentioned
 * it, to the end; a long stretch keeps its first 16 and last 40 lines.
 * Without a mention, the last 24 lines.
 *
 * @param lines The agent's history.
 * @param page A physical address.
 * @returns Lines, oldest first.
 *
 * @example
 * ```ts
 * import { relevantHistory } from "./runner.ts";
 * import { deepEqual } from "node:assert/strict";
 * const lines = ["#1 flush dev0 all", "#2 remap-live dev0", "  invalid 0x5000 @7", "#3 flush dev0 cw"];
 * deepEqual(relevantHistory(lines, 0x5000), lines.slice(1));
 * ```
 */
export function relevantHistory(lines: readonly string[], page: number | undefined): string[] {
  if (page === undefined) return lines.slice(-24);
  const names = [page - (page % 0x1000), page - (page % 0x20_0000)].map((p) =>
    `0x${p.toString(16)} `
  );
  const mentions = (l: string) => names.some((name) => `${l} `.includes(name));
  let at = lines.findLastIndex((l) => l.includes("invalid ") && mentions(l));
  if (at < 0) at = lines.findLastIndex(mentions);
  if (at < 0) return lines.slice(-24);
  let start = at;
  while (start > 0 && !lines[start]!.startsWith("#")) start--;
  const span = lines.slice(start);
  return span.length <= 56
    ? span
    : [...span.slice(0, 16), `  … ${span.length - 56} lines …`, ...span.slice(-40)];
}

function latencyOf(counts: number[]): StressLatency {
  const total = counts.reduce((s, n) => s + n, 0);
  const quantile = (q: number) => {
    let seen = 0;
    for (let k = 0; k < counts.length; k++) {
      seen += counts[k]!;
      if (seen >= q * total && total > 0) return 2 ** k;
    }
    return 0;
  };
  let top = -1;
  counts.forEach((n, k) => {
    if (n > 0) top = k;
  });
  return {
    counts,
    total,
    p50Us: quantile(0.5),
    p99Us: quantile(0.99),
    maxUs: top < 0 ? 0 : 2 ** (top + 1),
  };
}

/**
 * Runs the stress test: one run, and on a violation shorter runs to shrink
 * its history, or, with `attempts`, runs until one shows a violation.
 *
 * @param options Seed, size, duration and faults.
 * @returns What it found.
 *
 * @example
 * ```ts
 * import { runStress } from "./runner.ts";
 * import { equal } from "node:assert/strict";
 * const result = await runStress({ seed: 1, ops: 40, devices: 2, agents: 1 });
 * equal(result.ops, 40);
 * equal(result.violations.length, 0);
 * ```
 */
export async function runStress(options: StressOptions = {}): Promise<StressResult> {
  const n = normalize(options);
  const attempts = options.attempts ?? 1;
  let result: StressResult | undefined;
  let attempt = 0;
  while (attempt < attempts) {
    attempt++;
    const label = attempts > 1 ? `attempt ${attempt}/${attempts}` : "run";
    result = await runOnce(n, { ...options, label });
    if (!result.ok) break;
  }
  result = { ...result!, attempts: attempt };
  if (result.ok || !(options.shrink ?? true)) return result;
  // Shrink: the same sequences cut after the violating operation.
  const first = result.violations[0]!;
  const cut = first.op !== undefined
    ? first.op + 1
    : Math.max(1, Math.min(...result.opsByAgent.filter((x) => x > 0)));
  if (n.ops !== 0 && cut >= n.ops) return result;
  for (let tries = 1; tries <= SHRINK_TRIES; tries++) {
    const shorter = await runOnce({ ...n, ops: cut, durationMs: 0 }, {
      ...options,
      label: `shrinking to ${cut} operations (try ${tries})`,
    });
    if (!shorter.ok) {
      return {
        ...result,
        shrunk: { ops: cut, reproduced: true, tries, violations: shorter.violations },
      };
    }
    if (tries === SHRINK_TRIES) {
      return { ...result, shrunk: { ops: cut, reproduced: false, tries, violations: [] } };
    }
  }
  return result;
}

async function makeDisk(dir: string, name: string): Promise<string> {
  const path = `${dir}/${name}.img`;
  const file = await Deno.open(path, { create: true, write: true, truncate: true });
  try {
    await file.truncate(STRESS_DISK_SECTORS * SECTOR);
  } finally {
    file.close();
  }
  return path;
}

async function runOnce(
  n: Normalized,
  options: StressOptions & { label: string },
): Promise<StressResult> {
  const kinds = stressDeviceKinds(n.devices);
  const owners = assignDevices(kinds, n.agents);
  const dir = await Deno.makeTempDir({ prefix: "dmaworks-stress-" });
  const devices: DeviceConfig[] = [{ type: "amd-iommu" }];
  const drives: DriveConfig[] = [];
  const ids: string[] = [];
  let edu = 0;
  let nic = 0;
  for (const kind of kinds) {
    if (kind === "edu") {
      const id = `edu${edu++}`;
      ids.push(id);
      devices.push({ type: "edu", id, properties: { dma_mask: "0xffffffffffff" } });
    } else if (kind === "e1000") {
      const id = `nic${nic++}`;
      ids.push(id);
      devices.push({ type: "e1000", id });
    } else {
      ids.push("ide0");
      devices.push({ type: "piix3-ide", id: "ide0" });
      for (const channel of [0, 1]) {
        const id = `disk${channel}`;
        drives.push({ id, file: await makeDisk(dir, id) });
        devices.push({
          type: "ide-hd",
          properties: { drive: id, bus: `ide0.${channel}`, unit: "0" },
        });
      }
    }
  }
  const startedAt = new Date();
  const t0 = performance.now();
  const violations: StressViolation[] = [];
  let violationCount = 0;
  const keep = (v: StressViolation) => {
    violationCount++;
    if (violations.length < MAX_VIOLATIONS) violations.push(v);
  };
  const faults: Array<{ atMs: number; device: string; kind: string; ms?: number }> = [];
  const faulted = new Set<string>();
  const failures = new Map<string, string>();
  const throughput: Array<{ t: number; ops: number }> = [];
  const agentResults: StressAgentResult[] = [];
  let opsByKind = Object.fromEntries(OP_KINDS.map((k) => [k, 0])) as Record<StressOpKind, number>;
  let opsByAgent: number[] = [];
  let skipped = 0;
  const deviceOps = new Array<number>(kinds.length).fill(0);
  const latency = new Array<number>(LATENCY_BUCKETS).fill(0);
  const checks = Object.fromEntries([...CHECK_NAMES, "trace"].map((k) => [k, 0])) as Record<
    CheckName | "trace",
    number
  >;
  let events = { pageFaults: 0, timeouts: 0, overflows: 0, other: 0 };
  let traceStats = { records: 0, checked: 0, dropped: 0, pageEvents: 0 };
  const machine = await Machine.create({
    ramSize: STRESS_RAM.size,
    devices,
    drives,
    dmaTrace: { capacity: 1 << 18, intervalMs: 5 },
    faultInjection: { skipInvalidationAck: n.injectBug === "skip-ack" },
    accessTimeoutMs: 5000,
    invalidationWatchdogMs: 30_000,
  });
  const words = controlWords(machine.memory.buffer);
  const checker = new TraceChecker({
    inRam: (address, length) => machine.memory.isRam(address, length),
    owners: new Map(ids.map((id, i) => {
      const slice = agentSlice(owners[i]!);
      return [id, { base: slice.base, end: slice.end }];
    })),
  });
  const stop = () => Atomics.store(words, Ctl.STOP, 1);
  const violation = (
    v: Omit<StressViolation, "history" | "deviceTrace"> & { history?: readonly string[] },
  ) => {
    keep({
      ...v,
      history: v.history ?? [],
      deviceTrace: v.device ? checker.recent(v.device) : [],
    });
    if (n.stopOnViolation) stop();
  };
  const fromTrace = (found: ReturnType<TraceChecker["advance"]>) => {
    for (const v of found) {
      const agent = owners[ids.indexOf(v.device)];
      violation({
        kind: v.kind,
        message: `${v.message} [${v.record}]`,
        source: "trace",
        device: v.device,
        page: v.page,
        // The operation the owning agent is running (its count so far).
        ...(agent !== undefined
          ? { agent, op: Atomics.load(words, agentWord(agent, AgentCtl.OPS)) }
          : {}),
      });
    }
  };
  const stopListening = machine.onEvent((event) => {
    if (event.type === "device-failed") {
      failures.set(event.id, event.reason);
      if (!faulted.has(event.id)) {
        violation({
          kind: "failure",
          message: `${event.id} failed with no fault injected: ${event.reason}`,
          source: "runner",
          device: event.id,
        });
      }
    } else if (event.type === "log" && event.message.startsWith(FAULT_REQUEST_PREFIX)) {
      const request = JSON.parse(
        event.message.slice(FAULT_REQUEST_PREFIX.length),
      ) as StressFaultRequest;
      faulted.add(request.device);
      faults.push({
        atMs: Math.round(performance.now() - t0),
        device: request.device,
        kind: request.kind,
        ...(request.kind === "stall" ? { ms: request.ms } : {}),
      });
      try {
        if (request.kind === "stall") {
          machine.injectFault({ kind: "stall-device", device: request.device, ms: request.ms });
        } else if (request.kind === "crash") {
          machine.injectFault({ kind: "crash-device", device: request.device });
        } else machine.injectFault({ kind: "kill-device", device: request.device });
      } finally {
        Atomics.add(words, agentWord(request.agent, AgentCtl.FAULT_ACK), 1);
        Atomics.notify(words, agentWord(request.agent, AgentCtl.FAULT_ACK));
      }
    }
  });
  machine.onDmaTrace((device, records) => fromTrace(checker.addRecords(device, records)));
  const timers: Array<ReturnType<typeof setInterval>> = [];
  const addresses = new Map<string, string>();
  let runStart = performance.now();
  try {
    const invTimeout = n.faults ? INV_TIMEOUT.faults : INV_TIMEOUT.normal;
    const setupPlan: StressSetupPlan = { role: "setup", invTimeout };
    const setup = await machine.runGuest(AGENT_PROGRAM, {
      options: { plan: JSON.stringify(setupPlan) },
      timeoutMs: 60_000,
    }) as StressSetupResult;
    const info = machine.devices();
    for (const d of info) addresses.set(d.id, d.address);
    const plans: StressAgentPlan[] = Array.from({ length: n.agents }, (_, agent) => ({
      role: "agent",
      agent,
      seed: n.seed,
      ops: n.ops,
      faults: n.faults,
      invTimeoutMs: INV_TIMEOUT_MS[invTimeout]!,
      devices: [],
      stopOnViolation: n.stopOnViolation,
    }));
    const agentDevices: StressDevicePlan[][] = plans.map(() => []);
    ids.forEach((id, i) => {
      const d = info.find((x) => x.id === id)!;
      const slot = parseInt(d.address.slice(3, 5), 16);
      const fn = setup.functions.find((f) => f.slot === slot)!;
      agentDevices[owners[i]!]!.push({
        id,
        kind: kinds[i]!,
        rid: d.requesterId,
        mmio: fn.bars[0] ?? 0,
        bm: fn.bars[4] ?? 0,
        domains: [2 * i + 1, 2 * i + 2],
      });
    });
    const reader = new PageEventReader(machine.memory.buffer, n.agents);
    const pump = () => {
      const watermark = machine.traceMark();
      const quiet = reader.quiet();
      checker.addEvents(reader.drain());
      if (quiet) fromTrace(checker.advance(watermark));
    };
    runStart = performance.now();
    const totalOps = () => {
      let sum = 0;
      for (let a = 0; a < n.agents; a++) {
        sum += Atomics.load(words, agentWord(a, AgentCtl.OPS)) -
          Atomics.load(words, agentWord(a, AgentCtl.SKIPPED));
      }
      return sum;
    };
    let lastOps = 0;
    let lastSample = runStart;
    timers.push(setInterval(() => {
      pump();
      if (n.durationMs > 0 && performance.now() - runStart >= n.durationMs) stop();
    }, PUMP_MS));
    timers.push(setInterval(() => {
      const now = performance.now();
      const ops = totalOps();
      throughput.push({
        t: Math.round((now - runStart) / 100) / 10,
        ops: Math.round(((ops - lastOps) * 1000) / (now - lastSample)),
      });
      lastOps = ops;
      lastSample = now;
    }, SAMPLE_MS));
    if (options.onProgress) {
      let progressOps = 0;
      let progressAt = runStart;
      const report = options.onProgress;
      timers.push(setInterval(() => {
        const now = performance.now();
        const ops = totalOps();
        report({
          run: options.label,
          elapsedMs: now - runStart,
          durationMs: n.durationMs,
          ops,
          opsPerSecond: ((ops - progressOps) * 1000) / Math.max(1, now - progressAt),
          violations: violationCount + Atomics.load(words, Ctl.VIOLATIONS),
          devicesAlive: ids.length - failures.size,
          devices: ids.length,
        });
        progressOps = ops;
        progressAt = now;
      }, options.progressIntervalMs ?? 250));
    }
    const settled = await Promise.allSettled(
      plans.map((plan, a) =>
        machine.runGuest(AGENT_PROGRAM, {
          options: { plan: JSON.stringify({ ...plan, devices: agentDevices[a] }) },
          timeoutMs: n.durationMs + 600_000,
        }) as Promise<StressAgentResult>
      ),
    );
    for (const t of timers) clearInterval(t);
    timers.length = 0;
    settled.forEach((s, a) => {
      if (s.status === "fulfilled") agentResults.push(s.value);
      else {
        violation({
          kind: "failure",
          message: `agent ${a} failed: ${(s.reason as Error).message}`,
          source: "runner",
          agent: a,
        });
      }
    });
    // Everything the devices did is in the trace rings, and every page event in the agents' rings.
    machine.drainDmaTrace();
    pump();
    checker.addEvents(reader.drain());
    fromTrace(checker.finish());
    // Counters.
    opsByAgent = plans.map((_, a) =>
      Atomics.load(words, agentWord(a, AgentCtl.OPS)) -
      Atomics.load(words, agentWord(a, AgentCtl.SKIPPED))
    );
    skipped = plans.reduce(
      (sum, _, a) => sum + Atomics.load(words, agentWord(a, AgentCtl.SKIPPED)),
      0,
    );
    opsByKind = Object.fromEntries(OP_KINDS.map((k, i) => {
      let sum = 0;
      for (let a = 0; a < n.agents; a++) {
        sum += Atomics.load(words, agentWord(a, AgentCtl.KIND_OPS + i));
      }
      return [k, sum];
    })) as Record<StressOpKind, number>;
    for (let a = 0; a < n.agents; a++) {
      agentDevices[a]!.forEach((d, k) => {
        if (k < MAX_AGENT_DEVICES) {
          deviceOps[ids.indexOf(d.id)] = Atomics.load(words, agentWord(a, AgentCtl.DEVICE_OPS + k));
        }
      });
      for (let k = 0; k < LATENCY_BUCKETS; k++) {
        latency[k]! += Atomics.load(words, agentWord(a, AgentCtl.LATENCY + k));
      }
      CHECK_NAMES.forEach((name, k) => {
        checks[name] += Atomics.load(words, agentWord(a, AgentCtl.CHECKS + k));
      });
    }
    let pageFaults = 0;
    let timeouts = 0;
    for (let rid = 0; rid < 256; rid++) {
      pageFaults += Atomics.load(words, Ctl.PAGE_FAULTS + rid);
      timeouts += Atomics.load(words, Ctl.TIMEOUTS + rid);
    }
    events = {
      pageFaults,
      timeouts,
      overflows: Atomics.load(words, Ctl.OVERFLOWS),
      other: Atomics.load(words, Ctl.OTHER_EVENTS),
    };
    checks.trace = checker.stats.checked;
    traceStats = {
      records: checker.stats.records,
      checked: checker.stats.checked,
      dropped: machine.dmaTraceDropped,
      pageEvents: checker.stats.events,
    };
  } finally {
    for (const t of timers) clearInterval(t);
    stopListening();
    await machine.stop();
  }
  const elapsedMs = performance.now() - runStart;
  // The runner's violations get the history of the agent that drives the device.
  for (const [i, v] of violations.entries()) {
    const r = agentResults.find((x) => x.agent === v.agent);
    if (r && v.history.length === 0) {
      violations[i] = { ...v, history: relevantHistory(r.history, v.page) };
    }
  }
  for (const r of agentResults) {
    for (const v of r.violations) {
      const agentOfDevice = v.device ? owners[ids.indexOf(v.device)] : undefined;
      keep({
        kind: v.kind,
        message: v.message,
        source: "agent",
        agent: agentOfDevice ?? r.agent,
        op: v.op,
        history: v.history,
        deviceTrace: [],
        ...(v.device ? { device: v.device } : {}),
        ...(v.page !== undefined ? { page: v.page } : {}),
      });
    }
  }
  // Invariant 4: what the agents wrote and flushed is on the images.
  for (const r of agentResults) {
    for (const d of r.durable) {
      if (d.sectors.length === 0) continue;
      checks.durability += d.sectors.length;
      const image = await Deno.readFile(drives[d.channel]!.file!);
      for (const [lba, sum] of d.sectors) {
        const got = checksum(image.subarray(lba * SECTOR, (lba + 1) * SECTOR));
        if (got !== sum) {
          keep({
            kind: "durability",
            message:
              `sector ${lba} of ${d.device} channel ${d.channel} was written and flushed, but the image holds other data`,
            source: "runner",
            agent: r.agent,
            device: d.device,
            history: r.history.slice(-16),
            deviceTrace: [],
          });
          break;
        }
      }
    }
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  // Agent violations first found carry the best history; keep the order found.
  return {
    seed: n.seed,
    ok: violationCount === 0,
    violationCount,
    options: {
      durationMs: n.durationMs,
      ops: n.ops,
      devices: n.devices,
      agents: n.agents,
      faults: n.faults,
      ...(n.injectBug ? { injectBug: n.injectBug } : {}),
    },
    startedAt: startedAt.toISOString(),
    elapsedMs: Math.round(elapsedMs),
    attempts: 1,
    ops: opsByAgent.reduce((s, x) => s + x, 0),
    skipped,
    opsByKind,
    opsByAgent,
    digests: agentResults.map((r) => r.digest),
    devices: ids.map((id, i) => ({
      id,
      kind: kinds[i]!,
      address: addresses.get(id) ?? "",
      agent: owners[i]!,
      ops: deviceOps[i]!,
      ...(failures.has(id) ? { failure: failures.get(id)! } : {}),
    })),
    throughput,
    latency: latencyOf(latency),
    checks,
    trace: traceStats,
    events,
    faults,
    violations,
  };
}
