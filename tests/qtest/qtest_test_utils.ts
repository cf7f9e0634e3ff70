// Helpers shared by the qtest tests.
import type { QtestConnection } from "../../src/qtest/qtest_connection.ts";
import {
  type QtestMachine,
  QtestServer,
  type QtestServerOptions,
} from "../../src/qtest/qtest_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a session over in-memory streams produced. */
export interface SessionResult {
  /** Raw output. */
  output: string;
  /** Output lines (the text after the last newline is dropped when empty). */
  lines: string[];
  /** Log lines. */
  log: string[];
}

/**
 * Serves one session over in-memory streams: `input` is fed (as given, in
 * chunks when it is an array) and the session ends at its end.
 */
export async function serveInput(
  machine: QtestMachine,
  input: string | Uint8Array | Array<string | Uint8Array>,
  options: QtestServerOptions = {},
): Promise<SessionResult> {
  const log: string[] = [];
  await using server = new QtestServer(machine, { log: (line) => log.push(line), ...options });
  const chunks = (Array.isArray(input) ? input : [input]).map((c) =>
    typeof c === "string" ? encoder.encode(c) : c
  );
  let output = "";
  await server.serve({
    readable: ReadableStream.from(chunks),
    writable: new WritableStream({ write: (c) => void (output += decoder.decode(c)) }),
  });
  const lines = output.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return { output, lines, log };
}

/** Serves `lines` (each followed by a newline) and returns the output lines. */
export async function replies(
  machine: QtestMachine,
  lines: readonly string[],
  options: QtestServerOptions = {},
): Promise<string[]> {
  return (await serveInput(machine, lines.map((l) => `${l}\n`).join(""), options)).lines;
}

/** Two connected in-memory stream pairs: what one side writes, the other reads. */
export function connectionPair(): { a: QtestConnection; b: QtestConnection } {
  const ab = new TransformStream<Uint8Array, Uint8Array>();
  const ba = new TransformStream<Uint8Array, Uint8Array>();
  return {
    a: { readable: ba.readable, writable: ab.writable },
    b: { readable: ab.readable, writable: ba.writable },
  };
}

/** The full path of `command` on PATH, if any. */
export function which(command: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const path = `${dir}/${command}`;
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Config mechanism #1 address for bus 0. */
export function cfg(device: number, fn: number, register: number): string {
  return `0x${((0x8000_0000 | (device << 11) | (fn << 8) | (register & 0xfc)) >>> 0).toString(16)}`;
}

/** qtest lines that map edu's BAR0 at 0xfe000000 (edu at 00:04.0) and enable memory decoding. */
export const EDU_SETUP: readonly string[] = [
  `outl 0xcf8 ${cfg(4, 0, 0x10)}`,
  "outl 0xcfc 0xfe000000",
  `outl 0xcf8 ${cfg(4, 0, 0x04)}`,
  "outw 0xcfc 0x0006",
];
