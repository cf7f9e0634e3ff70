/**
 * The main isolate's link to one device worker's IOTLB: answers its
 * translation misses, fills its snapshot, and carries invalidations to it
 * (snapshot entries removed first, then the shared generation bumped and the
 * scope sent over the IOMMU MessageChannel) until it acknowledges or its
 * InvTimeOut expires.
 *
 * @module
 */

import type { MainHub } from "../machine/main_hub.ts";
import { ringDoorbell, type WakeTarget } from "../shared/doorbell.ts";
import { DteState, SnapshotHeader, TargetCtrl, TargetState } from "../shared/layout.ts";
import { FOUR_GIB } from "../util/address.ts";
import { type SnapshotDte, type SnapshotTranslation, SnapshotWriter } from "./iotlb_snapshot.ts";
import type { InvalidationMessage, InvalidationScope, PrefetchMessage } from "./snapshot_mmu.ts";

/** The IOMMU's answer to a translation request. */
export type TranslationAnswer =
  | {
    readonly ok: true;
    /** IOVA where the answered run starts. */
    readonly iovaBase: number;
    /** Physical address of `iovaBase`. */
    readonly physBase: number;
    /** Length of the run in bytes. */
    readonly length: number;
    /** Permission bits. */
    readonly perms: number;
  }
  | { readonly ok: false; readonly kind: "no-translation" | "permission" };

/** What the IOMMU model provides to a link. */
export interface TranslationSource {
  /**
   * Translates (and logs a fault in the event log when it fails).
   *
   * @param rid Requester id.
   * @param iova Address.
   * @param access 1 read, 2 write.
   * @returns The answer.
   */
  resolve(rid: number, iova: number, access: number): TranslationAnswer;
  /**
   * Publishes what the snapshot may cache for `rid` around `iova` after a
   * successful resolve: the device-table record and translations (the page
   * and its valid neighbours).
   *
   * @param rid Requester id.
   * @param iova Address.
   * @param pages Most translations to return (default: the source's neighbourhood size).
   * @returns The record and the translations to cache.
   */
  fill(
    rid: number,
    iova: number,
    pages?: number,
  ): { dte: SnapshotDte; translations: SnapshotTranslation[] };
}

/** Largest range one prefetch hint fills (bytes): bounds the main isolate's work per hint. */
const PREFETCH_LIMIT = 4 * 1024 * 1024;

/** How an invalidation ended for one worker. */
export type InvalidationOutcome = "acknowledged" | "timed-out" | "failed";

/** Options for {@linkcode WorkerLink}. */
export interface WorkerLinkOptions {
  /** Device id (for messages). */
  readonly id: string;
  /** The requester ids the worker issues DMA as. */
  readonly rids: readonly number[];
  /** The device's target block words. */
  readonly ctrl: Int32Array;
  /** The main end of the IOMMU channel. */
  readonly port: MessagePort;
  /** Where to ring the worker's doorbell. */
  readonly wake: () => WakeTarget | undefined;
  /** The IOMMU. */
  readonly source: TranslationSource;
  /**
   * Fault injection for checking the checkers: complete invalidations without
   * waiting for the worker's acknowledgement (a protocol bug on purpose).
   */
  readonly skipAcknowledgement?: boolean;
}

