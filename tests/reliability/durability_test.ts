// Durability under crashes (issue 8, item 3): the image checker, the
// strace-order checker, a short run of `deno task durability` (the real
// emulator process killed with SIGKILL), and planted bugs that show what
// each check catches and what a process kill cannot.
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  checkFlushTrace,
  durabilityRound,
  haveStrace,
  roundFailed,
  runDurability,
  traceFlushes,
} from "../../src/reliability/durability.ts";
import {
  checkImage,
  DURABILITY_SLOTS,
  groupWrites,
  sectorRecord,
} from "../../src/reliability/durability_schedule.ts";

const SECTOR = 512;

/** The image the workload leaves after `groups` groups, skipping the writes `skip` names. */
function imageAfter(
  seed: number,
  groups: number,
  skip: (group: number, index: number, count: number) => boolean = () => false,
): Uint8Array {
  const image = new Uint8Array(DURABILITY_SLOTS * SECTOR * 2);
  for (let g = 1; g <= groups; g++) {
    const writes = groupWrites(seed, g);
    writes.forEach((w, i) => {
      if (skip(g, i, writes.length)) return;
      for (let s = w.slot; s < w.slot + w.count; s++) {
        image.set(sectorRecord(seed, g, s), s * SECTOR);
      }
    });
  }
  return image;
}

function slotsOf(seed: number, group: number): Set<number> {
  const out = new Set<number>();
  for (const w of groupWrites(seed, group)) {
    for (let s = w.slot; s < w.slot + w.count; s++) out.add(s);
  }
  return out;
}

Deno.test("the checker passes an image that holds every acknowledged group", () => {
  const seed = 11;
  const image = imageAfter(seed, 9);
  const check = checkImage(image, seed, 9);
  deepEqual(check.lost, []);
  deepEqual(check.stray, []);
  equal(check.good, DURABILITY_SLOTS);
});

Deno.test("the checker allows the unacknowledged group to be absent, present or torn", () => {
  const seed = 12;
  const acked = 6;
  const image = imageAfter(seed, acked);
  const next = [...slotsOf(seed, acked + 1)];
  ok(next.length >= 3);
  // The first in-flight sector reached the image, the second is torn, the rest did not.
  const [a, b] = next as [number, number];
  image.set(sectorRecord(seed, acked + 1, a), a * SECTOR);
  image.set(sectorRecord(seed, acked + 1, b).subarray(0, 100), b * SECTOR);
  const check = checkImage(image, seed, acked);
  deepEqual(check.lost, []);
  equal(check.newer, 1);
  equal(check.torn, 1);
});

Deno.test("the checker catches a lost acknowledged write, garbage and a stray write", () => {
  const seed = 13;
  const acked = 8;
  // An acknowledged write is missing: its sectors hold the previous data.
  const last = groupWrites(seed, acked).at(-1)!;
  const missing = imageAfter(seed, acked, (g, i, n) => g === acked && i === n - 1);
  const lost = checkImage(missing, seed, acked).lost;
  ok(lost.length > 0);
  for (const l of lost) {
    equal(l.expected, acked);
    ok(l.slot >= last.slot && l.slot < last.slot + last.count);
  }
  // One byte of an acknowledged sector changed: lost, even though it carries the right header.
  const flipped = imageAfter(seed, acked);
  const slot = groupWrites(seed, 1)[0]!.slot;
  const expected = checkImage(flipped, seed, acked);
  flipped[slot * SECTOR + 300]! ^= 0xff;
  const check = checkImage(flipped, seed, acked);
  equal(check.lost.length, 1);
  equal(check.lost[0]!.slot, slot);
  equal(check.good, expected.good - 1);
  // Garbage in a sector the in-flight group writes is not a torn write.
  const garbage = imageAfter(seed, acked);
  const inFlight = [...slotsOf(seed, acked + 1)][0]!;
  garbage.fill(0x77, inFlight * SECTOR, (inFlight + 1) * SECTOR);
  deepEqual(checkImage(garbage, seed, acked).lost.map((l) => l.slot), [inFlight]);
  // A write that landed after the workload's sectors.
  const stray = imageAfter(seed, acked);
  stray[(DURABILITY_SLOTS + 5) * SECTOR] = 1;
  deepEqual(checkImage(stray, seed, acked).stray, [DURABILITY_SLOTS + 5]);
});

