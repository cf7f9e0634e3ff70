// The consumer's program (copied into a scratch project by consumer_test.ts):
// it knows dmaworks only by its package name, which the scratch project's
// deno.json maps to the package served over HTTP, as JSR serves it.
import { Machine } from "@dmaworks/dmaworks";

await using machine = await Machine.create({
  ramSize: 64 * 1024 * 1024,
  devices: [{ type: "amd-iommu", addr: "01.0" }, { type: "edu", addr: "04.0" }],
});
// A guest program of the consumer's own, run in an agent worker, using the
// package's guest drivers: edu DMA through an IOMMU mapping, then a fault.
const result = await machine.runGuest(new URL("./consumer_guest.ts", import.meta.url));
console.log(JSON.stringify(result));
