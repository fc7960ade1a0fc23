/*
 * verify.test - address verification end to end: smtpd, the verify service, probes, sendmail -bv
 *
 * DESCRIPTION
 *   A real instance (smtpd, cleanup, qmgr, trivial-rewrite, local, error,
 *   verify, bounce/defer/trace, pickup) with real local accounts (needs
 *   root, as local-world.ts). smtpd has reject_unverified_recipient:
 *     - the first RCPT for an address gets 450 "Address verification in
 *       progress" (address_verify_poll_count = 1), while the probe runs
 *       through the queue: local finds a mailbox for a known user, "unknown
 *       user" for another, and transport_maps sends one address to the
 *       error transport;
 *     - later RCPTs are answered from the cache: 250 for the known user,
 *       unverified_recipient_reject_code (550) for the others;
 *     - a second smtpd with address_verify_poll_count = 20 waits for the
 *       probe and rejects a new unknown address on its first RCPT;
 *     - a third one has reject_unverified_sender, answered from the same
 *       cache (5.1.8 for an undeliverable sender, 4.1.8 while in progress);
 *     - probes deliver nothing and bounce to nobody;
 *     - the cache survives a restart of the instance.
 *   "sendmail -bv" mails the sender a Mail Delivery Status Report
 *   (read with Python's email package) and delivers nothing; "sendmail
 *   -v" delivers and then reports "delivered".
 *   A flood of 10,000 distinct unknown addresses against the real verify
 *   daemon leaves at most address_verify_pending_request_limit probes in
 *   the queue and at most postern_address_verify_cache_limit entries in
 *   the cache file. Without a verify service, smtpd answers 450 "address
 *   verification problem".
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, sleep, startInstance, type Instance, shippedEntries } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello, smtpdInstance } from "../src/testing/smtpd-instance.js";
import { DOMAIN, makeWorld } from "../src/testing/local-world.js";
import { dbEntries } from "../src/global/dict-db.js";
import { VerifyClient } from "../src/global/verify-client.js";
import { ADDR_STATUS } from "../src/global/verify-proto.js";

const world = makeWorld();
after(() => world.cleanup());

interface Rig {
  inst: Instance;
  port: number;
  pollPort: number;
  senderPort: number;
}

/** Starts the instance (see the module comment). */
async function verifyInstance(t: { after: (fn: () => Promise<void>) => void }): Promise<Rig> {
  const port = await freePort();
  const pollPort = await freePort();
  const senderPort = await freePort();
  const inst = await startInstance(t, {
    main: [
      `myhostname = ${DOMAIN}`,
      "mydestination = $myhostname, localhost",
      "relay_domains =",
      "mynetworks = 192.0.2.0/24",
      "smtpd_peername_lookup = no",
      "default_transport = error:5.0.0 no remote mail in tests",
      "home_mailbox = Maildir/",
      "alias_maps =",
      "local_recipient_maps =",
      `transport_maps = inline:{ {gone@${DOMAIN} = error:5.1.1 this mailbox is gone} }`,
      "smtpd_recipient_restrictions = reject_unverified_recipient",
      "unverified_recipient_reject_code = 550",
      "address_verify_poll_count = 1",
      "queue_run_delay = 1s",
      "minimal_backoff_time = 1s",
      "maximal_backoff_time = 2s",
      "notify_classes = resource, software, 2bounce",
    ].join("\n"),
    master: [
      `${port} inet n - n - - smtpd`,
      `${pollPort} inet n - n - - smtpd -o address_verify_poll_count=20 -o address_verify_poll_delay=1s`,
      `${senderPort} inet n - n - - smtpd -o smtpd_recipient_restrictions=permit -o smtpd_sender_restrictions=reject_unverified_sender -o unverified_sender_reject_code=550`,
      shippedEntries("pickup"),
      shippedEntries("cleanup"),
      shippedEntries("qmgr"),
      shippedEntries("rewrite"),
      shippedEntries("local"),
      shippedEntries("error"),
      shippedEntries("verify"),
      shippedEntries("bounce"),
      shippedEntries("defer"),
      shippedEntries("trace"),
      "",
    ].join("\n"),
  });
  return { inst, port, pollPort, senderPort };
}

/** One RCPT's reply in a fresh transaction. */
async function rcpt(port: number, address: string, sender = "someone@example.org"): Promise<string> {
  const c = await smtpHello(port);
  try {
    assert.match(await smtpCmd(c, `MAIL FROM:<${sender}>`), /^250 /);
    return await smtpCmd(c, `RCPT TO:<${address}>`);
  } finally {
    c.send("QUIT");
    c.close();
  }
}

