/*
 * rec-codec - typed, length-prefixed records: the queue file's building block
 *
 * SYNOPSIS
 *   const buf = encodeRecord(REC.SENDER, Buffer.from("a@b"));
 *   const scan = new RecordScanner(fh, offset, limit); for await (const r of scan) ...
 *
 * DESCRIPTION
 *   A record is one type byte, the payload length as a base-128 number (low
 *   7 bits first, the high bit set on every byte but the last, at most 5
 *   bytes), then the payload. The record types of a queue file:
 *     C size (fixed width, rewritten in place)   T arrival time
 *     F content filter   S sender   A attribute name=value
 *     O original recipient   o DSN ORCPT   n DSN NOTIFY   R recipient
 *     D recipient already delivered (an R whose type byte was overwritten)
 *     M start of content   N content line   L partial content line (continued)
 *     X end of content     E end of file
 *   The scanner reads with bounded buffers (or walks a whole small file
 *   read at once), checks every length against a
 *   limit and against the end of the file, and reports the offset of the
 *   first bad byte instead of throwing.
 */
import type { FileHandle } from "node:fs/promises";

export const REC = {
  SIZE: 0x43, // C
  TIME: 0x54, // T
  FILTER: 0x46, // F
  SENDER: 0x53, // S
  ATTR: 0x41, // A
  ORIG_RCPT: 0x4f, // O
  DSN_ORCPT: 0x6f, // o
  DSN_NOTIFY: 0x6e, // n
  RCPT: 0x52, // R
  DONE: 0x44, // D
  MESSAGE: 0x4d, // M
  LINE: 0x4e, // N
  PART: 0x4c, // L
  XTRA: 0x58, // X
  END: 0x45, // E
} as const;

export type RecType = (typeof REC)[keyof typeof REC];
const KNOWN: ReadonlySet<number> = new Set<number>(Object.values(REC));

/** True for a record type a queue file may hold. */
export function recTypeKnown(t: number): t is RecType {
  return KNOWN.has(t);
}

/** Encodes one record. */
export function encodeRecord(type: RecType, payload: Buffer | string): Buffer {
  const data = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
  const head: number[] = [type];
  let n = data.length;
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    head.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from(head), data]);
}

export interface Rec {
  type: RecType;
  /** File offset of the type byte. */
  offset: number;
  payload: Buffer;
}

export type ScanResult =
  { ok: true; rec: Rec } | { ok: false; offset: number; reason: string } | { ok: true; rec: null };

const CHUNK = 65536;

/** Reads records one at a time from a file handle (or a whole file already read), with a limit on every payload. */
export class RecordScanner {
  #fh: FileHandle | null;
  /** The whole file, when the scanner was given it instead of a handle. */
  #whole: Buffer | null;
  #buf: Buffer = Buffer.alloc(0);
  #bufStart: number;
  #eof = false;
  readonly #maxPayload: number;

  constructor(source: FileHandle | Buffer, offset: number, maxPayload: number) {
    this.#fh = Buffer.isBuffer(source) ? null : source;
    this.#whole = Buffer.isBuffer(source) ? source : null;
    this.#bufStart = offset;
    this.#maxPayload = maxPayload;
    if (this.#whole !== null) this.seek(offset);
  }

  /** The file offset of the next record. */
  get offset(): number {
    return this.#bufStart;
  }

  /** Moves to another offset (skipping content, say); what is buffered there already is kept. */
  seek(offset: number): void {
    if (this.#whole !== null) {
      this.#buf = this.#whole.subarray(Math.min(offset, this.#whole.length));
      this.#bufStart = offset;
      this.#eof = true;
      return;
    }
    const end = this.#bufStart + this.#buf.length;
    if (offset >= this.#bufStart && offset <= end) {
      this.#buf = this.#buf.subarray(offset - this.#bufStart);
      this.#bufStart = offset;
      return;
    }
    this.#buf = Buffer.alloc(0);
    this.#bufStart = offset;
    this.#eof = false;
  }

  /** Makes sure at least n bytes are buffered unless the file ends first. */
  async #fill(n: number): Promise<void> {
    while (this.#buf.length < n && !this.#eof && this.#fh !== null) {
      const want = Math.max(CHUNK, n - this.#buf.length);
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.#fh.read(chunk, 0, want, this.#bufStart + this.#buf.length);
      if (bytesRead < want) this.#eof = true; // a short read is the end of the file
      this.#buf = Buffer.concat([this.#buf, chunk.subarray(0, bytesRead)]);
    }
  }

  /** Reads the next record; rec is null at a clean end of file. */
  async next(): Promise<ScanResult> {
    await this.#fill(6);
    const at = this.#bufStart;
    if (this.#buf.length === 0) return { ok: true, rec: null };
    const type = this.#buf[0] ?? 0;
    if (!recTypeKnown(type))
      return { ok: false, offset: at, reason: `unknown record type 0x${type.toString(16)}` };
    let len = 0;
    let i = 1;
    for (let mul = 1; ; mul *= 128, i++) {
      if (i > 5) return { ok: false, offset: at, reason: "record length too long" };
      const b = this.#buf[i];
      if (b === undefined) return { ok: false, offset: at, reason: "file ends inside a record length" };
      len += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) break;
    }
    i++;
    if (len > this.#maxPayload)
      return { ok: false, offset: at, reason: `record length ${len} exceeds the limit ${this.#maxPayload}` };
    await this.#fill(i + len);
    if (this.#buf.length < i + len)
      return { ok: false, offset: at, reason: "file ends inside a record (truncated)" };
    const payload = Buffer.from(this.#buf.subarray(i, i + len));
    this.#buf = this.#buf.subarray(i + len);
    this.#bufStart += i + len;
    return { ok: true, rec: { type, offset: at, payload } };
  }
}
