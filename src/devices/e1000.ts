/**
 * The e1000: an Intel 82540EM-compatible Gigabit Ethernet controller
 * (8086:100e), as QEMU's `-device e1000` presents it, with transmit and
 * receive engines that move descriptors and frames through the DMA API (and
 * so through the IOMMU).
 *
 * BAR0 (128 KiB MMIO) holds the registers of {@linkcode E1000Reg} and
 * {@linkcode E1000Stat}; BAR1 (64 bytes of I/O space) is the IOADDR (0x00) /
 * IODATA (0x04) window onto them. Registers are 32 bits wide: narrower reads
 * return their byte lanes of the register (with its read side effects),
 * narrower writes are ignored.
 *
 * Transmit runs as deferred work after a TDT or TCTL write, in batches of
 * 64 descriptors (`E1000_TX_BATCH`), so a register write returns at once
 * and no ring, however hostile, keeps the device from answering its
 * registers. Receive takes frames from the network one at a time, filters
 * them, and moves them to receive buffers when the guest provides some; the
 * NIC's frame ring from the main isolate (256 KiB) is its packet buffer, and
 * frames the host could not queue there count as missed (MPC, ICR.RXO).
 * (The 82540EM's receive FIFO is 48 KiB, PBA; a virtual wire has no line
 * rate, so a burst arrives at once and a larger buffer stands in for the
 * time a real wire would have given the guest. PBA is plain storage.)
 *
 * What a guest sees when it feeds the device bad input:
 *
 * | input | outcome |
 * |---|---|
 * | TDLEN 0, TDH or TDT beyond the ring (with work to do) | the transmit ring stops, nothing is fetched, ICR.ERR, ERRCAUSE 1 |
 * | a transmit descriptor at an IOVA that faults | the ring stops at that descriptor (TDH points at it), ERRCAUSE 2 with the fault kind and address |
 * | a transmit buffer that faults | the frame is dropped (nothing reaches the wire), the ring stops at that descriptor, ERRCAUSE 3 |
 * | a frame longer than 16 KiB, a chain without EOP | the bytes beyond 16 KiB are not fetched, the frame is dropped at EOP, ERRCAUSE 5; the ring goes on |
 * | a TCP segmentation context that cannot work (MSS 0, offsets beyond the frame, more than 1024 segments) | the packet is dropped, ERRCAUSE 6 |
 * | RDLEN 0, RDH or RDT beyond the ring | the receive ring stops, the frame is dropped (MPC), ERRCAUSE 9 |
 * | a receive descriptor that faults | the receive ring stops, the frame is dropped (MPC), ERRCAUSE 10 |
 * | a receive buffer that faults | that descriptor is written back with DD, EOP and the RXE error, the ring stops, ERRCAUSE 11 |
 * | no receive buffers | frames wait in the packet buffer (RNBC); when it is full they are lost (MPC, ICR.RXO) |
 * | a frame that needs more buffers than the whole ring has | lost (MPC, ICR.RXO), as in QEMU |
 *
 * A stopped transmit ring restarts when TCTL is written, a stopped receive
 * ring when RCTL is written; CTRL.RST resets everything. ICR.ERR and the
 * ERRCAUSE/ERRADDR/ERRCOUNT registers are dmaworks extensions (the cause bit
 * is reserved on the 82540EM and is raised on the line only when IMS enables
 * it). With Bus Master Enable clear the engines simply wait.
 *
 * Differences from QEMU 7.2, on purpose: CTRL.RST resets the device (QEMU
 * only clears the bit); the I/O BAR's IOADDR/IODATA window works (QEMU's
 * reads 0); statistics registers clear on read as the datasheet says (QEMU
 * keeps CRCERRS…MPC); TCTL.PSP pads short frames to 60 bytes (QEMU never
 * pads on transmit); a descriptor without IFCS carries its own FCS in its
 * last four bytes, which are checked and removed (QEMU sends them as data,
 * dmaworks drops the frame if they are not the frame's CRC, as a receiver
 * would); with RCTL.SECRC clear the receiver writes the frame's real FCS
 * (QEMU counts four bytes it does not write); the rings are checked as
 * described above (QEMU walks out-of-range rings and sends an all-zero frame
 * for an unmapped buffer); frames arriving while the receiver is disabled
 * are discarded (QEMU queues them); byte and word reads return their lanes
 * of the register (QEMU returns the register's low bytes) and narrower writes
 * are ignored (QEMU zero-extends them into the whole register); RAH keeps only
 * its defined bits. Restarting auto-negotiation (BMCR through MDIC) completes
 * it at once and raises LSC (QEMU takes 500 ms), as does setting CTRL.SLU;
 * the link is always up. VLAN tag insertion and stripping (CTRL.VME)
 * and wake-up filters are not modelled (their registers are storage); the
 * interrupt throttling and delay registers (ITR, RDTR, RADV, TIDV, TADV) are
 * accepted without timing effect: causes are raised when the work is done.
 *
 * @module
 */

import type { DmaFault } from "../dma/dma_result.ts";
import {
  ETH_FCS_BYTES,
  ETH_HEADER_BYTES,
  ETH_MIN_FRAME,
  ethernetCrc32,
  formatMac,
  isBroadcast,
  isMulticast,
  parseMac,
} from "../net/ethernet.ts";
import { MAX_FRAME } from "../net/frame_ring.ts";
import { joinHalves } from "../util/address.ts";
import type { DeviceDescriptor, DeviceEnv, DeviceModel } from "./device_model.ts";
import { buildEeprom, EEPROM_CHECKSUM_WORD, EepromMicrowire } from "./e1000_eeprom.ts";
import {
  E1000_DESCRIPTOR_BYTES,
  E1000_DMA_FAULT_CODES,
  E1000_ICR_MASK,
  E1000_STATS_RANGE,
  E1000Ctrl,
  E1000Eerd,
  E1000Err,
  E1000Icr,
  E1000Mdic,
  E1000Phy,
  E1000PhyBits,
  E1000Rah,
  E1000Rctl,
  E1000Reg,
  E1000RxError,
  E1000RxStatus,
  E1000Stat,
  E1000Tctl,
  E1000TxCmd,
  E1000TxExt,
  E1000TxStatus,
} from "./e1000_regs.ts";

/**
 * The MAC address a NIC gets when none is given (QEMU's default for the first NIC).
 *
 * @example
 * ```ts
 * import { E1000_DEFAULT_MAC } from "./e1000.ts";
 * import { isMulticast, parseMac } from "../net/ethernet.ts";
 * import { equal } from "node:assert/strict";
 * const mac = parseMac(E1000_DEFAULT_MAC);
 * equal(isMulticast(mac), false); // a unicast address
 * equal(mac[0]! & 0x02, 0x02); // locally administered, QEMU's 52:54:00 prefix
 * ```
 */
export const E1000_DEFAULT_MAC = "52:54:00:12:34:56";
/** Transmit descriptors processed per deferred batch. */
export const E1000_TX_BATCH = 64;
/** Frames moved to receive buffers per deferred batch. */
export const E1000_RX_BATCH = 64;
/**
 * The largest frame the transmitter sends (the frame rings' limit, 16 KiB).
 *
 * @example
 * ```ts
 * import { E1000_MAX_TX_FRAME } from "./e1000.ts";
 * import { equal, ok } from "node:assert/strict";
 * equal(E1000_MAX_TX_FRAME, 16 * 1024); // longer frames are dropped with ERRCAUSE 5
 * ok(9018 <= E1000_MAX_TX_FRAME); // a jumbo frame (9000-byte MTU) is sent
 * ```
 */
export const E1000_MAX_TX_FRAME: number = MAX_FRAME;
/**
 * The most segments one TCP segmentation packet may produce.
 *
 * @example
 * ```ts
 * import { E1000_MAX_TSO_SEGMENTS } from "./e1000.ts";
 * import { ok } from "node:assert/strict";
 * const segments = (paylen: number, mss: number) => Math.ceil(paylen / mss);
 * ok(segments(65_000, 1460) <= E1000_MAX_TSO_SEGMENTS); // 45 segments: sent
 * ok(segments(65_000, 8) > E1000_MAX_TSO_SEGMENTS); // a tiny MSS: dropped with ERRCAUSE 6
 * ```
 */
export const E1000_MAX_TSO_SEGMENTS = 1024;

/** PCI device id of the 82540EM. */
const DEVICE_ID = 0x100e;
const MMIO_SIZE = 0x2_0000;
const IO_SIZE = 0x40;

