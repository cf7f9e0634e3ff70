/**
 * Hosts one device model inside a device worker: serves its register
 * mailbox, gives it its DMA context and interrupt lines, runs its deferred
 * work, and reports failures to the main isolate.
 *
 * The worker shell (`workers/device_worker.ts`) only forwards messages here,
 * so the same runtime can be driven in one thread by tests.
 *
 * @module
 */

import { DmaContext, type DmaContextOptions } from "../dma/dma_context.ts";
import { DmaTraceWriter } from "../dma/dma_trace.ts";
import { DmaInjector } from "../dma/dma_inject.ts";
import {
  type InvalidationMessage,
  type PrefetchMessage,
  SnapshotMmu,
} from "../iommu/snapshot_mmu.ts";
import type { DeviceEnv, DeviceModel, DeviceNet, DiskAttachment } from "../devices/device_model.ts";
import { FrameRing } from "../net/frame_ring.ts";
import { deviceType } from "../devices/registry.ts";
import { GuestMemory, type GuestMemoryDescriptor } from "../memory/guest_memory.ts";
import { ringDoorbell, WAKE_MESSAGE, type WakeTarget } from "../shared/doorbell.ts";
import { IrqLines } from "../shared/irq_lines.ts";
import { RequestOp, ResponseStatus, TargetCtrl, TargetState } from "../shared/layout.ts";
import { failTarget, RingReader, type RingRequest } from "../shared/register_ring.ts";
import { WorkPump } from "../shared/work_pump.ts";

/** The message that starts a device runtime. */
export interface DeviceInit {
  /** Always `init`. */
  readonly type: "init";
  /** Device type name (registry key). */
  readonly deviceType: string;
  /** Instance id (for messages). */
  readonly id: string;
  /** `-device` properties. */
  readonly properties: Readonly<Record<string, string>>;
  /** Guest RAM. */
  readonly memory: GuestMemoryDescriptor;
  /** This device's target block. */
  readonly target: SharedArrayBuffer;
  /** The machine block (interrupt lines). */
  readonly machine: SharedArrayBuffer;
  /** The main isolate's target block (to wake it). */
  readonly main: SharedArrayBuffer;
  /** PCI requester id. */
  readonly requesterId: number;
  /** Interrupt source index for each of the device's interrupt outputs. */
  readonly irqSources: readonly number[];
  /** The IOMMU link, when the machine has an IOMMU: the IOTLB snapshot and the invalidation channel. */
  readonly iommu?: { readonly snapshot: SharedArrayBuffer; readonly port: MessagePort };
  /** The DMA trace ring, when DMA tracing is on. */
  readonly trace?: SharedArrayBuffer;
  /** The DMA injection block, when fuzzing (see `src/dma/dma_inject.ts`). */
  readonly inject?: SharedArrayBuffer;
  /** Disks attached to this controller. */
  readonly disks?: readonly DiskAttachment[];
  /** Frame rings to the main isolate's network backend (NICs with a netdev). */
  readonly net?: { readonly tx: SharedArrayBuffer; readonly rx: SharedArrayBuffer };
  /** Send the model's trace lines (`DeviceEnv.trace`) to the main isolate. */
  readonly traceEvents?: boolean;
}

/** Messages a device runtime sends to the main isolate. */
export type DeviceMessage =
  | typeof WAKE_MESSAGE
  | { readonly type: "ready" }
  /** Fault injection: the worker begins an injected stall (sent just before it hangs). */
  | { readonly type: "stalled" }
  | { readonly type: "log"; readonly message: string }
  | { readonly type: "trace"; readonly message: string }
  | { readonly type: "fatal"; readonly message: string }
  /** The answer to a `query-permissions`: one state per descriptor, in order, or why not. */
  | {
    readonly type: "permissions";
    readonly states: readonly Deno.PermissionState[];
    readonly error?: string;
  };

