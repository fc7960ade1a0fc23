/*
 * bounce-notice.test - status log records and notice fields, without processes
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatRecord, parseLog } from "./bounce-log.js";
import { composeNotice, diagnosticCode, remoteMta } from "./bounce-notice.js";

test("a log record reads back; the last record of a recipient wins; bad blocks are skipped", () => {
  const text =
    formatRecord(
      { recipient: "a@x", original_recipient: "A@x", status: "4.4.1", action: "delayed", reason: "one" },
      100,
    ) +
    formatRecord(
      {
        recipient: "a@x",
        original_recipient: "A@x",
        dsn_notify: 4,
        status: "5.1.1",
        action: "failed",
        reason: "two\nlines",
        relay: "mx[192.0.2.1]:25",
      },
      200,
    ) +
    "recipient=b@x\nstatus=bogus\naction=failed\n\n";
  const e = parseLog(text);
  assert.equal(e.length, 1);
  assert.deepEqual(e[0], {
    recipient: "a@x",
    original_recipient: "A@x",
    dsn_notify: 4,
    status: "5.1.1",
    action: "failed",
    reason: "two lines",
    relay: "mx[192.0.2.1]:25",
    time: 200,
  });
});

test("Remote-MTA and Diagnostic-Code", () => {
  assert.equal(remoteMta("mx.example[192.0.2.1]:25"), "mx.example");
  assert.equal(remoteMta("none"), null);
  assert.equal(remoteMta("local"), null);
  assert.equal(
    diagnosticCode("host mx.example[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)"),
    "smtp; 550 5.1.1 no such user",
  );
  assert.equal(
    diagnosticCode("host mx.example[192.0.2.1] said: 552 5.3.4 too big (in reply to end of DATA command)"),
    "smtp; 552 5.3.4 too big",
  );
  assert.equal(diagnosticCode('unknown user: "bob"'), 'X-Postfix; unknown user: "bob"');
});

test("a notice is a multipart/report with the three parts and a closing boundary", () => {
  const b = composeNotice({
    kind: "failure",
    postmaster: false,
    head: {
      from: "Mail Delivery System <MAILER-DAEMON>",
      subject: "Undelivered Mail Returned to Sender",
      charset: "us-ascii",
      text: ["This is the mail system at host mx.example.", "", "                   The mail system"],
    },
    queueId: "ABC123",
    myhostname: "mx.example",
    to: "s@example",
    sender: "s@example",
    arrival: 1_700_000_000,
    entries: [
      {
        recipient: "r@x",
        original_recipient: "r@x",
        status: "5.1.1",
        action: "failed",
        reason: "gone",
        time: 0,
      },
    ],
    original: [Buffer.from("Subject: hi"), Buffer.from(""), Buffer.from("body")],
    headersOnly: false,
  }).toString();
  assert.match(
    b,
    /^From: Mail Delivery System <MAILER-DAEMON>\nSubject: Undelivered Mail Returned to Sender$/m,
  );
  assert.match(
    b,
    /^Content-Type: text\/plain; charset=us-ascii\n\nThis is the mail system at host mx\.example\.\n\n {19}The mail system\n\n<r@x>: gone\n\n--/m,
  );
  assert.match(
    b,
    /^Content-Type: multipart\/report; report-type=delivery-status;\n\tboundary="ABC123\.\d+\/mx\.example"$/m,
  );
  assert.match(b, /^Content-Type: message\/delivery-status\n\nReporting-MTA: dns; mx\.example$/m);
  assert.match(
    b,
    /^Final-Recipient: rfc822; r@x\nAction: failed\nStatus: 5\.1\.1\nDiagnostic-Code: X-Postfix; gone$/m,
  );
  assert.match(b, /\nbody\n\n--ABC123\.\d+\/mx\.example--\n$/);
});

test("a sendmail -bv report: its subject, text and deliverable/undeliverable actions", () => {
  const log =
    formatRecord(
      {
        recipient: "u@x",
        original_recipient: "u@x",
        status: "2.0.0",
        action: "deliverable",
        reason: "delivery via local: delivers to mailbox",
      },
      100,
    ) +
    formatRecord(
      {
        recipient: "v@x",
        original_recipient: "v@x",
        status: "5.1.1",
        action: "undeliverable",
        reason: 'delivery via local: unknown user: "v"',
      },
      100,
    );
  const entries = parseLog(log);
  assert.deepEqual(
    entries.map((e) => e.action),
    ["deliverable", "undeliverable"],
  );
  const text = composeNotice({
    kind: "verify",
    postmaster: false,
    head: {
      from: "Mail Delivery System <MAILER-DAEMON>",
      subject: "Mail Delivery Status Report",
      charset: "us-ascii",
      text: ["Enclosed is the mail delivery report that you requested."],
    },
    queueId: "ABC",
    myhostname: "mx.example",
    to: "s@x",
    sender: "s@x",
    arrival: 100,
    entries,
    original: [Buffer.from("Subject: hi")],
    headersOnly: true,
  }).toString();
  assert.match(text, /^Subject: Mail Delivery Status Report$/m);
  assert.match(text, /Enclosed is the mail delivery report that you requested\./);
  assert.match(text, /^<v@x>: delivery via local: unknown user: "v"$/m);
  assert.match(text, /^Action: undeliverable\nStatus: 5\.1\.1$/m);
  assert.match(text, /^Content-Type: text\/rfc822-headers$/m);
});
