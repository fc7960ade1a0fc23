/*
 * file-lock - an exclusive kernel lock on a file, held for the life of the process
 *
 * SYNOPSIS
 *   const r = await holdFileLock("/var/lib/postern/qmgr.lock", 30_000);
 *   if (!r.ok) ... r.busy (another process holds it) / r.reason
 *
 * DESCRIPTION
 *   Node has no flock() or fcntl() lock call, so the lock is taken by the
 *   flock(1) program (Debian package util-linux, which every Debian system
 *   has) on a descriptor that it inherits from this process: "flock 3"
 *   locks the open file description that descriptor 3 shares with ours,
 *   and exits. The lock belongs to that open file description, so it stays
 *   held as long as this process keeps its descriptor open (for the rest of
 *   its life: the descriptor is never closed, and Node opens files
 *   close-on-exec, so no other child shares it). When the process ends, by
 *   exit or by kill -9, the kernel closes the descriptor and the lock is
 *   released at once: there is no stale lock to clean up and no process ID
 *   that could be reused.
 *   holdFileLock() waits up to waitMs for a holder to go away (0: do not
 *   wait); it then writes its own process ID into the file, for people.
 *   A process that may not run programs (a daemon in the chroot jail)
 *   cannot take the lock: the result says why.
 */
import { spawn } from "node:child_process";
import { closeSync, constants, existsSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";

export type FileLockResult = { ok: true; fd: number } | { ok: false; busy: boolean; reason: string };

/** flock(1)'s exit status when the lock is held by another (its --conflict-exit-code default). */
const FLOCK_BUSY = 1;
const HOLDER_MAX = 64;

/** The flock(1) program: daemons run with a minimal environment, so not only by PATH. */
function flockProgram(): string {
  for (const p of ["/usr/bin/flock", "/bin/flock"]) if (existsSync(p)) return p;
  return "flock";
}

/** Runs flock(1) on descriptor 3 (our fd); resolves its exit status, or an error text. */
function runFlock(fd: number, waitMs: number): Promise<number | string> {
  const args = [
    "--exclusive",
    ...(waitMs > 0 ? ["--wait", (waitMs / 1000).toFixed(3)] : ["--nonblock"]),
    "3",
  ];
  return new Promise((resolve) => {
    let proc;
    try {
      proc = spawn(flockProgram(), args, { stdio: ["ignore", "ignore", "pipe", fd] });
    } catch (err) {
      return resolve(`cannot run flock: ${(err as Error).message}`);
    }
    let stderr = "";
    proc.stderr?.on("data", (d: Buffer) => {
      if (stderr.length < 512) stderr += d.toString("utf8");
    });
    proc.on("error", (err: NodeJS.ErrnoException) =>
      resolve(
        err.code === "ENOENT"
          ? "the flock program is missing (Debian package util-linux)"
          : `cannot run flock: ${err.message}`,
      ),
    );
    proc.on("close", (code, signal) => {
      if (code === 0 || code === FLOCK_BUSY) resolve(code);
      else resolve(`flock failed (${signal ?? `exit status ${code}`}): ${stderr.trim()}`);
    });
  });
}

/** The process ID a holder wrote into the lock file, for messages ("" when unknown). */
function holderOf(path: string): string {
  try {
    const text = readFileSync(path, "latin1").slice(0, HOLDER_MAX).trim();
    return /^\d+$/.test(text) ? ` by pid ${text}` : "";
  } catch {
    return "";
  }
}

/** Takes an exclusive lock on path for the rest of this process's life; see the module comment. */
export async function holdFileLock(path: string, waitMs: number): Promise<FileLockResult> {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    return { ok: false, busy: false, reason: `open ${path}: ${(err as Error).message}` };
  }
  const r = await runFlock(fd, waitMs);
  if (r !== 0) {
    closeSync(fd);
    if (r === FLOCK_BUSY) return { ok: false, busy: true, reason: `${path} is locked${holderOf(path)}` };
    return { ok: false, busy: false, reason: typeof r === "string" ? r : `flock: exit status ${r}` };
  }
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch {
    /* the process ID is for people only */
  }
  return { ok: true, fd };
}
