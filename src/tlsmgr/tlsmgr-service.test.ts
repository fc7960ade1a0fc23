import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attrList } from "../util/attr-codec.js";
import { AttrClient } from "../util/attr-client.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { TlsmgrClient, tlsmgrCacheId } from "../global/tlsmgr-client.js";
import {
  TLSMGR_FRAME_MAX,
  TLSMGR_PROTOCOL,
  TLSMGR_SESSION_MAX,
  TlsmgrReply,
} from "../global/tlsmgr-proto.js";
import { TlsmgrService } from "./tlsmgr-service.js";

/** A TlsmgrService on queue/private/tlsmgr; returns the queue directory. */
async function serve(t: { after: (fn: () => Promise<void>) => void }, svc: TlsmgrService): Promise<string> {
  const queue = mkdtempSync(join(tmpdir(), "postern-tlsmgr-unit-"));
  mkdirSync(join(queue, "private"));
  const server: Server = createServer((sock) => {
    serveAttrConnection(sock, {
      protocol: TLSMGR_PROTOCOL,
      maxFrame: TLSMGR_FRAME_MAX,
      idleTimeoutMs: 10_000,
      handler: (req) => Promise.resolve(svc.answer(req)),
    });
  });
  await new Promise<void>((r) => server.listen(join(queue, "private", "tlsmgr"), r));
  t.after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(queue, { recursive: true, force: true });
  });
  return queue;
}

const limits = { maxEntries: 100, maxBytes: 1 << 20 };

test("tlsmgr protocol: ticket key, lookup, update and delete through the client", async (t) => {
  const queue = await serve(t, new TlsmgrService({ ticketLifetime: 3600, limits }));
  const c = new TlsmgrClient(queue, 5000);
  t.after(() => Promise.resolve(c.close()));
  assert.equal(c.configured(), true);
  const k = await c.ticketKey();
  assert.ok(k.ok);
  assert.equal(k.key.length, 48);
  assert.equal(k.lifetime, 3600);
  const again = await c.ticketKey();
  assert.ok(again.ok);
  assert.deepEqual(again.key, k.key);
  assert.equal(await c.lookup("smtpd", "ab12"), null);
  assert.equal(await c.update("smtpd", "ab12", Buffer.from("sess"), 60), true);
  assert.deepEqual(await c.lookup("smtpd", "ab12"), Buffer.from("sess"));
  assert.equal(await c.lookup("smtp", "ab12"), null, "the caches are apart");
  await c.delete("smtpd", "ab12");
  assert.equal(await c.lookup("smtpd", "ab12"), null);
  assert.equal(await c.update("smtp", "x", Buffer.alloc(TLSMGR_SESSION_MAX + 1), 60), false);
  assert.equal(await c.update("smtp", "x", Buffer.from("s"), 0), false);
});

test("tlsmgr protocol: tickets off, malformed requests, no service", async (t) => {
  const queue = await serve(t, new TlsmgrService({ ticketLifetime: 0, limits }));
  const c = new TlsmgrClient(queue, 5000);
  t.after(() => Promise.resolve(c.close()));
  const k = await c.ticketKey();
  assert.deepEqual(k, { ok: false, off: true, reason: "session tickets are off" });
  const raw = new AttrClient({
    path: join(queue, "private", "tlsmgr"),
    protocol: TLSMGR_PROTOCOL,
    maxFrame: TLSMGR_FRAME_MAX,
    timeoutMs: 5000,
    retries: 0,
    backoffMs: 10,
  });
  t.after(() => Promise.resolve(raw.close()));
  for (const bad of [
    { request: "steal" },
    { request: "lookup" },
    { request: "lookup", cache_type: "imap", cache_id: "x" },
    { request: "lookup", cache_type: "smtp", cache_id: "a\u0001b" },
    { request: "update", cache_type: "smtp", cache_id: "x" },
    { request: "update", cache_type: "smtp", cache_id: "x", session: "s", timeout: "-1" },
    { request: "update", cache_type: "smtp", cache_id: "x".repeat(513), session: "s", timeout: "1" },
  ]) {
    const r = await raw.request(attrList(bad));
    assert.ok(r.ok, JSON.stringify(bad));
    const p = TlsmgrReply.parse(r.reply);
    assert.ok(p.ok);
    assert.equal(p.value.status, "fail", JSON.stringify(bad));
  }
  // The connection is still good after bad requests.
  assert.equal(await c.update("lmtp", "k", Buffer.from("v"), 5), true);
  const gone = new TlsmgrClient(join(queue, "nowhere"), 5000);
  assert.equal(gone.configured(), false);
  const g = await gone.ticketKey();
  assert.equal(g.ok, false);
  assert.equal(await gone.lookup("smtp", "k"), null);
});

test("tlsmgrCacheId: keys that fit travel as they are, others as their SHA-256", () => {
  assert.equal(tlsmgrCacheId("mx.example&192.0.2.1"), "mx.example&192.0.2.1");
  assert.match(tlsmgrCacheId("a\u0000b"), /^sha256:[0-9a-f]{64}$/);
  assert.match(tlsmgrCacheId("x".repeat(513)), /^sha256:[0-9a-f]{64}$/);
  assert.notEqual(tlsmgrCacheId("x".repeat(513)), tlsmgrCacheId("x".repeat(514)));
  assert.match(tlsmgrCacheId(""), /^sha256:/);
});
