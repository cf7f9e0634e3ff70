/**
 * Register offsets, bits and descriptor layouts of the Intel 82540EM (e1000)
 * as dmaworks models it: names and values follow Intel's 8254x Software
 * Developer's Manual and QEMU's hw/net/e1000_regs.h, so drivers and qtest
 * scripts written for either find what they expect. Offsets are byte offsets
 * in BAR0.
 *
 * Items marked "dmaworks extension" do not exist on the real part.
 *
 * @module
 */

/**
 * BAR0 register offsets.
 *
 * @example
 * ```ts
 * import { E1000Reg } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const bar0 = 0xfebc_0000; // where firmware placed BAR0
 * equal(bar0 + E1000Reg.STATUS, 0xfebc_0008);
 * equal(E1000Reg.RA + 8 * 1 + 4, 0x540c); // RAH1: receive address pairs are 8 bytes apart
 * equal(E1000Reg.TDT - E1000Reg.TDBAL, E1000Reg.RDT - E1000Reg.RDBAL); // same ring layout
 * ```
 */
export const E1000Reg = {
  CTRL: 0x0000,
  STATUS: 0x0008,
  EECD: 0x0010,
  EERD: 0x0014,
  CTRL_EXT: 0x0018,
  MDIC: 0x0020,
  FCAL: 0x0028,
  FCAH: 0x002c,
  FCT: 0x0030,
  VET: 0x0038,
  ICR: 0x00c0,
  ITR: 0x00c4,
  ICS: 0x00c8,
  IMS: 0x00d0,
  IMC: 0x00d8,
  RCTL: 0x0100,
  FCTTV: 0x0170,
  TXCW: 0x0178,
  RXCW: 0x0180,
  TCTL: 0x0400,
  TIPG: 0x0410,
  LEDCTL: 0x0e00,
  /** dmaworks extension: the last ring or DMA error (see {@linkcode E1000Err}). */
  ERRCAUSE: 0x0f00,
  /** dmaworks extension: low 32 bits of the address the last error concerns. */
  ERRADDRL: 0x0f04,
  /** dmaworks extension: high 32 bits of that address. */
  ERRADDRH: 0x0f08,
  /** dmaworks extension: ring and DMA errors since reset (saturating). */
  ERRCOUNT: 0x0f0c,
  PBA: 0x1000,
  FCRTL: 0x2160,
  FCRTH: 0x2168,
  RDBAL: 0x2800,
  RDBAH: 0x2804,
  RDLEN: 0x2808,
  RDH: 0x2810,
  RDT: 0x2818,
  RDTR: 0x2820,
  RXDCTL: 0x2828,
  RADV: 0x282c,
  RSRPD: 0x2c00,
  TDBAL: 0x3800,
  TDBAH: 0x3804,
  TDLEN: 0x3808,
  TDH: 0x3810,
  TDT: 0x3818,
  TIDV: 0x3820,
  TXDCTL: 0x3828,
  TADV: 0x382c,
  TSPMT: 0x3830,
  RXCSUM: 0x5000,
  MTA: 0x5200,
  RA: 0x5400,
  VFTA: 0x5600,
  WUC: 0x5800,
  WUFC: 0x5808,
  WUS: 0x5810,
  MANC: 0x5820,
  IPAV: 0x5838,
  IP4AT: 0x5840,
  IP6AT: 0x5880,
  WUPL: 0x5900,
  WUPM: 0x5a00,
  FFLT: 0x5f00,
  FFMT: 0x9000,
  FFVT: 0x9800,
  PBM: 0x10000,
} as const;

/**
 * Statistics registers (all clear on read; 64-bit pairs clear when the high half is read).
 *
 * @example
 * ```ts
 * import { E1000_STATS_RANGE, E1000Stat } from "./e1000_regs.ts";
 * import { equal, ok } from "node:assert/strict";
 * equal(E1000Stat.MPC, 0x4010); // Missed Packets Count, as the 8254x SDM places it
 * equal(E1000Stat.GORCH, E1000Stat.GORCL + 4); // a 64-bit pair: read the low half first
 * const [first, end] = E1000_STATS_RANGE;
 * ok(Object.values(E1000Stat).every((offset) => offset >= first && offset < end));
 * ```
 */
