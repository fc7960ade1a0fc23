/*
 * milter-opendkim.test - a real opendkim signs mail that arrives by SMTP and by sendmail
 *
 * DESCRIPTION
 *   opendkim (Debian package opendkim) runs on loopback as smtpd_milters
 *   and non_smtpd_milters. Messages go through smtpd and through
 *   sendmail/pickup, are delivered by local to a Maildir, and the file
 *   that was delivered is checked by a second opendkim in verify mode
 *   (with the public key from a local file, no DNS): the signature must
 *   pass. A stopped milter follows milter_default_action: tempfail refuses
 *   the message with 451, accept lets it through unsigned.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../src/testing/instance.js";
import { DOMAIN, localInstance, makeWorld } from "../src/testing/local-world.js";
import { startOpendkim } from "../src/testing/milters.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello } from "../src/testing/smtpd-instance.js";

/** The delivered messages of a Maildir (raw files), waiting for n of them. */
async function delivered(dir: string, n: number, log: () => string): Promise<string[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    let files: string[] = [];
    try {
      files = readdirSync(join(dir, "new")).map((f) => join(dir, "new", f));
    } catch {
      /* not yet */
    }
    if (files.length >= n) return files;
    if (Date.now() > deadline)
      throw new Error(`${files.length} of ${n} messages delivered to ${dir}; log:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends one message over SMTP; returns the final reply. */
async function sendSmtp(port: number, to: string, body: string): Promise<string> {
  const c = await smtpHello(port);
  assert.equal(await smtpCmd(c, "MAIL FROM:<user@example.com>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(c, `RCPT TO:<${to}>`), "250 2.1.5 Ok");
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  c.send(body.replace(/\n/g, "\r\n") + ".");
  const r = await smtpCmd(c, null);
  await smtpCmd(c, "QUIT");
  return r;
}

const MESSAGE = (subject: string): string =>
  [
    "From: User <user@example.com>",
    "To: someone@example.net",
    `Subject: ${subject}`,
    "Date: Sat, 21 Nov 2026 01:00:00 +0000",
    `Message-ID: <${subject.replace(/\s/g, "-")}@example.com>`,
    "",
    "This is a test.",
    "With a second line.",
    "",
  ].join("\n");

test("opendkim signs mail from smtpd and from sendmail; an independent verifier passes the signature", async (t) => {
  const dkim = await startOpendkim(t);
  const w = makeWorld();
  t.after(() => w.cleanup());
  const u = w.user("dk");
  const port = await freePort();
  const inst = await localInstance(
    t,
    [
      "home_mailbox = Maildir/",
      `smtpd_milters = inet:127.0.0.1:${dkim.port}`,
      `non_smtpd_milters = inet:127.0.0.1:${dkim.port}`,
      "smtpd_peername_lookup = no",
      "local_recipient_maps =",
      "alias_maps =",
    ].join("\n"),
    [`${port} inet n - n - - smtpd`, "pickup unix n - n 60 1 pickup"].join("\n"),
  );
  const to = `${u.name}@${DOMAIN}`;
  assert.match(await sendSmtp(port, to, MESSAGE("by smtp")), /^250 2\.0\.0 Ok: queued as /);
  const r = await runCli("sendmail", ["-i", "-f", "user@example.com", to], {
    env: { MAIL_CONFIG: inst.etc },
    input: MESSAGE("by sendmail"),
  });
  assert.equal(r.code, 0, r.stderr);
  const files = await delivered(join(u.home, "Maildir"), 2, () => inst.log());
  for (const f of files) {
    const text = readFileSync(f, "latin1");
    assert.match(text, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/simple; d=example\.com;/m, text);
    const verdict = dkim.verify(f);
    assert.match(
      verdict,
      /verification \(s=sel1, d=example\.com, 2048-bit key\) succeeded/,
      `${verdict}\n${text}`,
    );
    const tampered = `${f}.tampered`;
    writeFileSync(tampered, text.replace("This is a test.", "This is a fake."), "latin1");
    assert.doesNotMatch(dkim.verify(tampered), /succeeded/, "the verifier notices a changed body");
  }
  assert.match(inst.log(), /postfix\/cleanup\[\d+\]: [0-9A-Z]+: message-id=<by-sendmail@example\.com>/);
});

test("a stopped milter follows milter_default_action (tempfail, then accept)", async (t) => {
  const dkim = await startOpendkim(t);
  const w = makeWorld();
  t.after(() => w.cleanup());
  const u = w.user("dd");
  const port = await freePort();
  const inst = await localInstance(
    t,
    [
      "home_mailbox = Maildir/",
      `smtpd_milters = inet:127.0.0.1:${dkim.port}`,
      "smtpd_peername_lookup = no",
      "local_recipient_maps =",
      "alias_maps =",
    ].join("\n"),
    `${port} inet n - n - - smtpd`,
  );
  await dkim.stop();
  const to = `${u.name}@${DOMAIN}`;
  const c = await smtpHello(port);
  assert.equal(
    await smtpCmd(c, "MAIL FROM:<user@example.com>"),
    "451 4.7.1 Service unavailable - try again later",
  );
  await smtpCmd(c, "QUIT");
  await inst.waitLog(
    /milter inet:127\.0\.0\.1:\d+: connect to Milter service inet:127\.0\.0\.1:\d+: Connection refused/,
  );
  await inst.waitLog(
    /NOQUEUE: milter-reject: CONNECT from unknown\[127\.0\.0\.1\]: 451 4\.7\.1 Service unavailable/,
  );
  const r = await runCli("postconf", ["-c", inst.etc, "-e", "milter_default_action = accept"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await inst.postern("reload")).code, 0);
  await new Promise((res) => setTimeout(res, 1500));
  assert.match(await sendSmtp(port, to, MESSAGE("unsigned")), /^250 2\.0\.0 Ok: queued as /);
  const [file] = await delivered(join(u.home, "Maildir"), 1, () => inst.log());
  assert.doesNotMatch(readFileSync(file ?? "", "latin1"), /DKIM-Signature/);
});
