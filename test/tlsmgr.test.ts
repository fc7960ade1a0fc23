/*
 * tlsmgr end-to-end: TLS sessions shared by the smtpd processes of an instance
 *
 * DESCRIPTION
 *   A real instance with tlsmgr under master and smtpd processes that
 *   serve one client each (max_use 1, postern_process_client_limit 1), so
 *   that every connection meets a new smtpd process (checked by the pids in
 *   the log). The client is openssl s_client -starttls smtp (Debian package
 *   openssl), which saves its session with -sess_out and offers it again
 *   with -sess_in: "Reused" shows that another smtpd process resumed it.
 *   Also: ticket key rotation, tlsmgr killed with SIGKILL, and the SMTP
 *   client's session store through a real tlsmgr.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processesOf, sleep, startInstance } from "../src/testing/instance.js";
import { smtpdInstance, type SmtpdInstance } from "../src/testing/smtpd-instance.js";
import { makeTestCerts, type TestCerts } from "../src/testing/tls-certs.js";
import { TlsmgrClient, openClientSessionStore, TlsmgrSessionStore } from "../src/global/tlsmgr-client.js";
import { MemorySessionStore } from "../src/global/tls-session-store.js";
import { TLSMGR_SESSION_MAX } from "../src/global/tlsmgr-proto.js";

type T = Parameters<typeof smtpdInstance>[0];

const TLSMGR = "tlsmgr unix - - y 1000? 1 tlsmgr";

/** The test PKI in a temporary directory, removed after the test. */
function certsFor(t: T): { certs: TestCerts; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "postern-tlsmgr-"));
  chmodSync(dir, 0o755);
  t.after(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  return { certs: makeTestCerts(dir), dir };
}

/** An smtpd instance whose processes serve one client each; extra main.cf text is appended. */
async function oneShotInstance(
  t: T,
  main: string,
  master = TLSMGR,
): Promise<{ inst: SmtpdInstance; dir: string }> {
  const { certs, dir } = certsFor(t);
  const inst = await smtpdInstance(
    t,
    [
      "smtpd_tls_security_level = may",
      "smtpd_tls_loglevel = 1",
      `smtpd_tls_cert_file = ${certs.rsaCert}`,
      `smtpd_tls_key_file = ${certs.rsaKey}`,
      "max_use = 1",
      "postern_process_client_limit = 1",
      main,
    ].join("\n"),
    master,
  );
  return { inst, dir };
}

interface Handshake {
  reused: boolean;
  out: string;
}

/**
 * One STARTTLS session with openssl s_client: QUIT is sent once the TLS
 * session is up and the server's answer to EHLO is in (so that TLS 1.3
 * tickets have arrived), then s_client ends when the server closes.
 */
function sClient(port: number, args: string[]): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "openssl",
      ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${port}`, "-crlf", "-ign_eof", ...args],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let out = "";
    let sent = false;
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const onData = (d: Buffer): void => {
      out += d.toString("latin1");
      // s_client prints the session, then the reply to its own EHLO has already been read.
      if (!sent && /^(New|Reused), /m.test(out)) {
        sent = true;
        setTimeout(() => child.stdin.write("QUIT\n"), 200);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`openssl s_client: ${err.message} (Debian package openssl)`));
    });
    child.on("close", () => {
      clearTimeout(timer);
      child.stdin.destroy();
      const m = /^(New|Reused), /m.exec(out);
      if (m === null) return reject(new Error(`openssl s_client made no TLS session:\n${out}`));
      if (!/221 2\.0\.0 Bye/.test(out)) return reject(new Error(`no reply to QUIT:\n${out}`));
      resolve({ reused: m[1] === "Reused", out });
    });
  });
}

/** The pids of the smtpd processes that logged a TLS session, in order. */
function tlsPids(inst: SmtpdInstance): number[] {
  const re = /smtpd\[(\d+)\]: Anonymous TLS connection (?:established|reused) from /g;
  return [...inst.log().matchAll(re)].map((m) => Number(m[1]));
}

/** Waits for the n-th TLS session line in the log; returns the pid of its smtpd. */
async function nthTlsPid(inst: SmtpdInstance, n: number): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const pids = tlsPids(inst);
    const pid = pids[n - 1];
    if (pid !== undefined) return pid;
    await sleep(50);
  }
  throw new Error(`no TLS session line #${n}; log:\n${inst.log()}`);
}

/** The pids of the instance's tlsmgr processes. */
function tlsmgrPids(etc: string): number[] {
  return processesOf(etc).filter((pid) => {
    try {
      return /\/tlsmgr\.js/.test(readFileSync(`/proc/${pid}/cmdline`, "latin1"));
    } catch {
      return false;
    }
  });
}

/** Makes a session with one smtpd process and offers it to a new one; returns both outcomes. */
async function resumeElsewhere(
  inst: SmtpdInstance,
  dir: string,
  args: string[],
  name: string,
  count: { n: number },
): Promise<{ first: Handshake; second: Handshake }> {
  const sess = join(dir, `${name}.sess`);
  const first = await sClient(inst.port, [...args, "-sess_out", sess]);
  const second = await sClient(inst.port, [...args, "-sess_in", sess]);
  const a = await nthTlsPid(inst, ++count.n);
  const b = await nthTlsPid(inst, ++count.n);
  assert.notEqual(a, b, `${name}: both sessions were served by smtpd[${a}]`);
  return { first, second };
}

