import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  decodeBase64,
  encodeBase64,
  escapeText,
  formatBase64Reply,
  formatHexReply,
  formatInReply,
  formatLogTime,
  formatReadReply,
  parseInt64,
  parseRequest,
  parseUint64,
  QTEST_MAX_TRANSFER,
  type QtestRequest,
  splitWords,
} from "../../src/qtest/qtest_protocol.ts";

const U64_MAX = 0xffff_ffff_ffff_ffffn;

function replyOf(request: QtestRequest): string {
  if (request.kind !== "reply") throw new Error(`Expected a reply, got ${request.kind}`);
  return request.reply;
}

Deno.test("parseUint64 follows C strtoull with base 0 and a full-string check", () => {
  const cases: Array<[string, bigint | undefined]> = [
    ["0", 0n],
    ["00", 0n],
    ["-0", 0n],
    ["+0", 0n],
    ["42", 42n],
    ["+42", 42n],
    ["0x2a", 42n],
    ["0X2A", 42n],
    ["0x2A", 42n],
    ["052", 42n],
    ["0x0000000000000000000000000000000000000000001", 1n], // leading zeros never overflow
    ["000000000000000000000000000000000000000000010", 8n],
    ["18446744073709551615", U64_MAX],
    ["0xffffffffffffffff", U64_MAX],
    ["01777777777777777777777", U64_MAX],
    ["-1", U64_MAX], // C negates modulo 2^64
    ["-0x10", U64_MAX - 15n],
    ["-18446744073709551615", 1n],
    [" 7", 7n], // strtoull skips leading white space
    ["\t\v\f\r7", 7n],
    // invalid
    ["", undefined],
    [" ", undefined],
    ["-", undefined],
    ["+", undefined],
    ["--1", undefined],
    ["+-1", undefined],
    ["0x", undefined], // "0" then garbage
    ["0xg", undefined],
    ["08", undefined], // octal
    ["09", undefined],
    ["1e3", undefined],
    ["1.0", undefined],
    ["12 ", undefined], // trailing characters
    ["12\r", undefined],
    ["0x1g", undefined],
    ["zz", undefined],
    ["\u0661", undefined], // Arabic-Indic digit one
    ["18446744073709551616", undefined], // ERANGE
    ["0x10000000000000000", undefined],
    ["-18446744073709551616", undefined],
    ["02000000000000000000000", undefined],
    ["1".repeat(100), undefined],
  ];
  for (const [text, expected] of cases) {
    equal(parseUint64(text), expected, JSON.stringify(text));
  }
});

Deno.test("parseUint64 rejects a megabyte of digits quickly", () => {
  const t0 = performance.now();
  equal(parseUint64("9".repeat(1 << 20)), undefined);
  equal(parseUint64(`0x${"0".repeat(1 << 20)}1`), 1n);
  ok(performance.now() - t0 < 2000);
});

Deno.test("parseInt64 follows C strtoll", () => {
  const cases: Array<[string, bigint | undefined]> = [
    ["0", 0n],
    ["-5", -5n],
    ["+5", 5n],
    ["0x10", 16n],
    ["-010", -8n],
    ["9223372036854775807", (1n << 63n) - 1n],
    ["-9223372036854775808", -(1n << 63n)],
    ["-0x8000000000000000", -(1n << 63n)],
    ["9223372036854775808", undefined],
    ["-9223372036854775809", undefined],
    ["0xffffffffffffffff", undefined],
    ["", undefined],
    ["5x", undefined],
  ];
  for (const [text, expected] of cases) equal(parseInt64(text), expected, text);
});

Deno.test("reply formats match QEMU's printf formats", () => {
  equal(formatInReply(0), "OK 0x0000");
  equal(formatInReply(0x80), "OK 0x0080");
  equal(formatInReply(0xffff), "OK 0xffff");
  equal(formatInReply(0x10000), "OK 0x10000");
  equal(formatInReply(0x29c08086), "OK 0x29c08086");
  equal(formatInReply(0xffffffff), "OK 0xffffffff");
  equal(formatReadReply(0n), "OK 0x0000000000000000");
  equal(formatReadReply(0xabn), "OK 0x00000000000000ab");
  equal(formatReadReply(U64_MAX), "OK 0xffffffffffffffff");
  equal(formatReadReply(-1n), "OK 0xffffffffffffffff");
  equal(formatHexReply(new Uint8Array(0)), "OK 0x");
  equal(formatHexReply(new Uint8Array([0, 1, 0x7f, 0x80, 0xfe, 0xff])), "OK 0x00017f80feff");
  equal(formatBase64Reply(new Uint8Array(0)), "OK ");
  equal(formatBase64Reply(new Uint8Array([0x41, 0x42, 0x43, 0x44])), "OK QUJDRA==");
  equal(formatLogTime(0), "0.000000");
  equal(formatLogTime(1.5), "1.500000");
  equal(formatLogTime(12.3456789), "12.345679");
});

