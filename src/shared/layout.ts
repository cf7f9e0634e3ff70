/**
 * Every shared-memory layout of dmaworks, defined once, by name.
 *
 * All offsets are in 32-bit words of an `Int32Array` over the block's
 * SharedArrayBuffer. Words that several agents touch are only ever accessed
 * with `Atomics`; payload words guarded by a published index or sequence
 * number may be accessed plainly by the side that owns them at that moment
 * (see ARCHITECTURE.md, "Memory ordering").
 *
 * @module
 */

/** Bytes per word. */
export const WORD = 4;

/**
 * The largest number of producers (main isolate + guest agents) that can talk
 * to one target. Producer 0 is always the main isolate.
 */
export const MAX_PRODUCERS = 16;

/** Lifecycle states of a target (a device worker or the main isolate). */
export const TargetState = {
  /** Not yet running. */
  Starting: 0,
  /** Running and serving requests. */
  Running: 1,
  /** Died, was terminated or timed out: reads answer all-ones. */
  Failed: 2,
  /** Shut down by the machine. */
  Stopped: 3,
} as const;

/**
 * Control words at the start of every target block (device worker or main).
 */
export const TargetCtrl = {
  /** Incremented by producers after publishing work; the consumer waits on it. */
  DOORBELL: 0,
  /** A {@linkcode TargetState}. */
  STATE: 1,
  /** 1 when the device's PCI Bus Master Enable bit is set (written by main). */
  BUS_MASTER: 2,
  /** Invalidation generation requested by main (written by main only). */
  INV_REQ_GEN: 3,
  /** Invalidation generation acknowledged by the worker (written by the worker only). */
  INV_ACK_GEN: 4,
  /**
   * 1 while the consumer is about to sleep waiting for a wake message; a
   * producer that swaps it from 1 to 0 owes the consumer one wake message.
   */
  WAITING: 5,
  /**
   * DMA transaction counter (written by the device worker): odd while a DMA
   * API call is in progress. After terminating a worker, main waits for an
   * odd value's copy to be finished before it completes an invalidation.
   */
  TXN: 6,
  /** Translations served from the worker's cache or snapshot. */
  MMU_HITS: 7,
  /** Translations that needed the main isolate. */
  MMU_MISSES: 8,
  /** DMA translation faults seen by the worker. */
  MMU_FAULTS: 9,
  /** Invalidations the worker acknowledged. */
  MMU_INVALIDATIONS: 10,
  /** Words reserved for the control area. */
  SIZE: 16,
} as const;

/** Header words of one single-producer single-consumer register ring. */
export const RingHeader = {
  /** Next slot the consumer will take (written by the consumer). */
  HEAD: 0,
  /** Next slot the producer will fill (written by the producer). */
  TAIL: 1,
  /** Sequence number of the request the response words answer (written by the consumer). */
  RESP_SEQ: 2,
  /** Low 32 bits of a read's value. */
  RESP_LO: 3,
  /** High 32 bits of a read's value. */
  RESP_HI: 4,
  /** A {@linkcode ResponseStatus}. */
  RESP_STATUS: 5,
  /** The last sequence number the producer used (producer-owned). */
  NEXT_SEQ: 6,
  /** Header size in words. */
  SIZE: 8,
} as const;

/** Words of one request slot in a ring. */
export const RingSlot = {
  /** A {@linkcode RequestOp}. */
  OP: 0,
  /** Region number inside the target, or the address space for address-routed requests. */
  REGION: 1,
  /** Offset inside the region (low 32 bits), or the address low word. */
  OFFSET_LO: 2,
  /** Address high word (address-routed requests only). */
  OFFSET_HI: 3,
  /** Access size in bytes. */
  SIZE: 4,
  /** Low 32 bits of a write's value. */
  VAL_LO: 5,
  /** High 32 bits of a write's value. */
  VAL_HI: 6,
  /** The request's sequence number (reads are answered with it). */
  SEQ: 7,
  /** Slot size in words. */
  WORDS: 8,
} as const;

/** Request kinds carried in {@linkcode RingSlot.OP}. */
export const RequestOp = {
  /** Region read: answered through the response words. */
  Read: 1,
  /** Region write: posted, no answer. */
  Write: 2,
  /** Region write that is answered when done (non-posted: config and I/O writes). */
  WriteSync: 3,
} as const;

