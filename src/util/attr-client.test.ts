/*
 * attr-client.test - AttrClient against a real server over Unix-domain sockets
 *
 * DESCRIPTION
 *   Each test listens on its own socket path in a temporary directory and
 *   serves connections with serveAttrConnection, so client and server are
 *   tested together: reuse, ordering, reconnects, timeouts, bad replies.
 */

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { mkdtemp, rm } from "node:fs/promises";
import { type AttrList, attrList, attrString } from "./attr-codec.js";
import { type AttrServerOptions, serveAttrConnection } from "./attr-server.js";
import { AttrClient, type AttrClientOptions, type AttrClientResult } from "./attr-client.js";
import { msgInit } from "./msg.js";

let dir = "";
let seq = 0;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "attr-client-"));
  msgInit({ sink: { write: () => undefined } });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Resolves after ms. */
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An echo handler: the reply is the request plus status=ok. */
function echo(req: AttrList): Promise<AttrList> {
  return Promise.resolve(new Map([...req, ["status", Buffer.from("ok")]]));
}

/** A listening server that can be stopped (dropping its connections) and restarted. */
class TestServer {
  readonly path: string;
  connections = 0;
  #opts: AttrServerOptions;
  #server: net.Server | null = null;
  #sockets = new Set<net.Socket>();

  /** Configures the server; call start(). */
  constructor(opts: Partial<AttrServerOptions>, p = path.join(dir, `c${++seq}`)) {
    this.path = p;
    this.#opts = { protocol: "test", maxFrame: 4096, idleTimeoutMs: 2000, handler: echo, ...opts };
  }

