import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  DEFAULT_RAM_SIZE,
  GuestMemory,
  Q35_LOW_LIMIT_LARGE,
  Q35_LOW_LIMIT_SMALL,
  q35LowSize,
} from "../../src/memory/guest_memory.ts";
import { FOUR_GIB } from "../../src/util/address.ts";

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** Asserts that `fn` throws a RangeError with a capitalised message. */
function throwsRange(fn: () => unknown, pattern?: RegExp): void {
  throws(fn, (error: unknown) => {
    if (!(error instanceof RangeError)) return false;
    if (!/^[A-Z]/.test(error.message)) return false;
    return pattern === undefined || pattern.test(error.message);
  });
}

/** A small split machine: 32 KiB below 4 GiB, 32 KiB above. */
function splitMemory(): GuestMemory {
  return new GuestMemory({ size: 64 * KIB, lowLimit: 32 * KIB });
}

Deno.test("q35LowSize: the q35 split rule", () => {
  const cases: Array<[number, number | undefined, number]> = [
    [256 * MIB, undefined, 256 * MIB],
    [2 * GIB, undefined, 2 * GIB],
    [Q35_LOW_LIMIT_SMALL - 4096, undefined, Q35_LOW_LIMIT_SMALL - 4096],
    [Q35_LOW_LIMIT_SMALL, undefined, Q35_LOW_LIMIT_LARGE], // exactly 2.75 GiB → 2 GiB low
    [3 * GIB, undefined, 2 * GIB],
    [8 * GIB, undefined, 2 * GIB],
    [256 * MIB, 64 * MIB, 64 * MIB],
    [64 * MIB, 256 * MIB, 64 * MIB], // the limit never exceeds the RAM
    [8 * GIB, Q35_LOW_LIMIT_SMALL, Q35_LOW_LIMIT_SMALL],
  ];
  for (const [size, limit, expected] of cases) {
    equal(q35LowSize(size, limit), expected, `q35LowSize(${size}, ${limit})`);
  }
  equal(Q35_LOW_LIMIT_SMALL, 0xb000_0000);
  equal(Q35_LOW_LIMIT_LARGE, 0x8000_0000);
});

Deno.test("GuestMemory: 256 MiB (the default) sits entirely below 4 GiB", () => {
  const ram = new GuestMemory();
  equal(ram.size, DEFAULT_RAM_SIZE);
  equal(DEFAULT_RAM_SIZE, 256 * MIB);
  equal(ram.lowSize, 256 * MIB);
  equal(ram.highSize, 0);
  equal(ram.top, 256 * MIB);
  deepEqual(ram.blocks, [{ base: 0, size: 256 * MIB, offset: 0 }]);
  equal(ram.buffer.byteLength, 256 * MIB);
  equal(ram.bytes.length, 256 * MIB);
  ok(ram.buffer instanceof SharedArrayBuffer);
});

Deno.test("GuestMemory: exactly 0xb0000000 bytes puts 2 GiB low and the rest at 4 GiB", () => {
  const ram = new GuestMemory({ size: 0xb000_0000 });
  equal(ram.lowSize, 0x8000_0000);
  equal(ram.highSize, 0x3000_0000);
  equal(ram.top, FOUR_GIB + 0x3000_0000);
  deepEqual(ram.blocks, [
    { base: 0, size: 0x8000_0000, offset: 0 },
    { base: FOUR_GIB, size: 0x3000_0000, offset: 0x8000_0000 },
  ]);
});

Deno.test("GuestMemory: one page below 0xb0000000 stays entirely low", () => {
  const ram = new GuestMemory({ size: 0xb000_0000 - 4096 });
  equal(ram.lowSize, 0xb000_0000 - 4096);
  equal(ram.highSize, 0);
  equal(ram.blocks.length, 1);
  equal(ram.top, 0xb000_0000 - 4096);
});

