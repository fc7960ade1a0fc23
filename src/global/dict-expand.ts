/*
 * dict-expand - %-templates, the domain filter and result lists of the server tables
 *
 * SYNOPSIS
 *   import { DbTemplates, DomainFilter, ResultList } from "./dict-expand.js";
 *   const t = new DbTemplates("pgsql:/etc/postfix/x.cf");
 *   t.parse(query, "query"); t.parse(resultFormat, "result");
 *   const q = t.expand(query, key, null, quoteFn);      // null: skip the lookup
 *   const r = new ResultList(expansionLimit);
 *   r.add(t.expand(resultFormat, value, key, null));
 *
 * DESCRIPTION
 *   The query of an SQL table, the filter and base of an LDAP table, the
 *   key of a memcache table and every table's result_format are templates
 *   with these expansions (lower case: of the value being expanded, the key
 *   in a query, the result in result_format; upper case and digits: always
 *   of the lookup key):
 *     %%       a literal "%"
 *     %s %S    the whole string
 *     %u %U    the local part of user@domain, else the whole string; a
 *              string with an empty local part is skipped
 *     %d %D    the domain part of user@domain; a string without "@" or with
 *              an empty domain is skipped
 *     %1..%9   the domain's labels from the right (%1 is the top-level
 *              domain); a domain with too few labels, or an empty one
 *              among those used, is skipped
 *   Which parts a template needs is learned by parse(), and applies to
 *   every template of the table, as in Postfix: when the key lacks a part
 *   that some template uses, the lookup is not made ("not found").
 *   Values expanded into a query go through the table's quoting function.
 *
 *   DomainFilter implements the "domain" parameter: a list of domain
 *   names, "/file/name" (more names, one list per file) and "type:table"
 *   lookup tables, with "!" to exclude. Only keys of the form user@domain
 *   with a non-empty local part and a listed domain are looked up.
 *
 *   ResultList joins results with commas, enforces expansion_limit (too
 *   many results is a temporary failure) and a total size limit.
 *
 * DIAGNOSTICS
 *   parse() throws on an unknown "%" sequence. An empty key or result is
 *   skipped with a warning, as in Postfix.
 */
import { readFileSync } from "node:fs";
import { msg } from "../util/msg.js";
import { dictOpen } from "./dict-registry.js";
import { asciiLower, type Dict } from "./dict-types.js";
import { cfList } from "./dict-cf.js";

/** The largest joined result of a server table lookup, in characters. */
export const DICT_RESULT_MAX = 1024 * 1024;

const KEY_DOMAIN = 1 << 0;
const KEY_USER = 1 << 1;
const VALUE_DOMAIN = 1 << 2;
const VALUE_USER = 1 << 3;

/** A quoting function for values expanded into a query. */
export type QuoteFn = (value: string) => string;

/** The parts of user@domain: null domain when there is no "@". */
function splitAddress(s: string): { user: string; domain: string | null } {
  const at = s.lastIndexOf("@");
  if (at < 0) return { user: s, domain: null };
  return { user: s.slice(0, at), domain: s.slice(at + 1) };
}

/** The %-templates of one table and what they need from keys and results. */
export class DbTemplates {
  readonly table: string;
  #flags = 0;
  #nparts = 0;

  /** `table` ("type:name") is used in messages. */
  constructor(table: string) {
    this.table = table;
  }

  /** Checks a template and records what it needs; returns whether it has expansions. */
  parse(format: string, kind: "query" | "result"): boolean {
    let dynamic = false;
    const query = kind === "query";
    for (let i = 0; i < format.length; i++) {
      if (format[i] !== "%") continue;
      const c = format[++i];
      if (c === "%") continue;
      dynamic = true;
      if (c === "s" || c === "S") continue;
      if (c === "u") this.#flags |= query ? KEY_USER : VALUE_USER;
      else if (c === "d") this.#flags |= query ? KEY_DOMAIN : VALUE_DOMAIN;
      else if (c === "U") this.#flags |= KEY_USER;
      else if (c === "D") this.#flags |= KEY_DOMAIN;
      else if (c !== undefined && c >= "1" && c <= "9") {
        this.#nparts = Math.max(this.#nparts, Number(c));
        this.#flags |= KEY_DOMAIN;
      } else {
        throw new Error(`${this.table}: invalid ${kind} template: "${format}"`);
      }
    }
    return dynamic;
  }

