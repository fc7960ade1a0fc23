/*
 * scache-proto - the wire contract of the connection cache service
 *
 * DESCRIPTION
 *   scache (Postfix's scache(8)) keeps idle SMTP connections so that a
 *   delivery agent process can use a connection that another one opened.
 *   It listens on private/scache (connection_cache_service_name; master.cf
 *   scache unix - - y - 1 scache: one process) and speaks the internal
 *   protocol (util/attr-server.ts, protocol name "scache"), any number of
 *   requests per connection:
 *
 *   { request: "save", ttl, endp_label, endp_prop, dest_label?, dest_prop?, pid, token }
 *       -> { status: "ok" } then the agent hands the socket to master
 *          (cachefd, master-proto.ts) with the same token; scache keeps it
 *          under endp_label for at most ttl seconds (capped by
 *          connection_cache_ttl_limit) and, with dest_label, maps the
 *          destination to that endpoint for as long.
 *   { request: "find_dest", dest_label, pid }
 *       -> { status: "ok", endp_label, endp_prop, dest_prop, token } and
 *          master hands process `pid` the socket with that token;
 *          { status: "none" } when the destination has no live endpoint.
 *   { request: "find_endp", endp_label, pid }
 *       -> { status: "ok", endp_label, endp_prop, token } as above, or "none".
 *   A malformed or unknown request gets { status: "fail" } and a warning.
 *
 *   Labels and properties are opaque to scache: the agent chooses them
 *   (an endpoint label names the server address and port and what the
 *   session was set up with; the properties carry what the agent needs to
 *   go on without a new EHLO). Only plaintext connections are cached: a
 *   TLS session's state cannot leave its process.
 *
 *   Sockets travel outside this connection, through master; TokenBox pairs
 *   each one with its request by a random token, whichever comes first.
 */
import { randomBytes } from "node:crypto";
import { attr, attrSchema } from "../util/attr-schema.js";

export const SCACHE_PROTOCOL = "scache";
export const SCACHE_FRAME_MAX = 16_384;
export const SCACHE_LABEL_MAX = 512;
export const SCACHE_PROP_MAX = 4096;
/** The longest time-to-live a client may ask for, whatever the configuration (seconds). */
export const SCACHE_TTL_MAX = 3600;

const label = attr.str({ max: SCACHE_LABEL_MAX, min: 1 });
const prop = attr.str({ max: SCACHE_PROP_MAX });
const pid = attr.int({ min: 1, max: 2 ** 31 - 1 });
const token = attr.str({ max: 32, min: 32, pattern: /^[0-9a-f]{32}$/ });

export const ScacheRequest = attrSchema({
  request: attr.enumOf(["save", "find_dest", "find_endp"]),
  ttl: attr.optional(attr.int({ min: 1, max: SCACHE_TTL_MAX })),
  endp_label: attr.optional(label),
  endp_prop: attr.optional(prop),
  dest_label: attr.optional(label),
  dest_prop: attr.optional(prop),
  pid,
  token: attr.optional(token),
});

export const ScacheReply = attrSchema({
  status: attr.enumOf(["ok", "none", "fail"]),
  endp_label: attr.optional(label),
  endp_prop: attr.optional(prop),
  dest_prop: attr.optional(prop),
  token: attr.optional(token),
});

/** A new random token for one socket's trip through master. */
export function newToken(): string {
  return randomBytes(16).toString("hex");
}

/** What TokenBox holds: anything that can be closed (a socket). */
export interface Closable {
  destroy(): void;
}

interface Waiter<T> {
  resolve: (v: T | null) => void;
  timer: NodeJS.Timeout;
}

/**
 * Pairs sockets that arrive through master with the request that announced
 * them. A socket that nobody claims within holdMs is closed; at most `max`
 * unclaimed sockets are held (more are closed at once). take() waits up to
 * its time limit for a socket that has not arrived yet.
 */
export class TokenBox<T extends Closable> {
  #held = new Map<string, { item: T; timer: NodeJS.Timeout }>();
  #waiting = new Map<string, Waiter<T>>();
  #holdMs: number;
  #max: number;

  constructor(holdMs: number, max: number) {
    this.#holdMs = holdMs;
    this.#max = max;
  }

  /** How many arrived items wait to be claimed. */
  get held(): number {
    return this.#held.size;
  }

  /** An item arrived: goes to its waiter, or is held for a while (false when it was closed instead). */
  put(tok: string, item: T): boolean {
    const w = this.#waiting.get(tok);
    if (w !== undefined) {
      this.#waiting.delete(tok);
      clearTimeout(w.timer);
      w.resolve(item);
      return true;
    }
    if (this.#held.has(tok) || this.#held.size >= this.#max) {
      item.destroy();
      return false;
    }
    const timer = setTimeout(() => {
      this.#held.delete(tok);
      item.destroy();
    }, this.#holdMs);
    timer.unref();
    this.#held.set(tok, { item, timer });
    return true;
  }

  /** The item with this token, waiting up to timeoutMs for it; null when it does not come. */
  take(tok: string, timeoutMs: number): Promise<T | null> {
    const h = this.#held.get(tok);
    if (h !== undefined) {
      this.#held.delete(tok);
      clearTimeout(h.timer);
      return Promise.resolve(h.item);
    }
    if (this.#waiting.has(tok)) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(tok);
        resolve(null);
      }, timeoutMs);
      this.#waiting.set(tok, { resolve, timer });
    });
  }

  /** Closes everything held and ends every wait. */
  clear(): void {
    for (const h of this.#held.values()) {
      clearTimeout(h.timer);
      h.item.destroy();
    }
    this.#held.clear();
    for (const w of this.#waiting.values()) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
    this.#waiting.clear();
  }
}
