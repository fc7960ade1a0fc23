/*
 * postsuper-walk - check and repair the queue structure; mass operations
 *
 * SYNOPSIS
 *   await superWalk(ctx, queues, action);   // one pass over the named queues
 *
 * DESCRIPTION
 *   Postfix's super(): walks each queue, its hash subdirectories included
 *   (whatever the current hashing: files left by an older setting are
 *   found), and for each entry, in this order:
 *   - a subdirectory that is not a one-character hash level is removed if
 *     empty; a hash level deeper than hash_queue_depth is removed once
 *     emptied;
 *   - -d ALL removes the file (a temporary file whose writer is alive is
 *     left alone: it is not mail yet);
 *   - a symlink, socket or other non-file is removed;
 *   - a temporary file is removed by the rule in postsuper-ops.ts (-p, -s);
 *   - -s: NEWID#FIX, left by a rename to match the inode number, gets its
 *     final name and place;
 *   - -s: a file in a message queue whose name is not a queue ID is given
 *     one (from its arrival time and inode) when it is a sound queue file,
 *     and moved to corrupt/ when it is not;
 *   - -s: a message file whose ID does not match its inode number (a queue
 *     restored from backup or another machine) is renamed NEWID#FIX, its
 *     bounce/defer/trace logs first, and a second pass strips "#FIX";
 *   - -r ALL, -h ALL, -H ALL move the file (see postsuper-run.ts);
 *   - -s: a message file that is not complete and well-formed
 *     (checkQueueFile) is moved to corrupt/; a file in the wrong hash
 *     directory is moved to the right one.
 *   maildrop is neither hashed nor checked: its files are not sanitized
 *   yet and are not named by queue IDs; pickup validates them. Only -d ALL
 *   and the removal of unfinished debris (postsuper-ops.ts) touch them.
 */
import { readdirSync, type BigIntStats } from "node:fs";
import { join } from "node:path";
import { msg } from "../../util/msg.js";
import { checkQueueFile, quarantine } from "../../global/queue-corrupt.js";
import { makeQueueId, queueIdOk } from "../../global/queue-id.js";
import type { QueueName } from "../../global/queue-path.js";
import {
  ACTION,
  AFTER_INODE_FIX,
  LOG_QUEUES,
  MESSAGE_QUEUES,
  inodeQueueId,
  isTempName,
  lstatOrNull,
  maildropRemovable,
  postremove,
  postrename,
  postrmdir,
  rel,
  tempRemovable,
  type SuperCtx,
} from "./postsuper-ops.js";
import { requeueFile } from "./postsuper-requeue.js";

const FIX = "#FIX";

interface Pass {
  ctx: SuperCtx;
  queue: QueueName;
  action: number;
}

/** One pass over the queues; resolves when done. */
export async function superWalk(ctx: SuperCtx, queues: readonly QueueName[], action: number): Promise<void> {
  const pass: Pass = { ctx, queue: "incoming", action };
  for (const queue of queues) {
    if (ctx.verbose) msg.info(`queue: ${queue}`);
    pass.queue = queue;
    if (queue === "maildrop" && wantedDepth(pass) > 0) msg.fatal("maildrop queue must not be hashed");
    await walkDir(pass, join(ctx.paths.root, queue), 0);
  }
}

/** The number of hash levels a queue should have. */
function wantedDepth(pass: Pass): number {
  return pass.ctx.hashed.has(pass.queue) ? pass.ctx.depth : 0;
}

/** Walks one directory of a queue. */
async function walkDir(pass: Pass, dir: string, level: number): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    return msg.fatal(`open directory ${rel(pass.ctx, dir)}: ${(err as Error).message}`);
  }
  for (const name of names) {
    const path = join(dir, name);
    const st = lstatOrNull(path);
    if (st === null) continue;
    if (st.isDirectory()) {
      if (name.length === 1 && pass.queue !== "maildrop") {
        await walkDir(pass, path, level + 1);
        if (level + 1 > wantedDepth(pass)) postrmdir(pass.ctx, path);
      } else postrmdir(pass.ctx, path);
      continue;
    }
    await visitFile(pass, path, name, st);
  }
}

