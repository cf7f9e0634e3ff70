/**
 * Splitting a byte stream into protocol lines, with a bound on line length
 * so that hostile input cannot make a reader buffer without limit.
 *
 * @module
 */

/**
 * One line read by {@linkcode LineReader}.
 *
 * @example
 * ```ts
 * import { LineReader, type QtestLine } from "./qtest_lines.ts";
 * import { deepEqual } from "node:assert/strict";
 * const reader = new LineReader(ReadableStream.from([new TextEncoder().encode("inb 0x80\r\n")]));
 * const line: QtestLine | undefined = await reader.read();
 * deepEqual(line, { text: "inb 0x80\r", length: 9, tooLong: false, unterminated: false });
 * ```
 */
export interface QtestLine {
  /**
   * The line without its newline, one character per byte (bytes 0x80–0xff
   * become U+0080–U+00FF, so no byte is lost or merged). For a line over the
   * limit: its first bytes only.
   */
  readonly text: string;
  /** The line's length in bytes, without its newline. */
  readonly length: number;
  /** Whether the line exceeded the limit (its bytes were discarded). */
  readonly tooLong: boolean;
  /** Whether the stream ended without a newline after this line. */
  readonly unterminated: boolean;
}

/**
 * Options for {@linkcode LineReader}.
 *
 * @example
 * ```ts
 * import { LineReader, type LineReaderOptions } from "./qtest_lines.ts";
 * import { equal } from "node:assert/strict";
 * const options: LineReaderOptions = { maxLineLength: 4, keepBytes: 2 };
 * const reader = new LineReader(ReadableStream.from([new TextEncoder().encode("abcdef\n")]), options);
 * const line = await reader.read();
 * equal(line?.tooLong, true);
 * equal(line?.text, "ab");
 * ```
 */
export interface LineReaderOptions {
  /** Lines longer than this many bytes are discarded and reported as too long (default 256 MiB). */
  maxLineLength?: number;
  /** How many leading bytes of a too-long line to keep in `text` (default 200). */
  keepBytes?: number;
}

const UTF8 = new TextDecoder();

/**
 * Decodes bytes one character per byte (ISO 8859-1), exactly: unlike
 * `TextDecoder("latin1")`, which is windows-1252, bytes 0x80–0x9f keep their
 * values.
 *
 * @param bytes The bytes.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { decodeBytes } from "./qtest_lines.ts";
 * import { equal } from "node:assert/strict";
 * equal(decodeBytes(new Uint8Array([0x4f, 0x4b, 0x80, 0xff])), "OK\u0080\u00ff");
 * ```
 */
export function decodeBytes(bytes: Uint8Array): string {
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! & 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return UTF8.decode(bytes);
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}

/**
 * Encodes text one byte per character (the inverse of
 * {@linkcode decodeBytes}); characters above U+00FF are encoded as UTF-8.
 *
 * @param text The text.
 * @returns The bytes.
 *
 * @example
 * ```ts
 * import { encodeText } from "./qtest_lines.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(encodeText("OK\u00ff"), new Uint8Array([0x4f, 0x4b, 0xff]));
 * ```
 */
export function encodeText(text: string): Uint8Array {
  const encoder = new TextEncoder();
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return encoder.encode(text);
  const out = new Uint8Array(text.length * 3);
  let o = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code <= 0xff) out[o++] = code;
    else o += encoder.encodeInto(ch, out.subarray(o)).written;
  }
  return out.slice(0, o);
}

/**
 * Reads newline-terminated lines from a byte stream. A line longer than the
 * limit is not buffered: it is skipped up to its newline and reported with
 * `tooLong` set. A last line without a newline is returned with
 * `unterminated` set.
 *
 * @example
 * ```ts
 * import { LineReader } from "./qtest_lines.ts";
 * import { equal } from "node:assert/strict";
 * const bytes = new TextEncoder().encode("inb 0x80\nx".padEnd(30, "x") + "\nend");
 * const lines = new LineReader(ReadableStream.from([bytes]), { maxLineLength: 16 });
 * equal((await lines.read())?.text, "inb 0x80");
 * equal((await lines.read())?.tooLong, true);
 * equal((await lines.read())?.unterminated, true);
 * equal(await lines.read(), undefined);
 * ```
 */
export class LineReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #max: number;
  #keep: number;
  #chunk: Uint8Array | undefined;
  #offset = 0;
  #parts: Uint8Array[] = [];
  #partsLength = 0;
  #skipping = false;
  #head: Uint8Array | undefined;
  #done = false;

  /**
   * Locks `readable` and reads lines from it.
   *
   * @param readable The byte stream.
   * @param options The line length limit.
   */
  constructor(readable: ReadableStream<Uint8Array>, options: LineReaderOptions = {}) {
    this.#reader = readable.getReader();
    this.#max = options.maxLineLength ?? 256 * 1024 * 1024;
    this.#keep = options.keepBytes ?? 200;
  }

  /**
   * Reads the next line.
   *
   * @returns The line, or `undefined` at the end of the stream.
   */
  async read(): Promise<QtestLine | undefined> {
    for (;;) {
      const chunk = this.#chunk;
      if (chunk) {
        const nl = chunk.indexOf(0x0a, this.#offset);
        if (nl >= 0) {
          const piece = chunk.subarray(this.#offset, nl);
          this.#offset = nl + 1;
          if (this.#offset >= chunk.length) this.#chunk = undefined;
          return this.#finish(piece, false);
        }
        this.#append(chunk.subarray(this.#offset));
        this.#chunk = undefined;
      }
      if (this.#done) return undefined;
      const { value, done } = await this.#reader.read();
      if (done) {
        this.#done = true;
        if (this.#partsLength > 0 || this.#skipping) return this.#finish(new Uint8Array(0), true);
        return undefined;
      }
      if (value.length > 0) {
        this.#chunk = value;
        this.#offset = 0;
      }
    }
  }

  #append(piece: Uint8Array): void {
    if (piece.length === 0) return;
    if (!this.#skipping && this.#partsLength + piece.length > this.#max) {
      this.#skipping = true;
      this.#head = concat([...this.#parts, piece], this.#keep);
      this.#parts = [];
    }
    if (!this.#skipping) this.#parts.push(piece);
    this.#partsLength += piece.length;
  }

  #finish(piece: Uint8Array, unterminated: boolean): QtestLine {
    const length = this.#partsLength + piece.length;
    let line: QtestLine;
    if (this.#skipping || length > this.#max) {
      const head = this.#head ?? concat([...this.#parts, piece], this.#keep);
      line = { text: decodeBytes(head), length, tooLong: true, unterminated };
    } else {
      const bytes = this.#parts.length === 0 ? piece : concat([...this.#parts, piece], length);
      line = { text: decodeBytes(bytes), length, tooLong: false, unterminated };
    }
    this.#parts = [];
    this.#partsLength = 0;
    this.#skipping = false;
    this.#head = undefined;
    return line;
  }

  /**
   * Cancels the stream (a pending {@linkcode LineReader.read} then ends).
   *
   * @param reason Why.
   */
  async cancel(reason?: unknown): Promise<void> {
    this.#done = true;
    try {
      await this.#reader.cancel(reason);
    } catch {
      // The stream already failed: nothing left to cancel.
    }
  }

  /** Releases the lock on the stream. */
  releaseLock(): void {
    this.#reader.releaseLock();
  }
}

function concat(parts: Uint8Array[], limit: number): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(Math.min(total, limit));
  let o = 0;
  for (const p of parts) {
    if (o >= out.length) break;
    const take = p.subarray(0, out.length - o);
    out.set(take, o);
    o += take.length;
  }
  return out;
}
