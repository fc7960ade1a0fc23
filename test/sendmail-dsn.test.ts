/*
 * sendmail-dsn.test - sendmail -N and -V, end to end with local delivery and real notices
 *
 * DESCRIPTION
 *   A root-started instance with pickup, the local delivery agent and the
 *   bounce, defer and trace services; sendmail runs as an ordinary local
 *   user whose Maildir receives the notices (read with Python's email
 *   package). -N success draws a "Successful Mail Delivery Report" for a
 *   local delivery, also for recipients that -t took from the headers;
 *   -V sets the Original-Envelope-Id of the reports; -N never keeps a
 *   failed delivery from bouncing, while the same message without -N
 *   bounces. Needs root.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../src/testing/run-cli.js";
import {
  BOUNCE_SERVICES,
  DOMAIN,
  localInstance,
  makeWorld,
  readNotices,
  type Notice,
  type TestUser,
} from "../src/testing/local-world.js";

const world = makeWorld();
after(() => world.cleanup());

const MASTER = ["pickup unix n - y 60 1 pickup", BOUNCE_SERVICES].join("\n");

let log = (): string => "";

/** The messages in a user's Maildir/new, parsed (waits until there are n). */
function maildir(u: TestUser, n: number): Promise<Notice[]> {
  return readNotices(join(u.home, "Maildir"), n, log);
}

/** The notices (null-sender reports) among a user's messages. */
async function notices(u: TestUser, total: number): Promise<Notice[]> {
  return (await maildir(u, total)).filter((m) => m.dsn.length > 0);
}

test("sendmail -N and -V: delivery reports, -t recipients, and -N never", async (t) => {
  const alice = world.user("dsa");
  const bob = world.user("dsb");
  const carol = world.user("dsc");
  const inst = await localInstance(t, "home_mailbox = Maildir/\nalias_maps =\nmail_owner = mail\n", MASTER);
  log = () => inst.log();
  const sendmail = (args: string[], input: string): ReturnType<typeof runCli> =>
    runCli("sendmail", args, { env: { MAIL_CONFIG: inst.etc }, input, uid: alice.uid, gid: alice.gid });

  await t.test("-N success -V envid: a Successful Mail Delivery Report with the envelope ID", async () => {
    const r = await sendmail(["-N", "success", "-V", "order-77", bob.name], "Subject: first\n\nhello\n");
    assert.equal(r.code, 0, r.stderr);
    const [n] = await notices(alice, 1);
    assert.equal(n?.subject, "Successful Mail Delivery Report");
    assert.match(n?.text ?? "", new RegExp(`<${bob.name}@${DOMAIN}>: delivered to maildir`));
    assert.equal(n?.dsn[0]?.["Original-Envelope-Id"], "order-77");
    assert.equal(n?.dsn[1]?.["Final-Recipient"], `rfc822; ${bob.name}@${DOMAIN}`);
    assert.equal(n?.dsn[1]?.["Action"], "delivered");
    assert.equal((await maildir(bob, 1)).length, 1);
  });

  await t.test("-t -N success,failure: the recipients from the headers ask for reports too", async () => {
    const r = await sendmail(
      ["-t", "-i", "-N", "success,failure"],
      `To: ${bob.name}\nCc: ${carol.name}\nBcc: nosuchuser-dsn\nSubject: second\n\nhello\n`,
    );
    assert.equal(r.code, 0, r.stderr);
    const all = await notices(alice, 3);
    const mine = all.filter((n) =>
      n.dsn.some((b) => /carol|nosuchuser|dsc/.test(b["Final-Recipient"] ?? "")),
    );
    const success = mine.find((n) => n.subject === "Successful Mail Delivery Report");
    const failure = mine.find((n) => n.subject === "Undelivered Mail Returned to Sender");
    assert.ok(success !== undefined && failure !== undefined, JSON.stringify(all));
    const delivered = success.dsn
      .slice(1)
      .map((b) => b["Final-Recipient"])
      .sort();
    assert.deepEqual(delivered, [`rfc822; ${bob.name}@${DOMAIN}`, `rfc822; ${carol.name}@${DOMAIN}`].sort());
    assert.equal(failure.dsn[1]?.["Final-Recipient"], `rfc822; nosuchuser-dsn@${DOMAIN}`);
    assert.equal(failure.dsn[1]?.["Status"], "5.1.1");
  });

  await t.test("-N never: a failed delivery does not bounce; without -N it does", async () => {
    const before = readdirSync(join(alice.home, "Maildir", "new")).length;
    const quiet = await sendmail(["-N", "never", "nosuchuser-quiet"], "Subject: quiet\n\nx\n");
    assert.equal(quiet.code, 0, quiet.stderr);
    const line = await inst.waitLog(/\w+: to=<nosuchuser-quiet@[^>]+>.*status=bounced/, 30_000);
    const id = /^(\w+): to=/.exec(line)?.[1] ?? "";
    assert.notEqual(id, "");
    await inst.waitLog(new RegExp(`${id}: removed`), 30_000);
    const loud = await sendmail(["nosuchuser-loud"], "Subject: loud\n\nx\n");
    assert.equal(loud.code, 0, loud.stderr);
    const all = await notices(alice, before + 1);
    const bounced = all.filter((n) => n.subject === "Undelivered Mail Returned to Sender");
    const targets = bounced.map((n) => n.dsn[1]?.["Final-Recipient"] ?? "");
    assert.ok(targets.includes(`rfc822; nosuchuser-loud@${DOMAIN}`), JSON.stringify(targets));
    assert.ok(!targets.some((x) => x.includes("nosuchuser-quiet")), "no bounce for -N never");
    assert.doesNotMatch(inst.log(), new RegExp(`${id}: sender non-delivery notification`));
  });
});
