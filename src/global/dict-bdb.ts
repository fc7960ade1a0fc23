/*
 * dict-bdb - read the Berkeley DB hash and btree files that Postfix makes
 *
 * SYNOPSIS
 *   import { isBerkeleyDb, readBerkeleyDb } from "./dict-bdb.js";
 *   if (isBerkeleyDb(head)) for (const [key, value] of readBerkeleyDb(fd, size)) ...
 *
 * DESCRIPTION
 *   Postfix's postmap and postalias (and newaliases) write hash: and btree:
 *   tables as Berkeley DB files (name.db). Postern writes its own format
 *   (dict-db.ts) but reads these as they are, so that an installation moves
 *   over without rebuilding a table. The file is read once, page by page:
 *   every key/data pair on the hash pages (P_HASH, P_HASH_UNSORTED) or the
 *   btree leaf pages (P_LBTREE), values longer than a page followed through
 *   their overflow pages. Postfix stores keys and values with a trailing
 *   null byte (its "try1null" default); one is removed. Either byte order
 *   is read, as the metadata page's magic number says.
 *
 *   Everything in the file is checked against the page size, the page count
 *   and the limits below; a file that breaks any of them is an error naming
 *   what is wrong, never a partial table. Encrypted files and files with
 *   page checksums (which Postfix never makes) are refused by name.
 */
import { readSync } from "node:fs";

const HASH_MAGIC = 0x061561;
const BTREE_MAGIC = 0x053162;
/** Page types (db_page.h). */
const P_HASH_UNSORTED = 2;
const P_LBTREE = 5;
const P_OVERFLOW = 7;
const P_HASH = 13;
/** Item types of hash pages (H_*) and btree pages (B_*). */
const H_KEYDATA = 1;
const H_OFFPAGE = 3;
const B_KEYDATA = 1;
const B_OVERFLOW = 3;
/** The generic page header: lsn(8) pgno prev next (4 each) entries hf_offset (2 each) level type (1 each). */
const PAGE_HEADER = 26;
/** The largest table file read this way, and the largest single key or value. */
export const BDB_FILE_MAX = 1 << 30;
const ITEM_MAX = 16 << 20;

/** The kind of Berkeley DB file whose first bytes these are, or null. */
export function isBerkeleyDb(head: Buffer): "hash" | "btree" | null {
  if (head.length < 16) return null;
  for (const magic of [head.readUInt32LE(12), head.readUInt32BE(12)]) {
    if (magic === HASH_MAGIC) return "hash";
    if (magic === BTREE_MAGIC) return "btree";
  }
  return null;
}

/** One page of the file, with readers in the file's byte order. */
class Page {
  readonly buf: Buffer;
  readonly le: boolean;

  constructor(buf: Buffer, le: boolean) {
    this.buf = buf;
    this.le = le;
  }

  u16(off: number): number {
    return this.le ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off);
  }

  u32(off: number): number {
    return this.le ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }

  get type(): number {
    return this.buf[25] ?? 0;
  }

  get entries(): number {
    return this.u16(20);
  }

  /** The offset of item i (from the index after the header), checked against the page. */
  item(i: number): number {
    const off = this.u16(PAGE_HEADER + 2 * i);
    if (off < PAGE_HEADER + 2 * this.entries || off >= this.buf.length)
      throw new Error(`item ${i} out of page`);
    return off;
  }
}

/** The file: its page size, page count, byte order and a reader of whole pages. */
class BdbFile {
  readonly pageSize: number;
  readonly pages: number;
  readonly le: boolean;
  readonly #fd: number;

  constructor(fd: number, size: number) {
    if (size > BDB_FILE_MAX) throw new Error(`Berkeley DB file larger than ${BDB_FILE_MAX} bytes`);
    const meta = Buffer.alloc(64);
    if (readSync(fd, meta, 0, 64, 0) < 64) throw new Error("Berkeley DB file too short");
    this.le = meta.readUInt32LE(12) === HASH_MAGIC || meta.readUInt32LE(12) === BTREE_MAGIC;
    this.#fd = fd;
    const m = new Page(meta, this.le);
    this.pageSize = m.u32(20);
    if (this.pageSize < 512 || this.pageSize > 65536 || (this.pageSize & (this.pageSize - 1)) !== 0)
      throw new Error(`bad page size ${this.pageSize}`);
    if ((meta[24] ?? 0) !== 0) throw new Error("encrypted Berkeley DB files are not supported");
    if (((meta[26] ?? 0) & 1) !== 0)
      throw new Error("Berkeley DB files with page checksums are not supported");
    if (size % this.pageSize !== 0) throw new Error("file size is not a whole number of pages");
    this.pages = size / this.pageSize;
  }

