/*
 * dict-db - hash:, btree: and lmdb: tables in Postern's indexed file format
 *
 * SYNOPSIS
 *   dictOpen("hash:/etc/postfix/access")       reads /etc/postfix/access.db
 *   dictOpen("lmdb:/etc/postfix/access")       reads /etc/postfix/access.lmdb
 *   import { dbWrite, dbEntries, dbSuffix } from "./dict-db.js";
 *
 * DESCRIPTION
 *   Postfix keeps these tables in Berkeley DB or LMDB files. Postern writes
 *   one format of its own for all three types, built by postmap from the
 *   same source files; the file name is the table name plus ".db" (hash,
 *   btree) or ".lmdb" (lmdb). It also reads, as they are, the Berkeley DB
 *   hash and btree files that Postfix's postmap, postalias and newaliases
 *   made (dict-bdb.ts: read whole when opened, and again when changed), so
 *   an installation moves over without rebuilding its tables.
 *
 *   A lookup reads only what it needs with positional reads: one or a few
 *   8-byte index slots (through a small page cache) and the record they
 *   point at. A table of ten million keys costs a file descriptor and a
 *   megabyte of cache, not memory for its contents.
 *
 * FILE FORMAT
 *   All integers are little-endian.
 *   header (64 bytes):
 *     0   8  magic "PSTNDB\0\1"
 *     8   4  format version (1)
 *     12  4  flags: bit 0 = keys were folded to lower case when built
 *     16  8  number of live records
 *     24  8  number of index slots (a power of two, at least 4/3 of the
 *            number of live records)
 *     32  8  offset of the index (= end of the records)
 *     40  8  file size
 *     48  16 zero
 *   records, from offset 64, in the order they were added:
 *     4  key length (bit 31 set: a dead record, replaced by a later one)
 *     4  value length
 *     key bytes (UTF-8), value bytes (UTF-8)
 *   index: slot count x 8 bytes, open addressing with linear probing.
 *     A slot holds a record offset (low 40 bits) and a 24-bit tag (high
 *     24 bits); all zero means empty. For key bytes k, the probe starts
 *     at fnv1a(k) mod slots and the tag is mix32(k) >>> 8 (see
 *     dict-ondisk.ts); a slot whose tag matches is checked by comparing
 *     the record's key.
 *
 *   Files are never changed in place: every build or update writes a new
 *   file and renames it over the old one (dict-ondisk.ts), and open tables
 *   switch to the new file when they notice the change.
 *
 * DIAGNOSTICS
 *   A missing, unreadable or corrupt file makes lookups fail temporarily.
 *   A table file older than its source file is reported when opened.
 */