/**
 * One worker's IOTLB, seen from the main isolate.
 *
 * @example
 * Both ends in one thread (in a machine, the `SnapshotMmu` runs in the
 * device's worker): a fill publishes a page, an invalidation removes it and
 * completes when the worker side acknowledges.
 *
 * ```ts
 * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
 * import { SnapshotMmu } from "./snapshot_mmu.ts";
 * import { MainHub } from "../machine/main_hub.ts";
 * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
 * import { equal } from "node:assert/strict";
 *
 * // An IOMMU stand-in mapping IOVA 0x10000 to 0x200000 for requester 0x20.
 * const source: TranslationSource = {
 *   resolve: () => ({ ok: true, iovaBase: 0x10000, physBase: 0x200000, length: 4096, perms: 3 }),
 *   fill: (rid) => ({
 *     dte: { rid, state: DteState.Translate, perms: 3, domain: 1, exclusion: undefined },
 *     translations: [
 *       { rid, shift: 12, iovaBase: 0x10000, physBase: 0x200000, perms: 3, domain: 1 },
 *     ],
 *   }),
 * };
 * const hub = new MainHub();
 * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
 * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
 * const channel = new MessageChannel();
 * const link = new WorkerLink(hub, {
 *   id: "dev0",
 *   rids: [0x20],
 *   ctrl,
 *   port: channel.port1,
 *   wake: () => ({ postMessage: () => mmu.poll() }),
 *   source,
 * });
 * const mmu = new SnapshotMmu({
 *   snapshot: link.snapshot.buffer,
 *   ctrl,
 *   mainCtrl: hub.words,
 *   toMain: { postMessage: () => hub.wake() },
 * });
 * channel.port2.onmessage = (e) => mmu.onInvalidation(e.data);
 * try {
 *   link.prefetch(0x20, 0x10000);
 *   equal(mmu.translateCached(0x20, 0x10010, "read")?.address, 0x200010);
 *   equal(await link.invalidate({ kind: "all" }, 1000), "acknowledged");
 *   equal(mmu.translateCached(0x20, 0x10010, "read"), undefined);
 * } finally {
 *   link.close();
 *   hub.close();
 *   channel.port2.close();
 * }
 * ```
 */
export class WorkerLink {
  /** Device id. */
  readonly id: string;
  /** Requester ids served. */
  readonly rids: readonly number[];
  /** The snapshot. */
  readonly snapshot: SnapshotWriter;
  /** Counters kept by the main isolate. */
  readonly counters: { fills: number; invalidations: number; timeouts: number } = {
    fills: 0,
    invalidations: 0,
    timeouts: 0,
  };
  #hub: MainHub;
  #ctrl: Int32Array;
  #port: MessagePort;
  #wake: () => WakeTarget | undefined;
  #source: TranslationSource;
  #gen: number;
  #domains = new Set<number>();
  #words: Int32Array;
  #skipAck: boolean;

  /**
   * Creates the link and starts serving misses.
   *
   * @param hub The main hub.
   * @param options The worker's words, channel and the IOMMU.
   */
  constructor(hub: MainHub, options: WorkerLinkOptions) {
    this.id = options.id;
    this.rids = options.rids;
    this.snapshot = new SnapshotWriter();
    this.#words = new Int32Array(this.snapshot.buffer);
    this.#hub = hub;
    this.#ctrl = options.ctrl;
    this.#port = options.port;
    this.#wake = options.wake;
    this.#source = options.source;
    this.#skipAck = options.skipAcknowledgement ?? false;
    this.#gen = Atomics.load(this.#ctrl, TargetCtrl.INV_REQ_GEN);
    hub.addTask({ step: () => this.#serveMiss(), hasWork: () => this.#missPending() });
    this.#port.onmessage = (event: MessageEvent<PrefetchMessage>) =>
      this.#prefetchRange(event.data);
  }

  /**
   * A worker's hint that it will use `[iova, iova + length)` soon: publishes
   * the valid translations of the range (at most {@linkcode PREFETCH_LIMIT}
   * bytes), as misses would, but without the worker waiting. Invalid pages
   * are skipped silently (a hint never logs a fault).
   */
  #prefetchRange(message: PrefetchMessage): void {
    if (message?.type !== "prefetch" || !this.rids.includes(message.rid) || !this.alive) return;
    const { rid, iova } = message;
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(message.length) || iova < 0) return;
    const end = Math.min(iova + Math.min(message.length, PREFETCH_LIMIT), Number.MAX_SAFE_INTEGER);
    let at = Math.floor(iova / 4096) * 4096;
    while (at < end) {
      const { dte, translations } = this.#source.fill(rid, at, Math.ceil((end - at) / 4096));
      this.snapshot.setDte(dte);
      this.#domains.add(dte.domain);
      if (translations.length === 0) return; // a hole, or no translation at all: stop
      for (const t of translations) {
        this.snapshot.insert(t);
        this.counters.fills++;
      }
      const last = translations[translations.length - 1]!;
      at = last.iovaBase + 2 ** last.shift;
    }
  }