export const E1000Stat = {
  CRCERRS: 0x4000,
  ALGNERRC: 0x4004,
  SYMERRS: 0x4008,
  RXERRC: 0x400c,
  MPC: 0x4010,
  SCC: 0x4014,
  ECOL: 0x4018,
  MCC: 0x401c,
  LATECOL: 0x4020,
  COLC: 0x4028,
  DC: 0x4030,
  TNCRS: 0x4034,
  SEC: 0x4038,
  CEXTERR: 0x403c,
  RLEC: 0x4040,
  XONRXC: 0x4048,
  XONTXC: 0x404c,
  XOFFRXC: 0x4050,
  XOFFTXC: 0x4054,
  FCRUC: 0x4058,
  PRC64: 0x405c,
  PRC127: 0x4060,
  PRC255: 0x4064,
  PRC511: 0x4068,
  PRC1023: 0x406c,
  PRC1522: 0x4070,
  GPRC: 0x4074,
  BPRC: 0x4078,
  MPRC: 0x407c,
  GPTC: 0x4080,
  GORCL: 0x4088,
  GORCH: 0x408c,
  GOTCL: 0x4090,
  GOTCH: 0x4094,
  RNBC: 0x40a0,
  RUC: 0x40a4,
  RFC: 0x40a8,
  ROC: 0x40ac,
  RJC: 0x40b0,
  MGTPRC: 0x40b4,
  MGTPDC: 0x40b8,
  MGTPTC: 0x40bc,
  TORL: 0x40c0,
  TORH: 0x40c4,
  TOTL: 0x40c8,
  TOTH: 0x40cc,
  TPR: 0x40d0,
  TPT: 0x40d4,
  PTC64: 0x40d8,
  PTC127: 0x40dc,
  PTC255: 0x40e0,
  PTC511: 0x40e4,
  PTC1023: 0x40e8,
  PTC1522: 0x40ec,
  MPTC: 0x40f0,
  BPTC: 0x40f4,
  TSCTC: 0x40f8,
  TSCTFC: 0x40fc,
} as const;

/**
 * First and last (exclusive) offsets of the statistics block.
 *
 * @example
 * ```ts
 * import { E1000_STATS_RANGE, E1000Reg, E1000Stat } from "./e1000_regs.ts";
 * import { equal, ok } from "node:assert/strict";
 * const [first, end] = E1000_STATS_RANGE;
 * const isStat = (offset: number) => offset >= first && offset < end;
 * ok(isStat(E1000Stat.TSCTFC)); // the last one, 0x40fc
 * ok(!isStat(E1000Reg.RCTL));
 * equal((end - first) / 4, 64); // 64 32-bit registers
 * ```
 */
export const E1000_STATS_RANGE: readonly [number, number] = [0x4000, 0x4100];

/**
 * CTRL bits.
 *
 * @example
 * ```ts
 * import { E1000Ctrl } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const ctrl = 0x0014_0240; // CTRL after reset (as QEMU's): SLU, 1000 Mb/s, SWDPIN0 and 2
 * equal(ctrl, E1000Ctrl.SLU | E1000Ctrl.SPD_1000 | E1000Ctrl.SWDPIN0 | E1000Ctrl.SWDPIN2);
 * equal((ctrl | E1000Ctrl.RST) >>> 0, 0x0414_0240); // what a driver writes to reset the device
 * ```
 */
export const E1000Ctrl = {
  FD: 0x0000_0001,
  LRST: 0x0000_0008,
  ASDE: 0x0000_0020,
  SLU: 0x0000_0040,
  ILOS: 0x0000_0080,
  SPD_1000: 0x0000_0200,
  FRCSPD: 0x0000_0800,
  FRCDPX: 0x0000_1000,
  SWDPIN0: 0x0004_0000,
  SWDPIN2: 0x0010_0000,
  /** Device reset (self-clearing). */
  RST: 0x0400_0000,
  RFCE: 0x0800_0000,
  TFCE: 0x1000_0000,
  VME: 0x4000_0000,
  PHY_RST: 0x8000_0000,
} as const;

