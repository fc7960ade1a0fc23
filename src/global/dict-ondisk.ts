/*
 * dict-ondisk - shared machinery of the on-disk table formats (db, cdb)
 *
 * SYNOPSIS
 *   import { AtomicFile, GrowArray, PageCache, readExact, DupFinder } from "./dict-ondisk.js";
 *
 * DESCRIPTION
 *   AtomicFile writes a new version of a file under a temporary name in
 *   the same directory, through a write buffer; commit() flushes, fsyncs,
 *   renames over the target and fsyncs the directory, so that readers see
 *   the old file or the new one, never a partial one. abort() removes the
 *   temporary file.
 *
 *   GrowArray is a growable typed array, so that building a table of ten
 *   million keys keeps per-key bookkeeping in a few compact arrays.
 *
 *   DupFinder detects repeated keys while a table is built: it indexes the
 *   records by two 32-bit hashes and compares the keys of records whose
 *   hashes are equal, reading them back from the file.
 *
 *   PageCache keeps a bounded number of fixed-size pages of a file for
 *   positional reads (the hash index of a large table).
 *
 *   fnv1a() and mix32() are the two hashes used by the db format.
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { msg } from "../util/msg.js";
import { DictFlag } from "./dict-types.js";

/** Reads exactly len bytes at pos, or throws (short file = corrupt file). */
export function readExact(fd: number, len: number, pos: number): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) throw new Error(`unexpected end of file at offset ${pos + got}`);
    got += n;
  }
  return buf;
}

/** Writes all of buf at pos. */
export function writeExact(fd: number, buf: Uint8Array, pos: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, pos + done);
}

/** A new version of a file, written under a temporary name and renamed into place. */
export class AtomicFile {
  readonly target: string;
  readonly tmp: string;
  readonly fd: number;
  #buf = Buffer.alloc(1 << 20);
  #used = 0;
  #bufPos = 0;
  #closed = false;

  /** Creates the temporary file next to target. */
  constructor(target: string, mode = 0o644) {
    this.target = target;
    this.tmp = join(
      dirname(target),
      `.${basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`,
    );
    this.fd = openSync(this.tmp, "wx+", mode);
  }

  /** The file offset where the next append() lands. */
  get position(): number {
    return this.#bufPos + this.#used;
  }

