/**
 * The qtest server: QEMU's qtest protocol over a byte stream, run against a
 * machine, and {@linkcode startQtest}, which opens the transport
 * a `-qtest` chardev string names.
 *
 * Requests are handled strictly one after another; interrupt changes are
 * reported (after `irq_intercept_in ioapic`) as they happen, before the
 * reply of the request that caused them. Malformed input gets an `ERR` reply
 * and the session goes on.
 *
 * @module
 */

import { parseChardev, type QtestChardev } from "./qtest_chardev.ts";
import { connectionFromConn, type QtestConnection } from "./qtest_connection.ts";
import { LineReader, type QtestLine } from "./qtest_lines.ts";
import {
  escapeText,
  formatBase64Reply,
  formatHexReply,
  formatInReply,
  formatLogTime,
  formatReadReply,
  parseRequestWords,
  QTEST_MAX_TRANSFER,
  type QtestRequest,
  splitWords,
} from "./qtest_protocol.ts";

/**
 * A machine event as the qtest server reads it (interrupt changes; others are ignored).
 *
 * @example
 * ```ts
 * import type { QtestMachineEvent } from "./qtest_server.ts";
 * import { equal } from "node:assert/strict";
 * const event: QtestMachineEvent = { type: "irq", line: 20, level: true };
 * equal(event.type === "irq" && event.level, true);
 * ```
 */
export interface QtestMachineEvent {
  /** Event type; the server acts on `irq`. */
  readonly type: string;
  /** For `irq`: the interrupt line (GSI). */
  readonly line?: number;
  /** For `irq`: the new level. */
  readonly level?: boolean;
}

/**
 * What the qtest server needs of a machine. dmaworks' `Machine` provides it;
 * so can a test double.
 *
 * @example
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import type { QtestMachine } from "./qtest_server.ts";
 * import { equal } from "node:assert/strict";
 * await using machine = await Machine.create({});
 * const target: QtestMachine = machine;
 * await target.write(0x1000, 4, 0xabcdn);
 * equal(await target.read(0x1000, 4), 0xabcdn);
 * ```
 */
export interface QtestMachine {
  /**
   * Reads physical memory like a CPU.
   *
   * @param address Physical address.
   * @param size 1, 2, 4 or 8.
   * @returns The value.
   */
  read(address: number, size: number): Promise<bigint>;
  /**
   * Writes physical memory like a CPU.
   *
   * @param address Physical address.
   * @param size 1, 2, 4 or 8.
   * @param value The value.
   */
  write(address: number, size: number, value: bigint): Promise<void>;
  /**
   * Reads an I/O port.
   *
   * @param port Port number.
   * @param size 1, 2 or 4.
   * @returns The value.
   */
  in(port: number, size: number): Promise<number>;
  /**
   * Writes an I/O port.
   *
   * @param port Port number.
   * @param size 1, 2 or 4.
   * @param value The value.
   */
  out(port: number, size: number, value: bigint): Promise<void>;
  /**
   * Reads bytes of physical memory.
   *
   * @param address Physical address.
   * @param length Number of bytes.
   * @returns The bytes.
   */
  readMemory(address: number, length: number): Promise<Uint8Array>;
  /**
   * Writes bytes to physical memory.
   *
   * @param address Physical address.
   * @param data The bytes.
   */
  writeMemory(address: number, data: Uint8Array): Promise<void>;
  /**
   * Fills physical memory with a byte.
   *
   * @param address Physical address.
   * @param length Number of bytes.
   * @param value The byte.
   */
  fillMemory(address: number, length: number, value: number): Promise<void>;
  /** Guest RAM, to tell whether a large `memset` stays inside RAM. */
  readonly memory: {
    /**
     * How many bytes of RAM start at `address`, up to `max`.
     *
     * @param address Physical address.
     * @param max The most to report.
     * @returns The run length (0 outside RAM).
     */
    ramRunLength(address: number, max: number): number;
  };
  /** The virtual clock. */
  readonly clock: {
    /**
     * The current time.
     *
     * @returns Nanoseconds.
     */
    now(): bigint;
    /**
     * Advances by `ns`, or to the next deadline.
     *
     * @param ns Nanoseconds.
     * @returns The new time.
     */
    step(ns?: bigint): bigint;
    /**
     * Advances to `ns` (never back).
     *
     * @param ns Target time.
     * @returns The new time.
     */
    set(ns: bigint): bigint;
  };
  /**
   * Listens to machine events.
   *
   * @param listener Called for each event, synchronously as it happens.
   */
  onEvent(listener: (event: QtestMachineEvent) => void): (() => void) | void;
}