Deno.test("the trace checker wants an fdatasync that started after the write and succeeded", () => {
  const write = '7 write(9</d.img>, "DWDS"..., 512) = 512';
  const ack = '7 write(1<pipe:[5]>, "durability ACK 1\\n", 17) = 17';
  const early = [
    "8 fdatasync(9</d.img> <unfinished ...>",
    write,
    "8 <... fdatasync resumed>) = 0",
    ack,
  ].join("\n");
  deepEqual(checkFlushTrace(early, "/d.img").violations, [{ group: 1, unsynced: 1 }]);
  const failed = [write, "8 fdatasync(9</d.img>) = -1 EIO (Input/output error)", ack].join("\n");
  deepEqual(checkFlushTrace(failed, "/d.img").violations, [{ group: 1, unsynced: 1 }]);
  const otherFile = [write, "8 fdatasync(4</other.img>) = 0", ack].join("\n");
  equal(checkFlushTrace(otherFile, "/d.img").violations.length, 1);
  const good = [write, "8 fdatasync(9</d.img>) = 0", ack].join("\n");
  deepEqual(checkFlushTrace(good, "/d.img"), {
    acknowledged: 1,
    imageWrites: 1,
    syncs: 1,
    violations: [],
  });
  // strace pads short pids (`5020  write(…`): the same trace, padded, reads the same.
  const padded = good.split("\n").map((l) => l.replace(/^(\d+) /, "$1    ")).join("\n");
  deepEqual(checkFlushTrace(padded, "/d.img"), checkFlushTrace(good, "/d.img"));
});

Deno.test("SIGKILL at random points loses no acknowledged write (short run)", async () => {
  // Kill points: one at a time after ready, the others as a write or a flush starts.
  const result = await runDurability(4, { seed: 20260, maxKillMs: 200, maxGroup: 6 });
  for (const r of result.rounds) {
    ok(
      !roundFailed(r),
      JSON.stringify({ ...r, check: { ...r.check, lost: r.check.lost.slice(0, 5) } }),
    );
  }
  equal(result.failed.length, 0);
});

Deno.test("a planted lost write is caught after the kill", async () => {
  // The guest skips the last write of each group but acknowledges the group,
  // writes two groups, then waits to be killed: the image is deterministic.
  const seed = 5;
  const round = await durabilityRound(
    seed,
    { trigger: "idle", group: 0, index: 0, delayMs: 0 },
    { plant: "lose-write", groups: 2 },
  );
  equal(round.error, undefined);
  equal(round.acknowledged, 2);
  ok(roundFailed(round));
  // Exactly the sectors whose last acknowledged write was skipped.
  const complete = imageAfter(seed, 2);
  const skipped = imageAfter(seed, 2, (_g, i, n) => i === n - 1);
  const differ: number[] = [];
  for (let s = 0; s < DURABILITY_SLOTS; s++) {
    const at = s * SECTOR;
    if (complete.subarray(at, at + SECTOR).some((b, i) => b !== skipped[at + i])) differ.push(s);
  }
  ok(differ.length > 0);
  deepEqual(round.check.lost.map((l) => l.slot), differ);
});

const strace = await haveStrace();

Deno.test({
  name: "every acknowledged FLUSH CACHE reached fdatasync of the image first (strace)",
  ignore: !strace,
  async fn() {
    const trace = await traceFlushes(8, { groups: 3 });
    equal(trace.acknowledged, 3);
    ok(trace.syncs >= 3);
    ok(trace.imageWrites >= 3);
    deepEqual(trace.violations, []);
  },
});

Deno.test("a guest that acknowledges without FLUSH CACHE passes the kill check: its limit", async () => {
  // A process kill leaves the page cache: writes never flushed are still read back.
  const round = await durabilityRound(
    9,
    { trigger: "idle", group: 0, index: 0, delayMs: 0 },
    { plant: "no-flush", groups: 2 },
  );
  equal(round.error, undefined);
  equal(round.acknowledged, 2);
  equal(roundFailed(round), false);
});

Deno.test({
  name: "a guest that acknowledges without FLUSH CACHE is caught by the trace",
  ignore: !strace,
  async fn() {
    const trace = await traceFlushes(9, { groups: 2, plant: "no-flush" });
    equal(trace.syncs, 0);
    deepEqual(trace.violations.map((v) => v.group), [1, 2]);
  },
});