/**
 * STATUS bits.
 *
 * @example
 * ```ts
 * import { E1000Status } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const status = 0x8008_0783; // STATUS after reset
 * equal(status & E1000Status.LU, E1000Status.LU); // link up
 * equal(status & E1000Status.FD, E1000Status.FD); // full duplex
 * equal(status & E1000Status.SPEED_1000, E1000Status.SPEED_1000); // at 1000 Mb/s
 * ```
 */
export const E1000Status = {
  FD: 0x0000_0001,
  LU: 0x0000_0002,
  TXOFF: 0x0000_0010,
  SPEED_1000: 0x0000_0080,
  /** ASDV, the auto-speed-detection value field (bits 9:8; 10b is 1000 Mb/s; reset sets 11b as QEMU). */
  ASDV: 0x0000_0300,
  MTXCKOK: 0x0000_0400,
  GIO_MASTER_ENABLE: 0x0008_0000,
} as const;

/**
 * EECD (EEPROM/flash control) bits.
 *
 * @example
 * ```ts
 * import { E1000Eecd } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const eecd = 0x0000_0188; // an EECD read
 * equal(eecd & E1000Eecd.PRES, E1000Eecd.PRES); // an EEPROM is present
 * equal(eecd & E1000Eecd.DO, E1000Eecd.DO); // the data out bit is 1
 * equal(E1000Eecd.CS | E1000Eecd.DI | E1000Eecd.SK, 0x7); // clock a 1 in: chip select, DI, SK
 * ```
 */
export const E1000Eecd = {
  SK: 0x001,
  CS: 0x002,
  DI: 0x004,
  DO: 0x008,
  FWE_MASK: 0x030,
  REQ: 0x040,
  GNT: 0x080,
  PRES: 0x100,
} as const;

/**
 * EERD (EEPROM read) fields.
 *
 * @example
 * ```ts
 * import { E1000Eerd } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const start = E1000Eerd.START | (0x3f << E1000Eerd.ADDR_SHIFT); // read the checksum word
 * equal(start, 0x3f01);
 * const eerd = 0xbeef_3f11; // the answer: DONE, the address, the data
 * equal(eerd & E1000Eerd.DONE, E1000Eerd.DONE);
 * equal(eerd >>> E1000Eerd.DATA_SHIFT, 0xbeef);
 * ```
 */
export const E1000Eerd = {
  START: 0x1,
  DONE: 0x10,
  ADDR_SHIFT: 8,
  DATA_SHIFT: 16,
} as const;

/**
 * MDIC (PHY access) fields.
 *
 * @example
 * ```ts
 * import { E1000Mdic, E1000Phy } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const phy1 = 1 << E1000Mdic.PHY_SHIFT;
 * const read = E1000Mdic.OP_READ | phy1 | (E1000Phy.PHYID1 << E1000Mdic.REG_SHIFT);
 * equal(read, 0x0822_0000); // read PHYID1 of PHY 1
 * const answer = 0x1822_0141; // READY set, data 0x0141
 * equal(answer & E1000Mdic.READY, E1000Mdic.READY);
 * equal(answer & E1000Mdic.DATA_MASK, 0x0141);
 * ```
 */
export const E1000Mdic = {
  DATA_MASK: 0x0000_ffff,
  REG_MASK: 0x001f_0000,
  REG_SHIFT: 16,
  PHY_MASK: 0x03e0_0000,
  PHY_SHIFT: 21,
  OP_WRITE: 0x0400_0000,
  OP_READ: 0x0800_0000,
  READY: 0x1000_0000,
  INT_EN: 0x2000_0000,
  ERROR: 0x4000_0000,
} as const;

