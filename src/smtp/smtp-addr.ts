/*
 * smtp-addr - from a next hop to the list of servers to try
 *
 * SYNOPSIS
 *   const hop = parseNexthop(req.nexthop, mode, defaultPort, queueDir);
 *   const r = await serverList(hop, settings, dns);   // servers in the order to try
 *
 * DESCRIPTION
 *   Next hops, as Postfix's smtp(8) and lmtp(8) take them:
 *     domain            MX lookup (smtp only), A/AAAA when there is no MX
 *     [host] [host]:port  no MX lookup; host may be an address ([ipv6:...])
 *     host:port         MX lookup for host (smtp), port instead of the default
 *     inet:host:port    the same with a protocol prefix (lmtp's form)
 *     unix:path         a Unix socket (lmtp only); a relative path is under
 *                       queue_directory (lmtp:unix:private/dovecot-lmtp);
 *                       logged as myhostname[path]
 *   MX hosts are sorted by preference, equal preferences shuffled, and
 *   their addresses filtered by inet_protocols and ordered by
 *   smtp_address_preference; at most smtp_mx_address_limit addresses are
 *   kept. A null MX (RFC 7505) is a permanent failure (5.1.0). When
 *   smtp_tcp_port is 25, an MX host that is this machine (an address in
 *   inet_interfaces or proxy_interfaces) cuts the list at its preference:
 *   with nothing left the mail "loops back to myself" (5.4.6).
 *   smtp_host_lookup chooses DNS, the system resolver (native: getaddrinfo,
 *   /etc/hosts) or both, for the address lookups.
 */
