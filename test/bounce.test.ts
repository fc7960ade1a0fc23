/*
 * bounce.test - bounce, defer and trace services on real processes
 *
 * DESCRIPTION
 *   An instance runs cleanup, trivial-rewrite, qmgr, showq, the bounce,
 *   defer and trace services (chrooted, as in the stock master.cf) and a
 *   "sink" transport (src/testing/test-agent.ts) that keeps a copy of
 *   every delivered message. A recipient named fail-* bounces, one named
 *   defer-* is deferred. The tests read the notices that come back to the
 *   sender (or postmaster) with Python's email package (a real MIME
 *   parser) and check what a sender would read: the non-delivery report
 *   with every RFC 3464 field, RET=HDRS, the return after
 *   maximal_queue_lifetime (the clock moved by qmgr's test hook), a delay
 *   warning sent once, a bounce to an undeliverable sender ending as a
 *   double bounce to postmaster and stopping there, mailq's deferral
 *   reasons, NOTIFY=SUCCESS reports, soft_bounce and postmaster copies,
 *   and notices written from a bounce_template_file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Instance, makeInstance, sleep, until, shippedEntries } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { DSN_NOTIFY } from "../src/global/queue-file.js";

type Inst = Instance & { record: string; copies: string };

/** Starts an instance with the mail path, the bounce services and a copying sink. */
async function instance(t: { after: (fn: () => Promise<void>) => void }, main = ""): Promise<Inst> {
  const recDir = mkdtempSync(join(tmpdir(), "postern-rec-"));
  chmodSync(recDir, 0o1777);
  const record = join(recDir, "deliveries.log");
  const inst = makeInstance({
    main: `default_transport = sink\nmydestination =\nrelay_domains =\nmyhostname = mx.example.test\n${main}`,
    master: [
      shippedEntries("cleanup"),
      shippedEntries("qmgr"),
      shippedEntries("rewrite"),
      shippedEntries("bounce"),
      shippedEntries("defer"),
      shippedEntries("trace"),
      shippedEntries("showq"),
      `sink unix - - n - 100 test-agent.js ${record} ${recDir}`,
      "",
    ].join("\n"),
  });
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
    rmSync(recDir, { recursive: true, force: true });
  });
  return Object.assign(inst, { record, copies: recDir });
}

/** Submits a message; returns its queue ID. */
async function submit(
  inst: Instance,
  sender: string,
  rcpts: Array<{ address: string; orcpt?: string; notify?: number }>,
  attrs: Record<string, string> = {},
): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  for (const [k, v] of Object.entries(attrs)) await c.client.attr(k, v);
  await c.client.sender(sender);
  for (const r of rcpts) await c.client.rcpt({ ...r, original: r.address });
  await c.client.data(Buffer.from("From: sender@example.org\nSubject: hello there\n\nthe body line\n"));
  const r = await c.client.end();
  assert.equal(r.status, "ok");
  return c.client.queueId;
}

interface Parsed {
  headers: Record<string, string>;
  parts: Array<{ type: string; description: string; body: string }>;
  dsn: Array<Record<string, string>>;
  attached: string;
}

const PARSER = `
import email, json, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.compat32)
out = {"headers": {k: str(v) for k, v in m.items()}, "parts": [], "dsn": [], "attached": ""}
out["headers"]["_type"] = m.get_content_type()
out["headers"]["_report_type"] = m.get_param("report-type") or ""
for p in m.get_payload():
    t = p.get_content_type()
    body = ""
    if t == "message/delivery-status":
        out["dsn"] = [dict(b.items()) for b in p.get_payload()]
    elif t == "message/rfc822":
        out["attached"] = p.get_payload()[0].as_string()
    else:
        body = p.get_payload(decode=True).decode("utf-8", "replace")
    out["parts"].append({"type": t, "description": p.get("Content-Description", ""), "body": body})
print(json.dumps(out))
`;

