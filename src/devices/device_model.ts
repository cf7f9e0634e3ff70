/**
 * The contract between a device model and whatever hosts it.
 *
 * A device model is a plain class that knows nothing about threads: it
 * answers register accesses, uses its {@linkcode DeviceEnv} for DMA and
 * interrupts, and may start asynchronous work. The worker shell in
 * `workers/device_worker.ts` connects it to mailboxes and channels; tests may
 * host it in one thread.
 *
 * @module
 */

import type { DmaContext } from "../dma/dma_context.ts";
import type { PciFunctionSpec } from "../pci/pci_function.ts";
import type { DiskFaults } from "../storage/faulty_disk.ts";

/** A register region a device exposes. */
export interface DeviceRegionSpec {
  /** Name, e.g. `bar0` or `ide.cmd0`. */
  readonly name: string;
  /** Memory-mapped or port I/O. */
  readonly kind: "mmio" | "pio";
  /** Size in bytes. */
  readonly size: number;
  /** The BAR that places the region (relocatable), if any. */
  readonly bar?: number;
  /** A fixed legacy address (e.g. 0x1f0), for regions without a BAR. */
  readonly fixedBase?: number;
  /** Largest access the model implements natively (default 4; 8 enables 64-bit). */
  readonly maxAccess?: 4 | 8;
}

/** An interrupt output of a device. */
export type DeviceIrqSpec =
  /** The PCI INTx pin in the config space, routed by slot and pin. */
  | { readonly kind: "intx" }
  /** A fixed ISA line (e.g. IDE 14/15). */
  | { readonly kind: "isa"; readonly line: number };

/** Static facts about a device type, known without instantiating it. */
export interface DeviceDescriptor {
  /** The `-device` name, e.g. `edu`. */
  readonly type: string;
  /** One-line description for `-device help`. */
  readonly description: string;
  /** PCI function description. */
  readonly pci: PciFunctionSpec;
  /** Register regions; a region's index is its region number. */
  readonly regions: readonly DeviceRegionSpec[];
  /** Interrupt outputs; an output's index is its pin number for `setIrq`. */
  readonly irqs: readonly DeviceIrqSpec[];
}

/** A disk attached to a controller (`-drive` + `-device ide-hd`), as its worker receives it. */
export interface DiskAttachment {
  /** Always `disk`. */
  readonly kind: "disk";
  /** The drive id (`-drive …,id=`). */
  readonly drive: string;
  /** Raw image file path, or absent for an in-memory disk. */
  readonly file?: string;
  /** Size of an in-memory disk in bytes. */
  readonly size?: number;
  /** Writes fail (the guest sees an error). */
  readonly readonly: boolean;
  /** Channel (bus) on the controller. */
  readonly bus: number;
  /** Unit on the channel (0 master, 1 slave). */
  readonly unit: number;
  /** The attaching device's properties (`serial`, `model`, `ver`, …). */
  readonly properties: Readonly<Record<string, string>>;
  /** Make the storage fail on purpose (reliability tests; see `src/storage/faulty_disk.ts`). */
  readonly faults?: DiskFaults;
}

/** What a NIC model uses to send and receive frames once its `netdev` is connected. */
export interface DeviceNet {
  /**
   * Sends a frame (without FCS) to the network backend. The frame is copied
   * before `transmit` returns, so the caller may reuse its buffer.
   *
   * @param frame The Ethernet frame.
   * @returns Whether it was queued (false: dropped, the backend is congested).
   */
  transmit(frame: Uint8Array): boolean;
  /**
   * Takes the next frame received from the backend; the model pulls frames
   * when it has receive buffers and is told of arrivals by `DeviceModel.onNetReceive`.
   *
   * @returns A frame, or `undefined` when none is waiting.
   */
  receive(): Uint8Array | undefined;
  /** Whether received frames are waiting. */
  readonly pending: boolean;
  /**
   * Frames the host could not queue for the NIC because its receive queue
   * was full (a count that only grows); a NIC reports them as missed.
   */
  readonly dropped?: number;
}

/** What a device model gets from its host. */
export interface DeviceEnv {
  /** The device's DMA context (its requester id, the IOMMU, Bus Master Enable). */
  readonly dma: DmaContext;
  /**
   * Sets interrupt output `pin`'s level.
   *
   * @param pin Index into the descriptor's `irqs`.
   * @param level Asserted or not.
   */
  setIrq(pin: number, level: boolean): void;
  /**
   * Logs a guest-visible event worth reporting (a guest error, a fault).
   *
   * @param message The message.
   */
  log(message: string): void;
  /**
   * Records a trace line (`-d ide`, `-d e1000`, `-d edu`): present only
   * while the machine traces this device's category, so a model calls it as
   * `env.trace?.(…)` and builds no string otherwise.
   *
   * @param message The line, without the device's name.
   */
  readonly trace?: (message: string) => void;
  /**
   * Runs `task` soon, after the current register access returns (so that a
   * long job never delays register reads of other producers).
   *
   * @param task The work.
   */
  defer(task: () => void | Promise<void>): void;
  /** Disks attached to this controller (empty for other devices). */
  readonly disks?: readonly DiskAttachment[];
  /** The network connection (NICs with a `netdev`). */
  readonly net?: DeviceNet;
}

/** A device model: answers register accesses. */
export interface DeviceModel {
  /**
   * Reads `size` bytes at `offset` of `region`.
   *
   * @param region Region number.
   * @param offset Offset inside the region.
   * @param size 1, 2 or 4.
   * @returns The value (unsigned).
   */
  read(region: number, offset: number, size: 1 | 2 | 4): number;
  /**
   * Writes `size` bytes at `offset` of `region`.
   *
   * @param region Region number.
   * @param offset Offset inside the region.
   * @param size 1, 2 or 4.
   * @param value The value.
   */
  write(region: number, offset: number, size: 1 | 2 | 4, value: number): void;
  /**
   * Reads 8 bytes natively (regions with `maxAccess: 8` only).
   *
   * @param region Region number.
   * @param offset Offset inside the region.
   * @returns The value.
   */
  read64?(region: number, offset: number): bigint;
  /**
   * Writes 8 bytes natively (regions with `maxAccess: 8` only).
   *
   * @param region Region number.
   * @param offset Offset inside the region.
   * @param value The value.
   */
  write64?(region: number, offset: number, value: bigint): void;
  /** Called by the host when received frames are waiting (NICs). */
  onNetReceive?(): void;
  /** Releases resources (files, sockets); called when the machine stops. */
  dispose?(): void | Promise<void>;
}

/** Creates a device model from its environment and `-device` properties. */
export type DeviceFactory = (
  env: DeviceEnv,
  properties: Readonly<Record<string, string>>,
) => DeviceModel;
