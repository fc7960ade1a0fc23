/*
 * dict-memcache - memcache: tables, lookups in memcached (optionally caching another table)
 *
 * SYNOPSIS
 *   dictOpen("memcache:/etc/postfix/memcache-aliases.cf")
 *
 *   memcache = inet:127.0.0.1:11211
 *   backup = pgsql:/etc/postfix/pgsql-aliases.cf
 *   key_format = aliases:%s
 *   ttl = 3600
 *
 * DESCRIPTION
 *   The parameters of memcache_table(5): memcache (default
 *   inet:localhost:11211; also unix:/path), backup, flags, ttl,
 *   key_digest, key_format (with the %-expansions of dict-expand.ts),
 *   domain, data_size_limit (10240), line_size_limit (1024), max_try (2),
 *   retry_pause (1 second) and timeout (2 seconds).
 *
 *   A lookup sends "get key" in memcached's text protocol; update() (for
 *   daemons that keep state in the table, such as postscreen's cache)
 *   sends "set key" with the ttl. When memcached
 *   does not have the key (or cannot be reached) and a backup table is
 *   configured, the backup table answers, and a value found there is
 *   stored in memcached with "set" for ttl seconds (when memcached could
 *   be reached). Without a backup table,
 *   a memcached that cannot be reached after max_try attempts is a
 *   temporary failure.
 *
 *   memcached keys cannot contain white space or control characters and
 *   are at most 250 bytes long; other keys are not looked up in memcached
 *   (key_digest, e.g. "sha256", turns every key into a valid one). The
 *   table is not allowed for security-sensitive data (NO_UNAUTH).
 */
import { createHash, getHashes } from "node:crypto";
import { msg, printable } from "../util/msg.js";
import { CfParams, parseEndpoint } from "./dict-cf.js";
import { DbTemplates, DomainFilter } from "./dict-expand.js";
import { NetClient, NetError } from "./dict-netclient.js";
import { dictOpen, dictSurrogate } from "./dict-registry.js";
import { DictFlag, errorText, foldKey, found, NOT_FOUND, tempFail } from "./dict-types.js";
import type { Dict, DictImpl, DictResult } from "./dict-types.js";

/** The longest key memcached accepts. */
const MEMCACHE_MAX_KEY = 250;

/** The settings of one table. */
interface McSettings {
  keyFormat: string;
  keyDigest: string;
  ttl: number;
  mcFlags: number;
  maxData: number;
  maxLine: number;
  maxTry: number;
  pauseMs: number;
  timeoutMs: number;
}

type McAnswer = { ok: true; value: string | null } | { ok: false; reason: string };

/** A memcache: table. */
class MemcacheDict implements DictImpl {
  readonly type = "memcache";
  readonly name: string;
  readonly flags: number;
  #s: McSettings;
  #client: NetClient;
  #templates: DbTemplates;
  #domain: DomainFilter;
  #backup: Dict | null;

  /** Keeps the settings; connects on the first lookup. */
  constructor(name: string, flags: number, cf: CfParams, s: McSettings, client: NetClient) {
    this.name = name;
    this.flags = flags | DictFlag.FIXED;
    this.#s = s;
    this.#client = client;
    this.#templates = new DbTemplates(`memcache:${name}`);
    this.#templates.parse(s.keyFormat, "query");
    this.#domain = new DomainFilter(cf.str("domain", ""), cf.path);
    const backup = cf.str("backup", "");
    this.#backup = backup === "" ? null : dictOpen(backup, { flags });
  }

  /** The memcached key for a lookup key, or null (with the reason logged) when there is none. */
  #memcacheKey(key: string): string | null {
    let mk = this.#s.keyFormat === "%s" ? key : this.#templates.expand(this.#s.keyFormat, key, null, null);
    if (mk === null || mk === "") return null;
    if (this.#s.keyDigest !== "") mk = createHash(this.#s.keyDigest).update(mk, "utf8").digest("hex");
    // eslint-disable-next-line no-control-regex
    if (/[\s\x00-\x1f\x7f]/.test(mk)) {
      msg.info(
        `memcache:${this.name}: skipping lookup for "${printable(key, 100)}": name contains space or controls`,
      );
      return null;
    }
    if (Buffer.byteLength(mk, "utf8") > MEMCACHE_MAX_KEY) {
      msg.warn(
        `memcache:${this.name}: skipping lookup for "${printable(key, 100)}": key is too long (use key_digest)`,
      );
      return null;
    }
    return mk;
  }

