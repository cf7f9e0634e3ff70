// The IDE controller in running machines: its device worker, guest programs
// using the guest IDE driver with and without the IOMMU, raw image files
// (durability across a reopen, read-only images, narrowed worker
// permissions, missing images), both channels at once, IOMMU faults with
// their event-log entries, and an unmap racing a long transfer.
import { deepEqual, equal, ok } from "node:assert/strict";
import { Machine, type MachineConfig } from "../../src/machine/machine.ts";
import { pattern } from "./ide_scenarios.ts";
import { ideMachine, tempImage } from "./qtest_harness.ts";

const TOUR = new URL("../fixtures/ide_tour_guest.ts", import.meta.url);
const IOMMU_GUEST = new URL("../fixtures/ide_iommu_guest.ts", import.meta.url);
const MIB = 1 << 20;

function memoryDiskMachine(options: { iommu: boolean; secondary?: boolean }): MachineConfig {
  return {
    devices: [
      ...(options.iommu ? [{ type: "amd-iommu", addr: "01.0" }] : []),
      { type: "piix3-ide", id: "ide", addr: "02.0" },
      { type: "ide-hd", properties: { drive: "d0", bus: "ide.0", serial: "PRIMARY" } },
      ...(options.secondary
        ? [{ type: "ide-hd", properties: { drive: "d1", bus: "ide.1", model: "SECOND DISK" } }]
        : []),
    ],
    drives: [
      { id: "d0", size: 64 * MIB },
      ...(options.secondary ? [{ id: "d1", size: 32 * MIB }] : []),
    ],
  };
}

interface Tour {
  identify?: {
    model: string;
    serial: string;
    sectors: number;
    lba48: boolean;
    udmaSelected?: number;
  };
  pio?: boolean;
  dma?: boolean;
  flush?: boolean;
  idnf?: { status: number; error: number; description: string };
  "write-pattern"?: unknown;
  "check-pattern"?: unknown;
  bar4: number;
}

for (const iommu of [false, true]) {
  Deno.test(`guest IDE driver${iommu ? " through the IOMMU" : ""}: IDENTIFY, PIO, DMA of 3 MiB, flush, IDNF`, async () => {
    await using machine = await Machine.create(memoryDiskMachine({ iommu }));
    const r = await machine.runGuest(TOUR, {
      options: { iommu: iommu ? "on" : "off", steps: "identify+pio+dma+flush+idnf" },
    }) as Tour;
    equal(r.identify?.model, "QEMU HARDDISK");
    equal(r.identify?.serial, "PRIMARY");
    equal(r.identify?.sectors, 131072);
    equal(r.identify?.lba48, true);
    equal(r.identify?.udmaSelected, 5);
    equal(r.pio, true);
    equal(r.dma, true);
    equal(r.flush, true);
    equal(r.idnf?.error, 0x10);
    equal(
      r.idnf?.description,
      "status 0x41 (DRDY ERR), error 0x10 (IDNF), BMIS 0x05 (ACTIVE INTERRUPT)",
    );
    if (iommu) {
      const ide = machine.iommuCounters()!.devices.find((d) => d.id === "ide")!;
      ok(ide.misses > 0 && ide.hits > 0, "the transfers were translated");
    }
  });
}

Deno.test("through the IOMMU: 2048 scattered pages in one command, faults in the event log", async () => {
  await using machine = await Machine.create(memoryDiskMachine({ iommu: true }));
  const logs: string[] = [];
  machine.onEvent((e) => e.type === "log" && logs.push(e.message));
  const r = await machine.runGuest(IOMMU_GUEST, { options: { steps: "scatter+faults" } }) as {
    rid: number;
    scatter: { pages: number; read: string; same: boolean; write: string; back: boolean };
    faults: {
      table: { ok: boolean; status: number; error: number; bmStatus: number; events: unknown[] };
      buffer: { ok: boolean; status: number; error: number; bmStatus: number; events: unknown[] };
      after: number;
    };
  };
  deepEqual(r.scatter, { pages: 2048, read: "", same: true, write: "", back: true });
  for (
    const [what, address, write] of [["table", 0x7000_0000, false], [
      "buffer",
      0x7100_0000,
      true,
    ]] as const
  ) {
    const f = r.faults[what];
    equal(f.ok, false);
    equal(f.status, 0x41);
    equal(f.error, 0x04);
    equal(f.bmStatus, 0x06, `${what}: BMIS Error and Interrupt`);
    deepEqual(f.events, [{ name: "IO_PAGE_FAULT", deviceId: r.rid, address, write }]);
  }
  equal(r.faults.after, 4096);
  ok(logs.some((l) => /PRD table fault: Cannot read IOVA 0x70000000: no translation/.test(l)));
});

