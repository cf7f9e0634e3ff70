/**
 * The default workload: a short tour of the machine's devices, run by a
 * guest agent. It enumerates PCI, assigns resources like firmware, then
 * exercises every device it knows and returns a summary.
 *
 * @module
 */

import { AmdViDriver } from "../guest/amd_vi_driver.ts";
import { EduDriver } from "../guest/edu_driver.ts";
import { E1000Driver } from "../guest/e1000_driver.ts";
import type { Guest } from "../guest/guest.ts";
import { IdeDriver, IdeError } from "../guest/ide_driver.ts";
import { assignPciResources, enumeratePci, type GuestPciFunction } from "../guest/pci.ts";

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
 * ```ts
 * import { Machine } from "../machine/machine.ts";
 * import type { DemoSummary } from "./demo.ts";
 * import { ok } from "node:assert/strict";
 * await using machine = await Machine.create({
 *   devices: [{ type: "amd-iommu" }, { type: "edu" }],
 * });
 * const summary = await machine.runGuest(new URL("./demo.ts", import.meta.url)) as DemoSummary;
 * ok(summary.steps.length > 0);
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
  const iommuFn = functions.find((f) => f.vendorId === 0x1022 && f.deviceId === 0x0008);
  let iommu: AmdViDriver | undefined;
  if (iommuFn) {
    iommu = new AmdViDriver(guest, { region: { base: 0x0100_0000, size: 0x0080_0000 } });
    iommu.init();
    record(
      "iommu init",
      (iommu.status() & 0x18) === 0x18,
      `MMIO at 0x${iommu.mmioBase.toString(16)}, command buffer and event log running`,
    );
  }

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
    // DMA round trip without translation: RAM -> device buffer -> RAM (with an
    // IOMMU, the device first gets an identity domain: blocked otherwise).
    const rid = (fn.device << 3) | fn.function;
    iommu?.passThrough(rid);
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
    if (iommu) {
      // Through the IOMMU: map two pages at IOVAs far from their physical
      // addresses, copy through them, then unmap and show the device is refused.
      const domain = iommu.createDomain();
      iommu.attach(rid, domain);
      // edu drives 28 address bits (as QEMU's), so its IOVAs stay below 256 MiB.
      const iovaSrc = 0x0800_0000;
      const iovaDst = 0x0800_1000;
      iommu.map(domain, { iova: iovaSrc, phys: src, size: 4096, perms: "r" });
      iommu.map(domain, { iova: iovaDst, phys: dst + 4096, size: 4096, perms: "w" });
      guest.memory.fill(dst + 4096, 4096, 0);
      const c = edu.dma({ direction: "to-device", ram: iovaSrc, buffer: 0x40000, length: 4096 });
      const d = edu.dma({ direction: "to-ram", ram: iovaDst, buffer: 0x40000, length: 4096 });
      let copied = c.ok && d.ok;
      for (let i = 0; copied && i < 4096; i++) {
        copied = guest.memory.read8(dst + 4096 + i) === ((i * 7 + 3) & 0xff);
      }
      record(
        `${name} DMA through the IOMMU`,
        copied,
        `IOVA 0x${iovaSrc.toString(16)} -> device -> IOVA 0x${iovaDst.toString(16)}`,
      );
      const denied = edu.dma({ direction: "to-ram", ram: iovaSrc, buffer: 0x40000, length: 64 });
      iommu.unmap(domain, { iova: iovaSrc, size: 4096 });
      const gone = edu.dma({ direction: "to-device", ram: iovaSrc, buffer: 0x40000, length: 64 });
      const events = iommu.readEvents();
      const described = events.map((e) =>
        `${e.name}(dev 0x${e.deviceId.toString(16)}, domain ${e.domainId}, ${
          e.flags.rw ? "write" : "read"
        }${e.flags.pe ? ", permission" : ""}${e.flags.pr ? "" : ", not present"}, 0x${
          e.address.toString(16)
        })`
      );
      record(
        `${name} IOMMU faults`,
        !denied.ok && denied.faultCode === 3 && !gone.ok && gone.faultCode === 2 &&
          events.length === 2,
        `write to a read-only page and read after unmap refused; event log: ${
          described.join("; ")
        }`,
      );
    }
  }
  for (const fn of functions.filter((f) => f.vendorId === 0x8086 && f.deviceId === 0x7010)) {
    ideTour(guest, fn, iommu, record);
  }
  const nics = functions.filter((f) => f.vendorId === 0x8086 && f.deviceId === 0x100e);
  if (nics.length > 0) e1000Tour(guest, nics, iommu, record);
  return { devices, steps };
}

/**
 * The e1000 part of the tour: each NIC is reset and reads its MAC from the
 * EEPROM; with two NICs (the default machine puts both on hub 0), frames go
 * from the first to the second and back, with rings and buffers at IOVAs
 * above 4 GiB when there is an IOMMU.
 */
function e1000Tour(
  guest: Guest,
  nics: readonly GuestPciFunction[],
  iommu: AmdViDriver | undefined,
  record: (step: string, ok: boolean, detail: string) => void,
): void {
  const name = (fn: GuestPciFunction) =>
    `e1000 00:${fn.device.toString(16).padStart(2, "0")}.${fn.function}`;
  const hex = (mac: Uint8Array) => [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
  const drivers: E1000Driver[] = [];
  nics.slice(0, 2).forEach((fn, i) => {
    const bar0 = fn.bars.find((b) => b.index === 0);
    if (!bar0) return;
    const base = 0x0400_0000 + i * 0x0040_0000;
    const iova = iommu ? 0x1_0000_0000 + i * 0x1000_0000 : base;
    const driver = new E1000Driver(guest, {
      mmioBase: bar0.address,
      irqLine: q35Line(fn.device, fn.interruptPin || 1),
      memory: { base, size: 0x0040_0000 },
      iova,
      ...(iommu
        ? {
          iommu: {
            driver: iommu,
            domain: iommu.createDomain(),
            requesterId: (fn.device << 3) | fn.function,
          },
        }
        : {}),
      rxDescriptors: 16,
      txDescriptors: 16,
    });
    try {
      const mac = driver.init({ interrupts: 0x80 });
      const link = (driver.register(0x0008) & 2) !== 0;
      record(
        `${name(fn)} reset`,
        link,
        `MAC ${hex(mac)} from the EEPROM (checksum 0xBABA), link up, rings at IOVA 0x${
          iova.toString(16)
        }`,
      );
      drivers.push(driver);
    } catch (error) {
      record(`${name(fn)} reset`, false, (error as Error).message);
    }
  });
  const [a, b] = drivers;
  if (!a || !b) return;
  try {
    const frame = (dst: Uint8Array, src: Uint8Array, n: number) => {
      const f = new Uint8Array(n);
      f.set(dst);
      f.set(src, 6);
      f.set([0x88, 0xb5], 12);
      for (let i = 14; i < n; i++) f[i] = (i * 7 + n) & 0xff;
      return f;
    };
    const same = (x: Uint8Array | undefined, y: Uint8Array) =>
      x !== undefined && x.length === y.length && x.every((v, i) => v === y[i]);
    const sizes = [60, 1514, 600];
    let delivered = 0;
    for (const n of sizes) {
      const out = frame(b.macAddress, a.macAddress, n);
      a.send(out);
      if (same(b.receive({ timeoutMs: 2000, interrupt: true })?.data, out)) delivered++;
    }
    const reply = frame(a.macAddress, b.macAddress, 100);
    b.send(reply);
    const back = same(a.receive({ timeoutMs: 2000, interrupt: true })?.data, reply);
    record(
      "e1000 frames through hub 0",
      delivered === sizes.length && back,
      `${delivered} frames (60, 1514, 600 bytes) ${hex(a.macAddress)} -> ${
        hex(b.macAddress)
      } and one back, interrupt-driven${iommu ? ", DMA through the IOMMU" : ""}`,
    );
  } catch (error) {
    record("e1000 frames through hub 0", false, (error as Error).message);
  }
}

/**
 * The PIIX3 IDE part of the tour: the primary master's IDENTIFY data, a DMA
 * write, read back and verified, through the IOMMU when there is one, a
 * FLUSH CACHE, and the error a read beyond the disk gets.
 */
function ideTour(
  guest: Guest,
  fn: GuestPciFunction,
  iommu: AmdViDriver | undefined,
  record: (step: string, ok: boolean, detail: string) => void,
): void {
  const bar4 = fn.bars.find((b) => b.index === 4);
  if (!bar4) return;
  const name = `ide 00:${fn.device.toString(16).padStart(2, "0")}.${fn.function}`;
  let domain;
  if (iommu) {
    domain = iommu.createDomain();
    iommu.attach((fn.device << 3) | fn.function, domain);
  }
  const ide = new IdeDriver(guest, {
    bmBase: bar4.address,
    region: { base: 0x0300_0000, size: 0x0020_0000 },
    ...(iommu && domain ? { iommu: { driver: iommu, domain } } : {}),
  });
  try {
    const id = ide.identify();
    record(
      `${name} IDENTIFY`,
      id.sectors > 0,
      `'${id.model}' serial ${id.serial} firmware ${id.firmware}, ${id.sectors} sectors (${
        id.sectors / 2048
      } MiB), LBA48, UDMA ${id.udmaSelected} selected`,
    );
    const data = new Uint8Array(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 7) & 0xff;
    const lba = Math.max(0, Math.min(4096, id.sectors - data.length / 512));
    ide.writeDma(lba, data);
    const back = ide.readDma(lba, data.length / 512);
    record(
      `${name} DMA`,
      back.every((b, i) => b === data[i]),
      `1 MiB WRITE DMA + READ DMA at LBA ${lba}${
        iommu ? ` through IOVA 0x${ide.bufferAddress.toString(16)}` : ""
      }, verified`,
    );
    ide.flush();
    record(`${name} FLUSH CACHE`, true, "the drive reports the data durable");
    let detail = "no error";
    let refused = false;
    try {
      ide.readDma(id.sectors, 1);
    } catch (error) {
      refused = error instanceof IdeError && error.result.error === 0x10;
      detail = (error as Error).message;
    }
    record(`${name} read beyond the disk`, refused, detail);
  } catch (error) {
    record(`${name}`, false, (error as Error).message);
  }
}
