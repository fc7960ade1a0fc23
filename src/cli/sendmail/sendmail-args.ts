/*
 * sendmail-args - the sendmail command line, as Postfix's sendmail reads it
 *
 * SYNOPSIS
 *   const r = parseSendmailArgs(["-t", "-i", "-f", "root"], "sendmail");
 *   if (!r.ok) fatal(r.status, r.error); else r.opts.mode ...
 *
 * DESCRIPTION
 *   Options are read as POSIX getopt reads "A:B:C:F:GIL:N:O:R:UV:X:b:ce:
 *   f:h:imno:p:r:q:tvx" without permutation: they end at "--" or at the
 *   first word that is not an option, and everything after is a
 *   recipient. "-q" alone (flush) and "-XV" are not getopt-compatible and
 *   are taken first, as Postfix does; so are the VERP options of Postfix
 *   2.2 and earlier, "-V" before a two-character word and "-Vxy" (as -XV,
 *   named as deprecated). What each option does:
 *     -bm (default) deliver   -bp list the queue    -bs SMTP on stdin/stdout
 *     -bi, -I newaliases      -bd, -bl start the mail system
 *     -bv verify              -bh, -bH ignored
 *     -t recipients from headers, added to those on the command line
 *     -i, -oi, -oitrue  a line with only "." does not end the input
 *     -f, -r sender   -F full name   -G gateway (remote rewriting context)
 *     -N dsn (never, or success,failure,delay): the NOTIFY of every
 *        recipient, from the command line or (-t) the headers
 *     -R full|hdrs   -V envid (the message's ENVID)
 *     -B 7BIT|8BITMIME   -C config_dir or main.cf path   -v verbose
 *     -q flush (postqueue -f)   -qRsite or -qR site (postqueue -s site)
 *     -qIqueue_id (postqueue -i id)   -q<interval>: with -bd ignored, else
 *     the command does nothing and exits 0 (Postfix's sendmail does too)
 *     -oAalias_db (with -bi)   -L, -h, -A, -U, -O, -c, -e, -m, -p, -x and the
 *     other -o forms are accepted and ignored; -n and -qS are refused (as
 *     in Postfix, where -qS is not implemented either).
 *   The program name selects the default mode: mailq lists the queue,
 *   newaliases rebuilds the aliases. Problems are results with a sysexits
 *   status, never throws.
 */
import { EX } from "../../global/sys-exits.js";
import { DSN_NOTIFY } from "../../global/queue-file.js";

export type SendmailMode = "enqueue" | "mailq" | "newaliases" | "daemon" | "smtp" | "flush" | "ignore";

export interface SendmailOptions {
  mode: SendmailMode;
  configDir?: string;
  /** -t: recipients from the To:, Cc: and Bcc: headers too. */
  extract: boolean;
  /** A line with only "." ends the input (off with -i / -oi). */
  dotEnds: boolean;
  sender?: string;
  fullName?: string;
  encoding?: "7bit" | "8bit";
  rewriteContext: "local" | "remote";
  dsnNotify?: number;
  dsnRet?: "full" | "hdrs";
  dsnEnvid?: string;
  /** -bv: verify the recipients instead of delivering. */
  verify: boolean;
  verbose: number;
  siteToFlush?: string;
  idToFlush?: string;
  aliasMap?: string;
  recipients: string[];
  /** Messages about options that were ignored. */
  warnings: string[];
}

export type SendmailArgs = { ok: true; opts: SendmailOptions } | { ok: false; status: number; error: string };

const WITH_ARG = new Set("ABCFLNORVXbefhopqr");
const FLAGS = new Set("GIUcimntvx");

/** Postfix's dsn_notify_mask(): "never", or a list of success, failure, delay; 0 when bad. */
export function dsnNotifyMask(text: string): number {
  const words = text
    .toLowerCase()
    .split(/[\s,]+/)
    .filter((w) => w !== "");
  let mask = 0;
  for (const w of words) {
    if (w === "never") mask |= DSN_NOTIFY.NEVER;
    else if (w === "success") mask |= DSN_NOTIFY.SUCCESS;
    else if (w === "failure") mask |= DSN_NOTIFY.FAILURE;
    else if (w === "delay") mask |= DSN_NOTIFY.DELAY;
    else return 0;
  }
  return (mask & DSN_NOTIFY.NEVER) !== 0 && mask !== DSN_NOTIFY.NEVER ? 0 : mask;
}

