/*
 * postscreen-fleet.test - two Postern hosts share postscreen's cache through a real memcached
 *
 * DESCRIPTION
 *   Two instances (two "hosts") use postscreen_cache_map = memcache:...
 *   with the same memcached (Debian package memcached). A client that
 *   passed on one host is remembered by the other: PASS OLD at once, with
 *   no teaser banner. (The table's .cf file must be readable by
 *   mail_owner, which postscreen runs as.)
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import {
  findBinary,
  freePort,
  removeDir,
  runAs,
  serverDir,
  startDaemon,
  writeCf,
  type Daemon,
} from "../src/global/dict-server-testkit.js";
import { postscreenInstance } from "../src/testing/postscreen-instance.js";
import { smtpCmd, smtpConnect } from "../src/testing/smtpd-instance.js";

let daemon: Daemon | null = null;
let dir = "";
let cf = "";

before(async () => {
  const bin = findBinary(["/usr/bin/memcached"], "memcached");
  const as = runAs("memcache");
  dir = serverDir("postern-psmc-", as);
  const port = await freePort();
  daemon = await startDaemon(
    "memcached",
    bin,
    ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "16"],
    {
      port,
      as,
    },
  );
  chmodSync(dir, 0o755);
  cf = writeCf(
    dir,
    "postscreen_cache.cf",
    `memcache = inet:127.0.0.1:${port}\nkey_format = postscreen:%s\nttl = 600\n`,
  );
});

after(async () => {
  await daemon?.stop();
  removeDir(dir);
});

test("a client that passed on one host passes at once on another (shared memcache cache)", async (t) => {
  const main = `postscreen_greet_wait = 1s\npostscreen_cache_map = memcache:${cf}\n`;
  const one = await postscreenInstance(t, main);
  const two = await postscreenInstance(t, main);
  const first = await smtpConnect(one.port, "127.0.0.2");
  assert.equal(
    await smtpCmd(first, null),
    "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern",
  );
  assert.match(await smtpCmd(first, "QUIT"), /^221 /);
  await one.waitLog(/PASS NEW \[127\.0\.0\.2\]/);
  const second = await smtpConnect(two.port, "127.0.0.2");
  assert.equal(
    await smtpCmd(second, null),
    "220 mx.example.org ESMTP Postern",
    "the other host greets through smtpd at once",
  );
  await two.waitLog(/PASS OLD \[127\.0\.0\.2\]/);
  second.close();
  const stranger = await smtpConnect(two.port, "127.0.0.3");
  assert.equal(
    await stranger.line(),
    "220-mx.example.org ESMTP Postern",
    "a client seen nowhere is screened",
  );
  stranger.close();
});
