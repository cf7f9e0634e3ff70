/**
 * One fuzz run's machine and its oracles. A `FuzzTarget` builds the fuzz
 * machine from its command line (exactly as `dmaworks … -qtest stdio` would),
 * serves qtest requests to it through the real qtest server, fills first DMA
 * reads with fuzzer data, and watches for what must never happen:
 *
 * - a device model that throws (its worker reports a failure) or hangs (a
 *   register access that times out);
 * - a `FAIL` reply to a well-formed request (the machine threw on the main
 *   isolate) or an internal error of the IOMMU's command processor;
 * - a DMA whose physical range is not guest RAM;
 * - a COMPLETION_WAIT that never completes while the command ring runs.
 *
 * It runs in the fuzzer's child process (`fuzz_child.ts`) so that the
 * fuzzer's driver can stop a run whose main isolate hangs, and see what it
 * printed if it dies.
 *
 * @module
 */

import type { DmaInjector, InjectionPattern } from "../dma/dma_inject.ts";
import {
  Machine,
  type MachineConfig,
  type MachineEvent,
  type PlantedBug,
} from "../machine/machine.ts";
import { parseRequest } from "../qtest/qtest_protocol.ts";
import { QtestServer } from "../qtest/qtest_server.ts";
import { fuzzMachineConfig } from "./fuzz_machine.ts";

/** Kinds of failure the oracles report. */
export type FuzzFailureKind =
  | "device-failed"
  | "device-hung"
  | "fail-reply"
  | "internal-error"
  | "outside-ram"
  | "completion-wait"
  | "uncaught"
  | "hang";

/** A failure an oracle found. */
export interface FuzzFailure {
  /** What kind. */
  readonly kind: FuzzFailureKind;
  /** What happened, for people. */
  readonly message: string;
  /** The operation in progress (or just done) when it was seen. */
  readonly op: number;
  /** A short signature: two failures with the same key are taken for the same bug. */
  readonly key: string;
}

/** How a target is built. */
export interface FuzzTargetOptions {
  /** The machine (default: the fuzz machine, {@linkcode fuzzMachineConfig}). */
  readonly config?: MachineConfig;
  /** DMA injection patterns; absent or empty: no injection (a replay). */
  readonly patterns?: readonly InjectionPattern[];
  /** A deliberate bug to plant (tests of the fuzzer). */
  readonly plantedBug?: PlantedBug;
  /** How long a COMPLETION_WAIT probe may take (ms, default 10000). */
  readonly completionWaitMs?: number;
}

/** A fill the fuzzer's data made, as a qtest request. */
export interface FillLine {
  /** The operation it belongs before. */
  readonly op: number;
  /** `write ADDR LEN 0xDATA`. */
  readonly line: string;
}

