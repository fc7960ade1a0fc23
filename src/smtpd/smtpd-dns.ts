/*
 * smtpd-dns - the restrictions that ask the DNS
 *
 * DESCRIPTION
 *   reject_unknown_client_hostname, reject_unknown_reverse_client_hostname
 *   (from the names found at connect time), reject_unknown_helo_hostname
 *   (A, AAAA or MX), reject_unknown_sender_domain and
 *   reject_unknown_recipient_domain (MX, else A/AAAA; a null MX is refused
 *   with its own reply), reject_rbl_client, reject_rhsbl_client,
 *   reject_rhsbl_reverse_client, reject_rhsbl_helo, reject_rhsbl_sender,
 *   reject_rhsbl_recipient (each "domain[=pattern]", the pattern
 *   matching the returned 127.x.y.z with [a..b] and [a;b] octet forms;
 *   replies from rbl_reply_maps or default_rbl_reply), permit_dnswl_client
 *   and permit_rhswl_client, and check_{client,reverse_client,helo,sender,
 *   recipient}_{mx,ns}_access (the MX or NS hosts by name, then by
 *   address, looked up in an access table; OK is not allowed there).
 *   Lookups go through the session's resolver; a temporary DNS failure in
 *   a reject_unknown_* check follows unknown_*_tempfail_action, in a block
 *   list it lets the client pass (with a warning), as Postfix does.
 */
import { dictOpen } from "../global/dict.js";
import { addrNetFind, domainFind, mapsLookup } from "../global/dict-search.js";
import { DictFlag } from "../global/dict-types.js";
import { reverseName } from "../global/dns-lookup.js";
import { RESOLVE_FLAG } from "../global/rewrite-proto.js";
import { macExpand } from "../util/mac-expand.js";
import { msg } from "../util/msg.js";
import {
  applyAction,
  authDestination,
  refuse,
  type CheckContext,
  type Stage,
  type Verdict,
} from "./smtpd-check.js";
import { filterMatch } from "../global/dnsbl-filter.js";

/** Whether an A record matches a "127.0.0.[2..4;9]"-style reply filter. */
export const rblPatternMatch = filterMatch;

const DUNNO: Verdict = { kind: "dunno" };
const TXT_LIMIT = 500;

/** Restrictions of this file that take the next list element as argument. */
export const DNS_ARG_RESTRICTIONS = new Set([
  "reject_rbl_client",
  "reject_rhsbl_client",
  "reject_rhsbl_reverse_client",
  "reject_rhsbl_helo",
  "reject_rhsbl_sender",
  "reject_rhsbl_recipient",
  "permit_dnswl_client",
  "permit_rhswl_client",
]);

/** Makes the enhanced code's class agree with the reply code (Postfix's smtpd_check_reject). */
export function fixEnh(code: string, enh: string): string {
  return `${code.charAt(0)}${enh.slice(1)}`;
}

/** Whether a reply code defers or rejects. */
function kindOf(code: string): "defer" | "reject" {
  return code.startsWith("4") ? "defer" : "reject";
}

/** A reply whose text is used as is. */
function plainVerdict(code: string, enh: string, text: string): Verdict {
  return { kind: kindOf(code), code, enh: fixEnh(code, enh), text };
}

/** The domain of an address ("" for none or an address literal). */
function domainOf(addr: string | null): string {
  if (addr === null) return "";
  const at = addr.lastIndexOf("@");
  const d = at < 0 ? "" : addr.slice(at + 1);
  return d.startsWith("[") ? "" : d.toLowerCase();
}

/** Evaluates a DNS restriction; null when the name is not one of them. */
export async function dnsRestriction(
  ctx: CheckContext,
  stage: Stage,
  name: string,
  arg: string | undefined,
  depth: number,
): Promise<Verdict | null> {
  switch (name) {
    case "reject_unknown_client_hostname":
    case "reject_unknown_client":
      return unknownClient(ctx, ctx.peer.nameCode, "4.7.25", "cannot find your hostname");
    case "reject_unknown_reverse_client_hostname":
      return unknownClient(ctx, ctx.peer.reverseCode, "4.7.1", "cannot find your reverse hostname");
    case "reject_unknown_helo_hostname":
    case "reject_unknown_hostname":
      return unknownHelo(ctx);
    case "reject_unknown_sender_domain":
      return unknownDomain(ctx, "sender", ctx.sender);
    case "reject_unknown_recipient_domain":
      return unknownDomain(ctx, "recipient", ctx.recipient);
  }
  const server = /^check_(client|reverse_client|helo|sender|recipient)_(mx|ns)_access$/.exec(name);
  if (server !== null) {
    if (arg === undefined) return null;
    return serverAccess(ctx, stage, server[1] ?? "", server[2] === "ns" ? "NS" : "MX", arg, depth);
  }
  if (!DNS_ARG_RESTRICTIONS.has(name)) return null;
  if (arg === undefined || arg === "") return null;
  return dnsxl(ctx, stage, name, arg);
}

