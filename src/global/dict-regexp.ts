/*
 * dict-regexp - regexp: and pcre: tables with linear-time matching
 *
 * SYNOPSIS
 *   dictOpen("regexp:/etc/postfix/header_checks")
 *   dictOpen("pcre:/etc/postfix/sender_checks")
 *   dictOpen("pcre:{ {/^(.*)@old\\.example$/ ${1}@new.example}, {/./ DUNNO} }")
 *
 * DESCRIPTION
 *   The formats of regexp_table(5) and pcre_table(5):
 *     /pattern/flags result       the key matches: result
 *     !/pattern/flags result      the key does not match: result
 *     /p1/!/p2/ result            (regexp only) matches p1 and not p2
 *     if /pattern/flags ... endif     (also "if !/pattern/"), nesting
 *   The delimiter is any non-alphanumeric character; a backslash escapes it.
 *   Rules are tried in order on the whole key; the first that applies gives
 *   the result, in which $1, ${1} and $(1) are replaced by what the group
 *   matched (empty when it matched nothing) and $$ by "$".
 *
 *   Flags toggle from these defaults:
 *     regexp: i (case-insensitive) on, m (multi-line) off, x (extended
 *             POSIX syntax) on;
 *     pcre:   i on, m off, s (dot matches newline) on, x (ignore blanks)
 *             off, A (anchored) off, E (dollar at end only) off, U
 *             (ungreedy) off; X is accepted and ignored.
 *   The key is matched as given; FOLD_MUL folds it to lower case first.
 *
 *   Matching uses RE2 (re2js): time linear in the key length whatever the
 *   pattern, so "/^(a+)+$/" cannot be used to stall a daemon. The pattern
 *   syntax is translated (dict-re-posix.ts, dict-re-pcre.ts); constructs
 *   that need backtracking (back-references, lookaround, ...) are errors.
 *
 * DIAGNOSTICS
 *   A rule that does not parse or compile is reported with table, line and
 *   reason and skipped; the other rules stay in use. With NO_REGSUB, rules
 *   whose result uses $number are refused.
 */
import { RE2JS } from "re2js";
import { msg } from "../util/msg.js";
import { rulesTableOpen } from "./dict-file.js";
import { isSpace, trimSpace, type LogicalLine } from "./dict-parse.js";
import { pcreToRe2 } from "./dict-re-pcre.js";
import { posixToRe2, type Translation } from "./dict-re-posix.js";
import {
  DictFlag,
  errorText,
  foldKey,
  found,
  NOT_FOUND,
  type DictImpl,
  type DictResult,
} from "./dict-types.js";

/** A compiled pattern and whether the rule wants it to match (false after "!"). */
interface Pat {
  re: RE2JS;
  match: boolean;
}

/** A piece of a result: literal text or a group number. */
type Part = string | number;

/** One rule of a regexp or pcre table. */
type Rule =
  | { op: "match"; first: Pat; second: Pat | null; parts: Part[]; maxSub: number; line: number }
  | { op: "if"; pat: Pat; end: number; line: number }
  | { op: "endif"; line: number };

/** What differs between regexp: and pcre:. */
interface Dialect {
  type: "regexp" | "pcre";
  /** Flag letters that may follow the closing delimiter, and stop characters. */
  optionEnd: (ch: string) => boolean;
  /** Compiles the pattern text with the flag letters; an error string when it cannot. */
  compile: (source: string, letters: string) => RE2JS | string;
  /** Whether "/p1/!/p2/" is allowed. */
  second: boolean;
}

/** Compiles an RE2 translation with engine flags; an error string on failure. */
function re2Compile(t: Translation, flags: number): RE2JS | string {
  if ("error" in t) return t.error;
  try {
    return RE2JS.compile(t.source, flags);
  } catch (err) {
    return errorText(err)
      .replace(/^error parsing regexp: /, "")
      .replace(/: `[\s\S]*`$/, "");
  }
}

/** Counts toggles of each letter; a letter given twice cancels out. */
function toggled(letters: string, letter: string, dflt: boolean): boolean {
  let on = dflt;
  for (const ch of letters) if (ch === letter) on = !on;
  return on;
}

