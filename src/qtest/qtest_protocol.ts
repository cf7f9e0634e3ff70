/**
 * QEMU's qtest text protocol, without I/O: number parsing with C `strtoull`
 * semantics, request parsing with hostile-input checks, and the reply
 * formats of QEMU's `softmmu/qtest.c`, byte for byte.
 *
 * Everything here is a pure function. The server (`qtest_server.ts`) runs the
 * requests this module parses against a machine.
 *
 * @module
 */

/**
 * The largest SIZE that `read`, `b64read`, `write`, `b64write` and `memset` accept (64 MiB).
 *
 * @example
 * ```ts
 * import { parseRequest, QTEST_MAX_TRANSFER } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseRequest(`read 0 ${QTEST_MAX_TRANSFER}`).kind, "memread");
 * equal(parseRequest(`read 0 ${QTEST_MAX_TRANSFER + 1}`).kind, "reply"); // an ERR reply
 * ```
 */
export const QTEST_MAX_TRANSFER: number = 64 * 1024 * 1024;

/** One past the largest address dmaworks represents exactly: ADDR + SIZE must not exceed it. */
const QTEST_ADDRESS_LIMIT = 2 ** 53;

/** The largest I/O port. */
const QTEST_MAX_PORT = 0xffff;

/** Quoted input echoed in replies and the log is cut after this many characters. */
const QTEST_ECHO_LIMIT = 200;

const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const INT32_MAX = 2n ** 31n - 1n;
const INT32_MIN = -(2n ** 31n);

/** Characters C `isspace` accepts in the C locale. */
function isCSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d);
}

function digitValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x7a) return code - 0x61 + 10;
  if (code >= 0x41 && code <= 0x5a) return code - 0x41 + 10;
  return 99;
}

/**
 * The magnitude and sign of a C integer literal parsed like `strtoull` /
 * `strtoll` with base 0 and no end pointer: optional leading white space, an
 * optional sign, then `0x` hex, `0` octal or decimal digits, and nothing
 * after them.
 */
