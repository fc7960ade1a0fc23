/*
 * mac-subst.test - one-level $name substitution
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { macSubst } from "./mac-subst.js";

const table: Record<string, string> = { home: "/home/u", ext: "tag", empty: "", addr: "a$b@example.com" };
const lookup = (n: string): string | undefined => table[n];

test("forms: $name, ${name}, $(name), $$", () => {
  const r = macSubst("$home/${ext}/$(ext) $$ cost", lookup);
  assert.deepEqual(r.ok && r.value, "/home/u/tag/tag $ cost");
});

test("values are inserted once, never expanded again", () => {
  const r = macSubst("-f $addr", lookup);
  assert.ok(r.ok);
  assert.equal(r.value, "-f a$b@example.com");
});

test("conditionals: ?, :, ?{}:{} on defined, empty and undefined values", () => {
  const v = (s: string): string => {
    const r = macSubst(s, lookup);
    return r.ok ? r.value : `error: ${r.error}`;
  };
  assert.equal(v("${ext?+$ext}"), "+tag");
  assert.equal(v("${empty?x}"), "");
  assert.equal(v("${nosuch:none}"), "none");
  assert.equal(v("${ext?{yes}:{no}} ${nosuch?{yes}:{no}}"), "yes no");
});

test("a bare undefined name sets undefinedUsed; one only tested does not", () => {
  const a = macSubst("$home/.forward${nosuch}", lookup);
  assert.ok(a.ok && a.undefinedUsed);
  const b = macSubst("$home/.forward${nosuch?+$nosuch}", lookup);
  assert.ok(b.ok && !b.undefinedUsed);
  assert.ok(b.ok && b.used.has("home") && !b.used.has("nosuch"));
});

test("the filter replaces characters of substituted values only", () => {
  const r = macSubst("/x/$addr;", lookup, { filter: "abcdefghijklmnopqrstuvwxyz.@" });
  assert.ok(r.ok);
  assert.equal(r.value, "/x/a_b@example.com;");
});

test("unknown names are refused when known names are given; bad syntax is an error", () => {
  assert.ok(!macSubst("$home $bogus", lookup, { known: new Set(["home"]) }).ok);
  assert.ok(!macSubst("${home", lookup).ok);
  assert.ok(!macSubst("$ alone", lookup).ok);
  assert.ok(!macSubst("${home!x}", lookup).ok);
});
