import { deepEqual, equal, rejects } from "node:assert/strict";
import { Machine } from "../../src/machine/machine.ts";
import { QtestClient } from "../../src/qtest/qtest_client.ts";
import { connectionFromConn } from "../../src/qtest/qtest_connection.ts";
import { startQtest } from "../../src/qtest/qtest_server.ts";
import { cfg, EDU_SETUP } from "./qtest_test_utils.ts";

const EDU = { devices: [{ type: "edu", addr: "04.0" }] };

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A short conversation that exercises PIO, MMIO, RAM and interrupts. */
async function converse(client: QtestClient): Promise<void> {
  equal(await client.command(`outl 0xcf8 ${cfg(0, 0, 0)}`), "OK");
  equal(await client.command("inl 0xcfc"), "OK 0x29c08086");
  equal(await client.command("irq_intercept_in ioapic"), "OK");
  for (const line of EDU_SETUP) equal(await client.command(line), "OK");
  equal(await client.command("readl 0xfe000000"), "OK 0x00000000010000ed");
  equal(await client.command("writel 0xfe000060 1"), "OK");
  equal(client.irqLevel(20), true);
  equal(await client.command("writel 0xfe000064 1"), "OK");
  equal(client.irqLevel(20), false);
  equal(await client.command("write 0x1000 4 0xdeadbeef"), "OK");
  equal(await client.command("b64read 0x1000 4"), "OK 3q2+7w==");
}