/**
 * Interrupt causes (ICR, ICS, IMS, IMC).
 *
 * @example
 * ```ts
 * import { E1000Icr } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const icr = 0x0000_0083; // an ICR read (reading clears it)
 * equal(icr & E1000Icr.RXT0, E1000Icr.RXT0); // a frame was received
 * equal(icr & (E1000Icr.TXDW | E1000Icr.TXQE), 0x3); // the transmit queue ran dry
 * equal(icr & E1000Icr.ERR, 0); // no ring or DMA error
 * ```
 */
export const E1000Icr = {
  /** Transmit descriptor written back. */
  TXDW: 0x0000_0001,
  /** Transmit queue empty. */
  TXQE: 0x0000_0002,
  /** Link status change. */
  LSC: 0x0000_0004,
  /** Receive sequence error. */
  RXSEQ: 0x0000_0008,
  /** Receive descriptor minimum threshold reached. */
  RXDMT0: 0x0000_0010,
  /**
   * dmaworks extension (reserved on the 82540EM): a descriptor ring stopped
   * or a frame was dropped because of a ring or DMA error; ERRCAUSE says why.
   */
  ERR: 0x0000_0020,
  /** Receiver overrun (a frame was lost for lack of buffer space). */
  RXO: 0x0000_0040,
  /** Receiver timer: a frame was received. */
  RXT0: 0x0000_0080,
  /** MDI/O access complete. */
  MDAC: 0x0000_0200,
  RXCFG: 0x0000_0400,
  TXD_LOW: 0x0000_8000,
  SRPD: 0x0001_0000,
} as const;

/**
 * The interrupt cause bits the model keeps (bits 31:17 are reserved and read 0).
 *
 * @example
 * ```ts
 * import { E1000_ICR_MASK, E1000Icr } from "./e1000_regs.ts";
 * import { equal, ok } from "node:assert/strict";
 * equal(E1000_ICR_MASK, (E1000Icr.SRPD << 1) - 1); // bits 16:0, SRPD the highest cause
 * ok(Object.values(E1000Icr).every((bit) => (bit & ~E1000_ICR_MASK) === 0));
 * equal(0xfffe_0004 & E1000_ICR_MASK, E1000Icr.LSC); // a write to ICS keeps only defined bits
 * ```
 */
export const E1000_ICR_MASK = 0x0001_ffff;

/**
 * RCTL bits.
 *
 * @example
 * ```ts
 * import { E1000Rctl } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const rctl = E1000Rctl.EN | E1000Rctl.BAM | E1000Rctl.SECRC; // receive broadcasts, strip the FCS
 * equal(rctl, 0x0400_8002);
 * equal((rctl >> E1000Rctl.BSIZE_SHIFT) & 3, 0); // BSIZE 00 (BSEX clear): 2048-byte buffers
 * equal(rctl & E1000Rctl.LBM_MASK, 0); // no loopback
 * ```
 */
export const E1000Rctl = {
  EN: 0x0000_0002,
  SBP: 0x0000_0004,
  UPE: 0x0000_0008,
  MPE: 0x0000_0010,
  LPE: 0x0000_0020,
  /** Loopback mode, bits 7:6 (01 = MAC loopback). */
  LBM_MASK: 0x0000_00c0,
  LBM_MAC: 0x0000_0040,
  RDMTS_SHIFT: 8,
  MO_SHIFT: 12,
  BAM: 0x0000_8000,
  BSIZE_SHIFT: 16,
  VFE: 0x0004_0000,
  BSEX: 0x0200_0000,
  SECRC: 0x0400_0000,
} as const;

/**
 * TCTL bits.
 *
 * @example
 * ```ts
 * import { E1000Tctl } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const tctl = E1000Tctl.EN | E1000Tctl.PSP | (0x0f << 4) | (0x40 << 12); // CT 15, COLD 64
 * equal(tctl, 0x0004_00fa);
 * equal(tctl & E1000Tctl.PSP, E1000Tctl.PSP); // short frames are padded to 60 bytes
 * ```
 */
