// The command line: QEMU option parsing, errors that name the culprit, help
// texts, and the default machine run end to end in a child process.
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import {
  CommandLineError,
  parseCommandLine,
  parseKeyValues,
  parseSize,
} from "../../src/cli/args.ts";
import { machineConfig, main } from "../../src/cli/main.ts";
import { capture } from "./capture.ts";

Deno.test("a QEMU command line for this machine parses", () => {
  const cl = parseCommandLine([
    "-machine",
    "q35,accel=qtest",
    "-m",
    "512M",
    "-accel",
    "qtest",
    "-display",
    "none",
    "-nodefaults",
    "-no-user-config",
    "-name",
    "guest=vm1,debug-threads=on",
    "-S",
    "-qtest",
    "unix:/tmp/q.sock",
    "-qtest-log",
    "/dev/null",
    "-device",
    "amd-iommu",
    "-device",
    "edu,id=e0,addr=04.0,bus=pcie.0",
  ]);
  equal(cl.ramSize, 512 * 2 ** 20);
  equal(cl.name, "vm1");
  equal(cl.paused, true);
  equal(cl.qtest, "unix:/tmp/q.sock");
  equal(cl.qtestLog, "/dev/null");
  deepEqual(cl.devices.map((d) => d.driver), ["amd-iommu", "edu"]);
  deepEqual([...cl.devices[1]!.properties], [["id", "e0"], ["addr", "04.0"], ["bus", "pcie.0"]]);
  const config = machineConfig(cl);
  deepEqual(config.devices, [{ type: "amd-iommu" }, { type: "edu", id: "e0", addr: "04.0" }]);
  equal(config.qtestClock, true);
});

Deno.test("sizes and key=value lists parse like QEMU's", () => {
  equal(parseSize("512", 2 ** 20), 512 * 2 ** 20);
  equal(parseSize("2G", 2 ** 20), 2 * 2 ** 30);
  equal(parseSize("4096b", 2 ** 20), 4096);
  equal(parseSize("1.5G", 2 ** 20), 1.5 * 2 ** 30);
  throws(() => parseSize("12Q", 1), CommandLineError);
  throws(() => parseSize("", 1), CommandLineError);
  deepEqual([...parseKeyValues("file=a,,b,format=raw").properties], [["file", "a,b"], [
    "format",
    "raw",
  ]]);
  throws(() => parseKeyValues("edu,x=1,x=2"), /given twice/);
  throws(() => parseKeyValues("edu,=1"), /empty key/);
});

const BAD: ReadonlyArray<[string[], RegExp]> = [
  [["-bogus"], /^dmaworks: Unknown option '-bogus' \(see --help\)\n$/],
  [["--bogus"], /Unknown option '--bogus'/],
  [["-m"], /Option '-m' needs a value/],
  [["-S=1"], /Unknown option '-S=1'/],
  [["stray"], /Unexpected argument 'stray'/],
  [["-machine", "pc"], /Unsupported machine type 'pc': dmaworks emulates q35 only/],
  [["-machine", "q35,kernel-irqchip=on"], /Unsupported machine property 'kernel-irqchip'/],
  [["-accel", "hvf"], /Unknown accelerator 'hvf'/],
  [["-display", "gtk"], /Unsupported display 'gtk'/],
  [["-m", "100K"], /must be at least 1M/],
  [["-m", "lots"], /Invalid size 'lots'/],
  [["-device", "nosuch"], /Unknown device 'nosuch'/],
  [["-device", "edu,colour=red"], /Device 'edu' has no property 'colour'/],
  [["-device", "edu,bus=pci.1"], /Unknown bus 'pci.1'/],
  [["-device", "amd-iommu,intremap=on"], /Device 'amd-iommu' has no property 'intremap'/],
  [["-device", "e1000,speed=10"], /Device 'e1000' has no property 'speed'/],
  [["-drive", "file=x.img,format=qcow2"], /Unsupported drive format 'qcow2'/],
  [["-drive", "format=raw,if=none,id=d0"], /needs file=/],
  [["-drive", "file=x.img,if=scsi"], /Unsupported drive interface 'scsi'/],
  [["-drive", "file=x.img,readonly=maybe"], /Invalid readonly 'maybe'/],
  [["-drive", "file=x.img,bogus=1"], /Unsupported -drive parameter 'bogus'/],
  [["-netdev", "hub"], /no id=/],
  [["-netdev", "tap,id=n0"], /Unknown netdev type 'tap'/],
  [["-object", "memory-backend-ram,id=m0"], /Unsupported -object 'memory-backend-ram'/],
  [["-object", "filter-dump,id=f0,netdev=n0"], /needs id=, netdev= and file=/],
  [["-device", "ide-hd,drive=d0"], /no drive with id 'd0'/],
  [["-device", "edu,addr=40.0"], /Invalid PCI address '40.0'/],
  [["-device", "edu,addr=04.0", "-device", "edu,addr=04.0"], /already in use/],
  [["-device", "edu,id=a", "-device", "edu,id=a"], /Duplicate device id 'a'/],
  [["--workload", "nosuch"], /Unknown workload 'nosuch'/],
];

for (const [args, expected] of BAD) {
  Deno.test(`bad command line ${JSON.stringify(args)} is a clear error`, async () => {
    const c = capture();
    equal(await main(args, c.io), 1);
    match(c.err(), expected);
    equal(c.out(), "");
  });
}

Deno.test("help, version and device help", async () => {
  let c = capture();
  equal(await main(["--help"], c.io), 0);
  match(c.out(), /-qtest CHARDEV/);
  c = capture();
  equal(await main(["-version"], c.io), 0);
  match(c.out(), /^dmaworks \d+\.\d+\.\d+\n$/);
  c = capture();
  equal(await main(["-device", "help"], c.io), 0);
  match(c.out(), /name "amd-iommu"/);
  match(c.out(), /name "edu", bus PCI/);
  c = capture();
  equal(await main(["-device", "edu,help"], c.io), 0);
  match(c.out(), /dma_mask=<str>/);
});

Deno.test("a guest workload from a file runs and its result is printed", async () => {
  const c = capture();
  const file = new URL("../fixtures/edu_probe.ts", import.meta.url).pathname;
  equal(await main(["-device", "edu,addr=04.0", "--workload", `${file},slot=4`], c.io), 0);
  match(c.out(), /"ident":16777453/);
});

Deno.test("deno task start: the default machine runs its demo and exits 0", async () => {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../src/cli/main.ts", import.meta.url).pathname,
      "--narrow-permissions",
    ],
    stdout: "piped",
    stderr: "piped",
    cwd: new URL("../..", import.meta.url).pathname,
  });
  const { code, stdout, stderr } = await command.output();
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  equal(code, 0, err);
  match(out, /device 00:01\.0 1022:0008/);
  match(out, /DMA through the IOMMU/);
  match(out, /(\d+) of \1 steps passed/);
  ok(!/FAIL/.test(out));
  match(err, /running workload demo\n/);
  // Every device is listed before the workload starts, the IOMMU (main isolate) too.
  match(err, /dmaworks: 00:01\.0 amd-iommu \(id iommu0, IRQ 21\)\n/);
  match(err, /dmaworks: 00:02\.0 piix3-ide \(id ide, IRQ 14,15\)\n/);
});
