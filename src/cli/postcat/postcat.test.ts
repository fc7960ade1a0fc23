/*
 * postcat.test - postcat as a real process on queue files written by QueueFileWriter
 *
 * DESCRIPTION
 *   The Postfix output format (markers, record names, header/body split,
 *   -o offsets, -e/-h/-b selection), -q lookup across queues (hashed ones
 *   included), standard input, and a broken file: printed up to the break,
 *   then "broken at offset N" on standard error and exit status 1.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  mkdtempSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../../testing/run-cli.js";
import { Config } from "../../global/config.js";
import { checkQueueFile } from "../../global/queue-corrupt.js";
import { QueueFileWriter } from "../../global/queue-file.js";
import { QueuePaths } from "../../global/queue-path.js";
import { asctime, isHeaderLine } from "./postcat-print.js";

let dir = "";
let etc = "";
let paths: QueuePaths;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "postcat-test-"));
  etc = join(dir, "etc");
  mkdirSync(etc);
  mkdirSync(join(dir, "spool", "incoming"), { recursive: true });
  const main = `queue_directory = ${join(dir, "spool")}\n`;
  writeFileSync(join(etc, "main.cf"), main);
  paths = new QueuePaths(Config.fromText(etc, main));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Queues a small message in incoming/; returns its ID. */
async function queue(body = "body line\n"): Promise<string> {
  const w = await QueueFileWriter.create(paths, false);
  w.sender("alice@example.com");
  w.attr("log_ident", w.id);
  w.rcpt({ address: "bob@example.net", original: "Bob@example.net", notify: 6 });
  w.beginContent();
  for (const l of ["Subject: test", "To: bob@example.net", " folded", "", ...body.split("\n").slice(0, -1)])
    await w.line(Buffer.from(l));
  w.endContent();
  await w.commit();
  return w.id;
}

/** Runs postcat with this test's configuration. */
function postcat(args: string[], input?: string): ReturnType<typeof runCli> {
  return runCli("postcat", ["-c", etc, ...args], input !== undefined ? { input } : {});
}

test("postcat prints envelope, header and body in Postfix's format", async () => {
  const id = await queue();
  const r = await postcat(["-q", id]);
  assert.equal(r.code, 0, r.stderr);
  const name = `incoming/${id}`;
  const lines = r.stdout.split("\n");
  assert.match(lines[1] ?? "", /^message_size: +\d+ +\d+ +\d+ +1 +0$/);
  assert.match(lines[2] ?? "", /^message_arrival_time: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/);
  assert.deepEqual(lines.slice(3), [
    "sender: alice@example.com",
    `named_attribute: log_ident=${id}`,
    "original_recipient: Bob@example.net",
    "dsn_notify_flags: 6",
    "recipient: bob@example.net",
    `*** MESSAGE CONTENTS ${name} ***`,
    "Subject: test",
    "To: bob@example.net",
    " folded",
    "",
    "body line",
    `*** HEADER EXTRACTED ${name} ***`,
    `*** MESSAGE FILE END ${name} ***`,
    "",
  ]);
  assert.equal(lines[0], `*** ENVELOPE RECORDS ${name} ***`);
});

test("-h, -b and -e select sections; -o prints offsets", async () => {
  const id = await queue("one\ntwo\n");
  const h = await postcat(["-h", "-q", id]);
  assert.equal(h.stdout, "Subject: test\nTo: bob@example.net\n folded\n");
  const b = await postcat(["-bq", id]);
  assert.equal(b.stdout, "\none\ntwo\n");
  const e = await postcat(["-e", "-o", "-q", id]);
  const first = e.stdout.split("\n").slice(0, 3);
  assert.equal(first[0], `*** ENVELOPE RECORDS incoming/${id} ***`);
  assert.match(first[1] ?? "", /^ {8}0 message_size: /);
  assert.match(first[2] ?? "", /^ {7}81 message_arrival_time: /);
  assert.doesNotMatch(e.stdout, /Subject/);
});

test("-q finds a file in a hashed queue; without -q a path is read; standard input too", async () => {
  const id = await queue();
  const dest = paths.path("deferred", id);
  mkdirSync(paths.dir("deferred", id), { recursive: true });
  renameSync(paths.path("incoming", id), dest);
  const q = await postcat(["-e", "-q", id]);
  assert.equal(q.code, 0, q.stderr);
  assert.match(q.stdout, new RegExp(`^\\*\\*\\* ENVELOPE RECORDS deferred/${id[0]}/${id} \\*\\*\\*\n`));
  const p = await postcat(["-h", dest]);
  assert.equal(p.stdout, "Subject: test\nTo: bob@example.net\n folded\n");
  const s = await postcat(["-e"], readFileSync(dest, "latin1"));
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^\*\*\* ENVELOPE RECORDS stdin \*\*\*\n/);
  const missing = await postcat(["-q", "ABCDEF12345"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^postcat: fatal: open queue file ABCDEF12345: /);
});

test("a broken file is printed up to the break, which is named with its offset; exit status 1", async () => {
  const id = await queue(Array.from({ length: 50 }, (_, i) => `line ${i}\n`).join(""));
  const path = paths.path("incoming", id);
  truncateSync(path, 400);
  const c = await checkQueueFile(path);
  assert.ok(!c.ok);
  const r = await postcat(["-q", id]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /\nline 1\n/, "what can be read is printed");
  assert.doesNotMatch(r.stdout, /MESSAGE FILE END/);
  assert.equal(r.stderr, `postcat: error: incoming/${id}: broken at offset ${c.offset}: ${c.reason}\n`);
  assert.ok(c.offset > 300 && c.offset <= 400, `offset ${c.offset}`);
});

test("helpers: asctime and header detection", () => {
  assert.equal(asctime(new Date(2026, 10, 6, 9, 5, 3)), "Fri Nov  6 09:05:03 2026");
  assert.ok(isHeaderLine(Buffer.from("Subject: x")));
  assert.ok(isHeaderLine(Buffer.from("X-Odd : x")));
  assert.ok(!isHeaderLine(Buffer.from("not a header")));
  assert.ok(!isHeaderLine(Buffer.from(": x")));
});
