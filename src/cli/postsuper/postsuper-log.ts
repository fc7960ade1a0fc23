/*
 * postsuper-log - where postsuper's messages go: standard error and the mail log
 *
 * SYNOPSIS
 *   msgInit({ tag: "postsuper", sink: postsuperSink(cfg) });   // before dropping privileges
 *
 * DESCRIPTION
 *   As Postfix's postsuper, every message goes to standard error
 *   ("postsuper: ID: removed") and to the mail log
 *   ("postern/postsuper[PID]: ID: removed"): to maillog_file when it is
 *   set, else to syslog. postsuper gives up root for mail_owner before it
 *   touches the queue, and a root-owned maillog_file is not writable then,
 *   so the file is opened here, while the process is still root, and kept
 *   open (opened as FileSink does: append, no symlinks, one link only).
 */
import fs from "node:fs";
import { hostname } from "node:os";
import { levelText, type MsgLevel, type MsgSink } from "../../util/msg.js";
import { formatLogLine } from "../../util/msg-sinks.js";
import { SyslogSink } from "../../util/msg-sinks-syslog.js";
import type { Config } from "../../global/config.js";

/** A sink that appends to a log file opened at once. */
class OpenFileSink implements MsgSink {
  #fd: number;
  #host: string;

  constructor(fd: number) {
    this.#fd = fd;
    this.#host = hostname().split(".")[0] || "localhost";
  }

  /** Writes one line at once (postsuper logs little). */
  write(level: MsgLevel, tag: string, pid: number, text: string): void {
    try {
      fs.writeSync(this.#fd, `${formatLogLine(new Date(), this.#host, tag, pid, level, text)}\n`);
    } catch {
      /* the log is gone: standard error still has the line */
    }
  }
}

/** Opens maillog_file for appending; null (with a message on standard error) when it cannot be used. */
function openMaillog(path: string, mode: number): number | null {
  if (path === "/dev/stdout") return 1;
  if (path === "/dev/stderr") return 2;
  const c = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, c.O_WRONLY | c.O_APPEND | c.O_CREAT | c.O_NOFOLLOW | c.O_NONBLOCK, mode);
  } catch (err) {
    process.stderr.write(`postsuper: warning: maillog_file ${path}: ${(err as Error).message}\n`);
    return null;
  }
  const st = fs.fstatSync(fd);
  if (st.isFile() && st.nlink === 1) return fd;
  fs.closeSync(fd);
  process.stderr.write(`postsuper: warning: maillog_file ${path}: not a regular file with one link\n`);
  return null;
}

/** The sink for postsuper: standard error with tag "postsuper", the log with "<syslog_name>/postsuper". */
export function postsuperSink(cfg: Config): MsgSink {
  const file = cfg.get("maillog_file");
  let log: MsgSink | null;
  if (file !== "") {
    const fd = openMaillog(file, Number.parseInt(cfg.get("maillog_file_permissions"), 8) || 0o600);
    log = fd === null ? null : new OpenFileSink(fd);
  } else log = new SyslogSink({ facility: cfg.get("syslog_facility") });
  const logTag = `${cfg.get("syslog_name")}/postsuper`;
  return {
    /** Writes one event to standard error and to the log. */
    write(level, tag, pid, text) {
      try {
        process.stderr.write(`${tag}: ${levelText(level, text)}\n`);
      } catch {
        /* nowhere to report to */
      }
      log?.write(level, logTag, pid, text);
    },
    /** Flushes the log sink. */
    flush() {
      log?.flush?.();
    },
  };
}
