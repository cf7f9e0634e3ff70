// Tracing: -d help, -d CATEGORIES with lines on stderr or in a -D file, the
// DMA trace file (one line per transaction, with the addresses the guest
// used), and that devices trace nothing unless asked.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { parseCommandLine } from "../../src/cli/args.ts";
import { main } from "../../src/cli/main.ts";
import { Machine, type MachineEvent } from "../../src/machine/machine.ts";
import { capture } from "./capture.ts";

const PROBE = new URL("../fixtures/trace_probe.ts", import.meta.url).pathname;
const MACHINE = [
  "-device",
  "amd-iommu",
  "-device",
  "edu,addr=04.0",
  "-drive",
  "if=ide,size=1M",
  "--workload",
  PROBE,
];

interface ProbeResult {
  src: { phys: number; iova: number };
  dst: { phys: number; iova: number };
  copied: boolean;
  denied: boolean;
  ide: { iova: number; phys: number };
}

function probeResult(out: string): ProbeResult {
  const json = /^Result: (.*)$/m.exec(out)?.[1];
  ok(json, out);
  return JSON.parse(json);
}

const hex = (n: number) => `0x${n.toString(16)}`;

Deno.test("-d help lists the categories; unknown categories are errors", async () => {
  let c = capture();
  equal(await main(["-d", "help"], c.io), 0);
  for (const category of ["dma", "iommu", "ide", "e1000", "edu", "all"]) {
    match(c.out(), new RegExp(`^${category} `, "m"));
  }
  c = capture();
  equal(await main(["-d", "dma,disk"], c.io), 1);
  match(
    c.err(),
    /^dmaworks: Unknown trace category 'disk' \(known: dma, iommu, ide, e1000, edu, all; see -d help\)\n$/,
  );
  deepEqual(parseCommandLine(["-d", "dma", "--trace", "ide,dma"]).trace, ["dma", "ide"]);
  equal(parseCommandLine(["-d", "all"]).trace?.length, 5);
  c = capture();
  equal(await main(["-D"], c.io), 1);
  match(c.err(), /Option '-D' needs a value/);
});

