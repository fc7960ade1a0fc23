/*
 * msg-sinks - where log lines go: records to the master, a log file, or syslog
 *
 * SYNOPSIS
 *   import { RecordSink, FileSink, SyslogSink, formatLogLine } from "../util/msg-sinks.js";
 *   msgInit({ tag: "postern/smtpd", sink: new RecordSink() });               // a daemon child
 *   msgInit({ tag: "postern/master", sink: new FileSink({ path: maillog_file }) });
 *   msgInit({ tag: "postern/master", sink: new SyslogSink({ facility: syslog_facility }) });
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
 *   SyslogSink sends RFC 3164 records "<PRI>Mmm dd hh:mm:ss tag[pid]: text" to the
 *   local syslog socket (default /dev/log). Node cannot send Unix datagrams (dgram
 *   has only UDP) and /dev/log is a datagram socket under rsyslog, syslog-ng and
 *   journald, so the sink probes the socket with a stream connect:
 *   - it connects (a stream socket: syslog-ng unix-stream(), rsyslog imptcp path=):
 *     pure Node, LF-framed records on that connection;
 *   - EPROTOTYPE (a datagram socket, the usual case): logger(1) from util-linux
 *     (Debian: bsdutils, Essential), one long-lived child per tag and pid, run as
 *     "logger --socket-errors=off --socket=PATH --tag=TAG --id=PID --prio-prefix",
 *     fed "<PRI>text" lines on stdin. logger sends exactly the record above, takes a
 *     priority per line, and reconnects when syslogd restarts; the tag and pid are
 *     per process (no option sets them per line), hence one child per daemon pid.
 *     Children idle for a minute are ended; what logger says goes to our stderr.
 *     Only the unjailed master (and command-line tools) can use this.
 *   - the socket is missing, refuses, or logger cannot run: formatted lines go to
 *     standard error after ONE warning; the socket is tried again after a minute.
 *   Writes never block the event loop; a destination too slow to take more than
 *   1 MB drops lines and says how many. flush() can only hand over lines still
 *   waiting for the probe (to standard error): the rest is already in a kernel buffer.
 *
 * SEE ALSO
 *   msg.ts (levels, the MsgSink interface), msg-relay.ts (the master's reader)
 */

import { spawn, type ChildProcessByStdio } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import type { Writable } from "node:stream";
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
function lineBody(tag: string, pid: number, level: MsgLevel, text: string): string {
  return `${printable(tag, 64)}[${pid}]: ${levelText(level, printable(text, LOG_TEXT_MAX))}`;
}

