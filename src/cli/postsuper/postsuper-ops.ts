/*
 * postsuper-ops - the file operations postsuper is made of
 *
 * DESCRIPTION
 *   Shared by the by-ID operations (postsuper-run.ts) and the queue walk
 *   (postsuper-walk.ts): the context and counters, renames that make
 *   missing hash directories, removal, the queue kinds, the temporary-file
 *   rule, and the queue ID that a file's inode number calls for.
 *
 *   Temporary files. cleanup writes a new queue file in incoming/ under a
 *   name that is not a queue ID, ".PID.N.RANDOM", PID being the writer's
 *   process ID. Such a file is never removed while process PID is alive
 *   (whatever its age: a slow client may keep its file open for a long
 *   time). When PID is gone the file is debris: "-p" removes it at once,
 *   "-s" once it is older than an hour. A name that starts with "." but
 *   names no writer is removed only when older than an hour.
 *
 *   Maildrop files (global/maildrop.ts) are named by random hex digits, not
 *   queue IDs, and are written by local users' programs; a file whose
 *   writer finished has group read permission. postsuper leaves maildrop
 *   files to pickup, except that -p and -s remove an unfinished one older
 *   than a day (Postfix's limit: a slow pipe into sendmail may take hours).
 */
import {
  lstatSync,
  mkdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  utimesSync,
  type BigIntStats,
} from "node:fs";
import { dirname, relative } from "node:path";
import { msg } from "../../util/msg.js";
import { makeQueueId, queueIdIsLong } from "../../global/queue-id.js";
import type { QueueName, QueuePaths } from "../../global/queue-path.js";

export const ACTION = {
  STRUCT: 1 << 0,
  PURGE: 1 << 1,
  DELETE_ONE: 1 << 2,
  DELETE_ALL: 1 << 3,
  REQUEUE_ONE: 1 << 4,
  REQUEUE_ALL: 1 << 5,
  HOLD_ONE: 1 << 6,
  HOLD_ALL: 1 << 7,
  RELEASE_ONE: 1 << 8,
  RELEASE_ALL: 1 << 9,
} as const;

/** Mass operations that wait for a second pass when file names were changed to match inode numbers. */
export const AFTER_INODE_FIX = ACTION.REQUEUE_ALL | ACTION.HOLD_ALL | ACTION.RELEASE_ALL;

export interface Counts {
  deleted: number;
  requeued: number;
  held: number;
  released: number;
  inodeFixed: number;
  inodeMismatch: number;
  positionMismatch: number;
  renamed: number;
  quarantined: number;
  purged: number;
  /** Things found that postsuper could not repair. */
  unrepaired: number;
}

export interface SuperCtx {
  paths: QueuePaths;
  /** hash_queue_names and hash_queue_depth. */
  hashed: ReadonlySet<string>;
  depth: number;
  longIds: boolean;
  verbose: boolean;
  counts: Counts;
  /** IDs already requeued in this run (a walk may meet a requeued file again in incoming/). */
  requeued: Set<string>;
}

/** Fresh counters. */
export function newCounts(): Counts {
  return {
    deleted: 0,
    requeued: 0,
    held: 0,
    released: 0,
    inodeFixed: 0,
    inodeMismatch: 0,
    positionMismatch: 0,
    renamed: 0,
    quarantined: 0,
    purged: 0,
    unrepaired: 0,
  };
}

/** Queues holding message files; maildrop among them, though it is not sanitized mail. */
export const MESSAGE_QUEUES: ReadonlySet<QueueName> = new Set([
  "maildrop",
  "incoming",
  "active",
  "deferred",
  "hold",
]);
/** Queues holding per-message log files, named after the message's queue ID. */
export const LOG_QUEUES: readonly QueueName[] = ["bounce", "defer", "trace"];
/** Queues whose files may be deleted by ID when named on the command line. */
export const BY_ID_QUEUES: ReadonlySet<QueueName> = new Set([...MESSAGE_QUEUES, "corrupt", "saved"]);

