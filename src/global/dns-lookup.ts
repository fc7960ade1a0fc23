/*
 * dns-lookup - DNS queries through the configured resolver
 *
 * SYNOPSIS
 *   const dns = DnsLookup.fromConfig(cfg);
 *   const r = await dns.query("example.com", "MX");
 *   if (r.status === "found") for (const v of r.values) ...
 *
 * DESCRIPTION
 *   Every DNS lookup a daemon makes goes through one DnsLookup, built from
 *   postern_dns_servers (empty: the servers in /etc/resolv.conf) and
 *   postern_dns_timeout (per attempt; two attempts). Results are typed:
 *   "found" with the answer as strings, "notfound" for NXDOMAIN and for a
 *   name without records of that type (nxdomain tells the two apart), and
 *   "tempfail" for everything else: timeouts, SERVFAIL, REFUSED, a server
 *   that cannot be reached. A temporary failure is never reported as "not
 *   found". /etc/hosts is never consulted (unlike getaddrinfo).
 *
 *   Answers are strings: A/AAAA an address, MX "preference exchange" (the
 *   exchange without the trailing dot; "" for a null MX), NS and PTR a
 *   host name, TXT the record's strings joined.
 */
import { Resolver } from "node:dns/promises";
import type { Config } from "./config.js";

export type RrType = "A" | "AAAA" | "MX" | "NS" | "PTR" | "TXT";

export type DnsResult =
  | { status: "found"; values: string[] }
  | { status: "notfound"; nxdomain: boolean }
  | { status: "tempfail"; reason: string };

export interface MxHost {
  preference: number;
  exchange: string;
}

const TRIES = 2;
const MAX_ANSWERS = 100;

/** The reverse-lookup name of an IPv4 or IPv6 address (null for anything else). */
export function reverseName(addr: string): string | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (v4 !== null) return `${v4.slice(1, 5).reverse().join(".")}.in-addr.arpa`;
  const nibbles = ipv6Nibbles(addr);
  return nibbles === null ? null : `${nibbles.join(".")}.ip6.arpa`;
}

/** The 32 nibbles of an IPv6 address, least significant first (null when not IPv6). */
export function ipv6Nibbles(addr: string): string[] | null {
  if (!addr.includes(":") || !/^[0-9a-fA-F:.]+$/.test(addr)) return null;
  const halves = addr.split("::");
  if (halves.length > 2) return null;
  const words = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const head = words(halves[0] ?? "");
  const tail = words(halves[1] ?? "");
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return null;
  const all = [...head, ...Array<string>(missing).fill("0"), ...tail];
  if (all.some((w) => !/^[0-9a-fA-F]{1,4}$/.test(w))) return null;
  return all
    .map((w) => w.padStart(4, "0").toLowerCase())
    .join("")
    .split("")
    .reverse();
}

export class DnsLookup {
  #resolver: Resolver;

  constructor(servers: readonly string[], timeoutMs: number) {
    this.#resolver = new Resolver({ timeout: timeoutMs, tries: TRIES });
    if (servers.length > 0) this.#resolver.setServers(servers.map(serverSpec));
  }

  /** The lookup that postern_dns_servers and postern_dns_timeout describe. */
  static fromConfig(cfg: Config): DnsLookup {
    return new DnsLookup(cfg.list("postern_dns_servers"), cfg.time("postern_dns_timeout") * 1000);
  }

  /** Queries one name for one record type. */
  async query(name: string, type: RrType): Promise<DnsResult> {
    const qname = name.replace(/\.$/, "");
    if (qname === "" || qname.length > 253) return { status: "notfound", nxdomain: true };
    try {
      const values = await this.#ask(qname, type);
      if (values.length === 0) return { status: "notfound", nxdomain: false };
      return { status: "found", values: values.slice(0, MAX_ANSWERS) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      if (code === "ENOTFOUND") return { status: "notfound", nxdomain: true };
      if (code === "ENODATA") return { status: "notfound", nxdomain: false };
      return { status: "tempfail", reason: `${qname}/${type}: ${code || (err as Error).message}` };
    }
  }

  /** The MX hosts of a domain, best first. */
  async mx(
    domain: string,
  ): Promise<{ status: "found"; hosts: MxHost[] } | Exclude<DnsResult, { status: "found" }>> {
    const r = await this.query(domain, "MX");
    if (r.status !== "found") return r;
    const hosts = r.values.map((v) => {
      const [pref = "0", exchange = ""] = v.split(" ");
      return { preference: Number(pref), exchange };
    });
    return { status: "found", hosts: hosts.sort((a, b) => a.preference - b.preference) };
  }

  /** The IPv4 and IPv6 addresses of a host (found when either type has one). */
  async addresses(host: string): Promise<DnsResult> {
    const [a, aaaa] = await Promise.all([this.query(host, "A"), this.query(host, "AAAA")]);
    const values = [
      ...(a.status === "found" ? a.values : []),
      ...(aaaa.status === "found" ? aaaa.values : []),
    ];
    if (values.length > 0) return { status: "found", values };
    if (a.status === "tempfail") return a;
    if (aaaa.status === "tempfail") return aaaa;
    return { status: "notfound", nxdomain: a.status === "notfound" && a.nxdomain };
  }

  /** Runs the resolver call for a type and turns its answer into strings. */
  async #ask(name: string, type: RrType): Promise<string[]> {
    const r = this.#resolver;
    switch (type) {
      case "A":
        return r.resolve4(name);
      case "AAAA":
        return r.resolve6(name);
      case "MX":
        return (await r.resolveMx(name)).map((m) => `${m.priority} ${m.exchange.replace(/\.$/, "")}`);
      case "NS":
        return r.resolveNs(name);
      case "PTR":
        return (await r.resolvePtr(name)).map((p) => p.replace(/\.$/, ""));
      case "TXT":
        return (await r.resolveTxt(name)).map((chunks) => chunks.join(""));
    }
  }
}

/** "host", "host:port" or "[v6]:port" as node:dns wants it. */
function serverSpec(s: string): string {
  const v6 = /^\[?([0-9a-fA-F:]+)\]?$/.exec(s);
  if (v6 !== null && s.includes("::")) return v6[1] ?? s;
  return s;
}
