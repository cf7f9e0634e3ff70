/**
 * The `hub` network backend: QEMU's `-netdev hub,id=ID,hubid=N`. Every hub
 * netdev is a port of virtual hub N; a frame that enters one port leaves by
 * every other port of the same hub, like QEMU's hub (a repeater: NICs filter
 * what is not for them). Hubs are process-wide, so NICs of several machines
 * in one process that name the same `hubid` share a segment.
 *
 * A frame is handed on synchronously inside the main isolate, copied into
 * each receiving NIC's frame ring; a NIC whose ring is full loses the frame
 * (counted in {@linkcode NetHub.dropped}), as a congested switch port would.
 *
 * @module
 */

import {
  type FrameDirection,
  type Netdev,
  type NetdevConfig,
  type NetPort,
  registerNetdev,
} from "./netdev.ts";

const HUBS = new Map<number, NetHub>();

/**
 * A virtual hub: its ports are the hub netdevs that name its id.
 *
 * @example Two ports of hub 7 pass frames to each other
 * ```ts
 * import { HubNetdev, NetHub } from "./hub.ts";
 * import { equal } from "node:assert/strict";
 * const a = HubNetdev.create({ type: "hub", id: "a", properties: { hubid: "7" } });
 * const b = HubNetdev.create({ type: "hub", id: "b", properties: { hubid: "7" } });
 * let got = 0;
 * b.connect({ id: "nic-b", deliver: (f) => (got = f.length, true), onTransmit: () => {} });
 * let send: (f: Uint8Array) => void = () => {};
 * a.connect({ id: "nic-a", deliver: () => true, onTransmit: (h) => (send = h) });
 * send(new Uint8Array(60));
 * equal(got, 60);
 * equal(NetHub.get(7)?.forwarded, 1);
 * a.close();
 * b.close();
 * equal(NetHub.get(7), undefined);
 * ```
 */
export class NetHub {
  /** The hub's number (`hubid`). */
  readonly hubid: number;
  #ports = new Set<HubNetdev>();
  #forwarded = 0;
  #dropped = 0;

  private constructor(hubid: number) {
    this.hubid = hubid;
  }

  /**
   * The hub with this id, if any port is open on it.
   *
   * @param hubid The hub's number.
   * @returns The hub, or `undefined`.
   *
   * @example
   * ```ts
   * import { HubNetdev, NetHub } from "./hub.ts";
   * import { equal } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "p", properties: { hubid: "41" } });
   * equal(NetHub.get(41), port.hub);
   * port.close();
   * equal(NetHub.get(41), undefined); // the hub went with its last port
   * ```
   */
  static get(hubid: number): NetHub | undefined {
    return HUBS.get(hubid);
  }

  /**
   * @internal Joins a port, creating the hub when needed.
   *
   * @example
   * ```ts
   * import { HubNetdev, NetHub } from "./hub.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "p", properties: { hubid: "42" } });
   * const hub = NetHub.join(42, port); // HubNetdev.create did this already: joining again changes nothing
   * equal(hub, port.hub);
   * deepEqual(hub.ports, ["p"]);
   * port.close();
   * ```
   */
  static join(hubid: number, port: HubNetdev): NetHub {
    let hub = HUBS.get(hubid);
    if (!hub) {
      hub = new NetHub(hubid);
      HUBS.set(hubid, hub);
    }
    hub.#ports.add(port);
    return hub;
  }

  /**
   * The ids of the hubs that have ports, sorted.
   *
   * @example
   * ```ts
   * import { HubNetdev, NetHub } from "./hub.ts";
   * import { deepEqual } from "node:assert/strict";
   * const a = HubNetdev.create({ type: "hub", id: "a", properties: { hubid: "44" } });
   * const b = HubNetdev.create({ type: "hub", id: "b", properties: { hubid: "43" } });
   * deepEqual(NetHub.ids(), [43, 44]);
   * a.close();
   * b.close();
   * deepEqual(NetHub.ids(), []);
   * ```
   */
  static ids(): number[] {
    return [...HUBS.keys()].sort((a, b) => a - b);
  }

  /**
   * Frames that entered the hub.
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { equal } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "a", properties: { hubid: "45" } });
   * let send: (f: Uint8Array) => void = () => {};
   * port.connect({ id: "nic-a", deliver: () => true, onTransmit: (h) => (send = h) });
   * send(new Uint8Array(60));
   * send(new Uint8Array(60));
   * equal(port.hub.forwarded, 2); // counted even with no other port to take them
   * port.close();
   * ```
   */
  get forwarded(): number {
    return this.#forwarded;
  }

