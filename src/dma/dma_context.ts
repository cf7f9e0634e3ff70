/**
 * The DMA API: a device's only way to touch guest memory.
 *
 * A `DmaContext` belongs to one requester id (bus:dev.fn). It translates every
 * access through its {@linkcode Mmu} (or takes the identity fast path when
 * there is none), checks Bus Master Enable, lets accesses reach RAM only, and
 * reports every failure as a typed {@linkcode DmaFault}.
 *
 * 64-bit loads and stores use `bigint`: descriptors and completion values are
 * full 64-bit quantities that must round-trip exactly, and a hi/lo pair would
 * push that bookkeeping into every device model. Byte streams (`read`,
 * `write`, `fill`, scatter-gather) never pay for it.
 *
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import { checkRange, FOUR_GIB } from "../util/address.ts";
import { DMA_OK, type DmaFault, dmaFault, type DmaLoad, type DmaResult } from "./dma_result.ts";
import type { DmaAccess, Mmu, MmuPin } from "./mmu.ts";
import type { SgList } from "./sg_list.ts";
import type { DmaTraceWriter } from "./dma_trace.ts";

/** Options for {@linkcode DmaContext}. */
export interface DmaContextOptions {
  /** PCI requester id (bus << 8 | dev << 3 | fn); default 0. */
  requesterId?: number;
  /** The IOMMU's view for this device; omit for direct (identity) access. */
  mmu?: Mmu;
  /** Returns whether Bus Master Enable is set; default: always enabled. */
  busMaster?: () => boolean;
  /**
   * Byte-swap every sized access on the bus (a bridge between buses of
   * opposite endianness). Byte streams are never swapped.
   */
  busByteSwap?: boolean;
  /** Record every run and fault in a DMA trace ring. */
  trace?: DmaTraceWriter;
  /**
   * Called with every contiguous run of RAM a DMA is about to read or write,
   * before any byte moves (fuzzing: `DmaInjector.observe` fills first reads
   * and checks the run). Off the fast path when absent.
   */
  observe?: DmaObserver;
}

/**
 * Sees each run of RAM a DMA resolved to, before its bytes move.
 *
 * @param address Guest-physical address of the run.
 * @param offset The run's offset in the RAM buffer.
 * @param length Bytes.
 * @param access Read (the device reads memory) or write.
 */
export type DmaObserver = (
  address: number,
  offset: number,
  length: number,
  access: DmaAccess,
) => void;

/** Options for {@linkcode DmaContext.map}. */
export interface DmaMapOptions {
  /** The access the mapping is for (default `read`). */
  access?: DmaAccess;
  /**
   * Called when the IOMMU invalidates any part of the mapping. The holder must
   * finish or abandon its use and call `release()`; the invalidation does not
   * complete before that.
   */
  onInvalidate?: (mapping: DmaMapping) => void;
}

/** A live mapping of guest RAM returned by {@linkcode DmaContext.map}. */
export interface DmaMapping {
  /** A view aliasing guest RAM; valid until released. */
  readonly view: Uint8Array<SharedArrayBuffer>;
  /** The IOVA the mapping starts at. */
  readonly address: number;
  /** Mapped length (may be shorter than requested). */
  readonly length: number;
  /** The access the mapping allows. */
  readonly access: DmaAccess;
  /** Whether an invalidation has revoked it (the view must no longer be used). */
  readonly invalidated: boolean;
  /** Whether it has been released. */
  readonly released: boolean;
  /** Releases the mapping (idempotent). */
  release(): void;
  /** Releases the mapping; lets callers write `using m = …`. */
  [Symbol.dispose](): void;
}

/** Outcome of {@linkcode DmaContext.map}. */
export type DmaMapResult = { readonly ok: true; readonly mapping: DmaMapping } | DmaFault;

