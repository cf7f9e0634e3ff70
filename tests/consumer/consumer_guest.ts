// The consumer's guest program (see consumer_program.ts).
import {
  AmdViDriver,
  assignPciResources,
  EduDriver,
  enumeratePci,
  type Guest,
} from "@dmaworks/dmaworks";

export default function (guest: Guest) {
  const fns = enumeratePci(guest);
  assignPciResources(guest, fns);
  const eduFn = fns.find((f) => f.vendorId === 0x1234);
  if (!eduFn) throw new Error("No edu device");
  const edu = new EduDriver(guest, { base: eduFn.bars[0]!.address, irqLine: 20 });
  const iommu = new AmdViDriver(guest, { region: { base: 0x0100_0000, size: 0x0100_0000 } });
  iommu.init();
  const domain = iommu.createDomain();
  iommu.attach(eduFn.device << 3, domain);
  const phys = 0x0080_0000;
  const iova = 0x0200_0000; // edu addresses 28 bits
  for (let i = 0; i < 4096; i++) guest.memory.write8(phys + i, (i * 7) & 0xff);
  iommu.map(domain, { iova, phys, size: 4096, perms: "rw" });
  const toDevice = edu.dma({ direction: "to-device", ram: iova, buffer: 0x40000, length: 4096 });
  const toRam = edu.dma({
    direction: "to-ram",
    ram: iova + 4096 - 256,
    buffer: 0x40000,
    length: 256,
  });
  let same = true;
  for (let i = 0; i < 256; i++) {
    if (guest.memory.read8(phys + 4096 - 256 + i) !== ((i * 7) & 0xff)) same = false;
  }
  iommu.unmap(domain, { iova, size: 4096 });
  const unmapped = edu.dma({ direction: "to-device", ram: iova, buffer: 0x40000, length: 16 });
  const events = iommu.readEvents().map((e) => e.name);
  return { toDevice: toDevice.ok, toRam: toRam.ok, same, unmapped: unmapped.ok, events };
}
