/*
 * verify-cache - the address verification cache: answers, expiry, probes, limits
 *
 * SYNOPSIS
 *   const c = new VerifyCache(settings);
 *   const a = c.query(addr, now);      // { status, reason, probe }: probe says "send one now"
 *   c.probeSent(addr, now);            // or c.probeRefused(addr) when it could not be sent
 *   c.update(addr, status, reason, now);
 *   c.cleanup(now);                    // drops expired entries
 *
 * DESCRIPTION
 *   One entry per address: status (0 deliverable, 1 deferred, 2
 *   undeliverable, 3 probe sent and no answer yet), when the last probe was sent (0: none in flight),
 *   when the status was last updated (0: never), and the reason. The
 *   rules are Postfix's verify(8):
 *     query    no entry, a malformed one, or an expired one (deliverable
 *              past address_verify_positive_expire_time, other past
 *              address_verify_negative_expire_time) with no probe sent in
 *              the last PROBE_TTL seconds answers 3 "Address verification
 *              in progress". A probe is due when no probe was sent in the
 *              last PROBE_TTL seconds and the entry is older than its
 *              refresh time (address_verify_positive_refresh_time or
 *              address_verify_negative_refresh_time); the entry then
 *              remembers the probe (only when it had been updated before
 *              or negative caching is on).
 *     update   a failed probe does not replace a deliverable entry (the
 *              address is probed again at the next query); any other
 *              outcome replaces the entry.
 *   Limits, so that a flood of unknown addresses fills neither the queue
 *   nor the disk: at most `pendingLimit` probes in flight (sent within
 *   PROBE_TTL and not answered), at most `rateLimit` probes per second,
 *   and at most `limit` entries (the entry updated longest ago goes
 *   first). An address that cannot be probed because of a limit answers
 *   3 as well; it is probed at a later query.
 *   Keys are at most VERIFY_ADDR_MAX bytes; ":" is stored as "_" as in
 *   Postfix. The cache is a Map in update order; persistence is the
 *   caller's (verify-store.ts) through entries() and load().
 */
import { ADDR_STATUS, VERIFY_ADDR_MAX, type AddrStatus } from "../global/verify-proto.js";

/** Seconds after which a probe without an answer counts as lost. */
export const PROBE_TTL = 1000;

export interface VerifySettings {
  posExpire: number;
  posRefresh: number;
  negCache: boolean;
  negExpire: number;
  negRefresh: number;
  /** The most entries kept. */
  limit: number;
  /** The most probes in flight. */
  pendingLimit: number;
  /** The most probes per second (0: no limit). */
  rateLimit: number;
}

export interface CacheEntry {
  status: number;
  probed: number;
  updated: number;
  reason: string;
}

export interface QueryAnswer {
  status: AddrStatus;
  reason: string;
  /** A probe is due: send one and call probeSent(), or probeRefused() when that fails. */
  probe: boolean;
}

/** The stored form, as Postfix's: "status:probed:updated:text". */
export function formatEntry(e: CacheEntry): string {
  return `${e.status}:${e.probed}:${e.updated}:${e.reason}`;
}

/** Parses the stored form; null when malformed. */
export function parseEntry(v: string): CacheEntry | null {
  const m = /^([0-3]):(\d{1,15}):(\d{1,15}):(.*)$/s.exec(v);
  if (m === null) return null;
  return { status: Number(m[1]), probed: Number(m[2]), updated: Number(m[3]), reason: m[4] ?? "" };
}

/** The cache key of an address. */
export function cacheKey(address: string): string {
  return address.replace(/:/g, "_");
}

export class VerifyCache {
  #s: VerifySettings;
  #map = new Map<string, CacheEntry>();
  /** Addresses with a probe in flight, and when it was sent. */
  #pending = new Map<string, number>();
  #second = 0;
  #sentThisSecond = 0;
  #dirty = false;

  constructor(s: VerifySettings) {
    this.#s = s;
  }

  /** Entries held. */
  get size(): number {
    return this.#map.size;
  }

  /** Probes in flight. */
  get pending(): number {
    return this.#pending.size;
  }

  /** True when something changed since the last takeDirty(). */
  takeDirty(): boolean {
    const d = this.#dirty;
    this.#dirty = false;
    return d;
  }

