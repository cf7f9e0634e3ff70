/**
 * The `dgram` network backend, compatible with QEMU 7.2's:
 * `-netdev dgram,id=ID,local.type=inet,local.host=H,local.port=P,remote.type=inet,remote.host=H2,remote.port=Q`.
 * Each Ethernet frame (without FCS) travels as one UDP datagram with no
 * header, so a dmaworks NIC and a QEMU NIC (or two dmaworks processes)
 * exchange frames. Like QEMU, datagrams are sent to the remote address and
 * accepted from any sender; unlike QEMU, empty datagrams and datagrams
 * longer than a frame (16 KiB) are dropped and counted.
 *
 * The socket binds to `local.host`, 127.0.0.1 unless the user names another
 * address; `remote.host` defaults to 127.0.0.1. Unix-domain, fd and
 * multicast forms of QEMU's dgram netdev are not supported.
 *
 * @module
 */

import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { MAX_FRAME } from "./frame_ring.ts";
import {
  type FrameDirection,
  type Netdev,
  type NetdevConfig,
  type NetPort,
  registerNetdev,
} from "./netdev.ts";

/** A UDP endpoint. */
export interface DgramAddress {
  /** IP address. */
  readonly host: string;
  /** UDP port. */
  readonly port: number;
}

/** Counters of a {@linkcode DgramNetdev}. */
export interface DgramCounters {
  /** Frames sent as datagrams. */
  readonly sent: number;
  /** Datagrams received and passed to the NIC. */
  readonly received: number;
  /**
   * Frames dropped: datagrams that were empty, longer than a frame, or found
   * no NIC or a full NIC queue, and frames sent while 1024 were still queued.
   */
  readonly dropped: number;
  /** Send errors reported by the socket (e.g. nothing listening). */
  readonly errors: number;
}

/** Frames waiting to be sent before new ones are dropped. */
const SEND_QUEUE_LIMIT = 1024;

const KEYS = [
  "local.type",
  "local.host",
  "local.port",
  "remote.type",
  "remote.host",
  "remote.port",
];

function parseHost(id: string, key: string, value: string | undefined): string {
  const host = value === undefined || value === "localhost" ? "127.0.0.1" : value.trim();
  if (isIP(host) === 0) {
    throw new Error(`Netdev '${id}': invalid ${key} '${value}' (an IPv4 or IPv6 address)`);
  }
  return host;
}

function parsePort(id: string, key: string, value: string | undefined, required: boolean): number {
  if (value === undefined) {
    if (required) throw new Error(`Netdev '${id}': dgram needs ${key}=`);
    return 0;
  }
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || port > 65535) {
    throw new Error(`Netdev '${id}': invalid ${key} '${value}' (0 to 65535)`);
  }
  return port;
}

function isMulticast(host: string): boolean {
  if (isIP(host) === 4) {
    const first = Number(host.split(".")[0]);
    return first >= 224 && first <= 239;
  }
  return host.toLowerCase().startsWith("ff");
}

/**
 * A dgram netdev: one UDP socket, one frame per datagram.
 *
 * @example Two dgram netdevs on loopback pass a frame
 * ```ts
 * import { DgramNetdev } from "./dgram.ts";
 * import { equal } from "node:assert/strict";
 * const a = await DgramNetdev.create({ type: "dgram", id: "a", properties: {
 *   "local.port": "0", "remote.port": "9" } });
 * const b = await DgramNetdev.create({ type: "dgram", id: "b", properties: {
 *   "local.port": "0", "remote.port": String(a.local.port) } });
 * const got = new Promise<number>((resolve) =>
 *   a.connect({ id: "nic", deliver: (f) => (resolve(f.length), true), onTransmit: () => {} })
 * );
 * let send: (f: Uint8Array) => void = () => {};
 * b.connect({ id: "nic2", deliver: () => true, onTransmit: (h) => (send = h) });
 * send(new Uint8Array(60));
 * equal(await got, 60);
 * await a.close();
 * await b.close();
 * ```
 */
export class DgramNetdev implements Netdev {
  /** The netdev id. */
  readonly id: string;
  /** The address the socket is bound to (with the port the system chose for port 0). */
  readonly local: DgramAddress;
  /** Where frames are sent. */
  readonly remote: DgramAddress;
  #socket: Socket;
  #nic: NetPort | undefined;
  #taps: Array<(frame: Uint8Array, direction: FrameDirection) => void> = [];
  #closed: Promise<void> | undefined;
  #queue: Uint8Array[] = [];
  #sent = 0;
  #received = 0;
  #dropped = 0;
  #errors = 0;

