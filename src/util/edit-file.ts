/*
 * edit-file - atomic, serialized rewrite of a small configuration file
 *
 * SYNOPSIS
 *   import { editFile } from "../util/edit-file.js";
 *   await editFile("/etc/postern/main.cf", (old) => newText);
 *
 * DESCRIPTION
 *   Rewrites a file so that readers see either the old or the new content,
 *   never a mix, and so that concurrent editors do not lose each other's
 *   changes. Editors take an exclusive lock (a "<file>.lock" created with
 *   O_EXCL that holds the owner's pid; a lock whose owner is gone is taken
 *   over), read the current text, write "<file>.tmp", fsync it, rename it
 *   over the file, fsync the directory, and drop the lock. The file's mode
 *   is kept. The lock wait is bounded.
 */
import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export class EditFileError extends Error {
  readonly code: "ELOCKTIMEOUT" | "EEDIT";
  constructor(code: "ELOCKTIMEOUT" | "EEDIT", message: string) {
    super(message);
    this.code = code;
  }
}

/** Returns true when a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Tries once to take the lock; removes a lock whose owner has died. */
function tryLock(lock: string): boolean {
  try {
    const fd = openSync(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  let owner: number;
  try {
    owner = Number(readFileSync(lock, "utf8").trim());
  } catch {
    return false;
  }
  if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
    try {
      unlinkSync(lock);
    } catch {
      /* another editor took it over first */
    }
  }
  return false;
}

/** Waits (bounded) for the lock. */
async function lockFile(lock: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2; !tryLock(lock); delay = Math.min(delay * 2, 100)) {
    if (Date.now() > deadline)
      throw new EditFileError("ELOCKTIMEOUT", `timed out waiting for the lock ${lock}`);
    await sleep(delay);
  }
}

/** Writes text to path durably: temp file, fsync, rename, directory fsync. */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), constants.O_RDONLY);
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Applies an edit function to a file under the lock; a missing file edits as empty. */
export async function editFile(
  path: string,
  edit: (old: string) => string,
  timeoutMs = 10_000,
): Promise<void> {
  const lock = `${path}.lock`;
  await lockFile(lock, timeoutMs);
  try {
    let old = "";
    let mode = 0o644;
    try {
      old = readFileSync(path, "utf8");
      mode = statSync(path).mode & 0o7777;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    writeFileAtomic(path, edit(old), mode);
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      /* already gone */
    }
  }
}
