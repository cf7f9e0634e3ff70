/**
 * Where trace lines go: a file written in the background (lines are
 * buffered and written in order, so the main isolate never waits for the
 * disk), or a callback such as stderr.
 *
 * @module
 */

const encoder = new TextEncoder();
/** Buffered bytes that start a write. */
const FLUSH_BYTES = 1 << 16;

/**
 * A line sink.
 *
 * @example
 * ```ts
 * import { TraceOutput } from "./trace_output.ts";
 * import { equal } from "node:assert/strict";
 * const path = await Deno.makeTempFile();
 * try {
 *   const out = await TraceOutput.open(path);
 *   out.line("first");
 *   out.line("second");
 *   await out.close();
 *   equal(await Deno.readTextFile(path), "first\nsecond\n");
 * } finally {
 *   await Deno.remove(path);
 * }
 * ```
 */
export class TraceOutput {
  #file: Deno.FsFile | undefined;
  #write: ((text: string) => void) | undefined;
  #buffer: string[] = [];
  #bytes = 0;
  #chain: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  #closed = false;

  private constructor(file: Deno.FsFile | undefined, write: ((text: string) => void) | undefined) {
    this.#file = file;
    this.#write = write;
  }

  /**
   * Creates (or truncates) a file for the lines.
   *
   * @param path The file.
   * @returns The output.
   * @throws {Error} When the file cannot be created (the message names it).
   */
  static async open(path: string): Promise<TraceOutput> {
    try {
      return new TraceOutput(
        await Deno.open(path, { write: true, create: true, truncate: true }),
        undefined,
      );
    } catch (error) {
      throw new Error(`Cannot write '${path}': ${(error as Error).message}`);
    }
  }

  /**
   * Sends the lines to a callback (each call gets one line with its newline).
   *
   * @param write E.g. the CLI's stderr.
   * @returns The output.
   */
  static to(write: (text: string) => void): TraceOutput {
    return new TraceOutput(undefined, write);
  }

  /** The first write error, if any (later lines are dropped). */
  get error(): Error | undefined {
    return this.#error;
  }

  /**
   * Adds a line.
   *
   * @param text The line, without a newline.
   */
  line(text: string): void {
    if (this.#closed || this.#error) return;
    if (this.#write) {
      this.#write(`${text}\n`);
      return;
    }
    this.#buffer.push(text);
    this.#bytes += text.length + 1;
    if (this.#bytes >= FLUSH_BYTES) this.#flush();
  }

  #flush(): void {
    if (this.#buffer.length === 0 || !this.#file) return;
    const data = encoder.encode(`${this.#buffer.join("\n")}\n`);
    this.#buffer = [];
    this.#bytes = 0;
    const file = this.#file;
    this.#chain = this.#chain.then(async () => {
      if (this.#error) return;
      try {
        for (let done = 0; done < data.length;) done += await file.write(data.subarray(done));
      } catch (error) {
        this.#error = error as Error;
      }
    });
  }

  /** Writes what is buffered and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    await this.#chain;
    this.#file?.close();
  }
}
