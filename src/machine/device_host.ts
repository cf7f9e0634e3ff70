/**
 * The main isolate's handle on one device worker: starts it, forwards
 * register accesses through its mailbox, mirrors Bus Master Enable into
 * shared memory, and turns a worker that dies or hangs into a reported,
 * guest-visible failure instead of a crash or a hang.
 *
 * @module
 */

import type { DeviceDescriptor, DiskAttachment } from "../devices/device_model.ts";
import type { GuestMemoryDescriptor } from "../memory/guest_memory.ts";
import { ringDoorbell, WAKE_MESSAGE } from "../shared/doorbell.ts";
import {
  RequestOp,
  ResponseStatus,
  TARGET_BLOCK_WORDS,
  TargetCtrl,
  TargetState,
} from "../shared/layout.ts";
import { failTarget, RingWriter } from "../shared/register_ring.ts";
import type { DeviceControl, DeviceInit, DeviceMessage } from "./device_runtime.ts";
import type { MainHub } from "./main_hub.ts";
import { DMA_TRACE_CAPACITY, dmaTraceBytes, DmaTraceReader } from "../dma/dma_trace.ts";

/** Deno permissions for a worker (`"none"` or a descriptor). */
export type WorkerPermissions = "none" | "inherit" | Record<string, boolean | string[]>;

/** How a device worker is created. */
export interface DeviceHostOptions {
  /** Instance id (`-device …,id=`). */
  readonly id: string;
  /** The device type. */
  readonly descriptor: DeviceDescriptor;
  /** `-device` properties for the model. */
  readonly properties: Readonly<Record<string, string>>;
  /** Guest RAM. */
  readonly memory: GuestMemoryDescriptor;
  /** The machine block. */
  readonly machineBlock: SharedArrayBuffer;
  /** PCI requester id. */
  readonly requesterId: number;
  /** Interrupt source per interrupt output. */
  readonly irqSources: readonly number[];
  /** Deno permissions for the worker (default none). */
  readonly permissions?: WorkerPermissions;
  /** Apply `permissions` (needs the unstable `worker-options` feature). */
  readonly narrowPermissions: boolean;
  /** How long a register read may take before the device counts as hung (ms). */
  readonly accessTimeoutMs: number;
  /** Called for device log lines. */
  readonly onLog: (message: string) => void;
  /** Called for the model's trace lines; when absent the model traces nothing. */
  readonly onTrace?: (message: string) => void;
  /** Called once when the device fails. */
  readonly onFailure: (reason: string) => void;
}

const WORKER_URL = new URL("../../workers/device_worker.ts", import.meta.url);

/**
 * Creates a module worker. With `narrow: true` the worker gets exactly
 * `permissions` (Deno's per-worker permissions, which need the unstable
 * `worker-options` feature: `"unstable": ["worker-options"]` in deno.json or
 * `--unstable-worker-options`; without it Deno exits the process, and nothing
 * in the runtime reveals whether it is on, so callers must opt in). Otherwise
 * the worker inherits the process's permissions.
 *
 * @param url Worker module.
 * @param options Name, permissions and whether to apply them.
 * @returns The worker.
 *
 * @example
 * ```ts
 * import { createWorker } from "./device_host.ts";
 * const worker = createWorker(
 *   new URL("data:text/javascript,self.close()"),
 *   { name: "demo", permissions: "none", narrow: false },
 * );
 * worker.terminate();
 * ```
 */
export function createWorker(
  url: URL,
  options: { name: string; permissions: WorkerPermissions; narrow: boolean },
): Worker {
  if (!options.narrow) return new Worker(url, { type: "module", name: options.name });
  return new Worker(url, {
    type: "module",
    name: options.name,
    // @ts-ignore: Deno's worker options (unstable "worker-options")
    deno: { permissions: options.permissions },
  });
}

