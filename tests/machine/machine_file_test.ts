// Machine description files (--config): a complete valid description, every
// class of invalid field (each error names the field by its path), paths
// relative to the file, and files that cannot be read or parsed.
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  loadMachineFile,
  MachineFileError,
  parseMachineFile,
} from "../../src/machine/machine_file.ts";

const VALID = {
  name: "lab",
  memory: "512M",
  machines: 2,
  devices: [
    { type: "amd-iommu", addr: "01.0" },
    { type: "piix3-ide", id: "ide", addr: "02.0" },
    { type: "ide-hd", properties: { drive: "d0", bus: "ide.0", serial: "SN1" } },
    { type: "ide-hd", properties: { drive: "d1", bus: "ide.1", unit: 1 } },
    { type: "edu", id: "edu0", addr: "04.0", properties: { dma_mask: "0xffffffff" } },
    { type: "edu", properties: { id: "edu1", addr: "06" } },
    { type: "e1000", id: "nic0", addr: "03.0", properties: { netdev: "net0" } },
    { type: "e1000", id: "nic1", properties: { netdev: "net1", mac: "52:54:00:aa:bb:cc" } },
  ],
  drives: [
    { id: "d0", size: "64M" },
    { id: "d1", file: "images/disk.img", readonly: true, format: "raw" },
  ],
  netdevs: [
    { type: "hub", id: "net0", properties: { hubid: 0 } },
    {
      type: "dgram",
      id: "net1",
      properties: { "local.port": 10001, "remote.host": "127.0.0.1", "remote.port": "10002" },
    },
  ],
  captures: [{ id: "f0", netdev: "net0", file: "/tmp/net0.pcap" }],
  workload: { name: "disk-copy", options: { size: "4M", seed: 7 } },
  trace: ["dma", "iommu,ide"],
  traceFile: "trace.log",
  dmaTrace: "dma.trace",
  narrowPermissions: true,
};

Deno.test("a complete machine description becomes the machine configuration", () => {
  const d = parseMachineFile(VALID, { base: "/work/lab" });
  const c = d.config;
  equal(c.name, "lab");
  equal(c.ramSize, 512 * 2 ** 20);
  equal(c.narrowWorkerPermissions, true);
  deepEqual(c.devices, [
    { type: "amd-iommu", addr: "01.0" },
    { type: "piix3-ide", id: "ide", addr: "02.0" },
    { type: "ide-hd", properties: { drive: "d0", bus: "ide.0", serial: "SN1" } },
    { type: "ide-hd", properties: { drive: "d1", bus: "ide.1", unit: "1" } },
    { type: "edu", id: "edu0", addr: "04.0", properties: { dma_mask: "0xffffffff" } },
    { type: "edu", id: "edu1", addr: "06" },
    { type: "e1000", id: "nic0", addr: "03.0", properties: { netdev: "net0" } },
    { type: "e1000", id: "nic1", properties: { netdev: "net1", mac: "52:54:00:aa:bb:cc" } },
  ]);
  deepEqual(c.drives, [
    { id: "d0", format: "raw", size: 64 * 2 ** 20 },
    { id: "d1", format: "raw", readonly: true, file: "/work/lab/images/disk.img" },
  ]);
  deepEqual(c.netdevs, [
    { type: "hub", id: "net0", properties: { hubid: "0" } },
    {
      type: "dgram",
      id: "net1",
      properties: { "local.port": "10001", "remote.host": "127.0.0.1", "remote.port": "10002" },
    },
  ]);
  deepEqual(c.captures, [{ id: "f0", netdev: "net0", file: "/tmp/net0.pcap" }]);
  equal(d.machines, 2);
  equal(d.workload?.name, "disk-copy");
  deepEqual(d.workload?.options, { size: "4M", seed: "7" });
  ok(d.workload?.url.pathname.endsWith("/src/workloads/disk_copy.ts"));
  deepEqual(d.trace, ["dma", "iommu", "ide"]);
  equal(d.traceFile, "/work/lab/trace.log");
  equal(d.dmaTrace, "/work/lab/dma.trace");
});

Deno.test("an empty description is valid: a machine with no devices", () => {
  const d = parseMachineFile({});
  deepEqual(d.config, { devices: [] });
  equal(d.workload, undefined);
});

Deno.test("a workload given as a string, and a module file relative to the description", () => {
  deepEqual(parseMachineFile({ workload: "dma-storm,rounds=5" }).workload?.options, {
    rounds: "5",
  });
  const file = parseMachineFile({ workload: "./w.ts,x=1" }, { base: "/srv/vm" }).workload;
  equal(file?.url.href, "file:///srv/vm/w.ts");
  equal(file?.name, "w.ts");
});

