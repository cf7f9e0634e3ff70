// Hostile input to the e1000 model: rings beyond their length, zero-length
// rings, absurd descriptor lengths, endless chains, descriptors and buffers
// at IOVAs that fault, unrepresentable addresses, bad offload contexts, DMA
// aimed at MMIO, and attempts at a transmit → receive → transmit loop. Each
// case checks what the guest sees (registers, descriptors, ERRCAUSE, the
// interrupt) and that nothing reached the wire that should not have.
import { deepEqual, equal, ok } from "node:assert/strict";
import { Permission } from "../../src/dma/mmu.ts";
import { E1000_TX_BATCH } from "../../src/devices/e1000.ts";
import {
  E1000_DMA_FAULT_CODES,
  E1000Err,
  E1000Icr,
  E1000Reg,
  E1000Stat,
  E1000TxCmd,
} from "../../src/devices/e1000_regs.ts";
import { PAGE, PageMmu } from "../dma/page_mmu.ts";
import { frameTo, NIC_MAC, Rig, RxRing, TxRing } from "./e1000_rig.ts";

const R = E1000Reg;
const OTHER = [0x02, 0x99, 0x99, 0x99, 0x99, 0x99];
const EOP = E1000TxCmd.EOP, IFCS = E1000TxCmd.IFCS, RS = E1000TxCmd.RS;
/** IOVAs above 4 GiB, mapped to low RAM. */
const IOVA = 0x7_0000_0000;

function kindCode(kind: keyof typeof E1000_DMA_FAULT_CODES): number {
  return E1000_DMA_FAULT_CODES[kind] << 8;
}

/** A rig whose DMA goes through a test IOMMU; `map` maps IOVA pages to RAM. */
function iommuRig(): {
  t: Rig;
  mmu: PageMmu;
  map: (iova: number, phys: number, bytes: number, perms?: number) => void;
} {
  const mmu = new PageMmu();
  const t = new Rig({ dma: { mmu } });
  const map = (iova: number, phys: number, bytes: number, perms: number = Permission.ReadWrite) => {
    for (let off = 0; off < bytes; off += PAGE) {
      mmu.mapPage((iova + off) / PAGE, (phys + off) / PAGE, perms);
    }
  };
  return { t, mmu, map };
}

function errAddress(t: Rig): bigint {
  return (BigInt(t.r(R.ERRADDRH)) << 32n) | BigInt(t.r(R.ERRADDRL));
}

// ---------------------------------------------------------------------------
// Ring registers

Deno.test("bad tx ring: TDT beyond the ring stops it; nothing is fetched; TCTL restarts it", async () => {
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  t.w(R.IMS, E1000Icr.ERR);
  tx.queue(frameTo(OTHER, 64));
  t.w(R.TDT, 9);
  await t.run();
  equal(t.net.sent.length, 0);
  equal(t.r(R.TDH), 0);
  equal(tx.status(0), 0, "no descriptor was touched");
  equal(t.r(R.ERRCAUSE), E1000Err.TX_RING | E1000Err.TX_STOPPED);
  equal(t.env.level, true, "ERR raised the line (enabled in IMS)");
  equal(t.icr() & E1000Icr.ERR, E1000Icr.ERR);
  equal(t.r(R.ERRCOUNT), 1);
  // A stopped ring ignores tail writes until TCTL is written.
  t.w(R.TDT, 1);
  await t.run();
  equal(t.net.sent.length, 0);
  t.w(R.TCTL, 0x2 | 0x8);
  await t.run();
  equal(t.net.sent.length, 1);
  equal(t.r(R.ERRCAUSE) & E1000Err.TX_STOPPED, 0);
  t.w(R.ERRCAUSE, 0);
  equal(t.r(R.ERRCAUSE), 0);
});

