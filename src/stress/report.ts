/**
 * The stress runner's HTML report: one self-contained page (inline CSS and
 * SVG, no scripts, fonts or other requests) with the run's summary,
 * throughput over time, the invalidation latency histogram, operations per
 * device and per kind, the checks made, and every violation with its
 * history and the command that replays it.
 *
 * @module
 */

import type { StressResult } from "./runner.ts";

const KIND_COLOURS: Readonly<Record<string, string>> = {
  edu: "#3b7dd8",
  ide: "#d8873b",
  e1000: "#3bab6b",
};

function esc(text: string | number): string {
  return String(text).replace(
    /[&<>"']/g,
    (c) =>
      c === "&"
        ? "&amp;"
        : c === "<"
        ? "&lt;"
        : c === ">"
        ? "&gt;"
        : c === '"'
        ? "&quot;"
        : "&#39;",
  );
}

/** A round top for an axis of `value`, divisible into four round steps. */
function niceMax(value: number): number {
  if (value <= 0) return 4;
  const step = value / 4;
  const p = 10 ** Math.floor(Math.log10(step));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= step) return 4 * m * p;
  return 40 * p;
}

function formatUs(us: number): string {
  const short = (
    n: number,
  ) => (n >= 10 ? String(Math.round(n)) : n.toPrecision(2).replace(/\.0$/, ""));
  if (us >= 1_000_000) return `${short(us / 1_000_000)} s`;
  if (us >= 1000) return `${short(us / 1000)} ms`;
  return `${us} µs`;
}

const W = 720;
const H = 260;
const M = { left: 64, right: 16, top: 16, bottom: 56 };

/** The throughput line chart. */
function throughputChart(points: StressResult["throughput"]): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const tMax = Math.max(1, ...points.map((p) => p.t));
  const yMax = niceMax(Math.max(0, ...points.map((p) => p.ops)));
  const x = (t: number) => M.left + (t / tMax) * pw;
  const y = (v: number) => M.top + ph - (v / yMax) * ph;
  const grid: string[] = [];
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    grid.push(
      `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${y(v)}" y2="${y(v)}"/>` +
        `<text class="tick" x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end">${
          esc(Math.round(v))
        }</text>`,
    );
  }
  for (let k = 0; k <= 5; k++) {
    const t = (tMax * k) / 5;
    grid.push(
      `<text class="tick" x="${x(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${
        esc(t.toFixed(t < 10 ? 1 : 0))
      } s</text>`,
    );
  }
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.ops).toFixed(1)}`).join(" ");
  const dots = points.map((p) =>
    `<circle cx="${x(p.t).toFixed(1)}" cy="${y(p.ops).toFixed(1)}" r="2.5"><title>${
      esc(`${p.t} s: ${p.ops} ops/s`)
    }</title></circle>`
  ).join("");
  return `<svg id="throughput" role="img" aria-label="Throughput over time" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">
<rect class="frame" x="${M.left}" y="${M.top}" width="${pw}" height="${ph}"/>
${grid.join("\n")}
<polyline class="series" points="${line}"/>
<g class="dots">${dots}</g>
<text class="label" x="${M.left + pw / 2}" y="${H - 6}" text-anchor="middle">time</text>
<text class="label" transform="translate(14 ${
    M.top + ph / 2
  }) rotate(-90)" text-anchor="middle">operations per second</text>
</svg>`;
}

/** The latency histogram (log2 buckets of µs). */
function latencyChart(latency: StressResult["latency"]): string {
  const counts = latency.counts;
  let first = counts.findIndex((c) => c > 0);
  let last = counts.length - 1;
  while (last > 0 && counts[last] === 0) last--;
  if (first < 0) first = last = 0;
  first = Math.max(0, first - 1);
  last = Math.min(counts.length - 1, last + 1);
  const buckets = counts.slice(first, last + 1);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const yMax = niceMax(Math.max(0, ...buckets));
  const bw = pw / buckets.length;
  const bars = buckets.map((c, i) => {
    const h = (c / yMax) * ph;
    const k = first + i;
    return `<rect class="bar" x="${(M.left + i * bw + 2).toFixed(1)}" y="${
      (M.top + ph - h).toFixed(1)
    }" width="${Math.max(1, bw - 4).toFixed(1)}" height="${h.toFixed(1)}"><title>${
      esc(`${formatUs(2 ** k)} – ${formatUs(2 ** (k + 1))}: ${c}`)
    }</title></rect>` +
      `<text class="tick" transform="translate(${(M.left + i * bw + bw / 2).toFixed(1)} ${
        H - M.bottom + 12
      }) rotate(-35)" text-anchor="end">${esc(formatUs(2 ** k))}</text>`;
  }).join("\n");
  const grid: string[] = [];
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    const y = M.top + ph - (v / yMax) * ph;
    grid.push(
      `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}"/>` +
        `<text class="tick" x="${M.left - 6}" y="${y + 4}" text-anchor="end">${
          esc(Math.round(v))
        }</text>`,
    );
  }
  return `<svg id="latency" role="img" aria-label="Invalidation latency histogram" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">
<rect class="frame" x="${M.left}" y="${M.top}" width="${pw}" height="${ph}"/>
${grid.join("\n")}
${bars}
<text class="label" x="${M.left + pw / 2}" y="${
    H - 6
  }" text-anchor="middle">time from queueing to the COMPLETION_WAIT store (bucket start)</text>
<text class="label" transform="translate(14 ${
    M.top + ph / 2
  }) rotate(-90)" text-anchor="middle">invalidations</text>
</svg>`;
}

