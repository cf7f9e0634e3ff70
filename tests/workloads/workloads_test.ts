// The built-in workloads in short runs: disk-copy, net-pingpong (one machine
// and two), dma-storm (with and without an IOMMU), each shown to fail when
// the machine misbehaves or lacks what it needs.
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { Machine, type MachineConfig } from "../../src/machine/machine.ts";
import { BUILTIN_WORKLOADS, resolveWorkload } from "../../src/workloads/registry.ts";
import { isWorkloadSummary, type WorkloadSummary } from "../../src/workloads/workload.ts";

const url = (name: string) => BUILTIN_WORKLOADS.find((w) => w.name === name)!.url;

async function run(
  config: MachineConfig,
  workload: string,
  options: Record<string, string> = {},
): Promise<WorkloadSummary> {
  await using machine = await Machine.create(config);
  const result = await machine.runGuest(url(workload), { options, timeoutMs: 120_000 });
  ok(isWorkloadSummary(result), JSON.stringify(result));
  return result;
}

const failed = (s: WorkloadSummary) => s.steps.filter((step) => !step.ok).map((step) => step.step);

const IDE_MACHINE = (drives: NonNullable<MachineConfig["drives"]>): MachineConfig => ({
  devices: [
    { type: "amd-iommu" },
    { type: "piix3-ide", id: "ide" },
    ...drives.map((d, i) => ({
      type: "ide-hd",
      properties: { drive: d.id, bus: `ide.${i}` },
    })),
  ],
  drives,
});

Deno.test("disk-copy: a seeded pattern copied to a second disk through the IOMMU, verified", async () => {
  const s = await run(
    IDE_MACHINE([{ id: "a", size: 8 << 20 }, { id: "b", size: 8 << 20 }]),
    "disk-copy",
    { size: "2M", chunk: "512K", seed: "9" },
  );
  deepEqual(failed(s), []);
  deepEqual(s.steps.map((step) => step.step), [
    "drives",
    "write pattern",
    "read source",
    "copy",
    "verify copy",
  ]);
  equal(s.ok, true);
  equal(s.metrics.bytes, 2 << 20);
  equal(s.metrics.chunks, 4);
  equal(s.metrics.iommu, "on");
  match(String(s.metrics.source), /primary master LBA 0/);
  match(String(s.metrics.destination), /secondary master LBA 0/);
  match(String(s.metrics.crc32), /^0x[0-9a-f]{8}$/);
  match(s.steps[3]!.detail, /through IOVA 0x/);
});

Deno.test("disk-copy: one disk, what is there copied to the region after it", async () => {
  const s = await run(IDE_MACHINE([{ id: "a", size: 4 << 20 }]), "disk-copy", {
    size: "1M",
    mode: "existing",
    lba: "8",
  });
  deepEqual(failed(s), []);
  deepEqual(s.steps.map((step) => step.step), ["drives", "copy", "verify copy"]);
  equal(s.metrics.destination, "ide 00:02.0 primary master LBA 2056");
  equal(s.metrics.crc32, "0x" + "a738ea1c"); // CRC-32 of 1 MiB of zeros
});

Deno.test("disk-copy fails when the destination disk refuses writes", async () => {
  const s = await run(
    IDE_MACHINE([{ id: "a", size: 4 << 20 }, { id: "b", size: 4 << 20, readonly: true }]),
    "disk-copy",
    { size: "64K" },
  );
  equal(s.ok, false);
  deepEqual(failed(s), ["copy"]);
  match(s.steps.at(-1)!.detail, /WRITE DMA at 0 failed: .*ABRT/);
});

