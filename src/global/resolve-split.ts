/*
 * resolve-split - take a recipient apart: strip local domains, follow routing operators
 *
 * SYNOPSIS
 *   import { splitAddress, type SplitSettings } from "./resolve-split.js";
 *   const r = await splitAddress("user%remote.example@localhost", settings, (d) => local.check(d));
 *   // { status: "ok", recipient: "user@remote.example", domain: "remote.example", remote: true, flags: 0 }
 *
 * DESCRIPTION
 *   The first half of Postfix's resolve_addr. The address is in internal
 *   (unquoted) form; it is quoted (quote-822-local.ts) and scanned into
 *   tokens (tok822.ts) so that "@", "%" and "!" inside a quoted local part
 *   are not operators at first. Then, until the address names a remote domain or nothing is
 *   left to strip:
 *     - a trailing dot after the domain is removed (and, with
 *       resolve_null_domain, a trailing "@");
 *     - if the last "@domain" is local (mydestination, our addresses) it is
 *       stripped and remembered; a remote domain ends the loop;
 *     - if the rest still has "@", or "!" (swap_bangpath) or "%"
 *       (allow_percent_hack), it is rewritten to canonical form
 *       with the "local" rules of rewrite-addr.ts (source routes
 *       stripped, site!user becomes user@site, user%site becomes
 *       user@site, $myorigin and $mydomain appended) and the loop goes on;
 *     - with resolve_dequoted_address, a quoted local part that holds
 *       "@", "%" or "!" is opened up and the loop goes on (this stops
 *       "user@remote"@backup-mx relaying through a primary MX);
 *     - an empty local part becomes $empty_address_recipient;
 *     - an address that never had a domain gets "@$myhostname".
 *   A local address gets its (last stripped) local domain back.
 *
 *   The recipient domain is then checked: an address literal must be
 *   valid, a name must be a valid host name; with resolve_numeric_domain
 *   a bare IP address becomes "[addr]" (and is local when it is one of
 *   ours). Anything else sets FLAG_ERROR. FLAG_ROUTED is set when the
 *   local part still holds a routing operator ("@", "!" or "%"), whatever
 *   this host's own swap_bangpath and allow_percent_hack say: the next
 *   host may honour it.
 *
 *   A temporary failure of a local-domain table ends the work with a
 *   tempfail; so does an address that does not settle within
 *   length + 100 passes.
 */
import { msg } from "../util/msg.js";
import { quote822Local } from "./quote-822-local.js";
import { validHostaddr, validHostname, validMailhostLiteral } from "./resolve-host.js";
import type { LocalCheck } from "./resolve-local.js";
import { rewriteTokens, type RewriteParams } from "./rewrite-addr.js";
import { RESOLVE_FLAG } from "./rewrite-proto.js";
import { tok822Internalize, tok822Scan, type Tok } from "./tok822.js";

/** What splitting depends on. */
export interface SplitSettings {
  /** The rewrite rules ($myorigin, $mydomain, swap_bangpath, ...); the local context is used. */
  rules: RewriteParams;
  myhostname: string;
  /** empty_address_recipient. */
  emptyAddress: string;
  resolveDequoted: boolean;
  resolveNullDomain: boolean;
  resolveNumericDomain: boolean;
  smtputf8: boolean;
}

/** The split address: the final recipient, its domain, and whether the domain is remote. */
export type SplitResult =
  | { status: "ok"; recipient: string; domain: string; remote: boolean; flags: number }
  | { status: "tempfail"; reason: string };

/** Checks whether a domain is local. */
export type LocalChecker = (domain: string) => Promise<LocalCheck>;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether a token is the operator ch. */
function isOp(t: Tok | undefined, ch: string): boolean {
  return t !== undefined && t.type === "op" && t.text === ch;
}

/** The index of the last operator ch, or -1. */
function lastOp(toks: readonly Tok[], ch: string): number {
  for (let i = toks.length - 1; i >= 0; i--) if (isOp(toks[i], ch)) return i;
  return -1;
}

/** Tokens in internal form, with white space between adjacent words as Postfix writes it. */
function internal(toks: readonly Tok[]): string {
  return tok822Internalize(toks, { owned: false });
}

/** Removes a trailing dot after the domain, but not from "..", "@.". */
function stripTrailingDot(tree: Tok[]): Tok[] {
  const n = tree.length;
  const prev = tree[n - 2];
  if (!isOp(tree[n - 1], ".") || lastOp(tree, "@") < 0 || isOp(prev, ".") || isOp(prev, "@")) return tree;
  return tree.slice(0, n - 1);
}

