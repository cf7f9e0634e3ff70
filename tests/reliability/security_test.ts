// The security posture of docs/security.md: with narrowed worker permissions
// a device worker can use its own disk images and nothing else (asked of the
// real device workers of a machine, and tried for real by a probe worker that
// gets the same permission set), the e1000 worker has no network at all
// because its dgram socket lives on the main isolate, edu gets nothing, and
// qtest and dgram listen on loopback unless another address is named.
import { deepEqual, equal, match, notEqual, ok, rejects } from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { main } from "../../src/cli/main.ts";
import type { DiskAttachment } from "../../src/devices/device_model.ts";
import { createWorker, deviceWorkerPermissions } from "../../src/machine/device_host.ts";
import { Machine, type MachineConfig } from "../../src/machine/machine.ts";
import type { DgramNetdev } from "../../src/net/dgram.ts";
import { buildFrame, parseMac } from "../../src/net/ethernet.ts";
import { startQtest } from "../../src/qtest/qtest_server.ts";
import type { ProbeRequest, ProbeResult } from "../fixtures/permission_probe.ts";

const PROBE = new URL("../fixtures/permission_probe.ts", import.meta.url);

/** A directory with a writable image, a read-only image and an unrelated file. */
async function files(): Promise<
  { dir: string; rw: string; ro: string; other: string } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "dmaworks-security-" });
  const rw = `${dir}/rw.img`, ro = `${dir}/ro.img`, other = `${dir}/secret.txt`;
  await Deno.writeFile(rw, new Uint8Array(1 << 20));
  await Deno.writeFile(ro, new Uint8Array(1 << 20).fill(0x5a));
  await Deno.writeTextFile(other, "not an image");
  return {
    dir,
    rw,
    ro,
    other,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function disk(drive: string, file: string, readonly: boolean, bus: number): DiskAttachment {
  return { kind: "disk", drive, file, readonly, bus, unit: 0, properties: {} };
}

/** A TCP listener on 127.0.0.1 that accepts and closes connections. */
function tcpServer(): { port: number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) conn.close();
  })();
  return {
    port: listener.addr.port,
    [Symbol.asyncDispose]: async () => {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

/** Runs the probe in a worker with exactly `permissions`, narrowed as device workers are. */
async function probe(
  permissions: ReturnType<typeof deviceWorkerPermissions>,
  request: ProbeRequest,
): Promise<ProbeResult> {
  const worker = createWorker(PROBE, { name: "probe", permissions, narrow: true });
  try {
    const result = new Promise<ProbeResult>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<ProbeResult>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message));
      };
    });
    worker.postMessage(request);
    return await result;
  } finally {
    worker.terminate();
  }
}

const DENIED_ELSEWHERE = {
  "read other file": "NotCapable",
  "write other file": "NotCapable",
  "create file": "NotCapable",
  "list directory": "NotCapable",
  "tcp connect": "NotCapable",
  "tcp listen": "NotCapable",
  "fetch": "NotCapable",
  "env": "NotCapable",
  "run": "NotCapable",
  "sys": "NotCapable",
};

Deno.test("an IDE worker's permissions: its images (read-only ones for reading), nothing else, tried for real", async () => {
  await using f = await files();
  await using server = tcpServer();
  const permissions = deviceWorkerPermissions([
    disk("d0", f.rw, false, 0),
    disk("d1", f.ro, true, 1),
  ]);
  deepEqual(permissions, {
    read: [f.rw, f.ro],
    write: [f.rw],
    net: false,
    env: false,
    run: false,
    ffi: false,
    sys: false,
  });
  const result = await probe(permissions, {
    image: f.rw,
    readonlyImage: f.ro,
    other: f.other,
    directory: f.dir,
    tcpPort: server.port,
  });
  deepEqual(result, {
    "read image": "ok",
    "write image": "ok",
    "read read-only image": "ok",
    "write read-only image": "NotCapable",
    ...DENIED_ELSEWHERE,
  });
  equal(await Deno.readTextFile(f.other), "not an image");
  deepEqual([...Deno.readDirSync(f.dir)].map((e) => e.name).sort(), [
    "ro.img",
    "rw.img",
    "secret.txt",
  ]);
});

Deno.test("a worker whose only image is read-only gets no write permission at all", async () => {
  await using f = await files();
  await using server = tcpServer();
  const permissions = deviceWorkerPermissions([disk("d0", f.ro, true, 0)]);
  equal((permissions as { write: unknown }).write, false);
  const result = await probe(permissions, {
    readonlyImage: f.ro,
    other: f.other,
    directory: f.dir,
    tcpPort: server.port,
  });
  deepEqual(result, {
    "read read-only image": "ok",
    "write read-only image": "NotCapable",
    ...DENIED_ELSEWHERE,
  });
});

