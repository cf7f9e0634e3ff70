// Transmit and receive of the e1000 model: descriptor write-back, interrupt
// causes, padding, FCS handling, large frames, filtering, buffer sizes,
// thresholds, back-pressure, offloads and loopback. One thread, no machine.
import { deepEqual, equal, ok } from "node:assert/strict";
import { E1000Icr, E1000Reg, E1000Stat, E1000TxCmd } from "../../src/devices/e1000_regs.ts";
import { ethernetCrc32 } from "../../src/net/ethernet.ts";
import { frameTo, NIC_MAC, Rig, RxRing, TxRing } from "./e1000_rig.ts";

const R = E1000Reg;
const EOP = E1000TxCmd.EOP;
const IFCS = E1000TxCmd.IFCS;
const RS = E1000TxCmd.RS;
const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const OTHER = [0x02, 0x99, 0x99, 0x99, 0x99, 0x99];
const RX_EN = 0x2, UPE = 0x8, MPE = 0x10, LPE = 0x20, BAM = 0x8000, SECRC = 0x0400_0000;

function txRig(options: { psp?: boolean } = {}) {
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 16 }, options);
  t.w(R.IMS, 0x1_ffff);
  return { t, tx };
}

function rxRig(rctl = RX_EN | BAM | SECRC, options: { count?: number; fill?: number } = {}) {
  const t = new Rig();
  const rx = new RxRing(t, { ring: 0x30_0000, buffers: 0x40_0000, count: options.count ?? 16 }, {
    rctl,
    ...(options.fill !== undefined ? { fill: options.fill } : {}),
  });
  return { t, rx };
}

async function deliver(t: Rig, ...frames: Uint8Array[]): Promise<void> {
  t.net.inbound.push(...frames);
  t.nic.onNetReceive();
  await t.run();
}

// ---------------------------------------------------------------------------
// Transmit

Deno.test("tx: one descriptor, RS: DD written back, TDH moves, TXDW and TXQE", async () => {
  const { t, tx } = txRig();
  const frame = frameTo(OTHER, 100);
  await tx.send(frame);
  deepEqual(t.net.sent, [frame]);
  equal(tx.status(0) & 1, 1, "DD");
  equal(t.r(R.TDH), 1);
  equal(t.env.level, true);
  equal(t.icr(), E1000Icr.TXDW | E1000Icr.TXQE);
  equal(t.env.level, false);
});

Deno.test("tx: a frame over three descriptors; only the RS descriptor is written back", async () => {
  const { t, tx } = txRig();
  const frame = frameTo(OTHER, 3000);
  const l = tx.layout;
  t.ram.write(l.buffers, frame.subarray(0, 1000));
  t.ram.write(l.buffers + 0x4000, frame.subarray(1000, 2000));
  t.ram.write(l.buffers + 0x8000, frame.subarray(2000));
  tx.descriptor(0, { address: l.buffers, length: 1000, cmd: IFCS });
  tx.descriptor(1, { address: l.buffers + 0x4000, length: 1000, cmd: IFCS });
  tx.descriptor(2, { address: l.buffers + 0x8000, length: 1000, cmd: EOP | IFCS | RS });
  t.w(R.TDT, 3);
  await t.run();
  deepEqual(t.net.sent, [frame]);
  deepEqual([tx.status(0), tx.status(1), tx.status(2)], [0, 0, 1]);
  equal(t.icr(), E1000Icr.TXDW | E1000Icr.TXQE);
});

Deno.test("tx: without RS nothing is written back; RPS reports like RS", async () => {
  const { t, tx } = txRig();
  tx.queue(frameTo(OTHER, 80), EOP | IFCS);
  tx.queue(frameTo(OTHER, 80), EOP | IFCS | E1000TxCmd.RPS);
  tx.kick();
  await t.run();
  equal(t.net.sent.length, 2);
  equal(tx.status(0), 0);
  equal(tx.status(1), 1);
});

Deno.test("tx: short frames are padded to 60 bytes with PSP, sent as they are without", async () => {
  const padded = txRig({ psp: true });
  await padded.tx.send(frameTo(OTHER, 42));
  equal(padded.t.net.sent[0]!.length, 60);
  deepEqual(padded.t.net.sent[0]!.subarray(0, 42), frameTo(OTHER, 42));
  deepEqual(padded.t.net.sent[0]!.subarray(42), new Uint8Array(18));
  const runt = txRig({ psp: false });
  await runt.tx.send(frameTo(OTHER, 42));
  equal(runt.t.net.sent[0]!.length, 42);
  // Fewer bytes than an Ethernet header never reach the wire.
  await runt.tx.send(frameTo(OTHER, 10));
  equal(runt.t.net.sent.length, 1);
  equal(runt.tx.status(1) & 1, 1, "the descriptor still completes");
});

