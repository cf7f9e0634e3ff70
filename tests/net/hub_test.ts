// The hub backend on its own: property checks, forwarding to every other port
// of the same hub only, capture taps, congestion, and the process-wide
// registry of hubs.
import { deepEqual, equal, throws } from "node:assert/strict";
import { HubNetdev, NetHub } from "../../src/net/hub.ts";
import { netdevFactory } from "../../src/net/netdev.ts";
import "../../src/net/backends.ts";
import type { NetPort } from "../../src/net/netdev.ts";

/** A NIC port that records what it receives and can transmit. */
class TestPort implements NetPort {
  readonly id: string;
  readonly received: Uint8Array[] = [];
  full = false;
  #send: ((frame: Uint8Array) => void) | undefined;

  constructor(id: string) {
    this.id = id;
  }

  deliver(frame: Uint8Array): boolean {
    if (this.full) return false;
    this.received.push(frame.slice());
    return true;
  }

  onTransmit(handler: (frame: Uint8Array) => void): void {
    this.#send = handler;
  }

  send(frame: Uint8Array): void {
    this.#send?.(frame);
  }
}

function hub(id: string, hubid: number): HubNetdev {
  return HubNetdev.create({ type: "hub", id, properties: { hubid: String(hubid) } });
}

Deno.test("hub: registered as a -netdev type", () => {
  equal(typeof netdevFactory("hub"), "function");
});

Deno.test("hub: properties are checked and errors name them", () => {
  throws(
    () => HubNetdev.create({ type: "hub", id: "h0" }),
    /^Error: Netdev 'h0': hub needs hubid=$/,
  );
  throws(
    () => HubNetdev.create({ type: "hub", id: "h0", properties: { hubid: "x" } }),
    /Netdev 'h0': invalid hubid 'x'/,
  );
  throws(
    () => HubNetdev.create({ type: "hub", id: "h0", properties: { hubid: "-1" } }),
    /invalid hubid '-1'/,
  );
  throws(
    () => HubNetdev.create({ type: "hub", id: "h0", properties: { hubid: "0", netdev: "n1" } }),
    /hub property 'netdev' is not supported/,
  );
  throws(
    () => HubNetdev.create({ type: "hub", id: "h0", properties: { hubid: "0", speed: "1" } }),
    /unknown hub property 'speed'/,
  );
});

Deno.test("hub: a frame leaves by every other port of its hub, never back or to another hub", () => {
  const a = hub("a", 41), b = hub("b", 41), c = hub("c", 41), other = hub("x", 42);
  const pa = new TestPort("pa"), pb = new TestPort("pb"), pc = new TestPort("pc");
  const px = new TestPort("px");
  a.connect(pa);
  b.connect(pb);
  c.connect(pc);
  other.connect(px);
  const frame = new Uint8Array(64).fill(7);
  pa.send(frame);
  deepEqual(pb.received, [frame]);
  deepEqual(pc.received, [frame]);
  equal(pa.received.length, 0);
  equal(px.received.length, 0);
  deepEqual(NetHub.get(41)?.ports, ["a", "b", "c"]);
  equal(NetHub.get(41)?.forwarded, 1);
  throws(() => a.connect(new TestPort("again")), /Netdev 'a' is already connected to pa/);
  for (const n of [a, b, c, other]) n.close();
  equal(NetHub.get(41), undefined);
  equal(NetHub.get(42), undefined);
});

Deno.test("hub: taps see the port's transmitted and received frames; full NICs count as drops", () => {
  const a = hub("a", 43), b = hub("b", 43);
  const pa = new TestPort("pa"), pb = new TestPort("pb");
  a.connect(pa);
  b.connect(pb);
  const seen: Array<[number, string]> = [];
  a.addTap((f, direction) => seen.push([f[0]!, direction]));
  pa.send(new Uint8Array([1, 0, 0]));
  pb.send(new Uint8Array([2, 0, 0]));
  deepEqual(seen, [[1, "tx"], [2, "rx"]]);
  pb.full = true;
  pa.send(new Uint8Array([3]));
  equal(NetHub.get(43)?.dropped, 1);
  a.close();
  b.close();
  a.close(); // idempotent
  deepEqual(NetHub.ids().includes(43), false);
});

Deno.test("hub: a port without a NIC is a dead end, and a closed port stops forwarding", () => {
  const a = hub("a", 44), lonely = hub("l", 44);
  const pa = new TestPort("pa");
  a.connect(pa);
  pa.send(new Uint8Array(60));
  equal(NetHub.get(44)?.dropped, 0);
  lonely.close();
  a.close();
  pa.send(new Uint8Array(60));
  equal(NetHub.get(44), undefined);
});
