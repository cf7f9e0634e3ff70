/**
 * The device types dmaworks can instantiate, by `-device` name.
 *
 * @module
 */

import type { DeviceDescriptor, DeviceFactory } from "./device_model.ts";
import { EDU_DESCRIPTOR, EduDevice, validateEduProperties } from "./edu.ts";
import { PIIX3_IDE_DESCRIPTOR, Piix3Ide } from "./piix3_ide.ts";
import {
  E1000_DESCRIPTOR,
  e1000DefaultProperties,
  E1000Device,
  validateE1000Properties,
} from "./e1000.ts";

/** A device type: its static description and how to build its model. */
export interface DeviceType {
  /** Static description (PCI identity, regions, interrupts). */
  readonly descriptor: DeviceDescriptor;
  /** Builds the model inside its host (a device worker). */
  readonly create: DeviceFactory;
  /** The `-device` properties the type accepts (besides the generic ones). */
  readonly properties: readonly string[];
  /** A NIC: its `netdev` property connects it to a network backend. */
  readonly nic?: boolean;
  /** A controller that disks attach to (`-device ide-hd,bus=ID.N`), with its number of buses. */
  readonly diskBuses?: number;
  /**
   * Checks property values on the main isolate before a worker starts
   * (throws an error naming the bad property).
   */
  readonly validate?: (properties: Readonly<Record<string, string>>) => void;
  /**
   * Property values for instance `instance` (0 for the machine's first device
   * of this type) when the configuration does not give them, e.g. a NIC's MAC.
   */
  readonly defaults?: (instance: number) => Readonly<Record<string, string>>;
}

/**
 * Devices that are not PCI functions but attach to a controller
 * (`-device ide-hd,drive=…,bus=ID.N`): their accepted properties.
 *
 * @example
 * ```ts
 * import { ATTACHED_DEVICES, deviceType } from "./registry.ts";
 * import { equal } from "node:assert/strict";
 * equal(ATTACHED_DEVICES["ide-hd"]?.includes("drive"), true);
 * equal(deviceType("ide-hd"), undefined); // not a PCI function of its own
 * equal(deviceType("piix3-ide")?.diskBuses, 2); // it attaches to bus ID.0 or ID.1
 * ```
 */
export const ATTACHED_DEVICES: Readonly<Record<string, readonly string[]>> = {
  "ide-hd": ["drive", "bus", "unit", "serial", "model", "ver"],
};

const TYPES: ReadonlyMap<string, DeviceType> = new Map<string, DeviceType>([
  ["edu", {
    descriptor: EDU_DESCRIPTOR,
    create: (env, properties) => new EduDevice(env, properties),
    properties: ["dma_mask"],
    validate: validateEduProperties,
  }],
  ["piix3-ide", {
    descriptor: PIIX3_IDE_DESCRIPTOR,
    create: (env, properties) => new Piix3Ide(env, properties),
    properties: [],
    diskBuses: 2,
  }],
  ["e1000", {
    descriptor: E1000_DESCRIPTOR,
    create: (env, properties) => new E1000Device(env, properties),
    properties: ["netdev", "mac", "romfile"],
    nic: true,
    validate: validateE1000Properties,
    defaults: e1000DefaultProperties,
  }],
]);

/**
 * Devices the main isolate models itself (no worker): `-device` names with a
 * description for `-device help`.
 *
 * @example
 * ```ts
 * import { deviceType, MAIN_ISOLATE_DEVICES } from "./registry.ts";
 * import { equal, match } from "node:assert/strict";
 * match(MAIN_ISOLATE_DEVICES["amd-iommu"] ?? "", /AMD-Vi/); // what -device help prints
 * equal(deviceType("amd-iommu"), undefined); // no worker device type behind it
 * ```
 */
export const MAIN_ISOLATE_DEVICES: Readonly<Record<string, string>> = {
  "amd-iommu": "AMD-Vi IOMMU (1022:0008), MMIO at 0xfed80000",
};

/**
 * Device types that are named by QEMU's syntax but arrive with later work.
 * Naming one gives a clear "not available yet" error.
 */
export const PLANNED_DEVICE_TYPES: readonly string[] = [];

/**
 * Looks up a device type.
 *
 * @param name The `-device` name.
 * @returns The type, or `undefined` when unknown.
 *
 * @example
 * ```ts
 * import { deviceType } from "./registry.ts";
 * import { equal } from "node:assert/strict";
 * equal(deviceType("edu")?.descriptor.pci.vendorId, 0x1234);
 * equal(deviceType("nope"), undefined);
 * ```
 */
export function deviceType(name: string): DeviceType | undefined {
  return TYPES.get(name);
}

/**
 * The names of every available device type.
 *
 * @returns The names, sorted.
 *
 * @example
 * ```ts
 * import { deviceTypeNames } from "./registry.ts";
 * import { ok } from "node:assert/strict";
 * ok(deviceTypeNames().includes("edu"));
 * ```
 */
export function deviceTypeNames(): string[] {
  return [...TYPES.keys()].sort();
}
