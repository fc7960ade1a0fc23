/*
 * dict-parse - the text syntax shared by Postfix-style table files
 *
 * SYNOPSIS
 *   import { logicalLines, fdPhysicalLines, parseSourceLine, braceTokens, stripBraces,
 *            splitNameValue, inlineRules } from "./dict-parse.js";
 *
 * DESCRIPTION
 *   logicalLines() turns physical lines into logical lines, the way every
 *   Postfix table file is read: empty lines, whitespace-only lines and lines
 *   whose first non-blank character is "#" are ignored (also between
 *   continuation lines); a line that starts with whitespace continues the
 *   logical line before it (the newline is dropped, the whitespace kept).
 *   Text that continues nothing is reported and skipped. Each logical line
 *   carries the number of its first physical line, for diagnostics.
 *
 *   fdPhysicalLines() reads a file descriptor in chunks, so that a source
 *   file of any size can be streamed (postmap of ten million keys).
 *
 *   parseSourceLine() splits "key whitespace value" as postmap(1) does: the
 *   key ends at the first unquoted, unescaped whitespace and is kept in its
 *   quoted form; the value is trimmed.
 *
 *   braceTokens(), stripBraces() and splitNameValue() handle the "{ ... }"
 *   syntax of inline:, static:, unionmap:, pipemap:, randmap: and of inline
 *   regexp:/pcre:/cidr: tables.
 *
 * LIMITS
 *   A logical line longer than maxLine characters (default 1 MiB) is
 *   reported and skipped.
 */
import { readSync } from "node:fs";

/** One logical line of a table file. */
export interface LogicalLine {
  text: string;
  /** Number of the first physical line. */
  line: number;
}

/** Default limit on the length of one logical line. */
export const DICT_MAX_LINE = 1024 * 1024;

const SPACE = /[ \t\n\r\v\f]/;

/** Whether a character is whitespace in the C locale (Postfix's ISSPACE). */
export function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && ch.length === 1 && SPACE.test(ch);
}

/** Trims C-locale whitespace at both ends. */
export function trimSpace(s: string): string {
  return s.replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, "");
}

/** Splits text into physical lines (a final newline does not make an extra empty line). */
export function* textPhysicalLines(text: string): Generator<string> {
  let start = 0;
  while (start < text.length) {
    let nl = text.indexOf("\n", start);
    if (nl < 0) nl = text.length;
    yield text.slice(start, nl);
    start = nl + 1;
  }
}

/** Reads physical lines from a file descriptor in chunks; over-long lines are cut to maxLine + 1. */
export function* fdPhysicalLines(fd: number, maxLine = DICT_MAX_LINE): Generator<string> {
  const chunk = Buffer.alloc(64 * 1024);
  let parts: Buffer[] = [];
  let partLen = 0;
  let position = 0;
  for (;;) {
    const n = readSync(fd, chunk, 0, chunk.length, position);
    if (n === 0) break;
    position += n;
    let start = 0;
    while (start < n) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 || nl >= n ? n : nl;
      if (partLen <= maxLine) {
        parts.push(Buffer.from(chunk.subarray(start, end)));
        partLen += end - start;
      }
      if (end === n) break;
      yield Buffer.concat(parts, partLen).toString("utf8");
      parts = [];
      partLen = 0;
      start = end + 1;
    }
  }
  if (partLen > 0) yield Buffer.concat(parts, partLen).toString("utf8");
}

/** Groups physical lines into logical lines; `where` names the source in warnings. */
export function* logicalLines(
  physical: Iterable<string>,
  where: string,
  warn: (text: string) => void,
  maxLine = DICT_MAX_LINE,
): Generator<LogicalLine> {
  let cur: string[] = [];
  let curLen = 0;
  let first = 0;
  let lineno = 0;
  const emit = (): LogicalLine | null => {
    if (cur.length === 0) return null;
    const text = cur.join("");
    cur = [];
    if (curLen > maxLine) {
      warn(`${where}, line ${first}: line is longer than ${maxLine} characters: skipping it`);
      return null;
    }
    if (isSpace(text[0])) {
      warn(`${where}, line ${first}: text continues no logical line: "${text.slice(0, 30)}..."`);
      return null;
    }
    return { text, line: first };
  };
  for (const raw of physical) {
    lineno += 1;
    const lead = raw.search(/[^ \t\n\r\v\f]/);
    if (lead < 0 || raw[lead] === "#") continue;
    if (lead === 0) {
      const done = emit();
      if (done !== null) yield done;
      first = lineno;
      curLen = 0;
    } else if (cur.length === 0) {
      first = lineno;
      curLen = 0;
    }
    curLen += raw.length;
    if (curLen <= maxLine) cur.push(raw);
    else cur = [""];
  }
  const done = emit();
  if (done !== null) yield done;
}