/** The files in the queues that hold mail waiting or in progress. */
function queued(spool: string): number {
  let n = 0;
  for (const q of ["maildrop", "incoming", "active", "deferred", "hold"]) {
    const walk = (dir: string): void => {
      if (!existsSync(dir)) return;
      for (const e of readdirSync(dir, { withFileTypes: true }))
        if (e.isDirectory()) walk(join(dir, e.name));
        else n++;
    };
    walk(join(spool, q));
  }
  return n;
}

test("reject_unverified_recipient: in progress, then the cache answers; probes deliver and bounce nothing; the cache survives a restart", async (t) => {
  const known = world.user("vk");
  const { inst, port, pollPort, senderPort } = await verifyInstance(t);
  const unknown = `nosuch@${DOMAIN}`;
  const gone = `gone@${DOMAIN}`;
  const good = `${known.name}@${DOMAIN}`;
  for (const a of [unknown, gone, good])
    assert.equal(
      await rcpt(port, a),
      `450 4.1.1 <${a}>: Recipient address rejected: unverified address: Address verification in progress`,
    );
  await inst.waitLog(
    new RegExp(`to=<${unknown}>.*status=undeliverable \\(unknown user: "nosuch"\\)`),
    30_000,
  );
  await inst.waitLog(new RegExp(`to=<${gone}>.*status=undeliverable \\(this mailbox is gone\\)`), 30_000);
  await inst.waitLog(new RegExp(`to=<${good}>.*status=deliverable \\(delivers to maildir\\)`), 30_000);
  assert.equal(
    await rcpt(port, unknown),
    `550 5.1.1 <${unknown}>: Recipient address rejected: undeliverable address: unknown user: "nosuch"`,
  );
  assert.equal(
    await rcpt(port, gone),
    `550 5.1.1 <${gone}>: Recipient address rejected: undeliverable address: this mailbox is gone`,
  );
  assert.match(await rcpt(port, good), /^250 2\.1\.5 /);
  // reject_unverified_sender (checked at RCPT time: smtpd_delay_reject) uses the same cache.
  assert.equal(
    await rcpt(senderPort, good, unknown),
    `550 5.1.8 <${unknown}>: Sender address rejected: undeliverable address: unknown user: "nosuch"`,
  );
  assert.match(await rcpt(senderPort, unknown, good), /^250 2\.1\.5 /, "a verified sender passes");
  const ghost = `ghost@${DOMAIN}`;
  assert.equal(
    await rcpt(senderPort, good, ghost),
    `450 4.1.8 <${ghost}>: Sender address rejected: unverified address: Address verification in progress`,
  );
  // With polling, the first RCPT for a new address waits for its probe.
  const other = `other@${DOMAIN}`;
  assert.equal(
    await rcpt(pollPort, other),
    `550 5.1.1 <${other}>: Recipient address rejected: undeliverable address: unknown user: "other"`,
  );
  // Probes are never delivered, bounced or kept: nothing in the mailbox, no notice, an empty queue.
  const log = inst.log();
  assert.match(log, /from=<double-bounce@mail\.example\.test>/, "probes come from address_verify_sender");
  assert.doesNotMatch(log, /non-delivery notification|delivery status notification/);
  assert.equal(
    existsSync(join(known.home, "Maildir", "new"))
      ? readdirSync(join(known.home, "Maildir", "new")).length
      : 0,
    0,
  );
  const deadline = Date.now() + 10_000;
  while (queued(inst.spool) > 0 && Date.now() < deadline) await sleep(100);
  assert.equal(queued(inst.spool), 0, "no probe is left in the queue");
  // A restart keeps the answers: no new probe is needed.
  const stopped = await inst.stop();
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.ok(existsSync(join(inst.lib, "verify_cache.db")), "the cache file is written");
  const started = await inst.start();
  assert.equal(started.code, 0, started.stderr);
  assert.equal(
    await rcpt(port, unknown),
    `550 5.1.1 <${unknown}>: Recipient address rejected: undeliverable address: unknown user: "nosuch"`,
  );
  assert.match(await rcpt(port, good), /^250 2\.1\.5 /);
});

const REPORT = `
import email, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
dsn = []
for p in m.get_payload():
    if p.get_content_type() == "message/delivery-status":
        dsn = [dict(b.items()) for b in p.get_payload()]
print(json.dumps({"subject": m["Subject"], "to": m["To"], "dsn": dsn}))
`;