Deno.test("disk-copy: bad options, no disk, too little RAM are errors without a stack", async () => {
  const cases: Array<[MachineConfig, Record<string, string>, RegExp]> = [
    [
      IDE_MACHINE([{ id: "a", size: 1 << 20 }]),
      { size: "12Q" },
      /^Guest program failed: Invalid workload option size=12Q: expected a size in bytes/,
    ],
    [
      IDE_MACHINE([{ id: "a", size: 1 << 20 }]),
      { sise: "1M" },
      /Unknown workload option 'sise' \(accepted: size, chunk, seed, mode, lba\)$/,
    ],
    [
      IDE_MACHINE([{ id: "a", size: 1 << 20 }]),
      { mode: "fast" },
      /mode=fast: expected one of pattern, existing$/,
    ],
    [
      IDE_MACHINE([{ id: "a", size: 1 << 20 }]),
      { size: "1M" },
      /does not fit ide 00:02\.0 primary master \(2048 sectors\)/,
    ],
    [{ devices: [{ type: "edu" }] }, {}, /disk-copy needs an IDE disk/],
    [
      { ...IDE_MACHINE([{ id: "a", size: 64 << 20 }]), ramSize: 24 << 20 },
      { size: "32M", chunk: "32M" },
      /Out of guest RAM for workload buffers: .* \(give the machine more memory with -m\)$/,
    ],
  ];
  for (const [config, options, expected] of cases) {
    await using machine = await Machine.create(config);
    await rejects(machine.runGuest(url("disk-copy"), { options }), (error: Error) => {
      match(error.message, expected);
      ok(!/\n\s+at /.test(error.message), `no stack trace: ${error.message}`);
      return true;
    });
  }
});

const NIC_MACHINE = (hubid: number, nics: number, iommu = true): MachineConfig => ({
  devices: [
    ...(iommu ? [{ type: "amd-iommu" }] : []),
    ...Array.from({ length: nics }, (_, i) => ({
      type: "e1000",
      properties: { netdev: `n${i}` },
    })),
  ],
  netdevs: Array.from({ length: nics }, (_, i) => ({
    type: "hub",
    id: `n${i}`,
    properties: { hubid: String(hubid) },
  })),
});

function checkLatency(s: WorkloadSummary, pings: number): void {
  const m = s.metrics as Record<string, number>;
  equal(m.pings, pings);
  ok(m.latency_min_us! > 0);
  ok(m.latency_min_us! <= m.latency_p50_us!);
  ok(m.latency_p50_us! <= m.latency_p90_us!);
  ok(m.latency_p90_us! <= m.latency_p99_us!);
  ok(m.latency_p99_us! <= m.latency_max_us!);
}

Deno.test("net-pingpong between the two NICs of one machine: latency and throughput", async () => {
  const s = await run(NIC_MACHINE(701, 2), "net-pingpong", {
    count: "20",
    size: "128",
    burst: "300",
  });
  deepEqual(failed(s), []);
  deepEqual(s.steps.map((step) => step.step), ["ping-pong", "throughput"]);
  checkLatency(s, 20);
  match(String(s.metrics.mode), /^local e1000 00:0\d\.0 -> e1000 00:0\d\.0$/);
  const m = s.metrics as Record<string, number>;
  equal(m.burst_frames, 300);
  ok(m.burst_received! > 0 && m.burst_received! <= 300);
  equal(m.burst_lost, 300 - m.burst_received!);
  ok(m.throughput_frames_s! > 0 && m.throughput_mbit_s! > 0);
});

Deno.test("net-pingpong between two machines on one hub: machine 0 pings machine 1", async () => {
  await using a = await Machine.create(NIC_MACHINE(702, 1));
  await using b = await Machine.create({
    ...NIC_MACHINE(702, 1),
    devices: [{ type: "amd-iommu" }, {
      type: "e1000",
      properties: { netdev: "n0", mac: "52:54:00:00:07:02" },
    }],
  });
  const options = { count: "10", burst: "100" };
  const [ping, pong] = await Promise.all([
    a.runGuest(url("net-pingpong"), { options, machineIndex: 0, machineCount: 2 }),
    b.runGuest(url("net-pingpong"), { options, machineIndex: 1, machineCount: 2 }),
  ]) as [WorkloadSummary, WorkloadSummary];
  deepEqual(failed(ping), []);
  deepEqual(failed(pong), []);
  deepEqual(ping.steps.map((step) => step.step), ["find peer", "ping-pong", "throughput"]);
  equal(ping.metrics.peer, "52:54:00:00:07:02");
  equal(pong.metrics.peer, "52:54:00:12:34:56");
  checkLatency(ping, 10);
  equal(pong.metrics.answered, 10);
  equal(pong.metrics.burst_received, ping.metrics.burst_received);
});

