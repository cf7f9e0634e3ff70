// The README's workload example is tests/fixtures/readme_workload.ts, verbatim,
// and it runs from the command line as the README says.
import { equal, match, ok } from "node:assert/strict";
import { main } from "../../src/cli/main.ts";

Deno.test("README: the workload example is tests/fixtures/readme_workload.ts and runs", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const example = await Deno.readTextFile(
    new URL("../fixtures/readme_workload.ts", import.meta.url),
  );
  ok(readme.includes(example), "README.md shows tests/fixtures/readme_workload.ts verbatim");
  let out = "";
  let err = "";
  const code = await main([
    "-device",
    "amd-iommu",
    "-device",
    "edu",
    "-device",
    "edu",
    "--workload",
    `${new URL("../fixtures/readme_workload.ts", import.meta.url).pathname},rounds=3`,
  ], { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  equal(code, 0, err);
  match(out, /ok {3}edu 00:02\.0 copies: 3 of 3 copies of 4096 bytes, IOVA 0x8000000 -> 0x8001000/);
  match(out, /ok {3}edu 00:03\.0 copies: 3 of 3/);
  match(out, /copies_per_s: \d+/);
  match(out, /2 of 2 steps passed/);
});
