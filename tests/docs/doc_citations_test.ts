// The docs cite their proofs as `path/from/tests.ts: test name` (and `… name`
// for another test of the same file). Every citation must name a test file
// that exists and a test it contains, so the tables cannot drift from the tests.
import { deepEqual, ok } from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const DOCS = ["docs/bad_input.md", "docs/security.md"];

const norm = (s: string) => s.replace(/\s+/g, " ");

async function unresolved(doc: string): Promise<{ cited: number; missing: string[] }> {
  const text = norm(await Deno.readTextFile(new URL(doc, ROOT))).replaceAll("\\|", "|");
  const missing: string[] = [];
  let file: string | undefined;
  let cited = 0;
  for (const m of text.matchAll(/`(?:tests\/)?([a-z0-9_/]+_test\.ts): ([^`]+)`|`… ([^`]+)`/g)) {
    if (m[1] !== undefined) file = m[1];
    const name = m[2] ?? m[3]!;
    cited++;
    if (file === undefined) {
      missing.push(`… ${name} (no file before it)`);
      continue;
    }
    let source: string;
    try {
      source = norm(await Deno.readTextFile(new URL(`tests/${file}`, ROOT)));
    } catch {
      missing.push(`${file} (no such file)`);
      continue;
    }
    if (!source.includes(name)) missing.push(`${file}: ${name}`);
  }
  return { cited, missing };
}

for (const doc of DOCS) {
  Deno.test(`${doc}: every cited test exists`, async () => {
    const { cited, missing } = await unresolved(doc);
    ok(cited > 0, `${doc} cites no tests`);
    deepEqual(missing, []);
  });
}
