/*
 * attr-server.test - the server side over real Unix-domain sockets
 *
 * DESCRIPTION
 *   A raw peer (a socket plus a FrameDecoder) talks to serveAttrConnection
 *   in a temporary directory, so the tests see exactly what goes on the wire.
 */

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { mkdtemp, rm } from "node:fs/promises";
import { type AttrList, FrameDecoder, attrList, attrString, encodeFrame } from "./attr-codec.js";
import {
  type AttrConnEnd,
  type AttrConnection,
  type AttrServerOptions,
  serveAttrConnection,
} from "./attr-server.js";
import { msgInit } from "./msg.js";

const warnings: string[] = [];
let dir = "";
let seq = 0;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "attr-server-"));
  msgInit({ sink: { write: (_level, _tag, _pid, text) => void warnings.push(text) } });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An echo handler: the reply is the request plus status=ok. */
function echo(req: AttrList): Promise<AttrList> {
  return Promise.resolve(new Map([...req, ["status", Buffer.from("ok")]]));
}

interface Served {
  path: string;
  conns: AttrConnection[];
  stop(): Promise<void>;
}

/** Listens on a fresh socket path and serves every connection with opts. */
async function serve(opts: Partial<AttrServerOptions>): Promise<Served> {
  const p = path.join(dir, `s${++seq}`);
  const conns: AttrConnection[] = [];
  const full = { protocol: "test", maxFrame: 4096, idleTimeoutMs: 2000, handler: echo, ...opts };
  const server = net.createServer((s) => void conns.push(serveAttrConnection(s, full)));
  await new Promise<void>((resolve) => server.listen(p, resolve));
  const stop = async (): Promise<void> => {
    for (const c of conns) c.close();
    await new Promise((resolve) => server.close(resolve));
  };
  return { path: p, conns, stop };
}

/** A raw client: collects decoded frames and notices the close. */
class Peer {
  readonly socket: net.Socket;
  readonly frames: AttrList[] = [];
  readonly closed: Promise<void>;
  #dec = new FrameDecoder({ maxFrame: 1 << 20 });
  #wake: () => void = () => undefined;

  /** Connects to p. */
  constructor(p: string, read = true) {
    this.socket = net.createConnection({ path: p });
    if (read) this.socket.on("data", (c: Buffer) => this.#onData(c));
    this.socket.on("error", () => undefined);
    this.closed = new Promise((resolve) => this.socket.on("close", () => resolve()));
  }

  /** Decodes server output. */
  #onData(chunk: Buffer): void {
    const r = this.#dec.push(chunk);
    assert.ok(r.ok, "server output must decode");
    this.frames.push(...r.frames);
    this.#wake();
  }

