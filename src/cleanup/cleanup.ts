/*
 * cleanup - the only writer of new queue files
 *
 * SYNOPSIS
 *   master.cf: cleanup unix n - n - 0 cleanup
 *
 * DESCRIPTION
 *   Receives messages from smtpd, pickup and other clients as a stream
 *   (global/cleanup-proto.ts), processes the headers and body
 *   (cleanup-message.ts), writes the queue file and makes it durable before
 *   it answers (cleanup-session.ts). After each new file it wakes the queue
 *   manager with an "I" (scan incoming) trigger on public/qmgr; a missing
 *   qmgr is not an error (its own scan finds the file).
 *   Many clients are served at once by one process (multiServer).
 */
import { msg } from "../util/msg.js";
import { QMGR_SCAN_INCOMING, sendTrigger } from "../global/qmgr-trigger.js";
import { QueuePaths } from "../global/queue-path.js";
import { multiServer } from "../master/mail-server.js";
import { serveCleanup, type CleanupEnv } from "./cleanup-session.js";
import { cleanupTables } from "./cleanup-tables.js";

let env: CleanupEnv | null = null;

await multiServer({
  name: "cleanup",
  preInit(ctx) {
    // The tables (canonical, virtual, header and body checks, ...) are opened while root, as in Postfix.
    // A configuration error is reported with each message, as when the tables open later.
    try {
      cleanupTables(ctx.config);
    } catch {
      /* see above */
    }
  },
  onStart(ctx) {
    const paths = new QueuePaths(ctx.config);
    let wakeupPending = false;
    env = {
      cfg: ctx.config,
      paths,
      published: () => {
        if (wakeupPending) return;
        wakeupPending = true;
        setImmediate(() => {
          wakeupPending = false;
          void sendTrigger(paths.root, "public", "qmgr", QMGR_SCAN_INCOMING, 1000).then((err) => {
            if (err !== null) msg.debug(`qmgr wakeup: ${err}`);
          });
        });
      },
    };
  },
  async onConnection(sock) {
    if (env === null) return;
    await serveCleanup(sock, env);
  },
});
