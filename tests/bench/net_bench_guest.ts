// Guest side of the network benchmark (see net_bench.ts): the first e1000
// streams frames of `size` bytes to the second through their hub for
// `ms` milliseconds (after a warm-up), keeping its transmit ring full, while
// the same agent drains the second NIC's receive ring. Returns what arrived.
import type { Guest } from "../../src/guest/guest.ts";
import { AmdViDriver } from "../../src/guest/amd_vi_driver.ts";
import { E1000Driver } from "../../src/guest/e1000_driver.ts";
import { assignPciResources, enumeratePci } from "../../src/guest/pci.ts";

export default function (guest: Guest, options: Record<string, string>) {
  const size = Number(options.size ?? "1514");
  const ms = Number(options.ms ?? "1000");
  const useIommu = options.iommu === "1";
  const fns = enumeratePci(guest);
  assignPciResources(guest, fns);
  const nics = fns.filter((f) => f.vendorId === 0x8086 && f.deviceId === 0x100e);
  let iommu: AmdViDriver | undefined;
  if (useIommu) {
    iommu = new AmdViDriver(guest, { region: { base: 0x0100_0000, size: 0x0080_0000 } });
    iommu.init();
  }
  const [a, b] = nics.slice(0, 2).map((fn, i) => {
    const base = 0x0400_0000 + i * 0x0100_0000;
    return new E1000Driver(guest, {
      mmioBase: fn.bars.find((bar) => bar.index === 0)!.address,
      memory: { base, size: 0x0100_0000 },
      iova: useIommu ? 0x1_0000_0000 + i * 0x1000_0000 : base,
      ...(iommu
        ? {
          iommu: {
            driver: iommu,
            domain: iommu.createDomain(),
            requesterId: (fn.device << 3) | fn.function,
          },
        }
        : {}),
      rxDescriptors: 256,
      txDescriptors: 256,
    });
  }) as [E1000Driver, E1000Driver];
  a.init();
  const mac = b.init();
  const frame = new Uint8Array(size);
  frame.set(mac);
  frame.set(a.macAddress, 6);
  frame.set([0x88, 0xb5], 12);
  for (let i = 14; i < size; i++) frame[i] = i & 0xff;
  const run = (duration: number) => {
    let received = 0;
    let bytes = 0;
    let sent = 0;
    const end = performance.now() + duration;
    while (performance.now() < end) {
      let queued = 0;
      while (a.queue(frame)) queued++;
      if (queued) a.flush();
      sent += queued;
      const got = b.drain();
      received += got.frames;
      bytes += got.bytes;
    }
    return { sent, received, bytes };
  };
  run(Math.min(300, ms / 3)); // warm-up: caches, translations, JIT
  b.stats();
  const start = performance.now();
  const r = run(ms);
  const elapsed = performance.now() - start;
  const stats = b.stats();
  return { ...r, elapsed, missed: stats.missed, faults: iommu?.readEvents().length ?? 0 };
}
