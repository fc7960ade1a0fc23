/*
 * mac-subst - one-level $name substitution for delivery-time attributes
 *
 * SYNOPSIS
 *   import { macSubst } from "../util/mac-subst.js";
 *   const r = macSubst("$home/.forward${recipient_delimiter}${extension}", lookup, { filter });
 *   if (r.ok && !r.undefinedUsed) use(r.value);
 *
 * DESCRIPTION
 *   Expands the forms Postfix's mac_expand() accepts at delivery time,
 *   without recursion: a substituted value is inserted as it is, so an
 *   address that contains "$" stays intact (the pipe(8) argv and the
 *   local(8) forward_path, mailbox_command and luser_relay need this).
 *     $name ${name} $(name)           the value
 *     $$                              a literal "$"
 *     ${name?text} ${name?{text}}     text when the value is defined and non-empty
 *     ${name:text} ${name:{text}}     text when the value is undefined or empty
 *     ${name?{t1}:{t2}}               t1 when defined and non-empty, else t2
 *   The lookup answers undefined for a name that has no value. A name used
 *   bare whose value is undefined sets undefinedUsed (Postfix's
 *   MAC_PARSE_UNDEF): the caller decides whether that disqualifies the
 *   result (forward_path skips such an entry). `used` lists the names whose
 *   values were inserted (not those only tested by ? or :).
 *
 *   With filter, every character of a substituted value that is not in
 *   the filter becomes "_" (the *_expansion_filter parameters); literal
 *   text is never filtered. Unknown names may be refused with `known`.
 *   The work is linear in the input and the output is capped.
 */

export type SubstLookup = (name: string) => string | undefined;

export interface SubstOptions {
  /** Characters allowed in substituted values; others become "_". */
  filter?: string;
  /** When given, a name not in this set is a syntax error. */
  known?: ReadonlySet<string>;
  /** Output cap (default 64 KiB). */
  maxOutput?: number;
}

export type SubstResult =
  { ok: true; value: string; undefinedUsed: boolean; used: Set<string> } | { ok: false; error: string };

class SubstError extends Error {}

interface Ctx {
  lookup: SubstLookup;
  opts: SubstOptions;
  allowed: Set<string> | null;
  undefinedUsed: boolean;
  used: Set<string>;
  max: number;
}

const NAME = /^[A-Za-z0-9_]+$/;

/** Substitutes $name forms in text, one level deep. */
export function macSubst(text: string, lookup: SubstLookup, opts: SubstOptions = {}): SubstResult {
  const ctx: Ctx = {
    lookup,
    opts,
    allowed: opts.filter === undefined ? null : new Set(opts.filter),
    undefinedUsed: false,
    used: new Set(),
    max: opts.maxOutput ?? 65536,
  };
  try {
    const value = substText(text, ctx);
    return { ok: true, value, undefinedUsed: ctx.undefinedUsed, used: ctx.used };
  } catch (err) {
    if (err instanceof SubstError) return { ok: false, error: err.message };
    throw err;
  }
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
  throw new SubstError(`unbalanced "${o ?? ""}" in "${s}"`);
}

/** Replaces characters outside the filter with "_". */
function filtered(value: string, ctx: Ctx): string {
  const allowed = ctx.allowed;
  if (allowed === null) return value;
  let out = "";
  for (const ch of value) out += allowed.has(ch) ? ch : "_";
  return out;
}

/** Looks a name up, checking it against the known names. */
function look(name: string, ctx: Ctx): string | undefined {
  if (!NAME.test(name)) throw new SubstError(`bad macro name "${name}"`);
  if (ctx.opts.known !== undefined && !ctx.opts.known.has(name))
    throw new SubstError(`unknown macro name: "${name}"`);
  return ctx.lookup(name);
}

/** Inserts a value used bare. */
function use(name: string, ctx: Ctx): string {
  const v = look(name, ctx);
  if (v === undefined) {
    ctx.undefinedUsed = true;
    return "";
  }
  ctx.used.add(name);
  return filtered(v, ctx);
}

/** Expands every $ form in a text. */
function substText(s: string, ctx: Ctx): string {
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
      out += substExpr(s.slice(d + 2, end - 1), ctx);
      i = end;
    } else {
      const m = /^[A-Za-z0-9_]+/.exec(s.slice(d + 1));
      if (m === null) throw new SubstError(`empty macro name in "${s}"`);
      out += use(m[0], ctx);
      i = d + 1 + m[0].length;
    }
    if (out.length > ctx.max) throw new SubstError("expansion result is too long");
  }
  return out;
}

/** Takes "{text}" or bare text; returns the inner text. */
function unbrace(t: string): string {
  const s = t.trim();
  if (!s.startsWith("{")) return t;
  const end = matchClose(s, 0);
  if (s.slice(end).trim() !== "") throw new SubstError(`text after "}" in "${t}"`);
  return s.slice(1, end - 1);
}

/** Expands the inside of ${...}. */
function substExpr(inner: string, ctx: Ctx): string {
  const m = /^([A-Za-z0-9_]*)(.*)$/s.exec(inner);
  const name = m?.[1] ?? "";
  const rest = m?.[2] ?? "";
  if (rest === "") return use(name, ctx);
  const op = rest[0];
  if (op !== "?" && op !== ":") throw new SubstError(`unknown operator in "\${${inner}}"`);
  const v = look(name, ctx);
  const set = v !== undefined && v !== "";
  let t1 = rest.slice(1);
  let t2: string | undefined;
  const lead = t1.trimStart();
  if (op === "?" && lead.startsWith("{")) {
    const end = matchClose(lead, 0);
    const after = lead.slice(end).trimStart();
    if (after.startsWith(":")) {
      t1 = lead.slice(0, end);
      t2 = after.slice(1);
    }
  }
  const pick = op === "?" ? (set ? t1 : t2) : set ? undefined : t1;
  return pick === undefined ? "" : substText(unbrace(pick), ctx);
}
