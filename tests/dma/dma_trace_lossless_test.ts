// A DMA trace ring in lossless mode: a producer much faster than the consumer
// waits for drains instead of dropping records; without it, records drop.
import { deepEqual, equal, ok } from "node:assert/strict";
import { dmaTraceBytes, DmaTraceReader } from "../../src/dma/dma_trace.ts";

async function produce(lossless: boolean): Promise<{ iovas: number[]; dropped: number }> {
  const ring = new SharedArrayBuffer(dmaTraceBytes(16));
  const reader = new DmaTraceReader(ring, { lossless });
  const worker = new Worker(new URL("../fixtures/trace_producer.ts", import.meta.url), {
    type: "module",
  });
  try {
    const done = new Promise((resolve) => (worker.onmessage = resolve));
    worker.postMessage({ ring, count: 2000 });
    const iovas: number[] = [];
    let finished = false;
    done.then(() => (finished = true));
    // A slow consumer: one drain every millisecond or so.
    while (!finished || reader.pending) {
      for (const r of reader.drain()) iovas.push(r.iova);
      await new Promise((r) => setTimeout(r, 1));
    }
    return { iovas, dropped: reader.dropped };
  } finally {
    worker.terminate();
  }
}

Deno.test("a lossless trace ring loses nothing to a slow consumer, in order", async () => {
  const { iovas, dropped } = await produce(true);
  equal(dropped, 0);
  deepEqual(iovas, Array.from({ length: 2000 }, (_, i) => i));
});

Deno.test("without lossless, a full ring drops records and counts them", async () => {
  const { iovas, dropped } = await produce(false);
  ok(dropped > 0, "a 16-record ring cannot keep up with 2000 records");
  equal(iovas.length + dropped, 2000);
});
