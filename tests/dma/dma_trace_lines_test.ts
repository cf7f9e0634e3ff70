// DMA trace records grouped into transactions and formatted as lines.
import { deepEqual, equal } from "node:assert/strict";
import type { DmaTraceRecord } from "../../src/dma/dma_trace.ts";
import {
  type DmaTransaction,
  DmaTransactionGrouper,
  formatDmaTransaction,
} from "../../src/dma/dma_trace_lines.ts";

const run = (
  iova: number,
  address: number,
  length: number,
  extra: Partial<DmaTraceRecord> = {},
): DmaTraceRecord => ({
  requesterId: 0x20,
  access: "read",
  iova,
  address,
  length,
  result: "ok",
  epochStart: 0,
  epochEnd: 0,
  ...extra,
});

function grouper() {
  const out: DmaTransaction[] = [];
  return { out, g: new DmaTransactionGrouper((t) => out.push(t)) };
}

Deno.test("runs of one DMA call become one transaction; adjacent physical runs merge", () => {
  const { out, g } = grouper();
  g.push("edu0", [
    run(0x1000, 0x9000, 0x1000),
    run(0x2000, 0xa000, 0x1000, { continued: true }), // physically adjacent: merged
    run(0x3000, 0x4000, 0x800, { continued: true }), // scattered
  ]);
  equal(out.length, 0); // more runs may follow in the next drain
  g.settle(); // the device had records in this drain: still open
  equal(out.length, 0);
  g.settle(); // nothing new since: complete
  deepEqual(out, [{
    device: "edu0",
    requesterId: 0x20,
    access: "read",
    iova: 0x1000,
    length: 0x2800,
    runs: [{ address: 0x9000, length: 0x2000 }, { address: 0x4000, length: 0x800 }],
    result: "ok",
  }]);
  equal(
    formatDmaTransaction(out[0]!, { address: "00:04.0", name: "edu0" }),
    "dev=00:04.0 name=edu0 dir=read iova=0x1000 gpa=0x9000:8192,0x4000:2048 len=10240 result=ok",
  );
});

Deno.test("a transaction split across two drains stays one; the next call starts another", () => {
  const { out, g } = grouper();
  g.push("ide", [run(0x1000, 0x9000, 0x1000, { access: "write" })]);
  g.settle();
  g.push("ide", [run(0x2000, 0x5000, 0x1000, { access: "write", continued: true })]);
  g.push("ide", [run(0x8000, 0x8000, 8)]);
  equal(out.length, 1);
  equal(out[0]!.length, 0x2000);
  equal(out[0]!.access, "write");
  g.flush();
  equal(out.length, 2);
  equal(out[1]!.iova, 0x8000);
});

Deno.test("a fault completes its transaction at once, with the bytes moved before it", () => {
  const { out, g } = grouper();
  g.push("nic0", [
    run(0x1000, 0x9000, 0x1000),
    run(0x2000, 0, 0, { continued: true, result: "no-translation" }),
  ]);
  equal(out.length, 1);
  equal(out[0]!.result, "no-translation");
  equal(out[0]!.faultIova, 0x2000);
  equal(
    formatDmaTransaction(out[0]!, { address: "00:03.0", name: "nic0" }, { seq: 4, machine: 1 }),
    "seq=4 machine=1 dev=00:03.0 name=nic0 dir=read iova=0x1000 gpa=0x9000 len=4096 result=no-translation fault_iova=0x2000",
  );
});

Deno.test("devices are grouped separately; a run that continues a lost start is marked", () => {
  const { out, g } = grouper();
  g.push("a", [run(0x1000, 0x1000, 16)]);
  g.push("b", [run(0x5000, 0x5000, 16, { continued: true })]);
  g.push("a", [run(0x1010, 0x1010, 16, { continued: true })]);
  g.flush();
  deepEqual(out.map((t) => [t.device, t.length, t.continued ?? false]), [
    ["a", 32, false],
    ["b", 16, true],
  ]);
  equal(
    formatDmaTransaction(out[1]!, { address: "00:05.0", name: "b" }).endsWith(" continued=yes"),
    true,
  );
});
