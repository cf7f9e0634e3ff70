// FaultyDisk on its own (each fault, checked against the wrapped disk), the
// validation of DiskFaults, and `faults` in a machine's configuration and in
// a machine description (JSON).
import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { DiskFaultsError, FaultyDisk, validateDiskFaults } from "../../src/storage/faulty_disk.ts";
import { MemoryDisk } from "../../src/storage/memory_disk.ts";
import { Machine } from "../../src/machine/machine.ts";
import { MachineFileError, parseMachineFile } from "../../src/machine/machine_file.ts";

const KIB = 1024;

Deno.test("spaceBytes: fresh sectors use space, rewrites do not, a failed write writes nothing", async () => {
  const inner = new MemoryDisk(64 * KIB);
  const disk = new FaultyDisk(inner, { spaceBytes: 2 * KIB });
  await disk.write(0, new Uint8Array(KIB).fill(1));
  await disk.write(512, new Uint8Array(512).fill(2)); // already written: free
  await disk.write(8 * KIB, new Uint8Array(KIB).fill(3)); // the last 1 KiB
  await rejects(disk.write(16 * KIB, new Uint8Array(512).fill(4)), (e: Error) => {
    equal((e as Error & { code?: string }).code, "ENOSPC");
    return /No space left on device/.test(e.message);
  });
  const back = new Uint8Array(512);
  await inner.read(16 * KIB, back);
  deepEqual(back, new Uint8Array(512), "nothing was written");
  await disk.write(0, new Uint8Array(KIB)); // rewriting needs no space, even on a full disk
  await rejects(disk.write(0, new Uint8Array(2 * KIB)), /1024 bytes needed, 0 free/);
  deepEqual(disk.counters, { failed: 2, succeeded: 4 });
  await disk.close();
});

Deno.test("spaceBytes: concurrent writes cannot both take the last space", async () => {
  const disk = new FaultyDisk(new MemoryDisk(64 * KIB), { spaceBytes: 512, latencyMs: 1 });
  const results = await Promise.allSettled([
    disk.write(0, new Uint8Array(512)),
    disk.write(4 * KIB, new Uint8Array(512)),
  ]);
  deepEqual(results.map((r) => r.status), ["fulfilled", "rejected"]);
  await disk.close();
});

Deno.test("bad sectors fail only the operations that touch them, and only in their direction", async () => {
  const disk = new FaultyDisk(new MemoryDisk(64 * KIB), {
    badReadSectors: [10],
    badWriteSectors: [20, 21],
  });
  await disk.read(0, new Uint8Array(10 * 512)); // sectors 0..9
  await rejects(disk.read(9 * 512, new Uint8Array(1024)), /Input\/output error.*bad sector 10/);
  await rejects(disk.read(10 * 512 + 100, new Uint8Array(1)), /bad sector 10/);
  await disk.write(10 * 512, new Uint8Array(512)); // a bad read sector writes fine
  await disk.read(20 * 512, new Uint8Array(1024)); // bad write sectors read fine
  await rejects(disk.write(19 * 512, new Uint8Array(4 * 512)), /bad sector 20/);
  deepEqual(disk.counters, { failed: 3, succeeded: 3 });
  await disk.close();
});

Deno.test("failFlush and dieAfterOperations", async () => {
  const flaky = new FaultyDisk(new MemoryDisk(4 * KIB), { failFlush: true });
  await flaky.write(0, new Uint8Array(512));
  await rejects(flaky.flush(), (e: Error) => (e as Error & { code?: string }).code === "EIO");
  await flaky.close();
  const dying = new FaultyDisk(new MemoryDisk(4 * KIB), { dieAfterOperations: 2 });
  await dying.write(0, new Uint8Array(512));
  await dying.flush();
  await rejects(dying.read(0, new Uint8Array(512)), /the disk died/);
  await rejects(dying.write(0, new Uint8Array(512)), /the disk died/);
  await rejects(dying.flush(), /the disk died/);
  deepEqual(dying.counters, { failed: 3, succeeded: 2 });
  await dying.close();
});

