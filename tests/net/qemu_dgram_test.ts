// A dmaworks e1000 and a QEMU 7.2 e1000 exchange frames over `-netdev dgram`
// on 127.0.0.1 (random free ports): QEMU's NIC is driven over qtest (rings
// in its RAM, register writes), the dmaworks NIC from the main isolate with
// machine.read/write. Skipped when qemu-system-x86_64 is not installed.
//
// QEMU runs without -S: its e1000 refuses frames for one second of virtual
// time after every RCTL write (its flush_queue_timer), and under -S virtual
// time stands still. So SeaBIOS runs first (it assigns the BARs, which the
// test then reads instead of choosing its own) and the test resends towards
// QEMU until QEMU's receive descriptor shows DD.
import { deepEqual, equal, ok } from "node:assert/strict";
import { createSocket } from "node:dgram";
import { Machine } from "../../src/machine/machine.ts";
import { QtestClient } from "../../src/qtest/qtest_client.ts";
import { buildFrame, parseMac } from "../../src/net/ethernet.ts";

function which(command: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return `${dir}/${command}`;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

const QEMU = which("qemu-system-x86_64");
const QEMU_MAC = "52:54:00:00:00:99";
const OUR_MAC = "52:54:00:12:34:56";

/** Two UDP ports that were free a moment ago. */
async function freePorts(): Promise<[number, number]> {
  const sockets = [createSocket("udp4"), createSocket("udp4")];
  const ports: number[] = [];
  for (const s of sockets) {
    await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
    ports.push(s.address().port);
  }
  for (const s of sockets) await new Promise<void>((resolve) => s.close(() => resolve()));
  return [ports[0]!, ports[1]!];
}

function hex(bytes: Uint8Array): string {
  return `0x${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function unhex(reply: string): Uint8Array {
  const h = reply.replace(/^OK 0x/, "");
  return Uint8Array.from(
    { length: h.length / 2 },
    (_, i) => parseInt(h.slice(2 * i, 2 * i + 2), 16),
  );
}

/** The number in a qtest reply such as `OK 0x0080`. */
function value(reply: string): number {
  return Number(reply.slice(3));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test({
  name: "dgram interop: a dmaworks e1000 and a QEMU 7.2 e1000 exchange frames",
  ignore: QEMU === undefined,
  async fn() {
    const [ours, theirs] = await freePorts();
    const child = new Deno.Command(QEMU!, {
      args: [
        "-machine",
        "q35",
        "-display",
        "none",
        "-nodefaults",
        "-m",
        "128M",
        "-netdev",
        `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${theirs},remote.type=inet,remote.host=127.0.0.1,remote.port=${ours}`,
        "-device",
        `e1000,netdev=n0,addr=03.0,mac=${QEMU_MAC},romfile=`,
        "-qtest",
        "stdio",
        "-qtest-log",
        "/dev/null",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const qemu = new QtestClient({ readable: child.stdout, writable: child.stdin }, {
      timeoutMs: 30_000,
    });
    try {
      await using machine = await Machine.create({
        devices: [{ type: "e1000", addr: "03.0", properties: { netdev: "n0", mac: OUR_MAC } }],
        netdevs: [{
          type: "dgram",
          id: "n0",
          properties: {
            "local.type": "inet",
            "local.host": "127.0.0.1",
            "local.port": String(ours),
            "remote.type": "inet",
            "remote.host": "127.0.0.1",
            "remote.port": String(theirs),
          },
        }],
      });
      const q = async (line: string) => {
        const reply = await qemu.command(line);
        if (!reply.startsWith("OK")) throw new Error(`QEMU answered '${reply}' to '${line}'`);
        return reply;
      };
      // QEMU: wait for SeaBIOS to place BAR0, then enable bus mastering.
      let bar = 0;
      for (let i = 0; i < 2000 && (bar === 0 || bar === 0xfffe_0000); i++) {
        await q("outl 0xcf8 0x80001810");
        bar = (value(await q("inl 0xcfc")) & ~0xf) >>> 0;
        if (bar === 0) await sleep(5);
      }
      ok(bar !== 0, "SeaBIOS assigned the e1000's BAR0");
      await q("outl 0xcf8 0x80001804");
      await q("outw 0xcfc 0x0007");
      const qreg = (offset: number, value: number) =>
        q(`writel 0x${(bar + offset).toString(16)} 0x${value.toString(16)}`);
      // dmaworks: BAR0 at 0xfe000000, memory decoding and bus mastering.
      await machine.out(0xcf8, 4, 0x8000_1810);
      await machine.out(0xcfc, 4, 0xfe00_0000);
      await machine.out(0xcf8, 4, 0x8000_1804);
      await machine.out(0xcfc, 2, 0x0006);
      const reg = (offset: number, value: number) => machine.write(0xfe00_0000 + offset, 4, value);

      // ---- QEMU → dmaworks
      // dmaworks receive ring: 8 descriptors at 1 MiB, 2 KiB buffers at 2 MiB.
      for (let i = 0; i < 8; i++) {
        machine.memory.write64(0x10_0000 + i * 16, BigInt(0x20_0000 + i * 2048));
        machine.memory.write64(0x10_0000 + i * 16 + 8, 0n);
      }
      await reg(0x2800, 0x10_0000);
      await reg(0x2804, 0);
      await reg(0x2808, 128);
      await reg(0x2810, 0);
      await reg(0x2818, 7);
      await reg(0x0100, 0x0400_8002); // RCTL: EN, BAM, SECRC
      // QEMU transmit ring: descriptor at 16 MiB, buffer at 17 MiB.
      const toUs = buildFrame({
        dst: parseMac(OUR_MAC),
        src: parseMac(QEMU_MAC),
        payload: Uint8Array.from({ length: 100 }, (_, i) => i),
      });
      await q(`write 0x1100000 ${toUs.length} ${hex(toUs)}`);
      await q("writeq 0x1000000 0x1100000");
      await q(`writel 0x1000008 0x${(((0x01 | 0x02 | 0x08) << 24) | toUs.length).toString(16)}`);
      await q("writel 0x100000c 0");
      await qreg(0x3800, 0x100_0000);
      await qreg(0x3804, 0);
      await qreg(0x3808, 128);
      await qreg(0x3810, 0);
      await qreg(0x3818, 0);
      await qreg(0x0400, 0x0a); // TCTL: EN, PSP
      await qreg(0x3818, 1);
      for (let i = 0; i < 2000 && !(machine.memory.read8(0x10_0000 + 12) & 1); i++) await sleep(5);
      equal(machine.memory.read8(0x10_0000 + 12) & 3, 3, "DD and EOP at the dmaworks NIC");
      const length = machine.memory.read16(0x10_0000 + 8);
      equal(length, toUs.length);
      const got = new Uint8Array(length);
      machine.memory.read(0x20_0000, got);
      deepEqual(got, toUs);

      // ---- dmaworks → QEMU
      // QEMU receive ring: 8 descriptors at 18 MiB, buffers at 19 MiB.
      for (let i = 0; i < 8; i++) {
        await q(
          `writeq 0x${(0x120_0000 + i * 16).toString(16)} 0x${
            (0x130_0000 + i * 2048).toString(16)
          }`,
        );
        await q(`writeq 0x${(0x120_0000 + i * 16 + 8).toString(16)} 0`);
      }
      await qreg(0x2800, 0x120_0000);
      await qreg(0x2804, 0);
      await qreg(0x2808, 128);
      await qreg(0x2810, 0);
      await qreg(0x2818, 7);
      await qreg(0x0100, 0x0400_8002);
      // dmaworks transmit ring at 4 MiB, buffer at 5 MiB; the frame is resent
      // until QEMU takes it (see the note at the top).
      const toQemu = buildFrame({
        dst: parseMac(QEMU_MAC),
        src: parseMac(OUR_MAC),
        payload: Uint8Array.from({ length: 1500 }, (_, i) => (i * 7) & 0xff),
      });
      machine.memory.write(0x50_0000, toQemu);
      for (let i = 0; i < 8; i++) {
        machine.memory.write64(0x40_0000 + i * 16, 0x50_0000n);
        machine.memory.write32(
          0x40_0000 + i * 16 + 8,
          (((0x01 | 0x02 | 0x08) << 24) | toQemu.length) >>> 0,
        );
        machine.memory.write32(0x40_0000 + i * 16 + 12, 0);
      }
      await reg(0x3800, 0x40_0000);
      await reg(0x3804, 0);
      await reg(0x3808, 128);
      await reg(0x3810, 0);
      await reg(0x3818, 0);
      await reg(0x0400, 0x0a);
      let tail = 0;
      let status = 0;
      for (let i = 0; i < 100 && !(status & 1); i++) {
        tail = (tail + 1) % 8;
        await reg(0x3818, tail);
        for (let j = 0; j < 20 && !(status & 1); j++) {
          await sleep(10);
          status = value(await q("readb 0x120000c"));
        }
      }
      equal(status & 3, 3, "DD and EOP at the QEMU NIC");
      const qlen = value(await q("readw 0x1200008"));
      equal(qlen, toQemu.length);
      deepEqual(unhex(await q(`read 0x1300000 ${qlen}`)), toQemu);
      const dgram = machine.netdevs[0] as unknown as { counters: { errors: number } };
      equal(dgram.counters.errors, 0);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nQEMU said: ${await stopQemu()}`);
    } finally {
      await stopQemu();
    }
    async function stopQemu(): Promise<string> {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await qemu.close();
      await child.status;
      return await stderr;
    }
  },
});