/** Status of a response. */
export const ResponseStatus = {
  /** The access completed. */
  Ok: 0,
  /** Nothing decoded the access (reads return all-ones). */
  Unassigned: 1,
  /** The target failed; reads return all-ones. */
  Failed: 2,
} as const;

/** Number of request slots in each ring (a power of two). */
export const RING_SLOTS = 64;

/** Words in one ring. */
export const RING_WORDS: number = RingHeader.SIZE + RING_SLOTS * RingSlot.WORDS;

/** Words of a whole target block: control words plus one ring per producer. */
export const TARGET_BLOCK_WORDS: number = TargetCtrl.SIZE + MAX_PRODUCERS * RING_WORDS;

/**
 * Word offset of producer `producer`'s ring inside a target block.
 *
 * @param producer Producer index, 0 … {@linkcode MAX_PRODUCERS} − 1.
 * @returns The word offset of the ring header.
 *
 * @example
 * ```ts
 * import { ringOffset, TargetCtrl } from "./layout.ts";
 * import { equal } from "node:assert/strict";
 * equal(ringOffset(0), TargetCtrl.SIZE);
 * ```
 */
export function ringOffset(producer: number): number {
  return TargetCtrl.SIZE + producer * RING_WORDS;
}

/** The largest number of interrupt sources (device INTx pins) in one machine. */
export const MAX_IRQ_SOURCES = 64;
/** The number of interrupt lines (GSIs) a machine has. */
export const IRQ_LINES = 24;

/** The machine block: interrupt state and the routing table guest agents read. */
export const MachineBlock = {
  /** Incremented on every interrupt-source change; waiters use it. */
  IRQ_SEQ: 0,
  /**
   * The trace epoch: a counter guests advance with `traceMark()`; every DMA
   * trace record carries the epoch at the start and at the end of its copy,
   * so a checker can order device accesses against guest events.
   */
  TRACE_EPOCH: 1,
  /** First of {@linkcode MAX_IRQ_SOURCES} words: each source's level (0/1). */
  IRQ_LEVEL: 16,
  /** First of {@linkcode MAX_IRQ_SOURCES} words: each source's GSI, or -1 when unrouted. */
  IRQ_ROUTE: 16 + MAX_IRQ_SOURCES,
  /** First of {@linkcode MAX_IRQ_SOURCES} words: 1 when the source is masked (INTx Disable). */
  IRQ_MASK: 16 + 2 * MAX_IRQ_SOURCES,
  /** Route table version: odd while main rewrites it (a seqlock). */
  ROUTE_VERSION: 16 + 3 * MAX_IRQ_SOURCES,
  /** Number of valid route entries. */
  ROUTE_COUNT: 17 + 3 * MAX_IRQ_SOURCES,
  /** First route entry. */
  ROUTE_BASE: 32 + 3 * MAX_IRQ_SOURCES,
} as const;

/** Words of one route-table entry (a mapped MMIO or PIO region). */
export const RouteEntry = {
  /** 0 = MMIO, 1 = PIO. */
  SPACE: 0,
  /** Base address, low word. */
  BASE_LO: 1,
  /** Base address, high word. */
  BASE_HI: 2,
  /** Size, low word. */
  SIZE_LO: 3,
  /** Size, high word. */
  SIZE_HI: 4,
  /** Target index (0 = main isolate, k = device k). */
  TARGET: 5,
  /** Region number inside the target. */
  TARGET_REGION: 6,
  /** Largest native access size. */
  MAX_ACCESS: 7,
  /** Entry size in words. */
  WORDS: 8,
} as const;

/** The largest number of mapped regions the route table holds. */
export const MAX_ROUTES = 128;

/** Words of the machine block. */
export const MACHINE_BLOCK_WORDS: number = MachineBlock.ROUTE_BASE + MAX_ROUTES * RouteEntry.WORDS;

/**
 * The IOTLB snapshot of one device worker: the translations and device-table
 * state the main isolate has published for that worker's requester ids,
 * plus the translation-miss mailbox. Main is the only writer of the entries;
 * every entry is guarded by its own sequence word (a seqlock: odd while main
 * rewrites it), so a reader never uses a torn entry.
 */
