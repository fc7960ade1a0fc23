/*
 * pipe-args - the master.cf attributes of a pipe(8) service and its argv macros
 *
 * SYNOPSIS
 *   const a = parsePipeArgs(ctx.args);            // or { error }
 *   const argv = expandArgv(a, request-derived macros, recipients, delimiter);   // or { error }
 *
 * DESCRIPTION
 *   Attributes, as Postfix's pipe(8) has them (argv= must come last; what
 *   follows it is the command; master.cf "{ ... }" groups arrive as one
 *   argument without the braces):
 *     flags=BDFORXhqu.>   B blank line at the end; D Delivered-To: (one
 *                         recipient per delivery, loop check); F From_ line;
 *                         O X-Original-To: (one recipient); R Return-Path:;
 *                         X final delivery; h fold domains and $nexthop to
 *                         lower case; q quote address local parts; u fold
 *                         local parts; "." dot-stuffing; ">" ">From " quoting
 *     user=name[:group]   the rights of the command (never root, never the
 *                         mail_owner account or group, never setgid_group)
 *     size=bytes          bounce larger messages (5.2.3)
 *     eol=string          the line ending (\n; C escapes: \r \n \t \ddd ...)
 *     directory=path      the working directory
 *     null_sender=text    what the null sender becomes (MAILER-DAEMON)
 *     argv=command ...    the command, run without a shell
 *   chroot= is refused: Node cannot chroot.
 *
 *   In argv, ${name}, $name and $(name) expand to the request's
 *   client_address, client_helo, client_hostname, client_port,
 *   client_protocol, domain, envid, extension, mailbox, nexthop,
 *   original_recipient, queue_id, recipient, sasl_method, sasl_sender,
 *   sasl_username, sender, size and user; ${name?text} and ${name:text}
 *   work too, and $$ is "$". An argument that mentions recipient,
 *   original_recipient, user, extension, mailbox or domain expands once per
 *   recipient into that many arguments. Values are inserted as they are
 *   (never expanded again, never seen by a shell). An unknown name is a
 *   configuration error.
 */
import { MAIL_COPY } from "../global/mail-copy.js";
import { quote822Local } from "../global/quote-822-local.js";
import { stripExtension } from "../global/dict-search.js";
import { macSubst } from "../util/mac-subst.js";

export const PIPE_OPT = { FOLD_USER: 1, FOLD_HOST: 2, QUOTE: 4, FINAL: 8 } as const;

export interface PipeAttr {
  /** MAIL_COPY bits. */
  copy: number;
  /** PIPE_OPT bits. */
  opts: number;
  user: string;
  group: string | null;
  argv: string[];
  directory: string | null;
  eol: string;
  nullSender: string;
  sizeLimit: number;
}

const PER_RCPT = new Set(["recipient", "original_recipient", "user", "extension", "mailbox", "domain"]);
export const PIPE_MACROS: ReadonlySet<string> = new Set([
  ...PER_RCPT,
  "client_address",
  "client_helo",
  "client_hostname",
  "client_port",
  "client_protocol",
  "envid",
  "nexthop",
  "queue_id",
  "sasl_method",
  "sasl_sender",
  "sasl_username",
  "sender",
  "size",
]);

const FLAG_BITS: Readonly<Record<string, [number, number]>> = {
  B: [MAIL_COPY.BLANK, 0],
  D: [MAIL_COPY.DELIVERED, 0],
  F: [MAIL_COPY.FROM, 0],
  O: [MAIL_COPY.ORIG_RCPT, 0],
  R: [MAIL_COPY.RETURN_PATH, 0],
  X: [0, PIPE_OPT.FINAL],
  h: [0, PIPE_OPT.FOLD_HOST],
  q: [0, PIPE_OPT.QUOTE],
  u: [0, PIPE_OPT.FOLD_USER],
  ".": [MAIL_COPY.DOT, 0],
  ">": [MAIL_COPY.QUOTE, 0],
};

/** Turns C escapes (\n \r \t \a \b \f \v \ddd \\) into characters. */
export function unescape(s: string): string {
  const simple: Readonly<Record<string, string>> = {
    a: "\x07",
    b: "\b",
    f: "\f",
    n: "\n",
    r: "\r",
    t: "\t",
    v: "\v",
  };
  return s.replace(/\\([0-7]{1,3}|.)/gs, (_m, c: string) =>
    /^[0-7]+$/.test(c) ? String.fromCharCode(parseInt(c, 8)) : (simple[c] ?? c),
  );
}

