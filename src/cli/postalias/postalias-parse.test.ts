/*
 * postalias-parse.test - golden tests for the aliases(5) reader
 *
 * DESCRIPTION
 *   testdata/aliases: an alias file in; out, in order, one line per
 *   warning ("warning: aliases, line N: ...") and per entry
 *   ("LINE: name -> value"), as postalias would store them before case
 *   folding.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { goldenTests } from "../../testing/golden.js";
import { textPhysicalLines } from "../../global/dict-parse.js";
import { aliasEntries, aliasTokens, externalize, parseAliasLine } from "./postalias-parse.js";

goldenTests(import.meta.url, "testdata/aliases", (input) => {
  const out: string[] = [];
  const warn = (text: string): void => void out.push(`warning: ${text}`);
  for (const e of aliasEntries(textPhysicalLines(input), "aliases", warn))
    out.push(`${e.line ?? 0}: ${e.key} -> ${e.value}`);
  return out.join("\n") + "\n";
});

test("tokens round-trip through externalize", () => {
  for (const text of ['"a b"@example.com', "a, b, c", ":include:/etc/x", "Joe <j@x>", "(c) a"])
    assert.equal(externalize(aliasTokens(text)), text);
});

test("a line of only white space holds no entry; a comment alone is not a pair", () => {
  assert.equal(parseAliasLine("   "), null);
  assert.deepEqual(parseAliasLine("(just a comment)"), { ok: false, error: "need name:value pair" });
});
