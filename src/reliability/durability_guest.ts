/**
 * The guest of the durability test: a workload (`--workload
 * ./src/reliability/durability_guest.ts,seed=S`) that writes the groups of
 * {@linkcode groupWrites} to the first IDE disk by DMA (through the IOMMU
 * when the machine has one) and issues FLUSH CACHE after each group.
 *
 * It tells the observer (the parent process of `deno task durability`) where
 * it is with one line per step on standard output, each written with a
 * single synchronous `write` to the pipe before the step starts, so a line
 * reaches the observer even when the process is killed right after it:
 *
 * | line                       | written                                                      |
 * | -------------------------- | ------------------------------------------------------------ |
 * | `durability READY`         | once the drive answered IDENTIFY                             |
 * | `durability W g i`         | before WRITE DMA command `i` of group `g`                    |
 * | `durability F g`           | before FLUSH CACHE of group `g`                              |
 * | `durability ACK g`         | after the guest saw group `g`'s FLUSH CACHE complete (no ERR) |
 * | `durability IDLE`          | after the last group when `end=idle`                         |
 *
 * `ACK g` is the acknowledgement the check relies on: it is written only
 * after the drive cleared BSY without ERR for the flush, and before group
 * `g + 1` starts, so at most one group is in flight at any time.
 *
 * Options: `seed` (1), `groups` to write (0: until killed), `end` after the
 * last group (`exit`: return the summary; `idle`: print `IDLE` and wait to be
 * killed), `plant` a bug on purpose, to show what the checks catch
 * (`none`; `lose-write`: skip the last write of every group but acknowledge
 * it, as an emulator that completes a write it never stored; `no-flush`:
 * acknowledge without FLUSH CACHE, which a process kill cannot catch and
 * `traceFlushes` can).
 *
 * @module
 */

import { groupWrites, sectorRecord } from "./durability_schedule.ts";
import {
  type WorkloadContext,
  WorkloadError,
  type WorkloadSummary,
} from "../workloads/workload.ts";

/**
 * Bugs the guest can plant on purpose (see the module documentation).
 *
 * @example
 * ```ts
 * import { DURABILITY_PLANTS } from "./durability_guest.ts";
 * import { ok } from "node:assert/strict";
 * ok(DURABILITY_PLANTS.includes("lose-write"));
 * ```
 */
export const DURABILITY_PLANTS: readonly ["none", "lose-write", "no-flush"] = [
  "none",
  "lose-write",
  "no-flush",
];

/**
 * A bug the guest can plant on purpose.
 *
 * @example
 * ```ts
 * import type { DurabilityPlant } from "./durability_guest.ts";
 * const plant: DurabilityPlant = "no-flush";
 * console.log(plant);
 * ```
 */
export type DurabilityPlant = typeof DURABILITY_PLANTS[number];

/**
 * The options the guest accepts (`--workload ./durability_guest.ts,seed=3,groups=10`).
 *
 * @example
 * ```ts
 * import { DURABILITY_GUEST_OPTIONS } from "./durability_guest.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(DURABILITY_GUEST_OPTIONS, ["seed", "groups", "end", "plant"]);
 * ```
 */
export const DURABILITY_GUEST_OPTIONS: readonly string[] = ["seed", "groups", "end", "plant"];

const SECTOR = 512;
const MAX_SECTORS = 8;
const encoder = new TextEncoder();

/** Writes a line to standard output with synchronous writes, so it is in the pipe when this returns. */
function say(text: string): void {
  const data = encoder.encode(`durability ${text}\n`);
  let done = 0;
  while (done < data.length) done += Deno.stdout.writeSync(data.subarray(done));
}

/**
 * Runs the durability guest.
 *
 * @param ctx The workload context.
 * @returns The summary (with `end=exit`; with `end=idle` it never returns).
 *
 * @example
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import { isWorkloadSummary } from "../workloads/workload.ts";
 * import { ok } from "node:assert/strict";
 * await using machine = await Machine.create({
 *   devices: [
 *     { type: "piix3-ide", id: "ide" },
 *     { type: "ide-hd", properties: { drive: "d0", bus: "ide.0" } },
 *   ],
 *   drives: [{ id: "d0", size: 1 << 20 }],
 * });
 * const summary = await machine.runGuest(new URL("./durability_guest.ts", import.meta.url), {
 *   options: { seed: "7", groups: "2" }, // prints "durability READY", "durability W 1 0", …
 * });
 * ok(isWorkloadSummary(summary) && summary.ok);
 * ```
 */
export default function durabilityGuest(ctx: WorkloadContext): WorkloadSummary {
  const o = ctx.options;
  o.expectOnly(DURABILITY_GUEST_OPTIONS);
  const seed = o.integer("seed", 1, { min: 0, max: 0xffff_ffff });
  const groups = o.integer("groups", 0, { min: 0 });
  const end = o.string("end", "exit", ["exit", "idle"]);
  const plant = o.string("plant", "none", DURABILITY_PLANTS) as DurabilityPlant;
  const fn = ctx.find("ide")[0];
  if (fn === undefined) {
    throw new WorkloadError("The durability guest needs a PIIX3 IDE controller with a disk");
  }
  const ide = ctx.ide(fn, { channel: 0, unit: 0, bufferBytes: MAX_SECTORS * SECTOR });
  const identity = ide.identify();
  ctx.step(
    "drive",
    true,
    `'${identity.model}' ${identity.sectors} sectors, IOMMU ${ctx.iommu() ? "on" : "off"}`,
  );
  say("READY");
  let group = 1;
  for (; groups === 0 || group <= groups; group++) {
    const writes = groupWrites(seed, group);
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!;
      const data = new Uint8Array(w.count * SECTOR);
      for (let s = 0; s < w.count; s++) data.set(sectorRecord(seed, group, w.slot + s), s * SECTOR);
      say(`W ${group} ${i}`);
      if (plant === "lose-write" && i === writes.length - 1) continue; // the planted bug
      ide.writeDma(w.slot, data);
    }
    say(`F ${group}`);
    if (plant !== "no-flush") ide.flush(); // throws when the drive reports ERR
    say(`ACK ${group}`);
  }
  if (end === "idle") {
    say("IDLE");
    // A guest agent may block: nothing waits on it. Wait to be killed.
    for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  ctx.step("groups", true, `${group - 1} groups written and flushed`);
  ctx.metric("groups", group - 1);
  return ctx.summary();
}
