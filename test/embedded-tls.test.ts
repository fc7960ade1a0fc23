/*
 * embedded-tls.test - the embedded instance makes a self-signed certificate on first start
 *
 * DESCRIPTION
 *   makeEmbeddedInstance() on a fresh directory makes a self-signed
 *   certificate with the openssl command and turns on STARTTLS and AUTH
 *   over TLS; a second call changes nothing. The instance (on a free port
 *   instead of 2525, logging to a file) then offers STARTTLS, smtpd logs
 *   that its certificate is self-signed, and a user added with
 *   "postern sasl-passwd add" can log in after STARTTLS.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EMBEDDED_SMTP, makeEmbeddedInstance } from "../src/global/embedded.js";
import { freePort, sleep } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello } from "../src/testing/smtpd-instance.js";
import { starttls } from "../src/testing/smtp-tls.js";

test("the embedded instance has STARTTLS with a self-signed certificate out of the box", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "postern-embedded-"));
  chmodSync(root, 0o755);
  const etc = makeEmbeddedInstance(root);
  t.after(async () => {
    await runCli("postern", ["-c", etc, "abort"]);
    rmSync(root, { recursive: true, force: true });
  });
  const main = readFileSync(join(etc, "main.cf"), "utf8");
  assert.match(main, /^smtpd_tls_security_level = may$/m);
  assert.match(main, /SELF-SIGNED/);
  const pem = readFileSync(join(etc, "smtpd-chain.pem"), "utf8");
  assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
  const cert = new X509Certificate(pem.slice(pem.indexOf("-----BEGIN CERTIFICATE-----")));
  assert.equal(cert.subject, cert.issuer);
  makeEmbeddedInstance(root);
  assert.equal(readFileSync(join(etc, "main.cf"), "utf8"), main, "a second start changes nothing");
  const port = await freePort();
  const master = readFileSync(join(etc, "master.cf"), "utf8");
  writeFileSync(join(etc, "master.cf"), master.replace(`${EMBEDDED_SMTP} inet`, `127.0.0.1:${port} inet`));
  writeFileSync(
    join(etc, "main.cf"),
    main.replace("maillog_file = /dev/stdout", `maillog_file = ${root}/maillog`),
  );
  const add = await runCli("postern", ["-c", etc, "sasl-passwd", "add", "me"], { input: "pw\n" });
  assert.equal(add.code, 0, add.stderr);
  const started = await runCli("postern", ["-c", etc, "start"]);
  assert.equal(started.code, 0, started.stderr);
  const plain = await smtpHello(port);
  const ehlo = await smtpCmd(plain, "EHLO client.example");
  assert.match(ehlo, /250-STARTTLS/);
  assert.doesNotMatch(ehlo, /AUTH/);
  const { c } = await starttls(port);
  assert.match(await smtpCmd(c, "EHLO client.example"), /250-AUTH PLAIN LOGIN/);
  assert.equal(
    await smtpCmd(c, `AUTH PLAIN ${Buffer.from("\0me\0pw").toString("base64")}`),
    "235 2.7.0 Authentication successful",
  );
  let log = "";
  for (let i = 0; i < 100 && !/self-signed/.test(log); i++) {
    await sleep(50);
    log = readFileSync(join(root, "maillog"), "utf8");
  }
  assert.match(log, /using a self-signed server certificate \(CN=localhost\.localdomain\)/);
});
