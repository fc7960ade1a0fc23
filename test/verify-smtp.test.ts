/*
 * verify-smtp.test - address verification through the smtp agent, end to end
 *
 * DESCRIPTION
 *   An instance with smtpd (smtpd_recipient_restrictions =
 *   reject_unverified_recipient), cleanup, trivial-rewrite, qmgr, smtp,
 *   verify and bounce/defer/trace; transport_maps sends remote.test to an
 *   aiosmtpd peer on 127.0.0.3, which rejects hard-* recipients with 550
 *   5.1.1. The first RCPT for a new address gets 450 "in progress"; once
 *   the probe has run, the unknown address is rejected with 550 and the
 *   remote server's reason, the known one passes. The peer saw RCPT for
 *   both but never DATA, took no message, and no notice was sent. Then
 *   sendmail -bv mails a report (routed to the same peer) whose
 *   delivery-status part has Remote-MTA and an "smtp;" Diagnostic-Code.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { freePort, sleep, shippedEntries } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello } from "../src/testing/smtpd-instance.js";
import { relayInstance, startAiosmtpd } from "../src/testing/smtp-peers.js";

/** One RCPT's reply in a fresh transaction. */
async function rcpt(port: number, address: string): Promise<string> {
  const c = await smtpHello(port);
  try {
    assert.match(await smtpCmd(c, "MAIL FROM:<someone@example.org>"), /^250 /);
    return await smtpCmd(c, `RCPT TO:<${address}>`);
  } finally {
    c.send("QUIT");
    c.close();
  }
}

test("reject_unverified_recipient probes a remote server with RCPT and never sends DATA", async (t) => {
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });
  const port = await freePort();
  const inst = await relayInstance(
    t,
    [
      "smtpd_peername_lookup = no",
      `transport_maps = inline:{ {remote.test = smtp:[127.0.0.3]:${aio.port}} }`,
      "smtpd_recipient_restrictions = reject_unverified_recipient",
      "unverified_recipient_reject_code = 550",
      "address_verify_poll_count = 1",
    ].join("\n"),
    [
      `${port} inet n - n - - smtpd`,
      shippedEntries("verify"),
      shippedEntries("pickup"),
      shippedEntries("bounce"),
      shippedEntries("defer"),
      shippedEntries("trace"),
    ].join("\n"),
  );
  const hard = "hard-x@remote.test";
  const good = "ok@remote.test";
  for (const a of [hard, good])
    assert.equal(
      await rcpt(port, a),
      `450 4.1.1 <${a}>: Recipient address rejected: unverified address: Address verification in progress`,
    );
  await inst.waitLog(
    new RegExp(`to=<${hard}>, relay=127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\]:${aio.port},.*status=undeliverable`),
    30_000,
  );
  await inst.waitLog(
    new RegExp(`to=<${good}>, relay=127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\]:${aio.port},.*status=deliverable`),
    30_000,
  );
  assert.equal(
    await rcpt(port, hard),
    `550 5.1.1 <${hard}>: Recipient address rejected: undeliverable address: host 127.0.0.3[127.0.0.3] said: 550 5.1.1 <${hard}>: no such user here (in reply to RCPT TO command)`,
  );
  assert.match(await rcpt(port, good), /^250 2\.1\.5 /);
  const cmds = aio.commands();
  assert.ok(
    cmds.some((c) => c.startsWith(`RCPT ${good}`)),
    cmds.join("\n"),
  );
  assert.ok(
    cmds.some((c) => c.startsWith(`RCPT ${hard}`)),
    cmds.join("\n"),
  );
  assert.ok(!cmds.some((c) => c.startsWith("DATA")), `the peer saw DATA:\n${cmds.join("\n")}`);
  assert.equal(aio.messages().length, 0);
  assert.doesNotMatch(inst.log(), /non-delivery notification|delivery status notification/);
  // sendmail -bv mails a report (here to a sender at the same peer) whose delivery-status part
  // names the remote MTA and carries its SMTP reply.
  const from = "admin@remote.test";
  const r = await runCli("sendmail", ["-bv", "-f", from, hard], {
    env: { MAIL_CONFIG: inst.etc },
    input: "Subject: test\n\nhello\n",
  });
  assert.equal(r.code, 0, r.stderr);
  const deadline = Date.now() + 30_000;
  while (aio.messages().length === 0) {
    if (Date.now() > deadline) throw new Error(`no report; log:\n${inst.log()}`);
    await sleep(100);
  }
  const report = JSON.parse(
    execFileSync("/usr/bin/python3", ["-c", REPORT], { input: aio.messages()[0] ?? "", encoding: "utf8" }),
  ) as { subject: string; dsn: Array<Record<string, string>> };
  assert.equal(report.subject, "Mail Delivery Status Report");
  const b = report.dsn[1];
  assert.equal(b?.["Final-Recipient"], `rfc822; ${hard}`);
  assert.equal(b?.["Action"], "undeliverable");
  assert.equal(b?.["Status"], "5.1.1");
  assert.equal(b?.["Remote-MTA"], "dns; 127.0.0.3");
  assert.equal(b?.["Diagnostic-Code"], `smtp; 550 5.1.1 <${hard}>: no such user here`);
  assert.equal(aio.messages().length, 1, "only the report reached the peer");
});

/** Reads a report from stdin: its Subject and the delivery-status blocks. */
const REPORT = `
import email, json, sys
m = email.message_from_binary_file(sys.stdin.buffer)
dsn = []
for p in m.get_payload():
    if p.get_content_type() == "message/delivery-status":
        dsn = [dict(b.items()) for b in p.get_payload()]
print(json.dumps({"subject": m["Subject"], "dsn": dsn}))
`;
