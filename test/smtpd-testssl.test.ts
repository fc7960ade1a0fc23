/*
 * smtpd-testssl.test - testssl.sh against smtpd's default TLS configuration
 *
 * DESCRIPTION
 *   An instance runs smtpd with smtpd_tls_security_level = may and an RSA
 *   certificate, and nothing else about TLS: the defaults are what is
 *   tested. testssl.sh (Debian package testssl.sh, command testssl) checks
 *   the protocols (-p), the cipher categories (-E is too slow; -s), the
 *   server defaults (-S) and the vulnerabilities (-U) over STARTTLS, and
 *   writes its findings as JSON. The test fails on any protocol finding
 *   worse than OK/INFO (SSLv2, SSLv3, TLS 1.0 and 1.1 offered) and on any
 *   vulnerability or cipher finding of severity MEDIUM, HIGH or CRITICAL.
 *   (LOW findings such as "uses CBC ciphers" for LUCKY13 are printed, not
 *   failed on: the medium grade keeps CBC suites with SHA-2 for old
 *   clients.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { smtpdInstance } from "../src/testing/smtpd-instance.js";
import { makeTestCerts } from "../src/testing/tls-certs.js";

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

/** Runs testssl with a time limit; resolves with its exit status. */
function testssl(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn("testssl", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill("SIGTERM"), timeoutMs);
    p.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`testssl: ${err.message} (install the Debian package testssl.sh)`, { cause: err }));
    });
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test("testssl.sh finds no weak protocol and no vulnerability in the default configuration", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-testssl-"));
  chmodSync(dir, 0o755);
  t.after(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  const certs = makeTestCerts(dir);
  const inst = await smtpdInstance(
    t,
    `smtpd_tls_security_level = may\nsmtpd_tls_cert_file = ${certs.rsaCert}\nsmtpd_tls_key_file = ${certs.rsaKey}\n`,
  );
  const json = join(dir, "testssl.json");
  const r = await testssl(
    [
      "--quiet",
      "--color",
      "0",
      "--warnings",
      "off",
      "--nodns",
      "none",
      "--starttls",
      "smtp",
      "-p",
      "-S",
      "-U",
      "--jsonfile",
      json,
      `127.0.0.1:${inst.port}`,
    ],
    400_000,
  );
  const findings = JSON.parse(readFileSync(json, "utf8")) as Finding[];
  assert.ok(findings.length > 20, `testssl wrote too little (exit ${String(r.code)}):\n${r.out}`);
  const by = (id: string): Finding | undefined => findings.find((f) => f.id === id);
  for (const p of ["SSLv2", "SSLv3", "TLS1", "TLS1_1"])
    assert.match(by(p)?.finding ?? "", /not offered/, `${p}: ${JSON.stringify(by(p))}`);
  assert.match(by("TLS1_2")?.finding ?? "", /^offered/);
  assert.match(by("TLS1_3")?.finding ?? "", /^offered/);
  const bad = findings.filter(
    (f) => ["MEDIUM", "HIGH", "CRITICAL"].includes(f.severity) && !/^(cert|scanProblem)/.test(f.id),
  );
  assert.deepEqual(bad, [], JSON.stringify(bad, null, 1));
  const low = findings.filter((f) => f.severity === "LOW");
  t.diagnostic(`LOW findings: ${low.map((f) => `${f.id}: ${f.finding}`).join("; ")}`);
});