const edu = (extra: Record<string, unknown> = {}) => ({ type: "edu", ...extra });

/** Each class of invalid field, with the path and the problem the error must name. */
const INVALID: ReadonlyArray<[string, unknown, string]> = [
  ["not an object", [1, 2], "Invalid machine config: expected a JSON object, got an array"],
  ["unknown top-level field", { colour: "red" }, '"colour": unknown field (known: name, memory,'],
  ["wrong type of name", { name: 5 }, '"name": expected a non-empty string, got 5'],
  ["control characters", { name: "a\nb" }, '"name": control characters are not allowed'],
  [
    "memory not a size",
    { memory: "lots" },
    '"memory": expected bytes or a size like "512M", got "lots"',
  ],
  [
    "memory too small",
    { memory: 4096 },
    '"memory": expected at least 1M, at most 1T and a multiple of 4K',
  ],
  ["memory not page aligned", { memory: 2 ** 20 + 1 }, '"memory": expected at least 1M'],
  [
    "machines out of range",
    { machines: 65 },
    '"machines": expected a whole number from 1 to 64, got 65',
  ],
  [
    "machines not a number",
    { machines: "2" },
    '"machines": expected a whole number from 1 to 64, got "2"',
  ],
  ["devices not an array", { devices: {} }, '"devices": expected an array, got an object'],
  ["device not an object", { devices: ["edu"] }, '"devices[0]": expected an object, got "edu"'],
  ["device without type", { devices: [{ id: "x" }] }, '"devices[0].type": required'],
  [
    "unknown device type",
    { devices: [edu(), { type: "virtio-blk" }] },
    '"devices[1].type": unknown device type "virtio-blk" (known: amd-iommu, e1000, edu, ide-hd, piix3-ide)',
  ],
  [
    "unknown device field",
    { devices: [edu({ slot: 4 })] },
    '"devices[0].slot": unknown field (known: type, id, addr, bus, properties)',
  ],
  [
    "bad PCI address in properties",
    { devices: [edu(), edu(), edu({ properties: { addr: "zz" } })] },
    '"devices[2].properties.addr": expected "SS.F" (slot 00-1f, function 0-7), got "zz"',
  ],
  [
    "slot out of range",
    { devices: [edu({ addr: "20.0" })] },
    '"devices[0].addr": expected "SS.F" (slot 00-1f, function 0-7), got "20.0"',
  ],
  [
    "the host bridge's slot",
    { devices: [edu({ addr: "0" })] },
    '"devices[0].addr": slot 00.0 is the host bridge',
  ],
  [
    "slot used twice",
    { devices: [edu({ addr: "04.0" }), edu({ addr: "4" })] },
    '"devices[1].addr": slot 04.0 is also used by devices[0]',
  ],
  [
    "addr given twice",
    { devices: [edu({ addr: "04.0", properties: { addr: "05.0" } })] },
    '"devices[0].properties.addr": given twice (also devices[0].addr)',
  ],
  [
    "bad id",
    { devices: [edu({ id: "1st" })] },
    '"devices[0].id": expected an id (a letter, then letters, digits, "-", "." or "_"), got "1st"',
  ],
  [
    "duplicate id",
    { devices: [edu({ id: "a" }), { type: "e1000", id: "a" }] },
    '"devices[1].id": duplicate device id "a" (also devices[0].id)',
  ],
  [
    "PCI bus other than pcie.0",
    { devices: [edu({ bus: "pci.1" })] },
    '"devices[0].bus": expected "pcie.0" (the only PCI bus), got "pci.1"',
  ],
  [
    "unknown property",
    { devices: [edu({ properties: { colour: "red" } })] },
    '"devices[0].properties.colour": unknown property (edu has: dma_mask)',
  ],
  [
    "property of the IOMMU",
    { devices: [{ type: "amd-iommu", properties: { intremap: "on" } }] },
    '"devices[0].properties.intremap": unknown property (amd-iommu has none)',
  ],
  [
    "property value not a scalar",
    { devices: [edu({ properties: { dma_mask: [1] } })] },
    '"devices[0].properties.dma_mask": expected a string, number or boolean, got an array',
  ],
  [
    "bad property value (dma_mask)",
    { devices: [edu({ properties: { dma_mask: "lots" } })] },
    "\"devices[0].properties.dma_mask\": Invalid dma_mask 'lots'",
  ],
  ["bad property value (mac)", {
    devices: [{ type: "e1000", properties: { mac: "01:00:5e:00:00:01" } }],
  }, "\"devices[0].properties.mac\": Invalid mac '01:00:5e:00:00:01': a multicast address"],
  [
    "two IOMMUs",
    { devices: [{ type: "amd-iommu" }, { type: "amd-iommu" }] },
    '"devices[1].type": only one amd-iommu is supported (also devices[0])',
  ],
  [
    "NIC on an unknown netdev",
    { devices: [{ type: "e1000", properties: { netdev: "n9" } }] },
    '"devices[0].properties.netdev": no netdev "n9" (no netdevs are defined)',
  ],
  [
    "two NICs on one netdev",
    {
      netdevs: [{ type: "hub", id: "n0", properties: { hubid: 1 } }],
      devices: [{ type: "e1000", properties: { netdev: "n0" } }, {
        type: "e1000",
        properties: { netdev: "n0" },
      }],
    },
    '"devices[1].properties.netdev": netdev "n0" is already used by devices[0]',
  ],
  [
    "disk without a drive",
    { devices: [{ type: "piix3-ide" }, { type: "ide-hd" }] },
    '"devices[1].properties.drive": required',
  ],
  ["disk on an unknown drive", {
    drives: [{ id: "d0", size: 1024 }],
    devices: [{ type: "piix3-ide" }, { type: "ide-hd", properties: { drive: "d9" } }],
  }, '"devices[1].properties.drive": no drive "d9" (drives: d0)'],
  ["disk without a controller", {
    drives: [{ id: "d0", size: 1024 }],
    devices: [{ type: "ide-hd", properties: { drive: "d0" } }],
  }, '"devices[0]": needs a piix3-ide controller in devices'],
  ["disk on an unknown bus", {
    drives: [{ id: "d0", size: 1024 }],
    devices: [{ type: "piix3-ide", id: "ide" }, {
      type: "ide-hd",
      properties: { drive: "d0", bus: "ide.2" },
    }],
  }, '"devices[1].properties.bus": no IDE bus "ide.2" (buses: ide.0, ide.1)'],
  ["disk unit", {
    drives: [{ id: "d0", size: 1024 }],
    devices: [{ type: "piix3-ide" }, { type: "ide-hd", properties: { drive: "d0", unit: 2 } }],
  }, '"devices[1].properties.unit": expected 0 or 1, got "2"'],
  [
    "two disks in one place",
    {
      drives: [{ id: "d0", size: 1024 }, { id: "d1", size: 1024 }],
      devices: [{ type: "piix3-ide" }, { type: "ide-hd", properties: { drive: "d0" } }, {
        type: "ide-hd",
        properties: { drive: "d1" },
      }],
    },
    '"devices[2]": piix3-ide0.0 unit 0 is also used by devices[1]',
  ],
  [
    "a drive attached twice",
    {
      drives: [{ id: "d0", size: 1024 }],
      devices: [{ type: "piix3-ide" }, { type: "ide-hd", properties: { drive: "d0" } }, {
        type: "ide-hd",
        properties: { drive: "d0", unit: 1 },
      }],
    },
    '"devices[2].properties.drive": drive "d0" is also attached by devices[1]',
  ],
  ["a disk with an addr", {
    drives: [{ id: "d0", size: 1024 }],
    devices: [{ type: "piix3-ide" }, { type: "ide-hd", addr: "05.0", properties: { drive: "d0" } }],
  }, '"devices[1].addr": ide-hd is not a PCI device: it has no addr'],
  ["drive without id", { drives: [{ size: 1024 }] }, '"drives[0].id": required'],
  [
    "drive without storage",
    { drives: [{ id: "d0" }] },
    '"drives[0]": needs "file" (a raw image) or "size" (an in-memory disk)',
  ],
  [
    "drive with both",
    { drives: [{ id: "d0", size: 512, file: "x.img" }] },
    '"drives[0]": give "file" (a raw image) or "size" (an in-memory disk), not both',
  ],
  [
    "drive size not whole sectors",
    { drives: [{ id: "d0", size: 1000 }] },
    '"drives[0].size": expected a whole number of 512-byte sectors like "64M", got 1000',
  ],
  [
    "drive format",
    { drives: [{ id: "d0", file: "x.qcow2", format: "qcow2" }] },
    '"drives[0].format": expected "raw" (the only format), got "qcow2"',
  ],
  [
    "drive readonly",
    { drives: [{ id: "d0", size: 512, readonly: "yes" }] },
    '"drives[0].readonly": expected true or false, got "yes"',
  ],
  [
    "duplicate drive",
    { drives: [{ id: "d0", size: 512 }, { id: "d0", size: 512 }] },
    '"drives[1].id": duplicate drive id "d0" (also drives[0].id)',
  ],
  [
    "unknown netdev type",
    { netdevs: [{ type: "tap", id: "n0" }] },
    '"netdevs[0].type": unknown netdev type "tap" (known: ',
  ],
  [
    "hub without hubid",
    { netdevs: [{ type: "hub", id: "n0" }] },
    '"netdevs[0].properties.hubid": required (the hub\'s number)',
  ],
  [
    "bad hubid",
    { netdevs: [{ type: "hub", id: "n0", properties: { hubid: -1 } }] },
    '"netdevs[0].properties.hubid": expected a number from 0 to 2147483647, got "-1"',
  ],
  ["unknown netdev property", {
    netdevs: [{ type: "hub", id: "n0", properties: { hubid: 0, netdev: "x" } }],
  }, '"netdevs[0].properties.netdev": unknown property (hub has: hubid)'],
  ["bad port", {
    netdevs: [{ type: "dgram", id: "n0", properties: { "local.port": 70000, "remote.port": 1 } }],
  }, '"netdevs[0].properties.local.port": expected a port from 0 to 65535, got "70000"'],
  ["dgram without remote", {
    netdevs: [{ type: "dgram", id: "n0", properties: { "local.port": 7000 } }],
  }, '"netdevs[0].properties.remote.port": required'],
  ["duplicate netdev", {
    netdevs: [{ type: "hub", id: "n0", properties: { hubid: 0 } }, {
      type: "hub",
      id: "n0",
      properties: { hubid: 0 },
    }],
  }, '"netdevs[1].id": duplicate netdev id "n0" (also netdevs[0].id)'],
  [
    "capture of an unknown netdev",
    { captures: [{ id: "f0", netdev: "n0", file: "x.pcap" }] },
    '"captures[0].netdev": no netdev "n0" (no netdevs are defined)',
  ],
  ["capture without file", {
    netdevs: [{ type: "hub", id: "n0", properties: { hubid: 0 } }],
    captures: [{ id: "f0", netdev: "n0" }],
  }, '"captures[0].file": required'],
  [
    "unknown workload",
    { workload: "fast" },
    "\"workload\": Unknown workload 'fast' (built in: demo, disk-copy, net-pingpong, dma-storm",
  ],
  ["workload without name", { workload: { options: {} } }, '"workload.name": required'],
  [
    "workload name with options",
    { workload: { name: "demo,x=1" } },
    '"workload.name": expected a name without options (put them in "options")',
  ],
  [
    "workload option not a scalar",
    { workload: { name: "demo", options: { x: { y: 1 } } } },
    '"workload.options.x": expected a string, number or boolean, got an object',
  ],
  ["unknown trace category", { trace: "dma,disk" }, "\"trace\": Unknown trace category 'disk'"],
  ["trace not a string", { trace: [1] }, '"trace[0]": expected a non-empty string, got 1'],
  ["empty file name", { dmaTrace: "" }, '"dmaTrace": expected a non-empty string, got ""'],
  [
    "narrowPermissions",
    { narrowPermissions: 1 },
    '"narrowPermissions": expected true or false, got 1',
  ],
];

