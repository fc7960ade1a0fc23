/*
 * proxymap-allow - which tables proxymap may open: proxy_read_maps
 *
 * SYNOPSIS
 *   import { proxyAllowList, allowFromText } from "./proxymap-allow.js";
 *   const allowed = proxyAllowList(cfg);   // Set of "type:name"
 *
 * DESCRIPTION
 *   proxymap opens only the tables that the configuration approves, as
 *   Postfix's does: every "proxy:type:name" in proxy_read_maps (after
 *   $name expansion; its default lists the parameters that name tables)
 *   approves "type:name". Table references without the "proxy:" prefix are
 *   ignored: a table that is not used through proxy: needs no approval.
 *   Entries are separated by commas and white space; "{ type:name
 *   attr=value }" counts as its first word; a "/file/name" entry approves
 *   the entries in that file; unionmap:{...} and pipemap:{...} approve the
 *   proxied tables inside them. The tables in the restriction classes that
 *   smtpd_restriction_classes names are approved too.
 *
 * DIAGNOSTICS
 *   Syntax errors and unreadable files are logged and skipped.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { msg } from "../util/msg.js";
import { ConfigError, type Config } from "../global/config.js";
import { braceTokens, stripBraces } from "../global/dict-parse.js";

/** Largest /file/name entry that is read. */
const FILE_MAX = 1024 * 1024;

/** How deep nested tables and files are followed. */
const DEPTH_MAX = 8;

/** Reads at most FILE_MAX bytes of a file; null (logged) when it cannot be read. */
function readBounded(path: string, origin: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    msg.warn(`${origin}: open ${path}: ${(err as Error).message}`);
    return null;
  }
  try {
    const buf = Buffer.alloc(FILE_MAX + 1);
    let got = 0;
    for (let n = 1; n > 0 && got < buf.length; got += n) n = readSync(fd, buf, got, buf.length - got, null);
    if (got > FILE_MAX) msg.warn(`${origin}: ${path}: only the first ${FILE_MAX} bytes are used`);
    return buf.subarray(0, Math.min(got, FILE_MAX)).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/** Adds the proxied tables named in text to the set. */
export function allowFromText(text: string, origin: string, out: Set<string>, depth = 0): Set<string> {
  if (depth > DEPTH_MAX) {
    msg.warn(`${origin}: tables nested too deeply; ignoring the rest`);
    return out;
  }
  for (let tok of braceTokens(text)) {
    if (tok.startsWith("{")) {
      const inner = stripBraces(tok);
      if ("error" in inner) {
        msg.warn(`bad syntax in ${origin} content: ${inner.error}`);
        continue;
      }
      const first = braceTokens(inner.text)[0];
      if (first === undefined) continue;
      tok = first;
    }
    if (tok.startsWith("/")) {
      const content = readBounded(tok, origin);
      if (content !== null) allowFromText(content.replace(/#.*$/gm, ""), origin, out, depth + 1);
      continue;
    }
    if (!/^[A-Za-z0-9]/.test(tok) || !tok.includes(":")) continue;
    const nested = /^(unionmap|pipemap):/.exec(tok);
    if (nested !== null) {
      const inner = stripBraces(tok.slice(nested[0].length));
      if ("error" in inner) msg.warn(`bad syntax in ${origin} content: ${inner.error}`);
      else allowFromText(inner.text, origin, out, depth + 1);
      continue;
    }
    if (!tok.startsWith("proxy:")) continue;
    while (tok.startsWith("proxy:")) tok = tok.slice("proxy:".length);
    if (!out.has(tok)) msg.debug(`allowlisting ${tok} from ${origin}`);
    out.add(tok);
  }
  return out;
}

/** The tables that proxymap may open for reading. */
export function proxyAllowList(cfg: Config): Set<string> {
  const out = new Set<string>();
  allowFromText(cfg.get("proxy_read_maps"), "proxy_read_maps", out);
  for (const cls of braceTokens(cfg.get("smtpd_restriction_classes"))) {
    try {
      allowFromText(cfg.get(cls), cls, out);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      msg.warn(err.message);
    }
  }
  return out;
}