Deno.test("an unmap racing a long transfer: after its COMPLETION_WAIT the device never writes the frames", async () => {
  await using image = await tempImage(64 * MIB);
  const m = ideMachine([{ file: image.path, bus: 0 }], { iommu: true });
  await using machine = await Machine.create(m.config);
  const r = await machine.runGuest(IOMMU_GUEST, { options: { steps: "unmap-race" } }) as {
    "unmap-race": { ok: boolean; bmStatus: number; error: number; intact: boolean };
  };
  const race = r["unmap-race"];
  equal(race.intact, true);
  // Either the transfer ended before the unmap, or it hit the unmapped IOVA.
  ok(race.ok || (race.bmStatus & 0x02 && race.error === 0x04), JSON.stringify(race));
});

Deno.test("an image file: data written and flushed survives a reopen in a new machine", async () => {
  await using image = await tempImage(8 * MIB);
  const m = ideMachine([{ file: image.path, bus: 0 }], { iommu: true });
  {
    await using machine = await Machine.create(m.config);
    const r = await machine.runGuest(TOUR, {
      options: { iommu: "on", steps: "write-pattern", lba: "1000" },
    }) as Tour;
    equal(r["write-pattern"], true);
  }
  const bytes = await Deno.readFile(image.path);
  deepEqual(bytes.subarray(1000 * 512, 1000 * 512 + 65536), pattern(64 * 1024, 99));
  {
    await using machine = await Machine.create(m.config);
    const r = await machine.runGuest(TOUR, {
      options: { iommu: "on", steps: "check-pattern", lba: "1000" },
    }) as Tour;
    equal(r["check-pattern"], true);
  }
});

Deno.test("narrowed worker permissions: a writable image works, a read-only one refuses writes", async () => {
  await using rw = await tempImage(4 * MIB);
  await using ro = await tempImage(pattern(4 * MIB, 5));
  const m = ideMachine([{ file: rw.path, bus: 0 }, { file: ro.path, bus: 1, readonly: true }]);
  {
    await using machine = await Machine.create({ ...m.config, narrowWorkerPermissions: true });
    const a = await machine.runGuest(TOUR, {
      options: { steps: "write-pattern", lba: "8" },
    }) as Tour;
    equal(a["write-pattern"], true);
    const b = await machine.runGuest(TOUR, {
      options: {
        bm: String(a.bar4),
        channel: "1",
        steps: "identify+write-pattern+check-pattern",
        lba: "8",
      },
    }) as Tour & { "write-pattern": { result: { error: number; status: number } } };
    equal(b.identify?.sectors, 8192);
    equal(b["write-pattern"].result.status, 0x41);
    equal(b["write-pattern"].result.error, 0x04);
    equal(b["check-pattern"], false, "the read-only disk still holds its own data");
  }
  deepEqual((await Deno.readFile(rw.path)).subarray(8 * 512, 8 * 512 + 65536), pattern(65536, 99));
  deepEqual(await Deno.readFile(ro.path), pattern(4 * MIB, 5));
});

Deno.test("an image that cannot be opened: the drive aborts its commands and the log says why", async () => {
  const missing = `${await Deno.makeTempDir()}/missing.img`;
  const m = ideMachine([{ file: missing, bus: 0 }]);
  await using machine = await Machine.create(m.config);
  const logs: string[] = [];
  machine.onEvent((e) => e.type === "log" && logs.push(e.message));
  const r = await machine.runGuest(TOUR, { options: { steps: "identify" } }) as {
    identify: { result: { status: number; error: number } };
  };
  equal(r.identify.result.status, 0x41);
  equal(r.identify.result.error, 0x04);
  ok(logs.some((l) => l.includes(`Cannot open disk image '${missing}'`)), logs.join("\n"));
  await Deno.remove(missing.slice(0, missing.lastIndexOf("/")), { recursive: true });
});

Deno.test("both channels run DMA at the same time, from two vCPUs", async () => {
  await using machine = await Machine.create(memoryDiskMachine({ iommu: false, secondary: true }));
  const setup = await machine.runGuest(TOUR, { options: { steps: "identify" } }) as Tour;
  const [a, b] = await Promise.all([0, 1].map((channel) =>
    machine.runGuest(TOUR, {
      options: { bm: String(setup.bar4), channel: String(channel), steps: "identify+dma+pio" },
    }) as Promise<Tour>
  ));
  deepEqual([a!.identify?.model, a!.dma, a!.pio], ["QEMU HARDDISK", true, true]);
  deepEqual([b!.identify?.model, b!.dma, b!.pio], ["SECOND DISK", true, true]);
});
