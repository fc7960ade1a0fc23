/*
 * dict-mkmap - build, list and change on-disk tables (what postmap calls)
 *
 * SYNOPSIS
 *   import { dictBuild, dictDump, dictAdd, dictDelete, dictTablePath } from "./dict-mkmap.js";
 *   dictBuild("hash", "/etc/postfix/access");                  // postmap hash:/etc/postfix/access
 *   for (const e of dictDump("hash", "/etc/postfix/access")) ...  // postmap -s
 *   dictAdd("hash", "/etc/postfix/access", entries);           // postmap -i
 *   dictDelete("hash", "/etc/postfix/access", ["key"]);        // postmap -d key
 *
 * DESCRIPTION
 *   The on-disk types are hash, btree and lmdb (Postern's indexed format,
 *   files name.db and name.lmdb, see dict-db.ts) and cdb (name.cdb, see
 *   dict-cdb.ts). The table name is the source file name without suffix.
 *
 *   dictBuild() reads the postmap source file (streamed, any size) and
 *   writes the table file atomically. dictAdd() and dictDelete() write a
 *   new table file with the old entries plus (or minus) the given ones, and
 *   rename it into place: readers see the old file or the new one. Updates
 *   by two programs at the same time are not merged: the last one wins.
 *
 *   The flags are postmap's: by default DUP_WARN | FOLD_FIX (keys folded to
 *   lower case; a repeated key is reported and the first value kept);
 *   DUP_REPLACE keeps the last value, DUP_IGNORE keeps the first silently;
 *   without FOLD_FIX (postmap -f) keys keep their case. With dictAdd(), an
 *   entry for a key already in the table follows the same rule.
 *
 * DIAGNOSTICS
 *   Bad source lines are logged with file and line and skipped. Errors that
 *   prevent writing the table (unreadable source, disk full, unknown type)
 *   are thrown; the old table file is then left as it was.
 */
import { closeSync, existsSync, openSync } from "node:fs";
import { cdbEntries, cdbWrite } from "./dict-cdb.js";
import { dbEntries, dbSuffix, dbWrite, type DbEntry } from "./dict-db.js";
import { readSourceEntries } from "./dict-texthash.js";
import { DictFlag, foldKey } from "./dict-types.js";

/** postmap's default flags. */
export const MKMAP_DEFAULT_FLAGS = DictFlag.DUP_WARN | DictFlag.FOLD_FIX;

/** The table types that live in a file built by postmap. */
export const ONDISK_TYPES: readonly string[] = ["btree", "cdb", "hash", "lmdb"];

/** The table file of type:name, e.g. "/etc/postfix/access.db". */
export function dictTablePath(type: string, name: string): string {
  if (!ONDISK_TYPES.includes(type)) throw new Error(`table type "${type}" has no file to build`);
  return type === "cdb" ? `${name}.cdb` : name + dbSuffix(type);
}

/** Writes a table file of the type from entries; returns the number of keys stored. */
function write(type: string, path: string, entries: Iterable<DbEntry>, flags: number, where: string): number {
  return type === "cdb" ? cdbWrite(path, entries, flags, where) : dbWrite(path, entries, flags, where);
}

/** Builds type:name from the source file `source` (default: name itself). */
export function dictBuild(
  type: string,
  name: string,
  opts: { flags?: number; source?: string } = {},
): number {
  const path = dictTablePath(type, name);
  const source = opts.source ?? name;
  const fd = openSync(source, "r");
  try {
    return write(type, path, readSourceEntries(fd, source), opts.flags ?? MKMAP_DEFAULT_FLAGS, source);
  } finally {
    closeSync(fd);
  }
}

/** Builds type:name from entries given by the caller (postalias, tests). */
export function dictBuildFrom(
  type: string,
  name: string,
  entries: Iterable<DbEntry>,
  flags = MKMAP_DEFAULT_FLAGS,
): number {
  return write(type, dictTablePath(type, name), entries, flags, `${type}:${name}`);
}

/** Lists every entry of type:name. */
export function dictDump(type: string, name: string): Generator<DbEntry> {
  const path = dictTablePath(type, name);
  return type === "cdb" ? cdbEntries(path) : dbEntries(path);
}

/** Adds entries to type:name (creating it when missing); returns the number of keys now stored. */
export function dictAdd(
  type: string,
  name: string,
  entries: Iterable<DbEntry>,
  flags = MKMAP_DEFAULT_FLAGS,
): number {
  const path = dictTablePath(type, name);
  const old: Iterable<DbEntry> = existsSync(path) ? dictDump(type, name) : [];
  function* both(): Generator<DbEntry> {
    yield* old;
    yield* entries;
  }
  return write(type, path, both(), flags, `${type}:${name}`);
}

/** Deletes keys from type:name; returns how many of them were in the table. */
export function dictDelete(
  type: string,
  name: string,
  keys: Iterable<string>,
  flags = MKMAP_DEFAULT_FLAGS,
): number {
  const path = dictTablePath(type, name);
  const gone = new Set<string>();
  for (const k of keys) gone.add(foldKey(k, flags | DictFlag.FIXED, "fixed"));
  let deleted = 0;
  function* kept(): Generator<DbEntry> {
    for (const e of dictDump(type, name)) {
      if (gone.has(e.key)) deleted += 1;
      else yield e;
    }
  }
  write(type, path, kept(), flags | DictFlag.DUP_IGNORE, `${type}:${name}`);
  return deleted;
}
