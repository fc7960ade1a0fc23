/*
 * lmtp-final.test - lmtp_assume_final: "delivered" rather than "relayed"
 *
 * DESCRIPTION
 *   Dovecot's LMTP server announces no DSN, so the lmtp agent itself
 *   answers NOTIFY=SUCCESS. As in Postfix, the success notice says
 *   "relayed" unless lmtp_assume_final = yes, which treats such a server
 *   as the final destination: "delivered". Two lmtp transports (one with
 *   -o lmtp_assume_final=yes) deliver to the same Dovecot; the notices go
 *   back to the remote sender through aiosmtpd.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep, shippedEntries } from "../src/testing/instance.js";
import { DSN_NOTIFY } from "../src/global/queue-file.js";
import { relayInstance, startAiosmtpd, startDovecot, submitMessage } from "../src/testing/smtp-peers.js";

test("lmtp_assume_final = yes: a success notice for a server without DSN says delivered; otherwise relayed", async (t) => {
  const dc = await startDovecot(t);
  const aio = await startAiosmtpd(t);
  const lmtp = `inet:127.0.0.1:${dc.port}`;
  const inst = await relayInstance(
    t,
    [
      `relayhost = [${aio.addr}]:${aio.port}`,
      `transport_maps = inline:{alice@example.test=final:${lmtp}, bob@example.test=lmtp:${lmtp}}`,
    ].join("\n"),
    [
      "final unix - - n - - lmtp -o lmtp_assume_final=yes",
      shippedEntries("bounce"),
      shippedEntries("defer"),
      shippedEntries("trace"),
    ].join("\n"),
  );
  const notify = DSN_NOTIFY.SUCCESS | DSN_NOTIFY.FAILURE;
  const id = await submitMessage(inst, {
    sender: "owner@remote.test",
    rcpts: [
      { address: "alice@example.test", original: "alice@example.test", notify },
      { address: "bob@example.test", original: "bob@example.test", notify },
    ],
    content: "Subject: tell me\n\nhello\n",
  });
  for (const u of ["alice", "bob"])
    await inst.waitLog(new RegExp(`${id}: to=<${u}@example\\.test>, .*status=sent`), 20_000);
  assert.equal(dc.mailbox("alice@example.test").length, 1);
  assert.equal(dc.mailbox("bob@example.test").length, 1);
  const deadline = Date.now() + 30_000;
  let actions: string[] = [];
  while (Date.now() < deadline) {
    const text = aio.messages().join("\n");
    actions = [
      ...text.matchAll(/^Final-Recipient: rfc822; ?(\S+)\r?\n(?:[\w-]+: .*\r?\n)*?Action: (\w+)/gm),
    ].map((m) => `${m[1] ?? ""} ${m[2] ?? ""}`);
    if (actions.length >= 2) break;
    await sleep(200);
  }
  assert.deepEqual(actions.sort(), ["alice@example.test delivered", "bob@example.test relayed"]);
});