Deno.test("bad tx ring: TDH beyond the ring, and a zero-length ring with work, stop it", async () => {
  for (
    const [what, setup] of [
      ["TDH 100 of 8", (t: Rig) => {
        t.w(R.TDH, 100);
        t.w(R.TDT, 1);
      }],
      ["TDLEN 0", (t: Rig) => {
        t.w(R.TDLEN, 0);
        t.w(R.TDT, 1);
      }],
    ] as const
  ) {
    const t = new Rig();
    new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
    setup(t);
    await t.run();
    equal(t.net.sent.length, 0, what);
    equal(t.r(R.ERRCAUSE), E1000Err.TX_RING | E1000Err.TX_STOPPED, what);
  }
  // A zero-length ring with nothing to do is fine (drivers program TDLEN after TCTL).
  const idle = new Rig();
  idle.w(R.TCTL, 2);
  idle.w(R.TDT, 0);
  await idle.run();
  equal(idle.r(R.ERRCAUSE), 0);
});

Deno.test("bad rx ring: RDT beyond the ring or RDLEN 0 stops it and drops the frame (MPC)", async () => {
  for (
    const [what, setup] of [
      ["RDT 70 of 8", (t: Rig) => t.w(R.RDT, 70)],
      ["RDLEN 0", (t: Rig) => t.w(R.RDLEN, 0)],
      ["RDH 9 of 8", (t: Rig) => t.w(R.RDH, 9)],
    ] as const
  ) {
    const t = new Rig();
    const rx = new RxRing(t, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 });
    setup(t);
    t.net.inbound.push(frameTo(NIC_MAC, 64));
    t.nic.onNetReceive();
    await t.run();
    equal(rx.descriptor(0).status, 0, what);
    equal(t.r(E1000Stat.MPC), 1, what);
    equal(t.r(R.ERRCAUSE), E1000Err.RX_RING | E1000Err.RX_STOPPED, what);
    // Fixed and restarted with RCTL, it receives again.
    t.w(R.RDLEN, 128);
    t.w(R.RDH, 0);
    t.w(R.RDT, 7);
    t.w(R.RCTL, 0x2 | 0x0400_0000);
    t.net.inbound.push(frameTo(NIC_MAC, 64, 9));
    t.nic.onNetReceive();
    await t.run();
    equal(rx.descriptor(0).status & 1, 1, `${what}: receiving again`);
  }
});

// ---------------------------------------------------------------------------
// Lengths and chains

Deno.test("absurd lengths: a chain beyond 16 KiB is dropped at EOP, not truncated; the ring goes on", async () => {
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  const l = tx.layout;
  // Three descriptors of 0xffff bytes each, then a good frame.
  for (let i = 0; i < 3; i++) {
    tx.descriptor(i, { address: l.buffers, length: 0xffff, cmd: IFCS | RS | (i === 2 ? EOP : 0) });
  }
  const good = frameTo(OTHER, 64);
  t.ram.write(l.buffers + 3 * 0x4000, good);
  tx.descriptor(3, { address: l.buffers + 3 * 0x4000, length: 64, cmd: EOP | IFCS | RS });
  t.w(R.TDT, 4);
  await t.run();
  deepEqual(t.net.sent, [good]);
  deepEqual([0, 1, 2, 3].map((i) => tx.status(i) & 1), [1, 1, 1, 1]);
  equal(t.r(R.ERRCAUSE), E1000Err.TX_TOO_LONG, "reported, ring not stopped");
  // An extended data descriptor's 20-bit length is just as harmless.
  tx.descriptor(4, {
    address: l.buffers,
    length: 0xf_ffff & 0xffff,
    cmd: EOP | IFCS | 0x20,
    lowerExtra: 0x001f_0000,
  });
  t.w(R.TDT, 5);
  await t.run();
  equal(t.net.sent.length, 1);
  equal(t.r(R.TDH), 5);
});

