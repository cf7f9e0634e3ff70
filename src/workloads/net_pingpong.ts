/**
 * The `net-pingpong` workload: latency and throughput between two e1000
 * NICs, every descriptor and frame moved by DMA (through the IOMMU when
 * there is one).
 *
 * Two modes:
 *
 * - **local** (one machine with two NICs on one network, as the default
 *   machine's two e1000s on hub 0): this agent drives both NICs: the first
 *   pings, the second answers.
 * - **paired** (`--machines N`, or `role=ping` / `role=pong` for two
 *   processes on a UDP `dgram` wire): machine 2k pings with its first NIC
 *   and machine 2k + 1 answers with its first NIC. The pinger finds its
 *   peer by broadcasting a hello for its pair (k) until the peer answers;
 *   an odd machine out runs the local mode.
 *
 * Latency: `count` pings of `size` bytes, each answered by a pong, timed by
 * the pinger (a ping without answer after 200 ms is sent again and counted
 * in `resent`). Throughput: `burst` frames of `size` bytes sent as fast as
 * the transmit ring takes them, counted by the receiver (frames it could not
 * take are `lost`), timed from the first frame to the receiver's report.
 *
 * Options: `count` (default 200), `size` (60–1514, default 64), `burst`
 * (default 2000; 0: no throughput test), `role` (`auto`, `ping`, `pong`),
 * `timeout` (ms to wait for the peer, default 30000).
 *
 * Metrics (pinger): `mode`, `peer`, `pings`, `resent`, `latency_min_us`,
 * `latency_p50_us`, `latency_p90_us`, `latency_p99_us`, `latency_max_us`,
 * `latency_mean_us`, `burst_frames`, `burst_received`, `burst_lost`,
 * `throughput_frames_s`, `throughput_mbit_s`. Responder: `mode`, `peer`,
 * `answered`, `burst_received`.
 *
 * @module
 */

import type { E1000Driver } from "../guest/e1000_driver.ts";
import type { GuestPciFunction } from "../guest/pci.ts";
import { BROADCAST_MAC, buildFrame, formatMac } from "../net/ethernet.ts";
import { type WorkloadContext, WorkloadError, type WorkloadSummary } from "./workload.ts";

/** The options `net-pingpong` accepts. */
export const NET_PINGPONG_OPTIONS: readonly string[] = [
  "count",
  "size",
  "burst",
  "role",
  "timeout",
];

/** Ethertype of the workload's frames (IEEE local experimental 1). */
const ETHERTYPE = 0x88b5;
const MAGIC = 0x646d_6177; // "dmaw"

const Kind = {
  HELLO: 1,
  HELLO_ACK: 2,
  PING: 3,
  PONG: 4,
  DATA: 5,
  FLUSH: 6,
  REPORT: 7,
  BYE: 8,
} as const;

/** How long a ping waits for its pong before it is sent again (ms). */
const RESEND_MS = 200;
/** NIC interrupt causes the workload sleeps on: receive timer and overrun. */
const RX_INTERRUPTS = 0x80 | 0x40;

interface Message {
  readonly src: Uint8Array;
  readonly kind: number;
  readonly pair: number;
  readonly seq: number;
  readonly value: number;
}

/** A frame of the protocol: magic, kind, pair, sequence number and a value, padded to `size`. */
function frame(
  dst: ArrayLike<number>,
  src: ArrayLike<number>,
  message: { kind: number; pair: number; seq: number; value?: number },
  size = 60,
): Uint8Array {
  const payload = new Uint8Array(Math.max(46, size - 14));
  const view = new DataView(payload.buffer);
  view.setUint32(0, MAGIC);
  view.setUint8(4, message.kind);
  view.setUint16(5, message.pair);
  view.setUint32(7, message.seq);
  view.setUint32(11, message.value ?? 0);
  for (let i = 15; i < payload.length; i++) payload[i] = (i * 31 + message.seq) & 0xff;
  return buildFrame({ dst, src, etherType: ETHERTYPE, payload });
}

function parse(data: Uint8Array): Message | undefined {
  if (data.length < 14 + 15) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint16(12) !== ETHERTYPE || view.getUint32(14) !== MAGIC) return undefined;
  return {
    src: data.slice(6, 12),
    kind: view.getUint8(18),
    pair: view.getUint16(19),
    seq: view.getUint32(21),
    value: view.getUint32(25),
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

function micro(ms: number): number {
  return Math.round(ms * 1000);
}

/** Waits (sleeping on the NIC's interrupt) for a protocol message matching `accept`; drops others. */
function awaitMessage(
  nic: E1000Driver,
  deadline: number,
  accept: (m: Message) => boolean,
): Message | undefined {
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return undefined;
    const got = nic.receive({ timeoutMs: left, interrupt: true });
    if (!got) return undefined;
    const m = parse(got.data);
    if (m && accept(m)) return m;
  }
}