/** Makes a path relative to the queue directory, for messages. */
export function rel(ctx: SuperCtx, path: string): string {
  return relative(ctx.paths.root, path);
}

/** Renames a file, making the target's directory when missing; false when the source is gone (a lost race). */
export function postrename(ctx: SuperCtx, from: string, to: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      renameSync(from, to);
      if (ctx.verbose) msg.info(`renamed file ${rel(ctx, from)} as ${rel(ctx, to)}`);
      return true;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== "ENOENT")
        return msg.fatal(`rename file ${rel(ctx, from)} as ${rel(ctx, to)}: ${e.message}`);
      if (attempt > 0 || !exists(from)) return false;
      try {
        mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
      } catch (m) {
        return msg.fatal(`mkdir ${rel(ctx, dirname(to))}: ${(m as Error).message}`);
      }
    }
  }
  return false;
}

/** Removes a file; false when it was not there. */
export function postremove(ctx: SuperCtx, path: string): boolean {
  try {
    unlinkSync(path);
    if (ctx.verbose) msg.info(`removed file ${rel(ctx, path)}`);
    return true;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return false;
    return msg.fatal(`remove file ${rel(ctx, path)}: ${e.message}`);
  }
}

/** Removes a directory if it is empty; true when removed. */
export function postrmdir(ctx: SuperCtx, path: string): boolean {
  try {
    rmdirSync(path);
    if (ctx.verbose) msg.info(`remove directory ${rel(ctx, path)}`);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTEMPTY" && code !== "EEXIST")
      msg.warn(`remove directory ${rel(ctx, path)}: ${(err as Error).message}`);
    return false;
  }
}

/** True when a path exists (not following symlinks). */
export function exists(path: string): boolean {
  return lstatOrNull(path) !== null;
}

/** lstat with bigint fields, or null when the path is gone. */
export function lstatOrNull(path: string): BigIntStats | null {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Sets a file's access and modification times to now (a requeued file is new again); warns on failure. */
export function touch(ctx: SuperCtx, path: string): void {
  const now = new Date();
  try {
    utimesSync(path, now, now);
  } catch (err) {
    msg.warn(`${rel(ctx, path)}: reset time stamps: ${(err as Error).message}`);
  }
}

/** The queue ID a file should have given its inode: the ID's time part with the inode part recomputed. */
export function inodeQueueId(id: string, ino: bigint): string {
  const zero = { sec: 0, usec: 0 };
  return queueIdIsLong(id)
    ? id.slice(0, 11) + makeQueueId(zero, ino, true).slice(11)
    : id.slice(0, 5) + makeQueueId(zero, ino, false).slice(5);
}

const MAILDROP_MAX_AGE_MS = 24 * 3600_000;

/** Whether a maildrop file is debris: never finished (no group read bit) and older than a day. */
export function maildropRemovable(mode: number, mtimeMs: number): boolean {
  return (mode & 0o040) === 0 && Date.now() - mtimeMs > MAILDROP_MAX_AGE_MS;
}

const TEMP_NAME = /^\.(\d{1,10})\.\d+\.[0-9a-z]+$/;
const TEMP_MAX_AGE_MS = 3600_000;

/** True when a process exists (EPERM: it exists but is not ours). */
function pidAlive(pid: number): boolean {
  if (pid <= 1) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** True for the name of a temporary file (a queue file being written, or debris of one). */
export function isTempName(name: string): boolean {
  return name.startsWith(".") && name !== "." && name !== "..";
}

/** Whether a temporary file may be removed now: never while its writer lives; see the module comment. */
export function tempRemovable(name: string, mtimeMs: number, purge: boolean): boolean {
  const m = TEMP_NAME.exec(name);
  const old = Date.now() - mtimeMs > TEMP_MAX_AGE_MS;
  if (m === null) return old;
  if (pidAlive(Number(m[1]))) return false;
  return purge || old;
}
