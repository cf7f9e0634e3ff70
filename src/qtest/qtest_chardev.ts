/**
 * The character-device strings QEMU's `-qtest` takes, reduced to the
 * transports dmaworks serves: `stdio`, `unix:PATH[,server=on][,wait=off]` and
 * `tcp:HOST:PORT[,server=on][,wait=off]`.
 *
 * @module
 */

/**
 * A parsed qtest character device.
 *
 * @example
 * ```ts
 * import { parseChardev, type QtestChardev } from "./qtest_chardev.ts";
 * import { equal } from "node:assert/strict";
 * const chardev: QtestChardev = parseChardev("unix:/tmp/qtest.sock,server=on");
 * equal(chardev.kind === "unix" && chardev.server, true);
 * ```
 */
export type QtestChardev =
  | {
    /** The process's standard input and output. */
    readonly kind: "stdio";
  }
  | {
    /** A Unix domain socket. */
    readonly kind: "unix";
    /** The socket's path. */
    readonly path: string;
    /** Listen on `path` (true) or connect to it (false, QEMU's default). */
    readonly server: boolean;
    /** QEMU's `wait` (only meaningful with `server`; dmaworks never blocks on it). */
    readonly wait: boolean;
  }
  | {
    /** A TCP socket. */
    readonly kind: "tcp";
    /** Host name or address (loopback unless remote hosts are allowed). */
    readonly hostname: string;
    /** Port, 0 … 65535 (0 with `server`: any free port). */
    readonly port: number;
    /** Listen (true) or connect (false). */
    readonly server: boolean;
    /** QEMU's `wait` (only meaningful with `server`). */
    readonly wait: boolean;
  };

/**
 * Options for {@linkcode parseChardev}.
 *
 * @example
 * ```ts
 * import { type ParseChardevOptions, parseChardev } from "./qtest_chardev.ts";
 * import { equal } from "node:assert/strict";
 * const options: ParseChardevOptions = { allowRemoteHosts: true };
 * equal(parseChardev("tcp:0.0.0.0:4444,server=on", options).kind, "tcp");
 * ```
 */
export interface ParseChardevOptions {
  /**
   * Accept TCP hosts other than 127.0.0.1, localhost and ::1 (default
   * false). qtest gives whoever connects full control of guest memory, so
   * only allow this on a trusted network.
   */
  allowRemoteHosts?: boolean;
}

const LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1"];

function parseBool(spec: string, key: string, value: string | undefined): boolean {
  if (value === undefined) return true; // QEMU's short form: "server" means server=on
  switch (value.toLowerCase()) {
    case "on":
    case "yes":
    case "true":
      return true;
    case "off":
    case "no":
    case "false":
      return false;
  }
  throw new Error(
    `Invalid qtest chardev '${spec}': option '${key}' takes on or off, not '${value}'`,
  );
}

function parseOptions(spec: string, options: string[]): { server: boolean; wait?: boolean } {
  let server = false;
  let wait: boolean | undefined;
  for (const option of options) {
    const eq = option.indexOf("=");
    const key = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? undefined : option.slice(eq + 1);
    if (key === "server") server = parseBool(spec, key, value);
    else if (key === "wait") wait = parseBool(spec, key, value);
    else if (key === "nowait" && value === undefined) wait = false;
    else if (key === "") throw new Error(`Invalid qtest chardev '${spec}': empty option`);
    else {
      throw new Error(
        `Invalid qtest chardev '${spec}': unsupported option '${key}' (supported: server, wait)`,
      );
    }
  }
  if (!server && wait !== undefined) {
    // QEMU's own rule.
    throw new Error(
      `Invalid qtest chardev '${spec}': 'wait' option is incompatible with socket in client connect mode`,
    );
  }
  return wait === undefined ? { server } : { server, wait };
}

function parsePort(spec: string, text: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) {
    throw new Error(
      `Invalid qtest chardev '${spec}': invalid port '${text}' (expected 0 to 65535)`,
    );
  }
  return Number(text);
}

