/*
 * smtpd-unlisted.test - unknown recipients and senders are refused at RCPT
 *
 * DESCRIPTION
 *   A real instance checks each recipient against the table of its address
 *   class: local_recipient_maps (the system's accounts through the unix:
 *   table, also in its default proxy: form), virtual_alias_maps,
 *   virtual_mailbox_maps and relay_recipient_maps, with Postfix's replies;
 *   reject_unlisted_sender does the same for MAIL FROM; a failing table is
 *   a temporary failure.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { smtpCmd, smtpHello, smtpdInstance } from "../src/testing/smtpd-instance.js";
import { shippedEntries } from "../src/testing/instance.js";

const MAPS = [
  "virtual_alias_domains = valias.example",
  "virtual_alias_maps = inline:{ a@valias.example=root }",
  "virtual_mailbox_domains = vmail.example",
  "virtual_mailbox_maps = inline:{ u@vmail.example=u/ }",
  "relay_domains = relay.example",
  "relay_recipient_maps = inline:{ ok@relay.example=x }",
  "smtpd_relay_restrictions = permit_auth_destination, reject",
  "",
].join("\n");

test("unknown recipients get 550 5.1.1 naming the table of their address class", async (t) => {
  // proxy: tables go through proxymap, as in Postfix (a jailed smtpd cannot read /etc/passwd).
  const inst = await smtpdInstance(
    t,
    `${MAPS}local_recipient_maps = proxy:unix:passwd.byname\n`,
    shippedEntries("proxymap"),
  );
  const c = await smtpHello(inst.port);
  assert.equal(await smtpCmd(c, "MAIL FROM:<someone@elsewhere.example>"), "250 2.1.0 Ok");
  for (const ok of [
    "root@example.org",
    "Postmaster@example.org",
    "a@valias.example",
    "u@vmail.example",
    "ok@relay.example",
  ])
    assert.equal(await smtpCmd(c, `RCPT TO:<${ok}>`), "250 2.1.5 Ok", ok);
  const refused: [string, string][] = [
    ["nosuchuser@example.org", "local recipient table"],
    ["b@valias.example", "virtual alias table"],
    ["x@vmail.example", "virtual mailbox table"],
    ["no@relay.example", "relay recipient table"],
  ];
  for (const [addr, table] of refused)
    assert.equal(
      await smtpCmd(c, `RCPT TO:<${addr}>`),
      `550 5.1.1 <${addr}>: Recipient address rejected: User unknown in ${table}`,
    );
  await inst.waitLog(
    /[0-9A-F]+: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.1\.1 <nosuchuser@example\.org>: Recipient address rejected: User unknown in local recipient table; from=<someone@elsewhere\.example> to=<nosuchuser@example\.org>/,
  );
});

test("reject_unlisted_sender, an explicit reject_unlisted_recipient, and table failures", async (t) => {
  const inst = await smtpdInstance(
    t,
    [
      "local_recipient_maps = unix:passwd.byname",
      "smtpd_reject_unlisted_sender = yes",
      "smtpd_reject_unlisted_recipient = no",
      "unknown_local_recipient_reject_code = 450",
      "smtpd_recipient_restrictions = check_recipient_access inline:{ strict@example.org=reject_unlisted_recipient }",
      "",
    ].join("\n"),
  );
  const c = await smtpHello(inst.port);
  await smtpCmd(c, "MAIL FROM:<nobody-here@example.org>");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<root@example.org>"),
    "450 4.1.0 <nobody-here@example.org>: Sender address rejected: User unknown in local recipient table",
  );
  await smtpCmd(c, "RSET");
  await smtpCmd(c, "MAIL FROM:<root@example.org>");
  assert.equal(await smtpCmd(c, "RCPT TO:<whoever@example.org>"), "250 2.1.5 Ok");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<strict@example.org>"),
    "450 4.1.1 <strict@example.org>: Recipient address rejected: User unknown in local recipient table",
  );
  const inst2 = await smtpdInstance(t, "local_recipient_maps = fail:broken\n");
  const c2 = await smtpHello(inst2.port);
  await smtpCmd(c2, "MAIL FROM:<>");
  assert.equal(
    await smtpCmd(c2, "RCPT TO:<x@example.org>"),
    "451 4.3.0 <x@example.org>: Temporary lookup failure",
  );
  assert.equal(await smtpCmd(c2, "RCPT TO:<postmaster@example.org>"), "250 2.1.5 Ok");
});
