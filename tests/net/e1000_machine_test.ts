// The e1000 in real machines: its worker, the frame rings, the hub, guest
// driver programs, the IOMMU, RAM above 4 GiB, two machines in one process,
// and pcap capture read back (by hand, and with tshark when it is installed).
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { Machine, type MachineConfig } from "../../src/machine/machine.ts";
import { LINKTYPE_ETHERNET, PCAP_MAGIC } from "../../src/net/pcap_writer.ts";

const PAIR = new URL("../fixtures/e1000_pair.ts", import.meta.url);
const PINGPONG = new URL("../fixtures/e1000_pingpong.ts", import.meta.url);
const GIB = 2 ** 30;

function pairConfig(
  options: { iommu?: boolean; ramSize?: number; hubid?: number } = {},
): MachineConfig {
  const hubid = String(options.hubid ?? 0);
  return {
    ramSize: options.ramSize ?? 256 * 2 ** 20,
    devices: [
      ...(options.iommu ? [{ type: "amd-iommu", addr: "01.0" }] : []),
      { type: "e1000", id: "nic0", addr: "03.0", properties: { netdev: "h0" } },
      { type: "e1000", id: "nic1", addr: "05.0", properties: { netdev: "h1" } },
    ],
    netdevs: [
      { type: "hub", id: "h0", properties: { hubid } },
      { type: "hub", id: "h1", properties: { hubid } },
    ],
  };
}

/** Machine-unique hub ids so that parallel test files never share a hub. */
let nextHub = 5000 + Math.floor(Math.random() * 1_000_000);

Deno.test("e1000 in a machine: config space as QEMU 7.2 shows it at 00:03.0 (GSI 23)", async () => {
  await using machine = await Machine.create({ devices: [{ type: "e1000", addr: "03.0" }] });
  const config = async (reg: number) => {
    await machine.out(0xcf8, 4, 0x8000_1800 | reg);
    return await machine.in(0xcfc, 4);
  };
  // Values read from qemu-system-x86_64 7.2 -machine q35 -device e1000,addr=03.0 (qtest inl).
  equal(await config(0x00), 0x100e_8086);
  equal(await config(0x04), 0x0000_0000);
  equal(await config(0x08), 0x0200_0003);
  equal(await config(0x0c), 0x0000_0000);
  equal(await config(0x10), 0x0000_0000);
  equal(await config(0x14), 0x0000_0001);
  equal(await config(0x2c), 0x1100_1af4);
  equal(await config(0x34), 0);
  equal((await config(0x3c)) & 0xff00, 0x0100);
  await machine.out(0xcf8, 4, 0x8000_1810);
  await machine.out(0xcfc, 4, 0xffff_ffff);
  equal(await machine.in(0xcfc, 4), 0xfffe_0000);
  await machine.out(0xcf8, 4, 0x8000_1814);
  await machine.out(0xcfc, 4, 0xffff_ffff);
  equal(await machine.in(0xcfc, 4), 0xffff_ffc1);
  const nic = machine.devices().find((d) => d.type === "e1000")!;
  deepEqual(nic.irqLines, [23]);
  // BAR0 and BAR1 decode: STATUS through MMIO and through IOADDR/IODATA.
  await machine.out(0xcf8, 4, 0x8000_1810);
  await machine.out(0xcfc, 4, 0xfe00_0000);
  await machine.out(0xcf8, 4, 0x8000_1814);
  await machine.out(0xcfc, 4, 0xc000);
  await machine.out(0xcf8, 4, 0x8000_1804);
  await machine.out(0xcfc, 2, 0x0003);
  equal(await machine.read(0xfe00_0008, 4), 0x8008_0783n);
  await machine.out(0xc000, 4, 0x0008);
  equal(await machine.in(0xc004, 4), 0x8008_0783);
});

Deno.test("e1000 in a machine: ICR clears on read exactly once through the mailbox; INTx on GSI 23", async () => {
  await using machine = await Machine.create({ devices: [{ type: "e1000", addr: "03.0" }] });
  await machine.out(0xcf8, 4, 0x8000_1810);
  await machine.out(0xcfc, 4, 0xfe00_0000);
  await machine.out(0xcf8, 4, 0x8000_1804);
  await machine.out(0xcfc, 2, 0x0006);
  await machine.write(0xfe00_00d0, 4, 0x04); // IMS: LSC
  await machine.write(0xfe00_00c8, 4, 0x05); // ICS: TXDW | LSC
  equal(machine.irq.lineLevel(23), true);
  // Two reads posted back to back: the first sees the causes, the second nothing.
  const [first, second] = await Promise.all([
    machine.read(0xfe00_00c0, 4),
    machine.read(0xfe00_00c0, 4),
  ]);
  deepEqual([first, second], [0x05n, 0n]);
  equal(machine.irq.lineLevel(23), false);
});

