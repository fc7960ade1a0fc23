/*
 * verify-store - keeps the verification cache in address_verify_map
 *
 * SYNOPSIS
 *   const store = VerifyStore.open("btree:/var/lib/postern/verify_cache");   // or null: memory only
 *   store.loadInto(cache);
 *   store.save(cache);       // whole file, atomically
 *
 * DESCRIPTION
 *   address_verify_map names a table of type btree, hash or lmdb; the cache
 *   is written in Postern's indexed table format (global/dict-db.ts) as
 *   name.db (name.lmdb), so "postmap -q user@example btree:..." shows an
 *   entry ("status:probed:updated:reason"). Those files are never changed
 *   in place: save() writes a new file and renames it over the old one, so
 *   a crash leaves the previous or the new cache, never a broken one. The
 *   verify service saves a short while after a change and when it exits
 *   (verify.ts); the file is bounded by the cache's entry limit. An empty
 *   address_verify_map keeps the cache in memory only. Another table type
 *   is a configuration error; a file that cannot be read is reported and
 *   the cache starts empty.
 */
import { existsSync } from "node:fs";
import { msg } from "../util/msg.js";
import { dbEntries, dbSuffix, dbWrite } from "../global/dict-db.js";
import { DictFlag } from "../global/dict-types.js";
import type { VerifyCache } from "./verify-cache.js";
import { formatEntry } from "./verify-cache.js";

const TYPES = ["btree", "hash", "lmdb"];

export class VerifyStore {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  /** The store for a map name; null for an empty name; throws for a type that cannot be updated. */
  static open(spec: string): VerifyStore | null {
    const s = spec.trim().replace(/^proxy:/, "");
    if (s === "") return null;
    const colon = s.indexOf(":");
    const type = colon > 0 ? s.slice(0, colon) : "";
    const name = s.slice(colon + 1);
    if (!TYPES.includes(type) || !name.startsWith("/"))
      throw new Error(
        `address_verify_map: "${spec}" is not a btree:, hash: or lmdb: table with an absolute path`,
      );
    return new VerifyStore(name + dbSuffix(type));
  }

  /** Loads the saved entries into a cache. */
  loadInto(cache: VerifyCache): void {
    if (!existsSync(this.path)) return;
    try {
      const bad = cache.load(dbEntries(this.path));
      if (bad > 0) msg.warn(`${this.path}: skipped ${bad} malformed cache entries`);
      msg.info(`${this.path}: ${cache.size} cached addresses`);
    } catch (err) {
      msg.warn(`${this.path}: cannot read the cache (${(err as Error).message}); starting with an empty one`);
    }
  }

  /** Writes the whole cache (synchronously, so that it can run at exit); false when it failed. */
  save(cache: VerifyCache): boolean {
    try {
      const entries = (function* () {
        for (const [key, e] of cache.entries()) yield { key, value: formatEntry(e) };
      })();
      dbWrite(this.path, entries, DictFlag.DUP_REPLACE);
      return true;
    } catch (err) {
      msg.warn(`${this.path}: cannot save the cache: ${(err as Error).message}`);
      return false;
    }
  }
}