/** Encodes one event as a record line: RS, level letter, text, LF. */
export function encodeRecord(level: MsgLevel, text: string): string {
  return `${RECORD_MARK}${LETTERS.charAt(LEVELS.indexOf(level))}${printable(text, LOG_TEXT_MAX)}\n`;
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
function shortHostname(): string {
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
function statOrError(path: string): fs.BigIntStats | string {
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

/** Syslog facility codes by name (syslog.h), as syslog_facility names them. */
export const SYSLOG_FACILITIES: ReadonlyMap<string, number> = new Map([
  ["kern", 0], ["user", 1], ["mail", 2], ["daemon", 3], ["auth", 4], ["syslog", 5], ["lpr", 6], ["news", 7],
  ["uucp", 8], ["cron", 9], ["authpriv", 10], ["ftp", 11], ["local0", 16], ["local1", 17], ["local2", 18],
  ["local3", 19], ["local4", 20], ["local5", 21], ["local6", 22], ["local7", 23],
]); // prettier-ignore

/** Syslog severities of the levels, as Postfix's msg_syslog maps them. */
const SEVERITY: Readonly<Record<MsgLevel, number>> = { info: 6, warning: 4, error: 3, fatal: 2, panic: 2 };

export interface SyslogSinkOptions {
  /** syslog_facility: a name from SYSLOG_FACILITIES or a code; default "mail". */
  facility?: string | number;
  /** The syslog socket; default "/dev/log". */
  socketPath?: string;
  /** The logger(1) program; default /usr/bin/logger, /bin/logger or "logger" on PATH. */
  loggerPath?: string;
  /** Host name for the lines of the standard-error fallback. */
  host?: string;
}

type SyslogEvent = { level: MsgLevel; tag: string; pid: number; text: string; at: Date };
type LoggerChild = { proc: ChildProcessByStdio<Writable, null, null>; used: number };

const MAX_QUEUED = 10000;
const MAX_PENDING_BYTES = 1 << 20;
const MAX_LOGGERS = 100;
const LOGGER_IDLE_MS = 60_000;
const RETRY_MS = 60_000;

/** A tag safe for a syslog header: no spaces, colons or brackets. */
function headerTag(tag: string): string {
  return tag.replace(/[^\x21-\x7e]|[:[\]]/g, "_").slice(0, 64) || "postern";
}

/** Sink for syslog: a stream connection to the socket, or logger(1) children; stderr if neither works. */
export class SyslogSink implements MsgSink {
  readonly #facility: number;
  readonly #socketPath: string;
  readonly #loggerPath: string;
  readonly #fallback: FileSink;
  #mode: "none" | "probe" | "stream" | "logger" | "stderr" = "none";
  #queue: SyslogEvent[] = [];
  #stream: net.Socket | null = null;
  #loggers = new Map<string, LoggerChild>();
  #reaper: NodeJS.Timeout | null = null;
  #retryAt = 0;
  #warned = false;
  #probing: net.Socket | null = null;
  #settled: (() => void)[] = [];
  #dropped = 0;
  #badFacility: string | null = null;

  constructor(opts: SyslogSinkOptions = {}) {
    const name = opts.facility ?? "mail";
    const code = typeof name === "number" ? name : SYSLOG_FACILITIES.get(name.toLowerCase());
    const valid = code !== undefined && [...SYSLOG_FACILITIES.values()].includes(code);
    this.#badFacility = valid ? null : String(name);
    this.#facility = valid ? code : 2;
    this.#socketPath = opts.socketPath ?? "/dev/log";
    this.#loggerPath = opts.loggerPath ?? (fs.existsSync("/usr/bin/logger") ? "/usr/bin/logger" : "logger");
    this.#fallback = new FileSink({ path: "/dev/stderr", host: opts.host ?? shortHostname() });
  }

  /** Sends one line by the current means; the first line starts the probe of the socket. */
  write(level: MsgLevel, tag: string, pid: number, text: string): void {
    try {
      this.#dispatch({ level, tag: headerTag(tag), pid, text, at: new Date() });
    } catch {
      /* a log line is not worth a crash */
    }
  }

  /** Writes lines still waiting for the probe to standard error; the rest is with the kernel. */
  flush(): void {
    for (const ev of this.#queue) this.#fallback.write(ev.level, ev.tag, ev.pid, ev.text);
    this.#queue = [];
    this.#fallback.flush();
  }

  /** Lets a running probe settle, then ends the connection and the logger children (at most 5 s each). */
  async close(): Promise<void> {
    if (this.#mode === "probe")
      await this.#within(new Promise<void>((resolve) => this.#settled.push(resolve)));
    this.flush();
    if (this.#reaper !== null) clearInterval(this.#reaper);
    this.#reaper = null;
    const gone: Promise<unknown>[] = [];
    for (const lg of this.#loggers.values()) {
      gone.push(new Promise((resolve) => lg.proc.once("close", resolve)));
      lg.proc.stdin.end();
    }
    this.#loggers.clear();
    const stream = this.#stream;
    if (stream !== null) {
      gone.push(new Promise((resolve) => stream.once("close", resolve)));
      stream.end();
    }
    this.#stream = null;
    this.#probing?.destroy();
    this.#probing = null;
    this.#mode = "none";
    await this.#within(Promise.all(gone));
    this.#fallback.close();
  }

  /** Waits for a promise, but not more than 5 s. */
  async #within(p: Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise((resolve) => (timer = setTimeout(resolve, 5000)));
    await Promise.race([p, limit]);
    clearTimeout(timer);
  }

  /** Routes one event by mode, starting or retrying the probe when due. */
  #dispatch(ev: SyslogEvent): void {
    if (this.#mode === "none" || (this.#mode === "stderr" && Date.now() >= this.#retryAt)) this.#probe();
    if (this.#mode === "stream") this.#sendStream(ev);
    else if (this.#mode === "logger") this.#sendLogger(ev);
    else if (this.#mode !== "probe") this.#fallback.write(ev.level, ev.tag, ev.pid, ev.text);
    else if (this.#queue.length < MAX_QUEUED) this.#queue.push(ev);
    else this.#dropped++;
  }

  /** Finds out what the socket is: stream (connects), datagram (EPROTOTYPE), or unusable. */
  #probe(): void {
    this.#mode = "probe";
    const st = statOrError(this.#socketPath);
    if (typeof st === "string" || !st.isSocket()) {
      this.#unusable(typeof st === "string" ? st : "not a socket");
      return;
    }
    const sock = net.createConnection({ path: this.#socketPath });
    this.#probing = sock;
    sock.unref();
    sock.once("connect", () => {
      this.#probing = null;
      this.#stream = sock;
      this.#settle("stream");
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      if (this.#probing !== sock) return;
      this.#probing = null;
      if (err.code === "EPROTOTYPE") this.#settle("logger");
      else this.#unusable(err.code ?? err.message);
    });
    sock.on("close", () => {
      if (this.#stream !== sock) return;
      this.#stream = null;
      this.#mode = "none";
    });
  }

  /** Ends the probe in a mode and sends what waited for it. */
  #settle(mode: "stream" | "logger" | "stderr"): void {
    this.#mode = mode;
    for (const resolve of this.#settled.splice(0)) resolve();
    const waiting = this.#queue;
    this.#queue = [];
    if (this.#badFacility !== null) {
      const bad = this.#badFacility;
      this.#badFacility = null;
      this.#dispatch(this.#notice(`unknown syslog_facility "${bad}": using mail`));
    }
    for (const ev of waiting) this.#dispatch(ev);
  }

  /** Falls back to standard error with one warning (for the life of the sink); retries later. */
  #unusable(why: string): void {
    this.#retryAt = Date.now() + RETRY_MS;
    if (!this.#warned) {
      this.#warned = true;
      const ev = this.#notice(`syslog socket ${this.#socketPath}: ${why}: logging to standard error`);
      this.#fallback.write(ev.level, ev.tag, ev.pid, ev.text);
    }
    this.#settle("stderr");
  }

  /** A warning of this sink's own, in the name of this process. */
  #notice(text: string): SyslogEvent {
    return { level: "warning", tag: headerTag(msgTag()), pid: process.pid, text, at: new Date() };
  }

  /** The "<PRI>" of an event. */
  #pri(ev: SyslogEvent): string {
    return `<${this.#facility * 8 + SEVERITY[ev.level]}>`;
  }

  /** Says how many lines were dropped, if any, before the next line goes out. */
  #reportDrops(): void {
    if (this.#dropped === 0) return;
    const n = this.#dropped;
    this.#dropped = 0;
    this.#dispatch(this.#notice(`syslog: ${n} log lines dropped: destination too slow`));
  }

  /** Sends a whole RFC 3164 record, LF-framed, on the stream connection. */
  #sendStream(ev: SyslogEvent): void {
    const sock = this.#stream;
    if (sock === null) return;
    if (sock.writableLength > MAX_PENDING_BYTES) {
      this.#dropped++;
      return;
    }
    this.#reportDrops();
    sock.write(`${this.#pri(ev)}${syslogTime(ev.at)} ${lineBody(ev.tag, ev.pid, ev.level, ev.text)}\n`);
  }

  /** Sends "<PRI>text" to the logger child of the event's tag and pid, started if need be. */
  #sendLogger(ev: SyslogEvent): void {
    const key = `${ev.tag}[${ev.pid}]`;
    const lg = this.#loggers.get(key) ?? this.#startLogger(key, ev);
    if (lg === null) return;
    lg.used = Date.now();
    if (lg.proc.stdin.writableLength > MAX_PENDING_BYTES) {
      this.#dropped++;
      return;
    }
    this.#reportDrops();
    lg.proc.stdin.write(`${this.#pri(ev)}${levelText(ev.level, printable(ev.text, LOG_TEXT_MAX))}\n`);
  }

  /** Starts a logger(1) child for one tag and pid; null (and stderr mode) if it cannot run. */
  #startLogger(key: string, ev: SyslogEvent): LoggerChild | null {
    const [oldest] = this.#loggers.size >= MAX_LOGGERS ? this.#loggers.keys() : [];
    if (oldest !== undefined) this.#end(oldest);
    const args = ["--socket-errors=off", `--socket=${this.#socketPath}`, `--tag=${ev.tag}`, `--id=${ev.pid}`];
    args.push("--prio-prefix", `--size=${LOG_TEXT_MAX + 512}`);
    const proc = spawn(this.#loggerPath, args, { stdio: ["pipe", "ignore", "inherit"] });
    proc.on("error", () => {});
    proc.stdin.on("error", () => {});
    if (proc.pid === undefined) {
      this.#unusable(`cannot run ${this.#loggerPath}`);
      this.#fallback.write(ev.level, ev.tag, ev.pid, ev.text);
      return null;
    }
    const lg: LoggerChild = { proc, used: Date.now() };
    this.#loggers.set(key, lg);
    this.#watchLogger(key, lg);
    if (this.#reaper === null) {
      this.#reaper = setInterval(() => this.#reap(), LOGGER_IDLE_MS / 4);
      this.#reaper.unref();
    }
    return lg;
  }

  /** Forgets a logger child when it exits; a failed exit (e.g. options unknown) means stderr mode. */
  #watchLogger(key: string, lg: LoggerChild): void {
    lg.proc.unref();
    (lg.proc.stdin as Partial<net.Socket>).unref?.();
    lg.proc.on("close", (code) => {
      if (this.#loggers.get(key) === lg) this.#loggers.delete(key);
      if (code !== 0 && code !== null) this.#unusable(`${this.#loggerPath} exited with status ${code}`);
    });
  }

  /** Ends logger children idle for a minute. */
  #reap(): void {
    const now = Date.now();
    for (const [key, lg] of this.#loggers) if (now - lg.used >= LOGGER_IDLE_MS) this.#end(key);
  }

  /** Ends one logger child: it sends what it has read, then exits. */
  #end(key: string): void {
    this.#loggers.get(key)?.proc.stdin.end();
    this.#loggers.delete(key);
  }
}