/** What one request did. */
export interface OpResult {
  /** The reply (interrupt lines excluded). */
  readonly reply: string;
  /** Fills made since the previous request. */
  readonly fills: FillLine[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const IOMMU_MMIO = 0xfed8_0000;
/** Requests a machine answers; a `FAIL` to one of these means the machine threw. */
const MACHINE_REQUESTS = new Set(["in", "out", "read", "write", "memread", "memwrite", "memset"]);
/** Invalidation timeouts are the guest's own doing (it set InvTimeOut), not a bug. */
const BENIGN_FAILURE = /did not acknowledge/;

function fillLine(address: number, data: Uint8Array): string {
  let text = "";
  for (const b of data) text += b.toString(16).padStart(2, "0");
  return `write 0x${address.toString(16)} 0x${data.length.toString(16)} 0x${text}`;
}

/**
 * The machine of one fuzz run, served over qtest, with its oracles.
 *
 * @example Run a few requests against the fuzz machine
 * ```ts
 * import { FuzzTarget } from "./fuzz_target.ts";
 * import { equal } from "node:assert/strict";
 * await using target = await FuzzTarget.create();
 * equal((await target.execute("outl 0xcf8 0x80002000", 0)).reply, "OK");
 * equal((await target.execute("inl 0xcfc", 1)).reply, "OK 0x11e81234");
 * equal(target.failures.length, 0);
 * ```
 */
export class FuzzTarget implements AsyncDisposable {
  /** The machine. */
  readonly machine: Machine;
  /** What the oracles found, in order. */
  readonly failures: FuzzFailure[] = [];
  #injector: DmaInjector | undefined;
  #server: QtestServer;
  #input!: ReadableStreamDefaultController<Uint8Array>;
  #serving: Promise<void>;
  #pending = "";
  #waiter: ((reply: string) => void) | undefined;
  #op = 0;
  #violations = 0;
  #completionWaitMs: number;
  #closed = false;

  private constructor(machine: Machine, injector: DmaInjector | undefined, waitMs: number) {
    this.machine = machine;
    this.#injector = injector;
    this.#completionWaitMs = waitMs;
    machine.onEvent((event) => this.#onEvent(event));
    this.#server = new QtestServer(machine, { log: "none" });
    const readable = new ReadableStream<Uint8Array>({ start: (c) => void (this.#input = c) });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#onOutput(decoder.decode(chunk, { stream: true })),
    });
    this.#serving = this.#server.serve({ readable, writable });
  }

  /**
   * Builds and starts the machine.
   *
   * @param options Command line, patterns, planted bug.
   * @returns The target.
   */
  static async create(options: FuzzTargetOptions = {}): Promise<FuzzTarget> {
    const config = { ...(options.config ?? fuzzMachineConfig()) };
    const patterns = options.patterns ?? [];
    if (patterns.length > 0) config.dmaInject = { patterns };
    if (options.plantedBug !== undefined) {
      config.faultInjection = { plantedBug: options.plantedBug };
    }
    const machine = await Machine.create(config);
    return new FuzzTarget(machine, machine.dmaInjector, options.completionWaitMs ?? 10_000);
  }

  #onEvent(event: MachineEvent): void {
    if (event.type === "device-failed") {
      if (BENIGN_FAILURE.test(event.reason)) return;
      const hung = /did not answer|stopped taking requests/.test(event.reason);
      this.#fail(
        hung ? "device-hung" : "device-failed",
        event.reason,
        `${hung ? "device-hung" : "device-failed"}:${event.id}`,
      );
    } else if (event.type === "log" && /^Internal error/.test(event.message)) {
      this.#fail("internal-error", `${event.source}: ${event.message}`, "internal-error");
    }
  }

  #fail(kind: FuzzFailureKind, message: string, key: string): void {
    this.failures.push({ kind, message, op: this.#op, key });
  }

  #onOutput(text: string): void {
    this.#pending += text;
    for (;;) {
      const nl = this.#pending.indexOf("\n");
      if (nl < 0) return;
      const line = this.#pending.slice(0, nl);
      this.#pending = this.#pending.slice(nl + 1);
      if (line.startsWith("IRQ ")) continue;
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.(line);
    }
  }

  #checkViolations(): void {
    const v = this.#injector?.violation;
    if (v && v.count > this.#violations) {
      this.#violations = v.count;
      this.#fail(
        "outside-ram",
        `A DMA touched ${v.length} bytes at 0x${v.address.toString(16)}, which is not guest RAM`,
        "outside-ram",
      );
    }
  }