Deno.test("tx: without IFCS the buffer's last four bytes are its FCS: checked and removed", async () => {
  const { t, tx } = txRig();
  const frame = frameTo(OTHER, 100);
  const crc = ethernetCrc32(frame);
  const withFcs = new Uint8Array(104);
  withFcs.set(frame);
  new DataView(withFcs.buffer).setUint32(100, crc, true);
  tx.queue(withFcs, EOP | RS);
  const bad = withFcs.slice();
  bad[103] = bad[103]! ^ 0xff;
  tx.queue(bad, EOP | RS);
  tx.kick();
  await t.run();
  deepEqual(t.net.sent, [frame], "the good one without its FCS; the bad one not at all");
  equal(tx.status(1) & 1, 1);
});

Deno.test("tx: a 16 KiB frame goes out whole; with no netdev frames go nowhere but complete", async () => {
  const { t, tx } = txRig();
  const frame = frameTo(OTHER, 16384);
  const l = tx.layout;
  for (let i = 0; i < 4; i++) {
    t.ram.write(l.buffers + i * 0x4000, frame.subarray(i * 4096, (i + 1) * 4096));
    tx.descriptor(i, {
      address: l.buffers + i * 0x4000,
      length: 4096,
      cmd: IFCS | (i === 3 ? EOP | RS : 0),
    });
  }
  t.w(R.TDT, 4);
  await t.run();
  equal(t.net.sent.length, 1);
  deepEqual(t.net.sent[0], frame);
  const alone = new Rig({ noNet: true });
  const tx2 = new TxRing(alone, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  await tx2.send(frameTo(OTHER, 64), frameTo(OTHER, 64));
  equal(alone.r(R.TDH), 2);
  equal(tx2.status(1) & 1, 1);
  equal(alone.r(E1000Stat.GPTC), 2, "counted as sent, as QEMU with no peer");
});

Deno.test("tx: a congested network holds frames in order and retries", async () => {
  const { t, tx } = txRig();
  t.net.accept = false;
  const a = frameTo(OTHER, 70, 1), b = frameTo(OTHER, 70, 2), c = frameTo(OTHER, 70, 3);
  await tx.send(a, b, c);
  equal(t.net.sent.length, 0);
  equal(t.r(R.TDH), 1, "the first frame is in the transmit FIFO; fetching waits");
  t.net.accept = true;
  while (t.net.sent.length < 3) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    await t.run();
  }
  deepEqual(t.net.sent, [a, b, c]);
  equal(t.r(R.TDH), 3);
  t.nic.dispose();
});

Deno.test("tx: checksum offload through a context descriptor (IPv4 + UDP)", async () => {
  const { t, tx } = txRig();
  const packet = udpPacket(200);
  const l = tx.layout;
  // Context: IPCSS 14, IPCSO 24, IPCSE 33; TUCSS 34, TUCSO 40, TUCSE 0.
  const ctx = 0x10_0000 + 0;
  t.ram.write(l.buffers, packet);
  t.ram.write8(ctx + 0, 14);
  t.ram.write8(ctx + 1, 24);
  t.ram.write16(ctx + 2, 33);
  t.ram.write8(ctx + 4, 34);
  t.ram.write8(ctx + 5, 40);
  t.ram.write16(ctx + 6, 0);
  t.ram.write32(ctx + 8, (0x20 << 24) | 0x0200_0000); // DEXT, IP, DTYP context
  t.ram.write32(ctx + 12, 0);
  tx.descriptor(1, {
    address: l.buffers,
    length: packet.length,
    cmd: EOP | IFCS | RS | 0x20,
    lowerExtra: 0x0010_0000, // DTYP data
    upper: 0x0300, // POPTS IXSM | TXSM
  });
  t.w(R.TDT, 2);
  await t.run();
  const sent = t.net.sent[0]!;
  equal(sent.length, packet.length);
  equal(ipChecksumOk(sent, 14), true);
  equal(udpChecksumOk(sent), true);
});

