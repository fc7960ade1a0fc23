/*
 * msg-sinks-syslog - the syslog destination of the log
 *
 * SYNOPSIS
 *   import { SyslogSink } from "../util/msg-sinks-syslog.js";
 *   msgInit({ tag: "postern/master", sink: new SyslogSink({ facility: syslog_facility }) });
 *
 * DESCRIPTION
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
 *   msg-sinks.ts (the line format, the record and file sinks)
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import type { Writable } from "node:stream";
import { levelText, msgTag, printable, syslogTime, type MsgLevel, type MsgSink } from "./msg.js";
import { FileSink, LOG_TEXT_MAX, lineBody, shortHostname, statOrError } from "./msg-sinks.js";

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
