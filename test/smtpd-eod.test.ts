/*
 * smtpd-eod.test - smtpd_end_of_data_restrictions after the whole message
 *
 * DESCRIPTION
 *   The end-of-data restrictions run once the message has arrived (DATA's
 *   final dot, or BDAT LAST), before cleanup makes the file durable. A
 *   policy server sees protocol_state=END-OF-MESSAGE and the size of the
 *   message as received, and may refuse it: the client gets the 5xx (or
 *   4xx) after DATA, the refusal is logged with the queue ID as Postfix
 *   logs it, and nothing is queued. A plain "reject" gives Postfix's
 *   "<END-OF-MESSAGE>: End-of-data rejected: Access denied".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../src/testing/instance.js";
import { policyServer, type PolicyServer } from "../src/testing/policy-server.js";
import { smtpCmd, smtpHello, smtpdInstance } from "../src/testing/smtpd-instance.js";

/** A policy server that records requests and refuses END-OF-MESSAGE requests above a size. */
function sizePolicy(t: { after: (fn: () => Promise<void>) => void }, maxSize: number): Promise<PolicyServer> {
  return policyServer(t, (attrs) =>
    attrs.get("protocol_state") === "END-OF-MESSAGE" && Number(attrs.get("size")) > maxSize
      ? "REJECT message too large for this policy"
      : "DUNNO",
  );
}

/** The files in a queue directory (hash levels walked). */
function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }))
    out.push(...(e.isDirectory() ? files(join(dir, e.name)) : [e.name]));
  return out;
}

test("a policy service at END-OF-MESSAGE sees the size; a refusal after DATA queues nothing", async (t) => {
  const policy = await sizePolicy(t, 300);
  const inst = await smtpdInstance(
    t,
    `smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:${policy.port}\n`,
  );
  const c = await smtpHello(inst.port);
  const small = "Subject: small\r\n\r\nhello\r\n";
  assert.equal(await smtpCmd(c, "MAIL FROM:<a@sender.example> SIZE=100"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<b@example.org>"), "250 2.1.5 Ok");
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  c.send(`${small}.`);
  const ok = await smtpCmd(c, null);
  assert.match(ok, /^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
  const eom = policy.requests.filter((r) => r.get("protocol_state") === "END-OF-MESSAGE");
  assert.equal(eom.length, 1, "one END-OF-MESSAGE request");
  assert.equal(eom[0]?.get("size"), String(Buffer.byteLength(small)), "the size as received, not SIZE=");
  assert.equal(eom[0]?.get("recipient"), "b@example.org");
  assert.equal(eom[0]?.get("recipient_count"), "1");
  assert.equal(eom[0]?.get("sender"), "a@sender.example");
  assert.match(eom[0]?.get("queue_id") ?? "", /^[0-9A-F]+$/);

  const big = `Subject: big\r\n\r\n${"0123456789".repeat(50)}\r\n..leading dot\r\n`;
  assert.equal(await smtpCmd(c, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<b@example.org>"), "250 2.1.5 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<c@example.org>"), "250 2.1.5 Ok");
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  c.send(`${big}.`);
  assert.equal(
    await smtpCmd(c, null),
    "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: message too large for this policy",
  );
  const last = policy.requests.at(-1);
  assert.equal(last?.get("size"), String(Buffer.byteLength(big) - 1), "dot-unstuffed");
  assert.equal(last?.get("recipient"), "", "no single recipient to name");
  assert.equal(last?.get("recipient_count"), "2");
  const line = await inst.waitLog(
    /[0-9A-F]+: reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <END-OF-MESSAGE>: End-of-data rejected: message too large for this policy; from=<a@sender\.example> proto=ESMTP helo=<client\.example>/,
  );
  const id = /^([0-9A-F]+):/.exec(line)?.[1] ?? "";
  assert.equal(await smtpCmd(c, "RSET"), "250 2.0.0 Ok", "the session goes on");
  await sleep(300);
  const queued = files(join(inst.spool, "incoming"));
  assert.equal(queued.length, 1, "only the small message");
  assert.ok(!queued.includes(id), "the refused message is not queued");
  assert.equal(await smtpCmd(c, "QUIT"), "221 2.0.0 Bye");
  await inst.waitLog(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=2 rcpt=3 data=1\/2 rset=1 quit=1/);
});

test("reject in smtpd_end_of_data_restrictions, with BDAT as well; permit_mynetworks runs before it", async (t) => {
  const inst = await smtpdInstance(
    t,
    "mynetworks = 127.0.0.2/32\nsmtpd_end_of_data_restrictions = permit_mynetworks, reject\n",
  );
  const c = await smtpHello(inst.port);
  await smtpCmd(c, "MAIL FROM:<a@sender.example>");
  await smtpCmd(c, "RCPT TO:<b@example.org>");
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  c.send("Subject: x\r\n\r\nx\r\n.");
  assert.equal(await smtpCmd(c, null), "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied");
  await smtpCmd(c, "MAIL FROM:<a@sender.example>");
  await smtpCmd(c, "RCPT TO:<b@example.org>");
  c.send("BDAT 12 LAST");
  c.send("Subject: y\r\n");
  assert.equal(await smtpCmd(c, null), "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied");
  const friend = await smtpHello(inst.port, "127.0.0.2");
  await smtpCmd(friend, "MAIL FROM:<a@sender.example>");
  await smtpCmd(friend, "RCPT TO:<b@example.org>");
  assert.match(await smtpCmd(friend, "DATA"), /^354 /);
  friend.send("Subject: z\r\n\r\nz\r\n.");
  assert.match(await smtpCmd(friend, null), /^250 2\.0\.0 Ok: queued as /);
  await sleep(300);
  assert.equal(files(join(inst.spool, "incoming")).length, 1, "only the mynetworks client's message");
});