interface Options {
  readonly count: number;
  readonly size: number;
  readonly burst: number;
  readonly timeout: number;
}

function recordLatency(ctx: WorkloadContext, rtts: number[], resent: number): void {
  const sorted = [...rtts].sort((a, b) => a - b);
  ctx.metric("pings", rtts.length);
  ctx.metric("resent", resent);
  ctx.metric("latency_min_us", micro(sorted[0] ?? 0));
  ctx.metric("latency_p50_us", micro(percentile(sorted, 50)));
  ctx.metric("latency_p90_us", micro(percentile(sorted, 90)));
  ctx.metric("latency_p99_us", micro(percentile(sorted, 99)));
  ctx.metric("latency_max_us", micro(sorted.at(-1) ?? 0));
  ctx.metric(
    "latency_mean_us",
    micro(rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0),
  );
}

function recordThroughput(
  ctx: WorkloadContext,
  o: Options,
  received: number,
  ms: number,
): void {
  ctx.metric("burst_frames", o.burst);
  ctx.metric("burst_received", received);
  ctx.metric("burst_lost", o.burst - received);
  const seconds = ms / 1000;
  ctx.metric("throughput_frames_s", seconds > 0 ? Math.round(received / seconds) : 0);
  ctx.metric(
    "throughput_mbit_s",
    seconds > 0 ? Math.round((received * o.size * 8) / seconds / 1e4) / 100 : 0,
  );
}

/** One agent drives both NICs: `a` pings, `b` answers. */
function local(
  ctx: WorkloadContext,
  o: Options,
  nics: readonly [GuestPciFunction, GuestPciFunction],
): void {
  const a = ctx.e1000(nics[0], { rxDescriptors: 256, txDescriptors: 256 });
  const b = ctx.e1000(nics[1], { rxDescriptors: 256, txDescriptors: 256 });
  const macA = a.init({ interrupts: RX_INTERRUPTS });
  const macB = b.init({ interrupts: RX_INTERRUPTS });
  ctx.metric("mode", `local ${ctx.describe(nics[0])} -> ${ctx.describe(nics[1])}`);
  ctx.metric("peer", formatMac(macB));
  const rtts: number[] = [];
  let resent = 0;
  const deadline = performance.now() + o.timeout;
  for (let seq = 0; seq < o.count && performance.now() < deadline; seq++) {
    let done = false;
    while (!done && performance.now() < deadline) {
      const start = performance.now();
      a.send(frame(macB, macA, { kind: Kind.PING, pair: 0, seq }, o.size));
      const ping = awaitMessage(b, start + RESEND_MS, (m) => m.kind === Kind.PING && m.seq === seq);
      if (ping) {
        b.send(frame(macA, macB, { kind: Kind.PONG, pair: 0, seq }, o.size));
        done = awaitMessage(a, start + RESEND_MS, (m) => m.kind === Kind.PONG && m.seq === seq) !==
          undefined;
      }
      if (done) rtts.push(performance.now() - start);
      else resent++;
    }
  }
  recordLatency(ctx, rtts, resent);
  ctx.step(
    "ping-pong",
    rtts.length === o.count,
    `${rtts.length} of ${o.count} round trips of ${o.size}-byte frames ${formatMac(macA)} <-> ${
      formatMac(macB)
    }${ctx.iommu() ? ", DMA through the IOMMU" : ""}`,
  );
  if (o.burst === 0) return;
  b.drain();
  const data = frame(macB, macA, { kind: Kind.DATA, pair: 0, seq: 0 }, o.size);
  let sent = 0;
  let received = 0;
  const start = performance.now();
  const end = start + o.timeout;
  // Keep the transmit ring full while draining the receiver, as a NIC pair on one host would.
  while (received < o.burst && performance.now() < end) {
    let queued = 0;
    while (sent < o.burst && a.queue(data)) {
      sent++;
      queued++;
    }
    if (queued > 0) a.flush();
    received += b.drain().frames;
    if (sent === o.burst && received < o.burst) {
      // Everything is sent: stop once the transmitter is done and nothing more arrives.
      a.waitTransmitted(o.timeout);
      const more = b.receive({ timeoutMs: 50, interrupt: true });
      if (!more) break;
      received += 1 + b.drain().frames;
    }
  }
  const ms = performance.now() - start;
  recordThroughput(ctx, o, received, ms);
  ctx.step(
    "throughput",
    received > 0,
    `${received} of ${o.burst} frames of ${o.size} bytes in ${Math.round(ms)} ms`,
  );
}

