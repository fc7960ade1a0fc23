/*
 * dict-memcache.test - memcache: tables against a real memcached
 *
 * DESCRIPTION
 *   Starts memcached (Debian package "memcached") once for this file on a
 *   free port of 127.0.0.1, and a second one on a UNIX-domain socket in a
 *   temporary directory, as the memcache account when the tests run as
 *   root. Both are stopped at the end, also when a test fails.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import "./dict.js";
import { memcacheOpen } from "./dict-memcache.js";
import {
  findBinary,
  freePort,
  removeDir,
  runAs,
  serverDir,
  startDaemon,
  writeCf,
} from "./dict-server-testkit.js";
import type { Daemon } from "./dict-server-testkit.js";
import { DICT_DEFAULT_FLAGS, DictFlag, type DictResult } from "./dict-types.js";
import { captureLog } from "./dict-testkit.js";

let tcpDaemon: Daemon | null = null;
let unixDaemon: Daemon | null = null;
let memcached = "";
let as: { uid: number; gid: number } | null = null;
let dir = "";
let port = 0;
let deadPort = 0;

/** Sends raw memcached commands and returns everything up to the expected last line. */
function raw(commands: string, last: RegExp, p = port): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: p });
    let got = "";
    s.setTimeout(3000, () => reject(new Error(`timeout; got ${got}`)));
    s.on("data", (b) => {
      got += b.toString("utf8");
      if (last.test(got)) {
        s.end();
        resolve(got);
      }
    });
    s.on("error", reject);
    s.write(commands);
  });
}

/** Stores a value with the memcached text protocol. */
async function mcSet(key: string, value: string): Promise<void> {
  const data = Buffer.from(value, "utf8");
  await raw(`set ${key} 0 0 ${data.length}\r\n${value}\r\n`, /STORED\r\n$/);
}

/** Starts memcached on the TCP port. */
async function startTcp(): Promise<Daemon> {
  const args = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "16"];
  return await startDaemon("memcached", memcached, args, { port, as });
}

before(async () => {
  const log = captureLog();
  process.on("exit", () => {
    if (process.env["SHOWLOG"]) console.error(log.lines.join("\n"));
  });
  memcached = findBinary(["/usr/bin/memcached"], "memcached");
  as = runAs("memcache");
  dir = serverDir("postern-mc-", as);
  port = await freePort();
  deadPort = await freePort();
  tcpDaemon = await startTcp();
  const sock = join(dir, "mc.sock");
  unixDaemon = await startDaemon("memcached-unix", memcached, ["-s", sock, "-a", "0700", "-m", "16"], {
    ready: () => existsSync(sock),
    as,
  });
  await mcSet("alias:info@example.test", "alice@example.test");
  await mcSet("info@example.test", "plain@example.test");
  await mcSet("big", "x".repeat(300));
});

after(async () => {
  await tcpDaemon?.stop();
  await unixDaemon?.stop();
  if (dir !== "") removeDir(dir);
});

let serial = 0;

/** Opens a memcache table with the given parameters. */
async function withMc(
  text: string,
  fn: (lookup: (k: string) => Promise<DictResult>) => Promise<void>,
  flags = DICT_DEFAULT_FLAGS,
): Promise<void> {
  serial += 1;
  const server = text.includes("memcache =") ? "" : `memcache = inet:127.0.0.1:${port}\n`;
  const d = memcacheOpen(writeCf(dir, `t${serial}.cf`, `${server}${text}\n`), flags);
  try {
    await fn(async (k) => await d.lookup(k));
  } finally {
    d.close();
  }
}

/** The value of a found result, or the status. */
function show(r: DictResult): string {
  return r.status === "found" ? r.value : r.status;
}

