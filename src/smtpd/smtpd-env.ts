/*
 * smtpd-env - what every smtpd session shares: settings, lists, clients
 *
 * DESCRIPTION
 *   Built once per process from the configuration: the parameters the
 *   protocol reads (with their stress forms already expanded by the
 *   skeleton), mynetworks as a name/address list (computed from
 *   mynetworks_style when empty), the trivial-rewrite client with its cache,
 *   and the DNS resolver (postern_dns_servers) that every lookup of the
 *   session uses, including the client's name (peerName: /etc/hosts, then
 *   PTR, as getnameinfo() finds it; then a forward check, again /etc/hosts
 *   before DNS; each failure recorded as temporary or permanent, and a
 *   name that does not resolve back logged as Postfix does), and
 *   the anvil client with the per-client limits (smtpd-anvil.ts).
 */
import { networkInterfaces } from "node:os";
import type { Config } from "../global/config.js";
import { AnvilClient } from "../global/anvil-client.js";
import { msg } from "../util/msg.js";
import { DnsLookup, ipv6Nibbles, reverseName, type DnsResult } from "../global/dns-lookup.js";
import { HostsFile } from "../global/hosts-file.js";
import { NamadrList } from "../global/namadr-list.js";
import { RewriteClient } from "../global/rewrite-client.js";
import { validHostname } from "../global/resolve-host.js";
import { smtpdTls, type SmtpdTls } from "./smtpd-tls.js";
import { smtpdSasl, type SmtpdSasl } from "./smtpd-sasl.js";

export interface SmtpdEnv {
  cfg: Config;
  myhostname: string;
  mailName: string;
  banner: string;
  timeoutMs: number;
  lineLimit: number;
  sizeLimit: number;
  hardErrors: number;
  softErrors: number;
  errorSleepMs: number;
  junkLimit: number;
  rcptLimit: number;
  forbidBareLf: "no" | "yes" | "normalize";
  forbidPipelining: boolean;
  delayReject: boolean;
  heloRequired: boolean;
  vrfyDisabled: boolean;
  discardEhlo: Set<string>;
  forbiddenCommands: Set<string>;
  mynetworks: NamadrList;
  bareLfExclusions: NamadrList;
  rewrite: RewriteClient;
  peernameLookup: boolean;
  dns: DnsLookup;
  anvil: AnvilClient;
  service: string;
  hoggers: NamadrList;
  limits: { count: number; rate: number; messages: number; recipients: number };
  xclientHosts: NamadrList;
  xforwardHosts: NamadrList;
  proxyProtocol: string;
  proxyTimeoutMs: number;
  tls: SmtpdTls;
  sasl: SmtpdSasl;
}

/** The system's /etc/hosts, shared by the sessions of a process. */
const SYSTEM_HOSTS = new HostsFile();

/** What a name lookup found: "ok", a permanent failure, or a temporary one. */
export type PeerCode = "ok" | "perm" | "temp";

export interface PeerNames {
  /** The verified name (forward check passed), else "unknown". */
  name: string;
  nameCode: PeerCode;
  /** The PTR name, whether or not it maps back, else "unknown". */
  reverseName: string;
  reverseCode: PeerCode;
}

/** mynetworks computed from mynetworks_style: this host's addresses, or its subnets. */
export function computedMynetworks(style: string): string[] {
  const out = new Set<string>(["127.0.0.0/8", "[::1]/128"]);
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (style === "host") out.add(a.family === "IPv6" ? `[${a.address}]/128` : `${a.address}/32`);
      else if (a.cidr !== null)
        out.add(
          a.family === "IPv6" ? `[${a.cidr.replace(/\/.*/, "")}]/${a.cidr.replace(/.*\//, "")}` : a.cidr,
        );
    }
  }
  return [...out];
}

