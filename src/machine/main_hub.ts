/**
 * The main isolate's event hub: one work pump that serves everything other
 * threads ask of the main isolate (agent register requests, translation
 * misses, acknowledgements, interrupt changes) and resolves the main
 * isolate's own waits, all without ever blocking.
 *
 * @module
 */

import { TARGET_BLOCK_WORDS, TargetCtrl, TargetState } from "../shared/layout.ts";
import { WorkPump } from "../shared/work_pump.ts";

interface PendingWait {
  readonly ready: () => boolean;
  readonly resolve: (ok: boolean) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** A unit of work the hub runs whenever it wakes. */
export interface HubTask {
  /** Does one round of work; says whether it did any. */
  step(): boolean;
  /** Cheap check: would `step` do anything? */
  hasWork(): boolean;
}

/**
 * The hub.
 *
 * @example Wait for a shared word to change without blocking
 * ```ts
 * import { MainHub } from "./main_hub.ts";
 * import { equal } from "node:assert/strict";
 * const hub = new MainHub();
 * const word = new Int32Array(new SharedArrayBuffer(4));
 * const waiting = hub.until(() => Atomics.load(word, 0) === 1, 1000);
 * Atomics.store(word, 0, 1);
 * hub.wake(); // a worker would ring the doorbell instead
 * equal(await waiting, true);
 * hub.close();
 * ```
 */
export class MainHub {
  /** The main isolate's target block (its rings receive agent requests). */
  readonly block: SharedArrayBuffer;
  /** The block's words. */
  readonly words: Int32Array;
  #tasks: HubTask[] = [];
  #waits = new Set<PendingWait>();
  #pump: WorkPump;
  #closed = false;

  /** Creates the hub and its target block. */
  constructor() {
    this.block = new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4);
    this.words = new Int32Array(this.block);
    Atomics.store(this.words, TargetCtrl.STATE, TargetState.Running);
    this.#pump = new WorkPump(this.words, {
      step: () => this.#step(),
      hasWork: () => this.#hasWork(),
    });
  }

  /**
   * Adds a task run on every wake.
   *
   * @param task The task.
   */
  addTask(task: HubTask): void {
    this.#tasks.push(task);
    this.wake();
  }

  /** Wakes the hub (a wake message arrived, or local state changed). */
  wake(): void {
    this.#pump.wake();
  }

  /**
   * Resolves `true` once `ready()` holds (checked whenever the hub wakes), or
   * `false` after `timeoutMs`.
   *
   * @param ready The condition, usually a look at shared memory.
   * @param timeoutMs How long to wait (default: forever).
   * @returns Whether the condition came true.
   */
  until(ready: () => boolean, timeoutMs = Infinity): Promise<boolean> {
    if (ready()) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wait: PendingWait = { ready, resolve, timer: undefined };
      if (Number.isFinite(timeoutMs)) {
        wait.timer = setTimeout(() => {
          this.#waits.delete(wait);
          resolve(ready());
        }, Math.max(0, timeoutMs));
      }
      this.#waits.add(wait);
      this.wake();
    });
  }

  /** Stops the hub; pending waits resolve `false`. */
  close(): void {
    this.#closed = true;
    this.#pump.close();
    for (const wait of this.#waits) {
      clearTimeout(wait.timer);
      wait.resolve(false);
    }
    this.#waits.clear();
  }

  #step(): boolean {
    let did = false;
    for (const task of this.#tasks) {
      if (task.step()) did = true;
    }
    for (const wait of this.#waits) {
      if (wait.ready()) {
        this.#waits.delete(wait);
        clearTimeout(wait.timer);
        wait.resolve(true);
        did = true;
      }
    }
    return did;
  }

  #hasWork(): boolean {
    for (const task of this.#tasks) {
      if (task.hasWork()) return true;
    }
    for (const wait of this.#waits) {
      if (wait.ready()) return true;
    }
    return false;
  }
}