/** The default mode for a program name. */
function modeFor(program: string): SendmailMode {
  if (program === "mailq") return "mailq";
  if (program === "newaliases") return "newaliases";
  return "enqueue";
}

class Parser {
  readonly opts: SendmailOptions;
  #argv: readonly string[];
  #i = 0;
  /** -q<interval> was given: a no-op unless the mode is daemon. */
  #queueInterval = false;

  constructor(argv: readonly string[], program: string) {
    this.#argv = argv;
    this.opts = {
      mode: modeFor(program),
      extract: false,
      dotEnds: true,
      rewriteContext: "local",
      verify: false,
      verbose: 0,
      recipients: [],
      warnings: [],
    };
  }

  /** Reads every option, then the recipients. */
  run(): SendmailArgs {
    for (; this.#i < this.#argv.length; this.#i++) {
      const a = this.#argv[this.#i] ?? "";
      if (a === "--") {
        this.#i++;
        break;
      }
      if (!a.startsWith("-") || a === "-") break;
      const bad = this.#word(a);
      if (bad !== null) return bad;
    }
    this.opts.recipients = this.#argv.slice(this.#i);
    const bad = this.#conflicts();
    if (bad !== null) return bad;
    if (this.#queueInterval && this.opts.mode !== "daemon") this.opts.mode = "ignore";
    return { ok: true, opts: this.opts };
  }

  /** Handles one option word (possibly several grouped flags). */
  #word(a: string): SendmailArgs | null {
    if (a === "-q") {
      if (this.opts.mode === "daemon") this.opts.warnings.push("ignoring -q option in daemon mode");
      else this.opts.mode = "flush";
      return null;
    }
    const old = this.#oldVerp(a);
    if (old !== null)
      return fail(
        EX.UNAVAILABLE,
        `${old}: VERP is not supported by this Postern build (option ${a} is deprecated; specify ${old} instead)`,
      );
    if (a === "-XV") return fail(EX.UNAVAILABLE, "-XV: VERP is not supported by this Postern build");
    for (let j = 1; j < a.length; j++) {
      const ch = a[j] ?? "";
      if (FLAGS.has(ch)) {
        const bad = this.#flag(ch);
        if (bad !== null) return bad;
        continue;
      }
      if (!WITH_ARG.has(ch)) return fail(EX.USAGE, `invalid option -- '${ch}'`);
      let value = a.slice(j + 1);
      if (value === "") {
        if (this.#i + 1 >= this.#argv.length) return fail(EX.USAGE, `option requires an argument -- '${ch}'`);
        value = this.#argv[++this.#i] ?? "";
      }
      return this.#withArg(ch, value);
    }
    return null;
  }

  /** The -XV form of an old VERP option: "-V" before a two-character word, or "-Vxy"; else null. */
  #oldVerp(a: string): string | null {
    if (a === "-V" && this.#argv[this.#i + 1]?.length === 2) return "-XV";
    if (a.startsWith("-V") && a.length === 4) return `-X${a.slice(1)}`;
    return null;
  }

  /** An option without a value. */
  #flag(ch: string): SendmailArgs | null {
    const o = this.opts;
    if (ch === "n") return fail(EX.USAGE, "-n option not supported");
    if (ch === "G") o.rewriteContext = "remote";
    else if (ch === "I") o.mode = "newaliases";
    else if (ch === "i") o.dotEnds = false;
    else if (ch === "t") o.extract = true;
    else if (ch === "v") o.verbose++;
    return null;
  }

