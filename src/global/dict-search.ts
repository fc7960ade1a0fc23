/*
 * dict-search - Postfix search orders over lookup tables
 *
 * SYNOPSIS
 *   import { mapsLookup, addrFind, AddrFind, domainFind, addrNetFind, clientFind,
 *            transportFind, accessAddrFind } from "./dict-search.js";
 *   const lookup = mapsLookup([dictOpen("hash:/etc/postfix/virtual"), ...]);
 *   const r = await addrFind(lookup, "user+ext@example.com", { strategy: AddrFind.DEFAULT,
 *                            recipientDelimiter: "+", isLocalDomain: (d) => d === "example.com" });
 *
 * DESCRIPTION
 *   The searches are pure functions over a LookupFn (key, partial) so that
 *   they work with every table type and are easy to test. A partial key is
 *   one derived from the whole key (user@domain without +ext, @domain, a
 *   parent domain, a shorter network): mapsLookup() sends partial keys only
 *   to fixed-string tables, never to regexp, pcre, cidr, fail, randmap or
 *   other pattern tables, which see whole keys only (Postfix's
 *   DICT_FLAG_FIXED / DICT_FLAG_PATTERN). A search stops at the first result
 *   or at the first temporary failure; a temporary failure is never turned
 *   into "not found".
 *
 *   mapsLookup(dicts)  tries the tables in order (maps_find); an empty key
 *     finds nothing; an empty result is a configuration error (tempfail).
 *   addrFind(lookup, address, opts)  mail_addr_find: with strategy bits
 *     FULL         user+ext@domain
 *     NOEXT        user@domain (extension removed, recipient_delimiter)
 *     LOCALPART_IF_LOCAL     user+ext, then user, for a local domain
 *     LOCALPART_AT_IF_LOCAL  user+ext@, then user@, for a local domain
 *     AT_DOMAIN    @domain
 *     DOMAIN       domain; with PDMS also parent domains (sub.example.com,
 *                  example.com, com); with PDDMDS dot-parents
 *                  (sub.example.com, .example.com, .com)
 *     LOCALPART_AT user+ext@, then user@, for any domain
 *     DEFAULT = FULL | NOEXT | LOCALPART_IF_LOCAL | AT_DOMAIN (virtual,
 *     canonical). Postmaster, MAILER-DAEMON and double-bounce keep their
 *     "extension", as do owner-x and x-request when "-" is a delimiter.
 *     Addresses are looked up as given (the external, quoted form that
 *     postmap tables use); isLocalDomain should also accept $myorigin.
 *   domainFind(lookup, name, { parentMatchesSubdomains })  host names as in
 *     check_client_access / check_helo_access: name, then parents
 *     ("example.com" style when parent_domain_matches_subdomains lists the
 *     feature, ".example.com" style otherwise); no parents for a numeric
 *     address.
 *   addrNetFind(lookup, addr)  1.2.3.4, 1.2.3, 1.2, 1; IPv6 by colon
 *     groups (2001:db8::1, 2001:db8:, 2001:db8, 2001).
 *   clientFind(lookup, name, addr, opts)  domainFind, then addrNetFind.
 *   transportFind(lookup, address, opts)  transport(5): user+ext@domain,
 *     user@domain, domain, parent domains, then "*".
 *   accessAddrFind(lookup, address, opts)  access(5) for sender and
 *     recipient addresses: user+ext@domain, user@domain, domain, parent
 *     domains, user+ext@, user@.
 */
import { msg } from "../util/msg.js";
import { parseIpAddr } from "./dict-ipaddr.js";
import { DictFlag, errorText, type Dict, type DictResult } from "./dict-types.js";

/** One table query: the key, and whether it is partial (pattern tables skip partial keys). */
export type LookupFn = (key: string, partial: boolean) => Promise<DictResult>;

/** The outcome of a search: what was found, under which key, and the extension that was removed. */
export type SearchResult =
  | { status: "found"; value: string; key: string; extension?: string }
  | { status: "notfound" }
  | { status: "tempfail"; reason: string };

/** Postfix's mail_addr_find strategy bits. */
export const AddrFind = {
  FULL: 1 << 0,
  NOEXT: 1 << 1,
  LOCALPART_IF_LOCAL: 1 << 2,
  LOCALPART_AT_IF_LOCAL: 1 << 3,
  AT_DOMAIN: 1 << 4,
  DOMAIN: 1 << 5,
  PDMS: 1 << 6,
  PDDMDS: 1 << 7,
  LOCALPART_AT: 1 << 8,
  DEFAULT: (1 << 0) | (1 << 1) | (1 << 2) | (1 << 4),
} as const;

/** Options of the address searches. */
export interface AddrFindOptions {
  /** Characters that start an address extension (recipient_delimiter); "" for none. */
  recipientDelimiter?: string;
  /** Whether a domain is local (mydestination, inet_interfaces, proxy_interfaces, myorigin). */
  isLocalDomain?: (domain: string) => boolean | Promise<boolean>;
  /** owner_request_special (default true). */
  ownerRequestSpecial?: boolean;
  /** double_bounce_sender (default "double-bounce"). */
  doubleBounceSender?: string;
}