function parseCInteger(text: string): { negative: boolean; magnitude: bigint } | undefined {
  let i = 0;
  while (i < text.length && isCSpace(text.charCodeAt(i))) i++;
  let negative = false;
  const sign = text.charCodeAt(i);
  if (sign === 0x2b || sign === 0x2d) {
    negative = sign === 0x2d;
    i++;
  }
  let base = 10;
  if (text.charCodeAt(i) === 0x30) {
    const x = text.charCodeAt(i + 1);
    // "0x" counts as a prefix only when a hex digit follows; otherwise the
    // "0" is the number and the "x" is trailing garbage, as in glibc.
    if ((x === 0x78 || x === 0x58) && digitValue(text.charCodeAt(i + 2)) < 16) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  const start = i;
  let magnitude = 0n;
  const b = BigInt(base);
  for (; i < text.length; i++) {
    const d = digitValue(text.charCodeAt(i));
    if (d >= base) return undefined;
    magnitude = magnitude * b + BigInt(d);
    // Out of range (ERANGE) however it continues; stopping here also keeps
    // a megabyte of digits from costing quadratic time.
    if (magnitude > UINT64_MAX) return undefined;
  }
  if (i === start) return undefined;
  return { negative, magnitude };
}

/**
 * Parses an unsigned 64-bit number the way QEMU's qtest does
 * (`qemu_strtou64`, that is C `strtoull` with base 0 and the whole string
 * consumed): `0x` hex, leading-`0` octal, otherwise decimal. A leading `-`
 * negates modulo 2^64, as C does.
 *
 * @param text The number as written.
 * @returns The value, or `undefined` when the text is not a number, has
 * trailing characters or does not fit in 64 bits.
 *
 * @example
 * ```ts
 * import { parseUint64 } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseUint64("0x10"), 16n);
 * equal(parseUint64("010"), 8n);
 * equal(parseUint64("-1"), 0xffff_ffff_ffff_ffffn);
 * equal(parseUint64("0x"), undefined); // "0" followed by garbage
 * equal(parseUint64("12ab"), undefined);
 * equal(parseUint64("0x10000000000000000"), undefined);
 * ```
 */
export function parseUint64(text: string): bigint | undefined {
  const n = parseCInteger(text);
  if (!n || n.magnitude > UINT64_MAX) return undefined;
  return n.negative ? (UINT64_MAX + 1n - n.magnitude) & UINT64_MAX : n.magnitude;
}

/**
 * Parses a signed 64-bit number like QEMU's `qemu_strtoi64` (C `strtoll`,
 * base 0, the whole string consumed).
 *
 * @param text The number as written.
 * @returns The value, or `undefined` when the text is not a number, has
 * trailing characters or lies outside −2^63 … 2^63−1.
 *
 * @example
 * ```ts
 * import { parseInt64 } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(parseInt64("-5"), -5n);
 * equal(parseInt64("0x7fffffffffffffff"), 0x7fff_ffff_ffff_ffffn);
 * equal(parseInt64("0x8000000000000000"), undefined);
 * ```
 */
export function parseInt64(text: string): bigint | undefined {
  const n = parseCInteger(text);
  if (!n) return undefined;
  const value = n.negative ? -n.magnitude : n.magnitude;
  return value < INT64_MIN || value > INT64_MAX ? undefined : value;
}

/**
 * Makes text safe to quote in a one-line reply or log entry: printable ASCII
 * stays as it is (so QEMU's echoes stay byte-identical), every other
 * character becomes `\xNN` (`\u{…}` above 0xff), and text longer than
 * `limit` characters is cut with a note of its full length.
 *
 * @param text The text (bytes decoded one character per byte).
 * @param limit The most characters to keep (default 200).
 * @returns The escaped text.
 *
 * @example
 * ```ts
 * import { escapeText } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(escapeText("readl"), "readl");
 * equal(escapeText("a\u0000\u00ff"), "a\\x00\\xff");
 * equal(escapeText("abcdef", 3), "abc...(6 characters)");
 * ```
 */
export function escapeText(text: string, limit: number = QTEST_ECHO_LIMIT): string {
  const cut = text.length > limit ? text.slice(0, limit) : text;
  let out = cut;
  if (/[^\x20-\x7e]/.test(cut)) {
    out = "";
    for (const ch of cut) {
      const code = ch.codePointAt(0)!;
      if (code >= 0x20 && code <= 0x7e) out += ch;
      else if (code <= 0xff) out += `\\x${code.toString(16).padStart(2, "0")}`;
      else out += `\\u{${code.toString(16)}}`;
    }
  }
  return text.length > limit ? `${out}...(${text.length} characters)` : out;
}

/**
 * Splits a request line into words: drops one trailing carriage return, then
 * splits at runs of spaces and tabs, ignoring leading and trailing ones.
 *
 * @param line The line without its newline.
 * @returns The words (empty for a blank line).
 *
 * @example
 * ```ts
 * import { splitWords } from "./qtest_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(splitWords("  outb\t0x80   1 \r"), ["outb", "0x80", "1"]);
 * deepEqual(splitWords(""), []);
 * ```
 */
export function splitWords(line: string): string[] {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  const words = text.split(/[ \t]+/);
  if (words[0] === "") words.shift();
  if (words.at(-1) === "") words.pop();
  return words;
}

/**
 * Formats the reply to `inb`, `inw` and `inl`: QEMU's `OK 0x%04x`.
 *
 * @param value The value read (0 … 0xffffffff).
 * @returns The reply line without its newline.
 *
 * @example
 * ```ts
 * import { formatInReply } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatInReply(0x80), "OK 0x0080");
 * equal(formatInReply(0x29c08086), "OK 0x29c08086");
 * ```
 */
export function formatInReply(value: number): string {
  return `OK 0x${(value >>> 0).toString(16).padStart(4, "0")}`;
}

/**
 * Formats the reply to `readb` … `readq`: QEMU's `OK 0x%016" PRIx64`.
 *
 * @param value The value read.
 * @returns The reply line without its newline.
 *
 * @example
 * ```ts
 * import { formatReadReply } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatReadReply(0xffn), "OK 0x00000000000000ff");
 * ```
 */
export function formatReadReply(value: bigint): string {
  return `OK 0x${BigInt.asUintN(64, value).toString(16).padStart(16, "0")}`;
}

const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");
const ASCII = new TextDecoder();

/**
 * Formats the reply to `read`: `OK 0x` and two lower-case hex digits per
 * byte.
 *
 * @param data The bytes read.
 * @returns The reply line without its newline.
 *
 * @example
 * ```ts
 * import { formatHexReply } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatHexReply(new Uint8Array([0x0a, 0xff])), "OK 0x0aff");
 * ```
 */
export function formatHexReply(data: Uint8Array): string {
  const out = new Uint8Array(5 + 2 * data.length);
  out.set([0x4f, 0x4b, 0x20, 0x30, 0x78]); // "OK 0x"
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    out[5 + 2 * i] = HEX_DIGITS[b >> 4]!;
    out[6 + 2 * i] = HEX_DIGITS[b & 15]!;
  }
  return ASCII.decode(out);
}