Deno.test("tx: TCP segmentation (TSO) cuts a packet into MSS segments", async () => {
  const { t, tx } = txRig();
  const payload = 2500;
  const mss = 1000;
  const packet = tcpPacket(payload);
  const l = tx.layout;
  t.ram.write(l.buffers, packet);
  const ctx = 0x10_0000;
  t.ram.write8(ctx + 0, 14);
  t.ram.write8(ctx + 1, 24);
  t.ram.write16(ctx + 2, 33);
  t.ram.write8(ctx + 4, 34);
  t.ram.write8(ctx + 5, 50);
  t.ram.write16(ctx + 6, 0);
  // DEXT | TSE | IP | TCP, DTYP context, PAYLEN.
  t.ram.write32(ctx + 8, ((0x20 | 0x04 | 0x02 | 0x01) << 24) | payload);
  t.ram.write8(ctx + 13, 54); // HDRLEN
  t.ram.write16(ctx + 14, mss);
  tx.descriptor(1, {
    address: l.buffers,
    length: packet.length,
    cmd: EOP | IFCS | RS | 0x20 | 0x04,
    lowerExtra: 0x0010_0000,
    upper: 0x0300,
  });
  t.w(R.TDT, 2);
  await t.run();
  const segs = t.net.sent;
  deepEqual(segs.map((s) => s.length), [1054, 1054, 554]);
  const view = (s: Uint8Array) => new DataView(s.buffer, s.byteOffset, s.length);
  deepEqual(segs.map((s) => view(s).getUint32(38)), [1000, 2000, 3000], "sequence numbers");
  deepEqual(segs.map((s) => view(s).getUint16(16)), [1040, 1040, 540], "IP total lengths");
  deepEqual(segs.map((s) => view(s).getUint16(18)), [7, 8, 9], "IP ids");
  deepEqual(segs.map((s) => s[47]! & 0x09), [0, 0, 0x09], "PSH and FIN only on the last");
  for (const s of segs) {
    ok(ipChecksumOk(s, 14));
    ok(tcpChecksumOk(s));
  }
  equal(t.r(E1000Stat.TSCTC), 1);
});

// ---------------------------------------------------------------------------
// Receive

Deno.test("rx: a frame to our address: DD, EOP, length, RXT0, statistics", async () => {
  const { t, rx } = rxRig();
  t.w(R.IMS, E1000Icr.RXT0);
  const frame = frameTo(NIC_MAC, 200);
  await deliver(t, frame);
  const d = rx.descriptor(0);
  equal(d.status, 0x07, "DD | EOP | IXSM");
  equal(d.errors, 0);
  equal(d.length, 200);
  deepEqual(rx.buffer(0, 200), frame);
  equal(t.r(R.RDH), 1);
  equal(t.env.level, true);
  equal(t.icr() & E1000Icr.RXT0, E1000Icr.RXT0);
  equal(t.r(E1000Stat.GPRC), 1);
});

Deno.test("rx filtering: exact addresses with AV, UPE, BAM, MPE and the MTA hash", async () => {
  const cases: Array<[string, number, readonly number[], boolean, (t: Rig) => void]> = [
    ["own address", RX_EN, NIC_MAC, true, () => {}],
    ["other unicast", RX_EN, OTHER, false, () => {}],
    ["other unicast, UPE", RX_EN | UPE, OTHER, true, () => {}],
    ["broadcast without BAM", RX_EN, BROADCAST, false, () => {}],
    ["broadcast with BAM", RX_EN | BAM, BROADCAST, true, () => {}],
    ["multicast", RX_EN, [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb], false, () => {}],
    ["multicast, MPE", RX_EN | MPE, [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb], true, () => {}],
    [
      "multicast in the MTA (MO 0: bits 47:36)",
      RX_EN,
      [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb],
      true,
      (t) => {
        const hash = ((0xfb << 8) | 0x00) >>> 4;
        t.w(R.MTA + 4 * (hash >>> 5), 1 << (hash & 31));
      },
    ],
    [
      "second RAL/RAH entry with AV",
      RX_EN,
      OTHER,
      true,
      (t) => {
        t.w(R.RA + 8, 0x9999_9902);
        t.w(R.RA + 12, 0x8000_9999);
      },
    ],
    [
      "own address with AV cleared",
      RX_EN,
      NIC_MAC,
      false,
      (t) => t.w(R.RA + 4, 0x5634),
    ],
  ];
  for (const [name, rctl, dst, accepted, setup] of cases) {
    const { t, rx } = rxRig(rctl | SECRC);
    setup(t);
    await deliver(t, frameTo(dst, 64));
    equal(rx.descriptor(0).status & 1, accepted ? 1 : 0, name);
  }
});

