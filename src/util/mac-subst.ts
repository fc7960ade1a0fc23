/*
 * mac-subst - one-level $name substitution for delivery-time attributes
 *
 * SYNOPSIS
 *   import { macSubst } from "../util/mac-subst.js";
 *   const r = macSubst("$home/.forward${recipient_delimiter}${extension}", lookup, { filter });
 *   if (r.ok && !r.undefinedUsed) use(r.value);
 *
 * DESCRIPTION
 *   The forms of mac-expand.ts ($name, ${name}, $(name), $$, ${name?text},
 *   ${name:text}, ${name?{t1}:{t2}}) without recursion: a substituted value
 *   is inserted as it is, so an address that contains "$" stays intact (the
 *   pipe(8) argv and the local(8) forward_path, mailbox_command and
 *   luser_relay need this). A name used bare whose value is undefined sets
 *   undefinedUsed (Postfix's MAC_PARSE_UNDEF): the caller decides whether
 *   that disqualifies the result. `used` lists the names whose values were
 *   inserted. With filter, every character of a substituted value that is
 *   not in the filter becomes "_" (the *_expansion_filter parameters);
 *   unknown names may be refused with `known`. The parser is mac-expand's.
 */
import { macExpand, type MacLookup } from "./mac-expand.js";

export type SubstLookup = MacLookup;

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

/** Substitutes $name forms in text, one level deep. */
export function macSubst(text: string, lookup: SubstLookup, opts: SubstOptions = {}): SubstResult {
  const r = macExpand(text, lookup, { ...opts, recurse: false, maxOutput: opts.maxOutput ?? 65536 });
  return r.ok ? { ok: true, value: r.value, undefinedUsed: r.undefinedUsed, used: r.used } : r;
}