export const SnapshotHeader = {
  /** Bit k set: some entry has page shift 12 + k (k < 32). */
  SHIFT_MASK_LO: 0,
  /** Bit k set: some entry has page shift 44 + k. */
  SHIFT_MASK_HI: 1,
  /** Miss request sequence (written by the worker). */
  MISS_REQ_SEQ: 2,
  /** Miss answer sequence (written by main). */
  MISS_RESP_SEQ: 3,
  /** Requester id of the miss. */
  MISS_RID: 4,
  /** IOVA of the miss, low word. */
  MISS_IOVA_LO: 5,
  /** IOVA of the miss, high word. */
  MISS_IOVA_HI: 6,
  /** Access of the miss: 1 read, 2 write. */
  MISS_ACCESS: 7,
  /** Answer: 0 translated, 1 no translation, 2 permission. */
  MISS_STATUS: 8,
  /** Answer: IOVA base of the translated run, low word. */
  MISS_BASE_LO: 9,
  /** Answer: IOVA base, high word. */
  MISS_BASE_HI: 10,
  /** Answer: physical base, low word. */
  MISS_PHYS_LO: 11,
  /** Answer: physical base, high word. */
  MISS_PHYS_HI: 12,
  /** Answer: run length in bytes, low word. */
  MISS_LEN_LO: 13,
  /** Answer: run length, high word. */
  MISS_LEN_HI: 14,
  /** Answer: permission bits. */
  MISS_PERMS: 15,
  /** Header size in words. */
  SIZE: 32,
} as const;

/** Requester ids one worker's snapshot can describe. */
export const SNAPSHOT_MAX_RIDS = 8;

/** Words of one device-table record in a snapshot. */
export const DteRecord = {
  /** Seqlock word. */
  SEQ: 0,
  /** Requester id, or -1 when the record is unused. */
  RID: 1,
  /** A {@linkcode DteState}. */
  STATE: 2,
  /** Permission bits that apply in `Identity` state. */
  PERMS: 3,
  /** DomainID. */
  DOMAIN: 4,
  /** 1 when the exclusion range applies to this requester. */
  EXCL: 5,
  /** Exclusion base (4 KiB page number), low word. */
  EXCL_BASE_LO: 6,
  /** Exclusion base, high word. */
  EXCL_BASE_HI: 7,
  /** Exclusion limit (4 KiB page number, inclusive), low word. */
  EXCL_LIMIT_LO: 8,
  /** Exclusion limit, high word. */
  EXCL_LIMIT_HI: 9,
  /** Record size in words. */
  WORDS: 12,
} as const;

/** What a requester's device-table entry means, as published in its record. */
export const DteState = {
  /** Nothing published: ask the main isolate. */
  Unknown: 0,
  /** Untranslated with full access (IOMMU off, or DTE.V = 0). */
  PassThrough: 1,
  /** Translated through the entries (DTE modes 1–6). */
  Translate: 2,
  /** Untranslated but limited to the record's permissions (DTE mode 0). */
  Identity: 3,
} as const;

/** Words of one translation entry. */
export const SnapshotEntry = {
  /** Seqlock word (0 never written; odd while main rewrites the entry). */
  SEQ: 0,
  /** Requester id, or -1 when empty. */
  RID: 1,
  /** Page shift (12 … 52). */
  SHIFT: 2,
  /** IOVA 4 KiB page number of the page base, low word. */
  PAGE_LO: 3,
  /** IOVA page number, high word. */
  PAGE_HI: 4,
  /** Physical 4 KiB page number of the base, low word. */
  PHYS_LO: 5,
  /** Physical page number, high word. */
  PHYS_HI: 6,
  /** Permission bits (0–1) and DomainID (bits 16–31). */
  PERMS_DOMAIN: 7,
  /** Entry size in words. */
  WORDS: 8,
} as const;

/** Entries per hash bucket (a lookup reads one bucket). */
export const SNAPSHOT_BUCKET = 4;
/** Buckets per snapshot (a power of two). */
export const SNAPSHOT_BUCKETS = 1024;

/** Word offset of the device-table records. */
export const SNAPSHOT_DTE_BASE: number = SnapshotHeader.SIZE;
/** Word offset of the translation entries. */
export const SNAPSHOT_ENTRY_BASE: number = SNAPSHOT_DTE_BASE + SNAPSHOT_MAX_RIDS * DteRecord.WORDS;
/** Words of a whole snapshot. */
export const SNAPSHOT_WORDS: number = SNAPSHOT_ENTRY_BASE +
  SNAPSHOT_BUCKETS * SNAPSHOT_BUCKET * SnapshotEntry.WORDS;