Deno.test("base64 round-trips and matches btoa for every length up to 64", () => {
  for (let n = 0; n <= 64; n++) {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 73 + n * 31) & 0xff);
    const text = encodeBase64(data);
    equal(text, btoa(String.fromCharCode(...data)));
    deepEqual(decodeBase64(text), data);
  }
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  deepEqual(decodeBase64(encodeBase64(all)), all);
});

Deno.test("decodeBase64 rejects what is not padded standard base64", () => {
  for (
    const bad of [
      "QUJ",
      "Q",
      "QU",
      "QUJDR",
      "QU!D",
      "QU D",
      "QU-D",
      "QU_D",
      "=QUJ",
      "Q=JD",
      "Q===",
      "QUJD\u00e9A==",
      "QUI=QUI=",
    ]
  ) {
    equal(decodeBase64(bad), undefined, bad);
  }
  deepEqual(decodeBase64(""), new Uint8Array(0));
  deepEqual(decodeBase64("QQ=="), new Uint8Array([0x41]));
  // Non-zero unused bits are ignored, as GLib does.
  deepEqual(decodeBase64("QR=="), new Uint8Array([0x41]));
});

Deno.test("escapeText keeps printable ASCII and escapes the rest", () => {
  equal(escapeText("outb 0x80 'x' \\"), "outb 0x80 'x' \\");
  equal(escapeText("\u0000\u001f\u007f\u0080\u00ff"), "\\x00\\x1f\\x7f\\x80\\xff");
  equal(escapeText("\u20ac"), "\\u{20ac}");
  equal(escapeText("x".repeat(300)), `${"x".repeat(200)}...(300 characters)`);
  equal(escapeText("x".repeat(300), Infinity), "x".repeat(300));
});

Deno.test("splitWords collapses spaces and tabs and strips one trailing CR", () => {
  deepEqual(splitWords("readl 0x10"), ["readl", "0x10"]);
  deepEqual(splitWords("readl  \t 0x10"), ["readl", "0x10"]);
  deepEqual(splitWords("\t readl 0x10 \t"), ["readl", "0x10"]);
  deepEqual(splitWords("readl 0x10\r"), ["readl", "0x10"]);
  deepEqual(splitWords("readl 0x10 \r"), ["readl", "0x10"]);
  deepEqual(splitWords("readl 0x10\r\r"), ["readl", "0x10\r"]);
  deepEqual(splitWords("read\rl 0"), ["read\rl", "0"]);
  deepEqual(splitWords(""), []);
  deepEqual(splitWords("\r"), []);
  deepEqual(splitWords(" \t "), []);
});

Deno.test("port commands parse, truncate VALUE like a C cast, and bound ADDR", () => {
  deepEqual(parseRequest("outb 0x80 0x1ff"), { kind: "out", size: 1, port: 0x80, value: 0xffn });
  deepEqual(parseRequest("outw 0x80 -1"), { kind: "out", size: 2, port: 0x80, value: 0xffffn });
  deepEqual(parseRequest("outl 0xcf8 0x180000000"), {
    kind: "out",
    size: 4,
    port: 0xcf8,
    value: 0x8000_0000n,
  });
  deepEqual(parseRequest("inb 0xffff"), { kind: "in", size: 1, port: 0xffff });
  deepEqual(parseRequest("inw 0"), { kind: "in", size: 2, port: 0 });
  deepEqual(parseRequest("inl 3320"), { kind: "in", size: 4, port: 3320 });
  equal(
    replyOf(parseRequest("inb 0x10000")),
    "ERR I/O port '0x10000' is out of range: the largest port is 0xffff",
  );
  equal(
    replyOf(parseRequest("outl -1 0")),
    "ERR I/O port '-1' is out of range: the largest port is 0xffff",
  );
  equal(replyOf(parseRequest("outb 0x80 zz")), "ERR Invalid number 'zz' for VALUE");
  equal(replyOf(parseRequest("inl 0xcfcg")), "ERR Invalid number '0xcfcg' for ADDR");
});