/**
 * Where the qtest log goes: a file path (truncated, like QEMU's
 * `-qtest-log FILE`), `"none"` or `"/dev/null"` for no log, or a function
 * that receives each log line (without its newline).
 *
 * @example
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { QtestServer, type QtestLogTarget } from "./qtest_server.ts";
 * import { match } from "node:assert/strict";
 * const lines: string[] = [];
 * const log: QtestLogTarget = (line) => lines.push(line);
 * await using machine = await Machine.create({});
 * {
 *   await using server = new QtestServer(machine, { log });
 *   await server.serve({
 *     readable: ReadableStream.from([new TextEncoder().encode("endianness\n")]),
 *     writable: new WritableStream(),
 *   });
 * }
 * match(lines.join("\n"), /^\[I [0-9.]+\] OPENED\n\[R \+[0-9.]+\] endianness\n\[S \+[0-9.]+\] OK little\n\[I \+[0-9.]+\] CLOSED$/);
 * ```
 */
export type QtestLogTarget = string | ((line: string) => void);

/**
 * Options for {@linkcode QtestServer}.
 *
 * @example
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { QtestServer, type QtestServerOptions } from "./qtest_server.ts";
 * import { equal } from "node:assert/strict";
 * const options: QtestServerOptions = { log: "none", maxTransfer: 4096 };
 * await using machine = await Machine.create({});
 * await using server = new QtestServer(machine, options);
 * let output = "";
 * await server.serve({
 *   readable: ReadableStream.from([new TextEncoder().encode("read 0 4097\n")]),
 *   writable: new WritableStream({ write: (c) => void (output += new TextDecoder().decode(c)) }),
 * });
 * equal(output, "ERR SIZE '4097' is too large: the limit is 0x1000 bytes\n");
 * ```
 */
export interface QtestServerOptions {
  /** The log (default: standard error, as QEMU). */
  log?: QtestLogTarget;
  /**
   * Largest SIZE of `read`, `b64read`, `write`, `b64write`, and of `memset`
   * outside RAM (default 64 MiB).
   */
  maxTransfer?: number;
  /** Longest request line in bytes (default: room for a hex `write` of `maxTransfer` bytes). */
  maxLineLength?: number;
}

const INT64_MAX = (1n << 63n) - 1n;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
const IOAPIC_PINS = 24;
const encoder = new TextEncoder();

/** The devices qtest can name: the I/O APIC (24 unnamed gpio-ins) and the q35 host bridge (none). */
type QomDevice = "ioapic" | "q35";

const QOM_PATHS: Record<QomDevice, string[]> = {
  ioapic: ["machine", "q35", "ioapic"],
  q35: ["machine", "q35"],
};

/**
 * Resolves a QOM path the way QEMU's `object_resolve_path` does for the
 * objects dmaworks models: absolute (`/machine/q35/ioapic`) or partial, a
 * unique suffix (`ioapic`, `q35/ioapic`). `/machine/ioapic` is accepted as an
 * alias of the I/O APIC.
 */
function resolveQomPath(path: string): QomDevice | undefined {
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.length === 0) return undefined;
  const absolute = path.startsWith("/");
  if (absolute && parts.join("/") === "machine/ioapic") return "ioapic";
  for (const [device, full] of Object.entries(QOM_PATHS) as Array<[QomDevice, string[]]>) {
    if (absolute ? parts.length !== full.length : parts.length > full.length) continue;
    const tail = full.slice(full.length - parts.length);
    if (tail.every((p, i) => p === parts[i])) return device;
  }
  return undefined;
}

/** The qtest log, written without blocking the main isolate. */
class QtestLog {
  #sink: ((line: string) => void) | undefined;
  #file: Deno.FsFile | undefined;
  #stderr = false;
  #queue: string[] = [];
  #pump: Promise<void> | undefined;

  constructor(target: QtestLogTarget | undefined) {
    if (target === undefined) this.#stderr = true;
    else if (typeof target === "function") this.#sink = target;
    else if (target !== "none" && target !== "/dev/null") {
      try {
        this.#file = Deno.openSync(target, { write: true, create: true, truncate: true });
      } catch (error) {
        throw new Error(`Cannot open the qtest log '${target}': ${messageOf(error)}`);
      }
    }
  }

