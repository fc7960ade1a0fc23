/*
 * smtp-tls.test - TLS in the SMTP delivery agent against real servers on loopback
 *
 * DESCRIPTION
 *   Python's aiosmtpd offers STARTTLS with a certificate from the test PKI
 *   (tls-certs.ts: CN mx.example.org, also 127.0.0.1) and logs, for every
 *   EHLO under TLS, the protocol and whether the session was resumed; a
 *   second aiosmtpd offers no STARTTLS; a third stops at TLS 1.2; a fourth
 *   speaks implicit TLS. Postern's smtp agent delivers to them under each
 *   security level (master.cf services with -o overrides, and a
 *   smtp_tls_policy_maps entry), and the tests check what a mail admin
 *   would see: where the mail went, whether it went encrypted, and the log
 *   and DSN texts of every refusal, with the refused mail still queued.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { relayInstance, startAiosmtpd, submitMessage, type Aiosmtpd } from "../src/testing/smtp-peers.js";
import { makeTestCerts, type TestCerts } from "../src/testing/tls-certs.js";
import { shippedEntries } from "../src/testing/instance.js";

/** A regular expression that matches a string literally. */
function lit(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

type Ctx = { after: (fn: () => void) => void };

/** The test PKI in a temporary directory. */
function pki(t: Ctx): { certs: TestCerts; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "postern-ctls-"));
  chmodSync(dir, 0o755); // the agents run unprivileged and read the CA and policy files
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { certs: makeTestCerts(dir), dir };
}

/** The messages an aiosmtpd accepted for a recipient. */
function got(aio: Aiosmtpd, rcpt: string): string[] {
  return aio.messages().filter((m) => m.includes(`X-Rcpt-To: ${rcpt}\n`));
}

/** The TLS lines aiosmtpd logged ("TLS TLSv1.3 <cipher> reused=0"). */
function tlsLines(aio: Aiosmtpd): string[] {
  return aio.commands().filter((l) => l.startsWith("TLS "));
}

const SERVICES = [
  "encrypt unix - - n - - smtp\n  -o smtp_tls_security_level=encrypt",
  "verify unix - - n - - smtp\n  -o smtp_tls_security_level=verify",
  "verifybad unix - - n - - smtp\n  -o smtp_tls_security_level=verify\n  -o smtp_tls_verify_cert_match=wrong.example.org",
  "verifynoca unix - - n - - smtp\n  -o smtp_tls_security_level=verify\n  -o smtp_tls_CAfile=",
  "secure unix - - n - - smtp\n  -o smtp_tls_security_level=secure\n  -o smtp_tls_secure_cert_match=mx.example.org",
  "enc13 unix - - n - - smtp\n  -o smtp_tls_security_level=encrypt\n  -o smtp_tls_mandatory_protocols=>=TLSv1.3",
  "may13 unix - - n - - smtp\n  -o smtp_tls_protocols=>=TLSv1.3",
  "wrap unix - - n - - smtp\n  -o smtp_tls_security_level=encrypt\n  -o smtp_tls_wrappermode=yes",
].join("\n");

