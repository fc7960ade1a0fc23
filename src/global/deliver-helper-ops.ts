/*
 * deliver-helper-ops - mailbox, maildir and file work done with a user's rights
 *
 * SYNOPSIS
 *   (in deliver-helper.js, which runs with the recipient's uid and gid)
 *   const r = await mboxAppend(params, chunks);    // chunks: AsyncIterable<Buffer>
 *   const r = await maildirDeliver(params, chunks);
 *   const r = await readSmallFile(path, limit, follow);   const r = await statPath(path);
 *
 * DESCRIPTION
 *   mboxAppend() appends one message to a UNIX mailbox or to a file, as
 *   Postfix's mbox_open() and mail_copy() do:
 *     1. dotlock: create path.lock with O_CREAT|O_EXCL (mode 0); when it
 *        exists, retry up to `attempts` times `delayMs` apart, removing a
 *        lock older than `staleSec` (a crashed writer's);
 *     2. open without following a symlink unless root owns the link,
 *        refuse a regular file with more than one hard link or one that
 *        changed between lstat and open, create it 0600 when missing;
 *     3. kernel lock: Node has no flock() or fcntl(), so the open file is
 *        handed to flock(1) (util-linux) as descriptor 3; "flock -x -w T 3"
 *        locks the open file description that this process shares, and the
 *        lock lasts until this process closes the file. It interlocks
 *        with other flock() users (mutt, procmail, Dovecot with flock); the
 *        dotlock interlocks with the rest;
 *     4. write at the end, fsync; on any failure (write error, size limit,
 *        an aborted or corrupt message) truncate back to the old size, so
 *        a failed append never leaves half a message in the mailbox;
 *     5. close (which drops the kernel lock) and remove the dotlock.
 *   Non-regular files (/dev/null, a tty) get no locks and no truncation.
 *
 *   maildirDeliver() writes tmp/<name>, fsyncs it, links it to
 *   new/<name>, fsyncs new/ and removes tmp/<name>. <name> is
 *   "<sec>.M<usec>P<pid>Q<n>.<host>" (the Maildir convention's unique
 *   name: time, microseconds, process id, and a per-process delivery
 *   count, "/" and ":" in the host written as \057 and \072). Missing
 *   tmp/, new/ and cur/ directories are created (mode 0700).
 *
 *   Error statuses follow Postfix's mbox_dsn(): EAGAIN/ESTALE 4.2.0, ENOSPC
 *   4.3.0 (a full disk defers), EDQUOT/EFBIG 5.2.2 (mailbox full), others
 *   the caller's default. The size limit (mailbox_size_limit) is checked
 *   against the file size after the append, as Postfix's file size limit
 *   does, and fails with EFBIG.
 */
import { spawn } from "node:child_process";
import {
  closeSync,
  constants,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  unlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import { lstat, open, stat, unlink, type FileHandle } from "node:fs/promises";
import { errnoCode, errnoText } from "../util/errno-text.js";
import type { FileKind, HelperReply, MaildirParams, MboxParams } from "./deliver-helper-proto.js";

/** Thrown by a data source when the agent aborted the message. */
export class HelperAbort extends Error {}

const FLOCK_PATHS = "/usr/bin:/bin:/usr/sbin:/sbin";

/** Maps an errno code to a mailbox status, as mbox_dsn() does. */
export function mboxDsn(code: string, def: string): string {
  if (code === "EAGAIN" || code === "ESTALE") return "4.2.0";
  if (code === "ENOSPC") return "4.3.0";
  if (code === "EDQUOT" || code === "EFBIG") return "5.2.2";
  return def;
}

/** A failure reply. */
function fail(why: HelperReply["why"], dsn: string, text: string): HelperReply {
  return { ok: false, why, dsn, text };
}

/** The kind of a file from its stat. */
function kindOf(st: Stats): FileKind {
  return st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
}

/** Waits. */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Creates path.lock; null on success, else the error. */
export async function dotLock(
  path: string,
  attempts: number,
  delayMs: number,
  staleSec: number,
): Promise<NodeJS.ErrnoException | null> {
  const lock = `${path}.lock`;
  for (let count = 1; ; count++) {
    let last: NodeJS.ErrnoException;
    try {
      const fh = await open(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0);
      await fh.close();
      return null;
    } catch (err) {
      last = err as NodeJS.ErrnoException;
    }
    if (count >= attempts || last.code !== "EEXIST") return last;
    try {
      const st = await stat(lock);
      if (Date.now() / 1000 > st.ctimeMs / 1000 + staleSec) await unlink(lock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return err as NodeJS.ErrnoException;
    }
    await sleep(delayMs / 2 + Math.random() * delayMs);
  }
}

/** Removes path.lock. */
async function dotUnlock(path: string): Promise<void> {
  await unlink(`${path}.lock`).catch(() => undefined);
}

/** Locks an open file with flock(1); null on success, else the failure text and status. */
function kernelLock(fh: FileHandle, seconds: number): Promise<{ code: string; text: string } | null> {
  return new Promise((resolve) => {
    const child = spawn("flock", ["-x", "-w", String(Math.max(1, seconds)), "3"], {
      stdio: ["ignore", "ignore", "pipe", fh.fd],
      env: { PATH: FLOCK_PATHS },
    });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      if (err.length < 500) err += d.toString("utf8");
    });
    child.on("error", (e) =>
      resolve({ code: "ENOENT", text: `cannot run flock(1) (install util-linux): ${errnoText(e)}` }),
    );
    child.on("close", (code) => {
      if (code === 0) return resolve(null);
      resolve({
        code: "EAGAIN",
        text: `unable to lock for exclusive access: ${err.trim() || "Resource temporarily unavailable"}`,
      });
    });
  });
}

