import { equal, throws } from "node:assert/strict";
import {
  bigintToAddress,
  checkAddress,
  checkRange,
  FOUR_GIB,
  hex,
  joinHalves,
  MAX_ADDRESS,
} from "../../src/util/address.ts";

/** Asserts that `fn` throws a RangeError whose message starts with a capital letter. */
function throwsRange(fn: () => unknown, pattern?: RegExp): void {
  throws(fn, (error: unknown) => {
    if (!(error instanceof RangeError)) return false;
    if (!/^[A-Z]/.test(error.message)) return false;
    return pattern === undefined || pattern.test(error.message);
  });
}

Deno.test("address: constants", () => {
  equal(MAX_ADDRESS, 2 ** 53 - 1);
  equal(FOUR_GIB, 2 ** 32);
});

Deno.test("hex: formats numbers and bigints, lower case, padded", () => {
  const cases: Array<[number | bigint, number | undefined, string]> = [
    [0, undefined, "0x0"],
    [0x1000, undefined, "0x1000"],
    [0xab, 4, "0x00ab"],
    [0xabcd, 2, "0xabcd"], // never truncates
    [0xdeadbeef, 8, "0xdeadbeef"],
    [FOUR_GIB, undefined, "0x100000000"],
    [MAX_ADDRESS, undefined, "0x1fffffffffffff"],
    [0n, 1, "0x0"],
    [0xffff_ffff_ffff_ffffn, 16, "0xffffffffffffffff"],
    [0x12n, 4, "0x0012"],
  ];
  for (const [value, digits, expected] of cases) {
    equal(digits === undefined ? hex(value) : hex(value, digits), expected, `hex(${value})`);
  }
});

// Regression (fixed) (src/util/address.ts, hex): the sign is placed after "0x" and padding is
// inserted between the digits and the sign: hex(-1) === "0x-1",
// hex(-5, 4) === "0x00-5". Expected "-0x1" and "-0x0005".
Deno.test("hex: negative values keep the sign in front", () => {
  equal(hex(-1), "-0x1");
  equal(hex(-5, 4), "-0x0005");
  equal(hex(-0x10n), "-0x10");
});

Deno.test("checkAddress: accepts non-negative safe integers", () => {
  for (const a of [0, 1, 0xfff, FOUR_GIB, FOUR_GIB + 1, MAX_ADDRESS]) {
    equal(checkAddress(a), a);
  }
});

Deno.test("checkAddress: rejects negative, fractional, NaN, infinite and ≥ 2^53", () => {
  const bad = [-1, -0.5, 0.5, 1.5, FOUR_GIB + 0.25, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 64];
  for (const a of bad) {
    throwsRange(() => checkAddress(a), /^Invalid address/);
  }
  throwsRange(() => checkAddress(-1, "BAR address"), /^Invalid BAR address -1/);
});

Deno.test("checkRange: accepts ranges ending at or below 2^53", () => {
  const ok: Array<[number, number]> = [
    [0, 0],
    [0, 1],
    [0x1000, 0x1000],
    [MAX_ADDRESS, 0],
    [MAX_ADDRESS, 1], // the last byte
    [MAX_ADDRESS - 15, 16],
    [0, MAX_ADDRESS],
    [1, MAX_ADDRESS],
  ];
  for (const [a, n] of ok) equal(checkRange(a, n), n, `checkRange(${a}, ${n})`);
});

Deno.test("checkRange: rejects bad addresses and lengths", () => {
  throwsRange(() => checkRange(-1, 1), /^Invalid address/);
  throwsRange(() => checkRange(0.5, 1), /^Invalid address/);
  throwsRange(() => checkRange(NaN, 1), /^Invalid address/);
  throwsRange(() => checkRange(2 ** 53, 0), /^Invalid address/);
  for (const n of [-1, 0.5, NaN, Infinity, 2 ** 53]) {
    throwsRange(() => checkRange(0, n), /^Invalid length/);
  }
});

Deno.test("checkRange: rejects ranges that end beyond 2^53", () => {
  const cases: Array<[number, number]> = [
    [MAX_ADDRESS, 3],
    [MAX_ADDRESS - 1, 4],
    [MAX_ADDRESS - 13, 16],
    [2 ** 52, 2 ** 52 + 2],
    [2 ** 52, 2 ** 52 + 16],
    [MAX_ADDRESS, MAX_ADDRESS],
  ];
  for (const [a, n] of cases) {
    throwsRange(() => checkRange(a, n), /^Invalid range .*ends beyond 2\^53/);
  }
});

// Regression (fixed) (src/util/address.ts, checkRange): `address + length > MAX_ADDRESS + 1`
// is evaluated in floating point; 2^53 - 1 + 2 = 2^53 + 1 rounds to 2^53, so
// the range is accepted although it ends beyond 2^53. Every range whose end
// is exactly 2^53 + 1 is accepted this way. Fix: compare
// `length > MAX_ADDRESS + 1 - address` (exact, because address ≤ 2^53 - 1).
Deno.test("checkRange: an overflow of exactly one byte past 2^53 is rejected", () => {
  throwsRange(() => checkRange(MAX_ADDRESS, 2), /ends beyond 2\^53/);
  throwsRange(() => checkRange(MAX_ADDRESS - 2, 4), /ends beyond 2\^53/);
  throwsRange(() => checkRange(2 ** 52 + 1, 2 ** 52), /ends beyond 2\^53/);
  throwsRange(() => checkRange(MAX_ADDRESS - 14, 16), /ends beyond 2\^53/);
});

Deno.test("bigintToAddress: representable values convert, others are undefined", () => {
  const cases: Array<[bigint, number | undefined]> = [
    [0n, 0],
    [0x1000n, 0x1000],
    [0xffff_ffffn, 0xffff_ffff],
    [0x1_0000_0000n, FOUR_GIB],
    [BigInt(MAX_ADDRESS), MAX_ADDRESS],
    [BigInt(MAX_ADDRESS) + 1n, undefined],
    [1n << 63n, undefined],
    [0xffff_ffff_ffff_ffffn, undefined],
    [-1n, undefined],
  ];
  for (const [value, expected] of cases) equal(bigintToAddress(value), expected, `${value}`);
});

Deno.test("joinHalves: combines unsigned halves, rejects results ≥ 2^53", () => {
  const cases: Array<[number, number, number | undefined]> = [
    [0, 0, 0],
    [0x1000, 0, 0x1000],
    [0x1000, 1, 0x1_0000_1000],
    [0xffff_ffff, 0, 0xffff_ffff],
    [-1, 0, 0xffff_ffff], // a signed Int32 word is read as unsigned
    [0, 0x1f_ffff, 0x1f_ffff * FOUR_GIB],
    [-1, 0x1f_ffff, MAX_ADDRESS],
    [0, 0x20_0000, undefined],
    [0, 0xffff_ffff, undefined],
    [0, -1, undefined], // high word -1 is 0xffffffff
    [0, -0x8000_0000, undefined],
  ];
  for (const [lo, hi, expected] of cases) {
    equal(joinHalves(lo, hi), expected, `joinHalves(${lo}, ${hi})`);
  }
});

Deno.test("joinHalves and bigintToAddress agree on every boundary", () => {
  for (const hi of [0, 1, 0xff, 0x1f_fffe, 0x1f_ffff, 0x20_0000]) {
    for (const lo of [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]) {
      const big = (BigInt(hi) << 32n) | BigInt(lo);
      equal(joinHalves(lo, hi), bigintToAddress(big), `${hi}:${lo}`);
    }
  }
});
