// qtest sessions for the IDE tests: the same client code drives dmaworks
// (a machine and its qtest server over in-memory streams) or QEMU 7.2
// (`-qtest stdio`), so register sequences run unchanged against both.
import { Machine, type MachineConfig } from "../../src/machine/machine.ts";
import { QtestClient } from "../../src/qtest/qtest_client.ts";
import { QtestServer } from "../../src/qtest/qtest_server.ts";
import { decodeBase64, encodeBase64 } from "../../src/qtest/qtest_protocol.ts";
import { which } from "../qtest/qtest_test_utils.ts";

/** QEMU, when installed. */
export const QEMU: string | undefined = which("qemu-system-x86_64");

/** Port of BAR4 in every session (programmed by {@linkcode Io.setupPci}). */
export const BM = 0xc000;

/** A qtest session with typed accessors. */
export class Io implements AsyncDisposable {
  readonly name: string;
  readonly client: QtestClient;
  readonly machine: Machine | undefined;
  #close: () => Promise<void>;

  constructor(
    name: string,
    client: QtestClient,
    close: () => Promise<void>,
    machine?: Machine,
  ) {
    this.name = name;
    this.client = client;
    this.#close = close;
    this.machine = machine;
  }

  async #value(line: string): Promise<number> {
    const reply = await this.client.command(line);
    const m = /^OK (0x[0-9a-f]+)$/.exec(reply);
    if (!m) throw new Error(`${this.name}: '${line}' answered '${reply}'`);
    return Number(BigInt(m[1]!));
  }

  async #ok(line: string): Promise<void> {
    const reply = await this.client.command(line);
    if (reply !== "OK") throw new Error(`${this.name}: '${line}' answered '${reply}'`);
  }

  inb(port: number): Promise<number> {
    return this.#value(`inb 0x${port.toString(16)}`);
  }
  inw(port: number): Promise<number> {
    return this.#value(`inw 0x${port.toString(16)}`);
  }
  inl(port: number): Promise<number> {
    return this.#value(`inl 0x${port.toString(16)}`);
  }
  outb(port: number, value: number): Promise<void> {
    return this.#ok(`outb 0x${port.toString(16)} 0x${value.toString(16)}`);
  }
  outw(port: number, value: number): Promise<void> {
    return this.#ok(`outw 0x${port.toString(16)} 0x${value.toString(16)}`);
  }
  outl(port: number, value: number): Promise<void> {
    return this.#ok(`outl 0x${port.toString(16)} 0x${(value >>> 0).toString(16)}`);
  }
  writel(address: number, value: number): Promise<void> {
    return this.#ok(`writel 0x${address.toString(16)} 0x${(value >>> 0).toString(16)}`);
  }
  async write(address: number, data: Uint8Array): Promise<void> {
    await this.#ok(
      `b64write 0x${address.toString(16)} 0x${data.length.toString(16)} ${encodeBase64(data)}`,
    );
  }
  async read(address: number, length: number): Promise<Uint8Array> {
    const reply = await this.client.command(
      `b64read 0x${address.toString(16)} 0x${length.toString(16)}`,
    );
    const m = /^OK (\S*)$/.exec(reply);
    const bytes = m ? decodeBase64(m[1]!) : undefined;
    if (!bytes) throw new Error(`${this.name}: b64read answered '${reply.slice(0, 80)}'`);
    return bytes;
  }
  memset(address: number, length: number, value: number): Promise<void> {
    return this.#ok(
      `memset 0x${address.toString(16)} 0x${length.toString(16)} 0x${value.toString(16)}`,
    );
  }

  /** Config-space read of 00:02.0. */
  async cfgRead(register: number, size: 1 | 2 | 4): Promise<number> {
    await this.outl(0xcf8, (0x8000_0000 | (2 << 11) | (register & 0xfc)) >>> 0);
    const port = 0xcfc + (register & 3);
    return size === 1 ? this.inb(port) : size === 2 ? this.inw(port) : this.inl(port);
  }

  /** Config-space write of 00:02.0. */
  async cfgWrite(register: number, size: 1 | 2 | 4, value: number): Promise<void> {
    await this.outl(0xcf8, (0x8000_0000 | (2 << 11) | (register & 0xfc)) >>> 0);
    const port = 0xcfc + (register & 3);
    if (size === 1) await this.outb(port, value);
    else if (size === 2) await this.outw(port, value);
    else await this.outl(port, value);
  }

  /** BAR4 at {@linkcode BM}, I/O decoding and bus mastering on (as firmware). */
  async setupPci(command = 0x5): Promise<void> {
    await this.cfgWrite(0x20, 4, BM | 1);
    await this.cfgWrite(0x04, 2, command);
  }

  /** Polls BMIS until the engine stopped or interrupted (as a driver waits for the interrupt). */
  async waitDma(channel = 0, polls = 20_000): Promise<number> {
    for (let i = 0; i < polls; i++) {
      const bmis = await this.inb(BM + 8 * channel + 2);
      if (!(bmis & 1) || (bmis & 4)) return bmis;
    }
    throw new Error(`${this.name}: the DMA did not end`);
  }

  async close(): Promise<void> {
    await this.#close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A dmaworks machine driven through its qtest server. */
export async function dmaworksSession(config: MachineConfig): Promise<Io> {
  const machine = await Machine.create({ ...config, qtestClock: true });
  const server = new QtestServer(machine, { log: "none" });
  const toServer = new TransformStream<Uint8Array, Uint8Array>();
  const toClient = new TransformStream<Uint8Array, Uint8Array>();
  const serving = server.serve({ readable: toServer.readable, writable: toClient.writable });
  const client = new QtestClient(
    { readable: toClient.readable, writable: toServer.writable },
    { timeoutMs: 60_000 },
  );
  return new Io("dmaworks", client, async () => {
    await client.close();
    await serving;
    await server.close();
    await machine.stop();
  }, machine);
}

/** Arguments of the reference machine: q35, stopped, no defaults, qtest on stdio. */
export const QEMU_ARGS: readonly string[] = [
  "-S",
  "-machine",
  "q35",
  "-display",
  "none",
  "-nodefaults",
  "-m",
  "256M",
  "-qtest",
  "stdio",
  "-qtest-log",
  "/dev/null",
];

/** QEMU 7.2 driven over `-qtest stdio`. */
export function qemuSession(args: readonly string[]): Io {
  const child = new Deno.Command(QEMU!, {
    args: [...QEMU_ARGS, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const client = new QtestClient({ readable: child.stdout, writable: child.stdin }, {
    timeoutMs: 60_000,
  });
  return new Io("QEMU", client, async () => {
    child.kill("SIGKILL");
    await client.close();
    await child.status;
    await stderr;
  });
}

/** QEMU arguments and the matching dmaworks configuration for a PIIX3 at 02.0 with disks. */
export function ideMachine(
  disks: ReadonlyArray<
    { file: string; bus: number; unit?: number; readonly?: boolean; serial?: string }
  >,
  extra: { iommu?: boolean } = {},
): { qemu: string[]; config: MachineConfig } {
  const qemu: string[] = [];
  const config: MachineConfig = { devices: [], drives: [] };
  if (extra.iommu) {
    qemu.push("-device", "amd-iommu");
    config.devices!.push({ type: "amd-iommu", addr: "01.0" });
  }
  qemu.push("-device", "piix3-ide,id=ide,addr=02.0");
  config.devices!.push({ type: "piix3-ide", id: "ide", addr: "02.0" });
  disks.forEach((d, i) => {
    const id = `d${i}`;
    qemu.push(
      "-drive",
      `file=${d.file},format=raw,if=none,id=${id}${d.readonly ? ",readonly=on" : ""}`,
    );
    const props = `drive=${id},bus=ide.${d.bus},unit=${d.unit ?? 0}${
      d.serial ? `,serial=${d.serial}` : ""
    }`;
    qemu.push("-device", `ide-hd,${props}`);
    config.drives!.push({ id, file: d.file, readonly: d.readonly ?? false });
    config.devices!.push({
      type: "ide-hd",
      properties: {
        drive: id,
        bus: `ide.${d.bus}`,
        unit: String(d.unit ?? 0),
        ...(d.serial ? { serial: d.serial } : {}),
      },
    });
  });
  return { qemu, config };
}

/** A temporary raw image with `bytes` (or zeros), removed by the returned disposer. */
export async function tempImage(
  sizeOrBytes: number | Uint8Array,
): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempFile({ prefix: "dmaworks-ide-", suffix: ".img" });
  const bytes = typeof sizeOrBytes === "number" ? new Uint8Array(sizeOrBytes) : sizeOrBytes;
  await Deno.writeFile(path, bytes);
  return {
    path,
    [Symbol.asyncDispose]: async () => {
      await Deno.remove(path).catch(() => {});
    },
  };
}
