/*
 * deliver-helper.test - mailbox writes through helper processes
 *
 * DESCRIPTION
 *   Drives HelperPool and deliver-helper.js as local and virtual do: many
 *   helper processes appending to one mbox at once with each lock method
 *   alone (the result is read back with Python's mailbox module), an
 *   aborted message truncated away, stale and live dotlocks, symlinks,
 *   hard links, executables, the size limit, mailbox ownership, and
 *   Maildir names and ownership (as root, as nobody).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  linkSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  lchownSync,
  chownSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HelperPool } from "./deliver-helper-client.js";
import type { MboxParams } from "./deliver-helper-proto.js";
import { readMailbox } from "../testing/local-world.js";

const root = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), "helper-"));
chmodSync(dir, 0o1777);
const pools: HelperPool[] = [];
after(() => {
  for (const p of pools) p.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A pool that is closed after the tests. */
function pool(): HelperPool {
  const p = new HelperPool({ timeoutMs: 60_000, idleMs: 2000 });
  pools.push(p);
  return p;
}

/** mbox parameters for a path. */
function params(path: string, over: Partial<MboxParams> = {}): MboxParams {
  return {
    path,
    dotlock: true,
    dotlockMayFail: false,
    kernelLock: true,
    attempts: 50,
    delayMs: 20,
    staleSec: 500,
    sizeLimit: 0,
    strictOwner: false,
    refuseExec: false,
    mailbox: true,
    defDsn: "5.2.0",
    ...over,
  };
}

/** A message in mbox form, in several chunks. */
function* message(tag: string, lines = 3000): Generator<Buffer> {
  yield Buffer.from(`From sender@example.org  Thu Nov  3 21:38:00 2003\nSubject: ${tag}\n\n`);
  for (let i = 0; i < lines; i += 500) {
    let s = "";
    for (let j = i; j < Math.min(lines, i + 500); j++) s += `${tag} ${j} ${"q".repeat(60)}\n`;
    yield Buffer.from(s);
  }
  yield Buffer.from("\n");
}

/** The body message() writes. */
function bodyOf(tag: string, lines = 3000): string {
  let s = "";
  for (let j = 0; j < lines; j++) s += `${tag} ${j} ${"q".repeat(60)}\n`;
  return s;
}

for (const [name, locks] of [
  ["dotlock alone", { dotlock: true, kernelLock: false }],
  ["flock(1) alone", { dotlock: false, kernelLock: true }],
] as const) {
  test(`36 appends from 3 agents and 24 helpers to one mbox never interleave (${name})`, async () => {
    const box = join(dir, `conc-${name.replace(/\W/g, "")}`);
    const agents = [pool(), pool(), pool()];
    const jobs = Array.from({ length: 36 }, (_, i) => {
      const tag = `m${String(i).padStart(2, "0")}`;
      const agent = agents[i % 3] as HelperPool;
      return agent.mbox(null, params(box, locks), message(tag));
    });
    const replies = await Promise.all(jobs);
    assert.ok(
      replies.every((r) => r?.ok === true),
      JSON.stringify(replies.find((r) => r?.ok !== true)),
    );
    const msgs = readMailbox("mbox", box);
    assert.equal(msgs.length, 36);
    msgs.forEach((m, i) => {
      const tag = `m${String(i).padStart(2, "0")}`;
      assert.equal(m.subject, tag);
      assert.equal(m.body, bodyOf(tag), `${tag} is whole`);
    });
  });
}

test("an aborted message is truncated away; the lock is released", async () => {
  const box = join(dir, "abort");
  const p = pool();
  assert.ok((await p.mbox(null, params(box), message("first", 10))).ok);
  const before = statSync(box).size;
  function* broken(): Generator<Buffer> {
    yield* message("second", 1000);
    throw new Error("queue file damaged");
  }
  await assert.rejects(p.mbox(null, params(box), broken()), /queue file damaged/);
  assert.equal(statSync(box).size, before);
  assert.ok(!readdirSync(dir).includes("abort.lock"));
  assert.ok((await p.mbox(null, params(box), message("third", 10))).ok);
});

