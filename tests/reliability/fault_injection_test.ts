// Fault injection: disks that fail (full, bad sectors, failing flush, dying),
// and an IDE worker killed, crashed or stalled in the middle of a DMA
// transfer, of an IOMMU invalidation and of a flush. Every time the machine
// survives, the guest sees the failure (an ATA error, or the failed device's
// all-ones), COMPLETION_WAIT completes, and the other device (edu) keeps
// working. Faults are injected at points the test has observed (a transfer
// running, BSY set, the worker reporting that its stall began), never after
// a sleep.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { MachineEvent } from "../../src/machine/machine.ts";
import { pattern } from "../ide/pattern.ts";
import {
  BM,
  BUF,
  eduWorks,
  endDma,
  flush,
  flushDomain,
  ideSession,
  type Io,
  iommuEvents,
  iommuUp,
  MIB,
  startDma,
  submit,
  taskFileLba,
  tempImage,
  until,
} from "./rig.ts";
import { commands } from "../../src/iommu/commands.ts";

const ERR = 0x01;
const ABRT = 0x04;
const UNC = 0x40;
const BSY = 0x80;
const SEM2 = 0x23_0100;
/** How long a stall lasts when the test means "until something ends it". */
const FOREVER_MS = 120_000;

function failures(io: Io): string[] {
  const seen: string[] = [];
  io.machine!.onEvent((e: MachineEvent) => {
    if (e.type === "device-failed") seen.push(`${e.id}: ${e.reason}`);
  });
  return seen;
}

async function writeDma(io: Io, lba: number, data: Uint8Array, buffer = BUF) {
  await io.write(buffer, data);
  await startDma(io, { write: true, lba, count: data.length / 512, buffer });
  return await endDma(io);
}

async function readDma(io: Io, lba: number, count: number, buffer = BUF) {
  await io.memset(buffer, count * 512, 0);
  await startDma(io, { write: false, lba, count, buffer });
  const end = await endDma(io);
  return { ...end, data: await io.read(buffer, count * 512) };
}

/** Asserts that every IDE register the guest can reach reads all-ones. */
async function readsAllOnes(io: Io): Promise<void> {
  equal(await io.inb(0x1f7), 0xff, "status reads all-ones");
  equal(await io.inb(0x3f6), 0xff, "alternate status reads all-ones");
  equal(await io.inb(BM + 2), 0xff, "BMIS reads all-ones");
  await io.outb(0x1f7, 0xec); // dropped, no hang
}

// ---- Disks that fail ----

Deno.test("a disk that fills up: a write needing space ends with ERR/ABRT, rewrites and reads still work", async () => {
  await using io = await ideSession([
    { id: "d0", size: 4 * MIB, faults: { spaceBytes: 16 * 512 } },
  ]);
  const failed = failures(io);
  const first = await writeDma(io, 0, pattern(16 * 512, 3));
  equal(first.status & ERR, 0, "the first 16 sectors fit");
  const full = await writeDma(io, 100, pattern(8 * 512, 4));
  equal(full.status & (ERR | BSY), ERR, "no space: the guest sees ERR");
  equal(full.error, ABRT);
  equal(full.bmis & 0x07, 0x04, "interrupt, engine stopped, no BMIS Error (not a bus error)");
  equal(await taskFileLba(io), 100, "the task file names the first sector not written");
  const rewrite = await writeDma(io, 0, pattern(16 * 512, 5));
  equal(rewrite.status & ERR, 0, "rewriting sectors already written needs no space");
  const back = await readDma(io, 0, 16);
  equal(back.status & ERR, 0);
  deepEqual(back.data, pattern(16 * 512, 5));
  const never = await readDma(io, 100, 8);
  equal(never.status & ERR, 0);
  deepEqual(never.data, new Uint8Array(8 * 512), "the failed write wrote nothing");
  ok(await eduWorks(io));
  deepEqual(failed, []);
});

Deno.test("bad sectors: a read that touches one ends with ERR/UNC, others read fine", async () => {
  await using io = await ideSession([{
    id: "d0",
    size: 4 * MIB,
    faults: { badReadSectors: [40] },
  }]);
  const failed = failures(io);
  const good = await writeDma(io, 32, pattern(16 * 512, 7));
  equal(good.status & ERR, 0, "writes of the bad sector work (only reads fail)");
  const bad = await readDma(io, 32, 16);
  equal(bad.status & (ERR | BSY), ERR);
  equal(bad.error, UNC);
  equal(bad.bmis & 0x07, 0x04);
  equal(await taskFileLba(io), 32, "the LBA of the chunk that failed");
  const before = await readDma(io, 32, 8);
  equal(before.status & ERR, 0);
  deepEqual(before.data, pattern(16 * 512, 7).subarray(0, 8 * 512));
  ok(await eduWorks(io));
  deepEqual(failed, []);
});