/** Parses a delivered notice with Python's email package. */
function parseNotice(path: string): Parsed {
  return JSON.parse(execFileSync("/usr/bin/python3", ["-c", PARSER, path], { encoding: "utf8" })) as Parsed;
}

/** Waits for a notice that qmgr's log names, delivered to the sink; returns it parsed. */
async function notice(inst: Inst, re: RegExp): Promise<{ id: string; parsed: Parsed }> {
  const line = await inst.waitLog(re, 30_000);
  const id = re.exec(line)?.[1] ?? "";
  const path = join(inst.copies, `${id}.eml`);
  await until(`the notice ${id} delivered`, () => existsSync(path));
  return { id, parsed: parseNotice(path) };
}

test("a failing recipient: a non-delivery report to the sender with every RFC 3464 field", async (t) => {
  const inst = await instance(t);
  const id = await submit(
    inst,
    "sender@example.org",
    [
      { address: "ok@three.example" },
      { address: "fail-1@three.example", orcpt: "rfc822;Fail-1@Three.Example", notify: DSN_NOTIFY.FAILURE },
    ],
    { dsn_envid: "ENV-42" },
  );
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender non-delivery notification: (\\w+)`));
  await inst.waitLog(new RegExp(`${id}: removed`));
  assert.equal(n.headers["From"], "Mail Delivery System <MAILER-DAEMON@mx.example.test>");
  assert.equal(n.headers["Subject"], "Undelivered Mail Returned to Sender");
  assert.equal(n.headers["To"], "sender@example.org");
  assert.equal(n.headers["_type"], "multipart/report");
  assert.equal(n.headers["_report_type"], "delivery-status");
  assert.deepEqual(
    n.parts.map((p) => p.type),
    ["text/plain", "message/delivery-status", "message/rfc822"],
  );
  assert.match(n.parts[0]?.body ?? "", /could not\nbe delivered to one or more recipients/);
  assert.match(n.parts[0]?.body ?? "", /<fail-1@three\.example>: test failure/);
  const [head, rcpt, extra] = n.dsn;
  assert.equal(extra, undefined, "only the failed recipient is reported");
  assert.equal(head?.["Reporting-MTA"], "dns; mx.example.test");
  assert.equal(head?.["Original-Envelope-Id"], "ENV-42");
  assert.equal(head?.["X-Postfix-Queue-ID"], id);
  assert.match(head?.["Arrival-Date"] ?? "", /^\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}/);
  assert.equal(rcpt?.["Final-Recipient"], "rfc822; fail-1@three.example");
  assert.equal(rcpt?.["Original-Recipient"], "rfc822; Fail-1@Three.Example");
  assert.equal(rcpt?.["Action"], "failed");
  assert.equal(rcpt?.["Status"], "5.1.1");
  assert.equal(rcpt?.["Remote-MTA"], "dns; three.example");
  assert.equal(rcpt?.["Diagnostic-Code"], "X-Postfix; test failure");
  assert.match(rcpt?.["Last-Attempt-Date"] ?? "", /^\w{3}, \d{1,2} \w{3} \d{4} /);
  assert.match(n.attached, /Subject: hello there/);
  assert.match(n.attached, /the body line/);
  assert.match(
    inst.log(),
    new RegExp(`${id}: to=<fail-1@three\\.example>.*status=bounced \\(test failure\\)`),
  );
  assert.equal(existsSync(join(inst.spool, "bounce", id[0] as string, id)), false, "the bounce log is gone");
});

test("RET=HDRS returns the headers only", async (t) => {
  const inst = await instance(t);
  const id = await submit(inst, "sender@example.org", [{ address: "fail-2@three.example" }], {
    dsn_ret: "HDRS",
  });
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender non-delivery notification: (\\w+)`));
  const last = n.parts[2];
  assert.equal(last?.type, "text/rfc822-headers");
  assert.equal(last?.description, "Undelivered Message Headers");
  assert.match(last?.body ?? "", /Subject: hello there/);
  assert.doesNotMatch(last?.body ?? "", /the body line/);
});