Deno.test("memory commands parse and check ADDR + SIZE against 2^53", () => {
  deepEqual(parseRequest("writeb 0x1000 0x1ff"), {
    kind: "write",
    size: 1,
    address: 0x1000,
    value: 0xffn,
  });
  deepEqual(parseRequest("writew 1 0x12345"), {
    kind: "write",
    size: 2,
    address: 1,
    value: 0x2345n,
  });
  deepEqual(parseRequest("writel 2 -1"), {
    kind: "write",
    size: 4,
    address: 2,
    value: 0xffff_ffffn,
  });
  deepEqual(parseRequest("writeq 3 -1"), { kind: "write", size: 8, address: 3, value: U64_MAX });
  deepEqual(parseRequest("readb 0"), { kind: "read", size: 1, address: 0 });
  deepEqual(parseRequest("readw 0"), { kind: "read", size: 2, address: 0 });
  deepEqual(parseRequest("readl 0"), { kind: "read", size: 4, address: 0 });
  deepEqual(parseRequest("readq 0x1ffffffffffff8"), {
    kind: "read",
    size: 8,
    address: 2 ** 53 - 8,
  });
  deepEqual(parseRequest("readb 0x1fffffffffffff"), {
    kind: "read",
    size: 1,
    address: 2 ** 53 - 1,
  });
  for (
    const line of [
      "readq 0x1ffffffffffff9",
      "readb 0x20000000000000",
      "writew -1 0",
      "readl 0xffffffffffffffff",
    ]
  ) {
    match(
      replyOf(parseRequest(line)),
      /^ERR Address '.*' is out of range: ADDR \+ SIZE must not exceed 2\^53/,
      line,
    );
  }
});

Deno.test("read and b64read check SIZE", () => {
  deepEqual(parseRequest("read 0x1000 16"), {
    kind: "memread",
    address: 0x1000,
    length: 16,
    encoding: "hex",
  });
  deepEqual(parseRequest("b64read 0x1000 0"), {
    kind: "memread",
    address: 0x1000,
    length: 0,
    encoding: "base64",
  });
  equal(replyOf(parseRequest("read 0x1000 0")), "ERR SIZE must not be 0 for 'read'");
  deepEqual(parseRequest(`read 0 ${QTEST_MAX_TRANSFER}`), {
    kind: "memread",
    address: 0,
    length: QTEST_MAX_TRANSFER,
    encoding: "hex",
  });
  equal(
    replyOf(parseRequest(`b64read 0 ${QTEST_MAX_TRANSFER + 1}`)),
    "ERR SIZE '67108865' is too large: the limit is 0x4000000 bytes",
  );
  equal(
    replyOf(parseRequest("read 0 17", { maxTransfer: 16 })),
    "ERR SIZE '17' is too large: the limit is 0x10 bytes",
  );
  match(replyOf(parseRequest("read 0x1ffffffffffff0 0x20")), /^ERR Address/);
  equal(
    replyOf(parseRequest("read 0 -1")),
    "ERR SIZE '-1' is too large: the limit is 0x4000000 bytes",
  );
  equal(replyOf(parseRequest("read x 1")), "ERR Invalid number 'x' for ADDR");
  equal(replyOf(parseRequest("read 0 y")), "ERR Invalid number 'y' for SIZE");
});