Deno.test("e1000 in a machine: default MACs count up as QEMU's; a bad mac is refused by name", async () => {
  await using machine = await Machine.create({
    devices: [{ type: "e1000", addr: "03.0" }, { type: "e1000", addr: "05.0" }],
  });
  const mac = async (bar: number, slot: number) => {
    await machine.out(0xcf8, 4, 0x8000_0010 | (slot << 11));
    await machine.out(0xcfc, 4, bar);
    await machine.out(0xcf8, 4, 0x8000_0004 | (slot << 11));
    await machine.out(0xcfc, 2, 0x0002);
    const ral = Number(await machine.read(bar + 0x5400, 4));
    const rah = Number(await machine.read(bar + 0x5404, 4));
    return [
      ral & 0xff,
      (ral >> 8) & 0xff,
      (ral >> 16) & 0xff,
      ral >>> 24,
      rah & 0xff,
      (rah >> 8) & 0xff,
    ];
  };
  deepEqual(await mac(0xfe00_0000, 3), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  deepEqual(await mac(0xfe02_0000, 5), [0x52, 0x54, 0, 0x12, 0x34, 0x57]);
  await rejects(
    Machine.create({ devices: [{ type: "e1000", properties: { mac: "nope" } }] }),
    /Device 'e1000': Invalid mac 'nope'/,
  );
  await rejects(
    Machine.create({ devices: [{ type: "e1000", properties: { netdev: "n9" } }] }),
    /Device 'e1000\d*': no netdev with id 'n9'/,
  );
});

Deno.test("two e1000s on a hub: frames both ways through their workers (polling)", async () => {
  await using machine = await Machine.create(pairConfig({ hubid: nextHub++ }));
  const r = await machine.runGuest(PAIR, {
    options: { count: "20", size: "1514" },
    timeoutMs: 60_000,
  });
  match(JSON.stringify(r), /"forward":20,"back":20/);
  deepEqual((r as { errCause: number[] }).errCause, [0, 0]);
});

Deno.test("two e1000s on a hub: runts padded, jumbo frames, and receive interrupts", async () => {
  await using machine = await Machine.create(pairConfig({ hubid: nextHub++ }));
  const small = await machine.runGuest(PAIR, {
    options: { count: "5", size: "60", interrupt: "1" },
    timeoutMs: 60_000,
  });
  match(JSON.stringify(small), /"forward":5,"back":5/);
  const jumbo = await machine.runGuest(PAIR, {
    options: { count: "3", size: "9000" },
    timeoutMs: 60_000,
  });
  match(JSON.stringify(jumbo), /"forward":3,"back":3/);
});

Deno.test("through the IOMMU: rings in RAM above 4 GiB, and IOVAs above 4 GiB mapped to low RAM", async () => {
  await using machine = await Machine.create(
    pairConfig({ iommu: true, ramSize: 5 * GIB, hubid: nextHub++ }),
  );
  equal(machine.memory.highSize, 3 * GIB);
  // Physical memory above 4 GiB, identity-mapped IOVAs.
  const high = await machine.runGuest(PAIR, {
    options: {
      count: "10",
      size: "1514",
      iommu: "1",
      memA: String(4 * GIB + 0x100_0000),
      memB: String(4 * GIB + 0x200_0000),
      iovaA: String(4 * GIB + 0x100_0000),
      iovaB: String(4 * GIB + 0x200_0000),
    },
    timeoutMs: 60_000,
  });
  match(JSON.stringify(high), /"forward":10,"back":10/);
  equal((high as { events: number }).events, 0);
  // Low RAM seen by the NICs at IOVAs far above 4 GiB (and above the RAM).
  const remapped = await machine.runGuest(PAIR, {
    options: {
      count: "10",
      size: "1514",
      iommu: "1",
      memA: String(0x0400_0000),
      memB: String(0x0500_0000),
      iovaA: String(0x40_0000_0000),
      iovaB: String(0x7f_0000_0000),
    },
    timeoutMs: 60_000,
  });
  match(JSON.stringify(remapped), /"forward":10,"back":10/);
  const counters = machine.iommuCounters()!;
  ok(counters.devices.filter((d) => d.id.startsWith("nic")).every((d) => d.faults === 0));
});

Deno.test("two machines in one process exchange frames through a shared hub (ping-pong)", async () => {
  const hubid = String(nextHub++);
  const config = (mac: string): MachineConfig => ({
    devices: [{ type: "e1000", addr: "03.0", properties: { netdev: "net0", mac } }],
    netdevs: [{ type: "hub", id: "net0", properties: { hubid } }],
  });
  await using a = await Machine.create(config("52:54:00:00:00:0a"));
  await using b = await Machine.create(config("52:54:00:00:00:0b"));
  const [ping, pong] = await Promise.all([
    a.runGuest(PINGPONG, {
      options: { role: "ping", count: "10", peer: "52:54:00:00:00:0b" },
      timeoutMs: 60_000,
    }),
    b.runGuest(PINGPONG, { options: { role: "pong", count: "10" }, timeoutMs: 60_000 }),
  ]);
  deepEqual(ping, {
    mac: "52:54:00:00:00:0a",
    pongs: 10,
    resent: (ping as { resent: number }).resent,
  });
  deepEqual(pong, { mac: "52:54:00:00:00:0b", answered: 10 });
});

Deno.test("two machines with IOMMUs ping-pong; IOVAs above 4 GiB", async () => {
  const hubid = String(nextHub++);
  const config = (mac: string): MachineConfig => ({
    devices: [
      { type: "amd-iommu", addr: "01.0" },
      { type: "e1000", addr: "03.0", properties: { netdev: "net0", mac } },
    ],
    netdevs: [{ type: "hub", id: "net0", properties: { hubid } }],
  });
  await using a = await Machine.create(config("52:54:00:00:01:0a"));
  await using b = await Machine.create(config("52:54:00:00:01:0b"));
  const [ping, pong] = await Promise.all([
    a.runGuest(PINGPONG, {
      options: { role: "ping", count: "5", peer: "52:54:00:00:01:0b" },
      timeoutMs: 60_000,
    }),
    b.runGuest(PINGPONG, { options: { role: "pong", count: "5" }, timeoutMs: 60_000 }),
  ]);
  equal((ping as { pongs: number }).pongs, 5);
  equal((pong as { answered: number }).answered, 5);
});

/** Parses a classic pcap file: header fields and records. */
function parsePcap(
  bytes: Uint8Array,
): { magic: number; linktype: number; snaplen: number; frames: Uint8Array[] } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const frames: Uint8Array[] = [];
  let at = 24;
  while (at + 16 <= bytes.length) {
    const captured = v.getUint32(at + 8, true);
    const original = v.getUint32(at + 12, true);
    equal(captured, original);
    frames.push(bytes.slice(at + 16, at + 16 + captured));
    at += 16 + captured;
  }
  equal(at, bytes.length, "no trailing bytes");
  return {
    magic: v.getUint32(0, true),
    linktype: v.getUint32(20, true),
    snaplen: v.getUint32(16, true),
    frames,
  };
}