Deno.test("endless chain: a whole ring without EOP is consumed in bounded batches, nothing is sent", async () => {
  const t = new Rig();
  const count = 4096;
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count });
  for (let i = 0; i < count; i++) {
    tx.descriptor(i, { address: 0x20_0000, length: 4096, cmd: IFCS });
  }
  t.w(R.TDT, count - 1);
  const tasks = await t.run();
  ok(tasks >= (count - 1) / E1000_TX_BATCH, `yielded between batches (${tasks} tasks)`);
  equal(t.r(R.TDH), count - 1);
  equal(t.net.sent.length, 0);
  // The guest wraps the chain around forever: each tail write is bounded work.
  for (let round = 0; round < 3; round++) {
    t.w(R.TDT, (t.r(R.TDH) + count - 1) % count);
    await t.run();
  }
  equal(t.net.sent.length, 0);
  // An EOP finally ends the (too long) frame: dropped, reported; a good frame follows.
  const head = t.r(R.TDH);
  tx.descriptor(head, { address: 0x20_0000, length: 4, cmd: EOP | IFCS });
  const good = frameTo(OTHER, 64);
  t.ram.write(0x30_0000, good);
  tx.descriptor((head + 1) % count, { address: 0x30_0000, length: 64, cmd: EOP | IFCS });
  t.w(R.TDT, (head + 2) % count);
  await t.run();
  deepEqual(t.net.sent, [good]);
  equal(t.r(R.ERRCAUSE) & 0xff, E1000Err.TX_TOO_LONG);
});

// ---------------------------------------------------------------------------
// Faulting IOVAs (through an IOMMU; rings and buffers at IOVAs above 4 GiB)

Deno.test("through an IOMMU above 4 GiB: a good frame each way", async () => {
  const { t, map } = iommuRig();
  map(IOVA, 0x10_0000, 0x1000); // tx ring
  map(IOVA + 0x10_0000, 0x20_0000, 0x8000); // tx buffers
  map(IOVA + 0x20_0000, 0x30_0000, 0x1000); // rx ring
  map(IOVA + 0x30_0000, 0x40_0000, 0x20000); // rx buffers
  const tx = new TxRing(t, {
    ring: IOVA,
    ringPhys: 0x10_0000,
    buffers: IOVA + 0x10_0000,
    buffersPhys: 0x20_0000,
    count: 8,
    stride: 0x1000,
  });
  const rx = new RxRing(t, {
    ring: IOVA + 0x20_0000,
    ringPhys: 0x30_0000,
    buffers: IOVA + 0x30_0000,
    buffersPhys: 0x40_0000,
    count: 8,
    stride: 0x4000,
  });
  const out = frameTo(OTHER, 1514);
  await tx.send(out);
  deepEqual(t.net.sent, [out]);
  const inbound = frameTo(NIC_MAC, 1514, 5);
  t.net.inbound.push(inbound);
  t.nic.onNetReceive();
  await t.run();
  deepEqual(rx.take(), inbound);
  equal(t.r(R.ERRCAUSE), 0);
});

Deno.test("tx descriptor at a faulting IOVA: the ring stops at it; ERRCAUSE names the kind and IOVA", async () => {
  const { t } = iommuRig();
  new TxRing(t, {
    ring: IOVA,
    ringPhys: 0x10_0000,
    buffers: IOVA + 0x10_0000,
    buffersPhys: 0x20_0000,
    count: 8,
  });
  t.w(R.IMS, E1000Icr.ERR);
  t.w(R.TDT, 1);
  await t.run();
  equal(t.net.sent.length, 0);
  equal(t.r(R.TDH), 0);
  equal(t.r(R.ERRCAUSE), E1000Err.TX_DESCRIPTOR | kindCode("no-translation") | E1000Err.TX_STOPPED);
  equal(errAddress(t), BigInt(IOVA));
  equal(t.env.level, true);
  ok(t.env.logs.some((l) => l.includes("transmit ring stopped")));
});

