import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { Machine } from "../../src/machine/machine.ts";
import { QtestClient } from "../../src/qtest/qtest_client.ts";
import { encodeBase64 } from "../../src/qtest/qtest_protocol.ts";
import {
  type QtestMachine,
  type QtestMachineEvent,
  QtestServer,
} from "../../src/qtest/qtest_server.ts";
import { cfg, connectionPair, EDU_SETUP, replies, serveInput } from "./qtest_test_utils.ts";

const EDU = { devices: [{ type: "edu", addr: "04.0" }], qtestClock: true };

Deno.test("every command against a machine with edu", async () => {
  await using machine = await Machine.create(EDU);
  const out = await replies(machine, [
    "endianness",
    `outl 0xcf8 ${cfg(0, 0, 0)}`,
    "inl 0xcfc",
    "inw 0xcfe",
    "inb 0xcfc",
    ...EDU_SETUP,
    "readl 0xfe000000",
    "writel 0xfe000004 0x12345678",
    "readl 0xfe000004",
    "writeq 0x1000 0x1122334455667788",
    "readq 0x1000",
    "readl 0x1004",
    "readw 0x1002",
    "readb 0x1007",
    "writeb 0x1000 0x1ff",
    "readb 0x1000",
    "writew 0x2001 0xabcd",
    "read 0x2000 4",
    "write 0x3000 4 0x01020304",
    "readl 0x3000",
    "b64write 0x3000 4 BAMCAQ==",
    "b64read 0x3000 4",
    "memset 0x3000 8 0x15a",
    "read 0x3000 9",
    "memset 0x3000 0 0x11",
    "readq 0x3000",
    "b64read 0x3000 0",
    "outl 0xcf8 0x180000004", // wider than the access: truncated
    "inl 0xcf8",
    "clock_step",
    "clock_step 100",
    "clock_set 50",
    "clock_set 1000",
    "clock_step -5",
    "irq_intercept_in ioapic",
    "module_load block curl",
  ]);
  deepEqual(out, [
    "OK little",
    "OK",
    "OK 0x29c08086",
    "OK 0x29c0",
    "OK 0x0086",
    "OK",
    "OK",
    "OK",
    "OK",
    "OK 0x00000000010000ed",
    "OK",
    "OK 0x00000000edcba987",
    "OK",
    "OK 0x1122334455667788",
    "OK 0x0000000011223344",
    "OK 0x0000000000005566",
    "OK 0x0000000000000011",
    "OK",
    "OK 0x00000000000000ff",
    "OK",
    "OK 0x00cdab00",
    "OK",
    "OK 0x0000000004030201",
    "OK",
    "OK BAMCAQ==",
    "OK",
    "OK 0x5a5a5a5a5a5a5a5a00",
    "OK",
    "OK 0x5a5a5a5a5a5a5a5a",
    "OK ",
    "OK",
    "OK 0x80000004",
    "OK 0",
    "OK 100",
    "OK 100",
    "OK 1000",
    "OK 1000",
    "OK",
    "FAIL",
  ]);
  // The bulk commands reached guest RAM.
  equal(await machine.read(0x3000, 8), 0x5a5a_5a5a_5a5a_5a5an);
  equal(await machine.read(0x1000, 8), 0x1122_3344_5566_77ffn);
});

Deno.test("unassigned memory reads all-ones (QEMU 7.2 shows 0) and writes are dropped", async () => {
  await using machine = await Machine.create({});
  deepEqual(
    await replies(machine, [
      "readl 0xfe000000",
      "readq 0xf0000000",
      "read 0xfe000000 4",
      "b64read 0xfe000000 3",
      "writel 0xfe000000 0",
      "memset 0xfe000000 16 0",
      "write 0xfe000000 2 0x0000",
      "readw 0xfe000000",
    ]),
    [
      "OK 0x00000000ffffffff",
      "OK 0xffffffffffffffff",
      "OK 0xffffffff",
      "OK ////",
      "OK",
      "OK",
      "OK",
      "OK 0x000000000000ffff",
    ],
  );
});

