// Imports dmaworks the way a consumer does: by its name, through a deno.json
// import map, from an HTTP server that serves exactly the files
// `deno publish` would ship (as JSR does, over the network). A machine with
// an IOMMU and a device worker runs a consumer's guest program in an agent
// worker, so every worker module URL must resolve against the served package.
import { deepEqual, equal, ok } from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The files `deno publish` ships, from its dry run. */
async function publishedFiles(): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  equal(out.code, 0, `deno publish --dry-run failed:\n${text}`);
  const files = new Set<string>();
  for (const m of text.matchAll(/file:\/\/(\S+) \(/g)) files.add(relative(ROOT, m[1]!));
  return files;
}

/** Serves the published files over HTTP; records what was asked for. */
async function servePackage(): Promise<
  { host: string; requested: Set<string>; [Symbol.asyncDispose](): Promise<void> }
> {
  const files = await publishedFiles();
  ok(files.has("mod.ts") && files.has("workers/device_worker.ts"), [...files].join(" "));
  ok(![...files].some((f) => f.startsWith("tests/")), "tests must not be published");
  const requested = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname).slice(1);
    requested.add(path);
    if (!files.has(path)) return new Response("Not found", { status: 404 });
    return new Response(await Deno.readFile(join(ROOT, path)), {
      headers: {
        "content-type": path.endsWith(".json") ? "application/json" : "application/typescript",
      },
    });
  });
  return {
    host: `127.0.0.1:${server.addr.port}`,
    requested,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("a consumer imports the package by name from a JSR-like server and runs workers", async () => {
  await using served = await servePackage();
  const { host, requested } = served;
  const project = await Deno.makeTempDir({ prefix: "dmaworks_consumer_" });
  try {
    await Deno.writeTextFile(
      join(project, "deno.json"),
      JSON.stringify({ imports: { "@dmaworks/dmaworks": `http://${host}/mod.ts` } }),
    );
    for (const f of ["consumer_program.ts", "consumer_guest.ts"]) {
      await Deno.copyFile(new URL(f, import.meta.url), join(project, f));
    }
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-import=${host}`,
        `--allow-read=${project}`,
        "consumer_program.ts",
      ],
      cwd: project,
      stdout: "piped",
      stderr: "piped",
      // A private module cache: nothing may come from this checkout's cache.
      env: { DENO_DIR: join(project, ".deno_dir"), NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    equal(run.code, 0, `consumer failed:\n${stdout}\n${stderr}`);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
    deepEqual(result, {
      toDevice: true,
      toRam: true,
      same: true,
      unmapped: false,
      events: ["IO_PAGE_FAULT"],
    });
    // The workers were loaded from the server, not from the file system.
    ok(requested.has("workers/device_worker.ts"), [...requested].join(" "));
    ok(requested.has("workers/agent_worker.ts"), [...requested].join(" "));
  } finally {
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("the ./cli export runs the default machine from a JSR-like server", async () => {
  await using served = await servePackage();
  const scratch = await Deno.makeTempDir({ prefix: "dmaworks_cli_consumer_" });
  try {
    // What `deno run -A jsr:@dmaworks/dmaworks/cli` does, with the package on our server.
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `http://${served.host}/src/cli/main.ts`],
      cwd: scratch,
      stdout: "piped",
      stderr: "piped",
      env: { DENO_DIR: join(scratch, ".deno_dir"), NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    equal(run.code, 0, `cli failed:\n${stdout}\n${stderr}`);
    const verdict = /(\d+) of (\d+) steps passed/.exec(stdout);
    ok(verdict && verdict[1] === verdict[2], stdout);
    ok(served.requested.has("src/workloads/demo.ts"), [...served.requested].join(" "));
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
