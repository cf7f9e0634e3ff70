// Guest side of the IOMMU latency benchmark (see iommu_bench.ts): every edu
// device copies continuously through one shared domain while this agent
// measures INVALIDATE_IOMMU_PAGES + COMPLETION_WAIT, a bare round trip to the
// main isolate, and one device DMA on a hit and right after a flush (a miss).
import type { Guest } from "../../src/guest/guest.ts";
import { AmdViDriver } from "../../src/guest/amd_vi_driver.ts";
import { EduDriver } from "../../src/guest/edu_driver.ts";
import { assignPciResources, enumeratePci } from "../../src/guest/pci.ts";

const PAGE = 4096;

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

export default function (guest: Guest, options: Record<string, string>) {
  const rounds = Number(options.rounds ?? "300");
  const fns = enumeratePci(guest);
  assignPciResources(guest, fns);
  const iommu = new AmdViDriver(guest, { region: { base: 0x0100_0000, size: 0x0080_0000 } });
  iommu.init();
  const domain = iommu.createDomain({ levels: 3 });
  const edus = fns.filter((f) => f.vendorId === 0x1234).map((f, k) => {
    iommu.attach((f.device << 3) | f.function, domain);
    const base = 0x10_0000 + k * 0x10_0000;
    iommu.map(domain, { iova: base, phys: 0x0200_0000 + k * 2 * PAGE, size: PAGE, perms: "r" });
    iommu.map(domain, {
      iova: base + PAGE,
      phys: 0x0200_0000 + (k * 2 + 1) * PAGE,
      size: PAGE,
      perms: "rw",
    });
    const edu = new EduDriver(guest, { base: f.bars[0]!.address, irqLine: 20 });
    edu.startRepeat({ src: base, dst: base + PAGE, length: PAGE, copy: true });
    return { edu, base };
  });
  const status = iommu.mmioBase + 0x2020;
  const trip: number[] = [];
  const flush: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    guest.read32(status);
    trip.push(performance.now() - t);
    t = performance.now();
    iommu.flushPages(domain, { iova: edus[0]!.base, size: PAGE });
    flush.push(performance.now() - t);
  }
  // Miss vs hit on the first device (stopped, so the DMA is a single one).
  const first = edus[0]!;
  first.edu.stopRepeat();
  const hit: number[] = [];
  const miss: number[] = [];
  const dma = () =>
    first.edu.dma({ direction: "to-device", ram: first.base, buffer: 0x40000, length: 64 });
  for (let i = 0; i < Math.min(rounds, 200); i++) {
    dma();
    let t = performance.now();
    dma();
    hit.push(performance.now() - t);
    iommu.flushPages(domain, { iova: first.base, size: PAGE });
    t = performance.now();
    dma();
    miss.push(performance.now() - t);
  }
  for (const e of edus.slice(1)) e.edu.stopRepeat();
  const us = (v: number[]) => median(v) * 1000;
  return { roundTripUs: us(trip), flushUs: us(flush), hitUs: us(hit), missUs: us(miss) };
}
