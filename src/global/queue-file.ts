/*
 * queue-file - write a queue file durably; read and check its envelope
 *
 * SYNOPSIS
 *   const w = await QueueFileWriter.create(paths, longIds);   // w.id
 *   w.time(); w.sender("a@b"); w.attr("log_ident", w.id); w.rcpt({ address: "c@d" });
 *   w.beginContent(); w.line(buf); ...; w.endContent(); await w.commit();   // or commit("hold")
 *   const env = await readEnvelope(path, limits);             // or a typed failure
 *   await markDone(path, rcpt.offset);
 *
 * DESCRIPTION
 *   Layout: C T [F] S A* (O o n R)* M (N|L)* X (O o n R)* E. The C record
 *   at offset 0 has fixed-width fields (content offset, X offset, content
 *   size, recipient count, flags) and is rewritten when the file is
 *   complete. Records that content processing decides (F, A, recipients)
 *   may also follow X: cleanup writes its recipients there, after the
 *   header and body actions that change them.
 *   The writer creates the file under a temporary name in incoming/ (a name
 *   that is not a queue ID, so no scanner sees it), writes, fsyncs, renames
 *   it to its queue ID in incoming/ (or in another queue that commit()
 *   names, such as hold/ for a HOLD action), and fsyncs the directory;
 *   only then does commit() resolve. Writes, fstat and close are direct
 *   calls, as in Postfix (they go to the page cache, and a trip through
 *   libuv's thread pool would cost more than the call); open, rename and
 *   the fsyncs, which may wait for the directory or the disk, run in the
 *   thread pool. A recipient is marked delivered by overwriting its R type byte
 *   with D (written, not fsync'ed, as in Postfix), so a crash repeats at most deliveries whose
 *   mark had not reached the disk, and loses none.
 *   readEnvelope() accepts only a complete, well-formed file; anything else
 *   is a failure with the offset where the file is broken.
 */
