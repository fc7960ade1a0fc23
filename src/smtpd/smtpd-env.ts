/*
 * smtpd-env - what every smtpd session shares: settings, lists, clients
 *
 * DESCRIPTION
 *   Built once per process from the configuration: the parameters the
 *   protocol reads (with their stress forms already expanded by the
 *   skeleton), mynetworks as a name/address list (computed from
 *   mynetworks_style when empty), the trivial-rewrite client with its cache,
 *   and reverse DNS lookups with a time limit.
 */
import { networkInterfaces } from "node:os";
import { promises as dns } from "node:dns";
import type { Config } from "../global/config.js";
import { NamadrList } from "../global/namadr-list.js";
import { RewriteClient } from "../global/rewrite-client.js";

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
  };
}

/** The client's verified host name, as Postfix finds it with getnameinfo and a forward check ("unknown" when they disagree or fail). */
export async function peerName(addr: string, enabled: boolean): Promise<string> {
  if (!enabled) return "unknown";
  const plain = addr.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
  try {
    const { hostname } = await dns.lookupService(plain, 0);
    if (hostname === plain || hostname === "") return "unknown";
    const fwd = await dns.lookup(hostname, { all: true });
    return fwd.some((a) => a.address === plain) ? hostname.toLowerCase() : "unknown";
  } catch {
    return "unknown";
  }
}
