// --config (alone and with flags that override and append), --machines N,
// and the CLI run from another directory (as `deno run jsr:…/cli` does).
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { CommandLineError, parseCommandLine } from "../../src/cli/args.ts";
import { machineConfig, machineConfigs, main } from "../../src/cli/main.ts";
import { capture } from "./capture.ts";

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("flags override a config's scalars and append to its lists", () => {
  const file = {
    name: "from-file",
    ramSize: 64 * 2 ** 20,
    devices: [{ type: "amd-iommu" }, { type: "edu", id: "e0" }],
    drives: [{ id: "d0", size: 2 ** 20 }],
    netdevs: [{ type: "hub", id: "n0", properties: { hubid: "3" } }],
    captures: [{ id: "f0", netdev: "n0", file: "a.pcap" }],
  };
  const only = machineConfig(parseCommandLine([]), file);
  equal(only.name, "from-file");
  equal(only.ramSize, 64 * 2 ** 20);
  deepEqual(only.devices, file.devices); // no default devices with a config
  const both = machineConfig(
    parseCommandLine([
      "-m",
      "128",
      "-name",
      "from-flags",
      "-device",
      "e1000,netdev=n1",
      "-netdev",
      "hub,id=n1,hubid=3",
      "-drive",
      "if=ide,size=1M",
      "-object",
      "filter-dump,id=f1,netdev=n1,file=b.pcap",
    ]),
    file,
  );
  equal(both.name, "from-flags");
  equal(both.ramSize, 128 * 2 ** 20);
  deepEqual(both.devices?.map((d) => d.type), [
    "amd-iommu",
    "edu",
    "e1000",
    "piix3-ide",
    "ide-hd",
  ]);
  deepEqual(both.drives?.map((d) => d.id), ["d0", "ide0-hd0"]);
  deepEqual(both.netdevs?.map((n) => n.id), ["n0", "n1"]);
  deepEqual(both.captures?.map((c) => c.id), ["f0", "f1"]);
});

Deno.test("several machines: names, distinct MACs, {machine} in file names", () => {
  const configs = machineConfigs({
    name: "vm",
    devices: [
      { type: "e1000", properties: { netdev: "n0" } },
      { type: "e1000", properties: { netdev: "n1", mac: "52:54:00:00:00:01" } },
      { type: "e1000" },
    ],
    drives: [{ id: "d0", file: "disk{machine}.img" }, {
      id: "d1",
      file: "base.img",
      readonly: true,
    }],
    captures: [{ id: "f0", netdev: "n0", file: "net{machine}.pcap" }],
  }, 3);
  deepEqual(configs.map((c) => c.name), ["vm-0", "vm-1", "vm-2"]);
  deepEqual(configs.map((c) => c.devices!.map((d) => d.properties?.mac)), [
    ["52:54:00:12:34:56", "52:54:00:00:00:01", "52:54:00:12:34:57"],
    ["52:54:00:12:35:56", "52:54:00:00:00:01", "52:54:00:12:35:57"],
    ["52:54:00:12:36:56", "52:54:00:00:00:01", "52:54:00:12:36:57"],
  ]);
  deepEqual(configs.map((c) => c.drives!.map((d) => d.file)), [
    ["disk0.img", "base.img"],
    ["disk1.img", "base.img"],
    ["disk2.img", "base.img"],
  ]);
  equal(configs[2]!.captures![0]!.file, "net2.pcap");
  // One machine: nothing renamed, MACs left to the machine (QEMU's defaults).
  const [one] = machineConfigs({ devices: [{ type: "e1000" }] }, 1);
  equal(one!.name, undefined);
  equal(one!.devices![0]!.properties, undefined);
  throws(
    () => machineConfigs({ drives: [{ id: "d0", file: "disk.img" }] }, 2),
    (e: unknown) =>
      e instanceof CommandLineError &&
      /Drive 'd0': with 2 machines every machine would write 'disk\.img': put \{machine\}/.test(
        e.message,
      ),
  );
  throws(
    () => machineConfigs({ captures: [{ id: "f0", netdev: "n0", file: "x.pcap" }] }, 2),
    /Capture 'f0': with 2 machines put \{machine\} in its file name/,
  );
  throws(
    () => machineConfigs({ netdevs: [{ type: "dgram", id: "u0", properties: {} }] }, 2),
    /Netdev 'u0': a dgram netdev binds one UDP port, so it serves one machine/,
  );
});

Deno.test("--machines: bad counts and machines with -qtest are errors", async () => {
  for (
    const [args, expected] of [
      [["--machines", "0"], /Invalid --machines '0': a whole number from 1 to 64/],
      [["--machines", "two"], /Invalid --machines 'two'/],
      [
        ["--machines", "2", "-qtest", "stdio"],
        /-qtest drives one machine: use it without --machines/,
      ],
    ] as const
  ) {
    const c = capture();
    equal(await main(args, c.io), 1);
    match(c.err(), expected);
  }
});