Deno.test("tx buffer at a faulting IOVA: no frame at all (QEMU sends zeros), the ring stops at it", async () => {
  const { t, map } = iommuRig();
  map(IOVA, 0x10_0000, 0x1000);
  map(IOVA + 0x10_0000, 0x20_0000, 0x1000); // only the first buffer page
  const tx = new TxRing(t, {
    ring: IOVA,
    ringPhys: 0x10_0000,
    buffers: IOVA + 0x10_0000,
    buffersPhys: 0x20_0000,
    count: 8,
    stride: 0x1000,
  });
  // A two-descriptor frame whose second buffer is unmapped.
  t.ram.write(0x20_0000, frameTo(OTHER, 64));
  tx.descriptor(0, { address: IOVA + 0x10_0000, length: 64, cmd: IFCS | RS });
  tx.descriptor(1, { address: IOVA + 0x18_0000, length: 64, cmd: EOP | IFCS | RS });
  t.w(R.TDT, 2);
  await t.run();
  equal(t.net.sent.length, 0, "neither a partial nor an all-zero frame");
  equal(t.r(R.TDH), 1, "stopped at the faulting descriptor");
  equal(tx.status(0) & 1, 1);
  equal(tx.status(1) & 1, 0);
  equal(t.r(R.ERRCAUSE), E1000Err.TX_BUFFER | kindCode("no-translation") | E1000Err.TX_STOPPED);
  equal(errAddress(t), BigInt(IOVA + 0x18_0000));
});

Deno.test("tx write-back to a read-only descriptor page: frame sent, ring stops after it", async () => {
  const { t, map } = iommuRig();
  map(IOVA, 0x10_0000, 0x1000, Permission.Read);
  map(IOVA + 0x10_0000, 0x20_0000, 0x8000);
  const tx = new TxRing(t, {
    ring: IOVA,
    ringPhys: 0x10_0000,
    buffers: IOVA + 0x10_0000,
    buffersPhys: 0x20_0000,
    count: 8,
    stride: 0x1000,
  });
  tx.queue(frameTo(OTHER, 64));
  tx.queue(frameTo(OTHER, 64, 2));
  tx.kick();
  await t.run();
  equal(t.net.sent.length, 1);
  equal(t.r(R.TDH), 1);
  equal(t.r(R.ERRCAUSE), E1000Err.TX_WRITEBACK | kindCode("permission") | E1000Err.TX_STOPPED);
  equal(errAddress(t), BigInt(IOVA + 12));
});

Deno.test("rx descriptor at a faulting IOVA: frame dropped (MPC), ring stopped, restarted by RCTL", async () => {
  const { t, map } = iommuRig();
  new RxRing(t, {
    ring: IOVA,
    ringPhys: 0x30_0000,
    buffers: IOVA + 0x10_0000,
    buffersPhys: 0x40_0000,
    count: 8,
  });
  t.net.inbound.push(frameTo(NIC_MAC, 64));
  t.nic.onNetReceive();
  await t.run();
  equal(t.r(E1000Stat.MPC), 1);
  equal(t.r(R.ERRCAUSE), E1000Err.RX_DESCRIPTOR | kindCode("no-translation") | E1000Err.RX_STOPPED);
  equal(errAddress(t), BigInt(IOVA));
  // While stopped, frames wait in the packet buffer; RCTL restarts the ring.
  map(IOVA, 0x30_0000, 0x1000);
  map(IOVA + 0x10_0000, 0x40_0000, 0x4_0000);
  t.net.inbound.push(frameTo(NIC_MAC, 64, 3));
  t.nic.onNetReceive();
  await t.run();
  equal(t.ram.read8(0x30_0000 + 12), 0);
  t.w(R.RCTL, 0x2 | 0x0400_0000);
  await t.run();
  equal(t.ram.read8(0x30_0000 + 12) & 1, 1);
});

