/*
 * jail.test - chroot=y services, privileges and TLS keys as administrators run them
 *
 * DESCRIPTION
 *   Starts conf/master.cf as shipped, and Debian's stock master.cf as
 *   written, and checks what a user would notice: mail is accepted over
 *   SMTP (Python's smtplib, STARTTLS at TLS 1.3 with a key only root may
 *   read) and delivered; and a daemon in the jail reads no file outside
 *   the queue and its configuration, reads no root-only file once it runs
 *   as mail_owner, writes nothing outside the queue, starts no program,
 *   and still fsyncs in the queue.
 *
 *   Deviations from Postfix's defaults, each for a reason:
 *   mail_spool_directory is the test's own directory (tests never write the
 *   machine's /var/mail), and alias_maps is empty (the machine's
 *   /etc/aliases is not the test's business).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  debianMaster,
  freePort,
  LineClient,
  makeInstance,
  shippedMaster,
  maildirMessages,
  until,
  type Instance,
} from "../src/testing/instance.js";
import { makeTestCerts } from "../src/testing/tls-certs.js";
import { getUser } from "../src/util/unix-users.js";

const root = process.getuid?.() === 0;
const MAIL_OWNER = "nobody";

/** main.cf lines of every instance here: the mail spool in the test directory (see above). */
function spoolLines(dir: string): string {
  const mail = join(dir, "mail");
  mkdirSync(mail, { recursive: true });
  chmodSync(mail, 0o1777);
  return `mail_spool_directory = ${mail}/\nalias_maps =\n`;
}

/** Sends one message with Python's smtplib, with STARTTLS (TLS 1.3 at least) when tls; prints the TLS version. */
function smtplibSend(port: number, rcpt: string, tls: boolean): { code: number; out: string } {
  const script = `
import smtplib, ssl, sys
port, rcpt, tls = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        s.starttls(context=ctx)
        print(s.sock.version())
    s.sendmail("sender@example.org", [rcpt], "Subject: jail test\\r\\n\\r\\nhello from the jail test\\r\\n")
    print("accepted")
`;
  const r = spawnSync("/usr/bin/python3", ["-c", script, String(port), rcpt, tls ? "1" : "0"], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** Asks the probe service what its daemon may do. */
async function probe(inst: Instance, service: string): Promise<Record<string, unknown>> {
  const c = await LineClient.connect(join(inst.spool, "private", service));
  const line = await c.line(30_000);
  c.close();
  return JSON.parse(line) as Record<string, unknown>;
}

/** Makes an instance, lets the test write its files, starts it; it is aborted and removed afterwards. */
async function prepared(
  t: { after: (fn: () => Promise<void>) => void },
  setup: (inst: Instance) => { main: string; master: string },
): Promise<Instance> {
  const inst = makeInstance({ master: "" });
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
  });
  const { main, master } = setup(inst);
  appendFileSync(join(inst.etc, "main.cf"), main);
  inst.writeMaster(master);
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  return inst;
}

test("the shipped master.cf: jailed daemons see only the queue, yet fsync; mail is accepted and delivered", async (t) => {
  const port = await freePort();
  let key = "";
  const inst = await prepared(t, (i) => {
    const certs = makeTestCerts(i.etc);
    key = certs.rsaKey;
    chmodSync(key, 0o600);
    return {
      main: `${spoolLines(i.dir)}smtpd_tls_cert_file = ${certs.rsaCert}\nsmtpd_tls_key_file = ${key}\nsmtpd_tls_security_level = may\n`,
      // The probes: daemons on the skeleton, one jailed as the shipped services are, one not.
      master: shippedMaster(
        port,
        `probe unix - - y - 1 test-daemon.js probe ${key}\nfreeprobe unix - - n - 1 test-daemon.js probe ${key}\n`,
      ),
    };
  });

  const jailed = await probe(inst, "probe");
  const free = await probe(inst, "freeprobe");
  if (root) {
    assert.equal(jailed["uid"], getUser(MAIL_OWNER)?.uid, "the jailed daemon runs as mail_owner");
    assert.equal(jailed["secret"], "EACCES", "a root-only key in the jail is unreadable after the drop");
    assert.equal(free["secret"], "EACCES", "and so it is for an unjailed daemon");
    assert.equal(jailed["node"], "EACCES", "the daemon cannot start another Node");
  }
  assert.equal(jailed["passwd"], "ENOENT", "/etc/passwd is not in the jail");
  assert.equal(jailed["shadow"], "ENOENT", "/etc/shadow is not in the jail");
  assert.equal(jailed["proc"], "ENOENT", "/proc is not in the jail");
  assert.match(String(jailed["writeConfig"]), /^(EROFS|EACCES)$/, "the configuration is read-only");
  assert.match(
    String(jailed["writeTmp"]),
    /^(ENOENT|EACCES|EROFS)$/,
    "nothing outside the queue is writable",
  );
  assert.equal(jailed["fsync"], "ok", "fsync works in the queue");
  assert.equal(jailed["shell"], "ENOENT", "there is no shell in the jail");
  assert.equal(free["passwd"], "ok", "an unjailed daemon sees the system");

  const sent = smtplibSend(port, "root@localhost", true);
  assert.equal(sent.code, 0, sent.out);
  assert.match(sent.out, /^TLSv1\.3$/m);
  await until("delivery to root's Maildir", () => maildirMessages(inst.dir, "root").length === 1, { inst });
  assert.match(maildirMessages(inst.dir, "root")[0] ?? "", /hello from the jail test/);
});

test("Debian's stock master.cf as written (chroot=y): STARTTLS at TLS 1.3 with a root-only key; local delivery", async (t) => {
  const port = await freePort();
  const master = debianMaster(port);
  assert.notEqual(master, null, "Debian's postfix package (its stock master.cf) is installed by .ci/run");
  const inst = await prepared(t, (i) => {
    const certs = makeTestCerts(i.etc);
    chmodSync(certs.ecKey, 0o600);
    return {
      main: `${spoolLines(i.dir)}myhostname = mx.example.org\nmydestination = $myhostname, localhost\nsmtpd_tls_cert_file = ${certs.ecCert}\nsmtpd_tls_key_file = ${certs.ecKey}\nsmtpd_tls_security_level = may\n`,
      master: master ?? "",
    };
  });
  const sent = smtplibSend(port, "root@localhost", true);
  assert.equal(sent.code, 0, sent.out);
  assert.match(sent.out, /^TLSv1\.3$/m);
  await until("delivery to root's Maildir", () => maildirMessages(inst.dir, "root").length === 1, { inst });
  // An unknown local user is refused: local_recipient_maps goes through proxymap from the jailed smtpd.
  const unknown = smtplibSend(port, "no-such-user-here@localhost", false);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.out, /550.*User unknown in local recipient table/);
  assert.doesNotMatch(inst.log(), /fatal|Access to this API|Temporary lookup failure/);
});
