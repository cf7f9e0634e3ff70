// Runs tests/shared/workers/waiter.ts and pokes it until its wait ends.
import type { WaiterRequest, WaiterResult } from "./workers/waiter.ts";

/**
 * Starts a waiter worker, calls `poke` every `everyMs` once the worker says it
 * is about to wait (repeating covers the gap between that message and the
 * worker entering Atomics.wait), and resolves with how the wait ended. The
 * worker is always terminated.
 */
export async function runWaiter(
  request: WaiterRequest,
  poke: () => void,
  everyMs = 20,
): Promise<WaiterResult> {
  const worker = new Worker(new URL("./workers/waiter.ts", import.meta.url), { type: "module" });
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    return await new Promise<WaiterResult>((resolve, reject) => {
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`waiter worker failed: ${event.message}`));
      };
      worker.onmessage = (event: MessageEvent<{ type: string } & WaiterResult>) => {
        if (event.data.type === "waiting") {
          timer = setInterval(poke, everyMs);
        } else if (event.data.type === "done") {
          resolve({ result: event.data.result, value: event.data.value });
        }
      };
      worker.postMessage(request);
    });
  } finally {
    if (timer !== undefined) clearInterval(timer);
    worker.terminate();
  }
}
