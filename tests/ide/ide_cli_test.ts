// The IDE controller on the command line: -drive (both forms), -device
// piix3-ide and ide-hd with their properties, the default machine's disk,
// and a workload that reads an image attached from the command line.
import { deepEqual, equal, match } from "node:assert/strict";
import { parseCommandLine } from "../../src/cli/args.ts";
import { DEFAULT_DEVICES, DEFAULT_DRIVES, machineConfig, main } from "../../src/cli/main.ts";
import { tempImage } from "./qtest_harness.ts";
import { capture } from "../cli/capture.ts";

Deno.test("CLI: -drive if=none, -device piix3-ide and ide-hd with unit, serial and model", () => {
  const config = machineConfig(parseCommandLine([
    "-drive",
    "file=/tmp/a.img,format=raw,if=none,id=d0,readonly=on",
    "-device",
    "piix3-ide,id=ide0,addr=02.0",
    "-device",
    "ide-hd,drive=d0,bus=ide0.1,unit=1,serial=S123,model=MY DISK,ver=9.9",
  ]));
  deepEqual(config.drives, [{ id: "d0", format: "raw", readonly: true, file: "/tmp/a.img" }]);
  deepEqual(config.devices, [
    { type: "piix3-ide", id: "ide0", addr: "02.0" },
    {
      type: "ide-hd",
      properties: {
        drive: "d0",
        bus: "ide0.1",
        unit: "1",
        serial: "S123",
        model: "MY DISK",
        ver: "9.9",
      },
    },
  ]);
});

Deno.test("CLI: the short -drive file=…,if=ide form creates a piix3-ide named ide", () => {
  const config = machineConfig(parseCommandLine([
    "-drive",
    "file=/tmp/a.img,if=ide",
    "-drive",
    "file=/tmp/b.img,if=ide,index=3",
  ]));
  deepEqual(config.devices, [
    { type: "piix3-ide", id: "ide" },
    { type: "ide-hd", properties: { drive: "ide0-hd0", bus: "ide.0", unit: "0" } },
    { type: "ide-hd", properties: { drive: "ide3-hd0", bus: "ide.1", unit: "1" } },
  ]);
});

Deno.test("CLI: the default machine has the PIIX3 at 02.0 with a 64 MiB in-memory disk", () => {
  const config = machineConfig(parseCommandLine([]));
  deepEqual(config.devices, [...DEFAULT_DEVICES]);
  deepEqual(config.drives, [...DEFAULT_DRIVES]);
  deepEqual(config.devices?.find((d) => d.type === "piix3-ide"), {
    type: "piix3-ide",
    id: "ide",
    addr: "02.0",
  });
  deepEqual(DEFAULT_DRIVES, [{ id: "disk0", size: 64 * 1024 * 1024 }]);
});

Deno.test("CLI: errors name the culprit", async () => {
  for (
    const [args, message] of [
      [
        ["-device", "ide-hd,drive=d0", "-drive", "file=/x,if=none,id=d0"],
        /needs a disk controller/,
      ],
      [[
        "-device",
        "piix3-ide,id=i",
        "-device",
        "ide-hd,drive=d0,bus=i.2",
        "-drive",
        "file=/x,if=none,id=d0",
      ], /bus 'i\.2' does not exist/],
      [[
        "-device",
        "piix3-ide,id=i",
        "-device",
        "ide-hd,drive=d0,bus=i.0,unit=2",
        "-drive",
        "file=/x,if=none,id=d0",
      ], /unit must be 0 or 1/],
      [["-device", "piix3-ide,speed=fast"], /Device 'piix3-ide' has no property 'speed'/],
      [["-device", "ide-hd,drive=d0,cache=none"], /Device 'ide-hd' has no property 'cache'/],
      [["-drive", "file=/x,format=qcow2"], /Unsupported drive format 'qcow2'/],
    ] as Array<[string[], RegExp]>
  ) {
    const c = capture();
    equal(await main(args, c.io), 1, args.join(" "));
    match(c.err(), message);
  }
  const c = capture();
  equal(await main(["-device", "piix3-ide,help"], c.io), 0);
  equal(c.out(), "piix3-ide options:\n  id=<str>\n  addr=<str>\n  bus=<str>\n");
  const h = capture();
  equal(await main(["-device", "help"], h.io), 0);
  match(h.out(), /name "piix3-ide", bus PCI, desc "Intel PIIX3 IDE controller/);
});

Deno.test("CLI: a workload reads an image attached with the short -drive form", async () => {
  const bytes = new Uint8Array(1 << 20);
  bytes.set([0x55, 0xaa], 510);
  await using image = await tempImage(bytes);
  const c = capture();
  const workload = new URL("../fixtures/ide_tour_guest.ts", import.meta.url).pathname;
  const code = await main(
    [
      "-drive",
      `file=${image.path},format=raw,if=ide,readonly=on`,
      "--workload",
      `${workload},steps=identify`,
    ],
    c.io,
  );
  equal(code, 0, c.err());
  match(c.out(), /"sectors":2048/);
  match(c.out(), /"serial":"QM00013"/);
});