Deno.test("GuestMemory: the lowLimit option moves the split", () => {
  const ram = new GuestMemory({ size: 1 * MIB, lowLimit: 256 * KIB });
  equal(ram.lowSize, 256 * KIB);
  equal(ram.highSize, 768 * KIB);
  equal(ram.top, FOUR_GIB + 768 * KIB);
  deepEqual(ram.blocks, [
    { base: 0, size: 256 * KIB, offset: 0 },
    { base: FOUR_GIB, size: 768 * KIB, offset: 256 * KIB },
  ]);
  const all = new GuestMemory({ size: 1 * MIB, lowLimit: 2 * MIB });
  equal(all.lowSize, 1 * MIB);
  equal(all.highSize, 0);
  const max = new GuestMemory({ size: 64 * KIB, lowLimit: Q35_LOW_LIMIT_SMALL });
  equal(max.lowSize, 64 * KIB);
});

Deno.test("GuestMemory: invalid lowLimit values are rejected", () => {
  for (const lowLimit of [0, -4096, 4095, 4097, 1.5, NaN, Infinity, 0xb000_1000, 4 * GIB]) {
    throwsRange(
      () => new GuestMemory({ size: 1 * MIB, lowLimit }),
      /^Invalid low RAM limit/,
    );
  }
});

Deno.test("GuestMemory: invalid sizes are rejected", () => {
  for (const size of [0, -4096, 4095, 4097, 1.5, 4096.5, NaN, Infinity, 2 ** 53]) {
    throwsRange(() => new GuestMemory({ size }), /^Invalid RAM size/);
  }
});

Deno.test("GuestMemory: an allocation the host refuses is a RangeError", () => {
  // 2^52 bytes is a valid size on paper; no host can provide it.
  throwsRange(() => new GuestMemory({ size: 2 ** 52 }), /^Cannot allocate/);
});

Deno.test("GuestMemory: 8 GiB of RAM does not touch its pages", () => {
  const before = Deno.memoryUsage().rss;
  let ram: GuestMemory;
  try {
    ram = new GuestMemory({ size: 8 * GIB });
  } catch (error) {
    if (error instanceof RangeError && /^Cannot allocate/.test(error.message)) {
      console.log(`skipped: ${error.message}`);
      return;
    }
    throw error;
  }
  const grown = Deno.memoryUsage().rss - before;
  ok(grown < 64 * MIB, `RSS grew by ${(grown / MIB).toFixed(1)} MiB`);
  equal(ram.lowSize, 2 * GIB);
  equal(ram.highSize, 6 * GIB);
  equal(ram.top, FOUR_GIB + 6 * GIB);
  // The far ends are usable.
  ram.write32(ram.top - 4, 0xcafef00d);
  equal(ram.read32(ram.top - 4), 0xcafef00d);
  equal(ram.bytes[8 * GIB - 1], 0xca);
  equal(ram.read8(ram.top - 5), 0);
});

Deno.test("GuestMemory.offsetOf and isRam at block edges", () => {
  const ram = splitMemory();
  const low = 32 * KIB;
  const top = FOUR_GIB + 32 * KIB;
  equal(ram.top, top);
  const cases: Array<[number, number, number]> = [
    [0, 1, 0],
    [0, low, 0],
    [0, low + 1, -1],
    [low - 1, 1, low - 1], // last byte of low RAM
    [low - 1, 2, -1],
    [low - 8, 8, low - 8],
    [low, 1, -1], // first byte above low RAM
    [0x8000_0000, 1, -1],
    [FOUR_GIB - 1, 1, -1],
    [FOUR_GIB - 1, 2, -1], // straddles the 4 GiB boundary
    [FOUR_GIB, 1, low], // first byte of high RAM
    [FOUR_GIB + 0x10, 4, low + 0x10],
    [FOUR_GIB, 32 * KIB, low],
    [FOUR_GIB, 32 * KIB + 1, -1],
    [top - 1, 1, 64 * KIB - 1], // last byte of RAM
    [top - 4, 8, -1],
    [top, 1, -1],
    [top + 4096, 4, -1],
    [-1, 1, -1],
    [-1, 2, -1],
    [NaN, 1, -1],
    [2 ** 53, 1, -1],
  ];
  for (const [address, length, expected] of cases) {
    equal(ram.offsetOf(address, length), expected, `offsetOf(${address}, ${length})`);
    equal(ram.isRam(address, length), expected >= 0, `isRam(${address}, ${length})`);
  }
  // The default length is 1.
  equal(ram.offsetOf(low - 1), low - 1);
  equal(ram.offsetOf(low), -1);
  equal(ram.isRam(FOUR_GIB), true);
  equal(ram.isRam(top), false);
});