  get enabled(): boolean {
    return this.#stderr || this.#sink !== undefined || this.#file !== undefined;
  }

  line(text: string): void {
    if (this.#sink) {
      try {
        this.#sink(text);
      } catch {
        // A failing log sink must not end the session.
      }
      return;
    }
    if (!this.enabled) return;
    this.#queue.push(`${text}\n`);
    this.#pump ??= this.#drain();
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const data = encoder.encode(this.#queue.join(""));
      this.#queue = [];
      try {
        let done = 0;
        while (done < data.length) {
          const target = this.#file ?? Deno.stderr;
          done += await target.write(data.subarray(done));
        }
      } catch {
        // The log is best effort, as in QEMU (fprintf errors are ignored).
      }
    }
    this.#pump = undefined;
  }

  async flush(): Promise<void> {
    while (this.#pump) await this.#pump;
  }

  async close(): Promise<void> {
    await this.flush();
    this.#file?.close();
    this.#file = undefined;
    this.#stderr = false;
    this.#sink = undefined;
  }
}

interface Session {
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly lines: LineReader;
  readonly start: number;
  /** No more requests are read or replies sent. */
  ended: boolean;
  /** Ended by close(): do not wait for writes the peer may never take. */
  aborted: boolean;
  /** Resolves when close() ends the session. */
  readonly abort: Promise<void>;
  readonly signalAbort: () => void;
  lastWrite: Promise<void>;
}

/**
 * A qtest server for one machine. It serves one connection at a time
 * ({@linkcode QtestServer.serve}); like QEMU, the interrupt intercept stays
 * set across connections and the reported interrupt levels restart at 0 with
 * each one.
 *
 * Replies are byte-identical to QEMU 7.2's for valid input. Where QEMU would
 * abort (malformed numbers, missing arguments, a port above 0xffff, `read`
 * of 0 bytes) or accept garbage, dmaworks answers `ERR <message>` and goes
 * on; an access the machine fails answers `FAIL <message>`.
 *
 * @example Serve a session over in-memory streams
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { QtestServer } from "./qtest_server.ts";
 * import { equal } from "node:assert/strict";
 * await using machine = await Machine.create({});
 * await using server = new QtestServer(machine, { log: "none" });
 * const input = ReadableStream.from([new TextEncoder().encode("writel 0x1000 0x12345678\nreadw 0x1002\nbogus\n")]);
 * let output = "";
 * const writable = new WritableStream<Uint8Array>({ write: (c) => void (output += new TextDecoder().decode(c)) });
 * await server.serve({ readable: input, writable });
 * equal(output, "OK\nOK 0x0000000000001234\nFAIL Unknown command 'bogus'\n");
 * ```
 */
export class QtestServer implements AsyncDisposable {
  #machine: QtestMachine;
  #log: QtestLog;
  #unsubscribe: (() => void) | undefined;
  #maxTransfer: number;
  #maxLine: number;
  #session: Session | undefined;
  #serving: Promise<void> | undefined;
  #intercept: { device: QomDevice; direction: "in" | "out" } | undefined;
  #levels = new Uint8Array(256);
  #closed = false;