Deno.test("bulk commands move large buffers intact", async () => {
  await using machine = await Machine.create({});
  const data = Uint8Array.from({ length: 4 << 20 }, (_, i) => (i * 2654435761) >>> 24);
  const b64 = encodeBase64(data);
  const hex = Array.from(data.subarray(0, 1 << 20), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  const out = await replies(machine, [
    `b64write 0x100000 ${data.length} ${b64}`,
    `b64read 0x100000 ${data.length}`,
    `write 0x800000 ${1 << 20} 0x${hex}`,
    `read 0x800000 ${1 << 20}`,
  ]);
  equal(out.length, 4);
  equal(out[0], "OK");
  ok(out[1] === `OK ${b64}`, "b64read returns what b64write wrote");
  equal(out[2], "OK");
  ok(out[3] === `OK 0x${hex}`, "read returns what write wrote");
});

Deno.test("memset beyond the transfer limit is allowed inside RAM only", async () => {
  await using machine = await Machine.create({});
  const ram = 256 * 1024 * 1024;
  deepEqual(
    await replies(machine, [
      "memset 0x10000 0x100000 0xa5",
      "read 0x10000 4",
      "read 0x10fffc 5",
      "memset 0xfe000000 0x2000 1",
      `memset ${ram - 0x1000} 0x2000 1`,
      "memset 0xfe000000 0x1000 1",
      `memset ${ram - 0x1000} 0x1000 0x77`,
      `readl ${ram - 4}`,
    ], { maxTransfer: 0x1000 }),
    [
      "OK",
      "OK 0xa5a5a5a5",
      "OK 0xa5a5a5a500",
      "ERR SIZE 0x2000 is too large: outside RAM the limit is 0x1000 bytes",
      "ERR SIZE 0x2000 is too large: outside RAM the limit is 0x1000 bytes",
      "OK",
      "OK",
      "OK 0x0000000077777777",
    ],
  );
});

Deno.test("clock commands use the virtual clock and fire its timers", async () => {
  await using machine = await Machine.create({ qtestClock: true });
  const fired: bigint[] = [];
  machine.clock.setTimer(500n, () => fired.push(machine.clock.now()));
  machine.clock.setTimer(2000n, () => fired.push(machine.clock.now()));
  deepEqual(
    await replies(machine, [
      "clock_step",
      "clock_step 1000",
      "clock_step",
      "clock_step",
      "clock_set 100",
      "clock_step 0",
      "clock_step -1",
      "clock_set -1",
      "clock_step 0x7fffffffffffffff",
      "clock_step 1",
      "clock_set 0x7fffffffffffffff",
      "clock_step 0x8000000000000000",
    ]),
    [
      "OK 500",
      "OK 1500",
      "OK 2000",
      "OK 2000",
      "OK 2000",
      "OK 2000",
      "OK 2000",
      "OK 2000",
      "OK 9223372036854775807",
      "OK 9223372036854775807",
      "OK 9223372036854775807",
      "ERR Invalid number '0x8000000000000000' for NS",
    ],
  );
  deepEqual(fired, [500n, 2000n]);
});

Deno.test("interrupt changes come before the reply of the access that caused them", async () => {
  await using machine = await Machine.create(EDU);
  const { lines } = await serveInput(
    machine,
    [
      ...EDU_SETUP,
      "writel 0xfe000060 1", // raised before the intercept: not reported
      "irq_intercept_in ioapic",
      "writel 0xfe000064 1", // lowered, but the reported level is already 0
      "writel 0xfe000060 2",
      "writel 0xfe000060 4", // no change
      "readl 0xfe000024",
      "writel 0xfe000064 6",
      "writel 0xfe000064 1",
      "",
    ].join("\n"),
  );
  deepEqual(lines, [
    "OK",
    "OK",
    "OK",
    "OK",
    "OK",
    "OK",
    "OK",
    "IRQ raise 20",
    "OK",
    "OK",
    "OK 0x0000000000000006",
    "IRQ lower 20",
    "OK",
    "OK",
  ]);
});

Deno.test("INTx Disable lowers the intercepted line", async () => {
  await using machine = await Machine.create(EDU);
  deepEqual(
    await replies(machine, [
      ...EDU_SETUP,
      "irq_intercept_in ioapic",
      "writel 0xfe000060 1",
      `outl 0xcf8 ${cfg(4, 0, 4)}`,
      "outw 0xcfc 0x0406",
      "outw 0xcfc 0x0006",
    ]),
    [
      "OK",
      "OK",
      "OK",
      "OK",
      "OK",
      "IRQ raise 20",
      "OK",
      "OK",
      "IRQ lower 20",
      "OK",
      "IRQ raise 20",
      "OK",
    ],
  );
});

Deno.test("the intercept outlives a session; reported levels restart at 0", async () => {
  await using machine = await Machine.create(EDU);
  const log: string[] = [];
  await using server = new QtestServer(machine, { log: (l) => log.push(l) });
  const session = async (lines: string[]) => {
    let output = "";
    await server.serve({
      readable: ReadableStream.from([new TextEncoder().encode(lines.join("\n") + "\n")]),
      writable: new WritableStream({ write: (c) => void (output += new TextDecoder().decode(c)) }),
    });
    return output.split("\n").slice(0, -1);
  };
  deepEqual(await session([...EDU_SETUP, "irq_intercept_in ioapic", "writel 0xfe000060 1"]), [
    "OK",
    "OK",
    "OK",
    "OK",
    "OK",
    "IRQ raise 20",
    "OK",
  ]);
  equal(machine.irq.lineLevel(20), true);
  deepEqual(
    await session([
      "writel 0xfe000064 1", // the line drops, but this session never saw it high
      "writel 0xfe000060 1",
      "irq_intercept_in /machine/q35/ioapic",
      "irq_intercept_in q35",
    ]),
    ["OK", "IRQ raise 20", "OK", "OK", "FAIL IRQ intercept already enabled"],
  );
  equal(log.filter((l) => / OPENED$/.test(l)).length, 2);
  equal(log.filter((l) => / CLOSED$/.test(l)).length, 2);
});

Deno.test("interrupts raised asynchronously by a device are reported", async () => {
  await using machine = await Machine.create(EDU);
  const { a, b } = connectionPair();
  await using server = new QtestServer(machine, { log: "none" });
  const serving = server.serve(a);
  const seen: string[] = [];
  {
    await using client = new QtestClient(b, { timeoutMs: 10_000, onLine: (l) => seen.push(l) });
    for (const line of [...EDU_SETUP, "irq_intercept_in ioapic"]) {
      equal(await client.command(line), "OK");
    }
    equal(await client.command("writel 0xfe000020 0x80"), "OK"); // interrupt after factorial
    equal(await client.command("writel 0xfe000008 6"), "OK");
    equal(await client.waitIrq(20, { timeoutMs: 5000 }), true);
    equal(await client.command("readl 0xfe000008"), "OK 0x00000000000002d0");
    equal(await client.command("readl 0xfe000024"), "OK 0x0000000000000001");
    equal(await client.command("writel 0xfe000064 1"), "OK");
    equal(client.irqLevel(20), false);
  }
  await serving;
  equal(seen.filter((l) => l.startsWith("IRQ")).join(","), "IRQ raise 20,IRQ lower 20");
});

Deno.test("irq_intercept resolves QOM paths like QEMU", async () => {
  await using machine = await Machine.create(EDU);
  const raise = [...EDU_SETUP, "writel 0xfe000060 1"];
  const accepted = [
    "ioapic",
    "q35/ioapic",
    "machine/q35/ioapic",
    "/machine/q35/ioapic",
    "/machine/q35/ioapic/",
    "//machine//q35/ioapic",
    "/machine/ioapic",
  ];
  for (const path of accepted) {
    deepEqual(
      await replies(machine, [`irq_intercept_in ${path}`, ...raise, "writel 0xfe000064 1"]),
      ["OK", "OK", "OK", "OK", "OK", "IRQ raise 20", "OK", "IRQ lower 20", "OK"],
      path,
    );
  }
  for (
    const path of [
      "/ioapic",
      "/q35/ioapic",
      "machine/ioapic",
      "/machine/q35/ioapic/x",
      "io",
      "ioapic2",
      "/",
      "/machine",
      "/machine/peripheral",
      "pcie.0",
    ]
  ) {
    deepEqual(await replies(machine, [`irq_intercept_in ${path}`]), ["FAIL Unknown device"], path);
    deepEqual(await replies(machine, [`irq_intercept_out ${path}`]), ["FAIL Unknown device"], path);
  }
});

Deno.test("irq_intercept_out and other devices claim the intercept like QEMU", async () => {
  await using machine = await Machine.create(EDU);
  // The I/O APIC has no gpio-outs: QEMU answers OK, intercepts nothing, and
  // a later irq_intercept_in on the same device answers OK without effect.
  deepEqual(
    await replies(machine, [
      "irq_intercept_out ioapic",
      "irq_intercept_in ioapic",
      ...EDU_SETUP,
      "writel 0xfe000060 1",
      "irq_intercept_in q35",
      "irq_intercept_out nothing",
    ]),
    [
      "OK",
      "OK",
      "OK",
      "OK",
      "OK",
      "OK",
      "OK",
      "FAIL IRQ intercept already enabled",
      "FAIL Unknown device",
    ],
  );
  deepEqual(
    await replies(machine, [
      "irq_intercept_in /machine/q35",
      "irq_intercept_in q35",
      "irq_intercept_in ioapic",
      "writel 0xfe000064 1",
      "writel 0xfe000060 1",
    ]),
    ["OK", "OK", "FAIL IRQ intercept already enabled", "OK", "OK"],
  );
});

Deno.test("set_irq_in checks its arguments and reports that it cannot drive lines", async () => {
  await using machine = await Machine.create({});
  deepEqual(
    await replies(machine, [
      "set_irq_in nowhere unnamed-gpio-in 1 1",
      "set_irq_in ioapic foo 1 1",
      "set_irq_in q35 unnamed-gpio-in 1 1",
      "set_irq_in ioapic unnamed-gpio-in 24 1",
      "set_irq_in ioapic unnamed-gpio-in -1 1",
      "set_irq_in ioapic unnamed-gpio-in 5 x",
      "set_irq_in ioapic unnamed-gpio-in 5 1",
    ]),
    [
      "FAIL Unknown device",
      "ERR Unknown GPIO list 'foo' of 'ioapic'",
      "ERR Unknown GPIO list 'unnamed-gpio-in' of 'q35'",
      "ERR Invalid NUM 24: the I/O APIC has inputs 0 to 23",
      "ERR Invalid NUM -1: the I/O APIC has inputs 0 to 23",
      "ERR Invalid number 'x' for LEVEL",
      "FAIL set_irq_in is not supported: dmaworks cannot drive interrupt lines from qtest",
    ],
  );
});

Deno.test("hostile input: every line gets one reply and the session goes on", async () => {
  await using machine = await Machine.create({});
  const enc = new TextEncoder();
  const garbage = Uint8Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== 0x0a);
  const parts: Array<string | Uint8Array> = [
    "writel 0x1000 0xcafe\n",
    "\n",
    "   \t \n",
    "\r\n",
    "readl 0x1000\r\n",
    garbage,
    "\n",
    "readl\t\t0x1000  \n",
    "readl 0x1000 0x1000\n",
    "readl 0x10000000000000000\n",
    "readl 0x\n",
    "inb 99999\n",
    "outb 0x80\n",
    "write 0 4 zz\n",
    "write 0 4 0xgg\n",
    "b64write 0 4 ====\n",
    "b64read 0 0x4000001\n",
    "read 0x1fffffffffffff 2\n",
    "memset 0 0x20000000000001 0\n",
    "clock_step 1 2\n",
    "clock_set x\n",
    "irq_intercept_in\n",
    `${"A".repeat(100_000)}\n`,
    `readl ${"9".repeat(100_000)}\n`,
    "r\u0000eadl 0x1000\n",
    new Uint8Array([0xc3, 0x28, 0x20, 0xff, 0xfe, 0x0a]),
    "readl 0x1000", // no final newline
  ];
  const bytes = parts.map((p) => (typeof p === "string" ? enc.encode(p) : p));
  const total = bytes.reduce((n, b) => n + b.length, 0);
  const all = new Uint8Array(total);
  let o = 0;
  for (const b of bytes) {
    all.set(b, o);
    o += b.length;
  }
  // Feed it in odd-sized chunks.
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 7) chunks.push(all.slice(i, i + 7));
  const { lines, output } = await serveInput(machine, chunks);
  const expected = [
    "OK",
    "ERR Empty command",
    "ERR Empty command",
    "ERR Empty command",
    "OK 0x000000000000cafe",
    /^FAIL Unknown command '\\x00\\x01.*'$/,
    "OK 0x000000000000cafe",
    "ERR Wrong number of arguments for 'readl': got 2, usage 'readl ADDR'",
    "ERR Invalid number '0x10000000000000000' for ADDR",
    "ERR Invalid number '0x' for ADDR",
    "ERR I/O port '99999' is out of range: the largest port is 0xffff",
    "ERR Wrong number of arguments for 'outb': got 1, usage 'outb ADDR VALUE'",
    "ERR invalid argument size",
    "ERR Invalid DATA '0xgg': not a hex number",
    "ERR Invalid B64_DATA '====': not padded base64",
    "ERR SIZE '0x4000001' is too large: the limit is 0x4000000 bytes",
    /^ERR Address '0x1fffffffffffff' is out of range/,
    /^ERR Address '0' is out of range/,
    "ERR Wrong number of arguments for 'clock_step': got 2, usage 'clock_step [NS]'",
    "ERR Invalid number 'x' for NS",
    "ERR Wrong number of arguments for 'irq_intercept_in': got 0, usage 'irq_intercept_in QOM-PATH'",
    `FAIL Unknown command '${"A".repeat(200)}...(100000 characters)'`,
    `ERR Invalid number '${"9".repeat(200)}...(100000 characters)' for ADDR`,
    "FAIL Unknown command 'r\\x00eadl'",
    "FAIL Unknown command '\\xc3('",
    "OK 0x000000000000cafe",
  ];
  equal(lines.length, expected.length, output.slice(0, 2000));
  expected.forEach((e, i) => {
    if (typeof e === "string") equal(lines[i], e, `line ${i}`);
    else match(lines[i]!, e, `line ${i}`);
  });
  // Every reply is printable ASCII.
  ok(/^[\x20-\x7e\n]*$/.test(output));
});

