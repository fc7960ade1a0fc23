/*
 * postscreen-env - postscreen's settings and shared state, built once per process
 *
 * DESCRIPTION
 *   Reads the postscreen_* parameters (a bad value stops the daemon with
 *   a message that names it), opens the access list, the DNSBL reply map
 *   and the cache, and keeps what every session shares: the per-client
 *   connection counts and the number of connections being screened, from
 *   which postscreen derives its own stress state (on above 90% of
 *   postscreen_pre_queue_limit, off again below 70%), as Postfix does.
 *   Settings that depend on ${stress} are read both ways.
 */
import { networkInterfaces } from "node:os";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import { DnsLookup } from "../global/dns-lookup.js";
import { dictOpen, DictFlag, type Dict } from "../global/dict.js";
import { NamadrList } from "../global/namadr-list.js";
import { PsAccessList } from "./postscreen-acl.js";
import { openPsCache, type PsCacheStore } from "./postscreen-cache.js";
import { parseDnsblSites, type DnsblSite } from "./postscreen-dnsbl.js";
import { parseAction, type PsAction } from "./postscreen-misc.js";
import { PsFooter, footerTemplate } from "./postscreen-footer.js";

/** The tests, in the order of the cache entry. */
export const TESTS = ["pregreet", "dnsbl", "pipelining", "non_smtp_command", "bare_newline"] as const;
export const T_PREGR = 0;
export const T_DNSBL = 1;
export const T_PIPEL = 2;
export const T_NSMTP = 3;
export const T_BARLF = 4;

export interface PsEnv {
  cfg: Config;
  myhostname: string;
  smtpdBanner: string;
  passService: string;
  acl: PsAccessList | null;
  denyAction: PsAction;
  greetBanner: string;
  greetWaitMs: { normal: number; stress: number };
  greetAction: PsAction;
  sites: DnsblSite[];
  dns: DnsLookup;
  dnsblThreshold: number;
  allowThreshold: number;
  dnsblAction: PsAction;
  replyMap: Dict | null;
  dnsblTtl: { min: number; max: number };
  cache: PsCacheStore | null;
  /** Seconds a passed test is remembered, by test index (dnsbl: see dnsblTtl). */
  ttl: number[];
  /** Which tests run, by test index. */
  enabled: boolean[];
  pipelAction: PsAction;
  nsmtpAction: PsAction;
  barlfAction: PsAction;
  cmdTimeMs: { normal: number; stress: number };
  cmdCount: number;
  forbidden: Set<string>;
  cconnLimit: number;
  preQueueLimit: number;
  postQueueLimit: number;
  softBounce: boolean;
  retentionS: number;
  cleanupS: number;
  proxyProtocol: string;
  proxyTimeoutMs: number;
  masterStress: boolean;
  /** postscreen_allowlist_interfaces: where a client may earn the temporary allowlist status. */
  allowIf: NamadrList;
  /** postscreen_reject_footer(_maps). */
  footer: PsFooter;
  /** postscreen_command_filter, or null. */
  cmdFilter: Dict | null;
  /** Live counts: connections per client address, and connections being screened. */
  perClient: Map<string, number>;
  screening: number;
  /** Connections handed to smtpd that master said are still waiting for a process. */
  postQueue: number;
  stressed: boolean;
}

/** mynetworks as Postfix computes it from mynetworks_style when it is empty. */
function myNetworks(cfg: Config): string[] {
  const nets = cfg.list("mynetworks");
  if (nets.length > 0) return nets;
  const style = cfg.get("mynetworks_style");
  const out = new Set<string>(["127.0.0.0/8", "[::1]/128"]);
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (style === "host" || a.cidr === null)
        out.add(a.family === "IPv6" ? `[${a.address}]/128` : `${a.address}/32`);
      else
        out.add(
          a.family === "IPv6" ? `[${a.cidr.replace(/\/.*/, "")}]/${a.cidr.replace(/.*\//, "")}` : a.cidr,
        );
    }
  }
  return [...out];
}