Deno.test("write decodes hex DATA, zero-fills it, and rejects malformed DATA", () => {
  const data = (line: string) => {
    const r = parseRequest(line);
    if (r.kind !== "memwrite") throw new Error(`Not a write: ${JSON.stringify(r)}`);
    return [...r.data];
  };
  deepEqual(data("write 0 4 0x11223344"), [0x11, 0x22, 0x33, 0x44]);
  deepEqual(data("write 0 4 0X11AaBb"), [0x11, 0xaa, 0xbb, 0]); // zero-filled
  deepEqual(data("write 0 2 0x1122334455"), [0x11, 0x22]); // extra data ignored, as in QEMU
  deepEqual(data("write 0 0 0x11"), []);
  // QEMU's own answer when DATA is shorter than 3 characters.
  for (const short of ["0x", "0", "ab", "x"]) {
    equal(replyOf(parseRequest(`write 0 4 ${short}`)), "ERR invalid argument size", short);
  }
  equal(replyOf(parseRequest("write 0 4 1122")), "ERR Invalid DATA '1122': must start with 0x");
  equal(
    replyOf(parseRequest("write 0 4 0x123")),
    "ERR Invalid DATA '0x123': odd number of hex digits",
  );
  equal(replyOf(parseRequest("write 0 4 0x11zz")), "ERR Invalid DATA '0x11zz': not a hex number");
  equal(replyOf(parseRequest("write 0 1 0x11zz")), "ERR Invalid DATA '0x11zz': not a hex number");
  equal(
    replyOf(parseRequest("write 0 4 0x-1")),
    "ERR Invalid DATA '0x-1': not a hex number",
  );
  equal(replyOf(parseRequest("write 0 2 0x+011")), "ERR Invalid DATA '0x+011': not a hex number");
  equal(
    replyOf(parseRequest("write 0 5 0x11", { maxTransfer: 4 })),
    "ERR SIZE '5' is too large: the limit is 0x4 bytes",
  );
});

Deno.test("b64write decodes, notes length mismatches like QEMU, and zero-fills", () => {
  deepEqual(parseRequest("b64write 0x10 3 QUJD"), {
    kind: "memwrite",
    address: 0x10,
    data: new Uint8Array([0x41, 0x42, 0x43]),
  });
  deepEqual(parseRequest("b64write 0x10 4 QUJD"), {
    kind: "memwrite",
    address: 0x10,
    data: new Uint8Array([0x41, 0x42, 0x43, 0]),
    note: "b64write: data length mismatch (told 4, found 3)",
  });
  deepEqual(parseRequest("b64write 0x10 2 QUJDRA=="), {
    kind: "memwrite",
    address: 0x10,
    data: new Uint8Array([0x41, 0x42]),
    note: "b64write: data length mismatch (told 2, found 4)",
  });
  equal(replyOf(parseRequest("b64write 0 4 QU")), "ERR invalid argument size");
  equal(replyOf(parseRequest("b64write 0 4 QUJ")), "ERR Invalid B64_DATA 'QUJ': not padded base64");
  equal(
    replyOf(parseRequest("b64write 0 4 QU!D")),
    "ERR Invalid B64_DATA 'QU!D': not padded base64",
  );
});

Deno.test("memset takes the low byte of VALUE and allows SIZE 0", () => {
  deepEqual(parseRequest("memset 0x1000 16 0x1ab"), {
    kind: "memset",
    address: 0x1000,
    length: 16,
    value: 0xab,
  });
  deepEqual(parseRequest("memset 0x1000 0 -1"), {
    kind: "memset",
    address: 0x1000,
    length: 0,
    value: 0xff,
  });
  // Not capped here: the server allows large fills inside RAM.
  deepEqual(parseRequest("memset 0 0x100000000 0"), {
    kind: "memset",
    address: 0,
    length: 2 ** 32,
    value: 0,
  });
  match(replyOf(parseRequest("memset 0 0x20000000000001 0")), /^ERR Address '0' is out of range/);
  match(replyOf(parseRequest("memset 0 -1 0")), /^ERR Address '0' is out of range/);
  equal(replyOf(parseRequest("memset 0 1 1x")), "ERR Invalid number '1x' for VALUE");
});

Deno.test("clock, interrupt, endianness and module commands parse", () => {
  deepEqual(parseRequest("clock_step"), { kind: "clock_step" });
  deepEqual(parseRequest("clock_step 100"), { kind: "clock_step", ns: 100n });
  deepEqual(parseRequest("clock_step -5"), { kind: "clock_step", ns: -5n });
  deepEqual(parseRequest("clock_set 0x10"), { kind: "clock_set", ns: 16n });
  equal(
    replyOf(parseRequest("clock_step 0xffffffffffffffff")),
    "ERR Invalid number '0xffffffffffffffff' for NS",
  );
  equal(
    replyOf(parseRequest("clock_set")),
    "ERR Wrong number of arguments for 'clock_set': got 0, usage 'clock_set NS'",
  );
  deepEqual(parseRequest("irq_intercept_in ioapic"), {
    kind: "irq_intercept",
    direction: "in",
    path: "ioapic",
  });
  deepEqual(parseRequest("irq_intercept_out /machine/q35"), {
    kind: "irq_intercept",
    direction: "out",
    path: "/machine/q35",
  });
  deepEqual(parseRequest("set_irq_in ioapic unnamed-gpio-in 5 -1"), {
    kind: "set_irq_in",
    path: "ioapic",
    name: "unnamed-gpio-in",
    pin: 5,
    level: -1,
  });
  equal(
    replyOf(parseRequest("set_irq_in ioapic unnamed-gpio-in 0x80000000 1")),
    "ERR Invalid number '0x80000000' for NUM",
  );
  equal(replyOf(parseRequest("endianness")), "OK little");
  equal(replyOf(parseRequest("module_load block curl")), "FAIL");
});

