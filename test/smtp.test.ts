/*
 * smtp.test - the SMTP delivery agent against real servers on loopback
 *
 * DESCRIPTION
 *   Postfix's smtp-sink and Python's aiosmtpd receive what Postern's smtp
 *   agent relays: relayhost and [host]:port next hops, several recipients
 *   in one pipelined transaction, DSN parameters passed on, dot-stuffing,
 *   a per-recipient 250/450/550 mix with the server's replies in the log,
 *   HELO when EHLO is refused, smtp_helo_name, connection failures (site
 *   failures), 5xx greetings (skipped, or with smtp_skip_5xx_greeting = no
 *   bounced), smtp_bind_address, SIZE limits, connection reuse, 8-bit to
 *   7-bit conversion, generic maps and output header/body checks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { freePort } from "../src/testing/instance.js";
import { relayInstance, startAiosmtpd, startSmtpSink, submitMessage } from "../src/testing/smtp-peers.js";

/** A regular expression that matches a string literally. */
function lit(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test("relayhost: one pipelined transaction with every recipient, DSN parameters, dot-stuffing, Postfix log lines", async (t) => {
  const sink = await startSmtpSink(t, { addr: "127.0.0.2" });
  const inst = await relayInstance(
    t,
    `relayhost = [127.0.0.2]:${sink.port}\nsmtp_helo_name = client.example.test\nsmtp_bind_address = 127.0.0.11\nsmtp_line_length_limit = 40`,
  );
  const long = "0123456789".repeat(9);
  const body = `Subject: relay\n\nfirst line\n.leading dot\n..two dots\n.\n${long}\nlast line\n`;
  const id = await submitMessage(inst, {
    rcpts: [
      { address: "a@remote.test", original: "a@remote.test", notify: 2 | 4, orcpt: "rfc822;A+x@remote.test" },
      "b@remote.test",
      "c@other.test",
    ],
    attrs: { dsn_envid: "env id=1", dsn_ret: "HDRS" },
    content: body,
  });
  for (const r of ["a@remote.test", "b@remote.test", "c@other.test"])
    await inst.waitLog(
      new RegExp(
        `${id}: to=<${lit(r)}>, relay=127\\.0\\.0\\.2\\[127\\.0\\.0\\.2\\]:${sink.port}, delay=[\\d.]+, delays=[\\d./]+, dsn=2\\.0\\.0, status=sent \\(250 2\\.0\\.0 Ok`,
      ),
      20_000,
    );
  const dumps = sink.dumps();
  assert.equal(dumps.length, 1, "one transaction for all three recipients");
  const d = dumps[0];
  assert.ok(d !== undefined);
  assert.equal(d.helo, "client.example.test");
  assert.equal(d.client, "127.0.0.11", "smtp_bind_address is the source address");
  // smtp-sink offers DSN but not SIZE: RET and ENVID go with MAIL, SIZE does not.
  assert.equal(d.mailArgs, "<sender@example.org> RET=HDRS ENVID=env+20id+3D1");
  assert.deepEqual(d.rcptArgs, [
    "<a@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2Bx@remote.test",
    "<b@remote.test> ORCPT=rfc822;b@remote.test",
    "<c@other.test> ORCPT=rfc822;c@other.test",
  ]);
  assert.match(d.body, /first line\n\.leading dot\n\.\.two dots\n\.\n/);
  // smtp_line_length_limit = 40: the long line is broken with CRLF SPACE.
  assert.ok(
    d.body.includes(`\n${long.slice(0, 40)}\n ${long.slice(40, 80)}\n ${long.slice(80)}\nlast line\n`),
    d.body,
  );
});

test("per-recipient results in one transaction: 250 sent, 450 deferred, 550 bounced, with the server's words", async (t) => {
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });
  const inst = await relayInstance(t, `relayhost = [127.0.0.3]:${aio.port}`);
  const id = await submitMessage(inst, {
    rcpts: ["ok@remote.test", "soft-one@remote.test", "hard-two@remote.test"],
    content: "Subject: mix\n\nhello\n",
  });
  const relay = `relay=127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\]:${aio.port}`;
  await inst.waitLog(
    new RegExp(
      `${id}: to=<ok@remote\\.test>, ${relay}, .*dsn=2\\.0\\.0, status=sent \\(250 2\\.0\\.0 Ok: queued as aio1\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${id}: to=<soft-one@remote\\.test>, ${relay}, .*dsn=4\\.2\\.0, status=deferred \\(host 127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\] said: 450 4\\.2\\.0 <soft-one@remote\\.test>: mailbox busy, try later \\(in reply to RCPT TO command\\)\\)`,
    ),
  );
  await inst.waitLog(
    new RegExp(
      `${id}: to=<hard-two@remote\\.test>, ${relay}, .*dsn=5\\.1\\.1, status=bounced \\(host 127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\] said: 550 5\\.1\\.1 <hard-two@remote\\.test>: no such user here \\(in reply to RCPT TO command\\)\\)`,
    ),
  );
  const msgs = aio.messages();
  assert.equal(msgs.length >= 1, true);
  assert.match(msgs[0] ?? "", /^X-Mail-From: sender@example\.org\nX-Rcpt-To: ok@remote\.test\n/);
  assert.match(msgs[0] ?? "", /Subject: mix\r?\n\r?\nhello/);
});