const B64_ALPHABET = new TextEncoder().encode(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
);
const B64_VALUES = new Int8Array(128).fill(-1);
B64_ALPHABET.forEach((c, i) => (B64_VALUES[c] = i));

/**
 * Encodes bytes as standard base64 with padding, as GLib's
 * `g_base64_encode` does (no line breaks).
 *
 * @param data The bytes.
 * @returns The base64 text.
 *
 * @example
 * ```ts
 * import { encodeBase64 } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(encodeBase64(new TextEncoder().encode("ABC")), "QUJD");
 * equal(encodeBase64(new Uint8Array([0])), "AA==");
 * equal(encodeBase64(new Uint8Array(0)), "");
 * ```
 */
export function encodeBase64(data: Uint8Array): string {
  const out = new Uint8Array(Math.ceil(data.length / 3) * 4);
  let o = 0;
  let i = 0;
  for (; i + 2 < data.length; i += 3) {
    const v = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
    out[o++] = B64_ALPHABET[v >> 18]!;
    out[o++] = B64_ALPHABET[(v >> 12) & 63]!;
    out[o++] = B64_ALPHABET[(v >> 6) & 63]!;
    out[o++] = B64_ALPHABET[v & 63]!;
  }
  const left = data.length - i;
  if (left > 0) {
    const v = (data[i]! << 16) | ((left > 1 ? data[i + 1]! : 0) << 8);
    out[o++] = B64_ALPHABET[v >> 18]!;
    out[o++] = B64_ALPHABET[(v >> 12) & 63]!;
    out[o++] = left > 1 ? B64_ALPHABET[(v >> 6) & 63]! : 0x3d;
    out[o++] = 0x3d;
  }
  return ASCII.decode(out);
}

/**
 * Decodes standard, padded base64 (what GLib's `g_base64_encode` and
 * libqtest produce). The length must be a multiple of 4 and `=` may appear
 * only as one or two final padding characters; any other character makes the
 * text invalid. (GLib silently skips invalid characters and drops an
 * unpadded final group, after which QEMU writes leftover bytes of the
 * request; dmaworks reports such input instead.)
 *
 * @param text The base64 text.
 * @returns The bytes, or `undefined` when the text is not valid padded base64.
 *
 * @example
 * ```ts
 * import { decodeBase64 } from "./qtest_protocol.ts";
 * import { deepEqual, equal } from "node:assert/strict";
 * deepEqual(decodeBase64("QUJD"), new TextEncoder().encode("ABC"));
 * deepEqual(decodeBase64("QUI="), new TextEncoder().encode("AB"));
 * equal(decodeBase64("QUI"), undefined); // unpadded
 * equal(decodeBase64("QU!D"), undefined);
 * equal(decodeBase64("Q==="), undefined);
 * ```
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined;
  let end = text.length;
  if (text.charCodeAt(end - 1) === 0x3d) end--;
  if (text.charCodeAt(end - 1) === 0x3d) end--;
  if (end % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? B64_VALUES[c]! : -1;
    if (v < 0) return undefined;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/**
 * Formats the reply to `b64read`: `OK ` and the base64 text (QEMU answers
 * `OK ` with a trailing space for SIZE 0).
 *
 * @param data The bytes read.
 * @returns The reply line without its newline.
 *
 * @example
 * ```ts
 * import { formatBase64Reply } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatBase64Reply(new Uint8Array(3)), "OK AAAA");
 * equal(formatBase64Reply(new Uint8Array(0)), "OK ");
 * ```
 */
