/**
 * dmaworks: a Deno-native, multithreaded emulator of a machine's DMA path.
 *
 * Guest RAM lives in one SharedArrayBuffer; each DMA-capable device runs in its
 * own Worker; the main isolate owns the address map, PCI, interrupts and (with
 * the IOMMU) translation, and never blocks.
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

export * from "./src/memory/guest_memory.ts";
export * from "./src/memory/address_map.ts";
export * from "./src/dma/mmu.ts";
export * from "./src/dma/dma_result.ts";
export * from "./src/dma/sg_list.ts";
export * from "./src/dma/dma_context.ts";
export * from "./src/pci/pci_function.ts";
export * from "./src/pci/pci_bus.ts";
export * from "./src/devices/device_model.ts";
export * from "./src/devices/edu.ts";
export * from "./src/devices/registry.ts";
export * from "./src/guest/guest.ts";
export * from "./src/shared/irq_lines.ts";
export * from "./src/machine/machine.ts";
export * from "./src/machine/virtual_clock.ts";
export * from "./src/util/address.ts";
