/*
 * msg-sinks - where log lines go: records to the master, or a log file (syslog: msg-sinks-syslog.ts)
 *
 * SYNOPSIS
 *   import { RecordSink, FileSink, formatLogLine } from "../util/msg-sinks.js";
 *   msgInit({ tag: "postern/smtpd", sink: new RecordSink() });               // a daemon child
 *   msgInit({ tag: "postern/master", sink: new FileSink({ path: maillog_file }) });
 *
 * DESCRIPTION
 *   formatLogLine() makes the line Postfix log tools read:
 *   "Nov 20 21:38:00 myhost postern/smtpd[1234]: warning: text".
 *
 *   RecordSink is for daemon children. A child does not write the log: it writes one
 *   record per event on its standard error, a pipe that the master reads (msg-relay.ts;
 *   info records are batched until the end of the event-loop turn, other levels and
 *   process exit write at once):
 *   the byte 0x1e (ASCII RS), one level letter (i w e f p), the text, LF. The text has
 *   no control characters, so a record is exactly one line; anything else the child
 *   prints (a crash trace) is not a record. The tag and pid are not sent: the master
 *   knows which child it reads, and a child cannot log in another's name.
 *
 *   FileSink is maillog_file, as Postfix's postlogd writes it. /dev/stdout and
 *   /dev/stderr are fd 1 and 2. A regular file is opened O_APPEND (no symlinks, no
 *   hard-linked files, nothing but regular files) and whole lines go out in single
 *   write calls, so lines of concurrent writers never interleave. Lines are batched
 *   until the end of the event-loop turn (or batchBytes); flush() writes them, and so
 *   does process exit (msg.fatal/msg.panic call flush() first). Before each batch the
 *   path is stat'ed: when logrotate has renamed or removed the file, it is reopened.
 *
 *   SyslogSink (msg-sinks-syslog.ts) sends the lines to the local syslog socket.
 *
 * SEE ALSO
 *   msg.ts (levels, the MsgSink interface), msg-relay.ts (the master's reader)
 */

import fs from "node:fs";
import os from "node:os";
import { levelText, msgTag, printable, syslogTime, type MsgLevel, type MsgSink } from "./msg.js";

/** Longest text a sink writes; msg.ts already cuts at 4096 characters. */
export const LOG_TEXT_MAX = 8192;

/** The first byte of a record line (ASCII RS). */
export const RECORD_MARK = "\x1e";

/** The levels, in the order of their record letters "iwefp". */
const LEVELS: readonly MsgLevel[] = ["info", "warning", "error", "fatal", "panic"];
const LETTERS = "iwefp";

/** Formats one log line, without LF: "Nov 20 21:38:00 host tag[pid]: warning: text". */
export function formatLogLine(
  date: Date,
  host: string,
  tag: string,
  pid: number,
  level: MsgLevel,
  text: string,
): string {
  return `${syslogTime(date)} ${host} ${lineBody(tag, pid, level, text)}`;
}

/** The part of a line after the time (and host): "tag[pid]: warning: text". */
export function lineBody(tag: string, pid: number, level: MsgLevel, text: string): string {
  return `${printable(tag, 64)}[${pid}]: ${levelText(level, printable(text, LOG_TEXT_MAX))}`;
}

/** Encodes one event as a record line: RS, level letter, text, LF. */
export function encodeRecord(level: MsgLevel, text: string): string {
  return `${RECORD_MARK}${LETTERS.charAt(LEVELS.indexOf(level))}${printable(text, LOG_TEXT_MAX)}\n`;
}

/** Marks a record written on behalf of another program (postlogd): RS, "=", letter, tag, pid, text. */
const ON_BEHALF = "=";
/** What a tag given on behalf of another program may look like. */
const TAG_RE = /^[A-Za-z0-9_./-]{1,64}$/;

/** Encodes a record in another program's name (only postlogd's are honoured, see msg-relay.ts). */
export function encodeOnBehalf(level: MsgLevel, tag: string, pid: number, text: string): string {
  return `${RECORD_MARK}${ON_BEHALF}${LETTERS.charAt(LEVELS.indexOf(level))}${tag} ${pid} ${printable(text, LOG_TEXT_MAX)}\n`;
}

