import { deepEqual, equal, match, ok } from "node:assert/strict";
import { QtestClient } from "../../src/qtest/qtest_client.ts";
import { EDU_SETUP } from "./qtest_test_utils.ts";

const MAIN = new URL("../fixtures/qtest_stdio_main.ts", import.meta.url).pathname;

function spawn(args: string[] = []): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

const REQUESTS = [
  "irq_intercept_in ioapic",
  ...EDU_SETUP,
  "readl 0xfe000000",
  "writel 0xfe000060 1",
  "writel 0xfe000064 1",
  "clock_step 1000",
  "clock_step",
  "write 0x1000 3 0x616263",
  "b64read 0x1000 3",
  "not-a-command",
  "readl 0x1000 extra",
];

const REPLIES = [
  "OK",
  "OK",
  "OK",
  "OK",
  "OK",
  "OK 0x00000000010000ed",
  "IRQ raise 20",
  "OK",
  "IRQ lower 20",
  "OK",
  "OK 1000",
  "OK 1000",
  "OK",
  "OK YWJj",
  "FAIL Unknown command 'not-a-command'",
  "ERR Wrong number of arguments for 'readl': got 2, usage 'readl ADDR'",
];

async function run(
  args: string[],
  input: string,
): Promise<{ stdout: string; stderr: string; code: number }> {
  const child = spawn(args);
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const { stdout, stderr, code } = await child.output();
  const dec = new TextDecoder();
  return { stdout: dec.decode(stdout), stderr: dec.decode(stderr), code };
}

Deno.test("stdio: stdout carries replies only, the log goes to stderr, EOF ends the process", async () => {
  const { stdout, stderr, code } = await run([], REQUESTS.join("\n") + "\n");
  equal(code, 0, stderr);
  equal(stdout, REPLIES.join("\n") + "\n");
  const log = stderr.split("\n").filter((l) => l.startsWith("["));
  match(log[0]!, /^\[I \d+\.\d{6}\] OPENED$/);
  match(log[1]!, /^\[R \+\d+\.\d{6}\] irq_intercept_in ioapic$/);
  match(log[2]!, /^\[S \+\d+\.\d{6}\] OK$/);
  match(log.at(-1)!, /^\[I \+\d+\.\d{6}\] CLOSED$/);
  ok(log.some((l) => /^\[S \+\d+\.\d{6}\] IRQ raise 20$/.test(l)));
  equal(log.filter((l) => l.startsWith("[R ")).length, REQUESTS.length);
  equal(log.filter((l) => l.startsWith("[S ")).length, REPLIES.length);
});

Deno.test("stdio: -qtest-log none silences the log; a file receives it", async () => {
  const quiet = await run(["none"], "endianness\n");
  equal(quiet.code, 0, quiet.stderr);
  equal(quiet.stdout, "OK little\n");
  equal(quiet.stderr, "");
  const devNull = await run(["/dev/null"], "endianness\n");
  equal(devNull.stdout, "OK little\n");
  equal(devNull.stderr, "");
  const path = await Deno.makeTempFile();
  try {
    const logged = await run([path], "endianness\n");
    equal(logged.stdout, "OK little\n");
    equal(logged.stderr, "");
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    deepEqual(lines.map((l) => l.replace(/\d+\.\d{6}/, "T")), [
      "[I T] OPENED",
      "[R +T] endianness",
      "[S +T] OK little",
      "[I +T] CLOSED",
    ]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("stdio: a client drives the process interactively", async () => {
  const child = spawn(["none"]);
  const client = new QtestClient({ readable: child.stdout, writable: child.stdin }, {
    timeoutMs: 30_000,
  });
  const results: string[] = [];
  for (const line of REQUESTS) results.push(await client.command(line));
  deepEqual(results, REPLIES.filter((r) => !r.startsWith("IRQ")));
  equal(client.irqLevel(20), false);
  // Binary garbage does not kill the process.
  equal(await client.command("\u0000\u00ff\u0080"), "FAIL Unknown command '\\x00\\xff\\x80'");
  equal(await client.command("endianness"), "OK little");
  await client.close(); // stdin EOF: the process stops its machine and exits
  const [status, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
  ]);
  equal(status.code, 0, stderr);
  equal(stderr, "");
});