Deno.test("GuestMemory.ramRunLength at block edges", () => {
  const ram = splitMemory();
  const low = 32 * KIB;
  const top = FOUR_GIB + 32 * KIB;
  const cases: Array<[number, number, number]> = [
    [0, 100, 100],
    [0, 1 * MIB, low],
    [low - 16, 100, 16],
    [low - 1, 100, 1],
    [low, 100, 0],
    [FOUR_GIB - 1, 100, 0],
    [FOUR_GIB, 100, 100],
    [FOUR_GIB, 1 * MIB, 32 * KIB],
    [top - 1, 100, 1],
    [top, 100, 0],
    [-1, 100, 0],
    [NaN, 100, 0],
    [0x100, 0, 0],
  ];
  for (const [address, max, expected] of cases) {
    equal(ram.ramRunLength(address, max), expected, `ramRunLength(${address}, ${max})`);
  }
});

Deno.test("GuestMemory: sized accesses are little-endian", () => {
  const ram = splitMemory();
  ram.write32(0x100, 0x11223344);
  deepEqual([...ram.bytes.subarray(0x100, 0x104)], [0x44, 0x33, 0x22, 0x11]);
  equal(ram.read8(0x100), 0x44);
  equal(ram.read16(0x100), 0x3344);
  equal(ram.read16(0x102), 0x1122);
  equal(ram.read32(0x100), 0x11223344);
  ram.write16(0x200, 0xabcd);
  deepEqual([...ram.bytes.subarray(0x200, 0x202)], [0xcd, 0xab]);
  ram.write8(0x300, 0x1ff); // truncated to a byte
  equal(ram.read8(0x300), 0xff);
  ram.write64(0x400, 0x0102030405060708n);
  deepEqual([...ram.bytes.subarray(0x400, 0x408)], [8, 7, 6, 5, 4, 3, 2, 1]);
  equal(ram.read64(0x400), 0x0102030405060708n);
  equal(ram.read32(0x404), 0x01020304);
  ram.write64(0x408, -1n); // wraps to 64 bits
  equal(ram.read64(0x408), 0xffff_ffff_ffff_ffffn);
  ram.write32(0x410, 0xffff_ffff);
  equal(ram.read32(0x410), 0xffff_ffff); // unsigned
  // Above 4 GiB: the buffer offset is lowSize + (address - 4 GiB).
  ram.write32(FOUR_GIB + 0x20, 0xdeadbeef);
  equal(ram.bytes[32 * KIB + 0x20], 0xef);
  equal(ram.read32(FOUR_GIB + 0x20), 0xdeadbeef);
  ram.write64(ram.top - 8, 0x8877665544332211n);
  equal(ram.read64(ram.top - 8), 0x8877665544332211n);
  equal(ram.read8(ram.top - 1), 0x88);
});

Deno.test("GuestMemory: read, write, fill and view", () => {
  const ram = splitMemory();
  const src = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
  ram.write(0x7fc0, src); // ends exactly at the low RAM end
  const dest = new Uint8Array(64);
  ram.read(0x7fc0, dest);
  deepEqual(dest, src);
  ram.fill(0x1000, 16, 0xaa);
  deepEqual([...ram.bytes.subarray(0xfff, 0x1011)], [0, ...new Array(16).fill(0xaa), 0]);
  ram.fill(FOUR_GIB, 4, 0x55);
  equal(ram.read32(FOUR_GIB), 0x55555555);
  // A view aliases guest RAM in both directions.
  const view = ram.view(FOUR_GIB + 0x100, 8);
  equal(view.length, 8);
  ok(view.buffer === ram.buffer);
  equal(view.byteOffset, 32 * KIB + 0x100);
  view[0] = 0x42;
  equal(ram.read8(FOUR_GIB + 0x100), 0x42);
  ram.write8(FOUR_GIB + 0x101, 0x43);
  equal(view[1], 0x43);
  // Zero-length accesses inside RAM are fine.
  ram.read(0x10, new Uint8Array(0));
  ram.write(0x10, new Uint8Array(0));
  ram.fill(0x10, 0, 1);
  equal(ram.view(0x10, 0).length, 0);
});