/** Parses the service attributes (see the module comment). */
export function parsePipeArgs(args: readonly string[]): PipeAttr | { error: string } {
  const a: PipeAttr = {
    copy: 0,
    opts: 0,
    user: "",
    group: null,
    argv: [],
    directory: null,
    eol: "\n",
    nullSender: "MAILER-DAEMON",
    sizeLimit: 0,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg : arg.slice(0, eq).toLowerCase();
    const value = eq < 0 ? "" : arg.slice(eq + 1);
    if (name === "flags") {
      for (const ch of value) {
        const bits = FLAG_BITS[ch];
        if (bits === undefined) return { error: `unknown flag: ${ch}` };
        a.copy |= bits[0];
        a.opts |= bits[1];
      }
    } else if (name === "user") {
      const colon = value.indexOf(":");
      a.user = colon < 0 ? value : value.slice(0, colon);
      const g = colon < 0 ? "" : value.slice(colon + 1);
      a.group = g === "" ? null : g;
    } else if (name === "directory") a.directory = value;
    else if (name === "eol") a.eol = unescape(value);
    else if (name === "null_sender") a.nullSender = value;
    else if (name === "size") {
      if (!/^\d+$/.test(value)) return { error: `bad size= value: ${value}` };
      a.sizeLimit = Number(value);
    } else if (name === "chroot")
      return { error: "chroot= is not supported by Postern (Node cannot chroot)" };
    else if (name === "argv") {
      a.argv = [value, ...args.slice(i + 1)];
      break;
    } else return { error: `unknown attribute name: ${arg}` };
  }
  if (a.user === "") return { error: "missing user= command-line attribute" };
  if (a.argv.length === 0 || a.argv[0] === "") return { error: "missing argv= command-line attribute" };
  return a;
}

export interface PipeRcpt {
  address: string;
  original: string;
}

/** Quotes and folds an address as the q, u and h flags say. */
function morph(address: string, opts: number, quote: boolean): string {
  const q = quote && opts & PIPE_OPT.QUOTE ? quote822Local(address) : address;
  const at = q.lastIndexOf("@");
  let local = at < 0 ? q : q.slice(0, at);
  let domain = at < 0 ? null : q.slice(at + 1);
  if (opts & PIPE_OPT.FOLD_USER) local = local.toLowerCase();
  if (opts & PIPE_OPT.FOLD_HOST && domain !== null) domain = domain.toLowerCase();
  return domain === null ? local : `${local}@${domain}`;
}

/** The per-recipient macro values. */
function rcptValues(r: PipeRcpt, opts: number, delimiter: string): Record<string, string> {
  const plain = morph(r.address, opts, false);
  const at = plain.lastIndexOf("@");
  const local = at < 0 ? plain : plain.slice(0, at);
  const split = stripExtension(local, delimiter);
  return {
    recipient: morph(r.address, opts, true),
    original_recipient: morph(r.original, opts, true),
    user: split === null ? local : split.bare,
    extension: split === null ? "" : split.ext.slice(1),
    mailbox: local,
    domain: at < 0 ? "" : plain.slice(at + 1),
  };
}

/** Expands argv for the recipients of one request (see the module comment). */
export function expandArgv(
  a: PipeAttr,
  common: Readonly<Record<string, string>>,
  rcpts: readonly PipeRcpt[],
  delimiter: string,
): string[] | { error: string } {
  const out: string[] = [];
  for (const arg of a.argv) {
    const seen = new Set<string>();
    const probe = macSubst(arg, (n) => (seen.add(n), ""), { known: PIPE_MACROS });
    if (!probe.ok) return { error: probe.error };
    const perRcpt = [...seen].some((n) => PER_RCPT.has(n));
    const sets = perRcpt ? rcpts.map((r) => rcptValues(r, a.opts, delimiter)) : [{}];
    for (const values of sets) {
      const v: Readonly<Record<string, string>> = { ...common, ...values };
      const r = macSubst(arg, (n) => v[n] ?? "", { known: PIPE_MACROS });
      if (!r.ok) return { error: r.error };
      out.push(r.value);
    }
  }
  return out;
}