Deno.test("an over-long line is answered and skipped without buffering it", async () => {
  await using machine = await Machine.create({});
  const log: string[] = [];
  const { lines } = await serveInput(
    machine,
    ["readl 0\n", `write 0 64 0x${"ab".repeat(64)}\n`, "readb 0\n"],
    { maxLineLength: 64, log: (l) => log.push(l) },
  );
  deepEqual(lines, [
    "OK 0x0000000000000000",
    "ERR Line too long: 141 bytes, the limit is 64",
    "OK 0x0000000000000000",
  ]);
  ok(log.some((l) => /^\[R \+\d+\.\d{6}\] write 0 64 0xabab.*\.\.\.\(141 bytes\)$/.test(l)));
});

Deno.test("the log has QEMU's format", async () => {
  await using machine = await Machine.create(EDU);
  const { log } = await serveInput(
    machine,
    [
      ...EDU_SETUP,
      "irq_intercept_in ioapic",
      "writel 0xfe000060 1",
      "b64write 0 4 QUJD",
      "  readb   0 ",
      "bogus",
    ]
      .join("\n") + "\n",
  );
  const t = String.raw`\d+\.\d{6}`;
  const expected = [
    `^\\[I ${t}\\] OPENED$`,
    ...EDU_SETUP.flatMap((l) => [`^\\[R \\+${t}\\] ${l}$`, `^\\[S \\+${t}\\] OK$`]),
    `^\\[R \\+${t}\\] irq_intercept_in ioapic$`,
    `^\\[S \\+${t}\\] OK$`,
    `^\\[R \\+${t}\\] writel 0xfe000060 1$`,
    `^\\[S \\+${t}\\] IRQ raise 20$`,
    `^\\[S \\+${t}\\] OK$`,
    `^\\[R \\+${t}\\] b64write 0 4 QUJD$`,
    `^\\[S \\+${t}\\] b64write: data length mismatch \\(told 4, found 3\\)$`,
    `^\\[S \\+${t}\\] OK$`,
    `^\\[R \\+${t}\\] readb 0$`,
    `^\\[S \\+${t}\\] OK 0x0000000000000041$`,
    `^\\[R \\+${t}\\] bogus$`,
    `^\\[S \\+${t}\\] FAIL Unknown command 'bogus'$`,
    `^\\[I \\+${t}\\] CLOSED$`,
  ];
  equal(log.length, expected.length, log.join("\n"));
  expected.forEach((e, i) => match(log[i]!, new RegExp(e), `log line ${i}`));
  const times = log.map((l) => Number(/(\d+\.\d{6})/.exec(l)![1]));
  deepEqual([...times].sort((x, y) => x - y), times);
});