type Opened =
  { fh: FileHandle; st: Stats } | { why: HelperReply["why"]; err: NodeJS.ErrnoException | string };

/** Opens a file for appending the way Postfix's safe_open() does (see the module comment). */
async function safeOpen(path: string): Promise<Opened> {
  const W = constants.O_WRONLY | constants.O_APPEND | constants.O_NONBLOCK;
  for (let tries = 0; tries < 2; tries++) {
    let lst: Stats;
    try {
      lst = await lstat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return { why: "io", err: err as Error };
      try {
        const fh = await open(path, W | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        return { fh, st: await fh.stat() };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
        return { why: "io", err: e as Error };
      }
    }
    const link = lst.isSymbolicLink();
    if (link && lst.uid !== 0) return { why: "notfile", err: "file is a symbolic link" };
    let fh: FileHandle;
    try {
      fh = await open(path, W | (link ? 0 : constants.O_NOFOLLOW));
    } catch (err) {
      return { why: "io", err: err as Error };
    }
    const st = await fh.stat();
    if (st.isFile() && st.nlink !== 1) {
      await fh.close();
      return { why: "notfile", err: `file has ${st.nlink} hard links` };
    }
    if (!link && (st.dev !== lst.dev || st.ino !== lst.ino)) {
      await fh.close();
      return { why: "io", err: "file status changed unexpectedly" };
    }
    return { fh, st };
  }
  return { why: "io", err: "file status changed unexpectedly" };
}

/** Writes every chunk; the number of bytes written, or a failure. */
async function copyChunks(
  fh: FileHandle,
  chunks: AsyncIterable<Buffer>,
  base: number,
  limit: number,
): Promise<{ written: number } | { why: HelperReply["why"]; code: string; text: string }> {
  let written = 0;
  try {
    for await (const chunk of chunks) {
      if (limit > 0 && base + written + chunk.length > limit)
        return { why: "limit", code: "EFBIG", text: "error writing message: File too large" };
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
      written += chunk.length;
    }
  } catch (err) {
    if (err instanceof HelperAbort) return { why: "abort", code: "EIO", text: err.message };
    return { why: "io", code: errnoCode(err), text: `error writing message: ${errnoText(err)}` };
  }
  return { written };
}

/** Appends one message to a mailbox or file (see the module comment). */
export async function mboxAppend(p: MboxParams, chunks: AsyncIterable<Buffer>): Promise<HelperReply> {
  let locked = false;
  if (p.dotlock) {
    const pre = await stat(p.path).catch(() => null);
    if (pre === null || pre.isFile()) {
      const err = await dotLock(p.path, p.attempts, p.delayMs, p.staleSec);
      const text = `unable to create lock file ${p.path}.lock: ${errnoText(err)}`;
      if (err === null) locked = true;
      else if (err.code === "EEXIST") return fail("lock", "4.2.0", text);
      else if (p.dotlockMayFail) process.stderr.write(`warning: ${text}\n`);
      else return fail("lock", mboxDsn(errnoCode(err), p.defDsn), text);
    }
  }
  try {
    return await appendLocked(p, chunks);
  } finally {
    if (locked) await dotUnlock(p.path);
  }
}

/** The part of mboxAppend() after the dotlock. */
async function appendLocked(p: MboxParams, chunks: AsyncIterable<Buffer>): Promise<HelperReply> {
  const o = await safeOpen(p.path);
  if ("why" in o) {
    const text = typeof o.err === "string" ? o.err : errnoText(o.err);
    const code = typeof o.err === "string" ? "EIO" : errnoCode(o.err);
    return fail(o.why, mboxDsn(code, p.defDsn), `cannot open file: ${text}`);
  }
  const { fh } = o;
  let st = o.st;
  try {
    const regular = st.isFile();
    if (regular && p.kernelLock) {
      const secs = Math.ceil((p.attempts * p.delayMs) / 1000);
      const l = await kernelLock(fh, secs);
      if (l !== null) return fail("lock", mboxDsn(l.code, p.defDsn), l.text);
      st = await fh.stat();
      if (st.nlink !== 1) return fail("lock", "4.2.0", "target file status changed unexpectedly");
    }
    const kind = kindOf(st);
    if (p.mailbox && !regular) return { ...fail("notfile", p.defDsn, "file is not a regular file"), kind };
    if (p.strictOwner && st.uid !== process.getuid?.())
      return { ...fail("owner", "4.2.0", "file is not owned by the recipient"), kind, uid: st.uid };
    if (!regular) return { ...(await writeSpecial(fh, chunks, p)), kind };
    if (p.refuseExec && (st.mode & 0o111) !== 0)
      return { ...fail("exec", "5.7.1", "file is executable"), kind };
    const base = st.size;
    const r = await copyChunks(fh, chunks, base, p.sizeLimit);
    let bad = "written" in r ? null : r;
    if (bad === null) {
      try {
        await fh.sync();
      } catch (err) {
        bad = { why: "io", code: errnoCode(err), text: `error writing message: ${errnoText(err)}` };
      }
    }
    if (bad === null) return { ok: true, why: "", dsn: "2.0.0", text: "", kind, size: base };
    await fh.truncate(base).catch(() => undefined);
    return { ...fail(bad.why, mboxDsn(bad.code, "5.3.0"), bad.text), kind };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Writes a message to a device or pipe: no locking, no size check, no truncation. */
async function writeSpecial(
  fh: FileHandle,
  chunks: AsyncIterable<Buffer>,
  p: MboxParams,
): Promise<HelperReply> {
  const r = await copyChunks(fh, chunks, 0, 0);
  if ("written" in r) return { ok: true, why: "", dsn: "2.0.0", text: "" };
  return fail(r.why, mboxDsn(r.code, p.defDsn), r.text);
}

let deliveries = 0;

/** The Maildir unique name for a delivery that starts now. */
export function maildirName(host: string, now = Date.now(), usec = process.hrtime.bigint()): string {
  const sec = Math.floor(now / 1000);
  const micro = Number((usec / 1000n) % 1000000n);
  const h = host.replace(/\//g, "\\057").replace(/:/g, "\\072");
  return `${sec}.M${micro}P${process.pid}Q${++deliveries}.${h}`;
}

/** Makes a directory's entries durable. */
function syncDirNow(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Runs a file system call again after creating missing directories when it fails with ENOENT. */
function withDirs<T>(call: () => T, dirs: string[]): T {
  try {
    return call();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const d of dirs) mkdirSync(d, { recursive: true, mode: 0o700 });
  return call();
}

/**
 * Writes one message into a Maildir (see the module comment). The helper serves one request at a
 * time, so the file calls are synchronous: each asynchronous one would cost a trip through the
 * thread pool for nothing. Only the message chunks arrive asynchronously.
 */
export async function maildirDeliver(p: MaildirParams, chunks: AsyncIterable<Buffer>): Promise<HelperReply> {
  const name = maildirName(p.host);
  const tmp = `${p.path}tmp/${name}`;
  const dst = `${p.path}new/${name}`;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = withDirs(() => openSync(tmp, flags, 0o600), [`${p.path}tmp`]);
  } catch (err) {
    return fail("io", mboxDsn(errnoCode(err), p.defDsn), `create maildir file ${tmp}: ${errnoText(err)}`);
  }
  let r: HelperReply;
  try {
    r = await writeMaildirFile(fd, chunks, p, tmp, dst);
  } finally {
    try {
      closeSync(fd);
    } catch {
      /* the write's own error, if any, is what counts */
    }
  }
  try {
    unlinkSync(tmp);
  } catch {
    /* already gone */
  }
  return r.ok ? { ...r, name } : r;
}

/** Writes, syncs and publishes the tmp/ file. */
async function writeMaildirFile(
  fd: number,
  chunks: AsyncIterable<Buffer>,
  p: MaildirParams,
  tmp: string,
  dst: string,
): Promise<HelperReply> {
  const w = await copyChunksSync(fd, chunks, p.sizeLimit);
  if (!("written" in w)) return fail(w.why, mboxDsn(w.code, "5.3.0"), w.text);
  try {
    fsyncSync(fd);
  } catch (err) {
    return fail("io", mboxDsn(errnoCode(err), "5.3.0"), `error writing message: ${errnoText(err)}`);
  }
  try {
    withDirs(() => linkSync(tmp, dst), [`${p.path}cur`, `${p.path}new`]);
    syncDirNow(`${p.path}new`);
  } catch (err) {
    return fail("io", mboxDsn(errnoCode(err), p.defDsn), `create maildir file ${dst}: ${errnoText(err)}`);
  }
  return { ok: true, why: "", dsn: "2.0.0", text: "" };
}

/** copyChunks() with synchronous writes to a descriptor. */
async function copyChunksSync(
  fd: number,
  chunks: AsyncIterable<Buffer>,
  limit: number,
): Promise<{ written: number } | { why: HelperReply["why"]; code: string; text: string }> {
  let written = 0;
  try {
    for await (const chunk of chunks) {
      if (limit > 0 && written + chunk.length > limit)
        return { why: "limit", code: "EFBIG", text: "error writing message: File too large" };
      for (let off = 0; off < chunk.length;) off += writeSync(fd, chunk, off, chunk.length - off);
      written += chunk.length;
    }
  } catch (err) {
    if (err instanceof HelperAbort) return { why: "abort", code: "EIO", text: err.message };
    return { why: "io", code: errnoCode(err), text: `error writing message: ${errnoText(err)}` };
  }
  return { written };
}

/** Looks at a file (following symlinks or not) and reads it when it is a regular file. */
export async function readSmallFile(path: string, limit: number, follow: boolean): Promise<HelperReply> {
  let st: Stats;
  try {
    st = follow ? await stat(path) : await lstat(path);
  } catch (err) {
    const code = errnoCode(err);
    return fail(code === "ENOENT" ? "noent" : "io", "4.3.0", errnoText(err));
  }
  const info = { kind: kindOf(st), uid: st.uid, mode: st.mode & 0o7777, size: st.size };
  if (!st.isFile()) return { ok: true, why: "", dsn: "2.0.0", text: "", ...info };
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | (follow ? 0 : constants.O_NOFOLLOW));
  } catch (err) {
    return { ...fail("io", "4.3.0", errnoText(err)), ...info };
  }
  try {
    const fst = await fh.stat();
    if (fst.dev !== st.dev || fst.ino !== st.ino) return { ...fail("io", "4.3.0", "file changed"), ...info };
    if (fst.size > limit) return { ...fail("toolarge", "4.3.0", "file too large"), ...info };
    const buf = Buffer.alloc(fst.size);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return { ok: true, why: "", dsn: "2.0.0", text: "", ...info, data: buf.subarray(0, bytesRead) };
  } catch (err) {
    return { ...fail("io", "4.3.0", errnoText(err)), ...info };
  } finally {
    await fh.close();
  }
}

/** Tells whether a path exists and what it is (following symlinks). */
export async function statPath(path: string): Promise<HelperReply> {
  try {
    const st = await stat(path);
    return {
      ok: true,
      why: "",
      dsn: "2.0.0",
      text: "",
      kind: kindOf(st),
      uid: st.uid,
      mode: st.mode & 0o7777,
    };
  } catch (err) {
    const code = errnoCode(err);
    return fail(code === "ENOENT" ? "noent" : "io", "4.3.0", errnoText(err));
  }
}
