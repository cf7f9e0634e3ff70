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

/** BAR0 register offsets. */
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

/** Statistics registers (all clear on read; 64-bit pairs clear when the high half is read). */
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

/** First and last (exclusive) offsets of the statistics block. */
export const E1000_STATS_RANGE: readonly [number, number] = [0x4000, 0x4100];

/** CTRL bits. */
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

/** STATUS bits. */
export const E1000Status = {
  FD: 0x0000_0001,
  LU: 0x0000_0002,
  TXOFF: 0x0000_0010,
  SPEED_1000: 0x0000_0080,
  ASDV_1000: 0x0000_0300,
  MTXCKOK: 0x0000_0400,
  GIO_MASTER_ENABLE: 0x0008_0000,
} as const;

/** EECD (EEPROM/flash control) bits. */
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

/** EERD (EEPROM read) fields. */
export const E1000Eerd = {
  START: 0x1,
  DONE: 0x10,
  ADDR_SHIFT: 8,
  DATA_SHIFT: 16,
} as const;

/** MDIC (PHY access) fields. */
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

/** Interrupt causes (ICR, ICS, IMS, IMC). */
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

/** The interrupt cause bits the model keeps (bits 31:17 are reserved and read 0). */
export const E1000_ICR_MASK = 0x0001_ffff;

/** RCTL bits. */
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

/** TCTL bits. */
export const E1000Tctl = {
  EN: 0x0000_0002,
  PSP: 0x0000_0008,
} as const;

/** RAH bits. */
export const E1000Rah = {
  /** Address valid. */
  AV: 0x8000_0000,
  /** Bits a write keeps: address bits 47:32, address select 17:16, AV. */
  WRITABLE: 0x8003_ffff,
} as const;

/** Transmit descriptor command bits (byte 11 of a descriptor; bits 31:24 of its second dword). */
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

/** Extended descriptor fields in the second dword of a context or data descriptor. */
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

/** Transmit descriptor status bits (byte 12). */
export const E1000TxStatus = {
  DD: 0x01,
  EC: 0x02,
  LC: 0x04,
  TU: 0x08,
} as const;

/** Receive descriptor status bits (byte 12). */
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

/** Receive descriptor error bits (byte 13). */
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

/** Bytes of a transmit or receive descriptor. */
export const E1000_DESCRIPTOR_BYTES = 16;

/**
 * ERRCAUSE (dmaworks extension): bits 7:0 say what failed, bits 15:8 the DMA
 * fault kind ({@linkcode E1000_DMA_FAULT_CODES}), bit 16 is set while the
 * transmit ring is stopped and bit 17 while the receive ring is stopped.
 * Writing ERRCAUSE clears the cause and the address (not the stopped bits:
 * writing TCTL restarts the transmit ring, writing RCTL the receive ring,
 * CTRL.RST both).
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

/** DMA fault kinds as ERRCAUSE bits 15:8 report them (the same codes as edu's 0xa8 register). */
export const E1000_DMA_FAULT_CODES = {
  "none": 0,
  "no-translation": 2,
  "permission": 3,
  "outside-ram": 4,
  "mmio-target": 5,
  "bus-master-disabled": 6,
} as const;

/** PHY (MII) register numbers reachable through MDIC (PHY address 1). */
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

/** PHY register bits the model acts on. */
export const E1000PhyBits = {
  BMCR_ANRESTART: 0x0200,
  BMCR_AUTOEN: 0x1000,
  BMCR_LOOPBACK: 0x4000,
  BMCR_RESET: 0x8000,
  BMSR_LINK_ST: 0x0004,
  BMSR_AN_COMP: 0x0020,
  ANLPAR_ACK: 0x4000,
} as const;
