/*
 * migrate-postfix.test - an existing Postfix configuration, moved over unchanged
 *
 * DESCRIPTION
 *   The user story of "From Postfix to Postern" (docs/from-postfix.md), with
 *   Debian's postfix package as the source of truth: Debian's generated
 *   main.cf (/etc/postfix/main.cf, as the package's postinst wrote it) and
 *   its stock master.cf, an aliases file compiled by Debian's own postalias
 *   (a Berkeley DB file), an existing empty queue directory, and
 *   myorigin = <a mailname file> as Debian writes it. Only paths and the
 *   listener change. Postern then delivers by SMTP to postmaster@localhost
 *   through the alias, delivers "sendmail root" with the origin from the
 *   mailname file, refuses an unknown local user, and pflogsumm and
 *   fail2ban's stock postfix filter read the log as Postfix's.
 *
 *   The paths that change, each for a reason: queue_directory,
 *   data_directory and maillog_file (a test never touches the machine's
 *   spool and logs), mail_spool_directory (nor its /var/mail), alias_maps
 *   and alias_database (the test's own aliases), myorigin (the test's own
 *   mailname file), inet_interfaces (loopback only).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { debianMaster, freePort, makeInstance, maildirMessages, until } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { FAIL2BAN_FILTER, fail2banMatched, pflogsummTotals } from "../src/testing/log-tools.js";

const DEBIAN_MAIN_CF = "/etc/postfix/main.cf";
const DEBIAN_POSTALIAS = "/usr/sbin/postalias";

test("Debian's Postfix configuration, aliases.db and an empty queue directory work unchanged", async (t) => {
  for (const f of [DEBIAN_MAIN_CF, DEBIAN_POSTALIAS])
    assert.ok(existsSync(f), `${f} is missing: .ci/run installs Debian's postfix package`);
  const port = await freePort();
  const master = debianMaster(port);
  assert.notEqual(master, null, "Debian's stock master.cf");
  const inst = makeInstance({ master: master ?? "" });
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
  });
  // Debian's generated main.cf, as it is, then the paths.
  copyFileSync(DEBIAN_MAIN_CF, join(inst.etc, "main.cf"));
  const mail = join(inst.dir, "mail");
  mkdirSync(mail);
  chmodSync(mail, 0o1777);
  const aliases = join(inst.etc, "aliases");
  writeFileSync(aliases, "# as Debian ships it\npostmaster:    root\n");
  const made = spawnSync(DEBIAN_POSTALIAS, [aliases], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const mailname = join(inst.etc, "mailname");
  writeFileSync(mailname, "localhost\n");
  mkdirSync(inst.spool); // an existing, empty queue directory, as the package leaves it
  appendFileSync(
    join(inst.etc, "main.cf"),
    [
      "",
      `queue_directory = ${inst.spool}`,
      `data_directory = ${inst.lib}`,
      `maillog_file = ${inst.maillog}`,
      `mail_spool_directory = ${mail}/`,
      `alias_maps = hash:${aliases}`,
      `alias_database = hash:${aliases}`,
      `myorigin = ${mailname}`,
      "inet_interfaces = 127.0.0.1",
      "inet_protocols = ipv4",
      "",
    ].join("\n"),
  );
  const started = await inst.start();
  assert.equal(started.code, 0, started.stderr);

  // SMTP to postmaster, through the alias to root.
  const smtp = spawnSync(
    "/usr/bin/python3",
    [
      "-c",
      `import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.ehlo("client.example")
print(s.sendmail("someone@example.org", ["postmaster@localhost"], "Subject: to postmaster\\r\\n\\r\\nhello\\r\\n"))
try:
    s.sendmail("someone@example.org", ["no-such-user-here@localhost"], "Subject: x\\r\\n\\r\\nx\\r\\n")
except smtplib.SMTPRecipientsRefused as e:
    print("refused", e.recipients)
s.quit()`,
      String(port),
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(smtp.status, 0, `${smtp.stdout}${smtp.stderr}`);
  assert.match(smtp.stdout, /refused .*550.*User unknown in local recipient table/);
  // sendmail root: the sender's domain comes from the mailname file.
  const sent = await runCli("sendmail", ["-C", inst.etc, "root"], {
    input: "Subject: from sendmail\n\nhi\n",
  });
  assert.equal(sent.code, 0, sent.stderr);

  await until("both messages in root's mailbox", () => maildirMessages(inst.dir, "root").length === 2, {
    inst,
  });
  const box = maildirMessages(inst.dir, "root");
  assert.ok(
    box.some((m) => /Subject: to postmaster/.test(m) && /^X-Original-To: postmaster@localhost$/m.test(m)),
    box.join("\n----\n"),
  );
  assert.ok(box.some((m) => /Subject: from sendmail/.test(m) && /^Return-Path: <root@localhost>/m.test(m)));
  await until(
    "two removals logged",
    () => (inst.log().match(/qmgr\[\d+\]: \w+: removed/g) ?? []).length === 2,
    {
      inst,
    },
  );

  // The log tools, with their stock settings.
  const p = pflogsummTotals(inst.maillog);
  assert.equal(p.code, 0, p.out);
  const why = `pflogsumm:\n${p.out}\nlog:\n${inst.log()}`;
  assert.equal(p.total("received"), 2, why);
  assert.equal(p.total("delivered"), 2, why);
  assert.equal(p.total("rejected"), 1, why);
  const f = fail2banMatched(inst.maillog, FAIL2BAN_FILTER);
  assert.equal(f.matched, 1, `${f.out}\nlog:\n${inst.log()}`);
});
