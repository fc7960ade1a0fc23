/*
 * attr-schema.test - unit tests of validation on receipt
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { attrList, type AttrList } from "./attr-codec.js";
import { attr, attrSchema, type AttrValueOf } from "./attr-schema.js";

const Req = attrSchema({
  queue_id: attr.str({ max: 32, pattern: /^[0-9A-Za-z]+$/g }),
  count: attr.int({ min: 0, max: 1000 }),
  flags: attr.optional(attr.int({ min: 0, max: 255 })),
  body: attr.bytes({ max: 8 }),
  kind: attr.enumOf(["a", "b"]),
});

type Req = AttrValueOf<typeof Req.shape>;
type Expected = { queue_id: string; count: number; body: Buffer; kind: "a" | "b"; flags?: number };
/** Compile-time check that two types are the same. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const inferred: Same<Req, Expected> = true;

const good = { queue_id: "4Fz2", count: "12", body: Buffer.from([0, 1]), kind: "b" };

/** A valid request with some attributes replaced. */
function withAttrs(changes: Record<string, string | Buffer | null>): AttrList {
  const attrs = attrList(good);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null) attrs.delete(k);
    else attrs.set(k, Buffer.isBuffer(v) ? v : Buffer.from(v, "utf8"));
  }
  return attrs;
}

/** The error text for a list that must fail. */
function errorOf(attrs: AttrList): string {
  const r = Req.parse(attrs);
  assert.equal(r.ok, false);
  return r.ok ? "" : r.error;
}

void test("a valid list parses to the typed value; unknown attributes are ignored", () => {
  assert.equal(inferred, true);
  const r = Req.parse(withAttrs({ extra: "whatever\x00" }));
  assert.ok(r.ok);
  assert.deepEqual(r.value, { queue_id: "4Fz2", count: 12, body: Buffer.from([0, 1]), kind: "b" });
  assert.equal("flags" in r.value, false, "an absent optional is absent, not undefined");
  const r2 = Req.parse(withAttrs({ flags: "7" }));
  assert.ok(r2.ok);
  assert.equal(r2.value.flags, 7);
});

void test("errors name the bad attribute", () => {
  assert.equal(errorOf(withAttrs({ count: null })), "missing attribute count");
  assert.match(errorOf(withAttrs({ count: "1001" })), /^attribute count: out of range 0\.\.1000$/);
  assert.match(errorOf(withAttrs({ count: "-1" })), /^attribute count: out of range/);
  for (const bad of ["", "01", "+1", "1.0", " 1", "1 ", "x", "-0"]) {
    assert.match(errorOf(withAttrs({ count: bad })), /^attribute count: not a decimal integer$/, bad);
  }
  assert.match(errorOf(withAttrs({ flags: "256" })), /^attribute flags: /);
  assert.match(errorOf(withAttrs({ queue_id: "4Fz-2" })), /^attribute queue_id: does not match/);
  assert.match(
    errorOf(withAttrs({ queue_id: "x".repeat(33) })),
    /^attribute queue_id: longer than 32 bytes$/,
  );
  assert.match(errorOf(withAttrs({ body: Buffer.alloc(9) })), /^attribute body: longer than 8 bytes$/);
  assert.match(errorOf(withAttrs({ kind: "c" })), /^attribute kind: not one of a, b$/);
  assert.match(errorOf(new Map()), /^missing attribute/);
});

void test("a pattern with the g flag keeps no state between parses", () => {
  for (let i = 0; i < 3; i++) assert.ok(Req.parse(withAttrs({})).ok);
});

void test("strings must be valid UTF-8 without control characters unless allowed", () => {
  const S = attrSchema({ s: attr.str({ max: 100 }) });
  const T = attrSchema({ s: attr.str({ max: 100, allowControl: "\t" }) });
  const A = attrSchema({ s: attr.str({ max: 100, allowControl: true }) });
  const of = (v: string | Buffer): AttrList => new Map([["s", Buffer.isBuffer(v) ? v : Buffer.from(v)]]);
  assert.ok(S.parse(of("héllo wörld ✓")).ok);
  for (const bad of [Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xff])]) {
    const r = S.parse(of(bad));
    assert.equal(r.ok ? "" : r.error, "attribute s: not valid UTF-8");
  }
  for (const ctl of ["a\nb", "a\x00", "\x7f", "a\u0085", "a\tb"]) {
    const r = S.parse(of(ctl));
    assert.match(r.ok ? "" : r.error, /^attribute s: control character U\+00/, JSON.stringify(ctl));
  }
  assert.ok(T.parse(of("a\tb")).ok);
  assert.equal(T.parse(of("a\nb")).ok, false);
  assert.ok(A.parse(of("a\r\n\x00")).ok);
});

void test("max and min count bytes, not characters", () => {
  const S = attrSchema({ s: attr.str({ min: 2, max: 4 }) });
  const of = (v: string): AttrList => new Map([["s", Buffer.from(v)]]);
  assert.ok(S.parse(of("éé")).ok);
  assert.equal(S.parse(of("ééé")).ok, false);
  assert.equal(S.parse(of("a")).ok, false);
});

void test("build writes what parse reads", () => {
  const value: Req = { queue_id: "Q1", count: 0, body: Buffer.from("xy"), kind: "a", flags: 3 };
  const r = Req.parse(Req.build(value));
  assert.ok(r.ok);
  assert.deepEqual(r.value, value);
  const noFlags = Req.build({ queue_id: "Q1", count: 0, body: Buffer.alloc(0), kind: "a" });
  assert.equal(noFlags.has("flags"), false);
});

void test("bad schemas are local bugs and throw", () => {
  assert.throws(() => attrSchema({ "Bad-Name": attr.int({ min: 0, max: 1 }) }), RangeError);
  assert.throws(() => attr.int({ min: 2, max: 1 }), RangeError);
  assert.throws(() => attr.str({ max: -1 }), RangeError);
});
