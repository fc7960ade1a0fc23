/*
 * log-tools.test - Postfix's log tools read Postern's log unchanged
 *
 * DESCRIPTION
 *   Starts conf/master.cf as shipped with Postfix's defaults (syslog_name
 *   is not set, so lines are tagged postfix/smtpd[PID], as Postfix tags
 *   them), sends mail over SMTP with Python's smtplib (some delivered to
 *   root@localhost by the local agent, some recipients refused as unknown
 *   users), and runs the tools administrators point at a Postfix log, as
 *   Debian packages them, on the log file as Postern wrote it:
 *
 *   - pflogsumm (package pflogsumm): its "Grand Totals" count the messages
 *     received, delivered and rejected;
 *   - fail2ban-regex (package fail2ban) with the stock postfix filter, in
 *     its default mode and in mode=aggressive: every reject line matches,
 *     with the client's address;
 *   - logwatch (package logwatch), its postfix service on the log as its
 *     "maillog" log file group (a copy named mail.log, as Debian's logwatch
 *     wants it, run under bwrap, package bubblewrap, so that the machine's
 *     own /var/log is not read too): its summary counts the same messages,
 *     and the bytes delivered are the bytes accepted, which holds only when
 *     each delivery is logged before qmgr's "removed" line for its message,
 *     as Postfix logs them.
 *
 *   Deviations from Postfix's defaults, each for a reason:
 *   mail_spool_directory is the test's own directory (tests never write the
 *   machine's /var/mail); alias_maps is empty (the machine's /etc/aliases is
 *   not the test's business); default_transport is the error agent and
 *   smtpd_peername_lookup is off (tests reach no network, not even for a
 *   reverse lookup of 127.0.0.1).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, makeInstance, shippedMaster, until, type Instance } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import {
  FAIL2BAN_FILTER,
  FAIL2BAN_REGEX,
  PFLOGSUMM,
  fail2banMatched,
  pflogsummTotals,
  runTool,
} from "../src/testing/log-tools.js";

const LOGWATCH = "/usr/sbin/logwatch";
const BWRAP = "/usr/bin/bwrap";

/** The SMTP sessions of the test: each sends one message to its recipients (those the server takes). */
const SESSIONS: string[][] = [
  ["root@localhost"],
  ["root@localhost"],
  ["root@localhost"],
  // One refused recipient beside an accepted one: Postfix logs the reject with the queue ID.
  ["root@localhost", "nosuchuser@localhost"],
  // Only refused recipients: no message, the reject is logged as NOQUEUE.
  ["nobody-here@localhost"],
];
const RECEIVED = 4;
const DELIVERED = 4;
const REJECTED = 2;

