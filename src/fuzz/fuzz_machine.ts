/**
 * The machine the fuzzer attacks, as a dmaworks (QEMU-style) command line,
 * and the addresses its operation generator assigns and uses.
 *
 * The command line is the contract between a fuzz run and its reproducer: a
 * repro script replays with `dmaworks <FUZZ_MACHINE_ARGS> -qtest stdio`.
 *
 * @module
 */

import type { MachineConfig } from "../machine/machine.ts";

/**
 * The fuzz machine: 128 MiB, the AMD-Vi IOMMU, a PIIX3 IDE controller with a
 * writable disk on the primary channel and a read-only disk on the secondary,
 * two e1000s on one hub (what one sends, the other receives) and edu.
 *
 * @example
 * ```ts
 * import { FUZZ_MACHINE_ARGS } from "./fuzz_machine.ts";
 * import { ok } from "node:assert/strict";
 * ok(FUZZ_MACHINE_ARGS.includes("amd-iommu,addr=01.0"));
 * ```
 */
export const FUZZ_MACHINE_ARGS: readonly string[] = [
  "-machine",
  "q35",
  "-m",
  "128M",
  "-nodefaults",
  "-device",
  "amd-iommu,addr=01.0",
  "-device",
  "piix3-ide,id=ide,addr=02.0",
  "-drive",
  "if=none,id=d0,size=4M",
  "-device",
  "ide-hd,drive=d0,bus=ide.0",
  "-drive",
  "if=none,id=d1,size=4M,readonly=on",
  "-device",
  "ide-hd,drive=d1,bus=ide.1",
  "-device",
  "e1000,netdev=n0,addr=03.0",
  "-netdev",
  "hub,id=n0,hubid=0",
  "-device",
  "edu,addr=04.0",
  "-device",
  "e1000,netdev=n1,addr=05.0",
  "-netdev",
  "hub,id=n1,hubid=0",
];

/**
 * The fuzz machine's configuration: what `dmaworks` builds from
 * {@linkcode FUZZ_MACHINE_ARGS} with `-qtest stdio` (a test checks that the
 * two agree), so a fuzz run and its replay on the command line run the same
 * machine.
 *
 * @returns A fresh configuration.
 *
 * @example
 * ```ts
 * import { fuzzMachineConfig } from "./fuzz_machine.ts";
 * import { equal } from "node:assert/strict";
 * equal(fuzzMachineConfig().ramSize, 128 * 1024 * 1024);
 * ```
 */
export function fuzzMachineConfig(): MachineConfig {
  return {
    ramSize: 128 * 1024 * 1024,
    devices: [
      { type: "amd-iommu", addr: "01.0" },
      { type: "piix3-ide", id: "ide", addr: "02.0" },
      { type: "ide-hd", properties: { drive: "d0", bus: "ide.0" } },
      { type: "ide-hd", properties: { drive: "d1", bus: "ide.1" } },
      { type: "e1000", addr: "03.0", properties: { netdev: "n0" } },
      { type: "edu", addr: "04.0" },
      { type: "e1000", addr: "05.0", properties: { netdev: "n1" } },
    ],
    drives: [
      { id: "d0", format: "raw", readonly: false, size: 4 * 1024 * 1024 },
      { id: "d1", format: "raw", readonly: true, size: 4 * 1024 * 1024 },
    ],
    netdevs: [
      { type: "hub", id: "n0", properties: { hubid: "0" } },
      { type: "hub", id: "n1", properties: { hubid: "0" } },
    ],
    qtestClock: true,
    narrowWorkerPermissions: false,
  };
}

/**
 * PCI slots, requester ids and the BAR addresses the generator assigns (as
 * firmware would), and where it puts the structures devices fetch.
 *
 * @example
 * ```ts
 * import { FuzzLayout } from "./fuzz_machine.ts";
 * import { equal } from "node:assert/strict";
 * equal(FuzzLayout.EDU_SLOT << 3, 0x20); // edu's requester id
 * ```
 */
export const FuzzLayout = {
  /** Guest RAM in bytes. */
  RAM_SIZE: 128 * 1024 * 1024,
  IOMMU_SLOT: 1,
  IDE_SLOT: 2,
  E1000A_SLOT: 3,
  EDU_SLOT: 4,
  E1000B_SLOT: 5,
  /** The IOMMU's MMIO window (fixed). */
  IOMMU_MMIO: 0xfed8_0000,
  EDU_BAR0: 0xfe00_0000,
  E1000A_BAR0: 0xfe10_0000,
  E1000B_BAR0: 0xfe12_0000,
  E1000A_IO: 0xc000,
  E1000B_IO: 0xc040,
  IDE_BM: 0xc080,
  /** Device table (two pages: Size = 1). */
  DEV_TABLE: 0x0010_0000,
  /** Command ring (4 KiB: ComLen 8). */
  CMD_RING: 0x0011_0000,
  /** Event log (4 KiB: EventLen 8). */
  EVT_LOG: 0x0011_1000,
  /** Completion-wait stores. */
  CW_STORE: 0x0011_2000,
  /** Page-table pages are allocated from here. */
  PAGE_POOL: 0x0020_0000,
  PAGE_POOL_END: 0x0040_0000,
  /** IDE PRD tables (primary, secondary). */
  PRD0: 0x0050_0000,
  PRD1: 0x0050_1000,
  /** e1000 rings: A transmit/receive, B transmit/receive (4 KiB each). */
  RING_A_TX: 0x0060_0000,
  RING_A_RX: 0x0060_1000,
  RING_B_TX: 0x0061_0000,
  RING_B_RX: 0x0061_1000,
  /** Data buffers. */
  DATA: 0x0100_0000,
  DATA_END: 0x0200_0000,
} as const;
