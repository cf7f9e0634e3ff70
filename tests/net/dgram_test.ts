// The dgram backend with real UDP sockets on 127.0.0.1: property checks,
// binding, one frame per datagram in both directions, bad datagrams, taps.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { DgramNetdev } from "../../src/net/dgram.ts";
import type { NetdevConfig, NetPort } from "../../src/net/netdev.ts";

function config(properties: Record<string, string>): NetdevConfig {
  return { type: "dgram", id: "n0", properties };
}

/** A plain UDP socket on 127.0.0.1 playing the other side (QEMU, say). */
async function peer(): Promise<
  {
    socket: Socket;
    port: number;
    messages: Uint8Array[];
    next(): Promise<Uint8Array>;
    close(): Promise<void>;
  }
> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  const messages: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  socket.on("message", (m: Uint8Array) => {
    messages.push(new Uint8Array(m));
    wake?.();
  });
  return {
    socket,
    port: socket.address().port,
    messages,
    async next() {
      while (messages.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return messages.shift()!;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** A NIC port: queues what it receives, sends on demand. */
function port(): NetPort & {
  received: Uint8Array[];
  next(): Promise<Uint8Array>;
  send(f: Uint8Array): void;
} {
  const received: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  let handler: (f: Uint8Array) => void = () => {};
  return {
    id: "nic0",
    received,
    deliver(frame) {
      received.push(frame.slice());
      wake?.();
      return true;
    },
    onTransmit(h) {
      handler = h;
    },
    send(f) {
      handler(f);
    },
    async next() {
      while (received.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return received.shift()!;
    },
  };
}

Deno.test("dgram: bad properties are errors that name the property", async () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ "local.port": "0" }, /^Error: Netdev 'n0': dgram needs remote.host= and remote.port=$/],
    [{ "local.port": "0", "remote.host": "127.0.0.1" }, /dgram needs remote.port=/],
    [{ "remote.port": "9" }, /dgram needs local.port=/],
    [{ "local.port": "70000", "remote.port": "9" }, /invalid local.port '70000'/],
    [{ "local.port": "0", "remote.port": "x" }, /invalid remote.port 'x'/],
    [{ "local.port": "0", "remote.port": "0" }, /invalid remote.port '0'/],
    [
      { "local.type": "unix", "local.path": "/tmp/x", "remote.port": "9" },
      /unsupported dgram property 'local.path'/,
    ],
    [
      { "local.type": "unix", "remote.port": "9", "local.port": "0" },
      /local.type=unix is not supported \(only inet\)/,
    ],
    [
      { "local.port": "0", "remote.type": "fd", "remote.port": "9" },
      /remote.type=fd is not supported/,
    ],
    [
      { "local.host": "example.org", "local.port": "0", "remote.port": "9" },
      /invalid local.host 'example.org'/,
    ],
    [
      { "local.port": "0", "remote.host": "239.0.0.1", "remote.port": "9" },
      /multicast remote.host '239.0.0.1' is not supported/,
    ],
    [
      { "local.host": "::1", "local.port": "0", "remote.host": "127.0.0.1", "remote.port": "9" },
      /same IP version/,
    ],
    [{ "local.port": "0", "remote.port": "9", "udp": "x" }, /unsupported dgram property 'udp'/],
  ];
  for (const [properties, expected] of cases) {
    await rejects(DgramNetdev.create(config(properties)), expected, JSON.stringify(properties));
  }
});

Deno.test("dgram: binds to 127.0.0.1 unless told otherwise; a taken port is a clear error", async () => {
  const a = await DgramNetdev.create(config({ "local.port": "0", "remote.port": "9" }));
  equal(a.local.host, "127.0.0.1");
  ok(a.local.port > 0);
  deepEqual(a.remote, { host: "127.0.0.1", port: 9 });
  await rejects(
    DgramNetdev.create(
      config({ "local.host": "127.0.0.1", "local.port": String(a.local.port), "remote.port": "9" }),
    ),
    new RegExp(`Netdev 'n0': cannot bind 127.0.0.1:${a.local.port} \\(local.host, local.port\\)`),
  );
  await a.close();
  await a.close();
});

Deno.test("dgram: one frame per datagram each way, exact bytes, with taps", async () => {
  const other = await peer();
  const netdev = await DgramNetdev.create(config({
    "local.type": "inet",
    "local.host": "127.0.0.1",
    "local.port": "0",
    "remote.type": "inet",
    "remote.host": "127.0.0.1",
    "remote.port": String(other.port),
  }));
  const nic = port();
  netdev.connect(nic);
  const taps: string[] = [];
  netdev.addTap((f, d) => taps.push(`${d}:${f.length}`));
  const frames = [60, 1514, 9000].map((n) =>
    Uint8Array.from({ length: n }, (_, i) => (i * 13 + n) & 0xff)
  );
  for (const f of frames) nic.send(f);
  for (const f of frames) deepEqual(await other.next(), f);
  const inbound = Uint8Array.from({ length: 342 }, (_, i) => i & 0xff);
  other.socket.send(inbound, netdev.local.port, "127.0.0.1");
  deepEqual(await nic.next(), inbound);
  deepEqual(taps, ["tx:60", "tx:1514", "tx:9000", "rx:342"]);
  // Empty and oversized datagrams never reach the NIC.
  other.socket.send(new Uint8Array(0), netdev.local.port, "127.0.0.1");
  other.socket.send(new Uint8Array(20000), netdev.local.port, "127.0.0.1");
  other.socket.send(new Uint8Array([1, 2, 3]), netdev.local.port, "127.0.0.1");
  deepEqual(await nic.next(), new Uint8Array([1, 2, 3]));
  equal(nic.received.length, 0);
  deepEqual(netdev.counters, { sent: 3, received: 2, dropped: 2, errors: 0 });
  await netdev.close();
  await other.close();
});
