/*
 * dict-regexp.test - regexp:/pcre: tables: hostile keys, translation, flags
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { dictCloseAll, DictFlag, dictOpen, found, NOT_FOUND } from "./dict.js";
import { pcreToRe2 } from "./dict-re-pcre.js";
import { posixToRe2 } from "./dict-re-posix.js";
import { parseResult } from "./dict-regexp.js";
import { captureLog } from "./dict-testkit.js";

const log = captureLog();

const CATASTROPHIC = [
  "/^(a+)+$/ evil-1",
  "/^(a|a)*$/ evil-2",
  "/^(a|aa)+$/ evil-3",
  "/(x+x+)+y/ evil-4",
  "/^([a-z0-9]+[.-]?)+@example\\.com$/ evil-5",
];

test("hostile keys against classically catastrophic patterns complete quickly", async () => {
  const rx = dictOpen(`regexp:{ ${CATASTROPHIC.map((r) => `{${r}}`).join(", ")} }`);
  const pc = dictOpen(
    `pcre:{ ${[...CATASTROPHIC, "/^(\\w+\\s?)*$/ evil-6"].map((r) => `{${r}}`).join(", ")} }`,
  );
  let slowest = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom("a", "x", "ab", "a.", "w "),
      fc.integer({ min: 1, max: 20000 }),
      fc.string({ maxLength: 3 }),
      async (unit, count, tail) => {
        const key = unit.repeat(count) + tail;
        for (const d of [rx, pc]) {
          const t0 = performance.now();
          const r = await d.lookup(key);
          slowest = Math.max(slowest, performance.now() - t0);
          assert.notEqual(r.status, "tempfail");
        }
      },
    ),
    { numRuns: 40 },
  );
  assert.ok(slowest < 1000, `slowest lookup took ${slowest.toFixed(1)} ms`);
  assert.deepEqual(await rx.lookup("a".repeat(30)), found("evil-1"));
  assert.deepEqual(await rx.lookup("a".repeat(30) + "!"), NOT_FOUND);
  dictCloseAll();
});

test("POSIX patterns are rewritten into RE2 syntax", () => {
  const cases: [string, boolean, string][] = [
    ["^a\\.b$", true, "^a\\.b$"],
    ["[]a-c]", true, "[\\]a-c]"],
    ["[^]x]", true, "[^\\]x]"],
    ["[\\]", true, "[\\\\]"],
    ["[[:digit:]-]", true, "[[:digit:]\\-]"],
    ["[[.-.]a]", true, "[\\-a]"],
    ["a{2,3}b{,2}c{", true, "a{2,3}b{0,2}c\\{"],
    ["\\d\\n\\w\\<x\\>", true, "dn\\w\\bx\\b"],
    ["\\`x\\'", true, "\\Ax\\z"],
    ["a+?|b", true, "a+?|b"],
    ["\\(a\\)\\{2\\}*+?|", false, "(a){2}*\\+\\?\\|"],
    ["*a^b$c$", false, "\\*a\\^b\\$c$"],
    ["^\\(x\\|y\\)$", false, "^(x|y)$"],
  ];
  for (const [pattern, extended, want] of cases) {
    assert.deepEqual(
      posixToRe2(pattern, extended),
      { source: want },
      `${pattern} (${extended ? "ERE" : "BRE"})`,
    );
  }
  for (const bad of ["(a)\\1", "[a", "x\\", "[[:nope:]]", "[[.ch.]]", "(?:x)", "[z-a]"]) {
    assert.ok("error" in posixToRe2(bad, true), bad);
  }
});

test("PCRE patterns: what needs backtracking is refused with a reason", () => {
  const refused: [string, RegExp][] = [
    ["(?=x)", /lookahead/],
    ["(?!x)", /lookahead/],
    ["(?<=x)y", /lookbehind/],
    ["(?<!x)y", /lookbehind/],
    ["(?>x)", /atomic/],
    ["a++", /possessive/],
    ["a{2}+", /possessive/],
    ["(a)\\1", /back-reference/],
    ["(?<n>a)\\k<n>", /back-reference/],
    ["(?P=n)", /back-reference/],
    ["(?R)", /recursion/],
    ["(?(1)a|b)", /conditional/],
    ["(*SKIP)", /verbs/],
    ["\\Gx", /\\G/],
  ];
  for (const [p, why] of refused) {
    const t = pcreToRe2(p, { extended: false, dollarEndOnly: false, multiline: false });
    assert.ok("error" in t && why.test(t.error), p);
  }
  const o = { extended: true, dollarEndOnly: false, multiline: false };
  assert.deepEqual(pcreToRe2(" a b # comment", o), { source: "ab" });
  assert.deepEqual(pcreToRe2("[ ]\\ x", o), { source: "[ ]\\ x" });
  assert.deepEqual(pcreToRe2("a\\+\\Q+.\\E+", { ...o, extended: false }), { source: "a\\+\\+\\.+" });
  assert.deepEqual(pcreToRe2("x$", { ...o, dollarEndOnly: true }), { source: "x$" });
  assert.deepEqual(pcreToRe2("(?'n'x)\\e\\cA", o), { source: "(?P<n>x)\\x1B\\x{1}" });
});

test("results: $n, ${n}, $(n), $$ and malformed references", () => {
  assert.deepEqual(parseResult("a $1 ${2}b $(3)$$"), { parts: ["a ", 1, " ", 2, "b ", 3, "$"], maxSub: 3 });
  assert.deepEqual(parseResult("plain $$5"), { parts: ["plain $5"], maxSub: 0 });
  assert.deepEqual(parseResult(""), { parts: [""], maxSub: 0 });
  for (const bad of ["$", "$ x", "${1", "$1a", "$0", "${name}"])
    assert.equal(typeof parseResult(bad), "string", bad);
});

test("flags: FOLD_MUL folds the key, NO_REGSUB refuses substitution, i/x toggles", async () => {
  const spec = "regexp:{ {/^ABC$/i exact}, {/^(a)bc$/ sub $1} }";
  assert.deepEqual(await dictOpen(spec).lookup("ABC"), found("exact"));
  assert.deepEqual(
    await dictOpen(spec).lookup("ABc"),
    found("sub A"),
    "default: key as is, case-insensitive match",
  );
  assert.deepEqual(await dictOpen(spec, { flags: DictFlag.FOLD_MUL }).lookup("ABC"), found("sub a"));
  const noSub = dictOpen(spec, { flags: DictFlag.NO_REGSUB });
  assert.deepEqual(await noSub.lookup("abc"), NOT_FOUND);
  assert.match(log.take().join("\n"), /substitution is not allowed/);
  assert.deepEqual(await dictOpen("regexp:{ {/^a+b$/x basic} }").lookup("a+b"), found("basic"));
  assert.deepEqual(await dictOpen("pcre:{ {!/^a/ not-a $1} }").lookup("b"), NOT_FOUND);
  assert.match(log.take().join("\n"), /negated pattern/);
  assert.deepEqual(await dictOpen("pcre:{ {|^a/b$| slash} }").lookup("a/b"), found("slash"));
  assert.deepEqual(
    await dictOpen("regexp:{ {/^a\\/b$/ escaped-delimiter} }").lookup("a/b"),
    found("escaped-delimiter"),
  );
  dictCloseAll();
});
