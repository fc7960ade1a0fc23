/*
 * mac-expand - $name expansion with Postfix's conditional forms
 *
 * SYNOPSIS
 *   import { macExpand } from "../util/mac-expand.js";
 *   const r = macExpand("${stress?{10}:{300}}s", (name) => table.get(name));
 *
 * DESCRIPTION
 *   Expands, recursively, the forms Postfix accepts in parameter values:
 *     $name ${name} $(name)          the value (empty when undefined)
 *     $$                             a literal "$"
 *     ${name?text} ${name?{text}}    text when the value is non-empty
 *     ${name:text} ${name:{text}}    text when the value is empty or undefined
 *     ${name?{t1}:{t2}} ${name?{t1}:t2}   t1 when non-empty, else t2
 *     ${{a} == {b} ? {t1} : {t2}}    relational: == != < <= >= > (numeric when
 *                                    both sides are all digits, else lexical);
 *                                    with the suffix "level" (<level, >=level, ...)
 *                                    the sides compare as compatibility levels
 *   Names are [A-Za-z0-9_]. The result of a lookup is expanded in turn; a
 *   name that refers back to itself is an error, not an endless loop. The
 *   work is bounded by the length of the input and a depth limit.
 *   Options serve delivery-time substitution (mac-subst.ts): no recursion
 *   (a value is inserted as it is, so an address holding "$" stays intact),
 *   a filter for inserted values, a set of known names, an output cap; the
 *   result says which names were inserted and whether an undefined name was
 *   used bare.
 */

export type MacLookup = (name: string) => string | undefined;

export interface MacOptions {
  /** Expand the values that names stand for in turn (default true; false inserts them as they are). */
  recurse?: boolean;
  /** Characters allowed in inserted values; others become "_" (literal text is never filtered). */
  filter?: string;
  /** When given, a name not in this set is an error. */
  known?: ReadonlySet<string>;
  /** Output cap (default 1 MiB). */
  maxOutput?: number;
}

export type MacResult =
  | {
      ok: true;
      value: string;
      /** Every name looked up without a value. */
      undefinedNames: string[];
      /** A name without a value was used bare (not only tested by ? or :). */
      undefinedUsed: boolean;
      /** The names whose values were inserted. */
      used: Set<string>;
    }
  | { ok: false; error: string };

const NAME_RE = /^[A-Za-z0-9_]+$/;
const MAX_DEPTH = 100;
const MAX_OUTPUT = 1 << 20;

class MacError extends Error {}

interface Ctx {
  lookup: MacLookup;
  stack: string[];
  undef: Set<string>;
  undefinedUsed: boolean;
  used: Set<string>;
  recurse: boolean;
  allowed: Set<string> | null;
  known: ReadonlySet<string> | undefined;
  max: number;
}

/** A fresh expansion context. */
function newCtx(lookup: MacLookup, opts: MacOptions): Ctx {
  return {
    lookup,
    stack: [],
    undef: new Set(),
    undefinedUsed: false,
    used: new Set(),
    recurse: opts.recurse ?? true,
    allowed: opts.filter === undefined ? null : new Set(opts.filter),
    known: opts.known,
    max: opts.maxOutput ?? MAX_OUTPUT,
  };
}

/** Expands text; reports syntax errors and recursion as a failed result. */
export function macExpand(text: string, lookup: MacLookup, opts: MacOptions = {}): MacResult {
  const ctx = newCtx(lookup, opts);
  try {
    const value = expandText(text, ctx);
    return {
      ok: true,
      value,
      undefinedNames: [...ctx.undef],
      undefinedUsed: ctx.undefinedUsed,
      used: ctx.used,
    };
  } catch (err) {
    if (err instanceof MacError) return { ok: false, error: err.message };
    throw err;
  }
}

/** Lists the names that a text refers to (without expanding them). */
export function macReferences(text: string): string[] {
  const names: string[] = [];
  const ctx = newCtx((n) => {
    names.push(n);
    return "";
  }, {});
  try {
    expandText(text, ctx);
  } catch {
    /* a broken value refers to what was seen before the error */
  }
  return names;
}

/** Finds the index just past the bracket that closes the one at `open`. */
function matchClose(s: string, open: number): number {
  const o = s[open];
  const c = o === "{" ? "}" : ")";
  let level = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === o) level++;
    else if (s[i] === c && --level === 0) return i + 1;
  }
  throw new MacError(`truncated macro reference: "${s}"`);
}

/** Expands every $ form in a text. */
function expandText(s: string, ctx: Ctx): string {
  let out = "";
  let i = 0;
  while (i < s.length) {
    const d = s.indexOf("$", i);
    if (d < 0) {
      out += s.slice(i);
      break;
    }
    out += s.slice(i, d);
    const next = s[d + 1];
    if (next === "$") {
      out += "$";
      i = d + 2;
    } else if (next === "{" || next === "(") {
      const end = matchClose(s, d + 1);
      out += expandExpr(s.slice(d + 2, end - 1), ctx);
      i = end;
    } else {
      const m = /^[A-Za-z0-9_]+/.exec(s.slice(d + 1));
      if (m === null) throw new MacError(`empty macro name: "${s}"`);
      out += valueOf(m[0], ctx, true);
      i = d + 1 + m[0].length;
    }
    if (out.length > ctx.max) throw new MacError("expansion result is too long");
  }
  return out;
}

