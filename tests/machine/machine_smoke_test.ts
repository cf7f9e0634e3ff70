import { deepEqual, equal } from "node:assert/strict";
import { Machine } from "../../src/machine/machine.ts";

Deno.test("edu through a guest agent", async () => {
  await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
  const t0 = performance.now();
  const result = await machine.runGuest(new URL("../fixtures/edu_probe.ts", import.meta.url));
  console.log("guest took", performance.now() - t0);
  deepEqual(result, {
    id: 0x11e81234,
    ident: 0x010000ed,
    live: 0xedcba987,
    fact: 720,
    raised: true,
    lowered: true,
  });
});

Deno.test("edu from the main isolate", async () => {
  await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
  await machine.out(0xcf8, 4, 0x80002010);
  await machine.out(0xcfc, 4, 0xfe000000);
  await machine.out(0xcf8, 4, 0x80002004);
  await machine.out(0xcfc, 2, 0x0006);
  equal(await machine.read(0xfe000000, 4), 0x010000edn);
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) await machine.read(0xfe000000, 4);
  console.log("main read us", performance.now() - t0);
});
