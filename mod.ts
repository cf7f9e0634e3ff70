/**
 * dmaworks: a Deno-native, multithreaded emulator of a machine's DMA path.
 *
 * Guest RAM lives in one SharedArrayBuffer; an AMD-Vi IOMMU runs on the main
 * isolate; each DMA-capable device runs in its own Worker, translating
 * through an IOTLB snapshot the IOMMU publishes in shared memory. The main
 * isolate owns the address map, PCI, interrupts and the IOMMU, and never
 * blocks.
 *
 * @example Start a machine with an edu device and talk to it
 * ```ts
 * import { Machine } from "@dmaworks/dmaworks";
 * import { equal } from "node:assert/strict";
 * await using machine = await Machine.create({ devices: [{ type: "edu", addr: "04.0" }] });
 * await machine.out(0xcf8, 4, 0x80002010); // BAR0 of 00:04.0
 * await machine.out(0xcfc, 4, 0xfe000000);
 * await machine.out(0xcf8, 4, 0x80002004); // command: memory decoding
 * await machine.out(0xcfc, 2, 0x0002);
 * equal(await machine.read(0xfe000000, 4), 0x010000edn);
 * ```
 *
 * @module
 */

// Machines, configuration and guests
export * from "./src/machine/machine.ts";
export * from "./src/machine/machine_file.ts";
export * from "./src/machine/trace_categories.ts";
export * from "./src/machine/virtual_clock.ts";
export * from "./src/guest/guest.ts";
export * from "./src/shared/irq_lines.ts";

// Guest memory and the address map
export * from "./src/memory/guest_memory.ts";
export * from "./src/memory/address_map.ts";

// The DMA API
export * from "./src/dma/mmu.ts";
export * from "./src/dma/dma_result.ts";
export * from "./src/dma/sg_list.ts";
export * from "./src/dma/dma_context.ts";
export * from "./src/dma/dma_trace.ts";
export * from "./src/dma/dma_trace_lines.ts";
export {
  DmaInjector,
  type DmaInjectorOptions,
  type InjectedFill,
  type InjectionPattern,
} from "./src/dma/dma_inject.ts";

// PCI
export * from "./src/pci/pci_function.ts";
export * from "./src/pci/pci_bus.ts";

// Devices
export * from "./src/devices/device_model.ts";
export * from "./src/devices/edu.ts";
export {
  E1000_DEFAULT_MAC,
  E1000_DESCRIPTOR,
  E1000_MAX_TSO_SEGMENTS,
  E1000_MAX_TX_FRAME,
  e1000DefaultProperties,
  E1000Device,
  validateE1000Properties,
} from "./src/devices/e1000.ts";
export * from "./src/devices/e1000_regs.ts";
export * from "./src/devices/e1000_eeprom.ts";
export * from "./src/devices/piix3_ide.ts";
export * from "./src/devices/ata_disk.ts";
export * from "./src/devices/ide_bus_master.ts";
export {
  ATTACHED_DEVICES,
  type DeviceType,
  deviceType,
  deviceTypeNames,
  MAIN_ISOLATE_DEVICES,
} from "./src/devices/registry.ts";

// Disk storage
export * from "./src/storage/disk_backend.ts";
export * from "./src/storage/raw_image.ts";
export * from "./src/storage/memory_disk.ts";
export * from "./src/storage/open_disk.ts";
export * from "./src/storage/faulty_disk.ts";

// The AMD-Vi IOMMU
export * from "./src/iommu/amd_vi.ts";
export {
  AMD_VI_EXT_FEATURE,
  AMD_VI_MAX_LEVELS,
  AMD_VI_MMIO_BASE,
  AMD_VI_MMIO_SIZE,
  AmdViCommand,
  AmdViControl,
  AmdViErrorType,
  AmdViEvent,
  AmdViEventFlag,
  AmdViFeature,
  AmdViReg,
  AmdViStatus,
  invTimeoutMs,
} from "./src/iommu/amd_vi_registers.ts";
export * from "./src/iommu/device_table.ts";
export * from "./src/iommu/page_walk.ts";
export * from "./src/iommu/commands.ts";
export * from "./src/iommu/events.ts";
export {
  type SnapshotDte,
  SnapshotReader,
  type SnapshotTranslation,
  SnapshotWriter,
} from "./src/iommu/iotlb_snapshot.ts";
export * from "./src/iommu/snapshot_mmu.ts";
export * from "./src/iommu/worker_link.ts";

// Networking
export * from "./src/net/netdev.ts";
export * from "./src/net/pcap_writer.ts";
export * from "./src/net/ethernet.ts";
export * from "./src/net/hub.ts";
export * from "./src/net/dgram.ts";

// Guest drivers and workloads
export * from "./src/guest/pci.ts";
export * from "./src/guest/edu_driver.ts";
export * from "./src/guest/amd_vi_driver.ts";
export * from "./src/guest/e1000_driver.ts";
export * from "./src/guest/ide_driver.ts";
export * from "./src/stress/use_after_invalidate.ts";

// The concurrency stress runner (`deno task stress`)
export {
  runStress,
  stressDeviceKinds,
  type StressDeviceSummary,
  type StressInjectedBug,
  type StressLatency,
  type StressOptions,
  type StressProgress,
  type StressResult,
  type StressViolation,
} from "./src/stress/runner.ts";
export { renderStressReport, replayCommand } from "./src/stress/report.ts";
export {
  formatProgress,
  ProgressPrinter,
  type ProgressPrinterOptions,
} from "./src/stress/progress.ts";
export { OP_KINDS, type StressDeviceKind, type StressOpKind } from "./src/stress/ops.ts";
export type { StressViolationKind } from "./src/stress/agent_plan.ts";
export { CHECK_NAMES, type CheckName } from "./src/stress/stress_layout.ts";

// Workloads: the API for writing one, and the built-in ones by name
export * from "./src/workloads/workload.ts";
export * from "./src/workloads/workload_options.ts";
export * from "./src/workloads/guest_context.ts";
export * from "./src/workloads/registry.ts";
export * from "./src/workloads/summary.ts";

// qtest
export * from "./src/qtest/qtest_server.ts";
export * from "./src/qtest/qtest_client.ts";
export * from "./src/qtest/qtest_chardev.ts";
export * from "./src/qtest/qtest_connection.ts";

// Shared-memory building blocks device hosts use
export type { WakeTarget } from "./src/shared/doorbell.ts";

// Helpers
export {
  bigintToAddress,
  checkAddress,
  checkRange,
  FOUR_GIB,
  hex,
  MAX_ADDRESS,
} from "./src/util/address.ts";
export * from "./src/util/random.ts";
export * from "./src/util/crc32.ts";
