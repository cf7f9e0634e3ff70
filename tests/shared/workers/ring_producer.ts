// Test worker: one producer of the register ring stress test. Posts a seeded
// random mix of writes and reads to its ring of the consumer's target block,
// rings the doorbell after each, waits for read answers the way a guest agent
// does, and checks every answer.
import { ringDoorbell, spinWait } from "../../../src/shared/doorbell.ts";
import { RequestOp, ResponseStatus } from "../../../src/shared/layout.ts";
import { RingWriter } from "../../../src/shared/register_ring.ts";

/** What the test sends. */
export interface ProducerRequest {
  buffer: SharedArrayBuffer;
  producer: number;
  seed: number;
  ops: number;
}

/** What the worker reports at the end. */
export interface ProducerReport {
  type: "done";
  producer: number;
  writes: number;
  reads: number;
  sum: number;
  errors: string[];
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ProducerRequest>) => void) | null;
  postMessage(message: unknown): void;
};

/** mulberry32. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const TIMEOUT_MS = 10_000;

scope.onmessage = (event) => {
  const { buffer, producer, seed, ops } = event.data;
  const words = new Int32Array(buffer);
  const writer = new RingWriter(words, producer);
  const wake = { postMessage: () => scope.postMessage({ type: "wake" }) };
  const next = prng(seed);
  const errors: string[] = [];
  let writes = 0;
  let reads = 0;
  let sum = 0;
  let sink = 0;
  for (let i = 0; i < ops && errors.length === 0; i++) {
    while (writer.full) {
      const head = Atomics.load(words, writer.headIndex);
      if (!writer.full) break;
      if (!spinWait(words, writer.headIndex, head, TIMEOUT_MS)) {
        errors.push(`producer ${producer}: ring stayed full at op ${i}`);
        break;
      }
    }
    const r = next();
    if (r % 10 < 6) {
      const delta = (r >>> 8) & 0xff;
      writes++;
      sum += delta;
      writer.push(RequestOp.Write, 0, 0, 0, 4, writes, delta);
      ringDoorbell(words, wake);
    } else {
      const seq = writer.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
      ringDoorbell(words, wake);
      reads++;
      const deadline = performance.now() + TIMEOUT_MS;
      for (;;) {
        const observed = Atomics.load(words, writer.responseIndex);
        if (writer.answered(seq)) break;
        const left = deadline - performance.now();
        if (left <= 0 || !spinWait(words, writer.responseIndex, observed, left)) {
          if (writer.answered(seq)) break;
          errors.push(`producer ${producer}: no answer to read ${reads} (seq ${seq})`);
          break;
        }
      }
      if (writer.responseStatus !== ResponseStatus.Ok) {
        errors.push(`producer ${producer}: read ${reads} status ${writer.responseStatus}`);
      } else if (writer.responseLo !== writes) {
        errors.push(
          `producer ${producer}: read ${reads} saw ${writer.responseLo} writes, ${writes} were posted before it`,
        );
      } else if (writer.responseHi !== reads) {
        errors.push(`producer ${producer}: read ${reads} was counted as read ${writer.responseHi}`);
      }
    }
    // A little random delay so that the two producers interleave differently.
    for (let k = next() % 64; k > 0; k--) sink += k;
  }
  const report: ProducerReport = {
    type: "done",
    producer,
    writes,
    reads,
    sum: sum + 0 * sink,
    errors,
  };
  scope.postMessage(report);
};
