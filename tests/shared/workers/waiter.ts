// Test worker: blocks in Atomics.wait (or the agents' ways of waiting) on a
// shared word and reports how the wait ended. Used to check that main-side
// code really wakes blocked threads.
import { spinWait } from "../../../src/shared/doorbell.ts";
import { RequestOp } from "../../../src/shared/layout.ts";
import { RingWriter } from "../../../src/shared/register_ring.ts";

/** What the test sends. */
export interface WaiterRequest {
  /** The shared words. */
  buffer: SharedArrayBuffer;
  /**
   * `raw`: one Atomics.wait on `index`; `spin`: spinWait on `index`;
   * `ring-read`: push a read on ring `producer` and wait for its answer the way
   * a guest agent does (src/machine/agent_runtime.ts).
   */
  mode: "raw" | "spin" | "ring-read";
  /** Word index (raw, spin). */
  index?: number;
  /** Producer index (ring-read). */
  producer?: number;
  /** How long to wait at most. */
  timeoutMs: number;
}

/** What the worker answers when the wait is over. */
export interface WaiterResult {
  /** `ok`/`not-equal`/`timed-out` (raw), `true`/`false` (spin), `answered`/`timed-out` (ring-read). */
  result: string;
  /** The word's value after the wait (raw, spin) or the response status (ring-read). */
  value: number;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<WaiterRequest>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = (event) => {
  const { buffer, mode, timeoutMs } = event.data;
  const words = new Int32Array(buffer);
  if (mode === "ring-read") {
    const writer = new RingWriter(words, event.data.producer ?? 0);
    const seq = writer.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
    scope.postMessage({ type: "waiting" });
    const deadline = performance.now() + timeoutMs;
    let result = "answered";
    for (;;) {
      const observed = Atomics.load(words, writer.responseIndex);
      if (writer.answered(seq)) break;
      const left = deadline - performance.now();
      if (left <= 0 || !spinWait(words, writer.responseIndex, observed, left)) {
        result = "timed-out";
        break;
      }
    }
    const done: WaiterResult = { result, value: writer.responseStatus };
    scope.postMessage({ type: "done", ...done });
    return;
  }
  const index = event.data.index ?? 0;
  const expected = Atomics.load(words, index);
  scope.postMessage({ type: "waiting" });
  const result = mode === "raw"
    ? Atomics.wait(words, index, expected, timeoutMs)
    : String(spinWait(words, index, expected, timeoutMs));
  const done: WaiterResult = { result, value: Atomics.load(words, index) };
  scope.postMessage({ type: "done", ...done });
};
