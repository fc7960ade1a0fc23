/*
 * resolve-transport - transport_maps, relocated_maps and the sender-dependent maps of the resolver
 *
 * SYNOPSIS
 *   import { TransportMaps, findAddress, relocatedReason, parseTransportEntry } from "./resolve-transport.js";
 *   const tm = new TransportMaps(mapsLookup(dicts, "transport_maps"), { parentStyle: false, addr, now });
 *   const r = await tm.lookup("user@example.com", "example.com", { transport: "smtp", nexthop: "example.com" });
 *
 * DESCRIPTION
 *   findAddress() searches an address with a mail_addr_find strategy
 *   (dict-search.ts), trying the external (quoted) form of the address
 *   first and then, when it differs, the internal form, as Postfix does.
 *
 *   TransportMaps.lookup() is transport(5): the recipient is searched as
 *   user+ext@domain, user@domain, domain, then parent domains (".domain"
 *   style unless parent_domain_matches_subdomains lists transport_maps;
 *   fixed-string tables only), and finally the "*" wildcard (looked up at
 *   most every 30 seconds, and again after a failure). A result is
 *   "transport:nexthop" and changes the current (transport, nexthop):
 *     ":"  or ":nexthop"     keep the transport; a given nexthop replaces
 *                            the current one
 *     "transport" or "transport:"  the transport, with the nexthop reset
 *                            to the recipient domain, or for error and
 *                            retry to "Address is undeliverable"
 *     "transport:nexthop"    both (nexthop forms such as "[host]:port"
 *                            are the transport's business)
 *
 *   relocatedReason() is relocated(5): user@domain, user, @domain (the
 *   extension is ignored). With relocated_prefix_enable the reason is
 *   "5.1.6 User has moved to <result>"; otherwise the result must be
 *   "x.y.z text" (a bad one is logged and becomes "5.2.0 Mailbox is
 *   unavailable").
 *
 *   A table failure is a { status: "tempfail" } result, never "not found".
 */
import { msg } from "../util/msg.js";
import { AddrFind, addrFind, type AddrFindOptions, type LookupFn, type SearchResult } from "./dict-search.js";
import { quote822Local } from "./quote-822-local.js";

/** A transport and its next hop. */
export interface Hop {
  transport: string;
  nexthop: string;
}

/** What a map lookup that changes a hop returns. */
export type HopLookup =
  { status: "found"; hop: Hop } | { status: "notfound" } | { status: "tempfail"; reason: string };

const WILDCARD_TTL_MS = 30_000;

/** Searches an address: external (quoted) form first, then the internal form. */
export async function findAddress(
  lookup: LookupFn,
  address: string,
  opts: AddrFindOptions & { strategy?: number },
): Promise<SearchResult> {
  const external = quote822Local(address);
  const r = await addrFind(lookup, external, opts);
  if (r.status !== "notfound" || external === address) return r;
  return addrFind(lookup, address, opts);
}

/** Applies a table entry's transport and nexthop to the current hop (update_entry). */
export function updateEntry(transport: string, nexthop: string, rcptDomain: string, cur: Hop): Hop {
  if (transport === "") return nexthop === "" ? cur : { transport: cur.transport, nexthop };
  if (nexthop !== "") return { transport, nexthop };
  if (transport === "error" || transport === "retry")
    return { transport, nexthop: "Address is undeliverable" };
  return { transport, nexthop: rcptDomain };
}

/** Splits a "transport:nexthop" entry at the first colon and applies it. */
export function parseTransportEntry(value: string, rcptDomain: string, cur: Hop): Hop {
  const colon = value.indexOf(":");
  if (colon < 0) return updateEntry(value, "", rcptDomain, cur);
  return updateEntry(value.slice(0, colon), value.slice(colon + 1), rcptDomain, cur);
}

/** How transport_maps is searched. */
export interface TransportOptions {
  /** Whether parent_domain_matches_subdomains lists transport_maps. */
  parentStyle: boolean;
  /** recipient_delimiter and friends. */
  addr: AddrFindOptions;
  /** The clock (ms) for the wildcard cache. */
  now: () => number;
}

type Wildcard =
  { status: "found"; value: string } | { status: "notfound" } | { status: "tempfail"; reason: string };

/** transport_maps with the cached "*" entry. */
export class TransportMaps {
  #lookup: LookupFn;
  #opts: TransportOptions;
  #wildcard: Wildcard | null = null;
  #expires = 0;

  /** Searches through lookup (mapsLookup over the tables). */
  constructor(lookup: LookupFn, opts: TransportOptions) {
    this.#lookup = lookup;
    this.#opts = opts;
  }

  /** Looks a recipient up; a found entry changes cur. */
  async lookup(recipient: string, rcptDomain: string, cur: Hop): Promise<HopLookup> {
    const parent = this.#opts.parentStyle ? AddrFind.PDMS : AddrFind.PDDMDS;
    const strategy = AddrFind.FULL | AddrFind.NOEXT | AddrFind.DOMAIN | parent;
    const r = await findAddress(this.#lookup, recipient, { ...this.#opts.addr, strategy });
    if (r.status === "found") return { status: "found", hop: parseTransportEntry(r.value, rcptDomain, cur) };
    if (r.status === "tempfail") return r;
    const w = await this.#wildcardEntry();
    if (w.status !== "found") return w;
    const entry = parseTransportEntry(w.value, "", { transport: "", nexthop: "" });
    return { status: "found", hop: updateEntry(entry.transport, entry.nexthop, rcptDomain, cur) };
  }

  /** The "*" entry, looked up again when it is older than 30 s or failed last time. */
  async #wildcardEntry(): Promise<Wildcard> {
    const now = this.#opts.now();
    if (this.#wildcard === null || this.#wildcard.status === "tempfail" || now > this.#expires) {
      const r = await this.#lookup("*", false);
      this.#wildcard = r.status === "found" ? { status: "found", value: r.value } : r;
      this.#expires = now + WILDCARD_TTL_MS;
    }
    return this.#wildcard;
  }
}

const DSN_RE = /^([245]\.\d{1,3}\.\d{1,3})(?:[ \t]+(.*))?$/s;

/** The error-transport reason for a relocated_maps result. */
function relocatedText(result: string, prefix: boolean): string {
  if (prefix) return `5.1.6 User has moved to ${result}`;
  const m = DSN_RE.exec(result);
  if (m?.[1] !== undefined && (m[2] ?? "") !== "") return `${m[1]} ${m[2] ?? ""}`;
  msg.warn(`relocated_maps result must contain RFC 3463 status and text: '${result.slice(0, 100)}'`);
  return "5.2.0 Mailbox is unavailable";
}

/** Looks a recipient up in relocated_maps; found means the error transport with this reason. */
export async function relocatedReason(
  lookup: LookupFn,
  recipient: string,
  opts: AddrFindOptions & { prefix: boolean },
): Promise<
  { status: "found"; reason: string } | { status: "notfound" } | { status: "tempfail"; reason: string }
> {
  const r = await findAddress(lookup, recipient, { ...opts, strategy: AddrFind.DEFAULT });
  if (r.status !== "found") return r;
  return { status: "found", reason: relocatedText(r.value, opts.prefix) };
}
