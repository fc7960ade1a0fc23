/*
 * tok822 - RFC 5322 (822) address lists: tokens, parse trees, quoting
 *
 * SYNOPSIS
 *   import { tok822Parse, tok822Scan, tok822Grep, tok822Externalize,
 *            tok822Internalize, tok822ScanAddr } from "./tok822.js";
 *   const tree = tok822Parse('Team: "J. Doe" <john@example.com>, bob (Bob);');
 *   for (const a of tok822Grep(tree)) tok822Internalize(a.toks);  // john@example.com, bob
 *   tok822Externalize(tree);                     // the list again, in external form
 *
 * DESCRIPTION
 *   tok822Scan() turns an external-form string into a flat token list:
 *   atoms, quoted strings (kept without their quotes), domain literals
 *   (kept without brackets), comments (kept as written, with their
 *   parentheses, nesting allowed) and one-character operators: the RFC 822
 *   specials plus "%", "!" and "|". A backslash quotes the next character;
 *   an atom that then holds a special character or white space becomes a
 *   quoted string. CR, LF and TAB inside quoted strings become spaces.
 *
 *   tok822Parse() builds a parse tree from the tokens. The parser is
 *   permissive and keeps what it does not understand:
 *     - "phrase <route-addr>": the phrase stays as it is; what is between
 *       the angle brackets becomes an address node;
 *     - "name: addr, addr;" is a group when a ";" follows the ":";
 *       an empty group ("undisclosed-recipients:;") has no addresses;
 *     - words next to each other without an operator between them are
 *       separate addresses: a missing comma is added ("a b" is "a, b"),
 *       also after an angle address that is followed by more words;
 *     - comments are moved out of addresses, to the right of them;
 *     - ":" inside an address that is not a group (DECnet, source routes
 *       "@a,@b:user@c" inside angle brackets) stays part of the address.
 *   The top-level list holds address nodes { type: "addr", toks } and the
 *   other tokens (phrases, comments, commas, group markers) between them.
 *
 *   tok822Externalize() converts tokens back to external form, quoting
 *   where needed and putting white space between words. In an address
 *   node the local part (after a source route, before the last "@") is
 *   quoted as a whole unless it is a dot-atom; the route and the domain
 *   are written token by token. With line, a
 *   comma is followed by a newline instead of a space (for header folding);
 *   with trunc, an address expression whose non-address text exceeds 250
 *   characters is reduced to "<address>" (Sendmail CA-2003-07 protection).
 *   tok822Internalize() does the same without quoting.
 *
 *   Every function does work linear in the input length; the token limit
 *   (header_address_token_limit) stops a scan early.
 */
import { msg, printable } from "../util/msg.js";
import { quote822LocalPart } from "./quote-822-local.js";

/** One token or parse-tree node. */
export type Tok =
  | { type: "atom" | "qstring" | "domlit" | "comment" | "op"; text: string }
  | { type: "group" }
  | { type: "addr"; toks: Tok[] };

/** An address node. */
export type AddrTok = Extract<Tok, { type: "addr" }>;

const OPCHARS = '|%!()<>@,;:\\".[]';
const SPACE = " \t\r\n";
const MAX_NONADDR = 250;

/** True for a token that is an operator with the given text. */
function isOp(t: Tok | undefined, ch: string): boolean {
  return t !== undefined && t.type === "op" && t.text === ch;
}

/** True for word-like tokens (between which white space is written). */
function isWordish(t: Tok): boolean {
  return t.type !== "op" && t.type !== "group";
}

/** True for the tokens that make a word (a missing comma splits two of them). */
function isWord(t: Tok): boolean {
  return t.type === "atom" || t.type === "qstring" || t.type === "domlit";
}

/** Collects a comment starting after "(" at i; returns the end index. */
function scanComment(s: string, i: number): { text: string; end: number } {
  let level = 1;
  let j = i;
  while (j < s.length) {
    const c = s[j++];
    if (c === "(") level++;
    else if (c === ")" && --level === 0) break;
    else if (c === "\\" && j < s.length) j++;
  }
  return { text: `(${s.slice(i, j)}`, end: j };
}

/** Collects quoted text after its opening character until close (excluded); returns the end index. */
function scanQuoted(s: string, i: number, close: string): { text: string; end: number } {
  let out = "";
  let j = i;
  while (j < s.length) {
    let c = s[j] ?? "";
    if (c === "\\") {
      if (j + 1 >= s.length) {
        j++;
        break;
      }
      c = s[++j] ?? "";
    } else if (c === close) {
      return { text: out, end: j + 1 };
    }
    out += SPACE.includes(c) ? " " : c;
    j++;
  }
  return { text: out, end: j };
}