/** The pinging side of a pair. */
function pinger(ctx: WorkloadContext, o: Options, fn: GuestPciFunction, pair: number): void {
  const nic = ctx.e1000(fn, { rxDescriptors: 256, txDescriptors: 256 });
  const mac = nic.init({ interrupts: RX_INTERRUPTS });
  const deadline = performance.now() + o.timeout;
  let peer: Uint8Array | undefined;
  while (!peer && performance.now() < deadline) {
    nic.send(frame(BROADCAST_MAC, mac, { kind: Kind.HELLO, pair, seq: 0 }));
    peer = awaitMessage(
      nic,
      Math.min(deadline, performance.now() + 100),
      (m) => m.kind === Kind.HELLO_ACK && m.pair === pair,
    )?.src;
  }
  ctx.metric("mode", `paired: machine ${ctx.machineIndex} pings, pair ${pair}`);
  if (
    !ctx.step(
      "find peer",
      peer !== undefined,
      peer
        ? `${formatMac(mac)} found ${formatMac(peer)} (pair ${pair})`
        : `no answer to hello from pair ${pair} within ${o.timeout} ms`,
    )
  ) return;
  const to = peer!;
  ctx.metric("peer", formatMac(to));
  const rtts: number[] = [];
  let resent = 0;
  for (let seq = 0; seq < o.count && performance.now() < deadline + o.timeout; seq++) {
    let done = false;
    while (!done && performance.now() < deadline + o.timeout) {
      const start = performance.now();
      nic.send(frame(to, mac, { kind: Kind.PING, pair, seq }, o.size));
      done = awaitMessage(nic, start + RESEND_MS, (m) => m.kind === Kind.PONG && m.seq === seq) !==
        undefined;
      if (done) rtts.push(performance.now() - start);
      else resent++;
    }
    if (!done) break;
  }
  recordLatency(ctx, rtts, resent);
  ctx.step(
    "ping-pong",
    rtts.length === o.count,
    `${rtts.length} of ${o.count} round trips of ${o.size}-byte frames to ${formatMac(to)}`,
  );
  if (o.burst > 0) {
    const data = frame(to, mac, { kind: Kind.DATA, pair, seq: 0 }, o.size);
    const start = performance.now();
    let sent = 0;
    while (sent < o.burst && performance.now() < start + o.timeout) {
      let queued = 0;
      while (sent < o.burst && nic.queue(data)) {
        sent++;
        queued++;
      }
      if (queued > 0) nic.flush();
      else nic.reclaim();
    }
    nic.waitTransmitted(o.timeout);
    let report: { value: number } | undefined;
    for (let flush = 1; !report && performance.now() < start + 2 * o.timeout; flush++) {
      nic.send(frame(to, mac, { kind: Kind.FLUSH, pair, seq: flush }));
      report = awaitMessage(
        nic,
        performance.now() + RESEND_MS,
        (m) => m.kind === Kind.REPORT && m.seq === flush,
      );
    }
    const ms = performance.now() - start;
    recordThroughput(ctx, o, report?.value ?? 0, ms);
    ctx.step(
      "throughput",
      report !== undefined && report.value > 0,
      report
        ? `${report.value} of ${o.burst} frames of ${o.size} bytes in ${Math.round(ms)} ms`
        : "the peer did not report",
    );
  }
  for (let i = 0; i < 3; i++) nic.send(frame(to, mac, { kind: Kind.BYE, pair, seq: i }));
  nic.waitTransmitted();
}