Deno.test("rx buffer at a faulting IOVA: DD, EOP and RXE in the descriptor, ring stopped", async () => {
  const { t, map } = iommuRig();
  map(IOVA, 0x30_0000, 0x1000);
  const rx = new RxRing(t, {
    ring: IOVA,
    ringPhys: 0x30_0000,
    buffers: IOVA + 0x10_0000,
    buffersPhys: 0x40_0000,
    count: 8,
  });
  t.net.inbound.push(frameTo(NIC_MAC, 64));
  t.nic.onNetReceive();
  await t.run();
  const d = rx.descriptor(0);
  equal(d.status & 0x3, 0x3);
  equal(d.errors, 0x80, "RXE");
  equal(t.r(R.RDH), 1);
  equal(t.r(R.ERRCAUSE), E1000Err.RX_BUFFER | kindCode("no-translation") | E1000Err.RX_STOPPED);
  equal(errAddress(t), BigInt(IOVA + 0x10_0000));
});

Deno.test("rx descriptor on a read-only page: the write-back faults, the ring stops", async () => {
  const { t, map } = iommuRig();
  map(IOVA, 0x30_0000, 0x1000, Permission.Read);
  map(IOVA + 0x10_0000, 0x40_0000, 0x4_0000);
  new RxRing(t, {
    ring: IOVA,
    ringPhys: 0x30_0000,
    buffers: IOVA + 0x10_0000,
    buffersPhys: 0x40_0000,
    count: 8,
  });
  t.net.inbound.push(frameTo(NIC_MAC, 64));
  t.nic.onNetReceive();
  await t.run();
  equal(t.r(R.ERRCAUSE), E1000Err.RX_WRITEBACK | kindCode("permission") | E1000Err.RX_STOPPED);
  equal(t.ram.read8(0x30_0000 + 12), 0, "no DD anywhere");
});

Deno.test("addresses beyond 2^53 and in the MMIO hole are master aborts, reported exactly", async () => {
  // Ring base with TDBAH = 0xffffffff.
  const t = new Rig();
  new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  t.w(R.TDBAH, 0xffff_ffff);
  t.w(R.TDT, 1);
  await t.run();
  equal(t.r(R.ERRCAUSE), E1000Err.TX_DESCRIPTOR | kindCode("outside-ram") | E1000Err.TX_STOPPED);
  equal(errAddress(t), 0xffff_ffff_0010_0000n);
  // A buffer address beyond 2^53.
  const b = new Rig();
  const tx = new TxRing(b, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  b.ram.write64(0x10_0000, 0xfff0_0000_0000_0000n);
  b.ram.write32(0x10_0008, ((EOP | IFCS | RS) << 24) | 64);
  b.w(R.TDT, 1);
  await b.run();
  equal(b.net.sent.length, 0);
  equal(b.r(R.ERRCAUSE) & 0xffff, E1000Err.TX_BUFFER | kindCode("outside-ram"));
  equal(tx.status(0), 0);
  // The descriptor ring inside the PCI hole (where BARs, its own included, live).
  const hole = new Rig();
  new TxRing(hole, { ring: 0xfebf_0000, buffers: 0x20_0000, count: 8 });
  hole.w(R.TDT, 1);
  await hole.run();
  equal(hole.r(R.ERRCAUSE), E1000Err.TX_DESCRIPTOR | kindCode("mmio-target") | E1000Err.TX_STOPPED);
  // An RX buffer beyond 2^53: RXE in the descriptor.
  const r = new Rig();
  const rx = new RxRing(r, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 });
  r.ram.write64(0x30_0000, 0xffff_ffff_ffff_f000n);
  r.net.inbound.push(frameTo(NIC_MAC, 64));
  r.nic.onNetReceive();
  await r.run();
  equal(rx.descriptor(0).errors, 0x80);
  equal(r.r(R.ERRCAUSE) & 0xffff, E1000Err.RX_BUFFER | kindCode("outside-ram"));
});