/** Opens up a quoted local part that holds a routing operator; null when there is none. */
function dequote(tree: Tok[], s: SplitSettings): Tok[] | null {
  const only = tree.length === 1 ? tree[0] : undefined;
  if (!s.resolveDequoted || only?.type !== "qstring") return null;
  let text = only.text;
  let oper = text.lastIndexOf("@");
  if (oper < 0 && s.rules.percentHack) oper = text.lastIndexOf("%");
  if (oper < 0 && s.rules.swapBangpath) oper = text.lastIndexOf("!");
  if (oper < 0) return null;
  if (text[oper] === "%") text = `${text.slice(0, oper)}@${text.slice(oper + 1)}`;
  return rewriteTokens(s.rules, "local", tok822Scan(text[oper] === "@" ? quote822Local(text) : text));
}

/** Whether the tokens still hold a routing operator that this host acts on. */
function hasOperator(tree: Tok[], s: SplitSettings): boolean {
  return (
    lastOp(tree, "@") >= 0 ||
    (s.rules.swapBangpath && lastOp(tree, "!") >= 0) ||
    (s.rules.percentHack && lastOp(tree, "%") >= 0)
  );
}

/** The tokens with "@$myhostname" appended. */
function withMyhostname(tree: Tok[], s: SplitSettings): Tok[] {
  return [...tree, { type: "op", text: "@" }, ...tok822Scan(s.myhostname)];
}

/** Strips local domains and routing operators until a remote domain or a local address is left. */
async function stripLoop(
  addr: string,
  s: SplitSettings,
  isLocal: LocalChecker,
): Promise<{ tree: Tok[]; remote: boolean } | { status: "tempfail"; reason: string }> {
  let tree = tok822Scan(quote822Local(addr));
  let saved: Tok[] | null = null;
  const max = addr.length + 100;
  for (let n = 0; ; n++) {
    if (n > max) {
      msg.warn(`resolve_addr: <${addr}>: giving up after ${n} iterations`);
      return { status: "tempfail", reason: "address does not resolve" };
    }
    tree = stripTrailingDot(tree);
    if (s.resolveNullDomain && isOp(tree[tree.length - 1], "@")) tree = tree.slice(0, -1);
    const at = lastOp(tree, "@");
    if (at >= 0) {
      if (at < tree.length - 1) {
        const r = await isLocal(internal(tree.slice(at + 1)));
        if (r.status === "tempfail") return r;
        if (r.status === "remote") return { tree, remote: true };
      }
      saved = tree.slice(at);
      tree = tree.slice(0, at);
    }
    if (hasOperator(tree, s)) {
      tree = rewriteTokens(s.rules, "local", tree);
      continue;
    }
    const opened = dequote(tree, s);
    if (opened !== null) {
      tree = opened;
      continue;
    }
    const only = tree.length === 1 ? tree[0] : undefined;
    if (tree.length === 0 || (only?.type === "qstring" && only.text === "")) {
      tree = tok822Scan(s.emptyAddress);
      continue;
    }
    if (saved === null) {
      tree = withMyhostname(tree, s);
      continue;
    }
    return { tree: [...tree, ...saved], remote: false };
  }
}

/** Takes an address apart; see the header. */
export async function splitAddress(
  addr: string,
  s: SplitSettings,
  isLocal: LocalChecker,
): Promise<SplitResult> {
  const r = await stripLoop(addr, s, isLocal);
  if ("status" in r) return r;
  let remote = r.remote;
  let recipient = internal(r.tree);
  const at = recipient.lastIndexOf("@");
  if (at < 0) return { status: "ok", recipient, domain: "", remote, flags: RESOLVE_FLAG.FLAG_ERROR };
  let domain = recipient.slice(at + 1);
  let flags = 0;
  if (domain.startsWith("[")) {
    if (!validMailhostLiteral(domain)) flags |= RESOLVE_FLAG.FLAG_ERROR;
  } else if (s.smtputf8 && LONE_SURROGATE.test(recipient)) {
    flags |= RESOLVE_FLAG.FLAG_ERROR;
  } else if (!validHostname(domain, s.smtputf8)) {
    if (s.resolveNumericDomain && validHostaddr(domain)) {
      domain = `[${domain}]`;
      recipient = recipient.slice(0, at + 1) + domain;
      const l = await isLocal(domain);
      if (l.status === "tempfail") return l;
      if (l.status === "local") remote = false;
    } else {
      flags |= RESOLVE_FLAG.FLAG_ERROR;
    }
  }
  if ((flags & RESOLVE_FLAG.FLAG_ERROR) === 0) {
    const op = recipient.search(/[@!%]/);
    if (recipient.slice(op + 1) !== domain) flags |= RESOLVE_FLAG.FLAG_ROUTED;
  }
  return { status: "ok", recipient, domain, remote, flags };
}
