/*
 * dict-re-pcre - Perl-style expressions (pcre: tables) for a linear-time engine
 *
 * SYNOPSIS
 *   import { pcreToRe2 } from "./dict-re-pcre.js";
 *   const r = pcreToRe2("^(\\w+)@example\\.com$", { extended: false, dollarEndOnly: false, multiline: false });
 *
 * DESCRIPTION
 *   RE2 syntax is nearly PCRE syntax. This module rewrites the differences
 *   and refuses what a linear-time engine cannot do:
 *
 *   - with the "x" flag, unescaped whitespace and "#" comments outside
 *     classes are removed (RE2 has no extended mode);
 *   - "$" keeps PCRE's meaning (end, or before a final newline) unless the
 *     "E" or "m" flag is on; "\Z" likewise; "\e" is ESC, "\cX" a control
 *     character, "(?'name'...)" a named group, "(?#...)" a comment;
 *   - refused, with a reason: back-references (\1, \g, \k, (?P=name)),
 *     lookahead and lookbehind, atomic groups, possessive quantifiers,
 *     recursion, conditionals, branch reset, backtracking verbs, \G.
 *   Anything else RE2 does not know is reported by RE2 itself.
 *
 *   Differences that remain: RE2 works on characters, PCRE in Postfix on
 *   bytes, so "." matches a whole non-ASCII character.
 */
import { re2Literal, type Translation } from "./dict-re-posix.js";

/** The flags that change how a pattern is rewritten. */
export interface PcreOptions {
  extended: boolean;
  dollarEndOnly: boolean;
  multiline: boolean;
}

const UNSUPPORTED_GROUP: [RegExp, string][] = [
  [/^\(\?(=|!)/, "lookahead"],
  [/^\(\?<(=|!)/, "lookbehind"],
  [/^\(\?>/, "atomic groups"],
  [/^\(\?\(/, "conditional groups"],
  [/^\(\?\|/, "branch reset groups"],
  [/^\(\?(R|[+-]?[0-9]|&|P>)/, "recursion"],
  [/^\(\?P=/, "back-references"],
  [/^\(\*/, "backtracking verbs"],
];

/** Copies a character class starting at p[i] ("["); returns it and the index after it. */
function pcreClass(p: string, i: number): { text: string; next: number } | { error: string } {
  let j = i + 1;
  if (p[j] === "^") j++;
  if (p[j] === "]") j++;
  while (j < p.length) {
    const c = p[j];
    if (c === "\\") j += 2;
    else if (c === "[" && p[j + 1] === ":") {
      const end = p.indexOf(":]", j + 2);
      j = end < 0 ? j + 1 : end + 2;
    } else if (c === "]") return { text: p.slice(i, j + 1), next: j + 1 };
    else j++;
  }
  return { error: 'missing "]" at the end of a character class' };
}

/** Translates the escape at p[i] ("\"); returns the RE2 text and the index after it. */
function pcreEscape(p: string, i: number): { text: string; next: number } | { error: string } {
  const d = p[i + 1];
  if (d === undefined) return { error: "trailing backslash" };
  if (/[1-9]/.test(d) || d === "g" || d === "k") {
    return { error: `back-reference "\\${d}" is not supported (linear-time matching)` };
  }
  if (d === "G") return { error: '"\\G" is not supported' };
  if (d === "Z") return { text: "(?:\\n?\\z)", next: i + 2 };
  if (d === "e") return { text: "\\x1B", next: i + 2 };
  if (d === "c") {
    const x = p[i + 2];
    if (x === undefined) return { error: '"\\c" at end of pattern' };
    const code = (x.toUpperCase().charCodeAt(0) ^ 0x40) & 0x7f;
    return { text: `\\x{${code.toString(16)}}`, next: i + 3 };
  }
  if (d === "Q") {
    const end = p.indexOf("\\E", i + 2);
    const lit = p.slice(i + 2, end < 0 ? p.length : end);
    return { text: [...lit].map(re2Literal).join(""), next: end < 0 ? p.length : end + 2 };
  }
  if (d === "E") return { text: "", next: i + 2 };
  return { text: `\\${d}`, next: i + 2 };
}

/** Whether the text just emitted ends with a quantifier that "+" would make possessive. */
function endsWithQuantifier(out: string): boolean {
  return /(^|[^\\])(\\\\)*[*+?]$/.test(out) || /\{[0-9]+(,[0-9]*)?\}$/.test(out);
}

/** Rewrites a PCRE pattern in RE2 syntax. */
export function pcreToRe2(p: string, o: PcreOptions): Translation {
  let out = "";
  let i = 0;
  while (i < p.length) {
    const c = p[i] ?? "";
    if (o.extended && /[ \t\n\r\v\f]/.test(c)) {
      i++;
    } else if (o.extended && c === "#") {
      const nl = p.indexOf("\n", i);
      i = nl < 0 ? p.length : nl + 1;
    } else if (c === "\\") {
      const e = pcreEscape(p, i);
      if ("error" in e) return e;
      out += e.text;
      i = e.next;
    } else if (c === "[") {
      const k = pcreClass(p, i);
      if ("error" in k) return k;
      out += k.text;
      i = k.next;
    } else if (c === "(") {
      const rest = p.slice(i, i + 6);
      for (const [re, what] of UNSUPPORTED_GROUP) {
        if (re.test(rest)) return { error: `${what} not supported (linear-time matching)` };
      }
      if (rest.startsWith("(?#")) {
        const end = p.indexOf(")", i);
        i = end < 0 ? p.length : end + 1;
      } else if (rest.startsWith("(?'")) {
        const end = p.indexOf("'", i + 3);
        if (end < 0) return { error: "unterminated group name" };
        out += `(?P<${p.slice(i + 3, end)}>`;
        i = end + 1;
      } else {
        out += "(";
        i++;
      }
    } else if (c === "+" && endsWithQuantifier(out)) {
      return { error: "possessive quantifiers not supported (linear-time matching)" };
    } else if (c === "$" && !o.multiline && !o.dollarEndOnly) {
      out += "(?:\\n?\\z)";
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return { source: out };
}
