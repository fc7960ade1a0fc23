/*
 * smtp-mx.test - finding servers: MX records served by a real NSD on loopback
 *
 * DESCRIPTION
 *   The smtp agent resolves through postern_dns_servers (NSD, package nsd):
 *   the preferred MX host refuses connections and the next one takes the
 *   mail; a domain without MX records is reached through its A record; a
 *   null MX (RFC 7505) bounces at once; an MX host that is this machine
 *   (inet_interfaces, port 25) is "mail for X loops back to myself"; when
 *   every MX host fails, smtp_fallback_relay takes the mail; also
 *   smtp_mx_address_limit, inet_protocols, MX hosts without addresses
 *   (bounced, or deferred with smtp_defer_if_no_mx_address_found) and
 *   smtp_host_lookup = native.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { nsdAvailable, startNsd, zone } from "../src/testing/dns-server.js";
import { freePort } from "../src/testing/instance.js";
import { relayInstance, startAiosmtpd, startSmtpSink, submitMessage } from "../src/testing/smtp-peers.js";

test("MX order and fallback, A fallback, null MX and loop detection, resolved through NSD", async (t) => {
  assert.ok(nsdAvailable(), "nsd is missing: install the Debian package nsd");
  const port = await freePort();
  const sink = await startSmtpSink(t, { addr: "127.0.0.9", port });
  const local = await startSmtpSink(t, { addr: "127.0.0.1" });
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3", port });
  const dns = await startNsd({
    "mx.test": zone("mx.test", "@ IN MX 10 mx1\n@ IN MX 20 mx2\nmx1 IN A 127.0.0.8\nmx2 IN A 127.0.0.9"),
    "amx.test": zone("amx.test", "@ IN A 127.0.0.9"),
    "nullmx.test": zone("nullmx.test", "@ IN MX 0 ."),
    "loop.test": zone(
      "loop.test",
      "@ IN MX 10 self\n@ IN MX 20 other\nself IN A 127.0.0.1\nother IN A 127.0.0.9",
    ),
    "limited.test": zone(
      "limited.test",
      "@ IN MX 10 mx1\n@ IN MX 20 mx2\nmx1 IN A 127.0.0.8\nmx2 IN A 127.0.0.9",
    ),
    "dual.test": zone("dual.test", "@ IN MX 10 mx\nmx IN AAAA ::1\nmx IN A 127.0.0.9"),
    "noaddr.test": zone("noaddr.test", "@ IN MX 10 nowhere"),
    "sess.test": zone("sess.test", "@ IN MX 10 mx1\n@ IN MX 20 mx2\nmx1 IN A 127.0.0.3\nmx2 IN A 127.0.0.9"),
    "sess2.test": zone(
      "sess2.test",
      "@ IN MX 10 mx1\n@ IN MX 20 mx2\nmx1 IN A 127.0.0.3\nmx2 IN A 127.0.0.9",
    ),
    "noaddr2.test": zone("noaddr2.test", "@ IN MX 10 nowhere"),
    "down.test": zone("down.test", "@ IN MX 10 mx1\nmx1 IN A 127.0.0.8"),
    "loop2.test": zone("loop2.test", "@ IN MX 10 self\nself IN A 127.0.0.1"),
  });
  t.after(() => dns.stop());
  const inst = await relayInstance(
    t,
    [
      `postern_dns_servers = ${dns.server}`,
      `smtp_tcp_port = ${port}`,
      `smtp_fallback_relay = [127.0.0.9]:${port}`,
      `transport_maps = inline:{loop.test=smtp25:, loop2.test=smtp25:, limited.test=smtp1:, noaddr2.test=softmx:, sess.test=smtp1s:, native.test=native:[localhost]:${local.port}}`,
    ].join("\n"),
    [
      "smtp25 unix - - n - - smtp\n  -o smtp_tcp_port=25",
      "smtp1 unix - - n - - smtp\n  -o smtp_mx_address_limit=1\n  -o smtp_fallback_relay=",
      "softmx unix - - n - - smtp\n  -o smtp_defer_if_no_mx_address_found=yes\n  -o smtp_fallback_relay=",
      "native unix - - n - - smtp\n  -o smtp_host_lookup=native",
      "smtp1s unix - - n - - smtp\n  -o smtp_mx_session_limit=1\n  -o smtp_fallback_relay=",
    ].join("\n"),
  );
  const a = await submitMessage(inst, { rcpts: ["u@mx.test"], content: "Subject: mx\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${a}: to=<u@mx\\.test>, relay=mx2\\.mx\\.test\\[127\\.0\\.0\\.9\\]:${port}, .*status=sent \\(250 `,
    ),
    20_000,
  );
  const b = await submitMessage(inst, { rcpts: ["u@amx.test"], content: "Subject: a\n\nhi\n" });
  await inst.waitLog(
    new RegExp(`${b}: to=<u@amx\\.test>, relay=amx\\.test\\[127\\.0\\.0\\.9\\]:${port}, .*status=sent`),
    20_000,
  );
  const c = await submitMessage(inst, { rcpts: ["u@nullmx.test"], content: "Subject: null\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${c}: to=<u@nullmx\\.test>, relay=none, .*dsn=5\\.1\\.0, status=bounced \\(Domain nullmx\\.test does not accept mail \\(nullMX\\)\\)`,
    ),
    20_000,
  );
  // The best MX is this host: the list is cut there, so the worse MX is never tried.
  const d = await submitMessage(inst, { rcpts: ["u@loop.test"], content: "Subject: loop\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${d}: to=<u@loop\\.test>, relay=none, .*dsn=5\\.4\\.6, status=bounced \\(mail for loop\\.test loops back to myself\\)`,
    ),
    20_000,
  );
  const e = await submitMessage(inst, { rcpts: ["u@loop2.test"], content: "Subject: loop2\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${e}: to=<u@loop2\\.test>, relay=none, .*dsn=5\\.4\\.6, status=bounced \\(mail for loop2\\.test loops back to myself\\)`,
    ),
    20_000,
  );
  const f = await submitMessage(inst, { rcpts: ["u@down.test"], content: "Subject: fallback\n\nhi\n" });
  await inst.waitLog(
    new RegExp(`${f}: to=<u@down\\.test>, relay=127\\.0\\.0\\.9\\[127\\.0\\.0\\.9\\]:${port}, .*status=sent`),
    20_000,
  );
  const g = await submitMessage(inst, { rcpts: ["u@limited.test"], content: "Subject: limit\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${g}: to=<u@limited\\.test>, relay=none, .*status=deferred \\(connect to mx1\\.limited\\.test\\[127\\.0\\.0\\.8\\]:${port}: Connection refused\\)`,
    ),
    20_000,
  );
  // inet_protocols = ipv4 (the test instance's): the AAAA record is not used.
  const h = await submitMessage(inst, { rcpts: ["u@dual.test"], content: "Subject: dual\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${h}: to=<u@dual\\.test>, relay=mx\\.dual\\.test\\[127\\.0\\.0\\.9\\]:${port}, .*status=sent`,
    ),
    20_000,
  );
  const i = await submitMessage(inst, { rcpts: ["u@noaddr.test"], content: "Subject: noaddr\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${i}: to=<u@noaddr\\.test>, relay=none, .*dsn=5\\.4\\.4, status=bounced \\(Host or domain name not found\\. Name service error for name=nowhere\\.noaddr\\.test type=A: Host not found\\)`,
    ),
    20_000,
  );
  const j = await submitMessage(inst, { rcpts: ["u@noaddr2.test"], content: "Subject: noaddr2\n\nhi\n" });
  await inst.waitLog(
    new RegExp(`${j}: to=<u@noaddr2\\.test>, relay=none, .*dsn=4\\.4\\.4, status=deferred`),
    20_000,
  );
  // smtp_host_lookup = native: the system resolver (/etc/hosts) names localhost.
  const k = await submitMessage(inst, { rcpts: ["u@native.test"], content: "Subject: native\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${k}: to=<u@native\\.test>, relay=localhost\\[127\\.0\\.0\\.1\\]:${local.port}, .*status=sent`,
    ),
    20_000,
  );
  // The first MX answers 450 to the recipient: the second MX is asked, unless smtp_mx_session_limit = 1.
  const m1 = await submitMessage(inst, { rcpts: ["soft-a@sess.test"], content: "Subject: sess\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${m1}: to=<soft-a@sess\\.test>, relay=mx1\\.sess\\.test\\[127\\.0\\.0\\.3\\]:${port}, .*dsn=4\\.2\\.0, status=deferred \\(host mx1\\.sess\\.test\\[127\\.0\\.0\\.3\\] said: 450 `,
    ),
    20_000,
  );
  const m2 = await submitMessage(inst, { rcpts: ["soft-b@sess2.test"], content: "Subject: sess2\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${m2}: to=<soft-b@sess2\\.test>, relay=mx2\\.sess2\\.test\\[127\\.0\\.0\\.9\\]:${port}, .*status=sent`,
    ),
    20_000,
  );
  assert.ok(aio.commands().some((c) => c.startsWith("RCPT soft-b@sess2.test")));
  assert.equal(sink.dumps().length, 5);
  assert.equal(local.dumps().length, 1);
});