Deno.test("rx: runts are padded to 60 bytes; SECRC clear appends the real FCS", async () => {
  const { t, rx } = rxRig(RX_EN | BAM | SECRC);
  const runt = frameTo(NIC_MAC, 42);
  await deliver(t, runt);
  equal(rx.descriptor(0).length, 60);
  deepEqual(rx.buffer(0, 60), Uint8Array.from([...runt, ...new Uint8Array(18)]));
  const withCrc = rxRig(RX_EN | BAM);
  const frame = frameTo(NIC_MAC, 100);
  await deliver(withCrc.t, frame);
  equal(withCrc.rx.descriptor(0).length, 104);
  const got = withCrc.rx.buffer(0, 104);
  deepEqual(got.subarray(0, 100), frame);
  equal(new DataView(got.buffer).getUint32(100, true), ethernetCrc32(frame));
});

Deno.test("rx: buffer sizes split frames over descriptors; EOP on the last", async () => {
  // BSIZE 11 without BSEX: 256-byte buffers.
  const { t, rx } = rxRig(RX_EN | SECRC | (3 << 16));
  const frame = frameTo(NIC_MAC, 1000);
  await deliver(t, frame);
  const lengths = [0, 1, 2, 3].map((i) => rx.descriptor(i).length);
  deepEqual(lengths, [256, 256, 256, 232]);
  deepEqual([0, 1, 2, 3].map((i) => rx.descriptor(i).status), [1, 1, 1, 7]);
  const joined = new Uint8Array(1000);
  for (let i = 0; i < 4; i++) joined.set(rx.buffer(i, lengths[i]!), i * 256);
  deepEqual(joined, frame);
});

Deno.test("rx: frames up to 16 KiB with LPE; longer ones without LPE count in ROC", async () => {
  const { t, rx } = rxRig(RX_EN | SECRC | LPE | 0x0200_0000 | (1 << 16)); // BSEX: 16 KiB buffers
  const jumbo = frameTo(NIC_MAC, 16380);
  await deliver(t, jumbo);
  equal(rx.descriptor(0).length, 16380);
  deepEqual(rx.buffer(0, 16380), jumbo);
  const small = rxRig(RX_EN | SECRC);
  await deliver(small.t, frameTo(NIC_MAC, 1519), frameTo(NIC_MAC, 1518));
  equal(small.t.r(E1000Stat.ROC), 1);
  equal(small.rx.descriptor(0).length, 1518, "the 1518-byte frame fits");
});

Deno.test("rx: RXDMT0 when free descriptors fall to RDLEN/2; no buffers: RNBC and the frame waits", async () => {
  const { t, rx } = rxRig(RX_EN | SECRC, { count: 8, fill: 5 });
  await deliver(t, frameTo(NIC_MAC, 64));
  equal(t.icr() & E1000Icr.RXDMT0, E1000Icr.RXDMT0, "4 free of 8: at the threshold");
  await deliver(t, frameTo(NIC_MAC, 64, 2), frameTo(NIC_MAC, 64, 3), frameTo(NIC_MAC, 64, 4));
  await deliver(t, frameTo(NIC_MAC, 64, 5), frameTo(NIC_MAC, 64, 6));
  equal(t.r(R.RDH), 5, "ring full at RDT");
  equal(t.r(E1000Stat.RNBC), 1);
  equal(t.r(E1000Stat.MPC), 0, "nothing lost yet: the frame waits in the FIFO");
  for (let i = 0; i < 5; i++) ok(rx.take());
  await t.run();
  equal(t.r(R.RDH), 6, "the waiting frame went into the first new buffer");
  deepEqual(rx.buffer(5, 64), frameTo(NIC_MAC, 64, 6));
});