Deno.test("net-pingpong fails when nobody answers, and needs NICs", async () => {
  const s = await run(NIC_MACHINE(703, 1, false), "net-pingpong", {
    role: "ping",
    timeout: "300",
  });
  equal(s.ok, false);
  deepEqual(failed(s), ["find peer"]);
  match(s.steps[0]!.detail, /no answer to hello from pair 0 within 300 ms/);
  await using machine = await Machine.create(NIC_MACHINE(704, 1));
  await rejects(
    machine.runGuest(url("net-pingpong")),
    /net-pingpong needs two e1000s on one network .*or --machines 2/,
  );
  await using none = await Machine.create({ devices: [{ type: "edu" }] });
  await rejects(none.runGuest(url("net-pingpong")), /net-pingpong needs an e1000 NIC/);
});

Deno.test("dma-storm: two edu devices copy while pages are remapped under them, all verified", async () => {
  const s = await run(
    { devices: [{ type: "amd-iommu" }, { type: "edu" }, { type: "edu" }] },
    "dma-storm",
    { rounds: "40", remap: "2", seed: "3" },
  );
  deepEqual(failed(s), []);
  deepEqual(s.steps.map((step) => step.step), [
    "edu 00:02.0 copies",
    "edu 00:03.0 copies",
    "remaps under DMA",
    "permission faults",
  ]);
  const m = s.metrics as Record<string, number>;
  equal(m.devices, 2);
  equal(m.transfers, 80);
  equal(m.remaps, 2 * 2 * 20); // two pages per device every second round
  equal(m.permission_faults, 20);
  equal(m.mismatches, 0);
  equal(m.unexpected_faults, 0);
  equal(m.stale_writes, 0);
  ok(m.bytes! >= 80);
});

Deno.test("dma-storm without an IOMMU copies between physical addresses", async () => {
  const s = await run({ devices: [{ type: "edu" }] }, "dma-storm", { rounds: "20" });
  deepEqual(failed(s), []);
  equal(s.metrics.remaps, 0);
  match(s.steps.at(-1)!.detail, /no IOMMU: devices copy between physical addresses/);
});

Deno.test("dma-storm catches a device that DMAs to the wrong addresses", async () => {
  // A 12-bit DMA mask cuts the IOVAs: the copies fault or land elsewhere.
  const s = await run(
    { devices: [{ type: "amd-iommu" }, { type: "edu", properties: { dma_mask: "0xfff" } }] },
    "dma-storm",
    { rounds: "8" },
  );
  equal(s.ok, false);
  ok(failed(s).includes("edu 00:02.0 copies"));
  ok((s.metrics.unexpected_faults as number) + (s.metrics.mismatches as number) > 0);
});

Deno.test("dma-storm: bad options are errors", async () => {
  await using machine = await Machine.create({ devices: [{ type: "edu" }] });
  await rejects(
    machine.runGuest(url("dma-storm"), { options: { size: "8192" } }),
    /Invalid workload option size=8192: expected an integer from 1 to 4096$/,
  );
});

Deno.test("workload names resolve to modules; unknown names list the built-in ones", () => {
  equal(resolveWorkload("net-pingpong,count=5").url.href, url("net-pingpong").href);
  for (const name of ["demo", "disk-copy", "net-pingpong", "dma-storm"]) {
    ok(BUILTIN_WORKLOADS.some((w) => w.name === name));
  }
});

Deno.test("a workload file that is missing or exports no function is a clear error", async () => {
  await using machine = await Machine.create({ devices: [{ type: "edu" }] });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/five.ts`, "export default 5;\n");
    for (
      const [file, expected] of [
        ["missing.ts", /^Guest program failed: Cannot load file:.*missing\.ts: Module not found/],
        [
          "five.ts",
          /^Guest program failed: Guest program file:.*five\.ts has no default export function$/,
        ],
      ] as const
    ) {
      await rejects(machine.runGuest(new URL(`file://${dir}/${file}`)), (error: Error) => {
        match(error.message, expected);
        ok(!/\n\s+at /.test(error.message), `no stack trace: ${error.message}`);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