/** One SMTP session with Python's smtplib: MAIL, RCPT for each, DATA when one was taken; prints each reply. */
function smtpSession(port: number, rcpts: string[]): { code: number; out: string } {
  const script = `
import smtplib, sys
port, rcpts = int(sys.argv[1]), sys.argv[2:]
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.ehlo("client.example.org")
    code, msg = s.mail("sender@example.org")
    assert code == 250, (code, msg)
    taken = 0
    for r in rcpts:
        code, msg = s.rcpt(r)
        print("rcpt", r, code, msg.decode())
        taken += code == 250
    if taken:
        code, msg = s.data("Subject: log tools test\\r\\n\\r\\nhello from the log tools test\\r\\n")
        print("data", code, msg.decode())
    else:
        s.rset()
`;
  const r = spawnSync("/usr/bin/python3", ["-c", script, String(port), ...rcpts], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** How many lines of the log match re. */
function count(inst: Instance, re: RegExp): number {
  return inst
    .log()
    .split("\n")
    .filter((l) => re.test(l)).length;
}

test("pflogsumm, fail2ban's postfix filter and logwatch read Postern's log as Postfix's", async (t) => {
  for (const tool of [PFLOGSUMM, FAIL2BAN_REGEX, FAIL2BAN_FILTER, LOGWATCH, BWRAP]) {
    assert.ok(
      existsSync(tool),
      `${tool} is missing: install Debian's pflogsumm, fail2ban, logwatch, bubblewrap`,
    );
  }
  const port = await freePort();
  const inst = makeInstance({ master: shippedMaster(port) });
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
  });
  const mail = join(inst.dir, "mail");
  mkdirSync(mail);
  chmodSync(mail, 0o1777);
  appendFileSync(
    join(inst.etc, "main.cf"),
    [
      "# Tests never write the machine's /var/mail.",
      `mail_spool_directory = ${mail}/`,
      "# The machine's /etc/aliases is not the test's business.",
      "alias_maps =",
      "# Tests reach no network: mail for any other domain fails at once, and no reverse lookup is made.",
      "default_transport = error:5.0.0 no remote mail in tests",
      "smtpd_peername_lookup = no",
      "",
    ].join("\n"),
  );
  const conf = await runCli("postconf", ["-c", inst.etc, "-xh", "syslog_name", "mydestination"]);
  assert.equal(conf.code, 0, conf.stderr);
  const [syslogName, mydestination] = conf.stdout.trim().split("\n");
  assert.equal(syslogName, "postfix", "Postfix's default tag");
  assert.match(mydestination ?? "", /(^|[\s,])localhost([\s,]|$)/, "mydestination includes localhost");
  const started = await inst.start();
  assert.equal(started.code, 0, started.stderr);

  for (const rcpts of SESSIONS) {
    const r = smtpSession(port, rcpts);
    assert.equal(r.code, 0, `${r.out}\nlog:\n${inst.log()}`);
    for (const rcpt of rcpts) {
      const want = rcpt.startsWith("root@")
        ? /250 2\.1\.5 Ok/
        : /550 5\.1\.1 <[^>]+>: Recipient address rejected: User unknown in local recipient table/;
      const reply = r.out.split("\n").find((l) => l.startsWith(`rcpt ${rcpt} `));
      assert.match(reply ?? "", want, r.out);
    }
    if (rcpts.some((a) => a.startsWith("root@"))) assert.match(r.out, /^data 250 2\.0\.0 Ok: queued as /m);
  }
  await until(
    `${DELIVERED} deliveries logged`,
    () => count(inst, /postfix\/local\[\d+\]: \w+: to=<root@localhost>, .*status=sent/) === DELIVERED,
    { inst },
  );
  await until(
    `${RECEIVED} messages removed from the queue`,
    () => count(inst, /postfix\/qmgr\[\d+\]: \w+: removed$/) === RECEIVED,
    { inst },
  );
  await until(
    `${REJECTED} rejects logged`,
    () => count(inst, /postfix\/smtpd\[\d+\]: \w+: reject: RCPT from /) === REJECTED,
    { inst },
  );
  await until(
    `${SESSIONS.length} sessions ended`,
    () => count(inst, /postfix\/smtpd\[\d+\]: disconnect from /) === SESSIONS.length,
    { inst },
  );
  const log = inst.log();

  // pflogsumm: the Grand Totals.
  const { total, out: pout, code: pcode } = pflogsummTotals(inst.maillog);
  assert.equal(pcode, 0, pout);
  const why = `pflogsumm:\n${pout}\nlog:\n${log}`;
  assert.equal(total("received"), RECEIVED, why);
  assert.equal(total("delivered"), DELIVERED, why);
  assert.equal(total("rejected"), REJECTED, why);
  assert.equal(total("bounced"), 0, why);
  assert.equal(total("deferred"), 0, why);

  // fail2ban: the stock postfix filter, in its default mode and in aggressive mode.
  const rejects = log.split("\n").filter((l) => / reject: RCPT from /.test(l));
  for (const filter of [FAIL2BAN_FILTER, `${FAIL2BAN_FILTER}[mode=aggressive]`]) {
    const f = fail2banMatched(inst.maillog, filter);
    assert.equal(f.code, 0, f.out);
    assert.equal(f.matched, REJECTED, `${filter}:\n${f.out}\nlog:\n${log}`);
    for (const line of rejects) assert.ok(f.out.includes(line), `${filter} matched ${line}:\n${f.out}`);
  }

  // logwatch: its postfix service on its "maillog" log file group, which Debian's
  // dist.conf/logfiles/maillog.conf reads from files named mail.log in the log directories.
  // logwatch always adds /var/log and /var/adm to those (only /etc/logwatch/conf could say
  // otherwise): a tmpfs from bwrap hides them, so that the machine's own mail log is not counted.
  const logdir = join(inst.dir, "logwatch");
  mkdirSync(logdir);
  copyFileSync(inst.maillog, join(logdir, "mail.log"));
  const hide = ["/var/log", "/var/adm"].filter((d) => existsSync(d)).flatMap((d) => ["--tmpfs", d]);
  const logwatch = [LOGWATCH, "--service", "postfix", "--logfile", "maillog", "--logdir", logdir];
  const options = ["--range", "All", "--detail", "High", "--output", "stdout", "--format", "text"];
  const w = runTool(BWRAP, ["--dev-bind", "/", "/", ...hide, "--", ...logwatch, ...options]);
  assert.equal(w.code, 0, w.out + w.err);
  const postfix = / Postfix Begin -+ *\n([\s\S]*?)\n *-+ Postfix End /.exec(w.out)?.[1] ?? "";
  const summary = /\*{6} Summary \*+\n([\s\S]*?)\n \*{6} Detail/.exec(postfix)?.[1] ?? "";
  const item = (what: string): string =>
    new RegExp(`^\\s*(\\S+)\\s+${what}\\s`, "m").exec(summary)?.[1] ?? "(none)";
  const lwhy = `logwatch:\n${w.out}\nlog:\n${log}`;
  assert.equal(item("Accepted"), String(RECEIVED), lwhy);
  assert.equal(item("Rejected"), String(REJECTED), lwhy);
  assert.equal(item("5xx Reject unknown user"), String(REJECTED), lwhy);
  assert.equal(item("Delivered"), String(DELIVERED), lwhy);
  assert.equal(item("Removed from queue"), String(RECEIVED), lwhy);
  assert.equal(item("Connections"), String(SESSIONS.length), lwhy);
  assert.equal(item("Disconnections"), String(SESSIONS.length), lwhy);

  // Every message was delivered once, so logwatch's bytes delivered are its bytes accepted. It
  // adds a message's size (from qmgr's "from=<...>, size=N" line) to the bytes delivered when
  // the delivery line comes, and forgets it at qmgr's "removed" line: as Postfix does, the
  // delivery agent's "status=sent" line must come before qmgr's "removed" for that message.
  const lines = log.split("\n");
  const late: string[] = [];
  lines.forEach((line, at) => {
    const id = /postfix\/local\[\d+\]: (\w+): to=<[^>]*>, .*status=sent/.exec(line)?.[1];
    if (id === undefined) return;
    const removed = lines.findIndex((l) => l.endsWith(` ${id}: removed`) && /postfix\/qmgr\[/.test(l));
    if (removed >= 0 && removed < at) late.push(`${lines[removed]}\n  comes before\n${line}`);
  });
  assert.equal(
    item("Bytes delivered"),
    item("Bytes accepted"),
    `logwatch's bytes delivered; deliveries logged after qmgr's "removed":\n${late.join("\n")}\n${lwhy}`,
  );
  assert.deepEqual(late, [], 'each delivery is logged before qmgr\'s "removed" line for its message');
});
