/**
 * A guest agent ("vCPU"): runs a guest program with a synchronous view of
 * the machine. It routes MMIO and port accesses through the route table
 * straight to the owning target's mailbox, and may block (DESIGN.md).
 *
 * @module
 */

import type { AddressSpaceKind } from "../memory/address_map.ts";
import { GuestMemory, type GuestMemoryDescriptor } from "../memory/guest_memory.ts";
import type { Guest, GuestProgram, WaitIrqOptions } from "../guest/guest.ts";
import { ringDoorbell, spinWait, type WakeTarget } from "../shared/doorbell.ts";
import { IrqLines } from "../shared/irq_lines.ts";
import { MachineBlock, RequestOp, ResponseStatus, TargetState } from "../shared/layout.ts";
import { RingWriter } from "../shared/register_ring.ts";
import { RouteReader } from "../shared/route_table.ts";
import { checkAddress, FOUR_GIB, hex } from "../util/address.ts";
import { GuestContext } from "../workloads/guest_context.ts";
import { WorkloadError } from "../workloads/workload.ts";

/** The message that starts an agent. */
export interface AgentInit {
  /** Always `init`. */
  readonly type: "init";
  /** Producer index (1 … 15). */
  readonly index: number;
  /** Guest RAM. */
  readonly memory: GuestMemoryDescriptor;
  /** The machine block. */
  readonly machine: SharedArrayBuffer;
  /** Target blocks: index 0 is the main isolate, k is device k. */
  readonly targets: readonly SharedArrayBuffer[];
  /** Wake ports for targets 1 … n (index k − 1). */
  readonly ports: readonly MessagePort[];
  /** URL of the guest program module. */
  readonly program: string;
  /** Options passed to the program. */
  readonly options: Readonly<Record<string, string>>;
  /** How long an access may wait for its answer (ms). */
  readonly accessTimeoutMs: number;
  /** This machine's index among those running the program (default 0). */
  readonly machineIndex?: number;
  /** How many machines run the program (default 1). */
  readonly machineCount?: number;
}

/** Messages an agent sends to the main isolate. */
export type AgentMessage =
  | "wake"
  | { readonly type: "log"; readonly message: string }
  | { readonly type: "done"; readonly result: unknown }
  | { readonly type: "error"; readonly message: string };

const SPACE_CODE: Record<AddressSpaceKind, number> = { mmio: 0, pio: 1 };

function allOnes(size: number): number {
  return size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
}

/**
 * The synchronous bus of one agent: implements {@linkcode Guest}.
 *
 * @example
 * ```ts
 * import { AgentBus } from "./agent_runtime.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { MACHINE_BLOCK_WORDS, TARGET_BLOCK_WORDS } from "../shared/layout.ts";
 * import { equal } from "node:assert/strict";
 * const ram = new GuestMemory({ size: 1 << 20 });
 * const bus = new AgentBus({
 *   type: "init", index: 1, memory: ram.descriptor(),
 *   machine: new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4),
 *   targets: [new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4)], ports: [],
 *   program: "", options: {}, accessTimeoutMs: 100,
 * }, { postMessage: () => {} });
 * bus.write32(0x100, 0x1234);
 * equal(bus.read16(0x100), 0x1234);
 * equal(bus.read32(0xfe00_0000), 0xffffffff); // unassigned
 * ```
 */
export class AgentBus implements Guest {
  /** Guest RAM. */
  readonly memory: GuestMemory;
  /** This agent's producer index. */
  readonly agentIndex: number;
  #routes: RouteReader;
  #irq: IrqLines;
  #machineWords: Int32Array;
  #targets: Int32Array[];
  #writers: RingWriter[];
  #wakes: WakeTarget[];
  #timeout: number;
  #toMain: WakeTarget;
  #sleeper = new Int32Array(new SharedArrayBuffer(4));

  /**
   * Creates the instance.
   *
   * @param init The agent's init message.
   * @param toMain Where messages for the main isolate go.
   */
  constructor(init: AgentInit, toMain: WakeTarget) {
    this.memory = new GuestMemory(init.memory);
    this.agentIndex = init.index;
    this.#machineWords = new Int32Array(init.machine);
    this.#routes = new RouteReader(this.#machineWords);
    this.#irq = new IrqLines(this.#machineWords);
    this.#targets = init.targets.map((b) => new Int32Array(b));
    this.#writers = this.#targets.map((t) => new RingWriter(t, init.index));
    this.#wakes = [toMain, ...init.ports];
    this.#timeout = init.accessTimeoutMs;
    this.#toMain = toMain;
  }

