/**
 * How the command line prints what a workload returned.
 *
 * @module
 */

/** A printed result. */
export interface FormattedResult {
  /** The text, ending with a newline. */
  readonly text: string;
  /** Whether the run counts as a success. */
  readonly ok: boolean;
}

interface StepLike {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
}

function isStep(value: unknown): value is StepLike {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  return typeof v.step === "string" && typeof v.ok === "boolean" && typeof v.detail === "string";
}

/**
 * Formats a workload's result: a result with `steps` (a
 * `WorkloadSummary`, or the demo's summary) as a list of steps with
 * ok/FAIL, its `devices` and `metrics`; anything else as JSON. The run
 * fails when a step failed or `ok` is false.
 *
 * @param result What the workload returned.
 * @param title The heading (default `Summary`).
 * @returns The text and whether the run passed.
 *
 * @example
 * ```ts
 * import { formatWorkloadResult } from "./summary.ts";
 * import { equal } from "node:assert/strict";
 * const r = formatWorkloadResult({
 *   ok: true,
 *   steps: [{ step: "copy", ok: true, detail: "verified" }],
 *   metrics: { bytes: 4096 },
 * });
 * equal(r.text, "Summary\n  ok   copy: verified\n  bytes: 4096\n1 of 1 steps passed\n");
 * equal(formatWorkloadResult({ answer: 42 }).text, 'Result: {"answer":42}\n');
 * ```
 */
export function formatWorkloadResult(result: unknown, title = "Summary"): FormattedResult {
  if (
    result === null || typeof result !== "object" || !("steps" in result) ||
    !Array.isArray(result.steps) || !result.steps.every(isStep)
  ) {
    return { text: `Result: ${JSON.stringify(result)}\n`, ok: true };
  }
  const r = result as {
    steps: StepLike[];
    devices?: unknown;
    metrics?: unknown;
    ok?: unknown;
  };
  const devices = Array.isArray(r.devices) ? r.devices.map(String) : [];
  const metrics = r.metrics !== null && typeof r.metrics === "object"
    ? Object.entries(r.metrics as Record<string, unknown>)
    : [];
  const failed = r.steps.filter((s) => !s.ok).length;
  const lines = [
    title,
    ...devices.map((d) => `  device ${d}`),
    ...r.steps.map((s) => `  ${s.ok ? "ok  " : "FAIL"} ${s.step}: ${s.detail}`),
    ...metrics.map(([name, value]) => `  ${name}: ${String(value)}`),
    `${r.steps.length - failed} of ${r.steps.length} steps passed`,
  ];
  return { text: `${lines.join("\n")}\n`, ok: failed === 0 && r.ok !== false };
}