import { closeSync, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { msg } from "../util/msg.js";
import { isBerkeleyDb, readBerkeleyDb } from "./dict-bdb.js";
import { FileDict } from "./dict-file.js";
import { AtomicFile, DupFinder, fnv1a, GrowArray, mix32, PageCache, readExact } from "./dict-ondisk.js";
import { DictFlag, foldKey, found, NOT_FOUND, tempFail, type DictResult } from "./dict-types.js";

const MAGIC = Buffer.from("PSTNDB\0\x01", "latin1");
const VERSION = 1;
const HEADER = 64;
const SLOT = 8;
const DEAD = 0x80000000;
/** Largest key or value accepted in a record (a sanity limit against corrupt files). */
export const DB_MAX_FIELD = 64 * 1024 * 1024;

/** True when a file's first bytes are those of a Postern table file. */
export function isPosternTable(head: Buffer): boolean {
  return head.length >= 8 && head.subarray(0, 8).equals(MAGIC);
}

/**
 * What a table file that is not Postern's looks like, from its first
 * bytes: Berkeley DB (what Postfix's postmap makes for hash: and btree:,
 * magic at offset 12 in either byte order), LMDB, or unknown.
 */
export function foreignFormat(head: Buffer): string {
  const at = (off: number, le: boolean): number =>
    head.length >= off + 4 ? (le ? head.readUInt32LE(off) : head.readUInt32BE(off)) : -1;
  const bdb: Record<number, string> = { 0x061561: "hash", 0x053162: "btree" };
  for (const le of [true, false]) {
    const kind = bdb[at(12, le)];
    if (kind !== undefined) return `a Berkeley DB ${kind} file, as Postfix makes them`;
  }
  if (at(16, true) === 0xbeefc0de || at(0, true) === 0xbeefc0de) return "an LMDB file, as Postfix makes them";
  return "bad magic";
}

/** The file name suffix of a table type. */
export function dbSuffix(type: string): string {
  return type === "lmdb" ? ".lmdb" : ".db";
}

/** The parsed header of an open table file. */
interface DbFile {
  fd: number;
  records: number;
  slots: number;
  indexAt: number;
  folded: boolean;
  index: PageCache;
}

/** A table file that another program made (Postfix's Berkeley DB), read whole. */
interface ForeignFile {
  fd: number;
  entries: Map<string, string>;
}

/** Reads and checks the header of an open table file. */
export function dbReadHeader(fd: number, size: number): DbFile {
  if (size < HEADER) throw new Error("file too short for a table header");
  const h = readExact(fd, HEADER, 0);
  if (!h.subarray(0, 8).equals(MAGIC)) throw new Error(`not a Postern table file (${foreignFormat(h)})`);
  if (h.readUInt32LE(8) !== VERSION) throw new Error(`unsupported table format version ${h.readUInt32LE(8)}`);
  const records = Number(h.readBigUInt64LE(16));
  const slots = Number(h.readBigUInt64LE(24));
  const indexAt = Number(h.readBigUInt64LE(32));
  const fileSize = Number(h.readBigUInt64LE(40));
  const powerOfTwo = slots > 0 && (slots & (slots - 1)) === 0;
  if (
    !powerOfTwo ||
    records * 4 > slots * 3 ||
    indexAt < HEADER ||
    fileSize !== size ||
    indexAt + slots * SLOT !== size
  ) {
    throw new Error("corrupt table header");
  }
  return {
    fd,
    records,
    slots,
    indexAt,
    folded: (h.readUInt32LE(12) & 1) !== 0,
    index: new PageCache(fd, indexAt, size, 4096, 256),
  };
}

/** Reads the record at pos: its key and value bytes, and whether it is dead. */
function readRecord(f: DbFile, pos: number): { key: Buffer; value: Buffer; dead: boolean } {
  const head = readExact(f.fd, Math.min(512, f.indexAt - pos), pos);
  if (head.length < 8) throw new Error(`corrupt record at offset ${pos}`);
  const rawLen = head.readUInt32LE(0);
  const klen = rawLen & 0x7fffffff;
  const vlen = head.readUInt32LE(4);
  if (klen > DB_MAX_FIELD || vlen > DB_MAX_FIELD || pos + 8 + klen + vlen > f.indexAt) {
    throw new Error(`corrupt record at offset ${pos}`);
  }
  const body = 8 + klen + vlen <= head.length ? head : readExact(f.fd, 8 + klen + vlen, pos);
  return {
    key: body.subarray(8, 8 + klen),
    value: body.subarray(8 + klen, 8 + klen + vlen),
    dead: (rawLen & DEAD) !== 0,
  };
}

/** Finds the value stored under the (already folded) key bytes. */
function dbFind(f: DbFile, key: Buffer): Buffer | null {
  const mask = f.slots - 1;
  const tag = mix32(key) >>> 8;
  for (let s = fnv1a(key) & mask, n = 0; n < f.slots; s = (s + 1) & mask, n++) {
    const slot = f.index.read(f.indexAt + s * SLOT, SLOT);
    const lo = slot.readUInt32LE(0);
    const hi = slot.readUInt32LE(4);
    if (lo === 0 && hi === 0) return null;
    if (hi >>> 8 !== tag) continue;
    const rec = readRecord(f, (hi & 0xff) * 0x100000000 + lo);
    if (rec.key.equals(key)) return rec.value;
  }
  return null;
}

/** A hash:, btree: or lmdb: table. */
export class DbDict extends FileDict<DbFile | ForeignFile> {
  #source: string;

  /** Opens name + suffix. */
  constructor(type: string, name: string, flags: number) {
    super(type, name, flags | DictFlag.FIXED, name + dbSuffix(type));
    this.#source = name;
    this.start();
  }

  /** Checks the header and keeps the descriptor; a Berkeley DB file (Postfix's) is read whole. */
  protected load(path: string, fd: number, st: Stats): DbFile | ForeignFile {
    const head = readExact(fd, Math.min(64, st.size), 0);
    const f: DbFile | ForeignFile =
      isBerkeleyDb(head) !== null ? { fd, entries: readBerkeleyDb(fd, st.size) } : dbReadHeader(fd, st.size);
    try {
      if (statSync(this.#source).mtimeMs > st.mtimeMs) {
        msg.warn(`${this.type}:${this.name}: table file ${path} is older than source file ${this.#source}`);
      }
    } catch {
      /* no source file: nothing to compare */
    }
    return f;
  }

  /** The descriptor stays open for positional reads. */
  protected override keepOpen(): boolean {
    return true;
  }

  /** Closes the descriptor of a replaced or closed file. */
  protected override release(f: DbFile | ForeignFile): void {
    dbCloseFd(f.fd);
  }

  /** Looks up a key. */
  protected find(f: DbFile | ForeignFile, key: string): DictResult {
    const folded = foldKey(key, this.flags, "fixed");
    if ("entries" in f) {
      const v = f.entries.get(folded);
      return v === undefined ? NOT_FOUND : found(v);
    }
    try {
      const v = dbFind(f, Buffer.from(folded, "utf8"));
      return v === null ? NOT_FOUND : found(v.toString("utf8"));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      msg.warn(`${this.type}:${this.name}: ${why}`);
      return tempFail(`${this.type}:${this.name}: ${why}`);
    }
  }
}

/** Closes a descriptor, ignoring errors (it was only read). */
function dbCloseFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* nothing to do */
  }
}

