/*
 * postscreen - screens SMTP clients before smtpd sees them
 *
 * SYNOPSIS
 *   master.cf: smtp      inet  n - n - 1 postscreen
 *              smtpd     pass  - - n - - smtpd
 *
 * DESCRIPTION
 *   One event-driven process takes every connection to port 25 (master.cf
 *   maxproc counts postscreen processes; each holds up to
 *   postern_postscreen_client_limit connections). Bots that talk before
 *   their turn, clients on DNS block lists and clients that break the
 *   protocol are kept away from smtpd, cheaply; a client that passes is
 *   handed to smtpd (the pass service smtpd_service_name) through master
 *   as the same live TCP connection. The tests and their log lines are in
 *   postscreen-session.ts and postscreen-smtpd.ts, the result cache in
 *   postscreen-cache.ts. postscreen also works out its own stress state
 *   from how many clients it is screening (postscreen-env.ts).
 */
import { msg } from "../util/msg.js";
import { multiServer } from "../master/mail-server.js";
import { psEnv, updateStress, type PsEnv } from "./postscreen-env.js";
import { parseStamps, PsSession } from "./postscreen-session.js";

let env: PsEnv | null = null;

/** Removes cache entries whose tests all expired longer ago than the retention time. */
async function cleanupCache(e: PsEnv): Promise<void> {
  if (e.cache === null) return;
  const cutoff = Math.floor(Date.now() / 1000) - e.retentionS;
  const r = await e.cache.cleanup((value) => {
    const stamps = parseStamps(value);
    return stamps !== null && stamps.some((t, i) => e.enabled[i] === true && t > cutoff);
  });
  msg.info(
    `cache ${e.cfg.get("postscreen_cache_map")} full cleanup: retained=${r.retained} dropped=${r.dropped} entries`,
  );
}

await multiServer({
  name: "postscreen",
  capacity: (ctx) => ctx.config.int("postern_postscreen_client_limit"),
  onPassQueue(service, waiting) {
    if (env !== null && service === env.passService) env.postQueue = waiting;
  },
  onStart(ctx) {
    const e = psEnv(ctx.config);
    env = e;
    if (e.cache !== null) {
      process.on("exit", () => e.cache?.close());
      if (e.cleanupS > 0) setInterval(() => void cleanupCache(e), e.cleanupS * 1000).unref();
    }
  },
  async onConnection(sock) {
    const e = env;
    if (e === null) return;
    e.screening++;
    updateStress(e);
    try {
      await new PsSession(e, sock).run();
    } finally {
      e.screening--;
      updateStress(e);
    }
  },
});
