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
   */
  static get(hubid: number): NetHub | undefined {
    return HUBS.get(hubid);
  }

  /** @internal Joins a port, creating the hub when needed. */
  static join(hubid: number, port: HubNetdev): NetHub {
    let hub = HUBS.get(hubid);
    if (!hub) {
      hub = new NetHub(hubid);
      HUBS.set(hubid, hub);
    }
    hub.#ports.add(port);
    return hub;
  }

  /** The ids of the hubs that have ports, sorted. */
  static ids(): number[] {
    return [...HUBS.keys()].sort((a, b) => a - b);
  }

  /** Frames that entered the hub. */
  get forwarded(): number {
    return this.#forwarded;
  }

  /** Copies of frames a port could not take (its NIC's receive queue was full). */
  get dropped(): number {
    return this.#dropped;
  }

  /** The netdev ids of its ports. */
  get ports(): string[] {
    return [...this.#ports].map((p) => p.id);
  }

  /** @internal Removes a port; the hub disappears with its last port. */
  leave(port: HubNetdev): void {
    this.#ports.delete(port);
    if (this.#ports.size === 0 && HUBS.get(this.hubid) === this) HUBS.delete(this.hubid);
  }

  /** @internal Sends a frame that entered by `from` out of every other port. */
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
   */
  addTap(tap: (frame: Uint8Array, direction: FrameDirection) => void): void {
    this.#taps.push(tap);
  }

  /** @internal A frame leaving the hub through this port; false if the NIC could not take it. */
  output(frame: Uint8Array): boolean {
    for (const tap of this.#taps) tap(frame, "rx");
    return this.#nic === undefined ? true : this.#nic.deliver(frame);
  }

  /** Leaves the hub. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.hub.leave(this);
  }
}

registerNetdev("hub", (config) => HubNetdev.create(config));
