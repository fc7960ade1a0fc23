/*
 * dict-cdb - cdb: tables in D. J. Bernstein's constant database format
 *
 * SYNOPSIS
 *   dictOpen("cdb:/etc/postfix/access")        reads /etc/postfix/access.cdb
 *   import { cdbWrite, cdbEntries, cdbHash } from "./dict-cdb.js";
 *
 * DESCRIPTION
 *   The files are real cdb files: those written here are read by other cdb
 *   tools (cdbget, tinycdb) and by Postfix, and the other way around. As
 *   Postfix writes them, keys and values carry no trailing null byte; when
 *   reading, a key is also tried with a null byte appended (files made by
 *   other programs), and a trailing null is then removed from the value.
 *
 *   Lookups use positional reads: the 2048-byte header is kept in memory,
 *   hash slots and records are read from the file as needed.
 *
 * FILE FORMAT (cdb)
 *   All integers are 32-bit little-endian.
 *   header: 256 pairs (table position, table slot count);
 *   records: key length, value length, key bytes, value bytes;
 *   256 hash tables of (hash, record position) slots, empty when the
 *   position is 0. hash = 5381, then for each byte h = ((h << 5) + h) ^ b.
 *   Table number = hash mod 256; the probe starts at (hash >> 8) mod slot
 *   count; each table has twice as many slots as records. A file is at
 *   most 4 GiB.
 *
 *   A repeated key is reported while building and the first value kept
 *   (DUP_REPLACE keeps the last, DUP_IGNORE keeps the first silently), as
 *   Postfix does with tinycdb. cdbEntries() lists the records that the hash
 *   tables point at, in file order.
 */
import type { Stats } from "node:fs";
import { closeSync, fstatSync, openSync } from "node:fs";
import { msg } from "../util/msg.js";
import { FileDict } from "./dict-file.js";
import { AtomicFile, DupFinder, GrowArray, mix32, readExact } from "./dict-ondisk.js";
import { DictFlag, errorText, foldKey, found, NOT_FOUND, tempFail, type DictResult } from "./dict-types.js";
import type { DbEntry } from "./dict-db.js";

const HEADER = 2048;
const LIMIT = 0xffffffff;

/** The cdb hash of some bytes. */
export function cdbHash(b: Uint8Array): number {
  let h = 5381;
  for (const c of b) h = ((((h << 5) >>> 0) + h) ^ c) >>> 0;
  return h >>> 0;
}

/** An open cdb file: descriptor, header and size. */
interface CdbFile {
  fd: number;
  header: Buffer;
  size: number;
}

/** Finds the value of the key bytes, or null. */
function cdbFind(f: CdbFile, key: Buffer): Buffer | null {
  const h = cdbHash(key);
  const table = (h & 255) * 8;
  const tpos = f.header.readUInt32LE(table);
  const tlen = f.header.readUInt32LE(table + 4);
  if (tlen === 0) return null;
  if (tpos + tlen * 8 > f.size) throw new Error("corrupt cdb hash table");
  let s = (h >>> 8) % tlen;
  for (let n = 0; n < tlen; n++) {
    const slot = readExact(f.fd, 8, tpos + s * 8);
    const rpos = slot.readUInt32LE(4);
    if (rpos === 0) return null;
    if (slot.readUInt32LE(0) === h) {
      const head = readExact(f.fd, 8, rpos);
      const klen = head.readUInt32LE(0);
      const vlen = head.readUInt32LE(4);
      if (rpos + 8 + klen + vlen > f.size) throw new Error("corrupt cdb record");
      if (klen === key.length && readExact(f.fd, klen, rpos + 8).equals(key)) {
        return readExact(f.fd, vlen, rpos + 8 + klen);
      }
    }
    s = s + 1 === tlen ? 0 : s + 1;
  }
  return null;
}

/** A cdb: table. */
export class CdbDict extends FileDict<CdbFile> {
  /** Opens name.cdb. */
  constructor(name: string, flags: number) {
    super("cdb", name, flags | DictFlag.FIXED, `${name}.cdb`);
    this.start();
  }

  /** Reads the header and keeps the descriptor. */
  protected load(_path: string, fd: number, st: Stats): CdbFile {
    if (st.size < HEADER) throw new Error("file too short for a cdb header");
    return { fd, header: readExact(fd, HEADER, 0), size: st.size };
  }

  /** The descriptor stays open. */
  protected override keepOpen(): boolean {
    return true;
  }

  /** Closes the descriptor. */
  protected override release(f: CdbFile): void {
    try {
      closeSync(f.fd);
    } catch {
      /* it was only read */
    }
  }

  /** Looks up a key, without and then with a trailing null byte. */
  protected find(f: CdbFile, key: string): DictResult {
    try {
      const k = Buffer.from(foldKey(key, this.flags, "fixed"), "utf8");
      const v = cdbFind(f, k);
      if (v !== null) return found(v.toString("utf8"));
      const v0 = cdbFind(f, Buffer.concat([k, Buffer.alloc(1)]));
      if (v0 === null) return NOT_FOUND;
      const end = v0.length > 0 && v0[v0.length - 1] === 0 ? v0.length - 1 : v0.length;
      return found(v0.subarray(0, end).toString("utf8"));
    } catch (err) {
      msg.warn(`cdb:${this.name}: ${errorText(err)}`);
      return tempFail(`cdb:${this.name}: ${errorText(err)}`);
    }
  }
}

/** Opens a cdb: table. */
export function cdbOpen(name: string, flags: number): CdbDict {
  return new CdbDict(name, flags);
}

