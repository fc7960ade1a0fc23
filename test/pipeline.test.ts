/*
 * pipeline.test - mail from the outside world to a user's mailbox, all real
 *
 * DESCRIPTION
 *   One instance runs conf/master.cf as shipped (jailed pickup, cleanup,
 *   trivial-rewrite; smtpd, qmgr and local as Postfix runs them). A message sent with Python's smtplib
 *   over SMTP, and one posted with the sendmail command by an ordinary
 *   user, each end up in a real user's mailbox (Maildir and mbox), read
 *   back with Python's mailbox module; the log shows Postfix's lines for
 *   every step.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, shippedMaster, sleep, startInstance, type Instance } from "../src/testing/instance.js";
import { DOMAIN, makeWorld, readMailbox, type World } from "../src/testing/local-world.js";
import { runCli } from "../src/testing/run-cli.js";

/** Starts an instance with the whole mail path. */
async function instance(
  t: { after: (fn: () => Promise<void>) => void },
  world: World,
  main: string,
): Promise<Instance & { port: number }> {
  const port = await freePort();
  const inst = await startInstance(
    t,
    {
      main: [
        `myhostname = ${DOMAIN}`,
        "mydestination = $myhostname, localhost",
        "mail_owner = mail",
        "alias_maps =",
        "smtpd_peername_lookup = no",
        "# Tests reach no network: mail for any other domain fails at once.",
        "default_transport = error:5.0.0 no remote mail in tests",
        main,
      ].join("\n"),
      master: shippedMaster(port),
    },
    () => world.cleanup(),
  );
  return Object.assign(inst, { port });
}

/** Waits until a path exists and a mailbox there holds n messages. */
async function mailbox(
  inst: Instance,
  kind: "maildir" | "mbox",
  path: string,
  n: number,
): Promise<ReturnType<typeof readMailbox>> {
  for (let i = 0; i < 200; i++) {
    if (existsSync(path)) {
      const box = readMailbox(kind, path);
      if (box.length >= n) return box;
    }
    await sleep(100);
  }
  throw new Error(`no ${n} message(s) in ${path}; log:\n${inst.log()}`);
}

test("SMTP to a local user's Maildir, with Postfix's log lines on the way", async (t) => {
  assert.equal(process.getuid?.(), 0, "run the suite as root: delivery writes other users' mailboxes");
  const world = makeWorld();
  const alice = world.user("pa");
  const inst = await instance(t, world, "home_mailbox = Maildir/");
  const script = join(world.dir, "send.py");
  writeFileSync(
    script,
    `import smtplib\ns = smtplib.SMTP("127.0.0.1", ${inst.port})\ns.sendmail("carol@remote.example", ["${alice.name}@${DOMAIN}"], "From: carol@remote.example\\r\\nTo: ${alice.name}@${DOMAIN}\\r\\nSubject: over smtp\\r\\n\\r\\nHello Alice.\\r\\n")\ns.quit()\n`,
  );
  const r = spawnSync("/usr/bin/python3", [script], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const box = await mailbox(inst, "maildir", join(alice.home, "Maildir"), 1);
  assert.equal(box[0]?.subject, "over smtp");
  assert.equal(box[0]?.returnPath, "<carol@remote.example>");
  assert.deepEqual(box[0]?.deliveredTo, [`${alice.name}@${DOMAIN}`]);
  assert.match(box[0]?.body ?? "", /Hello Alice\./);
  const id = /smtpd\[\d+\]: ([0-9A-F]+): client=unknown\[127\.0\.0\.1\]/.exec(inst.log())?.[1];
  assert.ok(id, inst.log());
  await inst.waitLog(
    new RegExp(`qmgr\\[\\d+\\]: ${id}: from=<carol@remote\\.example>, size=\\d+, nrcpt=1 \\(queue active\\)`),
  );
  await inst.waitLog(
    new RegExp(
      `local\\[\\d+\\]: ${id}: to=<${alice.name}@${DOMAIN}>, relay=local, delay=[\\d.]+, delays=[\\d./]+, dsn=2\\.0\\.0, status=sent \\(delivered to maildir\\)`,
    ),
  );
  await inst.waitLog(new RegExp(`qmgr\\[\\d+\\]: ${id}: removed`));
});

test("sendmail -t by an ordinary user to another user's mbox", async (t) => {
  assert.equal(process.getuid?.(), 0, "run the suite as root: delivery writes other users' mailboxes");
  const world = makeWorld();
  const alice = world.user("pb");
  const bob = world.user("pc");
  const inst = await instance(t, world, "home_mailbox = Mailbox");
  const r = await runCli("sendmail", ["-C", inst.etc, "-t", "-i"], {
    uid: alice.uid,
    gid: alice.gid,
    input: `To: ${bob.name}@${DOMAIN}\nBcc: ${alice.name}\nSubject: from sendmail\n\nHi Bob.\n`,
  });
  assert.equal(r.code, 0, r.stderr);
  const box = await mailbox(inst, "mbox", join(bob.home, "Mailbox"), 1);
  assert.equal(box[0]?.subject, "from sendmail");
  assert.match(box[0]?.from ?? "", new RegExp(`${alice.name}@${DOMAIN.replace(/\./g, "\\.")}`));
  assert.match(box[0]?.fromLine ?? "", new RegExp(`^${alice.name}@`));
  const copy = await mailbox(inst, "mbox", join(alice.home, "Mailbox"), 1);
  assert.equal(copy[0]?.subject, "from sendmail", "the Bcc recipient got a copy");
  assert.doesNotMatch(JSON.stringify(box), /Bcc/i, "no Bcc header is delivered");
});
