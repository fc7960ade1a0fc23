/*
 * smtpd-tls.test - STARTTLS and implicit TLS in smtpd, with real TLS clients
 *
 * DESCRIPTION
 *   Instances run smtpd with certificates made by the openssl command (a
 *   test CA, an RSA and an ECDSA server certificate, client certificates).
 *   Clients: openssl s_client -starttls smtp and Python's smtplib (each
 *   with TLS 1.2 and 1.3), and Node's tls client for exact protocol checks:
 *   the STARTTLS injection probe, "encrypt" (530 before STARTTLS), implicit
 *   TLS (smtpd_tls_wrappermode, set with master.cf -o), RSA and ECDSA
 *   certificates served together from smtpd_tls_chain_files, protocol
 *   limits, session resumption with tickets, client certificates with
 *   permit_tls_clientcerts and relay_clientcerts, the Received: header's
 *   TLS comment, the log lines, and a certificate replaced on reload.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { LineClient, freePort, sleep, shippedEntries } from "../src/testing/instance.js";
import {
  smtpCmd,
  smtpConnect,
  smtpHello,
  smtpdInstance,
  type SmtpdInstance,
} from "../src/testing/smtpd-instance.js";
import { makeTestCerts, type TestCerts } from "../src/testing/tls-certs.js";
import { starttls, tlsHandshake, wrapped } from "../src/testing/smtp-tls.js";
import { contentLines, readEnvelope } from "../src/global/queue-file.js";
import { fingerprint } from "../src/smtpd/smtpd-tls.js";

type T = Parameters<typeof smtpdInstance>[0];

/** The test PKI in a temporary directory, removed after the test. */
function certsFor(t: T): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "postern-certs-"));
  chmodSync(dir, 0o755);
  t.after(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  return makeTestCerts(dir);
}

/** An smtpd instance with the RSA test certificate; extra main.cf text is appended. */
async function tlsInstance(
  t: T,
  main: string,
  extraMaster = "",
  given?: TestCerts,
): Promise<{ inst: SmtpdInstance; certs: TestCerts }> {
  const certs = given ?? certsFor(t);
  const inst = await smtpdInstance(
    t,
    `smtpd_tls_loglevel = 1\nsmtpd_tls_cert_file = ${certs.rsaCert}\nsmtpd_tls_key_file = ${certs.rsaKey}\n${main}`,
    extraMaster,
  );
  return { inst, certs };
}

/** The text of the only message in incoming/ (headers and body). */
async function queuedText(inst: SmtpdInstance): Promise<string> {
  const dir = join(inst.spool, "incoming");
  let path = "";
  for (let i = 0; i < 100 && path === ""; i++) {
    const walk = (d: string): string => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          const f = walk(p);
          if (f !== "") return f;
        } else return p;
      }
      return "";
    };
    path = walk(dir);
    if (path === "") await sleep(50);
  }
  const env = await readEnvelope(path);
  assert.ok(env.ok, env.ok ? "" : env.reason);
  const lines: string[] = [];
  for await (const l of contentLines(path, env.env)) lines.push(l.toString("latin1"));
  return lines.join("\n") + "\n";
}

/** Runs openssl s_client -starttls smtp with one protocol version; returns its output. */
function sClient(port: number, version: "-tls1_2" | "-tls1_3", ca: string): string {
  const r = spawnSync(
    "openssl",
    [
      "s_client",
      "-starttls",
      "smtp",
      "-connect",
      `127.0.0.1:${port}`,
      version,
      "-brief",
      "-crlf",
      "-CAfile",
      ca,
    ],
    { input: "QUIT\n", encoding: "utf8", timeout: 20_000 },
  );
  if (r.error !== undefined) throw new Error(`openssl s_client: ${r.error.message} (Debian package openssl)`);
  return r.stdout + r.stderr;
}

