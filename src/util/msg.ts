/*
 * msg - diagnostics with Postfix's levels
 *
 * SYNOPSIS
 *   import { msg, msgInit } from "../util/msg.js";
 *   msgInit({ tag: "postern/smtpd" });
 *   msg.info("connect from ..."); msg.warn(...); msg.error(...); msg.fatal(...); msg.panic(...);
 *
 * DESCRIPTION
 *   One line per event. The levels keep Postfix's meanings:
 *   info     normal event;
 *   warning  something is wrong but the program continues;
 *   error    something is wrong; too many of them end the program;
 *   fatal    a problem the program cannot continue with (configuration, resources): exit 1;
 *   panic    an internal inconsistency (a bug): exit 2.
 *   Where a line goes is decided by the sink installed with msgInit (see msg-sinks.ts);
 *   the default writes Postfix-format lines to standard error.
 */

export type MsgLevel = "info" | "warning" | "error" | "fatal" | "panic";

/** A destination for log lines. `write` must not throw. */
export interface MsgSink {
  write(level: MsgLevel, tag: string, pid: number, text: string): void;
  /** Flush what is buffered; called before the process exits on fatal/panic. */
  flush?(): void;
}

/** Thrown by msg.fatal/msg.panic when exit is disabled (tests). */
export class MsgExit extends Error {
  readonly code: "EFATAL" | "EPANIC";
  constructor(code: "EFATAL" | "EPANIC", text: string) {
    super(text);
    this.code = code;
  }
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Formats a time in the syslog style "Nov 20 21:38:00" (local time). */
export function syslogTime(d: Date): string {
  const day = String(d.getDate()).padStart(2, " ");
  const hms = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  return `${MONTHS[d.getMonth()] ?? "???"} ${day} ${hms}`;
}

/** The text of a line after "tag[pid]: ": the level prefix that Postfix log tools expect. */
export function levelText(level: MsgLevel, text: string): string {
  return level === "info" ? text : `${level}: ${text}`;
}

/** Replaces control characters so that one event stays one line. */
export function printable(text: string, max = 4096): string {
  const cut = text.length > max ? text.slice(0, max) + "..." : text;
  // eslint-disable-next-line no-control-regex
  return cut.replace(/[\x00-\x1f\x7f]/g, "?");
}

/** The default sink: Postfix-style lines on standard error. */
export class StderrSink implements MsgSink {
  write(level: MsgLevel, tag: string, pid: number, text: string): void {
    try {
      process.stderr.write(`${tag}: ${levelText(level, text)}\n`);
    } catch {
      /* nowhere left to report to */
    }
  }
}

interface MsgState {
  tag: string;
  sink: MsgSink;
  exit: boolean;
  verbose: number;
}

const state: MsgState = { tag: "postern", sink: new StderrSink(), exit: true, verbose: 0 };

/** Sets the program tag (e.g. "postern/smtpd"), the sink, and whether fatal/panic exit. */
export function msgInit(opts: { tag?: string; sink?: MsgSink; exit?: boolean; verbose?: number }): void {
  if (opts.tag !== undefined) state.tag = opts.tag;
  if (opts.sink !== undefined) state.sink = opts.sink;
  if (opts.exit !== undefined) state.exit = opts.exit;
  if (opts.verbose !== undefined) state.verbose = opts.verbose;
}

/** The current program tag. */
export function msgTag(): string {
  return state.tag;
}

function emit(level: MsgLevel, text: string): void {
  state.sink.write(level, state.tag, process.pid, printable(text));
}

function die(level: "fatal" | "panic", text: string): never {
  emit(level, text);
  state.sink.flush?.();
  if (!state.exit) throw new MsgExit(level === "fatal" ? "EFATAL" : "EPANIC", text);
  process.exit(level === "fatal" ? 1 : 2);
}

export const msg = {
  /** A normal event. */
  info(text: string): void {
    emit("info", text);
  },
  /** Verbose logging, enabled by -v. */
  debug(text: string): void {
    if (state.verbose > 0) emit("info", text);
  },
  /** Something is wrong, the program goes on. */
  warn(text: string): void {
    emit("warning", text);
  },
  /** Something is wrong with this request. */
  error(text: string): void {
    emit("error", text);
  },
  /** The program cannot go on: exit 1. */
  fatal(text: string): never {
    return die("fatal", text);
  },
  /** A bug: exit 2. */
  panic(text: string): never {
    return die("panic", text);
  },
  /** Writes out what the sink holds back, so that lines logged so far precede what another process logs next. */
  flush(): void {
    state.sink.flush?.();
  },
};
