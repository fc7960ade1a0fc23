/*
 * postscreen-dnsbl - DNS block and allow list scoring
 *
 * DESCRIPTION
 *   postscreen_dnsbl_sites lists domain[=filter][*weight] entries, e.g.
 *   "zen.spamhaus.org*3, bl.example=127.0.0.[2..11], list.dnswl.org=127.0.[0..255].[1..3]*-5".
 *   For a client, postscreen queries every distinct domain once, all at
 *   the same time; each entry whose domain lists the client (an A record
 *   that matches the entry's filter, if any) adds its weight (default 1;
 *   negative for allow lists) to the client's score. A filter is an IPv4
 *   pattern whose octets are numbers or [a..b;c] sets. The reply names
 *   the listed block list with the greatest weight, through
 *   postscreen_dnsbl_reply_map when that has the domain.
 *   Answers that come after the deadline do not count.
 */
import type { DnsLookup } from "../global/dns-lookup.js";
import { ipv6Nibbles } from "../global/dns-lookup.js";
import { filterMatch, octetPatterns } from "../global/dnsbl-filter.js";

export { filterMatch };

export interface DnsblSite {
  domain: string;
  filter: string | null;
  weight: number;
}

/** Parses postscreen_dnsbl_sites; a malformed entry is an error naming it. */
export function parseDnsblSites(items: readonly string[]): DnsblSite[] {
  return items.map((item) => {
    const m = /^([^=*]+)(?:=([^*]+))?(?:\*(-?\d+))?$/.exec(item);
    if (m === null) throw new Error(`postscreen_dnsbl_sites: bad entry "${item}"`);
    const domain = (m[1] ?? "").toLowerCase().replace(/\.$/, "");
    const filter = m[2] ?? null;
    if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(domain))
      throw new Error(`postscreen_dnsbl_sites: bad domain name in "${item}"`);
    if (filter !== null && !validFilter(filter))
      throw new Error(`postscreen_dnsbl_sites: bad address filter in "${item}"`);
    return { domain, filter, weight: m[3] !== undefined ? Number(m[3]) : 1 };
  });
}

/** Whether a filter is four octet patterns of numbers, ranges and sets. */
function validFilter(filter: string): boolean {
  const parts = octetPatterns(filter);
  return parts.length === 4 && parts.join(".") === filter && parts.every(validOctet);
}

/** Whether one octet pattern is a number or a [..] set of numbers and ranges. */
function validOctet(p: string): boolean {
  const m = /^\[(.*)\]$/.exec(p);
  if (m === null) return /^\d{1,3}$/.test(p) && Number(p) <= 255;
  return (m[1] ?? "").split(";").every((alt) => /^\d{1,3}(\.\.\d{1,3})?$/.test(alt));
}

/** The query prefix of a client address: reversed octets or nibbles; null for other text. */
export function dnsblPrefix(addr: string): string | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (v4 !== null) return v4.slice(1, 5).reverse().join(".");
  const v6 = ipv6Nibbles(addr);
  return v6 === null ? null : v6.join(".");
}

export interface DnsblScore {
  score: number;
  /** The listed block list with the greatest weight (for the reply), or "". */
  name: string;
  /** Some listing with a positive weight was seen. */
  listed: boolean;
}

/**
 * Scores a client against the sites. The returned object is filled in as
 * answers arrive (so a caller that stops waiting reads a partial score);
 * `done` settles when every query has answered or timed out.
 */
export function dnsblScore(
  dns: DnsLookup,
  sites: readonly DnsblSite[],
  addr: string,
): { result: DnsblScore; done: Promise<void> } {
  const result: DnsblScore = { score: 0, name: "", listed: false };
  const prefix = dnsblPrefix(addr);
  if (prefix === null || sites.length === 0) return { result, done: Promise.resolve() };
  const domains = [...new Set(sites.map((s) => s.domain))];
  let best = -Infinity;
  const one = async (domain: string): Promise<void> => {
    const r = await dns.query(`${prefix}.${domain}`, "A");
    if (r.status !== "found") return;
    for (const s of sites) {
      if (s.domain !== domain) continue;
      if (s.filter !== null && !r.values.some((v) => filterMatch(s.filter as string, v))) continue;
      result.score += s.weight;
      if (s.weight > 0) result.listed = true;
      if (s.weight > best) {
        best = s.weight;
        result.name = s.domain;
      }
    }
  };
  return { result, done: Promise.all(domains.map(one)).then(() => undefined) };
}