/** Decodes a record written on behalf of another program; null when the line is not a well-formed one. */
export function decodeOnBehalf(
  line: string,
): { level: MsgLevel; tag: string; pid: number; text: string } | null {
  if (!line.startsWith(`${RECORD_MARK}${ON_BEHALF}`)) return null;
  const level = LEVELS[LETTERS.indexOf(line.charAt(2) || "?")];
  const m = /^(\S+) (\d{1,10}) (.*)$/s.exec(line.slice(3));
  if (level === undefined || m === null || !TAG_RE.test(m[1] ?? "")) return null;
  return { level, tag: m[1] ?? "", pid: Number(m[2]), text: printable(m[3] ?? "", LOG_TEXT_MAX) };
}

/** One line read from a child: a record, or other text. */
export type ChildLine = { record: true; level: MsgLevel; text: string } | { record: false; text: string };

/** Decodes one line (LF removed) from a child; the text comes back printable. */
export function decodeRecord(line: string): ChildLine {
  const level = line.startsWith(RECORD_MARK) ? LEVELS[LETTERS.indexOf(line.charAt(1) || "?")] : undefined;
  if (level === undefined) return { record: false, text: printable(line, LOG_TEXT_MAX) };
  return { record: true, level, text: printable(line.slice(2), LOG_TEXT_MAX) };
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
const WRITE_WAIT_MS = 5000;

/** The error code of a caught exception, or its message. */
function errorCode(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

/** Writes all of buf to fd, waiting up to 5 s while a non-blocking fd is full; null or an error code. */
function writeAllSync(fd: number, buf: Buffer): string | null {
  let off = 0;
  let waited = 0;
  while (off < buf.length) {
    let n = 0;
    try {
      n = fs.writeSync(fd, buf, off);
    } catch (err) {
      const code = errorCode(err);
      if (code !== "EAGAIN" && code !== "EINTR") return code;
    }
    off += n;
    if (n > 0) continue;
    if (waited >= WRITE_WAIT_MS) return "EAGAIN";
    Atomics.wait(SLEEPER, 0, 0, 1);
    waited += 1;
  }
  return null;
}

const flushAtExit = new Set<{ flush(): void }>();
let exitHooked = false;

/** Registers a sink to be flushed when the process exits (also after an uncaught exception). */
function hookExit(sink: { flush(): void }): void {
  flushAtExit.add(sink);
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", () => {
    for (const s of flushAtExit) s.flush();
  });
}

/** Records batched at most, in bytes, before they are written. */
const RECORD_BATCH_BYTES = 16384;

/**
 * Sink for daemon children: records on fd 2 (a pipe to the master). Info records wait for the
 * end of the event-loop turn (or a full batch) and go out together in one write, which spares
 * a system call and a wakeup of the master per line; other levels are written at once, with
 * what waits before them. Process exit writes what waits.
 */
export class RecordSink implements MsgSink {
  readonly #fd: number;
  #queue: string[] = [];
  #queued = 0;
  #scheduled = false;

  constructor(opts: { fd?: number } = {}) {
    this.#fd = opts.fd ?? 2;
    hookExit(this);
  }

  /** Queues one record; tag and pid are the master's to add. Lost if the master stays away 5 s. */
  write(level: MsgLevel, tag: string, pid: number, text: string): void {
    const rec = encodeRecord(level, text);
    this.#queue.push(rec);
    this.#queued += rec.length;
    if (level !== "info" || this.#queued >= RECORD_BATCH_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  /** Writes the queued records. */
  flush(): void {
    if (this.#queue.length === 0) return;
    const data = this.#queue.join("");
    this.#queue = [];
    this.#queued = 0;
    writeAllSync(this.#fd, Buffer.from(data));
  }
}

/** The host name syslog would show: the first label of os.hostname(). */
export function shortHostname(): string {
  return os.hostname().split(".")[0] || "localhost";
}

export interface FileSinkOptions {
  /** maillog_file: a path, "/dev/stdout" or "/dev/stderr". */
  path: string;
  /** Host name in each line; default the short host name. */
  host?: string;
  /** Mode of a file that does not exist yet; default 0600. */
  mode?: number;
  /** About the most bytes one write takes; default 64 KiB (4 KiB, PIPE_BUF, for fd 1 and 2). */
  batchBytes?: number;
}

type Opened = { ok: true; fd: number; dev: bigint; ino: bigint } | { ok: false; error: string };

/** Opens a log file for appending; refuses symlinks, hard-linked files and non-regular files. */
function openLogFile(path: string, mode: number): Opened {
  const c = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, c.O_WRONLY | c.O_APPEND | c.O_CREAT | c.O_NOFOLLOW | c.O_NONBLOCK, mode);
  } catch (err) {
    return { ok: false, error: errorCode(err) };
  }
  let problem: string;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (st.isFile() && st.nlink === 1n) return { ok: true, fd, dev: st.dev, ino: st.ino };
    problem = st.isFile() ? "file has more than one hard link" : "not a regular file";
  } catch (err) {
    problem = errorCode(err);
  }
  closeQuietly(fd);
  return { ok: false, error: problem };
}

/** The stat of a path (following symlinks), or the error code. */
export function statOrError(path: string): fs.BigIntStats | string {
  try {
    return fs.statSync(path, { bigint: true });
  } catch (err) {
    return errorCode(err);
  }
}

/** Closes an fd, ignoring errors. */
function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* nothing to do */
  }
}