/**
 * The narrowest Deno permissions a device worker needs: read access to its
 * disks' image files, write access to those that are not read-only, and
 * nothing else (no network: network backends run on the main isolate; no
 * environment, subprocesses, FFI or system information). A device without
 * image files gets `fallback`.
 *
 * @param disks The disks attached to the device.
 * @param fallback The permissions of a device without image files (default `"none"`).
 * @returns The permissions, as `new Worker`'s `deno.permissions` takes them.
 *
 * @example
 * ```ts
 * import { deviceWorkerPermissions } from "./device_host.ts";
 * import { deepEqual, equal } from "node:assert/strict";
 * const disk = { kind: "disk", drive: "d0", bus: 0, unit: 0, properties: {} } as const;
 * equal(deviceWorkerPermissions([]), "none");
 * deepEqual(deviceWorkerPermissions([{ ...disk, file: "a.img", readonly: true }]), {
 *   read: ["a.img"], write: false, net: false, env: false, run: false, ffi: false, sys: false,
 * });
 * ```
 */
export function deviceWorkerPermissions(
  disks: readonly DiskAttachment[],
  fallback: WorkerPermissions = "none",
): WorkerPermissions {
  const files = disks.flatMap((d) => (d.file !== undefined ? [{ ...d, file: d.file }] : []));
  if (files.length === 0) return fallback;
  const writable = files.filter((d) => !d.readonly).map((d) => d.file);
  return {
    read: files.map((d) => d.file),
    write: writable.length > 0 ? writable : false,
    net: false,
    env: false,
    run: false,
    ffi: false,
    sys: false,
  };
}

/**
 * One device worker, seen from the main isolate.
 *
 * @example
 * ```ts
 * import { DeviceHost } from "./device_host.ts";
 * import { MainHub } from "./main_hub.ts";
 * import { EDU_DESCRIPTOR } from "../devices/edu.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { MACHINE_BLOCK_WORDS } from "../shared/layout.ts";
 * import { equal } from "node:assert/strict";
 * const hub = new MainHub();
 * const host = new DeviceHost(hub, {
 *   id: "edu0", descriptor: EDU_DESCRIPTOR, properties: {},
 *   memory: new GuestMemory({ size: 1 << 20 }).descriptor(),
 *   machineBlock: new SharedArrayBuffer(MACHINE_BLOCK_WORDS * 4),
 *   requesterId: 0x20, irqSources: [0], accessTimeoutMs: 5000, narrowPermissions: false,
 *   onLog: () => {}, onFailure: () => {},
 * });
 * try {
 *   await host.start();
 *   equal(await host.read(0, 0, 4), 0x010000edn);
 * } finally {
 *   await host.close();
 *   hub.close();
 * }
 * ```
 */
