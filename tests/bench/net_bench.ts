// Network throughput between two dmaworks e1000s through a hub.
//
//   deno bench -A tests/bench/net_bench.ts     (or: deno task bench)
//
// Before the benches run, the script builds machines with two e1000s on one
// hub (with and without the AMD-Vi IOMMU) and has a guest agent stream
// 64-byte and 1514-byte frames from one NIC to the other for a second,
// keeping the transmit ring full and draining the receive ring. It prints
// frames per second and Gbit/s (frame bytes, without FCS, preamble or gap)
// that arrived in the receiver's buffers, frames the receiver missed (MPC),
// and the ratio to a baseline measured in the same run: a raw frame-ring
// push + pop of the same frame in one thread, the cheapest thing a frame's
// trip (two frame rings and the hub) could cost.
//
// The `deno bench` groups then compare the main isolate's share of the path
// (pop from one NIC's ring, hub, push into the other's) with the raw ring.
import { Machine } from "../../src/machine/machine.ts";
import { FrameRing, frameRingBytes } from "../../src/net/frame_ring.ts";
import { HubNetdev } from "../../src/net/hub.ts";
import { RingNetPort } from "../../src/net/ring_net_port.ts";

const GUEST = new URL("./net_bench_guest.ts", import.meta.url);
const SIZES = [64, 1514];
let hubid = 900_000 + Math.floor(Math.random() * 100_000);

/** Frames per second of a same-thread push + pop of a `size`-byte frame. */
function rawRingRate(size: number, ms = 300): number {
  const ring = new FrameRing(new SharedArrayBuffer(frameRingBytes()));
  const frame = new Uint8Array(size);
  let n = 0;
  const end = performance.now() + ms;
  const start = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 256; i++) {
      ring.push(frame);
      ring.pop();
    }
    n += 256;
  }
  return n / ((performance.now() - start) / 1000);
}

interface Result {
  sent: number;
  received: number;
  bytes: number;
  elapsed: number;
  missed: number;
  faults: number;
}

async function nicRate(size: number, iommu: boolean): Promise<Result> {
  const id = String(hubid++);
  await using machine = await Machine.create({
    devices: [
      ...(iommu ? [{ type: "amd-iommu", addr: "01.0" }] : []),
      { type: "e1000", addr: "03.0", properties: { netdev: "a" } },
      { type: "e1000", addr: "05.0", properties: { netdev: "b" } },
    ],
    netdevs: [
      { type: "hub", id: "a", properties: { hubid: id } },
      { type: "hub", id: "b", properties: { hubid: id } },
    ],
  });
  return await machine.runGuest(GUEST, {
    options: { size: String(size), ms: "1000", iommu: iommu ? "1" : "0" },
    timeoutMs: 60_000,
  }) as Result;
}

async function report(): Promise<void> {
  const lines: string[] = [];
  for (const size of SIZES) {
    const raw = rawRingRate(size);
    for (const iommu of [false, true]) {
      const r = await nicRate(size, iommu);
      const fps = r.received / (r.elapsed / 1000);
      const gbps = (r.bytes * 8) / (r.elapsed / 1000) / 1e9;
      lines.push(
        `e1000 → hub → e1000, ${String(size).padStart(4)}-byte frames, ${
          iommu ? "IOMMU   " : "no IOMMU"
        }: ${Math.round(fps).toLocaleString("en")} frames/s, ${gbps.toFixed(3)} Gbit/s` +
          ` (sent ${r.sent}, received ${r.received}, missed ${r.missed}, IOMMU faults ${r.faults});` +
          ` ${(fps / raw).toFixed(4)} × raw frame-ring push+pop (${
            Math.round(raw).toLocaleString("en")
          } frames/s)`,
      );
    }
  }
  console.log(lines.join("\n"));
}

await report();

// The main isolate's share: pop from the sender's ring, hub, push into the receiver's.
function hubPath(size: number) {
  const id = String(hubid++);
  const ports = [0, 1].map((i) => {
    const tx = new SharedArrayBuffer(frameRingBytes());
    const rx = new SharedArrayBuffer(frameRingBytes());
    const port = new RingNetPort(`nic${i}`, { tx, rx, wakeDevice: () => {} });
    const netdev = HubNetdev.create({ type: "hub", id: `h${i}`, properties: { hubid: id } });
    netdev.connect(port);
    return { port, tx: new FrameRing(tx), rx: new FrameRing(rx), netdev };
  });
  const frame = new Uint8Array(size);
  return () => {
    ports[0]!.tx.push(frame);
    ports[0]!.port.pump();
    ports[1]!.rx.pop();
  };
}

for (const size of SIZES) {
  const ring = new FrameRing(new SharedArrayBuffer(frameRingBytes()));
  const frame = new Uint8Array(size);
  Deno.bench(
    { name: `raw frame ring push+pop ${size} B`, group: `hub-${size}`, baseline: true },
    () => {
      ring.push(frame);
      ring.pop();
    },
  );
  const step = hubPath(size);
  Deno.bench({ name: `ring → hub → ring ${size} B`, group: `hub-${size}` }, step);
}
