/*
 * dict.test - the table framework and the tables given in their names
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  dictCloseAll,
  DictFlag,
  dictOpen,
  dictRegister,
  dictSetRecheckInterval,
  dictTypes,
  found,
  NOT_FOUND,
} from "./dict.js";
import { captureLog, tempDir } from "./dict-testkit.js";
import type { DictImpl, DictResult } from "./dict-types.js";

const log = captureLog();

/** Looks up a key in a freshly opened table and closes it. */
async function q(spec: string, key: string, flags?: number): Promise<DictResult> {
  const d = dictOpen(spec, flags === undefined ? {} : { flags });
  try {
    return await d.lookup(key);
  } finally {
    d.close();
  }
}

test("dictOpen shares one instance per name and flags, and counts references", async () => {
  const a = dictOpen("inline:{k=v}");
  const b = dictOpen("inline:{k=v}");
  const c = dictOpen("inline:{k=v}", { flags: DictFlag.NONE });
  assert.equal(a, b);
  assert.notEqual(a, c);
  a.close();
  assert.deepEqual(await b.lookup("k"), found("v"));
  b.close();
  assert.notEqual(dictOpen("inline:{k=v}"), a, "the last close forgets the shared instance");
  dictCloseAll();
  c.close();
});

test("the built-in types are registered", () => {
  for (const t of ["btree", "cdb", "cidr", "environ", "fail", "hash", "inline", "lmdb", "pcre", "pipemap"]) {
    assert.ok(dictTypes().includes(t), t);
  }
  for (const t of ["randmap", "regexp", "static", "texthash", "unionmap"])
    assert.ok(dictTypes().includes(t), t);
});

test("a new type plugs in without touching the framework; its exceptions become temporary failures", async () => {
  dictRegister("testthrow", (name, flags): DictImpl => ({
    type: "testthrow",
    name,
    flags: flags | DictFlag.FIXED,
    lookup(key) {
      if (key === "boom") throw new Error("server went away");
      if (key === "reject") return Promise.reject(new Error("rejected"));
      return found(`${name}:${key}`);
    },
    close() {},
  }));
  assert.deepEqual(await q("testthrow:srv", "k"), found("srv:k"));
  const r = await q("testthrow:srv", "boom");
  assert.equal(r.status, "tempfail");
  assert.equal((await q("testthrow:srv", "reject")).status, "tempfail");
  assert.match(log.take().join("\n"), /server went away/);
});

test("unknown types and bad names give tables that fail temporarily, never 'not found'", async () => {
  for (const spec of [
    "nosuchtype:x",
    "inline:k=v",
    "inline:{}",
    "inline:{ {k v} }",
    "static:{ open",
    "randmap:{}",
  ]) {
    const r = await q(spec, "k");
    assert.equal(r.status, "tempfail", spec);
  }
  for (const spec of [
    "unionmap:x",
    "unionmap:{ nocolon }",
    "pipemap:{}",
    "cidr:{ 1.2.3.4 OK }",
    "regexp:{ {/x/ y} ",
  ]) {
    assert.equal((await q(spec, "k")).status, "tempfail", spec);
  }
  assert.ok(log.take().length > 0);
});

test("a name without a type is a configuration error", () => {
  assert.throws(() => dictOpen("justaname"), { code: "EFATAL" });
  log.take();
});

test("inline: pairs, braces, folding", async () => {
  const spec = "inline:{ Key=1, { k2 = two words }, {k3=} , k4=a=b }";
  assert.deepEqual(await q(spec, "KEY"), found("1"));
  assert.deepEqual(await q(spec, "k2"), found("two words"));
  assert.deepEqual(await q(spec, "k3"), found(""));
  assert.deepEqual(await q(spec, "k4"), found("a=b"));
  assert.deepEqual(await q(spec, "KEY", DictFlag.NONE), NOT_FOUND, "no FOLD_FIX: keys keep their case");
  assert.deepEqual(await q(spec, "Key", DictFlag.NONE), found("1"));
  assert.deepEqual(await q("inline:{ x=1, x=2 }", "x"), found("2"), "a later pair replaces an earlier one");
});