test("a message larger than bounce_size_limit comes back as its headers", async (t) => {
  const inst = await instance(t, "bounce_size_limit = 40\n");
  const id = await submit(inst, "sender@example.org", [{ address: "fail-3@three.example" }]);
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender non-delivery notification: (\\w+)`));
  assert.equal(n.parts[2]?.type, "text/rfc822-headers");
  assert.doesNotMatch(n.parts[2]?.body ?? "", /the body line/);
});

test("expiry after maximal_queue_lifetime returns the deferred recipients with 'message expired'", async (t) => {
  const inst = await instance(
    t,
    "import_environment = MAIL_CONFIG POSTERN_TEST_CLOCK_OFFSET=518400\nmaximal_queue_lifetime = 5d\n",
  );
  const id = await submit(inst, "sender@example.org", [{ address: "defer-9@four.example" }]);
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender non-delivery notification: (\\w+)`));
  assert.match(
    inst.log(),
    new RegExp(`${id}: from=<sender@example\\.org>, status=expired, returned to sender`),
  );
  await inst.waitLog(new RegExp(`${id}: removed`));
  const rcpt = n.dsn[1];
  assert.equal(rcpt?.["Final-Recipient"], "rfc822; defer-9@four.example");
  assert.equal(rcpt?.["Action"], "failed");
  assert.equal(rcpt?.["Status"], "5.4.7");
  assert.match(rcpt?.["Diagnostic-Code"] ?? "", /^X-Postfix; message expired \(last error: test deferral\)/);
});