Deno.test("GuestMemory: every out-of-RAM access throws a RangeError and touches nothing", () => {
  const ram = splitMemory();
  // A recognisable pattern in the whole buffer.
  for (let i = 0; i < ram.bytes.length; i++) ram.bytes[i] = (i * 7 + 3) & 0xff;
  const snapshot = ram.bytes.slice();
  const low = ram.lowSize;
  const top = ram.top;
  const bad: Array<[number, number]> = [
    [low, 1],
    [low - 1, 2],
    [low - 4, 8],
    [0x8000_0000, 4],
    [FOUR_GIB - 1, 1],
    [FOUR_GIB - 2, 4],
    [top, 1],
    [top - 1, 2],
    [top - 4, 8],
    [-1, 1],
    [-4, 8],
    [NaN, 1],
    [2 ** 53, 1],
    [2 ** 60, 1],
  ];
  for (const [address, size] of bad) {
    const what = `${address}/${size}`;
    if (size === 1) {
      throwsRange(() => ram.read8(address), undefined);
      throwsRange(() => ram.write8(address, 0xee), undefined);
    }
    if (size === 2) {
      throwsRange(() => ram.read16(address));
      throwsRange(() => ram.write16(address, 0xeeee));
    }
    if (size === 4) {
      throwsRange(() => ram.read32(address));
      throwsRange(() => ram.write32(address, 0xeeeeeeee));
    }
    if (size === 8) {
      throwsRange(() => ram.read64(address));
      throwsRange(() => ram.write64(address, 0xeeeeeeeeeeeeeeeen));
    }
    const dest = new Uint8Array(size).fill(0x5a);
    throwsRange(() => ram.read(address, dest));
    deepEqual([...dest], new Array(size).fill(0x5a), `read destination untouched at ${what}`);
    throwsRange(() => ram.write(address, new Uint8Array(size).fill(0xee)));
    throwsRange(() => ram.fill(address, size, 0xee));
    throwsRange(() => ram.view(address, size));
  }
  deepEqual(ram.bytes, snapshot, "no out-of-RAM access changed guest RAM");
});

Deno.test("GuestMemory: out-of-RAM messages say what, how much and where", () => {
  const ram = splitMemory();
  throwsRange(() => ram.read32(0x8000), /^Cannot read 4 bytes at 0x8000: outside guest RAM$/);
  throwsRange(() => ram.write8(0x8000, 0), /^Cannot write 1 bytes at 0x8000: outside guest RAM$/);
  throwsRange(() => ram.fill(0x7fff, 2, 0), /^Cannot fill 2 bytes at 0x7fff: outside guest RAM$/);
  throwsRange(() => ram.view(ram.top, 1), /^Cannot map 1 bytes at 0x100008000/);
  throwsRange(() => ram.read8(-1), /^Invalid address -1/);
  throwsRange(() => ram.read8(2 ** 53), /^Invalid address/);
  throwsRange(() => ram.read(2 ** 53 - 4, new Uint8Array(8)), /^Invalid range/);
});

// Regression (fixed) (src/memory/guest_memory.ts, offsetOf/#offset, lines ~165-205): a
// fractional address inside RAM passes the bounds check, so read8(0.5)
// returns `undefined` (bytes[0.5]), write8(0.5, x) is silently dropped and
// read32(0x100.5) reads 0x100 (DataView truncates). A negative length inside
// RAM is also accepted: fill(0x10, -1, x) does nothing and view(0x10, 1.5)
// returns 1 byte. Fix: in #offset (or offsetOf) reject non-integer addresses
// and non-integer or negative lengths, e.g. call checkRange(address, length)
// before the fast bounds test only when `!Number.isSafeInteger(address) ||
// !Number.isSafeInteger(length) || length < 0`.
Deno.test("GuestMemory: fractional addresses and bad lengths inside RAM throw", () => {
  const ram = splitMemory();
  const snapshot = ram.bytes.slice();
  throwsRange(() => ram.read8(0.5));
  throwsRange(() => ram.write8(0.5, 1));
  throwsRange(() => ram.read32(0x100 + 0.5));
  throwsRange(() => ram.write32(FOUR_GIB + 0.5, 1));
  throwsRange(() => ram.fill(0x10, -1, 1));
  throwsRange(() => ram.view(0x10, 1.5));
  throwsRange(() => ram.view(0x10, -1));
  deepEqual(ram.bytes, snapshot);
});