  /**
   * Whether the worker is alive.
   *
   * @example
   * ```ts
   * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const page = { shift: 12, perms: 3, domain: 1 };
   * const source: TranslationSource = { // maps each page to twice its IOVA
   *   resolve: () => ({ ok: false, kind: "no-translation" }),
   *   fill: (rid, iova) => ({
   *     dte: { rid, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined },
   *     translations: [{ ...page, rid, iovaBase: iova, physBase: 2 * iova }],
   *   }),
   * };
   * const hub = new MainHub();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
   * const { port1: port, port2 } = new MessageChannel();
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port, wake: () => undefined, source,
   * });
   * equal(link.alive, true);
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Failed); // the worker died
   * equal(link.alive, false);
   * equal(await link.invalidate({ kind: "all" }, 1000), "failed");
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  get alive(): boolean {
    return Atomics.load(this.#ctrl, TargetCtrl.STATE) === TargetState.Running;
  }

  #missPending(): boolean {
    const w = this.#words;
    return Atomics.load(w, SnapshotHeader.MISS_REQ_SEQ) !==
      Atomics.load(w, SnapshotHeader.MISS_RESP_SEQ);
  }

  #serveMiss(): boolean {
    const w = this.#words;
    const seq = Atomics.load(w, SnapshotHeader.MISS_REQ_SEQ);
    if (seq === Atomics.load(w, SnapshotHeader.MISS_RESP_SEQ)) return false;
    const rid = Atomics.load(w, SnapshotHeader.MISS_RID);
    const iova = (Atomics.load(w, SnapshotHeader.MISS_IOVA_HI) >>> 0) * FOUR_GIB +
      (Atomics.load(w, SnapshotHeader.MISS_IOVA_LO) >>> 0);
    const access = Atomics.load(w, SnapshotHeader.MISS_ACCESS);
    const answer = this.rids.includes(rid)
      ? this.#source.resolve(rid, iova, access)
      : { ok: false as const, kind: "no-translation" as const };
    if (answer.ok) {
      this.#publish(rid, iova);
      const put = (index: number, value: number) => {
        Atomics.store(w, index, value % FOUR_GIB | 0);
        Atomics.store(w, index + 1, Math.floor(value / FOUR_GIB) | 0);
      };
      Atomics.store(w, SnapshotHeader.MISS_STATUS, 0);
      put(SnapshotHeader.MISS_BASE_LO, answer.iovaBase);
      put(SnapshotHeader.MISS_PHYS_LO, answer.physBase);
      put(SnapshotHeader.MISS_LEN_LO, answer.length);
      Atomics.store(w, SnapshotHeader.MISS_PERMS, answer.perms);
    } else {
      Atomics.store(w, SnapshotHeader.MISS_STATUS, answer.kind === "permission" ? 2 : 1);
    }
    Atomics.store(w, SnapshotHeader.MISS_RESP_SEQ, seq);
    Atomics.notify(w, SnapshotHeader.MISS_RESP_SEQ);
    return true;
  }

  #publish(rid: number, iova: number): void {
    const { dte, translations } = this.#source.fill(rid, iova);
    this.snapshot.setDte(dte);
    this.#domains.add(dte.domain);
    for (const t of translations) {
      this.snapshot.insert(t);
      this.counters.fills++;
    }
  }

  /**
   * Pre-fills the snapshot (PREFETCH_IOMMU_PAGES).
   *
   * @param rid Requester id.
   * @param iova Address.
   *
   * @example
   * ```ts
   * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const page = { shift: 12, perms: 3, domain: 1 };
   * const source: TranslationSource = { // maps each page to twice its IOVA
   *   resolve: () => ({ ok: false, kind: "no-translation" }),
   *   fill: (rid, iova) => ({
   *     dte: { rid, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined },
   *     translations: [{ ...page, rid, iovaBase: iova, physBase: 2 * iova }],
   *   }),
   * };
   * const hub = new MainHub();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
   * const { port1: port, port2 } = new MessageChannel();
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port, wake: () => undefined, source,
   * });
   * link.prefetch(0x20, 0x10000);
   * equal(link.snapshot.translations()[0]?.physBase, 0x20000);
   * link.prefetch(0x28, 0x10000); // not one of this worker's requesters
   * equal(link.snapshot.size, 1);
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  prefetch(rid: number, iova: number): void {
    if (this.rids.includes(rid) && this.alive) this.#publish(rid, iova);
  }

  /**
   * Whether an invalidation with `scope` may concern this worker.
   *
   * @param scope The scope.
   * @returns `true` when the worker must be told.
   *
   * @example
   * ```ts
   * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const page = { shift: 12, perms: 3, domain: 1 };
   * const source: TranslationSource = { // maps each page to twice its IOVA
   *   resolve: () => ({ ok: false, kind: "no-translation" }),
   *   fill: (rid, iova) => ({
   *     dte: { rid, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined },
   *     translations: [{ ...page, rid, iovaBase: iova, physBase: 2 * iova }],
   *   }),
   * };
   * const hub = new MainHub();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
   * const { port1: port, port2 } = new MessageChannel();
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port, wake: () => undefined, source,
   * });
   * equal(link.concerns({ kind: "all" }), true);
   * equal(link.concerns({ kind: "device", rid: 0x28, start: 0, end: 0xfff }), false);
   * equal(link.concerns({ kind: "domain", domain: 1, start: 0, end: 0xfff }), false);
   * link.prefetch(0x20, 0x10000); // now the snapshot holds domain 1
   * equal(link.concerns({ kind: "domain", domain: 1, start: 0, end: 0xfff }), true);
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  concerns(scope: InvalidationScope): boolean {
    switch (scope.kind) {
      case "all":
        return true;
      case "domain":
        return this.#domains.has(scope.domain);
      case "device":
        return this.rids.includes(scope.rid);
    }
  }

  /**
   * Invalidates: removes the matching snapshot entries, bumps the worker's
   * generation, sends the scope, and resolves when the worker acknowledges,
   * dies, or `timeoutMs` passes (then the caller must stop the worker).
   *
   * @param scope What to invalidate.
   * @param timeoutMs The InvTimeOut in ms (`Infinity` for none).
   * @returns How it ended.
   *
   * @example Without an acknowledgement the InvTimeOut expires
   * ```ts
   * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const page = { shift: 12, perms: 3, domain: 1 };
   * const source: TranslationSource = { // maps each page to twice its IOVA
   *   resolve: () => ({ ok: false, kind: "no-translation" }),
   *   fill: (rid, iova) => ({
   *     dte: { rid, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined },
   *     translations: [{ ...page, rid, iovaBase: iova, physBase: 2 * iova }],
   *   }),
   * };
   * const hub = new MainHub();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
   * const { port1: port, port2 } = new MessageChannel();
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port, wake: () => undefined, source,
   * });
   * link.prefetch(0x20, 0x10000);
   * // No worker side acknowledges here: the entry goes at once, the wait times out.
   * const scope = { kind: "device", rid: 0x20, start: 0, end: 0xfffff } as const;
   * equal(await link.invalidate(scope, 10), "timed-out");
   * equal(link.snapshot.size, 0);
   * equal(link.counters.timeouts, 1);
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  async invalidate(scope: InvalidationScope, timeoutMs: number): Promise<InvalidationOutcome> {
    if (!this.alive) return "failed";
    this.#removeEntries(scope);
    const gen = (this.#gen = (this.#gen + 1) | 0);
    Atomics.store(this.#ctrl, TargetCtrl.INV_REQ_GEN, gen);
    this.counters.invalidations++;
    this.#port.postMessage({ type: "invalidate", gen, scope } satisfies InvalidationMessage);
    const wake = this.#wake();
    if (wake) ringDoorbell(this.#ctrl, wake);
    if (this.#skipAck) return "acknowledged"; // injected bug: do not wait
    const acked = () =>
      ((Atomics.load(this.#ctrl, TargetCtrl.INV_ACK_GEN) - gen) | 0) >= 0 || !this.alive;
    const ok = await this.#hub.until(acked, timeoutMs);
    if (!this.alive) return "failed";
    if (ok) return "acknowledged";
    this.counters.timeouts++;
    return "timed-out";
  }

  #removeEntries(scope: InvalidationScope): void {
    switch (scope.kind) {
      case "all":
        this.snapshot.clearAll();
        this.#domains.clear();
        return;
      case "domain":
        this.snapshot.remove((t) =>
          t.domain === scope.domain && t.iovaBase <= scope.end &&
          scope.start < t.iovaBase + 2 ** t.shift
        );
        return;
      case "device":
        this.snapshot.remove((t) =>
          t.rid === scope.rid && t.iovaBase <= scope.end && scope.start < t.iovaBase + 2 ** t.shift
        );
        return;
    }
  }

  /**
   * Withdraws a requester's device-table record and its translations
   * (INVALIDATE_DEVTAB_ENTRY).
   *
   * @param rid Requester id.
   *
   * @example
   * ```ts
   * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
   * import { SnapshotReader } from "./iotlb_snapshot.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const page = { shift: 12, perms: 3, domain: 1 };
   * const source: TranslationSource = { // maps each page to twice its IOVA
   *   resolve: () => ({ ok: false, kind: "no-translation" }),
   *   fill: (rid, iova) => ({
   *     dte: { rid, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined },
   *     translations: [{ ...page, rid, iovaBase: iova, physBase: 2 * iova }],
   *   }),
   * };
   * const hub = new MainHub();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
   * const { port1: port, port2 } = new MessageChannel();
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port, wake: () => undefined, source,
   * });
   * link.prefetch(0x20, 0x10000);
   * link.dropDevice(0x20);
   * const reader = new SnapshotReader(link.snapshot.buffer);
   * equal(reader.dte(0x20), undefined);
   * equal(reader.lookup(0x20, 0x10000), undefined);
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  dropDevice(rid: number): void {
    this.snapshot.clearDte(rid);
    this.snapshot.remove((t) => t.rid === rid);
  }

  /**
   * Publishes a pass-through record for every requester (IOMMU disabled):
   * used when the IOMMU is switched off, so workers stop asking.
   *
   * @example
   * ```ts
   * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
   * import { SnapshotReader } from "./iotlb_snapshot.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const page = { shift: 12, perms: 3, domain: 1 };
   * const source: TranslationSource = { // maps each page to twice its IOVA
   *   resolve: () => ({ ok: false, kind: "no-translation" }),
   *   fill: (rid, iova) => ({
   *     dte: { rid, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined },
   *     translations: [{ ...page, rid, iovaBase: iova, physBase: 2 * iova }],
   *   }),
   * };
   * const hub = new MainHub();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
   * const { port1: port, port2 } = new MessageChannel();
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port, wake: () => undefined, source,
   * });
   * link.publishPassThrough();
   * equal(new SnapshotReader(link.snapshot.buffer).dte(0x20)?.state, DteState.PassThrough);
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  publishPassThrough(): void {
    for (const rid of this.rids) {
      this.snapshot.setDte({
        rid,
        state: DteState.PassThrough,
        perms: 3,
        domain: 0,
        exclusion: undefined,
      });
    }
  }

  /**
   * Closes the channel.
   *
   * @example
   * ```ts
   * import { type TranslationSource, WorkerLink } from "./worker_link.ts";
   * import { MainHub } from "../machine/main_hub.ts";
   * import { DteState, TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
   * import { equal } from "node:assert/strict";
   * const page = { shift: 12, perms: 3, domain: 1 };
   * const source: TranslationSource = { // maps each page to twice its IOVA
   *   resolve: () => ({ ok: false, kind: "no-translation" }),
   *   fill: (rid, iova) => ({
   *     dte: { rid, state: DteState.Translate, perms: 0, domain: 1, exclusion: undefined },
   *     translations: [{ ...page, rid, iovaBase: iova, physBase: 2 * iova }],
   *   }),
   * };
   * const hub = new MainHub();
   * const ctrl = new Int32Array(new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4));
   * Atomics.store(ctrl, TargetCtrl.STATE, TargetState.Running); // the worker is up
   * const { port1: port, port2 } = new MessageChannel();
   * const link = new WorkerLink(hub, {
   *   id: "dev0", rids: [0x20], ctrl, port, wake: () => undefined, source,
   * });
   * link.close();
   * port2.postMessage({ type: "prefetch", rid: 0x20, iova: 0x10000, length: 0x1000 });
   * await new Promise((resolve) => setTimeout(resolve, 10));
   * equal(link.counters.fills, 0); // the worker's hints no longer arrive
   * link.close();
   * hub.close();
   * port2.close();
   * ```
   */
  close(): void {
    this.#port.close();
  }
}
