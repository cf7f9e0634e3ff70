// The fuzz target: the machine it builds is the one its command line
// describes, DMA injection reaches devices and the IOMMU through a real
// machine, and each oracle reports what it must (and only that).
import { deepEqual, equal, ok } from "node:assert/strict";
import { parseCommandLine } from "../../src/cli/args.ts";
import { machineConfig } from "../../src/cli/main.ts";
import { FUZZ_MACHINE_ARGS, FuzzLayout, fuzzMachineConfig } from "../../src/fuzz/fuzz_machine.ts";
import { generateProgram } from "../../src/fuzz/fuzz_ops.ts";
import { FuzzTarget } from "../../src/fuzz/fuzz_target.ts";

const EDU = FuzzLayout.EDU_BAR0;
const PATTERN = [{ data: new Uint8Array([0x5a, 0xa5]), index: 0, stride: 0 }];

/** Every fill a target reported, whichever request drained it. */
const fills = new WeakMap<FuzzTarget, string[]>();

async function exec(t: FuzzTarget, line: string, index = 0): Promise<string> {
  const r = await t.execute(line, index);
  fills.set(t, [...(fills.get(t) ?? []), ...r.fills.map((f) => f.line)]);
  return r.reply;
}

/** Waits until `ready()`, giving the workers' messages a chance to arrive. */
async function until(ready: () => boolean): Promise<void> {
  while (!ready()) await new Promise((resolve) => setTimeout(resolve, 2));
}

async function mapEdu(t: FuzzTarget): Promise<void> {
  let i = 1000;
  for (
    const line of [
      "outl 0xcf8 0x80002010",
      `outl 0xcfc 0x${EDU.toString(16)}`,
      "outl 0xcf8 0x80002004",
      "outw 0xcfc 0x6",
    ]
  ) equal(await exec(t, line, i++), "OK");
}

async function eduDma(t: FuzzTarget, src: number, dst: number, count: number, cmd = 1) {
  const base = `0x${EDU.toString(16).slice(0, -2)}`;
  await exec(t, `writeq ${base}80 0x${src.toString(16)}`, 1);
  await exec(t, `writeq ${base}88 0x${dst.toString(16)}`, 2);
  await exec(t, `writeq ${base}90 0x${count.toString(16)}`, 3);
  await exec(t, `writeq ${base}98 0x${cmd.toString(16)}`, 4);
  // The DMA runs after the command write; it is over when RUN reads 0.
  while (BigInt((await exec(t, `readq ${base}98`, 5)).split(" ")[1]!) & 1n) { /* running */ }
  await exec(t, "readb 0x0", 6); // drains what the last read left
}

Deno.test("the fuzz machine is what dmaworks builds from FUZZ_MACHINE_ARGS with -qtest stdio", () => {
  deepEqual(
    machineConfig(parseCommandLine([...FUZZ_MACHINE_ARGS, "-qtest", "stdio"])),
    fuzzMachineConfig(),
  );
});

Deno.test("generated programs are deterministic and reach every device and the IOMMU", () => {
  const lines = Array.from({ length: 20 }, (_, s) => generateProgram(s).lines).flat().join("\n");
  deepEqual(generateProgram(3).lines, generateProgram(3).lines);
  for (
    const [what, re] of [
      ["edu", /(write|read)[bwlq] 0xfe0000[0-9a-f]{2}\b/],
      ["e1000 A", /0xfe10[0-9a-f]{4}\b/],
      ["e1000 B", /0xfe12[0-9a-f]{4}\b/],
      ["IDE task file", /out[bwl] 0x1f7 /],
      ["IDE secondary", /out[bwl] 0x17[0-7] /],
      ["bus master", /outl 0xc084 /],
      ["IOMMU MMIO", /0xfed8[0-9a-f]{4}\b/],
      ["PCI config", /outl 0xcf8 0x8000/],
      ["memory", /^write 0x[0-9a-f]+ 0x[0-9a-f]+ 0x/m],
      ["clock", /^clock_step/m],
    ] as const
  ) ok(re.test(lines), `programs reach ${what}`);
});

Deno.test("a device's first DMA read of untouched RAM gets fuzzer data; what the guest wrote is kept", async () => {
  await using t = await FuzzTarget.create({ patterns: PATTERN });
  await mapEdu(t);
  equal(await exec(t, "writel 0x3000000 0x11223344"), "OK");
  await eduDma(t, 0x300_0000, 0x40000, 8);
  deepEqual(fills.get(t), ["write 0x3000004 0x4 0x5aa55aa5"]);
  // The device's buffer holds the guest's bytes, then the fuzzer's.
  await eduDma(t, 0x40000, 0x300_1000, 8, 3);
  deepEqual([...t.machine.memory.view(0x300_1000, 8)], [
    0x44,
    0x33,
    0x22,
    0x11,
    0x5a,
    0xa5,
    0x5a,
    0xa5,
  ]);
  equal(fills.get(t)!.length, 1, "a device write is not filled");
  deepEqual(t.failures, []);
});

Deno.test("the IOMMU's device-table reads are filled too", async () => {
  await using t = await FuzzTarget.create({ patterns: PATTERN });
  await mapEdu(t);
  const iommu = FuzzLayout.IOMMU_MMIO;
  await exec(t, `writeq 0x${iommu.toString(16)} 0x100000`); // device table, untouched
  await exec(t, `writeq 0x${(iommu + 0x18).toString(16)} 0x1`); // IommuEn
  await eduDma(t, 0x300_0000, 0x40000, 8);
  const lines = fills.get(t)!;
  ok(
    lines.some((l) => l.startsWith("write 0x100400 0x8 ")),
    `edu's DTE (0x100400) was filled: ${lines}`,
  );
  deepEqual(t.failures, []);
});

Deno.test("a planted device bug is reported as a device failure", async () => {
  await using t = await FuzzTarget.create({ plantedBug: "edu-dma-bounds" });
  await mapEdu(t);
  const base = `0x${EDU.toString(16).slice(0, -2)}`;
  await exec(t, `writeq ${base}80 0x40f00`); // 256 bytes past the end of the buffer
  await exec(t, `writeq ${base}88 0x3000000`);
  await exec(t, `writeq ${base}90 0x200`);
  await exec(t, `writeq ${base}98 0x3`);
  await until(() => t.failures.length > 0);
  equal(t.failures[0]?.key, "device-failed:edu0");
  ok(/Invalid typed array length/.test(t.failures[0]!.message));
});

Deno.test("the same request without the plant: a refused DMA, no failure", async () => {
  await using t = await FuzzTarget.create();
  await mapEdu(t);
  await eduDma(t, 0x40f00, 0x300_0000, 0x200, 3);
  equal(
    await exec(t, `readl 0x${(EDU + 0x20).toString(16)}`),
    "OK 0x0000000000000100",
    "DMA error",
  );
  deepEqual(t.failures, []);
});

Deno.test("a device that crashes or is killed is a device failure", async () => {
  await using t = await FuzzTarget.create();
  t.machine.injectFault({ kind: "crash-device", device: "edu0" });
  await until(() => t.failures.length > 0);
  equal(t.failures[0]?.key, "device-failed:edu0", "a crash is a failure");
  const before = t.failures.length;
  t.machine.injectFault({ kind: "kill-device", device: "e10000" });
  await until(() => t.failures.length > before);
  equal(t.failures.length, before + 1, "a kill with another reason is reported");
});