/**
 * Static description of the e1000 (compare QEMU 7.2's config space at 00:03.0).
 *
 * @example
 * ```ts
 * import { E1000_DESCRIPTOR } from "./e1000.ts";
 * import { equal } from "node:assert/strict";
 * equal(E1000_DESCRIPTOR.pci.deviceId, 0x100e); // 82540EM, QEMU's -device e1000
 * equal(E1000_DESCRIPTOR.pci.classCode >> 16, 0x02); // a network controller
 * equal(E1000_DESCRIPTOR.regions[0]?.size, 128 * 1024); // BAR0: the registers
 * ```
 */
export const E1000_DESCRIPTOR: DeviceDescriptor = {
  type: "e1000",
  description: "Intel 82540EM Gigabit Ethernet controller (8086:100e)",
  pci: {
    vendorId: 0x8086,
    deviceId: DEVICE_ID,
    revision: 0x03,
    classCode: 0x020000,
    interruptPin: 1,
    bars: [
      { index: 0, kind: "mmio", size: MMIO_SIZE },
      { index: 1, kind: "pio", size: IO_SIZE },
    ],
  },
  regions: [
    { name: "e1000.mmio", kind: "mmio", size: MMIO_SIZE, bar: 0 },
    { name: "e1000.io", kind: "pio", size: IO_SIZE, bar: 1 },
  ],
  irqs: [{ kind: "intx" }],
};

/**
 * Checks `-device e1000` properties on the main isolate, before a worker
 * starts, so that mistakes are reported with the property's name.
 *
 * @param properties The properties (`netdev`, `mac`, `romfile`).
 * @throws {Error} When `mac` is not a unicast MAC address.
 *
 * @example
 * ```ts
 * import { validateE1000Properties } from "./e1000.ts";
 * import { throws } from "node:assert/strict";
 * validateE1000Properties({ mac: "52:54:00:12:34:57" });
 * throws(() => validateE1000Properties({ mac: "52:54:00" }), /Invalid mac/);
 * ```
 */
export function validateE1000Properties(properties: Readonly<Record<string, string>>): void {
  const mac = properties["mac"];
  if (mac === undefined) return;
  let bytes: Uint8Array;
  try {
    bytes = parseMac(mac);
  } catch {
    throw new Error(`Invalid mac '${mac}': expected six hex bytes like ${E1000_DEFAULT_MAC}`);
  }
  if (bytes[0]! & 1) throw new Error(`Invalid mac '${mac}': a multicast address`);
}

/**
 * Default properties of a machine's `instance`-th e1000 (from 0): the MAC
 * address QEMU gives it, 52:54:00:12:34:56 for the first and counting up.
 *
 * @param instance The NIC's number among the machine's e1000s.
 * @returns `{ mac }`.
 *
 * @example
 * ```ts
 * import { e1000DefaultProperties } from "./e1000.ts";
 * import { equal } from "node:assert/strict";
 * equal(e1000DefaultProperties(0).mac, "52:54:00:12:34:56");
 * equal(e1000DefaultProperties(1).mac, "52:54:00:12:34:57");
 * ```
 */
export function e1000DefaultProperties(instance: number): { mac: string } {
  const last = (0x56 + instance) & 0xff;
  return { mac: `52:54:00:12:34:${last.toString(16).padStart(2, "0")}` };
}

/** Word index of a register offset. */
function w(offset: number): number {
  return offset >>> 2;
}

const R = E1000Reg;
const S = E1000Stat;

/** Register words that are plain storage (read what was written). */
const STORAGE = new Set<number>([
  R.CTRL_EXT,
  R.FCAL,
  R.FCAH,
  R.FCT,
  R.VET,
  R.FCTTV,
  R.TXCW,
  R.TIPG,
  R.LEDCTL,
  R.PBA,
  R.FCRTL,
  R.FCRTH,
  R.RDBAL,
  R.RDBAH,
  R.RXDCTL,
  R.RSRPD,
  R.TDBAL,
  R.TDBAH,
  R.TXDCTL,
  R.TSPMT,
  R.RXCSUM,
  R.WUC,
  R.WUFC,
  R.WUS,
  R.MANC,
  R.IPAV,
  R.WUPL,
].map(w));

/** Arrays of plain storage words: [first offset, bytes]. */
const STORAGE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [R.MTA, 0x200],
  [R.VFTA, 0x200],
  [R.IP4AT, 0x20],
  [R.IP6AT, 0x10],
  [R.WUPM, 0x80],
  [R.FFLT, 0x20],
  [R.FFMT, 0x400],
  [R.FFVT, 0x400],
  [R.PBM, 0x1_0000],
];

/** Registers that keep only their low 16 bits. */
/** Registers whose writes `-d e1000` reports (the ring tails are reported as frames instead). */
const TRACED_REGISTERS: Readonly<Record<number, string>> = {
  [R.CTRL]: "CTRL",
  [R.RCTL]: "RCTL",
  [R.TCTL]: "TCTL",
  [R.IMS]: "IMS",
  [R.IMC]: "IMC",
  [R.RDBAL]: "RDBAL",
  [R.RDBAH]: "RDBAH",
  [R.RDLEN]: "RDLEN",
  [R.TDBAL]: "TDBAL",
  [R.TDBAH]: "TDBAH",
  [R.TDLEN]: "TDLEN",
};

/** A frame for a trace line: length, addresses, EtherType. */
function describeFrame(frame: Uint8Array): string {
  const type = frame.length >= 14 ? ((frame[12]! << 8) | frame[13]!).toString(16) : "?";
  return `len=${frame.length} dst=${formatMac(frame.subarray(0, 6))} src=${
    formatMac(frame.subarray(6, 12))
  } type=0x${type.padStart(4, "0")}`;
}

const LOW16 = new Set<number>([R.ITR, R.RDTR, R.RADV, R.TIDV, R.TADV, R.TDH, R.RDH].map(w));

/** 64-bit statistics pairs: high word → low word. */
const STAT_PAIRS = new Map<number, number>([
  [w(S.GORCH), w(S.GORCL)],
  [w(S.GOTCH), w(S.GOTCL)],
  [w(S.TORH), w(S.TORL)],
  [w(S.TOTH), w(S.TOTL)],
]);
const STAT_LOW_HALVES = new Set<number>(STAT_PAIRS.values());

const PRC = [S.PRC64, S.PRC127, S.PRC255, S.PRC511, S.PRC1023, S.PRC1522].map(w);
const PTC = [S.PTC64, S.PTC127, S.PTC255, S.PTC511, S.PTC1023, S.PTC1522].map(w);

/**
 * The PHY registers after reset (QEMU 7.2's values: link up, auto-negotiation
 * not yet complete; restarting it through BMCR completes it at once).
 */
function phyResetValues(): Uint16Array {
  const phy = new Uint16Array(0x20);
  phy[E1000Phy.BMCR] = 0x1140; // 1000 Mb/s, full duplex, auto-negotiation enabled
  phy[E1000Phy.BMSR] = 0x794d; // capabilities, link up
  phy[E1000Phy.PHYID1] = 0x0141;
  phy[E1000Phy.PHYID2] = 0x0c20;
  phy[E1000Phy.ANAR] = 0x0de1;
  phy[E1000Phy.ANLPAR] = 0x01e0;
  phy[E1000Phy.CTRL1000] = 0x0e00;
  phy[E1000Phy.STAT1000] = 0x3c00;
  phy[E1000Phy.PHY_SPEC_CTRL] = 0x0360;
  phy[E1000Phy.PHY_SPEC_STATUS] = 0xac00;
  phy[E1000Phy.EXT_PHY_SPEC_CTRL] = 0x0d60;
  return phy;
}

const PHY_READABLE = new Set<number>([
  E1000Phy.BMCR,
  E1000Phy.BMSR,
  E1000Phy.PHYID1,
  E1000Phy.PHYID2,
  E1000Phy.ANAR,
  E1000Phy.ANLPAR,
  E1000Phy.ANER,
  E1000Phy.CTRL1000,
  E1000Phy.STAT1000,
  E1000Phy.PHY_SPEC_CTRL,
  E1000Phy.PHY_SPEC_STATUS,
  E1000Phy.EXT_PHY_SPEC_CTRL,
  E1000Phy.RX_ERR_CNTR,
]);
const PHY_WRITABLE = new Set<number>([
  E1000Phy.BMCR,
  E1000Phy.ANAR,
  E1000Phy.CTRL1000,
  E1000Phy.PHY_SPEC_CTRL,
  E1000Phy.EXT_PHY_SPEC_CTRL,
]);

/** Offload parameters from a context descriptor. */
interface TxContext {
  ipcss: number;
  ipcso: number;
  ipcse: number;
  tucss: number;
  tucso: number;
  tucse: number;
  paylen: number;
  hdrLen: number;
  mss: number;
  ip: boolean;
  tcp: boolean;
}