export function formatBase64Reply(data: Uint8Array): string {
  return `OK ${encodeBase64(data)}`;
}

/**
 * Formats a time for the qtest log: seconds with six decimals, like C's
 * `%.6f`.
 *
 * @param seconds Seconds since the session opened.
 * @returns The formatted time.
 *
 * @example
 * ```ts
 * import { formatLogTime } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatLogTime(0.0176104), "0.017610");
 * ```
 */
export function formatLogTime(seconds: number): string {
  return Math.max(0, seconds).toFixed(6);
}

type PortSize = 1 | 2 | 4;
type MemorySize = 1 | 2 | 4 | 8;

/**
 * A parsed qtest request. Requests the protocol layer answers by itself
 * (malformed input, unknown commands, `endianness`, `module_load`) come back
 * as `{ kind: "reply" }`.
 *
 * @example
 * ```ts
 * import { parseRequest, type QtestRequest } from "./qtest_protocol.ts";
 * import { equal } from "node:assert/strict";
 * function describe(request: QtestRequest): string {
 *   switch (request.kind) {
 *     case "read":
 *       return `read ${request.size} bytes at ${request.address}`;
 *     case "reply":
 *       return `answer ${request.reply}`;
 *     default:
 *       return request.kind;
 *   }
 * }
 * equal(describe(parseRequest("readw 0x10")), "read 2 bytes at 16");
 * equal(describe(parseRequest("endianness")), "answer OK little");
 * ```
 */
export type QtestRequest =
  | {
    /** `outb`, `outw`, `outl`. */
    readonly kind: "out";
    /** Access width in bytes. */
    readonly size: 1 | 2 | 4;
    /** I/O port, at most 0xffff. */
    readonly port: number;
    /** The value, already truncated to the access width. */
    readonly value: bigint;
  }
  | {
    /** `inb`, `inw`, `inl`. */
    readonly kind: "in";
    /** Access width in bytes. */
    readonly size: 1 | 2 | 4;
    /** I/O port, at most 0xffff. */
    readonly port: number;
  }
  | {
    /** `writeb` … `writeq`. */
    readonly kind: "write";
    /** Access width in bytes. */
    readonly size: 1 | 2 | 4 | 8;
    /** Physical address; `address + size` ≤ 2^53. */
    readonly address: number;
    /** The value, already truncated to the access width. */
    readonly value: bigint;
  }
  | {
    /** `readb` … `readq`. */
    readonly kind: "read";
    /** Access width in bytes. */
    readonly size: 1 | 2 | 4 | 8;
    /** Physical address; `address + size` ≤ 2^53. */
    readonly address: number;
  }
  | {
    /** `read` (hex reply) and `b64read` (base64 reply). */
    readonly kind: "memread";
    /** Physical address. */
    readonly address: number;
    /** Number of bytes, at most the transfer limit. */
    readonly length: number;
    /** How to encode the reply. */
    readonly encoding: "hex" | "base64";
  }
  | {
    /** `write` and `b64write`. */
    readonly kind: "memwrite";
    /** Physical address. */
    readonly address: number;
    /** Exactly SIZE bytes (zero-filled when the client sent fewer). */
    readonly data: Uint8Array;
    /** A line for the log (QEMU's b64write length-mismatch note), if any. */
    readonly note?: string;
  }
  | {
    /** `memset`. */
    readonly kind: "memset";
    /** Physical address. */
    readonly address: number;
    /** Number of bytes (not capped here: the server caps non-RAM ranges). */
    readonly length: number;
    /** The byte (the low 8 bits of VALUE). */
    readonly value: number;
  }
  | {
    /** `clock_step [NS]`. */
    readonly kind: "clock_step";
    /** Nanoseconds to advance (signed, like QEMU); absent: to the next deadline. */
    readonly ns?: bigint;
  }
  | {
    /** `clock_set NS`. */
    readonly kind: "clock_set";
    /** Target time in ns (signed, like QEMU). */
    readonly ns: bigint;
  }
  | {
    /** `irq_intercept_in` and `irq_intercept_out`. */
    readonly kind: "irq_intercept";
    /** Which pins. */
    readonly direction: "in" | "out";
    /** The QOM path as given. */
    readonly path: string;
  }
  | {
    /** `set_irq_in`. */
    readonly kind: "set_irq_in";
    /** The QOM path as given. */
    readonly path: string;
    /** The GPIO list name (`unnamed-gpio-in` for the default list). */
    readonly name: string;
    /** Pin number. */
    readonly pin: number;
    /** Level (signed, like QEMU). */
    readonly level: number;
  }
  | {
    /** Answered without the machine. */
    readonly kind: "reply";
    /** The reply line, without its newline. */
    readonly reply: string;
  };

