/*
 * resolve-local - is a domain this host? (mydestination and our own addresses)
 *
 * SYNOPSIS
 *   import { LocalDomains, interfaceAddresses } from "./resolve-local.js";
 *   const own = await interfaceAddresses(cfg, { interfaces, lookupHost });
 *   const local = new LocalDomains(mydestinationList, own);
 *   const r = await local.check("[192.0.2.1]");  // { status: "local" | "remote" | "tempfail" }
 *
 * DESCRIPTION
 *   A domain is local (Postfix's resolve_local) when, after one trailing
 *   dot is removed, it matches $mydestination, or when it is an address
 *   literal ("[1.2.3.4]", "[IPv6:::1]") of one of this host's addresses:
 *   those in $inet_interfaces and $proxy_interfaces.
 *
 *   interfaceAddresses() computes that set once. inet_interfaces "all"
 *   means every address of every network interface (the interfaces
 *   function, os.networkInterfaces by default), "loopback-only" means
 *   127.0.0.1 and ::1; both follow inet_protocols. Other elements are
 *   addresses (optionally in brackets) or host names, which are looked up
 *   with lookupHost (DNS, injected for tests). A host name that does not
 *   resolve is logged and left out.
 */
import { lookup } from "node:dns/promises";
import { networkInterfaces } from "node:os";
import { msg } from "../util/msg.js";
import type { Config } from "./config.js";
import { formatIp, parseIpv6 } from "./dict-ipaddr.js";
import { mailhostAddr, validIpv4, validIpv6 } from "./resolve-host.js";
import type { MatchList } from "./resolve-match.js";

/** The answer of a local-domain check. */
export type LocalCheck = { status: "local" } | { status: "remote" } | { status: "tempfail"; reason: string };

/** How interfaceAddresses finds addresses. */
export interface AddressSources {
  /** The addresses of the host's interfaces (inet_interfaces = all). */
  interfaces?: () => string[];
  /** Resolves a host name in inet_interfaces or proxy_interfaces to addresses. */
  lookupHost?: (name: string) => Promise<string[]>;
}

/** The canonical text of an IPv4 or IPv6 address, or null. */
export function canonicalAddr(addr: string): string | null {
  if (validIpv4(addr)) return addr.split(".").map(Number).join(".");
  const v6 = validIpv6(addr) ? parseIpv6(addr) : null;
  return v6 === null ? null : formatIp(v6);
}

/** Every address of the host's network interfaces. */
function hostInterfaces(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/** Resolves a host name with the system resolver. */
async function systemLookup(name: string): Promise<string[]> {
  return (await lookup(name, { all: true })).map((a) => a.address);
}

/** Adds the addresses of one inet_interfaces or proxy_interfaces element. */
async function addElement(out: Set<string>, item: string, src: Required<AddressSources>): Promise<void> {
  const bare = item.startsWith("[") && item.endsWith("]") ? item.slice(1, -1) : item;
  const direct = canonicalAddr(bare);
  if (direct !== null) return void out.add(direct);
  try {
    for (const a of await src.lookupHost(bare)) {
      const c = canonicalAddr(a);
      if (c !== null) out.add(c);
    }
  } catch (err) {
    msg.warn(`host name "${bare}" has no address: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** This host's own addresses: $inet_interfaces and $proxy_interfaces. */
export async function interfaceAddresses(cfg: Config, sources: AddressSources = {}): Promise<Set<string>> {
  const src: Required<AddressSources> = {
    interfaces: sources.interfaces ?? hostInterfaces,
    lookupHost: sources.lookupHost ?? systemLookup,
  };
  const protocols = cfg.list("inet_protocols").map((p) => p.toLowerCase());
  const v4 = protocols.includes("all") || protocols.includes("ipv4");
  const v6 = protocols.includes("all") || protocols.includes("ipv6");
  const family = (a: string): boolean => (a.includes(":") ? v6 : v4);
  const out = new Set<string>();
  for (const item of cfg.list("inet_interfaces")) {
    const lower = item.toLowerCase();
    const fixed =
      lower === "all" ? src.interfaces() : lower === "loopback-only" ? ["127.0.0.1", "::1"] : null;
    if (fixed === null) await addElement(out, item, src);
    for (const a of (fixed ?? []).filter(family)) {
      const c = canonicalAddr(a.replace(/%.*$/, ""));
      if (c !== null) out.add(c);
    }
  }
  for (const item of cfg.list("proxy_interfaces")) await addElement(out, item, src);
  return out;
}

/** Decides whether a domain is this host. */
export class LocalDomains {
  #mydestination: MatchList;
  #own: ReadonlySet<string>;

  /** Uses the compiled $mydestination and the set from interfaceAddresses(). */
  constructor(mydestination: MatchList, own: ReadonlySet<string>) {
    this.#mydestination = mydestination;
    this.#own = own;
  }

  /** Checks a domain (resolve_local). */
  async check(domain: string): Promise<LocalCheck> {
    let d = domain;
    if (d.endsWith(".")) d = d.slice(0, -1);
    if (d === "" || d.endsWith(".")) return { status: "remote" };
    const m = await this.#mydestination.match(d);
    if (m.status === "tempfail") return m;
    if (m.status === "match") return { status: "local" };
    if (d.startsWith("[") && d.endsWith("]")) {
      const bare = mailhostAddr(d.slice(1, -1));
      const c = bare === null ? null : canonicalAddr(bare);
      if (c !== null && this.#own.has(c)) return { status: "local" };
    }
    return { status: "remote" };
  }
}