import { lookup as nativeLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { isAbsolute, join } from "node:path";
import type { DnsLookup, MxHost } from "../global/dns-lookup.js";

export type Nexthop =
  { kind: "unix"; path: string; given: string } | { kind: "inet"; host: string; port: number; mx: boolean };

export interface Server {
  /** Host name for logs ("mx1.example.net"), or the socket path. */
  host: string;
  /** Address to connect to; "" for a Unix socket. */
  addr: string;
  port: number;
  path?: string;
  pref: number;
  /** The next hop it was found for (request next hop or fallback relay), for SASL password lookups. */
  dest?: string;
}

export interface AddrSettings {
  lmtp: boolean;
  hostLookup: { dns: boolean; native: boolean };
  protocols: { v4: boolean; v6: boolean };
  preference: "any" | "ipv4" | "ipv6";
  addressLimit: number;
  deferIfNoMxAddress: boolean;
  /** The name that Unix-domain servers are logged under (myhostname[path], as Postfix does). */
  myHostname: string;
  /** Addresses of this host (inet_interfaces, proxy_interfaces), for loop detection. */
  self: Set<string>;
}

export type ServerListResult =
  { ok: true; servers: Server[] } | { ok: false; status: "deferred" | "bounced"; dsn: string; text: string };

const PORTS: Record<string, number> = { smtp: 25, lmtp: 24, submission: 587, submissions: 465, smtps: 465 };

/** A port number or service name, or null. */
export function parsePort(s: string): number | null {
  if (/^\d{1,5}$/.test(s)) {
    const n = Number(s);
    return n > 0 && n < 65536 ? n : null;
  }
  return PORTS[s.toLowerCase()] ?? null;
}

/** Parses a next hop; a string result says what is wrong. */
export function parseNexthop(
  nexthop: string,
  lmtp: boolean,
  defaultPort: number,
  queueDir: string,
): Nexthop | string {
  let s = nexthop.trim();
  if (s === "") return "empty next-hop destination";
  if (/^unix:/i.test(s)) {
    if (!lmtp) return `unix-domain destination not supported by the SMTP client: ${s}`;
    const p = s.slice(5);
    if (p === "") return "empty unix-domain socket path";
    return { kind: "unix", path: isAbsolute(p) ? p : join(queueDir, p), given: p };
  }
  if (/^inet:/i.test(s)) s = s.slice(5);
  let host: string;
  let portText = "";
  let mx = !lmtp;
  const br = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (br !== null) {
    host = (br[1] ?? "").replace(/^ipv6:/i, "");
    portText = br[2] ?? "";
    mx = false;
  } else {
    const colon = s.lastIndexOf(":");
    if (colon > 0 && isIP(s) !== 6) {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
    } else host = s;
  }
  if (host === "" || /[\s[\]/]/.test(host)) return `bad next-hop destination: ${nexthop}`;
  const port = portText === "" ? defaultPort : parsePort(portText);
  if (port === null) return `bad port in next-hop destination: ${nexthop}`;
  if (isIP(host) !== 0) mx = false;
  return { kind: "inet", host, port, mx };
}

/** Shuffles the runs of equal preference in an MX list sorted by preference. */
export function shuffleEqual<T extends { preference: number }>(list: T[], random = Math.random): T[] {
  const out: T[] = [];
  let i = 0;
  while (i < list.length) {
    let j = i;
    while (j < list.length && list[j]?.preference === list[i]?.preference) j++;
    const run = list.slice(i, j);
    for (let k = run.length - 1; k > 0; k--) {
      const r = Math.floor(random() * (k + 1));
      [run[k], run[r]] = [run[r] as T, run[k] as T];
    }
    out.push(...run);
    i = j;
  }
  return out;
}

type AddrResult = { ok: true; addrs: string[] } | { ok: false; temp: boolean; text: string };

/** The addresses of one host by the configured lookup methods, filtered by inet_protocols. */
async function hostAddrs(host: string, st: AddrSettings, dns: DnsLookup): Promise<AddrResult> {
  if (isIP(host) !== 0) return { ok: true, addrs: [host] };
  let temp = false;
  let text = `Host or domain name not found. Name service error for name=${host} type=A: Host not found`;
  const found: string[] = [];
  if (st.hostLookup.dns) {
    const types = [
      ...(st.protocols.v4 ? (["A"] as const) : []),
      ...(st.protocols.v6 ? (["AAAA"] as const) : []),
    ];
    for (const t of types) {
      const r = await dns.query(host, t);
      if (r.status === "found") found.push(...r.values);
      else if (r.status === "tempfail") {
        temp = true;
        text = `Host or domain name not found. Name service error for name=${host} type=${t}: Host not found, try again`;
      }
    }
  }
  if (found.length === 0 && st.hostLookup.native) {
    try {
      const r = await nativeLookup(host, { all: true });
      found.push(...r.map((a) => a.address));
      temp = false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EAI_AGAIN") temp = true;
    }
  }
  const addrs = found.filter((a) => (isIP(a) === 4 ? st.protocols.v4 : st.protocols.v6));
  if (addrs.length > 0) return { ok: true, addrs: order(addrs, st.preference) };
  return { ok: false, temp, text };
}

/** Orders addresses by the preferred family (stable otherwise). */
function order(addrs: string[], pref: AddrSettings["preference"]): string[] {
  if (pref === "any") return addrs;
  const want = pref === "ipv4" ? 4 : 6;
  return [...addrs.filter((a) => isIP(a) === want), ...addrs.filter((a) => isIP(a) !== want)];
}

/** The servers for a next hop, in the order to try them. */
/** The next hop's own addresses as servers (no MX lookup, or no MX records). */
async function directServers(
  hop: Exclude<Nexthop, { kind: "unix" }>,
  st: AddrSettings,
  dns: DnsLookup,
  loopCheck: boolean,
): Promise<ServerListResult> {
  const a = await hostAddrs(hop.host, st, dns);
  if (!a.ok) return fail(a.temp, a.temp ? "4.4.3" : "5.4.4", a.text);
  if (loopCheck && a.addrs.some((x) => st.self.has(x)))
    return fail(false, "5.4.6", `mail for ${hop.host} loops back to myself`);
  const servers = a.addrs.map((addr) => ({ host: hop.host, addr, port: hop.port, pref: 0 }));
  return { ok: true, servers: limit(servers, st) };
}

export async function serverList(hop: Nexthop, st: AddrSettings, dns: DnsLookup): Promise<ServerListResult> {
  if (hop.kind === "unix")
    return {
      ok: true,
      servers: [{ host: st.myHostname, addr: hop.given, port: 0, path: hop.path, pref: 0 }],
    };
  const loopCheck = !st.lmtp && hop.port === 25;
  if (!hop.mx) {
    return directServers(hop, st, dns, loopCheck);
  }
  const mx = st.hostLookup.dns ? await dns.mx(hop.host) : ({ status: "notfound", nxdomain: false } as const);
  if (mx.status === "tempfail")
    return fail(
      true,
      "4.4.3",
      `Host or domain name not found. Name service error for name=${hop.host} type=MX: Host not found, try again`,
    );
  if (mx.status === "notfound") {
    return directServers(hop, st, dns, loopCheck);
  }
  if (mx.hosts.some((h) => h.exchange === "" && h.preference === 0) && mx.hosts.length === 1)
    return fail(false, "5.1.0", `Domain ${hop.host} does not accept mail (nullMX)`);
  return mxServers(hop, shuffleEqual(mx.hosts.filter((h) => h.exchange !== "")), st, dns, loopCheck);
}

/** Turns MX hosts into servers, with loop detection. */
async function mxServers(
  hop: Extract<Nexthop, { kind: "inet" }>,
  hosts: MxHost[],
  st: AddrSettings,
  dns: DnsLookup,
  loopCheck: boolean,
): Promise<ServerListResult> {
  const servers: Server[] = [];
  let lastErr: Extract<AddrResult, { ok: false }> | null = null;
  let temp = false;
  for (const h of hosts) {
    const a = await hostAddrs(h.exchange, st, dns);
    if (!a.ok) {
      lastErr = a;
      temp ||= a.temp;
      continue;
    }
    for (const addr of a.addrs) servers.push({ host: h.exchange, addr, port: hop.port, pref: h.preference });
  }
  const best = hosts[0]?.preference ?? 0;
  if (servers.length === 0) {
    const soft = temp || st.deferIfNoMxAddress;
    return fail(
      soft,
      soft ? "4.4.4" : "5.4.4",
      lastErr?.text ?? `no MX host for ${hop.host} has a valid address record`,
    );
  }
  if (loopCheck) {
    const self = servers.find((s) => st.self.has(s.addr));
    if (self !== undefined) {
      const kept = servers.filter((s) => s.pref < self.pref);
      if (kept.length === 0)
        return self.pref === best
          ? fail(false, "5.4.6", `mail for ${hop.host} loops back to myself`)
          : fail(true, "4.4.4", `unable to find primary relay for ${hop.host}`);
      return { ok: true, servers: limit(kept, st) };
    }
  }
  return { ok: true, servers: limit(servers, st) };
}

/** Applies smtp_mx_address_limit. */
function limit(servers: Server[], st: AddrSettings): Server[] {
  return st.addressLimit > 0 ? servers.slice(0, st.addressLimit) : servers;
}

/** A failed lookup result. */
function fail(temp: boolean, dsn: string, text: string): ServerListResult {
  return { ok: false, status: temp ? "deferred" : "bounced", dsn, text };
}

/** This host's addresses: inet_interfaces ("all": every interface) and proxy_interfaces. */
export function selfAddresses(inetInterfaces: string[], proxyInterfaces: string[]): Set<string> {
  const out = new Set<string>();
  const all = inetInterfaces.some((i) => i === "all");
  if (all)
    for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address);
  for (const i of [...inetInterfaces, ...proxyInterfaces]) {
    if (i === "all") continue;
    if (i === "loopback-only") {
      out.add("127.0.0.1");
      out.add("::1");
    } else if (isIP(i.replace(/^\[|\]$/g, "")) !== 0) out.add(i.replace(/^\[|\]$/g, ""));
  }
  return out;
}
