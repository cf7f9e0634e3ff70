import { deepEqual, equal, rejects } from "node:assert/strict";
import { QtestClient } from "../../src/qtest/qtest_client.ts";
import type { QtestConnection } from "../../src/qtest/qtest_connection.ts";
import { LineReader } from "../../src/qtest/qtest_lines.ts";
import { connectionPair } from "./qtest_test_utils.ts";

/** A scripted server: answers each request line with what `answer` returns (lines joined by \n). */
function fakeServer(
  connection: QtestConnection,
  answer: (line: string) => string | undefined,
): { requests: string[]; done: Promise<void>; writer: WritableStreamDefaultWriter<Uint8Array> } {
  const requests: string[] = [];
  const writer = connection.writable.getWriter();
  const lines = new LineReader(connection.readable);
  const done = (async () => {
    try {
      for (;;) {
        const line = await lines.read();
        if (!line) break;
        requests.push(line.text);
        const reply = answer(line.text);
        if (reply !== undefined) await writer.write(new TextEncoder().encode(`${reply}\n`));
      }
    } catch {
      // The client aborted its output (after a failure).
    }
    lines.releaseLock();
  })();
  return { requests, done, writer };
}

Deno.test("overlapping commands get their own replies; IRQ lines update levels", async () => {
  const { a, b } = connectionPair();
  let n = 0;
  const server = fakeServer(a, (line) => {
    n++;
    if (n === 2) return `IRQ raise 20\nIRQ raise 3\nOK ${line}`;
    if (n === 3) return `IRQ lower 20\nOK ${line}`;
    return `OK ${line}`;
  });
  const seen: string[] = [];
  const client = new QtestClient(b, { onLine: (l) => seen.push(l) });
  const results = await Promise.all(["one", "two", "three", "four"].map((c) => client.command(c)));
  deepEqual(results, ["OK one", "OK two", "OK three", "OK four"]);
  deepEqual(server.requests, ["one", "two", "three", "four"]);
  equal(client.irqLevel(20), false);
  equal(client.irqLevel(3), true);
  equal(client.irqLevel(4), false);
  deepEqual(seen, [
    "OK one",
    "IRQ raise 20",
    "IRQ raise 3",
    "OK two",
    "IRQ lower 20",
    "OK three",
    "OK four",
  ]);
  await client.close();
  await server.done;
  server.writer.releaseLock();
});

Deno.test("waitIrq resolves on the level, at once if already there, or false on timeout", async () => {
  const { a, b } = connectionPair();
  const server = fakeServer(a, () => undefined);
  const client = new QtestClient(b);
  const raised = client.waitIrq(5);
  const lowered = client.waitIrq(5, { level: false });
  equal(await lowered, true); // never raised: already low
  const enc = new TextEncoder();
  await server.writer.write(enc.encode("IRQ lower 5\nIRQ raise 6\nIRQ raise 5\n"));
  equal(await raised, true);
  equal(await client.waitIrq(5), true);
  equal(await client.waitIrq(7, { timeoutMs: 20 }), false);
  const later = client.waitIrq(5, { level: false, timeoutMs: 5000 });
  await server.writer.write(enc.encode("IRQ lower 5\n"));
  equal(await later, true);
  await client.close();
  equal(await client.waitIrq(9), false); // closed: nothing more can come
  await server.done;
  server.writer.releaseLock();
});

Deno.test("a reply that does not come in time fails the command and the client", async () => {
  const { a, b } = connectionPair();
  const server = fakeServer(a, () => undefined); // never answers
  const client = new QtestClient(b, { timeoutMs: 30 });
  const waiting = client.waitIrq(1, { timeoutMs: 10_000 });
  await rejects(
    client.command("readl 0"),
    /No reply to qtest command 'readl 0': No qtest reply to 'readl 0' within 30 ms/,
  );
  await rejects(client.command("readl 4"), /No qtest reply to 'readl 0' within 30 ms/);
  equal(await waiting, false);
  await client.close();
  await server.done;
  server.writer.releaseLock();
});

Deno.test("the server going away rejects pending commands", async () => {
  const { a, b } = connectionPair();
  const server = fakeServer(a, () => undefined);
  const client = new QtestClient(b);
  const pending = client.command("readl 0");
  while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 1));
  await server.writer.close();
  await rejects(pending, /No reply to qtest command 'readl 0': The qtest connection closed/);
  await client.closed;
  await rejects(client.command("readl 0"), /The qtest connection closed/);
  await client.close();
  await server.done;
});

Deno.test("command rejects newlines and use after close", async () => {
  const { a, b } = connectionPair();
  const server = fakeServer(a, (l) => `OK ${l}`);
  const client = new QtestClient(b);
  await rejects(client.command("readl 0\nreadl 4"), /must not contain a newline/);
  equal(await client.command("x"), "OK x");
  await client.close();
  await client.close(); // idempotent
  await rejects(client.command("readl 0"), /closed/);
  await server.done;
  server.writer.releaseLock();
  deepEqual(server.requests, ["x"]); // the rejected line was never sent
});

Deno.test("an over-long reply fails its command only", async () => {
  const { a, b } = connectionPair();
  const server = fakeServer(a, (l) => (l === "big" ? `OK 0x${"00".repeat(100)}` : `OK ${l}`));
  const client = new QtestClient(b, { maxLineLength: 64 });
  await rejects(client.command("big"), /The qtest reply is too long: 205 bytes/);
  equal(await client.command("small"), "OK small");
  await client.close();
  await server.done;
  server.writer.releaseLock();
});

Deno.test("connect refuses server chardevs and stdio", async () => {
  await rejects(QtestClient.connect("stdio"), /expected unix:PATH or tcp:HOST:PORT/);
  await rejects(QtestClient.connect("unix:/x,server=on"), /expected unix:PATH or tcp:HOST:PORT/);
  await rejects(QtestClient.connect("tcp:192.0.2.1:1"), /not a loopback address/);
});
