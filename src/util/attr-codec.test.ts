/*
 * attr-codec.test - unit tests of the frame codec, with buffer builders
 *
 * DESCRIPTION
 *   Frames are built byte by byte here (u32, attrBytes, frameOf), not with
 *   encodeFrame, so the tests pin the wire format itself.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AttrCodecError,
  FrameDecoder,
  attrInt,
  attrList,
  attrString,
  decodePayload,
  encodeFrame,
  parseDecimal,
  type AttrList,
} from "./attr-codec.js";

/** A 4-byte big-endian length. */
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** One attribute on the wire, name taken as raw bytes. */
function attrBytes(name: string | Buffer, value: string | Buffer): Buffer {
  const n = Buffer.isBuffer(name) ? name : Buffer.from(name, "latin1");
  const v = Buffer.isBuffer(value) ? value : Buffer.from(value, "utf8");
  return Buffer.concat([Buffer.from([n.length]), n, u32(v.length), v]);
}

/** A frame: length prefix + the given attribute byte strings. */
function frameOf(...attrs: Buffer[]): Buffer {
  const payload = Buffer.concat(attrs);
  return Buffer.concat([u32(payload.length), payload]);
}

/** An AttrList as plain strings, for deepEqual. */
function plain(attrs: AttrList): Record<string, string> {
  return Object.fromEntries([...attrs].map(([k, v]) => [k, v.toString("latin1")]));
}

/** Pushes and expects frames. */
function framesOf(dec: FrameDecoder, chunk: Buffer): AttrList[] {
  const r = dec.push(chunk);
  assert.ok(r.ok, r.ok ? "" : r.reason);
  return r.frames;
}

/** Pushes and expects a failure code. */
function failOf(dec: FrameDecoder, chunk: Buffer): string {
  const r = dec.push(chunk);
  assert.equal(r.ok, false);
  return r.ok ? "" : r.code;
}

void test("encodeFrame writes the documented layout", () => {
  const got = encodeFrame({ a: "x", n_2: 42, b: Buffer.from([0, 255]) }, 100);
  const want = frameOf(attrBytes("a", "x"), attrBytes("n_2", "42"), attrBytes("b", Buffer.from([0, 255])));
  assert.deepEqual(got, want);
  assert.deepEqual(encodeFrame(new Map(), 0), u32(0));
});

void test("encodeFrame throws typed errors", () => {
  const big = { v: "x".repeat(100) };
  assert.throws(
    () => encodeFrame(big, 100),
    (e: unknown) => e instanceof AttrCodecError && e.code === "EFRAMETOOBIG",
  );
  assert.doesNotThrow(() => encodeFrame(big, 1 + 1 + 4 + 100));
  const badName = new Map([["Bad", Buffer.alloc(0)]]);
  assert.throws(() => encodeFrame(badName, 100), { code: "EBADNAME" });
  assert.throws(() => encodeFrame({ ["x".repeat(65)]: "" }, 1000), { code: "EBADNAME" });
  const many = new Map(Array.from({ length: 1025 }, (_, i) => [`a${i}`, Buffer.alloc(0)] as const));
  assert.throws(() => encodeFrame(many, 1 << 20), { code: "ETOOMANYATTRS" });
  assert.throws(() => attrList({ n: 1.5 }), { code: "EBADVALUE" });
  assert.throws(() => attrList({ n: Number.MAX_SAFE_INTEGER + 1 }), { code: "EBADVALUE" });
});

void test("round trip through the decoder, whole and byte by byte", () => {
  const lists = [
    attrList({ queue_id: "4Fz2", count: -7, body: Buffer.from([0, 1, 2, 255]) }),
    attrList({}),
    attrList({ empty: "", ["n".repeat(64)]: "ünïcødé" }),
  ];
  const bytes = Buffer.concat(lists.map((l) => encodeFrame(l, 1000)));
  const whole = framesOf(new FrameDecoder({ maxFrame: 1000 }), bytes);
  assert.deepEqual(whole.map(plain), lists.map(plain));
  const dec = new FrameDecoder({ maxFrame: 1000 });
  const slow: AttrList[] = [];
  for (let i = 0; i < bytes.length; i++) slow.push(...framesOf(dec, bytes.subarray(i, i + 1)));
  assert.deepEqual(slow.map(plain), lists.map(plain));
  assert.equal(dec.buffered, 0);
  assert.equal(dec.inFrame, false);
});

void test("decoded values do not pin the caller's chunk", () => {
  const chunk = encodeFrame({ a: "hello" }, 100);
  const [frame] = framesOf(new FrameDecoder({ maxFrame: 100 }), chunk);
  chunk.fill(0);
  assert.equal(frame?.get("a")?.toString(), "hello");
});

