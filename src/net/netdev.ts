/**
 * Network backends (QEMU's `-netdev`) on the main isolate, and the port a
 * NIC's worker is connected to them by.
 *
 * @module
 */

/** A NIC as a network backend sees it (main isolate side). */
export interface NetPort {
  /** The NIC's device id. */
  readonly id: string;
  /**
   * Queues a frame for the NIC to receive.
   *
   * @param frame The Ethernet frame (without FCS).
   * @returns Whether it was queued (false: the NIC's receive queue is full).
   */
  deliver(frame: Uint8Array): boolean;
  /**
   * Sets the handler for frames the NIC transmits.
   *
   * @param handler Called once per frame, in order.
   */
  onTransmit(handler: (frame: Uint8Array) => void): void;
}

/** Which way a frame went through a backend (for capture filters). */
export type FrameDirection = "tx" | "rx";

/** A network backend on the main isolate. */
export interface Netdev {
  /** The `-netdev` id. */
  readonly id: string;
  /**
   * Connects a NIC.
   *
   * @param port The NIC's port.
   */
  connect(port: NetPort): void;
  /**
   * Adds an observer of every frame passing the backend (`filter-dump`):
   * `tx` frames come from the guest's NICs, `rx` frames go to them.
   *
   * @param tap The observer.
   */
  addTap(tap: (frame: Uint8Array, direction: FrameDirection) => void): void;
  /** Releases sockets and files. */
  close(): void | Promise<void>;
}

/** A `-netdev` as configured. */
export interface NetdevConfig {
  /** Backend type (`hub`, `dgram`, …). */
  type: string;
  /** The id NICs refer to with `netdev=`. */
  id: string;
  /** The remaining QEMU properties, as strings. */
  properties?: Record<string, string>;
}

/** Creates a backend from its configuration. */
export type NetdevFactory = (config: NetdevConfig) => Netdev | Promise<Netdev>;

const FACTORIES = new Map<string, NetdevFactory>();

/**
 * Registers a backend type (done by the modules that implement them).
 *
 * @param type The `-netdev` type name.
 * @param factory Creates instances.
 *
 * @example
 * ```ts
 * import { netdevFactory, registerNetdev } from "./netdev.ts";
 * import { equal } from "node:assert/strict";
 * registerNetdev("example-null", (config) => ({
 *   id: config.id, connect: () => {}, addTap: () => {}, close: () => {},
 * }));
 * equal(typeof netdevFactory("example-null"), "function");
 * ```
 */
export function registerNetdev(type: string, factory: NetdevFactory): void {
  FACTORIES.set(type, factory);
}

/**
 * Looks a backend type up.
 *
 * @param type The `-netdev` type name.
 * @returns Its factory, or `undefined`.
 *
 * @example
 * ```ts
 * import { netdevFactory } from "./netdev.ts";
 * import { equal } from "node:assert/strict";
 * equal(netdevFactory("no-such-backend"), undefined);
 * ```
 */
export function netdevFactory(type: string): NetdevFactory | undefined {
  return FACTORIES.get(type);
}

/**
 * The registered backend type names.
 *
 * @returns Sorted names.
 *
 * @example
 * ```ts
 * import { netdevTypes } from "./netdev.ts";
 * import { ok } from "node:assert/strict";
 * ok(Array.isArray(netdevTypes()));
 * ```
 */
export function netdevTypes(): string[] {
  return [...FACTORIES.keys()].sort();
}