test("client TLS levels against aiosmtpd: may, encrypt, verify, secure, fingerprint, protocols, plaintext fallback, resumption", async (t) => {
  const { certs, dir } = pki(t);
  const tls = { cert: certs.rsaCert, key: certs.rsaKey };
  const [aio, plain, old, wrapped, pinned, refusing] = await Promise.all([
    startAiosmtpd(t, { addr: "127.0.0.1", tls }),
    startAiosmtpd(t, { addr: "127.0.0.3" }),
    startAiosmtpd(t, { addr: "127.0.0.4", tls: { ...tls, maxVersion: "TLSv1.2" } }),
    startAiosmtpd(t, { addr: "127.0.0.1", tls: { ...tls, wrapper: true } }),
    startAiosmtpd(t, { addr: "127.0.0.5", tls: { ...tls, maxVersion: "TLSv1.2" } }),
    startAiosmtpd(t, {
      addr: "127.0.0.6",
      tls: { ...tls, refusal: "454 4.7.0 TLS not available due to local problem" },
    }),
  ]);
  const A = `[127.0.0.1]:${aio.port}`;
  const P = `[127.0.0.3]:${plain.port}`;
  const O = `[127.0.0.4]:${old.port}`;
  const W = `[127.0.0.1]:${wrapped.port}`;
  const F = `[127.0.0.5]:${pinned.port}`;
  const R = `[127.0.0.6]:${refusing.port}`;
  const fp = createHash("sha256")
    .update(new X509Certificate(readFileSync(certs.rsaCert)).raw)
    .digest("hex")
    .toUpperCase()
    .replace(/(..)(?!$)/g, "$1:");
  // The policy table overrides the global "may" for one next hop: fingerprint with the server's certificate.
  const policy = join(dir, "tls_policy");
  writeFileSync(policy, `${F} fingerprint match=${fp} protocols=>=TLSv1.2\n`);
  const routes = {
    "may.test": `smtp:${A}`,
    "plain.test": `smtp:${P}`,
    "enc.test": `encrypt:${A}`,
    "encno.test": `encrypt:${P}`,
    "ver.test": `verify:${A}`,
    "verbad.test": `verifybad:${A}`,
    "vernoca.test": `verifynoca:${A}`,
    "sec.test": `secure:${A}`,
    "fp.test": `smtp:${F}`,
    "enc13.test": `enc13:${O}`,
    "may13.test": `may13:${O}`,
    "wrap.test": `wrap:${W}`,
    "refuse.test": `encrypt:${R}`,
    "refusemay.test": `smtp:${R}`,
  };
  const inst = await relayInstance(
    t,
    [
      "smtp_tls_security_level = may",
      "smtp_tls_loglevel = 2",
      `smtp_tls_CAfile = ${certs.ca}`,
      `smtp_tls_policy_maps = texthash:${policy}`,
      `transport_maps = inline:{${Object.entries(routes)
        .map(([d, r]) => `${d}=${r}`)
        .join(", ")}}`,
    ].join("\n"),
    SERVICES,
  );
  const send = (domain: string): Promise<string> =>
    submitMessage(inst, { rcpts: [`u@${domain}`], content: `Subject: ${domain}\n\nhello\n` });
  const sent = (id: string, domain: string, relay: string): Promise<string> =>
    inst.waitLog(
      new RegExp(`${id}: to=<u@${lit(domain)}>, relay=${lit(relay)}, .*status=sent \\(250 2\\.0\\.0 Ok`),
      30_000,
    );
  const deferred = (id: string, domain: string, reason: string): Promise<string> =>
    inst.waitLog(new RegExp(`${id}: to=<u@${lit(domain)}>, .*status=deferred \\(${lit(reason)}\\)`), 30_000);
  const aioName = `127.0.0.1[127.0.0.1]:${aio.port}`;

  // may: STARTTLS when offered, logged as Postfix does (the CA is configured: "Trusted").
  const may = await send("may.test");
  await sent(may, "may.test", aioName);
  await inst.waitLog(
    new RegExp(
      `Trusted TLS connection established to ${lit(aioName)}: TLSv1\\.3 with cipher \\S+ \\(256/256 bits\\)`,
    ),
  );
  assert.equal(got(aio, "u@may.test").length, 1);
  assert.match(tlsLines(aio)[0] ?? "", /^TLS TLSv1\.3 \S+ reused=0$/);

  // may, server without STARTTLS: plaintext.
  const pl = await send("plain.test");
  await sent(pl, "plain.test", `127.0.0.3[127.0.0.3]:${plain.port}`);
  assert.equal(tlsLines(plain).length, 0);

  // encrypt: over TLS; and deferred, with the mail kept, when the server does not offer STARTTLS.
  const enc = await send("enc.test");
  await sent(enc, "enc.test", aioName);
  const encno = await send("encno.test");
  await deferred(encno, "encno.test", `TLS is required, but was not offered by host 127.0.0.3[127.0.0.3]`);
  assert.equal(got(plain, "u@encno.test").length, 0, "nothing sent in plaintext");
  assert.ok(!plain.commands().some((l) => l.includes("u@encno.test")), "not even the envelope");

  // verify: the right CA and name; a name that does not match; a CA that is not configured.
  const ver = await send("ver.test");
  await sent(ver, "ver.test", aioName);
  await inst.waitLog(new RegExp(`Verified TLS connection established to ${lit(aioName)}`));
  await inst.waitLog(new RegExp(`${lit(aioName)}: matched peername: 127\\.0\\.0\\.1`));
  const verbad = await send("verbad.test");
  await deferred(verbad, "verbad.test", "Server certificate not verified");
  await inst.waitLog(
    new RegExp(`server certificate verification failed for ${lit(aioName)}: num=62:hostname mismatch`),
  );
  const vernoca = await send("vernoca.test");
  await deferred(vernoca, "vernoca.test", "Server certificate not verified");
  await inst.waitLog(
    new RegExp(
      `server certificate verification failed for ${lit(aioName)}: untrusted issuer /CN=Postern Test CA`,
    ),
  );
  assert.equal(got(aio, "u@verbad.test").length + got(aio, "u@vernoca.test").length, 0);

  // secure with a match name; fingerprint from the policy table.
  const sec = await send("sec.test");
  await sent(sec, "sec.test", aioName);
  await inst.waitLog(new RegExp(`${lit(aioName)}: matched peername: mx\\.example\\.org`));
  const fpId = await send("fp.test");
  const pinnedName = `127.0.0.5[127.0.0.5]:${pinned.port}`;
  await sent(fpId, "fp.test", pinnedName);
  await inst.waitLog(
    new RegExp(`Verified TLS connection established to ${lit(pinnedName)}: TLSv1\\.2 with cipher`),
  );

  const oldName = `127.0.0.4[127.0.0.4]:${old.port}`;
  // Mandatory protocols the server cannot speak: deferred, never plaintext.
  const e13 = await send("enc13.test");
  await deferred(e13, "enc13.test", "Cannot start TLS: handshake failure");
  await inst.waitLog(new RegExp(`SSL_connect error to ${lit(oldName)}: `));
  assert.equal(got(old, "u@enc13.test").length, 0);

  // may + a failed handshake: deferred first, then (after minimal_backoff_time) delivered in plaintext.
  const m13 = await send("may13.test");
  await deferred(m13, "may13.test", "Cannot start TLS: handshake failure");
  await sent(m13, "may13.test", oldName);
  assert.equal(got(old, "u@may13.test").length, 1);

  // STARTTLS offered but refused: encrypt defers with the server's reply; may goes on in plaintext.
  const refuse = await send("refuse.test");
  await deferred(
    refuse,
    "refuse.test",
    `TLS is required, but host 127.0.0.6[127.0.0.6] refused to start TLS: 454 4.7.0 TLS not available due to local problem`,
  );
  const refuseMay = await send("refusemay.test");
  await sent(refuseMay, "refusemay.test", `127.0.0.6[127.0.0.6]:${refusing.port}`);
  assert.equal(got(refusing, "u@refuse.test").length, 0);
  assert.equal(got(refusing, "u@refusemay.test").length, 1);

  // Implicit TLS (smtp_tls_wrappermode).
  const wr = await send("wrap.test");
  await sent(wr, "wrap.test", `127.0.0.1[127.0.0.1]:${wrapped.port}`);
  assert.equal(got(wrapped, "u@wrap.test").length, 1);

  // Resumption: a second delivery to the same server resumes the TLS session.
  const may2 = await send("may.test");
  await sent(may2, "may.test", aioName);
  await inst.waitLog(new RegExp(`${lit(aioName)}: Reusing old session`));
  assert.ok(
    tlsLines(aio).some((l) => l.endsWith("reused=1")),
    `aiosmtpd saw a resumed session: ${tlsLines(aio).join(" | ")}`,
  );

  // The refused mail is still in the queue.
  const queued = readdirSync(inst.spool, { recursive: true }).map((f) => String(f));
  for (const id of [encno, verbad, vernoca, e13, refuse])
    assert.ok(
      queued.some((f) => f.endsWith(`/${id}`)),
      `${id} is still queued`,
    );
});