  /** Reads page n. */
  page(n: number): Page {
    if (n < 1 || n >= this.pages) throw new Error(`page ${n} out of file`);
    const buf = Buffer.alloc(this.pageSize);
    if (readSync(this.#fd, buf, 0, this.pageSize, n * this.pageSize) !== this.pageSize)
      throw new Error(`short read of page ${n}`);
    return new Page(buf, this.le);
  }

  /** Reads a value stored on overflow pages: tlen bytes from page pgno on. */
  overflow(pgno: number, tlen: number): Buffer {
    if (tlen > ITEM_MAX) throw new Error(`item of ${tlen} bytes is too large`);
    const parts: Buffer[] = [];
    let got = 0;
    for (let n = pgno, hops = 0; got < tlen; hops++) {
      if (n === 0 || hops > this.pages) throw new Error(`broken overflow chain at page ${pgno}`);
      const p = this.page(n);
      if (p.type !== P_OVERFLOW) throw new Error(`page ${n} is not an overflow page`);
      const len = p.u16(22);
      if (PAGE_HEADER + len > this.pageSize) throw new Error(`bad overflow length on page ${n}`);
      parts.push(p.buf.subarray(PAGE_HEADER, PAGE_HEADER + len));
      got += len;
      n = p.u32(16);
    }
    if (got !== tlen) throw new Error(`overflow chain at page ${pgno} holds ${got} bytes, not ${tlen}`);
    return Buffer.concat(parts);
  }
}

/** Item i of a hash page: its bytes (the type byte stripped; off-page items fetched). */
function hashItem(f: BdbFile, p: Page, i: number): Buffer {
  const off = p.item(i);
  const end = i === 0 ? f.pageSize : p.item(i - 1);
  if (end <= off) throw new Error(`item ${i} has no length`);
  const type = p.buf[off];
  if (type === H_KEYDATA) return p.buf.subarray(off + 1, end);
  if (type === H_OFFPAGE && end - off >= 12) return f.overflow(p.u32(off + 4), p.u32(off + 8));
  throw new Error(`unsupported hash item type ${type} (duplicates?)`);
}

/** Item i of a btree leaf page. */
function btreeItem(f: BdbFile, p: Page, i: number): Buffer {
  const off = p.item(i);
  const len = p.u16(off);
  const type = (p.buf[off + 2] ?? 0) & 0x7f;
  if (type === B_KEYDATA) {
    if (off + 3 + len > f.pageSize) throw new Error(`item ${i} runs past its page`);
    return p.buf.subarray(off + 3, off + 3 + len);
  }
  if (type === B_OVERFLOW && off + 12 <= f.pageSize) return f.overflow(p.u32(off + 4), p.u32(off + 8));
  throw new Error(`unsupported btree item type ${type} (duplicates?)`);
}

/** Removes the one trailing null byte Postfix stores (when there is one). */
function text(b: Buffer): string {
  return (b.length > 0 && b[b.length - 1] === 0 ? b.subarray(0, -1) : b).toString("utf8");
}

/** Reads every key/value pair of a Berkeley DB hash or btree file (the first value of a key wins). */
export function readBerkeleyDb(fd: number, size: number): Map<string, string> {
  const f = new BdbFile(fd, size);
  const out = new Map<string, string>();
  for (let n = 1; n < f.pages; n++) {
    let p: Page;
    try {
      p = f.page(n);
    } catch (err) {
      throw new Error(`page ${n}: ${(err as Error).message}`, { cause: err });
    }
    const hash = p.type === P_HASH || p.type === P_HASH_UNSORTED;
    if (!hash && p.type !== P_LBTREE) continue;
    if (PAGE_HEADER + 2 * p.entries > f.pageSize || p.entries % 2 !== 0)
      throw new Error(`page ${n}: bad entry count ${p.entries}`);
    const item = hash ? hashItem : btreeItem;
    try {
      for (let i = 0; i < p.entries; i += 2) {
        const key = text(item(f, p, i));
        if (!out.has(key)) out.set(key, text(item(f, p, i + 1)));
      }
    } catch (err) {
      throw new Error(`page ${n}: ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}