const REGEXP: Dialect = {
  type: "regexp",
  optionEnd: (ch) => isSpace(ch) || ch === "!",
  second: true,
  /** POSIX syntax: leftmost-longest, dot matches newline unless "m". */
  compile(source, letters) {
    for (const ch of letters) if (!"imx".includes(ch)) return `unknown flag "${ch}"`;
    const multiline = toggled(letters, "m", false);
    let flags = RE2JS.LONGEST_MATCH | (multiline ? RE2JS.MULTILINE : RE2JS.DOTALL);
    if (toggled(letters, "i", true)) flags |= RE2JS.CASE_INSENSITIVE;
    return re2Compile(posixToRe2(source, toggled(letters, "x", true)), flags);
  },
};

const PCRE: Dialect = {
  type: "pcre",
  optionEnd: (ch) => isSpace(ch),
  second: false,
  /** Perl syntax: the flags become RE2 flags or rewrite the pattern. */
  compile(source, letters) {
    for (const ch of letters) if (!"imsxAEUX".includes(ch)) return `unknown flag "${ch}"`;
    const multiline = toggled(letters, "m", false);
    const t = pcreToRe2(source, {
      extended: toggled(letters, "x", false),
      dollarEndOnly: toggled(letters, "E", false),
      multiline,
    });
    if ("error" in t) return t.error;
    let src = t.source;
    if (toggled(letters, "A", false)) src = `\\A(?:${src})`;
    if (toggled(letters, "U", false)) src = `(?U)${src}`;
    let flags = multiline ? RE2JS.MULTILINE : 0;
    if (toggled(letters, "s", true)) flags |= RE2JS.DOTALL;
    if (toggled(letters, "i", true)) flags |= RE2JS.CASE_INSENSITIVE;
    return re2Compile({ source: src }, flags);
  },
};

/** Parses "$n", "${n}", "$(n)" and "$$" in a result; an error string when malformed. */
export function parseResult(text: string): { parts: Part[]; maxSub: number } | string {
  const parts: Part[] = [];
  let lit = "";
  let maxSub = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c !== "$") {
      lit += c;
      i++;
      continue;
    }
    if (text[i + 1] === "$") {
      lit += "$";
      i += 2;
      continue;
    }
    let name: string;
    const open = text[i + 1];
    if (open === "{" || open === "(") {
      const close = open === "{" ? "}" : ")";
      let level = 1;
      let j = i + 2;
      for (; j < text.length && level > 0; j++) {
        if (text[j] === open) level++;
        else if (text[j] === close) level--;
      }
      if (level > 0) return `unterminated "$${open}" in result`;
      name = text.slice(i + 2, j - 1);
      i = j;
    } else {
      const m = /^[A-Za-z0-9_]*/.exec(text.slice(i + 1));
      name = m?.[0] ?? "";
      i += 1 + name.length;
    }
    if (name === "") return 'empty "$" reference in result (write "$$" for a "$")';
    if (!/^[0-9]+$/.test(name)) return `non-numeric reference "$${name}" in result`;
    const n = Number(name);
    if (n < 1) return `reference "$${name}" out of range`;
    if (lit !== "") parts.push(lit);
    lit = "";
    parts.push(n);
    maxSub = Math.max(maxSub, n);
  }
  if (lit !== "" || parts.length === 0) parts.push(lit);
  return { parts, maxSub };
}

/** Reads "!"s, a delimited pattern and its flag letters from text[at]; returns them and the index after. */
function takePattern(
  d: Dialect,
  text: string,
  at: number,
): { source: string; letters: string; match: boolean; next: number } | string {
  let match = true;
  let i = at;
  for (; i < text.length; i++) {
    if (text[i] === "!") match = !match;
    else if (!isSpace(text[i])) break;
  }
  const delim = text[i];
  if (delim === undefined) return "no pattern";
  const start = ++i;
  for (; i < text.length && text[i] !== delim; i++) if (text[i] === "\\" && i + 1 < text.length) i++;
  if (i >= text.length) return `no closing pattern delimiter "${delim}"`;
  const source = text.slice(start, i);
  const optStart = ++i;
  while (i < text.length && !d.optionEnd(text[i] ?? "")) i++;
  return { source, letters: text.slice(optStart, i), match, next: i };
}

/** Compiles a taken pattern; an error string when it does not compile. */
function compilePat(d: Dialect, t: { source: string; letters: string; match: boolean }): Pat | string {
  const re = d.compile(t.source, t.letters);
  return typeof re === "string" ? `bad pattern "${t.source}": ${re}` : { re, match: t.match };
}