  /** Listens. */
  async start(): Promise<this> {
    const server = net.createServer((s) => {
      this.connections++;
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
      serveAttrConnection(s, this.#opts);
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(this.path, resolve));
    return this;
  }

  /** Stops listening and drops every connection. */
  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    this.#server = null;
    if (server !== null) await new Promise((resolve) => server.close(resolve));
  }
}

/** A client for p with quick test settings. */
function client(p: string, opts: Partial<AttrClientOptions> = {}): AttrClient {
  return new AttrClient({
    path: p,
    protocol: "test",
    maxFrame: 4096,
    timeoutMs: 1000,
    retries: 2,
    backoffMs: 20,
    ...opts,
  });
}

/** The reply's attribute as text, or the failure code. */
function show(r: AttrClientResult, name = "q"): string {
  return r.ok ? (attrString(r.reply, name) ?? "?") : r.code;
}

void test("request and reply; the connection is reused", async () => {
  const srv = await new TestServer({}).start();
  const c = client(srv.path);
  for (const q of ["a", "b", "c"]) assert.equal(show(await c.request({ q })), q);
  assert.equal(srv.connections, 1);
  c.close();
  await srv.stop();
});

void test("concurrent requests are serialized and answered in order", async () => {
  let active = 0;
  let most = 0;
  const handler = async (req: AttrList): Promise<AttrList> => {
    most = Math.max(most, ++active);
    await sleep(Math.random() * 5);
    active--;
    return echo(req);
  };
  const srv = await new TestServer({ handler }).start();
  const c = client(srv.path);
  const qs = Array.from({ length: 20 }, (_, i) => String(i));
  const results = await Promise.all(qs.map((q) => c.request({ q })));
  assert.deepEqual(
    results.map((r) => show(r)),
    qs,
  );
  assert.equal(most, 1);
  assert.equal(srv.connections, 1);
  c.close();
  await srv.stop();
});

void test("the client reconnects after the server restarts", async () => {
  const srv = await new TestServer({}).start();
  const c = client(srv.path);
  assert.equal(show(await c.request({ q: "before" })), "before");
  await srv.stop();
  await srv.start();
  assert.equal(show(await c.request({ q: "after" })), "after");
  assert.equal(srv.connections, 2);
  c.close();
  await srv.stop();
});

void test("a connection the server closed while idle is replaced transparently", async () => {
  const srv = await new TestServer({ idleTimeoutMs: 50 }).start();
  const c = client(srv.path);
  assert.equal(show(await c.request({ q: "1" })), "1");
  await sleep(150);
  assert.equal(show(await c.request({ q: "2" })), "2");
  assert.equal(srv.connections, 2);
  c.close();
  await srv.stop();
});

void test("connect failures are retried with backoff, then reported", async () => {
  const c = client(path.join(dir, "nobody-home"), { retries: 3, backoffMs: 20 });
  const started = Date.now();
  const r = await c.request({ q: "x" });
  const took = Date.now() - started;
  assert.equal(show(r), "ECONNECT");
  assert.ok(!r.ok && r.temporary);
  assert.ok(took >= 20 + 40 + 80 - 5, `waited ${took} ms`);
  assert.ok(took < 1000, `waited ${took} ms`);
  c.close();
});

void test("a server that comes up during the backoff is reached", async () => {
  const srv = new TestServer({});
  const c = client(srv.path, { retries: 5, backoffMs: 20 });
  const pending = c.request({ q: "late" });
  await sleep(50);
  await srv.start();
  assert.equal(show(await pending), "late");
  c.close();
  await srv.stop();
});

void test("a request without an answer times out; the next one uses a new connection", async () => {
  const handler = (req: AttrList): Promise<AttrList> =>
    attrString(req, "q") === "hang" ? new Promise<AttrList>(() => undefined) : echo(req);
  const srv = await new TestServer({ handler }).start();
  const c = client(srv.path, { timeoutMs: 100 });
  const started = Date.now();
  const r = await c.request({ q: "hang" });
  assert.equal(show(r), "ETIMEDOUT");
  assert.ok(Date.now() - started < 500);
  assert.equal(show(await c.request({ q: "next" })), "next");
  assert.equal(srv.connections, 2);
  c.close();
  await srv.stop();
});

void test("a reply larger than the client's maxFrame is a failure, not a crash", async () => {
  const handler = (req: AttrList): Promise<AttrList> =>
    attrString(req, "q") === "big" ? Promise.resolve(attrList({ v: "x".repeat(3000) })) : echo(req);
  const srv = await new TestServer({ handler }).start();
  const c = client(srv.path, { maxFrame: 1000 });
  assert.equal(show(await c.request({ q: "big" })), "EFRAMETOOBIG");
  assert.equal(show(await c.request({ q: "small" })), "small");
  c.close();
  await srv.stop();
});

void test("the wrong service is refused by its hello", async () => {
  const srv = await new TestServer({ protocol: "other" }).start();
  const c = client(srv.path);
  const r = await c.request({ q: "x" });
  assert.equal(show(r), "EPROTOCOL");
  assert.equal(srv.connections, 1, "no retry against the wrong service");
  c.close();
  await srv.stop();
});

void test("the server's error reply becomes an ESERVER failure", async () => {
  const srv = await new TestServer({ handler: () => Promise.reject(new Error("db down")) }).start();
  const c = client(srv.path);
  const r = await c.request({ q: "x" });
  assert.deepEqual(r, {
    ok: false,
    temporary: true,
    code: "ESERVER",
    reason: "temporary failure: request handler failed",
  });
  c.close();
  await srv.stop();
});

void test("a request too large to send fails locally", async () => {
  const c = client(path.join(dir, "unused"), { maxFrame: 100 });
  assert.equal(show(await c.request({ v: "x".repeat(200) })), "EFRAMETOOBIG");
  assert.equal(show(await c.request({ Bad: "x" })), "EBADREQUEST");
  c.close();
});

void test("close() fails the request in flight and the queued ones", async () => {
  const srv = await new TestServer({ handler: () => new Promise<AttrList>(() => undefined) }).start();
  const c = client(srv.path);
  const pending = [c.request({ q: "1" }), c.request({ q: "2" })];
  await sleep(50);
  c.close();
  assert.deepEqual(
    (await Promise.all(pending)).map((r) => show(r)),
    ["ECLOSED", "ECLOSED"],
  );
  assert.equal(show(await c.request({ q: "3" })), "ECLOSED");
  await srv.stop();
});
