// Side by side with QEMU 7.2: the same qtest lines against
// `qemu-system-x86_64 -S -machine q35 -display none -nodefaults -qtest stdio`
// and against dmaworks, comparing every output line (replies and IRQ lines).
// Skipped when qemu-system-x86_64 is not on PATH.
//
// Deliberate differences, asserted on dmaworks alone:
// - CONFIG_ADDRESS is decoded only by 32-bit accesses to 0xCF8 and its bits
//   1:0 read as 0 and do not select the register (PCI specification); QEMU
//   latches byte and word writes, answers byte and word reads of 0xCF8–0xCFB
//   with the latched address, and adds bits 1:0 to the register number.
// - Unassigned memory reads all-ones (a master abort, as on hardware); QEMU
//   7.2's q35 answers 0.
// - b64write with fewer bytes than SIZE zero-fills; QEMU writes leftover
//   bytes of its request buffer.
import { deepEqual, equal } from "node:assert/strict";
import { Machine, type MachineConfig } from "../../src/machine/machine.ts";
import { QtestClient } from "../../src/qtest/qtest_client.ts";
import { cfg, EDU_SETUP, serveInput, which } from "./qtest_test_utils.ts";

const QEMU = which("qemu-system-x86_64");
const QEMU_ARGS = [
  "-S",
  "-machine",
  "q35",
  "-display",
  "none",
  "-nodefaults",
  "-qtest",
  "stdio",
  "-qtest-log",
  "/dev/null",
];