Deno.test("receive descriptors without a buffer are passed over; an all-null ring cannot hang", async () => {
  const t = new Rig();
  const rx = new RxRing(t, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 });
  t.ram.write64(0x30_0000, 0n); // descriptor 0 has no buffer
  const frame = frameTo(NIC_MAC, 64);
  t.net.inbound.push(frame);
  t.nic.onNetReceive();
  await t.run();
  deepEqual([rx.descriptor(0).status, rx.descriptor(0).length], [1, 0], "done, empty");
  equal(rx.descriptor(1).status, 7);
  deepEqual(rx.buffer(1, 64), frame);
  // Every descriptor without a buffer: consumed once, the frame waits, no loop.
  const n = new Rig();
  new RxRing(n, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 });
  for (let i = 0; i < 8; i++) n.ram.write64(0x30_0000 + i * 16, 0n);
  n.net.inbound.push(frameTo(NIC_MAC, 64));
  n.nic.onNetReceive();
  await n.run();
  equal(n.r(R.RDH), 7);
  equal(n.r(E1000Stat.RNBC), 1);
  equal(n.r(E1000Stat.GPRC), 0);
});

Deno.test("TSO contexts that cannot work drop the packet: MSS 0, header beyond the data, too many segments", async () => {
  for (
    const [what, hdrLen, mss, paylen] of [
      ["MSS 0", 54, 0, 100],
      ["header shorter than Ethernet", 10, 100, 100],
      ["checksum offsets beyond the header", 20, 100, 100],
      ["more than 1024 segments", 54, 1, 5000],
    ] as const
  ) {
    const t = new Rig();
    const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
    const ctx = 0x10_0000;
    t.ram.write8(ctx + 0, 14);
    t.ram.write8(ctx + 1, 24);
    t.ram.write8(ctx + 4, 34);
    t.ram.write8(ctx + 5, 50);
    t.ram.write32(ctx + 8, ((0x20 | 0x04 | 0x02 | 0x01) << 24) | paylen);
    t.ram.write8(ctx + 13, hdrLen);
    t.ram.write16(ctx + 14, mss);
    tx.descriptor(1, {
      address: 0x20_0000,
      length: 54 + paylen,
      cmd: EOP | IFCS | RS | 0x20 | 0x04,
      lowerExtra: 0x0010_0000,
      upper: 0x0200,
    });
    t.w(R.TDT, 2);
    await t.run();
    equal(t.net.sent.length, 0, what);
    equal(t.r(R.ERRCAUSE) & 0xff, E1000Err.TX_TSO, what);
    equal(tx.status(1) & 1, 1, `${what}: the descriptor completes`);
  }
});

Deno.test("a TSO context in the middle of a segmented packet drops the packet (found by the fuzzer)", async () => {
  // The fuzzer's case: a packet started under a usable context (header 54,
  // MSS 1000), then a context with a 255-byte header and a 64 KiB MSS, then
  // a 20000-byte buffer: segmenting on with the new context gathered more
  // than the 16 KiB frame buffer holds and the device model threw.
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  const context = (index: number, hdrLen: number, mss: number, paylen: number) => {
    const at = 0x10_0000 + index * 16;
    t.ram.write8(at + 0, 14);
    t.ram.write8(at + 1, 24);
    t.ram.write8(at + 4, 34);
    t.ram.write8(at + 5, 50);
    t.ram.write32(at + 8, (((0x20 | 0x04 | 0x02 | 0x01) << 24) | paylen) >>> 0);
    t.ram.write8(at + 13, hdrLen);
    t.ram.write16(at + 14, mss);
  };
  const data = (index: number, length: number, cmd: number) =>
    tx.descriptor(index, {
      address: 0x20_0000,
      length,
      cmd: cmd | RS | 0x20 | 0x04,
      lowerExtra: 0x0010_0000,
      upper: 0x0200,
    });
  context(0, 54, 1000, 2500);
  data(1, 500, IFCS);
  context(2, 255, 0xffff, 20_000);
  data(3, 20_000, EOP | IFCS);
  t.w(R.TDT, 4);
  await t.run();
  equal(t.net.sent.length, 0, "nothing of the packet is sent");
  equal(t.r(R.ERRCAUSE) & 0xff, E1000Err.TX_TSO);
  equal(tx.status(3) & 1, 1, "its descriptors complete");
  equal(t.r(R.TDH), 4);
  // The next packet is segmented under the context then in force.
  context(4, 54, 1000, 1500);
  data(5, 54 + 1500, EOP | IFCS);
  t.w(R.TDT, 6);
  await t.run();
  deepEqual(t.net.sent.map((s) => s.length), [1054, 554]);
});

