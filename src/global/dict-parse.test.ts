/*
 * dict-parse.test - logical lines, source lines and brace syntax
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  braceTokens,
  fdPhysicalLines,
  inlineRules,
  logicalLines,
  parseSourceLine,
  splitNameValue,
  stripBraces,
  textPhysicalLines,
} from "./dict-parse.js";
import { tempDir } from "./dict-testkit.js";

/** The logical lines of a text as "line:text" strings, and the warnings. */
function lines(text: string, maxLine?: number): { out: string[]; warnings: string[] } {
  const warnings: string[] = [];
  const out = [...logicalLines(textPhysicalLines(text), "f", (w) => warnings.push(w), maxLine)].map(
    (l) => `${l.line}:${l.text}`,
  );
  return { out, warnings };
}

test("logical lines: comments, blank lines and continuation as in Postfix", () => {
  const cases: [string, string[]][] = [
    [" #x\nfghij\n", ["2:fghij"]],
    ["#abc\ndef", ["2:def"]],
    ["\nabc\n", ["2:abc"]],
    [" \nabc\n", ["2:abc"]],
    ["abc def", ["1:abc def"]],
    ["#abc def", []],
    ["abc\n def\n", ["1:abc def"]],
    ["abc\n #def\n ghi", ["1:abc ghi"]],
    ["abc\n#def\n ghi", ["1:abc ghi"]],
    ["abc\n \n ghi", ["1:abc ghi"]],
    ["abc\n\n ghi", ["1:abc ghi"]],
    ["abc\n #def\n", ["1:abc"]],
    ["\n", []],
    ["\n \n", []],
    ["abc\n ", ["1:abc"]],
    ["a\nb\n\tc\nd", ["1:a", "2:b\tc", "4:d"]],
    ["k v # not a comment\n", ["1:k v # not a comment"]],
    ["crlf value\r\n", ["1:crlf value\r"]],
  ];
  for (const [input, want] of cases) {
    const { out, warnings } = lines(input);
    assert.deepEqual(out, want, JSON.stringify(input));
    assert.deepEqual(warnings, [], JSON.stringify(input));
  }
});

test("logical lines: text that continues nothing, and over-long lines, are reported and skipped", () => {
  const r = lines(" abcde\n more\nfghij\n");
  assert.deepEqual(r.out, ["3:fghij"]);
  assert.match(r.warnings[0] ?? "", /^f, line 1: text continues no logical line/);
  const long = lines(`short 1\n${"x".repeat(50)} 2\n more\nafter 3\n`, 40);
  assert.deepEqual(long.out, ["1:short 1", "4:after 3"]);
  assert.match(long.warnings[0] ?? "", /line 2: line is longer than 40 characters/);
});

test("physical lines from a file descriptor, across chunk boundaries", () => {
  const dir = tempDir();
  const file = join(dir, "big");
  const want = Array.from({ length: 30000 }, (_v, i) => `key${i} ${"é".repeat(i % 7)}value${i}`);
  writeFileSync(file, want.join("\n") + "\n");
  const fd = openSync(file, "r");
  try {
    assert.deepEqual([...fdPhysicalLines(fd)], want);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true });
  }
});

test("source lines: key ends at the first unquoted blank, value is trimmed", () => {
  assert.deepEqual(parseSourceLine("key   value  with  spaces  "), {
    key: "key",
    value: "value  with  spaces",
  });
  assert.deepEqual(parseSourceLine('"a b"@example.com  x'), { key: '"a b"@example.com', value: "x" });
  assert.deepEqual(parseSourceLine("a\\ b  x"), { key: "a\\ b", value: "x" });
  assert.ok("error" in parseSourceLine("lonely"));
  assert.ok("error" in parseSourceLine('"open  x'));
});

test("brace syntax", () => {
  assert.deepEqual(braceTokens("a, b {c, d} ,e{f g}"), ["a", "b", "{c, d}", "e{f g}"]);
  assert.deepEqual(stripBraces("{  x y  }"), { text: "x y" });
  assert.deepEqual(stripBraces("{ x }", false), { text: " x " });
  assert.ok("error" in stripBraces("{ x"));
  assert.ok("error" in stripBraces("{ x } y"));
  assert.ok("error" in stripBraces("x"));
  assert.deepEqual(splitNameValue(" k = v w "), { name: "k", value: "v w" });
  assert.deepEqual(splitNameValue('"k = x"=v'), { name: '"k = x"', value: "v" });
  assert.deepEqual(splitNameValue("k="), { name: "k", value: "" });
  assert.ok("error" in splitNameValue("k v"));
  assert.deepEqual(inlineRules("{ {/a/ b}, { /c/ d } }"), { lines: ["/a/ b", "/c/ d"] });
  assert.ok("error" in inlineRules("{ /a/ b }"));
});