/** Operations per device (horizontal bars). */
function deviceChart(devices: StressResult["devices"]): string {
  const row = 26;
  const left = 140;
  const h = M.top + devices.length * row + 30;
  const pw = W - left - 80;
  const max = niceMax(Math.max(0, ...devices.map((d) => d.ops)));
  const bars = devices.map((d, i) => {
    const y = M.top + i * row;
    const w = (d.ops / max) * pw;
    const colour = KIND_COLOURS[d.kind] ?? "#888";
    return `<text class="tick" x="${left - 8}" y="${y + 16}" text-anchor="end">${
      esc(`${d.id} (${d.kind})`)
    }</text>` +
      `<rect class="hbar" x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${
        row - 8
      }" fill="${colour}"${d.failure ? ' fill-opacity="0.45"' : ""}><title>${
        esc(
          `${d.id} ${d.address}: ${d.ops} operations${d.failure ? ` — failed: ${d.failure}` : ""}`,
        )
      }</title></rect>` +
      `<text class="tick" x="${left + w + 6}" y="${y + 16}">${esc(d.ops)}${
        d.failure ? " ✝" : ""
      }</text>`;
  }).join("\n");
  return `<svg id="devices" role="img" aria-label="Operations per device" viewBox="0 0 ${W} ${h}" width="${W}" height="${h}" xmlns="http://www.w3.org/2000/svg">
${bars}
<line class="axis" x1="${left}" x2="${left}" y1="${M.top}" y2="${M.top + devices.length * row}"/>
<text class="label" x="${left + pw / 2}" y="${
    h - 6
  }" text-anchor="middle">operations (agent's operations on the device; ✝ = the device failed)</text>
</svg>`;
}

function table(rows: ReadonlyArray<readonly [string, string | number]>): string {
  return `<table>${
    rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")
  }</table>`;
}

/**
 * The command line that replays a run (its seed and options).
 *
 * @param result The run.
 * @returns `deno task stress --replay …`.
 *
 * @example
 * ```ts
 * import { runStress } from "./runner.ts";
 * import { replayCommand } from "./report.ts";
 * import { equal } from "node:assert/strict";
 * const result = await runStress({ seed: 7, ops: 20, devices: 1, agents: 1 });
 * equal(replayCommand(result), "deno task stress --replay 7 --ops 20 --devices 1 --agents 1");
 * ```
 */
export function replayCommand(result: StressResult): string {
  const o = result.options;
  // A failing run replays best as the sequences cut after the violating
  // operation, when such a shorter run showed the violation again.
  const ops = result.shrunk?.reproduced ? result.shrunk.ops : o.ops;
  const parts = ["deno task stress", `--replay ${result.seed}`];
  if (ops > 0) parts.push(`--ops ${ops}`);
  else parts.push(`--duration ${o.durationMs / 1000}s`);
  parts.push(`--devices ${o.devices}`, `--agents ${o.agents}`);
  if (o.faults) parts.push("--faults");
  if (o.injectBug) parts.push(`--inject-bug ${o.injectBug}`);
  return parts.join(" ");
}

/**
 * Renders the HTML report of a run.
 *
 * @param result The run.
 * @param options `command`: the command line that started it.
 * @returns A complete HTML document.
 *
 * @example
 * ```ts
 * import { runStress } from "./runner.ts";
 * import { renderStressReport } from "./report.ts";
 * import { ok } from "node:assert/strict";
 * const html = renderStressReport(await runStress({ seed: 3, ops: 20, devices: 1, agents: 1 }));
 * ok(html.startsWith("<!DOCTYPE html>") && html.includes("<svg"));
 * ```
 */