/**
 * Parses a qtest character device string as QEMU's `-qtest` takes it.
 *
 * - `stdio`: standard input and output;
 * - `unix:PATH`: connect to the Unix socket PATH (QEMU's default: the test
 *   harness listens); add `,server=on` to listen on PATH instead;
 * - `tcp:HOST:PORT`: connect to HOST:PORT, or listen with `,server=on`.
 *   HOST must be 127.0.0.1, localhost or ::1 (also written `[::1]`) unless
 *   `allowRemoteHosts` is set.
 *
 * `wait=on|off` (and the old `nowait`) is accepted with `server`; the short
 * form `server` means `server=on`.
 *
 * @param spec The chardev string.
 * @param options Whether non-loopback TCP hosts are allowed.
 * @returns The parsed chardev.
 * @throws {Error} With a message naming the problem, when the string is invalid.
 *
 * @example
 * ```ts
 * import { parseChardev } from "./qtest_chardev.ts";
 * import { deepEqual, throws } from "node:assert/strict";
 * deepEqual(parseChardev("unix:/tmp/qtest.sock,server=on,wait=off"), {
 *   kind: "unix",
 *   path: "/tmp/qtest.sock",
 *   server: true,
 *   wait: false,
 * });
 * deepEqual(parseChardev("tcp:127.0.0.1:4444"), {
 *   kind: "tcp",
 *   hostname: "127.0.0.1",
 *   port: 4444,
 *   server: false,
 *   wait: true,
 * });
 * throws(() => parseChardev("tcp:192.0.2.1:4444,server=on"), /not a loopback/);
 * ```
 */
export function parseChardev(spec: string, options: ParseChardevOptions = {}): QtestChardev {
  const colon = spec.indexOf(":");
  const backend = colon < 0 ? spec.split(",")[0]! : spec.slice(0, colon);
  if (backend === "stdio") {
    if (spec !== "stdio") {
      throw new Error(`Invalid qtest chardev '${spec}': stdio takes no path or options`);
    }
    return { kind: "stdio" };
  }
  if (backend !== "unix" && backend !== "tcp") {
    throw new Error(
      `Invalid qtest chardev '${spec}': unknown backend '${backend}' (expected stdio, unix:PATH or tcp:HOST:PORT)`,
    );
  }
  if (colon < 0) {
    throw new Error(
      `Invalid qtest chardev '${spec}': expected ${
        backend === "unix" ? "unix:PATH" : "tcp:HOST:PORT"
      }`,
    );
  }
  const [target = "", ...rest] = spec.slice(colon + 1).split(",");
  const { server, wait } = parseOptions(spec, rest);
  if (backend === "unix") {
    if (target === "") throw new Error(`Invalid qtest chardev '${spec}': empty socket path`);
    if (target.includes("\0")) {
      throw new Error(`Invalid qtest chardev '${spec}': the socket path contains a NUL byte`);
    }
    return { kind: "unix", path: target, server, wait: wait ?? true };
  }
  const portColon = target.lastIndexOf(":");
  if (portColon < 0) {
    throw new Error(`Invalid qtest chardev '${spec}': expected tcp:HOST:PORT`);
  }
  let hostname = target.slice(0, portColon);
  const port = parsePort(spec, target.slice(portColon + 1));
  if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
  if (hostname === "") {
    if (!options.allowRemoteHosts) {
      throw new Error(
        `Invalid qtest chardev '${spec}': an empty host means every interface; name 127.0.0.1, localhost or ::1 (or allow remote hosts)`,
      );
    }
    hostname = server ? "0.0.0.0" : "127.0.0.1";
  }
  if (!options.allowRemoteHosts && !LOOPBACK_HOSTS.includes(hostname.toLowerCase())) {
    throw new Error(
      `Invalid qtest chardev '${spec}': host '${hostname}' is not a loopback address (127.0.0.1, localhost or ::1); qtest gives full control of the machine, so remote hosts must be allowed explicitly`,
    );
  }
  return { kind: "tcp", hostname, port, server, wait: wait ?? true };
}

/**
 * Formats a chardev back into the string form {@linkcode parseChardev}
 * reads.
 *
 * @param chardev The chardev.
 * @returns The string, e.g. `tcp:127.0.0.1:4444,server=on`.
 *
 * @example
 * ```ts
 * import { formatChardev, parseChardev } from "./qtest_chardev.ts";
 * import { equal } from "node:assert/strict";
 * equal(formatChardev(parseChardev("tcp:[::1]:80,server")), "tcp:[::1]:80,server=on");
 * equal(formatChardev(parseChardev("unix:/run/q.sock")), "unix:/run/q.sock");
 * ```
 */
export function formatChardev(chardev: QtestChardev): string {
  if (chardev.kind === "stdio") return "stdio";
  const target = chardev.kind === "unix"
    ? chardev.path
    : `${
      chardev.hostname.includes(":") ? `[${chardev.hostname}]` : chardev.hostname
    }:${chardev.port}`;
  const flags = chardev.server ? `,server=on${chardev.wait ? "" : ",wait=off"}` : "";
  return `${chardev.kind}:${target}${flags}`;
}