  /**
   * Copies of frames a port could not take (its NIC's receive queue was full).
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { equal } from "node:assert/strict";
   * const a = HubNetdev.create({ type: "hub", id: "a", properties: { hubid: "46" } });
   * const b = HubNetdev.create({ type: "hub", id: "b", properties: { hubid: "46" } });
   * b.connect({ id: "nic-b", deliver: () => false, onTransmit: () => {} }); // its queue is full
   * let send: (f: Uint8Array) => void = () => {};
   * a.connect({ id: "nic-a", deliver: () => true, onTransmit: (h) => (send = h) });
   * send(new Uint8Array(60));
   * equal(a.hub.dropped, 1);
   * a.close();
   * b.close();
   * ```
   */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * The netdev ids of its ports.
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { deepEqual } from "node:assert/strict";
   * const a = HubNetdev.create({ type: "hub", id: "a", properties: { hubid: "47" } });
   * const b = HubNetdev.create({ type: "hub", id: "b", properties: { hubid: "47" } });
   * deepEqual(a.hub.ports, ["a", "b"]);
   * b.close();
   * deepEqual(a.hub.ports, ["a"]);
   * a.close();
   * ```
   */
  get ports(): string[] {
    return [...this.#ports].map((p) => p.id);
  }

  /**
   * @internal Removes a port; the hub disappears with its last port.
   *
   * @example
   * ```ts
   * import { HubNetdev, NetHub } from "./hub.ts";
   * import { equal } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "p", properties: { hubid: "48" } });
   * port.hub.leave(port); // what port.close() does
   * equal(NetHub.get(48), undefined); // the hub went with its last port
   * ```
   */
  leave(port: HubNetdev): void {
    this.#ports.delete(port);
    if (this.#ports.size === 0 && HUBS.get(this.hubid) === this) HUBS.delete(this.hubid);
  }

  /**
   * @internal Sends a frame that entered by `from` out of every other port.
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { deepEqual } from "node:assert/strict";
   * const a = HubNetdev.create({ type: "hub", id: "a", properties: { hubid: "49" } });
   * const b = HubNetdev.create({ type: "hub", id: "b", properties: { hubid: "49" } });
   * const got: string[] = [];
   * a.connect({ id: "nic-a", deliver: () => (got.push("a"), true), onTransmit: () => {} });
   * b.connect({ id: "nic-b", deliver: () => (got.push("b"), true), onTransmit: () => {} });
   * a.hub.forward(a, new Uint8Array(60)); // what a frame sent by nic-a does
   * deepEqual(got, ["b"]); // every port but the one it came in by
   * a.close();
   * b.close();
   * ```
   */
  forward(from: HubNetdev, frame: Uint8Array): void {
    this.#forwarded++;
    for (const port of this.#ports) {
      if (port !== from && !port.output(frame)) this.#dropped++;
    }
  }
}

/**
 * A hub netdev: one port of a {@linkcode NetHub}, connected to at most one NIC.
 *
 * @example Properties are checked as QEMU's are
 * ```ts
 * import { HubNetdev } from "./hub.ts";
 * import { equal, throws } from "node:assert/strict";
 * throws(() => HubNetdev.create({ type: "hub", id: "h0" }), /hub needs hubid=/);
 * const port = HubNetdev.create({ type: "hub", id: "h0", properties: { hubid: "3" } });
 * equal(port.hub.hubid, 3);
 * port.close();
 * ```
 */
export class HubNetdev implements Netdev {
  /** The netdev id. */
  readonly id: string;
  /** The hub it is a port of. */
  readonly hub: NetHub;
  #nic: NetPort | undefined;
  #taps: Array<(frame: Uint8Array, direction: FrameDirection) => void> = [];
  #closed = false;

  private constructor(id: string, hubid: number) {
    this.id = id;
    this.hub = NetHub.join(hubid, this);
  }