/** Builds the shared state of a process. */
export function smtpdEnv(cfg: Config): SmtpdEnv {
  const nets = cfg.list("mynetworks");
  const pdms = cfg.list("parent_domain_matches_subdomains").includes("mynetworks");
  const mynetworks = new NamadrList(
    "mynetworks",
    nets.length > 0 ? nets : computedMynetworks(cfg.get("mynetworks_style")),
    { parentStyle: pdms },
  );
  const bare = cfg.get("smtpd_forbid_bare_newline").toLowerCase();
  return {
    cfg,
    myhostname: cfg.get("myhostname"),
    mailName: cfg.get("mail_name"),
    banner: cfg.get("smtpd_banner"),
    timeoutMs: cfg.time("smtpd_timeout") * 1000,
    lineLimit: cfg.int("line_length_limit"),
    sizeLimit: cfg.int("message_size_limit"),
    hardErrors: cfg.int("smtpd_hard_error_limit"),
    softErrors: cfg.int("smtpd_soft_error_limit"),
    errorSleepMs: cfg.time("smtpd_error_sleep_time") * 1000,
    junkLimit: cfg.int("smtpd_junk_command_limit"),
    rcptLimit: cfg.int("smtpd_recipient_limit"),
    forbidBareLf: bare === "yes" ? "yes" : bare === "no" ? "no" : "normalize",
    forbidPipelining: cfg.bool("smtpd_forbid_unauth_pipelining"),
    delayReject: cfg.bool("smtpd_delay_reject"),
    heloRequired: cfg.bool("smtpd_helo_required"),
    vrfyDisabled: cfg.bool("disable_vrfy_command"),
    discardEhlo: new Set(cfg.list("smtpd_discard_ehlo_keywords").map((k) => k.toUpperCase())),
    forbiddenCommands: new Set(cfg.list("smtpd_forbidden_commands").map((k) => k.toUpperCase())),
    mynetworks,
    bareLfExclusions: new NamadrList(
      "smtpd_forbid_bare_newline_exclusions",
      cfg.list("smtpd_forbid_bare_newline_exclusions"),
      { parentStyle: pdms },
    ),
    rewrite: RewriteClient.fromConfig(cfg),
    peernameLookup: cfg.bool("smtpd_peername_lookup"),
    dns: DnsLookup.fromConfig(cfg),
    anvil: AnvilClient.fromConfig(cfg),
    service: cfg.get("service_name") || "smtpd",
    hoggers: new NamadrList(
      "smtpd_client_event_limit_exceptions",
      cfg.list("smtpd_client_event_limit_exceptions"),
      { parentStyle: pdms },
    ),
    xclientHosts: new NamadrList(
      "smtpd_authorized_xclient_hosts",
      cfg.list("smtpd_authorized_xclient_hosts"),
      { parentStyle: pdms },
    ),
    xforwardHosts: new NamadrList(
      "smtpd_authorized_xforward_hosts",
      cfg.list("smtpd_authorized_xforward_hosts"),
      { parentStyle: pdms },
    ),
    proxyProtocol: cfg.get("smtpd_upstream_proxy_protocol").trim().toLowerCase(),
    proxyTimeoutMs: cfg.time("smtpd_upstream_proxy_timeout") * 1000,
    tls: smtpdTls(cfg),
    sasl: smtpdSasl(cfg),
    limits: {
      count: cfg.int("smtpd_client_connection_count_limit"),
      rate: cfg.int("smtpd_client_connection_rate_limit"),
      messages: cfg.int("smtpd_client_message_rate_limit"),
      recipients: cfg.int("smtpd_client_recipient_rate_limit"),
    },
  };
}

/** The client's names as Postfix finds them: the PTR name, then a forward check of it. */
export async function peerName(
  dns: DnsLookup,
  addr: string,
  enabled: boolean,
  hosts: HostsFile = SYSTEM_HOSTS,
): Promise<PeerNames> {
  const none: PeerNames = { name: "unknown", nameCode: "perm", reverseName: "unknown", reverseCode: "perm" };
  const plain = addr.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
  const rev = reverseName(plain);
  if (!enabled || rev === null) return none;
  let host = (await hosts.nameOf(plain))?.toLowerCase() ?? "";
  if (host === "") {
    const ptr = await dns.query(rev, "PTR");
    if (ptr.status === "tempfail") return { ...none, nameCode: "temp", reverseCode: "temp" };
    host = ptr.status === "found" ? (ptr.values[0] ?? "").toLowerCase() : "";
  }
  if (host === "" || !validHostname(host, false)) return none;
  const listed = await hosts.addressesOf(host);
  const fwd: DnsResult = listed.length > 0 ? { status: "found", values: listed } : await dns.addresses(host);
  const named = { ...none, reverseName: host, reverseCode: "ok" as const };
  if (fwd.status === "tempfail") {
    msg.warn(`hostname ${host} does not resolve to address ${plain}: ${fwd.reason}`);
    return { ...named, nameCode: "temp" };
  }
  if (fwd.status === "found" && fwd.values.some((a) => sameAddr(a, plain)))
    return { ...named, name: host, nameCode: "ok" };
  msg.warn(`hostname ${host} does not resolve to address ${plain}`);
  return named;
}

/** Compares two textual addresses (IPv6 in any spelling). */
function sameAddr(a: string, b: string): boolean {
  if (a === b) return true;
  const na = ipv6Nibbles(a);
  return na !== null && na.join("") === (ipv6Nibbles(b) ?? []).join("");
}
