/*
 * smtpd-sasl.test - SMTP AUTH in smtpd with the built-in back end and a real Dovecot
 *
 * DESCRIPTION
 *   Instances run smtpd with smtpd_sasl_auth_enable = yes. The built-in
 *   "postern" type reads a password table made with "postern sasl-passwd
 *   add"; the "dovecot" type talks to a private Dovecot (Debian package
 *   dovecot-core) over TCP and over a Unix socket. Checked: the EHLO
 *   keywords (with broken_sasl_auth_clients), AUTH PLAIN and LOGIN with
 *   good and bad passwords (235 / 535 5.7.8 and the log warning), relaying
 *   refused before AUTH and allowed after (permit_sasl_authenticated), the
 *   client= log line with sasl_method and sasl_username, the Received:
 *   header with smtpd_sasl_authenticated_header, smtpd_tls_auth_only,
 *   noplaintext, reject_sender_login_mismatch, AUTH= on MAIL FROM, the
 *   AUTH rate limit through anvil, Python's smtplib as an independent
 *   client, and postconf -a.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LineClient } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello, smtpdInstance, type SmtpdInstance } from "../src/testing/smtpd-instance.js";
import { makeTestCerts } from "../src/testing/tls-certs.js";
import { starttls } from "../src/testing/smtp-tls.js";
import { startDovecot } from "../src/testing/dovecot.js";

type T = Parameters<typeof smtpdInstance>[0];

const RELAY =
  "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n";
const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

/** A temporary directory removed after the test. */
function tempDir(t: T): string {
  const dir = mkdtempSync(join(tmpdir(), "postern-sasl-"));
  chmodSync(dir, 0o755);
  t.after(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  return dir;
}

/** An instance with the built-in back end; alice@example.org's password is "s3cret" (added with the CLI). */
async function builtin(t: T, main = "", extraMaster = ""): Promise<SmtpdInstance> {
  const dir = tempDir(t);
  const inst = await smtpdInstance(
    t,
    `smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = postern\npostern_sasl_password_maps = texthash:${dir}/sasl_passwd\n${RELAY}${main}`,
    extraMaster,
  );
  const r = await runCli("postern", ["-c", inst.etc, "sasl-passwd", "add", "Alice@example.org"], {
    input: "s3cret\n",
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /added Alice@example\.org in texthash:/);
  assert.match(
    readFileSync(join(dir, "sasl_passwd"), "utf8"),
    /^alice@example\.org\t\$scrypt\$ln=15,r=8,p=1\$\S+\$\S+\n$/,
  );
  chmodSync(join(dir, "sasl_passwd"), 0o644);
  return inst;
}

/** Tries to relay one recipient; returns the RCPT reply. */
async function relay(c: LineClient): Promise<string> {
  assert.equal(await smtpCmd(c, "MAIL FROM:<alice@example.org>"), "250 2.1.0 Ok");
  const r = await smtpCmd(c, "RCPT TO:<x@remote.example>");
  await smtpCmd(c, "RSET");
  return r;
}

test("built-in back end: AUTH PLAIN and LOGIN, 535 on a bad password, relaying only after AUTH", async (t) => {
  const inst = await builtin(t, "broken_sasl_auth_clients = yes\nsmtpd_sasl_authenticated_header = yes\n");
  const c = await smtpHello(inst.port);
  const ehlo = await smtpCmd(c, "EHLO client.example");
  assert.match(ehlo, /\n250-ETRN\n250-AUTH PLAIN LOGIN\n250-AUTH=PLAIN LOGIN\n250-ENHANCEDSTATUSCODES\n/);
  assert.equal(await relay(c), "554 5.7.1 <x@remote.example>: Relay access denied");
  assert.equal(
    await smtpCmd(c, `AUTH PLAIN ${b64("\0alice@example.org\0wrong")}`),
    "535 5.7.8 Error: authentication failed: authentication failure",
  );
  await inst.waitLog(
    /warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed: authentication failure, sasl_username=alice@example\.org/,
  );
  assert.equal(await smtpCmd(c, "AUTH LOGIN"), `334 ${b64("Username:")}`);
  assert.equal(await smtpCmd(c, b64("nobody@example.org")), `334 ${b64("Password:")}`);
  assert.match(await smtpCmd(c, b64("s3cret")), /^535 5\.7\.8 /);
  assert.equal(await smtpCmd(c, "AUTH PLAIN"), "334 ");
  assert.equal(await smtpCmd(c, "*"), "501 5.7.0 Authentication aborted");
  assert.equal(
    await smtpCmd(c, "AUTH CRAM-MD5"),
    "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
  );
  assert.equal(await smtpCmd(c, "AUTH LOGIN"), `334 ${b64("Username:")}`);
  assert.equal(await smtpCmd(c, b64("alice@example.org")), `334 ${b64("Password:")}`);
  assert.equal(await smtpCmd(c, b64("s3cret")), "235 2.7.0 Authentication successful");
  assert.equal(
    await smtpCmd(c, `AUTH PLAIN ${b64("\0alice@example.org\0s3cret")}`),
    "503 5.5.1 Error: already authenticated",
  );
  assert.equal(await relay(c), "250 2.1.5 Ok");
  assert.equal(await smtpCmd(c, "MAIL FROM:<alice@example.org> AUTH=alice@example.org"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<x@remote.example>"), "250 2.1.5 Ok");
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  assert.match(await smtpCmd(c, "Subject: auth\r\n\r\nhi\r\n."), /^250 2\.0\.0 Ok: queued as /);
  await inst.waitLog(
    /: client=unknown\[127\.0\.0\.1\], sasl_method=LOGIN, sasl_username=alice@example\.org\n/,
  );
  assert.equal(await smtpCmd(c, "QUIT"), "221 2.0.0 Bye");
  await inst.waitLog(
    /disconnect from unknown\[127\.0\.0\.1\] ehlo=2 mail=3 rcpt=2\/3 rset=2 auth=1\/6 data=1 quit=1 /,
  );
  // The Received: header names the login (and the protocol is ESMTPA).
  const { contentLines, readEnvelope } = await import("../src/global/queue-file.js");
  const { readdirSync } = await import("node:fs");
  const files = readdirSync(join(inst.spool, "incoming"), { recursive: true, withFileTypes: true }).filter(
    (f) => f.isFile(),
  );
  const path = join(files[0]?.parentPath ?? "", files[0]?.name ?? "");
  const env = await readEnvelope(path);
  assert.ok(env.ok);
  const lines: string[] = [];
  for await (const l of contentLines(path, env.env)) lines.push(l.toString("latin1"));
  assert.match(
    lines.join("\n"),
    /^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\n\t\(Authenticated sender: alice@example\.org\)\n\tby mx\.example\.org \(Postern\) with ESMTPA id /,
  );
});

test("Python smtplib logs in with the built-in back end; a bad password is refused", async (t) => {
  const inst = await builtin(t);
  const script = `
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.example", timeout=10) as s:
    try:
        s.login("alice@example.org", "bad")
    except smtplib.SMTPAuthenticationError as e:
        print("refused", e.smtp_code)
    s.login("alice@example.org", "s3cret")
    s.sendmail("alice@example.org", ["x@remote.example"], b"Subject: py\\r\\n\\r\\nhi\\r\\n")
    print("sent")
`;
  const r = spawnSync("/usr/bin/python3", ["-c", script, String(inst.port)], {
    encoding: "utf8",
    timeout: 30_000,
  });
  if (r.error !== undefined) throw new Error(`/usr/bin/python3: ${r.error.message} (Debian package python3)`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "refused 535\nsent\n");
});

test("smtpd_tls_auth_only and noplaintext: AUTH only under TLS", async (t) => {
  const certs = makeTestCerts(tempDir(t));
  const tlsMain = `smtpd_tls_security_level = may\nsmtpd_tls_cert_file = ${certs.rsaCert}\nsmtpd_tls_key_file = ${certs.rsaKey}\n`;
  for (const extra of [
    "smtpd_tls_auth_only = yes\n",
    "smtpd_sasl_security_options = noanonymous, noplaintext\nsmtpd_sasl_tls_security_options = noanonymous\n",
  ]) {
    const inst = await builtin(t, tlsMain + extra);
    const c = await smtpHello(inst.port);
    assert.doesNotMatch(await smtpCmd(c, "EHLO client.example"), /AUTH/);
    const refused = await smtpCmd(c, `AUTH PLAIN ${b64("\0alice@example.org\0s3cret")}`);
    if (extra.includes("auth_only"))
      assert.equal(refused, "504 5.5.4 Encryption required for requested authentication mechanism");
    else assert.equal(refused, "535 5.7.8 Error: authentication failed: Invalid authentication mechanism");
    const { c: s } = await starttls(inst.port);
    assert.match(await smtpCmd(s, "EHLO client.example"), /\n250-AUTH PLAIN LOGIN\n/);
    assert.equal(
      await smtpCmd(s, `AUTH PLAIN ${b64("\0alice@example.org\0s3cret")}`),
      "235 2.7.0 Authentication successful",
    );
    assert.equal(await relay(s), "250 2.1.5 Ok");
  }
});

test("reject_sender_login_mismatch with smtpd_sender_login_maps", async (t) => {
  const inst = await builtin(
    t,
    [
      "smtpd_sender_login_maps = inline:{ alice@example.org=alice@example.org, bob@example.org=bob@example.org, { @shared.example = alice@example.org bob@example.org } }",
      "smtpd_sender_restrictions = reject_sender_login_mismatch",
      "",
    ].join("\n"),
  );
  const c = await smtpHello(inst.port);
  await smtpCmd(c, "MAIL FROM:<bob@example.org>");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<u@example.org>"),
    "553 5.7.1 <bob@example.org>: Sender address rejected: not logged in",
  );
  await smtpCmd(c, "RSET");
  assert.equal(
    await smtpCmd(c, `AUTH PLAIN ${b64("\0alice@example.org\0s3cret")}`),
    "235 2.7.0 Authentication successful",
  );
  for (const [sender, reply] of [
    ["alice@example.org", "250 2.1.5 Ok"],
    ["x@shared.example", "250 2.1.5 Ok"],
    [
      "bob@example.org",
      "553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice@example.org",
    ],
    [
      "stranger@else.example",
      "553 5.7.1 <stranger@else.example>: Sender address rejected: not owned by user alice@example.org",
    ],
  ]) {
    assert.equal(await smtpCmd(c, `MAIL FROM:<${sender}>`), "250 2.1.0 Ok");
    assert.equal(await smtpCmd(c, "RCPT TO:<u@example.org>"), reply, sender);
    await smtpCmd(c, "RSET");
  }
  // reject_known_sender_login_mismatch lets unlisted senders through.
  const known = await builtin(
    t,
    "smtpd_sender_login_maps = inline:{ bob@example.org=bob@example.org }\nsmtpd_sender_restrictions = reject_known_sender_login_mismatch\n",
  );
  const k = await smtpHello(known.port);
  await smtpCmd(k, `AUTH PLAIN ${b64("\0alice@example.org\0s3cret")}`);
  await smtpCmd(k, "MAIL FROM:<stranger@else.example>");
  assert.equal(await smtpCmd(k, "RCPT TO:<u@example.org>"), "250 2.1.5 Ok");
});

test("AUTH= on MAIL FROM without SASL, and the AUTH rate limit through anvil", async (t) => {
  const plain = await smtpdInstance(t, "");
  const p = await smtpHello(plain.port);
  assert.doesNotMatch(await smtpCmd(p, "EHLO client.example"), /AUTH/);
  assert.equal(await smtpCmd(p, "AUTH PLAIN"), "503 5.5.1 Error: authentication not enabled");
  assert.equal(
    await smtpCmd(p, "MAIL FROM:<a@b.example> AUTH=<>"),
    "503 5.7.4 Error: authentication disabled",
  );
  const inst = await builtin(t, "smtpd_client_auth_rate_limit = 2\n", "anvil unix - - n - 1 anvil");
  const c = await smtpHello(inst.port);
  for (let i = 0; i < 2; i++)
    assert.match(await smtpCmd(c, `AUTH PLAIN ${b64("\0alice@example.org\0no")}`), /^535 /);
  assert.equal(
    await smtpCmd(c, `AUTH PLAIN ${b64("\0alice@example.org\0s3cret")}`),
    "450 4.7.1 Error: too many AUTH commands from 127.0.0.1",
  );
  await inst.waitLog(
    /warning: AUTH command rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] for service /,
  );
});

test("Dovecot back end over TCP and over a Unix socket", async (t) => {
  const dove = await startDovecot(t, [
    ["alice@example.test", "secret"],
    ["bob@example.test", "hunter2"],
  ]);
  for (const path of [`inet:127.0.0.1:${dove.port}`, dove.socket]) {
    const inst = await smtpdInstance(
      t,
      `smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = ${path}\n${RELAY}`,
    );
    const c = await smtpHello(inst.port);
    assert.match(await smtpCmd(c, "EHLO client.example"), /\n250-AUTH PLAIN LOGIN\n/);
    assert.equal(await relay(c), "554 5.7.1 <x@remote.example>: Relay access denied");
    assert.match(
      await smtpCmd(c, `AUTH PLAIN ${b64("\0alice@example.test\0wrong")}`),
      /^535 5\.7\.8 Error: authentication failed: /,
    );
    await inst.waitLog(
      /warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed: .*sasl_username=alice@example\.test/,
    );
    assert.equal(await smtpCmd(c, "AUTH LOGIN"), `334 ${b64("Username:")}`);
    assert.equal(await smtpCmd(c, b64("bob@example.test")), `334 ${b64("Password:")}`);
    assert.equal(await smtpCmd(c, b64("hunter2")), "235 2.7.0 Authentication successful");
    assert.equal(await relay(c), "250 2.1.5 Ok");
    const d = await smtpHello(inst.port);
    assert.equal(
      await smtpCmd(d, `AUTH PLAIN ${b64("\0alice@example.test\0secret")}`),
      "235 2.7.0 Authentication successful",
    );
    assert.equal(await relay(d), "250 2.1.5 Ok");
  }
});

test("a Dovecot that cannot be reached: AUTH is not announced, and the log says why", async (t) => {
  const inst = await smtpdInstance(
    t,
    `smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/no-such-auth\n${RELAY}`,
  );
  const c = await smtpHello(inst.port);
  assert.doesNotMatch(await smtpCmd(c, "EHLO client.example"), /AUTH/);
  await inst.waitLog(/warning: SASL: connect to private\/no-such-auth: /);
});

test("postconf -a lists the SASL server types", async () => {
  const r = await runCli("postconf", ["-a"]);
  assert.equal(r.stdout, "dovecot\npostern\n");
});