/** Parses a match rule (the line starts with a delimiter or "!"). */
function parseMatch(d: Dialect, text: string, line: number, flags: number, where: string): Rule | string {
  const t1 = takePattern(d, text, 0);
  if (typeof t1 === "string") return t1;
  let next = t1.next;
  let t2: ReturnType<typeof takePattern> | null = null;
  if (d.second && text[next] === "!") {
    t2 = takePattern(d, text, next);
    if (typeof t2 === "string") return t2;
    next = t2.next;
  }
  const resultText = trimSpace(text.slice(next));
  if (resultText === "") msg.warn(`${where}, line ${line}: no result text: using an empty string`);
  const result = parseResult(resultText);
  if (typeof result === "string") return result;
  if (result.maxSub > 0 && !t1.match) return "$number in the result of a negated pattern";
  if (result.maxSub > 0 && (flags & DictFlag.NO_REGSUB) !== 0)
    return "$number substitution is not allowed here";
  const first = compilePat(d, t1);
  if (typeof first === "string") return first;
  if (result.maxSub > first.re.groupCount()) return `reference "$${result.maxSub}" out of range`;
  let second: Pat | null = null;
  if (t2 !== null) {
    const p2 = compilePat(d, t2);
    if (typeof p2 === "string") return p2;
    second = p2;
  }
  return { op: "match", first, second, parts: result.parts, maxSub: result.maxSub, line };
}

/** Parses one logical line; an error string means "skip this rule". */
function parseRule(
  d: Dialect,
  ll: LogicalLine,
  nesting: number,
  flags: number,
  where: string,
): Rule | string {
  const text = trimSpace(ll.text);
  if (!/^[A-Za-z0-9]/.test(text)) return parseMatch(d, text, ll.line, flags, where);
  if (/^if(?![A-Za-z0-9])/i.test(text)) {
    const t = takePattern(d, text, 2);
    if (typeof t === "string") return t;
    if (trimSpace(text.slice(t.next)) !== "") {
      msg.warn(`${where}, line ${ll.line}: ignoring text after "if" pattern (do not indent rules inside if)`);
    }
    const pat = compilePat(d, t);
    return typeof pat === "string" ? pat : { op: "if", pat, end: -1, line: ll.line };
  }
  if (/^endif(?![A-Za-z0-9])/i.test(text)) {
    if (nesting === 0) return "endif without if";
    if (trimSpace(text.slice(5)) !== "") msg.warn(`${where}, line ${ll.line}: ignoring text after "endif"`);
    return { op: "endif", line: ll.line };
  }
  return "unrecognized rule";
}

/** Parses the logical lines of a table into rules, warning about the lines it skips. */
function parseRules(d: Dialect, lines: Iterable<LogicalLine>, where: string, flags: number): Rule[] {
  const rules: Rule[] = [];
  const open: number[] = [];
  for (const ll of lines) {
    const r = parseRule(d, ll, open.length, flags, where);
    if (typeof r === "string") {
      msg.warn(`${where}, line ${ll.line}: ${r}: skipping this rule`);
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

/** Builds the result of a match rule from the groups of the match. */
function expand(rule: { parts: Part[] }, group: (n: number) => string | null): string {
  let out = "";
  for (const p of rule.parts) out += typeof p === "string" ? p : (group(p) ?? "");
  return out;
}

/** Finds the result of the first rule that applies to the key. */
function regexpFind(rules: Rule[], key: string): DictResult {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    if (r === undefined) break;
    if (r.op === "match") {
      const m = r.first.re.matcher(key);
      if (m.find() !== r.first.match) continue;
      if (r.second !== null && r.second.re.test(key) !== r.second.match) continue;
      return found(r.maxSub === 0 ? expand(r, () => null) : expand(r, (n) => m.group(n)));
    }
    if (r.op === "if") {
      if (r.pat.re.test(key) === r.pat.match) continue;
      if (r.end < 0) return NOT_FOUND;
      i = r.end;
    }
  }
  return NOT_FOUND;
}

/** Opens a table of the dialect. */
function open(d: Dialect, name: string, flags: number): DictImpl {
  const all = flags | DictFlag.PATTERN;
  return rulesTableOpen(
    d.type,
    name,
    all,
    (lines, where) => parseRules(d, lines, where, all),
    (rules, key) => regexpFind(rules, foldKey(key, all, "pattern")),
  );
}

/** Opens a regexp: table. */
export function regexpOpen(name: string, flags: number): DictImpl {
  return open(REGEXP, name, flags);
}

/** Opens a pcre: table. */
export function pcreOpen(name: string, flags: number): DictImpl {
  return open(PCRE, name, flags);
}
