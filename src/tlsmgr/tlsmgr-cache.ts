/*
 * tlsmgr-cache - the session caches and the ticket key of tlsmgr
 *
 * SYNOPSIS
 *   const cache = new SessionCache({ maxEntries: 10000, maxBytes: 8 << 20 });
 *   cache.put("id", session, 3600); cache.get("id"); cache.sweep();
 *   const keys = new TicketKeys(3600); keys.current(); // { key, lifetime }
 *
 * DESCRIPTION
 *   SessionCache holds serialized TLS sessions in memory, each with its
 *   own expiry time. It is bounded in entries and in bytes (keys plus
 *   sessions): when a new entry would pass a bound, the entries that were
 *   stored first go first. An expired entry is never returned; sweep()
 *   drops them all (tlsmgr runs it periodically, as Postfix's tlsmgr scans
 *   its caches every cache timeout).
 *
 *   TicketKeys hands out the session ticket key of the SMTP server
 *   processes: 48 bytes from the system's strong random source (a key
 *   name, an HMAC secret and an AES key), replaced by a new key once its
 *   lifetime is over. Postfix keeps two keys: a key encrypts new tickets
 *   for half of smtpd_tls_session_cache_timeout and decrypts for the other
 *   half. Node's TLS contexts take one key only (tls.createSecureContext
 *   ticketKeys), so a ticket is only good while the key that made it is
 *   current; to keep resumption working for most tickets, the key stays
 *   current for the whole smtpd_tls_session_cache_timeout (tickets never
 *   outlive that timeout anyway: the server refuses older sessions). A
 *   ticket issued shortly before a rotation is therefore good for less
 *   than the full timeout.
 */
import { randomBytes } from "node:crypto";
import { TICKET_KEY_LEN } from "../global/tlsmgr-proto.js";

interface Entry {
  session: Buffer;
  expires: number;
  bytes: number;
}

export interface CacheLimits {
  maxEntries: number;
  maxBytes: number;
}

/** Serialized sessions with expiry times, bounded in count and bytes. */
export class SessionCache {
  #entries = new Map<string, Entry>();
  #bytes = 0;
  #limits: CacheLimits;
  #now: () => number;

  constructor(limits: CacheLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /** The session saved under id, unless it has expired. */
  get(id: string): Buffer | null {
    const e = this.#entries.get(id);
    if (e === undefined) return null;
    if (e.expires <= this.#now()) {
      this.delete(id);
      return null;
    }
    return e.session;
  }

  /** Saves a session for timeout seconds; false when it cannot be kept (too big, no time). */
  put(id: string, session: Buffer, timeout: number): boolean {
    const bytes = Buffer.byteLength(id) + session.length;
    if (timeout <= 0 || bytes > this.#limits.maxBytes || this.#limits.maxEntries <= 0) return false;
    this.delete(id);
    while (this.#entries.size >= this.#limits.maxEntries || this.#bytes + bytes > this.#limits.maxBytes) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.delete(oldest.value);
    }
    this.#entries.set(id, { session: Buffer.from(session), expires: this.#now() + timeout * 1000, bytes });
    this.#bytes += bytes;
    return true;
  }

  /** Forgets a session. */
  delete(id: string): void {
    const e = this.#entries.get(id);
    if (e === undefined) return;
    this.#entries.delete(id);
    this.#bytes -= e.bytes;
  }

  /** Drops every expired entry; returns how many went. */
  sweep(): number {
    const now = this.#now();
    let n = 0;
    for (const [id, e] of this.#entries) {
      if (e.expires <= now) {
        this.delete(id);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }
}

/** The current session ticket key, replaced when its lifetime is over. */
export class TicketKeys {
  #key: Buffer | null = null;
  #expires = 0;
  #lifetimeMs: number;
  #now: () => number;
  #random: (n: number) => Buffer;

  /** lifetime in seconds (0: tickets are off). */
  constructor(lifetime: number, now: () => number = Date.now, random: (n: number) => Buffer = randomBytes) {
    this.#lifetimeMs = lifetime * 1000;
    this.#now = now;
    this.#random = random;
  }

  /** The key and the whole seconds it stays current; null when tickets are off. */
  current(): { key: Buffer; lifetime: number } | null {
    if (this.#lifetimeMs <= 0) return null;
    const now = this.#now();
    if (this.#key === null || this.#expires <= now) {
      const key = this.#random(TICKET_KEY_LEN);
      if (key.length !== TICKET_KEY_LEN) throw new Error("random source returned a short key");
      this.#key = key;
      this.#expires = now + this.#lifetimeMs;
    }
    return { key: this.#key, lifetime: Math.max(1, Math.floor((this.#expires - now) / 1000)) };
  }
}