/** Handles one file; see the module comment for the order. */
async function visitFile(pass: Pass, path: string, name: string, st: BigIntStats): Promise<void> {
  const { ctx, queue, action } = pass;
  const message = MESSAGE_QUEUES.has(queue);
  const checked = message && queue !== "maildrop";
  if (action & ACTION.DELETE_ALL) {
    if (isTempName(name) && !tempRemovable(name, Number(st.mtimeMs), true)) return;
    const mail = queue === "maildrop" ? (Number(st.mode) & 0o040) !== 0 : message && queueIdOk(name);
    if (postremove(ctx, path) && mail) ctx.counts.deleted++;
    return;
  }
  if (!st.isFile()) {
    postremove(ctx, path);
    return;
  }
  if (queue === "maildrop") {
    if (action & (ACTION.PURGE | ACTION.STRUCT) && maildropRemovable(Number(st.mode), Number(st.mtimeMs)))
      if (postremove(ctx, path)) ctx.counts.purged++;
    return;
  }
  if (isTempName(name)) {
    if (
      action & (ACTION.PURGE | ACTION.STRUCT) &&
      tempRemovable(name, Number(st.mtimeMs), (action & ACTION.PURGE) !== 0)
    )
      if (postremove(ctx, path)) ctx.counts.purged++;
    return;
  }
  if (action & ACTION.STRUCT && name.endsWith(FIX)) {
    const fixed = stripFix(pass, path, name, st);
    if (fixed === null) return;
    [path, name] = fixed;
  }
  if (!queueIdOk(name)) {
    if (queue === "flush") return;
    if (action & ACTION.STRUCT && checked) await nameBogusFile(pass, path, name, st);
    else {
      msg.warn(`bogus file name: ${rel(ctx, path)}`);
      ctx.counts.unrepaired++;
    }
    return;
  }
  if (action & ACTION.STRUCT && checked && inodeQueueId(name, st.ino) !== name) {
    ctx.counts.inodeMismatch++;
    pass.action &= ~AFTER_INODE_FIX;
    fixQueueId(pass, path, name, inodeQueueId(name, st.ino));
    return;
  }
  if (await massMove(pass, path, name)) return;
  if (action & ACTION.STRUCT) {
    if (checked) {
      const c = await checkQueueFile(path);
      if (!c.ok) {
        if (quarantine(ctx.paths, queue, name, c.reason, c.offset, path)) ctx.counts.quarantined++;
        return;
      }
    }
    const wanted = ctx.paths.path(queue, name);
    if (wanted !== path) {
      ctx.counts.positionMismatch++;
      postrename(ctx, path, wanted);
    }
  }
}

/** -r ALL, -h ALL, -H ALL on one file; true when the file was taken care of. */
async function massMove(pass: Pass, path: string, name: string): Promise<boolean> {
  const { ctx, queue, action } = pass;
  const sanitized = MESSAGE_QUEUES.has(queue) && queue !== "maildrop";
  if (action & ACTION.REQUEUE_ALL && sanitized) {
    if (!ctx.requeued.has(name) && (await requeueFile(ctx, queue, name, path, false))) ctx.counts.requeued++;
    return true;
  }
  if (action & ACTION.HOLD_ALL && sanitized && queue !== "hold") {
    if (postrename(ctx, path, ctx.paths.path("hold", name))) ctx.counts.held++;
    return true;
  }
  if (action & ACTION.RELEASE_ALL && queue === "hold") {
    if (postrename(ctx, path, ctx.paths.path("deferred", name))) ctx.counts.released++;
    return true;
  }
  return false;
}

/** Gives NEWID#FIX its final name; returns the new path and name, or null when nothing more can be done. */
function stripFix(pass: Pass, path: string, name: string, st: BigIntStats): [string, string] | null {
  const { ctx, queue } = pass;
  const id = name.slice(0, -FIX.length);
  const checked = MESSAGE_QUEUES.has(queue) && queue !== "maildrop";
  if (!queueIdOk(id) || (checked && inodeQueueId(id, st.ino) !== id)) {
    msg.warn(`${queueIdOk(id) ? "name/inode mismatch" : "bogus file name"}: ${rel(ctx, path)}`);
    ctx.counts.unrepaired++;
    return null;
  }
  const wanted = ctx.paths.path(queue, id);
  if (!postrename(ctx, path, wanted)) return null;
  if (checked) ctx.counts.inodeFixed++;
  return [wanted, id];
}

/** Renames a message file (and its logs, first) to NEWID#FIX, so that an interrupted run can be resumed. */
function fixQueueId(pass: Pass, path: string, id: string, newId: string): void {
  const { ctx, queue } = pass;
  for (const lq of LOG_QUEUES) {
    postrename(ctx, ctx.paths.path(lq, id), join(ctx.paths.dir(lq, newId), newId + FIX));
  }
  postrename(ctx, path, join(ctx.paths.dir(queue, newId), newId + FIX));
}

/** A file whose name is not a queue ID: named after its arrival time and inode if sound, else quarantined. */
async function nameBogusFile(pass: Pass, path: string, name: string, st: BigIntStats): Promise<void> {
  const { ctx, queue } = pass;
  const c = await checkQueueFile(path);
  if (!c.ok) {
    const mtime = {
      sec: Number(st.mtimeNs / 1_000_000_000n),
      usec: Number((st.mtimeNs / 1000n) % 1_000_000n),
    };
    const id = makeQueueId(mtime, st.ino, ctx.longIds);
    if (quarantine(ctx.paths, queue, id, `${c.reason} (file was named ${name})`, c.offset, path))
      ctx.counts.quarantined++;
    return;
  }
  const id = makeQueueId(c.env.arrival, st.ino, ctx.longIds);
  const wanted = ctx.paths.path(queue, id);
  if (lstatOrNull(wanted) !== null) {
    msg.warn(`bogus file name: ${rel(ctx, path)}: ${rel(ctx, wanted)} exists`);
    ctx.counts.unrepaired++;
    return;
  }
  if (postrename(ctx, path, wanted)) {
    msg.info(`${id}: bogus file name ${rel(ctx, path)} renamed`);
    ctx.counts.renamed++;
  }
}
