/*
 * proxymap-serve.test - the proxymap requests, and the proxy: client, over a real socket
 *
 * DESCRIPTION
 *   Serves proxymap sessions on a Unix socket in a temporary directory and
 *   uses the proxy: table type (global/dict-proxy.ts) against it, so the
 *   wire contract is tested from both ends without master.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { dictCloseAll, DictFlag, dictOpen, dictSetRecheckInterval } from "../global/dict.js";
import { dictBuild } from "../global/dict-mkmap.js";
import { dictProxyConfigure, proxyKindFlag, proxySequence } from "../global/dict-proxy.js";
import { captureLog, showResult, tempDir } from "../global/dict-testkit.js";
import {
  PROXYMAP_PROTOCOL,
  ProxyStat,
  buildProxyRequest,
  parseProxyReply,
} from "../global/proxymap-proto.js";
import { attrList } from "../util/attr-codec.js";
import { proxymapSession } from "./proxymap-serve.js";

const log = captureLog();
dictSetRecheckInterval(0);
const dir = tempDir("postern-proxymap-");
const queue = join(dir, "spool");
mkdirSync(join(queue, "private"), { recursive: true });
const table = join(dir, "virtual");
writeFileSync(table, 'alice@example.com alice@mbox\nEmpty ""\n');
dictBuild("hash", table);
const re = join(dir, "checks.re");
writeFileSync(re, "/^Subject:.*viagra/ REJECT spam\n");
const approved = new Set([`hash:${table}`, `regexp:${re}`, `hash:${join(dir, "missing")}`]);
const server = net.createServer((sock) => {
  const session = proxymapSession({ allowed: approved, service: "proxymap" });
  const conn = serveAttrConnection(sock, {
    protocol: PROXYMAP_PROTOCOL,
    maxFrame: 65536,
    idleTimeoutMs: 5000,
    handler: session.handler,
  });
  void conn.done.then(() => session.close());
});
await new Promise<void>((r) => server.listen(join(queue, "private", "proxymap"), r));
dictProxyConfigure({ queueDirectory: queue, service: "proxymap", timeoutMs: 5000, maxFrame: 65536 });
after(() => {
  dictProxyConfigure({});
  dictCloseAll();
  server.close();
});

test("found, not found and temporary failure come back as they are", async () => {
  const d = dictOpen(`proxy:hash:${table}`);
  assert.equal(d.flags & DictFlag.FIXED, DictFlag.FIXED);
  assert.equal(showResult(await d.lookup("Alice@Example.COM")), "found: alice@mbox");
  assert.equal(showResult(await d.lookup("bob@example.com")), "notfound");
  const broken = await dictOpen(`proxy:hash:${join(dir, "missing")}`).lookup("x");
  assert.equal(broken.status, "tempfail");
  log.take();
});

test("flags travel: without FOLD_FIX the key keeps its case; regexp is a pattern table", async () => {
  const d = dictOpen(`proxy:hash:${table}`, { flags: DictFlag.NONE });
  assert.equal(showResult(await d.lookup("Alice@Example.COM")), "notfound");
  const r = dictOpen(`proxy:regexp:${re}`);
  assert.equal(r.flags & DictFlag.PATTERN, DictFlag.PATTERN);
  assert.equal(showResult(await r.lookup("Subject: cheap viagra")), "found: REJECT spam");
  assert.equal(proxyKindFlag(`unionmap:{cidr:/a, hash:/b}`), DictFlag.PATTERN);
  assert.equal(proxyKindFlag(`pipemap:{hash:/a, regexp:/b}`), DictFlag.FIXED);
});

test("an unapproved table is refused, and the log says how to approve it", async () => {
  const r = await dictOpen(`proxy:hash:/etc/shadow-table`).lookup("root");
  assert.equal(r.status, "tempfail");
  assert.match(showResult(r), /proxymap service is not configured for table "hash:\/etc\/shadow-table"/);
  const lines = log.take().join("\n");
  assert.match(lines, /request for unapproved table: "hash:\/etc\/shadow-table"/);
  assert.match(lines, /list proxy:hash:\/etc\/shadow-table in main.cf:proxy_read_maps/);
});

test("sequence lists an on-disk table through the service", async () => {
  const got: string[] = [];
  for await (const e of proxySequence(`hash:${table}`, DictFlag.FOLD_FIX))
    got.push(e.kind === "entry" ? `${e.key}=${e.value}` : `error ${e.reason}`);
  assert.deepEqual(got, ["alice@example.com=alice@mbox", 'empty=""']);
  const bad: string[] = [];
  for await (const e of proxySequence(`regexp:${re}`, 0)) bad.push(e.kind);
  assert.deepEqual(bad, ["error"]);
});

test("malformed requests get BAD and the connection stays usable", async () => {
  const c = new AttrClient({
    path: join(queue, "private", "proxymap"),
    protocol: PROXYMAP_PROTOCOL,
    maxFrame: 65536,
    timeoutMs: 5000,
    retries: 0,
    backoffMs: 10,
  });
  for (const bad of [
    attrList({ req: "update", table: `hash:${table}` }),
    attrList({ req: "lookup", table: "nocolon", inst_flags: 0, flags: 0, key: "k" }),
    attrList({ req: "lookup", table: `hash:${table}`, inst_flags: "x", flags: 0, key: "k" }),
    attrList({ req: "lookup", table: `hash:${table}`, inst_flags: 0, flags: 0, key: "a\0b" }),
  ]) {
    const r = await c.request(bad);
    assert.ok(r.ok);
    const reply = parseProxyReply(r.reply);
    assert.ok(reply.ok && reply.value.status === ProxyStat.BAD, JSON.stringify(reply));
  }
  const ok = await c.request(
    buildProxyRequest({ req: "open", table: `proxy:hash:${table}`, instFlags: DictFlag.FOLD_FIX }),
  );
  assert.ok(ok.ok);
  const reply = parseProxyReply(ok.reply);
  assert.ok(reply.ok && reply.value.status === ProxyStat.OK);
  assert.equal(reply.value.flags & DictFlag.FIXED, DictFlag.FIXED);
  c.close();
  log.take();
});

test("an unreachable service is a temporary failure", async () => {
  dictProxyConfigure({ queueDirectory: join(dir, "nowhere"), timeoutMs: 1000 });
  try {
    const r = await dictOpen(`proxy:hash:${table}`, { flags: DictFlag.FOLD_FIX | DictFlag.NO_REGSUB }).lookup(
      "x",
    );
    assert.equal(r.status, "tempfail");
    assert.match(log.take().join("\n"), /ECONNECT/);
  } finally {
    dictProxyConfigure({ queueDirectory: queue, timeoutMs: 5000 });
  }
});
