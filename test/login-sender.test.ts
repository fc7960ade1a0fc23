/*
 * login-sender.test - local_login_sender_maps, as ordinary users, end to end
 *
 * DESCRIPTION
 *   A root-started instance (src/testing/submit-instance.ts, pickup outside
 *   the jail so that it can look the submitter's login name up) with
 *   local_login_sender_maps naming what nobody and a uid without an
 *   account ("uid:4242") may use. sendmail and postdrop refuse any other
 *   sender with EX_NOPERM and Postfix's message; a user who writes a
 *   maildrop file without them is stopped by pickup, which removes the
 *   file with a log line; the allowed forms (the login name, an address
 *   extension, @domain, the null sender) are delivered.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REC, encodeRecord } from "../src/global/rec-codec.js";
import { runCli } from "../src/testing/run-cli.js";
import { NOBODY, STRANGER, submitInstance, submitTestsSkip } from "../src/testing/submit-instance.js";

const skip = submitTestsSkip();

/** A maildrop file's bytes: sender, one recipient, a short message. */
function maildropFile(sender: string, rcpt: string): Buffer {
  const recs: Array<[Parameters<typeof encodeRecord>[0], string]> = [
    [REC.SENDER, sender],
    [REC.RCPT, rcpt],
    [REC.MESSAGE, ""],
    [REC.LINE, "Subject: forged"],
    [REC.LINE, ""],
    [REC.LINE, "body"],
    [REC.XTRA, ""],
    [REC.END, ""],
  ];
  return Buffer.concat(recs.map(([t, p]) => encodeRecord(t, p)));
}

test("local_login_sender_maps", async (t) => {
  assert.equal(skip, false, `these tests cannot run here: ${String(skip)}`);
  const dir = mkdtempSync(join(tmpdir(), "postern-lsm-"));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const table = join(dir, "login-senders");
  writeFileSync(table, "nobody nobody, @allowed.example, <>\nuid:4242 stranger@allowed2.example\n");
  chmodSync(table, 0o644);
  const s = await submitInstance(
    t,
    `local_login_sender_maps = texthash:${table}\nrecipient_delimiter = +\n`,
    { pickupChroot: false },
  );
  const delivered = (rcpt: string): Promise<void> =>
    s.until(`delivery to ${rcpt}`, () => s.deliveries().some((d) => d.rcpt === rcpt));

  await t.test("allowed senders: the login name, an extension, @domain, the null sender", async () => {
    const cases: Array<[string[], string]> = [
      [[], "lsm-own@one.example"],
      [["-f", "nobody+list"], "lsm-ext@one.example"],
      [["-f", "Someone@ALLOWED.example"], "lsm-domain@one.example"],
      [["-f", "<>"], "lsm-null@one.example"],
    ];
    for (const [args, rcpt] of cases) {
      const r = await s.as(NOBODY, "sendmail", [...args, rcpt], "Subject: ok\n\nx\n");
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }
    for (const [, rcpt] of cases) await delivered(rcpt);
    assert.match(s.log(), /: uid=65534 from=<nobody\+list>/);
    assert.match(s.log(), /: uid=65534 from=<>/);
    const stranger = await s.as(
      STRANGER,
      "sendmail",
      ["-f", "stranger@allowed2.example", "lsm-uid@one.example"],
      "x\n",
    );
    assert.equal(stranger.code, 0, stranger.stderr);
    await delivered("lsm-uid@one.example");
  });

  await t.test("sendmail -f with another sender: EX_NOPERM, nothing queued", async () => {
    const r = await s.as(NOBODY, "sendmail", ["-f", "root", "lsm-no@one.example"], "Subject: no\n\nx\n");
    assert.equal(r.code, 77, r.stderr);
    assert.match(r.stderr, /^sendmail: fatal: root\(65534\): not authorized to use sender='root'$/m);
    const other = await s.as(STRANGER, "sendmail", ["-f", "nobody", "lsm-no@one.example"], "x\n");
    assert.equal(other.code, 77, "nobody's patterns are not the stranger's");
    const smtp = await s.as(
      NOBODY,
      "sendmail",
      ["-bs"],
      "HELO me\r\nMAIL FROM:<root@example.org>\r\nMAIL FROM:<nobody>\r\nQUIT\r\n",
    );
    assert.match(
      smtp.stdout,
      /\r\n550 5\.7\.1 Error: not authorized to use sender='root@example\.org'\r\n250 2\.1\.0 Ok\r\n/,
    );
  });

  await t.test("postdrop refuses the sender; pickup removes a file written without postdrop", async () => {
    const pd = await runCli("postdrop", ["-r"], {
      env: { MAIL_CONFIG: s.etc },
      input: maildropFile("root", "lsm-postdrop@one.example").toString("latin1"),
      uid: NOBODY.uid,
      gid: NOBODY.gid,
    });
    assert.equal(pd.code, 77, pd.stderr);
    assert.match(pd.stderr, /postdrop: fatal: uid=65534: not authorized to use sender='root'/);
    const b64 = maildropFile("root", "lsm-forged@one.example").toString("base64");
    const w = await s.script(
      NOBODY,
      `import fs from "node:fs"; const p = process.argv[1] + "/maildrop/dddddddddddddddddddddddddddddddd";
       fs.writeFileSync(p, Buffer.from("${b64}", "base64"), { mode: 0o600, flag: "wx" }); fs.chmodSync(p, 0o640);`,
    );
    assert.equal(w.code, 0, w.stderr);
    await s.as(NOBODY, "postqueue", ["-f"]);
    await s.waitLog(
      /maildrop file dddddddd\.\.\.: uid=65534: not authorized to use sender='root'; removed/,
      20_000,
    );
    const ok = await s.as(NOBODY, "sendmail", ["lsm-after@one.example"], "x\n");
    assert.equal(ok.code, 0, ok.stderr);
    await delivered("lsm-after@one.example");
    for (const rcpt of ["lsm-no@one.example", "lsm-postdrop@one.example", "lsm-forged@one.example"])
      assert.ok(!s.deliveries().some((d) => d.rcpt === rcpt), `${rcpt} must not be delivered`);
  });
});