/** Searches tables in order, as Postfix's maps_find does. */
export function mapsLookup(dicts: readonly Dict[], title = "table"): LookupFn {
  return async (key, partial) => {
    if (key === "") return { status: "notfound" };
    for (const d of dicts) {
      if (partial && (d.flags & DictFlag.FIXED) === 0) continue;
      const r = await d.lookup(key);
      if (r.status === "found" && r.value === "") {
        msg.warn(`${title}: ${d.type}:${d.name} lookup of "${key}" returns an empty string result`);
        return { status: "tempfail", reason: `${d.type}:${d.name}: empty result for "${key}"` };
      }
      if (r.status === "tempfail") msg.warn(`${title}: ${d.type}:${d.name} lookup error for "${key}"`);
      if (r.status !== "notfound") return r;
    }
    return { status: "notfound" };
  };
}

/** Whether a localpart keeps its delimiters (split_addr exceptions). */
function unsplittable(local: string, delims: string, o: AddrFindOptions): boolean {
  const l = local.toLowerCase();
  if (l === "postmaster" || l === "mailer-daemon") return true;
  if (l === (o.doubleBounceSender ?? "double-bounce").toLowerCase()) return true;
  if (delims.includes("-") && (o.ownerRequestSpecial ?? true)) {
    if (l.startsWith("owner-")) return true;
    if (l.length > 8 && l.endsWith("-request")) return true;
  }
  return false;
}

/** Splits the extension off an address or localpart: { bare, ext } or null (strip_addr). */
export function stripExtension(
  address: string,
  delims: string,
  o: AddrFindOptions = {},
): { bare: string; ext: string } | null {
  if (delims === "" || ![...address].some((c) => delims.includes(c))) return null;
  const at = address.lastIndexOf("@");
  const local = at < 0 ? address : address.slice(0, at);
  if (unsplittable(local, delims, o)) return null;
  let len = 0;
  while (len < local.length && !delims.includes(local[len] ?? "")) len++;
  if (len === 0 || len === local.length) return null;
  return { bare: local.slice(0, len) + (at < 0 ? "" : address.slice(at)), ext: local.slice(len) };
}

/** A found search result, with the key and (optionally) the extension. */
function hit(r: DictResult & { status: "found" }, key: string, ext?: string): SearchResult {
  return ext === undefined
    ? { status: "found", value: r.value, key }
    : { status: "found", value: r.value, key, extension: ext };
}

/** Looks up the localpart forms (user+ext then user, with "@" when withAt). */
async function findLocal(
  lookup: LookupFn,
  full: string,
  stripped: { bare: string; ext: string } | null,
  withAt: boolean,
): Promise<SearchResult | DictResult> {
  const cut = (a: string): string => a.slice(0, a.lastIndexOf("@") + (withAt ? 1 : 0));
  const k1 = cut(full);
  const r1 = await lookup(k1, true);
  if (r1.status === "found") return hit(r1, k1);
  if (r1.status === "tempfail" || stripped === null) return r1;
  const k2 = cut(stripped.bare);
  const r2 = await lookup(k2, true);
  return r2.status === "found" ? hit(r2, k2, stripped.ext) : r2;
}

/** Searches an address with a mail_addr_find strategy (see AddrFind). */
export async function addrFind(
  lookup: LookupFn,
  address: string,
  opts: AddrFindOptions & { strategy?: number } = {},
): Promise<SearchResult> {
  const strategy = opts.strategy ?? AddrFind.DEFAULT;
  const delims = opts.recipientDelimiter ?? "";
  const stripped = (strategy & AddrFind.NOEXT) !== 0 ? stripExtension(address, delims, opts) : null;
  const done = (r: SearchResult | DictResult): r is SearchResult => r.status !== "notfound";
  if ((strategy & AddrFind.FULL) !== 0) {
    const r = await lookup(address, false);
    if (r.status === "found") return hit(r, address);
    if (r.status === "tempfail") return r;
  }
  if (stripped !== null) {
    const r = await lookup(stripped.bare, true);
    if (r.status === "found") return hit(r, stripped.bare, stripped.ext);
    if (r.status === "tempfail") return r;
  }
  const at = address.lastIndexOf("@");
  if (at < 0) return { status: "notfound" };
  const domain = address.slice(at + 1);
  if ((strategy & (AddrFind.LOCALPART_IF_LOCAL | AddrFind.LOCALPART_AT_IF_LOCAL)) !== 0) {
    let local: boolean;
    try {
      local = (await opts.isLocalDomain?.(domain)) ?? false;
    } catch (err) {
      return { status: "tempfail", reason: `local domain check for "${domain}": ${errorText(err)}` };
    }
    if (local && (strategy & AddrFind.LOCALPART_IF_LOCAL) !== 0) {
      const r = await findLocal(lookup, address, stripped, false);
      if (done(r)) return r;
    }
    if (local && (strategy & AddrFind.LOCALPART_AT_IF_LOCAL) !== 0) {
      const r = await findLocal(lookup, address, stripped, true);
      if (done(r)) return r;
    }
  }
  if ((strategy & AddrFind.AT_DOMAIN) !== 0) {
    const key = address.slice(at);
    const r = await lookup(key, true);
    if (r.status === "found") return hit(r, key);
    if (r.status === "tempfail") return r;
  }
  if ((strategy & AddrFind.DOMAIN) !== 0) {
    const r = await parentSearch(lookup, domain, true, strategy);
    if (r.status !== "notfound") return r;
  }
  if ((strategy & AddrFind.LOCALPART_AT) !== 0) {
    const r = await findLocal(lookup, address, stripped, true);
    if (done(r)) return r;
  }
  return { status: "notfound" };
}