/** Sink for maillog_file: batched appends of whole lines; reopens a rotated file. */
export class FileSink implements MsgSink {
  readonly #path: string;
  readonly #host: string;
  readonly #mode: number;
  readonly #stdFd: number | undefined;
  readonly #batchBytes: number;
  #fd = -1;
  #dev = -1n;
  #ino = -1n;
  #queue: string[] = [];
  #queued = 0;
  #scheduled = false;
  #failure: string | null = null;
  #stampSecond = -1;
  #stamp = "";

  constructor(opts: FileSinkOptions) {
    this.#path = opts.path;
    this.#host = opts.host ?? shortHostname();
    this.#mode = opts.mode ?? 0o600;
    this.#stdFd = opts.path === "/dev/stdout" ? 1 : opts.path === "/dev/stderr" ? 2 : undefined;
    this.#batchBytes = opts.batchBytes ?? (this.#stdFd === undefined ? 65536 : 4096);
    hookExit(this);
  }

  /** Queues one line; writes at once for fatal/panic or a full batch, else at the end of this turn. */
  write(level: MsgLevel, tag: string, pid: number, text: string): void {
    const line = `${this.#now()} ${this.#host} ${lineBody(tag, pid, level, text)}\n`;
    this.#queue.push(line);
    this.#queued += line.length;
    if (this.#queued >= this.#batchBytes || level === "fatal" || level === "panic") {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  /** Writes the queued lines, in single writes of whole lines. */
  flush(): void {
    if (this.#queue.length === 0) return;
    const lines = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    const fd = this.#ready();
    if (fd < 0) return;
    let chunk = "";
    for (const line of lines) {
      if (chunk.length > 0 && chunk.length + line.length > this.#batchBytes) {
        if (!this.#put(fd, chunk)) return;
        chunk = "";
      }
      chunk += line;
    }
    this.#put(fd, chunk);
  }

  /** Flushes and closes the file; the sink reopens it if written again. */
  close(): void {
    this.flush();
    flushAtExit.delete(this);
    if (this.#fd >= 0) closeQuietly(this.#fd);
    this.#fd = -1;
  }

  /** The syslog time of now, formatted once per second. */
  #now(): string {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#stampSecond) this.#stamp = syslogTime(new Date((this.#stampSecond = second) * 1000));
    return this.#stamp;
  }

  /** The fd to write: the open file if the path still names it, else the file (re)opened; -1 on failure. */
  #ready(): number {
    if (this.#stdFd !== undefined) return this.#stdFd;
    if (this.#fd >= 0) {
      const st = statOrError(this.#path);
      if (typeof st !== "string" && st.ino === this.#ino && st.dev === this.#dev) return this.#fd;
      closeQuietly(this.#fd);
      this.#fd = -1;
    }
    const opened = openLogFile(this.#path, this.#mode);
    if (!opened.ok) {
      this.#report(opened.error);
      return -1;
    }
    ({ fd: this.#fd, dev: this.#dev, ino: this.#ino } = opened);
    return this.#fd;
  }

  /** Writes one chunk of whole lines with one write call; false (reported) on failure. */
  #put(fd: number, chunk: string): boolean {
    const error = writeAllSync(fd, Buffer.from(chunk));
    this.#report(error);
    return error === null;
  }

  /** Reports a failure on standard error, once until the file works again (null); the lines are lost. */
  #report(error: string | null): void {
    if (this.#failure === error) return;
    this.#failure = error;
    if (error !== null)
      writeAllSync(2, Buffer.from(`${msgTag()}: warning: maillog_file ${this.#path}: ${error}\n`));
  }
}
