/*
 * submit.test - local submission end to end: sendmail, postdrop, pickup, the maildrop's defences
 *
 * DESCRIPTION
 *   One root-started instance (src/testing/submit-instance.ts); commands
 *   run as unprivileged users. What a user would notice: mail posted with
 *   "sendmail -t" reaches To, Cc and Bcc recipients and nobody sees the
 *   Bcc header; the invocations of PHP's mail(), cron and logwatch work;
 *   "sendmail -bs" speaks SMTP; failures come back on standard error with
 *   a sysexits status; a user can neither read nor remove another user's
 *   submission nor pass as another uid; a malformed file is removed with a
 *   log line and pickup goes on.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REC, encodeRecord } from "../src/global/rec-codec.js";
import { runCli } from "../src/testing/run-cli.js";
import { NOBODY, STRANGER, submitInstance, submitTestsSkip } from "../src/testing/submit-instance.js";

const skip = submitTestsSkip();

test("local submission", async (t) => {
  assert.equal(skip, false, `these tests cannot run here: ${String(skip)}`);
  const s = await submitInstance(t);

  await t.test("sendmail -t delivers to To, Cc and Bcc; the Bcc header is gone", async () => {
    const msg = [
      "From: Nobody <nobody@example.org>",
      "To: show-to@one.example",
      "Cc: cc@two.example",
      "Bcc: hidden@three.example",
      "Subject: extract",
      "",
      "hello",
      "",
    ].join("\n");
    const r = await s.as(NOBODY, "sendmail", ["-t", "-i"], msg);
    assert.equal(r.code, 0, r.stderr);
    await s.until(
      "three deliveries",
      () => s.deliveries().filter((d) => /@(one|two|three)\.example$/.test(d.rcpt)).length === 3,
    );
    const rcpts = s
      .deliveries()
      .map((d) => d.rcpt)
      .sort();
    assert.deepEqual(rcpts, ["cc@two.example", "hidden@three.example", "show-to@one.example"]);
    const delivered = readFileSync(`${s.record}.show-to@one.example`, "utf8");
    assert.doesNotMatch(delivered, /^Bcc:/im);
    assert.match(delivered, /^To: show-to@one\.example$/m);
    assert.match(delivered, /^Received: by \S+ \(Postern, from userid 65534\)$/m);
    assert.match(s.log(), /: uid=65534 from=<nobody>/);
  });

  await t.test("PHP mail(), cron, logwatch and plain invocations", async () => {
    const before = s.deliveries().length;
    const php = await s.as(
      NOBODY,
      "sendmail",
      ["-t", "-i"],
      "To: php@web.example\r\nSubject: php\r\n\r\nline\r\n.\r\nafter the dot\r\n",
    );
    assert.equal(php.code, 0, php.stderr);
    const cron = await s.as(
      NOBODY,
      "sendmail",
      ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "cron@jobs.example"],
      "Subject: Cron <nobody@host> date\n\nThu Nov 20\n",
    );
    assert.equal(cron.code, 0, cron.stderr);
    const logwatch = await s.as(
      NOBODY,
      "sendmail",
      ["-t"],
      "To: logwatch@ops.example\nFrom: logwatch@host\nSubject: Logwatch\n\nreport\n",
    );
    assert.equal(logwatch.code, 0, logwatch.stderr);
    const oif = await s.as(
      NOBODY,
      "sendmail",
      ["-oi", "-f", "app@web.example", "oi-f@web.example"],
      "Subject: x\n\n.\nbody\n",
    );
    assert.equal(oif.code, 0, oif.stderr);
    const plain = await s.as(
      NOBODY,
      "sendmail",
      ["a@plain.example", "Bee <b@plain.example>, c@plain.example"],
      "Subject: x\n\nbody\n.\nnot read\n",
    );
    assert.equal(plain.code, 0, plain.stderr);
    await s.until("seven more deliveries", () => s.deliveries().length === before + 7);
    const got = s
      .deliveries()
      .slice(before)
      .map((d) => d.rcpt)
      .sort();
    assert.deepEqual(got, [
      "a@plain.example",
      "b@plain.example",
      "c@plain.example",
      "cron@jobs.example",
      "logwatch@ops.example",
      "oi-f@web.example",
      "php@web.example",
    ]);
    assert.match(s.log(), /: uid=65534 from=<app@web\.example>/);
  });

  await t.test("long lines and bare LF input arrive intact", async () => {
    const long = "x".repeat(10_000);
    const r = await s.as(NOBODY, "sendmail", ["show-long@long.example"], `Subject: long\n\n${long}\nend\n`);
    assert.equal(r.code, 0, r.stderr);
    await s.until("the long message", () => s.deliveries().some((d) => d.rcpt === "show-long@long.example"));
    const text = readFileSync(`${s.record}.show-long@long.example`, "utf8");
    assert.ok(text.includes(`\n${long}\nend\n`), "the 10,000-byte line is one line");
  });

  await t.test("sendmail -bs speaks SMTP on standard input and output", async () => {
    const session = [
      "EHLO client.example",
      "MAIL FROM:<smtp-user@example.org> BODY=8BITMIME",
      "RCPT TO:<show-bs@smtp.example>",
      "DATA",
      "Subject: via -bs",
      "",
      "..leading dot",
      ".",
      "QUIT",
      "",
    ].join("\r\n");
    const r = await s.as(NOBODY, "sendmail", ["-bs"], session);
    assert.equal(r.code, 0, r.stderr);
    const codes = r.stdout
      .split("\r\n")
      .filter((l) => l !== "")
      .map((l) => l.slice(0, 4));
    assert.deepEqual(codes, [
      "220 ",
      "250-",
      "250-",
      "250-",
      "250-",
      "250-",
      "250 ",
      "250 ",
      "250 ",
      "354 ",
      "250 ",
      "221 ",
    ]);
    assert.match(r.stdout, /250 2\.0\.0 Ok: queued/);
    await s.until("the SMTP message", () => s.deliveries().some((d) => d.rcpt === "show-bs@smtp.example"));
    assert.match(s.log(), /: uid=65534 from=<smtp-user@example\.org>/);
    const text = readFileSync(`${s.record}.show-bs@smtp.example`, "utf8");
    assert.match(text, /^\.leading dot$/m, "the transparency dot is removed");
  });

  await t.test("failures are reported with sysexits status, nothing is queued", async () => {
    const none = await s.as(NOBODY, "sendmail", ["-t"], "Subject: nobody to send to\n\nx\n");
    assert.equal(none.code, 64);
    assert.match(
      none.stderr,
      /^sendmail: fatal: nobody\(65534\): No recipient addresses found in message header$/m,
    );
    const noArgs = await s.as(NOBODY, "sendmail", [], "Subject: x\n\nx\n");
    assert.equal(noArgs.code, 64);
    assert.match(
      noArgs.stderr,
      /Recipient addresses must be specified on the command line or via the -t option/,
    );
    const bad = await s.as(NOBODY, "sendmail", ["-Bfoo", "x@y.example"], "");
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /-B option needs 8BITMIME or 7BIT/);
    const noQueue = await s.as(NOBODY, "sendmail", ["-C", "/nonexistent", "x@y.example"], "x\n");
    assert.notEqual(noQueue.code, 0);
    assert.match(noQueue.stderr, /^sendmail: fatal: /m);
  });

  await t.test("postdrop takes a well-formed maildrop file and refuses a malformed one", async () => {
    const recs = (list: Array<[number, string]>): string =>
      Buffer.concat(
        list.map(([type, p]) => encodeRecord(type as Parameters<typeof encodeRecord>[0], p)),
      ).toString("latin1");
    const good = recs([
      [REC.SENDER, "postdrop-user@example.org"],
      [REC.RCPT, "pd@drop.example"],
      [REC.MESSAGE, ""],
      [REC.LINE, "Subject: postdrop"],
      [REC.LINE, ""],
      [REC.LINE, "body"],
      [REC.XTRA, ""],
      [REC.END, ""],
    ]);
    const ok = await runCli("postdrop", ["-r"], {
      env: { MAIL_CONFIG: s.etc },
      input: good,
      uid: NOBODY.uid,
      gid: NOBODY.gid,
    });
    assert.equal(ok.code, 0, ok.stderr);
    await s.until("the postdrop message", () => s.deliveries().some((d) => d.rcpt === "pd@drop.example"));
    const broken = good.slice(0, good.length - 2);
    const bad = await runCli("postdrop", [], {
      env: { MAIL_CONFIG: s.etc },
      input: broken,
      uid: NOBODY.uid,
      gid: NOBODY.gid,
    });
    assert.equal(bad.code, 65, bad.stderr);
    assert.match(bad.stderr, /postdrop: fatal: uid=65534: malformed input: /);
  });

  await t.test("a user can neither list, read, remove nor rename another user's submission", async () => {
    const name = "0123456789abcdef0123456789abcdef";
    const made = await s.script(
      NOBODY,
      `import { writeFileSync } from "node:fs"; writeFileSync(process.argv[1] + "/maildrop/${name}", "not yet complete", { mode: 0o600, flag: "wx" });`,
    );
    assert.equal(made.code, 0, made.stderr);
    const probe = await s.script(
      STRANGER,
      `import fs from "node:fs";
       const d = process.argv[1] + "/maildrop";
       const p = d + "/${name}";
       const tryIt = (what, fn) => { try { fn(); console.log(what + " ok"); } catch (e) { console.log(what + " " + e.code); } };
       tryIt("list", () => fs.readdirSync(d));
       tryIt("read", () => fs.readFileSync(p));
       tryIt("write", () => fs.writeFileSync(p, "x"));
       tryIt("remove", () => fs.unlinkSync(p));
       tryIt("rename", () => fs.renameSync(p, d + "/fedcba9876543210fedcba9876543210"));
       tryIt("chown", () => fs.chownSync(p, 4242, 4242));`,
    );
    assert.equal(probe.code, 0, probe.stderr);
    assert.deepEqual(probe.stdout.trim().split("\n"), [
      "list EACCES",
      "read EACCES",
      "write EACCES",
      "remove EPERM",
      "rename EPERM",
      "chown EPERM",
    ]);
    const ready = await s.script(
      NOBODY,
      `import fs from "node:fs"; fs.chmodSync(process.argv[1] + "/maildrop/${name}", 0o640);`,
    );
    assert.equal(ready.code, 0, ready.stderr);
    const again = await s.script(
      STRANGER,
      `import fs from "node:fs"; try { fs.readFileSync(process.argv[1] + "/maildrop/${name}"); console.log("read ok"); } catch (e) { console.log("read " + e.code); }`,
    );
    assert.match(
      again.stdout,
      /^read (EACCES|ENOENT)$/m,
      "a complete file is readable only by its owner and pickup",
    );
    await s.as(NOBODY, "postqueue", ["-f"]);
    await s.waitLog(/maildrop file 01234567\.\.\.: uid=65534: malformed maildrop file: .*; removed/);
  });

  await t.test("the submitter is the file's owner, whatever the file says", async () => {
    const body = Buffer.concat(
      (
        [
          [REC.SENDER, "root"],
          [REC.RCPT, "show-forged@forge.example"],
          [REC.MESSAGE, ""],
          [REC.LINE, "Received: by host (Postern, from userid 0)"],
          [REC.LINE, "Subject: I am root"],
          [REC.LINE, ""],
          [REC.LINE, "trust me"],
          [REC.XTRA, ""],
          [REC.END, ""],
        ] as Array<[Parameters<typeof encodeRecord>[0], string]>
      ).map(([t, p]) => encodeRecord(t, p)),
    ).toString("base64");
    const w = await s.script(
      STRANGER,
      `import fs from "node:fs"; const p = process.argv[1] + "/maildrop/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
       fs.writeFileSync(p, Buffer.from("${body}", "base64"), { mode: 0o600, flag: "wx" }); fs.chmodSync(p, 0o640);`,
    );
    assert.equal(w.code, 0, w.stderr);
    await s.as(NOBODY, "postqueue", ["-f"]);
    await s.until("the forged message", () =>
      s.deliveries().some((d) => d.rcpt === "show-forged@forge.example"),
    );
    assert.match(s.log(), /: uid=4242 from=<root>/);
    const text = readFileSync(`${s.record}.show-forged@forge.example`, "utf8");
    const received = text.split("\n").filter((l) => l.startsWith("Received:"));
    assert.match(received[0] ?? "", /from userid 4242\)$/, "pickup's own Received: header comes first");
  });

  await t.test("a file renamed or linked into the maildrop is refused", async () => {
    const outside = join(s.spool, "outside");
    writeFileSync(outside, "whatever");
    chownSync(outside, NOBODY.uid, NOBODY.gid);
    chmodSync(outside, 0o640);
    renameSync(outside, join(s.spool, "maildrop", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
    await s.as(NOBODY, "postqueue", ["-f"]);
    await s.waitLog(
      /maildrop file bbbbbbbb\.\.\.: uid=65534: file was not created in the maildrop directory; removed/,
    );
    const link = await s.script(
      STRANGER,
      `import fs from "node:fs"; const own = "/tmp/postern-link-" + process.pid;
       fs.writeFileSync(own, "x", { mode: 0o640 });
       fs.linkSync(own, process.argv[1] + "/maildrop/cccccccccccccccccccccccccccccccc"); fs.unlinkSync(own);`,
    );
    assert.equal(link.code, 0, link.stderr);
    await s.as(NOBODY, "postqueue", ["-f"]);
    await s.waitLog(
      /maildrop file cccccccc\.\.\.: uid=4242: file (has 2 links|was not created in the maildrop directory); removed/,
    );
  });
});