  #drainFills(): FillLine[] {
    const fills = this.#injector?.drain() ?? [];
    return fills.map((f) => ({ op: f.op, line: fillLine(f.address, f.data) }));
  }

  /**
   * Sends one qtest request and waits for its reply.
   *
   * @param line The request (without newline).
   * @param index The operation's index (fills made from now on carry it).
   * @returns The reply and the fills made since the previous request.
   */
  async execute(line: string, index: number): Promise<OpResult> {
    this.#op = index;
    const injector = this.#injector;
    let request;
    try {
      request = parseRequest(line);
    } catch {
      request = undefined;
    }
    if (injector) {
      injector.op = index;
      // What the guest writes is its own: never filled.
      if (request?.kind === "write") injector.markWritten(request.address, request.size);
      else if (request?.kind === "memwrite") {
        injector.markWritten(request.address, request.data.length);
      } else if (request?.kind === "memset") injector.markWritten(request.address, request.length);
    }
    const reply = new Promise<string>((resolve) => (this.#waiter = resolve));
    this.#input.enqueue(encoder.encode(`${line}\n`));
    const text = await reply;
    if (text.startsWith("FAIL") && request !== undefined && MACHINE_REQUESTS.has(request.kind)) {
      this.#fail("fail-reply", `'${line.slice(0, 120)}' answered '${text}'`, "fail-reply");
    }
    this.#checkViolations();
    return { reply: text, fills: this.#drainFills() };
  }

  /**
   * Gives device work the last requests started (a DMA, a transmit) a moment
   * to run, and to fail, before the run ends: a request's reply does not
   * wait for the work it starts, and a failure after the machine stopped is
   * not seen. A grace period, not a guarantee; the generated programs end
   * with reads of every device, which give more.
   */
  async settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 20));
    this.#checkViolations();
  }

  /**
   * The end of a run: lets deferred device work settle, probes the IOMMU's
   * command processor with a COMPLETION_WAIT when its ring runs, and checks
   * the oracles once more. Requests it makes are returned (they belong to the
   * reproducer).
   *
   * @param index The index of the first probe operation.
   * @returns The probe requests with their results.
   */
  async finish(index: number): Promise<Array<{ line: string } & OpResult>> {
    const done: Array<{ line: string } & OpResult> = [];
    const run = async (line: string) => {
      const r = await this.execute(line, index + done.length);
      done.push({ line, ...r });
      return r.reply;
    };
    await this.settle();
    const value = (reply: string) => BigInt(reply.split(" ")[1] ?? "0");
    const status = value(await run(`readq 0x${(IOMMU_MMIO + 0x2020).toString(16)}`));
    if ((status & 0x10n) !== 0n && this.#injector) {
      const base = value(await run(`readq 0x${(IOMMU_MMIO + 0x08).toString(16)}`));
      const head = value(await run(`readq 0x${(IOMMU_MMIO + 0x2000).toString(16)}`));
      const tail = value(await run(`readq 0x${(IOMMU_MMIO + 0x2008).toString(16)}`));
      const size = 16n << ((base >> 56n) & 0xfn);
      const ring = Number(base & 0x000f_ffff_ffff_f000n);
      const next = (tail + 16n) % size;
      const store = 0x0011_2ff8; // the last word of the fuzz layout's completion page
      if (next !== head && this.machine.memory.isRam(ring + Number(tail), 16)) {
        const magic = 0xc0ffee00_0000_0000n | BigInt(index);
        await run(
          `writeq 0x${(ring + Number(tail)).toString(16)} 0x${
            ((1n << 60n) | BigInt(store) | 1n).toString(16)
          }`,
        );
        await run(`writeq 0x${(ring + Number(tail) + 8).toString(16)} 0x${magic.toString(16)}`);
        await run(`writeq 0x${(IOMMU_MMIO + 0x2008).toString(16)} 0x${next.toString(16)}`);
        const deadline = performance.now() + this.#completionWaitMs;
        for (;;) {
          if (this.machine.memory.read64(store) === magic) break;
          const s = this.machine.iommu?.readRegister(0x2020, 8) ?? 0n;
          if ((s & 0x10n) === 0n) break; // an earlier command was illegal: the ring stopped
          if (performance.now() > deadline) {
            this.#fail(
              "completion-wait",
              `COMPLETION_WAIT did not complete within ${this.#completionWaitMs} ms while the command ring runs`,
              "completion-wait",
            );
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await run(`readq 0x${store.toString(16)}`);
      }
    }
    this.#checkViolations();
    return done;
  }

  /** Stops the machine and the qtest session. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#input.close();
    } catch {
      // Already closed.
    }
    await this.#server.close();
    await this.#serving.catch(() => {});
    await this.machine.stop();
  }

  /** Closes the target (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
