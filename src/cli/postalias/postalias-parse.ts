/*
 * postalias-parse - the aliases(5) file format, as postalias reads it
 *
 * SYNOPSIS
 *   import { aliasEntries, parseAliasLine, aliasTokens, externalize } from "./postalias-parse.js";
 *   for (const e of aliasEntries(physicalLines, "/etc/aliases", warn)) ... e.key, e.value, e.line
 *
 * DESCRIPTION
 *   An alias file holds one entry per logical line:
 *       name: value, value, ...
 *   "#" comment lines and empty lines are ignored; a line that starts with
 *   white space continues the entry before it. A value is an address, a
 *   "|command", a "/file/name", or ":include:/file/name"; the local
 *   delivery agent gives them their meaning, postalias only stores them.
 *
 *   Like Postfix, postalias reads a line as RFC 822 tokens (atoms, "quoted
 *   strings", (comments), [domain literals] and the special characters
 *   | % ! ( ) < > @ , ; : \ " . [ ]) and writes the name and the value back
 *   from the tokens, so white space is normalized: "a ,  b" is stored as
 *   "a, b", and a command with special characters must be quoted
 *   ("|/usr/bin/vacation joe" keeps its space; "|cmd > file" would not).
 *   The name is the text before the first ":" token and is stored in its
 *   quoted (external) form, as postmap stores keys and as Postfix 3.12
 *   does: "a b": ... is stored under "a b" with its quotes.
 *
 *   A line is rejected with a warning that names the file and line, and
 *   the rest of the file is still read, when it has no ":" with text on
 *   both sides, when there is a "," before the ":" ("need name:value
 *   pair"), or when the name has "@" or "%" ("name must be local and have
 *   no domain"). To store an empty value, write "".
 */
import { logicalLines } from "../../global/dict-parse.js";
import type { SourceEntry } from "../../global/dict-texthash.js";

/** One RFC 822 token. */
export type AliasToken =
  { kind: "atom" | "qstring" | "comment" | "domlit"; text: string } | { kind: "op"; ch: string };

/** The special characters that are tokens of their own. */
const OPCHARS = '|%!()<>@,;:\\".[]';

/** Whether a character separates tokens (space, tab, CR, LF). */
function isSpace(ch: string): boolean {
  return ch === " " || ch === "\t" || ch === "\r" || ch === "\n";
}

/** Collects text up to a closing character; backslash quotes the next one; white space becomes a space. */
function collectQuoted(s: string, i: number, close: string): { text: string; next: number } {
  let text = "";
  for (; i < s.length; i++) {
    let ch = s[i] ?? "";
    if (ch === "\\") {
      i += 1;
      if (i >= s.length) break;
      ch = s[i] ?? "";
    } else if (ch === close) {
      return { text, next: i + 1 };
    }
    text += isSpace(ch) ? " " : ch;
  }
  return { text, next: i };
}

/** Collects a (possibly nested) comment, keeping its parentheses and backslashes. */
function collectComment(s: string, i: number): { text: string; next: number } {
  let text = "(";
  let level = 1;
  while (i < s.length) {
    const ch = s[i++] ?? "";
    text += ch;
    if (ch === "(") level += 1;
    else if (ch === ")") {
      if (--level === 0) break;
    } else if (ch === "\\" && i < s.length) {
      text += s[i++] ?? "";
    }
  }
  return { text, next: i };
}

/** Collects an atom; it becomes a quoted string when it holds a space, a control or a special character. */
function collectAtom(s: string, i: number): { token: AliasToken; next: number } {
  let text = "";
  for (; i < s.length; i++) {
    let ch = s[i] ?? "";
    if (ch === "\\") {
      i += 1;
      if (i >= s.length) break;
      ch = s[i] ?? "";
    } else if (isSpace(ch) || OPCHARS.includes(ch)) {
      break;
    }
    text += isSpace(ch) ? " " : ch;
  }
  // eslint-disable-next-line no-control-regex
  const quote = /[ \x00-\x1f\x7f]/.test(text) || [...text].some((c) => OPCHARS.includes(c));
  return { token: { kind: quote ? "qstring" : "atom", text }, next: i };
}

/** Splits text into RFC 822 tokens, as Postfix's tok822_scan does. */
export function aliasTokens(s: string): AliasToken[] {
  const out: AliasToken[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i] ?? "";
    if (isSpace(ch)) {
      i += 1;
    } else if (ch === "(") {
      const c = collectComment(s, i + 1);
      out.push({ kind: "comment", text: c.text });
      i = c.next;
    } else if (ch === "[" || ch === '"') {
      const c = collectQuoted(s, i + 1, ch === "[" ? "]" : '"');
      out.push({ kind: ch === "[" ? "domlit" : "qstring", text: c.text });
      i = c.next;
    } else if (ch !== "\\" && OPCHARS.includes(ch)) {
      out.push({ kind: "op", ch });
      i += 1;
    } else {
      const a = collectAtom(s, i);
      out.push(a.token);
      i = a.next;
    }
  }
  return out;
}

/** Puts a backslash before every character of `special`. */
function quoteChars(text: string, special: string): string {
  let out = "";
  for (const ch of text) out += special.includes(ch) ? `\\${ch}` : ch;
  return out;
}

/** Writes tokens back as text (Postfix's tok822_externalize): a space between words, after "," and before "<". */
export function externalize(tokens: readonly AliasToken[]): string {
  let out = "";
  tokens.forEach((t, i) => {
    if (t.kind === "op") out += t.ch;
    else if (t.kind === "qstring") out += `"${quoteChars(t.text, '"\\\r\n')}"`;
    else if (t.kind === "domlit") out += `[${quoteChars(t.text, "\\\r\n")}]`;
    else out += t.text;
    const next = tokens[i + 1];
    if (next === undefined) return;
    const comma = t.kind === "op" && t.ch === ",";
    const angle = next.kind === "op" && next.ch === "<";
    if (comma || angle || (t.kind !== "op" && next.kind !== "op")) out += " ";
  });
  return out;
}

/** The result of reading one logical line. */
export type AliasLine = { ok: true; key: string; value: string } | { ok: false; error: string } | null;

/** Splits one logical line into name and value; null when it holds no tokens. */
export function parseAliasLine(text: string): AliasLine {
  const tokens = aliasTokens(text);
  if (tokens.length === 0) return null;
  const isOp = (t: AliasToken | undefined, ch: string): boolean => t?.kind === "op" && t.ch === ch;
  const colon = tokens.findIndex((t) => isOp(t, ":"));
  const name = tokens.slice(0, Math.max(colon, 0));
  if (colon <= 0 || colon === tokens.length - 1 || name.some((t) => isOp(t, ",")))
    return { ok: false, error: "need name:value pair" };
  if (name.some((t) => isOp(t, "@") || isOp(t, "%")))
    return { ok: false, error: "name must be local and have no domain" };
  return { ok: true, key: externalize(name), value: externalize(tokens.slice(colon + 1)) };
}

/** The entries of an alias file, from its physical lines; bad lines are reported through warn and skipped. */
export function* aliasEntries(
  physical: Iterable<string>,
  where: string,
  warn: (text: string) => void,
): Generator<SourceEntry> {
  for (const ll of logicalLines(physical, where, warn)) {
    const r = parseAliasLine(ll.text);
    if (r === null) continue;
    if (!r.ok) {
      warn(`${where}, line ${ll.line}: ${r.error}`);
      continue;
    }
    yield { key: r.key, value: r.value, line: ll.line };
  }
}