test("HELO when the server refuses EHLO; a 5xx greeting and a refused connection defer as site failures", async (t) => {
  const old = await startSmtpSink(t, { addr: "127.0.0.5", args: ["-e"] });
  const grumpy = await startSmtpSink(t, { addr: "127.0.0.6", args: ["-f", "CONNECT"] });
  const closed = await freePort();
  const inst = await relayInstance(
    t,
    [
      "smtp_helo_name = helo.example.test",
      `transport_maps = inline:{old.test=smtp:[127.0.0.5]:${old.port}, grumpy.test=smtp:[127.0.0.6]:${grumpy.port}, strict.test=strict:[127.0.0.6]:${grumpy.port}, closed.test=smtp:[127.0.0.7]:${closed}}`,
    ].join("\n"),
    "strict unix - - n - - smtp\n  -o smtp_skip_5xx_greeting=no",
  );
  const a = await submitMessage(inst, { rcpts: ["x@old.test"], content: "Subject: helo\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${a}: to=<x@old\\.test>, relay=127\\.0\\.0\\.5\\[127\\.0\\.0\\.5\\]:${old.port}, .*status=sent`,
    ),
    20_000,
  );
  assert.equal(old.dumps()[0]?.helo, "helo.example.test");
  const b = await submitMessage(inst, { rcpts: ["x@grumpy.test"], content: "Subject: grumpy\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${b}: to=<x@grumpy\\.test>, relay=none, .*dsn=4\\.\\d\\.\\d, status=deferred \\(host 127\\.0\\.0\\.6\\[127\\.0\\.0\\.6\\] refused to talk to me: 5\\d\\d`,
    ),
    20_000,
  );
  const s5 = await submitMessage(inst, { rcpts: ["x@strict.test"], content: "Subject: strict\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${s5}: to=<x@strict\\.test>, relay=none, .*dsn=5\\.\\d\\.\\d, status=bounced \\(host 127\\.0\\.0\\.6\\[127\\.0\\.0\\.6\\] refused to talk to me: 5\\d\\d`,
    ),
    20_000,
  );
  const c = await submitMessage(inst, { rcpts: ["x@closed.test"], content: "Subject: closed\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${c}: to=<x@closed\\.test>, relay=none, .*dsn=4\\.4\\.1, status=deferred \\(connect to 127\\.0\\.0\\.7\\[127\\.0\\.0\\.7\\]:${closed}: Connection refused\\)`,
    ),
    20_000,
  );
});

test("SIZE: the message size goes with MAIL, and what the server announced it refuses is bounced unsent", async (t) => {
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3", sizeLimit: 2000 });
  const inst = await relayInstance(t, `relayhost = [127.0.0.3]:${aio.port}`);
  const small = await submitMessage(inst, { rcpts: ["s@remote.test"], content: "Subject: small\n\nhi\n" });
  await inst.waitLog(new RegExp(`${small}: to=<s@remote\\.test>, .*status=sent`), 20_000);
  assert.ok(
    aio.commands().some((c) => /^MAIL sender@example\.org SIZE=\d+$/.test(c)),
    aio.commands().join("\n"),
  );
  const big = await submitMessage(inst, {
    rcpts: ["b@remote.test"],
    content: "Subject: big\n\n" + "0123456789".repeat(400) + "\n",
  });
  await inst.waitLog(
    new RegExp(
      `${big}: to=<b@remote\\.test>, relay=127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\]:${aio.port}, .*dsn=5\\.3\\.4, status=bounced \\(message size \\d+ exceeds size limit 2000 of server 127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\]\\)`,
    ),
    20_000,
  );
  assert.equal(aio.messages().length, 1);
});

test("connection reuse: back-to-back messages to one destination share one session", async (t) => {
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });
  const inst = await relayInstance(
    t,
    `relayhost = [127.0.0.3]:${aio.port}\nsmtp_connection_cache_time_limit = 5s`,
  );
  for (let i = 0; i < 3; i++) {
    const id = await submitMessage(inst, {
      rcpts: [`r${i}@remote.test`],
      content: `Subject: reuse ${i}\n\nhi\n`,
    });
    await inst.waitLog(new RegExp(`${id}: to=<r${i}@remote\\.test>, .*status=sent`), 20_000);
  }
  const cmds = aio.commands();
  assert.equal(cmds.filter((c) => c.startsWith("DATA-COMMAND")).length, 3);
  // On demand (qmgr's CONN_* flags): the first message has no backlog and nothing back to back, so its
  // session is not kept; the next two come back to back and share one.
  assert.equal(cmds.filter((c) => c.startsWith("EHLO")).length, 2, `two sessions:\n${cmds.join("\n")}`);
  assert.equal(cmds.filter((c) => c === "QUIT").length, 1, "only the first session ended at once");
});

