/**
 * A qtest client: sends request lines, matches replies to them in order, and
 * tracks the interrupt levels the server reports asynchronously
 * (`IRQ raise N` / `IRQ lower N`). It talks to dmaworks or to QEMU alike.
 *
 * @module
 */

import { parseChardev } from "./qtest_chardev.ts";
import {
  type ClosableConnection,
  connectionFromConn,
  type QtestConnection,
} from "./qtest_connection.ts";
import { encodeText, LineReader } from "./qtest_lines.ts";

/**
 * Options for {@linkcode QtestClient}.
 *
 * @example
 * ```ts
 * import { QtestClient, type QtestClientOptions } from "./qtest_client.ts";
 * import { equal } from "node:assert/strict";
 * // A server that never answers.
 * const toServer = new TransformStream<Uint8Array, Uint8Array>();
 * const options: QtestClientOptions = { timeoutMs: 10, onLine: (line) => console.log(line) };
 * const client = new QtestClient({ readable: new ReadableStream(), writable: toServer.writable }, options);
 * const error = await client.command("readl 0").catch((e: Error) => e.message);
 * equal(error, "No reply to qtest command 'readl 0': No qtest reply to 'readl 0' within 10 ms");
 * await client.close();
 * ```
 */
export interface QtestClientOptions {
  /**
   * How long a command may wait for its reply (ms). After a timeout the
   * client is unusable (replies could no longer be matched to requests).
   * Default: no limit.
   */
  timeoutMs?: number;
  /** Called with every line the server sends (replies and IRQ lines), in order. */
  onLine?: (line: string) => void;
  /** Longest line accepted from the server (default 256 MiB). */
  maxLineLength?: number;
}

/**
 * Options for {@linkcode QtestClient.connect}.
 *
 * @example
 * ```ts
 * import { QtestClient, type QtestConnectOptions } from "./qtest_client.ts";
 * import { rejects } from "node:assert/strict";
 * const options: QtestConnectOptions = { timeoutMs: 1000 }; // loopback hosts only
 * await rejects(QtestClient.connect("tcp:192.0.2.1:4444", options), /not a loopback address/);
 * ```
 */
export interface QtestConnectOptions extends QtestClientOptions {
  /** Allow TCP hosts other than loopback ones (default false). */
  allowRemoteHosts?: boolean;
}

/**
 * Options for {@linkcode QtestClient.waitIrq}.
 *
 * @example
 * ```ts
 * import { QtestClient, type QtestWaitIrqOptions } from "./qtest_client.ts";
 * import { equal } from "node:assert/strict";
 * const fromServer = new TransformStream<Uint8Array, Uint8Array>();
 * const client = new QtestClient({ readable: fromServer.readable, writable: new WritableStream() });
 * const options: QtestWaitIrqOptions = { level: true, timeoutMs: 5000 };
 * const raised = client.waitIrq(20, options);
 * const writer = fromServer.writable.getWriter();
 * await writer.write(new TextEncoder().encode("IRQ raise 20\n"));
 * equal(await raised, true);
 * await writer.close();
 * await client.close();
 * ```
 */
export interface QtestWaitIrqOptions {
  /** The level to wait for (default true: raised). */
  level?: boolean;
  /** Give up after this long (ms, default 5000). */
  timeoutMs?: number;
}