test("a session made with one smtpd process resumes with another: tickets (TLS 1.3, 1.2) and session IDs", async (t) => {
  const { inst, dir } = await oneShotInstance(
    t,
    "smtpd_tls_session_cache_database = btree:$data_directory/smtpd_scache",
  );
  const count = { n: 0 };
  for (const [name, args] of [
    ["tls13", ["-tls1_3"]],
    ["tls12-ticket", ["-tls1_2"]],
    ["tls12-id", ["-tls1_2", "-no_ticket"]],
  ] as const) {
    const { first, second } = await resumeElsewhere(inst, dir, [...args], name, count);
    assert.equal(first.reused, false, `${name}: ${first.out}`);
    assert.equal(second.reused, true, `${name}: ${second.out}\n${inst.log()}`);
  }
  await inst.waitLog(/smtpd\[\d+\]: Anonymous TLS connection reused from unknown\[127\.0\.0\.1\]: TLSv1\.3 /);
  await inst.waitLog(/smtpd\[\d+\]: Anonymous TLS connection reused from unknown\[127\.0\.0\.1\]: TLSv1\.2 /);
  assert.equal(tlsmgrPids(inst.etc).length, 1);
});

test("without tlsmgr each smtpd process has its own keys: no resumption elsewhere, logged once per process", async (t) => {
  const { inst, dir } = await oneShotInstance(t, "", "");
  const { first, second } = await resumeElsewhere(inst, dir, ["-tls1_3"], "alone", { n: 0 });
  assert.equal(first.reused, false);
  assert.equal(second.reused, false, second.out);
  await inst.waitLog(
    /smtpd\[\d+\]: TLS session tickets are encrypted with keys of this process: tlsmgr service not available/,
  );
  // The session-ID cache is off without smtpd_tls_session_cache_database.
  const ids = await resumeElsewhere(inst, dir, ["-tls1_2", "-no_ticket"], "ids", { n: 2 });
  assert.equal(ids.second.reused, false, ids.second.out);
});

test("tls_session_ticket_cipher: empty turns tickets off; a name that is not a usable cipher too, with a warning", async (t) => {
  for (const [value, warning] of [
    ["", null],
    [
      "aes-256-gcm",
      /smtpd\[\d+\]: warning: tls_session_ticket_cipher: invalid value: aes-256-gcm; session tickets disabled/,
    ],
  ] as const) {
    const { inst, dir } = await oneShotInstance(t, `tls_session_ticket_cipher = ${value}`);
    const count = { n: 0 };
    for (const v of ["-tls1_3", "-tls1_2"]) {
      const r = await resumeElsewhere(inst, dir, [v], `off${v}`, count);
      assert.equal(r.second.reused, false, `"${value}" ${v}: ${r.second.out}`);
    }
    if (warning !== null) await inst.waitLog(warning);
  }
});

test("key rotation: a new key every smtpd_tls_session_cache_timeout; new sessions resume, old ones do not", async (t) => {
  const { inst, dir } = await oneShotInstance(t, "smtpd_tls_session_cache_timeout = 6s");
  const mgr = new TlsmgrClient(inst.spool, 5000);
  t.after(() => Promise.resolve(mgr.close()));
  const count = { n: 0 };
  const before = await resumeElsewhere(inst, dir, ["-tls1_3"], "before", count);
  assert.equal(before.second.reused, true, before.second.out);
  const k1 = await mgr.ticketKey();
  assert.ok(k1.ok, k1.ok ? "" : k1.reason);
  assert.ok(k1.lifetime <= 6);
  await sleep((k1.lifetime + 1) * 1000);
  const k2 = await mgr.ticketKey();
  assert.ok(k2.ok);
  assert.notDeepEqual(k2.key, k1.key, "the key was not replaced");
  // The old session's ticket was made with the old key (and is older than the timeout).
  const old = await sClient(inst.port, ["-tls1_3", "-sess_in", join(dir, "before.sess")]);
  assert.equal(old.reused, false, old.out);
  count.n++;
  const after = await resumeElsewhere(inst, dir, ["-tls1_3"], "after", count);
  assert.equal(after.second.reused, true, `${after.second.out}\n${inst.log()}`);
});