export function renderStressReport(
  result: StressResult,
  options: { command?: string } = {},
): string {
  const o = result.options;
  const verdict = result.ok ? "PASS" : "FAIL";
  const avg = result.elapsedMs > 0 ? Math.round((result.ops * 1000) / result.elapsedMs) : 0;
  const summary = table([
    ["verdict", `${verdict}: ${result.violations.length} violation(s)`],
    ["seed", result.seed],
    ["started", result.startedAt],
    ["length", `${(result.elapsedMs / 1000).toFixed(1)} s`],
    ["operations", `${result.ops} (${avg}/s); ${result.skipped} skipped (dead device)`],
    ["devices", `${o.devices} (${result.devices.filter((d) => d.failure).length} failed)`],
    ["guest agents", o.agents],
    ["worker faults", o.faults ? `on (${result.faults.length} injected)` : "off"],
    ["injected bug", o.injectBug ?? "none"],
    ["attempts", result.attempts],
    ...(options.command ? [["command", options.command] as const] : []),
    ["replay", replayCommand(result)],
  ]);
  const kinds = table(
    Object.entries(result.opsByKind).map(([k, v]) => [k, v] as const),
  );
  const checks = table(
    Object.entries(result.checks).map(([k, v]) =>
      [k === "trace" ? "trace records checked" : k, v] as const
    ),
  );
  const trace = table([
    ["records", result.trace.records],
    ["checked against page events", result.trace.checked],
    ["dropped (ring full)", result.trace.dropped],
    ["page events", result.trace.pageEvents],
    ["IO_PAGE_FAULT events", result.events.pageFaults],
    ["IOTLB_INV_TIMEOUT events", result.events.timeouts],
    ["event log overflows", result.events.overflows],
    ["other IOMMU events", result.events.other],
    ["invalidations timed", result.latency.total],
    ["median / p99", `${formatUs(result.latency.p50Us)} / ${formatUs(result.latency.p99Us)}`],
  ]);
  const faults = result.faults.length === 0
    ? "<p>None.</p>"
    : `<table><tr><th>at</th><th>device</th><th>fault</th></tr>${
      result.faults.map((f) =>
        `<tr><td>${esc((f.atMs / 1000).toFixed(2))} s</td><td>${esc(f.device)}</td><td>${
          esc(f.kind + (f.ms ? ` ${f.ms} ms` : ""))
        }</td></tr>`
      ).join("")
    }</table>`;
  const section = (list: StressResult["violations"]) =>
    list.map((v, i) =>
      `<section class="violation"><h3>${i + 1}. ${esc(v.kind)} <small>(found by the ${
        esc(v.source === "trace" ? "trace checker" : v.source)
      })</small></h3><p>${esc(v.message)}</p>${
        table([
          ...(v.agent !== undefined ? [["agent", v.agent] as const] : []),
          ...(v.op !== undefined ? [["operation", v.op] as const] : []),
          ...(v.device ? [["device", v.device] as const] : []),
          ...(v.page !== undefined ? [["page", `0x${v.page.toString(16)}`] as const] : []),
        ])
      }${v.history.length ? `<h4>History</h4><pre>${esc(v.history.join("\n"))}</pre>` : ""}${
        v.deviceTrace.length
          ? `<h4>Device trace (most recent last)</h4><pre>${esc(v.deviceTrace.join("\n"))}</pre>`
          : ""
      }</section>`
    ).join("\n");
  const violations = result.violations.length === 0
    ? '<p class="ok">No violations.</p>'
    : section(result.violations) +
      (result.violationCount > result.violations.length
        ? `<p>… and ${result.violationCount - result.violations.length} more.</p>`
        : "");
  const shrunk = !result.shrunk
    ? ""
    : result.shrunk.reproduced
    ? `<h3>Shortest history</h3><p>The same operation sequences cut after ${result.shrunk.ops} operations per agent showed it again (run ${result.shrunk.tries}):</p>${
      section(result.shrunk.violations.slice(0, 5))
    }`
    : `<p>Runs cut after ${result.shrunk.ops} operations per agent did not show it again.</p>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dmaworks stress report: seed ${esc(result.seed)}, ${verdict}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 900px; color: #1d2330; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #d6dae3; padding-bottom: 4px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 600; }
.PASS { background: #2e8b57; } .FAIL { background: #c0392b; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { text-align: left; padding: 3px 12px 3px 0; vertical-align: top; }
th { font-weight: 600; color: #4a5568; }
pre { background: #f4f6fa; padding: 8px; overflow-x: auto; font-size: 12px; }
.grid { stroke: #e3e7ee; } .frame { fill: none; stroke: #c8ceda; } .axis { stroke: #8a93a5; }
.series { fill: none; stroke: #3b7dd8; stroke-width: 2; } .dots circle { fill: #3b7dd8; }
.bar { fill: #8e6bd8; } .tick { font-size: 11px; fill: #4a5568; } .label { font-size: 12px; fill: #1d2330; }
.violation { border-left: 4px solid #c0392b; padding-left: 12px; margin: 12px 0; }
.ok { color: #2e8b57; font-weight: 600; }
.cols { display: flex; gap: 40px; flex-wrap: wrap; }
</style>
</head>
<body>
<h1>dmaworks stress report <span class="verdict ${verdict}">${verdict}</span></h1>
<p>Seed ${esc(result.seed)}: ${esc(result.ops)} operations by ${esc(o.agents)} guest agents on ${
    esc(o.devices)
  } device workers, checked against the invariants of the architecture contract.</p>
<h2>Summary</h2>
${summary}
<h2>Violations</h2>
${violations}
${shrunk}
<h2>Throughput over time</h2>
${throughputChart(result.throughput)}
<h2>Invalidation latency</h2>
${latencyChart(result.latency)}
<h2>Operations per device</h2>
${deviceChart(result.devices)}
<h2>Details</h2>
<div class="cols"><div><h3>Operations by kind</h3>${kinds}</div><div><h3>Checks</h3>${checks}</div><div><h3>Trace and IOMMU</h3>${trace}</div></div>
<h3>Injected faults</h3>
${faults}
</body>
</html>
`;
}
