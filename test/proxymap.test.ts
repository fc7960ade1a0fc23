/*
 * proxymap.test - proxy: tables end to end: a jailed daemon, master, proxymap
 *
 * DESCRIPTION
 *   Starts a real instance with a proxymap service and a jailed (chroot=y)
 *   test daemon (src/testing/proxy-test-daemon.ts). The table lives
 *   outside the queue directory, where the jail cannot read it: the daemon
 *   fails to read it directly, and resolves keys through
 *   proxy:hash:/that/file. Checks what an administrator would notice:
 *   found, not found and temporary failure come back as they are; a table
 *   missing from proxy_read_maps is refused and the log says how to
 *   approve it; a rebuilt table is seen without a restart; postmap -q and
 *   -s work through the proxy too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LineClient, makeInstance, sleep, type Instance } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";

/** Builds a hash: table from text with postmap. */
async function postmap(inst: Instance, path: string, text: string): Promise<void> {
  writeFileSync(path, text);
  const r = await runCli("postmap", ["-c", inst.etc, `hash:${path}`]);
  assert.equal(r.code, 0, r.stderr);
}

/** Sends one command to the jailed daemon and returns its answer. */
async function ask(inst: Instance, command: string): Promise<string> {
  const c = await LineClient.connect(join(inst.spool, "private", "proxytest"));
  try {
    c.send(command);
    return await c.line(20_000);
  } finally {
    c.send("quit");
    c.close();
  }
}

test("a jailed daemon resolves keys through proxymap; only approved tables are opened", async (t) => {
  const inst = makeInstance({
    master: ["proxymap  unix - - n - - proxymap", "proxytest unix - - y - - proxy-test-daemon.js", ""].join(
      "\n",
    ),
  });
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
  });
  const tables = join(inst.dir, "tables");
  mkdirSync(tables);
  chmodSync(tables, 0o755);
  const virtual = join(tables, "virtual");
  const other = join(tables, "other");
  const missing = join(tables, "missing");
  await postmap(inst, virtual, "alice@example.com  alice@mbox.example\nBob@Example.COM bob\n");
  await postmap(inst, other, "secret value\n");
  writeFileSync(
    join(inst.etc, "main.cf"),
    `proxy_read_maps = $virtual_alias_maps proxy:hash:${missing}\nvirtual_alias_maps = proxy:hash:${virtual}\n`,
    { flag: "a" },
  );
  const r = await inst.start();
  assert.equal(r.code, 0, `start failed: ${r.stderr}`);

  assert.equal(
    await ask(inst, `read ${virtual}.db`),
    "read denied ENOENT",
    "the table is not in the jail: a proxy: table is proxymap's",
  );
  assert.match(await ask(inst, `lookup hash:${virtual} alice@example.com`), /^tempfail /);
  assert.equal(await ask(inst, `lookup proxy:hash:${virtual} alice@example.com`), "found alice@mbox.example");
  assert.equal(await ask(inst, `lookup proxy:hash:${virtual} BOB@example.com`), "found bob");
  assert.equal(await ask(inst, `lookup proxy:hash:${virtual} carol@example.com`), "notfound");

  const denied = await ask(inst, `lookup proxy:hash:${other} secret`);
  assert.match(denied, /^tempfail .*proxymap service is not configured for table/);
  await inst.waitLog(new RegExp(`request for unapproved table: "hash:${other}"`));
  await inst.waitLog(new RegExp(`list proxy:hash:${other} in main.cf:proxy_read_maps`));

  const broken = await ask(inst, `lookup proxy:hash:${missing} x`);
  assert.match(broken, /^tempfail .*RETRY/, "an unreadable table is a temporary failure, not 'not found'");

  await postmap(inst, virtual, "alice@example.com  alice@new.example\n");
  let answer = "";
  for (let i = 0; i < 40; i++) {
    answer = await ask(inst, `lookup proxy:hash:${virtual} alice@example.com`);
    if (answer !== "found alice@mbox.example") break;
    await sleep(100);
  }
  assert.equal(answer, "found alice@new.example", "a rebuilt table is seen without a restart");

  const q = await runCli("postmap", ["-c", inst.etc, "-q", "alice@example.com", `proxy:hash:${virtual}`]);
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stdout, "alice@new.example\n");
  const s = await runCli("postmap", ["-c", inst.etc, "-s", `proxy:hash:${virtual}`]);
  assert.equal(s.stdout, "alice@example.com\talice@new.example\n", s.stderr);
  const n = await runCli("postmap", ["-c", inst.etc, "-q", "nobody@example.com", `proxy:hash:${virtual}`]);
  assert.equal(n.code, 1);
  const f = await runCli("postmap", ["-c", inst.etc, "-q", "secret", `proxy:hash:${other}`]);
  assert.equal(f.code, 1);
  assert.match(f.stderr, /postmap: fatal: table proxy:hash:.*other: query error: .*not configured/);
});
