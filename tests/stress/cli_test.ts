// `deno task stress` end to end: usage errors, a clean run writing its JSON
// result and HTML report (which must render in headless Chromium), and an
// injected bug: exit status 1, the seed, the history and the replay command.
import { equal, match, ok } from "node:assert/strict";
import { parseDuration, stressMain } from "../../src/stress/main.ts";
import { findChromium, pngStats, renderInChromium } from "./chromium.ts";

const SEED = Number(Deno.env.get("DMAWORKS_STRESS_SEED") ?? 20261124);

async function run(args: string[]): Promise<{ status: number; output: string }> {
  let output = "";
  const status = await stressMain(args, { write: (t) => (output += t), tty: false });
  return { status, output };
}

Deno.test("usage errors exit 2 and say what is wrong", async () => {
  for (
    const [args, message] of [
      [["--devices", "0"], /--devices '0'/],
      [["--agents", "5", "--devices", "3"], /agent count 5/],
      [["--inject-bug", "nope"], /only bug is skip-ack/],
      [["--duration", "soon"], /Invalid duration 'soon'/],
      [["--seed", "1", "--replay", "2"], /Give the seed once/],
      [["--frobnicate"], /frobnicate/],
    ] as const
  ) {
    const { status, output } = await run([...args]);
    equal(status, 2, args.join(" "));
    match(output, message);
  }
  const help = await run(["--help"]);
  equal(help.status, 0);
  match(help.output, /--inject-bug BUG/);
  equal(parseDuration("2m"), 120_000);
});

const chromium = await findChromium();

Deno.test(
  `a clean run exits 0 and writes its JSON result and report (seed ${SEED})${
    chromium
      ? "; the report renders in headless Chromium"
      : " (Chromium check SKIPPED: no chromium on PATH)"
  }`,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "dmaworks-stress-cli-" });
    try {
      const json = `${dir}/result.json`;
      const report = `${dir}/report.html`;
      const { status, output } = await run([
        "--seed",
        String(SEED),
        "--duration",
        "2s",
        "--devices",
        "3",
        "--agents",
        "1",
        "--json",
        json,
        "--report",
        report,
      ]);
      equal(status, 0, output);
      match(output, /0 violations/);
      const result = JSON.parse(await Deno.readTextFile(json));
      equal(result.seed, SEED);
      equal(result.ok, true);
      equal(result.devices.length, 3);
      ok(result.ops > 0 && result.throughput.length > 0 && result.latency.total > 0);
      match(result.replay, new RegExp(`--replay ${SEED} --duration 2s --devices 3 --agents 1`));
      const html = await Deno.readTextFile(report);
      match(html, /PASS/);
      if (chromium) {
        const { dom, png } = await renderInChromium(chromium, report);
        for (const id of ["throughput", "latency", "devices"]) {
          match(
            dom,
            new RegExp(`<svg id="${id}"`),
          );
        }
        equal((dom.match(/<rect class="hbar"/g) ?? []).length, 3);
        ok((await pngStats(png)).ink > 0.01, "the screenshot is blank");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(`an injected bug exits 1 with the seed, a history, a shorter reproduction and the replay command (seed ${SEED})`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "dmaworks-stress-cli-" });
  try {
    const json = `${dir}/result.json`;
    const { status, output } = await run([
      "--seed",
      String(SEED),
      "--duration",
      "30s",
      "--inject-bug",
      "skip-ack",
      "--json",
      json,
      "--quiet",
    ]);
    equal(status, 1, output);
    match(output, new RegExp(`VIOLATION\\(S\\), seed ${SEED}`));
    match(output, /use-after-invalidate \(found by the trace checker\)/);
    match(output, /history of agent \d+:\n {5}\S/);
    match(output, /\n {5}#\d+ [a-z-]+ dev\d/);
    match(
      output,
      new RegExp(`replay: deno task stress --replay ${SEED} --ops \\d+ .*--inject-bug skip-ack`),
    );
    const result = JSON.parse(await Deno.readTextFile(json));
    equal(result.ok, false);
    ok(result.violations[0].history.length > 0);
    ok(result.shrunk && result.shrunk.ops > 0, "no shrinking attempt recorded");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
