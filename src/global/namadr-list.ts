/*
 * namadr-list - lists of client names and addresses (mynetworks and friends)
 *
 * SYNOPSIS
 *   const nets = new NamadrList("mynetworks", cfg.list("mynetworks"), { parentStyle: true });
 *   const r = await nets.match("mail.example.com", "192.0.2.1");   // match | nomatch | tempfail
 *
 * DESCRIPTION
 *   Elements, tried in order, the first match deciding ("!element" turns a
 *   match into no match): an address ("192.0.2.1", "[2001:db8::1]"), a
 *   network in CIDR form ("192.0.2.0/24", "[2001:db8::]/32"), a host or
 *   domain name (with parentStyle "example.com" also matches its
 *   subdomains; ".example.com" always does), or a type:table searched by
 *   name (with parents) and then by address (octet by octet), as Postfix's
 *   namadr_list does. A table that fails makes the match a temporary
 *   failure. IPv4-mapped IPv6 client addresses match IPv4 elements.
 */
import { parseIpAddr } from "./dict-ipaddr.js";
import { clientFind, mapsLookup } from "./dict-search.js";
import { DictFlag, type Dict } from "./dict-types.js";
import { dictOpen } from "./dict-registry.js";
import { isTableSpec, type MatchResult } from "./resolve-match.js";

type Element =
  | { negate: boolean; kind: "net"; bytes: Uint8Array; bits: number }
  | { negate: boolean; kind: "name"; name: string }
  | { negate: boolean; kind: "table"; table: Dict };

/** Parses "addr", "[addr]", "net/len" or "[net]/len"; null when the text is not an address form. */
export function parseNet(text: string): { bytes: Uint8Array; bits: number } | null {
  const m = /^\[?([0-9A-Fa-f:.]+)\]?(?:\/(\d{1,3}))?$/.exec(text);
  if (m === null) return null;
  const bytes = parseIpAddr(m[1] ?? "");
  if (bytes === null) return null;
  const bits = m[2] === undefined ? bytes.length * 8 : Number(m[2]);
  return bits <= bytes.length * 8 ? { bytes, bits } : null;
}

/** True when an address lies inside a network. */
export function inNet(addr: Uint8Array, net: Uint8Array, bits: number): boolean {
  if (addr.length !== net.length) return false;
  for (let i = 0; i < bits; i += 8) {
    const left = Math.min(8, bits - i);
    const mask = (0xff << (8 - left)) & 0xff;
    if (((addr[i / 8] ?? 0) & mask) !== ((net[i / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/** The address bytes of a client, IPv4-mapped IPv6 turned into IPv4. */
export function clientBytes(addr: string): Uint8Array | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return parseIpAddr(mapped ? (mapped[1] ?? "") : addr);
}

export class NamadrList {
  readonly name: string;
  #elements: Element[] = [];
  #parentStyle: boolean;

  constructor(
    name: string,
    patterns: readonly string[],
    opts: { parentStyle: boolean; open?: (spec: string, flags: number) => Dict },
  ) {
    this.name = name;
    this.#parentStyle = opts.parentStyle;
    const open = opts.open ?? ((spec, flags) => dictOpen(spec, { flags }));
    for (let p of patterns) {
      let negate = false;
      while (p.startsWith("!")) {
        negate = !negate;
        p = p.slice(1);
      }
      const net = parseNet(p);
      if (net !== null) this.#elements.push({ negate, kind: "net", ...net });
      else if (isTableSpec(p))
        this.#elements.push({ negate, kind: "table", table: open(p, DictFlag.FOLD_FIX) });
      else this.#elements.push({ negate, kind: "name", name: p.toLowerCase() });
    }
  }

  /** True when the list has no elements. */
  get empty(): boolean {
    return this.#elements.length === 0;
  }

  /** Matches a client by name and address. */
  async match(hostname: string, addr: string): Promise<MatchResult> {
    const bytes = clientBytes(addr);
    const host = hostname.toLowerCase();
    for (const e of this.#elements) {
      let hit: boolean;
      if (e.kind === "net") hit = bytes !== null && inNet(bytes, e.bytes, e.bits);
      else if (e.kind === "name") hit = this.#nameMatch(host, e.name);
      else {
        const r = await clientFind(mapsLookup([e.table]), host, addr, {
          parentMatchesSubdomains: this.#parentStyle,
        });
        if (r.status === "tempfail") return { status: "tempfail", reason: r.reason };
        hit = r.status === "found";
      }
      if (hit) return { status: e.negate ? "nomatch" : "match" };
    }
    return { status: "nomatch" };
  }

  /** Name matching: exact, ".domain" for subdomains, or parent style. */
  #nameMatch(host: string, pattern: string): boolean {
    if (host === "" || host === "unknown") return false;
    if (pattern.startsWith(".")) return host.endsWith(pattern);
    return host === pattern || (this.#parentStyle && host.endsWith(`.${pattern}`));
  }
}