Deno.test("GuestMemory: attaching to a descriptor shares the bytes", () => {
  const ram = splitMemory();
  const desc = ram.descriptor();
  ok(desc.buffer === ram.buffer);
  equal(desc.lowSize, 32 * KIB);
  const other = new GuestMemory(desc);
  equal(other.size, ram.size);
  equal(other.lowSize, ram.lowSize);
  equal(other.highSize, ram.highSize);
  equal(other.top, ram.top);
  deepEqual(other.blocks, ram.blocks);
  ram.write32(FOUR_GIB + 0x40, 0x12345678);
  equal(other.read32(FOUR_GIB + 0x40), 0x12345678);
  other.write8(0x10, 0x99);
  equal(ram.read8(0x10), 0x99);
  // A descriptor survives structured cloning (what a worker receives).
  const cloned = structuredClone(desc);
  const third = new GuestMemory(cloned);
  third.write8(0x11, 0x77);
  equal(ram.read8(0x11), 0x77);
});

Deno.test("GuestMemory: a descriptor with an impossible split is rejected", () => {
  const buffer = new SharedArrayBuffer(64 * KIB);
  throwsRange(() => new GuestMemory({ buffer, lowSize: 0 }), /^Invalid low RAM size/);
  throwsRange(() => new GuestMemory({ buffer, lowSize: 64 * KIB + 1 }), /^Invalid low RAM size/);
  throwsRange(() => new GuestMemory({ buffer, lowSize: NaN }), /^Invalid low RAM size/);
  const whole = new GuestMemory({ buffer, lowSize: 64 * KIB });
  equal(whole.highSize, 0);
});

Deno.test("GuestMemory.atomicLoad64/atomicStore64: aligned 64-bit values in both blocks", () => {
  const ram = splitMemory();
  ram.atomicStore64(0x100, 0x0102030405060708n);
  equal(ram.read64(0x100), 0x0102030405060708n);
  equal(ram.read8(0x100), 0x08, "little-endian like every other accessor");
  ram.write64(0x108, 0xfedcba9876543210n);
  equal(ram.atomicLoad64(0x108), 0xfedcba9876543210n);
  ram.atomicStore64(FOUR_GIB + 0x40, -1n); // wraps to 64 bits
  equal(ram.atomicLoad64(FOUR_GIB + 0x40), 0xffff_ffff_ffff_ffffn);
  equal(ram.bytes[32 * KIB + 0x40], 0xff);
  ram.atomicStore64(ram.top - 8, 1n << 63n);
  equal(ram.read64(ram.top - 8), 1n << 63n);
});

Deno.test("GuestMemory.atomicLoad64/atomicStore64: unaligned or outside RAM throws and touches nothing", () => {
  const ram = splitMemory();
  const snapshot = ram.bytes.slice();
  for (const address of [0x101, 0x104, FOUR_GIB + 4]) {
    throwsRange(() => ram.atomicLoad64(address), /^Cannot atomically read .*not 8-byte aligned/);
    throwsRange(
      () => ram.atomicStore64(address, 1n),
      /^Cannot atomically write .*not 8-byte aligned/,
    );
  }
  for (const address of [32 * KIB, 32 * KIB - 4, FOUR_GIB - 8, ram.top, -8, 2 ** 53]) {
    throwsRange(() => ram.atomicLoad64(address));
    throwsRange(() => ram.atomicStore64(address, 1n));
  }
  deepEqual(ram.bytes, snapshot);
});