/** Collects an atom starting at i; returns it as an atom or (if it needs quotes) a quoted string. */
function scanAtom(s: string, i: number): { tok: Tok; end: number } {
  let out = "";
  let j = i;
  while (j < s.length) {
    let c = s[j] ?? "";
    if (c === "\\") {
      if (j + 1 >= s.length) {
        j++;
        break;
      }
      c = s[++j] ?? "";
    } else if (SPACE.includes(c) || OPCHARS.includes(c)) {
      break;
    }
    out += SPACE.includes(c) ? " " : c;
    j++;
  }
  const special = [...out].some((c) => c <= " " || c === "\x7f" || OPCHARS.includes(c));
  return { tok: { type: special ? "qstring" : "atom", text: out }, end: j };
}

/** Converts an external-form string into a flat token list (at most limit tokens when limit > 0). */
export function tok822Scan(s: string, limit = 0): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < s.length && (limit <= 0 || toks.length < limit)) {
    const c = s[i] ?? "";
    if (SPACE.includes(c)) {
      i++;
      continue;
    }
    let r: { tok: Tok; end: number };
    if (c === "(") {
      const q = scanComment(s, i + 1);
      r = { tok: { type: "comment", text: q.text }, end: q.end };
    } else if (c === "[") {
      const q = scanQuoted(s, i + 1, "]");
      r = { tok: { type: "domlit", text: q.text }, end: q.end };
    } else if (c === '"') {
      const q = scanQuoted(s, i + 1, '"');
      r = { tok: { type: "qstring", text: q.text }, end: q.end };
    } else if (c !== "\\" && OPCHARS.includes(c)) {
      r = { tok: { type: "op", text: c }, end: i + 1 };
    } else {
      r = scanAtom(s, i);
    }
    toks.push(r.tok);
    i = Math.max(r.end, i + 1);
  }
  return toks;
}

/** Converts a single external-form address into an address node, without parsing. */
export function tok822ScanAddr(s: string, limit = 0): AddrTok {
  return { type: "addr", toks: tok822Scan(s, limit) };
}

/** Pairs each "<" with the first ">" after it; returns close[i] for the "<" at i, -1 elsewhere. */
function anglePairs(toks: readonly Tok[]): { close: Int32Array; inside: Uint8Array } {
  const close = new Int32Array(toks.length).fill(-1);
  const inside = new Uint8Array(toks.length);
  let nextGt = -1;
  const next = new Int32Array(toks.length);
  for (let i = toks.length - 1; i >= 0; i--) {
    next[i] = nextGt;
    if (isOp(toks[i], ">")) nextGt = i;
  }
  for (let i = 0; i < toks.length; i++) {
    if (!isOp(toks[i], "<")) continue;
    const j = next[i] ?? -1;
    if (j < 0) break;
    close[i] = j;
    inside.fill(1, i + 1, j);
    i = j;
  }
  return { close, inside };
}

/** Adds the addresses of a run of tokens without angle brackets (a missing comma splits adjacent words). */
function plainAddresses(seg: readonly Tok[], out: Tok[]): void {
  let cur: Tok[] = [];
  let comments: Tok[] = [];
  let prevWord = false;
  const flush = (): void => {
    if (cur.length > 0) out.push({ type: "addr", toks: cur });
    out.push(...comments);
    cur = [];
    comments = [];
  };
  for (const t of seg) {
    if (t.type === "comment") {
      comments.push(t);
      continue;
    }
    if (isWord(t) && prevWord && cur.length > 0) {
      flush();
      out.push({ type: "op", text: "," });
    }
    cur.push(t);
    prevWord = isWord(t);
  }
  flush();
}

/** Parses one address expression (the tokens between separators) into out. */
function parseExpression(
  toks: readonly Tok[],
  from: number,
  to: number,
  close: Int32Array,
  out: Tok[],
): void {
  let phrase = from;
  let sawAngle = false;
  for (let i = from; i < to; i++) {
    const j = close[i] ?? -1;
    if (j < 0 || j >= to) continue;
    const words = toks.slice(phrase, i);
    if (sawAngle && words.some((t) => t.type !== "comment")) out.push({ type: "op", text: "," });
    out.push(...words, { type: "op", text: "<" });
    const inner = toks.slice(i + 1, j);
    const addr = inner.filter((t) => t.type !== "comment");
    if (addr.length > 0) out.push({ type: "addr", toks: addr });
    out.push({ type: "op", text: ">" }, ...inner.filter((t) => t.type === "comment"));
    sawAngle = true;
    i = j;
    phrase = j + 1;
  }
  const rest = toks.slice(phrase, to);
  if (sawAngle && rest.some((t) => t.type !== "comment")) out.push({ type: "op", text: "," });
  plainAddresses(rest, out);
}