  /** Runs one request with up to max_try attempts and retry_pause between them. */
  async #retry<T>(what: string, fn: () => Promise<T>): Promise<T | NetError> {
    let last = new NetError("IO", "no attempt");
    for (let count = 0; count < this.#s.maxTry; count++) {
      if (count > 0) await new Promise((r) => setTimeout(r, this.#s.pauseMs));
      try {
        return await fn();
      } catch (err) {
        last = err instanceof NetError ? err : new NetError("IO", errorText(err));
      }
    }
    msg.warn(`database memcache:${this.name}: ${what}: ${last.message}`);
    return last;
  }

  /** Asks memcached for a key. */
  async #get(mk: string): Promise<McAnswer> {
    const s = this.#s;
    const r = await this.#retry("get", () =>
      this.#client.exchange(s.timeoutMs, async (conn, deadline) => {
        conn.write(`get ${mk}\r\n`);
        const line = await conn.readLine(s.maxLine, deadline);
        if (line === "END") return null;
        const m = /^VALUE \S+ \S+ ([0-9]+)/.exec(line);
        const len = m === null ? -1 : Number(m[1]);
        if (len < 0 || len > s.maxData)
          throw conn.protocol(`unexpected memcache server reply: ${printable(line, 30)}`);
        const data = await conn.readExact(len + 2, deadline);
        if (data[len] !== 0x0d || data[len + 1] !== 0x0a) throw conn.protocol("data is not followed by CRLF");
        if ((await conn.readLine(s.maxLine, deadline)) !== "END")
          throw conn.protocol("missing END after VALUE");
        return data.subarray(0, len).toString("utf8");
      }),
    );
    return r instanceof NetError ? { ok: false, reason: r.message } : { ok: true, value: r };
  }

  /** Stores a value in memcached; false when it could not. */
  async #set(mk: string, value: string): Promise<boolean> {
    const s = this.#s;
    const data = Buffer.from(value, "utf8");
    if (data.length > s.maxData) {
      msg.warn(
        `database memcache:${this.name}: data for key ${mk} is too long (data_size_limit=${s.maxData}) -- not stored`,
      );
      return false;
    }
    const r = await this.#retry("update", () =>
      this.#client.exchange(s.timeoutMs, async (conn, deadline) => {
        conn.write(
          Buffer.concat([
            Buffer.from(`set ${mk} ${s.mcFlags} ${s.ttl} ${data.length}\r\n`),
            data,
            Buffer.from("\r\n"),
          ]),
        );
        const line = await conn.readLine(s.maxLine, deadline);
        if (line !== "STORED") throw new NetError("PROTOCOL", `update failed: ${printable(line, 100)}`);
      }),
    );
    return !(r instanceof NetError);
  }

  /** Stores a value for a key (a daemon's update, such as postscreen's cache), for ttl seconds. */
  async update(rawKey: string, value: string): Promise<boolean> {
    const key = foldKey(rawKey, this.flags, "fixed");
    if (key === "") return false;
    const verdict = await this.#domain.check(key);
    if (!verdict.ok || !verdict.match) return false;
    const mk = this.#memcacheKey(key);
    return mk === null ? false : this.#set(mk, value);
  }

  /** Looks up a key in memcached, then in the backup table. */
  async lookup(rawKey: string): Promise<DictResult> {
    const key = foldKey(rawKey, this.flags, "fixed");
    if (key === "") return NOT_FOUND;
    const verdict = await this.#domain.check(key);
    if (!verdict.ok) return tempFail(`memcache:${this.name}: domain list: ${verdict.reason}`);
    if (!verdict.match) return NOT_FOUND;
    const mk = this.#memcacheKey(key);
    if (mk === null) return NOT_FOUND;
    const cached = await this.#get(mk);
    if (cached.ok && cached.value !== null) return found(cached.value);
    if (this.#backup === null)
      return cached.ok ? NOT_FOUND : tempFail(`memcache:${this.name}: ${cached.reason}`);
    const r = await this.#backup.lookup(rawKey);
    if (r.status === "found" && cached.ok) await this.#set(mk, r.value);
    return r;
  }

  /** Closes the connection and the backup table. */
  close(): void {
    this.#client.close();
    this.#domain.close();
    this.#backup?.close();
  }
}

/** Opens a memcache: table. */
export function memcacheOpen(name: string, flags: number): DictImpl {
  if ((flags & DictFlag.NO_UNAUTH) !== 0) {
    return dictSurrogate(
      "memcache",
      name,
      flags,
      `memcache:${name} map is not allowed for security-sensitive data`,
    );
  }
  try {
    const cf = CfParams.read("memcache", name);
    const where = cf.str("memcache", "inet:localhost:11211");
    const ep = parseEndpoint(where, null);
    if (ep === null) throw cf.error("memcache", `bad server "${where}"; need inet:host:port or unix:/path`);
    const s: McSettings = {
      keyFormat: cf.str("key_format", "%s"),
      keyDigest: cf.str("key_digest", "").toLowerCase(),
      ttl: cf.int("ttl", 3600, 0),
      mcFlags: cf.int("flags", 0, 0, 0xffffffff),
      maxData: cf.int("data_size_limit", 10240, 1),
      maxLine: cf.int("line_size_limit", 1024, 1),
      maxTry: cf.int("max_try", 2, 1),
      pauseMs: cf.int("retry_pause", 1, 1) * 1000,
      timeoutMs: cf.int("timeout", 2, 1) * 1000,
    };
    if (s.keyDigest !== "" && !getHashes().includes(s.keyDigest)) {
      throw cf.error("key_digest", `key digest ${s.keyDigest} is not available`);
    }
    const client = new NetClient(ep, {
      idleMs: 60_000,
      maxAgeMs: Infinity,
      maxBuffer: s.maxData + s.maxLine * 2 + 8,
    });
    return new MemcacheDict(name, flags, cf, s, client);
  } catch (err) {
    return dictSurrogate("memcache", name, flags, errorText(err));
  }
}