test("lmtp_tls_*: the LMTP client verifies an LMTP server over STARTTLS, apart from the smtp_ settings", async (t) => {
  const { certs } = pki(t);
  const lmtp = await startAiosmtpd(t, {
    addr: "127.0.0.1",
    tls: { cert: certs.rsaCert, key: certs.rsaKey },
    lmtp: true,
  });
  const inst = await relayInstance(
    t,
    [
      "smtp_tls_security_level = none",
      "lmtp_tls_security_level = verify",
      "lmtp_tls_loglevel = 1",
      `lmtp_tls_CAfile = ${certs.ca}`,
      `transport_maps = inline:{box.test=lmtp:inet:127.0.0.1:${lmtp.port}}`,
    ].join("\n"),
  );
  const id = await submitMessage(inst, { rcpts: ["u@box.test"], content: "Subject: lmtp\n\nhello\n" });
  const name = `127.0.0.1[127.0.0.1]:${lmtp.port}`;
  await inst.waitLog(
    new RegExp(`postfix/lmtp\\[\\d+\\]: Verified TLS connection established to ${lit(name)}: TLSv1\\.3`),
    30_000,
  );
  await inst.waitLog(new RegExp(`${id}: to=<u@box\\.test>, relay=${lit(name)}, .*status=sent`), 30_000);
  assert.ok(
    lmtp.commands().some((l) => l.startsWith("EHLO ")),
    "LHLO reached the server",
  );
  assert.equal(tlsLines(lmtp).length, 1, "the second LHLO came under TLS");
  assert.equal(got(lmtp, "u@box.test").length, 1);
});

