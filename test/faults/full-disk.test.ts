/*
 * full-disk.test - a full queue file system: temporary refusals, nothing queued lost, recovery
 *
 * DESCRIPTION
 *   The queue directory is a small tmpfs (mounted by the test, as root).
 *   Ten messages are queued for a recipient the sink defers for now
 *   (flaky-agent.ts "later-"), then the file system is filled to the last
 *   byte with a filler file. A new message is then refused with a
 *   temporary reply (452 4.3.1 from smtpd's free-space check at MAIL FROM:
 *   less than 1.5 x message_size_limit is free; 451 4.3.0 queue file write
 *   error if cleanup ran out of space first), smtpd keeps serving the session, the queued messages
 *   stay intact through qmgr's retries on the full disk (readEnvelope),
 *   and nothing goes to corrupt/. When the filler is removed and the sink
 *   accepts, a new message is accepted and all eleven are delivered.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeQueueTree } from "../../src/global/queue-dirs.js";
import { readEnvelope } from "../../src/global/queue-file.js";
import { freePort, makeInstance, sleep, type Instance } from "../../src/testing/instance.js";
import { smtpCmd, smtpHello } from "../../src/testing/smtpd-instance.js";

/** Every file below a directory (paths), dot files excluded. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : e.name.startsWith(".") ? [] : [join(dir, e.name)],
  );
}

/** Writes zeros to path until the file system is full; the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(16 * 1024);
  let total = 0;
  try {
    for (let size = chunk.length; size >= 1;) {
      try {
        total += writeSync(fd, chunk, 0, size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
        size = Math.floor(size / 2);
      }
    }
  } finally {
    closeSync(fd);
  }
  return total;
}

/** Sends one message in an open session; the final reply (or the first failing one). */
async function send(c: Awaited<ReturnType<typeof smtpHello>>, rcpt: string, body: string): Promise<string> {
  for (const cmd of ["MAIL FROM:<sender@example.com>", `RCPT TO:<${rcpt}>`]) {
    const r = await smtpCmd(c, cmd);
    if (!r.startsWith("250")) return r;
  }
  const d = await smtpCmd(c, "DATA");
  if (!d.startsWith("354")) return d;
  c.sendRaw(`Subject: full disk\r\n\r\n${body.replace(/\n/g, "\r\n")}\r\n.\r\n`);
  return smtpCmd(c, null);
}

/** The recipients the sink delivered. */
function delivered(record: string): string[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ")[2] ?? "");
}

test(
  "a full queue file system: temporary refusal, queued mail intact, delivery resumes",
  { timeout: 90_000 },
  async (t) => {
    const rec = mkdtempSync(join(tmpdir(), "postern-full-"));
    chmodSync(rec, 0o1777);
    const record = join(rec, "sink.log");
    writeFileSync(`${record}.later`, "");
    const port = await freePort();
    const inst: Instance = makeInstance({
      main: [
        "myhostname = mx.example.org",
        "mydestination =",
        "mynetworks = 127.0.0.0/8",
        "smtpd_peername_lookup = no",
        // queue_minfree refuses mail when less than 1.5 x message_size_limit is free: keep that below 3 MB.
        "message_size_limit = 500000",
        "default_transport = sink",
        "minimal_backoff_time = 1s",
        "maximal_backoff_time = 1s",
        "queue_run_delay = 1s",
        "",
      ].join("\n"),
      master: [
        `${port} inet n - n - - smtpd`,
        "cleanup unix - - n - 0 cleanup",
        "rewrite unix - - n - - trivial-rewrite",
        "qmgr unix n - n 300 1 qmgr",
        "defer unix - - n - 0 bounce",
        "bounce unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        `sink unix - - n - 20 flaky-agent.js ${record}`,
        "",
      ].join("\n"),
    });
    mkdirSync(inst.spool);
    const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", inst.spool], {
      encoding: "utf8",
    });
    assert.equal(mount.status, 0, `mount tmpfs (needs root and util-linux's mount): ${mount.stderr}`);
    makeQueueTree(inst.spool, { uid: 65534, gid: 65534 });
    t.after(async () => {
      await inst.postern("abort");
      spawnSync("umount", ["-l", inst.spool]);
      inst.cleanup();
      rmSync(rec, { recursive: true, force: true });
    });
    const r = await inst.start();
    assert.equal(r.code, 0, r.stderr);

    const c = await smtpHello(port);
    const body = Array.from({ length: 40 }, (_, i) => `line ${i} ${"q".repeat(60)}`).join("\n");
    for (let i = 0; i < 10; i++) assert.match(await send(c, `later-${i}@sink.example`, body), /^250 /);
    const deferred = join(inst.spool, "deferred");
    for (const end = Date.now() + 20_000; filesUnder(deferred).length < 10 && Date.now() < end;)
      await sleep(100);
    assert.equal(filesUnder(deferred).length, 10, "ten messages wait in deferred/");

    const filler = join(inst.spool, "filler");
    const bytes = fill(filler);
    t.diagnostic(`filled the queue file system with ${bytes} bytes`);
    const big = Array.from({ length: 3000 }, (_, i) => `big ${i} ${"z".repeat(60)}`).join("\n");
    const refused = await send(c, "now@sink.example", big);
    assert.match(refused, /^45[12] 4\.3\.[01] /, "a temporary refusal while the disk is full");
    t.diagnostic(`reply on a full disk: ${refused}`);
    assert.match(await smtpCmd(c, "RSET"), /^250 /, "smtpd keeps serving the session");
    await inst.waitLog(/warning: .*(No space left|ENOSPC|write|not enough free space)/i);
    await sleep(2500); // qmgr retries the deferred mail on the full disk meanwhile

    for (const f of filesUnder(deferred)) {
      const env = await readEnvelope(f);
      assert.ok(env.ok, `${f} reads back while the disk is full`);
    }
    unlinkSync(filler);
    unlinkSync(`${record}.later`);
    assert.match(await send(c, "now@sink.example", big), /^250 /, "accepted once there is space again");
    c.send("QUIT");
    await inst.postern("flush");
    const want = [...Array.from({ length: 10 }, (_, i) => `later-${i}@sink.example`), "now@sink.example"];
    for (const end = Date.now() + 30_000; Date.now() < end; await sleep(200))
      if (want.every((w) => delivered(record).includes(w))) break;
    assert.deepEqual(
      [...new Set(delivered(record))].sort(),
      want.sort(),
      "every queued message is delivered",
    );
    assert.deepEqual(filesUnder(join(inst.spool, "corrupt")), [], "nothing went to corrupt/");
    t.diagnostic(
      `${delivered(record).length} deliveries after space returned; df: ${execFileSync("df", ["-k", inst.spool], { encoding: "utf8" }).split("\n")[1] ?? ""}`,
    );
  },
);