/** Opens a hash:, btree: or lmdb: table (registered for each type). */
export function dbOpenFor(type: string): (name: string, flags: number) => DbDict {
  return (name, flags) => new DbDict(type, name, flags);
}

/** An entry to store, with an optional source line for diagnostics. */
export interface DbEntry {
  key: string;
  value: string;
  line?: number;
}

/** Writes a complete table file from entries; returns the number of live records. */
export function dbWrite(path: string, entries: Iterable<DbEntry>, flags: number, where = path): number {
  const out = new AtomicFile(path);
  try {
    out.append(Buffer.alloc(HEADER));
    const offsets = new GrowArray<Float64Array>(Float64Array);
    const h1 = new GrowArray<Uint32Array>(Uint32Array);
    const h2 = new GrowArray<Uint32Array>(Uint32Array);
    const dead = new Set<number>();
    const keyOf = (i: number): Buffer => {
      out.flush();
      const klen = readExact(out.fd, 4, offsets.at(i)).readUInt32LE(0) & 0x7fffffff;
      return readExact(out.fd, klen, offsets.at(i) + 8);
    };
    const dups = new DupFinder(h1, h2, keyOf);
    for (const e of entries) {
      const key = Buffer.from(foldKey(e.key, flags | DictFlag.FIXED, "fixed"), "utf8");
      const value = Buffer.from(e.value, "utf8");
      if (key.length > DB_MAX_FIELD || value.length > DB_MAX_FIELD) {
        msg.warn(`${where}${e.line ? `, line ${e.line}` : ""}: key or value too long: skipping this entry`);
        continue;
      }
      const i = offsets.length;
      offsets.push(out.position);
      h1.push(fnv1a(key));
      h2.push(mix32(key));
      const prev = dups.admit(i, key, flags, dead, `${where}${e.line ? `, line ${e.line}` : ""}`);
      if (prev === null) continue;
      const rec = Buffer.alloc(8);
      rec.writeUInt32LE(key.length, 0);
      rec.writeUInt32LE(value.length, 4);
      out.append(rec);
      out.append(key);
      out.append(value);
      if (prev >= 0) {
        const mark = Buffer.alloc(4);
        mark.writeUInt32LE((keyOf(prev).length | DEAD) >>> 0, 0);
        out.writeAt(mark, offsets.at(prev));
      }
    }
    const live = writeIndex(out, offsets, h1, h2, dead, flags);
    out.commit();
    return live;
  } catch (err) {
    out.abort();
    throw err;
  }
}

/** Writes the index and the header; returns the number of live records. */
function writeIndex(
  out: AtomicFile,
  offsets: GrowArray<Float64Array>,
  h1: GrowArray<Uint32Array>,
  h2: GrowArray<Uint32Array>,
  dead: Set<number>,
  flags: number,
): number {
  const live = offsets.length - dead.size;
  let slots = 16;
  while (slots * 3 < live * 4) slots *= 2;
  const index = Buffer.alloc(slots * SLOT);
  const mask = slots - 1;
  for (let i = 0; i < offsets.length; i++) {
    if (dead.has(i)) continue;
    let s = h1.at(i) & mask;
    while (index.readUInt32LE(s * SLOT) !== 0 || index.readUInt32LE(s * SLOT + 4) !== 0) s = (s + 1) & mask;
    const off = offsets.at(i);
    index.writeUInt32LE(off % 0x100000000, s * SLOT);
    index.writeUInt32LE((((h2.at(i) >>> 8) << 8) | Math.floor(off / 0x100000000)) >>> 0, s * SLOT + 4);
  }
  const indexAt = out.position;
  out.append(index);
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(VERSION, 8);
  h.writeUInt32LE((flags & DictFlag.FOLD_FIX) !== 0 ? 1 : 0, 12);
  h.writeBigUInt64LE(BigInt(live), 16);
  h.writeBigUInt64LE(BigInt(slots), 24);
  h.writeBigUInt64LE(BigInt(indexAt), 32);
  h.writeBigUInt64LE(BigInt(indexAt + slots * SLOT), 40);
  out.writeAt(h, 0);
  return live;
}

/** Reads every live entry of a table file, in the order they were added (a Berkeley DB file's in page order). */
export function* dbEntries(path: string): Generator<DbEntry> {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (isBerkeleyDb(readExact(fd, Math.min(64, size), 0)) !== null) {
      for (const [key, value] of readBerkeleyDb(fd, size)) yield { key, value };
      return;
    }
    const f = dbReadHeader(fd, size);
    for (let pos = HEADER; pos < f.indexAt;) {
      const r = readRecord(f, pos);
      pos += 8 + r.key.length + r.value.length;
      if (!r.dead) yield { key: r.key.toString("utf8"), value: r.value.toString("utf8") };
    }
  } finally {
    closeSync(fd);
  }
}