test("smtp_tls_session_cache_database: a new agent process resumes the session another one made, through tlsmgr", async (t) => {
  const { certs } = pki(t);
  const aio = await startAiosmtpd(t, { addr: "127.0.0.1", tls: { cert: certs.rsaCert, key: certs.rsaKey } });
  const inst = await relayInstance(
    t,
    [
      "smtp_tls_security_level = verify",
      "smtp_tls_loglevel = 2",
      `smtp_tls_CAfile = ${certs.ca}`,
      "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache",
      `relayhost = [127.0.0.1]:${aio.port}`,
    ].join("\n"),
    shippedEntries("tlsmgr"),
  );
  const name = `127.0.0.1[127.0.0.1]:${aio.port}`;
  const deliver = async (n: number): Promise<number> => {
    const id = await submitMessage(inst, { rcpts: [`u${n}@far.test`], content: `Subject: ${n}\n\nhello\n` });
    const line = await inst.waitLog(
      new RegExp(`postfix/smtp\\[(\\d+)\\]: ${id}: to=<u${n}@far\\.test>, relay=${lit(name)}, .*status=sent`),
      30_000,
    );
    return Number(/\[(\d+)\]/.exec(line)?.[1]);
  };
  const first = await deliver(1);
  assert.equal(tlsLines(aio).at(-1)?.endsWith("reused=0"), true, "the first handshake is a full one");
  // End the agent that made the session: the next delivery needs a new process.
  process.kill(first, "SIGTERM");
  const t0 = Date.now();
  while (Date.now() - t0 < 10_000) {
    try {
      process.kill(first, 0);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const second = await deliver(2);
  assert.notEqual(second, first, "another agent process delivered the second message");
  await inst.waitLog(new RegExp(`postfix/smtp\\[${second}\\]: ${lit(name)}: Reusing old session`), 10_000);
  assert.equal(
    tlsLines(aio).at(-1)?.endsWith("reused=1"),
    true,
    `resumed: ${tlsLines(aio).join(" | ")}\n${inst.log()}`,
  );
});