test("a delay warning after delay_warning_time, once; mailq shows the deferral reason", async (t) => {
  const inst = await instance(
    t,
    "import_environment = MAIL_CONFIG POSTERN_TEST_CLOCK_OFFSET=7200\ndelay_warning_time = 1h\n",
  );
  const id = await submit(inst, "sender@example.org", [{ address: "defer-3@five.example" }]);
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender delay notification: (\\w+)`));
  assert.equal(n.headers["Subject"], "Delayed Mail (still being retried)");
  assert.match(n.parts[0]?.body ?? "", /THIS IS A WARNING ONLY/);
  assert.match(
    n.parts[0]?.body ?? "",
    /more than 1 hour\(s\)\.\nIt will be retried until it is 5 day\(s\) old\./,
  );
  assert.match(
    n.parts[0]?.body ?? "",
    /for more than 1 hour\(s\)\.\nIt will be retried until it is 5 day\(s\) old\./,
  );
  const rcpt = n.dsn[1];
  assert.equal(rcpt?.["Action"], "delayed");
  assert.equal(rcpt?.["Status"], "4.4.1");
  assert.match(rcpt?.["Will-Retry-Until"] ?? "", /^\w{3}, \d{1,2} \w{3} \d{4} /);
  assert.equal(n.parts[2]?.type, "text/rfc822-headers");
  const q = await runCli("mailq", [], { env: { MAIL_CONFIG: inst.etc } });
  assert.equal(q.code, 0, q.stderr);
  assert.match(
    q.stdout,
    new RegExp(
      `^${id}\\s+\\d+ .*sender@example\\.org\\n\\s+\\(test deferral\\)\\n\\s+defer-3@five\\.example$`,
      "m",
    ),
  );
  assert.equal((await inst.postern("flush")).code, 0);
  await until(
    "a second attempt",
    () => (inst.log().match(new RegExp(`${id}: to=<defer-3@`, "g")) ?? []).length >= 2,
  );
  await sleep(500);
  const warnings = inst.log().match(new RegExp(`${id}: sender delay notification`, "g")) ?? [];
  assert.equal(warnings.length, 1, "one warning only");
});

test("a bounce to an undeliverable sender ends as a double bounce to postmaster and stops", async (t) => {
  const inst = await instance(t, "notify_classes = resource, software, 2bounce\n");
  const id = await submit(inst, "fail-sender@six.example", [{ address: "fail-rcpt@six.example" }]);
  const first = await inst.waitLog(new RegExp(`${id}: sender non-delivery notification: (\\w+)`));
  const bounceId = /notification: (\w+)/.exec(first)?.[1] ?? "";
  await inst.waitLog(new RegExp(`${bounceId}: to=<fail-sender@six\\.example>.*status=bounced`));
  const { parsed: n } = await notice(
    inst,
    new RegExp(`${bounceId}: postmaster non-delivery notification: (\\w+)`),
  );
  assert.equal(n.headers["To"], "postmaster@mx.example.test");
  assert.equal(n.headers["Subject"], "Postmaster Copy: Undelivered Mail");
  assert.equal(n.dsn[1]?.["Final-Recipient"], "rfc822; fail-sender@six.example");
  await inst.waitLog(new RegExp(`${bounceId}: removed`));
  await sleep(500);
  const notices = inst.log().match(/non-delivery notification/g) ?? [];
  assert.equal(notices.length, 2, "no third notice");
});

test("a double bounce that cannot be delivered is discarded", async (t) => {
  const inst = await instance(
    t,
    "notify_classes = 2bounce\n2bounce_notice_recipient = fail-postmaster@mx.example.test\n",
  );
  await submit(inst, "fail-sender@six.example", [{ address: "fail-rcpt@six.example" }]);
  await inst.waitLog(/postmaster non-delivery notification: (\w+)/);
  await inst.waitLog(/: discarding undeliverable postmaster notification/);
  await sleep(500);
  assert.equal((inst.log().match(/non-delivery notification/g) ?? []).length, 2);
});

test("NOTIFY=SUCCESS: a delivery report for the recipients that asked, and none for the others", async (t) => {
  const inst = await instance(t);
  const id = await submit(inst, "sender@example.org", [
    { address: "yes@eight.example", notify: DSN_NOTIFY.SUCCESS | DSN_NOTIFY.FAILURE },
    { address: "no@eight.example" },
  ]);
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender delivery status notification: (\\w+)`));
  assert.equal(n.headers["Subject"], "Successful Mail Delivery Report");
  assert.match(n.parts[0]?.body ?? "", /successfully delivered to the destination\(s\)/);
  assert.equal(n.dsn.length, 2, "one recipient block");
  assert.equal(n.dsn[1]?.["Final-Recipient"], "rfc822; yes@eight.example");
  assert.equal(n.dsn[1]?.["Action"], "delivered");
  assert.equal(n.dsn[1]?.["Status"], "2.0.0");
  assert.equal(n.parts[2]?.type, "text/rfc822-headers");
  await inst.waitLog(new RegExp(`${id}: removed`));
  assert.equal(existsSync(join(inst.spool, "trace", id[0] as string, id)), false, "the trace log is gone");
});

test("soft_bounce keeps a failing recipient deferred; notify_classes bounce copies postmaster", async (t) => {
  const soft = await instance(t, "soft_bounce = yes\n");
  const id = await submit(soft, "sender@example.org", [{ address: "fail-5@nine.example" }]);
  await soft.waitLog(
    new RegExp(`${id}: to=<fail-5@nine\\.example>.*dsn=4\\.1\\.1, status=deferred \\(test failure\\)`),
  );
  await sleep(300);
  assert.doesNotMatch(soft.log(), /non-delivery notification/);
  const loud = await instance(t, "notify_classes = bounce\n");
  const id2 = await submit(loud, "sender@example.org", [{ address: "fail-6@nine.example" }]);
  const { parsed: n } = await notice(
    loud,
    new RegExp(`${id2}: postmaster non-delivery notification: (\\w+)`),
  );
  assert.equal(n.headers["To"], "postmaster@mx.example.test");
  assert.equal(n.headers["Subject"], "Postmaster Copy: Undelivered Mail");
  assert.equal(n.parts[2]?.type, "text/rfc822-headers");
  assert.match(loud.log(), new RegExp(`${id2}: sender non-delivery notification: \\w+`));
});

