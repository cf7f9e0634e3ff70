// The invalidation protocol between the main isolate's WorkerLink and a
// worker's SnapshotMmu, driven in one thread: snapshot entries disappear
// before the generation moves, live mappings delay the acknowledgement until
// they are released, and an acknowledgement never comes early.
import { deepEqual, equal, ok } from "node:assert/strict";
import { DmaContext } from "../../src/dma/dma_context.ts";
import { SnapshotMmu } from "../../src/iommu/snapshot_mmu.ts";
import { type TranslationSource, WorkerLink } from "../../src/iommu/worker_link.ts";
import { MainHub } from "../../src/machine/main_hub.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../../src/shared/layout.ts";

const RID = 0x20;
const DOMAIN = 7;
const PAGE = 4096;

/** Publishes four 4 KiB pages at 0x100000 in DOMAIN; never answers misses. */
const source: TranslationSource = {
  resolve: () => ({ ok: false, kind: "no-translation" }),
  fill: (rid) => ({
    dte: { rid, state: DteState.Translate, perms: 3, domain: DOMAIN, exclusion: undefined },
    translations: Array.from({ length: 4 }, (_, i) => ({
      rid,
      shift: 12,
      iovaBase: 0x10_0000 + i * PAGE,
      physBase: 0x20_0000 + i * PAGE,
      perms: 3,
      domain: DOMAIN,
    })),
  }),
};

function rig() {
  const hub = new MainHub();
  const words = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
  Atomics.store(words, TargetCtrl.STATE, TargetState.Running);
  const channel = new MessageChannel();
  const link = new WorkerLink(hub, {
    id: "dev0",
    rids: [RID],
    ctrl: words,
    port: channel.port1,
    wake: () => ({ postMessage: () => mmu.poll() }),
    source,
  });
  const mmu = new SnapshotMmu({
    snapshot: link.snapshot.buffer,
    ctrl: words,
    mainCtrl: hub.words,
    toMain: { postMessage: () => hub.wake() },
  });
  channel.port2.onmessage = (e) => mmu.onInvalidation(e.data);
  link.prefetch(RID, 0x10_0000); // publish the DTE record and the pages, as a fill does
  const ram = new GuestMemory({ size: 16 << 20 });
  const dma = new DmaContext(ram, { requesterId: RID, mmu });
  return {
    hub,
    link,
    mmu,
    dma,
    words,
    close: () => {
      hub.close();
      link.close();
      channel.port2.close();
    },
  };
}

Deno.test("an invalidation removes snapshot entries before the generation moves", async () => {
  const t = rig();
  try {
    equal(t.dma.read(0x10_0000, new Uint8Array(16)).ok, true);
    const done = t.link.invalidate({
      kind: "domain",
      domain: DOMAIN,
      start: 0x10_0000,
      end: 0x10_0fff,
    }, 1000);
    // Synchronously after invalidate(): the entry is gone and the generation moved.
    equal(t.link.snapshot.translations().some((x) => x.iovaBase === 0x10_0000), false);
    equal(t.link.snapshot.translations().length, 3);
    ok(
      Atomics.load(t.words, TargetCtrl.INV_REQ_GEN) !==
        Atomics.load(t.words, TargetCtrl.INV_ACK_GEN),
    );
    equal(await done, "acknowledged");
    // The worker's caches were dropped: the page now misses (and, with no main
    // isolate to answer in this thread, the miss times out as a fault).
  } finally {
    t.close();
  }
});

Deno.test("a live mapping delays the acknowledgement until it is released", async () => {
  const t = rig();
  try {
    const invalidated: number[] = [];
    const m = t.dma.map(0x10_1000, PAGE, {
      access: "write",
      onInvalidate: (x) => invalidated.push(x.address),
    });
    ok(m.ok);
    let settled = false;
    const done = t.link.invalidate({
      kind: "domain",
      domain: DOMAIN,
      start: 0x10_1000,
      end: 0x10_1fff,
    }, 2000)
      .then((r) => {
        settled = true;
        return r;
      });
    await new Promise((r) => setTimeout(r, 30));
    deepEqual(invalidated, [0x10_1000], "the mapping's invalidation callback ran");
    equal(m.mapping.invalidated, true);
    equal(settled, false, "no acknowledgement while the mapping is live");
    m.mapping.release();
    equal(await done, "acknowledged");
  } finally {
    t.close();
  }
});

Deno.test("a mapping outside the invalidated range does not delay it", async () => {
  const t = rig();
  try {
    const invalidated: number[] = [];
    const m = t.dma.map(0x10_2000, PAGE, { onInvalidate: (x) => invalidated.push(x.address) });
    ok(m.ok);
    equal(
      await t.link.invalidate(
        { kind: "domain", domain: DOMAIN, start: 0x10_0000, end: 0x10_0fff },
        2000,
      ),
      "acknowledged",
    );
    deepEqual(invalidated, []);
    equal(m.mapping.invalidated, false);
    m.mapping.release();
  } finally {
    t.close();
  }
});

Deno.test("a mapping made after the invalidation was published is not affected by it", async () => {
  const t = rig();
  try {
    const done = t.link.invalidate({ kind: "all" }, 2000);
    // Re-publish the translation (main refills after the removal) and map it.
    t.link.snapshot.setDte({
      rid: RID,
      state: DteState.Translate,
      perms: 3,
      domain: DOMAIN,
      exclusion: undefined,
    });
    t.link.snapshot.insert({
      rid: RID,
      shift: 12,
      iovaBase: 0x10_3000,
      physBase: 0x30_0000,
      perms: 3,
      domain: DOMAIN,
    });
    const invalidated: number[] = [];
    const m = t.dma.map(0x10_3000, PAGE, { onInvalidate: (x) => invalidated.push(x.address) });
    ok(m.ok);
    equal(await done, "acknowledged");
    deepEqual(invalidated, []);
    m.mapping.release();
  } finally {
    t.close();
  }
});

Deno.test("a mapping that is never released makes the invalidation time out", async () => {
  const t = rig();
  try {
    const m = t.dma.map(0x10_0000, PAGE);
    ok(m.ok);
    equal(
      await t.link.invalidate({ kind: "device", rid: RID, start: 0, end: 2 ** 53 - 1 }, 50),
      "timed-out",
    );
    equal(t.link.counters.timeouts, 1);
    m.mapping.release();
  } finally {
    t.close();
  }
});