/**
 * Options for {@linkcode parseRequest}.
 *
 * @example
 * ```ts
 * import { type ParseRequestOptions, parseRequest } from "./qtest_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 * const options: ParseRequestOptions = { maxTransfer: 16 };
 * deepEqual(parseRequest("b64read 0 17", options), {
 *   kind: "reply",
 *   reply: "ERR SIZE '17' is too large: the limit is 0x10 bytes",
 * });
 * ```
 */
export interface ParseRequestOptions {
  /** Largest SIZE of `read`, `b64read`, `write` and `b64write` (default {@linkcode QTEST_MAX_TRANSFER}). */
  maxTransfer?: number;
}

/** Raised inside the parser for malformed input; becomes an `ERR` reply. */
class Malformed extends Error {}

function reply(text: string): QtestRequest {
  return { kind: "reply", reply: text };
}

function quote(word: string): string {
  return `'${escapeText(word)}'`;
}

const USAGE: Record<string, string> = {
  outb: "ADDR VALUE",
  outw: "ADDR VALUE",
  outl: "ADDR VALUE",
  inb: "ADDR",
  inw: "ADDR",
  inl: "ADDR",
  writeb: "ADDR VALUE",
  writew: "ADDR VALUE",
  writel: "ADDR VALUE",
  writeq: "ADDR VALUE",
  readb: "ADDR",
  readw: "ADDR",
  readl: "ADDR",
  readq: "ADDR",
  read: "ADDR SIZE",
  b64read: "ADDR SIZE",
  write: "ADDR SIZE DATA",
  b64write: "ADDR SIZE B64_DATA",
  memset: "ADDR SIZE VALUE",
  endianness: "",
  clock_step: "[NS]",
  clock_set: "NS",
  irq_intercept_in: "QOM-PATH",
  irq_intercept_out: "QOM-PATH",
  set_irq_in: "QOM-PATH NAME NUM LEVEL",
  module_load: "PREFIX NAME",
};

function arity(words: readonly string[], min: number, max = min): void {
  const got = words.length - 1;
  if (got < min || got > max) {
    const command = words[0]!;
    const usage = USAGE[command] ?? "";
    throw new Malformed(
      `Wrong number of arguments for '${command}': got ${got}, usage '${
        usage ? `${command} ${usage}` : command
      }'`,
    );
  }
}

function uint64(word: string, field: string): bigint {
  const v = parseUint64(word);
  if (v === undefined) throw new Malformed(`Invalid number ${quote(word)} for ${field}`);
  return v;
}

function int64(word: string, field: string): bigint {
  const v = parseInt64(word);
  if (v === undefined) throw new Malformed(`Invalid number ${quote(word)} for ${field}`);
  return v;
}

function int32(word: string, field: string): number {
  const v = parseInt64(word);
  if (v === undefined || v < INT32_MIN || v > INT32_MAX) {
    throw new Malformed(`Invalid number ${quote(word)} for ${field}`);
  }
  return Number(v);
}

function port(word: string): number {
  const v = uint64(word, "ADDR");
  if (v > BigInt(QTEST_MAX_PORT)) {
    throw new Malformed(`I/O port ${quote(word)} is out of range: the largest port is 0xffff`);
  }
  return Number(v);
}