  /** Waits until n frames have arrived (or fails after 3 s). */
  async waitFrames(n: number): Promise<AttrList[]> {
    const deadline = Date.now() + 3000;
    while (this.frames.length < n) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${n} frames`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.frames;
  }

  /** Sends raw bytes. */
  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }
}

/** The status/reason of a frame as text. */
function st(frame: AttrList | undefined): string {
  return frame === undefined ? "none" : `${attrString(frame, "status")}: ${attrString(frame, "reason")}`;
}

/** Resolves after ms. */
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The end report of the first connection. */
async function endOf(s: Served): Promise<AttrConnEnd> {
  for (let i = 0; i < 100 && s.conns.length === 0; i++) await sleep(10);
  const c = s.conns[0];
  assert.ok(c !== undefined);
  return c.done;
}

const NONE: AttrList = new Map();

void test("hello first, then one reply per request", async () => {
  const s = await serve({});
  const peer = new Peer(s.path);
  const [hello] = await peer.waitFrames(1);
  assert.equal(attrString(hello ?? NONE, "protocol"), "test");
  peer.send(encodeFrame({ q: "1" }, 100));
  const frames = await peer.waitFrames(2);
  assert.equal(attrString(frames[1] ?? NONE, "q"), "1");
  peer.socket.end();
  assert.deepEqual(await endOf(s), { requests: 1, reason: "eof", detail: "connection closed by peer" });
  await s.stop();
});

void test("pipelined requests are answered in order, one at a time", async () => {
  let active = 0;
  let most = 0;
  const handler = async (req: AttrList): Promise<AttrList> => {
    most = Math.max(most, ++active);
    await sleep(Math.random() * 10);
    active--;
    return echo(req);
  };
  const s = await serve({ handler });
  const peer = new Peer(s.path);
  peer.send(Buffer.concat([0, 1, 2, 3, 4].map((i) => encodeFrame({ i }, 100))));
  const frames = await peer.waitFrames(6);
  assert.deepEqual(
    frames.slice(1).map((f) => attrString(f, "i")),
    ["0", "1", "2", "3", "4"],
  );
  assert.equal(most, 1);
  await s.stop();
});

void test("too many pipelined requests: error frame, then close", async () => {
  const s = await serve({ maxPipeline: 2 });
  const peer = new Peer(s.path);
  peer.send(Buffer.concat([0, 1, 2, 3].map((i) => encodeFrame({ i }, 100))));
  await peer.closed;
  assert.match(st(peer.frames.at(-1)), /^error: more than 2 pipelined requests/);
  assert.equal((await endOf(s)).reason, "pipeline");
  await s.stop();
});

void test("malformed and oversized input: error frame, then close", async () => {
  const cases: Array<[Buffer, string, RegExp]> = [
    [Buffer.from([0, 0, 0, 3, 0, 0, 0]), "malformed", /^error: bad name length 0/],
    [Buffer.from([0, 0, 0x10, 0x01]), "toobig", /^error: announced frame 4097 bytes, limit 4096/],
    [encodeFrame({ a: "x" }, 100).fill(0x41, 5, 6), "malformed", /^error: bad attribute name/],
  ];
  for (const [bytes, reason, text] of cases) {
    const s = await serve({});
    const peer = new Peer(s.path);
    peer.send(bytes);
    await peer.closed;
    assert.match(st(peer.frames.at(-1)), text);
    assert.equal((await endOf(s)).reason, reason);
    await s.stop();
  }
  assert.ok(warnings.some((w) => /test server: .*; closing connection/.test(w)));
});

void test("an idle connection is closed without an error frame", async () => {
  const s = await serve({ idleTimeoutMs: 100 });
  const peer = new Peer(s.path);
  await peer.closed;
  assert.equal(peer.frames.length, 1, "only the hello");
  assert.equal((await endOf(s)).reason, "idle");
  await s.stop();
});

void test("a request that trickles in too slowly is cut off", async () => {
  const s = await serve({ idleTimeoutMs: 2000, frameTimeoutMs: 150 });
  const peer = new Peer(s.path);
  const frame = encodeFrame({ data: "x".repeat(40) }, 100);
  const started = Date.now();
  for (let i = 0; i < frame.length && !peer.socket.destroyed; i++) {
    peer.send(frame.subarray(i, i + 1));
    await sleep(20);
  }
  await peer.closed;
  assert.ok(Date.now() - started < 1000);
  assert.match(st(peer.frames.at(-1)), /^error: timeout while receiving a request/);
  assert.equal((await endOf(s)).reason, "slow");
  await s.stop();
});

void test("a failing handler gets an error reply and the connection stays usable", async () => {
  const handler = (req: AttrList): Promise<AttrList> => {
    const what = attrString(req, "what");
    if (what === "throw") throw new Error("boom");
    if (what === "reject") return Promise.reject(new Error("bang"));
    if (what === "big") return Promise.resolve(attrList({ v: "x".repeat(5000) }));
    return echo(req);
  };
  const s = await serve({ handler });
  const peer = new Peer(s.path);
  for (const what of ["throw", "reject", "big", "fine"]) peer.send(encodeFrame({ what }, 100));
  const frames = await peer.waitFrames(5);
  assert.deepEqual(frames.slice(1).map(st), [
    "error: temporary failure: request handler failed",
    "error: temporary failure: request handler failed",
    "error: temporary failure: reply cannot be sent",
    "ok: undefined",
  ]);
  assert.equal(peer.socket.destroyed, false);
  await s.stop();
});

void test("the server does not read ahead while a request is handled", async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const s = await serve({ handler: async (req) => (await gate, echo(req)) });
  const peer = new Peer(s.path);
  peer.send(encodeFrame({ q: "1" }, 100));
  await sleep(50);
  peer.send(Buffer.from([0, 0, 0, 1, 0])); // malformed, but not read yet
  await sleep(100);
  assert.equal(peer.socket.destroyed, false, "garbage must not be read while the handler runs");
  release();
  await peer.closed;
  assert.deepEqual(peer.frames.slice(1).map(st), ["ok: undefined", "error: bad name length 0"]);
  await s.stop();
});

void test("a peer that does not read replies is dropped after idleTimeoutMs", async () => {
  const big = attrList({ v: Buffer.alloc(400_000) });
  const s = await serve({ maxFrame: 1 << 20, idleTimeoutMs: 300, handler: () => Promise.resolve(big) });
  const peer = new Peer(s.path, false);
  peer.send(Buffer.concat([0, 1, 2, 3, 4, 5].map((i) => encodeFrame({ i }, 100))));
  const end = await endOf(s);
  assert.equal(end.reason, "slow");
  assert.ok(end.requests < 6, "stopped while replies were stuck");
  peer.socket.destroy();
  await s.stop();
});

void test("close() ends the connection", async () => {
  const s = await serve({});
  const peer = new Peer(s.path);
  await peer.waitFrames(1);
  s.conns[0]?.close();
  await peer.closed;
  assert.equal((await endOf(s)).reason, "closed");
  await s.stop();
});