/** reject_unknown_(reverse_)client_hostname. */
function unknownClient(ctx: CheckContext, code: "ok" | "perm" | "temp", enh: string, what: string): Verdict {
  if (code === "ok") return DUNNO;
  const reply = code === "perm" ? ctx.cfg.get("unknown_client_reject_code") : "450";
  return plainVerdict(reply, enh, `Client host rejected: ${what}, [${ctx.clientAddr}]`);
}

/** A temporary DNS failure under unknown_*_tempfail_action. */
function tempfailAction(ctx: CheckContext, param: string, v: Verdict): Verdict {
  const action = ctx.cfg.get(param).trim().toLowerCase();
  if (action === "defer") return v;
  if (action === "defer_if_reject") ctx.deferIfReject ??= v;
  else ctx.deferIfPermit ??= v;
  return DUNNO;
}

/** reject_unknown_helo_hostname: the HELO name needs an A, AAAA or MX record. */
async function unknownHelo(ctx: CheckContext): Promise<Verdict> {
  const helo = ctx.helo.replace(/\.$/, "");
  if (helo === "" || helo.startsWith("[")) return DUNNO;
  let r = await ctx.dns.addresses(helo);
  if (r.status !== "found") {
    const mx = await ctx.dns.query(helo, "MX");
    if (mx.status === "found" || r.status !== "tempfail") r = mx.status === "notfound" ? r : mx;
  }
  if (r.status === "found") return DUNNO;
  if (r.status === "tempfail") {
    msg.warn(`${helo}: address or MX lookup error: ${r.reason}`);
    const v = refuse(ctx, "helo", "defer", "450", "4.7.1", "Host not found");
    return tempfailAction(ctx, "unknown_helo_hostname_tempfail_action", v);
  }
  const code = ctx.cfg.get("unknown_hostname_reject_code");
  return refuse(ctx, "helo", kindOf(code), code, fixEnh(code, "4.7.1"), "Host not found");
}

/** The mail host status of a domain: MX, else an address; a null MX is its own answer. */
async function mailHost(ctx: CheckContext, domain: string): Promise<"ok" | "nullmx" | "notfound" | "temp"> {
  const mx = await ctx.dns.mx(domain);
  if (mx.status === "found") {
    const only = mx.hosts.length === 1 ? mx.hosts[0] : undefined;
    return only !== undefined && only.exchange === "" ? "nullmx" : "ok";
  }
  const a = await ctx.dns.addresses(domain);
  if (a.status === "found") return "ok";
  return mx.status === "tempfail" || a.status === "tempfail" ? "temp" : "notfound";
}

/** reject_unknown_sender_domain / reject_unknown_recipient_domain. */
async function unknownDomain(
  ctx: CheckContext,
  stage: "sender" | "recipient",
  addr: string | null,
): Promise<Verdict> {
  const domain = domainOf(addr);
  if (addr === null || domain === "") return DUNNO;
  const flags = await ctx.resolveFlags(addr);
  const final = RESOLVE_FLAG.CLASS_LOCAL | RESOLVE_FLAG.CLASS_ALIAS | RESOLVE_FLAG.CLASS_VIRTUAL;
  if (flags !== "tempfail" && (flags & final) !== 0) return DUNNO;
  const status = await mailHost(ctx, domain);
  const sender = stage === "sender";
  if (status === "ok") return DUNNO;
  if (status === "nullmx") {
    const code = sender ? "550" : "556";
    return refuse(
      ctx,
      stage,
      "reject",
      code,
      sender ? "5.7.27" : "5.1.10",
      `Domain ${domain} does not accept mail (nullMX)`,
    );
  }
  const enh = sender ? "4.1.8" : "4.1.2";
  if (status === "temp") {
    const v = refuse(ctx, stage, "defer", "450", enh, "Domain not found");
    return tempfailAction(ctx, "unknown_address_tempfail_action", v);
  }
  const code = ctx.cfg.get("unknown_address_reject_code");
  return refuse(ctx, stage, kindOf(code), code, fixEnh(code, enh), "Domain not found");
}

