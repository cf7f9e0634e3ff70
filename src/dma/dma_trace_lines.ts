/**
 * DMA trace records grouped into transactions (one DMA call of a device:
 * its contiguous runs and the fault that ended it, if any) and written as
 * one readable line each, for `-d dma` and `--dma-trace FILE`.
 *
 * A line is `key=value` fields separated by spaces:
 *
 * ```text
 * seq=12 machine=0 dev=00:02.0 name=ide dir=write iova=0xd0001000 gpa=0x1001000 len=65536 result=ok
 * ```
 *
 * `dir=read` is a device reading guest memory, `dir=write` a device writing
 * it. `gpa` is the guest-physical address, or `ADDR:LEN,ADDR:LEN…` when the
 * IOVAs map to scattered pages, or `-` when nothing moved. `len` is the
 * bytes moved; for a fault, `result` is the fault kind (`no-translation`,
 * `permission`, `outside-ram`, `mmio-target`, `bus-master-disabled`) and
 * `fault_iova` where it happened.
 *
 * @module
 */

import type { DmaFaultKind } from "./dma_result.ts";
import type { DmaAccess } from "./mmu.ts";
import type { DmaTraceRecord } from "./dma_trace.ts";

/** One DMA transaction. */
export interface DmaTransaction {
  /** The device's id. */
  readonly device: string;
  /** Its requester id. */
  readonly requesterId: number;
  /** `read`: the device read guest memory; `write`: it wrote it. */
  readonly access: DmaAccess;
  /** The first IOVA. */
  readonly iova: number;
  /** Bytes moved. */
  readonly length: number;
  /** The contiguous runs: guest-physical address and length. */
  readonly runs: ReadonlyArray<{ readonly address: number; readonly length: number }>;
  /** `ok`, or the kind of the fault that ended it. */
  readonly result: "ok" | DmaFaultKind;
  /** The IOVA that faulted. */
  readonly faultIova?: number;
  /**
   * The transaction's first runs were reported on a line of their own: its
   * device was descheduled between two runs for longer than the main
   * isolate waits between drains (rare; the two lines share the IOVA range).
   */
  readonly continued?: boolean;
}

interface Pending {
  device: string;
  requesterId: number;
  access: DmaAccess;
  iova: number;
  length: number;
  runs: Array<{ address: number; length: number }>;
  result: "ok" | DmaFaultKind;
  faultIova?: number;
  continued?: boolean;
  touched: boolean;
}

/**
 * Groups each device's records into transactions. A transaction that ends
 * with a fault is complete at once; one that succeeded is complete when the
 * device's next transaction starts, or when a drain brought no record of
 * the device ({@linkcode DmaTransactionGrouper.settle}, called after each
 * drain: a DMA call writes its records without pausing, so its last runs
 * arrive by the next drain), or on {@linkcode DmaTransactionGrouper.flush}.
 * Transactions of one device come out in order; the order across devices is
 * the order of the drains.
 *
 * @example
 * ```ts
 * import { DmaTransactionGrouper } from "./dma_trace_lines.ts";
 * import { equal } from "node:assert/strict";
 * const seen: number[] = [];
 * const grouper = new DmaTransactionGrouper((t) => seen.push(t.length));
 * const run = { requesterId: 0x20, access: "read" as const, result: "ok" as const, epochStart: 0, epochEnd: 0 };
 * grouper.push("edu0", [
 *   { ...run, iova: 0x1000, address: 0x9000, length: 4096 },
 *   { ...run, iova: 0x2000, address: 0x5000, length: 100, continued: true },
 *   { ...run, iova: 0x8000, address: 0x8000, length: 8 },
 * ]);
 * grouper.flush();
 * equal(seen.join(), "4196,8");
 * ```
 */
export class DmaTransactionGrouper {
  #pending = new Map<string, Pending>();
  #emit: (transaction: DmaTransaction) => void;

  /**
   * Creates a grouper.
   *
   * @param emit Called once per complete transaction, in each device's order.
   */
  constructor(emit: (transaction: DmaTransaction) => void) {
    this.#emit = emit;
  }

  /**
   * Adds a device's records, in order.
   *
   * @param device The device's id.
   * @param records Its records.
   *
   * @example
   * ```ts
   * import { DmaTransactionGrouper } from "./dma_trace_lines.ts";
   * import { deepEqual } from "node:assert/strict";
   * const seen: string[] = [];
   * const grouper = new DmaTransactionGrouper((t) => seen.push(`${t.length} ${t.result}`));
   * const r = { requesterId: 0x20, access: "write", epochStart: 0, epochEnd: 0 } as const;
   * grouper.push("edu0", [
   *   { ...r, iova: 0x1000, address: 0x1000, length: 16, result: "ok" },
   *   { ...r, iova: 0x1010, address: 0, length: 0, result: "permission", continued: true },
   * ]);
   * deepEqual(seen, ["16 permission"]); // a fault completes the transaction at once
   * ```
   */
  push(device: string, records: readonly DmaTraceRecord[]): void {
    for (const r of records) {
      let t = this.#pending.get(device);
      if (t === undefined || !r.continued || t.access !== r.access) {
        if (t !== undefined) this.#done(t);
        t = {
          device,
          requesterId: r.requesterId,
          access: r.access,
          iova: r.iova,
          length: 0,
          runs: [],
          result: "ok",
          touched: true,
          ...(r.continued ? { continued: true } : {}),
        };
        this.#pending.set(device, t);
      }
      t.touched = true;
      if (r.result === "ok") {
        t.length += r.length;
        const last = t.runs.at(-1);
        if (last !== undefined && last.address + last.length === r.address) {
          last.length += r.length;
        } else {
          t.runs.push({ address: r.address, length: r.length });
        }
      } else {
        // A fault ends the DMA call: the transaction is complete.
        t.result = r.result;
        t.faultIova = r.iova;
        this.#pending.delete(device);
        this.#done(t);
      }
    }
  }

