import { deepEqual, equal } from "node:assert/strict";
import {
  decodeBytes,
  encodeText,
  LineReader,
  type QtestLine,
} from "../../src/qtest/qtest_lines.ts";

const enc = new TextEncoder();

async function readAll(
  chunks: Uint8Array[],
  options: { maxLineLength?: number; keepBytes?: number } = {},
): Promise<QtestLine[]> {
  const reader = new LineReader(ReadableStream.from(chunks), options);
  const lines: QtestLine[] = [];
  for (;;) {
    const line = await reader.read();
    if (!line) break;
    lines.push(line);
  }
  equal(await reader.read(), undefined); // stays at the end
  reader.releaseLock();
  return lines;
}

Deno.test("LineReader splits lines whatever the chunking", async () => {
  const text = "outb 0x80 1\n\ninl 0xcfc\r\nlast";
  const expected = ["outb 0x80 1", "", "inl 0xcfc\r", "last"];
  const bytes = enc.encode(text);
  for (const size of [1, 2, 3, 5, 7, 64]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
    chunks.splice(1, 0, new Uint8Array(0)); // an empty chunk changes nothing
    const lines = await readAll(chunks);
    deepEqual(lines.map((l) => l.text), expected, `chunk size ${size}`);
    deepEqual(lines.map((l) => l.unterminated), [false, false, false, true]);
    deepEqual(lines.map((l) => l.length), [11, 0, 10, 4]);
  }
});

Deno.test("LineReader reports no line for an empty stream or a final newline", async () => {
  deepEqual(await readAll([]), []);
  deepEqual((await readAll([enc.encode("a\n")])).map((l) => l.text), ["a"]);
});

Deno.test("LineReader skips over-long lines without buffering them", async () => {
  const long = "w".repeat(100);
  for (const size of [1, 10, 1000]) {
    const bytes = enc.encode(`short\n${long}\nafter\n${long}`);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
    const lines = await readAll(chunks, { maxLineLength: 50, keepBytes: 8 });
    deepEqual(lines, [
      { text: "short", length: 5, tooLong: false, unterminated: false },
      { text: "wwwwwwww", length: 100, tooLong: true, unterminated: false },
      { text: "after", length: 5, tooLong: false, unterminated: false },
      { text: "wwwwwwww", length: 100, tooLong: true, unterminated: true },
    ], `chunk size ${size}`);
  }
  // Exactly at the limit is fine; one more byte is not.
  const edge = await readAll([enc.encode(`${"x".repeat(50)}\n${"y".repeat(51)}\n`)], {
    maxLineLength: 50,
  });
  deepEqual(edge.map((l) => [l.length, l.tooLong]), [[50, false], [51, true]]);
});

Deno.test("LineReader keeps every byte value of binary input", async () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== 0x0a);
  const [line] = await readAll([all, enc.encode("\n")]);
  equal(line!.length, 255);
  deepEqual(encodeText(line!.text), all);
  equal(line!.text.charCodeAt(0x90), 0x91); // 0x80–0x9f stay themselves (not windows-1252)
});

Deno.test("decodeBytes and encodeText are inverse on bytes", () => {
  const bytes = Uint8Array.from({ length: 20000 }, (_, i) => (i * 7) & 0xff);
  deepEqual(encodeText(decodeBytes(bytes)), bytes);
  equal(decodeBytes(enc.encode("plain")), "plain");
  // Characters above U+00FF (not produced by decodeBytes) are sent as UTF-8.
  deepEqual(encodeText("\u20ac"), enc.encode("\u20ac"));
});

Deno.test("LineReader.cancel ends a pending read", async () => {
  const stream = new ReadableStream<Uint8Array>({
    pull: () => new Promise(() => {}), // never answers
  });
  const reader = new LineReader(stream);
  const pending = reader.read();
  await reader.cancel();
  equal(await pending, undefined);
  reader.releaseLock();
});