const TEMPLATES = `# site templates
failure_template = <<EOF
Charset: us-ascii
From: Mail Robot <MAILER-DAEMON>
Subject: Returned mail from $mydomain
Postmaster-Subject: Copy of a returned message

Hello from $myhostname: your message could not be delivered.
It cost $$0 and waited at most $maximal_queue_lifetime_days days.
EOF

success_template = <<DONE
Subject: Delivered, as you asked

$myhostname delivered your message.
DONE
`;

/** Writes a template file (readable by mail_owner) into a fresh directory; removed after the test. */
function templateFile(t: { after: (fn: () => void) => void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "postern-tmpl-"));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "bounce.cf");
  writeFileSync(path, text);
  return path;
}

test("bounce_template_file: the site's From, subjects and text; postmaster copies get the Postmaster-Subject only", async (t) => {
  const path = templateFile(t, TEMPLATES);
  const inst = await instance(
    t,
    `bounce_template_file = ${path}\nnotify_classes = bounce\nmydomain = example.test\n`,
  );
  const id = await submit(inst, "sender@example.org", [
    { address: "fail-7@ten.example" },
    { address: "ok@ten.example", notify: DSN_NOTIFY.SUCCESS },
  ]);
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender non-delivery notification: (\\w+)`));
  assert.equal(n.headers["From"], "Mail Robot <MAILER-DAEMON@mx.example.test>");
  assert.equal(n.headers["Subject"], "Returned mail from $mydomain", "template headers are not expanded");
  assert.equal(n.headers["Auto-Submitted"], "auto-replied");
  assert.equal(
    n.parts[0]?.body,
    "Hello from mx.example.test: your message could not be delivered.\n" +
      "It cost $0 and waited at most 5 days.\n\n<fail-7@ten.example>: test failure\n",
  );
  assert.equal(n.dsn[1]?.["Final-Recipient"], "rfc822; fail-7@ten.example");
  const { parsed: pm } = await notice(
    inst,
    new RegExp(`${id}: postmaster non-delivery notification: (\\w+)`),
  );
  assert.equal(pm.headers["Subject"], "Copy of a returned message");
  assert.equal(pm.headers["Auto-Submitted"], "auto-generated");
  assert.equal(
    pm.parts[0]?.body,
    "\n<fail-7@ten.example>: test failure\n",
    "no template text for postmaster",
  );
  const { parsed: s } = await notice(inst, new RegExp(`${id}: sender delivery status notification: (\\w+)`));
  assert.equal(s.headers["Subject"], "Delivered, as you asked");
  assert.equal(s.headers["From"], "Mail Delivery System <MAILER-DAEMON@mx.example.test>");
  assert.match(s.parts[0]?.body ?? "", /^mx\.example\.test delivered your message\.\n\n<ok@ten\.example>: /);
});

test("a template whose $name is unknown: no notice, the message stays queued, the reason is logged", async (t) => {
  const path = templateFile(t, "failure_template = <<EOF\nSubject: x\n\nfrom $no_such_name\nEOF\n");
  const inst = await instance(t, `bounce_template_file = ${path}\n`);
  const id = await submit(inst, "sender@example.org", [{ address: "fail-8@ten.example" }]);
  await inst.waitLog(/undefined \$name in failure template: from \$no_such_name/);
  await sleep(300);
  assert.doesNotMatch(inst.log(), new RegExp(`${id}: sender non-delivery notification`));
  assert.doesNotMatch(inst.log(), new RegExp(`${id}: removed`));
});

test("header_from_format = obsolete: the notice's From is the old form, qualified by cleanup", async (t) => {
  const inst = await instance(t, "header_from_format = obsolete\n");
  const id = await submit(inst, "sender@example.org", [{ address: "fail-9@ten.example" }]);
  const { parsed: n } = await notice(inst, new RegExp(`${id}: sender non-delivery notification: (\\w+)`));
  assert.equal(n.headers["From"], "MAILER-DAEMON@mx.example.test (Mail Delivery System)");
});