class Mapping implements DmaMapping {
  readonly view: Uint8Array<SharedArrayBuffer>;
  readonly address: number;
  readonly length: number;
  readonly access: DmaAccess;
  invalidated = false;
  released = false;
  pin: MmuPin | undefined;
  #onRelease: (m: Mapping) => void;

  constructor(
    view: Uint8Array<SharedArrayBuffer>,
    address: number,
    access: DmaAccess,
    onRelease: (m: Mapping) => void,
  ) {
    this.view = view;
    this.address = address;
    this.length = view.length;
    this.access = access;
    this.#onRelease = onRelease;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.pin?.release();
    this.#onRelease(this);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

const SWAP_SCRATCH_SIZE = 8;
const PAGE_VIEW = 4096;
const VIEW_SLOTS = 512;

/**
 * A device's DMA context: `read`/`write`/`fill`, sized loads and stores in
 * both byte orders, scatter-gather lists and `map`/`unmap`.
 *
 * @example Identity DMA into guest RAM
 * ```ts
 * import { DmaContext } from "./dma_context.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 1 << 20 });
 * const dma = new DmaContext(ram, { requesterId: 0x20 });
 * equal(dma.st32le(0x100, 0x11223344).ok, true);
 * const v = dma.ld32be(0x100);
 * equal(v.ok && v.value, 0x44332211);
 * const bad = dma.ld8(0x1000_0000);
 * equal(bad.ok, false);
 * ```
 */
export class DmaContext {
  /** The requester id this context issues accesses as. */
  readonly requesterId: number;
  /** The guest RAM. */
  readonly memory: GuestMemory;
  #mmu: Mmu | undefined;
  #busMaster: () => boolean;
  #swap: boolean;
  #view: DataView<SharedArrayBuffer>;
  #bytes: Uint8Array<SharedArrayBuffer>;
  #scratch = new Uint8Array(SWAP_SCRATCH_SIZE);
  #scratchView = new DataView(this.#scratch.buffer);
  #live = new Set<Mapping>();
  // Results of #resolve, kept in fields to avoid an allocation per page.
  #offset = 0;
  #run = 0;
  #trace: DmaTraceWriter | undefined;
  #observe: DmaObserver | undefined;
  #viewPage = new Float64Array(VIEW_SLOTS).fill(-1);
  #views: Array<Uint8Array<SharedArrayBuffer> | undefined> = new Array(VIEW_SLOTS).fill(undefined);
  #traceIova = 0;
  #tracePhys = 0;
  #traceAccess: DmaAccess = "read";
  #tracePending = false;
  #traceContinued = false;

  /**
   * Creates a DMA context.
   *
   * @param memory Guest RAM.
   * @param options Requester id, MMU, bus-master gate, bus byte swap.
   */
  constructor(memory: GuestMemory, options: DmaContextOptions = {}) {
    this.memory = memory;
    this.requesterId = options.requesterId ?? 0;
    if (!Number.isInteger(this.requesterId) || this.requesterId < 0 || this.requesterId > 0xffff) {
      throw new RangeError(
        `Invalid requester id ${String(options.requesterId)}: must be 0 to 0xffff`,
      );
    }
    this.#mmu = options.mmu;
    this.#busMaster = options.busMaster ?? (() => true);
    this.#swap = options.busByteSwap ?? false;
    this.#trace = options.trace;
    this.#observe = options.observe;
    this.#bytes = memory.bytes;
    this.#view = new DataView(memory.buffer);
  }

  /**
   * The MMU in use, if any.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { IdentityMmu } from "./mmu.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * const mmu = new IdentityMmu();
   * equal(new DmaContext(ram, { mmu }).mmu, mmu);
   * equal(dma.mmu, undefined); // the identity fast path
   * ```
   */
  get mmu(): Mmu | undefined {
    return this.#mmu;
  }

  /**
   * Mappings not yet released.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, ok } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * const r = dma.map(0x1000, 0x100);
   * ok(r.ok);
   * equal(dma.liveMappings, 1);
   * r.mapping.release();
   * equal(dma.liveMappings, 0);
   * ```
   */
  get liveMappings(): number {
    return this.#live.size;
  }

  /**
   * Starts a transaction: checks bus mastering and lets the MMU revalidate.
   * Returns a fault when bus mastering is off.
   */
  #begin(address: number, access: DmaAccess): DmaFault | undefined {
    if (!this.#busMaster()) return dmaFault("bus-master-disabled", address, access, 0);
    this.#mmu?.beginTransaction?.();
    return undefined;
  }

  /** Ends a transaction started by a successful `#begin`. */
  #end(): void {
    this.#mmu?.endTransaction?.();
  }

  /**
   * Resolves up to `want` bytes at `iova` to a contiguous run of RAM: sets
   * `#offset` (buffer offset) and `#run` (bytes), or returns the fault.
   */
  #resolve(iova: number, want: number, access: DmaAccess, done: number): DmaFault | undefined {
    let phys = iova;
    let run = want;
    const mmu = this.#mmu;
    if (mmu !== undefined) {
      const t = mmu.translate(this.requesterId, iova, want, access);
      if (!t.ok) return this.#fault(dmaFault(t.kind, iova, access, done));
      phys = t.address;
      let length = t.length;
      if (length < run && mmu.translateCached) {
        // Merge the following pages while they are cached and physically contiguous.
        while (length < run) {
          const next = mmu.translateCached(this.requesterId, iova + length, access);
          if (next === undefined || next.address !== phys + length) break;
          length += next.length;
        }
      }
      if (length < run) run = length;
    }
    const memory = this.memory;
    let offset: number;
    if (phys + run <= memory.lowSize) {
      offset = phys;
    } else {
      run = memory.ramRunLength(phys, run);
      if (run === 0) {
        const kind = phys >= memory.lowSize && phys < FOUR_GIB ? "mmio-target" : "outside-ram";
        return this.#fault(dmaFault(kind, iova, access, done));
      }
      offset = memory.offsetOf(phys, run);
    }
    this.#offset = offset;
    this.#run = run;
    if (this.#observe !== undefined) this.#observe(phys, offset, run, access);
    if (this.#trace !== undefined) {
      this.#trace.begin();
      this.#traceIova = iova;
      this.#tracePhys = phys;
      this.#traceAccess = access;
      this.#traceContinued = done > 0;
      this.#tracePending = true;
    }
    return undefined;
  }

  /**
   * A view of `run` bytes of RAM at buffer offset `off`. Whole, aligned 4 KiB
   * pages come from a direct-mapped cache of page views, so a scattered
   * transfer does not allocate a view per page.
   */
  #source(off: number, run: number): Uint8Array<SharedArrayBuffer> {
    if (run !== PAGE_VIEW || off % PAGE_VIEW !== 0) return this.#bytes.subarray(off, off + run);
    const page = off / PAGE_VIEW;
    const slot = page & (VIEW_SLOTS - 1);
    if (this.#viewPage[slot] === page) return this.#views[slot]!;
    const view = this.#bytes.subarray(off, off + PAGE_VIEW);
    this.#viewPage[slot] = page;
    this.#views[slot] = view;
    return view;
  }

  /** Traces a fault and returns it. */
  #fault(fault: DmaFault): DmaFault {
    if (this.#trace !== undefined) {
      this.#trace.begin();
      this.#trace.record({
        requesterId: this.requesterId,
        access: fault.access,
        iova: fault.address,
        address: 0,
        length: 0,
        result: fault.kind,
        continued: fault.transferred > 0,
      });
    }
    return fault;
  }

  /** Traces the run resolved last, once its bytes have moved. */
  #moved(): void {
    if (!this.#tracePending) return;
    this.#tracePending = false;
    this.#trace!.record({
      requesterId: this.requesterId,
      access: this.#traceAccess,
      iova: this.#traceIova,
      address: this.#tracePhys,
      length: this.#run,
      result: "ok",
      continued: this.#traceContinued,
    });
  }

  /**
   * Copies `dest.length` bytes from DMA address `address` into `dest`.
   *
   * @param address Start IOVA.
   * @param dest Destination.
   * @returns Success, or the fault with the bytes copied before it.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write32(0x2000, 0x04030201);
   * const buf = new Uint8Array(4);
   * equal(dma.read(0x2000, buf).ok, true);
   * deepEqual([...buf], [1, 2, 3, 4]);
   * ```
   */
  read(address: number, dest: Uint8Array): DmaResult {
    checkRange(address, dest.length);
    const f = this.#begin(address, "read");
    if (f) return f;
    try {
      return this.#readRuns(address, dest);
    } finally {
      this.#end();
    }
  }

  /** The copy loop of `read`, inside a transaction. */
  #readRuns(address: number, dest: Uint8Array): DmaResult {
    const n = dest.length;
    let done = 0;
    while (done < n) {
      const fault = this.#resolve(address + done, n - done, "read", done);
      if (fault) return fault;
      const off = this.#offset;
      dest.set(this.#source(off, this.#run), done);
      this.#moved();
      done += this.#run;
    }
    return DMA_OK;
  }

  /**
   * Copies `src` to DMA address `address`.
   *
   * @param address Start IOVA.
   * @param src Source bytes.
   * @returns Success, or the fault with the bytes written before it.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, ok } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * const r = dma.write(0xffffe, new Uint8Array([1, 2, 3, 4])); // RAM ends after 2 bytes
   * ok(!r.ok);
   * equal(r.transferred, 2);
   * equal(r.kind, "mmio-target"); // the PCI hole starts where low RAM ends
   * equal(ram.read16(0xffffe), 0x0201);
   * ```
   */
  write(address: number, src: Uint8Array): DmaResult {
    checkRange(address, src.length);
    const f = this.#begin(address, "write");
    if (f) return f;
    try {
      return this.#writeRuns(address, src);
    } finally {
      this.#end();
    }
  }

  /** The copy loop of `write`, inside a transaction. */
  #writeRuns(address: number, src: Uint8Array): DmaResult {
    const n = src.length;
    let done = 0;
    while (done < n) {
      const fault = this.#resolve(address + done, n - done, "write", done);
      if (fault) return fault;
      this.#bytes.set(
        done === 0 && this.#run === n ? src : src.subarray(done, done + this.#run),
        this.#offset,
      );
      this.#moved();
      done += this.#run;
    }
    return DMA_OK;
  }

  /**
   * Fills `length` bytes at `address` with `value`.
   *
   * @param address Start IOVA.
   * @param length Number of bytes.
   * @param value Byte value (default 0).
   * @returns Success, or the fault with the bytes written before it.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.fill(0x3000, 8, 0xaa).ok, true);
   * equal(ram.read64(0x3000), 0xaaaa_aaaa_aaaa_aaaan);
   * equal(dma.fill(0x3000, 4).ok, true); // zeros by default
   * equal(ram.read64(0x3000), 0xaaaa_aaaa_0000_0000n);
   * ```
   */
  fill(address: number, length: number, value = 0): DmaResult {
    checkRange(address, length);
    const f = this.#begin(address, "write");
    if (f) return f;
    try {
      let done = 0;
      while (done < length) {
        const fault = this.#resolve(address + done, length - done, "write", done);
        if (fault) return fault;
        this.#bytes.fill(value, this.#offset, this.#offset + this.#run);
        this.#moved();
        done += this.#run;
      }
      return DMA_OK;
    } finally {
      this.#end();
    }
  }

  /**
   * Runs `work` as one DMA transaction: synchronous code that uses mapping
   * views (or several DMA calls that must see one consistent set of
   * translations) runs between the transaction's start (the invalidation
   * check) and end. Host I/O must not write into a mapping's view
   * asynchronously: a worker stopped for missing an invalidation deadline
   * could not stop the operating system's write, so device models move data
   * between guest memory and host I/O through their own buffers.
   *
   * @param work Synchronous work.
   * @returns What `work` returned, or the fault when bus mastering is off.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * let enabled = true;
   * const dma = new DmaContext(new GuestMemory({ size: 1 << 20 }), { busMaster: () => enabled });
   * equal(dma.transact(() => dma.st32le(0x100, 1).ok && dma.st32le(0x104, 2).ok), true);
   * enabled = false; // the guest cleared Bus Master Enable
   * const r = dma.transact(() => true);
   * equal(typeof r === "object" && r.kind, "bus-master-disabled");
   * ```
   */
  transact<T>(work: () => T): T | DmaFault {
    const f = this.#begin(0, "read");
    if (f) return f;
    try {
      return work();
    } finally {
      this.#end();
    }
  }

  /**
   * Reads the pieces of `sg` into `dest`, in order.
   *
   * @param sg The scatter-gather list.
   * @param dest Destination; at most `dest.length` bytes are read.
   * @returns Success, or the fault (its `transferred` counts from the list's start).
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { SgList } from "./sg_list.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write16(0x1000, 0x0201);
   * const sg = new SgList();
   * sg.add(0x1001, 1);
   * sg.add(0x1000, 1);
   * const out = new Uint8Array(2);
   * equal(dma.readSg(sg, out).ok, true);
   * deepEqual([...out], [2, 1]);
   * ```
   */
  readSg(sg: SgList, dest: Uint8Array): DmaResult {
    return this.#sg(sg, dest, "read");
  }

  /**
   * Writes `src` to the pieces of `sg`, in order.
   *
   * @param sg The scatter-gather list.
   * @param src Source; at most `src.length` bytes are written.
   * @returns Success, or the fault (its `transferred` counts from the list's start).
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { SgList } from "./sg_list.ts";
   * import { equal, ok } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * const sg = new SgList();
   * sg.add(0x2000, 2);
   * sg.add(0xfffff, 2); // the last byte of RAM, and one past it
   * const r = dma.writeSg(sg, new Uint8Array([1, 2, 3, 4]));
   * ok(!r.ok);
   * equal(r.transferred, 3); // counted from the start of the list
   * equal(ram.read8(0xfffff), 3);
   * ```
   */
  writeSg(sg: SgList, src: Uint8Array): DmaResult {
    return this.#sg(sg, src, "write");
  }

  #sg(sg: SgList, data: Uint8Array, access: DmaAccess): DmaResult {
    // One transaction for the whole list: the pieces' own calls nest inside it.
    const f = this.#begin(sg.entries[0]?.address ?? 0, access);
    if (f) return f;
    try {
      return this.#sgPieces(sg, data, access);
    } finally {
      this.#end();
    }
  }

  #sgPieces(sg: SgList, data: Uint8Array, access: DmaAccess): DmaResult {
    let pos = 0;
    for (const entry of sg.entries) {
      if (pos >= data.length) break;
      const len = Math.min(entry.length, data.length - pos);
      const part = data.subarray(pos, pos + len);
      checkRange(entry.address, len);
      const r = access === "read"
        ? this.#readRuns(entry.address, part)
        : this.#writeRuns(entry.address, part);
      if (!r.ok) return { ...r, transferred: pos + r.transferred };
      pos += len;
    }
    return DMA_OK;
  }

  /**
   * Maps up to `length` bytes at `address` for direct access. The mapping may
   * be shorter than asked (it ends where the translation stops being
   * physically contiguous); call again for the rest.
   *
   * @param address Start IOVA.
   * @param length Bytes wanted (≥ 1).
   * @param options Access direction and invalidation callback.
   * @returns The mapping, or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, ok } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * const r = dma.map(0xff000, 0x2000, { access: "write" });
   * ok(r.ok);
   * using mapping = r.mapping; // released at the end of the scope
   * equal(mapping.length, 0x1000); // RAM ends one page later
   * mapping.view[0] = 0x5a;
   * equal(ram.read8(0xff000), 0x5a);
   * ```
   */
  map(address: number, length: number, options: DmaMapOptions = {}): DmaMapResult {
    checkRange(address, length);
    if (length < 1) throw new RangeError("Cannot map 0 bytes");
    const access = options.access ?? "read";
    const f = this.#begin(address, access);
    if (f) return f;
    try {
      const fault = this.#resolve(address, length, access, 0);
      if (fault) return fault;
      const view = this.#bytes.subarray(this.#offset, this.#offset + this.#run);
      this.#moved(); // a mapping is traced once, when it is made
      const mapping = new Mapping(view, address, access, (m) => this.#live.delete(m));
      this.#live.add(mapping);
      const onInvalidate = options.onInvalidate;
      if (this.#mmu?.pin) {
        mapping.pin = this.#mmu.pin(this.requesterId, address, mapping.length, () => {
          mapping.invalidated = true;
          onInvalidate?.(mapping);
        });
      }
      return { ok: true, mapping };
    } finally {
      this.#end();
    }
  }

  /**
   * Hints that the device will soon access `length` bytes at `address`: an
   * IOMMU may fill the translations ahead (asynchronously). Nothing happens
   * without an IOMMU; a hint never faults and grants nothing.
   *
   * @param address Start IOVA.
   * @param length Bytes.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * const dma = new DmaContext(new GuestMemory({ size: 1 << 20 }));
   * dma.prefetch(0x1000, 0x10000); // no IOMMU: nothing to do
   * ```
   */
  prefetch(address: number, length: number): void {
    if (length > 0 && this.#mmu?.prefetch) {
      checkRange(address, length);
      this.#mmu.prefetch(this.requesterId, address, length);
    }
  }

  /**
   * Releases a mapping (same as `mapping.release()`).
   *
   * @param mapping The mapping.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, ok } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * const r = dma.map(0x1000, 64);
   * ok(r.ok);
   * dma.unmap(r.mapping);
   * equal(r.mapping.released, true);
   * equal(dma.liveMappings, 0);
   * ```
   */
  unmap(mapping: DmaMapping): void {
    mapping.release();
  }

  // Sized accesses. A fast path handles accesses inside one contiguous run;
  // the rest (crossing a page with a different translation) go through a
  // scratch buffer.

  #load(address: number, size: number): number {
    // Returns the buffer offset to read from, or -1 after filling the scratch
    // buffer; throws nothing: faults are returned by the callers.
    const fault = this.#resolve(address, size, "read", 0);
    if (fault) {
      this.#lastFault = fault;
      return -2;
    }
    if (this.#run >= size) return this.#offset; // the caller reads, then calls #moved()
    this.#tracePending = false; // the copy below traces its own runs
    const r = this.#readRuns(address, this.#scratch.subarray(0, size));
    if (!r.ok) {
      this.#lastFault = r;
      return -2;
    }
    return -1;
  }

  #lastFault: DmaFault | undefined;

  #loadValue(address: number, size: 1 | 2 | 4, le: boolean): DmaLoad<number> {
    checkRange(address, size);
    const f = this.#begin(address, "read");
    if (f) return f;
    try {
      const off = this.#load(address, size);
      if (off === -2) return this.#lastFault!;
      const view = off >= 0 ? this.#view : this.#scratchView;
      const at = off >= 0 ? off : 0;
      const little = le !== this.#swap;
      const value = size === 1
        ? view.getUint8(at)
        : size === 2
        ? view.getUint16(at, little)
        : view.getUint32(at, little);
      this.#moved();
      return { ok: true, value };
    } finally {
      this.#end();
    }
  }

  #loadBig(address: number, le: boolean): DmaLoad<bigint> {
    checkRange(address, 8);
    const f = this.#begin(address, "read");
    if (f) return f;
    try {
      const off = this.#load(address, 8);
      if (off === -2) return this.#lastFault!;
      const view = off >= 0 ? this.#view : this.#scratchView;
      const value = view.getBigUint64(off >= 0 ? off : 0, le !== this.#swap);
      this.#moved();
      return { ok: true, value };
    } finally {
      this.#end();
    }
  }

  #store(
    address: number,
    size: 1 | 2 | 4 | 8,
    fillScratch: (view: DataView, at: number) => void,
  ): DmaResult {
    checkRange(address, size);
    const f = this.#begin(address, "write");
    if (f) return f;
    try {
      const fault = this.#resolve(address, size, "write", 0);
      if (fault) return fault;
      if (this.#run >= size) {
        fillScratch(this.#view, this.#offset);
        this.#moved();
        return DMA_OK;
      }
      this.#tracePending = false; // the copy below traces its own runs
      fillScratch(this.#scratchView, 0);
      return this.#writeRuns(address, this.#scratch.subarray(0, size));
    } finally {
      this.#end();
    }
  }

  /**
   * Loads a byte.
   *
   * @param address IOVA.
   * @returns The value or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write8(0x10, 0x7f);
   * deepEqual(dma.ld8(0x10), { ok: true, value: 0x7f });
   * equal(dma.ld8(0x10_0000).ok, false); // past the end of RAM
   * ```
   */
  ld8(address: number): DmaLoad<number> {
    return this.#loadValue(address, 1, true);
  }
  /**
   * Loads a little-endian 16-bit value.
   *
   * @param address IOVA.
   * @returns The value or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write16(0x10, 0x1234);
   * deepEqual(dma.ld16le(0x10), { ok: true, value: 0x1234 });
   * ```
   */
  ld16le(address: number): DmaLoad<number> {
    return this.#loadValue(address, 2, true);
  }
  /**
   * Loads a big-endian 16-bit value.
   *
   * @param address IOVA.
   * @returns The value or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write16(0x10, 0x1234);
   * deepEqual(dma.ld16be(0x10), { ok: true, value: 0x3412 });
   * ```
   */
  ld16be(address: number): DmaLoad<number> {
    return this.#loadValue(address, 2, false);
  }
  /**
   * Loads a little-endian 32-bit value.
   *
   * @param address IOVA.
   * @returns The value or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write32(0x10, 0xdeadbeef);
   * deepEqual(dma.ld32le(0x10), { ok: true, value: 0xdeadbeef });
   * const swapped = new DmaContext(ram, { busByteSwap: true }); // an opposite-endian bridge
   * deepEqual(swapped.ld32le(0x10), { ok: true, value: 0xefbeadde });
   * ```
   */
  ld32le(address: number): DmaLoad<number> {
    return this.#loadValue(address, 4, true);
  }
  /**
   * Loads a big-endian 32-bit value.
   *
   * @param address IOVA.
   * @returns The value or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write(0x10, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
   * deepEqual(dma.ld32be(0x10), { ok: true, value: 0xdeadbeef });
   * ```
   */
  ld32be(address: number): DmaLoad<number> {
    return this.#loadValue(address, 4, false);
  }
  /**
   * Loads a little-endian 64-bit value.
   *
   * @param address IOVA.
   * @returns The value or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write64(0x10, 0x1122_3344_5566_7788n);
   * deepEqual(dma.ld64le(0x10), { ok: true, value: 0x1122_3344_5566_7788n });
   * const off = new DmaContext(ram, { busMaster: () => false });
   * equal(off.ld64le(0x10).ok, false);
   * ```
   */
  ld64le(address: number): DmaLoad<bigint> {
    return this.#loadBig(address, true);
  }
  /**
   * Loads a big-endian 64-bit value.
   *
   * @param address IOVA.
   * @returns The value or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * ram.write64(0x10, 0x0102_0304_0506_0708n);
   * deepEqual(dma.ld64be(0x10), { ok: true, value: 0x0807_0605_0403_0201n });
   * ```
   */
  ld64be(address: number): DmaLoad<bigint> {
    return this.#loadBig(address, false);
  }

  /**
   * Stores a byte.
   *
   * @param address IOVA.
   * @param value The value.
   * @returns Success or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.st8(0x10, 0xab).ok, true);
   * equal(ram.read8(0x10), 0xab);
   * ```
   */
  st8(address: number, value: number): DmaResult {
    return this.#store(address, 1, (v, at) => v.setUint8(at, value));
  }
  /**
   * Stores a little-endian 16-bit value.
   *
   * @param address IOVA.
   * @param value The value.
   * @returns Success or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.st16le(0x10, 0x1234).ok, true);
   * equal(ram.read16(0x10), 0x1234);
   * ```
   */
  st16le(address: number, value: number): DmaResult {
    return this.#store(address, 2, (v, at) => v.setUint16(at, value, !this.#swap));
  }
  /**
   * Stores a big-endian 16-bit value.
   *
   * @param address IOVA.
   * @param value The value.
   * @returns Success or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.st16be(0x10, 0x1234).ok, true);
   * equal(ram.read16(0x10), 0x3412);
   * ```
   */
  st16be(address: number, value: number): DmaResult {
    return this.#store(address, 2, (v, at) => v.setUint16(at, value, this.#swap));
  }
  /**
   * Stores a little-endian 32-bit value.
   *
   * @param address IOVA.
   * @param value The value.
   * @returns Success or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal, ok } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.st32le(0x10, 0x11223344).ok, true);
   * equal(ram.read32(0x10), 0x11223344);
   * const r = dma.st32le(0xffffe, 0x11223344); // straddles the end of RAM
   * ok(!r.ok);
   * equal(r.transferred, 2);
   * ```
   */
  st32le(address: number, value: number): DmaResult {
    return this.#store(address, 4, (v, at) => v.setUint32(at, value, !this.#swap));
  }
  /**
   * Stores a big-endian 32-bit value.
   *
   * @param address IOVA.
   * @param value The value.
   * @returns Success or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.st32be(0x10, 0x11223344).ok, true);
   * equal(ram.read32(0x10), 0x44332211);
   * ```
   */
  st32be(address: number, value: number): DmaResult {
    return this.#store(address, 4, (v, at) => v.setUint32(at, value, this.#swap));
  }
  /**
   * Stores a little-endian 64-bit value.
   *
   * @param address IOVA.
   * @param value The value.
   * @returns Success or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.st64le(0x10, -1n).ok, true); // stored as its two's complement
   * equal(ram.read64(0x10), 0xffff_ffff_ffff_ffffn);
   * ```
   */
  st64le(address: number, value: bigint): DmaResult {
    return this.#store(
      address,
      8,
      (v, at) => v.setBigUint64(at, BigInt.asUintN(64, value), !this.#swap),
    );
  }
  /**
   * Stores a big-endian 64-bit value.
   *
   * @param address IOVA.
   * @param value The value.
   * @returns Success or the fault.
   *
   * @example
   * ```ts
   * import { DmaContext } from "./dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const ram = new GuestMemory({ size: 1 << 20 });
   * const dma = new DmaContext(ram);
   * equal(dma.st64be(0x10, 0x0102_0304_0506_0708n).ok, true);
   * equal(ram.read8(0x10), 0x01);
   * equal(ram.read64(0x10), 0x0807_0605_0403_0201n);
   * ```
   */
  st64be(address: number, value: bigint): DmaResult {
    return this.#store(
      address,
      8,
      (v, at) => v.setBigUint64(at, BigInt.asUintN(64, value), this.#swap),
    );
  }
}