/** Returns the value of a name (expanded in turn unless recursion is off); a bare use is filtered and counted. */
function valueOf(name: string, ctx: Ctx, bare: boolean): string {
  if (ctx.known !== undefined && !ctx.known.has(name)) throw new MacError(`unknown macro name: "${name}"`);
  if (ctx.stack.includes(name) || ctx.stack.length >= MAX_DEPTH) {
    throw new MacError(`recursive expansion of parameter "${name}"`);
  }
  const raw = ctx.lookup(name);
  if (raw === undefined) {
    ctx.undef.add(name);
    if (bare) ctx.undefinedUsed = true;
    return "";
  }
  let value = raw;
  if (ctx.recurse) {
    ctx.stack.push(name);
    try {
      value = expandText(raw, ctx);
    } finally {
      ctx.stack.pop();
    }
  }
  if (!bare) return value;
  ctx.used.add(name);
  return ctx.allowed === null ? value : [...value].map((ch) => (ctx.allowed?.has(ch) ? ch : "_")).join("");
}

/** Takes "{text}" (white space around allowed) or bare text; returns the inner text. */
function unbrace(t: string): string {
  const s = t.trim();
  if (s.startsWith("{")) {
    const end = matchClose(s, 0);
    if (s.slice(end).trim() !== "") throw new MacError(`syntax error after '}' in "${t}"`);
    return s.slice(1, end - 1);
  }
  return t;
}

/** Expands the inside of ${...}. */
function expandExpr(inner: string, ctx: Ctx): string {
  if (inner.trimStart().startsWith("{")) return relational(inner, ctx);
  const m = /^([A-Za-z0-9_]*)(.*)$/s.exec(inner);
  const name = m?.[1] ?? "";
  const rest = m?.[2] ?? "";
  if (!NAME_RE.test(name)) throw new MacError(`empty macro name: "${inner}"`);
  if (rest === "") return valueOf(name, ctx, true);
  const op = rest[0];
  if (op !== "?" && op !== ":") throw new MacError(`unknown operator in "\${${inner}}"`);
  const value = valueOf(name, ctx, false);
  const [t1, t2] = splitAlternatives(rest.slice(1), op === "?");
  const pick = op === "?" ? (value !== "" ? t1 : t2) : value === "" ? t1 : "";
  return pick === undefined ? "" : expandText(unbrace(pick), ctx);
}

/** Splits "{t1}:{t2}" or "{t1}:t2" (only after "?"); otherwise the whole text is t1. */
function splitAlternatives(t: string, allowElse: boolean): [string, string | undefined] {
  const s = t.trimStart();
  if (allowElse && s.startsWith("{")) {
    const end = matchClose(s, 0);
    const after = s.slice(end).trimStart();
    if (after.startsWith(":")) return [s.slice(0, end), after.slice(1)];
  }
  return [t, undefined];
}

/** Evaluates ${{a} op {b} ? {t1} : {t2}}. */
function relational(inner: string, ctx: Ctx): string {
  const s = inner.trim();
  const aEnd = matchClose(s, 0);
  const a = expandText(s.slice(1, aEnd - 1), ctx);
  const rest = s.slice(aEnd).trimStart();
  const opm = /^(==|!=|<=|>=|<|>)(level)?/.exec(rest);
  if (opm === null) throw new MacError(`unknown operator in "\${${inner}}"`);
  const op = opm[1] ?? "";
  const byLevel = opm[2] !== undefined;
  const r2 = rest.slice(opm[0].length).trimStart();
  if (!r2.startsWith("{")) throw new MacError(`"{expression}" expected in "\${${inner}}"`);
  const bEnd = matchClose(r2, 0);
  const b = expandText(r2.slice(1, bEnd - 1), ctx);
  const tail = r2.slice(bEnd).trimStart();
  if (!tail.startsWith("?")) throw new MacError(`"?" expected in "\${${inner}}"`);
  const [t1, t2] = splitAlternatives(tail.slice(1), true);
  const pick = compare(a, op, b, byLevel) ? t1 : t2;
  return pick === undefined ? "" : expandText(unbrace(pick), ctx);
}

/** Compares compatibility levels ("3.6" vs "2") part by part; junk sorts as 0. */
function compareLevel(a: string, b: string): number {
  const pa = a.split(".").map((x) => Number(x) || 0);
  const pb = b.split(".").map((x) => Number(x) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** Compares as levels ("<level"), numerically when both sides are all digits, else lexically. */
function compare(a: string, op: string, b: string, byLevel: boolean): boolean {
  const numeric = /^\d+$/.test(a) && /^\d+$/.test(b);
  const lexical = a < b ? -1 : a > b ? 1 : 0;
  const c = byLevel ? compareLevel(a, b) : numeric ? Math.sign(Number(a) - Number(b)) : lexical;
  switch (op) {
    case "==":
      return c === 0;
    case "!=":
      return c !== 0;
    case "<":
      return c < 0;
    case "<=":
      return c <= 0;
    case ">=":
      return c >= 0;
    default:
      return c > 0;
  }
}