export const E1000Tctl = {
  EN: 0x0000_0002,
  PSP: 0x0000_0008,
} as const;

/**
 * RAH bits.
 *
 * @example
 * ```ts
 * import { E1000Rah } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
 * const ral = ((mac[3]! << 24) | (mac[2]! << 16) | (mac[1]! << 8) | mac[0]!) >>> 0;
 * const rah = (E1000Rah.AV | (mac[5]! << 8) | mac[4]!) >>> 0; // RA + 4: bytes 4-5, valid
 * equal(ral, 0x1200_5452);
 * equal(rah, 0x8000_5634);
 * equal((rah & E1000Rah.WRITABLE) >>> 0, rah); // a write keeps it whole
 * ```
 */
export const E1000Rah = {
  /** Address valid. */
  AV: 0x8000_0000,
  /** Bits a write keeps: address bits 47:32, address select 17:16, AV. */
  WRITABLE: 0x8003_ffff,
} as const;

/**
 * Transmit descriptor command bits (byte 11 of a descriptor; bits 31:24 of its second dword).
 *
 * @example
 * ```ts
 * import { E1000TxCmd } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const cmd = E1000TxCmd.EOP | E1000TxCmd.IFCS | E1000TxCmd.RS; // one whole frame, add its FCS
 * equal(cmd, 0x0b);
 * const dword1 = ((cmd << 24) | 60) >>> 0; // a legacy descriptor's second dword, length 60
 * equal(dword1, 0x0b00_003c);
 * ```
 */
export const E1000TxCmd = {
  EOP: 0x01,
  IFCS: 0x02,
  IC: 0x04,
  RS: 0x08,
  RPS: 0x10,
  DEXT: 0x20,
  VLE: 0x40,
  IDE: 0x80,
} as const;

/**
 * Extended descriptor fields in the second dword of a context or data descriptor.
 *
 * @example
 * ```ts
 * import { E1000TxCmd, E1000TxExt } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const cmd = E1000TxCmd.DEXT | E1000TxCmd.EOP;
 * const dword1 = ((cmd << 24) | E1000TxExt.DTYP_DATA | 1514) >>> 0;
 * equal(dword1 & E1000TxExt.DTYP_MASK, E1000TxExt.DTYP_DATA); // a data descriptor
 * equal(dword1 & E1000TxExt.TSE, 0); // not segmented
 * equal(E1000TxExt.POPTS_IXSM | E1000TxExt.POPTS_TXSM, 0x03); // byte 13: insert both checksums
 * ```
 */
export const E1000TxExt = {
  /** Descriptor type field, bits 23:20: 0 context, 1 data. */
  DTYP_MASK: 0x00f0_0000,
  DTYP_DATA: 0x0010_0000,
  /** TCP segmentation enable (context and data). */
  TSE: 0x0400_0000,
  /** Context: the packet is IPv4. */
  IP: 0x0200_0000,
  /** Context: the packet is TCP (else UDP). */
  TCP: 0x0100_0000,
  /** Data: POPTS (byte 13): insert the IP checksum. */
  POPTS_IXSM: 0x01,
  /** Data: POPTS: insert the TCP/UDP checksum. */
  POPTS_TXSM: 0x02,
} as const;

/**
 * Transmit descriptor status bits (byte 12).
 *
 * @example
 * ```ts
 * import { E1000TxStatus } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const status = 0x01; // byte 12 of a written-back transmit descriptor
 * equal(status & E1000TxStatus.DD, E1000TxStatus.DD); // done: its buffer may be reused
 * equal(status & (E1000TxStatus.EC | E1000TxStatus.LC), 0); // no collision trouble
 * ```
 */
export const E1000TxStatus = {
  DD: 0x01,
  EC: 0x02,
  LC: 0x04,
  TU: 0x08,
} as const;

