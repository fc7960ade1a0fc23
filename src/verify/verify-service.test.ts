/*
 * verify-service.test - the verify protocol end to end over a socket: VerifyClient, VerifyService, the cache
 *
 * DESCRIPTION
 *   The real service logic behind serveAttrConnection on a Unix socket,
 *   with the probe sender replaced by a counter: queries, updates,
 *   malformed requests, and a flood of 10,000 distinct unknown addresses
 *   that must leave the probes, the cache and its file within their
 *   limits.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import { attrInt, attrString } from "../util/attr-codec.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { dbEntries } from "../global/dict-db.js";
import { VerifyClient } from "../global/verify-client.js";
import { ADDR_STATUS, VERIFY_ADDR_MAX, VERIFY_FRAME_MAX, VERIFY_PROTOCOL } from "../global/verify-proto.js";
import { VerifyCache, type VerifySettings } from "./verify-cache.js";
import { VerifyService } from "./verify-service.js";
import { VerifyStore } from "./verify-store.js";

const SETTINGS: VerifySettings = {
  posExpire: 31 * 86400,
  posRefresh: 7 * 86400,
  negCache: true,
  negExpire: 3 * 86400,
  negRefresh: 3 * 3600,
  limit: 500,
  pendingLimit: 50,
  rateLimit: 0,
};

interface Rig {
  dir: string;
  svc: VerifyService;
  client: VerifyClient;
  probes: string[];
}

/** Starts the service on dir/private/verify; stopped after the test. */
async function rig(t: { after: (fn: () => Promise<void>) => void }, s: VerifySettings): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), "verify-service-"));
  mkdirSync(join(dir, "private"));
  const probes: string[] = [];
  const store = VerifyStore.open(`btree:${join(dir, "verify_cache")}`);
  const svc = new VerifyService({
    cache: new VerifyCache(s),
    store,
    saveDelayMs: 50,
    probe: (address) => {
      probes.push(address);
      return Promise.resolve({ ok: true, id: `P${probes.length}` });
    },
  });
  const socks = new Set<Socket>();
  const server = createServer((sock) => {
    socks.add(sock.on("close", () => socks.delete(sock)));
    serveAttrConnection(sock, {
      protocol: VERIFY_PROTOCOL,
      maxFrame: VERIFY_FRAME_MAX,
      idleTimeoutMs: 10_000,
      handler: (req) => Promise.resolve(svc.handle(req)),
    });
  });
  await new Promise<void>((resolve) => server.listen(join(dir, "private", "verify"), resolve));
  const client = new VerifyClient(dir, "verify", 5000, { persistent: true });
  t.after(async () => {
    client.close();
    svc.flush();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const sock of socks) sock.destroy();
    await closed;
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, svc, client, probes };
}

test("query, probe, update, answer", async (t) => {
  const r = await rig(t, SETTINGS);
  assert.ok(r.client.configured());
  const q1 = await r.client.query("nobody@example.com");
  assert.deepEqual(q1, { ok: true, status: ADDR_STATUS.TODO, reason: "Address verification in progress" });
  await r.svc.settled();
  assert.deepEqual(r.probes, ["nobody@example.com"]);
  const q2 = await r.client.query("nobody@example.com");
  assert.equal(q2.ok && q2.status, ADDR_STATUS.TODO);
  assert.equal(r.probes.length, 1, "one probe per address in flight");
  assert.deepEqual(
    await r.client.update("nobody@example.com", ADDR_STATUS.BOUNCE, 'unknown user:\r\n"nobody"'),
    {
      ok: true,
    },
  );
  const q3 = await r.client.query("nobody@example.com");
  assert.deepEqual(q3, { ok: true, status: ADDR_STATUS.BOUNCE, reason: 'unknown user:??"nobody"' });
  assert.deepEqual(await r.client.update("known@example.com", ADDR_STATUS.OK, "delivers to mailbox"), {
    ok: true,
  });
  const q4 = await r.client.query("known@example.com");
  assert.equal(q4.ok && q4.status, ADDR_STATUS.OK);
});

test("malformed requests get a 'bad' answer, never a crash", async (t) => {
  const r = await rig(t, SETTINGS);
  const raw = new AttrClient({
    path: join(r.dir, "private", "verify"),
    protocol: VERIFY_PROTOCOL,
    maxFrame: VERIFY_FRAME_MAX,
    timeoutMs: 5000,
    retries: 0,
    backoffMs: 10,
  });
  t.after(() => raw.close());
  for (const req of [
    { request: "query" },
    { request: "frobnicate", address: "a@b" },
    { request: "update", address: "a@b", addr_status: 3, reason: "x" },
    { request: "update", address: "a@b", addr_status: 0 },
    { request: "query", address: "x".repeat(VERIFY_ADDR_MAX + 1) },
    { request: "query", address: "a\nb@example.com" },
  ]) {
    const res = await raw.request(req);
    assert.ok(res.ok, JSON.stringify(req));
    assert.equal(attrString(res.reply, "status"), "bad", JSON.stringify(req));
  }
  const ok = await raw.request({ request: "query", address: "fine@example.com" });
  assert.ok(ok.ok);
  assert.equal(attrInt(ok.reply, "addr_status"), ADDR_STATUS.TODO, "the service still answers");
  const long = await r.client.query("y".repeat(VERIFY_ADDR_MAX + 1));
  assert.equal(long.ok, false, "the client refuses an address that is too long");
});

test("10,000 distinct unknown addresses: probes, cache and its file stay within their limits", async (t) => {
  const r = await rig(t, SETTINGS);
  const started = Date.now();
  for (let i = 0; i < 10_000; i++) {
    const q = await r.client.query(`flood${i}@example.net`);
    assert.ok(q.ok && q.status === ADDR_STATUS.TODO);
  }
  await r.svc.settled();
  assert.ok(r.probes.length <= SETTINGS.pendingLimit, `${r.probes.length} probes`);
  assert.equal(r.probes.length, SETTINGS.pendingLimit, "probes up to the limit are sent");
  assert.ok(r.svc.cache.size <= SETTINGS.limit, `cache holds ${r.svc.cache.size}`);
  r.svc.flush();
  const file = join(r.dir, "verify_cache.db");
  assert.ok(existsSync(file));
  assert.ok([...dbEntries(file)].length <= SETTINGS.limit, "the saved cache is bounded too");
  assert.ok(Date.now() - started < 60_000);
});