Deno.test("--config runs the machine and workload the file describes; flags override", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/vm.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        name: "lab",
        memory: "128M",
        devices: [
          { type: "amd-iommu", addr: "01.0" },
          { type: "edu", id: "edu0", addr: "04.0" },
          { type: "piix3-ide", id: "ide", addr: "02.0" },
          { type: "ide-hd", properties: { drive: "d0", bus: "ide.0" } },
        ],
        drives: [{ id: "d0", file: "disk.img" }],
        workload: { name: "disk-copy", options: { size: "256K", chunk: "64K" } },
      }),
    );
    await Deno.writeFile(`${dir}/disk.img`, new Uint8Array(2 << 20));
    let c = capture();
    equal(await main(["--config", path], c.io), 0, c.err());
    match(c.err(), /machine 'lab' with 128 MiB RAM/);
    match(c.err(), /00:04\.0 edu \(id edu0/);
    match(c.err(), /running workload disk-copy,size=256K,chunk=64K/);
    match(c.out(), /ok {3}verify copy: CRC-32 of the copy (0x[0-9a-f]{8}), of the source \1/);
    // The copy reached the image file, relative to the config file: the pattern
    // at LBA 0 and its copy at LBA 512, each sector stamped with its own LBA.
    const image = await Deno.readFile(`${dir}/disk.img`);
    const view = new DataView(image.buffer);
    equal(view.getUint32(7 * 512, true), 7);
    deepEqual(image.subarray(7 * 512 + 8, 8 * 512), image.subarray(519 * 512 + 8, 520 * 512));
    // Flags: the workload is replaced, memory overridden, a device appended.
    c = capture();
    equal(
      await main([
        "--config",
        path,
        "-m",
        "64",
        "-device",
        "edu,id=edu1",
        "--workload",
        "dma-storm,rounds=10",
      ], c.io),
      0,
      c.err(),
    );
    match(c.err(), /machine 'lab' with 64 MiB RAM/);
    match(c.out(), /ok {3}edu 00:04\.0 copies: 10 copies/);
    match(c.out(), /ok {3}edu 00:03\.0 copies: 10 copies/);
  });
});

Deno.test("--config errors name the file and the field", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/bad.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ devices: [{ type: "edu" }, { type: "edu" }, { type: "edu", addr: "zz" }] }),
    );
    const c = capture();
    equal(await main(["--config", path], c.io), 1);
    equal(
      c.err(),
      `dmaworks: ${path}: Invalid machine config field "devices[2].addr": expected "SS.F" (slot 00-1f, function 0-7), got "zz"\n`,
    );
    equal(c.out(), "");
    const missing = capture();
    equal(await main(["--config", `${dir}/none.json`], missing.io), 1);
    match(missing.err(), /Invalid machine config: cannot read '.*none\.json'/);
  });
});

Deno.test("--machines 2: each machine runs the workload; net-pingpong crosses the hub", async () => {
  const c = capture();
  const code = await main([
    "--machines",
    "2",
    "-device",
    "amd-iommu",
    "-device",
    "e1000,netdev=n0",
    "-netdev",
    "hub,id=n0,hubid=811",
    "--workload",
    "net-pingpong,count=5,burst=50",
  ], c.io);
  equal(code, 0, c.err() + c.out());
  match(c.err(), /machine 'dmaworks-0'/);
  match(c.err(), /machine 'dmaworks-1'/);
  match(c.err(), /running workload net-pingpong,count=5,burst=50 on 2 machines/);
  match(c.out(), /^Summary of machine 0 \(dmaworks-0\)$/m);
  match(c.out(), /ok {3}find peer: 52:54:00:12:34:56 found 52:54:00:12:35:56 \(pair 0\)/);
  match(c.out(), /ok {3}ping-pong: 5 of 5 round trips/);
  match(c.out(), /^Summary of machine 1 \(dmaworks-1\)$/m);
  match(c.out(), /ok {3}answer pings: answered 5 pings from 52:54:00:12:34:56/);
});

Deno.test("a machine description can ask for several machines; one failing fails the run", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/two.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        machines: 2,
        devices: [{ type: "edu" }],
        workload: { name: "net-pingpong" },
      }),
    );
    const c = capture();
    equal(await main(["--config", path], c.io), 1);
    match(c.err(), /machine 0: Guest program failed: net-pingpong needs an e1000 NIC/);
    match(c.err(), /machine 1: Guest program failed: net-pingpong needs an e1000 NIC/);
  });
});

Deno.test("the CLI runs from another directory and as a module imported from elsewhere", async () => {
  const cli = new URL("../../src/cli/main.ts", import.meta.url);
  await withDir(async (dir) => {
    const direct = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli.href, "-drive", "if=ide,size=2M", "--workload", "disk-copy,size=64K"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(direct.stdout);
    equal(direct.code, 0, new TextDecoder().decode(direct.stderr));
    match(out, /5 of 5 steps passed/);
    await Deno.writeTextFile(
      `${dir}/runner.ts`,
      `import { main } from ${JSON.stringify(cli.href)};\n` +
        `Deno.exit(await main(["-device", "edu", "--workload", "dma-storm,rounds=5"]));\n`,
    );
    const imported = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", "runner.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(imported.code, 0, new TextDecoder().decode(imported.stderr));
    match(new TextDecoder().decode(imported.stdout), /ok {3}edu 00:01\.0 copies: 5 copies/);
  });
});

Deno.test("help describes --config, --machines and tracing", async () => {
  const c = capture();
  equal(await main(["--help"], c.io), 0);
  for (const option of ["--config FILE", "--machines N", "-d CAT", "-D FILE", "--dma-trace FILE"]) {
    ok(c.out().includes(option), option);
  }
});