Deno.test("the log goes to a file, truncating it, like -qtest-log FILE", async () => {
  await using machine = await Machine.create({});
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, "old content that must go\n".repeat(10));
    {
      await using server = new QtestServer(machine, { log: path });
      await server.serve({
        readable: ReadableStream.from([new TextEncoder().encode("endianness\n")]),
        writable: new WritableStream(),
      });
    }
    const lines = (await Deno.readTextFile(path)).split("\n");
    equal(lines.length, 5);
    match(lines[0]!, /^\[I \d+\.\d{6}\] OPENED$/);
    match(lines[1]!, /^\[R \+\d+\.\d{6}\] endianness$/);
    match(lines[2]!, /^\[S \+\d+\.\d{6}\] OK little$/);
    match(lines[3]!, /^\[I \+\d+\.\d{6}\] CLOSED$/);
    equal(lines[4], "");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("a log file that cannot be opened is a clear error", async () => {
  await using machine = await Machine.create({});
  const dir = await Deno.makeTempDir();
  try {
    let error: Error | undefined;
    try {
      new QtestServer(machine, { log: dir });
    } catch (e) {
      error = e as Error;
    }
    match(error?.message ?? "", new RegExp(`^Cannot open the qtest log '${dir}': `));
  } finally {
    await Deno.remove(dir);
  }
});

/** A machine double that records accesses and can be told to fail. */
class FakeMachine implements QtestMachine {
  calls: string[] = [];
  active = 0;
  maxActive = 0;
  failWith: unknown;
  listeners: Array<(event: QtestMachineEvent) => void> = [];
  memory = { ramRunLength: () => 0 };
  clock = { now: () => 0n, step: () => 0n, set: () => 0n };
  async #access(text: string): Promise<void> {
    this.calls.push(text);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    await new Promise((resolve) => setTimeout(resolve, text.length % 3));
    this.active--;
    if (this.failWith !== undefined) throw this.failWith;
  }
  async read(address: number, size: number): Promise<bigint> {
    await this.#access(`read ${address} ${size}`);
    return BigInt(address);
  }
  async write(address: number, size: number, value: bigint): Promise<void> {
    await this.#access(`write ${address} ${size} ${value}`);
  }
  async in(port: number, size: number): Promise<number> {
    await this.#access(`in ${port} ${size}`);
    return port;
  }
  async out(port: number, size: number, value: bigint): Promise<void> {
    await this.#access(`out ${port} ${size} ${value}`);
  }
  async readMemory(address: number, length: number): Promise<Uint8Array> {
    await this.#access(`readMemory ${address} ${length}`);
    return new Uint8Array(length);
  }
  async writeMemory(address: number, data: Uint8Array): Promise<void> {
    await this.#access(`writeMemory ${address} ${data.length}`);
  }
  async fillMemory(address: number, length: number, value: number): Promise<void> {
    await this.#access(`fillMemory ${address} ${length} ${value}`);
  }
  onEvent(listener: (event: QtestMachineEvent) => void): void {
    this.listeners.push(listener);
  }
}