Deno.test("--dma-trace writes one line per DMA transaction with the guest's addresses", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/dma.trace`;
    const c = capture();
    equal(await main([...MACHINE, "--dma-trace", file], c.io), 0, c.err());
    const r = probeResult(c.out());
    ok(r.copied && r.denied);
    const lines = (await Deno.readTextFile(file)).trimEnd().split("\n");
    match(lines[0]!, /^# dmaworks DMA trace: one line per DMA transaction/);
    const body = lines.filter((l) => !l.startsWith("#"));
    equal(lines.at(-1), `# ${body.length} transactions`);
    // Every line has the fields in order; seq counts up from 1.
    body.forEach((line, i) => {
      match(
        line,
        /^seq=\d+ machine=0 dev=00:0[0-9a-f]\.\d name=\S+ dir=(read|write) iova=0x[0-9a-f]+ gpa=\S+ len=\d+ result=\S+/,
      );
      ok(line.startsWith(`seq=${i + 1} `), line);
    });
    const edu = body.filter((l) => l.includes(" name=edu0 "));
    const strip = (l: string) => l.replace(/^seq=\d+ /, "");
    deepEqual(edu.map(strip), [
      `machine=0 dev=00:04.0 name=edu0 dir=read iova=${hex(r.src.iova)} gpa=${
        hex(r.src.phys)
      } len=4096 result=ok`,
      `machine=0 dev=00:04.0 name=edu0 dir=write iova=${hex(r.dst.iova)} gpa=${
        hex(r.dst.phys)
      } len=4096 result=ok`,
      `machine=0 dev=00:04.0 name=edu0 dir=read iova=${hex(r.src.iova)} gpa=${
        hex(r.src.phys)
      } len=64 result=ok`,
      `machine=0 dev=00:04.0 name=edu0 dir=write iova=${
        hex(r.src.iova)
      } gpa=- len=0 result=permission fault_iova=${hex(r.src.iova)}`,
    ]);
    // The IDE READ DMA of 16 sectors wrote the driver's buffer through its IOVA.
    ok(
      body.some((l) =>
        l.includes(
          ` dev=00:02.0 name=ide dir=write iova=${hex(r.ide.iova)} gpa=${
            hex(r.ide.phys)
          } len=8192 result=ok`,
        )
      ),
      body.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("-d dma,iommu,ide,edu: readable lines per category on stderr", async () => {
  const c = capture();
  equal(await main([...MACHINE, "-d", "dma,iommu,ide,edu"], c.io), 0, c.err());
  const r = probeResult(c.out());
  const err = c.err();
  match(
    err,
    new RegExp(
      `^dma: edu0: dev=00:04\\.0 name=edu0 dir=read iova=${hex(r.src.iova)} gpa=${
        hex(r.src.phys)
      } len=4096 result=ok$`,
      "m",
    ),
  );
  match(err, /^dma: edu0: .* result=permission fault_iova=0x8000000$/m);
  match(err, /^iommu: iommu0: control 0x[0-9a-f]+: IommuEn=1 /m);
  match(err, /^iommu: iommu0: command INVALIDATE_IOMMU_ALL$/m);
  match(err, /^iommu: iommu0: COMPLETION_WAIT done after \d+ acknowledgements: stored 0x/m);
  match(err, /^iommu: iommu0: miss dev=00:04\.0 iova=0x8000000 read -> gpa=0x[0-9a-f]+ /m);
  match(
    err,
    /^iommu: iommu0: event IO_PAGE_FAULT dev=00:04\.0 domain=\d+ address=0x8000000 write present permission$/m,
  );
  match(err, /^ide: ide: channel 0 unit 0: command 0xec IDENTIFY DEVICE$/m);
  match(err, /^ide: ide: channel 0 unit 0: command 0xc8 READ DMA$/m);
  match(err, /^ide: ide: channel 0 unit 0: DMA disk -> memory lba 0 sectors 16 \(8192 bytes\)$/m);
  match(err, /^ide: ide: channel 0 unit 0: DMA complete$/m);
  match(
    err,
    /^edu: edu0: DMA start command 0x11 \(copy\) src 0x8000000 dst 0x8001000 count 4096$/m,
  );
  match(err, /^edu: edu0: DMA failed: fault code 3 at 0x8000000$/m);
  ok(!/^e1000: /m.test(err), "e1000 was not asked for");
});

Deno.test("-D sends trace lines to a file instead of stderr", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/trace.log`;
    const c = capture();
    equal(await main([...MACHINE, "-d", "edu", "-D", file], c.io), 0, c.err());
    ok(!/^edu: /m.test(c.err()));
    const log = await Deno.readTextFile(file);
    match(log, /^edu: edu0: DMA start command 0x11 \(copy\)/m);
    ok(log.split("\n").filter(Boolean).every((l) => l.startsWith("edu: edu0: ")), log);
    const bad = capture();
    equal(await main([...MACHINE, "-d", "edu", "-D", `${dir}/no/such/dir/x.log`], bad.io), 1);
    match(bad.err(), /^dmaworks: Cannot write '.*x\.log': /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("devices trace only their categories, and only when asked", async () => {
  const collect = async (trace: MachineEvent[], config: Parameters<typeof Machine.create>[0]) => {
    await using machine = await Machine.create(config);
    machine.onEvent((e) => {
      if (e.type === "trace") trace.push(e);
    });
    await machine.runGuest(PROBE);
  };
  const none: MachineEvent[] = [];
  await collect(none, { devices: [{ type: "amd-iommu" }, { type: "edu" }] });
  deepEqual(none, []);
  const some: MachineEvent[] = [];
  await collect(some, { devices: [{ type: "amd-iommu" }, { type: "edu" }], trace: ["edu"] });
  ok(some.length > 0);
  ok(some.every((e) => e.type === "trace" && e.category === "edu" && e.source === "edu0"));
});
