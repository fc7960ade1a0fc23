/*
 * milter-scanners.test - real content scanners as smtpd_milters: rspamd and clamav-milter
 *
 * DESCRIPTION
 *   rspamd (Debian package rspamd) in milter mode, kept off the network,
 *   adds its headers to a clean message (they are in the queue file) and
 *   rejects the GTUBE test message with its own reply. clamav-milter
 *   (Debian packages clamav-daemon and clamav-milter) with a one-signature
 *   local database rejects a message that carries the EICAR test string
 *   and lets a clean one through with its X-Virus-Status header.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startClamavMilter, startRspamd } from "../src/testing/milters.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello, smtpdInstance, type SmtpdInstance } from "../src/testing/smtpd-instance.js";

const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/** Sends one message; returns the reply to the end of DATA. */
async function send(inst: SmtpdInstance, subject: string, body: string): Promise<string> {
  const c = await smtpHello(inst.port);
  assert.equal(await smtpCmd(c, "MAIL FROM:<user@example.com>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<someone@example.org>"), "250 2.1.5 Ok");
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  const msg = [
    "From: User <user@example.com>",
    "To: someone@example.org",
    `Subject: ${subject}`,
    "Date: Sat, 21 Nov 2026 01:00:00 +0000",
    `Message-ID: <${subject.replace(/\W/g, "")}@example.com>`,
    "",
    body,
    "",
  ].join("\r\n");
  c.send(msg + ".");
  const r = await smtpCmd(c, null);
  await smtpCmd(c, "QUIT");
  return r;
}

/** The queue file of a queued message, printed by postcat. */
async function queued(inst: SmtpdInstance, reply: string): Promise<string> {
  const id = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)$/.exec(reply)?.[1];
  assert.ok(id !== undefined, reply);
  const cat = await runCli("postcat", ["-c", inst.etc, "-q", id]);
  assert.equal(cat.code, 0, cat.stderr);
  return cat.stdout;
}

test("rspamd adds its headers and rejects GTUBE with its reply", async (t) => {
  const rs = await startRspamd(t);
  const inst = await smtpdInstance(t, `smtpd_milters = inet:127.0.0.1:${rs.port}\n`);
  const ham = await queued(inst, await send(inst, "hello there", "Just a normal message about lunch."));
  assert.match(ham, /^X-Spamd-Result: default: False \[/m, ham);
  assert.match(ham, /^X-Rspamd-Queue-Id: [0-9A-Z]+$/m);
  assert.match(ham, /^X-Spam-Status: No, score=/m);
  const spam = await send(inst, "buy now", `This is spam.\r\n${GTUBE}`);
  assert.match(spam, /^554 5\.7\.1 .*Gtube pattern/i, spam);
  await inst.waitLog(
    /[0-9A-Z]+: milter-reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 5\.7\.1 .*Gtube pattern/i,
  );
});

test("clamav-milter rejects the EICAR test string and passes a clean message", async (t) => {
  const clam = await startClamavMilter(t);
  const inst = await smtpdInstance(t, `smtpd_milters = inet:127.0.0.1:${clam.port}\n`);
  const clean = await queued(inst, await send(inst, "clean", "Nothing to see here."));
  assert.match(clean, /^X-Virus-Status: Clean$/m, clean);
  const virus = await send(inst, "virus", EICAR);
  assert.match(virus, /^5\d\d 5\.7\.1 .*Eicar-Test-Local-Body/, virus);
  await inst.waitLog(
    /milter-reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 5\.7\.1 .*Eicar-Test-Local-Body/,
  );
});