test("sendmail -bv mails a Mail Delivery Status Report and delivers nothing", async (t) => {
  const sender = world.user("vs");
  const known = world.user("vk");
  const { inst } = await verifyInstance(t);
  const from = `${sender.name}@${DOMAIN}`;
  const r = await runCli("sendmail", ["-bv", "-f", from, `${known.name}@${DOMAIN}`, `nosuch@${DOMAIN}`], {
    env: { MAIL_CONFIG: inst.etc },
    input: "Subject: test\n\nhello\n",
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `Mail Delivery Status Report will be mailed to <${from}>.\n`);
  const dir = join(sender.home, "Maildir", "new");
  const deadline = Date.now() + 30_000;
  while (!existsSync(dir) || readdirSync(dir).length === 0) {
    if (Date.now() > deadline) throw new Error(`no report; log:\n${inst.log()}`);
    await sleep(100);
  }
  const files = readdirSync(dir);
  assert.equal(files.length, 1);
  const report = JSON.parse(
    execFileSync("/usr/bin/python3", ["-c", REPORT, join(dir, files[0] ?? "")], { encoding: "utf8" }),
  ) as { subject: string; to: string; dsn: Array<Record<string, string>> };
  assert.equal(report.subject, "Mail Delivery Status Report");
  const byRcpt = new Map(report.dsn.slice(1).map((b) => [b["Final-Recipient"], b]));
  const ok = byRcpt.get(`rfc822; ${known.name}@${DOMAIN}`);
  const no = byRcpt.get(`rfc822; nosuch@${DOMAIN}`);
  assert.equal(ok?.["Action"], "deliverable");
  assert.equal(ok?.["Status"], "2.0.0");
  assert.equal(ok?.["Diagnostic-Code"], "X-Postfix; delivery via local: delivers to maildir");
  assert.equal(no?.["Action"], "undeliverable");
  assert.equal(no?.["Status"], "5.1.1");
  assert.equal(no?.["Diagnostic-Code"], 'X-Postfix; delivery via local: unknown user: "nosuch"');
  await sleep(500);
  assert.equal(
    existsSync(join(known.home, "Maildir", "new"))
      ? readdirSync(join(known.home, "Maildir", "new")).length
      : 0,
    0,
    "nothing was delivered",
  );
  assert.doesNotMatch(inst.log(), /non-delivery notification/);
  // sendmail -v delivers, then reports what happened.
  const v = await runCli("sendmail", ["-v", "-f", from, `${known.name}@${DOMAIN}`], {
    env: { MAIL_CONFIG: inst.etc },
    input: "Subject: recorded\n\nhello\n",
  });
  assert.equal(v.code, 0, v.stderr);
  while (readdirSync(dir).length < 2) {
    if (Date.now() > deadline + 30_000) throw new Error(`no -v report; log:\n${inst.log()}`);
    await sleep(100);
  }
  const second = readdirSync(dir).find((f) => f !== files[0]) ?? "";
  const rec = JSON.parse(
    execFileSync("/usr/bin/python3", ["-c", REPORT, join(dir, second)], { encoding: "utf8" }),
  ) as { subject: string; dsn: Array<Record<string, string>> };
  assert.equal(rec.subject, "Mail Delivery Status Report");
  assert.equal(rec.dsn[1]?.["Action"], "delivered");
  assert.equal(rec.dsn[1]?.["Diagnostic-Code"], "X-Postfix; delivery via local: delivered to maildir");
  assert.equal(readdirSync(join(known.home, "Maildir", "new")).length, 1, "the -v message was delivered");
});

test("10,000 distinct unknown addresses: the queue holds at most the pending limit, the cache at most its limit", async (t) => {
  const inst = await startInstance(t, {
    main: [
      "address_verify_pending_request_limit = 100",
      "postern_address_verify_cache_limit = 500",
      "postern_address_verify_probe_rate_limit = 0",
    ].join("\n"),
    master: [shippedEntries("cleanup"), shippedEntries("rewrite"), shippedEntries("verify"), ""].join("\n"),
  });
  const v = new VerifyClient(inst.spool, "verify", 10_000, { persistent: true });
  t.after(() => v.close());
  for (let i = 0; i < 10_000; i++) {
    const q = await v.query(`flood${i}@unknown.example`);
    assert.ok(q.ok, q.ok ? "" : q.reason);
    assert.equal(q.status, ADDR_STATUS.TODO);
  }
  await sleep(1500);
  const n = queued(inst.spool);
  assert.ok(n <= 100, `${n} probes queued`);
  assert.ok(n > 0, "probes were queued");
  const stopped = await inst.stop();
  assert.equal(stopped.code, 0, stopped.stderr);
  const entries = [...dbEntries(join(inst.lib, "verify_cache.db"))].length;
  assert.ok(entries > 0 && entries <= 500, `${entries} cache entries`);
});

test("without a verify service: 450 'address verification problem', at once with tempfail_action = defer", async (t) => {
  const inst = await smtpdInstance(
    t,
    [
      "smtpd_recipient_restrictions = reject_unverified_recipient, permit",
      "unverified_recipient_tempfail_action = defer",
      "address_verify_poll_count = 1",
    ].join("\n") + "\n",
  );
  assert.equal(
    await rcpt(inst.port, "anyone@example.org"),
    "450 4.1.1 <anyone@example.org>: Recipient address rejected: address verification problem",
  );
  await inst.waitLog(/warning: verify service failure/);
});