  /** Whether a string has what the flags ask of it (a domain, a non-empty local part). */
  #fits(s: string, wantDomain: number, wantUser: number): boolean {
    if ((this.#flags & (wantDomain | wantUser)) === 0) return true;
    const at = s.lastIndexOf("@");
    if ((this.#flags & wantDomain) !== 0 && (at < 0 || at === s.length - 1)) return false;
    if ((this.#flags & wantUser) !== 0 && at === 0) return false;
    return true;
  }

  /** The labels %1..%n of the key's domain, or null when they cannot all be filled in. */
  #labels(key: string): string[] | null {
    if (this.#nparts === 0) return [];
    const domain = splitAddress(key).domain;
    if (domain === null) return null;
    const parts = domain.split(".");
    if (parts.length < this.#nparts) return null;
    const out: string[] = [];
    for (let i = 1; i <= this.#nparts; i++) {
      const label = parts[parts.length - i] ?? "";
      if (label === "") return null;
      out.push(label);
    }
    return out;
  }

  /**
   * Expands a template. In a query `value` is the key and `key` is null; in
   * result_format `value` is a result and `key` the lookup key. Returns null
   * when the key or value lacks a part the templates use (skip).
   */
  expand(format: string, value: string, key: string | null, quote: QuoteFn | null): string | null {
    const lookupKey = key ?? value;
    if (value === "") {
      if (key !== null) msg.warn(`table "${this.table}": empty lookup result for: "${key}" -- ignored`);
      else msg.warn(`table "${this.table}": empty query string -- ignored`);
      return null;
    }
    if (key !== null && !this.#fits(value, VALUE_DOMAIN, VALUE_USER)) return null;
    if (!this.#fits(lookupKey, KEY_DOMAIN, KEY_USER)) return null;
    const labels = this.#labels(lookupKey);
    if (labels === null) return null;
    const q = quote ?? ((s: string) => s);
    const v = splitAddress(value);
    const k = splitAddress(lookupKey);
    let out = "";
    for (let i = 0; i < format.length; i++) {
      const ch = format[i] ?? "";
      if (ch !== "%") {
        out += ch;
        continue;
      }
      const c = format[++i] ?? "";
      if (c === "%") out += "%";
      else if (c === "s") out += q(value);
      else if (c === "u") out += q(v.user);
      else if (c === "d") out += q(v.domain ?? "");
      else if (c === "S") out += q(lookupKey);
      else if (c === "U") out += q(k.user);
      else if (c === "D") out += q(k.domain ?? "");
      else if (c >= "1" && c <= "9") out += q(labels[Number(c) - 1] ?? "");
      else throw new Error(`${this.table}: invalid template: "${format}"`);
    }
    return out;
  }
}

/** The outcome of the domain check: look up, skip (not found), or fail temporarily. */
export type DomainVerdict = { ok: true; match: boolean } | { ok: false; reason: string };

type DomainPattern = { negate: boolean; name: string } | { negate: boolean; table: Dict };

/** The "domain" parameter of a server table. */
export class DomainFilter {
  #patterns: DomainPattern[] = [];

  /** Parses the list; "/file" entries are read now, tables are opened now. */
  constructor(list: string, where: string) {
    this.#addList(list, where, 0);
  }

  /** Adds the patterns of a list (files may nest a little). */
  #addList(list: string, where: string, depth: number): void {
    for (let item of cfList(list)) {
      let negate = false;
      while (item.startsWith("!")) {
        negate = !negate;
        item = item.slice(1);
      }
      if (item.startsWith("/")) {
        if (depth > 3) throw new Error(`${where}: domain: files nested too deeply: ${item}`);
        const text = readFileSync(item, "utf8");
        const lines = text.split("\n").filter((l) => !l.trimStart().startsWith("#"));
        this.#addList(lines.join(" "), item, depth + 1);
      } else if (/^[A-Za-z0-9_-]+:/.test(item)) {
        this.#patterns.push({ negate, table: dictOpen(item) });
      } else if (item !== "") {
        this.#patterns.push({ negate, name: asciiLower(item) });
      }
    }
  }

  /** Whether the list is empty (no filtering). */
  get empty(): boolean {
    return this.#patterns.length === 0;
  }

  /** Checks the domain of a key against the list. */
  async check(key: string): Promise<DomainVerdict> {
    if (this.#patterns.length === 0) return { ok: true, match: true };
    const at = key.lastIndexOf("@");
    if (at <= 0) return { ok: true, match: false };
    const domain = asciiLower(key.slice(at + 1));
    for (const p of this.#patterns) {
      let hit: boolean;
      if ("name" in p) {
        hit = p.name === domain;
      } else {
        const r = await p.table.lookup(domain);
        if (r.status === "tempfail") return { ok: false, reason: r.reason };
        hit = r.status === "found";
      }
      if (hit) return { ok: true, match: !p.negate };
    }
    return { ok: true, match: false };
  }

  /** Releases the tables of the list. */
  close(): void {
    for (const p of this.#patterns) if ("table" in p) p.table.close();
    this.#patterns = [];
  }
}

/** Results joined with commas, within expansion_limit and DICT_RESULT_MAX. */
export class ResultList {
  #parts: string[] = [];
  #size = 0;
  #limit: number;
  /** Why the list overflowed, or null. */
  overflow: string | null = null;

  /** `limit` is expansion_limit (0: no limit). */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Adds an expanded result (null: skipped); returns false once a limit is exceeded. */
  add(expanded: string | null): boolean {
    if (this.overflow !== null) return false;
    if (expanded === null) return true;
    if (this.#limit > 0 && this.#parts.length >= this.#limit) {
      this.overflow = `expansion limit (${this.#limit}) exceeded`;
      return false;
    }
    this.#size += expanded.length + 1;
    if (this.#size > DICT_RESULT_MAX) {
      this.overflow = `result is larger than ${DICT_RESULT_MAX} bytes`;
      return false;
    }
    this.#parts.push(expanded);
    return true;
  }

  /** How many results were added. */
  get count(): number {
    return this.#parts.length;
  }

  /** The joined result ("" when there is none). */
  text(): string {
    return this.#parts.join(",");
  }
}
