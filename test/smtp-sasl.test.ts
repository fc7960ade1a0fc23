/*
 * smtp-sasl.test - SMTP AUTH in the SMTP client against real servers on loopback
 *
 * DESCRIPTION
 *   A Postern instance relays through relayhost = [127.0.0.1]:port to a
 *   second Postern instance whose smtpd requires AUTH
 *   (smtpd_relay_restrictions = permit_sasl_authenticated, reject) with the
 *   built-in SASL type and users added with "postern sasl-passwd add", or
 *   with a real Dovecot (Debian package dovecot-core) as its back end.
 *   Checked: delivery with the right password (the server logs
 *   sasl_username), a wrong password (deferred with the server's 535 text,
 *   the message stays queued; bounced with smtp_sasl_auth_soft_bounce =
 *   no, the non-delivery notice giving the reason; the next server is tried, with its next hop's password),
 *   credentials too long for an initial response, a password table that
 *   fails (deferred), smtp_sasl_auth_cache_name (no second login with a password that got
 *   535, until it changes), sender-dependent passwords (and no session reuse across
 *   identities), Postfix's default security options on a plaintext session
 *   (no mechanism available), smtp_sasl_mechanism_filter, CRAM-MD5 with
 *   Dovecot under the default options, AUTH=<> with
 *   smtp_send_dummy_mail_auth (Postfix's smtp-sink records MAIL FROM), and
 *   that no password appears in any log.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type Instance, shippedEntries } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { relayInstance, startSmtpSink, submitMessage } from "../src/testing/smtp-peers.js";
import { smtpdInstance, type SmtpdInstance } from "../src/testing/smtpd-instance.js";
import { BOUNCE_SERVICES } from "../src/testing/local-world.js";
import { startDovecot } from "../src/testing/dovecot.js";
import { makeTestCerts } from "../src/testing/tls-certs.js";

type T = TestContext;

const REQUIRE_AUTH = "smtpd_relay_restrictions = permit_sasl_authenticated, reject\n";
const PASSWORDS = ["s3cret-Alice", "hunter2-Bob", "wrong-Pass"];

/** A temporary directory removed after the test. */
function tempDir(t: T): string {
  const dir = mkdtempSync(join(tmpdir(), "postern-csasl-"));
  chmodSync(dir, 0o755);
  t.after(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  return dir;
}

/** A server that requires AUTH, with the built-in type and the users added by the CLI. */
async function authServer(t: T, users: ReadonlyArray<[string, string]>): Promise<SmtpdInstance> {
  const dir = tempDir(t);
  const inst = await smtpdInstance(
    t,
    `smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = postern\npostern_sasl_password_maps = texthash:${dir}/sasl_passwd\n${REQUIRE_AUTH}`,
  );
  for (const [user, pass] of users) {
    const r = await runCli("postern", ["-c", inst.etc, "sasl-passwd", "add", user], { input: `${pass}\n` });
    assert.equal(r.code, 0, r.stderr);
  }
  chmodSync(join(dir, "sasl_passwd"), 0o644);
  return inst;
}

/** A relaying client with a password table (texthash) and extra main.cf text. */
async function client(t: T, port: number, passwd: string, main = "", master = ""): Promise<Instance> {
  const dir = tempDir(t);
  writeFileSync(join(dir, "client_passwd"), passwd);
  chmodSync(join(dir, "client_passwd"), 0o644);
  return relayInstance(
    t,
    `relayhost = [127.0.0.1]:${port}\nsmtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = texthash:${dir}/client_passwd\n${main}`,
    master,
  );
}

/** Whether a queue file is in the deferred queue. */
function deferred(inst: Instance, id: string): boolean {
  const dir = join(inst.spool, "deferred");
  if (!existsSync(dir)) return false;
  return readdirSync(dir, { recursive: true }).some((f) => String(f).endsWith(id));
}

/** No password (plain, or inside a base64 PLAIN response) in the logs. */
function assertNoPasswords(...logs: string[]): void {
  for (const log of logs)
    for (const p of PASSWORDS) {
      assert.ok(!log.includes(p), `password ${p} in a log`);
      assert.ok(!log.includes(Buffer.from(p).toString("base64").slice(0, 12)), "base64 password in a log");
    }
}

test("relayhost with AUTH: the right password delivers, a wrong one defers with the 535 text, soft bounce off bounces", async (t) => {
  const server = await authServer(t, [["alice@example.org", "s3cret-Alice"]]);
  const hop = `[127.0.0.1]:${server.port}`;
  const good = await client(
    t,
    server.port,
    `${hop} alice@example.org:s3cret-Alice\n`,
    "smtp_sasl_security_options = noanonymous",
  );
  const id = await submitMessage(good, { rcpts: ["x@remote.test"], content: "Subject: auth\n\nhi\n" });
  await good.waitLog(
    new RegExp(
      `${id}: to=<x@remote\\.test>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${server.port}, .*status=sent \\(250 2\\.0\\.0 Ok: queued as `,
    ),
    20_000,
  );
  await server.waitLog(
    /: client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=alice@example\.org\n/,
  );

  const bad = await client(
    t,
    server.port,
    `${hop} alice@example.org:wrong-Pass\n`,
    "smtp_sasl_security_options = noanonymous",
  );
  const id2 = await submitMessage(bad, { rcpts: ["y@remote.test"], content: "Subject: auth\n\nhi\n" });
  await bad.waitLog(
    new RegExp(
      `${id2}: to=<y@remote\\.test>, relay=none, .*dsn=4\\.7\\.8, status=deferred \\(SASL authentication failed; server 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\] said: 535 5\\.7\\.8 Error: authentication failed: authentication failure\\)`,
    ),
    20_000,
  );
  await server.waitLog(/warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed: /);
  const t0 = Date.now();
  while (!deferred(bad, id2) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
  assert.ok(deferred(bad, id2), "the message waits in the deferred queue");

  // The non-delivery notice goes to the sender's domain through smtp-sink, which records it.
  const sink = await startSmtpSink(t, { addr: "127.0.0.2" });
  const hard = await client(
    t,
    server.port,
    `${hop} alice@example.org:wrong-Pass\n`,
    `smtp_sasl_security_options = noanonymous\nsmtp_sasl_auth_soft_bounce = no\ntransport_maps = inline:{ example.org=smtp:[127.0.0.2]:${sink.port} }`,
    BOUNCE_SERVICES,
  );
  const id3 = await submitMessage(hard, { rcpts: ["z@remote.test"], content: "Subject: auth\n\nhi\n" });
  await hard.waitLog(
    new RegExp(
      `${id3}: to=<z@remote\\.test>, relay=none, .*dsn=5\\.7\\.8, status=bounced \\(SASL authentication failed; server 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\] said: 535 5\\.7\\.8 `,
    ),
    20_000,
  );
  const t1 = Date.now();
  while (sink.dumps().length === 0 && Date.now() - t1 < 20_000) await new Promise((r) => setTimeout(r, 100));
  const notice = sink.dumps()[0]?.body ?? "";
  assert.match(notice, /Status: 5\.7\.8\n/);
  assert.match(
    notice.replace(/\n\s+/g, " "),
    /SASL authentication failed; server 127\.0\.0\.1\[127\.0\.0\.1\] said: 535 5\.7\.8 Error: authentication failed: authentication failure/,
  );
  assertNoPasswords(good.log(), bad.log(), hard.log(), server.log(), notice);
});

test("a rejected login moves on to the next server (smtp_fallback_relay), each next hop with its own password", async (t) => {
  const first = await authServer(t, [["alice@example.org", "s3cret-Alice"]]);
  const second = await authServer(t, [["bob@example.net", "hunter2-Bob"]]);
  const inst = await client(
    t,
    first.port,
    [
      `[127.0.0.1]:${first.port} alice@example.org:wrong-Pass`,
      `[127.0.0.1]:${second.port} bob@example.net:hunter2-Bob`,
      "",
    ].join("\n"),
    `smtp_sasl_security_options = noanonymous\nsmtp_fallback_relay = [127.0.0.1]:${second.port}`,
  );
  const id = await submitMessage(inst, { rcpts: ["x@remote.test"], content: "Subject: f\n\nhi\n" });
  await inst.waitLog(
    new RegExp(
      `${id}: to=<x@remote\\.test>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${second.port}, .*status=sent `,
    ),
    20_000,
  );
  await first.waitLog(/warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed: /);
  await second.waitLog(/sasl_method=PLAIN, sasl_username=bob@example\.net\n/);
  assertNoPasswords(inst.log(), first.log(), second.log());
});

test("smtp_sasl_auth_cache_name: after a 535 the same password is not tried again until it changes", async (t) => {
  const server = await authServer(t, [["alice@example.org", "s3cret-Alice"]]);
  const cacheDir = tempDir(t);
  chmodSync(cacheDir, 0o777);
  const inst = await client(
    t,
    server.port,
    `[127.0.0.1]:${server.port} alice@example.org:wrong-Pass\n`,
    `smtp_sasl_security_options = noanonymous\nsmtp_sasl_auth_cache_name = proxy:btree:${cacheDir}/auth_cache\nsmtp_sasl_auth_cache_time = 1h`,
    // chroot n: Postern writes the cache in place, and has no proxywrite service yet through
    // which a jailed agent could (a jailed agent logs that it cannot update the cache).
    "smtp unix - - n - - smtp",
  );
  const id = await submitMessage(inst, { rcpts: ["x@remote.test"], content: "Subject: c\n\nhi\n" });
  await inst.waitLog(
    new RegExp(`${id}: to=<x@remote\\.test>, .*status=deferred \\(SASL authentication failed; server 127`),
    20_000,
  );
  // The retries (queue_run_delay = 1s) meet the remembered reply; the server sees no second login.
  await inst.waitLog(
    new RegExp(
      `${id}: to=<x@remote\\.test>, .*dsn=4\\.7\\.8, status=deferred \\(SASL \\[CACHED\\] authentication failed; server 127\\.0\\.0\\.1 said: 535 5\\.7\\.8 Error: authentication failed: authentication failure\\)`,
    ),
    20_000,
  );
  const failures = (): number => [...server.log().matchAll(/SASL PLAIN authentication failed/g)].length;
  assert.equal(failures(), 1);
  assert.ok(existsSync(join(cacheDir, "auth_cache.db")));
  // The right password replaces the wrong one: the entry no longer applies and the mail goes.
  const passwd = /smtp_sasl_password_maps = texthash:(\S+)/.exec(
    readFileSync(join(inst.etc, "main.cf"), "utf8"),
  )?.[1];
  assert.ok(passwd !== undefined);
  writeFileSync(passwd, `[127.0.0.1]:${server.port} alice@example.org:s3cret-Alice\n`);
  // reload makes new agents read the table; flush retries at once.
  await inst.postern("reload");
  await inst.postern("flush");
  await inst.waitLog(new RegExp(`${id}: to=<x@remote\\.test>, .*status=sent `), 30_000);
  assert.equal(failures(), 1);
  assertNoPasswords(inst.log(), server.log(), readFileSync(join(cacheDir, "auth_cache.db"), "latin1"));
});

test("long credentials go after an empty 334 (512-octet AUTH line); a failing password table defers", async (t) => {
  const long = `L0ng-${"x".repeat(240)}`;
  const user = `${"u".repeat(200)}@example.org`;
  // "AUTH PLAIN <response>" would be longer than 512 octets: the response must wait for the 334.
  assert.ok(`AUTH PLAIN ${Buffer.from(`\0${user}\0${long}`).toString("base64")}\r\n`.length > 512);
  const server = await authServer(t, [[user, long]]);
  const inst = await client(
    t,
    server.port,
    `[127.0.0.1]:${server.port} ${user}:${long}\n`,
    "smtp_sasl_security_options = noanonymous",
  );
  const id = await submitMessage(inst, { rcpts: ["x@remote.test"], content: "Subject: l\n\nhi\n" });
  await inst.waitLog(new RegExp(`${id}: to=<x@remote\\.test>, .*status=sent `), 20_000);
  await server.waitLog(new RegExp(`sasl_method=PLAIN, sasl_username=${user}\n`));
  assert.ok(!inst.log().includes(long) && !server.log().includes(long));
  // A table that cannot answer (a tcp: server that is not there) is a local problem: the mail waits.
  const broken = await relayInstance(
    t,
    `relayhost = [127.0.0.1]:${server.port}\nsmtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = tcp:127.0.0.1:${await freePort()}`,
  );
  const id2 = await submitMessage(broken, { rcpts: ["y@remote.test"], content: "Subject: b\n\nhi\n" });
  await broken.waitLog(
    new RegExp(
      `${id2}: to=<y@remote\\.test>, relay=none, .*dsn=4\\.3\\.0, status=deferred \\(local data error while talking to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]\\)`,
    ),
    20_000,
  );
  await broken.waitLog(new RegExp(`warning: ${id2}: smtp_sasl_password_maps lookup error: `));
});

test("sender-dependent passwords pick each sender's account, and sessions are not shared between them", async (t) => {
  const server = await authServer(t, [
    ["alice@example.org", "s3cret-Alice"],
    ["bob@example.net", "hunter2-Bob"],
  ]);
  const hop = `[127.0.0.1]:${server.port}`;
  const inst = await client(
    t,
    server.port,
    [
      `alice@example.org alice@example.org:s3cret-Alice`,
      `@example.net bob@example.net:hunter2-Bob`,
      `${hop} nobody@example.org:wrong-Pass`,
      "",
    ].join("\n"),
    "smtp_sasl_security_options = noanonymous\nsmtp_sender_dependent_authentication = yes\nrecipient_delimiter = +",
  );
  // One after the other, so that an idle session of one sender is there when the next one's mail comes.
  const senders = ["alice+tag@example.org", "carol@example.net", "alice@example.org"];
  for (const [i, sender] of senders.entries()) {
    const id = await submitMessage(inst, {
      sender,
      rcpts: [`to-${i}@remote.test`],
      content: "Subject: sd\n\nhi\n",
    });
    await inst.waitLog(new RegExp(`${id}: to=<to-${i}@remote\\.test>, .*status=sent `), 20_000);
  }
  // Each message arrived under its sender's login (the server logs the login of each message, in order).
  const logins = [
    ...server.log().matchAll(/: client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=(\S+)\n/g),
  ];
  assert.deepEqual(
    logins.map((m) => m[1]),
    ["alice@example.org", "bob@example.net", "alice@example.org"],
  );
  // A sender without its own entry falls back to the next hop's entry (a wrong password: deferred).
  const d = await submitMessage(inst, {
    sender: "dave@example.com",
    rcpts: ["w@remote.test"],
    content: "x\n",
  });
  await inst.waitLog(
    new RegExp(`${d}: to=<w@remote\\.test>, .*status=deferred \\(SASL authentication failed; server `),
    20_000,
  );
  assertNoPasswords(inst.log(), server.log());
});

test("Postfix's default security options: no plaintext mechanism on a plaintext session; the mechanism filter", async (t) => {
  const server = await authServer(t, [["alice@example.org", "s3cret-Alice"]]);
  const hop = `[127.0.0.1]:${server.port}`;
  const dflt = await client(t, server.port, `${hop} alice@example.org:s3cret-Alice\n`);
  const id = await submitMessage(dflt, { rcpts: ["x@remote.test"], content: "Subject: a\n\nhi\n" });
  await dflt.waitLog(
    new RegExp(
      `${id}: to=<x@remote\\.test>, relay=none, .*dsn=4\\.7\\.0, status=deferred \\(SASL authentication failed; cannot authenticate to server 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]: no mechanism available\\)`,
    ),
    20_000,
  );
  const login = await client(
    t,
    server.port,
    `${hop} alice@example.org:s3cret-Alice\n`,
    "smtp_sasl_security_options =\nsmtp_sasl_mechanism_filter = !plain, login",
  );
  const id2 = await submitMessage(login, { rcpts: ["x@remote.test"], content: "Subject: b\n\nhi\n" });
  await login.waitLog(new RegExp(`${id2}: to=<x@remote\\.test>, .*status=sent `), 20_000);
  await server.waitLog(/sasl_method=LOGIN, sasl_username=alice@example\.org\n/);
  const none = await client(
    t,
    server.port,
    `${hop} alice@example.org:s3cret-Alice\n`,
    "smtp_sasl_security_options =\nsmtp_sasl_mechanism_filter = cram-md5",
  );
  const id3 = await submitMessage(none, { rcpts: ["x@remote.test"], content: "Subject: c\n\nhi\n" });
  await none.waitLog(
    new RegExp(
      `${id3}: to=<x@remote\\.test>, relay=none, .*dsn=4\\.7\\.0, status=deferred \\(SASL authentication failed: server 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\] offered no compatible authentication mechanisms for this type of connection security\\)`,
    ),
    20_000,
  );
  await none.waitLog(
    new RegExp(
      `warning: 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${server.port} offered no supported AUTH mechanisms: 'PLAIN LOGIN'`,
    ),
  );
  assertNoPasswords(dflt.log(), login.log(), none.log(), server.log());
});

test("Dovecot behind the server: CRAM-MD5 under the default security options", async (t) => {
  const dove = await startDovecot(t, [["alice@example.test", "s3cret-Alice"]], {
    mechanisms: "plain login cram-md5",
  });
  const server = await smtpdInstance(
    t,
    `smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:${dove.port}\n${REQUIRE_AUTH}`,
  );
  const inst = await client(t, server.port, `127.0.0.1 alice@example.test:s3cret-Alice\n`);
  const id = await submitMessage(inst, { rcpts: ["x@remote.test"], content: "Subject: d\n\nhi\n" });
  await inst.waitLog(
    new RegExp(`${id}: to=<x@remote\\.test>, .*status=sent \\(250 2\\.0\\.0 Ok: queued as `),
    20_000,
  );
  await server.waitLog(/sasl_method=CRAM-MD5, sasl_username=alice@example\.test\n/);
  assertNoPasswords(inst.log(), server.log(), dove.log());
});

test("smtp_send_dummy_mail_auth: AUTH=<> on MAIL FROM after logging in (Postfix's smtp-sink); a proxy: password table", async (t) => {
  const sink = await startSmtpSink(t, { addr: "127.0.0.2" });
  const dir = tempDir(t);
  writeFileSync(join(dir, "passwd"), `[127.0.0.2]:${sink.port} alice:s3cret-Alice\n`);
  chmodSync(join(dir, "passwd"), 0o644);
  const inst = await relayInstance(
    t,
    [
      `relayhost = [127.0.0.2]:${sink.port}`,
      "smtp_sasl_auth_enable = yes",
      // Through proxymap, as a chrooted agent would read it (proxy_read_maps lists the table by default).
      `smtp_sasl_password_maps = proxy:texthash:${dir}/passwd`,
      "smtp_sasl_security_options = noanonymous",
      "smtp_send_dummy_mail_auth = yes",
    ].join("\n"),
    shippedEntries("proxymap"),
  );
  const id = await submitMessage(inst, { rcpts: ["x@remote.test"], content: "Subject: e\n\nhi\n" });
  await inst.waitLog(new RegExp(`${id}: to=<x@remote\\.test>, .*status=sent `), 20_000);
  assert.equal(sink.dumps()[0]?.mailArgs, "<sender@example.org> AUTH=<>");
  assertNoPasswords(inst.log());
});

test("postconf -A lists the built-in SASL client type", async () => {
  const r = await runCli("postconf", ["-A"]);
  assert.equal(r.stdout, "postern\n");
});

test("AUTH after STARTTLS: PLAIN is used under smtp_sasl_tls_security_options once the session is verified TLS", async (t) => {
  const dir = tempDir(t);
  const certs = makeTestCerts(dir);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  // The server offers AUTH only after STARTTLS (smtpd_tls_auth_only).
  const server = await smtpdInstance(
    t,
    [
      "smtpd_sasl_auth_enable = yes",
      "smtpd_sasl_type = postern",
      `postern_sasl_password_maps = texthash:${dir}/sasl_passwd`,
      "smtpd_tls_security_level = may",
      "smtpd_tls_auth_only = yes",
      `smtpd_tls_cert_file = ${certs.rsaCert}`,
      `smtpd_tls_key_file = ${certs.rsaKey}`,
      REQUIRE_AUTH,
    ].join("\n"),
  );
  const r = await runCli("postern", ["-c", server.etc, "sasl-passwd", "add", "alice@example.org"], {
    input: "s3cret-Alice\n",
  });
  assert.equal(r.code, 0, r.stderr);
  chmodSync(join(dir, "sasl_passwd"), 0o644);
  const hop = `[127.0.0.1]:${server.port}`;
  // Postfix's default smtp_sasl_security_options (noplaintext) would refuse PLAIN; the TLS options allow it.
  const c = await client(
    t,
    server.port,
    `${hop} alice@example.org:s3cret-Alice\n`,
    [
      "smtp_tls_security_level = verify",
      `smtp_tls_CAfile = ${certs.ca}`,
      "smtp_tls_loglevel = 1",
      "smtp_sasl_tls_security_options = noanonymous",
    ].join("\n"),
  );
  const id = await submitMessage(c, { rcpts: ["x@remote.test"], content: "Subject: tls auth\n\nhi\n" });
  await c.waitLog(
    new RegExp(`Verified TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${server.port}`),
    20_000,
  );
  await c.waitLog(new RegExp(`${id}: to=<x@remote\\.test>, relay=127\\.0\\.0\\.1\\[.*status=sent`), 20_000);
  await server.waitLog(/sasl_method=PLAIN, sasl_username=alice@example\.org\n/);
  assertNoPasswords(c.log(), server.log());
});