async function tsharkAvailable(): Promise<boolean> {
  try {
    const out = await new Deno.Command("tshark", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

Deno.test("filter-dump writes a pcap file that parses by hand and with tshark", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/h0.pcap`;
  try {
    const config = pairConfig({ hubid: nextHub++ });
    config.captures = [{ id: "f0", netdev: "h0", file }];
    {
      await using machine = await Machine.create(config);
      const r = await machine.runGuest(PAIR, {
        options: { count: "3", size: "100" },
        timeoutMs: 60_000,
      });
      match(JSON.stringify(r), /"forward":3,"back":3/);
    }
    const pcap = parsePcap(await Deno.readFile(file));
    equal(pcap.magic, PCAP_MAGIC);
    equal(pcap.linktype, LINKTYPE_ETHERNET);
    equal(pcap.snaplen, 65535);
    equal(pcap.frames.length, 6, "3 sent and 3 received by nic0");
    const macs = pcap.frames.map((f) =>
      [...f.subarray(6, 12)].map((b) => b.toString(16)).join(":")
    );
    deepEqual(macs, [
      "52:54:0:12:34:56",
      "52:54:0:12:34:57",
      "52:54:0:12:34:56",
      "52:54:0:12:34:57",
      "52:54:0:12:34:56",
      "52:54:0:12:34:57",
    ]);
    ok(pcap.frames.every((f) => f.length === 100));
    if (await tsharkAvailable()) {
      const out = await new Deno.Command("tshark", {
        args: [
          "-r",
          file,
          "-T",
          "fields",
          "-e",
          "eth.src",
          "-e",
          "eth.dst",
          "-e",
          "frame.len",
          "-e",
          "eth.type",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(out.success, true, new TextDecoder().decode(out.stderr));
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      deepEqual(lines, [
        "52:54:00:12:34:56\t52:54:00:12:34:57\t100\t0x88b5",
        "52:54:00:12:34:57\t52:54:00:12:34:56\t100\t0x88b5",
        "52:54:00:12:34:56\t52:54:00:12:34:57\t100\t0x88b5",
        "52:54:00:12:34:57\t52:54:00:12:34:56\t100\t0x88b5",
        "52:54:00:12:34:56\t52:54:00:12:34:57\t100\t0x88b5",
        "52:54:00:12:34:57\t52:54:00:12:34:56\t100\t0x88b5",
      ]);
    } else {
      console.log("tshark is not installed: the pcap was checked by the parser above only");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
