/*
 * postsuper.test - postsuper as a real process on a queue tree owned by mail_owner
 *
 * DESCRIPTION
 *   Builds a queue directory as master does (owned by mail_owner "nobody"
 *   when the test runs as root), fills it with queue files, and checks the
 *   by-ID operations (-d, -h, -H, -r, "-" from standard input), ALL, the
 *   structure repair (-s: wrong hash directory, name/inode mismatch with
 *   its logs, bogus names, corrupt files), the temporary-file rule (-p, -s,
 *   never a live writer's file), the log lines on standard error and in
 *   maillog_file, ownership of what postsuper makes, and the exit status.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, type CliResult } from "../../testing/run-cli.js";
import { getUser } from "../../util/unix-users.js";
import { Config } from "../../global/config.js";
import { QUEUE_FLAG } from "../../global/queue-corrupt.js";
import { makeQueueTree } from "../../global/queue-dirs.js";
import { QueueFileWriter, readEnvelope } from "../../global/queue-file.js";
import { QueuePaths, type QueueName } from "../../global/queue-path.js";

const ROOT = process.getuid?.() === 0;
const OWNER = ROOT ? getUser("nobody") : null;
let dir = "";
let etc = "";
let spool = "";
let paths: QueuePaths;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "postsuper-test-"));
  chmodSync(dir, 0o755);
  etc = join(dir, "etc");
  spool = join(dir, "spool");
  mkdirSync(etc);
  const main = [
    `queue_directory = ${spool}`,
    "mail_owner = nobody",
    `maillog_file = ${join(dir, "maillog")}`,
    "",
  ].join("\n");
  writeFileSync(join(etc, "main.cf"), main);
  makeQueueTree(spool, OWNER);
  paths = new QueuePaths(Config.fromText(etc, main));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Gives a path (and, for a directory, what is in it) to mail_owner, as if a daemon had made it. */
function own(path: string): void {
  if (OWNER === null) return;
  chownSync(path, OWNER.uid, OWNER.gid);
  if (statSync(path).isDirectory()) for (const n of readdirSync(path)) own(join(path, n));
}

/** Queues a message and moves it to a queue; returns its ID. */
async function queue(q: QueueName = "incoming", lines = 3): Promise<string> {
  const w = await QueueFileWriter.create(paths, false);
  w.sender("alice@example.com");
  w.rcpt({ address: "bob@example.net" });
  w.beginContent();
  await w.line(Buffer.from("Subject: x"));
  await w.line(Buffer.from(""));
  for (let i = 0; i < lines; i++) await w.line(Buffer.from(`line ${i}`));
  await w.commit();
  if (q !== "incoming") assert.ok(paths.move(w.id, "incoming", q));
  for (const n of ["incoming", q]) own(join(spool, n));
  return w.id;
}

/** Writes a per-message log file (defer/, bounce/, trace/) for a queue ID. */
function logFile(q: QueueName, id: string): void {
  mkdirSync(paths.dir(q, id), { recursive: true });
  writeFileSync(paths.path(q, id), "log");
  own(join(spool, q));
}

/** Runs postsuper with this test's configuration. */
function postsuper(args: string[], input?: string): Promise<CliResult> {
  return runCli("postsuper", ["-c", etc, ...args], input !== undefined ? { input } : {});
}

/** The queue a message is in, or null. */
function whereIs(id: string): QueueName | null {
  for (const q of ["incoming", "active", "deferred", "hold", "corrupt", "maildrop"] as const)
    if (existsSync(paths.path(q, id))) return q;
  return null;
}

/** Writes a temporary file as cleanup names them, with a modification time in the past. */
function tempFile(pid: number, ageSec: number): string {
  const p = join(spool, "incoming", `.${pid}.1.x${pid}${ageSec}`);
  writeFileSync(p, "partial");
  const t = new Date(Date.now() - ageSec * 1000);
  utimesSync(p, t, t);
  own(p);
  return p;
}

