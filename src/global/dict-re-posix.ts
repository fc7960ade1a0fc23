/*
 * dict-re-posix - POSIX regular expressions (regexp: tables) for a linear-time engine
 *
 * SYNOPSIS
 *   import { posixToRe2 } from "./dict-re-posix.js";
 *   const r = posixToRe2("^(.*)@example\\.com$", true);   // { source } or { error }
 *
 * DESCRIPTION
 *   Postfix regexp: tables use the system's POSIX regcomp(3), extended
 *   syntax by default (basic syntax when the "x" flag turns it off). Postern
 *   matches with RE2 (the re2js package), which never backtracks, so a
 *   hostile key cannot make a lookup take exponential time. This module
 *   rewrites a POSIX pattern into the equivalent RE2 syntax:
 *
 *   - bracket expressions keep POSIX rules: "]" first is literal, "\" is
 *     literal, "[:alpha:]" classes, "[=c=]" and "[.c.]" of one character;
 *   - "\" before an ordinary character is that character ("\." "\n" "\d"
 *     are ".", "n", "d"), except the GNU escapes \w \W \s \S \b \B, \`
 *     (start) and \' (end); \< and \> become \b (word boundary);
 *   - intervals "{m}", "{m,}", "{m,n}", "{,n}"; a "{" that starts no
 *     interval is literal;
 *   - in basic syntax: \( \) \{ \} groups and intervals, the GNU operators
 *     \| \+ \?, "*" literal at the start of an expression, "^" and "$"
 *     anchors only at the ends of an expression.
 *
 *   What a linear-time engine cannot do is refused with a reason:
 *   back-references (\1 ... \9). RE2 limits a repeat count to 1000.
 *
 *   Matching semantics that differ: POSIX picks the leftmost-longest match
 *   and RE2 with the longest-match option does the same for the whole match,
 *   but the text captured by each group may differ in rare ambiguous
 *   patterns.
 */

const RE2_SPECIAL = new Set([..."\\.+*?()|[]{}^$"]);
const CLASS_SPECIAL = new Set([..."\\[]^-"]);
const POSIX_CLASSES = new Set([
  "alnum",
  "alpha",
  "blank",
  "cntrl",
  "digit",
  "graph",
  "lower",
  "print",
  "punct",
  "space",
  "upper",
  "xdigit",
]);

/** A translation result. */
export type Translation = { source: string } | { error: string };

/** One character as an RE2 literal outside a class. */
export function re2Literal(ch: string): string {
  return RE2_SPECIAL.has(ch) ? `\\${ch}` : ch;
}

/** One character as an RE2 literal inside a class. */
function classLiteral(ch: string): string {
  return CLASS_SPECIAL.has(ch) ? `\\${ch}` : ch;
}

type ClassItem = { t: "c"; ch: string } | { t: "k"; text: string } | { t: "dash" };

/** Translates the bracket expression at p[i] ("["); returns the RE2 class and the index after it. */
export function posixBracket(p: string, i: number): { text: string; next: number } | { error: string } {
  let j = i + 1;
  let neg = false;
  if (p[j] === "^") {
    neg = true;
    j++;
  }
  const items: ClassItem[] = [];
  let first = true;
  for (;;) {
    const c = p[j];
    if (c === undefined) return { error: 'unmatched "["' };
    if (c === "]" && !first) {
      j++;
      break;
    }
    const kind = p[j + 1];
    if (c === "[" && (kind === ":" || kind === "." || kind === "=")) {
      const end = p.indexOf(`${kind}]`, j + 2);
      if (end < 0) return { error: `unterminated "[${kind}" in a bracket expression` };
      const inner = p.slice(j + 2, end);
      j = end + 2;
      if (kind === ":") {
        if (!POSIX_CLASSES.has(inner)) return { error: `unknown character class "[:${inner}:]"` };
        items.push({ t: "k", text: `[:${inner}:]` });
      } else {
        if ([...inner].length !== 1)
          return { error: `unsupported collating element "[${kind}${inner}${kind}]"` };
        items.push({ t: "c", ch: inner });
      }
    } else if (c === "-" && !first && p[j + 1] !== "]") {
      items.push({ t: "dash" });
      j++;
    } else {
      const cp = String.fromCodePoint(p.codePointAt(j) ?? 0);
      items.push({ t: "c", ch: cp });
      j += cp.length;
    }
    first = false;
  }
  let out = neg ? "[^" : "[";
  for (let k = 0; k < items.length; k++) {
    const a = items[k];
    const dash = items[k + 1];
    const b = items[k + 2];
    if (a?.t === "c" && dash?.t === "dash" && b?.t === "c") {
      if ((a.ch.codePointAt(0) ?? 0) > (b.ch.codePointAt(0) ?? 0)) return { error: "invalid range end" };
      out += `${classLiteral(a.ch)}-${classLiteral(b.ch)}`;
      k += 2;
    } else if (a?.t === "c") out += classLiteral(a.ch);
    else if (a?.t === "k") out += a.text;
    else out += "\\-";
  }
  return { text: out + "]", next: j };
}

