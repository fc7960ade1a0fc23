/*
 * verify-service - the verify service's requests: query and update
 *
 * SYNOPSIS
 *   const svc = new VerifyService({ cache, store, probe: (addr) => sendProbe(cfg, addr) });
 *   const reply = svc.handle(requestAttrs);      // the reply frame
 *
 * DESCRIPTION
 *   Carries out global/verify-proto.ts requests against the cache
 *   (verify-cache.ts): a query is answered at once and, when the cache
 *   says a probe is due, the probe is posted in the background (the
 *   client polls for its outcome); an update records a probe's outcome.
 *   Changes are saved to the store (verify-store.ts) at most once per
 *   saveDelayMs, and by flush(). A malformed request is answered "bad"
 *   and logged. The probe sender and the clock are injected so that tests
 *   can drive the service without a queue.
 */
import { attrList, type AttrList } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import { VerifyQuery, VerifyRequest, VerifyUpdate, addrStatusName } from "../global/verify-proto.js";
import type { VerifyCache } from "./verify-cache.js";
import type { VerifyStore } from "./verify-store.js";

export interface VerifyServiceOptions {
  cache: VerifyCache;
  store: VerifyStore | null;
  /** Posts a probe; resolves to its queue ID or a failure. */
  probe: (address: string) => Promise<{ ok: true; id: string } | { ok: false; reason: string }>;
  /** Now, in seconds. */
  now?: () => number;
  saveDelayMs?: number;
}

export class VerifyService {
  readonly cache: VerifyCache;
  #store: VerifyStore | null;
  #probe: VerifyServiceOptions["probe"];
  #now: () => number;
  #saveDelayMs: number;
  #saveTimer: NodeJS.Timeout | null = null;
  /** Probes being posted (for tests and orderly exits). */
  #posting = new Set<Promise<void>>();

  constructor(o: VerifyServiceOptions) {
    this.cache = o.cache;
    this.#store = o.store;
    this.#probe = o.probe;
    this.#now = o.now ?? (() => Math.floor(Date.now() / 1000));
    this.#saveDelayMs = o.saveDelayMs ?? 1000;
  }

  /** Carries out one request; returns the reply. */
  handle(req: AttrList): AttrList {
    const kind = VerifyRequest.parse(req);
    if (!kind.ok) return bad(`malformed request: ${kind.error}`);
    if (kind.value.request === "update") {
      const u = VerifyUpdate.parse(req);
      if (!u.ok) return bad(`malformed update request: ${u.error}`);
      const status = u.value.addr_status as 0 | 1 | 2;
      this.cache.update(u.value.address, status, u.value.reason, this.#now());
      msg.debug(`update ${u.value.address}: ${addrStatusName(status)} (${u.value.reason})`);
      this.scheduleSave();
      return attrList({ status: "ok" });
    }
    const q = VerifyQuery.parse(req);
    if (!q.ok) return bad(`malformed query request: ${q.error}`);
    const a = this.cache.query(q.value.address, this.#now());
    if (a.probe) {
      this.cache.probeSent(q.value.address, this.#now());
      const p = this.#post(q.value.address).finally(() => this.#posting.delete(p));
      this.#posting.add(p);
    }
    return attrList({ status: "ok", addr_status: a.status, reason: a.reason.slice(0, 1000) });
  }

  /** Posts one probe. */
  async #post(address: string): Promise<void> {
    const r = await this.#probe(address);
    if (r.ok) msg.debug(`probe for ${address}: ${r.id}`);
    else msg.warn(`cannot send a verification probe for ${address}: ${r.reason}`);
    this.scheduleSave();
  }

  /** Waits for the probes being posted. */
  async settled(): Promise<void> {
    await Promise.all([...this.#posting]);
  }

  /** Saves soon (once per saveDelayMs at most). */
  scheduleSave(): void {
    if (this.#store === null || this.#saveTimer !== null) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null;
      this.flush();
    }, this.#saveDelayMs);
  }

  /** Saves now when something changed. */
  flush(): void {
    if (this.#saveTimer !== null) clearTimeout(this.#saveTimer);
    this.#saveTimer = null;
    if (this.cache.takeDirty()) this.#store?.save(this.cache);
  }

  /** Removes expired entries; returns how many went. */
  cleanup(): number {
    const n = this.cache.cleanup(this.#now());
    if (n > 0) this.scheduleSave();
    return n;
  }
}

/** A "bad" answer, logged. */
function bad(reason: string): AttrList {
  msg.warn(reason);
  return attrList({ status: "bad", reason: reason.slice(0, 1000) });
}