test("a live dotlock makes delivery wait and then defer; a stale one is removed", async () => {
  const box = join(dir, "locked");
  writeFileSync(`${box}.lock`, "");
  const p = pool();
  const r = await p.mbox(null, params(box, { attempts: 2, delayMs: 50 }), message("x", 1));
  assert.equal(r.dsn, "4.2.0");
  assert.match(r.text, /unable to create lock file .*locked\.lock: File exists/);
  const s = await p.mbox(null, params(box, { attempts: 3, delayMs: 50, staleSec: 0 }), message("x", 1));
  assert.ok(s.ok, s.text);
});

test("symlinks not owned by root, hard links and (for files) executables are refused", async () => {
  const p = pool();
  const target = join(dir, "target");
  writeFileSync(target, "");
  const sl = join(dir, "symlink");
  symlinkSync(target, sl);
  if (root) lchownSync(sl, 65534, 65534);
  const r1 = await p.mbox(null, params(sl), message("x", 1));
  assert.equal(r1.why, "notfile");
  const hl = join(dir, "hardlink");
  linkSync(target, hl);
  const r2 = await p.mbox(null, params(hl), message("x", 1));
  assert.match(r2.text, /2 hard links/);
  const exe = join(dir, "exe");
  writeFileSync(exe, "");
  chmodSync(exe, 0o755);
  const r3 = await p.mbox(null, params(exe, { refuseExec: true, mailbox: false }), message("x", 1));
  assert.equal(r3.why, "exec");
  assert.equal(readFileSync(target, "utf8"), "");
});

test("the size limit fails with 5.2.2 and leaves the mailbox as it was", async () => {
  const box = join(dir, "limited");
  const p = pool();
  assert.ok((await p.mbox(null, params(box, { sizeLimit: 100_000 }), message("a", 100))).ok);
  const before = statSync(box).size;
  const r = await p.mbox(null, params(box, { sizeLimit: 100_000 }), message("b", 2000));
  assert.equal(r.dsn, "5.2.2");
  assert.match(r.text, /File too large/);
  assert.equal(statSync(box).size, before);
});

test("Maildir: unique names, tmp/ left empty, files owned by the helper's user", async () => {
  const md = join(dir, "Maildir") + "/";
  const p = pool();
  const rights = root ? { uid: 65534, gid: 65534 } : null;
  const names = [];
  for (let i = 0; i < 5; i++) {
    const r = await p.maildir(
      rights,
      { path: md, host: "host/a:b", sizeLimit: 0, defDsn: "5.2.0" },
      message(`m${i}`, 5),
    );
    assert.ok(r.ok, r.text);
    names.push(r.name ?? "");
  }
  assert.equal(new Set(names).size, 5);
  for (const n of names) assert.match(n, /^\d+\.M\d+P\d+Q\d+\.host\\057a\\072b$/);
  assert.deepEqual(readdirSync(join(md, "tmp")), []);
  assert.deepEqual(readdirSync(join(md, "new")).sort(), [...names].sort());
  if (root) assert.equal(statSync(join(md, "new", names[0] ?? "")).uid, 65534);
  assert.equal(readMailbox("maildir", md).length, 5);
});

test("strict ownership: a mailbox owned by someone else is not written", async () => {
  assert.ok(root, "run the suite as root (CI does)");
  const box = join(dir, "theirs");
  writeFileSync(box, "");
  chownSync(box, 65534, 65534);
  chmodSync(box, 0o666);
  const r = await pool().mbox(
    { uid: 1, gid: 1 },
    params(box, { strictOwner: true, dotlock: false }),
    message("x", 1),
  );
  assert.equal(r.why, "owner");
  assert.equal(readFileSync(box, "utf8"), "");
});