Deno.test("requests run strictly one after another, in order", async () => {
  const machine = new FakeMachine();
  const lines: string[] = [];
  const expected: string[] = [];
  for (let i = 0; i < 60; i++) {
    switch (i % 7) {
      case 0:
        lines.push(`readl ${i}`);
        expected.push(`read ${i} 4`);
        break;
      case 1:
        lines.push(`writeq ${i} ${i * 3}`);
        expected.push(`write ${i} 8 ${i * 3}`);
        break;
      case 2:
        lines.push(`inw ${i}`);
        expected.push(`in ${i} 2`);
        break;
      case 3:
        lines.push(`outb ${i} 1`);
        expected.push(`out ${i} 1 1`);
        break;
      case 4:
        lines.push(`read ${i} 3`);
        expected.push(`readMemory ${i} 3`);
        break;
      case 5:
        lines.push(`write ${i} 2 0x1234`);
        expected.push(`writeMemory ${i} 2`);
        break;
      default:
        lines.push(`memset ${i} 5 1`);
        expected.push(`fillMemory ${i} 5 1`);
    }
  }
  const out = await replies(machine, lines, { log: "none" });
  equal(out.length, lines.length);
  deepEqual(machine.calls, expected);
  equal(machine.maxActive, 1);
});

Deno.test("a failing machine access answers FAIL and the session goes on", async () => {
  const machine = new FakeMachine();
  const { lines } = await serveInput(machine, ["readl 8\n", "inb 1\n"], { log: "none" });
  deepEqual(lines, ["OK 0x0000000000000008", "OK 0x0001"]);
  machine.failWith = new Error("Device edu0 did not answer\nwithin 10000 ms");
  const failed = await serveInput(machine, ["readl 8\n", "outb 1 1\n"], { log: "none" });
  deepEqual(failed.lines, [
    "FAIL Device edu0 did not answer\\x0awithin 10000 ms",
    "FAIL Device edu0 did not answer\\x0awithin 10000 ms",
  ]);
  machine.failWith = "a string";
  deepEqual((await serveInput(machine, "readl 0\n", { log: "none" })).lines, ["FAIL a string"]);
  machine.failWith = undefined;
  deepEqual((await serveInput(machine, "readl 0\n", { log: "none" })).lines, [
    "OK 0x0000000000000000",
  ]);
});

