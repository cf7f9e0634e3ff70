// The IOMMU in a running machine: edu DMA through it from a guest program,
// the events it logs, the counters the Machine API reports, and the
// InvTimeOut path that stops a device worker that does not acknowledge.
import { deepEqual, equal, ok } from "node:assert/strict";
import { Machine } from "../../src/machine/machine.ts";

interface ProbeResult {
  read: { ok: boolean; faultCode: number };
  denied: { ok: boolean; faultCode: number; faultAddress: bigint };
  after: { ok: boolean; faultCode: number };
  events: Array<
    {
      name: string;
      deviceId: number;
      domainId: number;
      pr: boolean;
      pe: boolean;
      rw: boolean;
      address: number;
    }
  >;
  domain: number;
  rid: number;
}

Deno.test("edu DMA through the IOMMU: translated, denied by permissions, refused after unmap", async () => {
  await using machine = await Machine.create({
    devices: [{ type: "amd-iommu" }, { type: "edu", addr: "04.0" }],
  });
  const r = await machine.runGuest(
    new URL("../fixtures/edu_iommu_probe.ts", import.meta.url),
  ) as ProbeResult;
  equal(r.read.ok, true, "a read through a read-only mapping works");
  equal(r.denied.ok, false);
  equal(r.denied.faultCode, 3, "a write through a read-only mapping is a permission fault");
  equal(r.denied.faultAddress, 0x200_0000n);
  equal(r.after.ok, false);
  equal(r.after.faultCode, 2, "after unmap + flush the IOVA no longer translates");
  deepEqual(r.events, [
    {
      name: "IO_PAGE_FAULT",
      deviceId: 0x20,
      domainId: r.domain,
      pr: true,
      pe: true,
      rw: true,
      address: 0x200_0000,
    },
    {
      name: "IO_PAGE_FAULT",
      deviceId: 0x20,
      domainId: r.domain,
      pr: false,
      pe: false,
      rw: false,
      address: 0x200_0000,
    },
  ]);
  const counters = machine.iommuCounters();
  ok(counters);
  const edu = counters.devices.find((d) => d.id === "edu0")!;
  ok(edu.misses >= 1, "the first access missed");
  ok(edu.fills >= 1, "the miss filled the snapshot");
  ok(edu.invalidations >= 1, "the worker acknowledged invalidations");
  ok(edu.faults >= 2);
  ok(counters.iommu.commands > 0 && counters.iommu.events === 2);
});

Deno.test("a worker that does not acknowledge within InvTimeOut is stopped and the wait completes", async () => {
  const failures: string[] = [];
  await using machine = await Machine.create({
    devices: [{ type: "amd-iommu" }, { type: "edu", addr: "04.0" }],
  });
  machine.onEvent((e) => {
    if (e.type === "device-failed") failures.push(e.id);
  });
  const running = machine.runGuest(new URL("../fixtures/iommu_timeout_guest.ts", import.meta.url), {
    timeoutMs: 60_000,
  }) as Promise<
    {
      first: boolean;
      flushMs: number;
      events: Array<{ name: string; deviceId: number }>;
      ident: number;
      rid: number;
    }
  >;
  // Wait for the guest's signal, hang the device, then let the guest flush.
  // The stall outlasts every wait here: the flush can only complete through
  // the InvTimeOut path, which the IOTLB_INV_TIMEOUT event shows it took.
  let ended = false;
  running.then(() => (ended = true), () => (ended = true));
  while (machine.memory.atomicLoad64(0x3000) !== 1n && !ended) {
    await new Promise((r) => setTimeout(r, 2));
  }
  await machine.injectFault({ kind: "stall-device", device: "edu0", ms: 120_000 }); // it has begun
  machine.memory.atomicStore64(0x3000, 2n);
  const r = await running;
  equal(r.first, true);
  deepEqual(r.events.map((e) => [e.name, e.deviceId]), [["IOTLB_INV_TIMEOUT", r.rid]]);
  equal(r.ident, 0xffff_ffff, "the failed device reads all-ones (guest-visible)");
  deepEqual(failures, ["edu0"]);
  ok(machine.devices()[0]?.failure?.includes("did not acknowledge"));
});