  /** Appends bytes through the write buffer. */
  append(data: Uint8Array): void {
    if (data.length > this.#buf.length - this.#used) this.flush();
    if (data.length > this.#buf.length) {
      writeExact(this.fd, data, this.#bufPos);
      this.#bufPos += data.length;
      return;
    }
    this.#buf.set(data, this.#used);
    this.#used += data.length;
  }

  /** Writes buffered bytes to the file. */
  flush(): void {
    if (this.#used === 0) return;
    writeExact(this.fd, this.#buf.subarray(0, this.#used), this.#bufPos);
    this.#bufPos += this.#used;
    this.#used = 0;
  }

  /** Writes bytes at an earlier offset (after flushing the buffer). */
  writeAt(data: Uint8Array, pos: number): void {
    this.flush();
    writeExact(this.fd, data, pos);
  }

  /** Flushes, syncs and renames the file into place, then syncs the directory. */
  commit(): void {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.#closed = true;
    renameSync(this.tmp, this.target);
    try {
      const dfd = openSync(dirname(this.target), "r");
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      /* some file systems cannot sync a directory; the rename is done */
    }
  }

  /** Discards the temporary file. */
  abort(): void {
    if (!this.#closed) closeSync(this.fd);
    this.#closed = true;
    try {
      unlinkSync(this.tmp);
    } catch {
      /* already gone */
    }
  }
}

type TypedCtor = Uint32ArrayConstructor | Float64ArrayConstructor;

/** A growable array of 32-bit unsigned integers or doubles. */
export class GrowArray<T extends Uint32Array | Float64Array> {
  #ctor: TypedCtor;
  #data: T;
  length = 0;

  /** Starts with a small capacity. */
  constructor(ctor: TypedCtor) {
    this.#ctor = ctor;
    this.#data = new ctor(1024) as T;
  }

  /** Appends a value. */
  push(v: number): void {
    if (this.length === this.#data.length) {
      const next = new this.#ctor(this.#data.length * 2) as T;
      next.set(this.#data);
      this.#data = next;
    }
    this.#data[this.length++] = v;
  }

  /** The value at index i. */
  at(i: number): number {
    return this.#data[i] ?? 0;
  }
}

/** FNV-1a, 32 bits. */
export function fnv1a(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const c of b) h = Math.imul(h ^ c, 0x01000193);
  return h >>> 0;
}

/** A second, independent 32-bit hash (multiply-rotate). */
export function mix32(b: Uint8Array): number {
  let h = 0x9747b28c ^ b.length;
  for (const c of b) {
    h = Math.imul(h ^ c, 0x5bd1e995);
    h ^= h >>> 15;
  }
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Detects repeated keys among records identified by index; grows as records are added. */
export class DupFinder {
  #slots = new Uint32Array(1024);
  #mask = 1023;
  #count = 0;
  #h1: GrowArray<Uint32Array>;
  #h2: GrowArray<Uint32Array>;
  #keyOf: (index: number) => Buffer;

  /** Uses the hashes in h1/h2 and reads keys back with keyOf. */
  constructor(h1: GrowArray<Uint32Array>, h2: GrowArray<Uint32Array>, keyOf: (i: number) => Buffer) {
    this.#h1 = h1;
    this.#h2 = h2;
    this.#keyOf = keyOf;
  }

  /** Adds record i unless an earlier record has the same key; returns that record's index, or -1. */
  add(i: number, key: Buffer): number {
    if (this.#count * 2 >= this.#slots.length) this.#grow();
    const a = this.#h1.at(i);
    const b = this.#h2.at(i);
    for (let s = a & this.#mask; ; s = (s + 1) & this.#mask) {
      const j = (this.#slots[s] ?? 0) - 1;
      if (j < 0) {
        this.#slots[s] = i + 1;
        this.#count += 1;
        return -1;
      }
      if (this.#h1.at(j) === a && this.#h2.at(j) === b && this.#keyOf(j).equals(key)) return j;
    }
  }

  /**
   * Adds record i under the duplicate-key policy of flags. Returns null when an
   * earlier record keeps the key (record i goes to dead; warned about at `where`
   * unless DUP_IGNORE), the index of the earlier record that record i replaces
   * (DUP_REPLACE; that one goes to dead), or -1 for a new key.
   */
  admit(i: number, key: Buffer, flags: number, dead: Set<number>, where: string): number | null {
    const prev = this.add(i, key);
    if (prev < 0) return -1;
    if ((flags & DictFlag.DUP_REPLACE) === 0) {
      if ((flags & DictFlag.DUP_IGNORE) === 0) {
        msg.warn(`${where}: duplicate entry "${key.toString()}": keeping the first one`);
      }
      dead.add(i);
      return null;
    }
    this.replace(prev, i);
    dead.add(prev);
    return prev;
  }

  /** Makes record i the one found for the key of record old (after a replace). */
  replace(old: number, i: number): void {
    for (let s = this.#h1.at(old) & this.#mask; ; s = (s + 1) & this.#mask) {
      const j = (this.#slots[s] ?? 0) - 1;
      if (j < 0) return;
      if (j === old) {
        this.#slots[s] = i + 1;
        return;
      }
    }
  }

  /** Doubles the slot table; the keys in it are distinct, so only hashes are needed. */
  #grow(): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(old.length * 2);
    this.#mask = this.#slots.length - 1;
    for (const v of old) {
      if (v === 0) continue;
      let s = this.#h1.at(v - 1) & this.#mask;
      while (this.#slots[s] !== 0) s = (s + 1) & this.#mask;
      this.#slots[s] = v;
    }
  }
}

/** A bounded cache of fixed-size pages of a file region, for positional reads. */
export class PageCache {
  #fd: number;
  #base: number;
  #end: number;
  #pageSize: number;
  #maxPages: number;
  #pages = new Map<number, Buffer>();

  /** Caches pages of the region [base, end) of fd, counted from base. */
  constructor(fd: number, base: number, end: number, pageSize = 4096, maxPages = 256) {
    this.#fd = fd;
    this.#base = base;
    this.#end = end;
    this.#pageSize = pageSize;
    this.#maxPages = maxPages;
  }

  /** Reads len bytes at file offset pos; the bytes must not cross a page boundary of the region. */
  read(pos: number, len: number): Buffer {
    const rel = pos - this.#base;
    const no = Math.floor(rel / this.#pageSize);
    let page = this.#pages.get(no);
    if (page === undefined) {
      const start = this.#base + no * this.#pageSize;
      page = readExact(this.#fd, Math.min(this.#pageSize, this.#end - start), start);
      if (this.#pages.size >= this.#maxPages) {
        const oldest = this.#pages.keys().next();
        if (oldest.done !== true) this.#pages.delete(oldest.value);
      }
    } else {
      this.#pages.delete(no);
    }
    this.#pages.set(no, page);
    const off = rel - no * this.#pageSize;
    if (rel < 0 || off + len > page.length)
      throw new Error(`read outside the cached region at offset ${pos}`);
    return page.subarray(off, off + len);
  }
}