/** Converts an external-form address list into a parse tree (see the module comment). */
export function tok822Parse(s: string, limit = 0): Tok[] {
  const toks = tok822Scan(s, limit);
  const { close, inside } = anglePairs(toks);
  let lastSemi = -1;
  for (let i = 0; i < toks.length; i++) if (isOp(toks[i], ";") && inside[i] === 0) lastSemi = i;
  const out: Tok[] = [];
  let start = 0;
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    if (t === undefined || inside[i] === 1) continue;
    if (isOp(t, ",") || isOp(t, ";")) {
      parseExpression(toks, start, i, close, out);
      out.push(t);
      start = i + 1;
    } else if (isOp(t, ":") && i < lastSemi) {
      out.push(...toks.slice(start, i), { type: "group" });
      start = i + 1;
    }
  }
  parseExpression(toks, start, toks.length, close, out);
  return out;
}

/** The address nodes of a parse tree, in order. */
export function tok822Grep(tree: readonly Tok[]): AddrTok[] {
  return tree.filter((t): t is AddrTok => t.type === "addr");
}

/** Whether white space goes between two top-level tokens. */
function spaceBetween(t: Tok, next: Tok | undefined): boolean {
  if (next === undefined) return false;
  if (t.type === "group" || isOp(t, ",") || isOp(next, "<")) return true;
  if (isOp(t, ">") && isWordish(next)) return true;
  return isWordish(t) && isWordish(next);
}

/** Backslash-quotes the characters of set in text. */
function escapeSet(text: string, set: string): string {
  let out = "";
  for (const c of text) out += set.includes(c) ? `\\${c}` : c;
  return out;
}

/** Formatting options of tok822Externalize and tok822Internalize. */
export interface Tok822Format {
  /** A newline instead of a space after each comma. */
  line?: boolean;
  /** Reduce address expressions with more than 250 characters of other text to <address>. */
  trunc?: boolean;
  /** The tokens are the inside of one address: no white space is added. */
  owned?: boolean;
}

/** Converts tokens to internal form (no quoting). */
export function tok822Internalize(toks: readonly Tok[], fmt: Tok822Format = { owned: true }): string {
  let out = "";
  toks.forEach((t, i) => {
    if (t.type === "addr") out += tok822Internalize(t.toks);
    else if (t.type === "group") out += ":";
    else if (t.type === "domlit") out += `[${t.text}]`;
    else out += t.text;
    if (isOp(t, ",") && fmt.line === true) out += "\n";
    else if (fmt.owned !== true && spaceBetween(t, toks[i + 1])) out += " ";
  });
  return out;
}

/** The external form of an address node: a source route and the domain token by token, the local part quoted as a whole. */
function externalAddr(toks: readonly Tok[]): string {
  let route = 0;
  if (isOp(toks[0], "@")) route = toks.findIndex((t) => isOp(t, ":")) + 1;
  const rest = toks.slice(route);
  let at = rest.length - 1;
  while (at >= 0 && !isOp(rest[at], "@")) at--;
  const prefix = route > 0 ? tok822Externalize(toks.slice(0, route), { owned: true }) : "";
  const local = quote822LocalPart(tok822Internalize(at < 0 ? rest : rest.slice(0, at)));
  return at < 0
    ? prefix + local
    : `${prefix}${local}@${tok822Externalize(rest.slice(at + 1), { owned: true })}`;
}

/** The external form of one token. */
function externalToken(t: Tok): string {
  switch (t.type) {
    case "addr":
      return externalAddr(t.toks);
    case "group":
      return ":";
    case "qstring":
      return `"${escapeSet(t.text, '"\\\r\n')}"`;
    case "domlit":
      return `[${escapeSet(t.text, "[]\\\r\n")}]`;
    default:
      return t.text;
  }
}

/** Converts tokens to external form (see the module comment for the options). */
export function tok822Externalize(toks: readonly Tok[], fmt: Tok822Format = {}): string {
  let out = "";
  let exprStart = 0;
  let addr: AddrTok | "empty" | null = null;
  let addrLen = 0;
  const enforce = (): void => {
    if (fmt.trunc !== true || addr === null || out.length - addrLen <= exprStart + MAX_NONADDR) return;
    msg.warn(
      `stripping too many comments from address: ${printable(out.slice(exprStart, exprStart + 100))}...`,
    );
    const inner = addr === "empty" ? "" : externalAddr(addr.toks);
    out = `${out.slice(0, exprStart)}<${inner}>`;
  };
  toks.forEach((t, i) => {
    if (fmt.owned !== true && isOp(t, ",")) {
      enforce();
      out += fmt.line === true ? ",\n" : ", ";
      exprStart = out.length;
      addr = null;
      addrLen = 0;
      return;
    }
    const text = externalToken(t);
    if (t.type === "addr") {
      addr = t;
      addrLen = text.length;
    } else if (isOp(t, "<") && isOp(toks[i + 1], ">")) {
      addr = "empty";
      addrLen = 0;
    }
    out += text;
    if (fmt.owned !== true && spaceBetween(t, toks[i + 1])) out += " ";
  });
  enforce();
  return out;
}

/** The external form of one address node's tokens, quoted token by token. */
export function tok822AddrExternal(a: AddrTok): string {
  return tok822Externalize(a.toks, { owned: true });
}