/**
 * Receive descriptor status bits (byte 12).
 *
 * @example
 * ```ts
 * import { E1000RxStatus } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const status = 0x07; // byte 12 of a written-back receive descriptor
 * equal(status & E1000RxStatus.DD, E1000RxStatus.DD); // the device is done with it
 * equal(status & E1000RxStatus.EOP, E1000RxStatus.EOP); // the frame ends in this buffer
 * equal(status & E1000RxStatus.IXSM, E1000RxStatus.IXSM); // TCPCS and IPCS mean nothing
 * ```
 */
export const E1000RxStatus = {
  DD: 0x01,
  EOP: 0x02,
  /** Ignore checksum indication. */
  IXSM: 0x04,
  VP: 0x08,
  TCPCS: 0x20,
  IPCS: 0x40,
  PIF: 0x80,
} as const;

/**
 * Receive descriptor error bits (byte 13).
 *
 * @example
 * ```ts
 * import { E1000RxError } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const errors = 0x80; // byte 13 of a written-back receive descriptor
 * equal(errors & E1000RxError.RXE, E1000RxError.RXE); // the buffer could not be written
 * equal(errors & (E1000RxError.CE | E1000RxError.SE), 0); // no CRC or symbol error
 * ```
 */
export const E1000RxError = {
  CE: 0x01,
  SE: 0x02,
  SEQ: 0x04,
  CXE: 0x10,
  TCPE: 0x20,
  IPE: 0x40,
  /** RX data error: dmaworks reports a buffer DMA fault with it. */
  RXE: 0x80,
} as const;

/**
 * Bytes of a transmit or receive descriptor.
 *
 * @example
 * ```ts
 * import { E1000_DESCRIPTOR_BYTES } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const tdlen = 256 * E1000_DESCRIPTOR_BYTES; // TDLEN for a ring of 256 descriptors
 * equal(tdlen, 4096);
 * equal(tdlen % 128, 0); // the 8254x SDM: a ring length is a multiple of 128 bytes
 * equal(0x10_0000 + 5 * E1000_DESCRIPTOR_BYTES, 0x10_0050); // descriptor 5 of a ring at 1 MiB
 * ```
 */
export const E1000_DESCRIPTOR_BYTES = 16;

/**
 * ERRCAUSE (dmaworks extension): bits 7:0 say what failed, bits 15:8 the DMA
 * fault kind ({@linkcode E1000_DMA_FAULT_CODES}), bit 16 is set while the
 * transmit ring is stopped and bit 17 while the receive ring is stopped.
 * Writing ERRCAUSE clears the cause and the address (not the stopped bits:
 * writing TCTL restarts the transmit ring, writing RCTL the receive ring,
 * CTRL.RST both).
 *
 * @example
 * ```ts
 * import { E1000_DMA_FAULT_CODES, E1000Err } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const errcause = 0x0001_0302; // an ERRCAUSE read
 * equal(errcause & 0xff, E1000Err.TX_DESCRIPTOR); // a transmit descriptor could not be read
 * equal((errcause >> 8) & 0xff, E1000_DMA_FAULT_CODES.permission); // the IOMMU refused it
 * equal(errcause & E1000Err.TX_STOPPED, E1000Err.TX_STOPPED); // until TCTL is written
 * ```
 */
export const E1000Err = {
  NONE: 0,
  /** TDLEN is 0, or TDH or TDT is beyond the ring: the transmit ring stopped. */
  TX_RING: 1,
  /** A transmit descriptor could not be read: the transmit ring stopped. */
  TX_DESCRIPTOR: 2,
  /** A transmit buffer could not be read: the frame was dropped, the ring stopped. */
  TX_BUFFER: 3,
  /** A transmit descriptor could not be written back: the ring stopped. */
  TX_WRITEBACK: 4,
  /** A frame longer than 16 KiB: dropped, the ring goes on. */
  TX_TOO_LONG: 5,
  /** A TCP segmentation context that cannot be honoured (MSS 0, header beyond the frame): the packet was dropped. */
  TX_TSO: 6,
  /** RDLEN is 0, or RDH or RDT is beyond the ring: the receive ring stopped. */
  RX_RING: 9,
  /** A receive descriptor could not be read: the receive ring stopped, the frame was dropped. */
  RX_DESCRIPTOR: 10,
  /** A receive buffer could not be written: the descriptor says RXE, the ring stopped. */
  RX_BUFFER: 11,
  /** A receive descriptor could not be written back: the receive ring stopped. */
  RX_WRITEBACK: 12,
  /** ERRCAUSE bit: the transmit ring is stopped. */
  TX_STOPPED: 0x1_0000,
  /** ERRCAUSE bit: the receive ring is stopped. */
  RX_STOPPED: 0x2_0000,
} as const;