Deno.test("Bus Master Enable clear: the engines wait without errors, then go on", async () => {
  let master = false;
  const t = new Rig({ dma: { busMaster: () => master } });
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  new RxRing(t, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 });
  await tx.send(frameTo(OTHER, 64));
  t.net.inbound.push(frameTo(NIC_MAC, 64));
  t.nic.onNetReceive();
  await t.run();
  equal(t.net.sent.length, 0);
  equal(t.r(R.ERRCAUSE), 0);
  master = true;
  t.w(R.TDT, 1);
  t.w(R.RDT, 7);
  await t.run();
  equal(t.net.sent.length, 1);
  equal(t.ram.read8(0x30_0000 + 12) & 1, 1);
});

Deno.test("no TX → RX → TX loop: a received frame that writes descriptors cannot start a transmit", async () => {
  const t = new Rig();
  const tx = new TxRing(t, { ring: 0x10_0000, buffers: 0x20_0000, count: 8 });
  // The hostile guest points every receive buffer at its own transmit ring
  // and turns on MAC loopback: the frame it sends is a block of valid
  // transmit descriptors, which the receiver writes into the transmit ring.
  const rx = new RxRing(t, { ring: 0x30_0000, buffers: 0x10_0000, count: 8, stride: 0 });
  t.w(R.RCTL, 0x2 | 0x8 | 0x0400_0000 | 0x40); // EN, UPE, SECRC, MAC loopback
  const payload = new Uint8Array(128);
  const v = new DataView(payload.buffer);
  for (let i = 0; i < 8; i++) {
    v.setBigUint64(i * 16, 0x20_0000n, true);
    v.setUint32(i * 16 + 8, ((EOP | IFCS | RS) << 24) | 128, true);
  }
  t.ram.write(0x20_0000, payload);
  tx.descriptor(0, { address: 0x20_0000, length: 128, cmd: EOP | IFCS | RS });
  t.w(R.TDT, 1);
  await t.run();
  equal(rx.descriptor(0).status & 1, 1, "looped back into the transmit ring");
  deepEqual(t.ram.view(0x10_0000 + 16, 16), payload.subarray(16, 32));
  // Transmit ran once, for the guest's one TDT write; the descriptors the
  // receiver wrote are not fetched until the guest moves TDT again.
  equal(t.r(R.TDH), 1);
  equal(t.r(E1000Stat.TPT), 1);
  equal(t.r(E1000Stat.TPR), 1);
  equal(t.net.sent.length, 0);
  t.w(R.TDT, 3);
  await t.run();
  equal(t.r(E1000Stat.TPT), 2, "two more, only because the guest asked");
});

Deno.test("a frame needing more buffers than the whole ring is lost (MPC, RXO), not a deadlock", async () => {
  const t = new Rig();
  // 8 descriptors of 256 bytes: at most 7 are the device's, 1792 bytes.
  const rx = new RxRing(t, { ring: 0x30_0000, buffers: 0x40_0000, count: 8 }, {
    rctl: 0x2 | 0x0400_0000 | (3 << 16) | 0x20,
  });
  t.w(R.IMS, E1000Icr.RXO);
  t.net.inbound.push(frameTo(NIC_MAC, 4000), frameTo(NIC_MAC, 200));
  t.nic.onNetReceive();
  await t.run();
  equal(t.r(E1000Stat.MPC), 1);
  equal(t.env.level, true);
  equal(rx.descriptor(0).length, 200, "the next frame was received");
});
