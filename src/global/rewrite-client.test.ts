/*
 * rewrite-client.test - RewriteClient against a scripted server: cache age and size, failures
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attrList, attrString, type AttrList } from "../util/attr-codec.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { RewriteClient } from "./rewrite-client.js";
import { REWRITE_FRAME_MAX, REWRITE_PROTOCOL } from "./rewrite-proto.js";

/** A fake rewrite service; answer() decides each reply. */
async function fakeService(
  t: { after: (fn: () => Promise<void>) => void },
  answer: (req: AttrList) => AttrList,
): Promise<{ dir: string; requests: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "rewrite-client-"));
  mkdirSync(join(dir, "private"));
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock.on("close", () => sockets.delete(sock)));
    serveAttrConnection(sock, {
      protocol: REWRITE_PROTOCOL,
      maxFrame: REWRITE_FRAME_MAX,
      idleTimeoutMs: 10_000,
      handler: (req) => {
        requests.push(attrString(req, "address") ?? "");
        return Promise.resolve(answer(req));
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(join(dir, "private", "rewrite"), resolve));
  t.after(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const sock of sockets) sock.destroy();
    await closed;
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, requests };
}

/** A resolve reply for an address. */
function okReply(req: AttrList): AttrList {
  const address = attrString(req, "address") ?? "";
  return attrList({ status: "ok", transport: "smtp", nexthop: "hop", recipient: address, flags: 16 });
}

test("answers are cached up to cacheTtlMs and cacheSize; least recently used go first", async (t) => {
  const svc = await fakeService(t, okReply);
  let now = 0;
  const rw = new RewriteClient(svc.dir, { cacheSize: 2, cacheTtlMs: 30_000, now: () => now });
  t.after(() => Promise.resolve(rw.close()));
  const want = { transport: "smtp", nexthop: "hop", recipient: "a@x", flags: 16 };
  assert.deepEqual(await rw.resolve("", "a@x"), { ok: true, value: want });
  await rw.resolve("", "a@x");
  await rw.resolve("s@y", "a@x");
  assert.deepEqual(svc.requests, ["a@x", "a@x"], "the sender is part of the key");
  await rw.resolve("", "b@x");
  await rw.resolve("s@y", "a@x");
  await rw.resolve("", "c@x");
  await rw.resolve("s@y", "a@x");
  await rw.resolve("", "b@x");
  assert.deepEqual(svc.requests, ["a@x", "a@x", "b@x", "c@x", "b@x"], "two entries at most, LRU order");
  now += 30_000;
  await rw.resolve("s@y", "a@x");
  assert.equal(svc.requests.length, 6, "an entry expires after cacheTtlMs");
});

test("resolveVerify asks in the verify context and is cached apart from resolve", async (t) => {
  const contexts: string[] = [];
  const svc = await fakeService(t, (req) => {
    contexts.push(attrString(req, "context") ?? "(none)");
    const reply = okReply(req);
    if (attrString(req, "context") === "verify") reply.set("transport", Buffer.from("probe"));
    return reply;
  });
  const rw = new RewriteClient(svc.dir);
  t.after(() => Promise.resolve(rw.close()));
  const regular = { ok: true, value: { transport: "smtp", nexthop: "hop", recipient: "a@x", flags: 16 } };
  const verify = { ok: true, value: { transport: "probe", nexthop: "hop", recipient: "a@x", flags: 16 } };
  assert.deepEqual(await rw.resolve("", "a@x"), regular);
  assert.deepEqual(await rw.resolveVerify("", "a@x"), verify);
  assert.deepEqual(await rw.resolve("", "a@x"), regular);
  assert.deepEqual(await rw.resolveVerify("", "a@x"), verify);
  assert.deepEqual(contexts, ["(none)", "verify"], "one request each, the regular one as before");
});

test("temporary failures and bad replies are results, and are not cached", async (t) => {
  let mode: "tempfail" | "ok" | "short" = "tempfail";
  const svc = await fakeService(t, (req) => {
    if (mode === "tempfail") return attrList({ status: "tempfail", reason: "transport_maps lookup failure" });
    if (mode === "short") return attrList({ status: "ok", transport: "smtp" });
    return attrString(req, "request") === "rewrite"
      ? attrList({ status: "ok", address: "user@example.com" })
      : okReply(req);
  });
  const rw = new RewriteClient(svc.dir);
  t.after(() => Promise.resolve(rw.close()));
  assert.deepEqual(await rw.resolve("", "a@x"), {
    ok: false,
    temporary: true,
    code: "ETEMPFAIL",
    reason: "transport_maps lookup failure",
  });
  mode = "short";
  const short = await rw.resolve("", "a@x");
  assert.equal(short.ok ? "" : short.code, "EBADREPLY");
  mode = "ok";
  assert.equal((await rw.resolve("", "a@x")).ok, true);
  assert.deepEqual(await rw.rewrite("local", "user"), { ok: true, value: "user@example.com" });
  assert.equal(svc.requests.length, 4);
});

test("an unreachable service is a temporary failure", async () => {
  const rw = new RewriteClient(join(tmpdir(), "no-such-postern-queue"), { timeoutMs: 1000 });
  const r = await rw.resolve("", "a@x");
  assert.equal(r.ok ? "" : r.code, "ECONNECT");
  rw.close();
});