  /** The next word, when it is not an option (for "-qR site" written apart). */
  #optionalNext(): string {
    const next = this.#argv[this.#i + 1];
    if (next === undefined || next.startsWith("-")) return "";
    this.#i++;
    return next;
  }

  /** An option with a value. */
  #withArg(ch: string, v: string): SendmailArgs | null {
    const o = this.opts;
    switch (ch) {
      case "B":
        if (v === "8BITMIME") o.encoding = "8bit";
        else if (v === "7BIT") o.encoding = "7bit";
        else return fail(EX.USAGE, "-B option needs 8BITMIME or 7BIT");
        return null;
      case "C":
        o.configDir = v.endsWith("/main.cf") ? v.slice(0, -"/main.cf".length) || "/" : v;
        return null;
      case "F":
        o.fullName = v;
        return null;
      case "N": {
        const m = dsnNotifyMask(v);
        if (m === 0) o.warnings.push(`bad -N option value: '${v}' -- ignored`);
        else o.dsnNotify = m;
        return null;
      }
      case "R":
        if (/^full$/i.test(v)) o.dsnRet = "full";
        else if (/^hdrs$/i.test(v)) o.dsnRet = "hdrs";
        else o.warnings.push("bad -R option value -- ignored");
        return null;
      case "V":
        if (v.length > 100) o.warnings.push("too long -V option value -- ignored");
        else if (!/^[\x21-\x7e]+$/.test(v)) o.warnings.push("bad syntax in -V option value -- ignored");
        else o.dsnEnvid = v;
        return null;
      case "X":
        return fail(
          v.startsWith("V") ? EX.UNAVAILABLE : EX.USAGE,
          v.startsWith("V")
            ? "-XV: VERP is not supported by this Postern build"
            : `unsupported: -X${v.slice(0, 1)}`,
        );
      case "b":
        return this.#bMode(v);
      case "f":
      case "r":
        o.sender = v;
        return null;
      case "o":
        return this.#oOption(v);
      case "q":
        return this.#qOption(v);
      default:
        return null; // -A -L -O -e -h -p: accepted and ignored
    }
  }

  /** -b<mode>. */
  #bMode(v: string): SendmailArgs | null {
    const o = this.opts;
    switch (v.slice(0, 1)) {
      case "d":
      case "l":
        if (o.mode === "flush") o.warnings.push("ignoring -q option in daemon mode");
        o.mode = "daemon";
        return null;
      case "h":
      case "H":
        o.mode = "ignore";
        return null;
      case "i":
        o.mode = "newaliases";
        return null;
      case "m":
        o.mode = "enqueue";
        return null;
      case "p":
        o.mode = "mailq";
        return null;
      case "s":
        o.mode = "smtp";
        return null;
      case "v":
        o.verify = true;
        return null;
      default:
        return fail(EX.USAGE, `unsupported: -b${v.slice(0, 1)}`);
    }
  }

  /** -o<x>: only -oA and -oi have an effect. */
  #oOption(v: string): SendmailArgs | null {
    if (v.startsWith("A")) {
      if (v.length === 1) return fail(EX.USAGE, "-oA requires pathname");
      this.opts.aliasMap = v.slice(1);
    } else if (v.startsWith("i")) this.opts.dotEnds = false;
    return null;
  }

  /** -q<interval>, -qR<site>, -qI<id>. */
  #qOption(v: string): SendmailArgs | null {
    const o = this.opts;
    if (/^\d/.test(v)) {
      this.#queueInterval = true;
      return null;
    }
    const rest = v.slice(1) || this.#optionalNext();
    if (v.startsWith("R")) {
      if (rest === "") return fail(EX.USAGE, "specify: -qRsitename");
      o.siteToFlush = rest;
    } else if (v.startsWith("I")) {
      if (rest === "") return fail(EX.USAGE, "specify: -qIqueueid");
      o.idToFlush = rest;
    } else return fail(EX.USAGE, `-q${v.slice(0, 1)} is not implemented`);
    return null;
  }

  /** Options that do not go together. */
  #conflicts(): SendmailArgs | null {
    const o = this.opts;
    if (o.extract && o.mode !== "enqueue") return fail(EX.USAGE, "-t can be used only in delivery mode");
    if (o.siteToFlush !== undefined && o.mode !== "enqueue")
      return fail(EX.USAGE, "-qR can be used only in delivery mode");
    if (o.idToFlush !== undefined && o.mode !== "enqueue")
      return fail(EX.USAGE, "-qI can be used only in delivery mode");
    if (o.verify) {
      if (o.extract) return fail(EX.USAGE, "-t option cannot be used with -bv");
      if (o.dsnNotify !== undefined) return fail(EX.USAGE, "-N option cannot be used with -bv");
      if (o.dsnRet !== undefined) return fail(EX.USAGE, "-R option cannot be used with -bv");
      if (o.verbose === 1) return fail(EX.USAGE, "-v option cannot be used with -bv");
    }
    return null;
  }
}

/** A usage failure. */
function fail(status: number, error: string): SendmailArgs {
  return { ok: false, status, error };
}

/** Parses a sendmail command line; program is the name it was called by (sendmail, mailq, ...). */
export function parseSendmailArgs(argv: readonly string[], program: string): SendmailArgs {
  return new Parser(argv, program).run();
}
