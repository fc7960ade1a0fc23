/*
 * dnsbl-filter - the "=127.0.0.[2..4;9]" reply filter of a DNS block list
 *
 * DESCRIPTION
 *   postscreen_dnsbl_sites and smtpd's reject_rbl_client (and friends)
 *   accept a list's reply only when an A record matches the filter: four
 *   octet patterns, each a number or a [..] set of numbers (";") and
 *   ranges (".."). octetPatterns() splits a filter into its octet
 *   patterns; filterMatch() says whether an address matches.
 */

/** The octet patterns of a filter ("127.0.0.[2..4;9]" gives 127, 0, 0, [2..4;9]). */
export function octetPatterns(filter: string): string[] {
  return filter.match(/\[[^\]]*\]|[^.[\]]+/g) ?? [];
}

/** Whether an A record (dotted quad) matches a filter. */
export function filterMatch(filter: string, addr: string): boolean {
  const p = octetPatterns(filter);
  const a = addr.split(".");
  if (p.length !== 4 || a.length !== 4) return false;
  return p.every((part, i) => {
    const octet = Number(a[i]);
    const m = /^\[(.*)\]$/.exec(part);
    if (m === null) return Number(part) === octet;
    return (m[1] ?? "").split(";").some((alt) => {
      const r = /^(\d+)\.\.(\d+)$/.exec(alt);
      return r === null ? Number(alt) === octet : octet >= Number(r[1]) && octet <= Number(r[2]);
    });
  });
}
