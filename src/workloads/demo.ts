/**
 * The default workload: a short tour of the machine's devices, run by a
 * guest agent. It enumerates PCI, assigns resources like firmware, then
 * exercises every device it knows and returns a summary.
 *
 * @module
 */

import { EduDriver } from "../guest/edu_driver.ts";
import type { Guest } from "../guest/guest.ts";
import { assignPciResources, enumeratePci } from "../guest/pci.ts";

/** One step of the tour. */
export interface DemoStep {
  /** What was done. */
  readonly step: string;
  /** Whether it worked. */
  readonly ok: boolean;
  /** Details. */
  readonly detail: string;
}

/** What the demo returns. */
export interface DemoSummary {
  /** The PCI functions found, as `00:04.0 1234:11e8`. */
  readonly devices: readonly string[];
  /** The steps. */
  readonly steps: readonly DemoStep[];
}

function q35Line(slot: number, pin: number): number {
  return 20 + ((slot + pin - 1) % 4);
}

/**
 * Runs the tour.
 *
 * @param guest The CPU.
 * @param _options Unused.
 * @returns The summary.
 *
 * @example
 * ```ts ignore
 * const summary = await machine.runGuest(new URL("./demo.ts", import.meta.url));
 * ```
 */
export default function demo(
  guest: Guest,
  _options: Readonly<Record<string, string>> = {},
): DemoSummary {
  const steps: DemoStep[] = [];
  const record = (step: string, ok: boolean, detail: string) => {
    steps.push({ step, ok, detail });
    guest.log(`${ok ? "ok  " : "FAIL"} ${step}: ${detail}`);
  };
  const functions = enumeratePci(guest);
  assignPciResources(guest, functions);
  const devices = functions.map((f) =>
    `00:${f.device.toString(16).padStart(2, "0")}.${f.function} ${
      f.vendorId.toString(16).padStart(4, "0")
    }:${f.deviceId.toString(16).padStart(4, "0")}`
  );
  record("pci", functions.length > 0, `${functions.length} functions on bus 0`);

  for (const fn of functions.filter((f) => f.vendorId === 0x1234 && f.deviceId === 0x11e8)) {
    const bar = fn.bars.find((b) => b.index === 0);
    if (!bar) continue;
    const name = `edu 00:${fn.device.toString(16).padStart(2, "0")}.${fn.function}`;
    const edu = new EduDriver(guest, {
      base: bar.address,
      irqLine: q35Line(fn.device, fn.interruptPin || 1),
    });
    const id = edu.identify();
    record(`${name} identification`, id === 0x010000ed, `0x${id.toString(16)}`);
    const live = edu.liveness(0x1234_5678);
    record(
      `${name} liveness`,
      live === 0xedcb_a987,
      `wrote 0x12345678, read 0x${live.toString(16)}`,
    );
    const fact = edu.factorial(10, { interrupt: true });
    record(`${name} factorial`, fact === 3628800, `10! = ${fact} (interrupt-driven)`);
    edu.raise(0x40);
    const raised = guest.waitIrq(q35Line(fn.device, fn.interruptPin || 1), { timeoutMs: 2000 });
    edu.acknowledge(0x40);
    record(
      `${name} interrupt`,
      raised && edu.interruptStatus() === 0,
      "raised 0x40, saw the line, acknowledged",
    );
    // DMA round trip without an IOMMU: RAM -> device buffer -> RAM.
    const src = 0x10_0000;
    const dst = 0x20_0000;
    for (let i = 0; i < 4096; i++) guest.memory.write8(src + i, (i * 7 + 3) & 0xff);
    guest.memory.fill(dst, 4096, 0);
    const a = edu.dma({ direction: "to-device", ram: src, buffer: 0x40000, length: 4096 }, {
      interrupt: true,
    });
    const b = edu.dma({ direction: "to-ram", ram: dst, buffer: 0x40000, length: 4096 });
    let same = a.ok && b.ok;
    for (let i = 0; same && i < 4096; i++) {
      same = guest.memory.read8(dst + i) === ((i * 7 + 3) & 0xff);
    }
    record(`${name} DMA`, same, "4096 bytes RAM -> device -> RAM, verified");
  }
  return { devices, steps };
}
