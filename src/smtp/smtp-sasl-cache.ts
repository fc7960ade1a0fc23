/*
 * smtp-sasl-cache - remembers 535 replies to SASL logins (smtp_sasl_auth_cache_name)
 *
 * SYNOPSIS
 *   smtp_sasl_auth_cache_name = proxy:btree:/var/lib/postern/sasl_auth_cache
 *   smtp_sasl_auth_cache_time = 90d
 *
 *   const cache = SaslAuthCache.open(spec, ttlSeconds, "smtp_sasl_auth_cache_name");
 *   const hit = cache.find(host, user, password);     // { dsn, text } or null
 *   cache.store(host, user, password, reply.dsn, reply.text);
 *
 * DESCRIPTION
 *   As Postfix's SASL authentication failure cache: after a server
 *   answered a login with 535, the same server host name, user name and
 *   password are not tried again for smtp_sasl_auth_cache_time; the mail
 *   is deferred (or bounced) with the remembered reply ("SASL [CACHED]
 *   authentication failed; server HOST said: 535 ..."), so that a wrong
 *   password does not lock the account at the provider. A new password
 *   makes the entry void at once. Entries are keyed "host;user" and hold
 *   "time;hash;dsn;reply", where hash is the base64 SHA-256 of the
 *   password (Postfix uses SHA-1; the password itself is never stored).
 *
 *   Postfix requires a proxy: table (written through proxywrite). Postern
 *   has no proxywrite service: the table is a btree:, hash: or lmdb: file
 *   in Postern's own format (global/dict-db.ts) with an absolute path
 *   (a proxy: prefix is accepted and ignored), written whole and renamed
 *   into place by the agent processes themselves, so its directory must
 *   be writable by mail_owner. Two processes that store at the same
 *   moment may lose one entry: the next failed login stores it again. At
 *   most ENTRIES_MAX entries are kept (expired ones are dropped first).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { dbEntries, dbSuffix, dbWrite } from "../global/dict-db.js";
import { DictFlag } from "../global/dict-types.js";
import { msg } from "../util/msg.js";

const TYPES = ["btree", "hash", "lmdb"];
const ENTRIES_MAX = 10_000;

export interface CachedFailure {
  dsn: string;
  text: string;
}

/** The stored form of a password. */
function passwordHash(password: string): string {
  return createHash("sha256").update(password, "utf8").digest("base64");
}

export class SaslAuthCache {
  readonly path: string;
  #ttlMs: number;
  #now: () => number;

  private constructor(path: string, ttlMs: number, now: () => number) {
    this.path = path;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** The cache of a table name; throws for a type or name that cannot be written. */
  static open(spec: string, ttlSeconds: number, param: string, now = Date.now): SaslAuthCache {
    const s = spec.trim().replace(/^proxy:/, "");
    const colon = s.indexOf(":");
    const type = colon > 0 ? s.slice(0, colon) : "";
    const name = s.slice(colon + 1);
    if (!TYPES.includes(type) || !name.startsWith("/"))
      throw new Error(`${param}: "${spec}" is not a btree:, hash: or lmdb: table with an absolute path`);
    return new SaslAuthCache(name + dbSuffix(type), ttlSeconds * 1000, now);
  }

  /** Every entry in the file (an unreadable file is reported and counts as empty). */
  #load(): Map<string, string> {
    const out = new Map<string, string>();
    if (!existsSync(this.path)) return out;
    try {
      for (const e of dbEntries(this.path)) out.set(e.key, e.value);
    } catch (err) {
      msg.warn(`SASL auth failure map ${this.path}: cannot read: ${(err as Error).message}`);
    }
    return out;
  }

  /** Writes the entries back, newest last, at most ENTRIES_MAX of them. */
  #save(entries: Map<string, string>): void {
    const list = [...entries].slice(-ENTRIES_MAX);
    try {
      dbWrite(
        this.path,
        list.map(([key, value]) => ({ key, value })),
        DictFlag.DUP_REPLACE,
      );
    } catch (err) {
      msg.warn(`SASL auth failure map ${this.path}: cannot update: ${(err as Error).message}`);
    }
  }

  /** Parses an entry; null when it is malformed, expired or for another password. */
  #valid(value: string, password: string): CachedFailure | null {
    const m = /^(\d{1,15});([^;]*);([245]\.\d{1,3}\.\d{1,3});(.*)$/.exec(value);
    if (m === null) {
      msg.warn(`bad smtp_sasl_auth_cache entry: ${value.slice(0, 100)}`);
      return null;
    }
    if (Number(m[1]) * 1000 + this.#ttlMs < this.#now()) return null;
    if (m[2] !== passwordHash(password)) return null;
    return { dsn: m[3] ?? "", text: m[4] ?? "" };
  }

  /** The remembered failure for a host, user and password; a stale entry is removed. */
  find(host: string, user: string, password: string): CachedFailure | null {
    const entries = this.#load();
    const key = `${host};${user}`;
    const value = entries.get(key);
    if (value === undefined) return null;
    const hit = this.#valid(value, password);
    if (hit === null) {
      entries.delete(key);
      this.#save(entries);
    }
    return hit;
  }

  /** Remembers a 535 reply for a host, user and password. */
  store(host: string, user: string, password: string, dsn: string, text: string): void {
    const entries = this.#load();
    const now = this.#now();
    for (const [k, v] of entries) {
      const t = /^(\d{1,15});/.exec(v);
      if (t === null || Number(t[1]) * 1000 + this.#ttlMs < now) entries.delete(k);
    }
    const key = `${host};${user}`;
    entries.delete(key);
    entries.set(
      key,
      `${Math.floor(now / 1000)};${passwordHash(password)};${dsn};${text.replace(/\s+/g, " ")}`,
    );
    this.#save(entries);
  }
}
