/**
 * The byte-stream pair a qtest session runs over, and its construction from
 * a Deno socket.
 *
 * @module
 */

/**
 * A bidirectional byte stream: a socket, a process's stdio, a pair of pipes.
 *
 * @example
 * ```ts
 * import type { QtestConnection } from "./qtest_connection.ts";
 * import { equal } from "node:assert/strict";
 * // An in-memory loop: what is written comes back.
 * const loop = new TransformStream<Uint8Array, Uint8Array>();
 * const connection: QtestConnection = { readable: loop.readable, writable: loop.writable };
 * const writer = connection.writable.getWriter();
 * void writer.write(new Uint8Array([1]));
 * const reader = connection.readable.getReader();
 * equal((await reader.read()).value?.[0], 1);
 * ```
 */
export interface QtestConnection {
  /** Bytes from the peer. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
}

/**
 * A {@linkcode QtestConnection} that owns a resource.
 *
 * @example
 * ```ts
 * import { type ClosableConnection, connectionFromConn } from "./qtest_connection.ts";
 * import { equal } from "node:assert/strict";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const client: ClosableConnection = connectionFromConn(
 *   await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
 * );
 * const server = connectionFromConn(await accepted);
 * listener.close();
 * await client.closeWrite();
 * const reader = server.readable.getReader();
 * equal((await reader.read()).done, true); // the peer's end of output
 * reader.releaseLock();
 * server.close();
 * client.close();
 * ```
 */
export interface ClosableConnection extends QtestConnection {
  /** Signals end of output to the peer while still reading its answers. */
  closeWrite(): Promise<void>;
  /** Releases the resource; idempotent. */
  close(): void;
}

/**
 * Wraps a Deno socket. Unlike `conn.readable`, whose end of stream closes the
 * whole socket, the readable returned here leaves the socket open after the
 * peer half-closes, so answers can still be written; the socket is closed by
 * `close()` (or by cancelling the readable).
 *
 * @param conn A connected TCP or Unix socket.
 * @returns The connection; call `close()` when done.
 *
 * @example
 * ```ts
 * import { connectionFromConn } from "./qtest_connection.ts";
 * import { equal } from "node:assert/strict";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const server = connectionFromConn(await accepted);
 * listener.close();
 * await client.write(new TextEncoder().encode("ping"));
 * await client.closeWrite(); // half-close: the server reads EOF...
 * const reader = server.readable.getReader();
 * equal(new TextDecoder().decode((await reader.read()).value), "ping");
 * equal((await reader.read()).done, true);
 * reader.releaseLock();
 * const writer = server.writable.getWriter(); // ...and can still answer
 * await writer.write(new TextEncoder().encode("pong"));
 * writer.releaseLock();
 * const answer = new Uint8Array(4);
 * equal(await client.read(answer), 4);
 * server.close();
 * client.close();
 * ```
 */
export function connectionFromConn(conn: Deno.Conn): ClosableConnection {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Already closed by a stream.
    }
  };
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(64 * 1024);
      let n: number | null;
      try {
        n = closed ? null : await conn.read(buffer);
      } catch (error) {
        if (!closed) throw error;
        n = null;
      }
      try {
        if (n === null) controller.close();
        else controller.enqueue(buffer.subarray(0, n));
      } catch {
        // Cancelled while the read was pending.
      }
    },
    cancel: close,
  }, { highWaterMark: 0 });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      let done = 0;
      while (done < chunk.length) done += await conn.write(chunk.subarray(done));
    },
  });
  return {
    readable,
    writable,
    closeWrite: () => conn.closeWrite(),
    close,
  };
}