/** Builds the shared state; throws with a message naming the bad parameter. */
export function psEnv(cfg: Config): PsEnv {
  const stressed = cfg.withOverrides([["stress", "yes"]], "postscreen stress settings");
  const normal = cfg.withOverrides([["stress", ""]], "postscreen normal settings");
  const pdms = cfg.list("parent_domain_matches_subdomains").includes("mynetworks");
  const mynetworks = new NamadrList("mynetworks", myNetworks(cfg), { parentStyle: pdms });
  const aclItems = cfg.list("postscreen_access_list");
  const reply = cfg.get("postscreen_dnsbl_reply_map").trim();
  const sites = parseDnsblSites(cfg.list("postscreen_dnsbl_sites"));
  const dnsblTimeout = cfg.time("postscreen_dnsbl_timeout") * 1000;
  const ttl = [
    cfg.time("postscreen_greet_ttl"),
    cfg.time("postscreen_dnsbl_max_ttl"),
    cfg.time("postscreen_pipelining_ttl"),
    cfg.time("postscreen_non_smtp_command_ttl"),
    cfg.time("postscreen_bare_newline_ttl"),
  ];
  const cmdFilter = cfg.get("postscreen_command_filter").trim();
  const env: PsEnv = {
    cfg,
    myhostname: cfg.get("myhostname"),
    smtpdBanner: cfg.get("smtpd_banner"),
    passService: cfg.get("smtpd_service_name"),
    acl: aclItems.length > 0 ? new PsAccessList("postscreen_access_list", aclItems, mynetworks) : null,
    denyAction: parseAction("postscreen_denylist_action", cfg.get("postscreen_denylist_action")),
    greetBanner: cfg.get("postscreen_greet_banner"),
    greetWaitMs: {
      normal: normal.time("postscreen_greet_wait") * 1000,
      stress: stressed.time("postscreen_greet_wait") * 1000,
    },
    greetAction: parseAction("postscreen_greet_action", cfg.get("postscreen_greet_action")),
    sites,
    dns: new DnsLookup(cfg.list("postern_dns_servers"), Math.max(100, Math.floor(dnsblTimeout / 2))),
    dnsblThreshold: cfg.int("postscreen_dnsbl_threshold"),
    allowThreshold: cfg.int("postscreen_dnsbl_allowlist_threshold"),
    dnsblAction: parseAction("postscreen_dnsbl_action", cfg.get("postscreen_dnsbl_action")),
    replyMap: reply !== "" ? dictOpen(reply, { flags: DictFlag.FOLD_FIX }) : null,
    dnsblTtl: { min: cfg.time("postscreen_dnsbl_min_ttl"), max: cfg.time("postscreen_dnsbl_max_ttl") },
    cache: openPsCache(cfg.get("postscreen_cache_map")),
    ttl,
    enabled: [
      true,
      sites.length > 0,
      cfg.bool("postscreen_pipelining_enable"),
      cfg.bool("postscreen_non_smtp_command_enable"),
      cfg.bool("postscreen_bare_newline_enable"),
    ],
    pipelAction: parseAction("postscreen_pipelining_action", cfg.get("postscreen_pipelining_action")),
    nsmtpAction: parseAction(
      "postscreen_non_smtp_command_action",
      cfg.get("postscreen_non_smtp_command_action"),
    ),
    barlfAction: parseAction("postscreen_bare_newline_action", cfg.get("postscreen_bare_newline_action")),
    cmdTimeMs: {
      normal: normal.time("postscreen_command_time_limit") * 1000,
      stress: stressed.time("postscreen_command_time_limit") * 1000,
    },
    cmdCount: cfg.int("postscreen_command_count_limit"),
    forbidden: new Set(cfg.list("postscreen_forbidden_commands").map((c) => c.toUpperCase())),
    cconnLimit: cfg.int("postscreen_client_connection_count_limit"),
    preQueueLimit: cfg.int("postscreen_pre_queue_limit"),
    postQueueLimit: cfg.int("postscreen_post_queue_limit"),
    softBounce: cfg.bool("soft_bounce"),
    retentionS: cfg.time("postscreen_cache_retention_time"),
    cleanupS: cfg.time("postscreen_cache_cleanup_interval"),
    proxyProtocol: cfg.get("postscreen_upstream_proxy_protocol").trim().toLowerCase(),
    proxyTimeoutMs: cfg.time("postscreen_upstream_proxy_timeout") * 1000,
    masterStress: cfg.get("stress") === "yes",
    allowIf: new NamadrList("postscreen_allowlist_interfaces", cfg.list("postscreen_allowlist_interfaces"), {
      parentStyle: false,
    }),
    footer: new PsFooter(
      footerTemplate(cfg),
      cfg.list("postscreen_reject_footer_maps").map((m) => dictOpen(m, { flags: DictFlag.FOLD_FIX })),
    ),
    cmdFilter: cmdFilter !== "" ? dictOpen(cmdFilter, { flags: DictFlag.FOLD_FIX }) : null,
    perClient: new Map(),
    screening: 0,
    postQueue: 0,
    stressed: false,
  };
  if (env.proxyProtocol !== "" && env.proxyProtocol !== "haproxy")
    throw new Error(`postscreen_upstream_proxy_protocol: unsupported protocol "${env.proxyProtocol}"`);
  if (env.masterStress) msg.info("running with stress=yes: shorter greet wait and command time limits");
  return env;
}

/** Updates postscreen's own stress state from the number of connections being screened. */
export function updateStress(env: PsEnv): void {
  if (env.preQueueLimit <= 0) return;
  const hi = Math.max(1, Math.floor(0.9 * env.preQueueLimit));
  const lo = Math.max(1, Math.floor(0.7 * env.preQueueLimit));
  if (!env.stressed && env.screening >= hi) env.stressed = true;
  else if (env.stressed && env.screening < lo) env.stressed = false;
}

/** Whether stress-dependent settings take their stress values now. */
export function underStress(env: PsEnv): boolean {
  return env.masterStress || env.stressed;
}
