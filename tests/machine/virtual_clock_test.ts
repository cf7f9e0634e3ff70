// Tests of src/machine/virtual_clock.ts (kept out of tests/machine/, which
// the machine tests own).
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { VirtualClock } from "../../src/machine/virtual_clock.ts";

Deno.test("VirtualClock under qtest starts at 0 and stands still", () => {
  const clock = new VirtualClock({ qtest: true });
  equal(clock.qtest, true);
  equal(clock.now(), 0n);
  let x = 0;
  for (let i = 0; i < 100_000; i++) x += i;
  ok(x > 0);
  equal(clock.now(), 0n);
});

Deno.test("VirtualClock.step() goes to the next deadline, or stays without timers", () => {
  const clock = new VirtualClock({ qtest: true });
  equal(clock.step(), 0n, "no timer: no move (as QEMU)");
  const fired: string[] = [];
  clock.setTimer(3000n, () => fired.push("c"));
  clock.setTimer(1000n, () => fired.push("a"));
  clock.setTimer(2000n, () => fired.push("b"));
  equal(clock.step(), 1000n);
  deepEqual(fired, ["a"]);
  equal(clock.step(), 2000n);
  equal(clock.step(), 3000n);
  deepEqual(fired, ["a", "b", "c"]);
  equal(clock.step(), 3000n);
  equal(clock.now(), 3000n);
});

Deno.test("VirtualClock.step(ns) advances by ns and fires every due timer in order", () => {
  const clock = new VirtualClock({ qtest: true });
  const fired: number[] = [];
  for (const d of [500n, 100n, 300n, 300n, 900n]) clock.setTimer(d, () => fired.push(Number(d)));
  equal(clock.step(300n), 300n);
  deepEqual(fired, [100, 300, 300], "equal deadlines fire in the order they were set");
  equal(clock.step(0n), 300n);
  equal(clock.step(1000n), 1300n);
  deepEqual(fired, [100, 300, 300, 500, 900]);
});

Deno.test("VirtualClock.set never goes backwards", () => {
  const clock = new VirtualClock({ qtest: true });
  equal(clock.set(1000n), 1000n);
  equal(clock.set(100n), 1000n);
  equal(clock.now(), 1000n);
  equal(clock.set(1000n), 1000n);
  equal(clock.set(1001n), 1001n);
});

Deno.test("VirtualClock: a negative step throws and leaves the time alone", () => {
  const clock = new VirtualClock({ qtest: true });
  clock.step(50n);
  throws(
    () => clock.step(-1n),
    (e: unknown) => e instanceof RangeError && /^Cannot step the clock by -1 ns/.test(e.message),
  );
  equal(clock.now(), 50n);
});

Deno.test("VirtualClock: timers set in the past fire at the next step; callbacks may add timers", () => {
  const clock = new VirtualClock({ qtest: true });
  clock.step(1000n);
  const fired: string[] = [];
  clock.setTimer(10n, () => fired.push("late"));
  equal(clock.step(), 1000n, "the next deadline is already past: no move");
  deepEqual(fired, ["late"]);
  clock.setTimer(1500n, () => {
    fired.push("first");
    clock.setTimer(1200n, () => fired.push("chained, already due"));
    clock.setTimer(5000n, () => fired.push("later"));
  });
  equal(clock.step(), 1500n);
  deepEqual(fired, ["late", "first", "chained, already due"]);
  equal(clock.step(), 5000n);
  deepEqual(fired, ["late", "first", "chained, already due", "later"]);
});

Deno.test("VirtualClock without qtest follows the host clock and never goes back", () => {
  const clock = new VirtualClock();
  equal(clock.qtest, false);
  const a = clock.now();
  const b = clock.now();
  ok(a >= 0n);
  ok(b >= a);
  clock.set(b + 10_000_000_000n); // 10 s ahead of the host clock
  const c = clock.now();
  ok(c >= b + 10_000_000_000n, "setting ahead is kept");
  let fired = false;
  clock.setTimer(0n, () => (fired = true));
  clock.now();
  ok(fired, "due timers fire when the time is read");
});
