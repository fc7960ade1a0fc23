/*
 * tok822.test - the address parser: golden parse trees, properties, hostile input
 *
 * DESCRIPTION
 *   testdata/tok822/parse.in holds address lists; the output shows the
 *   parse tree, the list written back in external form, and the internal
 *   form of each address. fast-check properties: the parser never throws
 *   and its output is stable (external form parsed and written again is
 *   the same); quoting round-trips (unquote822Local(quote822Local(a)) is
 *   a, and the quoted form scans back to a); hostile inputs of 100,000
 *   characters are parsed in bounded time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { goldenTests } from "../testing/golden.js";
import { quote822Local, unquote822Local } from "./quote-822-local.js";
import {
  tok822Externalize,
  tok822Grep,
  tok822Internalize,
  tok822Parse,
  tok822Scan,
  type Tok,
} from "./tok822.js";

/** One line per token, nested for address nodes. */
function dump(toks: readonly Tok[], indent: string): string {
  let out = "";
  for (const t of toks) {
    if (t.type === "addr") out += `${indent}address\n${dump(t.toks, `${indent}  `)}`;
    else if (t.type === "group") out += `${indent}group ":"\n`;
    else out += `${indent}${t.type} ${JSON.stringify(t.text)}\n`;
  }
  return out;
}

goldenTests(import.meta.url, "testdata/tok822", (input) => {
  let out = "";
  for (const line of input.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const tree = tok822Parse(line);
    out += `> ${line}\n${dump(tree, "  ")}`;
    out += `  external: ${JSON.stringify(tok822Externalize(tree))}\n`;
    out += `  addresses: ${JSON.stringify(tok822Grep(tree).map((a) => tok822Internalize(a.toks)))}\n`;
  }
  return out;
});

const LIMITS = { numRuns: 2000, interruptAfterTimeLimit: 4000 };
const specials = fc.constantFrom(...'()<>@,;:\\".[]%!| \tx\r\n'.split(""), "ü", "a", "b");
const hostile = fc.array(specials, { maxLength: 200 }).map((a) => a.join(""));

test("the parser never throws and its external form is stable", () => {
  fc.assert(
    fc.property(
      fc.oneof(hostile, fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 100 })),
      (s) => {
        const once = tok822Externalize(tok822Parse(s));
        const twice = tok822Externalize(tok822Parse(once));
        assert.equal(twice, once);
        tok822Externalize(tok822Parse(s), { line: true, trunc: true });
      },
    ),
    LIMITS,
  );
});

const local = fc
  .array(fc.oneof(specials, fc.constantFrom("a", "b", ".", "'", "+")), { maxLength: 30 })
  .map((a) => a.join(""));
const domain = fc.constantFrom("example.com", "a.b.c", "[192.0.2.1]", "host");

test("quoting round-trips: internal -> external -> internal", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      assert.equal(unquote822Local(quote822Local(s)), s);
    }),
    LIMITS,
  );
  fc.assert(
    fc.property(
      local.filter((l) => !/[\r\n\t]/.test(l) && !l.startsWith("@")),
      domain,
      (l, d) => {
        const addr = `${l}@${d}`;
        const ext = quote822Local(addr);
        assert.equal(unquote822Local(ext), addr);
        assert.equal(tok822Internalize(tok822Scan(ext)), addr, `scanned back from ${ext}`);
      },
    ),
    LIMITS,
  );
});

test("hostile input of 100,000 characters is parsed in bounded time", () => {
  const n = 100_000;
  for (const s of [
    "<".repeat(n),
    ">".repeat(n),
    "(".repeat(n),
    '"'.repeat(n),
    "\\".repeat(n),
    "a ".repeat(n / 2),
    "<a>".repeat(n / 3),
    ":".repeat(n - 1) + ";",
    "a:".repeat(n / 2) + ";",
    "<" + "@a,".repeat(n / 3),
    "x@".repeat(n / 2),
  ]) {
    const start = process.hrtime.bigint();
    const tree = tok822Parse(s);
    tok822Externalize(tree, { line: true, trunc: true });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(ms < 2000, `${JSON.stringify(s.slice(0, 10))}... took ${ms} ms`);
  }
  assert.equal(tok822Scan("a b c d e f", 3).length, 3, "the token limit stops the scan");
});

test("quote822Local quotes what is not a dot-atom", () => {
  assert.equal(quote822Local("john doe@example.com"), '"john doe"@example.com');
  assert.equal(quote822Local("john.doe@example.com"), "john.doe@example.com");
  assert.equal(quote822Local("a..b@example.com"), '"a..b"@example.com');
  assert.equal(quote822Local(""), '""');
  assert.equal(quote822Local("@a,@b:x y@c"), '@a,@b:"x y"@c');
  assert.equal(unquote822Local('"x y"@c'), "x y@c");
});
