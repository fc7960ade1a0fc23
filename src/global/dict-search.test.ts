/*
 * dict-search.test - search orders: golden file plus unit tests
 *
 * DESCRIPTION
 *   testdata/dict/search.in drives the searches of dict-search.ts over real
 *   tables and records every lookup they make; the output must equal
 *   search.ref (see the comment at the top of search.in).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { braceTokens } from "./dict-parse.js";
import { dictCloseAll, dictOpen } from "./dict.js";
import {
  accessAddrFind,
  AddrFind,
  addrFind,
  addrNetFind,
  clientFind,
  domainFind,
  mapsLookup,
  stripExtension,
  transportFind,
  type LookupFn,
  type SearchResult,
} from "./dict-search.js";
import { captureLog, checkGolden, goldenDir, showResult } from "./dict-testkit.js";
import type { Dict, DictResult } from "./dict-types.js";

/** Parses "full|noext|domain" into strategy bits. */
function strategyBits(text: string): number {
  let bits = 0;
  for (const word of text.split("|")) {
    const bit = (AddrFind as Record<string, number>)[word.toUpperCase()];
    if (bit === undefined) throw new Error(`unknown strategy ${word}`);
    bits |= bit;
  }
  return bits;
}

/** A search result as text. */
function showSearch(r: SearchResult): string {
  if (r.status !== "found") return showResult(r);
  return `found: ${r.value} (key ${JSON.stringify(r.key)}${r.extension === undefined ? "" : `, extension ${JSON.stringify(r.extension)}`})`;
}

/** Wraps a table so that every lookup it answers is recorded. */
function traced(d: Dict, label: string, out: string[]): Dict {
  return {
    type: d.type,
    name: d.name,
    flags: d.flags,
    async lookup(key: string): Promise<DictResult> {
      const r = await d.lookup(key);
      out.push(`    ${label}: ${showResult(r)}`);
      return r;
    },
    close: () => d.close(),
  };
}

/** Runs search.in and returns the output. */
async function runSearchScript(): Promise<string> {
  const log = captureLog();
  const out: string[] = [];
  let lookup: LookupFn = () => Promise.resolve({ status: "notfound" });
  let delimiter = "";
  let local: string[] = [];
  let parent = false;
  const opts = () => ({
    recipientDelimiter: delimiter,
    isLocalDomain: (d: string) => local.includes(d.toLowerCase()),
    parentMatchesSubdomains: parent,
  });
  for (const line of readFileSync(join(goldenDir(), "search.in"), "utf8").split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const words = line.split(" ");
    const [cmd = "", a = "", b = ""] = words;
    out.push(`> ${line}`);
    let r: SearchResult | null = null;
    if (cmd === "maps") {
      const specs = braceTokens(line.slice(5), " ");
      const dicts = specs.map((s, i) => traced(dictOpen(s), `#${i + 1} ${s.slice(0, s.indexOf(":"))}`, out));
      const inner = mapsLookup(dicts, "test");
      lookup = (key, partial) => {
        out.push(`  ${partial ? "partial" : "full"} ${JSON.stringify(key)}`);
        return inner(key, partial);
      };
    } else if (cmd === "set") {
      if (a === "delimiter") delimiter = b;
      else if (a === "local") local = words.slice(2);
      else if (a === "parent") parent = b === "yes";
      else throw new Error(`bad set: ${line}`);
    } else if (cmd === "addr") r = await addrFind(lookup, b, { ...opts(), strategy: strategyBits(a) });
    else if (cmd === "access") r = await accessAddrFind(lookup, a, opts());
    else if (cmd === "transport") r = await transportFind(lookup, a, opts());
    else if (cmd === "domain") r = await domainFind(lookup, a, opts());
    else if (cmd === "net") r = await addrNetFind(lookup, a);
    else if (cmd === "client") r = await clientFind(lookup, a, b, opts());
    else throw new Error(`unknown command: ${line}`);
    for (const l of log.take()) out.push(`  ${l}`);
    if (r !== null) out.push(`  = ${showSearch(r)}`);
  }
  dictCloseAll();
  return out.join("\n") + "\n";
}

test("golden: search.in gives search.ref", async () => {
  const got = await runSearchScript();
  assert.equal(got, checkGolden(join(goldenDir(), "search.ref"), got));
});

test("stripExtension splits at the first delimiter and keeps special names whole", () => {
  assert.deepEqual(stripExtension("a+b+c@x", "+"), { bare: "a@x", ext: "+b+c" });
  assert.deepEqual(stripExtension("a-b", "+-"), { bare: "a", ext: "-b" });
  assert.equal(stripExtension("a@x+y", "+"), null);
  assert.equal(stripExtension("+a@x", "+"), null);
  assert.equal(stripExtension("MAILER-DAEMON@x", "-"), null);
  assert.equal(stripExtension("Double-Bounce@x", "-"), null);
  assert.deepEqual(stripExtension("owner-x@y", "-", { ownerRequestSpecial: false }), {
    bare: "owner@y",
    ext: "-x",
  });
  assert.equal(stripExtension("a+b", ""), null);
});

test("mapsLookup: empty key finds nothing, empty result is a temporary failure", async () => {
  captureLog();
  const lookup = mapsLookup([dictOpen("inline:{x=, y=1}")]);
  assert.deepEqual(await lookup("", false), { status: "notfound" });
  assert.equal((await lookup("x", false)).status, "tempfail");
  assert.deepEqual(await lookup("y", true), { status: "found", value: "1" });
  dictCloseAll();
});

test("a failing local-domain check is a temporary failure", async () => {
  const lookup: LookupFn = () => Promise.resolve({ status: "notfound" });
  const r = await addrFind(lookup, "u@d", {
    strategy: AddrFind.DEFAULT,
    isLocalDomain: () => Promise.reject(new Error("DNS down")),
  });
  assert.equal(r.status, "tempfail");
});
