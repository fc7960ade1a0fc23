/*
 * attr-fuzz.test - property and fuzz tests of the internal protocol (fast-check)
 *
 * DESCRIPTION
 *   Random bytes, random valid frames and mutated frames are thrown at the
 *   FrameDecoder, at a real server connection over a Unix-domain socket, and
 *   (as replies) at AttrClient. The properties: nothing throws or rejects
 *   unhandled; the decoder never holds more than maxFrame + 4 bytes; valid
 *   frames survive any split; after bad input the server sends an error
 *   frame and closes; after good input it answers every request.
 *   Every run is bounded by numRuns and by time, so the file takes seconds.
 */

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { mkdtemp, rm } from "node:fs/promises";
import fc from "fast-check";
import { type AttrList, FrameDecoder, attrString, encodeFrame } from "./attr-codec.js";
import { type AttrConnEnd, type AttrConnection, serveAttrConnection } from "./attr-server.js";
import { AttrClient } from "./attr-client.js";
import { msgInit } from "./msg.js";

const MAX = 256;
const LIMITS = { interruptAfterTimeLimit: 2500, timeout: 3000 };
let dir = "";
let escaped = 0;
const onEscape = (): void => void escaped++;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "attr-fuzz-"));
  msgInit({ sink: { write: () => undefined } });
  process.on("uncaughtException", onEscape);
  process.on("unhandledRejection", onEscape);
});
after(async () => {
  process.off("uncaughtException", onEscape);
  process.off("unhandledRejection", onEscape);
  await rm(dir, { recursive: true, force: true });
  assert.equal(escaped, 0, "no uncaught exception or unhandled rejection");
});

/** Resolves after ms. */
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const attrName = fc.stringMatching(/^[a-z0-9_]{1,10}$/);
const attrValue = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
const attrs = fc
  .uniqueArray(fc.tuple(attrName, attrValue), { selector: (t) => t[0], maxLength: 6 })
  .map((pairs): AttrList => new Map(pairs));
const frameLists = fc.array(attrs, { maxLength: 5 });
const encoded = frameLists.map((fs) => Buffer.concat(fs.map((f) => encodeFrame(f, 1 << 16))));

type Mutation = { at: number; cut: boolean; bytes: Uint8Array };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  cut: fc.boolean(),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }),
});

/** Applies mutations: each cuts the tail at `at` or overwrites/inserts bytes there. */
function mutate(buf: Buffer, muts: Mutation[]): Buffer {
  let out = Buffer.from(buf);
  for (const m of muts) {
    const at = out.length === 0 ? 0 : m.at % (out.length + 1);
    if (m.cut) out = out.subarray(0, at);
    else if (m.at % 2 === 0) out = Buffer.concat([out.subarray(0, at), m.bytes, out.subarray(at)]);
    else out = Buffer.concat([out.subarray(0, at), m.bytes, out.subarray(at + m.bytes.length)]);
  }
  return out;
}

const mutated = fc
  .tuple(encoded, fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([b, m]) => mutate(b, m));
const randomBytes = fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a));
const anyInput = fc.oneof(randomBytes, mutated, encoded);
const chunkSizes = fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 8 });

/** Splits bytes into chunks of the given sizes (cycled). */
function split(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    out.push(bytes.subarray(off, off + n));
    off += n;
  }
  return out;
}

/** Lists as comparable plain data. */
function plain(lists: AttrList[]): Array<Array<[string, string]>> {
  return lists.map((l) => [...l].map(([k, v]): [string, string] => [k, v.toString("hex")]));
}

void test("decoder: random chunks never throw and never buffer more than maxFrame + 4", () => {
  const prop = fc.property(
    fc.integer({ min: 0, max: 300 }),
    fc.array(randomBytes, { maxLength: 12 }),
    (max, chunks) => {
      const dec = new FrameDecoder({ maxFrame: max });
      let failed: unknown = null;
      for (const chunk of chunks) {
        const r = dec.push(chunk);
        assert.ok(dec.buffered <= max + 4);
        if (failed !== null) assert.deepEqual(r, failed, "a failure is sticky");
        if (!r.ok) failed = r;
      }
    },
  );
  fc.assert(prop, { numRuns: 400, ...LIMITS });
});

void test("decoder: valid frames survive any split", () => {
  const prop = fc.property(frameLists, chunkSizes, (lists, sizes) => {
    const bytes = Buffer.concat(lists.map((f) => encodeFrame(f, 1 << 16)));
    const dec = new FrameDecoder({ maxFrame: 1 << 16 });
    const got: AttrList[] = [];
    for (const chunk of split(bytes, sizes)) {
      const r = dec.push(chunk);
      assert.ok(r.ok);
      got.push(...r.frames);
    }
    assert.deepEqual(plain(got), plain(lists));
    assert.equal(dec.inFrame, false);
  });
  fc.assert(prop, { numRuns: 300, ...LIMITS });
});