/** Messages the main isolate sends to a device runtime. */
export type DeviceControl =
  | typeof WAKE_MESSAGE
  | DeviceInit
  | { readonly type: "attach-producer"; readonly port: MessagePort }
  | { readonly type: "shutdown" }
  /** Fault injection: the device hangs (a synchronous busy loop) for `ms`. */
  | { readonly type: "stall"; readonly ms: number }
  /**
   * Fault injection: the device fails as a bug in its model would (caught by
   * the runtime), or, with `uncaught`, with an exception nothing catches
   * (the worker's error event).
   */
  | { readonly type: "crash"; readonly message: string; readonly uncaught?: boolean }
  /**
   * Asks the worker shell what Deno permissions the worker holds (answered
   * with a `permissions` message; the model is not involved).
   */
  | {
    readonly type: "query-permissions";
    readonly descriptors: readonly Deno.PermissionDescriptor[];
  };

/**
 * The runtime of one device.
 *
 * @example Host an edu device in this thread and read its id register
 * ```ts
 * import { DeviceRuntime } from "./device_runtime.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { MACHINE_BLOCK_WORDS, RequestOp, TARGET_BLOCK_WORDS } from "../shared/layout.ts";
 * import { RingWriter } from "../shared/register_ring.ts";
 * import { equal } from "node:assert/strict";
 * const target = new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4);
 * const runtime = new DeviceRuntime({
 *   type: "init", deviceType: "edu", id: "edu0", properties: {},
 *   memory: new GuestMemory({ size: 1 << 20 }).descriptor(),
 *   target, machine: new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4),
 *   main: new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4),
 *   requesterId: 0x20, irqSources: [0],
 * }, { postMessage: () => {} });
 * const writer = new RingWriter(new Int32Array(target), 1);
 * const seq = writer.push(RequestOp.Read, 0, 0, 0, 4, 0, 0);
 * runtime.pump();
 * equal(writer.answered(seq) && writer.responseLo, 0x010000ed);
 * await runtime.shutdown();
 * ```
 */
export class DeviceRuntime {
  #init: DeviceInit;
  #toMain: WakeTarget;
  #ctrl: Int32Array;
  #mainCtrl: Int32Array;
  #reader: RingReader;
  #model: DeviceModel;
  #maxAccess: readonly (4 | 8)[];
  #deferred: Array<() => void | Promise<void>> = [];
  #pump: WorkPump;
  #ports: MessagePort[] = [];
  #failed = false;
  #pendingTasks = new Set<Promise<void>>();
  #mmu: SnapshotMmu | undefined;
  #rx: FrameRing | undefined;
  #rxSeen = 0;
  #iommuPort: MessagePort | undefined;