  /** Puts an entry at the end of the update order, evicting the oldest beyond the limit. */
  #put(key: string, e: CacheEntry): void {
    this.#map.delete(key);
    this.#map.set(key, e);
    this.#dirty = true;
    while (this.#map.size > this.#s.limit) {
      const first = this.#map.keys().next();
      if (first.done === true) break;
      this.#map.delete(first.value);
    }
  }

  /** True when an entry has outlived its expire time. */
  #expired(e: CacheEntry, now: number): boolean {
    return e.status === ADDR_STATUS.OK
      ? e.updated + this.#s.posExpire < now
      : e.updated + this.#s.negExpire < now;
  }

  /** True when an entry is older than its refresh time. */
  #refreshDue(status: number, updated: number, now: number): boolean {
    return status === ADDR_STATUS.OK
      ? updated + this.#s.posRefresh < now
      : updated + this.#s.negRefresh < now;
  }

  /** Forgets probes that have been in flight longer than PROBE_TTL. */
  #prunePending(now: number): void {
    for (const [k, at] of this.#pending) {
      if (now - at <= PROBE_TTL) break;
      this.#pending.delete(k);
    }
  }

  /** True when the probe limits allow one more probe now. */
  #probeAllowed(now: number): boolean {
    this.#prunePending(now);
    if (this.#pending.size >= this.#s.pendingLimit) return false;
    const sec = Math.floor(now);
    if (sec !== this.#second) {
      this.#second = sec;
      this.#sentThisSecond = 0;
    }
    return this.#s.rateLimit === 0 || this.#sentThisSecond < this.#s.rateLimit;
  }

  /** Answers a query (see the module comment). */
  query(address: string, now: number): QueryAnswer {
    const key = cacheKey(address);
    const e = this.#map.get(key);
    let status: number = ADDR_STATUS.TODO;
    let reason = "Address verification in progress";
    let probed = 0;
    let updated = 0;
    if (e !== undefined && !(now - e.probed > PROBE_TTL && this.#expired(e, now))) {
      ({ status, reason, probed, updated } = e);
    } else if (e !== undefined && !this.#s.negCache) {
      this.#map.delete(key);
      this.#dirty = true;
    }
    const due =
      Buffer.byteLength(key) <= VERIFY_ADDR_MAX &&
      now - probed > PROBE_TTL &&
      !this.#pending.has(key) &&
      this.#refreshDue(status, updated, now) &&
      this.#probeAllowed(now);
    return { status: status as AddrStatus, reason, probe: due };
  }

  /** Records that a probe was sent for an address. */
  probeSent(address: string, now: number): void {
    const key = cacheKey(address);
    this.#sentThisSecond++;
    this.#pending.delete(key);
    this.#pending.set(key, now);
    const e = this.#map.get(key);
    if (e !== undefined && (e.updated !== 0 || this.#s.negCache)) this.#put(key, { ...e, probed: now });
    else if (e === undefined && this.#s.negCache)
      this.#put(key, {
        status: ADDR_STATUS.TODO,
        probed: now,
        updated: 0,
        reason: "Address verification in progress",
      });
  }

  /** Records an outcome (status 0, 1 or 2). */
  update(address: string, status: 0 | 1 | 2, reason: string, now: number): void {
    const key = cacheKey(address);
    this.#pending.delete(key);
    const e = this.#map.get(key);
    if (status !== ADDR_STATUS.OK && e !== undefined && e.status === ADDR_STATUS.OK && e.updated !== 0)
      return;
    this.#put(key, { status, probed: 0, updated: now, reason });
  }

  /** Removes expired entries that have no probe in flight; returns how many went. */
  cleanup(now: number): number {
    let n = 0;
    for (const [k, e] of this.#map)
      if (!(now - e.probed < PROBE_TTL) && this.#expired(e, now)) {
        this.#map.delete(k);
        n++;
      }
    if (n > 0) this.#dirty = true;
    return n;
  }

  /** Every entry in update order (for saving). */
  *entries(): Generator<[string, CacheEntry]> {
    yield* this.#map;
  }

  /** Loads saved entries (malformed ones are skipped); returns how many were skipped. */
  load(entries: Iterable<{ key: string; value: string }>): number {
    let bad = 0;
    const list: Array<[string, CacheEntry]> = [];
    for (const { key, value } of entries) {
      const e = parseEntry(value);
      if (e === null || key === "" || Buffer.byteLength(key) > VERIFY_ADDR_MAX) bad++;
      else list.push([key, e]);
    }
    list.sort((a, b) => a[1].updated - b[1].updated);
    for (const [k, e] of list) this.#put(k, e);
    this.#dirty = false;
    return bad;
  }
}
