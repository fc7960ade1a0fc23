/*
 * resolve-match - domain lists: mydestination, virtual_*_domains, relay_domains
 *
 * SYNOPSIS
 *   import { MatchList } from "./resolve-match.js";
 *   const relay = new MatchList("relay_domains", cfg.list("relay_domains"),
 *                               { kind: "domain", parentStyle: true, open });
 *   const r = await relay.match("sub.example.com"); // match | nomatch | tempfail
 *
 * DESCRIPTION
 *   A list parameter whose elements are names or tables, as Postfix's
 *   string_list ("string": mydestination, virtual_alias_domains,
 *   virtual_mailbox_domains) and domain_list ("domain": relay_domains)
 *   match them. Elements are tried in order and the first one that matches
 *   decides; "!element" turns a match into "no match" (and "!!" back).
 *   The value and the plain names are compared without regard to case.
 *
 *   A "type:name" element is a table (opened once, with FOLD_FIX): a
 *   string list looks the value up as it is; a domain list looks up the
 *   domain, then its parent domains in tables with fixed-string keys
 *   ("example.com" style when parentStyle, ".example.com" style
 *   otherwise). A plain element of a domain list matches the name itself,
 *   and its subdomains: with parentStyle "example.com" matches
 *   "sub.example.com", otherwise only a ".example.com" element does.
 *
 *   A table that fails makes the whole match a temporary failure, never a
 *   "no match" (Postfix's MATCH_FLAG_RETURN).
 */
import { domainFind, type LookupFn } from "./dict-search.js";
import { DictFlag, type Dict, type DictResult } from "./dict-types.js";

/** The outcome of matching a value against a list. */
export type MatchResult =
  { status: "match" } | { status: "nomatch" } | { status: "tempfail"; reason: string };

/** Opens a table (dictOpen, or a test's). */
export type TableOpener = (spec: string, flags: number) => Dict;

/** How a list matches. */
export interface MatchListOptions {
  /** "string": the value itself (string_list); "domain": also parent domains (domain_list). */
  kind: "string" | "domain";
  /** Whether the parameter is listed in parent_domain_matches_subdomains. */
  parentStyle: boolean;
  open: TableOpener;
}

/** One list element: a table or a name, and whether it is negated. */
type Element = { negate: boolean; table: Dict } | { negate: boolean; name: string };

/** The flags tables in lists are opened with. */
const LIST_TABLE_FLAGS = DictFlag.FOLD_FIX | DictFlag.UTF8_REQUEST;

const MATCH: MatchResult = { status: "match" };
const NOMATCH: MatchResult = { status: "nomatch" };

/** Whether a list element names a table (Postfix's MATCH_DICTIONARY). */
export function isTableSpec(pattern: string): boolean {
  return !pattern.startsWith("[") && pattern.includes(":");
}

/** A compiled list of names and tables. */
export class MatchList {
  readonly name: string;
  #elements: Element[];
  #opts: MatchListOptions;

  /** Compiles the list; tables are opened now (a broken one fails its lookups). */
  constructor(name: string, patterns: readonly string[], opts: MatchListOptions) {
    this.name = name;
    this.#opts = opts;
    this.#elements = patterns.map((p) => {
      let negate = false;
      while (p.startsWith("!")) {
        negate = !negate;
        p = p.slice(1);
      }
      if (isTableSpec(p)) return { negate, table: opts.open(p, LIST_TABLE_FLAGS) };
      return { negate, name: p.toLowerCase() };
    });
  }

  /** True when the list has no elements (the parameter is empty). */
  get empty(): boolean {
    return this.#elements.length === 0;
  }

  /** Matches a value: the first element that matches decides. */
  async match(value: string): Promise<MatchResult> {
    const v = value.toLowerCase();
    for (const e of this.#elements) {
      const r = "table" in e ? await this.#matchTable(e.table, v) : this.#matchName(e.name, v);
      if (r.status === "tempfail") return r;
      if (r.status === "match") return e.negate ? NOMATCH : MATCH;
    }
    return NOMATCH;
  }

  /** Looks a value (and, for domain lists, its parents) up in one table. */
  async #matchTable(table: Dict, v: string): Promise<MatchResult> {
    const lookup: LookupFn = async (key, partial): Promise<DictResult> =>
      partial && (table.flags & DictFlag.FIXED) === 0 ? { status: "notfound" } : table.lookup(key);
    const r =
      this.#opts.kind === "string"
        ? await lookup(v, false)
        : await domainFind(lookup, v, { parentMatchesSubdomains: this.#opts.parentStyle });
    if (r.status === "tempfail")
      return {
        status: "tempfail",
        reason: `${this.name}: ${table.type}:${table.name}: table lookup problem`,
      };
    return r.status === "found" ? MATCH : NOMATCH;
  }

  /** Compares a value with a plain name (and, for domain lists, as a parent domain). */
  #matchName(pattern: string, v: string): MatchResult {
    if (v === pattern) return MATCH;
    if (this.#opts.kind === "string" || v.length <= pattern.length || !v.endsWith(pattern)) return NOMATCH;
    if (this.#opts.parentStyle) return v[v.length - pattern.length - 1] === "." ? MATCH : NOMATCH;
    return pattern.startsWith(".") ? MATCH : NOMATCH;
  }

  /** Releases the tables. */
  close(): void {
    for (const e of this.#elements) if ("table" in e) e.table.close();
  }
}