/** The answering side of a pair. */
function responder(ctx: WorkloadContext, o: Options, fn: GuestPciFunction, pair: number): void {
  const nic = ctx.e1000(fn, { rxDescriptors: 256, txDescriptors: 256 });
  const mac = nic.init({ interrupts: RX_INTERRUPTS });
  ctx.metric("mode", `paired: machine ${ctx.machineIndex} answers, pair ${pair}`);
  let peer: Uint8Array | undefined;
  const answered = new Set<number>();
  let data = 0;
  let bye = false;
  // Give the pinger the time it has to find us, to ping and to stream.
  const deadline = performance.now() + 3 * o.timeout;
  while (!bye && performance.now() < deadline) {
    const got = nic.receive({ timeoutMs: deadline - performance.now(), interrupt: true });
    if (!got) break;
    const m = parse(got.data);
    if (!m || m.pair !== pair) continue;
    if (peer && m.kind !== Kind.HELLO && formatMac(m.src) !== formatMac(peer)) continue;
    switch (m.kind) {
      case Kind.HELLO:
        peer = m.src;
        nic.send(frame(peer, mac, { kind: Kind.HELLO_ACK, pair, seq: 0 }));
        break;
      case Kind.PING:
        answered.add(m.seq);
        nic.send(frame(m.src, mac, { kind: Kind.PONG, pair, seq: m.seq }, o.size));
        break;
      case Kind.DATA:
        data++;
        break;
      case Kind.FLUSH:
        nic.send(frame(m.src, mac, { kind: Kind.REPORT, pair, seq: m.seq, value: data }));
        break;
      case Kind.BYE:
        bye = true;
        break;
    }
  }
  nic.waitTransmitted();
  ctx.metric("peer", peer ? formatMac(peer) : "none");
  ctx.metric("answered", answered.size);
  ctx.metric("burst_received", data);
  ctx.step(
    "answer pings",
    peer !== undefined && bye && answered.size > 0,
    peer
      ? `answered ${answered.size} pings from ${formatMac(peer)}, received ${data} data frames${
        bye ? "" : "; the pinger did not say goodbye"
      }`
      : `no pinger of pair ${pair} said hello`,
  );
}

/**
 * Runs the workload.
 *
 * @param ctx The workload context.
 * @returns The summary.
 *
 * @example
 * ```ts
 * // deno task start --machines 2 --workload net-pingpong,count=500,size=1514
 * import { Machine } from "../machine/machine.ts";
 * import { isWorkloadSummary } from "./workload.ts";
 * import { ok } from "node:assert/strict";
 * await using machine = await Machine.create({
 *   devices: [
 *     { type: "amd-iommu" },
 *     { type: "e1000", properties: { netdev: "n0" } },
 *     { type: "e1000", properties: { netdev: "n1", mac: "52:54:00:12:34:57" } },
 *   ],
 *   netdevs: [
 *     { type: "hub", id: "n0", properties: { hubid: "9001" } },
 *     { type: "hub", id: "n1", properties: { hubid: "9001" } },
 *   ],
 * });
 * const summary = await machine.runGuest(new URL("./net_pingpong.ts", import.meta.url), {
 *   options: { count: "10", burst: "50" },
 * });
 * ok(isWorkloadSummary(summary) && summary.ok);
 * ```
 */
export default function netPingpong(ctx: WorkloadContext): WorkloadSummary {
  const opt = ctx.options;
  opt.expectOnly(NET_PINGPONG_OPTIONS);
  const o: Options = {
    count: opt.integer("count", 200, { min: 1, max: 1_000_000 }),
    size: opt.integer("size", 64, { min: 60, max: 1514 }),
    burst: opt.integer("burst", 2000, { min: 0, max: 10_000_000 }),
    timeout: opt.integer("timeout", 30_000, { min: 100, max: 3_600_000 }),
  };
  const role = opt.string("role", "auto", ["auto", "ping", "pong"]);
  const nics = ctx.find("e1000");
  if (nics.length === 0) {
    throw new WorkloadError("net-pingpong needs an e1000 NIC (-device e1000,netdev=…)");
  }
  const paired = role !== "auto" ||
    (ctx.machineCount >= 2 && !(ctx.machineIndex === ctx.machineCount - 1 &&
      ctx.machineCount % 2 === 1));
  if (paired) {
    const pair = role === "auto" ? Math.floor(ctx.machineIndex / 2) : 0;
    const pings = role === "auto" ? ctx.machineIndex % 2 === 0 : role === "ping";
    if (pings) pinger(ctx, o, nics[0]!, pair);
    else responder(ctx, o, nics[0]!, pair);
  } else {
    if (nics.length < 2) {
      throw new WorkloadError(
        "net-pingpong needs two e1000s on one network (the default machine has them), or --machines 2, or role=ping/role=pong",
      );
    }
    local(ctx, o, [nics[0]!, nics[1]!]);
  }
  return ctx.summary();
}