  /**
   * Creates a server for `machine` and opens its log.
   *
   * @param machine The machine the requests act on.
   * @param options Log target and size limits.
   * @throws {Error} When the log file cannot be opened.
   */
  constructor(machine: QtestMachine, options: QtestServerOptions = {}) {
    this.#machine = machine;
    this.#maxTransfer = options.maxTransfer ?? QTEST_MAX_TRANSFER;
    this.#maxLine = options.maxLineLength ?? 2 * this.#maxTransfer + 4096;
    this.#log = new QtestLog(options.log);
    const off = machine.onEvent((event) => this.#onEvent(event));
    this.#unsubscribe = typeof off === "function" ? off : undefined;
  }

  /**
   * Whether a connection is being served.
   *
   * @example
   * ```ts
   * import { Machine } from "../machine/machine.ts";
   * import { QtestServer } from "./qtest_server.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await using server = new QtestServer(machine, { log: "none" });
   * const input = new TransformStream<Uint8Array, Uint8Array>();
   * const session = server.serve({ readable: input.readable, writable: new WritableStream() });
   * equal(server.serving, true);
   * await input.writable.close(); // the client ends its input
   * await session;
   * equal(server.serving, false);
   * ```
   */
  get serving(): boolean {
    return this.#session !== undefined;
  }

  /**
   * Serves one connection until its input ends (or {@linkcode QtestServer.close}).
   * The streams are locked while serving and released (not closed) afterwards.
   * For a Deno socket, pass `connectionFromConn(conn)` rather than the socket
   * itself: `conn.readable` closes the whole socket at the peer's end of
   * input, so the replies to the last requests could not be written.
   *
   * @param connection The byte streams.
   * @returns A promise that resolves when the session is over and its replies are written.
   * @throws {Error} When the server is closed or already serving.
   *
   * @example Two connections, one after the other, on the same machine
   * ```ts
   * import { Machine } from "../machine/machine.ts";
   * import { QtestServer } from "./qtest_server.ts";
   * import { equal } from "node:assert/strict";
   * await using machine = await Machine.create();
   * await using server = new QtestServer(machine, { log: "none" });
   * const session = async (requests: string) => {
   *   let output = "";
   *   await server.serve({
   *     readable: ReadableStream.from([new TextEncoder().encode(requests)]),
   *     writable: new WritableStream({
   *       write: (c) => void (output += new TextDecoder().decode(c)),
   *     }),
   *   });
   *   return output;
   * };
   * equal(await session("writeb 0x2000 0x5a\n"), "OK\n");
   * equal(await session("readb 0x2000\n"), "OK 0x000000000000005a\n");
   * ```
   */
  async serve(connection: QtestConnection): Promise<void> {
    if (this.#closed) throw new Error("Cannot serve: the qtest server is closed");
    if (this.#session) throw new Error("Cannot serve two qtest connections at once");
    const writer = connection.writable.getWriter();
    let lines: LineReader;
    try {
      lines = new LineReader(connection.readable, { maxLineLength: this.#maxLine });
    } catch (error) {
      writer.releaseLock();
      throw error;
    }
    let signalAbort!: () => void;
    const abort = new Promise<void>((resolve) => (signalAbort = resolve));
    const session: Session = {
      writer,
      lines,
      start: performance.now(),
      ended: false,
      aborted: false,
      abort,
      signalAbort,
      lastWrite: Promise.resolve(),
    };
    let finished!: () => void;
    this.#serving = new Promise((resolve) => (finished = resolve));
    this.#session = session;
    this.#levels.fill(0);
    this.#log.line(`[I ${this.#elapsed(session)}] OPENED`);
    try {
      while (!session.ended) {
        let line: QtestLine | undefined;
        try {
          line = await lines.read();
        } catch {
          break; // The connection failed: the session is over.
        }
        if (line === undefined) break;
        this.#send(session, await this.#handle(session, line));
        // Backpressure: take the next request once the reply is written.
        await Promise.race([session.lastWrite, session.abort]);
      }
    } finally {
      session.ended = true;
      this.#session = undefined;
      this.#log.line(`[I +${this.#elapsed(session)}] CLOSED`);
      if (!session.aborted) await session.lastWrite;
      writer.releaseLock();
      lines.releaseLock();
      await this.#log.flush();
      finished();
    }
  }

  /**
   * Ends the current session, if any, and closes the log. The server cannot
   * serve again. Replies still queued for a peer that does not read are
   * abandoned (close the underlying connection to release them).
   *
   * @example End a session whose client never ends its input
   * ```ts
   * import { Machine } from "../machine/machine.ts";
   * import { QtestServer } from "./qtest_server.ts";
   * import { rejects } from "node:assert/strict";
   * await using machine = await Machine.create();
   * const server = new QtestServer(machine, { log: "none" });
   * const input = new TransformStream<Uint8Array, Uint8Array>();
   * const session = server.serve({ readable: input.readable, writable: new WritableStream() });
   * await server.close();
   * await session; // over
   * await rejects(server.serve(input), /the qtest server is closed/);
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    const session = this.#session;
    if (session) {
      session.ended = true;
      session.aborted = true;
      session.signalAbort();
      await session.lines.cancel();
    }
    await this.#serving;
    await this.#log.close();
  }

  /** Closes the server (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #elapsed(session: Session): string {
    return formatLogTime((performance.now() - session.start) / 1000);
  }

  #send(session: Session, text: string): void {
    if (session.ended) return;
    this.#log.line(`[S +${this.#elapsed(session)}] ${text}`);
    session.lastWrite = session.writer.write(encoder.encode(`${text}\n`)).catch(() => {
      // The peer went away: stop reading, the session ends.
      if (!session.ended) {
        session.ended = true;
        void session.lines.cancel();
      }
    });
  }

  #onEvent(event: QtestMachineEvent): void {
    if (event.type !== "irq" || event.line === undefined) return;
    const session = this.#session;
    const intercept = this.#intercept;
    if (!session || intercept?.device !== "ioapic" || intercept.direction !== "in") return;
    if (event.line < 0 || event.line >= this.#levels.length) return;
    const level = event.level ? 1 : 0;
    if (this.#levels[event.line] === level) return;
    this.#levels[event.line] = level;
    this.#send(session, `IRQ ${level ? "raise" : "lower"} ${event.line}`);
  }

  async #handle(session: Session, line: QtestLine): Promise<string> {
    if (line.tooLong) {
      if (this.#log.enabled) {
        this.#log.line(
          `[R +${this.#elapsed(session)}] ${escapeText(line.text)}...(${line.length} bytes)`,
        );
      }
      return `ERR Line too long: ${line.length} bytes, the limit is ${this.#maxLine}`;
    }
    const words = splitWords(line.text);
    if (this.#log.enabled) {
      const text = words.map((w) => ` ${escapeText(w, Infinity)}`).join("");
      this.#log.line(`[R +${this.#elapsed(session)}]${text}`);
    }
    try {
      const request = parseRequestWords(words, { maxTransfer: this.#maxTransfer });
      return await this.#execute(session, request);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return `FAIL ${escapeText(message, 1000)}`;
    }
  }

  async #execute(session: Session, request: QtestRequest): Promise<string> {
    const machine = this.#machine;
    switch (request.kind) {
      case "reply":
        return request.reply;
      case "out":
        await machine.out(request.port, request.size, request.value);
        return "OK";
      case "in":
        return formatInReply(await machine.in(request.port, request.size));
      case "write":
        await machine.write(request.address, request.size, request.value);
        return "OK";
      case "read":
        return formatReadReply(await machine.read(request.address, request.size));
      case "memread": {
        const data = request.length === 0
          ? new Uint8Array(0)
          : await machine.readMemory(request.address, request.length);
        return request.encoding === "hex" ? formatHexReply(data) : formatBase64Reply(data);
      }
      case "memwrite":
        if (request.note !== undefined) {
          this.#log.line(`[S +${this.#elapsed(session)}] ${request.note}`);
        }
        if (request.data.length > 0) await machine.writeMemory(request.address, request.data);
        return "OK";
      case "memset": {
        const { address, length, value } = request;
        if (length === 0) return "OK";
        if (length > this.#maxTransfer && machine.memory.ramRunLength(address, length) < length) {
          return `ERR SIZE 0x${length.toString(16)} is too large: outside RAM the limit is 0x${
            this.#maxTransfer.toString(16)
          } bytes`;
        }
        await machine.fillMemory(address, length, value);
        return "OK";
      }
      case "clock_step": {
        const clock = machine.clock;
        if (request.ns === undefined) return `OK ${clock.step()}`;
        // QEMU warps to now + NS: a negative NS leaves the clock where it is.
        if (request.ns < 0n) return `OK ${clock.now()}`;
        const room = INT64_MAX - clock.now();
        return `OK ${clock.step(request.ns < room ? request.ns : room)}`;
      }
      case "clock_set":
        return `OK ${machine.clock.set(request.ns)}`;
      case "irq_intercept": {
        const device = resolveQomPath(request.path);
        if (!device) return "FAIL Unknown device";
        if (this.#intercept) {
          return this.#intercept.device === device ? "OK" : "FAIL IRQ intercept already enabled";
        }
        // As in QEMU, the first intercept claims the device whichever way it
        // goes; the I/O APIC has no gpio-outs, so `irq_intercept_out ioapic`
        // intercepts nothing (and a later `irq_intercept_in ioapic` answers
        // OK without intercepting).
        this.#intercept = { device, direction: request.direction };
        return "OK";
      }
      case "set_irq_in": {
        const device = resolveQomPath(request.path);
        if (!device) return "FAIL Unknown device";
        if (device !== "ioapic" || request.name !== "unnamed-gpio-in") {
          return `ERR Unknown GPIO list '${escapeText(request.name)}' of '${
            escapeText(request.path)
          }'`;
        }
        if (request.pin < 0 || request.pin >= IOAPIC_PINS) {
          return `ERR Invalid NUM ${request.pin}: the I/O APIC has inputs 0 to ${IOAPIC_PINS - 1}`;
        }
        return "FAIL set_irq_in is not supported: dmaworks cannot drive interrupt lines from qtest";
      }
    }
  }
}

/**
 * Options for {@linkcode startQtest}.
 *
 * @example
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { startQtest, type StartQtestOptions } from "./qtest_server.ts";
 * import { rejects } from "node:assert/strict";
 * await using machine = await Machine.create({});
 * const options: StartQtestOptions = { log: "none" }; // allowRemoteHosts: false
 * await rejects(startQtest(machine, "tcp:0.0.0.0:0,server=on", options), /not a loopback address/);
 * ```
 */
export interface StartQtestOptions extends QtestServerOptions {
  /**
   * Allow TCP hosts other than 127.0.0.1, localhost and ::1 (default
   * false): whoever connects controls the machine.
   */
  allowRemoteHosts?: boolean;
}

/**
 * A running qtest transport, as {@linkcode startQtest} returns it.
 *
 * @example
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { type QtestHandle, startQtest } from "./qtest_server.ts";
 * import { equal } from "node:assert/strict";
 * await using machine = await Machine.create({});
 * const handle: QtestHandle = await startQtest(machine, "tcp:127.0.0.1:0,server=on", { log: "none" });
 * await handle.close(); // nobody connected
 * equal(await handle.connected, false);
 * await handle.closed;
 * ```
 */
export interface QtestHandle extends AsyncDisposable {
  /** The transport; for `tcp:…:0,server=on`, with the port actually bound. */
  readonly chardev: QtestChardev;
  /** The server. */
  readonly server: QtestServer;
  /** Resolves to true when the session opens, or false when the handle closes first. */
  readonly connected: Promise<boolean>;
  /** Resolves when the session is over and the transport is released; never rejects. */
  readonly closed: Promise<void>;
  /** Stops listening, ends the session if one is open, and waits for {@linkcode QtestHandle.closed}. */
  close(): Promise<void>;
}

function closeConnection(connection: { close?(): void }): void {
  try {
    connection.close?.();
  } catch {
    // Already closed.
  }
}

class Handle implements QtestHandle {
  readonly chardev: QtestChardev;
  readonly server: QtestServer;
  readonly connected: Promise<boolean>;
  readonly closed: Promise<void>;
  #stop: () => Promise<void>;
  #connection: (QtestConnection & { close?(): void }) | undefined;

  constructor(
    chardev: QtestChardev,
    server: QtestServer,
    accept: Promise<QtestConnection & { close?(): void }>,
    stop: () => Promise<void>,
  ) {
    this.chardev = chardev;
    this.server = server;
    this.#stop = stop;
    let connected!: (value: boolean) => void;
    this.connected = new Promise((resolve) => (connected = resolve));
    this.closed = (async () => {
      let connection: QtestConnection & { close?(): void };
      try {
        connection = await accept;
      } catch {
        connected(false);
        await stop();
        await server.close();
        return;
      }
      await stop(); // One connection only: stop listening.
      this.#connection = connection;
      connected(true);
      try {
        await server.serve(connection);
      } catch {
        // Closed before the session started.
      } finally {
        closeConnection(connection);
        await server.close();
      }
    })();
  }

  async close(): Promise<void> {
    await this.#stop();
    // Closing the socket first releases reads and writes a peer left hanging.
    if (this.#connection) closeConnection(this.#connection);
    await this.server.close();
    await this.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function removeStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw new Error(`Cannot listen on qtest socket '${path}': ${messageOf(error)}`);
  }
  if (!info.isSocket) {
    throw new Error(`Cannot listen on qtest socket '${path}': it exists and is not a socket`);
  }
  // QEMU unlinks the path before binding too.
  await Deno.remove(path);
}

function listenerHandle(
  chardev: QtestChardev,
  server: QtestServer,
  listener: Deno.Listener,
): Handle {
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      if (chardev.kind !== "unix") return;
      // Deno unlinks the socket when the listener closes; make sure of it.
      try {
        if ((await Deno.lstat(chardev.path)).isSocket) await Deno.remove(chardev.path);
      } catch {
        // Gone already.
      }
    })();
  return new Handle(chardev, server, listener.accept().then(connectionFromConn), stop);
}

/**
 * Starts a qtest server for `machine` on the transport a QEMU `-qtest`
 * chardev string names, and returns once it is listening (or connected):
 *
 * - `stdio`: standard input and output (output carries replies only; the
 *   log defaults to standard error);
 * - `unix:PATH`: connects to PATH as a client, as QEMU does (the test
 *   harness listens);
 * - `unix:PATH,server=on[,wait=off]`: listens on PATH, serves one connection,
 *   and removes the socket file;
 * - `tcp:HOST:PORT[,server=on]`: the same over TCP; HOST must be a loopback
 *   address unless `allowRemoteHosts` is set. Port 0 with `server=on` binds a
 *   free port ({@linkcode QtestHandle.chardev} tells which).
 *
 * The session ends when the peer's input ends; then
 * {@linkcode QtestHandle.closed} resolves.
 *
 * @param machine The machine.
 * @param chardev The transport, e.g. `unix:/tmp/qtest.sock,server=on`.
 * @param options Log target, limits, remote hosts.
 * @returns The running transport.
 * @throws {Error} When the chardev string is invalid or the transport cannot be opened.
 *
 * @example Serve qtest on a TCP port and talk to it
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { startQtest } from "./qtest_server.ts";
 * import { QtestClient } from "./qtest_client.ts";
 * import { equal } from "node:assert/strict";
 * await using machine = await Machine.create({});
 * await using qtest = await startQtest(machine, "tcp:127.0.0.1:0,server=on", { log: "none" });
 * if (qtest.chardev.kind !== "tcp") throw new Error("unreachable");
 * await using client = await QtestClient.connect(`tcp:127.0.0.1:${qtest.chardev.port}`);
 * equal(await client.command("outl 0xcf8 0x80000000"), "OK");
 * equal(await client.command("inl 0xcfc"), "OK 0x29c08086");
 * ```
 */
export async function startQtest(
  machine: QtestMachine,
  chardev: string,
  options: StartQtestOptions = {},
): Promise<QtestHandle> {
  const parsed = parseChardev(chardev, { allowRemoteHosts: options.allowRemoteHosts ?? false });
  const server = new QtestServer(machine, options);
  try {
    switch (parsed.kind) {
      case "stdio":
        return new Handle(
          parsed,
          server,
          Promise.resolve({ readable: Deno.stdin.readable, writable: Deno.stdout.writable }),
          async () => {},
        );
      case "unix": {
        if (!parsed.server) {
          let conn: Deno.Conn;
          try {
            conn = await Deno.connect({ transport: "unix", path: parsed.path });
          } catch (error) {
            throw new Error(
              `Cannot connect to qtest socket '${parsed.path}': ${messageOf(error)}`,
            );
          }
          return new Handle(
            parsed,
            server,
            Promise.resolve(connectionFromConn(conn)),
            async () => {},
          );
        }
        await removeStaleSocket(parsed.path);
        let listener: Deno.Listener;
        try {
          listener = Deno.listen({ transport: "unix", path: parsed.path });
        } catch (error) {
          throw new Error(
            `Cannot listen on qtest socket '${parsed.path}': ${messageOf(error)}`,
          );
        }
        return listenerHandle(parsed, server, listener);
      }
      case "tcp": {
        const where = `${parsed.hostname}:${parsed.port}`;
        if (!parsed.server) {
          let conn: Deno.Conn;
          try {
            conn = await Deno.connect({ hostname: parsed.hostname, port: parsed.port });
          } catch (error) {
            throw new Error(`Cannot connect to qtest at ${where}: ${messageOf(error)}`);
          }
          return new Handle(
            parsed,
            server,
            Promise.resolve(connectionFromConn(conn)),
            async () => {},
          );
        }
        let listener: Deno.TcpListener;
        try {
          listener = Deno.listen({ hostname: parsed.hostname, port: parsed.port });
        } catch (error) {
          throw new Error(`Cannot listen for qtest on ${where}: ${messageOf(error)}`);
        }
        return listenerHandle({ ...parsed, port: listener.addr.port }, server, listener);
      }
    }
  } catch (error) {
    await server.close();
    throw error;
  }
}
