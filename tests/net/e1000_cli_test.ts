// The network options on the command line: -device e1000 with netdev, mac and
// romfile, -netdev hub and dgram, -object filter-dump, the default machine's
// NICs, and errors that name the bad option.
import { deepEqual, equal, match } from "node:assert/strict";
import { parseCommandLine } from "../../src/cli/args.ts";
import { DEFAULT_DEVICES, DEFAULT_NETDEVS, machineConfig, main } from "../../src/cli/main.ts";
import { capture } from "../cli/capture.ts";

const hubid = String(7000 + Math.floor(Math.random() * 1_000_000));

Deno.test("cli: -device e1000,netdev=,mac=,romfile= with -netdev and -object filter-dump", () => {
  const config = machineConfig(parseCommandLine([
    "-netdev",
    `hub,id=h0,hubid=${hubid}`,
    "-device",
    "e1000,netdev=h0,mac=52:54:00:aa:bb:cc,romfile=,addr=03.0",
    "-object",
    "filter-dump,id=f0,netdev=h0,file=/tmp/x.pcap",
  ]));
  deepEqual(config.devices, [{
    type: "e1000",
    addr: "03.0",
    properties: { netdev: "h0", mac: "52:54:00:aa:bb:cc", romfile: "" },
  }]);
  deepEqual(config.netdevs, [{ type: "hub", id: "h0", properties: { hubid } }]);
  deepEqual(config.captures, [{ id: "f0", netdev: "h0", file: "/tmp/x.pcap" }]);
});

Deno.test("cli: the default machine has two e1000s on hub 0", () => {
  const config = machineConfig(parseCommandLine([]));
  deepEqual(
    config.devices?.filter((d) => d.type === "e1000").map((d) => [d.addr, d.properties?.netdev]),
    [["03.0", "net0"], ["05.0", "net1"]],
  );
  deepEqual(config.netdevs, [...DEFAULT_NETDEVS]);
  equal(DEFAULT_DEVICES.length, config.devices?.length);
});

Deno.test("cli: two NICs on a hub run a workload from the command line", async () => {
  const c = capture();
  const file = new URL("../fixtures/e1000_pair.ts", import.meta.url).pathname;
  const code = await main([
    "-netdev",
    `hub,id=a,hubid=${hubid}`,
    "-netdev",
    `hub,id=b,hubid=${hubid}`,
    "-device",
    "e1000,netdev=a,addr=03.0",
    "-device",
    "e1000,netdev=b,addr=05.0",
    "--workload",
    `${file},count=3,size=200`,
  ], c.io);
  equal(code, 0, c.err());
  match(c.out(), /"forward":3,"back":3/);
});

Deno.test("cli: -device e1000,help lists its properties", async () => {
  const c = capture();
  equal(await main(["-device", "e1000,help"], c.io), 0);
  match(c.out(), /netdev=<str>\n {2}mac=<str>\n {2}romfile=<str>/);
});

const BAD: ReadonlyArray<[string[], RegExp]> = [
  [["-device", "e1000,mac=zz"], /^dmaworks: Device 'e1000': Invalid mac 'zz'/],
  [["-device", "e1000,speed=10"], /Device 'e1000' has no property 'speed'/],
  [["-device", "e1000,netdev=n0"], /no netdev with id 'n0'/],
  [["-netdev", "hub,id=h0"], /Netdev 'h0': hub needs hubid=/],
  [["-netdev", "hub,id=h0,hubid=x"], /Netdev 'h0': invalid hubid 'x'/],
  [
    ["-netdev", "dgram,id=n0,local.port=0"],
    /Netdev 'n0': dgram needs remote.host= and remote.port=/,
  ],
  [
    ["-netdev", "dgram,id=n0,local.type=unix,local.path=/tmp/s,remote.port=1"],
    /unsupported dgram property 'local.path'/,
  ],
  [
    ["-netdev", "dgram,id=n0,local.host=10.0.0.300,local.port=0,remote.port=9"],
    /Netdev 'n0': invalid local.host '10.0.0.300'/,
  ],
  [
    [
      "-netdev",
      `hub,id=h0,hubid=${hubid}`,
      "-device",
      "e1000,netdev=h0",
      "-device",
      "e1000,netdev=h0",
    ],
    /Netdev 'h0' is already used by another NIC/,
  ],
  [
    ["-object", "filter-dump,id=f0,netdev=nope,file=/tmp/x"],
    /Capture 'f0': no netdev with id 'nope'/,
  ],
];

for (const [args, expected] of BAD) {
  Deno.test(`cli: ${args.join(" ")} is a clear error`, async () => {
    const c = capture();
    equal(await main(args, c.io), 1);
    match(c.err(), expected);
  });
}