void test("decoder: mutated frames give frames or a typed failure, within the bound", () => {
  const prop = fc.property(mutated, chunkSizes, fc.integer({ min: 0, max: 300 }), (bytes, sizes, max) => {
    const dec = new FrameDecoder({ maxFrame: max });
    for (const chunk of split(bytes, sizes)) {
      const r = dec.push(chunk);
      assert.ok(dec.buffered <= max + 4);
      if (r.ok) for (const f of r.frames) for (const k of f.keys()) assert.match(k, /^[a-z0-9_]{1,64}$/);
      else assert.ok(["EFRAMETOOBIG", "EMALFORMED", "EDUPATTR", "ETOOMANYATTRS"].includes(r.code));
    }
  });
  fc.assert(prop, { numRuns: 400, ...LIMITS });
});

/** Waits for p, failing after ms. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects, sends the chunks, and returns the frames received and whether the server closed. */
async function exchange(p: string, chunks: Buffer[], expectReplies: number | null) {
  const sock = net.createConnection({ path: p });
  const dec = new FrameDecoder({ maxFrame: 1 << 20 });
  const frames: AttrList[] = [];
  sock.on("error", () => undefined);
  sock.on("data", (c: Buffer) => {
    const r = dec.push(c);
    assert.ok(r.ok, "the server only sends well-formed frames");
    frames.push(...r.frames);
  });
  const closed = new Promise<void>((resolve) => sock.on("close", () => resolve()));
  for (const chunk of chunks) {
    if (sock.destroyed) break;
    sock.write(chunk);
    await sleep(0);
  }
  if (expectReplies === null) {
    await within(closed, 2000, "server did not close after bad input");
    return frames;
  }
  for (let i = 0; frames.length < expectReplies + 1; i++) {
    assert.ok(i < 200, "server did not answer every request");
    await sleep(5);
  }
  sock.end();
  await within(closed, 2000, "connection did not close");
  return frames;
}

void test("server: random and mutated input never crashes it; bad input gets an error frame and a close", async () => {
  const conns: AttrConnection[] = [];
  const opts = {
    protocol: "fuzz",
    maxFrame: MAX,
    idleTimeoutMs: 2000,
    frameTimeoutMs: 1000,
    maxPipeline: 1000,
  };
  const handler = (req: AttrList): Promise<AttrList> =>
    Promise.resolve(new Map([...req, ["status", Buffer.from("ok")]]));
  const server = net.createServer((s) => void conns.push(serveAttrConnection(s, { ...opts, handler })));
  const p = path.join(dir, "server");
  await new Promise<void>((resolve) => server.listen(p, resolve));
  const seen = { good: 0, bad: 0 };
  const prop = fc.asyncProperty(anyInput, chunkSizes, async (bytes, sizes) => {
    const ref = new FrameDecoder({ maxFrame: MAX }).push(bytes);
    seen[ref.ok ? "good" : "bad"]++;
    const before = conns.length;
    const frames = await exchange(p, split(bytes, sizes), ref.ok ? ref.frames.length : null);
    assert.equal(attrString(frames[0] ?? new Map<string, Buffer>(), "protocol"), "fuzz");
    const conn = conns[before];
    assert.ok(conn !== undefined);
    const end: AttrConnEnd = await within(conn.done, 2000, "done did not settle");
    if (ref.ok) {
      assert.equal(frames.length, ref.frames.length + 1);
      assert.equal(end.reason, "eof");
    } else {
      assert.equal(attrString(frames.at(-1) ?? new Map<string, Buffer>(), "status"), "error");
      assert.equal(end.reason, ref.code === "EFRAMETOOBIG" ? "toobig" : "malformed");
    }
  });
  await fc.assert(prop, { numRuns: 120, ...LIMITS });
  await new Promise((resolve) => server.close(resolve));
  assert.ok(seen.good > 10 && seen.bad > 10, `both branches exercised: ${JSON.stringify(seen)}`);
});

void test("client: random replies are results, never throws or hangs", async () => {
  let reply: Buffer = Buffer.alloc(0);
  const hello = encodeFrame({ protocol: "fuzz" }, MAX);
  const server = net.createServer((s) => {
    s.on("error", () => undefined);
    s.write(hello);
    s.once("data", () => s.end(reply));
  });
  const p = path.join(dir, "client");
  await new Promise<void>((resolve) => server.listen(p, resolve));
  const prop = fc.asyncProperty(anyInput, async (bytes) => {
    reply = bytes;
    const c = new AttrClient({
      path: p,
      protocol: "fuzz",
      maxFrame: MAX,
      timeoutMs: 500,
      retries: 0,
      backoffMs: 1,
    });
    const r = await within(c.request({ q: "x" }), 2000, "request did not settle");
    const ref = new FrameDecoder({ maxFrame: MAX }).push(bytes);
    if (r.ok) assert.ok(ref.ok && ref.frames.length >= 1);
    else assert.equal(r.temporary, true);
    c.close();
  });
  await fc.assert(prop, { numRuns: 80, ...LIMITS });
  await new Promise((resolve) => server.close(resolve));
});