test("no reuse when smtp_connection_cache_on_demand = no; recipients split by smtp_destination_recipient_limit", async (t) => {
  const sink = await startSmtpSink(t, { addr: "127.0.0.2" });
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });
  const inst = await relayInstance(
    t,
    [
      `relayhost = [127.0.0.3]:${aio.port}`,
      "smtp_connection_cache_on_demand = no",
      `transport_maps = inline:{split.test=smtp:[127.0.0.2]:${sink.port}}`,
      "smtp_destination_recipient_limit = 2",
    ].join("\n"),
  );
  for (let i = 0; i < 2; i++) {
    const id = await submitMessage(inst, {
      rcpts: [`r${i}@remote.test`],
      content: `Subject: no reuse ${i}\n\nhi\n`,
    });
    await inst.waitLog(new RegExp(`${id}: to=<r${i}@remote\\.test>, .*status=sent`), 20_000);
  }
  assert.equal(aio.commands().filter((c) => c.startsWith("EHLO")).length, 2);
  const rcpts = ["a", "b", "c", "d", "e"].map((l) => `${l}@split.test`);
  const id = await submitMessage(inst, { rcpts, content: "Subject: split\n\nhi\n" });
  for (const r of rcpts)
    await inst.waitLog(new RegExp(`${id}: to=<${r.replace(".", "\\.")}>, .*status=sent`), 20_000);
  assert.deepEqual(
    sink
      .dumps()
      .map((d) => d.rcptArgs.length)
      .sort(),
    [1, 2, 2],
  );
});

test("8BITMIME: 8-bit mail becomes quoted-printable for a server without it, and BODY=8BITMIME goes to one with it", async (t) => {
  const plain = await startSmtpSink(t, { addr: "127.0.0.2", args: ["-8"] });
  const rich = await startSmtpSink(t, { addr: "127.0.0.5" });
  const inst = await relayInstance(
    t,
    `transport_maps = inline:{plain.test=smtp:[127.0.0.2]:${plain.port}, rich.test=smtp:[127.0.0.5]:${rich.port}}`,
  );
  const content = Buffer.from(
    "Subject: 8bit\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nK\u00e4se und Br\u00f6tchen\n",
    "utf8",
  );
  const a = await submitMessage(inst, { rcpts: ["u@plain.test"], content });
  await inst.waitLog(new RegExp(`${a}: to=<u@plain\\.test>, .*status=sent`), 20_000);
  const d = plain.dumps()[0];
  assert.ok(d !== undefined);
  assert.doesNotMatch(d.mailArgs, /BODY=/);
  assert.match(d.body, /Content-Transfer-Encoding: quoted-printable\n\nK=C3=A4se und Br=C3=B6tchen\n/);
  assert.doesNotMatch(d.body, /Encoding: 8bit/);
  const b = await submitMessage(inst, { rcpts: ["u@rich.test"], content });
  await inst.waitLog(new RegExp(`${b}: to=<u@rich\\.test>, .*status=sent`), 20_000);
  const r = rich.dumps()[0];
  assert.ok(r !== undefined);
  assert.match(r.mailArgs, /BODY=8BITMIME/);
  assert.ok(Buffer.from(r.body, "latin1").includes(Buffer.from("K\u00e4se", "utf8")));
});

test("smtp_generic_maps, smtp_header_checks and smtp_body_checks change what goes out, not the queue", async (t) => {
  const sink = await startSmtpSink(t, { addr: "127.0.0.2" });
  const inst = await relayInstance(
    t,
    [
      `relayhost = [127.0.0.2]:${sink.port}`,
      "smtp_generic_maps = inline:{ sender@example.org=joe@public.example, @internal.test=@outside.example }",
      "smtp_header_checks = regexp:{ {/^X-Secret:/ IGNORE}, {/^Subject: (.*)/ REPLACE Subject: [ext] $$1}, {/^X-Mark:/ PREPEND X-Before: yes} }",
      "smtp_body_checks = regexp:{ {/^password=/ REPLACE password=(removed)} }",
    ].join("\n"),
  );
  const id = await submitMessage(inst, {
    rcpts: ["bob@internal.test"],
    content:
      "From: Joe <sender@example.org>\nTo: bob@internal.test, carol@else.test\nSubject: plans\nX-Secret: 42\nX-Mark: 1\n\nhello\npassword=hunter2\nbye\n",
  });
  await inst.waitLog(new RegExp(`${id}: to=<bob@internal\\.test>, .*status=sent`), 20_000);
  const d = sink.dumps()[0];
  assert.ok(d !== undefined);
  assert.equal(d.mailArgs, "<joe@public.example>");
  assert.deepEqual(d.rcptArgs, ["<bob@outside.example> ORCPT=rfc822;bob@internal.test"]);
  assert.match(d.body, /^From: Joe <joe@public\.example>$/m);
  assert.match(d.body, /^To: bob@outside\.example, carol@else\.test$/m);
  assert.match(d.body, /^Subject: \[ext\] plans$/m);
  assert.doesNotMatch(d.body, /X-Secret/);
  assert.match(d.body, /^X-Before: yes\nX-Mark: 1$/m);
  assert.match(d.body, /\nhello\npassword=\(removed\)\nbye\n/);
});