export class DeviceHost {
  /** Instance id. */
  readonly id: string;
  /** The device's target block (mailbox rings and control words). */
  readonly block: SharedArrayBuffer;
  #options: DeviceHostOptions;
  #hub: MainHub;
  #words: Int32Array;
  #writer: RingWriter;
  #worker: Worker | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #failure: string | undefined;
  #ready: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #stopped: (() => void) | undefined;
  /** Injected stalls not yet begun (resolved by the worker's `stalled`, or a failure or stop). */
  #stalls: Array<() => void> = [];
  #failed = Promise.withResolvers<void>();
  #iommu: { readonly snapshot: SharedArrayBuffer; readonly port: MessagePort } | undefined;
  #trace: { buffer: SharedArrayBuffer; reader: DmaTraceReader } | undefined;
  #disks: DiskAttachment[] = [];
  #inject: SharedArrayBuffer | undefined;
  #net: { tx: SharedArrayBuffer; rx: SharedArrayBuffer } | undefined;
  #permissionQueries: Array<{
    resolve: (states: Deno.PermissionState[]) => void;
    reject: (error: Error) => void;
  }> = [];

  /**
   * Creates the instance.
   *
   * @param hub The main hub (waits and wake-ups).
   * @param options What to run and how.
   */
  constructor(hub: MainHub, options: DeviceHostOptions) {
    this.id = options.id;
    this.#options = options;
    this.#hub = hub;
    this.block = new SharedArrayBuffer(TARGET_BLOCK_WORDS * 4);
    this.#words = new Int32Array(this.block);
    this.#writer = new RingWriter(this.#words, 0);
  }

  /** Why the device failed, if it did. */
  get failure(): string | undefined {
    return this.#failure;
  }

  /** Resolves once the device is marked failed (never, if it stops normally). */
  get failed(): Promise<void> {
    return this.#failed.promise;
  }

  /**
   * Makes the worker hang for `ms` (fault injection: a synchronous busy
   * loop, so it answers no register access and acknowledges no
   * invalidation meanwhile).
   *
   * @param ms How long.
   * @returns Resolves once the worker has begun the stall, or once it
   *   cannot (the device failed or stopped first).
   */
  stall(ms: number): Promise<void> {
    const worker = this.#worker;
    if (!worker || this.#failure !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.#stalls.push(resolve);
      worker.postMessage({ type: "stall", ms } satisfies DeviceControl);
    });
  }

  /**
   * Connects the worker to the IOMMU (before {@linkcode DeviceHost.start}).
   *
   * @param link The IOTLB snapshot and the worker's end of the invalidation channel.
   */
  setIommu(link: { readonly snapshot: SharedArrayBuffer; readonly port: MessagePort }): void {
    this.#iommu = link;
  }

  /**
   * Turns DMA tracing on (before {@linkcode DeviceHost.start}).
   *
   * @param capacity Ring capacity in records (a power of two).
   * @param options `lossless`: the worker waits for a drain when the ring is full.
   * @returns The reader for the ring.
   */
  enableTrace(
    capacity: number = DMA_TRACE_CAPACITY,
    options: { lossless?: boolean } = {},
  ): DmaTraceReader {
    const buffer = new SharedArrayBuffer(dmaTraceBytes(capacity));
    this.#trace = { buffer, reader: new DmaTraceReader(buffer, options) };
    return this.#trace.reader;
  }

  /**
   * Turns DMA injection on (before {@linkcode DeviceHost.start}): the worker
   * reports every DMA run to the injection block (fuzzing).
   *
   * @param block The machine's injection block (`DmaInjector.buffer`).
   */
  enableInjection(block: SharedArrayBuffer): void {
    this.#inject = block;
  }

  /**
   * Attaches a disk (before {@linkcode DeviceHost.start}); the worker gets
   * read (and, unless read-only, write) permission for its image only.
   *
   * @param disk The disk.
   */
  attachDisk(disk: DiskAttachment): void {
    this.#disks.push(disk);
  }

  /**
   * Connects the NIC's frame rings (before {@linkcode DeviceHost.start}).
   *
   * @param rings Transmit (worker → main) and receive (main → worker) rings.
   */
  setNet(rings: { tx: SharedArrayBuffer; rx: SharedArrayBuffer }): void {
    this.#net = rings;
  }

  /** The narrowest permissions the worker needs: its disk images, nothing else. */
  #permissions(): WorkerPermissions {
    return deviceWorkerPermissions(this.#disks, this.#options.permissions ?? "none");
  }

  /**
   * Asks the running worker which Deno permissions it holds: the worker
   * itself answers with `Deno.permissions.querySync`, so this is the set the
   * runtime enforces on it (narrowed or inherited), not the one requested.
   *
   * @param descriptors What to ask about.
   * @returns One state per descriptor, in order.
   * @throws {Error} When the worker is not running, fails before it answers, or
   *   rejects a descriptor.
   */
  queryPermissions(
    descriptors: readonly Deno.PermissionDescriptor[],
  ): Promise<Deno.PermissionState[]> {
    const worker = this.#worker;
    if (!worker || this.#failure !== undefined) {
      return Promise.reject(new Error(`Device ${this.id} is not running`));
    }
    return new Promise((resolve, reject) => {
      this.#permissionQueries.push({ resolve, reject });
      worker.postMessage({ type: "query-permissions", descriptors } satisfies DeviceControl);
    });
  }

  #endPermissionQueries(reason: string): void {
    for (const query of this.#permissionQueries.splice(0)) query.reject(new Error(reason));
  }

  /** The worker (while it runs). */
  get worker(): Worker | undefined {
    return this.#worker;
  }

  /** The device's control words. */
  get words(): Int32Array {
    return this.#words;
  }

  /** The device's state (a `TargetState`). */
  get state(): number {
    return Atomics.load(this.#words, TargetCtrl.STATE);
  }

  /** Starts the worker and waits until the model is ready. */
  async start(): Promise<void> {
    const worker = createWorker(WORKER_URL, {
      name: `device ${this.id}`,
      permissions: this.#permissions(),
      narrow: this.#options.narrowPermissions,
    });
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<DeviceMessage | { type: "stopped" }>) =>
      this.#onMessage(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.fail(`Device ${this.id} crashed: ${event.message}`);
    };
    worker.onmessageerror = () => this.fail(`Device ${this.id} sent an unreadable message`);
    const ready = new Promise<void>((resolve, reject) => (this.#ready = { resolve, reject }));
    const init: DeviceInit = {
      type: "init",
      deviceType: this.#options.descriptor.type,
      id: this.id,
      properties: this.#options.properties,
      memory: this.#options.memory,
      target: this.block,
      machine: this.#options.machineBlock,
      main: this.#hub.block,
      requesterId: this.#options.requesterId,
      irqSources: this.#options.irqSources,
      ...(this.#iommu ? { iommu: this.#iommu } : {}),
      ...(this.#trace ? { trace: this.#trace.buffer } : {}),
      ...(this.#inject ? { inject: this.#inject } : {}),
      ...(this.#disks.length > 0 ? { disks: this.#disks } : {}),
      ...(this.#net ? { net: this.#net } : {}),
      ...(this.#options.onTrace ? { traceEvents: true } : {}),
    };
    worker.postMessage(init satisfies DeviceControl, this.#iommu ? [this.#iommu.port] : []);
    await ready;
  }

  #onMessage(message: DeviceMessage | { type: "stopped" }): void {
    if (message === WAKE_MESSAGE) {
      this.#hub.wake();
      return;
    }
    switch (message.type) {
      case "ready":
        this.#ready?.resolve();
        this.#ready = undefined;
        break;
      case "stalled":
        this.#stalls.shift()?.();
        break;
      case "log":
        this.#options.onLog(message.message);
        break;
      case "trace":
        this.#options.onTrace?.(message.message);
        break;
      case "fatal":
        this.fail(message.message);
        break;
      case "permissions": {
        const query = this.#permissionQueries.shift();
        if (message.error !== undefined) query?.reject(new Error(message.error));
        else query?.resolve([...message.states]);
        break;
      }
      case "stopped":
        this.#stopped?.();
        break;
    }
  }

  /**
   * Marks the device failed: its worker is terminated (so it can no longer
   * touch memory), waiting producers get all-ones, and the machine is told.
   *
   * @param reason Why.
   */
  fail(reason: string): void {
    if (this.#failure !== undefined) return;
    this.#failure = reason;
    this.#failed.resolve();
    for (const begun of this.#stalls.splice(0)) begun();
    failTarget(this.#words);
    this.#worker?.terminate();
    this.#ready?.reject(new Error(reason));
    this.#ready = undefined;
    this.#stopped?.();
    this.#endPermissionQueries(reason);
    this.#hub.wake();
    this.#options.onFailure(reason);
  }

  /**
   * Mirrors the function's Bus Master Enable bit into shared memory.
   *
   * @param enabled The bit.
   */
  setBusMaster(enabled: boolean): void {
    Atomics.store(this.#words, TargetCtrl.BUS_MASTER, enabled ? 1 : 0);
  }

  /**
   * Gives the worker the wake port of a new producer (a guest agent).
   *
   * @param port The device's end of the agent's wake channel.
   */
  attachProducer(port: MessagePort): void {
    if (!this.#worker || this.#failure !== undefined) {
      port.close();
      return;
    }
    this.#worker.postMessage({ type: "attach-producer", port } satisfies DeviceControl, [port]);
  }

  /**
   * Sends a control message to the worker (fault injection).
   *
   * @param message The message.
   */
  control(message: DeviceControl): void {
    this.#worker?.postMessage(message);
  }

  /**
   * Reads a register.
   *
   * @param region Region number.
   * @param offset Offset in the region.
   * @param size 1, 2, 4 or 8.
   * @returns The value; all-ones if the device failed or hung.
   */
  read(region: number, offset: number, size: number): Promise<bigint> {
    return this.#serial(async () => {
      const status = await this.#request(RequestOp.Read, region, offset, size, 0n);
      if (status !== ResponseStatus.Ok) {
        return size === 8 ? 0xffff_ffff_ffff_ffffn : BigInt((2 ** (8 * size)) - 1);
      }
      const lo = BigInt(this.#writer.responseLo >>> 0);
      const hi = BigInt(this.#writer.responseHi >>> 0);
      const v = (hi << 32n) | lo;
      return size === 8 ? v : v & BigInt(2 ** (8 * size) - 1);
    });
  }

  /**
   * Writes a register.
   *
   * @param region Region number.
   * @param offset Offset in the region.
   * @param size 1, 2, 4 or 8.
   * @param value The value.
   * @param options `sync: true` waits until the device has handled the write.
   */
  write(
    region: number,
    offset: number,
    size: number,
    value: bigint,
    options: { sync?: boolean } = {},
  ): Promise<void> {
    return this.#serial(async () => {
      await this.#request(
        options.sync ? RequestOp.WriteSync : RequestOp.Write,
        region,
        offset,
        size,
        value,
      );
    });
  }

  #serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(job, job);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #request(
    op: number,
    region: number,
    offset: number,
    size: number,
    value: bigint,
  ): Promise<number> {
    if (this.#failure !== undefined || this.state !== TargetState.Running) {
      return ResponseStatus.Failed;
    }
    const timeout = this.#options.accessTimeoutMs;
    if (this.#writer.full) {
      const ok = await this.#hub.until(
        () => !this.#writer.full || this.#failure !== undefined,
        timeout,
      );
      if (!ok) this.fail(`Device ${this.id} stopped taking requests (hung for ${timeout} ms)`);
      if (this.#failure !== undefined) return ResponseStatus.Failed;
    }
    const v = BigInt.asUintN(64, value);
    const seq = this.#writer.push(
      op,
      region,
      offset | 0,
      0,
      size,
      Number(v & 0xffff_ffffn) | 0,
      Number(v >> 32n) | 0,
    );
    if (this.#worker) ringDoorbell(this.#words, this.#worker);
    if (op === RequestOp.Write) return ResponseStatus.Ok;
    const answered = await this.#hub.until(() => this.#writer.answered(seq), timeout);
    if (!answered) {
      this.fail(`Device ${this.id} did not answer a register access within ${timeout} ms`);
      return ResponseStatus.Failed;
    }
    return this.#writer.responseStatus;
  }

  /** Stops the worker (gracefully, then by force). */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker) {
      if (this.#failure === undefined) this.#iommu?.port.close(); // never handed to a worker
      return;
    }
    this.#worker = undefined;
    this.#endPermissionQueries(`Device ${this.id} stopped`);
    if (this.#failure === undefined) {
      const stopped = new Promise<void>((resolve) => (this.#stopped = resolve));
      worker.postMessage({ type: "shutdown" } satisfies DeviceControl);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([stopped, new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      Atomics.store(this.#words, TargetCtrl.STATE, TargetState.Stopped);
    }
    worker.terminate();
    for (const begun of this.#stalls.splice(0)) begun();
  }
}
