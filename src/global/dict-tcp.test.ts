/*
 * dict-tcp.test - tcp: tables against a tcp_table(5) server written here
 *
 * DESCRIPTION
 *   The server answers "get key" lines on 127.0.0.1; special keys make it
 *   misbehave (400 replies, unknown codes, malformed and oversized lines,
 *   silence, dropped connections).
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { dictOpen, dictTypes } from "./dict.js";
import "./dict-servers.js";
import { dictTcpSetLimits, hexQuote, hexUnquote, tcpOpen } from "./dict-tcp.js";
import { freePort } from "./dict-server-testkit.js";
import { DICT_DEFAULT_FLAGS, DictFlag, type DictImpl, type DictResult } from "./dict-types.js";
import { captureLog } from "./dict-testkit.js";

let server: Server | null = null;
const sockets = new Set<Socket>();
let port = 0;
let deadPort = 0;
let connections = 0;

/** Answers one decoded key. */
function answer(sock: Socket, key: string): void {
  if (key === "info@example.test") sock.write("200 alice@example.test\n");
  else if (key === "spaced") sock.write("200 two%20words%0Aand%25more\n");
  else if (key === "temp") sock.write("400 try again\n");
  else if (key === "weird") sock.write("300 what\n");
  else if (key === "malformed") sock.write("hello\n");
  else if (key === "badhex") sock.write("200 %zz\n");
  else if (key === "long") sock.write(`200 ${"x".repeat(5000)}\n`);
  else if (key === "silent") return;
  else if (key === "drop") sock.destroy();
  else if (key.startsWith("echo:")) sock.write(`200 ${hexQuote(key.slice(5))}\n`);
  else sock.write("500 not found\n");
}

before(async () => {
  captureLog();
  dictTcpSetLimits({ timeoutMs: 1000, maxTries: 3, pauseMs: 50 });
  port = await freePort();
  deadPort = await freePort();
  server = createServer((sock) => {
    connections += 1;
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => undefined);
    let buf = "";
    sock.on("data", (chunk: Buffer) => {
      buf += chunk.toString("latin1");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^get (\S*)$/.exec(line);
        const key = m === null ? null : hexUnquote(m[1] ?? "");
        if (key === null) sock.write("400 bad request\n");
        else answer(sock, key);
      }
    });
  });
  await new Promise<void>((r) => server?.listen(port, "127.0.0.1", r));
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server?.close(r));
});

/** Opens a table, runs fn, closes the table. */
async function withTcp(
  name: string,
  fn: (lookup: (k: string) => Promise<DictResult>, d: DictImpl) => Promise<void>,
  flags = DICT_DEFAULT_FLAGS,
): Promise<void> {
  const d = tcpOpen(name, flags);
  try {
    await fn(async (k) => await d.lookup(k), d);
  } finally {
    d.close();
  }
}

/** The value of a found result, or the status. */
function show(r: DictResult): string {
  return r.status === "found" ? r.value : r.status;
}

test("tcp: %XX encoding both ways", () => {
  assert.equal(hexQuote("a b%c\n\0é"), "a%20b%25c%0A%00%C3%A9");
  assert.equal(hexUnquote("a%20b%25c%0a%00%C3%A9"), "a b%c\n\0é");
  assert.equal(hexUnquote("50%"), null);
  assert.equal(hexUnquote("%g0"), null);
});

test("tcp: found, not found, decoded replies; one connection is reused", async () => {
  const before = connections;
  await withTcp(`127.0.0.1:${port}`, async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "alice@example.test");
    assert.equal(show(await lookup("nobody@example.test")), "notfound");
    assert.equal(show(await lookup("spaced")), "two words\nand%more");
  });
  assert.equal(connections - before, 1);
  await withTcp(
    `[127.0.0.1]:${port}`,
    async (lookup) => {
      assert.equal(show(await lookup("INFO@example.TEST")), "alice@example.test");
    },
    DictFlag.FOLD_MUL,
  );
});

test("tcp: hostile keys cannot break the line protocol", async () => {
  await withTcp(`127.0.0.1:${port}`, async (lookup) => {
    for (const k of ["a b", "x\nget info@example.test", "50%", "%0A", "nul\0", "tab\there", "ünï"]) {
      assert.equal(show(await lookup(`echo:${k}`)), k, JSON.stringify(k));
    }
    assert.equal(show(await lookup("info@example.test\n")), "notfound");
  });
});

test("tcp: 400, unknown codes, malformed, oversized and missing replies fail temporarily", async () => {
  await withTcp(`127.0.0.1:${port}`, async (lookup) => {
    for (const k of ["temp", "weird", "malformed", "badhex", "long", "silent", "drop"]) {
      const started = Date.now();
      assert.equal((await lookup(k)).status, "tempfail", k);
      assert.ok(Date.now() - started < 5000, `${k}: bounded in time`);
    }
    assert.equal(show(await lookup("info@example.test")), "alice@example.test", "recovers");
  });
});

test("tcp: a dead server fails temporarily after the retries; bad names are unusable", async () => {
  const started = Date.now();
  await withTcp(`127.0.0.1:${deadPort}`, async (lookup) => {
    assert.equal((await lookup("info@example.test")).status, "tempfail");
  });
  assert.ok(Date.now() - started < 3000);
  for (const bad of ["127.0.0.1", "unix:/tmp/x", "host:port"]) {
    await withTcp(bad, async (lookup) => {
      assert.equal((await lookup("x")).status, "tempfail", bad);
    });
  }
  await withTcp(
    `127.0.0.1:${port}`,
    async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    },
    DictFlag.NO_UNAUTH,
  );
});

test("tcp: the server table types are registered; dictOpen reaches them", async () => {
  for (const t of ["pgsql", "mysql", "sqlite", "ldap", "memcache", "socketmap", "tcp"]) {
    assert.ok(dictTypes().includes(t), t);
  }
  const d = dictOpen(`tcp:127.0.0.1:${port}`);
  try {
    assert.equal(show(await d.lookup("info@example.test")), "alice@example.test");
  } finally {
    d.close();
  }
});