Deno.test("a bad sector in the second chunk of a write: ERR/ABRT at that chunk, the first chunk is on the disk", async () => {
  // 2 MiB in one command: the DMA engine writes 1 MiB chunks (2048 sectors).
  await using io = await ideSession([{
    id: "d0",
    size: 8 * MIB,
    faults: { badWriteSectors: [3000] },
  }]);
  const failed = failures(io);
  const data = pattern(2 * MIB, 12);
  const w = await writeDma(io, 0, data);
  equal(w.status & (ERR | BSY), ERR);
  equal(w.error, ABRT);
  equal(await taskFileLba(io), 2048, "the first sector of the chunk that failed");
  const back = await readDma(io, 0, 4096, BUF + 4 * MIB);
  equal(back.status & ERR, 0, "reads of the bad sector work (only writes fail)");
  deepEqual(back.data.subarray(0, MIB), data.subarray(0, MIB), "the first chunk was written");
  deepEqual(back.data.subarray(MIB), new Uint8Array(MIB), "the failed chunk was not");
  ok(await eduWorks(io));
  deepEqual(failed, []);
});

Deno.test("a flush that fails: FLUSH CACHE ends with ERR/ABRT and the drive goes on", async () => {
  await using io = await ideSession([{ id: "d0", size: 4 * MIB, faults: { failFlush: true } }]);
  const failed = failures(io);
  const r = await flush(io);
  equal(r.status & (ERR | BSY), ERR);
  equal(r.error, ABRT);
  const w = await writeDma(io, 0, pattern(512, 1));
  equal(w.status & ERR, 0);
  ok(await eduWorks(io));
  deepEqual(failed, []);
});

Deno.test("a disk that dies: every later command fails with an ATA error, the controller answers", async () => {
  await using io = await ideSession([
    { id: "d0", size: 4 * MIB, faults: { dieAfterOperations: 1 } },
  ]);
  const failed = failures(io);
  const first = await writeDma(io, 0, pattern(4096, 2));
  equal(first.status & ERR, 0, "one operation still works");
  const read = await readDma(io, 0, 8);
  equal(read.status & ERR, ERR);
  equal(read.error, UNC);
  const write = await writeDma(io, 8, pattern(4096, 2));
  equal(write.status & ERR, ERR);
  equal(write.error, ABRT);
  const f = await flush(io);
  equal(f.status & ERR, ERR);
  equal(f.error, ABRT);
  ok(await eduWorks(io));
  deepEqual(failed, [], "a failing disk is a guest-visible error, not a failed device");
});

// ---- Workers killed, crashed or stalled mid-DMA ----

for (const kind of ["kill-device", "crash-device"] as const) {
  Deno.test(`${kind} mid-DMA: the IDE controller reads all-ones, the machine and edu go on`, async () => {
    await using io = await ideSession([{ id: "d0", size: 64 * MIB, faults: { latencyMs: 20 } }]);
    const failed = failures(io);
    await startDma(io, { write: false, lba: 0, count: 32768 }); // 16 MiB, ≥ 16 disk reads of 20 ms
    equal(await io.inb(BM + 2) & 0x05, 0x01, "the transfer is running");
    await io.machine!.injectFault({ kind, device: "ide" });
    equal(failed.length, 1);
    match(failed[0]!, kind === "kill-device" ? /^ide: .*killed/ : /^ide: .*Injected crash/);
    await readsAllOnes(io);
    ok(await eduWorks(io));
    equal(failed.length, 1, "only the IDE controller failed");
  });
}

Deno.test("stalling the IDE worker mid-DMA for less than the access timeout: the transfer completes", async () => {
  // A disk read into poisoned RAM: while the worker is stalled, the end of
  // the buffer is still poison, so the stall began before the transfer ended.
  const data = pattern(8 * MIB, 9);
  await using image = await tempImage(data);
  await using io = await ideSession([{ id: "d0", file: image.path, faults: { latencyMs: 50 } }]);
  const failed = failures(io);
  await io.memset(BUF, data.length, 0xee);
  await startDma(io, { write: false, lba: 0, count: data.length / 512 }); // ≥ 8 reads of 50 ms
  equal(await io.inb(BM + 2) & 0x05, 0x01, "the transfer is running");
  await io.machine!.injectFault({ kind: "stall-device", device: "ide", ms: 300 });
  const tail = io.machine!.memory.read8(BUF + data.length - 1);
  equal(tail, 0xee, "the worker stalled mid-transfer");
  const end = await endDma(io);
  equal(end.status & (ERR | BSY), 0);
  equal(end.bmis & 0x07, 0x04, "interrupt, engine stopped, no error");
  deepEqual(await io.read(BUF, data.length), data);
  ok(await eduWorks(io));
  deepEqual(failed, []);
});

