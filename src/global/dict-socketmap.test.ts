/*
 * dict-socketmap.test - socketmap: tables against a socketmap server written here
 *
 * DESCRIPTION
 *   The server speaks the Sendmail socketmap protocol on 127.0.0.1 and on
 *   a UNIX-domain socket; special keys make it misbehave (errors, silence,
 *   oversized and malformed replies, dropped connections).
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { dictSocketmapSetLimits, socketmapOpen } from "./dict-socketmap.js";
import { freePort, removeDir, serverDir } from "./dict-server-testkit.js";
import { DICT_DEFAULT_FLAGS, DictFlag, type DictImpl, type DictResult } from "./dict-types.js";
import { captureLog } from "./dict-testkit.js";

const servers: Server[] = [];
const sockets = new Set<Socket>();
let port = 0;
let deadPort = 0;
let dir = "";
let connections = 0;
const requests: string[] = [];

/** Answers one request "name key". */
function answer(sock: Socket, request: string): void {
  const space = request.indexOf(" ");
  const map = request.slice(0, space);
  const key = request.slice(space + 1);
  requests.push(request);
  const reply = (text: string): boolean => sock.write(`${Buffer.byteLength(text)}:${text},`);
  if (map !== "aliases" && map !== "echo") reply("PERM unknown map");
  else if (map === "echo") reply(`OK ${key}`);
  else if (key === "info@example.test") reply("OK alice@example.test");
  else if (key === "temp") reply("TEMP database is down");
  else if (key === "timeout") reply("TIMEOUT slow");
  else if (key === "perm") reply("PERM broken");
  else if (key === "weird") reply("MAYBE");
  else if (key === "huge") reply(`OK ${"x".repeat(200)}`);
  else if (key === "malformed") sock.write("5:OK,x,");
  else if (key === "silent") return;
  else if (key === "drop") sock.destroy();
  else if (key === "bye") {
    reply("OK bye");
    sock.end();
  } else reply("NOTFOUND ");
}

/** Parses netstrings from a connection and answers each. */
function serve(sock: Socket): void {
  connections += 1;
  sockets.add(sock);
  sock.on("close", () => sockets.delete(sock));
  sock.on("error", () => undefined);
  let buf = Buffer.alloc(0);
  sock.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const colon = buf.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(buf.subarray(0, colon).toString("latin1"));
      if (buf.length < colon + len + 2) return;
      answer(sock, buf.subarray(colon + 1, colon + 1 + len).toString("utf8"));
      buf = buf.subarray(colon + len + 2);
    }
  });
}

/** Starts listening on a port or a path. */
function listen(where: number | string): Promise<void> {
  return new Promise((resolve) => {
    const srv = createServer(serve);
    servers.push(srv);
    if (typeof where === "number") srv.listen(where, "127.0.0.1", resolve);
    else srv.listen(where, resolve);
  });
}

before(async () => {
  captureLog();
  dictSocketmapSetLimits({ timeoutMs: 1000, maxReply: 100 });
  dir = serverDir("postern-sockmap-", null);
  port = await freePort();
  deadPort = await freePort();
  await listen(port);
  await listen(join(dir, "sockmap"));
});

after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  removeDir(dir);
});

/** Opens a table, runs fn, closes the table. */
async function withMap(
  name: string,
  fn: (lookup: (k: string) => Promise<DictResult>, d: DictImpl) => Promise<void>,
  flags = DICT_DEFAULT_FLAGS,
): Promise<void> {
  const d = socketmapOpen(name, flags);
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

test("socketmap: found and not found over TCP and UNIX-domain sockets; one connection is reused", async () => {
  for (const name of [`inet:127.0.0.1:${port}:aliases`, `unix:${join(dir, "sockmap")}:aliases`]) {
    const before = connections;
    await withMap(name, async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
      assert.equal(show(await lookup("nobody@example.test")), "notfound");
      assert.equal(show(await lookup("Info@Example.test")), "notfound", "no FOLD_MUL: the key is sent as is");
    });
    assert.equal(connections - before, 1, name);
  }
  await withMap(
    `inet:127.0.0.1:${port}:aliases`,
    async (lookup) => {
      assert.equal(show(await lookup("Info@Example.test")), "alice@example.test");
    },
    DictFlag.FOLD_MUL,
  );
});

test("socketmap: server errors, bad replies, silence and oversized replies fail temporarily", async () => {
  await withMap(`inet:127.0.0.1:${port}:aliases`, async (lookup) => {
    for (const k of ["temp", "timeout", "perm", "weird", "huge", "malformed", "silent", "drop"]) {
      const started = Date.now();
      assert.equal((await lookup(k)).status, "tempfail", k);
      assert.ok(Date.now() - started < 3000, `${k}: bounded in time`);
    }
    assert.equal(show(await lookup("info@example.test")), "alice@example.test", "recovers after errors");
  });
  await withMap(`inet:127.0.0.1:${port}:nosuchmap`, async (lookup) => {
    assert.equal((await lookup("x")).status, "tempfail");
  });
});

test("socketmap: a connection closed by the server is replaced transparently", async () => {
  await withMap(`inet:127.0.0.1:${port}:aliases`, async (lookup) => {
    assert.equal(show(await lookup("bye")), "bye");
    assert.equal(show(await lookup("info@example.test")), "alice@example.test");
  });
});

test("socketmap: hostile keys arrive intact; a key that is too long is not sent", async () => {
  dictSocketmapSetLimits({ maxQuery: 50 });
  try {
    await withMap(`inet:127.0.0.1:${port}:echo`, async (lookup) => {
      for (const k of ["a b", "3:abc,", "x,y:z", "line\nbreak\r\n", "nul\0byte", "ünïcode", ""]) {
        assert.equal(show(await lookup(k)), k, JSON.stringify(k));
      }
      const sent = requests.length;
      assert.equal(show(await lookup("y".repeat(51))), "notfound");
      assert.equal(requests.length, sent, "not sent");
    });
  } finally {
    dictSocketmapSetLimits({ maxQuery: 10000 });
  }
});

test("socketmap: a dead server fails temporarily; bad names and NO_UNAUTH make the table unusable", async () => {
  await withMap(`inet:127.0.0.1:${deadPort}:aliases`, async (lookup) => {
    assert.equal((await lookup("info@example.test")).status, "tempfail");
  });
  for (const bad of [
    `127.0.0.1:${port}:aliases`,
    `inet:127.0.0.1:${port}`,
    "unix:/x:",
    "inet:host:port:map",
  ]) {
    await withMap(bad, async (lookup) => {
      assert.equal((await lookup("x")).status, "tempfail", bad);
    });
  }
  await withMap(
    `inet:127.0.0.1:${port}:aliases`,
    async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    },
    DictFlag.NO_UNAUTH,
  );
});
