/*
 * tlsmgr-service - the answers of the tlsmgr service
 *
 * SYNOPSIS
 *   const svc = new TlsmgrService({ ticketLifetime: 3600, limits });
 *   const reply = svc.answer(request);   // an AttrList for an AttrList
 *
 * DESCRIPTION
 *   Checks each request of global/tlsmgr-proto.ts and answers it from the
 *   ticket key and the three session caches (smtpd, smtp, lmtp) of
 *   tlsmgr-cache.ts. A malformed request is logged and gets
 *   { status: "fail" }; nothing a client sends can throw.
 */
import type { AttrList } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import {
  TLSMGR_CACHE_TYPES,
  TlsmgrReply,
  TlsmgrRequest,
  type TlsmgrCacheType,
} from "../global/tlsmgr-proto.js";
import { SessionCache, TicketKeys, type CacheLimits } from "./tlsmgr-cache.js";

export interface TlsmgrServiceOptions {
  /** The ticket key lifetime in seconds (0: tickets are off). */
  ticketLifetime: number;
  limits: CacheLimits;
  now?: () => number;
}

/** The state of one tlsmgr process and its request handler. */
export class TlsmgrService {
  readonly keys: TicketKeys;
  readonly caches: ReadonlyMap<TlsmgrCacheType, SessionCache>;

  constructor(opts: TlsmgrServiceOptions) {
    this.keys = new TicketKeys(opts.ticketLifetime, opts.now);
    this.caches = new Map(TLSMGR_CACHE_TYPES.map((t) => [t, new SessionCache(opts.limits, opts.now)]));
  }

  /** Answers one request. */
  answer(req: AttrList): AttrList {
    const fail = TlsmgrReply.build({ status: "fail" });
    const p = TlsmgrRequest.parse(req);
    if (!p.ok) {
      msg.warn(`bad tlsmgr request: ${p.error}`);
      return fail;
    }
    const r = p.value;
    if (r.request === "tktkey") {
      const k = this.keys.current();
      return k === null ? fail : TlsmgrReply.build({ status: "ok", key: k.key, lifetime: k.lifetime });
    }
    const cache = r.cache_type === undefined ? undefined : this.caches.get(r.cache_type);
    if (cache === undefined || r.cache_id === undefined) {
      msg.warn(`bad tlsmgr ${r.request} request: no cache_type or cache_id`);
      return fail;
    }
    switch (r.request) {
      case "lookup": {
        const s = cache.get(r.cache_id);
        return TlsmgrReply.build(s === null ? { status: "notfound" } : { status: "ok", session: s });
      }
      case "update":
        if (r.session === undefined || r.timeout === undefined) {
          msg.warn("bad tlsmgr update request: no session or timeout");
          return fail;
        }
        return TlsmgrReply.build({ status: cache.put(r.cache_id, r.session, r.timeout) ? "ok" : "fail" });
      case "delete":
        cache.delete(r.cache_id);
        return TlsmgrReply.build({ status: "ok" });
    }
  }

  /** Drops the expired entries of every cache; returns how many went. */
  sweep(): number {
    let n = 0;
    for (const c of this.caches.values()) n += c.sweep();
    return n;
  }
}