Deno.test("interrupt events from a machine double are filtered and deduplicated", async () => {
  const machine = new FakeMachine();
  const { a, b } = connectionPair();
  await using server = new QtestServer(machine, { log: "none" });
  const serving = server.serve(a);
  const seen: string[] = [];
  {
    await using client = new QtestClient(b, { onLine: (l) => seen.push(l) });
    const emit = (event: QtestMachineEvent) => machine.listeners.forEach((l) => l(event));
    emit({ type: "irq", line: 3, level: true }); // before the intercept: ignored
    equal(await client.command("irq_intercept_in ioapic"), "OK");
    emit({ type: "log", line: 1, level: true });
    emit({ type: "irq", line: 3, level: true });
    emit({ type: "irq", line: 3, level: true });
    emit({ type: "irq", line: 300, level: true });
    emit({ type: "irq", line: -1, level: true });
    emit({ type: "irq", line: 0, level: false });
    emit({ type: "irq", line: 3, level: false });
    equal(await client.command("endianness"), "OK little");
  }
  await serving;
  deepEqual(seen, ["OK", "IRQ raise 3", "IRQ lower 3", "OK little"]);
});

Deno.test("serve refuses a second connection and works no more after close", async () => {
  await using machine = await Machine.create({});
  const server = new QtestServer(machine, { log: "none" });
  const { a, b } = connectionPair();
  const serving = server.serve(a);
  equal(server.serving, true);
  const other = connectionPair();
  await rejects(server.serve(other.a), /Cannot serve two qtest connections at once/);
  // The refused connection's streams were not locked.
  equal(other.a.readable.locked, false);
  equal(other.a.writable.locked, false);
  const client = new QtestClient(b);
  equal(await client.command("endianness"), "OK little");
  // close() ends the open session although its input never ended.
  await server.close();
  await serving;
  equal(server.serving, false);
  equal(a.readable.locked, false);
  await rejects(server.serve(other.a), /Cannot serve: the qtest server is closed/);
  await client.close();
});

