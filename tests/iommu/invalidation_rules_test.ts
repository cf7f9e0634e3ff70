// amd-vi.md §4 (ordering) and §5 (IOTLB_INV_TIMEOUT) at the model level: a
// fake link stands in for a worker's IOTLB (no worker is started). It records
// the invalidation scopes the commands send, and lets the test decide when
// (and whether) each one is acknowledged.
import { deepEqual, equal } from "node:assert/strict";
import { commands } from "../../src/iommu/commands.ts";
import type { InvalidationScope } from "../../src/iommu/snapshot_mmu.ts";
import type { InvalidationOutcome, WorkerLink } from "../../src/iommu/worker_link.ts";
import { MAX_ADDRESS } from "../../src/util/address.ts";
import { assertEvents, C, CMD_BUF, PAGE, R, Rig, SEM } from "./rig.ts";

/** A stand-in for a worker link: records calls, acknowledges on demand. */
class FakeLink {
  readonly id = "fake";
  readonly rids: readonly number[];
  readonly scopes: Array<{ scope: InvalidationScope; timeoutMs: number }> = [];
  readonly dropped: number[] = [];
  outcome: InvalidationOutcome = "acknowledged";
  /** When set, invalidations wait for {@linkcode FakeLink.release}. */
  hold = false;
  #waiting: Array<() => void> = [];

