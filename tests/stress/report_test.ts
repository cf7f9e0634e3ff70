// The HTML report: self-contained (no scripts, no external resources), its
// three charts present and sized by the data, text escaped; and the
// progress display on a terminal and off one.
import { equal, match, ok } from "node:assert/strict";
import { formatProgress, ProgressPrinter } from "../../src/stress/progress.ts";
import { renderStressReport, replayCommand } from "../../src/stress/report.ts";
import type { StressResult } from "../../src/stress/runner.ts";
import { findChromium, pngStats, renderInChromium } from "./chromium.ts";

function sampleResult(over: Partial<StressResult> = {}): StressResult {
  const latency = new Array(32).fill(0);
  latency[9] = 40;
  latency[10] = 120;
  latency[11] = 70;
  latency[15] = 2;
  return {
    seed: 42,
    ok: false,
    options: {
      durationMs: 0,
      ops: 120,
      devices: 3,
      agents: 2,
      faults: true,
      injectBug: "skip-ack",
    },
    startedAt: "2026-01-01T00:00:00.000Z",
    elapsedMs: 4000,
    attempts: 1,
    ops: 480,
    skipped: 3,
    opsByKind: {
      "edu-copy": 100,
      "ide-rw": 50,
      "ide-flush": 10,
      "nic-loop": 60,
      "remap-live": 90,
      "ide-remap-live": 20,
      "map-unmap": 60,
      "perm-probe": 20,
      "oob-probe": 10,
      "dte": 20,
      "flush": 40,
      "flood": 1,
      "fault": 2,
    },
    opsByAgent: [240, 240],
    digests: [1, 2],
    devices: [
      { id: "edu0", kind: "edu", address: "00:02.0", agent: 0, ops: 250 },
      { id: "ide0", kind: "ide", address: "00:03.0", agent: 1, ops: 80, failure: "killed" },
      { id: "nic0", kind: "e1000", address: "00:04.0", agent: 1, ops: 150 },
    ],
    throughput: [{ t: 1, ops: 90 }, { t: 2, ops: 130 }, { t: 3, ops: 125 }, { t: 4, ops: 135 }],
    latency: { counts: latency, total: 232, p50Us: 1024, p99Us: 2048, maxUs: 65536 },
    checks: {
      integrity: 10,
      ordering: 10,
      poison: 5,
      permission: 4,
      visibility: 4,
      "out-of-ram": 1,
      durability: 100,
      dte: 2,
      overflow: 1,
      trace: 9000,
    },
    trace: { records: 9100, checked: 9000, dropped: 0, pageEvents: 300 },
    events: { pageFaults: 30, timeouts: 1, overflows: 1, other: 0 },
    faults: [{ atMs: 1500, device: "ide0", kind: "kill" }],
    violations: [{
      kind: "use-after-invalidate",
      message: "edu0 read page 0x2412000 <after> its invalidation & more",
      source: "trace",
      agent: 0,
      op: 17,
      device: "edu0",
      page: 0x2412000,
      history: ["#16 remap-live dev0", "  invalid 0x2412000 @89"],
      deviceTrace: ["read iova 0x40000000 -> 0x2412000 +4096 ok @93..93"],
    }],
    violationCount: 3,
    shrunk: {
      ops: 18,
      reproduced: true,
      tries: 1,
      violations: [{
        kind: "use-after-invalidate",
        message: "edu0 read page 0x2412000 in the shorter run",
        source: "trace",
        agent: 0,
        op: 17,
        device: "edu0",
        page: 0x2412000,
        history: ["#17 remap-live dev0 short"],
        deviceTrace: [],
      }],
    },
    ...over,
  };
}