Deno.test("latencyMs delays operations and keeps their order", async () => {
  const disk = new FaultyDisk(new MemoryDisk(4 * KIB), { latencyMs: 5 });
  const order: string[] = [];
  await Promise.all([
    disk.write(0, new Uint8Array([7])).then(() => order.push("write")),
    disk.flush().then(() => order.push("flush")),
  ]);
  const out = new Uint8Array(1);
  await disk.read(0, out);
  deepEqual(order, ["write", "flush"]);
  equal(out[0], 7);
  await disk.close();
});

Deno.test("validateDiskFaults accepts every field and rejects what is not a fault", () => {
  const all = {
    spaceBytes: 0,
    badReadSectors: [0, 5],
    badWriteSectors: [],
    failFlush: false,
    dieAfterOperations: 3,
    latencyMs: 2.5,
  };
  deepEqual(validateDiskFaults(all), all);
  deepEqual(validateDiskFaults({}), {});
  const cases: Array<[unknown, string, RegExp]> = [
    [null, "", /expected an object/],
    [[1], "", /expected an object/],
    [{ badSectors: [1] }, "badSectors", /unknown field \(known: spaceBytes, /],
    [{ spaceBytes: -1 }, "spaceBytes", /non-negative integer, got -1/],
    [{ spaceBytes: "1M" }, "spaceBytes", /non-negative integer, got "1M"/],
    [{ badReadSectors: 4 }, "badReadSectors", /array of sector numbers/],
    [{ badWriteSectors: [1, 2.5] }, "badWriteSectors[1]", /non-negative integer/],
    [{ failFlush: 1 }, "failFlush", /true or false/],
    [{ dieAfterOperations: NaN }, "dieAfterOperations", /non-negative integer/],
    [{ latencyMs: -1 }, "latencyMs", /from 0 to 3600000/],
    [{ latencyMs: Infinity }, "latencyMs", /from 0 to 3600000/],
  ];
  for (const [value, field, problem] of cases) {
    throws(() => validateDiskFaults(value), (e: unknown) => {
      equal((e as DiskFaultsError).field, field, JSON.stringify(value));
      return e instanceof DiskFaultsError && problem.test(e.problem) &&
        e.message.startsWith(
          field === "" ? "Invalid disk faults: " : `Invalid disk faults field "${field}": `,
        );
    });
  }
  throws(() => new FaultyDisk(new MemoryDisk(512), { latencyMs: -5 }), DiskFaultsError);
});

Deno.test("Machine.create refuses invalid faults with the drive's name", async () => {
  await rejects(
    Machine.create({
      devices: [
        { type: "piix3-ide", addr: "02.0" },
        { type: "ide-hd", properties: { drive: "d0" } },
      ],
      drives: [{ id: "d0", size: 1 << 20, faults: { spaceBytes: -1 } }],
    }),
    {
      message:
        `Drive 'd0': Invalid disk faults field "spaceBytes": expected a non-negative integer, got -1`,
    },
  );
});

Deno.test("a machine description takes drives[].faults, with sizes for spaceBytes, and names bad fields", () => {
  const description = (faults: unknown) => ({
    devices: [
      { type: "piix3-ide", id: "ide", addr: "02.0" },
      { type: "ide-hd", properties: { drive: "d0", bus: "ide.0" } },
    ],
    drives: [{ id: "d0", size: "4M", faults }],
  });
  const parsed = parseMachineFile(description({ spaceBytes: "1M", badReadSectors: [9] }));
  deepEqual(parsed.config.drives?.[0]?.faults, { spaceBytes: 1 << 20, badReadSectors: [9] });
  const cases: Array<[unknown, string]> = [
    ["slow", "drives[0].faults"],
    [{ spaceBytes: "lots" }, "drives[0].faults.spaceBytes"],
    [{ latencyMs: "5" }, "drives[0].faults.latencyMs"],
    [{ badWriteSectors: [1, -1] }, "drives[0].faults.badWriteSectors[1]"],
    [{ failflush: true }, "drives[0].faults.failflush"],
  ];
  for (const [faults, field] of cases) {
    throws(
      () => parseMachineFile(description(faults)),
      (e: unknown) => e instanceof MachineFileError && e.field === field,
      field,
    );
  }
});
