/*
 * embedded-user.test - "npm start" as a normal user: mail accepted and delivered
 *
 * DESCRIPTION
 *   Runs what "npm start" runs (postern --embedded, in a fresh directory)
 *   as a user who is not root: nobody, when the test runs as root, else
 *   the user running the test. The embedded instance is made from
 *   conf/master.cf as shipped; the only change is its SMTP port (a free one
 *   instead of 2525) and its log (a file instead of standard output).
 *   "postern check" says what that mode protects and what it does not; a
 *   message sent with Python's smtplib to that user is delivered to the
 *   instance's own Maildir.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { EMBEDDED_SMTP } from "../src/global/embedded.js";
import { freePort, until } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { getUser } from "../src/util/unix-users.js";

const root = process.getuid?.() === 0;

test("npm start as a normal user: the shipped master.cf accepts a message and delivers it to that user", async (t) => {
  const user = root
    ? getUser("nobody")
    : { name: userInfo().username, uid: userInfo().uid, gid: userInfo().gid };
  assert.ok(user !== null, "the nobody account exists");
  const dir = mkdtempSync(join(tmpdir(), "postern-user-"));
  chmodSync(dir, 0o755);
  if (root) chownSync(dir, user.uid, user.gid);
  const as = { cwd: dir, uid: user.uid, gid: user.gid, timeoutMs: 60_000 };
  const etc = join(dir, "var", "etc");
  t.after(async () => {
    await runCli("postern", ["-c", etc, "abort"], as);
    rmSync(dir, { recursive: true, force: true });
  });

  // The first --embedded command makes the instance, as npm start would.
  const check = await runCli("postern", ["check", "--embedded"], as);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stderr, /privilege separation is off/);
  assert.match(check.stderr, /chroot=y services \([^)]*cleanup[^)]*\) run in a jail/);
  const port = await freePort();
  const master = readFileSync(join(etc, "master.cf"), "utf8");
  const shipped = readFileSync(join(process.cwd(), "conf", "master.cf"), "utf8");
  assert.equal(master, shipped.replace(/^smtp(\s+)inet /m, `${EMBEDDED_SMTP} inet `));
  writeFileSync(join(etc, "master.cf"), master.replace(`${EMBEDDED_SMTP} `, `127.0.0.1:${port} `));
  const main = readFileSync(join(etc, "main.cf"), "utf8");
  writeFileSync(
    join(etc, "main.cf"),
    main.replace("maillog_file = /dev/stdout", `maillog_file = ${dir}/maillog`),
  );

  const started = await runCli("postern", ["start", "--embedded"], as);
  assert.equal(started.code, 0, started.stderr);
  const sent = spawnSync(
    "/usr/bin/python3",
    [
      "-c",
      `import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.sendmail("someone@example.org", [sys.argv[2] + "@localhost"], "Subject: user mode\\r\\n\\r\\nhello, user\\r\\n")`,
      String(port),
      user.name,
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(sent.status, 0, `${sent.stdout}${sent.stderr}`);
  const box = join(dir, "var", "mail", user.name, "new");
  const mailbox = (): string[] => {
    try {
      return readdirSync(box);
    } catch {
      return [];
    }
  };
  await until("delivery to the user's Maildir in the instance", () => mailbox().length === 1, {
    timeoutMs: 30_000,
  });
  assert.match(readFileSync(join(box, mailbox()[0] ?? ""), "utf8"), /hello, user/);
  const log = (): string => readFileSync(join(dir, "maillog"), "utf8");
  await until("the delivery's log line", () => /status=sent \(delivered to maildir\)/.test(log()));
  assert.doesNotMatch(log(), /fatal|panic/);
});
