// Headless Chromium for the report test: Debian's `chromium` package (or
// another Chromium on PATH). The test skips, saying why, when there is none.

/** The first Chromium binary on PATH, or undefined. */
export async function findChromium(): Promise<string | undefined> {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      const out = await new Deno.Command(name, {
        args: ["--version"],
        stdout: "piped",
        stderr: "null",
      })
        .output();
      if (out.success) return name;
    } catch {
      // not installed under this name
    }
  }
  return undefined;
}

/** Loads `file` in headless Chromium with the network off; returns its DOM and a screenshot. */
export async function renderInChromium(
  chromium: string,
  file: string,
): Promise<{ dom: string; png: Uint8Array }> {
  const profile = await Deno.makeTempDir({ prefix: "dmaworks-chromium-" });
  const shot = `${profile}/page.png`;
  const common = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    `--user-data-dir=${profile}`,
    // Any request the page makes fails: the report must not need one.
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
  ];
  const url = new URL(`file://${await Deno.realPath(file)}`).href;
  try {
    const dom = await new Deno.Command(chromium, {
      args: [...common, "--dump-dom", url],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!dom.success) throw new Error(`${chromium} --dump-dom failed`);
    const png = await new Deno.Command(chromium, {
      args: [...common, `--screenshot=${shot}`, "--window-size=1000,2000", url],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!png.success) throw new Error(`${chromium} --screenshot failed`);
    return { dom: new TextDecoder().decode(dom.stdout), png: await Deno.readFile(shot) };
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/**
 * What a PNG holds: its size, and the share of its (filtered, inflated)
 * scanline bytes that are neither 0 nor 255 — about 0 for a blank page.
 */
export async function pngStats(
  png: Uint8Array,
): Promise<{ width: number; height: number; ink: number }> {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!signature.every((b, i) => png[i] === b)) throw new Error("Not a PNG");
  let width = 0;
  let height = 0;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 8 <= png.length;) {
    const length = view.getUint32(at);
    const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
    } else if (type === "IDAT") idat.push(data);
    at += 12 + length;
  }
  const stream = new Blob(idat as BlobPart[]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  let ink = 0;
  for (const b of raw) if (b !== 0 && b !== 255) ink++;
  return { width, height, ink: ink / Math.max(1, raw.length) };
}