  /**
   * Builds the model and starts serving.
   *
   * @param init The init message.
   * @param toMain Where messages for the main isolate go (the worker's `self`).
   * @param options Extra DMA context options (an MMU).
   */
  constructor(init: DeviceInit, toMain: WakeTarget) {
    this.#init = init;
    this.#toMain = toMain;
    const type = deviceType(init.deviceType);
    if (!type) throw new Error(`Unknown device type '${init.deviceType}'`);
    this.#maxAccess = type.descriptor.regions.map((r) => r.maxAccess ?? 4);
    this.#ctrl = new Int32Array(init.target);
    this.#mainCtrl = new Int32Array(init.main);
    this.#reader = new RingReader(this.#ctrl);
    const memory = new GuestMemory(init.memory);
    const ctrl = this.#ctrl;
    const dmaOptions: DmaContextOptions = {
      requesterId: init.requesterId,
      busMaster: () => Atomics.load(ctrl, TargetCtrl.BUS_MASTER) === 1,
    };
    if (init.trace) dmaOptions.trace = new DmaTraceWriter(init.trace, new Int32Array(init.machine));
    if (init.inject) {
      const injector = new DmaInjector(memory, { buffer: init.inject });
      dmaOptions.observe = (address, offset, length, access) =>
        injector.observe(address, offset, length, access);
    }
    if (init.iommu) {
      const port = init.iommu.port;
      const mmu = new SnapshotMmu({
        snapshot: init.iommu.snapshot,
        ctrl: this.#ctrl,
        mainCtrl: this.#mainCtrl,
        toMain,
        sendPrefetch: (message: PrefetchMessage) => port.postMessage(message),
      });
      this.#mmu = mmu;
      dmaOptions.mmu = mmu;
      this.#iommuPort = init.iommu.port;
      init.iommu.port.onmessage = (event: MessageEvent<InvalidationMessage>) => {
        mmu.onInvalidation(event.data);
        this.#pump.wake();
      };
    }
    const dma = new DmaContext(memory, dmaOptions);
    const irq = new IrqLines(
      new Int32Array(init.machine),
      () => ringDoorbell(this.#mainCtrl, this.#toMain),
    );
    const env: DeviceEnv = {
      dma,
      setIrq: (pin, level) => {
        const source = init.irqSources[pin];
        if (source === undefined) {
          throw new RangeError(`Device ${init.id} has no interrupt pin ${pin}`);
        }
        irq.setSource(source, level);
      },
      log: (message) => this.#toMain.postMessage({ type: "log", message } satisfies DeviceMessage),
      ...(init.traceEvents
        ? {
          trace: (message: string) =>
            this.#toMain.postMessage({ type: "trace", message } satisfies DeviceMessage),
        }
        : {}),
      defer: (task) => {
        this.#deferred.push(task);
        this.#pump.wake();
      },
      ...(init.disks ? { disks: init.disks } : {}),
      ...(init.net ? { net: this.#connectNet(init.net) } : {}),
    };
    this.#model = type.create(env, init.properties);
    this.#pump = new WorkPump(this.#ctrl, {
      step: () => this.#step(),
      hasWork: () =>
        this.#deferred.length > 0 || this.#reader.hasWork() || (this.#mmu?.needsPoll ?? false) ||
        (this.#rx !== undefined && this.#rx.frames !== this.#rxSeen),
    });
    Atomics.store(this.#ctrl, TargetCtrl.STATE, TargetState.Running);
    this.#toMain.postMessage({ type: "ready" } satisfies DeviceMessage);
    this.#pump.wake();
  }

  #connectNet(rings: { tx: SharedArrayBuffer; rx: SharedArrayBuffer }): DeviceNet {
    const tx = new FrameRing(rings.tx);
    const rx = new FrameRing(rings.rx);
    this.#rx = rx;
    const mainCtrl = this.#mainCtrl;
    const toMain = this.#toMain;
    return {
      transmit: (frame) => {
        const queued = tx.push(frame);
        ringDoorbell(mainCtrl, toMain);
        return queued;
      },
      receive: () => rx.pop(),
      get pending() {
        return rx.readable;
      },
      get dropped() {
        return rx.dropped;
      },
    };
  }

  /** The worker's MMU, when the machine has an IOMMU. */
  get mmu(): SnapshotMmu | undefined {
    return this.#mmu;
  }

  /** The hosted model (tests). */
  get model(): DeviceModel {
    return this.#model;
  }

  /**
   * Handles a control message from the main isolate.
   *
   * @param message The message.
   */
  onControl(message: DeviceControl): void {
    if (message === WAKE_MESSAGE) {
      this.#pump.wake();
    } else if (message.type === "attach-producer") {
      this.#ports.push(message.port);
      message.port.onmessage = () => this.#pump.wake();
      this.#pump.wake();
    } else if (message.type === "stall") {
      // Tell main first: postMessage does not need this thread's event loop.
      this.#toMain.postMessage({ type: "stalled" } satisfies DeviceMessage);
      const until = performance.now() + message.ms;
      while (performance.now() < until) { /* hung: no requests, no acknowledgements */ }
    } else if (message.type === "crash") {
      if (message.uncaught) {
        setTimeout(() => {
          throw new Error(message.message);
        }, 0);
      } else {
        this.#fatal(new Error(message.message));
      }
    }
  }

  /** Runs the work loop synchronously until idle (tests). */
  pump(): void {
    while (this.#step()) { /* keep going */ }
  }

  /** Stops serving and disposes of the model. */
  async shutdown(): Promise<void> {
    this.#pump.close();
    for (const port of this.#ports) port.close();
    this.#iommuPort?.close();
    await Promise.allSettled([...this.#pendingTasks]);
    await this.#model.dispose?.();
    Atomics.store(this.#ctrl, TargetCtrl.STATE, TargetState.Stopped);
  }

  #step(): boolean {
    if (this.#failed) return false;
    let did = false;
    try {
      if (this.#mmu?.needsPoll) {
        this.#mmu.poll();
        did = true;
      }
      if (this.#reader.drain((r) => this.#handle(r)) > 0) did = true;
      if (this.#rx !== undefined && this.#rx.frames !== this.#rxSeen) {
        // New frames arrived: tell the model once; it pulls what it can take
        // (and pulls the rest itself when it gets receive buffers).
        this.#rxSeen = this.#rx.frames;
        this.#model.onNetReceive?.();
        did = true;
      }
      const tasks = this.#deferred.splice(0);
      for (const task of tasks) {
        did = true;
        const result = task();
        if (result instanceof Promise) {
          const tracked: Promise<void> = result.catch((e) => this.#fatal(e)).finally(() =>
            this.#pendingTasks.delete(tracked)
          );
          this.#pendingTasks.add(tracked);
        }
      }
    } catch (error) {
      this.#fatal(error);
      return false;
    }
    return did;
  }

  #handle(r: RingRequest): void {
    const maxAccess = this.#maxAccess[r.region];
    const offset = r.offsetLo >>> 0;
    if (maxAccess === undefined) {
      this.#answer(r, ResponseStatus.Unassigned, -1, -1);
      return;
    }
    const model = this.#model;
    if (r.op === RequestOp.Read) {
      let lo: number;
      let hi = 0;
      if (r.size === 8) {
        if (maxAccess === 8 && model.read64) {
          const v = model.read64(r.region, offset);
          lo = Number(v & 0xffff_ffffn) | 0;
          hi = Number((v >> 32n) & 0xffff_ffffn) | 0;
        } else {
          lo = model.read(r.region, offset, 4);
          hi = model.read(r.region, offset + 4, 4);
        }
      } else {
        lo = model.read(r.region, offset, r.size as 1 | 2 | 4);
      }
      this.#answer(r, ResponseStatus.Ok, lo, hi);
      return;
    }
    if (r.size === 8) {
      if (maxAccess === 8 && model.write64) {
        model.write64(r.region, offset, (BigInt(r.valueHi >>> 0) << 32n) | BigInt(r.valueLo >>> 0));
      } else {
        model.write(r.region, offset, 4, r.valueLo >>> 0);
        model.write(r.region, offset + 4, 4, r.valueHi >>> 0);
      }
    } else {
      model.write(r.region, offset, r.size as 1 | 2 | 4, r.valueLo >>> 0);
    }
    if (r.op === RequestOp.WriteSync) this.#answer(r, ResponseStatus.Ok, 0, 0);
  }

  #answer(r: RingRequest, status: number, lo: number, hi: number): void {
    this.#reader.respond(r.producer, r.seq, status, lo, hi);
    if (r.producer === 0) ringDoorbell(this.#mainCtrl, this.#toMain);
  }

  #fatal(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    failTarget(this.#ctrl);
    const message = error instanceof Error
      ? `${error.message}\n${error.stack ?? ""}`
      : String(error);
    this.#toMain.postMessage(
      {
        type: "fatal",
        message: `Device ${this.#init.id} failed: ${message}`,
      } satisfies DeviceMessage,
    );
    ringDoorbell(this.#mainCtrl, this.#toMain);
  }
}