function range(word: string, v: bigint, length: bigint): number {
  if (v + length > BigInt(QTEST_ADDRESS_LIMIT) || v >= BigInt(QTEST_ADDRESS_LIMIT)) {
    throw new Malformed(
      `Address ${quote(word)} is out of range: ADDR + SIZE must not exceed 2^53 (0x20000000000000)`,
    );
  }
  return Number(v);
}

function size(word: string, max: number): bigint {
  const v = uint64(word, "SIZE");
  if (v > BigInt(max)) {
    throw new Malformed(
      `SIZE ${quote(word)} is too large: the limit is 0x${max.toString(16)} bytes`,
    );
  }
  return v;
}

function hexData(text: string, length: number): Uint8Array {
  if (text[0] !== "0" || (text[1] !== "x" && text[1] !== "X")) {
    throw new Malformed(`Invalid DATA ${quote(text)}: must start with 0x`);
  }
  const digits = text.length - 2;
  if (digits % 2 !== 0) {
    throw new Malformed(`Invalid DATA ${quote(text)}: odd number of hex digits`);
  }
  // Validate all of it, although (like QEMU) only the first SIZE bytes are used.
  if (!/^[0-9a-fA-F]*$/.test(text.slice(2))) {
    throw new Malformed(`Invalid DATA ${quote(text)}: not a hex number`);
  }
  const data = new Uint8Array(length);
  const n = Math.min(length, digits / 2);
  for (let i = 0; i < n; i++) {
    data[i] = (digitValue(text.charCodeAt(2 + 2 * i)) << 4) |
      digitValue(text.charCodeAt(3 + 2 * i));
  }
  return data;
}

function memSize(kind: string): MemorySize | undefined {
  switch (kind) {
    case "b":
      return 1;
    case "w":
      return 2;
    case "l":
      return 4;
    case "q":
      return 8;
  }
  return undefined;
}

