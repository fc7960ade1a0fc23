/*
 * verify - the address verification service
 *
 * SYNOPSIS
 *   master.cf: verify unix - - n - 1 verify
 *
 * DESCRIPTION
 *   As Postfix's verify(8): serves global/verify-proto.ts on
 *   private/$address_verify_service_name for smtpd (reject_unverified_*)
 *   and for the delivery agents that report probe outcomes. A query is
 *   answered from the cache (verify-cache.ts); when the cache has no
 *   fresh answer a probe is posted through the normal queue
 *   (verify-probe.ts) and the client hears 3 "Address verification in
 *   progress" until the outcome arrives as an update. The cache is kept
 *   in address_verify_map (verify-store.ts), loaded at start, saved a
 *   second after a change and at exit, and cleaned of expired entries
 *   every address_verify_cache_cleanup_interval. Run it as one process
 *   (maxproc 1): the cache lives in that process.
 *
 *   Limits: address_verify_pending_request_limit probes in flight,
 *   postern_address_verify_probe_rate_limit probes per second,
 *   postern_address_verify_cache_limit cached addresses. A malformed
 *   request is answered "bad" and logged.
 */
import type { Socket } from "node:net";
import { attrList, type AttrList } from "../util/attr-codec.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import {
  VERIFY_FRAME_MAX,
  VERIFY_PROTOCOL,
  VerifyQuery,
  VerifyRequest,
  VerifyUpdate,
  addrStatusName,
} from "../global/verify-proto.js";
import { multiServer, type ServerContext } from "../master/mail-server.js";
import { VerifyCache } from "./verify-cache.js";
import { sendProbe } from "./verify-probe.js";
import { VerifyStore } from "./verify-store.js";

const SAVE_DELAY_MS = 1000;

interface State {
  cfg: Config;
  cache: VerifyCache;
  store: VerifyStore | null;
  saveTimer: NodeJS.Timeout | null;
}

/** Now in seconds. */
function now(): number {
  return Math.floor(Date.now() / 1000);
}

/** A "bad" answer, logged. */
function bad(reason: string): AttrList {
  msg.warn(reason);
  return attrList({ status: "bad", reason: reason.slice(0, 1000) });
}

/** Saves soon (once per SAVE_DELAY_MS at most). */
function scheduleSave(st: State): void {
  if (st.store === null || st.saveTimer !== null) return;
  st.saveTimer = setTimeout(() => {
    st.saveTimer = null;
    if (st.cache.takeDirty()) st.store?.save(st.cache);
  }, SAVE_DELAY_MS);
}

/** Posts a probe for an address; the cache hears whether it went. */
async function probe(st: State, address: string): Promise<void> {
  st.cache.probeSent(address, now());
  const r = await sendProbe(st.cfg, address);
  if (r.ok) msg.debug(`probe for ${address}: ${r.id}`);
  else msg.warn(`cannot send a verification probe for ${address}: ${r.reason}`);
  scheduleSave(st);
}

/** Carries out one request. */
function handle(st: State, req: AttrList): AttrList {
  const kind = VerifyRequest.parse(req);
  if (!kind.ok) return bad(`malformed request: ${kind.error}`);
  if (kind.value.request === "update") {
    const u = VerifyUpdate.parse(req);
    if (!u.ok) return bad(`malformed update request: ${u.error}`);
    const status = u.value.addr_status as 0 | 1 | 2;
    st.cache.update(u.value.address, status, u.value.reason, now());
    msg.debug(`update ${u.value.address}: ${addrStatusName(status)} (${u.value.reason})`);
    scheduleSave(st);
    return attrList({ status: "ok" });
  }
  const q = VerifyQuery.parse(req);
  if (!q.ok) return bad(`malformed query request: ${q.error}`);
  const a = st.cache.query(q.value.address, now());
  if (a.probe) void probe(st, q.value.address);
  return attrList({ status: "ok", addr_status: a.status, reason: a.reason.slice(0, 1000) });
}

/** Serves one client. */
async function serve(sock: Socket, ctx: ServerContext, st: State): Promise<void> {
  const conn = serveAttrConnection(sock, {
    protocol: VERIFY_PROTOCOL,
    maxFrame: VERIFY_FRAME_MAX,
    idleTimeoutMs: ctx.config.time("ipc_timeout") * 1000,
    handler: (req) => Promise.resolve(handle(st, req)),
  });
  await conn.done;
}

/** The cache settings from main.cf. */
function settings(cfg: Config): ConstructorParameters<typeof VerifyCache>[0] {
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

let st: State | null = null;

await multiServer({
  name: "verify",
  onStart(ctx) {
    const cfg = ctx.config;
    const store = VerifyStore.open(cfg.get("address_verify_map"));
    const s: State = { cfg, cache: new VerifyCache(settings(cfg)), store, saveTimer: null };
    store?.loadInto(s.cache);
    process.on("exit", () => {
      if (s.cache.takeDirty()) s.store?.save(s.cache);
    });
    const every = cfg.time("address_verify_cache_cleanup_interval");
    if (every > 0)
      setInterval(
        () => {
          const n = s.cache.cleanup(now());
          if (n > 0) {
            msg.info(
              `cache ${cfg.get("address_verify_map")} full cleanup: retained=${s.cache.size} dropped=${n} entries`,
            );
            scheduleSave(s);
          }
        },
        Math.min(every * 1000, 2 ** 31 - 1),
      ).unref();
    st = s;
  },
  async onConnection(sock, ctx) {
    if (st !== null) await serve(sock, ctx, st);
  },
});
