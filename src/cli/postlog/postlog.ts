/*
 * postlog - write a line to the mail log, as Postfix's postlog does
 *
 * SYNOPSIS
 *   postlog [-iv] [-c config_dir] [-p priority] [-t tag] [text ...]
 *
 * DESCRIPTION
 *   Logs the text given as arguments, or else each line of standard input,
 *   to the mail log, under the tag (default $syslog_name/postlog) with
 *   this process's pid (-i is accepted: the pid is always there). priority
 *   is info (the default), warn or warning, error, fatal or panic; fatal
 *   and panic make postlog exit with status 1 after logging, as Postfix's.
 *   With maillog_file set, the lines go to the postlog service (postlogd,
 *   public/postlog), which hands them to master, the log's one writer;
 *   otherwise straight to syslog. When standard error is a terminal, the
 *   lines are shown there too.
 */
import { connect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { getopt } from "../../util/getopt.js";
import { msg, msgInit, type MsgLevel } from "../../util/msg.js";
import { encodeOnBehalf } from "../../util/msg-sinks.js";
import { SyslogSink } from "../../util/msg-sinks-syslog.js";
import { Config, ConfigError } from "../../global/config.js";
import { configDirectory } from "../../global/install-paths.js";

const USAGE = "usage: postlog [-iv] [-c config_dir] [-p priority] [-t tag] [text ...]";
const PRIORITIES: Record<string, MsgLevel> = {
  info: "info",
  warn: "warning",
  warning: "warning",
  error: "error",
  fatal: "fatal",
  panic: "panic",
};
/** The most lines taken from standard input, and the longest. */
const LINES_MAX = 10_000;
const LINE_MAX = 4096;

/** The text to log: the arguments as one line, or standard input's lines. */
async function textLines(args: string[]): Promise<string[]> {
  if (args.length > 0) return [args.join(" ")];
  const out: string[] = [];
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (out.length >= LINES_MAX) break;
    if (line.trim() !== "") out.push(line.slice(0, LINE_MAX));
  }
  return out;
}

/** Sends records to the postlog service; null on success, else why not. */
function toPostlogd(socket: string, records: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect(socket);
    s.setTimeout(10_000, () => s.destroy(new Error("timed out")));
    s.on("error", (err) => resolve(err.message));
    s.on("connect", () => s.end(records.join(""), () => resolve(null)));
  });
}

/** Runs postlog; returns the exit status. */
async function main(argv: string[]): Promise<number> {
  msgInit({ tag: "postlog" });
  const r = getopt(argv, "c:ip:t:v");
  if (!r.ok) return msg.fatal(`${r.error}\n${USAGE}`);
  const opt = (k: string): string | undefined => r.opts.find(([o]) => o === k)?.[1];
  const level = PRIORITIES[(opt("p") ?? "info").toLowerCase()];
  if (level === undefined) return msg.fatal(`unknown priority "${opt("p") ?? ""}"\n${USAGE}`);
  let cfg: Config;
  try {
    cfg = Config.load(configDirectory(opt("c")));
  } catch (err) {
    if (err instanceof ConfigError) return msg.fatal(err.message);
    throw err;
  }
  const tag = opt("t") ?? `${cfg.get("syslog_name")}/postlog`;
  const lines = await textLines(r.args);
  if (process.stderr.isTTY) for (const l of lines) process.stderr.write(`${tag}: ${l}\n`);
  if (cfg.get("maillog_file") !== "") {
    const socket = join(cfg.get("queue_directory"), "public", "postlog");
    const err = await toPostlogd(
      socket,
      lines.map((l) => encodeOnBehalf(level, tag, process.pid, l)),
    );
    if (err !== null) return msg.fatal(`cannot reach the postlog service (${socket}): ${err}`);
  } else {
    const sink = new SyslogSink({ facility: cfg.get("syslog_facility") });
    for (const l of lines) sink.write(level, tag, process.pid, l);
    sink.flush();
  }
  return level === "fatal" || level === "panic" ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
