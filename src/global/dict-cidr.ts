/*
 * dict-cidr - cidr: tables, network address patterns (cidr_table(5))
 *
 * SYNOPSIS
 *   dictOpen("cidr:/etc/postfix/client.cidr")
 *   dictOpen("cidr:{ {192.168.0.0/16 REJECT}, {2001:db8::/32 OK} }")
 *
 * DESCRIPTION
 *   Rules are tried in file order; the first match gives the result:
 *     network/prefix result     the key is inside the network
 *     address result            the key is that address
 *     !pattern result           the key is not inside (same family only)
 *     if pattern ... endif      the rules inside apply only to keys that
 *     if !pattern ... endif     match (do not match) the pattern; nesting
 *   A pattern may be written "[addr]", "[addr]/len" or "[addr/len]". The
 *   host bits of a network must be zero. Keys and patterns are compared as
 *   binary addresses, so "2001:0db8::1" equals "2001:db8::1". A key that is
 *   not a numeric address (hostnames, "[1.2.3.4]") is not found. A rule for
 *   one family never matches a key of the other family, negated or not.
 *
 * DIAGNOSTICS
 *   A bad rule is reported with file and line and skipped; the other rules
 *   stay in use.
 */
import { rulesTableOpen } from "./dict-file.js";
import { formatIp, parseIpAddr } from "./dict-ipaddr.js";
import { isSpace, trimSpace, type LogicalLine } from "./dict-parse.js";
import { msg } from "../util/msg.js";
import { DictFlag, found, NOT_FOUND, type DictImpl, type DictResult } from "./dict-types.js";

/** One address pattern: family by byte count, network bytes, prefix length. */
export interface CidrPattern {
  net: Uint8Array;
  bits: number;
  match: boolean;
}

/** One rule of a cidr table. */
type CidrRule =
  | { op: "match"; pat: CidrPattern; value: string; line: number }
  | { op: "if"; pat: CidrPattern; line: number; end: number }
  | { op: "endif"; line: number };

/** Parses "addr", "addr/len", "[addr]", "[addr]/len" or "[addr/len]". */
export function parseCidrPattern(text: string, match: boolean): CidrPattern | { error: string } {
  let p = text;
  if (p.startsWith("[")) {
    const close = p.indexOf("]");
    if (close < 0) return { error: `missing "]" after "${p}"` };
    const rest = p.slice(close + 1);
    if (rest !== "" && !rest.startsWith("/")) return { error: `text after "${p.slice(0, close + 1)}"` };
    p = p.slice(1, close) + rest;
  }
  const slash = p.indexOf("/");
  const addrText = slash < 0 ? p : p.slice(0, slash);
  const net = parseIpAddr(addrText);
  const maxBits = addrText.includes(":") ? 128 : 32;
  if (slash < 0) {
    if (net === null) return { error: `bad address pattern "${p}"` };
    return { net, bits: maxBits, match };
  }
  const lenText = p.slice(slash + 1);
  if (!/^[0-9]+$/.test(lenText)) return { error: `bad prefix length in "${p}"` };
  const bits = Number(lenText);
  if (bits > maxBits) return { error: `prefix length too large in "${p}"` };
  if (net === null) return { error: `bad network address in "${p}"` };
  const masked = maskBytes(net, bits);
  if (masked.some((b, i) => b !== net[i])) {
    return { error: `host bits are not zero in "${p}"; did you mean "${formatIp(masked)}/${bits}"?` };
  }
  return { net, bits, match };
}

/** The address with all bits after the prefix cleared. */
function maskBytes(addr: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array(addr);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    out[i] = (out[i] ?? 0) & ((0xff00 >> keep) & 0xff);
  }
  return out;
}

/** Whether an address (same family) is inside the pattern's network, before negation. */
function inside(pat: CidrPattern, addr: Uint8Array): boolean {
  const full = pat.bits >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== pat.net[i]) return false;
  const rest = pat.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return ((addr[full] ?? 0) & mask) === pat.net[full];
}

/** Whether the rule's pattern (with negation) applies to the address; other families never apply. */
function applies(pat: CidrPattern, addr: Uint8Array): boolean {
  if (pat.net.length !== addr.length) return false;
  return inside(pat, addr) === pat.match;
}

/** Strips leading "!" and whitespace, counting negations. */
function negations(text: string): { rest: string; match: boolean } {
  let match = true;
  let i = 0;
  for (; i < text.length; i++) {
    if (text[i] === "!") match = !match;
    else if (!isSpace(text[i])) break;
  }
  return { rest: text.slice(i), match };
}

/** Parses one logical line into a rule, or explains why it is skipped. */
function parseRule(text: string, line: number, nesting: number): CidrRule | { error: string } {
  const word = /^(if|endif)(?![A-Za-z0-9])/i.exec(text)?.[1]?.toLowerCase();
  if (word === "if") {
    const { rest, match } = negations(text.slice(2));
    if (rest === "") return { error: "no address pattern" };
    const pat = parseCidrPattern(trimSpace(rest), match);
    return "error" in pat ? pat : { op: "if", pat, line, end: -1 };
  }
  if (word === "endif") {
    if (trimSpace(text.slice(5)) !== "") return { error: "text after endif" };
    if (nesting === 0) return { error: "endif without if" };
    return { op: "endif", line };
  }
  const { rest, match } = negations(text);
  const m = /^(\S*)\s*([\s\S]*)$/.exec(rest);
  const patText = m?.[1] ?? "";
  const value = trimSpace(m?.[2] ?? "");
  if (patText === "") return { error: "no address pattern" };
  const pat = parseCidrPattern(patText, match);
  if ("error" in pat) return pat;
  if (value === "") return { error: "no lookup result" };
  return { op: "match", pat, value, line };
}

/** Parses the logical lines of a cidr table into rules, warning about bad ones. */
export function parseCidrRules(lines: Iterable<LogicalLine>, where: string): CidrRule[] {
  const rules: CidrRule[] = [];
  const open: number[] = [];
  for (const ll of lines) {
    const r = parseRule(ll.text, ll.line, open.length);
    if ("error" in r) {
      msg.warn(`${where}, line ${ll.line}: ${r.error}: skipping this rule`);
      continue;
    }
    if (r.op === "if") open.push(rules.length);
    if (r.op === "endif") {
      const at = open.pop();
      const ifRule = at === undefined ? undefined : rules[at];
      if (ifRule?.op === "if") ifRule.end = rules.length;
    }
    rules.push(r);
  }
  for (const at of open.reverse()) {
    const r = rules[at];
    if (r !== undefined) msg.warn(`${where}, line ${r.line}: if has no matching endif`);
  }
  return rules;
}

/** Finds the result of the first rule that matches the key. */
export function cidrFind(rules: CidrRule[], key: string): DictResult {
  const addr = parseIpAddr(key);
  if (addr === null) return NOT_FOUND;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    if (r === undefined) break;
    if (r.op === "match") {
      if (applies(r.pat, addr)) return found(r.value);
    } else if (r.op === "if") {
      if (applies(r.pat, addr)) continue;
      if (r.end < 0) return NOT_FOUND;
      i = r.end;
    }
  }
  return NOT_FOUND;
}

/** Opens a cidr: table. */
export function cidrOpen(name: string, flags: number): DictImpl {
  return rulesTableOpen("cidr", name, flags | DictFlag.PATTERN, parseCidrRules, cidrFind);
}
