/**
 * Page events: a guest agent stamps "page P (size S) invalidated" and "page
 * P reused" with the machine's trace epoch and publishes them in its ring
 * in the control block; the runner consumes them and orders every device
 * access in the DMA trace against them.
 *
 * The runner may check a trace record only once it knows every event with
 * an epoch up to the record's `epochEnd`. An agent raises its PENDING word
 * before it takes an epoch and lowers it after publishing the event; the
 * runner takes an epoch E itself, then reads every PENDING word: if all are
 * 0, every event with an epoch below E has been published (an agent that
 * took such an epoch had raised PENDING before E existed, and lowered it
 * only after publishing). All of it is `Atomics`, hence sequentially
 * consistent.
 *
 * @module
 */

import type { Guest } from "../guest/guest.ts";
import {
  AgentCtl,
  agentWord,
  controlWords,
  EVENT_RING_ENTRIES,
  PAGE_4K,
  PageEventKind,
} from "./stress_layout.ts";

/** A page event. */
export interface StressPageEvent {
  /** `invalid` or `reuse`. */
  readonly kind: "invalid" | "reuse";
  /** Physical address of the page. */
  readonly page: number;
  /** Bytes (4 KiB or 2 MiB). */
  readonly size: number;
  /** Trace epoch. */
  readonly epoch: number;
}

/** How long an agent waits for room in its ring before giving up (ms). */
const RING_WAIT_MS = 10_000;

/**
 * An agent's side of its page-event ring.
 *
 * @example
 * ```ts
 * import type { Guest } from "../guest/guest.ts";
 * import { PageEventWriter } from "./page_events.ts";
 * function agent(guest: Guest): number {
 *   const events = new PageEventWriter(guest, 0);
 *   return events.publish("invalid", 0x300_0000, 4096); // the trace epoch
 * }
 * ```
 */
export class PageEventWriter {
  #guest: Guest;
  #words: Int32Array<SharedArrayBuffer>;
  #agent: number;

  /**
   * Creates the writer.
   *
   * @param guest The CPU.
   * @param agent Agent number.
   */
  constructor(guest: Guest, agent: number) {
    this.#guest = guest;
    this.#words = controlWords(guest.memory.buffer);
    this.#agent = agent;
  }

  /**
   * Takes a trace epoch and publishes an event stamped with it.
   *
   * @param kind What happened to the page.
   * @param page Physical address (page aligned).
   * @param size Bytes.
   * @returns The epoch.
   */
  publish(kind: StressPageEvent["kind"], page: number, size: number = PAGE_4K): number {
    const w = this.#words;
    const a = this.#agent;
    const tail = Atomics.load(w, agentWord(a, AgentCtl.EVT_TAIL));
    const deadline = performance.now() + RING_WAIT_MS;
    while (((tail - Atomics.load(w, agentWord(a, AgentCtl.EVT_HEAD))) | 0) >= EVENT_RING_ENTRIES) {
      if (performance.now() > deadline) throw new Error("The runner stopped reading page events");
      this.#guest.sleep(1);
    }
    Atomics.store(w, agentWord(a, AgentCtl.PENDING), 1);
    const epoch = this.#guest.traceMark();
    const at = agentWord(a, AgentCtl.RING) + ((tail >>> 0) % EVENT_RING_ENTRIES) * 4;
    Atomics.store(w, at, kind === "invalid" ? PageEventKind.INVALID : PageEventKind.REUSE);
    Atomics.store(w, at + 1, page / PAGE_4K);
    Atomics.store(w, at + 2, size / PAGE_4K);
    Atomics.store(w, at + 3, epoch);
    Atomics.store(w, agentWord(a, AgentCtl.EVT_TAIL), (tail + 1) | 0);
    Atomics.store(w, agentWord(a, AgentCtl.PENDING), 0);
    return epoch;
  }
}

/**
 * The runner's side of every agent's ring.
 *
 * @example
 * ```ts
 * import { PageEventReader } from "./page_events.ts";
 * import { equal } from "node:assert/strict";
 * const reader = new PageEventReader(new SharedArrayBuffer(4 << 20), 2);
 * equal(reader.quiet(), true);
 * equal(reader.drain().length, 0);
 * ```
 */
export class PageEventReader {
  #words: Int32Array<SharedArrayBuffer>;
  #agents: number;

  /**
   * Creates the reader.
   *
   * @param ram Guest RAM's buffer.
   * @param agents Number of agents.
   */
  constructor(ram: SharedArrayBuffer, agents: number) {
    this.#words = controlWords(ram);
    this.#agents = agents;
  }

  /**
   * Whether no agent is between taking an epoch and publishing its event.
   *
   * @returns `true` when every PENDING word is 0.
   */
  quiet(): boolean {
    for (let a = 0; a < this.#agents; a++) {
      if (Atomics.load(this.#words, agentWord(a, AgentCtl.PENDING)) !== 0) return false;
    }
    return true;
  }

  /**
   * Takes every published event of every agent.
   *
   * @returns The events, each agent's in order, with the agent number.
   */
  drain(): Array<StressPageEvent & { agent: number }> {
    const w = this.#words;
    const out: Array<StressPageEvent & { agent: number }> = [];
    for (let a = 0; a < this.#agents; a++) {
      let head = Atomics.load(w, agentWord(a, AgentCtl.EVT_HEAD));
      const tail = Atomics.load(w, agentWord(a, AgentCtl.EVT_TAIL));
      while (head !== tail) {
        const at = agentWord(a, AgentCtl.RING) + ((head >>> 0) % EVENT_RING_ENTRIES) * 4;
        out.push({
          agent: a,
          kind: Atomics.load(w, at) === PageEventKind.INVALID ? "invalid" : "reuse",
          page: (Atomics.load(w, at + 1) >>> 0) * PAGE_4K,
          size: Atomics.load(w, at + 2) * PAGE_4K,
          epoch: Atomics.load(w, at + 3),
        });
        head = (head + 1) | 0;
      }
      Atomics.store(w, agentWord(a, AgentCtl.EVT_HEAD), head);
    }
    return out;
  }
}