/** Every line QEMU writes for `lines` (all piped at once), then QEMU is killed. */
async function qemuTranscript(
  lines: readonly string[],
  extraArgs: string[] = [],
): Promise<string[]> {
  const child = new Deno.Command(QEMU!, {
    args: [...QEMU_ARGS, ...extraArgs],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const transcript: string[] = [];
  const client = new QtestClient({ readable: child.stdout, writable: child.stdin }, {
    timeoutMs: 30_000,
    onLine: (line) => transcript.push(line),
  });
  let failure: unknown;
  try {
    await Promise.all(lines.map((line) => client.command(line)));
  } catch (error) {
    failure = error;
  } finally {
    child.kill("SIGKILL");
    await client.close();
    await child.status;
  }
  const errors = await stderr;
  if (failure) throw new Error(`QEMU failed: ${failure}\n${errors}`);
  return transcript;
}

/** Every line dmaworks writes for `lines`. */
async function dmaworksTranscript(
  lines: readonly string[],
  config: MachineConfig = {},
): Promise<string[]> {
  await using machine = await Machine.create(config);
  return (await serveInput(machine, lines.map((l) => `${l}\n`).join(""), { log: "none" })).lines;
}

async function compare(
  lines: readonly string[],
  options: { qemuArgs?: string[]; config?: MachineConfig } = {},
): Promise<string[]> {
  const [qemu, ours] = await Promise.all([
    qemuTranscript(lines, options.qemuArgs),
    dmaworksTranscript(lines, options.config),
  ]);
  const diffs: string[] = [];
  for (let i = 0; i < Math.max(qemu.length, ours.length); i++) {
    if (qemu[i] !== ours[i]) diffs.push(`#${i}: QEMU '${qemu[i]}', dmaworks '${ours[i]}'`);
  }
  deepEqual(diffs, [], `${diffs.length} differences:\n${diffs.slice(0, 20).join("\n")}`);
  return ours;
}

const ignore = QEMU === undefined;

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

Deno.test({
  name: "QEMU: host bridge config space, every byte, word and dword",
  ignore,
  async fn() {
    const lines: string[] = [];
    for (let offset = 0; offset < 256; offset++) {
      const port = hex(0xcfc + (offset & 3));
      lines.push(`outl 0xcf8 ${cfg(0, 0, offset)}`, `inb ${port}`);
      if (offset % 2 === 0) lines.push(`inw ${port}`);
      if (offset % 4 === 0) lines.push(`inl ${port}`);
    }
    const ours = await compare(lines);
    equal(ours.length, lines.length);
    equal(ours[2], "OK 0x8086"); // sanity: the comparison saw real data
  },
});

Deno.test({
  name: "QEMU: command, status, BAR and interrupt line writes; absent functions and buses",
  ignore,
  async fn() {
    await compare([
      `outl 0xcf8 ${cfg(0, 0, 4)}`,
      "outw 0xcfc 0xffff",
      "inw 0xcfc",
      "inl 0xcfc",
      "inb 0xcfd",
      "outw 0xcfe 0xffff", // status: write-1-to-clear
      "inw 0xcfe",
      "outl 0xcfc 0xffffffff",
      "inl 0xcfc",
      "outw 0xcfc 0",
      "inw 0xcfc",
      "outb 0xcfc 0x06",
      "inb 0xcfc",
      `outl 0xcf8 ${cfg(0, 0, 0x10)}`,
      "outl 0xcfc 0xffffffff",
      "inl 0xcfc",
      `outl 0xcf8 ${cfg(0, 0, 0x3c)}`,
      "outb 0xcfc 0x0b",
      "inl 0xcfc",
      `outl 0xcf8 ${cfg(5, 0, 0)}`,
      "inl 0xcfc",
      "inw 0xcfe",
      "inb 0xcff",
      "outl 0xcfc 0x12345678",
      "inl 0xcfc",
      `outl 0xcf8 ${cfg(0, 1, 0)}`,
      "inl 0xcfc",
      `outl 0xcf8 ${cfg(0x1e, 7, 0x40)}`,
      "inl 0xcfc",
      "outl 0xcf8 0x80010000", // bus 1
      "inl 0xcfc",
      "outl 0xcf8 0x80ff0800",
      "inw 0xcfc",
      "outl 0xcf8 0x00000000", // enable bit clear
      "inl 0xcfc",
      "inb 0xcfe",
      "inb 0xcf9",
    ]);
  },
});

Deno.test({
  name: "QEMU: CONFIG_ADDRESS sub-dword reads and bits 1:0 (deliberate difference)",
  ignore,
  async fn() {
    const differing = [
      "outl 0xcf8 0x80000003",
      "inl 0xcf8",
      "inw 0xcf8",
      "inb 0xcf8",
      "inw 0xcfa",
      "inb 0xcfb",
      "inl 0xcfc", // QEMU adds bits 1:0 to the register number
      "inw 0xcfe",
      "outb 0xcf8 0", // QEMU latches sub-dword writes too
      "inl 0xcfc",
      "outw 0xcf8 0",
      "inl 0xcfc",
    ];
    const [qemu, ours] = await Promise.all([
      qemuTranscript(differing),
      dmaworksTranscript(differing),
    ]);
    deepEqual(ours, [
      "OK",
      "OK 0x80000000",
      "OK 0xffff",
      "OK 0x00ff",
      "OK 0xffff",
      "OK 0x00ff",
      "OK 0x29c08086",
      "OK 0x29c0",
      "OK",
      "OK 0x29c08086",
      "OK",
      "OK 0x29c08086",
    ]);
    equal(qemu.length, ours.length);
  },
});

Deno.test({
  name: "QEMU: RAM accesses, bulk commands, endianness",
  ignore,
  async fn() {
    await compare([
      "endianness",
      "writeq 0x1000 0x1122334455667788",
      "readq 0x1000",
      "readl 0x1000",
      "readl 0x1004",
      "readw 0x1001",
      "readb 0x1007",
      "readq 0x1001",
      "writel 0x1003 0xdeadbeef",
      "read 0x1000 16",
      "writew 0x2001 0x1ffff",
      "readw 0x2001",
      "writeb 0x2010 0x1234",
      "readb 0x2010",
      "writel 0x2020 -1",
      "readq 0x2020",
      "writeq 0x2030 -2",
      "readq 0x2030",
      "memset 0x3000 32 0x5a",
      "read 0x3000 33",
      "memset 0x3000 0 0x11",
      "memset 0x3010 1 0x1ff",
      "read 0x3000 32",
      "b64read 0x3000 32",
      "b64read 0x3000 1",
      "b64read 0x3000 2",
      "b64read 0x3000 0",
      "write 0x4000 8 0x1122",
      "read 0x4000 8",
      "write 0x4000 4 0xaabbccddeeff0011",
      "read 0x4000 8",
      "write 0x4000 2 0XFFee",
      "read 0x4000 2",
      "write 0x4000 0 0x00",
      "b64write 0x5000 3 QUJD",
      "b64read 0x5000 4",
      "b64write 0x5000 2 QUJDRA==",
      "read 0x5000 4",
      "b64write 0x5000 0 QUJD",
      "read 0x5000 4",
      "write 0x5000 4 0x",
      "b64write 0x5000 4 QQ",
      "readl 0x0",
      "readl 010",
      "readl +0x10",
      "readl -0",
      "readq 0x7fffff8",
      "writeq 0x7fffff8 0x0102030405060708",
      "readq 0x7fffff8",
      "memset 0x200000 4096 0xc3",
      "b64read 0x200000 4096",
      "read 0x200ffe 4",
    ]);
  },
});

Deno.test({
  name: "QEMU: b64write shorter than SIZE and unassigned reads (deliberate differences)",
  ignore,
  async fn() {
    deepEqual(
      await dmaworksTranscript([
        "write 0x5000 4 0xffffffff",
        "b64write 0x5000 4 QUJD",
        "read 0x5000 4",
        "readl 0xfe000000",
        "read 0xfe000000 8",
        "b64read 0xfe000000 6",
        "readq 0x100000000",
      ]),
      [
        "OK",
        "OK",
        "OK 0x41424300",
        "OK 0x00000000ffffffff",
        "OK 0xffffffffffffffff",
        "OK ////////",
        "OK 0xffffffffffffffff",
      ],
    );
  },
});

Deno.test({
  name:
    "QEMU: protocol-level answers (unknown commands, interrupt intercepts, errors QEMU reports)",
  ignore,
  async fn() {
    await compare([
      "nosuchcommand a b c",
      "READL 0",
      "module_load block curl",
      "irq_intercept_in nothing",
      "irq_intercept_out /machine/q35/ioapic",
      "irq_intercept_in ioapic",
      "irq_intercept_in q35/ioapic",
      "irq_intercept_in machine/q35/ioapic",
      "irq_intercept_in /machine/q35/ioapic/",
      "irq_intercept_in q35",
      "irq_intercept_out /machine/q35",
      "irq_intercept_in nothing",
      "write 0 4 0x",
      "b64write 0 4 ab",
      "endianness",
    ]);
  },
});

Deno.test({
  name: "QEMU: edu's config space, BAR, registers and INTx through the intercepted I/O APIC",
  ignore,
  async fn() {
    const lines: string[] = [];
    for (let offset = 0; offset < 256; offset += 4) {
      lines.push(`outl 0xcf8 ${cfg(4, 0, offset)}`, "inl 0xcfc");
    }
    lines.push(
      `outl 0xcf8 ${cfg(4, 0, 0x10)}`,
      "outl 0xcfc 0xffffffff",
      "inl 0xcfc",
      ...EDU_SETUP,
      `outl 0xcf8 ${cfg(4, 0, 0x04)}`,
      "inw 0xcfc",
      "readl 0xfe000000",
      "writel 0xfe000004 0x12345678",
      "readl 0xfe000004",
      "irq_intercept_in ioapic",
      "writel 0xfe000060 0x10",
      "readl 0xfe000024",
      "writel 0xfe000060 0x20",
      "readl 0xfe000024",
      "writel 0xfe000064 0x10",
      "writel 0xfe000064 0x20",
      "readl 0xfe000024",
      "writel 0xfe000060 1",
      `outl 0xcf8 ${cfg(4, 0, 0x04)}`,
      "outw 0xcfc 0x0406", // INTx Disable
      "outw 0xcfc 0x0006",
      "writel 0xfe000064 1",
    );
    const ours = await compare(lines, {
      qemuArgs: ["-device", "edu,addr=04.0"],
      config: { devices: [{ type: "edu", addr: "04.0" }] },
    });
    equal(ours.filter((l) => l.startsWith("IRQ ")).length, 6);
  },
});
