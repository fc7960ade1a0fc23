/*
 * postqueue.test - mailq, postqueue, the flush service and qshape end to end
 *
 * DESCRIPTION
 *   One root-started instance (src/testing/submit-instance.ts). What a user
 *   would notice: mailq works for an unprivileged user and looks like
 *   Postfix's (IDs with "!" for held mail, sizes, arrival times, senders,
 *   recipients, the footer); postqueue -j prints JSON lines; postqueue -f,
 *   -s and -i deliver deferred mail at once instead of at its retry time
 *   (and sendmail -qR, -qI and -q, which run them);
 *   qshape shows the age buckets; and the authorized_*_users lists are
 *   enforced by the services themselves, so a user who bypasses the
 *   commands gets nothing more.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installRoot } from "../src/global/install-paths.js";
import { encodeRecord, REC } from "../src/global/rec-codec.js";
import {
  NOBODY,
  submitInstance,
  submitTestsSkip,
  type SubmitInstance,
} from "../src/testing/submit-instance.js";

const skip = submitTestsSkip();

/** The queue IDs in a queue directory (hash levels walked). */
function queueIds(s: SubmitInstance, queue: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of existsSync(d) ? readdirSync(d) : []) {
      if (statSync(join(d, n)).isDirectory()) walk(join(d, n));
      else out.push(n);
    }
  };
  walk(join(s.spool, queue));
  return out;
}

/** Posts a message as nobody; waits until pickup took it. */
async function post(s: SubmitInstance, args: string[], text: string): Promise<void> {
  const r = await s.as(NOBODY, "sendmail", args, text);
  assert.equal(r.code, 0, r.stderr);
}

/** A well-formed maildrop file. */
function maildropFile(rcpt: string): Buffer {
  const recs: Array<[Parameters<typeof encodeRecord>[0], string]> = [
    [REC.SENDER, "nobody"],
    [REC.RCPT, rcpt],
    [REC.MESSAGE, ""],
    [REC.LINE, "Subject: direct"],
    [REC.XTRA, ""],
    [REC.END, ""],
  ];
  return Buffer.concat(recs.map(([t, p]) => encodeRecord(t, p)));
}