/**
 * DMA fault kinds as ERRCAUSE bits 15:8 report them (the same codes as edu's 0xa8 register).
 *
 * @example
 * ```ts
 * import { E1000_DMA_FAULT_CODES } from "./e1000_regs.ts";
 * import { EDU_FAULT_CODES } from "./edu.ts";
 * import { equal } from "node:assert/strict";
 * const code = (0x0000_020b >> 8) & 0xff; // ERRCAUSE bits 15:8 (here with RX_BUFFER)
 * const kind = Object.entries(E1000_DMA_FAULT_CODES).find(([, c]) => c === code)?.[0];
 * equal(kind, "no-translation");
 * for (const [name, c] of Object.entries(E1000_DMA_FAULT_CODES)) {
 *   equal(EDU_FAULT_CODES[name as keyof typeof EDU_FAULT_CODES], c); // edu's codes too
 * }
 * ```
 */
export const E1000_DMA_FAULT_CODES = {
  "none": 0,
  "no-translation": 2,
  "permission": 3,
  "outside-ram": 4,
  "mmio-target": 5,
  "bus-master-disabled": 6,
} as const;

/**
 * PHY (MII) register numbers reachable through MDIC (PHY address 1).
 *
 * @example
 * ```ts
 * import { E1000Mdic, E1000Phy } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * equal(E1000Phy.BMSR, 1); // IEEE 802.3 clause 22: basic mode status register
 * const mdic = 0x1821_796d; // MDIC after a read of PHY 1
 * equal((mdic & E1000Mdic.REG_MASK) >> E1000Mdic.REG_SHIFT, E1000Phy.BMSR); // of BMSR
 * ```
 */
export const E1000Phy = {
  BMCR: 0x00,
  BMSR: 0x01,
  PHYID1: 0x02,
  PHYID2: 0x03,
  ANAR: 0x04,
  ANLPAR: 0x05,
  ANER: 0x06,
  CTRL1000: 0x09,
  STAT1000: 0x0a,
  PHY_SPEC_CTRL: 0x10,
  PHY_SPEC_STATUS: 0x11,
  EXT_PHY_SPEC_CTRL: 0x14,
  RX_ERR_CNTR: 0x15,
} as const;

/**
 * PHY register bits the model acts on.
 *
 * @example
 * ```ts
 * import { E1000PhyBits } from "./e1000_regs.ts";
 * import { equal } from "node:assert/strict";
 * const bmsr = 0x796d; // BMSR as read through MDIC
 * equal(bmsr & E1000PhyBits.BMSR_LINK_ST, E1000PhyBits.BMSR_LINK_ST); // link up
 * equal(bmsr & E1000PhyBits.BMSR_AN_COMP, E1000PhyBits.BMSR_AN_COMP); // negotiation complete
 * equal(E1000PhyBits.BMCR_AUTOEN | E1000PhyBits.BMCR_ANRESTART, 0x1200); // BMCR: renegotiate
 * ```
 */
export const E1000PhyBits = {
  BMCR_ANRESTART: 0x0200,
  BMCR_AUTOEN: 0x1000,
  BMCR_LOOPBACK: 0x4000,
  BMCR_RESET: 0x8000,
  BMSR_LINK_ST: 0x0004,
  BMSR_AN_COMP: 0x0020,
  ANLPAR_ACK: 0x4000,
} as const;