interface Pending {
  readonly line: string;
  readonly resolve: (reply: string) => void;
  readonly reject: (error: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

interface IrqWaiter {
  readonly line: number;
  readonly level: boolean;
  readonly resolve: (reached: boolean) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

const IRQ_LINE = /^IRQ (raise|lower) (\d+)$/;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A qtest client over any byte-stream pair: a socket, or a spawned
 * process's stdio (`{ readable: child.stdout, writable: child.stdin }`).
 *
 * @example Drive a dmaworks qtest server over a Unix socket
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { startQtest } from "./qtest_server.ts";
 * import { QtestClient } from "./qtest_client.ts";
 * import { equal } from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * {
 *   await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
 *   await using qtest = await startQtest(machine, `unix:${dir}/qtest.sock,server=on`, { log: "none" });
 *   await using client = await QtestClient.connect(`unix:${dir}/qtest.sock`);
 *   equal(await client.command("irq_intercept_in ioapic"), "OK");
 *   // Program edu's BAR0 at 0xfe000000 and enable memory decoding.
 *   for (const line of ["outl 0xcf8 0x80002010", "outl 0xcfc 0xfe000000", "outl 0xcf8 0x80002004", "outw 0xcfc 2"]) {
 *     equal(await client.command(line), "OK");
 *   }
 *   equal(await client.command("writel 0xfe000060 1"), "OK"); // edu: raise interrupt
 *   equal(client.irqLevel(20), true); // reported before the OK
 *   equal(await client.command("writel 0xfe000064 1"), "OK"); // acknowledge
 *   equal(client.irqLevel(20), false);
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class QtestClient implements AsyncDisposable {
  #connection: QtestConnection & { close?(): void };
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: LineReader;
  #options: QtestClientOptions;
  #pending: Pending[] = [];
  #levels = new Map<number, boolean>();
  #waiters: IrqWaiter[] = [];
  #failure: Error | undefined;
  #closed = false;
  #reading: Promise<void>;

  /**
   * Starts reading replies from `connection`. Both streams stay locked until
   * {@linkcode QtestClient.close}.
   *
   * @param connection The streams; a `close()` method, if present, is called by `close()`.
   * @param options Reply time limit and line observer.
   */
  constructor(
    connection: QtestConnection & { close?(): void },
    options: QtestClientOptions = {},
  ) {
    this.#connection = connection;
    this.#options = options;
    this.#writer = connection.writable.getWriter();
    this.#lines = new LineReader(
      connection.readable,
      options.maxLineLength === undefined ? {} : { maxLineLength: options.maxLineLength },
    );
    this.#reading = this.#read();
  }

  /**
   * Connects to a qtest server listening on `unix:PATH` or `tcp:HOST:PORT`
   * (server options such as `,server=on` are not allowed here).
   *
   * @param chardev Where the server listens.
   * @param options Client options and whether remote hosts are allowed.
   * @returns The connected client.
   * @throws {Error} When the address is invalid or the connection fails.
   *
   * @example Connect to a server on a loopback TCP port
   * ```ts
   * import { QtestClient } from "./qtest_client.ts";
   * import { equal } from "node:assert/strict";
   * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * const accepted = listener.accept();
   * await using client = await QtestClient.connect(`tcp:127.0.0.1:${listener.addr.port}`);
   * using server = await accepted; // a stand-in server that answers one request
   * const reply = client.command("endianness");
   * await server.read(new Uint8Array(64));
   * await server.write(new TextEncoder().encode("OK little\n"));
   * equal(await reply, "OK little");
   * ```
   */
  static async connect(chardev: string, options: QtestConnectOptions = {}): Promise<QtestClient> {
    const parsed = parseChardev(chardev, { allowRemoteHosts: options.allowRemoteHosts ?? false });
    if (parsed.kind === "stdio" || parsed.server) {
      throw new Error(
        `Cannot connect a qtest client to '${chardev}': expected unix:PATH or tcp:HOST:PORT`,
      );
    }
    let conn: Deno.Conn;
    try {
      conn = parsed.kind === "unix"
        ? await Deno.connect({ transport: "unix", path: parsed.path })
        : await Deno.connect({ hostname: parsed.hostname, port: parsed.port });
    } catch (error) {
      throw new Error(`Cannot connect to qtest at '${chardev}': ${messageOf(error)}`);
    }
    const connection: ClosableConnection = connectionFromConn(conn);
    return new QtestClient(connection, options);
  }

  /**
   * Resolves when the server's output has ended (or the client is closed).
   *
   * @example
   * ```ts
   * import { QtestClient } from "./qtest_client.ts";
   * import { rejects } from "node:assert/strict";
   * // A server whose output ends after one line.
   * const readable = ReadableStream.from([new TextEncoder().encode("IRQ raise 20\n")]);
   * const client = new QtestClient({ readable, writable: new WritableStream() });
   * await client.closed;
   * await rejects(client.command("readl 0"), /The qtest connection closed/);
   * await client.close();
   * ```
   */
  get closed(): Promise<void> {
    return this.#reading;
  }

  /**
   * Sends one request line and returns its reply. Calls may overlap: lines
   * are sent in call order and replies matched in the same order.
   *
   * @param line The request, without a newline.
   * @returns The reply line, without its newline (e.g. `OK 0x0080`).
   * @throws {Error} When the line contains a newline, the connection is
   * closed, or the reply does not come within `timeoutMs`.
   *
   * @example Overlapping commands get their replies in order
   * ```ts
   * import { QtestClient } from "./qtest_client.ts";
   * import { deepEqual } from "node:assert/strict";
   * const fromServer = new TransformStream<Uint8Array, Uint8Array>();
   * const client = new QtestClient({
   *   readable: fromServer.readable,
   *   writable: new WritableStream(),
   * });
   * const replies = Promise.all([
   *   client.command("readb 0x1000"),
   *   client.command("writeb 0x1000 1"),
   * ]);
   * const server = fromServer.writable.getWriter();
   * await server.write(new TextEncoder().encode("OK 0x0000000000000000\nOK\n"));
   * deepEqual(await replies, ["OK 0x0000000000000000", "OK"]);
   * await server.close();
   * await client.close();
   * ```
   */
  command(line: string): Promise<string> {
    if (line.includes("\n")) {
      return Promise.reject(new Error("A qtest command must not contain a newline"));
    }
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error("The qtest client is closed"));
    return new Promise<string>((resolve, reject) => {
      const pending: Pending = { line, resolve, reject };
      const timeout = this.#options.timeoutMs;
      if (timeout !== undefined) {
        pending.timer = setTimeout(() => {
          this.#fail(new Error(`No qtest reply to '${line}' within ${timeout} ms`), true);
        }, timeout);
      }
      this.#pending.push(pending);
      this.#writer.write(encodeText(`${line}\n`)).catch((error) => {
        this.#fail(
          new Error(`Cannot send qtest command '${line}': ${messageOf(error)}`),
          true,
        );
      });
    });
  }

  /**
   * The level of interrupt line `line` as last reported by the server
   * (false until reported).
   *
   * @param line The line number (for dmaworks: the GSI).
   * @returns Whether the line is raised.
   *
   * @example
   * ```ts
   * import { QtestClient } from "./qtest_client.ts";
   * import { equal } from "node:assert/strict";
   * const lines = "IRQ raise 20\nIRQ raise 21\nIRQ lower 20\n";
   * const readable = ReadableStream.from([new TextEncoder().encode(lines)]);
   * const client = new QtestClient({ readable, writable: new WritableStream() });
   * await client.closed; // every line read
   * equal(client.irqLevel(20), false);
   * equal(client.irqLevel(21), true);
   * equal(client.irqLevel(5), false); // never reported
   * await client.close();
   * ```
   */
  irqLevel(line: number): boolean {
    return this.#levels.get(line) ?? false;
  }

  /**
   * Waits until the server reports line `line` at `level` (returns at once if
   * it already has).
   *
   * @param line The line number.
   * @param options The level and a time limit.
   * @returns Whether the level was reached (false on timeout or when the connection ends).
   *
   * @example
   * ```ts
   * import { QtestClient } from "./qtest_client.ts";
   * import { equal } from "node:assert/strict";
   * const fromServer = new TransformStream<Uint8Array, Uint8Array>();
   * const client = new QtestClient({
   *   readable: fromServer.readable,
   *   writable: new WritableStream(),
   * });
   * equal(await client.waitIrq(20, { level: false }), true); // already low: at once
   * equal(await client.waitIrq(20, { timeoutMs: 10 }), false); // never raised
   * await fromServer.writable.close();
   * await client.close();
   * ```
   */
  waitIrq(line: number, options: QtestWaitIrqOptions = {}): Promise<boolean> {
    const level = options.level ?? true;
    if (this.irqLevel(line) === level) return Promise.resolve(true);
    if (this.#closed || this.#failure) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const waiter: IrqWaiter = {
        line,
        level,
        resolve,
        timer: setTimeout(() => this.#settleWaiter(waiter, false), options.timeoutMs ?? 5000),
      };
      this.#waiters.push(waiter);
    });
  }

  /**
   * Closes the client: signals end of input to the server, stops reading,
   * rejects unanswered commands, and releases the connection.
   *
   * @example
   * ```ts
   * import { QtestClient } from "./qtest_client.ts";
   * import { equal, rejects } from "node:assert/strict";
   * let serverInputEnded = false;
   * const client = new QtestClient({
   *   readable: new ReadableStream(),
   *   writable: new WritableStream({ close: () => void (serverInputEnded = true) }),
   * });
   * const unanswered = client.command("readl 0");
   * await client.close();
   * equal(serverInputEnded, true);
   * await rejects(unanswered, /No reply to qtest command 'readl 0'/);
   * await rejects(client.command("readl 0"), /closed/);
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#failure) {
      // A write may be stuck behind a peer that stopped reading: do not wait for it.
      this.#writer.abort().catch(() => {});
    } else {
      try {
        await this.#writer.close();
      } catch {
        // The peer is already gone.
      }
    }
    await this.#lines.cancel();
    await this.#reading;
    try {
      this.#connection.close?.();
    } catch {
      // Already closed (a Deno socket closes itself when its streams end).
    }
  }

  /** Closes the client (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #read(): Promise<void> {
    try {
      for (;;) {
        const line = await this.#lines.read();
        if (line === undefined) break;
        if (line.tooLong) {
          this.#options.onLine?.(line.text);
          this.#pending.shift()?.reject(
            new Error(`The qtest reply is too long: ${line.length} bytes`),
          );
          continue;
        }
        this.#receive(line.text);
      }
    } catch (error) {
      if (!this.#closed) {
        this.#fail(new Error(`Qtest connection failed: ${messageOf(error)}`));
      }
    }
    this.#fail(new Error("The qtest connection closed"));
  }

  #receive(text: string): void {
    this.#options.onLine?.(text);
    const irq = IRQ_LINE.exec(text);
    if (irq) {
      const line = Number(irq[2]);
      const level = irq[1] === "raise";
      this.#levels.set(line, level);
      for (const waiter of [...this.#waiters]) {
        if (waiter.line === line && waiter.level === level) this.#settleWaiter(waiter, true);
      }
      return;
    }
    const pending = this.#pending.shift();
    if (!pending) return; // Not a reply to anything: only onLine sees it.
    clearTimeout(pending.timer);
    pending.resolve(text);
  }

  #settleWaiter(waiter: IrqWaiter, reached: boolean): void {
    const index = this.#waiters.indexOf(waiter);
    if (index < 0) return;
    this.#waiters.splice(index, 1);
    clearTimeout(waiter.timer);
    waiter.resolve(reached);
  }

  #fail(error: Error, stop = false): void {
    this.#failure ??= error;
    for (const pending of this.#pending.splice(0)) {
      clearTimeout(pending.timer);
      pending.reject(
        new Error(`No reply to qtest command '${pending.line}': ${this.#failure.message}`),
      );
    }
    for (const waiter of [...this.#waiters]) this.#settleWaiter(waiter, false);
    if (stop) void this.#lines.cancel();
  }
}