function emptyContext(): TxContext {
  return {
    ipcss: 0,
    ipcso: 0,
    ipcse: 0,
    tucss: 0,
    tucso: 0,
    tucse: 0,
    paylen: 0,
    hdrLen: 0,
    mss: 0,
    ip: false,
    tcp: false,
  };
}

/** A FIFO of frames with O(1) push and shift. */
class FrameQueue {
  #items: Array<Uint8Array | undefined> = [];
  #head = 0;
  bytes = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  peek(): Uint8Array | undefined {
    return this.#items[this.#head];
  }

  push(frame: Uint8Array): void {
    this.#items.push(frame);
    this.bytes += frame.length;
  }

  shift(): Uint8Array | undefined {
    const frame = this.#items[this.#head];
    if (frame === undefined) return undefined;
    this.#items[this.#head++] = undefined;
    this.bytes -= frame.length;
    if (this.#head > 64 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return frame;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.bytes = 0;
  }
}

/** Why a descriptor could not be processed. */
interface TxFailure {
  readonly code: number;
  readonly address: number | bigint;
  readonly kind: keyof typeof E1000_DMA_FAULT_CODES;
}

/** A receive descriptor the receiver owns for the frame in hand. */
interface RxSlot {
  index: number;
  address: number;
  buffer: number;
}

/**
 * The e1000 model.
 *
 * @example Read the MAC address from the EEPROM through EERD
 * ```ts
 * import { E1000Device } from "./e1000.ts";
 * import { DmaContext } from "../dma/dma_context.ts";
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { equal } from "node:assert/strict";
 * const nic = new E1000Device({
 *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
 *   setIrq: () => {}, log: () => {}, defer: () => {},
 * }, { mac: "52:54:00:aa:bb:cc" });
 * nic.write(0, 0x14, 4, (1 << 8) | 1); // EERD: start, word 1
 * equal(nic.read(0, 0x14, 4) >>> 16, 0xaa00);
 * equal(nic.read(0, 0x08, 4) & 2, 2); // STATUS.LU: the link is up
 * ```
 */
export class E1000Device implements DeviceModel {
  #env: DeviceEnv;
  #macAddress: Uint8Array;
  #eeprom: Uint16Array;
  #microwire: EepromMicrowire;
  #mac = new Uint32Array(MMIO_SIZE / 4);
  #phy = phyResetValues();
  #ioaddr = 0;
  #irqLevel = false;
  #epoch = 0;
  #warnedNarrowWrite = false;

  // Transmit engine.
  #txScheduled = false;
  #txStopped = false;
  #txRetry: ReturnType<typeof setTimeout> | undefined;
  #txData = new Uint8Array(E1000_MAX_TX_FRAME + ETH_FCS_BYTES);
  #txSize = 0;
  #txTooLong = false;
  #txSumNeeded = 0;
  #txTso = false;
  #txTsoBad = false;
  #txTsoFrames = 0;
  #txHeader = new Uint8Array(256);
  #txContext = emptyContext();
  #tsoContext = emptyContext();
  #txOut = new FrameQueue();
  #desc = new Uint8Array(E1000_DESCRIPTOR_BYTES);
  #descView = new DataView(this.#desc.buffer);

  // Receive engine.
  #rxScheduled = false;
  #rxStopped = false;
  #rxHead: Uint8Array | undefined;
  #rxHeadWaiting = false;
  #rxDroppedSeen = 0;
  #loopback = new FrameQueue();
  #rxSlots: RxSlot[] = [];
  #rxWriteback = new Uint8Array(8);
  #rxWritebackView = new DataView(this.#rxWriteback.buffer);
  #status = new Uint8Array(1);

  // dmaworks error report.
  #errCode = 0;
  #errAddress = 0n;

  /**
   * Creates the device in its reset state.
   *
   * @param env The host environment (`env.net` is the network connection, if any).
   * @param properties `-device e1000` properties: `mac` (default
   *   {@linkcode E1000_DEFAULT_MAC}), `netdev` (used by the machine), `romfile`
   *   (accepted and ignored: dmaworks runs no option ROMs).
   */
  constructor(env: DeviceEnv, properties: Readonly<Record<string, string>> = {}) {
    this.#env = env;
    validateE1000Properties(properties);
    this.#macAddress = parseMac(properties["mac"] ?? E1000_DEFAULT_MAC);
    this.#eeprom = buildEeprom(this.#macAddress, DEVICE_ID);
    this.#microwire = new EepromMicrowire(this.#eeprom);
    this.#reset();
  }

  /**
   * The MAC address the device was built with (its EEPROM's words 0–2).
   *
   * @example
   * ```ts
   * import { E1000Device } from "./e1000.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { deepEqual, equal } from "node:assert/strict";
   * const nic = new E1000Device({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   * }, { mac: "52:54:00:aa:bb:cc" });
   * deepEqual(nic.macAddress, new Uint8Array([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]));
   * nic.macAddress[0] = 0; // a copy: the device's own is unchanged
   * equal(nic.macAddress[0], 0x52);
   * ```
   */
  get macAddress(): Uint8Array {
    return this.#macAddress.slice();
  }

  // ---------------------------------------------------------------------------
  // Register access

  /**
   * Reads a register (BAR0) or the I/O window (BAR1).
   *
   * @param region 0 (MMIO) or 1 (I/O).
   * @param offset Offset in the region.
   * @param size 1, 2 or 4.
   * @returns The value; unimplemented registers read 0.
   *
   * @example
   * ```ts
   * import { E1000Device } from "./e1000.ts";
   * import { E1000Reg } from "./e1000_regs.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const nic = new E1000Device({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   * }, { mac: "52:54:00:aa:bb:cc" });
   * equal(nic.read(0, E1000Reg.RA, 4), 0xaa005452); // receive address low: MAC bytes 0-3
   * equal(nic.read(0, E1000Reg.RA + 3, 1), 0xaa); // a byte lane of it
   * ```
   */
  read(region: number, offset: number, size: 1 | 2 | 4): number {
    let dword: number;
    if (region === 1) {
      if (offset < 4) dword = this.#ioaddr;
      else if (offset < 8) dword = this.#readReg(this.#ioaddr & 0x1fffc);
      else return 0;
    } else {
      dword = this.#readReg(offset & ~3);
    }
    if (size === 4 && (offset & 3) === 0) return dword >>> 0;
    const shift = (offset & 3) * 8;
    return (dword >>> shift) & (size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff);
  }