test("tlsmgr killed with SIGKILL: smtpd carries on, master starts a new tlsmgr, resumption works again", async (t) => {
  const { inst, dir } = await oneShotInstance(t, "");
  const count = { n: 0 };
  const r1 = await resumeElsewhere(inst, dir, ["-tls1_3"], "one", count);
  assert.equal(r1.second.reused, true, r1.second.out);
  const [old] = tlsmgrPids(inst.etc);
  assert.ok(old !== undefined, "no tlsmgr process");
  process.kill(old, "SIGKILL");
  for (let i = 0; i < 100 && tlsmgrPids(inst.etc).includes(old); i++) await sleep(50);
  // New handshakes work; the new tlsmgr has a new key, so the old ticket is not taken.
  const stale = await sClient(inst.port, ["-tls1_3", "-sess_in", join(dir, "one.sess")]);
  assert.equal(stale.reused, false, stale.out);
  count.n++;
  await nthTlsPid(inst, count.n);
  const fresh = tlsmgrPids(inst.etc);
  assert.equal(fresh.length, 1, `tlsmgr processes: ${fresh.join(" ")}\n${inst.log()}`);
  assert.notEqual(fresh[0], old);
  const r2 = await resumeElsewhere(inst, dir, ["-tls1_3"], "two", count);
  assert.equal(r2.second.reused, true, r2.second.out);
});

test("a tlsmgr that does not answer: smtpd waits a short time, then uses its own keys and says so once", async (t) => {
  const { inst, dir } = await oneShotInstance(
    t,
    "smtpd_tls_session_cache_database = btree:$data_directory/smtpd_scache",
  );
  const count = { n: 0 };
  const r1 = await resumeElsewhere(inst, dir, ["-tls1_2", "-no_ticket"], "before", count);
  assert.equal(r1.second.reused, true, r1.second.out);
  const [pid] = tlsmgrPids(inst.etc);
  assert.ok(pid !== undefined, "no tlsmgr process");
  process.kill(pid, "SIGSTOP");
  try {
    const started = Date.now();
    const h = await sClient(inst.port, ["-tls1_2", "-no_ticket", "-sess_in", join(dir, "before.sess")]);
    assert.equal(h.reused, false, h.out);
    const waited = Date.now() - started;
    assert.ok(waited >= 1500 && waited < 10_000, `smtpd waited ${waited} ms for tlsmgr`);
    await inst.waitLog(
      /smtpd\[\d+\]: warning: TLS session tickets are encrypted with keys of this process: .*no (hello|reply) within 1500 ms/,
    );
  } finally {
    process.kill(pid, "SIGCONT");
  }
  count.n++;
  const r2 = await resumeElsewhere(inst, dir, ["-tls1_3"], "after", count);
  assert.equal(r2.second.reused, true, `${r2.second.out}\n${inst.log()}`);
  assert.deepEqual(tlsmgrPids(inst.etc), [pid]);
});

test("the SMTP client's session store round-trips sessions through tlsmgr, with expiry and bounds", async (t) => {
  const inst = await startInstance(t, { master: `${TLSMGR}\n` });
  const open = (timeout: number): ReturnType<typeof openClientSessionStore> =>
    openClientSessionStore({
      queueDirectory: inst.spool,
      cacheType: "smtp",
      database: "btree:$data_directory/smtp_scache",
      timeout,
    });
  const a = open(3600);
  const b = open(3600);
  assert.ok(a instanceof TlsmgrSessionStore && b instanceof TlsmgrSessionStore);
  t.after(() => Promise.resolve(a.close()));
  t.after(() => Promise.resolve(b.close()));
  const session = Buffer.from("a serialized session \u0000\u00ff", "latin1");
  const key = "mx.example.org&192.0.2.1&25&policy";
  // put() does not wait; a request on the same connection comes after it.
  a.put(key, session, 2);
  assert.deepEqual(await a.get(key), session);
  // Another connection (as another agent process would have) sees it.
  assert.deepEqual(await b.get(key), session);
  assert.equal(await b.get("other"), null);
  // A key with control characters or too long for the protocol still works.
  const odd = `x\u0001${"y".repeat(2000)}`;
  a.put(odd, session, 60);
  assert.deepEqual(await a.get(odd), session);
  assert.deepEqual(await b.get(odd), session);
  b.remove(odd);
  assert.equal(await b.get(odd), null);
  assert.equal(await a.get(odd), null);
  // lmtp's cache is another one.
  const lmtp = openClientSessionStore({
    queueDirectory: inst.spool,
    cacheType: "lmtp",
    database: "x",
    timeout: 60,
  });
  t.after(() => Promise.resolve((lmtp as TlsmgrSessionStore).close()));
  assert.equal(await lmtp.get(key), null);
  // Too big for tlsmgr: not kept.
  a.put("big", Buffer.alloc(TLSMGR_SESSION_MAX + 1, 1), 60);
  assert.equal(await a.get("big"), null);
  // Expiry.
  await sleep(2200);
  assert.equal(await b.get(key), null);
  // No database, or a zero timeout: sessions stay in the process.
  assert.ok(open(0) instanceof MemorySessionStore);
  assert.ok(
    openClientSessionStore({
      queueDirectory: inst.spool,
      cacheType: "smtp",
      database: "",
      timeout: 60,
    }) instanceof MemorySessionStore,
  );
  // A database but no tlsmgr in master.cf: in the process, with a warning.
  const none = mkdtempSync(join(tmpdir(), "postern-notlsmgr-"));
  t.after(() => Promise.resolve(rmSync(none, { recursive: true, force: true })));
  assert.ok(
    openClientSessionStore({ queueDirectory: none, cacheType: "smtp", database: "x", timeout: 60 }) instanceof
      MemorySessionStore,
  );
});