/** Splits a postmap source line into its (still quoted) key and its trimmed value. */
export function parseSourceLine(text: string): { key: string; value: string } | { error: string } {
  let inQuotes = false;
  let i = 0;
  for (; i < text.length; i++) {
    const ch = text[i];
    if (ch === "\\") {
      i += 1;
      if (i >= text.length) break;
    } else if (isSpace(ch)) {
      if (!inQuotes) break;
    } else if (ch === '"') {
      inQuotes = !inQuotes;
    }
  }
  if (inQuotes) return { error: `unbalanced '"' in "${text}"` };
  const key = text.slice(0, i);
  const value = trimSpace(text.slice(i + 1));
  if (key === "" || value === "") return { error: "expected format: key whitespace value" };
  return { key, value };
}

/** Length of the balanced "{...}" text at the start of s, or 0 when it is not balanced. */
export function balancedLength(s: string): number {
  if (s[0] !== "{") return 0;
  let level = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "{") level += 1;
    else if (s[i] === "}") {
      level -= 1;
      if (level === 0) return i + 1;
    }
  }
  return 0;
}

/** Splits on commas and whitespace outside braces (Postfix mystrtokq). */
export function braceTokens(s: string, separators = ", \t\r\n"): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && separators.includes(s[i] ?? "")) i++;
    if (i >= s.length) break;
    const start = i;
    let level = 0;
    for (; i < s.length; i++) {
      const ch = s[i] ?? "";
      if (ch === "{") level += 1;
      else if (level > 0 && ch === "}") level -= 1;
      else if (level === 0 && separators.includes(ch)) break;
    }
    out.push(s.slice(start, i));
  }
  return out;
}

/** Removes the outer "{ }" of s; with strip, also the whitespace just inside them. */
export function stripBraces(s: string, strip = true): { text: string } | { error: string } {
  if (s[0] !== "{") return { error: `no "{" at the start of "${s}"` };
  const len = balancedLength(s);
  if (len === 0) return { error: `missing "}" in "${s}"` };
  if (len !== s.length) return { error: `text after "}" in "${s}"` };
  const inner = s.slice(1, len - 1);
  return { text: strip ? trimSpace(inner) : inner };
}

/** Splits "name = value" (name possibly quoted); the value may be empty. */
export function splitNameValue(s: string): { name: string; value: string } | { error: string } {
  let i = 0;
  while (isSpace(s[i])) i++;
  if (i >= s.length) return { error: "no name found; expected name = value" };
  const start = i;
  let inQuotes = false;
  for (; i < s.length; i++) {
    const ch = s[i];
    if (ch === "\\") {
      i += 1;
      if (i >= s.length) break;
    } else if (isSpace(ch) || ch === "=") {
      if (!inQuotes) break;
    } else if (ch === '"') {
      inQuotes = !inQuotes;
    }
  }
  if (inQuotes) return { error: `unbalanced '"'` };
  const name = s.slice(start, Math.min(i, s.length));
  let j = i;
  while (isSpace(s[j])) j++;
  if (s[j] !== "=") return { error: `missing "=" after name "${name}"` };
  return { name, value: trimSpace(s.slice(j + 1)) };
}

/** Turns an inline table body "{ {rule 1}, {rule 2} }" into rule lines. */
export function inlineRules(spec: string): { lines: string[] } | { error: string } {
  const outer = stripBraces(spec, false);
  if ("error" in outer) return outer;
  const lines: string[] = [];
  for (const tok of braceTokens(outer.text)) {
    const rule = stripBraces(tok, true);
    if ("error" in rule) return rule;
    lines.push(rule.text);
  }
  return { lines };
}
