/*
 * postscreen-cache - the remembered test results of clients (postscreen_cache_map)
 *
 * DESCRIPTION
 *   For each client address postscreen remembers when each passed test
 *   expires, in Postfix's form "pregreet;dnsbl;pipelining;non_smtp;bare_newline"
 *   (seconds since the epoch; 0 not passed yet, 1 disabled). A client whose
 *   enabled tests have all not yet expired passes at once (PASS OLD).
 *
 *   The btree, hash and lmdb types keep the cache in Postern's table file
 *   format: postscreen holds the entries in memory and writes the file
 *   (atomically, by rename) a moment after each change and when it exits,
 *   so the results survive a restart. A memcache: table (memcache_table(5),
 *   e.g. memcache:/etc/postern/postscreen_cache.cf) is shared by a fleet of
 *   hosts that name the same memcached: every lookup and update goes to it,
 *   and memcached drops entries after the table's ttl. For file caches, every
 *   postscreen_cache_cleanup_interval, entries whose tests all expired
 *   longer ago than postscreen_cache_retention_time are removed.
 */
import { existsSync } from "node:fs";
import { msg } from "../util/msg.js";
import { dbEntries, dbSuffix, dbWrite } from "../global/dict-db.js";
import { dictOpen, DictFlag, type Dict } from "../global/dict.js";

export interface PsCacheStore {
  get(addr: string): Promise<string | undefined>;
  set(addr: string, value: string): Promise<void>;
  /** Removes the entries for which keep() is false (file caches only). */
  cleanup(keep: (value: string) => boolean): Promise<{ retained: number; dropped: number }>;
  /** Writes pending changes now (file caches only). */
  flush(): void;
  close(): void;
}

const WRITE_DELAY_MS = 1000;
const MAX_ENTRIES = 1_000_000;

/** A file cache: entries in memory, written to a table file after changes. */
class FileCache implements PsCacheStore {
  #path: string;
  #map = new Map<string, string>();
  #timer: NodeJS.Timeout | null = null;
  #warned = false;

  constructor(path: string) {
    this.#path = path;
    if (existsSync(path)) {
      try {
        for (const e of dbEntries(path)) if (this.#map.size < MAX_ENTRIES) this.#map.set(e.key, e.value);
      } catch (err) {
        msg.warn(`${path}: cannot read the postscreen cache (starting empty): ${(err as Error).message}`);
      }
    }
  }

  get(addr: string): Promise<string | undefined> {
    return Promise.resolve(this.#map.get(addr));
  }

  set(addr: string, value: string): Promise<void> {
    if (this.#map.size >= MAX_ENTRIES && !this.#map.has(addr)) return Promise.resolve();
    this.#map.set(addr, value);
    this.#schedule();
    return Promise.resolve();
  }

  cleanup(keep: (value: string) => boolean): Promise<{ retained: number; dropped: number }> {
    let removed = 0;
    for (const [k, v] of this.#map) {
      if (!keep(v)) {
        this.#map.delete(k);
        removed++;
      }
    }
    if (removed > 0) this.#schedule();
    return Promise.resolve({ retained: this.#map.size, dropped: removed });
  }

  /** Writes the file soon (one write for a burst of changes). */
  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => this.flush(), WRITE_DELAY_MS);
    this.#timer.unref();
  }

  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    try {
      dbWrite(
        this.#path,
        [...this.#map].map(([key, value]) => ({ key, value })),
        DictFlag.DUP_REPLACE,
      );
      this.#warned = false;
    } catch (err) {
      if (!this.#warned)
        msg.warn(`${this.#path}: cannot write the postscreen cache: ${(err as Error).message}`);
      this.#warned = true;
    }
  }

  close(): void {
    this.flush();
  }
}

/** A server cache (memcache): shared by every host that names the same memcached. */
class ServerCache implements PsCacheStore {
  #dict: Dict;
  #update: (key: string, value: string) => Promise<boolean>;

  constructor(spec: string) {
    this.#dict = dictOpen(spec, { flags: DictFlag.FOLD_FIX });
    const update = this.#dict.update;
    if (update === undefined) throw new Error(`postscreen_cache_map: ${spec}: this table cannot be updated`);
    this.#update = update;
  }

  async get(addr: string): Promise<string | undefined> {
    const r = await this.#dict.lookup(addr);
    if (r.status === "tempfail") msg.warn(`postscreen cache lookup for ${addr}: ${r.reason}`);
    return r.status === "found" ? r.value : undefined;
  }

  async set(addr: string, value: string): Promise<void> {
    if (!(await this.#update(addr, value))) msg.warn(`postscreen cache update for ${addr} failed`);
  }

  /** memcached expires entries by itself (the table's ttl). */
  cleanup(): Promise<{ retained: number; dropped: number }> {
    return Promise.resolve({ retained: 0, dropped: 0 });
  }

  flush(): void {}

  close(): void {
    this.#dict.close();
  }
}

/** Opens postscreen_cache_map; "" means no cache. Throws with a clear message for unusable types. */
export function openPsCache(spec: string): PsCacheStore | null {
  if (spec.trim() === "") return null;
  const colon = spec.indexOf(":");
  const type = colon > 0 ? spec.slice(0, colon) : "";
  const name = spec.slice(colon + 1);
  if (type === "btree" || type === "hash" || type === "lmdb") return new FileCache(name + dbSuffix(type));
  if (type === "memcache") return new ServerCache(spec);
  throw new Error(
    `postscreen_cache_map: table type "${type}" cannot hold the postscreen cache (use btree, hash, lmdb or memcache)`,
  );
}