void test("an announced length above maxFrame fails before any payload is buffered", () => {
  const dec = new FrameDecoder({ maxFrame: 16 });
  assert.equal(failOf(dec, u32(17)), "EFRAMETOOBIG");
  assert.equal(dec.buffered, 4);
  assert.equal(failOf(dec, Buffer.alloc(10)), "EFRAMETOOBIG", "a failed decoder stays failed");
  const dec2 = new FrameDecoder({ maxFrame: 16 });
  assert.equal(failOf(dec2, u32(0xffffffff)), "EFRAMETOOBIG");
});

void test("the buffer never exceeds maxFrame + 4", () => {
  const dec = new FrameDecoder({ maxFrame: 20 });
  const frame = frameOf(attrBytes("a", "x".repeat(14)));
  assert.equal(frame.length, 24);
  framesOf(dec, frame.subarray(0, 23));
  assert.equal(dec.buffered, 23);
  assert.equal(dec.inFrame, true);
  assert.equal(framesOf(dec, frame.subarray(23)).length, 1);
  assert.equal(dec.buffered, 0);
});

void test("malformed payloads are rejected with EMALFORMED", () => {
  const cases: Array<[string, Buffer]> = [
    ["name length 0", Buffer.concat([Buffer.from([0]), u32(0)])],
    ["name length 65", attrBytes("a".repeat(65), "")],
    ["upper-case name", attrBytes("Ab", "")],
    ["name with a dot", attrBytes("a.b", "")],
    ["name with NUL", attrBytes(Buffer.from([0x61, 0]), "")],
    ["truncated name", Buffer.from([5, 0x61])],
    ["truncated value length", Buffer.concat([Buffer.from([1, 0x61]), Buffer.from([0, 0])])],
    ["value longer than payload", Buffer.concat([Buffer.from([1, 0x61]), u32(5), Buffer.from("abc")])],
    ["trailing garbage", Buffer.concat([attrBytes("a", "b"), Buffer.from([7])])],
  ];
  for (const [what, payload] of cases) {
    const r = decodePayload(payload);
    assert.equal(r.ok ? "ok" : r.code, "EMALFORMED", what);
    const dec = new FrameDecoder({ maxFrame: 1000 });
    assert.equal(failOf(dec, Buffer.concat([u32(payload.length), payload])), "EMALFORMED", what);
  }
});

void test("duplicate names and too many attributes are rejected", () => {
  const dup = frameOf(attrBytes("a", "1"), attrBytes("b", "2"), attrBytes("a", "3"));
  assert.equal(failOf(new FrameDecoder({ maxFrame: 1000 }), dup), "EDUPATTR");
  const many = frameOf(...Array.from({ length: 1025 }, (_, i) => attrBytes(`a${i}`, "")));
  assert.equal(failOf(new FrameDecoder({ maxFrame: 1 << 20 }), many), "ETOOMANYATTRS");
  const few = frameOf(attrBytes("a", ""), attrBytes("b", ""), attrBytes("c", ""));
  assert.equal(failOf(new FrameDecoder({ maxFrame: 100, maxAttrs: 2 }), few), "ETOOMANYATTRS");
});

void test("frames before a bad frame in the same chunk are not delivered", () => {
  const dec = new FrameDecoder({ maxFrame: 100 });
  assert.equal(failOf(dec, Buffer.concat([frameOf(attrBytes("a", "1")), u32(101)])), "EFRAMETOOBIG");
});

void test("string and integer readers", () => {
  const attrs = attrList({ s: "héllo", i: 12, neg: -3, bad_utf8: Buffer.from([0xc3]) });
  attrs.set("lead0", Buffer.from("012"));
  attrs.set("plus", Buffer.from("+1"));
  assert.equal(attrString(attrs, "s"), "héllo");
  assert.equal(attrString(attrs, "bad_utf8"), undefined);
  assert.equal(attrString(attrs, "missing"), undefined);
  assert.equal(attrInt(attrs, "i"), 12);
  assert.equal(attrInt(attrs, "neg"), -3);
  assert.equal(attrInt(attrs, "lead0"), undefined);
  assert.equal(attrInt(attrs, "plus"), undefined);
  for (const bad of ["", "-0", "1.0", " 1", "1e3", "0x10", "99999999999999999", "-"]) {
    assert.equal(parseDecimal(Buffer.from(bad)), undefined, JSON.stringify(bad));
  }
  assert.equal(parseDecimal(Buffer.from("9007199254740991")), Number.MAX_SAFE_INTEGER);
  assert.equal(parseDecimal(Buffer.from("9007199254740992")), undefined);
});

void test("bad local configuration throws RangeError", () => {
  assert.throws(() => new FrameDecoder({ maxFrame: -1 }), RangeError);
  assert.throws(() => new FrameDecoder({ maxFrame: 1.5 }), RangeError);
});