Deno.test("stalling the IDE worker mid-DMA beyond the access timeout: declared failed, others go on", async () => {
  await using io = await ideSession(
    [{ id: "d0", size: 64 * MIB, faults: { latencyMs: 20 } }],
    { accessTimeoutMs: 1000 },
  );
  const failed = failures(io);
  await startDma(io, { write: false, lba: 0, count: 32768 });
  equal(await io.inb(BM + 2) & 0x05, 0x01, "the transfer is running");
  await io.machine!.injectFault({ kind: "stall-device", device: "ide", ms: FOREVER_MS });
  // The first access after the stall began times out and fails the device.
  equal(await io.inb(BM + 2), 0xff);
  equal(failed.length, 1);
  match(failed[0]!, /^ide: .*(did not answer|stopped taking requests)/);
  await readsAllOnes(io);
  ok(await eduWorks(io));
});

// ---- Mid-invalidation ----

Deno.test("stalling the IDE worker while the IOMMU invalidates (InvTimeOut 1 ms): COMPLETION_WAIT completes", async () => {
  await using io = await ideSession(
    [{ id: "d0", size: 64 * MIB, faults: { latencyMs: 20 } }],
    { iommu: true },
  );
  const failed = failures(io);
  await iommuUp(io, { invTimeout: 1 });
  await startDma(io, { write: false, lba: 0, count: 32768 }); // through the IOMMU
  equal(await io.inb(BM + 2) & 0x05, 0x01, "the transfer is running");
  await io.machine!.injectFault({ kind: "stall-device", device: "ide", ms: FOREVER_MS });
  await flushDomain(io, 7n); // returns once COMPLETION_WAIT has stored its data
  const events = await iommuEvents(io);
  deepEqual(events.map((e) => [e.name, e.deviceId]), [["IOTLB_INV_TIMEOUT", 0x10]]);
  equal(failed.length, 1, "the timeout failed the device before the completion");
  match(failed[0]!, /^ide: .*did not acknowledge/);
  await readsAllOnes(io);
  ok(await eduWorks(io));
  await flushDomain(io, 8n); // later invalidations skip the stopped worker
  equal((await iommuEvents(io)).length, 1);
});

Deno.test("killing the IDE worker while a COMPLETION_WAIT waits for it: the wait completes", async () => {
  // InvTimeOut 0 ("none"): only the 60 s watchdog would end the wait. The
  // worker is stalled (so it does not acknowledge), then killed mid-wait.
  await using io = await ideSession(
    [{ id: "d0", size: 64 * MIB, faults: { latencyMs: 20 } }],
    { iommu: true, invalidationWatchdogMs: 60_000 },
  );
  const failed = failures(io);
  await iommuUp(io, { invTimeout: 0 });
  await startDma(io, { write: false, lba: 0, count: 32768 });
  equal(await io.inb(BM + 2) & 0x05, 0x01, "the transfer is running");
  await io.machine!.injectFault({ kind: "stall-device", device: "ide", ms: FOREVER_MS });
  await submit(io, commands.invalidatePages({ domainId: 1 }));
  await submit(io, commands.completionWait({ storeAddress: SEM2, storeData: 9n }));
  equal(io.machine!.memory.read64(SEM2), 0n, "the wait waits for the stalled worker");
  await io.machine!.injectFault({ kind: "kill-device", device: "ide" });
  await until(() => io.machine!.memory.read64(SEM2) === 9n);
  deepEqual(await iommuEvents(io), [], "a dead worker is not a timeout");
  equal(failed.length, 1);
  await readsAllOnes(io);
  ok(await eduWorks(io));
});

// ---- Mid-flush ----

Deno.test("killing the IDE worker mid-flush: the guest sees the failed device, edu goes on", async () => {
  // The flush never ends by itself: the disk takes longer than the test.
  await using io = await ideSession([
    { id: "d0", size: 4 * MIB, faults: { latencyMs: FOREVER_MS } },
  ]);
  const failed = failures(io);
  await io.outb(0x1f6, 0xa0);
  await io.outb(0x1f7, 0xe7); // FLUSH CACHE
  equal(await io.inb(0x3f6) & BSY, BSY, "the flush is in progress");
  await io.machine!.injectFault({ kind: "kill-device", device: "ide" });
  equal(failed.length, 1);
  await readsAllOnes(io);
  ok(await eduWorks(io));
});

Deno.test("stalling the IDE worker mid-flush: the flush completes after the stall", async () => {
  await using io = await ideSession([{ id: "d0", size: 4 * MIB, faults: { latencyMs: 1000 } }]);
  const failed = failures(io);
  await io.outb(0x1f6, 0xa0);
  await io.outb(0x1f7, 0xe7);
  equal(await io.inb(0x3f6) & BSY, BSY, "the flush is in progress");
  await io.machine!.injectFault({ kind: "stall-device", device: "ide", ms: 300 });
  let status = 0;
  while ((status = await io.inb(0x3f6)) & BSY) { /* poll */ }
  equal(status & ERR, 0);
  ok(await eduWorks(io));
  deepEqual(failed, []);
});

Deno.test("injectFault names an unknown device", async () => {
  await using io = await ideSession([{ id: "d0", size: 4 * MIB }]);
  let message = "";
  try {
    await io.machine!.injectFault({ kind: "kill-device", device: "nope" });
  } catch (error) {
    message = (error as Error).message;
  }
  equal(message, "Unknown device 'nope'");
});
