// The Machine with real workers: guest agents, main-isolate accesses, and
// device workers that fail in every way a worker can (reported, no process
// death, no hang, other devices unaffected).
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { Machine, type MachineEvent } from "../../src/machine/machine.ts";

const PROBE = new URL("../fixtures/edu_probe.ts", import.meta.url);
const FACTORIAL = new URL("../fixtures/edu_factorial.ts", import.meta.url);

async function mapEdu(machine: Machine, slot: number, base: number): Promise<void> {
  await machine.out(0xcf8, 4, 0x8000_0000 | (slot << 11) | 0x10);
  await machine.out(0xcfc, 4, base);
  await machine.out(0xcf8, 4, 0x8000_0000 | (slot << 11) | 0x04);
  await machine.out(0xcfc, 2, 0x0006);
}

Deno.test("a guest agent drives edu: config space, registers, factorial, interrupt", async () => {
  await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
  const result = await machine.runGuest(PROBE);
  deepEqual(result, {
    id: 0x11e81234,
    ident: 0x010000ed,
    live: 0xedcba987,
    fact: 720,
    raised: true,
    lowered: true,
  });
});

Deno.test("the main isolate reaches edu's registers and sees its interrupt line", async () => {
  const events: MachineEvent[] = [];
  await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
  machine.onEvent((e) => events.push(e));
  await mapEdu(machine, 4, 0xfe00_0000);
  equal(await machine.read(0xfe00_0000, 4), 0x010000edn);
  await machine.write(0xfe00_0060, 4, 1);
  equal(machine.irq.lineLevel(20), true);
  deepEqual(events.filter((e) => e.type === "irq"), [{ type: "irq", line: 20, level: true }]);
  await machine.write(0xfe00_0064, 4, 1);
  equal(machine.irq.lineLevel(20), false);
  // INTx Disable masks the line but Status bit 3 still shows the device's pin.
  await machine.write(0xfe00_0060, 4, 2);
  await machine.out(0xcf8, 4, 0x8000_2004);
  await machine.out(0xcfc, 2, 0x0406);
  equal(machine.irq.lineLevel(20), false);
  equal((await machine.in(0xcfe, 2)) & 0x8, 0x8);
});

Deno.test("several guest agents run at once and agents are reused", async () => {
  const slots = [4, 5, 6];
  await using machine = await Machine.create({
    devices: slots.map((slot) => ({ type: "edu", addr: `0${slot}.0` })),
  });
  // Configuration mechanism #1 is one register pair for all CPUs (an OS holds
  // a lock around it), so the host maps the BARs and each agent then drives
  // its own edu through MMIO alone.
  for (const slot of slots) await mapEdu(machine, slot, 0xfe00_0000 + (slot << 20));
  const run = (slot: number, n: number) =>
    machine.runGuest(FACTORIAL, { options: { slot: String(slot), n: String(n) } });
  deepEqual(await Promise.all(slots.map((slot) => run(slot, slot))), [24, 120, 720]);
  equal(await run(5, 7), 5040, "an idle agent runs the next program");
});

Deno.test("a guest program that throws is reported as an error, the machine goes on", async () => {
  await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
  const bad = new URL(
    "data:text/javascript,export default () => { throw new Error('guest bug'); }",
  );
  let message = "";
  await machine.runGuest(bad).catch((e: Error) => (message = e.message));
  match(message, /Guest program failed: guest bug/);
  equal((await machine.runGuest(PROBE) as { fact: number }).fact, 720);
});

for (const kind of ["crash", "uncaught", "kill"] as const) {
  Deno.test(`a device worker that fails (${kind}) is reported and reads all-ones; others keep working`, async () => {
    const failed: string[] = [];
    await using machine = await Machine.create({
      devices: [{ type: "edu", id: "a", addr: "04.0" }, { type: "edu", id: "b", addr: "05.0" }],
    });
    machine.onEvent((e) => {
      if (e.type === "device-failed") failed.push(e.id);
    });
    await mapEdu(machine, 4, 0xfe40_0000);
    await mapEdu(machine, 5, 0xfe50_0000);
    if (kind === "kill") machine.injectFault({ kind: "kill-device", device: "a" });
    else machine.injectFault({ kind: "crash-device", device: "a", uncaught: kind === "uncaught" });
    const deadline = Date.now() + 5000;
    while (failed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    deepEqual(failed, ["a"]);
    equal(await machine.read(0xfe40_0000, 4), 0xffff_ffffn, "the failed device reads all-ones");
    await machine.write(0xfe40_0004, 4, 1); // dropped, no hang
    equal(await machine.read(0xfe50_0000, 4), 0x010000edn, "the other device still answers");
    ok(machine.devices().find((d) => d.id === "a")?.failure);
    // A guest agent touching the failed device gets all-ones too, without waiting for a timeout.
    const probe = await machine.runGuest(PROBE, { options: { slot: "5" }, timeoutMs: 20_000 }) as {
      fact: number;
    };
    equal(probe.fact, 720);
  });
}

Deno.test("a device that hangs is declared failed after the access timeout", async () => {
  await using machine = await Machine.create({
    devices: [{ type: "edu", addr: "04.0" }],
    accessTimeoutMs: 300,
  });
  await mapEdu(machine, 4, 0xfe00_0000);
  machine.injectFault({ kind: "stall-device", device: "edu0", ms: 5000 });
  // The stall arrives as a control message, which the worker may take after
  // a read already queued: read until one finds the worker stalled (the
  // first such read times out and fails the device; all later ones read ones).
  let reads = 0;
  for (;;) {
    const v = await machine.read(0xfe00_0000, 4);
    reads++;
    if (v === 0xffff_ffffn) break;
    equal(v, 0x010000edn);
    if (reads > 10_000) throw new Error("The stall never took effect");
  }
  match(machine.devices()[0]?.failure ?? "", /did not answer/);
});
