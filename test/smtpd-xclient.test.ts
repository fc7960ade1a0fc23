/*
 * smtpd-xclient.test - XCLIENT, XFORWARD and the HAProxy PROXY protocol
 *
 * DESCRIPTION
 *   A trusted client (127.0.0.1) uses XCLIENT to become another client,
 *   whose address the restrictions and logs then see, and XFORWARD to put
 *   the original client into the queue file; an untrusted one (127.0.0.2)
 *   is refused. Behind smtpd_upstream_proxy_protocol = haproxy, the
 *   client address comes from a version 1 or version 2 header, and a
 *   connection without a valid header is dropped before the greeting.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import { readEnvelope } from "../src/global/queue-file.js";
import { LineClient } from "../src/testing/instance.js";
import { smtpCmd, smtpConnect, smtpHello, smtpdInstance } from "../src/testing/smtpd-instance.js";

test("XCLIENT: only for authorized hosts, and the session continues as the named client", async (t) => {
  const inst = await smtpdInstance(
    t,
    [
      "smtpd_authorized_xclient_hosts = 127.0.0.1",
      "smtpd_client_restrictions = check_client_access inline:{ {198.51.100.7=REJECT spammy proxy client} }",
      "",
    ].join("\n"),
  );
  const c = await smtpConnect(inst.port);
  await smtpCmd(c, null);
  assert.match(
    await smtpCmd(c, "EHLO proxy.example"),
    /\n250.XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT REVERSE_NAME$/,
  );
  assert.equal(await smtpCmd(c, "XCLIENT FOO=bar"), "501 5.5.4 Bad XCLIENT attribute name: FOO");
  assert.equal(await smtpCmd(c, "XCLIENT ADDR=not-an-address"), "501 5.5.4 Bad ADDR syntax: not-an-address");
  await smtpCmd(c, "MAIL FROM:<a@sender.example>");
  assert.equal(
    await smtpCmd(c, "XCLIENT ADDR=198.51.100.7"),
    "503 5.5.1 Error: MAIL transaction in progress",
  );
  await smtpCmd(c, "RSET");
  assert.equal(
    await smtpCmd(c, "XCLIENT NAME=mail.example.net ADDR=198.51.100.7 HELO=mail.example.net"),
    "220 mx.example.org ESMTP Postern",
  );
  await smtpCmd(c, "EHLO mail.example.net");
  await smtpCmd(c, "MAIL FROM:<a@sender.example>");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<u@example.org>"),
    "554 5.7.1 <mail.example.net[198.51.100.7]>: Client host rejected: spammy proxy client",
  );
  await inst.waitLog(/NOQUEUE: reject: RCPT from mail\.example\.net\[198\.51\.100\.7\]: 554 5\.7\.1/);

  const stranger = await smtpHello(inst.port, "127.0.0.2");
  assert.equal(
    await smtpCmd(stranger, "XCLIENT ADDR=198.51.100.8"),
    "550 5.7.0 Error: insufficient authorization",
  );
});

test("XFORWARD puts the original client into the queue file and the log", async (t) => {
  const inst = await smtpdInstance(t, "smtpd_authorized_xforward_hosts = 127.0.0.0/8\n");
  const c = await smtpHello(inst.port);
  assert.equal(
    await smtpCmd(
      c,
      "XFORWARD NAME=origin.example ADDR=203.0.113.5 HELO=origin.example IDENT=ABC123 PROTO=ESMTP",
    ),
    "250 2.0.0 Ok",
  );
  await smtpCmd(c, "MAIL FROM:<a@sender.example>");
  assert.equal(await smtpCmd(c, "RCPT TO:<u@example.org>"), "250 2.1.5 Ok");
  await smtpCmd(c, "DATA");
  c.send("Subject: forwarded\r\n\r\nbody\r\n.");
  const id = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(await smtpCmd(c, null))?.[1];
  assert.ok(id);
  await inst.waitLog(
    new RegExp(
      `${id}: client=unknown\\[127\\.0\\.0\\.1\\], orig_queue_id=ABC123, orig_client=origin\\.example\\[203\\.0\\.113\\.5\\]`,
    ),
  );
  const env = await readEnvelope(join(inst.spool, "incoming", id));
  assert.ok(env.ok);
  if (env.ok) {
    assert.equal(env.env.attrs.get("client_address"), "203.0.113.5");
    assert.equal(env.env.attrs.get("client_name"), "origin.example");
    assert.equal(env.env.attrs.get("helo"), "origin.example");
  }
  const stranger = await smtpHello(inst.port, "127.0.0.1");
  await smtpCmd(stranger, "MAIL FROM:<>");
  assert.equal(
    await smtpCmd(stranger, "XFORWARD ADDR=203.0.113.6"),
    "503 5.5.1 Error: MAIL transaction in progress",
  );
});

test("PROXY protocol v1 and v2 give the client address; a missing header drops the connection", async (t) => {
  const inst = await smtpdInstance(
    t,
    "smtpd_upstream_proxy_protocol = haproxy\nsmtpd_upstream_proxy_timeout = 2s\n",
  );
  const v1 = await smtpConnect(inst.port);
  v1.send("PROXY TCP4 192.0.2.77 127.0.0.1 40000 25");
  assert.match(await smtpCmd(v1, null), /^220 /);
  await smtpCmd(v1, "EHLO relay.example");
  await smtpCmd(v1, "MAIL FROM:<a@sender.example>");
  // 192.0.2.0/24 is mynetworks: the proxied client may relay.
  assert.equal(await smtpCmd(v1, "RCPT TO:<x@far-away.example>"), "250 2.1.5 Ok");
  await inst.waitLog(/connect from unknown\[192\.0\.2\.77\]/);

  const addrs = Buffer.alloc(36);
  Buffer.from("20010db8000000000000000000000005", "hex").copy(addrs, 0);
  Buffer.from("00000000000000000000000000000001", "hex").copy(addrs, 16);
  addrs.writeUInt16BE(40001, 32);
  addrs.writeUInt16BE(25, 34);
  const head = Buffer.concat([
    Buffer.from("0d0a0d0a000d0a515549540a2121", "hex"),
    Buffer.from([0, 36]),
    addrs,
  ]);
  const sock = connect({ port: inst.port, host: "127.0.0.1" });
  await new Promise<void>((r) => sock.once("connect", () => r()));
  const v2 = new LineClient(sock);
  sock.write(head);
  assert.match(await smtpCmd(v2, null), /^220 /);
  await inst.waitLog(/connect from unknown\[2001:db8::5\]/);

  const bad = await smtpConnect(inst.port);
  bad.send("EHLO no.proxy.example");
  await assert.rejects(bad.line(5000), /closed/);
  await inst.waitLog(/warning: haproxy read: bad proxy header/);
});