test("static:, randmap:, environ:, fail:", async () => {
  assert.deepEqual(await q("static:OK", "anything"), found("OK"));
  assert.deepEqual(await q("static:{ 550 go away }", "x"), found("550 go away"));
  const seen = new Set<string>();
  const rnd = dictOpen("randmap:{a, b, {c d}}");
  for (let i = 0; i < 200; i++) {
    const r = await rnd.lookup("k");
    assert.equal(r.status, "found");
    if (r.status === "found") seen.add(r.value);
  }
  rnd.close();
  assert.deepEqual([...seen].sort(), ["a", "b", "{c d}"]);
  process.env["postern_dict_test"] = "env-value";
  assert.deepEqual(await q("environ:env", "POSTERN_DICT_TEST"), found("env-value"));
  assert.deepEqual(await q("environ:env", "nosuchvariable_postern"), NOT_FOUND);
  assert.equal((await q("fail:why", "k")).status, "tempfail");
  assert.equal(dictOpen("static:x").flags & DictFlag.FIXED, DictFlag.FIXED);
  assert.equal(dictOpen("randmap:{x}").flags & DictFlag.PATTERN, DictFlag.PATTERN);
  dictCloseAll();
});

test("unionmap: joins results; pipemap: chains them; a failure wins", async () => {
  const u = "unionmap:{ inline:{x=1}, static:2, inline:{y=3} }";
  assert.deepEqual(await q(u, "x"), found("1,2"));
  assert.deepEqual(await q("unionmap:{ inline:{x=1}, inline:{y=3} }", "z"), NOT_FOUND);
  assert.equal((await q("unionmap:{ inline:{x=1}, fail:f }", "x")).status, "tempfail");
  assert.deepEqual(await q("pipemap:{ inline:{x=y}, inline:{y=z} }", "x"), found("z"));
  assert.deepEqual(await q("pipemap:{ inline:{x=y}, inline:{q=z} }", "x"), NOT_FOUND);
  assert.equal((await q("pipemap:{ fail:f, inline:{q=z} }", "x")).status, "tempfail");
  const p = dictOpen("pipemap:{ regexp:{{/./ r}}, inline:{r=1} }");
  assert.equal(p.flags & DictFlag.PATTERN, DictFlag.PATTERN, "the first member decides the match flags");
  p.close();
  log.take();
});

test("texthash: postmap source syntax", async () => {
  const dir = tempDir();
  const file = join(dir, "access");
  writeFileSync(
    file,
    [
      "   orphan continuation",
      "Example.COM\tOK",
      "multi  first part",
      "  # comment between continuation lines",
      "\tsecond part",
      '"quoted key"  value',
      "nokey",
      "dup 1",
      "dup 2",
      "# comment",
      "alias: entry",
      "last value # not a comment",
    ].join("\n"),
  );
  const spec = `texthash:${file}`;
  assert.deepEqual(await q(spec, "example.com"), found("OK"));
  assert.deepEqual(await q(spec, "MULTI"), found("first part\tsecond part"));
  assert.deepEqual(await q(spec, '"quoted key"'), found("value"));
  assert.deepEqual(await q(spec, "dup"), found("1"));
  assert.deepEqual(await q(spec, "last"), found("value # not a comment"));
  assert.deepEqual(await q(spec, "nokey"), NOT_FOUND);
  const warnings = log.take().join("\n");
  assert.match(warnings, /access, line 7: expected format: key whitespace value/);
  assert.match(warnings, /line 9: duplicate entry "dup"/);
  assert.match(warnings, /line 1: text continues no logical line/);
  assert.match(warnings, /line 11: .*alias file/);
  assert.deepEqual(await q(spec, "dup", DictFlag.FOLD_FIX | DictFlag.DUP_REPLACE), found("2"));
  rmSync(dir, { recursive: true });
});

test("file tables reload when the file changes, and fail temporarily while it is missing", async () => {
  dictSetRecheckInterval(0);
  const dir = tempDir();
  const file = join(dir, "t");
  writeFileSync(file, "k v1\n");
  const d = dictOpen(`texthash:${file}`);
  assert.deepEqual(await d.lookup("k"), found("v1"));
  writeFileSync(file, "k v2-longer\n");
  assert.deepEqual(await d.lookup("k"), found("v2-longer"));
  rmSync(file);
  assert.equal((await d.lookup("k")).status, "tempfail");
  writeFileSync(file, "k v3\n");
  assert.deepEqual(await d.lookup("k"), found("v3"));
  d.close();
  assert.equal((await q(`texthash:${join(dir, "missing")}`, "k")).status, "tempfail");
  assert.equal((await q(`texthash:${dir}`, "k")).status, "tempfail", "a directory is not a table");
  dictSetRecheckInterval(1000);
  rmSync(dir, { recursive: true });
  log.take();
});