/** A process ID that is no longer in use. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "0"]);
  return r.pid ?? 999_999;
}

test("-d, -h, -H and -r act on named messages and log as Postfix; files stay mail_owner's", async () => {
  const [a, b, c] = [await queue(), await queue("deferred"), await queue("active")];
  let r = await postsuper(["-h", a, "-h", b]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stderr,
    `postsuper: ${a}: placed on hold\npostsuper: ${b}: placed on hold\npostsuper: Placed on hold: 2 messages\n`,
  );
  assert.equal(whereIs(a), "hold");
  if (OWNER !== null) assert.equal(statSync(paths.path("hold", a)).uid, OWNER.uid);
  r = await postsuper(["-H", a]);
  assert.equal(r.stderr, `postsuper: ${a}: released from hold\npostsuper: Released from hold: 1 message\n`);
  assert.equal(whereIs(a), "deferred");
  if (OWNER !== null) assert.equal(statSync(paths.dir("deferred", a)).uid, OWNER.uid, "hash directory owner");
  r = await postsuper(["-r", b]);
  assert.equal(r.stderr, `postsuper: ${b}: requeued\npostsuper: Requeued: 1 message\n`);
  assert.equal(whereIs(b), "incoming");
  const env = await readEnvelope(paths.path("incoming", b));
  assert.ok(env.ok && (env.env.flags & QUEUE_FLAG.REQUEUE) !== 0, "requeue mark set");
  logFile("defer", c);
  r = await postsuper(["-d", c]);
  assert.equal(r.stderr, `postsuper: ${c}: removed\npostsuper: Deleted: 1 message\n`);
  assert.equal(whereIs(c), null);
  assert.ok(!existsSync(paths.path("defer", c)), "the defer log goes too");
  assert.match(
    readFileSync(join(dir, "maillog"), "utf8"),
    new RegExp(`postfix/postsuper\\[\\d+\\]: ${c}: removed\\n`),
  );
  r = await postsuper(["-d", "ABCDEF01234", "-d", "bad/id"]);
  assert.equal(r.stderr, "postsuper: warning: invalid mail queue id: bad/id\n");
  for (const id of [a, b]) await postsuper(["-d", id]);
});

test("-d - takes IDs from standard input; ALL acts on every message", async () => {
  await postsuper(["-d", "ALL"]);
  const ids = [await queue(), await queue("hold"), await queue("deferred")];
  const r = await postsuper(["-d", "-"], `${ids[0]}\n${ids[1]}\r\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Deleted: 2 messages\n$/);
  assert.equal(whereIs(ids[2] ?? ""), "deferred");
  const more = [await queue(), await queue("active")];
  const h = await postsuper(["-h", "ALL"]);
  assert.match(h.stderr, /^postsuper: Placed on hold: 3 messages\n$/);
  for (const id of [...more, ids[2] ?? ""]) assert.equal(whereIs(id), "hold");
  const d = await postsuper(["-d", "ALL"]);
  assert.equal(d.stderr, "postsuper: Deleted: 3 messages\n");
});

test("-s repairs the structure; -p purges temporary files whose writer is gone, never a live one's", async () => {
  await postsuper(["-d", "ALL"]);
  const misplaced = await queue("deferred");
  mkdirSync(join(spool, "deferred", "Z", "Q"), { recursive: true });
  renameSync(paths.path("deferred", misplaced), join(spool, "deferred", "Z", "Q", misplaced));
  const src = await queue();
  const wrong = `${src.slice(0, 5)}FFFFFF`;
  copyFileSync(paths.path("incoming", src), paths.path("incoming", wrong));
  logFile("defer", wrong);
  copyFileSync(paths.path("incoming", src), join(spool, "incoming", "restored-file"));
  const broken = await queue("incoming", 40);
  truncateSync(paths.path("incoming", broken), 300);
  const dead = deadPid();
  const [liveOld, deadYoung, deadOld] = [
    tempFile(process.pid, 7200),
    tempFile(dead, 10),
    tempFile(dead, 7200),
  ];
  own(spool);
  const s = await postsuper(["-s"]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(
    s.stderr,
    new RegExp(
      `^postsuper: warning: ${broken}: queue file incoming/${broken} moved to corrupt: .* at offset \\d+$`,
      "m",
    ),
  );
  assert.match(s.stderr, /^postsuper: Renamed to match inode number: 1 message$/m);
  assert.match(s.stderr, /^postsuper: warning: QUEUE FILE NAMES WERE CHANGED TO MATCH INODE NUMBERS$/m);
  assert.match(s.stderr, /^postsuper: \w+: bogus file name incoming\/restored-file renamed$/m);
  assert.equal(whereIs(broken), "corrupt");
  assert.ok(!existsSync(paths.path("incoming", wrong)));
  const fixed = readdirSync(join(spool, "incoming")).filter(
    (n) => n.startsWith(src.slice(0, 5)) && n !== src,
  );
  assert.equal(fixed.length, 2, `renamed files: ${fixed.join(" ")}`);
  assert.ok(
    fixed.some((id) => existsSync(paths.path("defer", id))),
    "the defer log follows its message",
  );
  assert.equal(whereIs(misplaced), "deferred");
  assert.ok(!existsSync(join(spool, "deferred", "Z", "Q")), "a hash level too deep is removed once empty");
  assert.deepEqual([existsSync(liveOld), existsSync(deadYoung), existsSync(deadOld)], [true, true, false]);
  const again = await postsuper(["-s"]);
  assert.equal(again.stderr, "", "a repaired queue needs nothing more");
  const p = await postsuper(["-p"]);
  assert.equal(p.stderr, "postsuper: Purged: 1 temporary file\n");
  assert.deepEqual([existsSync(liveOld), existsSync(deadYoung)], [true, false]);
  rmSync(liveOld);
  await postsuper(["-d", "ALL"]);
});

test("what -s cannot repair is reported, with exit status 1", async () => {
  writeFileSync(join(spool, "defer", "not-a-queue-id"), "x");
  own(join(spool, "defer"));
  const r = await postsuper(["-s", "defer"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "postsuper: warning: bogus file name: defer/not-a-queue-id\n");
  const q = await postsuper(["-s", "nosuchqueue"]);
  assert.equal(q.code, 1);
  assert.equal(q.stderr, "postsuper: fatal: invalid directory name: nosuchqueue\n");
  rmSync(join(spool, "defer", "not-a-queue-id"));
});

test("maildrop files are pickup's: left alone, except unfinished ones older than a day", async () => {
  const drop = join(spool, "maildrop");
  const [done, fresh, stale] = [
    join(drop, "a".repeat(32)),
    join(drop, "b".repeat(32)),
    join(drop, "c".repeat(32)),
  ];
  for (const [p, mode, ageSec] of [
    [done, 0o640, 3 * 86400],
    [fresh, 0o600, 3600 * 2],
    [stale, 0o600, 2 * 86400],
  ] as const) {
    writeFileSync(p, "maildrop file", { mode });
    chmodSync(p, mode);
    const t = new Date(Date.now() - ageSec * 1000);
    utimesSync(p, t, t);
    own(p);
  }
  const r = await postsuper([]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "postsuper: Purged: 1 temporary file\n");
  assert.deepEqual([existsSync(done), existsSync(fresh), existsSync(stale)], [true, true, false]);
  for (const p of [done, fresh]) rmSync(p);
});
