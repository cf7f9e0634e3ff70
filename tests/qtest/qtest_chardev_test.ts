import { deepEqual, equal, throws } from "node:assert/strict";
import { formatChardev, parseChardev } from "../../src/qtest/qtest_chardev.ts";

Deno.test("parseChardev reads stdio, unix and tcp in QEMU's syntax", () => {
  deepEqual(parseChardev("stdio"), { kind: "stdio" });
  deepEqual(parseChardev("unix:/tmp/q.sock"), {
    kind: "unix",
    path: "/tmp/q.sock",
    server: false,
    wait: true,
  });
  deepEqual(parseChardev("unix:/tmp/q.sock,server=on"), {
    kind: "unix",
    path: "/tmp/q.sock",
    server: true,
    wait: true,
  });
  deepEqual(parseChardev("unix:/tmp/q.sock,server=on,wait=off"), {
    kind: "unix",
    path: "/tmp/q.sock",
    server: true,
    wait: false,
  });
  // QEMU's old short forms.
  deepEqual(parseChardev("unix:relative.sock,server,nowait"), {
    kind: "unix",
    path: "relative.sock",
    server: true,
    wait: false,
  });
  deepEqual(parseChardev("unix:/x,server=yes,wait=no"), {
    kind: "unix",
    path: "/x",
    server: true,
    wait: false,
  });
  deepEqual(parseChardev("unix:/x,server=off"), {
    kind: "unix",
    path: "/x",
    server: false,
    wait: true,
  });
  deepEqual(parseChardev("tcp:127.0.0.1:4444"), {
    kind: "tcp",
    hostname: "127.0.0.1",
    port: 4444,
    server: false,
    wait: true,
  });
  deepEqual(parseChardev("tcp:localhost:0,server=on,wait=off"), {
    kind: "tcp",
    hostname: "localhost",
    port: 0,
    server: true,
    wait: false,
  });
  deepEqual(parseChardev("tcp:[::1]:65535,server=on"), {
    kind: "tcp",
    hostname: "::1",
    port: 65535,
    server: true,
    wait: true,
  });
  deepEqual(parseChardev("tcp:::1:80").kind === "tcp" && parseChardev("tcp:::1:80"), {
    kind: "tcp",
    hostname: "::1",
    port: 80,
    server: false,
    wait: true,
  });
  equal(parseChardev("tcp:LOCALHOST:1").kind, "tcp");
});

Deno.test("parseChardev rejects non-loopback hosts unless allowed", () => {
  for (
    const spec of [
      "tcp:0.0.0.0:4444,server=on",
      "tcp:192.0.2.1:4444",
      "tcp:example.com:80",
      "tcp:[::]:1,server=on",
    ]
  ) {
    throws(() => parseChardev(spec), /is not a loopback address/, spec);
  }
  throws(() => parseChardev("tcp::4444,server=on"), /an empty host means every interface/);
  deepEqual(parseChardev("tcp:0.0.0.0:4444,server=on", { allowRemoteHosts: true }), {
    kind: "tcp",
    hostname: "0.0.0.0",
    port: 4444,
    server: true,
    wait: true,
  });
  equal(
    (parseChardev("tcp::4444,server=on", { allowRemoteHosts: true }) as { hostname: string })
      .hostname,
    "0.0.0.0",
  );
});

Deno.test("parseChardev names the problem in invalid strings", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /unknown backend ''/],
    ["pty", /unknown backend 'pty'/],
    ["file:/tmp/x", /unknown backend 'file'/],
    ["stdio,signal=off", /stdio takes no path or options/],
    ["stdio:x", /stdio takes no path or options/],
    ["unix", /expected unix:PATH/],
    ["tcp", /expected tcp:HOST:PORT/],
    ["unix:", /empty socket path/],
    ["unix:,server=on", /empty socket path/],
    ["unix:/a\u0000b", /NUL byte/],
    ["tcp:127.0.0.1", /invalid port '127.0.0.1'|expected tcp:HOST:PORT/],
    ["tcp:4444", /expected tcp:HOST:PORT/],
    ["tcp:127.0.0.1:", /invalid port ''/],
    ["tcp:127.0.0.1:65536", /invalid port '65536'/],
    ["tcp:127.0.0.1:-1", /invalid port '-1'/],
    ["tcp:127.0.0.1:0x10", /invalid port '0x10'/],
    ["tcp:127.0.0.1:http", /invalid port 'http'/],
    ["unix:/x,server=maybe", /option 'server' takes on or off, not 'maybe'/],
    ["unix:/x,reconnect=1", /unsupported option 'reconnect'/],
    ["unix:/x,telnet", /unsupported option 'telnet'/],
    ["unix:/x,,server", /empty option/],
    ["unix:/x,wait=off", /'wait' option is incompatible with socket in client connect mode/],
    ["tcp:127.0.0.1:1,nowait", /'wait' option is incompatible/],
  ];
  for (const [spec, pattern] of cases) {
    throws(() => parseChardev(spec), (error: Error) => {
      equal(error.message.startsWith(`Invalid qtest chardev '${spec}': `), true, error.message);
      return pattern.test(error.message);
    }, spec);
  }
});

Deno.test("formatChardev writes what parseChardev reads", () => {
  for (
    const spec of [
      "stdio",
      "unix:/tmp/q.sock",
      "unix:/tmp/q.sock,server=on",
      "unix:/tmp/q.sock,server=on,wait=off",
      "tcp:127.0.0.1:4444",
      "tcp:[::1]:4444,server=on",
      "tcp:localhost:1,server=on,wait=off",
    ]
  ) {
    equal(formatChardev(parseChardev(spec)), spec);
  }
});