  private constructor(id: string, socket: Socket, local: DgramAddress, remote: DgramAddress) {
    this.id = id;
    this.#socket = socket;
    this.local = local;
    this.remote = remote;
    socket.on("message", (message: Uint8Array) => this.#receive(message));
  }

  /**
   * Parses QEMU's properties, binds the socket and returns the netdev.
   *
   * @param config `local.type`, `local.host`, `local.port`, `remote.type`,
   *   `remote.host`, `remote.port` (inet only).
   * @returns The bound netdev.
   * @throws {Error} Naming the property, for a missing or bad value or an
   *   address that cannot be bound.
   *
   * @example
   * ```ts
   * import { DgramNetdev } from "./dgram.ts";
   * import { deepEqual, equal, notEqual, rejects } from "node:assert/strict";
   * const d = await DgramNetdev.create({ type: "dgram", id: "d", properties: {
   *   "local.port": "0", "remote.port": "9" } });
   * equal(d.local.host, "127.0.0.1");
   * notEqual(d.local.port, 0); // the port the system chose
   * deepEqual(d.remote, { host: "127.0.0.1", port: 9 });
   * await d.close();
   * await rejects(DgramNetdev.create({ type: "dgram", id: "e", properties: { "local.port": "0" } }),
   *   /Netdev 'e': dgram needs remote.host= and remote.port=/);
   * ```
   */
  static async create(config: NetdevConfig): Promise<DgramNetdev> {
    const id = config.id;
    const props = config.properties ?? {};
    for (const key of Object.keys(props)) {
      if (!KEYS.includes(key)) {
        throw new Error(
          `Netdev '${id}': unsupported dgram property '${key}' (supported: ${KEYS.join(", ")})`,
        );
      }
    }
    for (const side of ["local", "remote"]) {
      const type = props[`${side}.type`] ?? "inet";
      if (type !== "inet") {
        throw new Error(`Netdev '${id}': ${side}.type=${type} is not supported (only inet)`);
      }
    }
    if (props["remote.port"] === undefined && props["remote.host"] === undefined) {
      throw new Error(`Netdev '${id}': dgram needs remote.host= and remote.port=`);
    }
    const localHost = parseHost(id, "local.host", props["local.host"]);
    const remoteHost = parseHost(id, "remote.host", props["remote.host"]);
    const localPort = parsePort(id, "local.port", props["local.port"], true);
    const remotePort = parsePort(id, "remote.port", props["remote.port"], true);
    if (remotePort === 0) throw new Error(`Netdev '${id}': invalid remote.port '0'`);
    if (isMulticast(remoteHost)) {
      throw new Error(`Netdev '${id}': multicast remote.host '${remoteHost}' is not supported`);
    }
    if (isIP(localHost) !== isIP(remoteHost)) {
      throw new Error(`Netdev '${id}': local.host and remote.host must be of the same IP version`);
    }
    const socket = createSocket({ type: isIP(localHost) === 6 ? "udp6" : "udp4" });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        socket.off("listening", onListening);
        reject(error);
      };
      const onListening = () => {
        socket.off("error", onError);
        resolve();
      };
      socket.once("error", onError);
      socket.once("listening", onListening);
      socket.bind({ address: localHost, port: localPort, exclusive: true });
    }).catch(async (error: Error) => {
      await new Promise<void>((resolve) => {
        try {
          socket.close(() => resolve());
        } catch {
          resolve();
        }
      });
      throw new Error(
        `Netdev '${id}': cannot bind ${localHost}:${localPort} (local.host, local.port): ${error.message}`,
      );
    });
    const bound = socket.address();
    const netdev = new DgramNetdev(id, socket, { host: bound.address, port: bound.port }, {
      host: remoteHost,
      port: remotePort,
    });
    socket.on("error", () => void netdev.#errors++);
    return netdev;
  }

  /**
   * Frames and datagrams counted so far.
   *
   * @example
   * ```ts
   * import { DgramNetdev } from "./dgram.ts";
   * import { deepEqual } from "node:assert/strict";
   * const a = await DgramNetdev.create({ type: "dgram", id: "a", properties: {
   *   "local.port": "0", "remote.port": "9" } });
   * const b = await DgramNetdev.create({ type: "dgram", id: "b", properties: {
   *   "local.port": "0", "remote.port": String(a.local.port) } });
   * const arrived = new Promise((resolve) => a.addTap(resolve));
   * let send: (f: Uint8Array) => void = () => {};
   * b.connect({ id: "nic", deliver: () => true, onTransmit: (h) => (send = h) });
   * send(new Uint8Array(60));
   * await arrived;
   * deepEqual(b.counters, { sent: 1, received: 0, dropped: 0, errors: 0 });
   * deepEqual(a.counters, { sent: 0, received: 0, dropped: 1, errors: 0 }); // a has no NIC
   * await a.close();
   * await b.close();
   * ```
   */
  get counters(): DgramCounters {
    return {
      sent: this.#sent,
      received: this.#received,
      dropped: this.#dropped,
      errors: this.#errors,
    };
  }

  /**
   * Connects the NIC: its frames are sent to the remote address.
   *
   * @param port The NIC's port.
   *
   * @example
   * ```ts
   * import { DgramNetdev } from "./dgram.ts";
   * import { throws } from "node:assert/strict";
   * const d = await DgramNetdev.create({ type: "dgram", id: "d", properties: {
   *   "local.port": "0", "remote.port": "9" } });
   * d.connect({ id: "nic0", deliver: () => true, onTransmit: () => {} });
   * throws(() => d.connect({ id: "nic1", deliver: () => true, onTransmit: () => {} }),
   *   /Netdev 'd' is already connected to nic0/);
   * await d.close();
   * ```
   */
  connect(port: NetPort): void {
    if (this.#nic) throw new Error(`Netdev '${this.id}' is already connected to ${this.#nic.id}`);
    this.#nic = port;
    port.onTransmit((frame) => this.#send(frame));
  }

  /**
   * Adds an observer of sent (`tx`) and received (`rx`) frames.
   *
   * @param tap The observer.
   *
   * @example
   * ```ts
   * import { DgramNetdev } from "./dgram.ts";
   * import { deepEqual } from "node:assert/strict";
   * const a = await DgramNetdev.create({ type: "dgram", id: "a", properties: {
   *   "local.port": "0", "remote.port": "9" } });
   * const b = await DgramNetdev.create({ type: "dgram", id: "b", properties: {
   *   "local.port": "0", "remote.port": String(a.local.port) } });
   * const seen: string[] = [];
   * b.addTap((frame, direction) => seen.push(`${direction} ${frame.length}`));
   * const received = new Promise((resolve) => a.addTap(resolve));
   * b.connect({ id: "nic", deliver: () => true, onTransmit: (send) => send(new Uint8Array(60)) });
   * await received;
   * deepEqual(seen, ["tx 60"]);
   * await a.close();
   * await b.close();
   * ```
   */
  addTap(tap: (frame: Uint8Array, direction: FrameDirection) => void): void {
    this.#taps.push(tap);
  }

  #send(frame: Uint8Array): void {
    if (this.#closed) return;
    for (const tap of this.#taps) tap(frame, "tx");
    if (this.#queue.length >= SEND_QUEUE_LIMIT) {
      this.#dropped++;
      return;
    }
    this.#sent++;
    // One datagram in flight at a time: Deno's node:dgram completes
    // concurrent sends in any order, and frames must keep theirs.
    this.#queue.push(frame);
    if (this.#queue.length === 1) this.#sendNext();
  }

  #sendNext(): void {
    const frame = this.#queue[0];
    if (frame === undefined || this.#closed) return;
    this.#socket.send(frame, this.remote.port, this.remote.host, (error) => {
      if (error) this.#errors++;
      this.#queue.shift();
      this.#sendNext();
    });
  }

  #receive(message: Uint8Array): void {
    if (this.#closed) return;
    if (message.length === 0 || message.length > MAX_FRAME) {
      this.#dropped++;
      return;
    }
    const frame = new Uint8Array(message.buffer, message.byteOffset, message.length);
    for (const tap of this.#taps) tap(frame, "rx");
    if (!this.#nic || !this.#nic.deliver(frame)) {
      this.#dropped++;
      return;
    }
    this.#received++;
  }

  /**
   * Closes the socket (idempotent); frames still queued are not sent.
   *
   * @example
   * ```ts
   * import { DgramNetdev } from "./dgram.ts";
   * import { equal } from "node:assert/strict";
   * const d = await DgramNetdev.create({ type: "dgram", id: "d", properties: {
   *   "local.port": "0", "remote.port": "9" } });
   * const port = String(d.local.port);
   * await d.close();
   * await d.close(); // idempotent
   * const again = await DgramNetdev.create({ type: "dgram", id: "d", properties: {
   *   "local.port": port, "remote.port": "9" } }); // the port is free again
   * equal(again.local.port, Number(port));
   * await again.close();
   * ```
   */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
    return this.#closed;
  }
}

registerNetdev("dgram", (config) => DgramNetdev.create(config));