/** The domain and (with PDMS or PDDMDS) its parents, as mail_addr_find does. */
async function parentSearch(
  lookup: LookupFn,
  domain: string,
  partial: boolean,
  strategy: number,
): Promise<SearchResult> {
  for (let pos = 0; pos < domain.length;) {
    const key = domain.slice(pos);
    const r = await lookup(key, partial);
    if (r.status === "found") return hit(r, key);
    if (r.status === "tempfail") return r;
    if ((strategy & (AddrFind.PDMS | AddrFind.PDDMDS)) === 0) break;
    const next = domain.indexOf(".", pos + 1);
    if (next < 0) break;
    pos = (strategy & AddrFind.PDDMDS) !== 0 ? next : next + 1;
  }
  return { status: "notfound" };
}

/** Options of the domain-based searches. */
export interface DomainFindOptions {
  /** Whether parent_domain_matches_subdomains lists this feature ("example.com" matches subdomains). */
  parentMatchesSubdomains?: boolean;
  /** Whether even the first lookup is partial (skips pattern tables entirely). */
  partial?: boolean;
}

/** Searches a host name and its parent domains (check_domain_access). */
export async function domainFind(
  lookup: LookupFn,
  name: string,
  opts: DomainFindOptions = {},
): Promise<SearchResult> {
  let partial = opts.partial ?? false;
  let maybeNumeric = true;
  for (let pos = 0; pos < name.length;) {
    const key = name.slice(pos);
    const r = await lookup(key, partial);
    if (r.status === "found") return hit(r, key);
    if (r.status === "tempfail") return r;
    if (maybeNumeric && (maybeNumeric = parseIpAddr(name) !== null)) break;
    const next = name.indexOf(".", pos + 1);
    if (next < 0) break;
    pos = (opts.parentMatchesSubdomains ?? false) ? next + 1 : next;
    partial = true;
  }
  return { status: "notfound" };
}

/** Searches an IP address and its shorter prefixes, by octet or by colon group (check_addr_access). */
export async function addrNetFind(
  lookup: LookupFn,
  addr: string,
  opts: { partial?: boolean } = {},
): Promise<SearchResult> {
  const delim = addr.includes(":") ? ":" : ".";
  let key = addr;
  let partial = opts.partial ?? false;
  for (;;) {
    const r = await lookup(key, partial);
    if (r.status === "found") return hit(r, key);
    if (r.status === "tempfail") return r;
    const cut = key.lastIndexOf(delim);
    if (cut < 0) return { status: "notfound" };
    key = key.slice(0, cut);
    partial = true;
  }
}

/** Searches a client by host name (and parents), then by address (and prefixes) (check_namadr_access). */
export async function clientFind(
  lookup: LookupFn,
  name: string,
  addr: string,
  opts: DomainFindOptions = {},
): Promise<SearchResult> {
  const byName = await domainFind(lookup, name, opts);
  if (byName.status !== "notfound") return byName;
  return addrNetFind(lookup, addr, opts.partial === undefined ? {} : { partial: opts.partial });
}

/** Options of transport and access address searches. */
export type ParentAddrOptions = AddrFindOptions & { parentMatchesSubdomains?: boolean };

/** The parent-domain strategy bit for an option. */
function parentBit(o: ParentAddrOptions): number {
  return (o.parentMatchesSubdomains ?? false) ? AddrFind.PDMS : AddrFind.PDDMDS;
}

/** Searches a recipient in transport tables (transport(5)), ending with the "*" wildcard. */
export async function transportFind(
  lookup: LookupFn,
  address: string,
  opts: ParentAddrOptions = {},
): Promise<SearchResult> {
  const strategy = AddrFind.FULL | AddrFind.NOEXT | AddrFind.DOMAIN | parentBit(opts);
  const r = await addrFind(lookup, address, { ...opts, strategy });
  if (r.status !== "notfound") return r;
  const w = await lookup("*", false);
  return w.status === "found" ? hit(w, "*") : w;
}

/** Searches a sender or recipient address in access tables (access(5)). */
export function accessAddrFind(
  lookup: LookupFn,
  address: string,
  opts: ParentAddrOptions = {},
): Promise<SearchResult> {
  const strategy = AddrFind.FULL | AddrFind.NOEXT | AddrFind.DOMAIN | AddrFind.LOCALPART_AT | parentBit(opts);
  return addrFind(lookup, address, { ...opts, strategy });
}