  /**
   * Completes the transactions of devices that had no record since the
   * previous call (call it after each drain).
   *
   * @example
   * ```ts
   * import { DmaTransactionGrouper } from "./dma_trace_lines.ts";
   * import { deepEqual } from "node:assert/strict";
   * const seen: string[] = [];
   * const grouper = new DmaTransactionGrouper((t) => seen.push(t.device));
   * const run = { requesterId: 0x20, access: "read", result: "ok" } as const;
   * const epochs = { epochStart: 0, epochEnd: 0 };
   * grouper.push("edu0", [{ ...run, ...epochs, iova: 0x1000, address: 0x1000, length: 8 }]);
   * grouper.settle(); // edu0 had records in this drain: its transaction may go on
   * deepEqual(seen, []);
   * grouper.settle(); // none since: complete
   * deepEqual(seen, ["edu0"]);
   * ```
   */
  settle(): void {
    for (const [device, t] of this.#pending) {
      if (t.touched) {
        t.touched = false;
      } else {
        this.#pending.delete(device);
        this.#done(t);
      }
    }
  }

  /**
   * Emits every transaction still open.
   *
   * @example
   * ```ts
   * import { DmaTransactionGrouper } from "./dma_trace_lines.ts";
   * import { deepEqual } from "node:assert/strict";
   * const seen: string[] = [];
   * const grouper = new DmaTransactionGrouper((t) => seen.push(t.device));
   * const run = { requesterId: 0x20, access: "read", result: "ok" } as const;
   * const epochs = { epochStart: 0, epochEnd: 0 };
   * grouper.push("edu0", [{ ...run, ...epochs, iova: 0x1000, address: 0x1000, length: 8 }]);
   * grouper.push("ide0", [{ ...run, ...epochs, iova: 0x8000, address: 0x8000, length: 512 }]);
   * grouper.flush();
   * deepEqual(seen.sort(), ["edu0", "ide0"]);
   * ```
   */
  flush(): void {
    for (const t of this.#pending.values()) this.#done(t);
    this.#pending.clear();
  }

  #done(t: Pending): void {
    const { touched: _touched, ...transaction } = t;
    this.#emit(transaction);
  }
}

/** Where a device sits, for {@linkcode formatDmaTransaction}. */
export interface DmaTraceDevice {
  /** PCI address, e.g. `00:04.0`. */
  readonly address: string;
  /** The device's id. */
  readonly name: string;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Formats a transaction as one trace line (without a newline).
 *
 * @param transaction The transaction.
 * @param device Where the device sits.
 * @param options A sequence number and the machine's index, when given.
 * @returns The line.
 *
 * @example
 * ```ts
 * import { formatDmaTransaction } from "./dma_trace_lines.ts";
 * import { equal } from "node:assert/strict";
 * const line = formatDmaTransaction(
 *   { device: "edu0", requesterId: 0x20, access: "write", iova: 0x8000000, length: 0,
 *     runs: [], result: "permission", faultIova: 0x8000000 },
 *   { address: "00:04.0", name: "edu0" },
 *   { seq: 7, machine: 0 },
 * );
 * equal(line, "seq=7 machine=0 dev=00:04.0 name=edu0 dir=write iova=0x8000000 gpa=- len=0 result=permission fault_iova=0x8000000");
 * ```
 */
export function formatDmaTransaction(
  transaction: DmaTransaction,
  device: DmaTraceDevice,
  options: { seq?: number; machine?: number } = {},
): string {
  const t = transaction;
  const gpa = t.runs.length === 0
    ? "-"
    : t.runs.length === 1
    ? hex(t.runs[0]!.address)
    : t.runs.map((r) => `${hex(r.address)}:${r.length}`).join(",");
  return [
    ...(options.seq !== undefined ? [`seq=${options.seq}`] : []),
    ...(options.machine !== undefined ? [`machine=${options.machine}`] : []),
    `dev=${device.address}`,
    `name=${device.name}`,
    `dir=${t.access}`,
    `iova=${hex(t.iova)}`,
    `gpa=${gpa}`,
    `len=${t.length}`,
    `result=${t.result}`,
    ...(t.faultIova !== undefined ? [`fault_iova=${hex(t.faultIova)}`] : []),
    ...(t.continued ? ["continued=yes"] : []),
  ].join(" ");
}