import { open, type FileHandle } from "node:fs/promises";
import {
  chmodSync,
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { REC, RecordScanner, encodeRecord, type RecType } from "./rec-codec.js";
import { makeQueueId, queueTimeNow, type QueueTime } from "./queue-id.js";
import type { QueueName, QueuePaths } from "./queue-path.js";

export interface Recipient {
  address: string;
  /** The address as the client gave it, before rewriting (orig_to). */
  original?: string;
  /** DSN ORCPT (addr-type;address). */
  orcpt?: string;
  /** DSN NOTIFY bit mask (DSN_NOTIFY_* values). */
  notify?: number;
}

export const DSN_NOTIFY = { NEVER: 1, SUCCESS: 2, FAILURE: 4, DELAY: 8 } as const;

const SIZE_FIELDS = 5;
const SIZE_WIDTH = 15;
const FLUSH_AT = 65536;

/** Formats the fixed-width size record payload. */
function sizePayload(fields: number[]): string {
  return fields.map((n) => String(n).padStart(SIZE_WIDTH)).join(" ");
}

let tmpCounter = 0;

/** Writes a new queue file; see the module comment for the protocol. */
export class QueueFileWriter {
  readonly id: string;
  readonly arrival: QueueTime;
  #fd: number;
  #tmp: string;
  #paths: QueuePaths;
  #chunks: Buffer[] = [];
  #pending = 0;
  #offset = 0;
  #contentOffset = 0;
  #xOffset = 0;
  #contentSize = 0;
  #rcpts = 0;
  #flags = 0;
  #done = false;
  /** Where the envelope starts (after the size and time records): restart() goes back here. */
  #envStart = 0;

  private constructor(fd: number, tmp: string, paths: QueuePaths, id: string, arrival: QueueTime) {
    this.#fd = fd;
    this.#tmp = tmp;
    this.#paths = paths;
    this.id = id;
    this.arrival = arrival;
  }

  /** Creates the file and its queue ID. */
  static async create(paths: QueuePaths, longIds: boolean): Promise<QueueFileWriter> {
    const dir = join(paths.root, "incoming");
    const tmp = join(dir, `.${process.pid}.${++tmpCounter}.${Math.random().toString(36).slice(2, 8)}`);
    const fd = await openFd(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    let ino: bigint;
    try {
      ino = fstatSync(fd, { bigint: true }).ino;
    } catch (err) {
      closeSync(fd);
      unlinkSync(tmp);
      throw err;
    }
    const arrival = queueTimeNow();
    const id = makeQueueId(arrival, ino, longIds);
    const w = new QueueFileWriter(fd, tmp, paths, id, arrival);
    w.#put(REC.SIZE, sizePayload(new Array<number>(SIZE_FIELDS).fill(0)));
    w.#put(REC.TIME, `${arrival.sec}.${String(arrival.usec).padStart(6, "0")}`);
    w.#envStart = w.#offset;
    return w;
  }

  /** The number of content bytes written so far (lines plus newlines). */
  get contentSize(): number {
    return this.#contentSize;
  }

  /** Appends a record to the write buffer. */
  #put(type: RecType, payload: Buffer | string): void {
    const rec = encodeRecord(type, payload);
    this.#chunks.push(rec);
    this.#pending += rec.length;
    this.#offset += rec.length;
  }

  /** Writes what is buffered. */
  flush(): Promise<void> {
    return asPromise(() => this.#flushNow());
  }

  /** flush(), synchronously. */
  #flushNow(): void {
    if (this.#pending === 0) return;
    const data = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#pending = 0;
    writeAll(this.#fd, data, this.#offset - data.length);
  }

  /** Flushes when the buffer is large. */
  async #maybeFlush(): Promise<void> {
    if (this.#pending >= FLUSH_AT) await this.flush();
  }

  /** Records the content filter (transport:nexthop) that qmgr must use. */
  filter(nexthop: string): void {
    this.#put(REC.FILTER, nexthop);
  }

  /** Records the envelope sender ("" for the null sender). */
  sender(address: string): void {
    this.#put(REC.SENDER, address);
  }

  /** Records a named attribute. */
  attr(name: string, value: string): void {
    this.#put(REC.ATTR, `${name}=${value}`);
  }

  /** Records a recipient with its DSN fields. */
  rcpt(r: Recipient): void {
    if (r.original !== undefined) this.#put(REC.ORIG_RCPT, r.original);
    if (r.orcpt !== undefined) this.#put(REC.DSN_ORCPT, r.orcpt);
    if (r.notify !== undefined) this.#put(REC.DSN_NOTIFY, String(r.notify));
    this.#put(REC.RCPT, r.address);
    this.#rcpts++;
  }

  /** Starts the content. */
  beginContent(): void {
    this.#put(REC.MESSAGE, "");
    this.#contentOffset = this.#offset;
  }

  /** Writes one content line (without its line terminator); long lines are split into L records. */
  async line(text: Buffer, maxRecord = 2048): Promise<void> {
    let i = 0;
    for (; text.length - i > maxRecord; i += maxRecord) this.#put(REC.PART, text.subarray(i, i + maxRecord));
    this.#put(REC.LINE, text.subarray(i));
    this.#contentSize += text.length + 1;
    await this.#maybeFlush();
  }

  /** Writes a piece of a long line; the line goes on in the next part() or line(). */
  async part(piece: Buffer): Promise<void> {
    this.#put(REC.PART, piece);
    this.#contentSize += piece.length;
    await this.#maybeFlush();
  }

  /** Ends the content; recipients written after this are "extracted" ones. */
  endContent(): void {
    this.#xOffset = this.#offset;
    this.#put(REC.XTRA, "");
  }

  /** Reads back the content lines written so far (milters inspect what is queued). */
  async *written(): AsyncGenerator<Buffer> {
    await this.flush();
    yield* contentLines(this.#tmp, { contentOffset: this.#contentOffset, xOffset: this.#offset });
  }

  /** Drops everything after the time record, so that the envelope and content are written again (milter edits). */
  restart(): Promise<void> {
    return asPromise(() => {
      this.#chunks = [];
      this.#pending = 0;
      ftruncateSync(this.#fd, this.#envStart);
      this.#offset = this.#envStart;
      this.#contentOffset = 0;
      this.#contentSize = 0;
      this.#rcpts = 0;
    });
  }

  /** Sets flag bits recorded in the size record. */
  setFlags(bits: number): void {
    this.#flags |= bits;
  }

  /** Completes the file: end record, size record, fsync, rename to the queue ID in a queue, directory fsync. */
  async commit(queue: QueueName = "incoming"): Promise<void> {
    if (this.#xOffset === 0) this.endContent();
    this.#put(REC.END, "");
    const size = encodeRecord(
      REC.SIZE,
      sizePayload([this.#contentOffset, this.#xOffset, this.#contentSize, this.#rcpts, this.#flags]),
    );
    // A file still all in the buffer starts with the size record: it goes out complete, in one write.
    const whole = this.#pending === this.#offset && this.#chunks[0]?.length === size.length;
    if (whole) this.#chunks[0] = size;
    this.#flushNow();
    if (!whole) writeAll(this.#fd, size, 0);
    await fsyncFd(this.#fd);
    const fd = this.#fd;
    this.#fd = -1;
    closeSync(fd);
    const final = this.#paths.path(queue, this.id);
    try {
      await renameFile(this.#tmp, final);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      mkdirSync(dirname(final), { recursive: true, mode: 0o700 });
      renameSync(this.#tmp, final);
    }
    this.#done = true;
    await syncDir(dirname(final));
  }

  /** Abandons the file. */
  abort(): Promise<void> {
    if (!this.#done) {
      this.#done = true;
      if (this.#fd >= 0) ignoreErrors(() => closeSync(this.#fd));
      this.#fd = -1;
      ignoreErrors(() => unlinkSync(this.#tmp));
    }
    return Promise.resolve();
  }

  /** The temporary file name (for logs). */
  get tmpName(): string {
    return basename(this.#tmp);
  }
}

import { asPromise, fsyncFd, ignoreErrors, openFd, renameFile, syncDir, writeAll } from "./queue-fs.js";

export { syncDir };

export interface EnvRecipient extends Recipient {
  /** File offset of the R/D record (for markDone). */
  offset: number;
  done: boolean;
}

export interface Envelope {
  contentOffset: number;
  xOffset: number;
  contentSize: number;
  flags: number;
  arrival: QueueTime;
  sender: string;
  filter?: string;
  attrs: Map<string, string>;
  recipients: EnvRecipient[];
  /** The file's permission bits when it was read (see QUEUE_MODE_SCHEDULED); absent when not read from a file. */
  mode?: number;
}

/**
 * A permission bit of a queue file (the owner-execute bit, which nothing else
 * uses on a queue file): set when a file that has been in the active queue
 * goes back to incoming/ (qmgr's recovery at start, a fast flush of a
 * deferred file). Such a file may have defer, bounce and trace logs from an
 * earlier attempt; one without the bit in incoming/ is new mail. The mark is
 * on the file itself, so it survives any crash (qmgr's memory does not).
 */
export const QUEUE_MODE_SCHEDULED = 0o100;

/** Sets QUEUE_MODE_SCHEDULED on a queue file (keeping its other bits); throws when it cannot. */
export function markScheduled(path: string): void {
  const mode = statSync(path).mode & 0o7777;
  if ((mode & QUEUE_MODE_SCHEDULED) === 0) chmodSync(path, mode | QUEUE_MODE_SCHEDULED);
}

export type EnvelopeResult = { ok: true; env: Envelope } | { ok: false; offset: number; reason: string };

const ENVELOPE_LIMIT = 1 << 20;

/** Files up to this size are read whole, with synchronous calls, instead of record by record. */
const READ_WHOLE_MAX = 65536;

/**
 * Reads and checks a queue file's envelope (content skipped, but the file checked to its end
 * marker). A small file is read at once with synchronous calls (it is in the page cache: a few
 * microseconds, where each call through the thread pool costs tens); a large one by chunks.
 */
export async function readEnvelope(path: string): Promise<EnvelopeResult> {
  let small: { buf: Buffer | null; mode: number };
  try {
    small = readSmallFile(path, READ_WHOLE_MAX);
  } catch (err) {
    return { ok: false, offset: 0, reason: (err as Error).message };
  }
  const whole = small.buf;
  if (whole !== null)
    return withMode(
      await parseEnvelope(new RecordScanner(whole, 0, ENVELOPE_LIMIT), whole.length),
      small.mode,
    );
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (err) {
    return { ok: false, offset: 0, reason: (err as Error).message };
  }
  try {
    const st = await fh.stat();
    return withMode(await parseEnvelope(new RecordScanner(fh, 0, ENVELOPE_LIMIT), st.size), st.mode);
  } finally {
    await fh.close();
  }
}

/** Records the file's permission bits in a parsed envelope. */
function withMode(r: EnvelopeResult, mode: number): EnvelopeResult {
  if (r.ok) r.env.mode = mode & 0o7777;
  return r;
}

/** The whole content of a file of at most max bytes (null when it is larger) and its mode; throws when it cannot be read. */
function readSmallFile(path: string, max: number): { buf: Buffer | null; mode: number } {
  const fd = openSync(path, "r");
  try {
    const { size, mode } = fstatSync(fd);
    if (size > max) return { buf: null, mode };
    // One byte more than the size: a file that grew since fstat() is read by chunks instead.
    const buf = Buffer.allocUnsafe(size + 1);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return { buf: got > size ? null : buf.subarray(0, got), mode };
  } finally {
    closeSync(fd);
  }
}

/** Parses the size record. */
function parseSize(p: Buffer): number[] | null {
  const f = p.toString("latin1").trim().split(/\s+/).map(Number);
  return f.length === SIZE_FIELDS && f.every((n) => Number.isSafeInteger(n) && n >= 0) ? f : null;
}

/** Parses a "sec.usec" arrival time. */
function parseTime(p: Buffer): QueueTime | null {
  const m = /^(\d{1,12})\.(\d{6})$/.exec(p.toString("latin1"));
  return m ? { sec: Number(m[1]), usec: Number(m[2]) } : null;
}

/** Walks the records of a queue file. */
async function parseEnvelope(scan: RecordScanner, fileSize: number): Promise<EnvelopeResult> {
  // An offset taken from a damaged size record may point past the end: report the end instead.
  const bad = (offset: number, reason: string): EnvelopeResult => ({
    ok: false,
    offset: Math.min(offset, fileSize),
    reason,
  });
  const first = await scan.next();
  if (!first.ok) return first;
  const size = first.rec?.type === REC.SIZE ? parseSize(first.rec.payload) : null;
  if (size === null) return bad(0, "missing or malformed size record");
  const [contentOffset = 0, xOffset = 0, contentSize = 0, rcptCount = 0, flags = 0] = size;
  if (contentOffset === 0 || xOffset < contentOffset)
    return bad(0, "incomplete file (size record not finalized)");
  const env: Envelope = {
    contentOffset,
    xOffset,
    contentSize,
    flags,
    arrival: { sec: 0, usec: 0 },
    sender: "",
    attrs: new Map(),
    recipients: [],
  };
  let pending: Recipient = { address: "" };
  let sawSender = false;
  let sawTime = false;
  let sawContent = false;
  let wantXtra = false;
  for (;;) {
    const r = await scan.next();
    if (!r.ok) return r;
    if (r.rec === null) return bad(scan.offset, "file ends without an end record (truncated)");
    const { type, payload, offset } = r.rec;
    // The record where the size record says the content ends must be the end-of-content record.
    if (wantXtra && type !== REC.XTRA)
      return bad(offset, "no end-of-content record where the size record says");
    wantXtra = false;
    const text = payload.toString("utf8");
    switch (type) {
      case REC.TIME: {
        const t = parseTime(payload);
        if (t === null) return bad(offset, "malformed arrival time");
        env.arrival = t;
        sawTime = true;
        break;
      }
      case REC.SENDER:
        env.sender = text;
        sawSender = true;
        break;
      case REC.FILTER:
        env.filter = text;
        break;
      case REC.ATTR: {
        const eq = text.indexOf("=");
        if (eq <= 0) return bad(offset, "malformed attribute");
        env.attrs.set(text.slice(0, eq), text.slice(eq + 1));
        break;
      }
      case REC.ORIG_RCPT:
        pending.original = text;
        break;
      case REC.DSN_ORCPT:
        pending.orcpt = text;
        break;
      case REC.DSN_NOTIFY: {
        const n = Number(text);
        if (!Number.isInteger(n) || n < 0 || n > 15) return bad(offset, "malformed DSN NOTIFY");
        pending.notify = n;
        break;
      }
      case REC.RCPT:
      case REC.DONE:
        env.recipients.push({ ...pending, address: text, offset, done: type === REC.DONE });
        pending = { address: "" };
        break;
      case REC.MESSAGE:
        if (scan.offset !== contentOffset || sawContent)
          return bad(offset, "content offset does not match the size record");
        sawContent = true;
        wantXtra = true;
        scan.seek(xOffset);
        break;
      case REC.XTRA:
        if (offset !== xOffset) return bad(offset, "unexpected end-of-content record");
        break;
      case REC.END: {
        const after = await scan.next();
        if (!after.ok || after.rec !== null) return bad(scan.offset, "data after the end record");
        if (!sawSender || !sawTime) return bad(offset, "no sender or arrival time");
        if (!sawContent) return bad(offset, "no content record");
        if (env.recipients.length !== rcptCount)
          return bad(0, "recipient count does not match the size record");
        return { ok: true, env };
      }
      default:
        return bad(offset, `unexpected record type ${String.fromCharCode(type)} in the envelope`);
    }
  }
}

/**
 * Marks a recipient delivered: its R type byte becomes D. The mark is written, not fsync'ed (as
 * Postfix's deliver_completed() does): a crash may lose it and repeat that delivery, never lose
 * mail. Synchronous calls: one byte in the page cache costs less than the thread pool's round trip.
 */
export function markDone(path: string, offset: number): Promise<void> {
  try {
    writeDoneMark(path, offset);
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  return Promise.resolve();
}

/** Overwrites the type byte at offset with D; throws on failure. */
function writeDoneMark(path: string, offset: number): void {
  const fd = openSync(path, "r+");
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    if (b[0] !== REC.RCPT && b[0] !== REC.DONE)
      throw new Error(`${path}: no recipient record at offset ${offset}`);
    b[0] = REC.DONE;
    if (writeSync(fd, b, 0, 1, offset) !== 1) throw new Error(`${path}: short write at offset ${offset}`);
  } finally {
    closeSync(fd);
  }
}

/** Reads the content lines of a queue file (for delivery agents and postcat); a small file is read at once. */
export async function* contentLines(
  path: string,
  env: Pick<Envelope, "contentOffset" | "xOffset">,
): AsyncGenerator<Buffer> {
  const whole = readSmallFile(path, READ_WHOLE_MAX).buf;
  const fh = whole === null ? await open(path, "r") : null;
  try {
    const scan = new RecordScanner(whole ?? (fh as FileHandle), env.contentOffset, ENVELOPE_LIMIT);
    let parts: Buffer[] = [];
    while (scan.offset < env.xOffset) {
      const r = await scan.next();
      if (!r.ok || r.rec === null)
        throw new Error(
          `${path}: ${r.ok ? "truncated content" : r.reason} at offset ${r.ok ? scan.offset : r.offset}`,
        );
      if (r.rec.type === REC.PART) parts.push(r.rec.payload);
      else if (r.rec.type === REC.LINE) {
        yield parts.length > 0 ? Buffer.concat([...parts, r.rec.payload]) : r.rec.payload;
        parts = [];
      } else throw new Error(`${path}: unexpected record in content at offset ${r.rec.offset}`);
    }
  } finally {
    await fh?.close();
  }
}