Deno.test("the report is one self-contained page with three charts", () => {
  const html = renderStressReport(sampleResult(), { command: "deno task stress --seed 42" });
  ok(html.startsWith("<!DOCTYPE html>"));
  ok(!/<script|<link|<img|<iframe|@import|url\(/i.test(html), "no external or active content");
  ok(!/(src|href)=/i.test(html), "no references to other resources");
  for (const id of ["throughput", "latency", "devices"]) match(html, new RegExp(`<svg id="${id}"`));
  equal((html.match(/<rect class="hbar"/g) ?? []).length, 3);
  // Latency buckets from one below the first used to one above the last.
  equal((html.match(/<rect class="bar"/g) ?? []).length, 16 - 8 + 1);
  equal((html.match(/<circle /g) ?? []).length, 4);
  ok(html.includes("&lt;after&gt; its invalidation &amp; more"), "text is escaped");
  ok(html.includes("FAIL"));
  ok(html.includes("… and 2 more."));
  ok(html.includes("Shortest history") && html.includes("#17 remap-live dev0 short"));
  ok(html.includes(replayCommand(sampleResult())));
});

Deno.test("the replay command carries the seed, the shrunk operation count and the options", () => {
  equal(
    replayCommand(sampleResult()),
    "deno task stress --replay 42 --ops 18 --devices 3 --agents 2 --faults --inject-bug skip-ack",
  );
  const clean = sampleResult({
    ok: true,
    violations: [],
    violationCount: 0,
    options: { durationMs: 60_000, ops: 0, devices: 6, agents: 2, faults: false },
  });
  const { shrunk: _, ...unshrunk } = clean;
  equal(
    replayCommand(unshrunk),
    "deno task stress --replay 42 --duration 60s --devices 6 --agents 2",
  );
  ok(renderStressReport(unshrunk).includes("No violations."));
  // A shorter run that did not show the violation again is not what to replay.
  const failed = sampleResult();
  const byTime = { ...failed, options: { ...failed.options, durationMs: 30_000, ops: 0 } };
  equal(
    replayCommand({ ...byTime, shrunk: { ...failed.shrunk!, reproduced: false } }),
    "deno task stress --replay 42 --duration 30s --devices 3 --agents 2 --faults --inject-bug skip-ack",
  );
});

const chromium = await findChromium();

Deno.test({
  name: `the report renders in headless Chromium${
    chromium ? "" : " (SKIPPED: no chromium on PATH; install Debian's chromium package)"
  }`,
  ignore: chromium === undefined,
  fn: async () => {
    const file = await Deno.makeTempFile({ suffix: ".html" });
    try {
      await Deno.writeTextFile(file, renderStressReport(sampleResult()));
      const { dom, png } = await renderInChromium(chromium!, file);
      for (const id of ["throughput", "latency", "devices"]) {
        match(dom, new RegExp(`<svg id="${id}"`));
      }
      match(dom, /<polyline class="series" points="[\d., ]+"/);
      const stats = await pngStats(png);
      equal(stats.width, 1000);
      ok(stats.ink > 0.01, `the screenshot is blank (${stats.ink})`);
    } finally {
      await Deno.remove(file);
    }
  },
});

Deno.test("progress: one line rewritten on a terminal, plain lines at an interval otherwise", () => {
  const p = {
    run: "run",
    elapsedMs: 1000,
    durationMs: 60_000,
    ops: 100,
    opsPerSecond: 99.6,
    violations: 0,
    devicesAlive: 5,
    devices: 6,
  };
  equal(
    formatProgress(p),
    "run 1.0s/60s | 100 ops (100/s) | violations 0 | devices 5/6 | 59s left",
  );
  const tty: string[] = [];
  const onTerminal = new ProgressPrinter({ tty: true, write: (t) => tty.push(t) });
  onTerminal.update(p);
  onTerminal.update({ ...p, elapsedMs: 1250 });
  onTerminal.done();
  equal(tty.length, 3);
  ok(tty[0]!.startsWith("\r\x1b[K") && !tty[0]!.includes("\n"));
  equal(tty[2], "\r\x1b[K");
  const plain: string[] = [];
  const inLog = new ProgressPrinter({
    tty: false,
    write: (t) => plain.push(t),
    plainIntervalMs: 2000,
  });
  for (let t = 0; t <= 7000; t += 250) inLog.update({ ...p, elapsedMs: t });
  equal(plain.length, 3);
  ok(plain.every((l) => l.endsWith("left\n") && !l.includes("\r")));
  inLog.update({ ...p, run: "shrinking", elapsedMs: 2100 }); // a new run starts its own clock
  equal(plain.length, 4);
});
