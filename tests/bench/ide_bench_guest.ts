// Guest side of the IDE benchmark (see ide_bench.ts): assigns PCI resources
// (BAR4 at 0xc000), optionally initialises the IOMMU with the controller in a
// domain, maps 64 MiB of 4 KiB pages (physically contiguous or scattered),
// touches every page of the destination (so no run pays for first-touch page
// faults), and writes the PRD tables. Returns the tables: one per command.
import type { Guest } from "../../src/guest/guest.ts";
import { AmdViDriver } from "../../src/guest/amd_vi_driver.ts";
import { assignPciResources, enumeratePci } from "../../src/guest/pci.ts";

const PAGE = 4096;
const TOTAL = 64 * 1024 * 1024;
/** Destination pages live here (scattered ones in a 96 MiB pool). */
const DATA = 0x0400_0000;
/** PRD tables (64 KiB-aligned slots). */
const TABLES = 0x1000_0000;
/** IOVA of the destination and of the tables, with the IOMMU. */
const IOVA = 0x4000_0000;
const TABLE_IOVA = 0x3000_0000;

/** One command: its PRD table's bus address and its sector count. */
export interface BenchCommand {
  readonly prd: number;
  readonly sectors: number;
}

export default function (guest: Guest, options: Record<string, string>): BenchCommand[] {
  const fns = enumeratePci(guest);
  assignPciResources(guest, fns, { ioBase: 0xc000 });
  const fn = fns.find((f) => f.vendorId === 0x8086 && f.deviceId === 0x7010)!;
  const m = guest.memory;
  const scattered = options["layout"] === "scattered";
  const phys = (i: number) => scattered ? DATA + ((i * 37) % 24576) * PAGE : DATA + i * PAGE;
  for (let i = 0; i < TOTAL / PAGE; i++) m.fill(phys(i), PAGE, 0);
  // PRD entries: `perEntry` bytes each, `perCommand` entries per table.
  let entry: (command: number, index: number) => [number, number];
  let perCommand: number;
  let tableBus = TABLES;
  if (options["iommu"] === "on") {
    const iommu = new AmdViDriver(guest, { region: { base: 0x0100_0000, size: 0x0100_0000 } });
    iommu.init();
    const domain = iommu.createDomain();
    iommu.attach((fn.device << 3) | fn.function, domain);
    for (let i = 0; i < TOTAL / PAGE; i++) {
      iommu.map(domain, { iova: IOVA + i * PAGE, phys: phys(i), size: PAGE });
    }
    iommu.map(domain, { iova: TABLE_IOVA, phys: TABLES, size: 0x2_0000, perms: "r" });
    tableBus = TABLE_IOVA;
    // IOVA-contiguous 64 KiB regions, however the pages lie physically.
    perCommand = 512;
    entry = (c, e) => [IOVA + (c * 512 + e) * 0x10000, 0];
  } else if (scattered) {
    // One 4 KiB region per page: QEMU reads at most 512 entries (4 KiB) of a
    // table; dmaworks reads up to the table's 64 KiB boundary (8192).
    perCommand = options["table"] === "full" ? 8192 : 512;
    entry = (c, e) => [phys(c * perCommand + e), PAGE];
  } else {
    perCommand = 512;
    entry = (c, e) => [DATA + (c * 512 + e) * 0x10000, 0];
  }
  const bytesPerEntry = options["iommu"] === "on" || !scattered ? 0x10000 : PAGE;
  const commands = TOTAL / (perCommand * bytesPerEntry);
  const out: BenchCommand[] = [];
  for (let c = 0; c < commands; c++) {
    const at = TABLES + c * 0x1_0000;
    for (let e = 0; e < perCommand; e++) {
      const [address, count] = entry(c, e);
      m.write32(at + e * 8, address);
      m.write32(at + e * 8 + 4, (count | (e === perCommand - 1 ? 0x8000_0000 : 0)) >>> 0);
    }
    out.push({ prd: tableBus + c * 0x1_0000, sectors: (perCommand * bytesPerEntry) / 512 });
  }
  return out;
}