Deno.test("unknown commands get QEMU's FAIL reply, with garbage escaped", () => {
  equal(replyOf(parseRequest("frobnicate 1 2")), "FAIL Unknown command 'frobnicate'");
  equal(replyOf(parseRequest("READL 0")), "FAIL Unknown command 'READL'");
  equal(replyOf(parseRequest("\u0000\u00ff\u0007")), "FAIL Unknown command '\\x00\\xff\\x07'");
  equal(
    replyOf(parseRequest("y".repeat(1000))),
    `FAIL Unknown command '${"y".repeat(200)}...(1000 characters)'`,
  );
});

Deno.test("every command rejects too few and too many arguments", () => {
  const usage: Record<string, [number, number, string]> = {
    outb: [2, 2, "outb ADDR VALUE"],
    outw: [2, 2, "outw ADDR VALUE"],
    outl: [2, 2, "outl ADDR VALUE"],
    inb: [1, 1, "inb ADDR"],
    inw: [1, 1, "inw ADDR"],
    inl: [1, 1, "inl ADDR"],
    writeb: [2, 2, "writeb ADDR VALUE"],
    writew: [2, 2, "writew ADDR VALUE"],
    writel: [2, 2, "writel ADDR VALUE"],
    writeq: [2, 2, "writeq ADDR VALUE"],
    readb: [1, 1, "readb ADDR"],
    readw: [1, 1, "readw ADDR"],
    readl: [1, 1, "readl ADDR"],
    readq: [1, 1, "readq ADDR"],
    read: [2, 2, "read ADDR SIZE"],
    b64read: [2, 2, "b64read ADDR SIZE"],
    write: [3, 3, "write ADDR SIZE DATA"],
    b64write: [3, 3, "b64write ADDR SIZE B64_DATA"],
    memset: [3, 3, "memset ADDR SIZE VALUE"],
    endianness: [0, 0, "endianness"],
    clock_step: [0, 1, "clock_step [NS]"],
    clock_set: [1, 1, "clock_set NS"],
    irq_intercept_in: [1, 1, "irq_intercept_in QOM-PATH"],
    irq_intercept_out: [1, 1, "irq_intercept_out QOM-PATH"],
    set_irq_in: [4, 4, "set_irq_in QOM-PATH NAME NUM LEVEL"],
    module_load: [2, 2, "module_load PREFIX NAME"],
  };
  for (const [command, [min, max, text]] of Object.entries(usage)) {
    for (const n of [min - 1, max + 1]) {
      if (n < 0) continue;
      const line = [command, ...Array.from({ length: n }, () => "1")].join(" ");
      equal(
        replyOf(parseRequest(line)),
        `ERR Wrong number of arguments for '${command}': got ${n}, usage '${text}'`,
        line,
      );
    }
    const valid = [command, ...Array.from({ length: min }, () => "1")].join(" ");
    const request = parseRequest(valid);
    ok(request.kind !== "reply" || !request.reply.startsWith("ERR Wrong number"), valid);
  }
});

Deno.test("blank lines and CR LF endings", () => {
  equal(replyOf(parseRequest("")), "ERR Empty command");
  equal(replyOf(parseRequest("  \t ")), "ERR Empty command");
  equal(replyOf(parseRequest("\r")), "ERR Empty command");
  deepEqual(parseRequest("readl 0x10\r"), { kind: "read", size: 4, address: 0x10 });
  deepEqual(parseRequest("\treadl\t\t0x10  "), { kind: "read", size: 4, address: 0x10 });
});
