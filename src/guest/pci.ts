/**
 * Guest-side PCI: configuration mechanism #1 accessors, bus enumeration and
 * a firmware-style resource assignment (what SeaBIOS does before an OS
 * boots; dmaworks machines start with every BAR at 0, like QEMU with `-S`).
 *
 * @module
 */

import type { Guest } from "./guest.ts";

/** A bus-0 function found by enumeration. */
export interface GuestPciFunction {
  /** Slot. */
  readonly device: number;
  /** Function. */
  readonly function: number;
  /** Vendor id. */
  readonly vendorId: number;
  /** Device id. */
  readonly deviceId: number;
  /** Class code (base << 16 | sub << 8 | prog-if). */
  readonly classCode: number;
  /** Interrupt pin (0 none, 1 INTA …). */
  readonly interruptPin: number;
  /** Implemented BARs with their sizes (from sizing). */
  readonly bars: readonly GuestBar[];
}

/** A BAR as found by sizing. */
export interface GuestBar {
  /** BAR index. */
  readonly index: number;
  /** Memory or I/O. */
  readonly kind: "mmio" | "pio";
  /** Size in bytes. */
  readonly size: number;
  /** Whether it is a 64-bit memory BAR. */
  readonly is64: boolean;
  /** The address assigned by {@linkcode assignPciResources} (0 before). */
  address: number;
}

/** Options for {@linkcode assignPciResources}. */
export interface AssignOptions {
  /** First MMIO address to hand out (default 0xc000_0000). */
  mmioBase?: number;
  /** First I/O port to hand out (default 0xc000). */
  ioBase?: number;
  /** Also set Bus Master Enable (default true). */
  busMaster?: boolean;
}

function configAddress(device: number, fn: number, offset: number): number {
  return (0x8000_0000 | (device << 11) | (fn << 8) | (offset & 0xfc)) >>> 0;
}

/**
 * Reads `size` bytes of a bus-0 function's configuration space.
 *
 * @param guest The CPU.
 * @param location Slot, function and register offset.
 * @param size 1, 2 or 4.
 * @returns The value.
 *
 * @example
 * ```ts
 * // The default export of a guest program (run with `machine.runGuest(url)`): reads 00:04.0's vendor ID.
 * import type { Guest } from "./guest.ts";
 * import { pciConfigRead } from "./pci.ts";
 *
 * function program(guest: Guest): number {
 *   return pciConfigRead(guest, { device: 4, function: 0, offset: 0 }, 2);
 * }
 * ```
 */
export function pciConfigRead(
  guest: Guest,
  location: { device: number; function: number; offset: number },
  size: 1 | 2 | 4,
): number {
  guest.out32(0xcf8, configAddress(location.device, location.function, location.offset));
  const port = 0xcfc + (location.offset & 3);
  return size === 1 ? guest.in8(port) : size === 2 ? guest.in16(port) : guest.in32(port);
}

/**
 * Writes `size` bytes of a bus-0 function's configuration space.
 *
 * @param guest The CPU.
 * @param location Slot, function and register offset.
 * @param options Size and value.
 *
 * @example
 * ```ts
 * // The default export of a guest program: enables memory decoding and bus mastering on 00:04.0.
 * import type { Guest } from "./guest.ts";
 * import { pciConfigWrite } from "./pci.ts";
 *
 * function program(guest: Guest): void {
 *   pciConfigWrite(guest, { device: 4, function: 0, offset: 4 }, { size: 2, value: 0x6 });
 * }
 * ```
 */
export function pciConfigWrite(
  guest: Guest,
  location: { device: number; function: number; offset: number },
  options: { size: 1 | 2 | 4; value: number },
): void {
  guest.out32(0xcf8, configAddress(location.device, location.function, location.offset));
  const port = 0xcfc + (location.offset & 3);
  if (options.size === 1) guest.out8(port, options.value);
  else if (options.size === 2) guest.out16(port, options.value);
  else guest.out32(port, options.value);
}

function sizeBars(guest: Guest, device: number, fn: number): GuestBar[] {
  const bars: GuestBar[] = [];
  for (let index = 0; index < 6; index++) {
    const at = { device, function: fn, offset: 0x10 + index * 4 };
    const original = pciConfigRead(guest, at, 4);
    pciConfigWrite(guest, at, { size: 4, value: 0xffff_ffff });
    const mask = pciConfigRead(guest, at, 4);
    pciConfigWrite(guest, at, { size: 4, value: original });
    if (mask === 0) continue;
    if (mask & 1) {
      const size = ((~(mask & 0xffff_fffc)) >>> 0 & 0xffff) + 1;
      bars.push({ index, kind: "pio", size, is64: false, address: 0 });
      continue;
    }
    const is64 = (mask & 0x6) === 0x4;
    let size = ((~(mask & 0xffff_fff0)) >>> 0) + 1;
    if (is64) {
      const hiAt = { device, function: fn, offset: at.offset + 4 };
      const hiOriginal = pciConfigRead(guest, hiAt, 4);
      pciConfigWrite(guest, hiAt, { size: 4, value: 0xffff_ffff });
      const hiMask = pciConfigRead(guest, hiAt, 4);
      pciConfigWrite(guest, hiAt, { size: 4, value: hiOriginal });
      if (hiMask !== 0xffff_ffff) size = (((~hiMask) >>> 0) + 1) * 2 ** 32;
      index++;
    }
    bars.push({ index: is64 ? index - 1 : index, kind: "mmio", size, is64, address: 0 });
  }
  return bars;
}

