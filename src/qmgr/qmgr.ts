/*
 * qmgr - the queue manager
 *
 * SYNOPSIS
 *   master.cf: qmgr unix n - n 300 1 qmgr
 *
 * DESCRIPTION
 *   One long-lived process (a trigger server: master's wakeup every 300
 *   seconds, cleanup's "I" after each new message, postqueue's flush
 *   requests) that moves mail from incoming/ and deferred/ through the
 *   active queue to the delivery agents (qmgr-manager.ts, qmgr-sched.ts),
 *   resolving recipients with trivial-rewrite, and asking the bounce and
 *   defer services for notices (qmgr-report.ts). It also scans the deferred
 *   queue every queue_run_delay by itself.
 *
 *   One queue manager at a time: before it touches the queue, qmgr takes
 *   an exclusive lock on data_directory/qmgr.lock (util/file-lock.ts, a
 *   kernel lock that the end of the process releases, kill -9 included).
 *   After a master is killed, its qmgr notices and exits, but not at once;
 *   a master started meanwhile starts a new qmgr, which waits here for the
 *   old one to be gone (up to a minute; then it fails and master tries
 *   again after service_throttle_time). Two queue managers would both
 *   schedule the same files: one would move files from active/ back to
 *   incoming/ under the other, which could then leave a file stranded in
 *   active/ or deliver and report a message twice.
 */
import { msg } from "../util/msg.js";
import { QueuePaths } from "../global/queue-path.js";
import { RewriteClient } from "../global/rewrite-client.js";
import { BounceClient } from "../global/bounce-client.js";
import { triggerServer } from "../master/mail-server.js";
import { holdFileLock } from "../util/file-lock.js";
import { join } from "node:path";
import { QueueManager } from "./qmgr-manager.js";

let qm: QueueManager | null = null;

/** How long a new qmgr waits for an old one (a daemon whose master died exits within 30 s). */
const LOCK_WAIT_MS = 60_000;

/** Takes the queue manager lock, waiting for an earlier qmgr to end; see the module comment. */
async function lockQueueManager(dataDir: string, waitMs: number): Promise<void> {
  const path = join(dataDir, "qmgr.lock");
  let r = await holdFileLock(path, 0);
  if (!r.ok && r.busy) {
    msg.info(`waiting for another queue manager to end (${r.reason})`);
    r = await holdFileLock(path, waitMs);
  }
  if (r.ok) return;
  if (r.busy) msg.fatal(`another queue manager is running: ${r.reason}`);
  msg.warn(`cannot take the queue manager lock: ${r.reason}; going on without it`);
}

await triggerServer({
  name: "qmgr",
  async onStart(ctx) {
    await lockQueueManager(ctx.config.get("data_directory"), LOCK_WAIT_MS);
    const paths = new QueuePaths(ctx.config);
    const rewrite = RewriteClient.fromConfig(ctx.config);
    qm = new QueueManager(
      ctx.config,
      paths,
      (sender, address, verify) =>
        verify === true ? rewrite.resolveVerify(sender, address) : rewrite.resolve(sender, address),
      BounceClient.fromConfig(ctx.config),
    );
    qm.recover();
    qm.trigger(Buffer.from("ID"));
    const every = ctx.config.time("queue_run_delay") * 1000;
    setInterval(() => qm?.trigger(Buffer.from("D")), every);
    msg.debug("queue manager started");
  },
  onTrigger(data) {
    qm?.trigger(data);
  },
});
