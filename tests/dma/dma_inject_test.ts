// DMA pattern injection: first reads are filled (and only first reads, and
// never what the guest or a device wrote), fills are recorded for replay,
// several producers share the ring, and a run outside RAM is flagged.
import { deepEqual, equal, ok } from "node:assert/strict";
import { DmaInjector, patternBytes } from "../../src/dma/dma_inject.ts";
import { DmaContext } from "../../src/dma/dma_context.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { ObservedMemory } from "../../src/memory/observed_memory.ts";

const P = { data: new Uint8Array([0x11, 0x22, 0x33]), index: 1, stride: 2 };

function setup(size = 1 << 20) {
  const ram = new GuestMemory({ size });
  const injector = new DmaInjector(ram);
  injector.setPatterns([P]);
  const dma = new DmaContext(ram, {
    observe: (a, o, n, d) => injector.observe(a, o, n, d),
  });
  return { ram, injector, dma };
}

Deno.test("a device's first read of untouched RAM gets the pattern, recorded for replay", () => {
  const { ram, injector, dma } = setup();
  injector.op = 7;
  const out = new Uint8Array(9);
  equal(dma.read(0x4000, out).ok, true);
  deepEqual([...out], [...patternBytes(P, 9)]);
  deepEqual([...out], [0x11, 0x22, 0x33, 0x11, 0x24, 0x33, 0x11, 0x26, 0x33]);
  const fills = injector.drain();
  equal(fills.length, 1);
  equal(fills[0]!.address, 0x4000);
  equal(fills[0]!.op, 7);
  deepEqual([...fills[0]!.data], [...out]);
  // The second read sees what is there (the device may have changed it), no new fill.
  ram.write8(0x4000, 0x99);
  equal(dma.ld8(0x4000).ok && (dma.ld8(0x4000) as { value: number }).value, 0x99);
  equal(injector.drain().length, 0);
});

Deno.test("guest writes and device writes are never overwritten by fills", () => {
  const { ram, injector, dma } = setup();
  injector.markWritten(0x1002, 2);
  ram.write16(0x1002, 0xbeef);
  equal(dma.st32le(0x1008, 0xcafef00d).ok, true); // a device write marks too
  const out = new Uint8Array(16);
  dma.read(0x1000, out);
  equal(new DataView(out.buffer).getUint16(2, true), 0xbeef);
  equal(new DataView(out.buffer).getUint32(8, true), 0xcafef00d);
  const fills = injector.drain();
  deepEqual(fills.map((f) => [f.address, f.data.length]), [[0x1000, 2], [0x1004, 4], [0x100c, 4]]);
});

Deno.test("fills are capped per access; the rest of a huge read stays as it was", () => {
  const ram = new GuestMemory({ size: 1 << 20 });
  const injector = new DmaInjector(ram, { maxFillBytes: 8192, maxRecordBytes: 4096 });
  injector.setPatterns([{ data: new Uint8Array([0xaa]), index: 0, stride: 0 }]);
  injector.observe(0, 0, 65536, "read");
  deepEqual(injector.drain().map((f) => [f.address, f.data.length]), [[0, 4096], [4096, 4096]]);
  equal(ram.read8(8191), 0xaa);
  equal(ram.read8(8192), 0);
});

Deno.test("without patterns nothing is filled; disabled injection only checks", () => {
  const ram = new GuestMemory({ size: 1 << 20 });
  const injector = new DmaInjector(ram);
  injector.observe(0x100, 0x100, 16, "read");
  equal(injector.drain().length, 0);
  injector.setPatterns([P]);
  injector.enabled = false;
  injector.observe(0x100, 0x100, 16, "read");
  equal(injector.drain().length, 0);
  equal(ram.read8(0x100), 0);
});

Deno.test("a run that is not guest RAM is flagged (the fuzzer's outside-RAM oracle)", () => {
  const ram = new GuestMemory({ size: 1 << 20 });
  const injector = new DmaInjector(ram);
  equal(injector.violation, undefined);
  injector.observe(0xfff0, 0xfff0, 16, "read");
  equal(injector.violation, undefined);
  injector.observe(0x10_0000 - 8, 0x10_0000 - 8, 16, "write"); // runs past the end of RAM
  injector.observe(0xe000_0000, 0x1000, 16, "read"); // offset does not belong to the address
  deepEqual(injector.violation, { address: 0x10_0000 - 8, length: 16, count: 2 });
});

Deno.test("a worker attaches to the block: fills from both sides share one ring and one bitmap", () => {
  const ram = new GuestMemory({ size: 1 << 20 });
  const main = new DmaInjector(ram);
  main.setPatterns([P]);
  const worker = new DmaInjector(new GuestMemory(ram.descriptor()), { buffer: main.buffer });
  worker.observe(0x2000, 0x2000, 4, "read");
  main.observePhysical(0x2000, 8, "read"); // only the last 4 bytes are new
  deepEqual(main.drain().map((f) => [f.address, f.data.length]), [[0x2000, 4], [0x2004, 4]]);
});

Deno.test("ObservedMemory reports the IOMMU's table reads, so they are filled too", () => {
  const ram = new GuestMemory({ size: 1 << 20 });
  const injector = new DmaInjector(ram);
  injector.setPatterns([{ data: new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), index: 0, stride: 1 }]);
  const observed = new ObservedMemory(
    ram.descriptor(),
    (a, n, d) => injector.observePhysical(a, n, d),
  );
  equal(observed.atomicLoad64(0x3000), 1n);
  observed.write64(0x3008, 5n);
  equal(observed.read64(0x3008), 5n, "written by the IOMMU: not filled");
  equal(observed.read64(0x3010), 1n);
  ok(injector.drain().length === 2);
});
