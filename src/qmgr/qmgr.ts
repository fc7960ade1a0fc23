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
 */
import { msg } from "../util/msg.js";
import { QueuePaths } from "../global/queue-path.js";
import { RewriteClient } from "../global/rewrite-client.js";
import { BounceClient } from "../global/bounce-client.js";
import { triggerServer } from "../master/mail-server.js";
import { QueueManager } from "./qmgr-manager.js";

let qm: QueueManager | null = null;

await triggerServer({
  name: "qmgr",
  onStart(ctx) {
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