/** Writes a cdb file from entries; returns the number of records. */
export function cdbWrite(path: string, entries: Iterable<DbEntry>, flags: number, where = path): number {
  const out = new AtomicFile(path);
  try {
    out.append(Buffer.alloc(HEADER));
    const pos = new GrowArray<Float64Array>(Float64Array);
    const hash = new GrowArray<Uint32Array>(Uint32Array);
    const h2 = new GrowArray<Uint32Array>(Uint32Array);
    const dead = new Set<number>();
    const keyOf = (i: number): Buffer => {
      out.flush();
      return readExact(out.fd, readExact(out.fd, 4, pos.at(i)).readUInt32LE(0), pos.at(i) + 8);
    };
    const dups = new DupFinder(hash, h2, keyOf);
    for (const e of entries) {
      const key = Buffer.from(foldKey(e.key, flags | DictFlag.FIXED, "fixed"), "utf8");
      const value = Buffer.from(e.value, "utf8");
      const i = pos.length;
      pos.push(out.position);
      hash.push(cdbHash(key));
      h2.push(mix32(key));
      if (dups.admit(i, key, flags, dead, `${where}${e.line ? `, line ${e.line}` : ""}`) === null) continue;
      if (out.position + 8 + key.length + value.length > LIMIT)
        throw new Error("cdb file would exceed 4 GiB");
      const head = Buffer.alloc(8);
      head.writeUInt32LE(key.length, 0);
      head.writeUInt32LE(value.length, 4);
      out.append(head);
      out.append(key);
      out.append(value);
    }
    const count = writeTables(out, pos, hash, dead);
    out.commit();
    return count;
  } catch (err) {
    out.abort();
    throw err;
  }
}

/** Writes the 256 hash tables and the header; returns the number of records indexed. */
function writeTables(
  out: AtomicFile,
  pos: GrowArray<Float64Array>,
  hash: GrowArray<Uint32Array>,
  dead: Set<number>,
): number {
  const counts = new Uint32Array(256);
  for (let i = 0; i < pos.length; i++)
    if (!dead.has(i)) counts[hash.at(i) & 255] = (counts[hash.at(i) & 255] ?? 0) + 1;
  const starts = new Uint32Array(257);
  for (let t = 0; t < 256; t++) starts[t + 1] = (starts[t] ?? 0) + (counts[t] ?? 0);
  const order = new Uint32Array(starts[256] ?? 0);
  const fill = starts.slice(0, 256);
  for (let i = 0; i < pos.length; i++) {
    if (dead.has(i)) continue;
    const t = hash.at(i) & 255;
    const at = fill[t] ?? 0;
    order[at] = i;
    fill[t] = at + 1;
  }
  const header = Buffer.alloc(HEADER);
  for (let t = 0; t < 256; t++) {
    const len = (counts[t] ?? 0) * 2;
    const table = Buffer.alloc(len * 8);
    for (let k = starts[t] ?? 0; k < (starts[t + 1] ?? 0); k++) {
      const i = order[k] ?? 0;
      const h = hash.at(i);
      let s = (h >>> 8) % len;
      while (table.readUInt32LE(s * 8 + 4) !== 0) s = s + 1 === len ? 0 : s + 1;
      table.writeUInt32LE(h, s * 8);
      table.writeUInt32LE(pos.at(i), s * 8 + 4);
    }
    if (out.position + table.length > LIMIT) throw new Error("cdb file would exceed 4 GiB");
    header.writeUInt32LE(out.position, t * 8);
    header.writeUInt32LE(len, t * 8 + 4);
    out.append(table);
  }
  out.writeAt(header, 0);
  return order.length;
}

/** The sorted positions of the records that the hash tables point at. */
function indexedPositions(fd: number, header: Buffer, size: number): Float64Array {
  const all: number[] = [];
  for (let t = 0; t < 256; t++) {
    const tpos = header.readUInt32LE(t * 8);
    const tlen = header.readUInt32LE(t * 8 + 4);
    if (tpos + tlen * 8 > size) throw new Error("corrupt cdb hash table");
    const table = readExact(fd, tlen * 8, tpos);
    for (let s = 0; s < tlen; s++) {
      const p = table.readUInt32LE(s * 8 + 4);
      if (p !== 0) all.push(p);
    }
  }
  return Float64Array.from(all).sort();
}

/** Reads every record of a cdb file, in file order. */
export function* cdbEntries(path: string): Generator<DbEntry> {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < HEADER) throw new Error(`${path}: file too short for a cdb header`);
    const header = readExact(fd, HEADER, 0);
    let end = size;
    for (let t = 0; t < 256; t++) end = Math.min(end, header.readUInt32LE(t * 8));
    const live = indexedPositions(fd, header, size);
    let next = 0;
    for (let p = HEADER; p < end;) {
      const head = readExact(fd, 8, p);
      const klen = head.readUInt32LE(0);
      const vlen = head.readUInt32LE(4);
      if (p + 8 + klen + vlen > end) throw new Error(`${path}: corrupt cdb record at offset ${p}`);
      while (next < live.length && (live[next] ?? 0) < p) next++;
      if (live[next] === p) {
        const kv = readExact(fd, klen + vlen, p + 8);
        let k = kv.subarray(0, klen);
        let v = kv.subarray(klen);
        if (k.length > 0 && k[k.length - 1] === 0) {
          k = k.subarray(0, k.length - 1);
          if (v.length > 0 && v[v.length - 1] === 0) v = v.subarray(0, v.length - 1);
        }
        yield { key: k.toString("utf8"), value: v.toString("utf8") };
      }
      p += 8 + klen + vlen;
    }
  } finally {
    closeSync(fd);
  }
}
