// A test IOMMU: 4 KiB IOVA pages mapped to arbitrary physical pages with
// per-page permissions, counting every call, with optional pin support.
import {
  type DmaAccess,
  type Mmu,
  type MmuPin,
  type MmuResult,
  Permission,
} from "../../src/dma/mmu.ts";

/** Bytes per page. */
export const PAGE = 4096;

/** One recorded `translate` call. */
export interface TranslateCall {
  readonly requesterId: number;
  readonly iova: number;
  readonly length: number;
  readonly access: DmaAccess;
}

/** One live pin. */
export interface TestPin {
  readonly requesterId: number;
  readonly iova: number;
  readonly length: number;
  readonly onInvalidate: () => void;
  releases: number;
}

interface PageEntry {
  readonly phys: number;
  readonly perms: number;
}

/** Options of {@linkcode PageMmu}. */
export interface PageMmuOptions {
  /**
   * Report physically contiguous neighbouring pages (same permissions) as one
   * run, as a real IOMMU with large pages would; default: one page per answer.
   */
  coalesce?: boolean;
  /** Implement `pin` (default true). */
  pins?: boolean;
}

/** The test IOMMU. */
export class PageMmu implements Mmu {
  readonly calls: TranslateCall[] = [];
  readonly pins: TestPin[] = [];
  beginCount = 0;
  #pages = new Map<number, PageEntry>();
  #coalesce: boolean;
  pin?: (
    requesterId: number,
    iova: number,
    length: number,
    onInvalidate: () => void,
  ) => MmuPin;

  constructor(options: PageMmuOptions = {}) {
    this.#coalesce = options.coalesce ?? false;
    if (options.pins ?? true) {
      this.pin = (requesterId, iova, length, onInvalidate) => {
        const pin: TestPin = { requesterId, iova, length, onInvalidate, releases: 0 };
        this.pins.push(pin);
        return { release: () => void pin.releases++ };
      };
    }
  }

  /** Maps IOVA page `iovaPage` to physical page `physPage`. */
  mapPage(iovaPage: number, physPage: number, perms: number = Permission.ReadWrite): this {
    this.#pages.set(iovaPage, { phys: physPage * PAGE, perms });
    return this;
  }

  /** Removes a page's translation. */
  unmapPage(iovaPage: number): void {
    this.#pages.delete(iovaPage);
  }

  /** `endTransaction` calls. */
  endCount = 0;
  /** Transactions currently open (begin without end). */
  depth = 0;
  /** The deepest nesting seen. */
  maxDepth = 0;
  /** Called at every `endTransaction`, before the count moves. */
  onEnd: (() => void) | undefined;

  beginTransaction(): void {
    this.beginCount++;
    this.depth++;
    if (this.depth > this.maxDepth) this.maxDepth = this.depth;
  }

  endTransaction(): void {
    this.onEnd?.();
    this.endCount++;
    this.depth--;
  }

  translate(requesterId: number, iova: number, length: number, access: DmaAccess): MmuResult {
    this.calls.push({ requesterId, iova, length, access });
    const page = Math.floor(iova / PAGE);
    const entry = this.#pages.get(page);
    if (!entry) return { ok: false, kind: "no-translation" };
    const need = access === "read" ? Permission.Read : Permission.Write;
    if ((entry.perms & need) === 0) return { ok: false, kind: "permission" };
    const offset = iova - page * PAGE;
    let run = PAGE - offset;
    if (this.#coalesce) {
      for (let next = page + 1; run < length; next++) {
        const n = this.#pages.get(next);
        if (!n || n.phys !== entry.phys + (next - page) * PAGE || n.perms !== entry.perms) break;
        run += PAGE;
      }
    }
    return { ok: true, address: entry.phys + offset, length: run, permissions: entry.perms };
  }

  /** Calls the invalidation callback of every unreleased pin overlapping the range. */
  invalidate(iova: number, length: number): number {
    let n = 0;
    for (const pin of this.pins) {
      if (pin.releases > 0) continue;
      if (pin.iova < iova + length && iova < pin.iova + pin.length) {
        pin.onInvalidate();
        n++;
      }
    }
    return n;
  }
}