  /**
   * Writes a register (BAR0) or the I/O window (BAR1). Only aligned 32-bit
   * writes have an effect, as on the real part.
   *
   * @param region 0 (MMIO) or 1 (I/O).
   * @param offset Offset in the region.
   * @param size 1, 2 or 4.
   * @param value The value.
   *
   * @example
   * ```ts
   * import { E1000Device } from "./e1000.ts";
   * import { E1000Reg } from "./e1000_regs.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const nic = new E1000Device({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: () => {},
   * });
   * nic.write(1, 0x00, 4, E1000Reg.TDBAL); // IOADDR
   * nic.write(1, 0x04, 4, 0x8000); // IODATA: writes TDBAL
   * equal(nic.read(0, E1000Reg.TDBAL, 4), 0x8000);
   * nic.write(0, E1000Reg.TDBAL, 2, 0x1234); // narrower writes are ignored
   * equal(nic.read(0, E1000Reg.TDBAL, 4), 0x8000);
   * ```
   */
  write(region: number, offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4 || (offset & 3) !== 0) {
      if (!this.#warnedNarrowWrite) {
        this.#warnedNarrowWrite = true;
        this.#env.log(
          `e1000: ignored a ${size}-byte write at 0x${
            offset.toString(16)
          }: registers take 32-bit writes`,
        );
      }
      return;
    }
    if (region === 1) {
      if (offset === 0) this.#ioaddr = value & 0x1ffff;
      else if (offset === 4) this.#writeReg(this.#ioaddr & 0x1fffc, value >>> 0);
      return;
    }
    this.#writeReg(offset, value >>> 0);
  }

  /**
   * Called by the host when frames arrive from the network.
   *
   * @example
   * ```ts
   * import { E1000Device } from "./e1000.ts";
   * import { E1000Stat } from "./e1000_regs.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const net = { transmit: () => true, receive: () => undefined, pending: false, dropped: 0 };
   * const tasks: Array<() => void | Promise<void>> = [];
   * const nic = new E1000Device({
   *   dma: new DmaContext(new GuestMemory({ size: 1 << 20 })),
   *   setIrq: () => {}, log: () => {}, defer: (t) => tasks.push(t), net,
   * });
   * net.dropped = 3; // the host lost three frames for this NIC
   * nic.onNetReceive();
   * for (const t of tasks.splice(0)) await t();
   * equal(nic.read(0, E1000Stat.MPC, 4), 3); // missed packets
   * ```
   */
  onNetReceive(): void {
    this.#kickRx();
  }

  /**
   * Stops the transmit retry timer.
   *
   * @example
   * ```ts
   * import { E1000Device } from "./e1000.ts";
   * import { E1000Reg, E1000Tctl, E1000TxCmd } from "./e1000_regs.ts";
   * import { DmaContext } from "../dma/dma_context.ts";
   * import { GuestMemory } from "../memory/guest_memory.ts";
   * import { equal } from "node:assert/strict";
   * const memory = new GuestMemory({ size: 1 << 20 });
   * const congested = { transmit: () => false, receive: () => undefined, pending: false };
   * const tasks: Array<() => void | Promise<void>> = [];
   * const nic = new E1000Device({
   *   dma: new DmaContext(memory), setIrq: () => {}, log: () => {}, defer: (t) => tasks.push(t), net: congested,
   * });
   * memory.write32(8, 60 | ((E1000TxCmd.EOP | E1000TxCmd.IFCS) << 24)); // descriptor 0 at TDBAL 0
   * nic.write(0, E1000Reg.TDLEN, 4, 128);
   * nic.write(0, E1000Reg.TCTL, 4, E1000Tctl.EN);
   * nic.write(0, E1000Reg.TDT, 4, 1);
   * for (const t of tasks.splice(0)) await t();
   * equal(nic.read(0, E1000Reg.TDH, 4), 1); // fetched; the frame waits, and a retry timer runs
   * nic.dispose(); // stops the timer (the test would fail on a leaked one)
   * ```
   */
  dispose(): void {
    clearTimeout(this.#txRetry);
    this.#txRetry = undefined;
  }

  #readReg(offset: number): number {
    const m = this.#mac;
    const i = offset >>> 2;
    switch (offset) {
      case R.ICR: {
        const v = m[i]!;
        this.#setCauses(0);
        return v;
      }
      case R.EECD:
        return this.#microwire.read();
      case R.EERD: {
        const v = m[i]!;
        if (!(v & E1000Eerd.START)) return v;
        const r = v & ~E1000Eerd.START;
        const index = r >>> E1000Eerd.ADDR_SHIFT;
        if (index > EEPROM_CHECKSUM_WORD) return (E1000Eerd.DONE | r) >>> 0;
        return ((this.#eeprom[index]! << E1000Eerd.DATA_SHIFT) | E1000Eerd.DONE | r) >>> 0;
      }
      case R.ERRCAUSE:
        return this.#errCode | (this.#txStopped ? E1000Err.TX_STOPPED : 0) |
          (this.#rxStopped ? E1000Err.RX_STOPPED : 0);
      case R.ERRADDRL:
        return Number(this.#errAddress & 0xffff_ffffn);
      case R.ERRADDRH:
        return Number((this.#errAddress >> 32n) & 0xffff_ffffn);
      case R.IMC:
        return 0; // write-only
    }
    if (offset >= E1000_STATS_RANGE[0] && offset < E1000_STATS_RANGE[1]) {
      const v = m[i]!;
      const low = STAT_PAIRS.get(i);
      if (low !== undefined) {
        m[i] = 0;
        m[low] = 0;
      } else if (!STAT_LOW_HALVES.has(i)) {
        m[i] = 0;
      }
      return v;
    }
    return m[i]!;
  }

  #writeReg(offset: number, value: number): void {
    const m = this.#mac;
    const i = offset >>> 2;
    if (this.#env.trace !== undefined && TRACED_REGISTERS[offset] !== undefined) {
      this.#env.trace(
        `write ${TRACED_REGISTERS[offset]} = 0x${(value >>> 0).toString(16).padStart(8, "0")}`,
      );
    }
    switch (offset) {
      case R.CTRL: {
        if (value & E1000Ctrl.RST) {
          this.#reset();
          return;
        }
        const old = m[i]!;
        m[i] = value;
        if (!(old & E1000Ctrl.SLU) && (value & E1000Ctrl.SLU)) this.#raise(E1000Icr.LSC);
        return;
      }
      case R.STATUS:
        return; // read-only
      case R.EECD:
        this.#microwire.write(value);
        return;
      case R.EERD:
        m[i] = value;
        return;
      case R.MDIC:
        this.#mdic(value);
        return;
      case R.ICR:
        this.#setCauses(m[i]! & ~value);
        return;
      case R.ICS:
        this.#setCauses(m[w(R.ICR)]! | value);
        return;
      case R.IMS:
        m[i] = (m[i]! | value) & E1000_ICR_MASK;
        this.#updateIrq();
        return;
      case R.IMC:
        m[w(R.IMS)] = m[w(R.IMS)]! & ~value;
        this.#updateIrq();
        return;
      case R.RCTL: {
        m[i] = value;
        this.#rxStopped = false;
        if (!(value & E1000Rctl.EN)) this.#rxHead = undefined;
        this.#kickRx();
        return;
      }
      case R.TCTL:
        m[i] = value;
        m[w(R.TDT)] = m[w(R.TDT)]! & 0xffff;
        this.#txStopped = false;
        this.#kickTx();
        return;
      case R.TDT:
        m[i] = value & 0xffff;
        this.#kickTx();
        return;
      case R.RDT:
        m[i] = value & 0xffff;
        this.#kickRx();
        return;
      case R.TDLEN:
      case R.RDLEN:
        m[i] = value & 0xf_ff80;
        return;
      case R.ERRCAUSE:
        this.#errCode = 0;
        this.#errAddress = 0n;
        return;
    }
    if (LOW16.has(i)) {
      m[i] = value & 0xffff;
    } else if (offset >= R.RA && offset < R.RA + 0x80) {
      m[i] = offset & 4 ? value & E1000Rah.WRITABLE : value;
    } else if (STORAGE.has(i) || STORAGE_RANGES.some(([s, n]) => offset >= s && offset < s + n)) {
      m[i] = value;
    }
    // Statistics, read-only and unknown registers ignore writes.
  }

  #mdic(value: number): void {
    const data = value & E1000Mdic.DATA_MASK;
    const reg = (value & E1000Mdic.REG_MASK) >>> E1000Mdic.REG_SHIFT;
    const phy = (value & E1000Mdic.PHY_MASK) >>> E1000Mdic.PHY_SHIFT;
    let result = value;
    if (phy !== 1) {
      result = this.#mac[w(R.MDIC)]! | E1000Mdic.ERROR;
    } else if (value & E1000Mdic.OP_READ) {
      if (!PHY_READABLE.has(reg)) result |= E1000Mdic.ERROR;
      else result = (value & ~E1000Mdic.DATA_MASK) | this.#phy[reg]!;
    } else if (value & E1000Mdic.OP_WRITE) {
      if (!PHY_WRITABLE.has(reg)) result |= E1000Mdic.ERROR;
      else if (reg === E1000Phy.BMCR) this.#writeBmcr(data);
      else this.#phy[reg] = data;
    }
    this.#mac[w(R.MDIC)] = (result | E1000Mdic.READY) >>> 0;
    if (value & E1000Mdic.INT_EN) this.#raise(E1000Icr.MDAC);
  }

  #writeBmcr(data: number): void {
    this.#phy[E1000Phy.BMCR] = data &
      ~(0x3f | E1000PhyBits.BMCR_RESET | E1000PhyBits.BMCR_ANRESTART);
    if ((data & E1000PhyBits.BMCR_AUTOEN) && (data & E1000PhyBits.BMCR_ANRESTART)) {
      // Auto-negotiation completes at once: the link is (still) up.
      this.#phy[E1000Phy.BMSR] = this.#phy[E1000Phy.BMSR]! | E1000PhyBits.BMSR_AN_COMP;
      this.#phy[E1000Phy.ANLPAR] = this.#phy[E1000Phy.ANLPAR]! | E1000PhyBits.ANLPAR_ACK;
      this.#raise(E1000Icr.LSC);
    }
  }

  #reset(): void {
    this.#env.trace?.("reset");
    const m = this.#mac;
    m.fill(0);
    m[w(R.PBA)] = 0x0010_0030;
    m[w(R.LEDCTL)] = 0x602;
    m[w(R.CTRL)] = E1000Ctrl.SWDPIN2 | E1000Ctrl.SWDPIN0 | E1000Ctrl.SPD_1000 | E1000Ctrl.SLU;
    m[w(R.STATUS)] = 0x8008_0783; // link up, 1000 Mb/s, full duplex, GIO master enabled
    m[w(R.MANC)] = 0x0022_2300;
    m[w(R.VET)] = 0x8100;
    const mac = this.#macAddress;
    m[w(R.RA)] = (mac[0]! | (mac[1]! << 8) | (mac[2]! << 16) | (mac[3]! << 24)) >>> 0;
    m[w(R.RA + 4)] = (mac[4]! | (mac[5]! << 8) | E1000Rah.AV) >>> 0;
    this.#phy = phyResetValues();
    this.#microwire.reset();
    this.#ioaddr = 0;
    this.#epoch++;
    this.#txScheduled = false;
    this.#rxScheduled = false;
    this.#txStopped = false;
    this.#rxStopped = false;
    clearTimeout(this.#txRetry);
    this.#txRetry = undefined;
    this.#txOut.clear();
    this.#resetTxFrame();
    this.#txContext = emptyContext();
    this.#tsoContext = emptyContext();
    this.#rxHead = undefined;
    this.#rxHeadWaiting = false;
    this.#rxDroppedSeen = this.#env.net?.dropped ?? 0;
    this.#loopback.clear();
    this.#errCode = 0;
    this.#errAddress = 0n;
    this.#updateIrq();
  }

  // ---------------------------------------------------------------------------
  // Interrupts and errors

  #setCauses(value: number): void {
    const v = (value & E1000_ICR_MASK) >>> 0;
    this.#mac[w(R.ICR)] = v;
    this.#mac[w(R.ICS)] = v; // ICS reads as ICR (without the clear), as on real parts
    this.#updateIrq();
  }

  #raise(bits: number): void {
    this.#setCauses(this.#mac[w(R.ICR)]! | bits);
  }

  #updateIrq(): void {
    const level = (this.#mac[w(R.ICR)]! & this.#mac[w(R.IMS)]!) !== 0;
    if (level !== this.#irqLevel) {
      this.#irqLevel = level;
      this.#env.trace?.(
        `interrupt ${level ? "raised" : "lowered"}: ICR 0x${
          (this.#mac[w(R.ICR)]! >>> 0).toString(16)
        } IMS 0x${(this.#mac[w(R.IMS)]! >>> 0).toString(16)}`,
      );
      this.#env.setIrq(0, level);
    }
  }

  #error(
    code: number,
    address: number | bigint,
    kind: keyof typeof E1000_DMA_FAULT_CODES,
    what: string,
  ): void {
    this.#errCode = code | (E1000_DMA_FAULT_CODES[kind] << 8);
    this.#errAddress = BigInt.asUintN(64, BigInt(address));
    this.#saturate(w(R.ERRCOUNT));
    this.#raise(E1000Icr.ERR);
    this.#env.trace?.(`error: ${what}`);
    this.#env.log(`e1000: ${what}`);
  }

  #stopTx(f: TxFailure, what: string): void {
    this.#txStopped = true;
    this.#resetTxFrame();
    this.#error(f.code, f.address, f.kind, `${what}; the transmit ring stopped`);
  }

  #stopRx(
    code: number,
    address: number | bigint,
    kind: keyof typeof E1000_DMA_FAULT_CODES,
    what: string,
  ): void {
    this.#rxStopped = true;
    this.#error(code, address, kind, `${what}; the receive ring stopped`);
  }

  // ---------------------------------------------------------------------------
  // Statistics

  #saturate(i: number): void {
    const m = this.#mac;
    if (m[i] !== 0xffff_ffff) m[i] = m[i]! + 1;
  }

  #grow64(low: number, bytes: number): void {
    const m = this.#mac;
    const high = low + 1;
    if (m[low] === 0xffff_ffff && m[high] === 0xffff_ffff) return;
    const sum = m[low]! + bytes;
    if (sum > 0xffff_ffff) {
      if (m[high] === 0xffff_ffff) {
        m[low] = 0xffff_ffff;
        return;
      }
      m[high] = m[high]! + 1;
      m[low] = sum - 0x1_0000_0000;
    } else {
      m[low] = sum;
    }
  }

  #sizeStat(regs: readonly number[], bytesWithFcs: number): void {
    const index = bytesWithFcs > 1023
      ? 5
      : bytesWithFcs > 511
      ? 4
      : bytesWithFcs > 255
      ? 3
      : bytesWithFcs > 127
      ? 2
      : bytesWithFcs > 64
      ? 1
      : 0;
    this.#saturate(regs[index]!);
  }

  // ---------------------------------------------------------------------------
  // Rings

  /** Descriptors in a ring of `lengthReg` bytes. */
  #ringSize(lengthReg: number): number {
    return this.#mac[w(lengthReg)]! / E1000_DESCRIPTOR_BYTES;
  }

  /** Address of descriptor `index`, or the unrepresentable address as a bigint. */
  #descAddress(lowReg: number, highReg: number, index: number): number | bigint {
    const lo = this.#mac[w(lowReg)]! & ~0xf;
    const hi = this.#mac[w(highReg)]!;
    const base = joinHalves(lo, hi);
    const offset = index * E1000_DESCRIPTOR_BYTES;
    if (base !== undefined && Number.isSafeInteger(base + offset + E1000_DESCRIPTOR_BYTES)) {
      return base + offset;
    }
    return ((BigInt(hi) << 32n) | BigInt(lo >>> 0)) + BigInt(offset);
  }

  // ---------------------------------------------------------------------------
  // Transmit

  #kickTx(): void {
    if (this.#txScheduled || this.#txRetry !== undefined) return;
    this.#txScheduled = true;
    const epoch = this.#epoch;
    this.#env.defer(() => {
      if (epoch !== this.#epoch) return;
      this.#txScheduled = false;
      this.#txRun();
    });
  }

  #resetTxFrame(): void {
    this.#txSize = 0;
    this.#txTooLong = false;
    this.#txSumNeeded = 0;
    this.#txTso = false;
    this.#txTsoBad = false;
    this.#txTsoFrames = 0;
  }

  #txRun(): void {
    const m = this.#mac;
    if (!(m[w(R.TCTL)]! & E1000Tctl.EN) || this.#txStopped) return;
    let cause = 0;
    let processed = 0;
    const n = this.#ringSize(R.TDLEN);
    while (m[w(R.TDH)] !== m[w(R.TDT)]) {
      const head = m[w(R.TDH)]!;
      if (n === 0 || head >= n || m[w(R.TDT)]! >= n) {
        this.#stopTx(
          { code: E1000Err.TX_RING, address: this.#descAddress(R.TDBAL, R.TDBAH, 0), kind: "none" },
          `transmit ring misconfigured (TDLEN ${m[w(R.TDLEN)]}, TDH ${head}, TDT ${m[w(R.TDT)]})`,
        );
        break;
      }
      if (!this.#flushTxOut()) {
        // The network is congested: wait for room before fetching more.
        this.#retryTxLater();
        break;
      }
      if (processed === E1000_TX_BATCH) {
        this.#kickTx();
        break;
      }
      const address = this.#descAddress(R.TDBAL, R.TDBAH, head);
      const fetched = this.#dmaRead(address, this.#desc);
      if (fetched !== undefined) {
        if (fetched.kind === "bus-master-disabled") break; // wait for Bus Master Enable
        this.#stopTx(
          {
            code: E1000Err.TX_DESCRIPTOR,
            address: typeof address === "bigint" ? address : fetched.address,
            kind: fetched.kind,
          },
          `transmit descriptor ${head} at 0x${address.toString(16)}: ${fetched.kind}`,
        );
        break;
      }
      const failure = this.#processTxDescriptor();
      if (failure !== undefined) {
        this.#stopTx(
          failure,
          `transmit buffer of descriptor ${head} at 0x${
            failure.address.toString(16)
          }: ${failure.kind}`,
        );
        break;
      }
      processed++;
      const lower = this.#descView.getUint32(8, true);
      if ((lower >>> 24) & (E1000TxCmd.RS | E1000TxCmd.RPS)) {
        const upper = this.#descView.getUint32(12, true);
        const status = ((upper | E1000TxStatus.DD) &
          ~(E1000TxStatus.EC | E1000TxStatus.LC | E1000TxStatus.TU)) >>> 0;
        this.#descView.setUint32(12, status, true);
        // The descriptor was read, so its address is a number.
        const wb = this.#dmaWrite((address as number) + 12, this.#desc.subarray(12, 16));
        m[w(R.TDH)] = (head + 1) % n;
        if (wb !== undefined) {
          this.#stopTx(
            { code: E1000Err.TX_WRITEBACK, address: wb.address, kind: wb.kind },
            `transmit descriptor ${head} write-back at 0x${wb.address.toString(16)}: ${wb.kind}`,
          );
          break;
        }
        cause |= E1000Icr.TXDW;
      } else {
        m[w(R.TDH)] = (head + 1) % n;
      }
    }
    if (!this.#flushTxOut()) this.#retryTxLater();
    if (m[w(R.TDH)] === m[w(R.TDT)] && !this.#txStopped) cause |= E1000Icr.TXQE;
    if (cause) this.#raise(cause);
  }

  #retryTxLater(): void {
    if (this.#txRetry !== undefined) return;
    const epoch = this.#epoch;
    this.#txRetry = setTimeout(() => {
      this.#txRetry = undefined;
      if (epoch === this.#epoch) this.#kickTx();
    }, 1);
  }

  /** Processes the descriptor in `#desc`; returns a failure that stops the ring. */
  #processTxDescriptor(): TxFailure | undefined {
    const v = this.#descView;
    const lower = v.getUint32(8, true);
    const upper = v.getUint32(12, true);
    const cmd = lower >>> 24;
    const extended = (cmd & E1000TxCmd.DEXT) !== 0;
    const dtyp = lower & E1000TxExt.DTYP_MASK;
    if (extended && dtyp === 0) {
      this.#readContext(lower);
      return undefined;
    }
    let length: number;
    if (extended && dtyp === E1000TxExt.DTYP_DATA) {
      if (this.#txSize === 0 && !this.#txTso) {
        this.#txSumNeeded = (upper >>> 8) & 0xff;
        this.#txTso = (lower & E1000TxExt.TSE) !== 0;
        if (this.#txTso) this.#txTsoBad = !this.#tsoContextUsable();
      }
      length = lower & 0xf_ffff;
    } else {
      length = lower & 0xffff;
    }
    const buffer = joinHalves(v.getUint32(0, true), v.getUint32(4, true));
    const bufferBig = (BigInt(v.getUint32(4, true)) << 32n) | BigInt(v.getUint32(0, true));
    const failure = this.#txTso && !this.#txTsoBad
      ? this.#fetchTso(buffer, bufferBig, length)
      : this.#fetchPlain(buffer, bufferBig, length);
    if (failure !== undefined) return failure;
    if (cmd & E1000TxCmd.EOP) this.#endOfPacket(cmd);
    return undefined;
  }

  #readContext(lower: number): void {
    const d = this.#desc;
    const v = this.#descView;
    const ctx: TxContext = {
      ipcss: d[0]!,
      ipcso: d[1]!,
      ipcse: v.getUint16(2, true),
      tucss: d[4]!,
      tucso: d[5]!,
      tucse: v.getUint16(6, true),
      paylen: lower & 0xf_ffff,
      hdrLen: d[13]!,
      mss: v.getUint16(14, true),
      ip: (lower & E1000TxExt.IP) !== 0,
      tcp: (lower & E1000TxExt.TCP) !== 0,
    };
    if (lower & E1000TxExt.TSE) {
      // A segmentation context in the middle of a segmented packet (the
      // manual leaves it undefined): the header and MSS the packet was
      // checked against are gone, so the packet is dropped at its EOP.
      // Segmenting on with the new one could cut it at a header and MSS that
      // no longer fit the data already gathered, or the frame buffer.
      if (this.#txTso) this.#txTsoBad = true;
      this.#tsoContext = ctx;
      this.#txTsoFrames = 0;
    } else {
      this.#txContext = ctx;
    }
  }

  #tsoContextUsable(): boolean {
    const c = this.#tsoContext;
    if (c.mss === 0 || c.hdrLen < ETH_HEADER_BYTES) return false;
    if (c.hdrLen + c.mss > E1000_MAX_TX_FRAME) return false;
    if (Math.ceil(c.paylen / c.mss) > E1000_MAX_TSO_SEGMENTS) return false;
    // The fields segmentation rewrites must lie inside the header.
    const ipEnd = c.ipcss + 6; // IPv4 total length and id, or the IPv6 payload length
    const l4End = c.tcp ? c.tucss + 14 : c.tucss + 6;
    return ipEnd <= c.hdrLen && l4End <= c.hdrLen && c.tucso + 2 <= c.hdrLen &&
      (!(this.#txSumNeeded & E1000TxExt.POPTS_IXSM) || c.ipcso + 2 <= c.hdrLen);
  }

  /** Appends a buffer to the frame being assembled. */
  #fetchPlain(
    buffer: number | undefined,
    bufferBig: bigint,
    length: number,
  ): TxFailure | undefined {
    if (length === 0) return undefined;
    const room = this.#txData.length - this.#txSize;
    if (this.#txTsoBad || length > room) {
      // Too long: the frame will be dropped; do not fetch what cannot be sent.
      this.#txTooLong = true;
      return undefined;
    }
    const f = this.#dmaRead(
      buffer ?? bufferBig,
      this.#txData.subarray(this.#txSize, this.#txSize + length),
    );
    if (f !== undefined) return { code: E1000Err.TX_BUFFER, address: f.address, kind: f.kind };
    this.#txSize += length;
    return undefined;
  }

  /** TCP segmentation: fetches into header + MSS-sized segments, sending each full one. */
  #fetchTso(buffer: number | undefined, bufferBig: bigint, length: number): TxFailure | undefined {
    const c = this.#tsoContext;
    const msh = c.hdrLen + c.mss;
    let address: number | bigint = buffer ?? bufferBig;
    let left = length;
    while (left > 0) {
      const bytes = Math.min(left, msh - this.#txSize);
      const f = this.#dmaRead(address, this.#txData.subarray(this.#txSize, this.#txSize + bytes));
      if (f !== undefined) return { code: E1000Err.TX_BUFFER, address: f.address, kind: f.kind };
      const before = this.#txSize;
      this.#txSize += bytes;
      if (before < c.hdrLen && this.#txSize >= c.hdrLen) {
        this.#txHeader.set(this.#txData.subarray(0, c.hdrLen));
      }
      address = typeof address === "number" ? address + bytes : address + BigInt(bytes);
      left -= bytes;
      if (this.#txSize === msh) {
        if (this.#txTsoFrames >= E1000_MAX_TSO_SEGMENTS) {
          this.#txTsoBad = true;
          this.#txTooLong = true;
          return undefined;
        }
        this.#sendSegment(this.#txSize);
        this.#txData.set(this.#txHeader.subarray(0, c.hdrLen));
        this.#txSize = c.hdrLen;
      }
    }
    return undefined;
  }

  #endOfPacket(cmd: number): void {
    if (this.#txTso) {
      const c = this.#tsoContext;
      if (this.#txTsoBad) {
        this.#error(
          E1000Err.TX_TSO,
          0,
          "none",
          `TCP segmentation context unusable (header ${c.hdrLen}, MSS ${c.mss}, payload ${c.paylen}); packet dropped`,
        );
      } else if (this.#txSize > c.hdrLen || this.#txTsoFrames === 0) {
        if (this.#txSize >= c.hdrLen) this.#sendSegment(this.#txSize);
      }
      this.#resetTxFrame();
      return;
    }
    if (this.#txTooLong) {
      this.#error(
        E1000Err.TX_TOO_LONG,
        0,
        "none",
        `transmit frame longer than ${E1000_MAX_TX_FRAME} bytes dropped`,
      );
      this.#resetTxFrame();
      return;
    }
    let size = this.#txSize;
    const data = this.#txData;
    const ctx = this.#txContext;
    if (this.#txSumNeeded & E1000TxExt.POPTS_TXSM) {
      putChecksum(data, size, ctx.tucso, ctx.tucss, ctx.tucse);
    }
    if (this.#txSumNeeded & E1000TxExt.POPTS_IXSM) {
      putChecksum(data, size, ctx.ipcso, ctx.ipcss, ctx.ipcse);
    }
    this.#resetTxFrame();
    if (!(cmd & E1000TxCmd.IFCS)) {
      // The buffer ends with the guest's own FCS: carried only if it is right.
      if (size < ETH_FCS_BYTES) return;
      size -= ETH_FCS_BYTES;
      const fcs = (data[size]! | (data[size + 1]! << 8) | (data[size + 2]! << 16) |
        (data[size + 3]! << 24)) >>> 0;
      if (fcs !== ethernetCrc32(data.subarray(0, size))) {
        this.#env.log("e1000: frame without IFCS has a bad FCS; not sent");
        return;
      }
    }
    if (size > E1000_MAX_TX_FRAME) {
      this.#error(
        E1000Err.TX_TOO_LONG,
        0,
        "none",
        `transmit frame longer than ${E1000_MAX_TX_FRAME} bytes dropped`,
      );
      return;
    }
    if (size < ETH_MIN_FRAME && (this.#mac[w(R.TCTL)]! & E1000Tctl.PSP)) {
      data.fill(0, size, ETH_MIN_FRAME);
      size = ETH_MIN_FRAME;
    }
    if (size < ETH_HEADER_BYTES) return; // not a frame: nothing goes on the wire
    this.#emit(size);
  }

  /** Finishes and sends one TSO segment of `size` bytes in `#txData`. */
  #sendSegment(size: number): void {
    const c = this.#tsoContext;
    const d = this.#txData;
    const frames = this.#txTsoFrames;
    const view = new DataView(d.buffer, d.byteOffset, size);
    if (c.ip) {
      view.setUint16(c.ipcss + 2, size - c.ipcss);
      view.setUint16(c.ipcss + 4, (view.getUint16(c.ipcss + 4) + frames) & 0xffff);
    } else {
      view.setUint16(c.ipcss + 4, Math.max(0, size - c.ipcss - 40));
    }
    const len = size - c.tucss;
    if (c.tcp) {
      const sofar = frames * c.mss;
      view.setUint32(c.tucss + 4, (view.getUint32(c.tucss + 4) + sofar) >>> 0);
      if (c.paylen - sofar > c.mss) d[c.tucss + 13] = d[c.tucss + 13]! & ~0x09; // PSH, FIN
      else if (frames) this.#saturate(w(S.TSCTC));
    } else {
      view.setUint16(c.tucss + 4, len);
    }
    if (this.#txSumNeeded & E1000TxExt.POPTS_TXSM) {
      let ph = view.getUint16(c.tucso) + len;
      ph = (ph >>> 16) + (ph & 0xffff);
      view.setUint16(c.tucso, ph & 0xffff);
      putChecksum(d, size, c.tucso, c.tucss, c.tucse);
    }
    if (this.#txSumNeeded & E1000TxExt.POPTS_IXSM) putChecksum(d, size, c.ipcso, c.ipcss, c.ipcse);
    this.#txTsoFrames = frames + 1;
    this.#emit(size);
  }

  /** Puts the first `size` bytes of `#txData` on the wire (or loops them back). */
  #emit(size: number): void {
    const frame = this.#txData.subarray(0, size);
    const m = this.#mac;
    this.#env.trace?.(`tx frame ${describeFrame(frame)}`);
    this.#saturate(w(S.TPT));
    this.#saturate(w(S.GPTC));
    this.#grow64(w(S.TOTL), size + ETH_FCS_BYTES);
    this.#grow64(w(S.GOTCL), size + ETH_FCS_BYTES);
    this.#sizeStat(PTC, size + ETH_FCS_BYTES);
    if (isBroadcast(frame)) this.#saturate(w(S.BPTC));
    else if (isMulticast(frame)) this.#saturate(w(S.MPTC));
    const loop = (this.#phy[E1000Phy.BMCR]! & E1000PhyBits.BMCR_LOOPBACK) !== 0 ||
      (m[w(R.RCTL)]! & E1000Rctl.LBM_MASK) === E1000Rctl.LBM_MAC;
    if (loop) {
      // Loopback: the frame is received later, from the receive engine's own
      // deferred run, never from inside this transmit.
      if (this.#loopback.bytes < 0x1_0000) this.#loopback.push(frame.slice());
      this.#kickRx();
      return;
    }
    const net = this.#env.net;
    if (net === undefined) return; // no peer: the frame goes nowhere
    if (this.#txOut.length === 0 && net.transmit(frame)) return;
    this.#txOut.push(frame.slice());
  }

  /** Sends queued frames; returns whether the queue is empty. */
  #flushTxOut(): boolean {
    const net = this.#env.net;
    if (net === undefined) {
      this.#txOut.clear();
      return true;
    }
    for (let f = this.#txOut.peek(); f !== undefined; f = this.#txOut.peek()) {
      if (!net.transmit(f)) return false;
      this.#txOut.shift();
    }
    return true;
  }

  // ---------------------------------------------------------------------------
  // Receive

  #kickRx(): void {
    if (this.#rxScheduled) return;
    this.#rxScheduled = true;
    const epoch = this.#epoch;
    this.#env.defer(() => {
      if (epoch !== this.#epoch) return;
      this.#rxScheduled = false;
      this.#rxRun();
    });
  }

  #rxRun(): void {
    const m = this.#mac;
    const net = this.#env.net;
    let cause = 0;
    // Frames the host could not queue for us: the packet buffer overflowed.
    const dropped = net?.dropped ?? 0;
    if (dropped !== this.#rxDroppedSeen) {
      const lost = dropped - this.#rxDroppedSeen;
      this.#rxDroppedSeen = dropped;
      m[w(S.MPC)] = Math.min(0xffff_ffff, m[w(S.MPC)]! + lost);
      cause |= E1000Icr.RXO;
    }
    let delivered = 0;
    let more = false;
    for (let steps = 0;; steps++) {
      if (steps === 4 * E1000_RX_BATCH || delivered === E1000_RX_BATCH) {
        more = true;
        break;
      }
      if (this.#rxHead === undefined) {
        // The next frame: loopback first, then the network. Frames nobody
        // wants (receiver off, filtered, oversized) go no further.
        const f = this.#loopback.shift() ?? net?.receive();
        if (f === undefined) break;
        this.#rxHead = this.#accept(f);
        this.#rxHeadWaiting = false;
        if (this.#rxHead === undefined) {
          this.#env.trace?.(
            `rx frame ${describeFrame(f)} dropped (receiver off, filtered out or oversized)`,
          );
        }
        continue;
      }
      if (this.#rxStopped) break; // frames wait in the packet buffer
      const outcome = this.#deliver(this.#rxHead);
      this.#env.trace?.(
        `rx frame ${describeFrame(this.#rxHead)}: ${
          outcome === "done"
            ? `delivered, RDH ${m[w(R.RDH)]}`
            : outcome === "wait"
            ? "waiting for receive buffers"
            : outcome === "stopped"
            ? "lost: the receive ring stopped"
            : "lost: larger than the whole ring"
        }`,
      );
      if (outcome === "wait") {
        if (!this.#rxHeadWaiting) {
          this.#rxHeadWaiting = true;
          this.#saturate(w(S.RNBC));
        }
        break;
      }
      this.#rxHead = undefined;
      if (outcome === "stopped") {
        this.#saturate(w(S.MPC));
        break;
      }
      if (outcome === "too-big") {
        this.#saturate(w(S.MPC));
        cause |= E1000Icr.RXO;
        continue;
      }
      delivered++;
      cause |= E1000Icr.RXT0;
    }
    if (delivered > 0) {
      const n = this.#ringSize(R.RDLEN);
      let rdt = m[w(R.RDT)]!;
      const rdh = m[w(R.RDH)]!;
      if (rdt < rdh) rdt += n;
      const shift = ((m[w(R.RCTL)]! >>> E1000Rctl.RDMTS_SHIFT) & 3) + 1;
      if ((rdt - rdh) * E1000_DESCRIPTOR_BYTES <= m[w(R.RDLEN)]! >>> shift) {
        cause |= E1000Icr.RXDMT0;
      }
    }
    if (cause) this.#raise(cause);
    if (more) this.#kickRx();
  }

  /**
   * What the MAC does with an arriving frame before any DMA: discarded when
   * the receiver is off, padded if short, dropped if oversized (ROC) or
   * filtered out. Returns the frame to deliver, if any.
   */
  #accept(frame: Uint8Array): Uint8Array | undefined {
    const m = this.#mac;
    const rctl = m[w(R.RCTL)]!;
    if (!(rctl & E1000Rctl.EN) || !(m[w(R.STATUS)]! & 2)) return undefined;
    let f = frame;
    if (f.length < ETH_MIN_FRAME) {
      // Virtual wires carry frames unpadded (QEMU, slirp): pad as the sender's MAC would have.
      const padded = new Uint8Array(ETH_MIN_FRAME);
      padded.set(f);
      f = padded;
    }
    const maxShort = 1518;
    const maxLong = MAX_FRAME - ETH_FCS_BYTES;
    if (
      (f.length > maxLong || (f.length > maxShort && !(rctl & E1000Rctl.LPE))) &&
      !(rctl & E1000Rctl.SBP)
    ) {
      this.#saturate(w(S.ROC));
      return undefined;
    }
    if (f.length > maxLong) f = f.subarray(0, maxLong);
    return this.#filter(f, rctl) ? f : undefined;
  }

  #filter(f: Uint8Array, rctl: number): boolean {
    if (isBroadcast(f)) {
      if (rctl & E1000Rctl.BAM) return true;
    } else if (isMulticast(f)) {
      if (rctl & E1000Rctl.MPE) return true;
    } else if (rctl & E1000Rctl.UPE) {
      return true;
    }
    const m = this.#mac;
    for (let i = w(R.RA); i < w(R.RA) + 32; i += 2) {
      const high = m[i + 1]!;
      if (!(high & E1000Rah.AV)) continue;
      const low = m[i]!;
      if (
        f[0] === (low & 0xff) && f[1] === ((low >>> 8) & 0xff) && f[2] === ((low >>> 16) & 0xff) &&
        f[3] === (low >>> 24) && f[4] === (high & 0xff) && f[5] === ((high >>> 8) & 0xff)
      ) return true;
    }
    const shift = [4, 3, 2, 0][(rctl >>> E1000Rctl.MO_SHIFT) & 3]!;
    const hash = (((f[5]! << 8) | f[4]!) >>> shift) & 0xfff;
    return (m[w(R.MTA) + (hash >>> 5)]! & (1 << (hash & 31))) !== 0;
  }

  #bufferSize(rctl: number): number {
    const size = (rctl >>> E1000Rctl.BSIZE_SHIFT) & 3;
    if (rctl & E1000Rctl.BSEX) {
      return size === 1 ? 16384 : size === 2 ? 8192 : size === 3 ? 4096 : 2048;
    }
    return size === 1 ? 1024 : size === 2 ? 512 : size === 3 ? 256 : 2048;
  }

  /** Moves the frame in hand to receive buffers. */
  #deliver(frame: Uint8Array): "done" | "wait" | "stopped" | "too-big" {
    const m = this.#mac;
    const rctl = m[w(R.RCTL)]!;
    const n = this.#ringSize(R.RDLEN);
    if (m[w(R.RDH)] === m[w(R.RDT)]) return "wait";
    if (n === 0 || m[w(R.RDH)]! >= n || m[w(R.RDT)]! >= n) {
      this.#stopRx(
        E1000Err.RX_RING,
        this.#descAddress(R.RDBAL, R.RDBAH, 0),
        "none",
        `receive ring misconfigured (RDLEN ${m[w(R.RDLEN)]}, RDH ${m[w(R.RDH)]}, RDT ${
          m[w(R.RDT)]
        })`,
      );
      return "stopped";
    }
    const secrc = (rctl & E1000Rctl.SECRC) !== 0;
    const total = frame.length + (secrc ? 0 : ETH_FCS_BYTES);
    const bufSize = this.#bufferSize(rctl);
    const needed = Math.ceil(total / bufSize);
    // The ring can never hold it (at most n - 1 descriptors are the device's):
    // lost, as QEMU does, rather than blocking every later frame.
    if (needed > n - 1) return "too-big";
    // Claim descriptors (the prefetch): those without a buffer address are
    // written back empty and passed over, as the datasheet says.
    const slots = this.#rxSlots;
    slots.length = 0;
    let claimed = 0;
    let index = m[w(R.RDH)]!;
    const tail = m[w(R.RDT)]!;
    while (claimed < needed && index !== tail) {
      const address = this.#descAddress(R.RDBAL, R.RDBAH, index);
      const f = this.#dmaRead(address, this.#desc);
      if (f !== undefined) {
        if (f.kind === "bus-master-disabled" && slots.length === 0) return "wait";
        this.#stopRx(
          E1000Err.RX_DESCRIPTOR,
          typeof address === "bigint" ? address : f.address,
          f.kind,
          `receive descriptor ${index} at 0x${address.toString(16)}: ${f.kind}`,
        );
        return "stopped";
      }
      const buffer = joinHalves(
        this.#descView.getUint32(0, true),
        this.#descView.getUint32(4, true),
      );
      slots.push({ index, address: address as number, buffer: buffer ?? -1 });
      if (buffer !== 0) claimed++;
      index = (index + 1) % n;
    }
    if (claimed < needed) {
      // Not enough buffers yet: the frame waits; buffer-less descriptors at
      // the head are finished anyway so they are not read again.
      for (const slot of slots) {
        if (slot.buffer !== 0) break;
        if (!this.#writeBack(slot.address, 0, E1000RxStatus.DD, 0)) return "stopped";
        m[w(R.RDH)] = (slot.index + 1) % n;
      }
      return "wait";
    }
    let data = frame;
    if (!secrc) {
      data = new Uint8Array(total);
      data.set(frame);
      const crc = ethernetCrc32(frame);
      data[frame.length] = crc & 0xff;
      data[frame.length + 1] = (crc >>> 8) & 0xff;
      data[frame.length + 2] = (crc >>> 16) & 0xff;
      data[frame.length + 3] = crc >>> 24;
    }
    let offset = 0;
    for (const slot of slots) {
      if (slot.buffer === 0) {
        if (!this.#writeBack(slot.address, 0, E1000RxStatus.DD, 0)) return "stopped";
        m[w(R.RDH)] = (slot.index + 1) % n;
        continue;
      }
      const chunk = Math.min(bufSize, total - offset);
      const f = slot.buffer < 0
        ? outsideRam(2 ** 53, "write")
        : this.#dmaWrite(slot.buffer, data.subarray(offset, offset + chunk));
      if (f !== undefined) {
        // The guest learns of it from the descriptor (RXE) and from ERRCAUSE.
        const ok = this.#writeBack(
          slot.address,
          chunk,
          E1000RxStatus.DD | E1000RxStatus.EOP,
          E1000RxError.RXE,
        );
        if (ok) m[w(R.RDH)] = (slot.index + 1) % n;
        this.#stopRx(
          E1000Err.RX_BUFFER,
          f.address,
          f.kind,
          `receive buffer of descriptor ${slot.index} at 0x${f.address.toString(16)}: ${f.kind}`,
        );
        return "stopped";
      }
      offset += chunk;
      const status = offset >= total ? E1000RxStatus.EOP | E1000RxStatus.IXSM : 0;
      if (!this.#writeBack(slot.address, chunk, status | E1000RxStatus.DD, 0)) return "stopped";
      m[w(R.RDH)] = (slot.index + 1) % n;
    }
    const size = frame.length;
    this.#sizeStat(PRC, size + ETH_FCS_BYTES);
    this.#saturate(w(S.TPR));
    this.#saturate(w(S.GPRC));
    this.#grow64(w(S.TORL), size + ETH_FCS_BYTES);
    this.#grow64(w(S.GORCL), size + ETH_FCS_BYTES);
    if (isBroadcast(frame)) this.#saturate(w(S.BPRC));
    else if (isMulticast(frame)) this.#saturate(w(S.MPRC));
    return "done";
  }

  /**
   * Writes a receive descriptor's second half: length, checksum, errors and
   * special first, then the status byte (with DD) on its own, so the guest
   * never sees DD before the rest. Returns false (ring stopped) on a fault.
   */
  #writeBack(address: number, length: number, status: number, errors: number): boolean {
    const v = this.#rxWritebackView;
    v.setUint16(0, length, true);
    v.setUint16(2, 0, true);
    v.setUint8(4, status & ~E1000RxStatus.DD);
    v.setUint8(5, errors);
    v.setUint16(6, 0, true);
    let f = this.#dmaWrite(address + 8, this.#rxWriteback);
    if (f === undefined) {
      this.#status[0] = status;
      f = this.#dmaWrite(address + 12, this.#status);
    }
    if (f === undefined) return true;
    this.#stopRx(
      E1000Err.RX_WRITEBACK,
      f.address,
      f.kind,
      `receive descriptor write-back at 0x${f.address.toString(16)}: ${f.kind}`,
    );
    return false;
  }

  // ---------------------------------------------------------------------------
  // DMA helpers: addresses beyond 2^53 are master aborts.

  #dmaRead(address: number | bigint, dest: Uint8Array): DmaFault | undefined {
    if (typeof address !== "number" || !Number.isSafeInteger(address + dest.length)) {
      return outsideRam(address, "read");
    }
    const r = this.#env.dma.read(address, dest);
    return r.ok ? undefined : r;
  }

  #dmaWrite(address: number | bigint, src: Uint8Array): DmaFault | undefined {
    if (typeof address !== "number" || !Number.isSafeInteger(address + src.length)) {
      return outsideRam(address, "write");
    }
    const r = this.#env.dma.write(address, src);
    return r.ok ? undefined : r;
  }
}

function outsideRam(address: number | bigint, access: "read" | "write"): DmaFault {
  const a = typeof address === "number" ? address : Number(BigInt.asUintN(64, address));
  return { ok: false, kind: "outside-ram", address: a, access, transferred: 0 };
}

/**
 * Inserts an Internet checksum (QEMU's `putsum`): the one's complement sum of
 * bytes `css` to `cse` (or the end), stored big-endian at `sloc`. Offsets a
 * hostile context puts outside the frame are ignored.
 */
function putChecksum(data: Uint8Array, size: number, sloc: number, css: number, cse: number): void {
  let n = size;
  if (cse && cse < n) n = cse + 1;
  if (sloc >= n - 1 || css >= n) return;
  let sum = 0;
  for (let i = css; i + 1 < n; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if ((n - css) & 1) sum += data[n - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  let result = ~sum & 0xffff;
  if (result === 0) result = 0xffff;
  data[sloc] = result >>> 8;
  data[sloc + 1] = result & 0xff;
}
