/*
 * postsuper-requeue - what "postsuper -r" does to one queue file
 *
 * DESCRIPTION
 *   Postfix's postsuper -r moves the file to maildrop/, and pickup and
 *   cleanup copy it into a new queue file, so that address rewriting,
 *   canonical and virtual mapping, header/body checks and the content
 *   filter are applied again. Postern has no pickup yet, and its maildrop
 *   is for untrusted local submissions, so -r does this instead:
 *     1. sets QUEUE_FLAG.REQUEUE (global/queue-corrupt.ts) in the flags
 *        field of the file's size record, in place, and fsyncs the file;
 *        a file whose size record cannot be read is moved to corrupt/;
 *     2. moves the file to incoming/ (unless it is there already), keeping
 *        its queue ID; the bounce/defer/trace logs are left alone, as
 *        Postfix leaves them;
 *     3. resets its time stamps to now.
 *   The queue manager, on finding the REQUEUE flag, passes the message
 *   through cleanup again as a new queue file (its envelope and content as
 *   recorded, done recipients excluded), removes the old file and logs
 *   "OLDID: requeued as NEWID" before it schedules any delivery
 *   (src/qmgr/qmgr-requeue.ts).
 */
import { msg } from "../../util/msg.js";
import { QUEUE_FLAG, quarantine, setQueueFlags } from "../../global/queue-corrupt.js";
import type { QueueName } from "../../global/queue-path.js";
import { postrename, touch, type SuperCtx } from "./postsuper-ops.js";

/** Requeues one file (see the module comment); true when done, false when the file is gone or broken. */
export async function requeueFile(
  ctx: SuperCtx,
  queue: QueueName,
  id: string,
  path: string,
  logEach: boolean,
): Promise<boolean> {
  let r;
  try {
    r = await setQueueFlags(path, QUEUE_FLAG.REQUEUE);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return false;
    return msg.fatal(`${id}: mark for requeue: ${e.message}`);
  }
  if (!r.ok) {
    if (quarantine(ctx.paths, queue, id, r.reason, r.offset, path)) ctx.counts.quarantined++;
    return false;
  }
  const target = ctx.paths.path("incoming", id);
  if (target !== path && !postrename(ctx, path, target)) return false;
  touch(ctx, target);
  ctx.requeued.add(id);
  if (logEach) msg.info(`${id}: requeued`);
  return true;
}