test("queue tools", async (t) => {
  assert.equal(skip, false, `these tests cannot run here: ${String(skip)}`);
  const hcDir = mkdtempSync(join(tmpdir(), "postern-hc-"));
  chmodSync(hcDir, 0o755);
  const hc = join(hcDir, "header_checks");
  writeFileSync(hc, "/^Subject: hold me/ HOLD\n", { mode: 0o644 });
  t.after(() => rmSync(hcDir, { recursive: true, force: true }));
  const s = await submitInstance(t, `fast_flush_domains = flush.example\nheader_checks = regexp:${hc}\n`);
  writeFileSync(`${s.record}.later`, "");

  await t.test("mailq shows the queue to an unprivileged user, in Postfix's format", async () => {
    const empty = await s.as(NOBODY, "mailq", []);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, "Mail queue is empty\n");
    await post(
      s,
      ["-f", "sender@example.org", "defer-1@slow.example", "later-1@flush.example"],
      "Subject: deferred\n\nx\n",
    );
    await post(s, ["held@hold.example"], "Subject: hold me\n\nx\n");
    await s.until(
      "a deferred and a held message",
      () => queueIds(s, "deferred").length === 1 && queueIds(s, "hold").length === 1,
    );
    const r = await s.as(NOBODY, "mailq", []);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assert.equal(lines[0], "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------");
    const deferredId = queueIds(s, "deferred")[0] ?? "";
    const heldId = queueIds(s, "hold")[0] ?? "";
    const entry = (id: string, status: string, sender: string): RegExp =>
      new RegExp(
        `^${id}${status.replace("!", "\\!")} +\\d+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d  ${sender}$`,
        "m",
      );
    assert.match(r.stdout, entry(deferredId, "", "sender@example\\.org"));
    assert.match(r.stdout, entry(heldId, "!", "nobody@\\S+"));
    assert.match(r.stdout, /^ {41}defer-1@slow\.example$/m);
    assert.match(r.stdout, /^ {41}later-1@flush\.example$/m);
    assert.match(r.stdout, /^ {41}held@hold\.example$/m);
    assert.match(r.stdout, /\n\n-- \d+ Kbytes in 2 Requests\.\n$/);
  });

  await t.test("postqueue -j prints one JSON object per message", async () => {
    const r = await s.as(NOBODY, "postqueue", ["-j"]);
    assert.equal(r.code, 0, r.stderr);
    const objs = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(objs.length, 2);
    for (const o of objs)
      assert.deepEqual(Object.keys(o), [
        "queue_name",
        "queue_id",
        "arrival_time",
        "message_size",
        "forced_expire",
        "sender",
        "recipients",
      ]);
    const held = objs.find((o) => o["queue_name"] === "hold");
    assert.ok(held !== undefined);
    assert.match(String(held["sender"]), /^nobody@/);
    assert.equal(held["forced_expire"], false);
    assert.ok(Math.abs(Number(held["arrival_time"]) - Date.now() / 1000) < 120);
    assert.deepEqual(held["recipients"], [
      { orig_address: "held@hold.example", address: "held@hold.example" },
    ]);
  });

  await t.test("qshape deferred shows the queue by domain and age", async () => {
    const r = await s.as(null, "qshape", ["-c", s.etc, "deferred"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assert.match(lines[0] ?? "", /^ +T +5 +10 +20 +40 +80 +160 +320 +640 +1280 +1280\+$/);
    assert.match(r.stdout, /^ +TOTAL +2 +2 +0 +0 +0 +0 +0 +0 +0 +0 +0$/m);
    assert.match(r.stdout, /^ +slow\.example +1 +1( +0){9}$/m);
    assert.match(r.stdout, /^ +flush\.example +1 +1( +0){9}$/m);
    const senders = await s.as(null, "qshape", ["-c", s.etc, "-s", "deferred", "hold"]);
    assert.match(senders.stdout, /^ +example\.org +1 +1( +0){9}$/m);
    const host = / nobody@(\S+)$/m.exec((await s.as(null, "mailq", [])).stdout)?.[1] ?? "";
    assert.match(senders.stdout, new RegExp(`^ +${host.replace(/\./g, "\\.")} +1 +1( +0){9}$`, "m"));
  });

  await t.test("postqueue -s, -i and -f deliver deferred mail at once", async () => {
    rmSync(`${s.record}.later`);
    const ineligible = await s.as(NOBODY, "postqueue", ["-s", "slow.example"]);
    assert.equal(ineligible.code, 69);
    assert.match(ineligible.stderr, /Flush service is not configured for destination "slow\.example"/);
    const site = await s.as(NOBODY, "postqueue", ["-s", "flush.example"]);
    assert.equal(site.code, 0, site.stderr);
    await s.until(
      "later-1 delivered",
      () => s.deliveries().some((d) => d.rcpt === "later-1@flush.example"),
      10_000,
    );
    writeFileSync(`${s.record}.later`, "");
    await post(s, ["later-2@one.example"], "Subject: one\n\nx\n");
    await post(s, ["later-3@two.example"], "Subject: two\n\nx\n");
    await s.until("two more deferred", () => queueIds(s, "deferred").length === 3);
    rmSync(`${s.record}.later`);
    await s.until("a quiet queue", () => queueIds(s, "active").length === 0);
    const one = s.log().match(/(\w+): to=<later-2@one\.example>.*status=deferred/)?.[1] ?? "";
    const byId = await s.as(NOBODY, "postqueue", ["-i", one]);
    assert.equal(byId.code, 0, byId.stderr);
    await s.until(
      "later-2 delivered",
      () => s.deliveries().some((d) => d.rcpt === "later-2@one.example"),
      10_000,
    );
    assert.ok(!s.deliveries().some((d) => d.rcpt === "later-3@two.example"), "-i flushed only one message");
    const all = await s.as(NOBODY, "postqueue", ["-f"]);
    assert.equal(all.code, 0, all.stderr);
    await s.until(
      "later-3 delivered",
      () => s.deliveries().some((d) => d.rcpt === "later-3@two.example"),
      10_000,
    );
  });

  await t.test(
    "sendmail -qR, -qI and -q flush as postqueue -s, -i and -f; -qS and -q<interval>",
    async () => {
      writeFileSync(`${s.record}.later`, "");
      await post(s, ["later-4@flush.example"], "Subject: qR\n\nx\n");
      await post(s, ["later-5@one.example"], "Subject: qI\n\nx\n");
      await post(s, ["later-6@two.example"], "Subject: q\n\nx\n");
      const deferred = (rcpt: string): string =>
        new RegExp(`(\\w+): to=<${rcpt.replace(/\./g, "\\.")}>.*status=deferred`).exec(s.log())?.[1] ?? "";
      await s.until("three deferred", () =>
        ["later-4@flush.example", "later-5@one.example", "later-6@two.example"].every(
          (r) => deferred(r) !== "",
        ),
      );
      rmSync(`${s.record}.later`);
      await s.until("a quiet queue", () => queueIds(s, "active").length === 0);
      const delivered = (rcpt: string): boolean => s.deliveries().some((d) => d.rcpt === rcpt);
      const qS = await s.as(NOBODY, "sendmail", ["-qSflush.example"]);
      assert.equal(qS.code, 64);
      assert.match(qS.stderr, /sendmail: fatal: -qS is not implemented/);
      const interval = await s.as(NOBODY, "sendmail", ["-q30m"]);
      assert.equal(interval.code, 0, interval.stderr);
      const withRcpt = await s.as(NOBODY, "sendmail", ["-qRflush.example", "someone@one.example"]);
      assert.equal(withRcpt.code, 64);
      assert.match(withRcpt.stderr, /flush site requires no recipient/);
      const qR = await s.as(NOBODY, "sendmail", ["-qRflush.example"]);
      assert.equal(qR.code, 0, qR.stderr);
      await s.until("later-4 delivered", () => delivered("later-4@flush.example"), 10_000);
      assert.ok(
        !delivered("later-5@one.example") && !delivered("later-6@two.example"),
        "-qR flushed one site",
      );
      const qI = await s.as(NOBODY, "sendmail", [`-qI${deferred("later-5@one.example")}`]);
      assert.equal(qI.code, 0, qI.stderr);
      await s.until("later-5 delivered", () => delivered("later-5@one.example"), 10_000);
      assert.ok(!delivered("later-6@two.example"), "-qI flushed one message");
      const q = await s.as(NOBODY, "sendmail", ["-q"]);
      assert.equal(q.code, 0, q.stderr);
      await s.until("later-6 delivered", () => delivered("later-6@two.example"), 10_000);
    },
  );

  await t.test("the services enforce authorized_*_users, not only the commands", async () => {
    const pc = await s.as(null, "postconf", [
      "-c",
      s.etc,
      "-e",
      "authorized_submit_users = root",
      "authorized_mailq_users = root",
      "authorized_flush_users = root",
    ]);
    assert.equal(pc.code, 0, pc.stderr);
    const jailed = "0123456789abcdef0123456789abcde0";
    writeFileSync(join(s.spool, "maildrop", jailed), maildropFile("jailed@acl.example"), { mode: 0o640 });
    chownSync(join(s.spool, "maildrop", jailed), NOBODY.uid, statSync(join(s.spool, "maildrop")).gid);
    assert.equal((await s.postern("reload")).code, 0);
    await s.until("the reload", () => /reload -- version/.test(s.log()));
    await s.as(null, "postqueue", ["-f"]);
    await s.waitLog(
      /uid=65534: authorized_submit_users: .*the chroot jail has no account database.*; will try again/,
    );
    assert.ok(
      existsSync(join(s.spool, "maildrop", jailed)),
      "a jailed pickup that cannot decide keeps the file",
    );
    s.writeMaster(
      readFileMaster(s)
        .replace(/^pickup\s+unix\s+n\s+-\s+y/m, "pickup unix n - n")
        .replace(/^showq\s+unix\s+n\s+-\s+y/m, "showq unix n - n")
        .replace(/^flush\s+unix\s+n\s+-\s+y/m, "flush unix n - n"),
    );
    assert.equal((await s.postern("reload")).code, 0);
    await s.until("the second reload", () => (s.log().match(/reload -- version/g) ?? []).length === 2);
    await s.as(null, "postqueue", ["-f"]);
    await s.waitLog(/uid=65534: User nobody\(65534\) is not allowed to submit mail; removed/);

    const submit = await s.as(NOBODY, "sendmail", ["x@acl.example"], "x\n");
    assert.equal(submit.code, 77);
    assert.match(submit.stderr, /^sendmail: fatal: User nobody\(65534\) is not allowed to submit mail$/m);
    const mailq = await s.as(NOBODY, "mailq", []);
    assert.equal(mailq.code, 77);
    assert.match(mailq.stderr, /User nobody\(65534\) is not allowed to view the mail queue/);
    const flush = await s.as(NOBODY, "postqueue", ["-s", "flush.example"]);
    assert.equal(flush.code, 77);
    const dist = join(installRoot(), "dist", "src", "global");
    const direct = await s.script(
      NOBODY,
      `import { showqOpen } from "${dist}/showq-client.js";
       import { flushRequest } from "${dist}/flush-client.js";
       const q = await showqOpen(process.argv[1]);
       console.log(q.ok ? "listing" : q.code + ": " + q.reason);
       const f = await flushRequest(process.argv[1], { request: "send_site", site: "flush.example" });
       console.log(f.status + ": " + f.reason);`,
    );
    assert.equal(direct.code, 0, direct.stderr);
    assert.match(direct.stdout, /^EDENY: User nobody\(65534\) is not allowed to view the mail queue$/m);
    assert.match(direct.stdout, /^deny: User nobody\(65534\) is not allowed to flush the mail queue$/m);
    const root = await s.as(null, "mailq", []);
    assert.equal(root.code, 0, root.stderr);
  });
});

/** The instance's master.cf text. */
function readFileMaster(s: SubmitInstance): string {
  return readFileSync(join(s.etc, "master.cf"), "utf8");
}