  read8(address: number): number {
    return this.#read(address, 1);
  }
  read16(address: number): number {
    return this.#read(address, 2);
  }
  read32(address: number): number {
    return this.#read(address, 4);
  }
  read64(address: number): bigint {
    checkAddress(address);
    if (this.memory.isRam(address, 8)) return this.memory.read64(address);
    const [lo, hi] = this.#io("mmio", address, 8, RequestOp.Read, 0, 0);
    return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  }
  write8(address: number, value: number): void {
    this.#write(address, 1, value);
  }
  write16(address: number, value: number): void {
    this.#write(address, 2, value);
  }
  write32(address: number, value: number): void {
    this.#write(address, 4, value);
  }
  write64(address: number, value: bigint): void {
    checkAddress(address);
    const v = BigInt.asUintN(64, value);
    if (this.memory.isRam(address, 8)) {
      this.memory.write64(address, v);
      return;
    }
    this.#io(
      "mmio",
      address,
      8,
      RequestOp.Write,
      Number(v & 0xffff_ffffn) | 0,
      Number(v >> 32n) | 0,
    );
  }

  in8(port: number): number {
    return this.#io("pio", this.#port(port), 1, RequestOp.Read, 0, 0)[0] >>> 0;
  }
  in16(port: number): number {
    return this.#io("pio", this.#port(port), 2, RequestOp.Read, 0, 0)[0] >>> 0;
  }
  in32(port: number): number {
    return this.#io("pio", this.#port(port), 4, RequestOp.Read, 0, 0)[0] >>> 0;
  }
  out8(port: number, value: number): void {
    this.#io("pio", this.#port(port), 1, RequestOp.WriteSync, value & 0xff, 0);
  }
  out16(port: number, value: number): void {
    this.#io("pio", this.#port(port), 2, RequestOp.WriteSync, value & 0xffff, 0);
  }
  out32(port: number, value: number): void {
    this.#io("pio", this.#port(port), 4, RequestOp.WriteSync, value | 0, 0);
  }

  irqLevel(line: number): boolean {
    return this.#irq.lineLevel(line);
  }

  waitIrq(line: number, options: WaitIrqOptions = {}): boolean {
    const deadline = performance.now() + (options.timeoutMs ?? 5000);
    for (;;) {
      const seq = this.#irq.seq;
      if (this.#irq.lineLevel(line)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.#machineWords, this.#irq.seqIndex, seq, left);
    }
  }

  waitMemory(address: number, expected: bigint, options: { timeoutMs?: number } = {}): void {
    this.memory.wait64(address, expected, options.timeoutMs ?? 1);
  }

  sleep(ms: number): void {
    Atomics.wait(this.#sleeper, 0, 0, Math.max(0, ms));
  }

  traceMark(): number {
    return Atomics.add(this.#machineWords, MachineBlock.TRACE_EPOCH, 1) + 1;
  }

  log(message: string): void {
    this.#toMain.postMessage({ type: "log", message } satisfies AgentMessage);
  }

  #port(port: number): number {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
      throw new RangeError(`Invalid I/O port ${String(port)}: must be 0 to 0xffff`);
    }
    return port;
  }

  #read(address: number, size: 1 | 2 | 4): number {
    checkAddress(address);
    const m = this.memory;
    if (m.isRam(address, size)) {
      return size === 1 ? m.read8(address) : size === 2 ? m.read16(address) : m.read32(address);
    }
    return this.#io("mmio", address, size, RequestOp.Read, 0, 0)[0] >>> 0;
  }

  #write(address: number, size: 1 | 2 | 4, value: number): void {
    checkAddress(address);
    const m = this.memory;
    if (m.isRam(address, size)) {
      if (size === 1) m.write8(address, value);
      else if (size === 2) m.write16(address, value);
      else m.write32(address, value);
      return;
    }
    this.#io("mmio", address, size, RequestOp.Write, value | 0, 0);
  }

  /** One access outside RAM; returns [lo, hi]. */
  #io(
    space: AddressSpaceKind,
    address: number,
    size: number,
    op: number,
    lo: number,
    hi: number,
  ): [number, number] {
    const route = this.#routes.lookup(space, address);
    if (
      !route || address + size > route.base + route.size ||
      (space === "mmio" && this.#touchesRam(address, size))
    ) {
      return this.#split(space, address, size, op, lo, hi);
    }
    const target = route.target;
    const writer = this.#writers[target];
    const words = this.#targets[target];
    if (!writer || !words) return [allOnes(size), size === 8 ? -1 : 0];
    while (writer.full) {
      const head = Atomics.load(words, writer.headIndex);
      if (!writer.full) break;
      if (writer.targetState === TargetState.Failed || writer.targetState === TargetState.Stopped) {
        return [allOnes(size), size === 8 ? -1 : 0];
      }
      if (!spinWait(words, writer.headIndex, head, this.#timeout)) {
        this.log(
          `agent ${this.agentIndex}: target ${target} stopped taking requests at ${hex(address)}`,
        );
        return [allOnes(size), size === 8 ? -1 : 0];
      }
    }
    const seq = target === 0
      ? writer.push(
        op,
        SPACE_CODE[space],
        address % FOUR_GIB | 0,
        Math.floor(address / FOUR_GIB),
        size,
        lo,
        hi,
      )
      : writer.push(op, route.targetRegion, address - route.base, 0, size, lo, hi);
    ringDoorbell(words, this.#wakes[target]);
    if (op === RequestOp.Write) return [0, 0];
    const deadline = performance.now() + this.#timeout;
    for (;;) {
      // Read the word before testing it: waiting for a change of a value read
      // after the test could miss an answer that arrived in between.
      const observed = Atomics.load(words, writer.responseIndex);
      if (writer.answered(seq)) break;
      const left = deadline - performance.now();
      if (left <= 0 || !spinWait(words, writer.responseIndex, observed, left)) {
        if (writer.answered(seq)) break;
        this.log(
          `agent ${this.agentIndex}: no answer from target ${target} for ${space} ${hex(address)}`,
        );
        return [allOnes(size), size === 8 ? -1 : 0];
      }
    }
    if (writer.responseStatus !== ResponseStatus.Ok) return [allOnes(size), size === 8 ? -1 : 0];
    return [writer.responseLo, writer.responseHi];
  }

  #touchesRam(address: number, size: number): boolean {
    // RAM blocks are at least 4 KiB, so an access of at most 8 bytes that
    // touches RAM has its first or its last byte in RAM.
    return this.memory.isRam(address) || this.memory.isRam(address + size - 1);
  }

  /** An access that no single region decodes: one byte at a time. */
  #split(
    space: AddressSpaceKind,
    address: number,
    size: number,
    op: number,
    lo: number,
    hi: number,
  ): [number, number] {
    let outLo = 0;
    let outHi = 0;
    for (let i = 0; i < size; i++) {
      const a = address + i;
      const inByte = (i < 4 ? lo >>> (8 * i) : hi >>> (8 * (i - 4))) & 0xff;
      let byte = 0xff;
      if (space === "mmio" && this.memory.isRam(a)) {
        if (op === RequestOp.Read) byte = this.memory.read8(a);
        else this.memory.write8(a, inByte);
      } else {
        const route = this.#routes.lookup(space, a);
        if (route) byte = this.#io(space, a, 1, op, inByte, 0)[0] & 0xff;
      }
      if (i < 4) outLo |= byte << (8 * i);
      else outHi |= byte << (8 * (i - 4));
    }
    return [outLo, outHi];
  }
}