Deno.test("a device without images (edu, e1000, an IDE disk in memory) gets no permission at all", async () => {
  await using f = await files();
  await using server = tcpServer();
  equal(deviceWorkerPermissions([]), "none");
  equal(
    deviceWorkerPermissions([{
      kind: "disk",
      drive: "m",
      size: 1 << 20,
      readonly: false,
      bus: 0,
      unit: 0,
      properties: {},
    }]),
    "none",
  );
  const result = await probe("none", {
    image: f.rw,
    other: f.other,
    directory: f.dir,
    tcpPort: server.port,
  });
  deepEqual(result, {
    "read image": "NotCapable",
    "write image": "NotCapable",
    ...DENIED_ELSEWHERE,
  });
});

/** A UDP socket on 127.0.0.1 playing the other end of a dgram wire. */
async function udpPeer(): Promise<
  { socket: Socket; port: number; next: () => Promise<Uint8Array> }
> {
  const socket = createSocket("udp4");
  const queue: Uint8Array[] = [];
  const waiting: Array<(message: Uint8Array) => void> = [];
  socket.on("message", (message: Uint8Array) => {
    const waiter = waiting.shift();
    if (waiter) waiter(new Uint8Array(message));
    else queue.push(new Uint8Array(message));
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  return {
    socket,
    port: socket.address().port,
    next: () => {
      const message = queue.shift();
      return message ? Promise.resolve(message) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

function securityMachine(
  f: { rw: string; ro: string },
  peerPort: number,
  narrow: boolean,
): MachineConfig {
  return {
    narrowWorkerPermissions: narrow,
    devices: [
      { type: "piix3-ide", id: "ide", addr: "02.0" },
      { type: "ide-hd", properties: { drive: "d0", bus: "ide.0" } },
      { type: "ide-hd", properties: { drive: "d1", bus: "ide.1" } },
      { type: "e1000", id: "nic0", addr: "03.0", properties: { netdev: "n0" } },
      { type: "edu", id: "edu0", addr: "04.0" },
    ],
    drives: [{ id: "d0", file: f.rw }, { id: "d1", file: f.ro, readonly: true }],
    netdevs: [{
      type: "dgram",
      id: "n0",
      properties: { "local.port": "0", "remote.port": String(peerPort) },
    }],
  };
}

/** What the tests ask each device worker. */
function questions(f: { rw: string; ro: string; other: string; dir: string }, udpPort: number) {
  return [
    ["read image", { name: "read", path: f.rw }],
    ["write image", { name: "write", path: f.rw }],
    ["read read-only image", { name: "read", path: f.ro }],
    ["write read-only image", { name: "write", path: f.ro }],
    ["read other file", { name: "read", path: f.other }],
    ["write other file", { name: "write", path: f.other }],
    ["write directory", { name: "write", path: f.dir }],
    ["net to the dgram peer", { name: "net", host: `127.0.0.1:${udpPort}` }],
    ["net", { name: "net" }],
    ["env", { name: "env" }],
    ["run", { name: "run" }],
    ["sys", { name: "sys" }],
    ["ffi", { name: "ffi" }],
  ] as const satisfies ReadonlyArray<readonly [string, Deno.PermissionDescriptor]>;
}

async function granted(
  machine: Machine,
  id: string,
  asked: ReturnType<typeof questions>,
): Promise<string[]> {
  const states = await machine.queryDevicePermissions(id, asked.map(([, d]) => d));
  return asked.flatMap(([name], i) => (states[i] === "granted" ? [name] : []));
}

Deno.test("narrowed device workers in a machine: IDE its images, e1000 (dgram) and edu nothing", async () => {
  await using f = await files();
  const peer = await udpPeer();
  try {
    await using machine = await Machine.create(securityMachine(f, peer.port, true));
    const asked = questions(f, peer.port);
    deepEqual(await granted(machine, "ide", asked), [
      "read image",
      "write image",
      "read read-only image",
    ]);
    deepEqual(await granted(machine, "nic0", asked), []);
    deepEqual(await granted(machine, "edu0", asked), []);
    await rejects(machine.queryDevicePermissions("nope", []), /No device with id 'nope'/);
  } finally {
    peer.socket.close();
  }
});

Deno.test("without narrowing the same query shows the process's permissions (the query is not a fixed answer)", async () => {
  await using f = await files();
  const peer = await udpPeer();
  try {
    await using machine = await Machine.create(securityMachine(f, peer.port, false));
    const asked = questions(f, peer.port);
    deepEqual(await granted(machine, "edu0", asked), asked.map(([name]) => name));
  } finally {
    peer.socket.close();
  }
});

Deno.test("the dgram socket lives on the main isolate: a narrowed e1000 worker without net still sends and receives", async () => {
  await using f = await files();
  const peer = await udpPeer();
  try {
    await using machine = await Machine.create(securityMachine(f, peer.port, true));
    const netdev = machine.netdevs[0] as DgramNetdev;
    equal(netdev.local.host, "127.0.0.1", "bound to loopback: no local.host was named");
    deepEqual(await granted(machine, "nic0", questions(f, peer.port)), []);
    // BAR0 at 0xfe000000, memory decoding and bus mastering (e1000 at 00:03.0, GSI 23).
    await machine.out(0xcf8, 4, 0x8000_1810);
    await machine.out(0xcfc, 4, 0xfe00_0000);
    await machine.out(0xcf8, 4, 0x8000_1804);
    await machine.out(0xcfc, 2, 0x0006);
    const reg = (offset: number, value: number) => machine.write(0xfe00_0000 + offset, 4, value);
    // Transmit: one legacy descriptor (EOP, IFCS, RS) at 4 MiB, its frame at 5 MiB.
    const out = buildFrame({
      dst: parseMac("52:54:00:00:00:99"),
      src: parseMac("52:54:00:12:34:56"),
      payload: Uint8Array.from({ length: 100 }, (_, i) => i),
    });
    machine.memory.write(0x50_0000, out);
    machine.memory.write64(0x40_0000, 0x50_0000n);
    machine.memory.write32(0x40_0008, (((0x01 | 0x02 | 0x08) << 24) | out.length) >>> 0);
    machine.memory.write32(0x40_000c, 0);
    await reg(0x3800, 0x40_0000);
    await reg(0x3804, 0);
    await reg(0x3808, 128);
    await reg(0x3810, 0);
    await reg(0x3818, 0);
    await reg(0x0400, 0x0a); // TCTL: EN, PSP
    await reg(0x3818, 1);
    deepEqual(await peer.next(), out);
    // Receive: 8 descriptors at 1 MiB, 2 KiB buffers at 2 MiB, RXT0 on the line.
    for (let i = 0; i < 8; i++) {
      machine.memory.write64(0x10_0000 + i * 16, BigInt(0x20_0000 + i * 2048));
      machine.memory.write64(0x10_0000 + i * 16 + 8, 0n);
    }
    await reg(0x2800, 0x10_0000);
    await reg(0x2804, 0);
    await reg(0x2808, 128);
    await reg(0x2810, 0);
    await reg(0x2818, 7);
    await reg(0x00d0, 0x80); // IMS: RXT0
    await reg(0x0100, 0x0400_8002); // RCTL: EN, BAM, SECRC
    const inbound = buildFrame({
      dst: parseMac("ff:ff:ff:ff:ff:ff"),
      src: parseMac("52:54:00:00:00:99"),
      payload: Uint8Array.from({ length: 64 }, (_, i) => 255 - i),
    });
    peer.socket.send(inbound, netdev.local.port, "127.0.0.1");
    ok(await machine.waitIrq(23, 30_000), "RXT0 raised");
    equal(machine.memory.read8(0x10_000c) & 3, 3, "DD and EOP");
    const length = machine.memory.read16(0x10_0008);
    const got = new Uint8Array(length);
    machine.memory.read(0x20_0000, got);
    deepEqual(got, inbound);
  } finally {
    peer.socket.close();
  }
});

Deno.test("qtest listens on loopback only: other addresses are refused, by the library and by the CLI", async () => {
  await using machine = await Machine.create({});
  for (const spec of ["tcp:0.0.0.0:0,server=on", "tcp::0,server=on", "tcp:192.0.2.1:0,server=on"]) {
    await rejects(startQtest(machine, spec, { log: "none" }), /loopback|every interface/, spec);
  }
  await using qtest = await startQtest(machine, "tcp:localhost:0,server=on", { log: "none" });
  ok(qtest.chardev.kind === "tcp");
  notEqual(qtest.chardev.port, 0);
  // No interface but loopback answers on that port.
  const outside = Object.values(Deno.networkInterfaces())
    .filter((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    .map((i) => i.address);
  for (const address of outside) {
    await rejects(
      Deno.connect({ hostname: address, port: qtest.chardev.port }),
      Deno.errors.ConnectionRefused,
      address,
    );
  }
  await qtest.close();
  let err = "";
  const io = { stdout: () => {}, stderr: (t: string) => void (err += t) };
  notEqual(await main(["-nodefaults", "-qtest", "tcp:0.0.0.0:4444,server=on"], io), 0);
  match(err, /host '0\.0\.0\.0' is not a loopback address/);
});
