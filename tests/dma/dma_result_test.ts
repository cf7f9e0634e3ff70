import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { describeDmaFault, DMA_OK, dmaFault, type DmaFaultKind } from "../../src/dma/dma_result.ts";

Deno.test("DMA_OK is a frozen success value", () => {
  deepEqual(DMA_OK, { ok: true });
  ok(Object.isFrozen(DMA_OK));
  throws(() => {
    (DMA_OK as { ok: boolean }).ok = false;
  }, TypeError);
});

Deno.test("dmaFault builds a fault with every field", () => {
  deepEqual(dmaFault("permission", 0x1000, "write", 12), {
    ok: false,
    kind: "permission",
    address: 0x1000,
    access: "write",
    transferred: 12,
  });
});

Deno.test("describeDmaFault: one message per kind", () => {
  const cases: Array<[DmaFaultKind, string]> = [
    ["no-translation", "Cannot read IOVA 0x1000: no translation"],
    ["permission", "Cannot read IOVA 0x1000: permission denied"],
    ["outside-ram", "Cannot read IOVA 0x1000: outside RAM"],
    ["mmio-target", "Cannot read IOVA 0x1000: target is MMIO (master abort)"],
    ["bus-master-disabled", "Cannot read IOVA 0x1000: bus mastering disabled"],
  ];
  for (const [kind, message] of cases) {
    equal(describeDmaFault(dmaFault(kind, 0x1000, "read", 0)), message);
  }
  equal(
    describeDmaFault(dmaFault("outside-ram", 0x1_2345_6789, "write", 0)),
    "Cannot write IOVA 0x123456789: outside RAM",
  );
});