Deno.test("rx: frames the host could not queue count as missed (MPC, RXO); a disabled receiver discards silently", async () => {
  const { t } = rxRig(RX_EN | SECRC, { count: 8, fill: 0 });
  t.w(R.IMS, E1000Icr.RXO);
  t.net.dropped = 3; // the NIC's frame ring was full three times
  await deliver(t, frameTo(NIC_MAC, 1500));
  equal(t.r(E1000Stat.MPC), 3);
  equal(t.env.level, true);
  equal(t.icr() & E1000Icr.RXO, E1000Icr.RXO);
  await deliver(t);
  equal(t.r(E1000Stat.MPC), 0, "counted once");
  const off = rxRig(0);
  await deliver(off.t, frameTo(NIC_MAC, 64));
  equal(off.t.r(E1000Stat.MPC), 0);
  equal(off.t.r(E1000Stat.GPRC), 0);
  equal(off.rx.descriptor(0).status, 0);
  equal(off.t.net.inbound.length, 0, "taken and discarded");
});

Deno.test("loopback: frames return through the receiver later, never from inside transmit", async () => {
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  const rx = new RxRing(t, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 });
  // PHY loopback through MDIC (BMCR bit 14), as QEMU.
  t.w(R.MDIC, (1 << 26) | (1 << 21) | 0x4140);
  const frame = frameTo(NIC_MAC, 64);
  tx.queue(frame);
  tx.kick();
  // Run only the transmit task: the frame must not be received inside it.
  const transmitTask = t.env.tasks.shift()!;
  await transmitTask();
  equal(rx.descriptor(0).status, 0, "not received synchronously");
  ok(t.env.tasks.length > 0, "the receiver runs as its own task");
  await t.run();
  deepEqual(rx.buffer(0, 64), frame);
  equal(t.net.sent.length, 0, "nothing on the wire");
});

// ---------------------------------------------------------------------------
// Packet builders and checkers.

function ipv4Header(totalLength: number, protocol: number): Uint8Array {
  const h = new Uint8Array(20);
  const v = new DataView(h.buffer);
  h[0] = 0x45;
  v.setUint16(2, totalLength);
  v.setUint16(4, 7); // id
  h[8] = 64;
  h[9] = protocol;
  h.set([10, 0, 0, 1], 12);
  h.set([10, 0, 0, 2], 16);
  return h;
}

function udpPacket(payload: number): Uint8Array {
  const p = new Uint8Array(14 + 20 + 8 + payload);
  p.set(frameTo(OTHER, 14));
  p[12] = 0x08;
  p[13] = 0x00;
  p.set(ipv4Header(20 + 8 + payload, 17), 14);
  const v = new DataView(p.buffer);
  v.setUint16(34, 1234);
  v.setUint16(36, 5678);
  v.setUint16(38, 8 + payload);
  for (let i = 0; i < payload; i++) p[42 + i] = i & 0xff;
  // Pseudo-header sum (without length folded in the usual Linux way: full pseudo header).
  v.setUint16(40, pseudoSum(p, 17, 8 + payload));
  return p;
}

function tcpPacket(payload: number): Uint8Array {
  const p = new Uint8Array(14 + 20 + 20 + payload);
  p.set(frameTo(OTHER, 14));
  p[12] = 0x08;
  p[13] = 0x00;
  p.set(ipv4Header(0, 6), 14);
  const v = new DataView(p.buffer);
  v.setUint16(34, 80);
  v.setUint16(36, 8080);
  v.setUint32(38, 1000); // sequence
  p[46] = 0x50; // data offset 5
  p[47] = 0x18 | 0x01; // PSH ACK FIN
  for (let i = 0; i < payload; i++) p[54 + i] = (i * 3) & 0xff;
  // TSO: the driver puts the pseudo-header sum without the length.
  v.setUint16(50, pseudoSum(p, 6, 0));
  return p;
}

function sum16(data: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  for (let i = start; i + 1 < end; i += 2) s += (data[i]! << 8) | data[i + 1]!;
  if ((end - start) & 1) s += data[end - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function pseudoSum(p: Uint8Array, protocol: number, length: number): number {
  let s = sum16(p, 26, 34);
  s += protocol + length;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function ipChecksumOk(p: Uint8Array, at: number): boolean {
  return sum16(p, at, at + 20) === 0xffff;
}

function l4ChecksumOk(p: Uint8Array, protocol: number): boolean {
  const length = p.length - 34;
  const s = sum16(p, 34, p.length, pseudoSum(p, protocol, length));
  return s === 0xffff;
}

function udpChecksumOk(p: Uint8Array): boolean {
  return l4ChecksumOk(p, 17);
}

function tcpChecksumOk(p: Uint8Array): boolean {
  return l4ChecksumOk(p, 6);
}
