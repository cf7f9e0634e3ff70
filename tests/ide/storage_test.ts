// Disk storage: raw image files (read-only, locking, flush, partial sectors,
// views of SharedArrayBuffers) and the in-memory disk.
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { checkDiskRange, SECTOR_SIZE } from "../../src/storage/disk_backend.ts";
import { MemoryDisk } from "../../src/storage/memory_disk.ts";
import { openDiskBackend } from "../../src/storage/open_disk.ts";
import { RawImage } from "../../src/storage/raw_image.ts";
import { pattern } from "./ide_rig.ts";

async function tempImage(bytes: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".img" });
  await Deno.writeFile(path, bytes);
  return path;
}

Deno.test("RawImage reads and writes through SharedArrayBuffer views, in call order", async () => {
  const data = pattern(64 * 1024, 5);
  const path = await tempImage(data);
  try {
    await using image = await RawImage.open(path);
    equal(image.size, data.length);
    equal(image.readonly, false);
    const ram = new Uint8Array(new SharedArrayBuffer(256 * 1024));
    const view = ram.subarray(4096, 4096 + 8192);
    await image.read(1024, view);
    deepEqual(view, data.subarray(1024, 1024 + 8192));
    // A write then a read of the same bytes, both started before either ends.
    const fresh = pattern(512, 77);
    const out = new Uint8Array(512);
    await Promise.all([image.write(512, fresh), image.read(512, out)]);
    deepEqual(out, fresh);
    await image.flush();
  } finally {
    await Deno.remove(path);
  }
  // The write reached the file.
});

Deno.test("RawImage: the data written is in the file after close", async () => {
  const path = await tempImage(new Uint8Array(4096));
  try {
    const image = RawImage.openSync(path);
    await image.write(1024, new Uint8Array([1, 2, 3, 4]));
    await image.flush();
    await image.close();
    await image.close(); // idempotent
    const bytes = await Deno.readFile(path);
    deepEqual([...bytes.subarray(1024, 1028)], [1, 2, 3, 4]);
    await rejects(image.read(0, new Uint8Array(1)), /closed/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("RawImage: a size that is not whole sectors rounds up, the tail reads as zeros", async () => {
  const data = pattern(1000, 3);
  const path = await tempImage(data);
  try {
    await using image = await RawImage.open(path);
    equal(image.size, 1024);
    const out = new Uint8Array(512).fill(0xee);
    await image.read(512, out);
    deepEqual(out.subarray(0, 488), data.subarray(512));
    ok(out.subarray(488).every((b) => b === 0));
    await image.write(512, new Uint8Array(512).fill(9));
    equal((await Deno.stat(path)).size, 1024);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("RawImage: read-only images are opened read-only and refuse writes", async () => {
  const data = pattern(4096, 8);
  const path = await tempImage(data);
  try {
    await using image = await RawImage.open(path, { readonly: true });
    equal(image.readonly, true);
    await rejects(image.write(0, new Uint8Array(512)), /read-only/);
    await image.flush(); // nothing to make durable
    deepEqual(await Deno.readFile(path), data);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("RawImage: ranges outside the disk are refused", async () => {
  const path = await tempImage(new Uint8Array(1024));
  try {
    await using image = await RawImage.open(path);
    await rejects(image.read(1024, new Uint8Array(1)), RangeError);
    await rejects(image.write(-512, new Uint8Array(512)), RangeError);
    await rejects(image.read(512, new Uint8Array(1024)), RangeError);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("RawImage: a writer excludes other users of the image, readers share it", async () => {
  const path = await tempImage(new Uint8Array(1024));
  try {
    {
      await using writer = await RawImage.open(path);
      throws(() => RawImage.openSync(path), /locked/);
      throws(() => RawImage.openSync(path, { readonly: true }), /locked/);
      equal(writer.size, 1024);
    }
    await using a = await RawImage.open(path, { readonly: true });
    await using b = await RawImage.open(path, { readonly: true });
    throws(() => RawImage.openSync(path), /locked/);
    equal(a.size + b.size, 2048);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("RawImage: missing files and directories cannot be opened", async () => {
  throws(
    () => RawImage.openSync("/nonexistent/dir/disk.img"),
    /Cannot open disk image '\/nonexistent/,
  );
  const dir = await Deno.makeTempDir();
  try {
    throws(() => RawImage.openSync(dir, { readonly: true }), /Cannot open disk image/);
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("MemoryDisk: sparse, zero-filled, sector-rounded, read-only option", async () => {
  const disk = new MemoryDisk(1000);
  equal(disk.size, 1024);
  const out = new Uint8Array(1024).fill(1);
  await disk.read(0, out);
  ok(out.every((b) => b === 0));
  // A write across a 64 KiB block boundary.
  const big = new MemoryDisk(256 * 1024);
  const data = pattern(8192, 4);
  await big.write(65536 - 4096, data);
  const back = new Uint8Array(8192);
  await big.read(65536 - 4096, back);
  deepEqual(back, data);
  await rejects(big.read(256 * 1024 - 10, new Uint8Array(20)), RangeError);
  const ro = new MemoryDisk(4096, { readonly: true });
  await rejects(ro.write(0, new Uint8Array(512)), /read-only/);
  await ro.flush();
  await big.close();
  throws(() => new MemoryDisk(-1), RangeError);
});

Deno.test("openDiskBackend: file or memory, read-only honoured", async () => {
  const path = await tempImage(new Uint8Array(2048));
  try {
    const base = { kind: "disk" as const, drive: "d0", bus: 0, unit: 0, properties: {} };
    const file = openDiskBackend({ ...base, file: path, readonly: true });
    equal(file.size, 2048);
    equal(file.readonly, true);
    await file.close();
    const memory = openDiskBackend({ ...base, size: 1 << 20, readonly: false });
    equal(memory.size, 1 << 20);
    equal(SECTOR_SIZE, 512);
    throws(() => checkDiskRange(512, 0, 513), RangeError);
  } finally {
    await Deno.remove(path);
  }
});