test("memcache: found, not found, key_format and %-expansions", async () => {
  await withMc("", async (lookup) => {
    assert.equal(show(await lookup("INFO@example.test")), "plain@example.test");
    assert.equal(show(await lookup("nobody@example.test")), "notfound");
  });
  await withMc("key_format = alias:%s", async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "alice@example.test");
  });
  await withMc("key_format = alias:%u@%d", async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "alice@example.test");
    assert.equal(show(await lookup("info")), "notfound", "no domain: not looked up");
  });
});

test("memcache: the domain filter", async () => {
  await withMc("domain = other.test, example.test", async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "plain@example.test");
  });
  await withMc("domain = other.test", async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "notfound");
  });
});

test("memcache: a backup table answers misses, and its answers are cached", async () => {
  const text = "key_format = bk:%s\nbackup = inline:{ { new@example.test = from backup } }\nttl = 60";
  await withMc(text, async (lookup) => {
    assert.equal(show(await lookup("new@example.test")), "from backup");
    assert.equal(show(await lookup("other@example.test")), "notfound");
  });
  const cached = await raw("get bk:new@example.test\r\n", /END\r\n$/);
  assert.match(cached, /^VALUE bk:new@example.test 0 11\r\nfrom backup\r\nEND\r\n$/);
  const deadWithBackup = `memcache = inet:127.0.0.1:${deadPort}\nbackup = inline:{a@example.test=b}\nretry_pause = 1`;
  await withMc(deadWithBackup, async (lookup) => {
    assert.equal(show(await lookup("a@example.test")), "b", "memcached down: the backup table still answers");
  });
});

test("memcache: key_digest, and keys memcached cannot hold", async () => {
  const long = `${"x".repeat(300)}@example.test`;
  await withMc(`key_digest = sha256\nbackup = inline:{${long}=long}`, async (lookup) => {
    assert.equal(show(await lookup(long)), "long");
  });
  const digest = createHash("sha256").update(long).digest("hex");
  assert.match(await raw(`get ${digest}\r\n`, /END\r\n$/), /\r\nlong\r\n/, "stored under the digest");
  await withMc("", async (lookup) => {
    for (const k of ["x\r\nflush_all", "x y", "x\0", "x".repeat(251), "\r\ndelete info@example.test"]) {
      assert.equal(show(await lookup(k)), "notfound", JSON.stringify(k));
    }
    assert.equal(
      show(await lookup("info@example.test")),
      "plain@example.test",
      "nothing was flushed or deleted",
    );
  });
});

test("memcache: data_size_limit bounds the reply; a dead server is a temporary failure", async () => {
  await withMc("data_size_limit = 100\nmax_try = 1", async (lookup) => {
    assert.equal((await lookup("big")).status, "tempfail");
    assert.equal(
      show(await lookup("info@example.test")),
      "plain@example.test",
      "a new connection after the error",
    );
  });
  const started = Date.now();
  await withMc(`memcache = inet:127.0.0.1:${deadPort}\nmax_try = 2\nretry_pause = 1`, async (lookup) => {
    assert.equal((await lookup("info@example.test")).status, "tempfail");
  });
  assert.ok(Date.now() - started < 5000);
});

test("memcache: UNIX-domain socket server", async () => {
  await withMc(
    `memcache = unix:${join(dir, "mc.sock")}\nbackup = inline:{u@example.test=v}`,
    async (lookup) => {
      assert.equal(show(await lookup("u@example.test")), "v");
      assert.equal(show(await lookup("nothing")), "notfound");
    },
  );
});

test("memcache: the connection is re-established after a server restart; NO_UNAUTH is refused", async () => {
  await withMc("max_try = 3\nretry_pause = 1", async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "plain@example.test");
    await tcpDaemon?.stop();
    tcpDaemon = await startTcp();
    await mcSet("info@example.test", "restarted@example.test");
    assert.equal(show(await lookup("info@example.test")), "restarted@example.test");
  });
  await withMc(
    "",
    async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    },
    DICT_DEFAULT_FLAGS | DictFlag.NO_UNAUTH,
  );
});