/** Translates an interval at p[i] ("{" or the "{" after "\" in basic syntax); null when it is not one. */
function interval(p: string, i: number, basic: boolean): { text: string; next: number } | null {
  const re = basic ? /^\{([0-9]*)(?:(,)([0-9]*))?\\\}/ : /^\{([0-9]*)(?:(,)([0-9]*))?\}/;
  const m = re.exec(p.slice(i));
  if (m === null) return null;
  const lo = m[1] ?? "";
  if (lo === "" && m[2] === undefined) return null;
  const text = `{${lo === "" ? "0" : lo}${m[2] ?? ""}${m[3] ?? ""}}`;
  return { text, next: i + m[0].length };
}

/** Translates an escape "\d" (the character after the backslash) common to both syntaxes. */
function escapeCommon(d: string): Translation {
  if (/[1-9]/.test(d)) return { error: `back-reference "\\${d}" is not supported (linear-time matching)` };
  if ("wWsSbB".includes(d)) return { source: `\\${d}` };
  if (d === "<" || d === ">") return { source: "\\b" };
  if (d === "`") return { source: "\\A" };
  if (d === "'") return { source: "\\z" };
  return { source: re2Literal(d) };
}

/** Rewrites a POSIX extended (or, with extended false, basic) expression in RE2 syntax. */
export function posixToRe2(p: string, extended: boolean): Translation {
  return extended ? translateEre(p) : translateBre(p);
}

/** Extended syntax. */
function translateEre(p: string): Translation {
  let out = "";
  let i = 0;
  while (i < p.length) {
    const c = p[i] ?? "";
    if (c === "\\") {
      const d = p[i + 1];
      if (d === undefined) return { error: "trailing backslash" };
      const t = escapeCommon(d);
      if ("error" in t) return t;
      out += t.source;
      i += 2;
    } else if (c === "[") {
      const b = posixBracket(p, i);
      if ("error" in b) return b;
      out += b.text;
      i = b.next;
    } else if (c === "{") {
      const iv = interval(p, i, false);
      out += iv === null ? "\\{" : iv.text;
      i = iv === null ? i + 1 : iv.next;
    } else if (c === "(" && p[i + 1] === "?") {
      return { error: '"(?" is not POSIX syntax' };
    } else if ("()|*+?.^$".includes(c)) {
      out += c;
      i++;
    } else {
      const cp = String.fromCodePoint(p.codePointAt(i) ?? 0);
      out += re2Literal(cp);
      i += cp.length;
    }
  }
  return { source: out };
}

/** Basic syntax (the "x" flag turned extended syntax off). */
function translateBre(p: string): Translation {
  let out = "";
  let i = 0;
  let atStart = true;
  while (i < p.length) {
    const c = p[i] ?? "";
    const wasStart = atStart;
    atStart = false;
    if (c === "\\") {
      const d = p[i + 1];
      if (d === undefined) return { error: "trailing backslash" };
      i += 2;
      if (d === "(" || d === "|") {
        out += d;
        atStart = true;
      } else if (d === ")" || d === "+" || d === "?") {
        out += d;
      } else if (d === "{") {
        const iv = interval(p, i - 1, true);
        if (iv === null) return { error: 'bad interval after "\\{"' };
        out += iv.text;
        i = iv.next;
      } else {
        const t = escapeCommon(d);
        if ("error" in t) return t;
        out += t.source;
      }
    } else if (c === "[") {
      const b = posixBracket(p, i);
      if ("error" in b) return b;
      out += b.text;
      i = b.next;
    } else if (c === "^" && wasStart) {
      out += "^";
      atStart = true;
      i++;
    } else if (
      c === "$" &&
      (i === p.length - 1 || p.startsWith("\\)", i + 1) || p.startsWith("\\|", i + 1))
    ) {
      out += "$";
      i++;
    } else if (c === "*" && !wasStart) {
      out += "*";
      i++;
    } else if (c === ".") {
      out += ".";
      i++;
    } else {
      const cp = String.fromCodePoint(p.codePointAt(i) ?? 0);
      out += re2Literal(cp);
      i += cp.length;
    }
  }
  return { source: out };
}