/** Header words of a device's DMA trace ring (single producer: the device worker). */
export const TraceHeader = {
  /** Next record the consumer (main) reads. */
  HEAD: 0,
  /** Next record the producer writes. */
  TAIL: 1,
  /** Records dropped because the ring was full. */
  DROPPED: 2,
  /**
   * Bit 0: lossless: a producer that finds the ring full waits (up to a
   * second) for the consumer to drain it instead of dropping the record.
   */
  FLAGS: 3,
  /** Header size in words. */
  SIZE: 8,
} as const;

/** Words of one DMA trace record. */
export const TraceRecord = {
  /**
   * Requester id (bits 15:0), access (bit 16: write), continues the previous
   * record's transaction (bit 17), result (bits 31:24: 0 ok, else a fault code).
   */
  INFO: 0,
  /** IOVA, low word. */
  IOVA_LO: 1,
  /** IOVA, high word. */
  IOVA_HI: 2,
  /** Physical address, low word (0 for a fault). */
  PHYS_LO: 3,
  /** Physical address, high word. */
  PHYS_HI: 4,
  /** Length in bytes. */
  LENGTH: 5,
  /** Trace epoch before the copy. */
  EPOCH_START: 6,
  /** Trace epoch after the copy. */
  EPOCH_END: 7,
  /** Record size in words. */
  WORDS: 8,
} as const;

/**
 * Header words of the DMA injection block (fuzzing: the first DMA read of
 * each byte of guest RAM is filled with fuzzer data; see `src/dma/dma_inject.ts`).
 * Producers are every device worker and the main isolate (the IOMMU's table
 * reads); the consumer is the main isolate.
 */
export const InjectHeader = {
  /** 1 while first reads are filled; 0: reads are only watched. */
  ENABLED: 0,
  /** The guest operation in progress (the fuzzer's index; records carry it). */
  OP: 1,
  /** Next record the consumer reads. */
  HEAD: 2,
  /** Next record a producer reserves (compare-and-swap). */
  TAIL: 3,
  /** Fills skipped because the record ring was full. */
  DROPPED: 4,
  /** Accesses whose physical range was not guest RAM (an oracle: must stay 0). */
  VIOLATIONS: 5,
  /** First violation: physical address, low word. */
  VIOLATION_LO: 6,
  /** First violation: physical address, high word. */
  VIOLATION_HI: 7,
  /** First violation: length. */
  VIOLATION_LENGTH: 8,
  /** Patterns in use (0 to `INJECT_PATTERNS`). */
  PATTERN_COUNT: 9,
  /** Fills so far (picks the next pattern). */
  FILLS: 10,
  /** Record capacity (a power of two). */
  CAPACITY: 11,
  /** Bytes of guest RAM the bitmap covers. */
  RAM_BYTES: 12,
  /** Header size in words. */
  SIZE: 16,
} as const;

/** Words of one injection pattern. */
export const InjectPattern = {
  /** Pattern length in bytes (1 to `INJECT_PATTERN_BYTES`). */
  LENGTH: 0,
  /** The byte that changes on every repetition. */
  INDEX: 1,
  /** What is added to that byte on every repetition. */
  STRIDE: 2,
  /** First word of the pattern bytes. */
  DATA: 4,
  /** Pattern size in words. */
  WORDS: 12,
} as const;

/** Patterns the injection block holds. */
export const INJECT_PATTERNS = 8;
/** Largest pattern in bytes. */
export const INJECT_PATTERN_BYTES: number = (InjectPattern.WORDS - InjectPattern.DATA) * WORD;
/** Word offset of the first pattern. */
export const INJECT_PATTERN_BASE: number = InjectHeader.SIZE;

/** Words of one fill record. */
export const InjectRecord = {
  /** Sequence number + 1 once the record is published. */
  READY: 0,
  /** RAM buffer offset of the filled bytes. */
  OFFSET: 1,
  /** Bytes filled. */
  LENGTH: 2,
  /** Pattern used. */
  PATTERN: 3,
  /** The guest operation in progress (`InjectHeader.OP`) when it was filled. */
  OP: 4,
  /** Record size in words. */
  WORDS: 5,
} as const;

/** Word offset of the first fill record. */
export const INJECT_RECORD_BASE: number = INJECT_PATTERN_BASE +
  INJECT_PATTERNS * InjectPattern.WORDS;