  /**
   * Creates a port from `-netdev hub,id=ID,hubid=N` properties.
   *
   * @param config The netdev configuration.
   * @returns The port, joined to its hub.
   * @throws {Error} When `hubid` is missing or not a number, or a property is unknown.
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { equal, throws } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "h1", properties: { hubid: "12" } });
   * equal(port.hub.hubid, 12);
   * throws(() => HubNetdev.create({ type: "hub", id: "h2", properties: { hubid: "x" } }), /invalid hubid 'x'/);
   * throws(
   *   () => HubNetdev.create({ type: "hub", id: "h3", properties: { hubid: "12", netdev: "n" } }),
   *   /'netdev' is not supported/,
   * );
   * port.close();
   * ```
   */
  static create(config: NetdevConfig): HubNetdev {
    const props = config.properties ?? {};
    for (const key of Object.keys(props)) {
      if (key === "netdev") {
        throw new Error(
          `Netdev '${config.id}': hub property 'netdev' is not supported (connect NICs to the hub instead)`,
        );
      }
      if (key !== "hubid") throw new Error(`Netdev '${config.id}': unknown hub property '${key}'`);
    }
    const text = props["hubid"];
    if (text === undefined) throw new Error(`Netdev '${config.id}': hub needs hubid=`);
    const hubid = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(hubid) || hubid > 0x7fff_ffff) {
      throw new Error(
        `Netdev '${config.id}': invalid hubid '${text}' (a number from 0 to 2147483647)`,
      );
    }
    return new HubNetdev(config.id, hubid);
  }

  /**
   * Connects the NIC (one per port, as QEMU).
   *
   * @param port The NIC's port.
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { throws } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "h", properties: { hubid: "13" } });
   * port.connect({ id: "nic0", deliver: () => true, onTransmit: () => {} });
   * throws(
   *   () => port.connect({ id: "nic1", deliver: () => true, onTransmit: () => {} }),
   *   /Netdev 'h' is already connected to nic0/,
   * );
   * port.close();
   * ```
   */
  connect(port: NetPort): void {
    if (this.#nic) throw new Error(`Netdev '${this.id}' is already connected to ${this.#nic.id}`);
    this.#nic = port;
    port.onTransmit((frame) => {
      if (this.#closed) return;
      for (const tap of this.#taps) tap(frame, "tx");
      this.hub.forward(this, frame);
    });
  }

  /**
   * Adds an observer of the frames this port's NIC sends (`tx`) and receives (`rx`).
   *
   * @param tap The observer.
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { deepEqual } from "node:assert/strict";
   * const a = HubNetdev.create({ type: "hub", id: "a", properties: { hubid: "14" } });
   * const b = HubNetdev.create({ type: "hub", id: "b", properties: { hubid: "14" } });
   * const seen: string[] = [];
   * a.addTap((frame, direction) => seen.push(`${direction} ${frame.length}`));
   * const send: Array<(f: Uint8Array) => void> = [];
   * a.connect({ id: "nic-a", deliver: () => true, onTransmit: (h) => send.push(h) });
   * b.connect({ id: "nic-b", deliver: () => true, onTransmit: (h) => send.push(h) });
   * send[0]!(new Uint8Array(60));
   * send[1]!(new Uint8Array(42));
   * deepEqual(seen, ["tx 60", "rx 42"]);
   * a.close();
   * b.close();
   * ```
   */
  addTap(tap: (frame: Uint8Array, direction: FrameDirection) => void): void {
    this.#taps.push(tap);
  }

  /**
   * @internal A frame leaving the hub through this port; false if the NIC could not take it.
   *
   * @example
   * ```ts
   * import { HubNetdev } from "./hub.ts";
   * import { equal } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "p", properties: { hubid: "15" } });
   * equal(port.output(new Uint8Array(60)), true); // no NIC: nothing to refuse it
   * port.connect({ id: "nic", deliver: () => false, onTransmit: () => {} });
   * equal(port.output(new Uint8Array(60)), false); // the NIC's queue is full
   * port.close();
   * ```
   */
  output(frame: Uint8Array): boolean {
    for (const tap of this.#taps) tap(frame, "rx");
    return this.#nic === undefined ? true : this.#nic.deliver(frame);
  }

  /**
   * Leaves the hub.
   *
   * @example
   * ```ts
   * import { HubNetdev, NetHub } from "./hub.ts";
   * import { equal } from "node:assert/strict";
   * const port = HubNetdev.create({ type: "hub", id: "p", properties: { hubid: "16" } });
   * port.close();
   * port.close(); // idempotent
   * equal(NetHub.get(16), undefined);
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.hub.leave(this);
  }
}

registerNetdev("hub", (config) => HubNetdev.create(config));
