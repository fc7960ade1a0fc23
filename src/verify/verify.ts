/*
 * verify - the address verification service
 *
 * SYNOPSIS
 *   master.cf: verify unix - - n - 1 verify
 *
 * DESCRIPTION
 *   As Postfix's verify(8): serves global/verify-proto.ts on
 *   private/$address_verify_service_name for smtpd (reject_unverified_*)
 *   and for the delivery agents that report probe outcomes
 *   (verify-service.ts). A query is answered from the cache
 *   (verify-cache.ts); when the cache has no fresh answer a probe is
 *   posted through the normal queue (verify-probe.ts) and the client hears
 *   3 "Address verification in progress" until the outcome arrives as an
 *   update. The cache is kept in address_verify_map (verify-store.ts),
 *   loaded at start, saved a second after a change and at exit, and
 *   cleaned of expired entries every
 *   address_verify_cache_cleanup_interval. Run it as one process (maxproc
 *   1, which counts processes for verify: that process serves all its
 *   clients at once) and without chroot (the cache file is in
 *   data_directory): the cache lives in that process.
 *
 *   Limits: address_verify_pending_request_limit probes in flight,
 *   postern_address_verify_probe_rate_limit probes per second,
 *   postern_address_verify_cache_limit cached addresses.
 */
import type { Socket } from "node:net";
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import { VERIFY_FRAME_MAX, VERIFY_PROTOCOL } from "../global/verify-proto.js";
import { multiServer, sharedCapacity, type ServerContext } from "../master/mail-server.js";
import { VerifyCache, type VerifySettings } from "./verify-cache.js";
import { sendProbe } from "./verify-probe.js";
import { VerifyService } from "./verify-service.js";
import { VerifyStore } from "./verify-store.js";

/** Serves one client. */
async function serve(sock: Socket, ctx: ServerContext, svc: VerifyService): Promise<void> {
  const conn = serveAttrConnection(sock, {
    protocol: VERIFY_PROTOCOL,
    maxFrame: VERIFY_FRAME_MAX,
    idleTimeoutMs: ctx.config.time("ipc_timeout") * 1000,
    handler: (req) => Promise.resolve(svc.handle(req)),
  });
  await conn.done;
}

/** The cache settings from main.cf. */
export function verifySettings(cfg: Config): VerifySettings {
  return {
    posExpire: cfg.time("address_verify_positive_expire_time"),
    posRefresh: cfg.time("address_verify_positive_refresh_time"),
    negCache: cfg.bool("address_verify_negative_cache"),
    negExpire: cfg.time("address_verify_negative_expire_time"),
    negRefresh: cfg.time("address_verify_negative_refresh_time"),
    limit: cfg.int("postern_address_verify_cache_limit"),
    pendingLimit: cfg.int("address_verify_pending_request_limit"),
    rateLimit: cfg.int("postern_address_verify_probe_rate_limit"),
  };
}

let svc: VerifyService | null = null;

await multiServer({
  name: "verify",
  capacity: sharedCapacity,
  onStart(ctx) {
    const cfg = ctx.config;
    const store = VerifyStore.open(cfg.get("address_verify_map"));
    const cache = new VerifyCache(verifySettings(cfg));
    store?.loadInto(cache);
    const s = new VerifyService({ cache, store, probe: (address) => sendProbe(cfg, address) });
    process.on("exit", () => s.flush());
    const every = cfg.time("address_verify_cache_cleanup_interval");
    if (every > 0)
      setInterval(
        () => {
          const n = s.cleanup();
          if (n > 0)
            msg.info(
              `cache ${cfg.get("address_verify_map")} full cleanup: retained=${cache.size} dropped=${n} entries`,
            );
        },
        Math.min(every * 1000, 2 ** 31 - 1),
      ).unref();
    svc = s;
  },
  async onConnection(sock, ctx) {
    if (svc !== null) await serve(sock, ctx, svc);
  },
});
