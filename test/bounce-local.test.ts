/*
 * bounce-local.test - notices for local delivery: an unknown user, NOTIFY=SUCCESS
 *
 * DESCRIPTION
 *   A real instance with the local delivery agent (running as root, as
 *   local-world.ts sets up) and the bounce, defer and trace services. The
 *   sender is a local user whose Maildir receives the notices; they are
 *   read with Python's email package. Mail to an unknown local user comes
 *   back as a non-delivery report (5.1.1, no Remote-MTA: the failure was
 *   here); a recipient that asked for NOTIFY=SUCCESS draws a delivery
 *   report saying "delivered". Needs root.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../src/testing/instance.js";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { DSN_NOTIFY } from "../src/global/queue-file.js";
import {
  BOUNCE_SERVICES,
  DOMAIN,
  localInstance,
  makeWorld,
  readNotices,
  type Notice,
} from "../src/testing/local-world.js";

const world = makeWorld();
after(() => world.cleanup());

/** Waits until a Maildir holds n new messages; returns them parsed. */
function notices(maildir: string, n: number): Promise<Notice[]> {
  return readNotices(maildir, n);
}

test("local delivery: an unknown user bounces back to the sender's Maildir; NOTIFY=SUCCESS reports delivery", async (t) => {
  const alice = world.user("s");
  const bob = world.user("r");
  const inst = await localInstance(t, "home_mailbox = Maildir/\nalias_maps =\n", BOUNCE_SERVICES);
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  await c.client.sender(`${alice.name}@${DOMAIN}`);
  await c.client.rcpt({ address: `nosuchuser@${DOMAIN}`, original: `nosuchuser@${DOMAIN}` });
  await c.client.rcpt({
    address: `${bob.name}@${DOMAIN}`,
    original: `${bob.name}@${DOMAIN}`,
    notify: DSN_NOTIFY.SUCCESS | DSN_NOTIFY.FAILURE,
  });
  await c.client.data(Buffer.from(`From: ${alice.name}@${DOMAIN}\nSubject: two of them\n\nhi\n`));
  assert.equal((await c.client.end()).status, "ok");
  const id = c.client.queueId;
  await inst.waitLog(new RegExp(`${id}: removed`), 30_000);
  const md = join(alice.home, "Maildir");
  const readBoth = await notices(md, 2);
  const failure = readBoth.find((n) => n.subject === "Undelivered Mail Returned to Sender");
  const success = readBoth.find((n) => n.subject === "Successful Mail Delivery Report");
  assert.ok(failure !== undefined && success !== undefined, JSON.stringify(readBoth));
  assert.equal(failure.from, `Mail Delivery System <MAILER-DAEMON@${DOMAIN}>`);
  assert.equal(failure.type, "multipart/report");
  assert.equal(failure.dsn[1]?.["Final-Recipient"], `rfc822; nosuchuser@${DOMAIN}`);
  assert.equal(failure.dsn[1]?.["Action"], "failed");
  assert.equal(failure.dsn[1]?.["Status"], "5.1.1");
  assert.equal(failure.dsn[1]?.["Remote-MTA"], undefined, "failed here: no Remote-MTA");
  assert.equal(failure.dsn[1]?.["Diagnostic-Code"], 'X-Postfix; unknown user: "nosuchuser"');
  assert.equal(success.dsn[1]?.["Final-Recipient"], `rfc822; ${bob.name}@${DOMAIN}`);
  assert.equal(success.dsn[1]?.["Action"], "delivered");
  assert.equal(success.dsn[1]?.["Status"], "2.0.0");
  await sleep(300);
  assert.equal(readdirSync(join(md, "new")).length, 2, "exactly two notices");
});