type ListResult = { status: "listed"; txt: string } | { status: "clean" } | { status: "temp" };

/** Looks a query name up in a DNS list: A records (filtered by the pattern), then TXT for the reason. */
async function listLookup(ctx: CheckContext, prefix: string, list: string): Promise<ListResult> {
  const eq = list.indexOf("=");
  const domain = eq < 0 ? list : list.slice(0, eq);
  const query = `${prefix}.${domain}`;
  const a = await ctx.dns.query(query, "A");
  if (a.status === "tempfail") {
    msg.warn(`${query}: RBL lookup error: ${a.reason}`);
    return { status: "temp" };
  }
  if (a.status === "notfound") return { status: "clean" };
  if (eq >= 0 && !a.values.some((v) => filterMatch(list.slice(eq + 1), v))) return { status: "clean" };
  const t = await ctx.dns.query(query, "TXT");
  const txt = t.status === "found" ? t.values.join(" / ").slice(0, TXT_LIMIT) : "";
  return { status: "listed", txt };
}

/** The DNS-list prefix, reply "what" and class for a dnsxl restriction; null to skip. */
function dnsxlSubject(ctx: CheckContext, name: string): { prefix: string; what: string; cls: string } | null {
  if (name === "reject_rbl_client" || name === "permit_dnswl_client") {
    const rev = reverseName(ctx.clientAddr);
    if (rev === null) return null;
    return { prefix: rev.replace(/\.(in-addr|ip6)\.arpa$/, ""), what: ctx.clientAddr, cls: "Client host" };
  }
  const subject: Record<string, [string, string]> = {
    reject_rhsbl_client: [ctx.clientName === "unknown" ? "" : ctx.clientName, "Client host"],
    permit_rhswl_client: [ctx.clientName === "unknown" ? "" : ctx.clientName, "Client host"],
    reject_rhsbl_reverse_client: [
      ctx.peer.reverseName === "unknown" ? "" : ctx.peer.reverseName,
      "Client host",
    ],
    reject_rhsbl_helo: [ctx.helo.startsWith("[") ? "" : ctx.helo, "Helo command"],
    reject_rhsbl_sender: [domainOf(ctx.sender), "Sender address"],
    reject_rhsbl_recipient: [domainOf(ctx.recipient), "Recipient address"],
  };
  const [domain = "", cls = ""] = subject[name] ?? [];
  const d = domain.replace(/\.$/, "").toLowerCase();
  if (d === "" || /(^|\.)\d+$/.test(d) || !/^[a-z0-9._-]+$/.test(d)) return null;
  return { prefix: d, what: d, cls };
}

/** reject_rbl_*, reject_rhsbl_*, permit_dnswl_client, permit_rhswl_client. */
async function dnsxl(ctx: CheckContext, stage: Stage, name: string, list: string): Promise<Verdict> {
  const subject = dnsxlSubject(ctx, name);
  if (subject === null) return DUNNO;
  const allow = name.startsWith("permit_");
  if (
    allow &&
    ctx.recipient !== null &&
    (await authDestination(ctx, stage, "permit_auth_destination")).kind !== "permit"
  )
    return DUNNO;
  const r = await listLookup(ctx, subject.prefix, list);
  if (r.status === "clean") return DUNNO;
  if (r.status === "temp") {
    if (allow)
      ctx.deferIfReject ??= plainVerdict(
        "450",
        "4.7.1",
        `<${subject.what}>: ${subject.cls} rejected: Service unavailable`,
      );
    return DUNNO;
  }
  if (allow) return { kind: "permit" };
  return rblReply(ctx, list, subject.what, subject.cls, r.txt);
}

