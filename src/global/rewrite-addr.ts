/*
 * rewrite-addr - address rewriting to standard form (trivial-rewrite's "rewrite")
 *
 * SYNOPSIS
 *   import { rewriteParams, rewriteExternal, rewriteInternal } from "./rewrite-addr.js";
 *   const p = rewriteParams(cfg);
 *   rewriteExternal(p, "local", "user")            // "user@$myorigin"
 *   rewriteExternal(p, "remote", "user@host")      // "user@host.$remote_header_rewrite_domain"
 *   rewriteInternal(p, "local", "john doe")        // "john doe@$myorigin" (internal form)
 *
 * DESCRIPTION
 *   The rules of Postfix's trivial-rewrite(8) "rewrite" request, applied in
 *   this order to one address:
 *     - the empty address stays empty; a lone "@" becomes the empty address;
 *     - a source route is removed: "@a,@b:user@domain" -> "user@domain";
 *     - an address without "@":
 *         swap_bangpath       "host!user" -> "user@host";
 *         otherwise allow_percent_hack   "user%host" -> "user@host" (the
 *                             last "%");
 *         otherwise append_at_myorigin   "user" -> "user@<origin>";
 *     - append_dot_mydomain: a domain without a dot (and not a [literal])
 *       gets ".<domain>";
 *     - one trailing dot is removed from the domain ("user@host." ->
 *       "user@host"), but not from forms ending in ".." or "@.".
 *   Two contexts choose <origin> and <domain>:
 *     local   $myorigin and $mydomain (envelope addresses, and headers of
 *             mail from local submission or local_header_rewrite_clients);
 *     remote  $remote_header_rewrite_domain for both (headers of other
 *             mail); with an empty value nothing is appended.
 *   This module is a library; the trivial-rewrite daemon wraps it, and
 *   cleanup calls it directly for envelope and header addresses.
 */
import type { Config } from "./config.js";
import { quote822Local, unquote822Local } from "./quote-822-local.js";
import { tok822Externalize, tok822Scan, type Tok } from "./tok822.js";

export type RewriteContextName = "local" | "remote";

/** The parameters the rewrite rules read. */
export interface RewriteParams {
  myorigin: string;
  mydomain: string;
  remoteDomain: string;
  appendAtMyorigin: boolean;
  appendDotMydomain: boolean;
  swapBangpath: boolean;
  percentHack: boolean;
}

/** Reads the rewrite parameters from a configuration. */
export function rewriteParams(cfg: Config): RewriteParams {
  return {
    myorigin: cfg.get("myorigin"),
    mydomain: cfg.get("mydomain"),
    remoteDomain: cfg.get("remote_header_rewrite_domain"),
    appendAtMyorigin: cfg.bool("append_at_myorigin"),
    appendDotMydomain: cfg.bool("append_dot_mydomain"),
    swapBangpath: cfg.bool("swap_bangpath"),
    percentHack: cfg.bool("allow_percent_hack"),
  };
}

/** True when a token is the operator ch. */
function isOp(t: Tok | undefined, ch: string): boolean {
  return t !== undefined && t.type === "op" && t.text === ch;
}

/** The index of the last operator ch, or -1. */
function lastOp(toks: readonly Tok[], ch: string): number {
  for (let i = toks.length - 1; i >= 0; i--) if (isOp(toks[i], ch)) return i;
  return -1;
}

/** Handles an address without "@": bang path, percent hack or @origin. */
function qualify(p: RewriteParams, origin: string, toks: Tok[]): Tok[] {
  const bang = p.swapBangpath ? toks.findIndex((t) => isOp(t, "!")) : -1;
  if (bang >= 0) return [...toks.slice(bang + 1), { type: "op", text: "@" }, ...toks.slice(0, bang)];
  const pct = p.percentHack ? lastOp(toks, "%") : -1;
  if (pct >= 0) return [...toks.slice(0, pct), { type: "op", text: "@" }, ...toks.slice(pct + 1)];
  if (p.appendAtMyorigin && origin !== "") return [...toks, { type: "op", text: "@" }, ...tok822Scan(origin)];
  return toks;
}

/** Rewrites the tokens of one address in a context; returns the new tokens. */
export function rewriteTokens(p: RewriteParams, ctx: RewriteContextName, input: readonly Tok[]): Tok[] {
  const origin = ctx === "local" ? p.myorigin : p.remoteDomain;
  const domain = ctx === "local" ? p.mydomain : p.remoteDomain;
  let toks = [...input];
  const only = toks.length === 1 ? toks[0] : undefined;
  if (toks.length === 0 || (only?.type === "qstring" && only.text === "")) return toks;
  if (isOp(only, "@")) return [{ type: "qstring", text: "" }];
  if (isOp(toks[0], "@")) {
    const colon = toks.findIndex((t) => isOp(t, ":"));
    if (colon >= 0 && colon !== toks.length - 1) toks = toks.slice(colon + 1);
  }
  if (lastOp(toks, "@") < 0) toks = qualify(p, origin, toks);
  const at = lastOp(toks, "@");
  const after = toks.slice(at + 1);
  if (
    p.appendDotMydomain &&
    domain !== "" &&
    at >= 0 &&
    at !== toks.length - 1 &&
    !after.some((t) => t.type === "domlit" || isOp(t, "."))
  )
    toks = [...toks, { type: "op", text: "." }, ...tok822Scan(domain)];
  const last = toks.length - 1;
  const prev = toks[last - 1];
  if (isOp(toks[last], ".") && prev !== undefined && !isOp(prev, ".") && !isOp(prev, "@"))
    toks = toks.slice(0, last);
  return toks;
}

/** Rewrites one external-form address (the trivial-rewrite "rewrite" request). */
export function rewriteExternal(p: RewriteParams, ctx: RewriteContextName, addr: string): string {
  if (addr === "") return "";
  return tok822Externalize(rewriteTokens(p, ctx, tok822Scan(addr)), { owned: true });
}

/** Rewrites one internal-form address: quote, rewrite, unquote. */
export function rewriteInternal(p: RewriteParams, ctx: RewriteContextName, addr: string): string {
  return unquote822Local(rewriteExternal(p, ctx, quote822Local(addr)));
}
