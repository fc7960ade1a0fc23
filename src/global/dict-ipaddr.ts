/*
 * dict-ipaddr - numeric IP addresses as tables see them
 *
 * SYNOPSIS
 *   import { parseIpv4, parseIpv6, parseIpAddr, formatIp } from "./dict-ipaddr.js";
 *
 * DESCRIPTION
 *   The parsers accept what inet_pton(3) accepts, as Postfix's cidr tables
 *   do: IPv4 is exactly four decimal octets without leading zeros; IPv6 is
 *   up to eight groups of one to four hex digits, one "::" standing for one
 *   or more zero groups, and optionally a dotted IPv4 address in the last
 *   32 bits. No brackets, no zone ("%eth0"), no prefix. parseIpAddr picks
 *   the family by the presence of a colon. Each returns the address bytes
 *   (4 or 16), or null.
 */

/** Parses a dotted-quad IPv4 address into 4 bytes. */
export function parseIpv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? "";
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** Parses the groups on one side of "::" into 16-bit words; null when malformed. */
function ipv6Words(side: string, last: boolean): number[] | null {
  if (side === "") return [];
  const groups = side.split(":");
  const words: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] ?? "";
    if (last && i === groups.length - 1 && g.includes(".")) {
      const v4 = parseIpv4(g);
      if (v4 === null) return null;
      words.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    words.push(parseInt(g, 16));
  }
  return words;
}

/** Parses an IPv6 address into 16 bytes. */
export function parseIpv6(s: string): Uint8Array | null {
  const halves = s.split("::");
  if (halves.length > 2) return null;
  let words: number[];
  if (halves.length === 2) {
    const head = ipv6Words(halves[0] ?? "", false);
    const tail = ipv6Words(halves[1] ?? "", true);
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = ipv6Words(s, true);
    if (all === null || all.length !== 8) return null;
    words = all;
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Parses an IPv4 or (when it has a colon) IPv6 address. */
export function parseIpAddr(s: string): Uint8Array | null {
  return s.includes(":") ? parseIpv6(s) : parseIpv4(s);
}

/** Formats address bytes (4 or 16) in the usual text form, with "::" for the longest zero run. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}