/** The reply for a listed client: rbl_reply_maps (by "domain=pattern", then domain) or default_rbl_reply. */
async function rblReply(
  ctx: CheckContext,
  list: string,
  what: string,
  cls: string,
  txt: string,
): Promise<Verdict> {
  const domain = list.replace(/=.*/, "");
  let template = ctx.cfg.raw("default_rbl_reply") ?? "";
  const maps = ctx.cfg.list("rbl_reply_maps");
  if (maps.length > 0) {
    const lookup = mapsLookup(
      maps.map((m) => dictOpen(m, { flags: DictFlag.FOLD_FIX })),
      "rbl_reply_maps",
    );
    let r = await lookup(list, false);
    if (r.status === "notfound" && list !== domain) r = await lookup(domain, false);
    if (r.status === "tempfail") return plainVerdict("451", "4.3.0", "Server configuration error");
    if (r.status === "found") template = r.value;
  }
  const vars: Record<string, string> = {
    rbl_code: ctx.cfg.get("maps_rbl_reject_code"),
    rbl_domain: domain,
    rbl_reason: txt,
    rbl_txt: txt,
    rbl_what: what,
    rbl_class: cls,
    client_address: ctx.clientAddr,
    client_name: ctx.clientName,
    helo_name: ctx.helo,
    sender: ctx.sender ?? "",
    recipient: ctx.recipient ?? "",
  };
  const x = macExpand(template, (n) => vars[n]);
  const out = x.ok ? x.value : "";
  const m = /^([45]\d\d) (?:([45]\.\d{1,3}\.\d{1,3}) )?(.*)$/s.exec(out);
  if (m === null) {
    msg.warn(`rbl response code configuration error: ${out}`);
    return plainVerdict("450", "4.7.1", "Service unavailable");
  }
  const code = m[1] ?? "450";
  return plainVerdict(code, m[2] ?? "4.7.1", m[3] || "Service unavailable");
}

/** The host names (or address literal) a check_*_{mx,ns}_access looks at. */
async function serverHosts(ctx: CheckContext, domain: string, type: "MX" | "NS"): Promise<string[]> {
  if (type === "MX") {
    const mx = await ctx.dns.mx(domain);
    if (mx.status === "found") return mx.hosts.map((h) => h.exchange).filter((h) => h !== "");
    if (mx.status === "notfound") return [domain];
    msg.warn(`Unable to look up MX host for ${domain}: ${mx.reason}`);
    return [];
  }
  for (let d = domain; d.includes("."); d = d.slice(d.indexOf(".") + 1)) {
    const ns = await ctx.dns.query(d, "NS");
    if (ns.status === "found") return ns.values.map((h) => h.replace(/\.$/, ""));
    if (ns.status === "tempfail") {
      msg.warn(`Unable to look up NS host for ${d}: ${ns.reason}`);
      return [];
    }
  }
  return [];
}

/** check_*_mx_access / check_*_ns_access: host names first, then their addresses. */
async function serverAccess(
  ctx: CheckContext,
  stage: Stage,
  what: string,
  type: "MX" | "NS",
  table: string,
  depth: number,
): Promise<Verdict> {
  const names: Record<string, string> = {
    client: ctx.clientName === "unknown" ? "" : ctx.clientName,
    reverse_client: ctx.peer.reverseName === "unknown" ? "" : ctx.peer.reverseName,
    helo: ctx.helo.startsWith("[") ? "" : ctx.helo,
    sender: domainOf(ctx.sender),
    recipient: domainOf(ctx.recipient),
  };
  const domain = (names[what] ?? "").replace(/\.$/, "");
  if (domain === "") return DUNNO;
  const hosts = await serverHosts(ctx, domain, type);
  const lookup = mapsLookup([dictOpen(table, { flags: DictFlag.FOLD_FIX })], table);
  const pdms = ctx.cfg.list("parent_domain_matches_subdomains").includes("smtpd_access_maps");
  const where: Stage = what === "client" || what === "reverse_client" ? "client" : (what as Stage);
  for (const host of hosts) {
    let r = await domainFind(lookup, host.toLowerCase(), { parentMatchesSubdomains: pdms });
    if (r.status === "notfound") {
      const addrs = await ctx.dns.addresses(host);
      for (const a of addrs.status === "found" ? addrs.values : []) {
        r = await addrNetFind(lookup, a);
        if (r.status !== "notfound") break;
      }
    }
    if (r.status === "tempfail") return plainVerdict("451", "4.3.0", `Server configuration error`);
    if (r.status === "notfound") continue;
    const v = await applyAction(ctx, where === "helo" || where === "client" ? where : stage, r.value, depth);
    if (v.kind === "permit") {
      msg.warn(`access table ${table}: with ${type} host ${host}: action OK is not allowed, using DUNNO`);
      continue;
    }
    if (v.kind !== "dunno") return v;
  }
  return DUNNO;
}