/**
 * Loads and runs a guest program in an agent; reports the result or the
 * error to the main isolate. The program receives a `WorkloadContext` (a
 * {@linkcode Guest} with devices and drivers) and its options. A
 * `WorkloadError` is reported by its message alone; other errors with their
 * stack.
 *
 * @param init The init message.
 * @param toMain Where messages go.
 * @returns Resolves when the program has finished.
 *
 * @example
 * ```ts
 * import { runAgent } from "./agent_runtime.ts";
 * import type { WakeTarget } from "../shared/doorbell.ts";
 * // The body of an agent worker module: the first message is the init message.
 * function agentWorker(scope: WakeTarget & { onmessage: ((e: MessageEvent) => void) | null }) {
 *   scope.onmessage = (e) => void runAgent(e.data, scope);
 * }
 * ```
 */
export async function runAgent(init: AgentInit, toMain: WakeTarget): Promise<void> {
  try {
    const bus = new AgentBus(init, toMain);
    let module;
    try {
      module = await import(init.program);
    } catch (error) {
      // The user's file: its own message (with the line of a syntax error) says enough.
      throw new WorkloadError(`Cannot load ${init.program}: ${(error as Error).message}`);
    }
    const program = module.default as GuestProgram | undefined;
    if (typeof program !== "function") {
      throw new WorkloadError(`Guest program ${init.program} has no default export function`);
    }
    const context = new GuestContext(bus, {
      options: init.options,
      machineIndex: init.machineIndex ?? 0,
      machineCount: init.machineCount ?? 1,
    });
    const result = await program(context, init.options);
    toMain.postMessage({ type: "done", result: result ?? null } satisfies AgentMessage);
  } catch (error) {
    const message = error instanceof Error
      ? error.name === "WorkloadError" ? error.message : `${error.message}\n${error.stack ?? ""}`
      : String(error);
    toMain.postMessage({ type: "error", message } satisfies AgentMessage);
  } finally {
    for (const port of init.ports) port.close();
  }
}