  constructor(rids: readonly number[]) {
    this.rids = rids;
  }
  concerns(scope: InvalidationScope): boolean {
    return scope.kind !== "device" || this.rids.includes(scope.rid);
  }
  invalidate(scope: InvalidationScope, timeoutMs: number): Promise<InvalidationOutcome> {
    this.scopes.push({ scope, timeoutMs });
    if (!this.hold) return Promise.resolve(this.outcome);
    return new Promise((resolve) => this.#waiting.push(() => resolve(this.outcome)));
  }
  release(): void {
    for (const go of this.#waiting.splice(0)) go();
  }
  dropDevice(rid: number): void {
    this.dropped.push(rid);
  }
  publishPassThrough(): void {}
  prefetch(): void {}
}

/** A rig with a fake link attached after init (so the setup flushes are not recorded). */
function rigWithLink(rids: readonly number[], failed: string[] = []): { rig: Rig; link: FakeLink } {
  const rig = new Rig({
    iommu: {
      failWorker: (_link, reason) => {
        failed.push(reason);
        return Promise.resolve();
      },
    },
  });
  const link = new FakeLink(rids);
  rig.iommu.attach(link as unknown as WorkerLink);
  return { rig, link };
}

Deno.test("Each invalidation command sends its scope to the links it concerns", async () => {
  const rows: Array<
    { name: string; words: [bigint, bigint]; scopes: InvalidationScope[]; dropped?: number[] }
  > = [
    {
      name: "INVALIDATE_IOMMU_PAGES one page",
      words: commands.invalidatePages({ domainId: 3, start: 0x5000, size: PAGE }),
      scopes: [{ kind: "domain", domain: 3, start: 0x5000, end: 0x5fff }],
    },
    {
      name: "INVALIDATE_IOMMU_PAGES 2 MiB",
      words: commands.invalidatePages({ domainId: 3, start: 0x20_0000, size: 0x20_0000 }),
      scopes: [{ kind: "domain", domain: 3, start: 0x20_0000, end: 0x3f_ffff }],
    },
    {
      name: "INVALIDATE_IOMMU_PAGES all",
      words: commands.invalidatePages({ domainId: 0xffff }),
      scopes: [{ kind: "domain", domain: 0xffff, start: 0, end: MAX_ADDRESS }],
    },
    {
      name: "INVALIDATE_DEVTAB_ENTRY (this device)",
      words: commands.invalidateDevtabEntry(0x18),
      scopes: [{ kind: "device", rid: 0x18, start: 0, end: MAX_ADDRESS }],
      dropped: [0x18],
    },
    {
      name: "INVALIDATE_DEVTAB_ENTRY (another device)",
      words: commands.invalidateDevtabEntry(0x19),
      scopes: [],
    },
    {
      name: "INVALIDATE_IOTLB_PAGES",
      words: commands.invalidateIotlbPages({ deviceId: 0x18, start: 0x4000, size: 0x4000 }),
      scopes: [{ kind: "device", rid: 0x18, start: 0x4000, end: 0x7fff }],
    },
    { name: "INVALIDATE_IOMMU_ALL", words: commands.invalidateAll(), scopes: [{ kind: "all" }] },
    {
      name: "INVALIDATE_INTERRUPT_TABLE",
      words: commands.invalidateInterruptTable(0x18),
      scopes: [],
    },
  ];
  for (const row of rows) {
    const { rig, link } = rigWithLink([0x18]);
    await rig.submit([row.words, commands.completionWait({ storeAddress: SEM, storeData: 1n })]);
    deepEqual(link.scopes.map((s) => s.scope), row.scopes, row.name);
    deepEqual(link.dropped, row.dropped ?? [], `${row.name}: snapshot DTE dropped`);
    equal(rig.memory.read64(SEM), 1n, `${row.name}: completed`);
    assertEvents(rig.events(), [], row.name);
  }
});

Deno.test("COMPLETION_WAIT completes only after every earlier invalidation is acknowledged", async () => {
  const { rig, link } = rigWithLink([0x18]);
  link.hold = true;
  rig.queue([
    commands.invalidatePages({ domainId: 3 }),
    commands.invalidateDevtabEntry(0x18),
    commands.completionWait({ storeAddress: SEM, storeData: 7n }),
    commands.completionWait({ storeAddress: SEM + 8, storeData: 8n }),
  ]);
  rig.write(R.CMD_TAIL, BigInt(rig.tail), 4);
  for (let i = 0; i < 20; i++) await Promise.resolve();
  equal(link.scopes.length, 2, "both invalidations sent");
  equal(rig.memory.read64(SEM), 0n, "no store before the acknowledgements");
  equal(rig.read(R.CMD_HEAD), 0x20n, "head at the waiting COMPLETION_WAIT");
  link.release();
  await rig.iommu.idle();
  equal(rig.memory.read64(SEM), 7n);
  equal(rig.memory.read64(SEM + 8), 8n);
  equal(rig.read(R.CMD_HEAD), 0x40n);
});

Deno.test("Control.InvTimeOut bounds the wait for an acknowledgement", async () => {
  const rows = [
    { code: 1n, ms: 1 },
    { code: 2n, ms: 10 },
    { code: 4n, ms: 1000 },
    { code: 6n, ms: 100_000 },
    { code: 0n, ms: 60_000 }, // none: the watchdog default
  ];
  for (const row of rows) {
    const { rig, link } = rigWithLink([0x18]);
    rig.setControl(row.code << C.INV_TIMEOUT_SHIFT, 7n << C.INV_TIMEOUT_SHIFT);
    link.scopes.length = 0;
    await rig.submit([commands.invalidateAll()]);
    deepEqual(link.scopes.map((s) => s.timeoutMs), [row.ms], `InvTimeOut ${row.code}`);
  }
});

Deno.test("IOTLB_INV_TIMEOUT: DeviceID and the timed-out command's address; the worker is failed", async () => {
  const failed: string[] = [];
  const { rig, link } = rigWithLink([0x1a, 0x1b], failed);
  link.outcome = "timed-out";
  await rig.submit([
    commands.invalidateAll(),
    commands.invalidatePages({ domainId: 2 }),
    commands.completionWait({ storeAddress: SEM, storeData: 1n }),
  ]);
  equal(rig.memory.read64(SEM), 1n, "the wait still completes");
  const events = rig.events();
  assertEvents(events, [
    { name: "IOTLB_INV_TIMEOUT", deviceId: 0x1a, address: BigInt(CMD_BUF) },
    { name: "IOTLB_INV_TIMEOUT", deviceId: 0x1a, address: BigInt(CMD_BUF + 16) },
  ], "events");
  equal(failed.length, 2);
  equal(rig.iommu.counters.timeouts, 2);
  // Raw format: code 7, DeviceID in q0[15:0], nothing else; q1[63:4] the command address.
  rig.write(R.EVT_HEAD, 0n, 4);
  deepEqual(rig.rawEvents(), [
    [(7n << 60n) | 0x1an, BigInt(CMD_BUF)],
    [(7n << 60n) | 0x1an, BigInt(CMD_BUF + 16)],
  ]);
});