for (const [what, value, message] of INVALID) {
  Deno.test(`invalid machine description: ${what}`, () => {
    throws(() => parseMachineFile(value), (error: unknown) => {
      ok(error instanceof MachineFileError, String(error));
      ok(
        error.message.includes(message),
        `expected the message to contain\n  ${message}\ngot\n  ${error.message}`,
      );
      if (message.startsWith('"')) {
        equal(`"${error.field}"`, message.slice(0, message.indexOf('"', 1) + 1));
        ok(error.message.startsWith(`Invalid machine config field "${error.field}": `));
      }
      return true;
    });
  });
}

Deno.test("files that cannot be read or are not JSON are errors that say so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = `${dir}/bad.json`;
    await Deno.writeTextFile(bad, '{ "memory": ');
    await rejects(loadMachineFile(bad), /Invalid machine config: '.*bad.json' is not valid JSON/);
    await rejects(loadMachineFile(`${dir}/none.json`), /cannot read '.*none.json'/);
    const good = `${dir}/vm.json`;
    await Deno.writeTextFile(
      good,
      JSON.stringify({ drives: [{ id: "d0", file: "disk.img" }], workload: "./w.ts" }),
    );
    const d = await loadMachineFile(good);
    equal(d.config.drives?.[0]?.file, `${dir}/disk.img`);
    equal(d.workload?.url.pathname, `${dir}/w.ts`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await promise;
  } catch (error) {
    ok(error instanceof MachineFileError);
    ok(pattern.test(error.message), error.message);
    return;
  }
  throw new Error("Expected a rejection");
}
