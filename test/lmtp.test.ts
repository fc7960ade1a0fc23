/*
 * lmtp.test - the lmtp agent against a real Dovecot LMTP server
 *
 * DESCRIPTION
 *   Dovecot (packages dovecot-core and dovecot-lmtpd) listens on a TCP
 *   port and a Unix socket. Postern's lmtp agent delivers over both:
 *   lmtp:inet:127.0.0.1:port and lmtp:unix:private/dovecot-lmtp (a path
 *   relative to queue_directory, as with mailbox_transport). Unknown users
 *   are bounced with Dovecot's RCPT reply; the others get their own reply
 *   after DATA and their mail lands in their Maildir.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { linkSync } from "node:fs";
import { join } from "node:path";
import { relayInstance, startDovecot, submitMessage } from "../src/testing/smtp-peers.js";

test("lmtp over TCP and over a Unix socket under queue_directory, per-recipient replies from Dovecot", async (t) => {
  const dc = await startDovecot(t);
  const inst = await relayInstance(
    t,
    [
      `transport_maps = inline:{bob@example.test=lmtp:unix:private/dovecot-lmtp, example.test=lmtp:inet:127.0.0.1:${dc.port}}`,
      "lmtp_lhlo_name = lmtp-client.example.test",
    ].join("\n"),
  );
  // Dovecot's socket must be inside the queue directory, as Postfix's LMTP_README asks: the jailed
  // lmtp agent sees nothing else (a symbolic link to it would point outside the jail). A hard link
  // is the same socket under a name in private/.
  linkSync(dc.socket, join(inst.spool, "private", "dovecot-lmtp"));
  const a = await submitMessage(inst, {
    rcpts: ["alice@example.test", "nosuch@example.test", "alice+box@example.test"],
    content: "Subject: over lmtp\n\nhello Dovecot\n",
  });
  const relay = `relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${dc.port}`;
  for (const u of ["alice", "alice\\+box"])
    await inst.waitLog(
      new RegExp(
        `postfix/lmtp\\[\\d+\\]: ${a}: to=<${u}@example\\.test>, ${relay}, .*dsn=2\\.0\\.0, status=sent \\(250 2\\.0\\.0 <${u}@example\\.test> \\S+ Saved\\)`,
      ),
      20_000,
    );
  await inst.waitLog(
    new RegExp(
      `${a}: to=<nosuch@example\\.test>, ${relay}, .*dsn=5\\.1\\.1, status=bounced \\(host 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\] said: 550 5\\.1\\.1 <nosuch@example\\.test> User doesn't exist: nosuch@example\\.test \\(in reply to RCPT TO command\\)\\)`,
    ),
  );
  const b = await submitMessage(inst, {
    rcpts: ["bob@example.test"],
    content: "Subject: over a socket\n\nhi\n",
  });
  await inst.waitLog(
    new RegExp(
      `${b}: to=<bob@example\\.test>, relay=postern\\.example\\.test\\[private/dovecot-lmtp\\], .*status=sent \\(250 2\\.0\\.0 <bob@example\\.test> \\S+ Saved\\)`,
    ),
    20_000,
  );
  const alice = dc.mailbox("alice@example.test");
  assert.equal(alice.length, 2, "two copies: alice and alice+box");
  assert.match(alice[0] ?? "", /Subject: over lmtp/);
  const bob = dc.mailbox("bob@example.test");
  assert.equal(bob.length, 1);
  assert.match(bob[0] ?? "", /Subject: over a socket/);
});