test("openssl s_client -starttls smtp negotiates TLS 1.2 and 1.3; the log has Postfix's summary", async (t) => {
  const { inst, certs } = await tlsInstance(t, "smtpd_tls_security_level = may\n");
  const c = await smtpHello(inst.port);
  const ehlo = await smtpCmd(c, "EHLO client.example");
  assert.match(ehlo, /\n250-ETRN\n250-STARTTLS\n250-ENHANCEDSTATUSCODES\n/);
  c.close();
  const v13 = sClient(inst.port, "-tls1_3", certs.ca);
  assert.match(v13, /Protocol version: TLSv1\.3/);
  assert.match(v13, /Verification: OK/);
  const v12 = sClient(inst.port, "-tls1_2", certs.ca);
  assert.match(v12, /Protocol version: TLSv1\.2/);
  assert.match(v12, /Ciphersuite: ECDHE-RSA-AES256-GCM-SHA384/);
  await inst.waitLog(
    /Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 \(256\/256 bits\)/,
  );
  await inst.waitLog(
    /Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 \(256\/256 bits\)/,
  );
  await inst.waitLog(/disconnect from unknown\[127\.0\.0\.1\] ehlo=\d starttls=1 /);
});

test("Python smtplib sends mail over STARTTLS with TLS 1.2 and 1.3; Received: says how", async (t) => {
  const { inst, certs } = await tlsInstance(
    t,
    "smtpd_tls_security_level = may\nsmtpd_tls_received_header = yes\n",
  );
  const script = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.maximum_version = ssl.TLSVersion.TLSv1_2 if sys.argv[3] == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.minimum_version = ctx.maximum_version
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.example", timeout=10) as s:
    s.ehlo()
    s.starttls(context=ctx)
    print(s.sock.version(), s.sock.cipher()[0])
    s.ehlo()
    s.sendmail("alice@sender.example", ["bob@example.org"], b"Subject: tls " + sys.argv[3].encode() + b"\\r\\n\\r\\nhello\\r\\n")
`;
  for (const v of ["1.3", "1.2"]) {
    const r = spawnSync("/usr/bin/python3", ["-c", script, String(inst.port), certs.ca, v], {
      encoding: "utf8",
      timeout: 30_000,
    });
    if (r.error !== undefined)
      throw new Error(`/usr/bin/python3: ${r.error.message} (Debian package python3)`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      v === "1.3" ? /^TLSv1\.3 TLS_AES_256_GCM_SHA384/ : /^TLSv1\.2 ECDHE-RSA-AES256-GCM-SHA384/,
    );
    if (v === "1.3") {
      const text = await queuedText(inst);
      assert.match(
        text,
        /^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\n\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 \(256\/256 bits\)\)\n\t\(No client certificate requested\)\n\tby mx\.example\.org \(Postern\) with ESMTPS id \w+\n\tfor <bob@example\.org>; /,
      );
      for (const f of readdirSync(join(inst.spool, "incoming"), { recursive: true, withFileTypes: true }))
        if (f.isFile()) spawnSync("rm", ["-f", join(f.parentPath, f.name)]);
    }
  }
});

test("STARTTLS injection: commands pipelined behind STARTTLS are never run", async (t) => {
  // With the default smtpd_forbid_unauth_pipelining = yes the client is cut off at once.
  const { inst } = await tlsInstance(t, "smtpd_tls_security_level = may\n");
  const c = await smtpHello(inst.port);
  c.sendRaw("STARTTLS\r\nRSET\r\n");
  assert.equal(await smtpCmd(c, null), "554 5.5.0 Error: SMTP protocol synchronization");
  await inst.waitLog(/improper command pipelining after STARTTLS from unknown\[127\.0\.0\.1\]/);
  // Without that check the plaintext RSET is thrown away before the handshake.
  const { inst: lax } = await tlsInstance(
    t,
    "smtpd_tls_security_level = may\nsmtpd_forbid_unauth_pipelining = no\n",
  );
  const raw = await new Promise<ReturnType<typeof connect>>((resolve, reject) => {
    const s = connect({ port: lax.port, host: "127.0.0.1" });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
  let got = "";
  const waitFor = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 200 && !re.test(got); i++) await sleep(25);
    assert.match(got, re);
  };
  const onData = (d: Buffer): void => {
    got += d.toString("latin1");
  };
  raw.on("data", onData);
  await waitFor(/^220 .*\r\n/);
  raw.write("EHLO client.example\r\n");
  await waitFor(/250 CHUNKING\r\n/);
  raw.write("STARTTLS\r\nRSET\r\n");
  await waitFor(/220 2\.0\.0 Ready to start TLS\r\n/);
  raw.removeListener("data", onData);
  raw.pause();
  assert.doesNotMatch(got, /Ready to start TLS\r\n./s, "nothing follows the 220 in plain text");
  const sock = await tlsHandshake({ socket: raw });
  const c2 = new LineClient(sock);
  // The first reply under TLS must be the EHLO's, not the injected RSET's "250 2.0.0 Ok".
  assert.match(await smtpCmd(c2, "EHLO client.example"), /^250-mx\.example\.org\n/);
  assert.equal(await smtpCmd(c2, "QUIT"), "221 2.0.0 Bye");
  await lax.waitLog(/disconnect from unknown\[127\.0\.0\.1\] ehlo=2 starttls=1 quit=1 commands=4/);
});

test("encrypt: 530 before STARTTLS; STARTTLS resets the session; not offered twice", async (t) => {
  const { inst } = await tlsInstance(t, "smtpd_tls_security_level = encrypt\n");
  const c = await smtpHello(inst.port);
  assert.equal(
    await smtpCmd(c, "MAIL FROM:<a@sender.example>"),
    "530 5.7.0 Must issue a STARTTLS command first",
  );
  assert.equal(await smtpCmd(c, "NOOP"), "250 2.0.0 Ok");
  c.close();
  const { c: s, ehlo } = await starttls(inst.port, { minVersion: "TLSv1.3" });
  assert.match(ehlo, /250-STARTTLS/);
  const again = await smtpCmd(s, "EHLO client.example");
  assert.doesNotMatch(again, /STARTTLS/);
  assert.equal(await smtpCmd(s, "STARTTLS"), "554 5.5.1 Error: TLS already active");
  assert.equal(await smtpCmd(s, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(s, "RCPT TO:<bob@example.org>"), "250 2.1.5 Ok");
  assert.equal(await smtpCmd(s, "QUIT"), "221 2.0.0 Bye");
});

test("implicit TLS (smtpd_tls_wrappermode from master.cf -o): the greeting comes under TLS", async (t) => {
  const port = await freePort();
  const { inst } = await tlsInstance(t, "", `${port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes`);
  const { c, sock } = await wrapped(port);
  assert.equal(sock.getProtocol(), "TLSv1.3");
  assert.match(await smtpCmd(c, null), /^220 mx\.example\.org ESMTP/);
  const ehlo = await smtpCmd(c, "EHLO client.example");
  assert.doesNotMatch(ehlo, /STARTTLS/);
  assert.equal(await smtpCmd(c, "STARTTLS"), "554 5.5.1 Error: TLS already active");
  assert.equal(await smtpCmd(c, "QUIT"), "221 2.0.0 Bye");
  await inst.waitLog(
    /Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher/,
  );
  // The plain port of the same instance has no STARTTLS (smtpd_tls_security_level is empty).
  const p = await smtpHello(inst.port);
  assert.doesNotMatch(await smtpCmd(p, "EHLO client.example"), /STARTTLS/);
  assert.equal(await smtpCmd(p, "STARTTLS"), "502 5.5.1 Error: command not implemented");
  // A plain-text client on the wrapper port gets nothing and is dropped.
  const bad = await smtpConnect(port);
  bad.send("EHLO plain.example");
  await inst.waitLog(/SSL_accept error from unknown\[127\.0\.0\.1\]: /);
  await inst.waitLog(/lost connection after CONNECT from unknown\[127\.0\.0\.1\]/);
});

test("smtpd_tls_chain_files serves an RSA and an ECDSA certificate from one instance", async (t) => {
  const certs = certsFor(t);
  const { inst } = await tlsInstance(
    t,
    `smtpd_tls_security_level = may\nsmtpd_tls_chain_files = ${certs.rsaChain}, ${certs.ecChain}\n`,
    "",
    certs,
  );
  const keyType = async (opts: Parameters<typeof starttls>[1]): Promise<string | undefined> => {
    const { c, sock } = await starttls(inst.port, opts);
    const raw = sock.getPeerCertificate(true).raw;
    const type = new X509Certificate(raw).publicKey.asymmetricKeyType;
    c.close();
    return type;
  };
  assert.equal(await keyType({ maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" }), "ec");
  assert.equal(await keyType({ maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256" }), "rsa");
  assert.equal(await keyType({ minVersion: "TLSv1.3", sigalgs: "ecdsa_secp256r1_sha256" }), "ec");
  assert.equal(await keyType({ minVersion: "TLSv1.3", sigalgs: "rsa_pss_rsae_sha256" }), "rsa");
  // The chain is sent: a client that knows only the CA verifies both.
  const { c, sock } = await starttls(inst.port, { ca: readFileSync(certs.ca), rejectUnauthorized: true });
  assert.ok(sock.authorized);
  c.close();
});

test("protocols in Postfix syntax: TLS 1.3 only, and TLS 1.3 excluded", async (t) => {
  const certs = certsFor(t);
  const { inst: only13 } = await tlsInstance(
    t,
    "smtpd_tls_security_level = may\nsmtpd_tls_protocols = >=TLSv1.3\n",
    "",
    certs,
  );
  await assert.rejects(starttls(only13.port, { maxVersion: "TLSv1.2" }));
  assert.equal((await starttls(only13.port)).sock.getProtocol(), "TLSv1.3");
  await only13.waitLog(/SSL_accept error from unknown\[127\.0\.0\.1\]: .*(protocol|version)/i);
  const { inst: no13 } = await tlsInstance(
    t,
    "smtpd_tls_security_level = encrypt\nsmtpd_tls_mandatory_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3\n",
    "",
    certs,
  );
  await assert.rejects(starttls(no13.port, { minVersion: "TLSv1.3" }));
  assert.equal((await starttls(no13.port)).sock.getProtocol(), "TLSv1.2");
});

test("session resumption with tickets; smtpd_tls_session_cache_timeout = 0 turns it off", async (t) => {
  const certs = certsFor(t);
  for (const [timeout, expect] of [
    ["3600s", true],
    ["0", false],
  ] as const) {
    const { inst } = await tlsInstance(
      t,
      `smtpd_tls_security_level = may\nsmtpd_tls_session_cache_timeout = ${timeout}\n`,
      "",
      certs,
    );
    for (const v of ["TLSv1.2", "TLSv1.3"] as const) {
      const first = await starttls(inst.port, { maxVersion: v });
      let session: Buffer | undefined = v === "TLSv1.2" ? first.sock.getSession() : undefined;
      first.sock.on("session", (s: Buffer) => (session = s));
      assert.match(await smtpCmd(first.c, "EHLO client.example"), /^250-/);
      await smtpCmd(first.c, "QUIT");
      for (let i = 0; i < 40 && session === undefined; i++) await sleep(25);
      const second = await starttls(inst.port, { maxVersion: v, ...(session ? { session } : {}) });
      assert.equal(second.sock.isSessionReused(), expect, `${v} with timeout ${timeout}: ${inst.log()}`);
      assert.match(await smtpCmd(second.c, "EHLO client.example"), /^250-/);
      assert.equal(await smtpCmd(second.c, "QUIT"), "221 2.0.0 Bye");
    }
    if (expect)
      await inst.waitLog(
        /Anonymous TLS connection reused from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher/,
      );
  }
});

test("smtpd_client_new_tls_session_rate_limit: 421 after one handshake too many, then 454 at STARTTLS", async (t) => {
  const { inst } = await tlsInstance(
    t,
    "smtpd_tls_security_level = may\nsmtpd_tls_session_cache_timeout = 0\n" +
      "smtpd_client_new_tls_session_rate_limit = 2\n",
    shippedEntries("anvil"),
  );
  for (let i = 0; i < 2; i++) {
    const ok = await starttls(inst.port);
    assert.match(await smtpCmd(ok.c, "EHLO client.example"), /^250-/);
    assert.equal(await smtpCmd(ok.c, "QUIT"), "221 2.0.0 Bye");
  }
  const third = await starttls(inst.port);
  assert.match(
    await third.c.line(),
    /^421 4\.7\.0 \S+ Error: too many new TLS sessions from unknown\[127\.0\.0\.1\]$/,
  );
  third.c.close();
  await inst.waitLog(
    /warning: New TLS session rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] for service /,
  );
  await assert.rejects(
    starttls(inst.port),
    /STARTTLS: 454 4\.7\.0 Error: too many new TLS sessions from unknown\[127\.0\.0\.1\]/,
  );
  await inst.waitLog(/warning: Refusing STARTTLS request from unknown\[127\.0\.0\.1\] for service /);
});

test("client certificates: permit_tls_clientcerts with relay_clientcerts fingerprints", async (t) => {
  const certs = certsFor(t);
  const clientDer = new X509Certificate(readFileSync(certs.clientCert)).raw;
  const print = fingerprint("sha256", clientDer);
  const { inst } = await tlsInstance(
    t,
    [
      "smtpd_tls_security_level = may",
      "smtpd_tls_ask_ccert = yes",
      "smtpd_tls_received_header = yes",
      `smtpd_tls_CAfile = ${certs.ca}`,
      `relay_clientcerts = inline:{ ${print}=client.example.com }`,
      "smtpd_relay_restrictions = permit_mynetworks, permit_tls_clientcerts, reject_unauth_destination",
      "",
    ].join("\n"),
    "",
    certs,
  );
  const relay = async (opts: Parameters<typeof starttls>[1]): Promise<string> => {
    const { c } = await starttls(inst.port, opts);
    await smtpCmd(c, "EHLO client.example");
    await smtpCmd(c, "MAIL FROM:<a@sender.example>");
    const r = await smtpCmd(c, "RCPT TO:<x@remote.example>");
    c.close();
    return r;
  };
  const client = { cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) };
  assert.equal(await relay(client), "250 2.1.5 Ok");
  await inst.waitLog(/Trusted TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher/);
  await inst.waitLog(
    new RegExp(`Trusted: subject_CN=client\\.example\\.com, issuer=Postern Test CA, fingerprint=${print}`),
  );
  assert.match(await relay({}), /^554 5\.7\.1 <x@remote\.example>: Relay access denied$/);
  const stray = { cert: readFileSync(certs.strayCert), key: readFileSync(certs.strayKey) };
  assert.match(await relay(stray), /^554 5\.7\.1 /);
  await inst.waitLog(/Untrusted TLS connection established from unknown\[127\.0\.0\.1\]/);
  // The Received: header names the client certificate.
  const { c } = await starttls(inst.port, client);
  await smtpCmd(c, "EHLO client.example");
  await smtpCmd(c, "MAIL FROM:<a@sender.example>");
  await smtpCmd(c, "RCPT TO:<bob@example.org>");
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  assert.match(await smtpCmd(c, "Subject: cert\r\n\r\nhi\r\n."), /^250 2\.0\.0 Ok: queued as /);
  assert.match(
    await queuedText(inst),
    /\n\t\(Client CN "client\.example\.com", Issuer "Postern Test CA" \(verified OK\)\)\n\tby mx\.example\.org/,
  );
});

test("smtpd_tls_req_ccert under encrypt: a client without a trusted certificate gets 421", async (t) => {
  const certs = certsFor(t);
  const { inst } = await tlsInstance(
    t,
    `smtpd_tls_security_level = encrypt\nsmtpd_tls_req_ccert = yes\nsmtpd_tls_CAfile = ${certs.ca}\n`,
    "",
    certs,
  );
  const { c } = await starttls(inst.port);
  assert.equal(
    await smtpCmd(c, "EHLO client.example"),
    "421 4.7.1 mx.example.org Error: No client certificate presented",
  );
  await inst.waitLog(/NOQUEUE: abort: TLS from unknown\[127\.0\.0\.1\]: No client certificate presented/);
  const stray = await starttls(inst.port, {
    cert: readFileSync(certs.strayCert),
    key: readFileSync(certs.strayKey),
  });
  assert.equal(
    await smtpCmd(stray.c, "EHLO client.example"),
    "421 4.7.1 mx.example.org Error: Client certificate not trusted",
  );
  const good = await starttls(inst.port, {
    cert: readFileSync(certs.clientCert),
    key: readFileSync(certs.clientKey),
  });
  assert.match(await smtpCmd(good.c, "EHLO client.example"), /^250-mx\.example\.org/);
  assert.equal(await smtpCmd(good.c, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
});

test("no usable certificate: STARTTLS is not offered and gets 454", async (t) => {
  const inst = await smtpdInstance(
    t,
    "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = /nonexistent/cert.pem\n",
  );
  const c = await smtpHello(inst.port);
  assert.doesNotMatch(await smtpCmd(c, "EHLO client.example"), /STARTTLS/);
  assert.equal(await smtpCmd(c, "STARTTLS"), "454 4.7.0 TLS not available due to local problem");
  await inst.waitLog(/warning: cannot use TLS: .*\/nonexistent\/cert\.pem/);
});

test("postern reload: new sessions get the new certificate, open sessions go on", async (t) => {
  const certs = certsFor(t);
  const cert = join(certs.ca, "..", "live.crt");
  const key = join(certs.ca, "..", "live.key");
  copyFileSync(certs.rsaCert, cert);
  copyFileSync(certs.rsaKey, key);
  const { inst } = await tlsInstance(
    t,
    `smtpd_tls_security_level = may\nsmtpd_tls_cert_file = ${cert}\nsmtpd_tls_key_file = ${key}\n`,
    "",
    certs,
  );
  const type = (s: { sock: { getPeerCertificate(d: true): { raw: Buffer } } }): string | undefined =>
    new X509Certificate(s.sock.getPeerCertificate(true).raw).publicKey.asymmetricKeyType;
  const old = await starttls(inst.port);
  assert.equal(type(old), "rsa");
  assert.match(await smtpCmd(old.c, "EHLO client.example"), /^250-/);
  copyFileSync(certs.ecCert, cert);
  copyFileSync(certs.ecKey, key);
  assert.equal((await inst.postern("reload")).code, 0);
  await inst.waitLog(/reload -- version/);
  let now: string | undefined = "rsa";
  for (let i = 0; i < 50 && now === "rsa"; i++) {
    const s = await starttls(inst.port);
    now = type(s);
    s.c.close();
    if (now === "rsa") await sleep(100);
  }
  assert.equal(now, "ec");
  assert.equal(await smtpCmd(old.c, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(old.c, "QUIT"), "221 2.0.0 Bye");
});

test("a STARTTLS session ends with TLS close_notify; a pipelining violation over TLS still gets its 554", async (t) => {
  const { inst } = await tlsInstance(t, "smtpd_tls_security_level = may\n");
  const script = `
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def session():
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
    s.starttls(context=ctx)
    s.ehlo()
    return s
s = session()
print(s.docmd("QUIT"))
try:
    print("eof", repr(s.sock.recv(100)))
except ssl.SSLError as e:
    print("tls error", e)
s = session()
s.sock.sendall(b"EHLO again\\r\\nNOOP\\r\\n")
f = s.sock.makefile("rb")
lines = [l for l in f.read().decode().split("\\r\\n") if l]
print("last", lines[-1])
`;
  const r = spawnSync("/usr/bin/python3", ["-c", script, String(inst.port)], {
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^\(221, b'2\.0\.0 Bye'\)$/m);
  assert.match(r.stdout, /^eof b''$/m, "the server closed TLS with close_notify");
  assert.match(r.stdout, /^last 554 5\.5\.0 Error: SMTP protocol synchronization$/m);
});
