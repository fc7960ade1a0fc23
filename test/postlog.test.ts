/*
 * postlog.test - the postlog command and the postlogd service
 *
 * DESCRIPTION
 *   With Debian's postlog entry in master.cf and maillog_file set, the
 *   postlog command, run by an ordinary user, gets its lines into the log
 *   under its own tag; a malformed record sent straight to the service is
 *   dropped with a warning, and only postlogd may log in another's name.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { LineClient, freePort, shippedMaster, startInstance } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { getUser } from "../src/util/unix-users.js";

test("postlog writes to maillog_file through postlogd, in its own tag; malformed records are dropped", async (t) => {
  const port = await freePort();
  // conf/master.cf as shipped plus Debian's postlog line.
  const inst = await startInstance(t, {
    master: shippedMaster(port, "postlog   unix-dgram n  -       n       -       1       postlogd\n"),
  });
  const nobody = process.getuid?.() === 0 ? getUser("nobody") : null;
  const as = nobody !== null ? { uid: nobody.uid, gid: nobody.gid } : {};
  const r = await runCli("postlog", ["-c", inst.etc, "-t", "mytool", "-p", "warn", "hello", "there"], as);
  assert.equal(r.code, 0, r.stderr);
  await inst.waitLog(/ mytool\[\d+\]: warning: hello there$/m);
  const lines = await runCli("postlog", ["-c", inst.etc], { ...as, input: "first line\nsecond line\n" });
  assert.equal(lines.code, 0, lines.stderr);
  await inst.waitLog(/ postfix\/postlog\[\d+\]: second line$/m);
  const c = await LineClient.connect(join(inst.spool, "public", "postlog"));
  c.sendRaw("not a record at all\n");
  c.close();
  await inst.waitLog(/postfix\/postlogd\[\d+\]: warning: malformed log record from a client dropped/);
  const bad = await runCli("postlog", ["-c", inst.etc, "-p", "loud", "x"], as);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown priority "loud"/);
});