Deno.test("unix:PATH,server=on listens, serves one connection and removes the socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/qtest.sock`;
  try {
    await using machine = await Machine.create(EDU);
    const log: string[] = [];
    const qtest = await startQtest(machine, `unix:${path},server=on,wait=off`, {
      log: (l) => log.push(l),
    });
    deepEqual(qtest.chardev, { kind: "unix", path, server: true, wait: false });
    equal((await Deno.lstat(path)).isSocket, true);
    const client = await QtestClient.connect(`unix:${path}`);
    equal(await qtest.connected, true);
    equal(qtest.server.serving, true);
    await converse(client);
    // A second client cannot connect: the server took one connection only.
    equal(await exists(path), false);
    await rejects(QtestClient.connect(`unix:${path}`), /Cannot connect to qtest at/);
    await client.close();
    await qtest.closed;
    equal(log.at(-1)?.endsWith("CLOSED"), true);
    await qtest.close(); // idempotent
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unix:PATH connects to a listening harness, as QEMU does by default", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/harness.sock`;
  try {
    await using machine = await Machine.create(EDU);
    using listener = Deno.listen({ transport: "unix", path });
    const accepted = listener.accept();
    await using qtest = await startQtest(machine, `unix:${path}`, { log: "none" });
    equal(await qtest.connected, true);
    const client = new QtestClient(connectionFromConn(await accepted));
    await converse(client);
    await client.close();
    await qtest.closed;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unix client mode fails clearly when nobody listens", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using machine = await Machine.create({});
    await rejects(
      startQtest(machine, `unix:${dir}/nobody.sock`, { log: "none" }),
      new RegExp(`^Error: Cannot connect to qtest socket '${dir}/nobody.sock': `),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unix server mode replaces a stale socket but not a regular file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/qtest.sock`;
  try {
    await using machine = await Machine.create({});
    // A socket left behind by a process that died (Deno unlinks the socket
    // when a listener closes, but not when the process exits).
    await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} }); Deno.exit(0);`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    equal((await Deno.lstat(path)).isSocket, true);
    {
      await using qtest = await startQtest(machine, `unix:${path},server=on`, { log: "none" });
      await using client = await QtestClient.connect(`unix:${path}`);
      equal(await client.command("endianness"), "OK little");
      equal(qtest.server.serving, true);
    }
    await Deno.writeTextFile(path, "not a socket");
    await rejects(
      startQtest(machine, `unix:${path},server=on`, { log: "none" }),
      new RegExp(`^Error: Cannot listen on qtest socket '${path}': it exists and is not a socket$`),
    );
    equal(await Deno.readTextFile(path), "not a socket");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("closing a listening handle before anyone connects", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/qtest.sock`;
  try {
    await using machine = await Machine.create({});
    const qtest = await startQtest(machine, `unix:${path},server=on`, { log: "none" });
    await qtest.close();
    equal(await qtest.connected, false);
    await qtest.closed;
    equal(await exists(path), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("closing the handle ends an open session", async () => {
  await using machine = await Machine.create({});
  const qtest = await startQtest(machine, "tcp:127.0.0.1:0,server=on", { log: "none" });
  if (qtest.chardev.kind !== "tcp") throw new Error("Expected a TCP chardev");
  const client = await QtestClient.connect(`tcp:127.0.0.1:${qtest.chardev.port}`);
  equal(await client.command("endianness"), "OK little");
  await qtest.close();
  await client.closed; // the server's side is gone
  await rejects(client.command("endianness"), /closed/);
  await client.close();
});

Deno.test("tcp:127.0.0.1:PORT,server=on serves TCP on loopback", async () => {
  await using machine = await Machine.create(EDU);
  await using qtest = await startQtest(machine, "tcp:127.0.0.1:0,server=on", { log: "none" });
  if (qtest.chardev.kind !== "tcp") throw new Error("Expected a TCP chardev");
  const port = qtest.chardev.port;
  equal(port > 0, true);
  const client = await QtestClient.connect(`tcp:localhost:${port}`);
  await converse(client);
  await client.close();
  await qtest.closed;
});

Deno.test("tcp:HOST:PORT connects to a listening harness", async () => {
  await using machine = await Machine.create(EDU);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  await using qtest = await startQtest(machine, `tcp:127.0.0.1:${listener.addr.port}`, {
    log: "none",
  });
  const client = new QtestClient(connectionFromConn(await accepted));
  await converse(client);
  await client.close();
  await qtest.closed;
});

Deno.test("remote TCP hosts need allowRemoteHosts", async () => {
  await using machine = await Machine.create({});
  await rejects(
    startQtest(machine, "tcp:0.0.0.0:0,server=on", { log: "none" }),
    /host '0\.0\.0\.0' is not a loopback address/,
  );
  await using qtest = await startQtest(machine, "tcp:0.0.0.0:0,server=on", {
    log: "none",
    allowRemoteHosts: true,
  });
  if (qtest.chardev.kind !== "tcp") throw new Error("Expected a TCP chardev");
  await using client = await QtestClient.connect(`tcp:127.0.0.1:${qtest.chardev.port}`);
  equal(await client.command("endianness"), "OK little");
});

Deno.test("invalid chardevs and busy ports are clear errors", async () => {
  await using machine = await Machine.create({});
  await rejects(startQtest(machine, "serial:/dev/ttyS0"), /unknown backend 'serial'/);
  await rejects(startQtest(machine, "tcp:127.0.0.1:70000,server=on"), /invalid port '70000'/);
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await rejects(
    startQtest(machine, `tcp:127.0.0.1:${busy.addr.port},server=on`, { log: "none" }),
    new RegExp(`^Error: Cannot listen for qtest on 127\\.0\\.0\\.1:${busy.addr.port}: `),
  );
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close();
  await rejects(
    startQtest(machine, `tcp:127.0.0.1:${port}`, { log: "none" }),
    new RegExp(`^Error: Cannot connect to qtest at 127\\.0\\.0\\.1:${port}: `),
  );
});

Deno.test("a client that half-closes still gets every reply, even to an unterminated last line", async () => {
  await using machine = await Machine.create({});
  await using qtest = await startQtest(machine, "tcp:127.0.0.1:0,server=on", { log: "none" });
  if (qtest.chardev.kind !== "tcp") throw new Error("Expected a TCP chardev");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: qtest.chardev.port });
  await conn.write(new TextEncoder().encode("writel 0x2000 0x55aa\r\nbogus\nreadl 0x2000"));
  await conn.closeWrite();
  let text = "";
  const buffer = new Uint8Array(1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  conn.close();
  equal(text, "OK\nFAIL Unknown command 'bogus'\nOK 0x00000000000055aa\n");
  await qtest.closed;
});

Deno.test("a client that disconnects without reading does not break the server", async () => {
  await using machine = await Machine.create({});
  await using qtest = await startQtest(machine, "tcp:127.0.0.1:0,server=on", { log: "none" });
  if (qtest.chardev.kind !== "tcp") throw new Error("Expected a TCP chardev");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: qtest.chardev.port });
  // Ask for 64 MiB of hex and hang up at once.
  await conn.write(new TextEncoder().encode("read 0 0x4000000\nread 0 0x4000000\n"));
  conn.close();
  await qtest.closed;
  // The machine is unharmed.
  await machine.write(0, 4, 0x1234n);
  equal(await machine.read(0, 4), 0x1234n);
});

Deno.test("closing the handle does not wait for a client that stopped reading", async () => {
  await using machine = await Machine.create({});
  const qtest = await startQtest(machine, "tcp:127.0.0.1:0,server=on", { log: "none" });
  if (qtest.chardev.kind !== "tcp") throw new Error("Expected a TCP chardev");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: qtest.chardev.port });
  // 4 × 128 MB of replies that nobody reads: the server's writes get stuck.
  await conn.write(new TextEncoder().encode("read 0 0x4000000\n".repeat(4)));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  equal(qtest.server.serving, true);
  const t0 = performance.now();
  await qtest.close();
  equal(performance.now() - t0 < 2000, true);
  equal(qtest.server.serving, false);
  conn.close();
});