function parseWords(words: readonly string[], maxTransfer: number): QtestRequest {
  const command = words[0]!;
  switch (command) {
    case "outb":
    case "outw":
    case "outl": {
      arity(words, 2);
      const size = memSize(command[3]!) as PortSize;
      const p = port(words[1]!);
      const value = BigInt.asUintN(8 * size, uint64(words[2]!, "VALUE"));
      return { kind: "out", size, port: p, value };
    }
    case "inb":
    case "inw":
    case "inl": {
      arity(words, 1);
      return { kind: "in", size: memSize(command[2]!) as PortSize, port: port(words[1]!) };
    }
    case "writeb":
    case "writew":
    case "writel":
    case "writeq": {
      arity(words, 2);
      const size = memSize(command[5]!)!;
      const a = range(words[1]!, uint64(words[1]!, "ADDR"), BigInt(size));
      const value = BigInt.asUintN(8 * size, uint64(words[2]!, "VALUE"));
      return { kind: "write", size, address: a, value };
    }
    case "readb":
    case "readw":
    case "readl":
    case "readq": {
      arity(words, 1);
      const size = memSize(command[4]!)!;
      return {
        kind: "read",
        size,
        address: range(words[1]!, uint64(words[1]!, "ADDR"), BigInt(size)),
      };
    }
    case "read":
    case "b64read": {
      arity(words, 2);
      const start = uint64(words[1]!, "ADDR");
      const length = size(words[2]!, maxTransfer);
      // QEMU asserts on "read ADDR 0" (its reply would be "OK 0x" with no data).
      if (length === 0n && command === "read") {
        throw new Malformed("SIZE must not be 0 for 'read'");
      }
      const a = range(words[1]!, start, length);
      return {
        kind: "memread",
        address: a,
        length: Number(length),
        encoding: command === "read" ? "hex" : "base64",
      };
    }
    case "write":
    case "b64write": {
      arity(words, 3);
      const start = uint64(words[1]!, "ADDR");
      const length = size(words[2]!, maxTransfer);
      const a = range(words[1]!, start, length);
      const text = words[3]!;
      // QEMU's own answer, byte for byte, including its lower-case "invalid".
      if (text.length < 3) return reply("ERR invalid argument size");
      if (command === "write") {
        return { kind: "memwrite", address: a, data: hexData(text, Number(length)) };
      }
      const decoded = decodeBase64(text);
      if (!decoded) throw new Malformed(`Invalid B64_DATA ${quote(text)}: not padded base64`);
      if (decoded.length === Number(length)) {
        return { kind: "memwrite", address: a, data: decoded };
      }
      const data = new Uint8Array(Number(length));
      data.set(decoded.subarray(0, data.length));
      return {
        kind: "memwrite",
        address: a,
        data,
        note: `b64write: data length mismatch (told ${length}, found ${decoded.length})`,
      };
    }
    case "memset": {
      arity(words, 3);
      const start = uint64(words[1]!, "ADDR");
      const length = uint64(words[2]!, "SIZE");
      const a = range(words[1]!, start, length);
      const value = Number(uint64(words[3]!, "VALUE") & 0xffn);
      return { kind: "memset", address: a, length: Number(length), value };
    }
    case "endianness":
      arity(words, 0);
      return reply("OK little");
    case "clock_step": {
      arity(words, 0, 1);
      return words[1] === undefined
        ? { kind: "clock_step" }
        : { kind: "clock_step", ns: int64(words[1], "NS") };
    }
    case "clock_set":
      arity(words, 1);
      return { kind: "clock_set", ns: int64(words[1]!, "NS") };
    case "irq_intercept_in":
    case "irq_intercept_out":
      arity(words, 1);
      return {
        kind: "irq_intercept",
        direction: command === "irq_intercept_in" ? "in" : "out",
        path: words[1]!,
      };
    case "set_irq_in":
      arity(words, 4);
      return {
        kind: "set_irq_in",
        path: words[1]!,
        name: words[2]!,
        pin: int32(words[3]!, "NUM"),
        level: int32(words[4]!, "LEVEL"),
      };
    case "module_load":
      // dmaworks has no loadable modules: QEMU's answer for a module it cannot load.
      arity(words, 2);
      return reply("FAIL");
    default:
      return reply(`FAIL Unknown command ${quote(command)}`);
  }
}

/**
 * Parses one request line (without its newline). Malformed input never
 * throws: it yields an `ERR …` reply, and unknown commands yield QEMU's
 * `FAIL Unknown command '…'`.
 *
 * @param line The request line; a trailing carriage return is ignored.
 * @param options The transfer size limit.
 * @returns The request, or the reply for requests that need no machine.
 *
 * @example
 * ```ts
 * import { parseRequest } from "./qtest_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(parseRequest("outb 0x80 0x1ff"), { kind: "out", size: 1, port: 0x80, value: 0xffn });
 * deepEqual(parseRequest("readl zz"), { kind: "reply", reply: "ERR Invalid number 'zz' for ADDR" });
 * deepEqual(parseRequest("frob"), { kind: "reply", reply: "FAIL Unknown command 'frob'" });
 * ```
 */
export function parseRequest(line: string, options: ParseRequestOptions = {}): QtestRequest {
  return parseRequestWords(splitWords(line), options);
}

/**
 * Parses a request already split into words (see {@linkcode splitWords}).
 *
 * @param words The command and its arguments.
 * @param options The transfer size limit.
 * @returns The request, or the reply for requests that need no machine.
 *
 * @example
 * ```ts
 * import { parseRequestWords } from "./qtest_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(parseRequestWords(["readq", "0x1000"]), { kind: "read", size: 8, address: 0x1000 });
 * deepEqual(parseRequestWords([]), { kind: "reply", reply: "ERR Empty command" });
 * ```
 */
export function parseRequestWords(
  words: readonly string[],
  options: ParseRequestOptions = {},
): QtestRequest {
  if (words.length === 0) return reply("ERR Empty command");
  try {
    return parseWords(words, options.maxTransfer ?? QTEST_MAX_TRANSFER);
  } catch (error) {
    if (error instanceof Malformed) return reply(`ERR ${error.message}`);
    throw error;
  }
}