Deno.test("a peer that stops reading or whose stream fails ends the session", async () => {
  await using machine = await Machine.create({});
  await using server = new QtestServer(machine, { log: "none" });
  let writes = 0;
  await server.serve({
    readable: ReadableStream.from(
      Array.from({ length: 100 }, () => new TextEncoder().encode("endianness\n")),
    ),
    writable: new WritableStream({
      write() {
        if (++writes > 3) throw new Error("Broken pipe");
      },
    }),
  });
  equal(writes, 4); // the session stopped at the first failed write
  await server.serve({
    readable: new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("endianness\n"));
        controller.error(new Error("Connection reset"));
      },
    }),
    writable: new WritableStream(),
  });
});

Deno.test("close() abandons replies a peer never takes", async () => {
  await using machine = await Machine.create({});
  const server = new QtestServer(machine, { log: "none" });
  const { a, b } = connectionPair();
  const serving = server.serve({
    readable: a.readable,
    writable: new WritableStream({ write: () => new Promise(() => {}) }),
  });
  const writer = b.writable.getWriter();
  await writer.write(new TextEncoder().encode("endianness\nendianness\n"));
  await new Promise((resolve) => setTimeout(resolve, 50));
  equal(server.serving, true); // stuck writing the first reply
  await server.close();
  await serving;
  equal(server.serving, false);
  writer.releaseLock();
});

Deno.test("the default 64 MiB transfer limit is usable and enforced", async () => {
  await using machine = await Machine.create({});
  await machine.fillMemory(0x100000, 64 << 20, 0xa5);
  const out = await replies(machine, [
    "b64read 0x100000 0x4000000",
    "read 0x100000 0x4000001",
    "memset 0x100000 0x8000000 0x11", // larger, but all RAM
    "readl 0x80fffc",
  ]);
  equal(out.length, 4);
  equal(out[0]!.length, 3 + Math.ceil((64 << 20) / 3) * 4);
  ok(out[0]!.startsWith("OK paWl") && out[0]!.endsWith("paWlpQ=="));
  equal(out[1], "ERR SIZE '0x4000001' is too large: the limit is 0x4000000 bytes");
  equal(out[2], "OK");
  equal(out[3], "OK 0x0000000011111111");
});
