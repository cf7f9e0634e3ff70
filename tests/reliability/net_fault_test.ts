// A UDP peer that vanishes under a dgram netdev: the e1000 keeps
// transmitting (descriptors complete as on a wire with nobody listening, the
// frames are lost), nothing throws or hangs, the device is not failed, and
// traffic resumes when a peer binds the port again.
import { deepEqual, equal, ok } from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { Machine, type MachineEvent } from "../../src/machine/machine.ts";

const BAR0 = 0xfe00_0000;
const RING = 0x1_0000;
const FRAMES = 0x2_0000;
const SLOTS = 32;

function bind(port: number): Promise<Socket> {
  const socket = createSocket("udp4");
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

/**
 * A UDP socket on 127.0.0.1 that collects what it receives. Binding a port
 * just closed is retried: Deno releases a closed socket's port a little
 * after `close` calls back (EADDRINUSE meanwhile).
 */
async function udpPeer(port = 0): Promise<{ socket: Socket; port: number; frames: Uint8Array[] }> {
  let socket: Socket | undefined;
  for (let attempt = 1; socket === undefined; attempt++) {
    try {
      socket = await bind(port);
    } catch (error) {
      if ((error as { code?: string }).code !== "EADDRINUSE" || port === 0 || attempt >= 1000) {
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  const frames: Uint8Array[] = [];
  socket.on("message", (m: Uint8Array) => frames.push(new Uint8Array(m)));
  return { socket, port: socket.address().port, frames };
}

function close(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

/** Sets the NIC up as a driver would: BAR0, bus mastering, transmit ring. */
async function nicUp(machine: Machine): Promise<void> {
  await machine.out(0xcf8, 4, 0x8000_1810);
  await machine.out(0xcfc, 4, BAR0);
  await machine.out(0xcf8, 4, 0x8000_1804);
  await machine.out(0xcfc, 2, 0x0006);
  await machine.write(BAR0 + 0x3800, 4, RING); // TDBAL
  await machine.write(BAR0 + 0x3804, 4, 0);
  await machine.write(BAR0 + 0x3808, 4, SLOTS * 16); // TDLEN
  await machine.write(BAR0 + 0x3810, 4, 0);
  await machine.write(BAR0 + 0x3818, 4, 0);
  await machine.write(BAR0 + 0x0400, 4, 0x0a); // TCTL: EN | PSP
}

let tail = 0;

/** Queues `count` 100-byte broadcast frames and waits until the NIC has written them all back. */
async function send(machine: Machine, count: number, tag: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const slot = tail % SLOTS;
    const frame = new Uint8Array(100);
    frame.fill(0xff, 0, 6);
    frame.set([0x52, 0x54, 0, 0x12, 0x34, 0x56], 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    frame[14] = tag;
    frame[15] = i;
    await machine.writeMemory(FRAMES + slot * 128, frame);
    const d = new DataView(new ArrayBuffer(16));
    d.setBigUint64(0, BigInt(FRAMES + slot * 128), true);
    d.setUint16(8, frame.length, true);
    d.setUint8(11, 0x0b); // EOP | IFCS | RS
    await machine.writeMemory(RING + slot * 16, new Uint8Array(d.buffer));
    tail++;
  }
  await machine.write(BAR0 + 0x3818, 4, tail % SLOTS);
  for (;;) {
    if (Number(await machine.read(BAR0 + 0x3810, 4)) === tail % SLOTS) break;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

Deno.test("a UDP peer that vanishes: transmits complete, the NIC stays up, traffic resumes with a new peer", async () => {
  const first = await udpPeer();
  const port = first.port;
  await using machine = await Machine.create({
    devices: [{ type: "e1000", id: "nic", addr: "03.0", properties: { netdev: "n0" } }],
    netdevs: [{
      type: "dgram",
      id: "n0",
      properties: {
        "local.type": "inet",
        "local.host": "127.0.0.1",
        "local.port": "0",
        "remote.type": "inet",
        "remote.host": "127.0.0.1",
        "remote.port": String(port),
      },
    }],
  });
  const failed: string[] = [];
  machine.onEvent((e: MachineEvent) => {
    if (e.type === "device-failed") failed.push(e.reason);
  });
  tail = 0;
  await nicUp(machine);
  await send(machine, 4, 1);
  while (first.frames.length < 4) await new Promise((resolve) => setTimeout(resolve, 2));
  deepEqual(first.frames.map((f) => [f[14], f[15]]), [[1, 0], [1, 1], [1, 2], [1, 3]]);

  await close(first.socket); // the peer vanishes
  await send(machine, 8, 2); // completes: a wire with nobody listening loses frames
  for (let i = 0; i < 8; i++) {
    const slot = (tail - 8 + i) % SLOTS;
    equal(machine.memory.read8(RING + slot * 16 + 12) & 1, 1, "DD is written back");
  }
  equal(Number(await machine.read(BAR0 + 0x4080, 4)), 12, "GPTC counts the frames sent");

  const second = await udpPeer(port); // a peer comes back on the same port
  try {
    await send(machine, 3, 3);
    const resumed = () => second.frames.filter((f) => f[14] === 3);
    while (resumed().length < 3) await new Promise((resolve) => setTimeout(resolve, 2));
    deepEqual(resumed().map((f) => [f[14], f[15]]), [[3, 0], [3, 1], [3, 2]]);
    // The NIC is done with a frame before the netdev's socket has sent it, so
    // frames of the second batch may still have been on their way when the
    // new peer bound the port; whatever arrived came whole and in order.
    const tags = second.frames.map((f) => f[14]);
    deepEqual(tags, [...tags].sort(), "no frame overtook another");
    ok(second.frames.every((f) => f.length === 100));
  } finally {
    await close(second.socket);
  }
  equal(await machine.read(BAR0 + 0x0008, 4) & 0x02n, 0x02n, "STATUS.LU: the link stays up");
  deepEqual(failed, []);
});