/**
 * Enumerates bus 0 (every slot and, for multi-function devices, every
 * function) and sizes the BARs.
 *
 * @param guest The CPU.
 * @returns The functions found.
 *
 * @example
 * ```ts
 * // The default export of a guest program: lists bus 0.
 * import type { Guest } from "./guest.ts";
 * import { enumeratePci } from "./pci.ts";
 *
 * function program(guest: Guest): string[] {
 *   return enumeratePci(guest).map((fn) =>
 *     `${fn.device}.${fn.function} ${fn.vendorId.toString(16)}:${fn.deviceId.toString(16)}`
 *   );
 * }
 * ```
 */
export function enumeratePci(guest: Guest): GuestPciFunction[] {
  const found: GuestPciFunction[] = [];
  for (let device = 0; device < 32; device++) {
    for (let fn = 0; fn < 8; fn++) {
      const id = pciConfigRead(guest, { device, function: fn, offset: 0 }, 4);
      if ((id & 0xffff) === 0xffff) {
        if (fn === 0) break;
        continue;
      }
      const classWord = pciConfigRead(guest, { device, function: fn, offset: 8 }, 4);
      const headerType = pciConfigRead(guest, { device, function: fn, offset: 0x0e }, 1);
      found.push({
        device,
        function: fn,
        vendorId: id & 0xffff,
        deviceId: id >>> 16,
        classCode: classWord >>> 8,
        interruptPin: pciConfigRead(guest, { device, function: fn, offset: 0x3d }, 1),
        bars: (headerType & 0x7f) === 0 ? sizeBars(guest, device, fn) : [],
      });
      if (fn === 0 && !(headerType & 0x80)) break;
    }
  }
  return found;
}

/**
 * Assigns addresses to every BAR (naturally aligned, MMIO from 0xc000_0000,
 * I/O from 0xc000) and enables decoding (and bus mastering), like firmware.
 *
 * @param guest The CPU.
 * @param functions What {@linkcode enumeratePci} found; their `address` fields are filled in.
 * @param options Where to allocate from.
 *
 * @example
 * ```ts
 * // The default export of a guest program: enumerates bus 0 and assigns BARs like firmware.
 * import type { Guest } from "./guest.ts";
 * import { assignPciResources, enumeratePci } from "./pci.ts";
 *
 * function program(guest: Guest): number[] {
 *   const fns = enumeratePci(guest);
 *   assignPciResources(guest, fns);
 *   return fns.flatMap((fn) => fn.bars.map((bar) => bar.address));
 * }
 * ```
 */
export function assignPciResources(
  guest: Guest,
  functions: readonly GuestPciFunction[],
  options: AssignOptions = {},
): void {
  let mmio = options.mmioBase ?? 0xc000_0000;
  let io = options.ioBase ?? 0xc000;
  const align = (value: number, size: number) => Math.ceil(value / size) * size;
  for (const fn of functions) {
    if (fn.device === 0 && fn.function === 0) continue; // the host bridge has no BARs
    let command = 0;
    const bars = [...fn.bars].sort((a, b) => b.size - a.size);
    for (const bar of bars) {
      const at = { device: fn.device, function: fn.function, offset: 0x10 + bar.index * 4 };
      if (bar.kind === "pio") {
        io = align(io, bar.size);
        bar.address = io;
        io += bar.size;
        pciConfigWrite(guest, at, { size: 4, value: bar.address });
        command |= 0x1;
      } else {
        mmio = align(mmio, bar.size);
        bar.address = mmio;
        mmio += bar.size;
        pciConfigWrite(guest, at, { size: 4, value: bar.address % 2 ** 32 });
        if (bar.is64) {
          pciConfigWrite(guest, { ...at, offset: at.offset + 4 }, {
            size: 4,
            value: Math.floor(bar.address / 2 ** 32),
          });
        }
        command |= 0x2;
      }
    }
    if (options.busMaster ?? true) command |= 0x4;
    const at = { device: fn.device, function: fn.function, offset: 4 };
    const old = pciConfigRead(guest, at, 2);
    pciConfigWrite(guest, at, { size: 2, value: old | command });
  }
}
