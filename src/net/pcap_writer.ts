/**
 * A pcap (libpcap classic format) writer for `-object filter-dump`: every
 * frame a network backend passes is appended with a timestamp, so tshark and
 * Wireshark can read the capture. Writes are queued and done asynchronously:
 * the main isolate never blocks on the file.
 *
 * @module
 */

/**
 * The classic pcap magic (microsecond timestamps).
 *
 * @example
 * ```ts
 * import { PCAP_MAGIC } from "./pcap_writer.ts";
 * import { deepEqual } from "node:assert/strict";
 * const header = new DataView(new ArrayBuffer(4));
 * header.setUint32(0, PCAP_MAGIC, true); // as the writer lays it down
 * deepEqual([...new Uint8Array(header.buffer)], [0xd4, 0xc3, 0xb2, 0xa1]); // little-endian, µs
 * ```
 */
export const PCAP_MAGIC = 0xa1b2_c3d4;
/**
 * Link type Ethernet.
 *
 * @example
 * ```ts
 * import { LINKTYPE_ETHERNET, PcapWriter } from "./pcap_writer.ts";
 * import { equal } from "node:assert/strict";
 * const path = await Deno.makeTempFile({ suffix: ".pcap" });
 * await (await PcapWriter.create(path)).close();
 * const header = new DataView((await Deno.readFile(path)).buffer);
 * equal(header.getUint32(20, true), LINKTYPE_ETHERNET); // 1: tcpdump.org's LINKTYPE_ETHERNET
 * await Deno.remove(path);
 * ```
 */
export const LINKTYPE_ETHERNET = 1;

/**
 * A pcap file being written.
 *
 * @example
 * ```ts
 * import { PcapWriter } from "./pcap_writer.ts";
 * import { equal } from "node:assert/strict";
 * const path = await Deno.makeTempFile({ suffix: ".pcap" });
 * const pcap = await PcapWriter.create(path);
 * pcap.write(new Uint8Array(60));
 * await pcap.close();
 * equal((await Deno.stat(path)).size, 24 + 16 + 60);
 * await Deno.remove(path);
 * ```
 */
export class PcapWriter {
  #file: Deno.FsFile;
  #snaplen: number;
  #queue: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  #closed = false;
  #frames = 0;

  private constructor(file: Deno.FsFile, snaplen: number) {
    this.#file = file;
    this.#snaplen = snaplen;
  }

  /**
   * Creates (truncates) the file and writes the global header.
   *
   * @param path File path.
   * @param options Snapshot length (default 65535, QEMU's default for filter-dump).
   * @returns The writer.
   *
   * @example
   * ```ts
   * import { PCAP_MAGIC, PcapWriter } from "./pcap_writer.ts";
   * import { equal } from "node:assert/strict";
   * const path = await Deno.makeTempFile({ suffix: ".pcap" });
   * const pcap = await PcapWriter.create(path, { snaplen: 128 });
   * await pcap.close();
   * const header = new DataView((await Deno.readFile(path)).buffer);
   * equal(header.getUint32(0, true), PCAP_MAGIC);
   * equal(header.getUint32(16, true), 128); // the snapshot length
   * await Deno.remove(path);
   * ```
   */
  static async create(path: string, options: { snaplen?: number } = {}): Promise<PcapWriter> {
    const snaplen = options.snaplen ?? 65535;
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    const header = new DataView(new ArrayBuffer(24));
    header.setUint32(0, PCAP_MAGIC, true);
    header.setUint16(4, 2, true);
    header.setUint16(6, 4, true);
    header.setInt32(8, 0, true);
    header.setUint32(12, 0, true);
    header.setUint32(16, snaplen, true);
    header.setUint32(20, LINKTYPE_ETHERNET, true);
    await file.write(new Uint8Array(header.buffer));
    return new PcapWriter(file, snaplen);
  }

  /**
   * Frames written so far.
   *
   * @example
   * ```ts
   * import { PcapWriter } from "./pcap_writer.ts";
   * import { equal } from "node:assert/strict";
   * const path = await Deno.makeTempFile({ suffix: ".pcap" });
   * const pcap = await PcapWriter.create(path);
   * pcap.write(new Uint8Array(60));
   * pcap.write(new Uint8Array(64));
   * equal(pcap.frames, 2);
   * await pcap.close();
   * await Deno.remove(path);
   * ```
   */
  get frames(): number {
    return this.#frames;
  }

  /**
   * Appends a frame (queued; write errors surface on `close`). Frames
   * after `close` are not captured (and not counted).
   *
   * @param frame The Ethernet frame.
   *
   * @example
   * ```ts
   * import { PcapWriter } from "./pcap_writer.ts";
   * import { equal } from "node:assert/strict";
   * const path = await Deno.makeTempFile({ suffix: ".pcap" });
   * const pcap = await PcapWriter.create(path, { snaplen: 64 });
   * pcap.write(new Uint8Array(1514));
   * await pcap.close();
   * const file = await Deno.readFile(path);
   * equal(file.length, 24 + 16 + 64); // cut to the snapshot length
   * equal(new DataView(file.buffer).getUint32(24 + 12, true), 1514); // the frame's real length
   * await Deno.remove(path);
   * ```
   */
  write(frame: Uint8Array): void {
    if (this.#closed) return;
    const now = Date.now();
    const captured = Math.min(frame.length, this.#snaplen);
    const record = new Uint8Array(16 + captured);
    const view = new DataView(record.buffer);
    view.setUint32(0, Math.floor(now / 1000), true);
    view.setUint32(4, (now % 1000) * 1000, true);
    view.setUint32(8, captured, true);
    view.setUint32(12, frame.length, true);
    record.set(frame.subarray(0, captured), 16);
    this.#frames++;
    this.#queue = this.#queue.then(async () => {
      if (this.#error) return;
      try {
        let done = 0;
        while (done < record.length) done += await this.#file.write(record.subarray(done));
      } catch (error) {
        this.#error = error as Error;
      }
    });
  }

  /**
   * Flushes the queue and closes the file.
   *
   * @example
   * ```ts
   * import { PcapWriter } from "./pcap_writer.ts";
   * import { equal } from "node:assert/strict";
   * const path = await Deno.makeTempFile({ suffix: ".pcap" });
   * const pcap = await PcapWriter.create(path);
   * pcap.write(new Uint8Array(60));
   * pcap.write(new Uint8Array(42));
   * await pcap.close(); // waits for both queued writes
   * equal((await Deno.stat(path)).size, 24 + (16 + 60) + (16 + 42));
   * pcap.write(new Uint8Array(60)); // too late: not captured
   * await pcap.close();
   * equal(pcap.frames, 2);
   * await Deno.remove(path);
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    this.#file.close();
    if (this.#error) throw new Error(`Cannot write the capture file: ${this.#error.message}`);
  }
}
