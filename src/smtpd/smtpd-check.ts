/*
 * smtpd-check - the restriction lists: Postfix's policy language of tables
 *
 * DESCRIPTION
 *   Evaluates smtpd_{client,helo,sender,relay,recipient,data,
 *   end_of_data,etrn}_restrictions the way Postfix does: each list is tried
 *   element by element until one decides; "permit" ends that list only, a
 *   reject or defer ends the whole evaluation; with smtpd_delay_reject the
 *   client, helo and sender lists run at RCPT time. Restriction class names
 *   (smtpd_restriction_classes) expand to their own lists, and access-table
 *   results can name restrictions too. warn_if_reject turns the next
 *   reject into a warning; defer_if_permit and defer_if_reject (set by
 *   access results) change the stage's final outcome.
 *   Implemented here: permit, reject, defer, warn_if_reject, permit_mynetworks,
 *   permit_sasl_authenticated, permit_tls_clientcerts and
 *   permit_tls_all_clientcerts (smtpd-tls.ts), the
 *   reject_*_sender_login_mismatch family (smtpd-sasl.ts),
 *   reject_unauth_destination,
 *   defer_unauth_destination, permit_auth_destination,
 *   reject_unauth_pipelining, check_client_access, check_helo_access,
 *   check_sender_access, check_recipient_access,
 *   check_reverse_client_hostname_access, reject_invalid_helo_hostname,
 *   reject_non_fqdn_helo_hostname, reject_non_fqdn_sender,
 *   reject_non_fqdn_recipient, and the access(5) actions in smtpd-access.ts;
 *   the restrictions that ask the DNS are in smtpd-dns.ts, and
 *   reject_unlisted_recipient / reject_unlisted_sender in smtpd-unlisted.ts,
 *   check_policy_service in smtpd-policy.ts, reject_unverified_sender and
 *   reject_unverified_recipient in smtpd-verify.ts.
 *   An unknown restriction is a configuration error: the client gets a
 *   temporary failure and the log says which name is wrong.
 */
import type { Config } from "../global/config.js";
import { RESOLVE_FLAG, type Resolved } from "../global/rewrite-proto.js";
import { validHostname } from "../global/resolve-host.js";
import { msg } from "../util/msg.js";
import type { DnsLookup } from "../global/dns-lookup.js";
import { accessResult, type AccessEnv } from "./smtpd-access.js";
import { DNS_ARG_RESTRICTIONS, dnsRestriction } from "./smtpd-dns.js";
import type { PeerNames } from "./smtpd-env.js";
import { policyAction, policyRequest, policySettings } from "./smtpd-policy.js";
import { unlistedCheck } from "./smtpd-unlisted.js";
import { unverifiedCheck } from "./smtpd-verify.js";

export type Stage =
  "client" | "reverse_client" | "helo" | "sender" | "relay" | "recipient" | "data" | "end_of_data" | "etrn";

export type Verdict =
  | { kind: "dunno" }
  | { kind: "permit" }
  | { kind: "reject"; code: string; enh: string; text: string }
  | { kind: "defer"; code: string; enh: string; text: string };

export interface CheckContext extends AccessEnv {
  cfg: Config;
  clientName: string;
  peer: PeerNames;
  dns: DnsLookup;
  clientAddr: string;
  helo: string;
  sender: string | null;
  recipient: string | null;
  etrnDomain: string | null;
  saslUser: string | null;
  pipelined: boolean;
  inMynetworks: () => Promise<boolean | "tempfail">;
  resolveFlags: (address: string) => Promise<number | "tempfail">;
  resolve: (address: string) => Promise<Resolved | "tempfail">;
  /** Attributes of the session for policy requests (protocol_state, queue_id, instance, ...). */
  policyState: Record<string, string>;
  /** Which addresses reject_unlisted_* already checked (the implicit check then is skipped). */
  unlisted: { sender: boolean; recipient: boolean };
  /** Set while evaluating: defer_if_permit / defer_if_reject notes. */
  deferIfPermit: Verdict | null;
  deferIfReject: Verdict | null;
  /** permit_tls_clientcerts / permit_tls_all_clientcerts (smtpd-tls.ts); absent: never permits. */
  tlsClientcerts?: (all: boolean) => Promise<"permit" | "dunno" | "tempfail">;
  /** reject_*sender_login_mismatch (smtpd-sasl.ts); absent: never rejects. */
  senderLogin?: (name: string, stage: Stage) => Promise<Verdict>;
}

export const STAGE_WHAT: Record<Stage, string> = {
  client: "Client host rejected",
  reverse_client: "Unverified Client host rejected",
  helo: "Helo command rejected",
  sender: "Sender address rejected",
  relay: "Recipient address rejected",
  recipient: "Recipient address rejected",
  data: "Data command rejected",
  end_of_data: "End-of-data rejected",
  etrn: "Etrn command rejected",
};

const DUNNO: Verdict = { kind: "dunno" };
const PERMIT: Verdict = { kind: "permit" };
const MAX_DEPTH = 10;

/** The "<thing>" a reply names for a stage. */
export function replyName(ctx: CheckContext, stage: Stage): string {
  switch (stage) {
    case "client":
      return `<${ctx.clientName}[${ctx.clientAddr}]>`;
    case "reverse_client":
      return `<${ctx.peer.reverseName}>`;
    case "helo":
      return `<${ctx.helo}>`;
    case "sender":
      return `<${ctx.sender ?? ""}>`;
    case "etrn":
      return `<${ctx.etrnDomain ?? ""}>`;
    case "data":
      return "<DATA>";
    case "end_of_data":
      return "<END-OF-MESSAGE>";
    default:
      return `<${ctx.recipient ?? ""}>`;
  }
}

/** A reject or defer verdict with Postfix's reply shape: "<name>: What rejected: text". */
export function refuse(
  ctx: CheckContext,
  stage: Stage,
  kind: "reject" | "defer",
  code: string,
  enh: string,
  text: string,
  plain = false,
): Verdict {
  const body = plain
    ? `${replyName(ctx, stage)}: ${text}`
    : `${replyName(ctx, stage)}: ${STAGE_WHAT[stage]}: ${text}`;
  return { kind, code, enh, text: body };
}

/** Turns a table-failure into the temporary reply Postfix gives. */
function tempfail(ctx: CheckContext, stage: Stage, what: string): Verdict {
  return refuse(ctx, stage, "defer", "451", "4.3.0", `Server configuration error (${what})`, false);
}

/** True for a name with at least one dot (a fully-qualified name). */
function fqdn(name: string): boolean {
  return /^[^.]+(\.[^.]+)+\.?$/.test(name);
}

/** Evaluates one restriction list; returns the verdict (dunno when the list runs out). */
export async function evalList(
  ctx: CheckContext,
  stage: Stage,
  list: readonly string[],
  depth = 0,
): Promise<Verdict> {
  if (depth > MAX_DEPTH) return tempfail(ctx, stage, "restriction class recursion");
  let warnNext = false;
  for (let i = 0; i < list.length; i++) {
    const name = (list[i] ?? "").toLowerCase();
    if (name === "warn_if_reject") {
      warnNext = true;
      continue;
    }
    let arg: string | undefined;
    if (
      (name.startsWith("check_") && name.endsWith("_access")) ||
      DNS_ARG_RESTRICTIONS.has(name) ||
      name === "check_policy_service"
    )
      arg = list[++i];
    const v = await evalOne(ctx, stage, name, arg, depth);
    if (warnNext && (v.kind === "reject" || v.kind === "defer")) {
      msg.info(`warn_if_reject would ${v.kind}: ${v.code} ${v.enh} ${v.text}`);
      warnNext = false;
      continue;
    }
    warnNext = false;
    if (v.kind !== "dunno") return v;
  }
  return DUNNO;
}

/** Evaluates one restriction. */
async function evalOne(
  ctx: CheckContext,
  stage: Stage,
  name: string,
  arg: string | undefined,
  depth: number,
): Promise<Verdict> {
  const cfg = ctx.cfg;
  switch (name) {
    case "permit":
      return PERMIT;
    case "dunno":
      return DUNNO;
    case "reject":
      return refuse(ctx, stage, "reject", cfg.get("reject_code"), "5.7.1", "Access denied");
    case "defer":
      return refuse(ctx, stage, "defer", cfg.get("defer_code"), "4.7.1", "Access denied");
    case "permit_mynetworks": {
      const r = await ctx.inMynetworks();
      return r === "tempfail" ? tempfail(ctx, stage, "mynetworks lookup") : r ? PERMIT : DUNNO;
    }
    case "permit_sasl_authenticated":
      return ctx.saslUser !== null ? PERMIT : DUNNO;
    case "permit_tls_clientcerts":
    case "permit_tls_all_clientcerts": {
      const r = (await ctx.tlsClientcerts?.(name === "permit_tls_all_clientcerts")) ?? "dunno";
      return r === "tempfail"
        ? tempfail(ctx, stage, "relay_clientcerts lookup")
        : r === "permit"
          ? PERMIT
          : DUNNO;
    }
    case "reject_sender_login_mismatch":
    case "reject_authenticated_sender_login_mismatch":
    case "reject_known_sender_login_mismatch":
    case "reject_unauthenticated_sender_login_mismatch":
      return (await ctx.senderLogin?.(name, stage)) ?? DUNNO;
    case "reject_unauth_destination":
    case "defer_unauth_destination":
    case "permit_auth_destination":
      return authDestination(ctx, stage, name);
    case "reject_unauth_pipelining":
      return ctx.pipelined
        ? refuse(ctx, stage, "reject", "503", "5.5.0", "Improper use of SMTP command pipelining")
        : DUNNO;
    case "reject_invalid_helo_hostname":
      return ctx.helo !== "" && !validHelo(ctx.helo)
        ? refuse(ctx, "helo", "reject", cfg.get("invalid_hostname_reject_code"), "5.5.2", "Invalid name")
        : DUNNO;
    case "reject_non_fqdn_helo_hostname":
      return ctx.helo !== "" && !fqdn(ctx.helo) && !/^\[.*\]$/.test(ctx.helo)
        ? refuse(
            ctx,
            "helo",
            "reject",
            cfg.get("non_fqdn_reject_code"),
            "5.5.2",
            "need fully-qualified hostname",
          )
        : DUNNO;
    case "reject_non_fqdn_sender":
      return nonFqdnAddress(ctx, "sender", ctx.sender);
    case "reject_non_fqdn_recipient":
      return nonFqdnAddress(ctx, "recipient", ctx.recipient);
    case "check_policy_service": {
      if (arg === undefined) return tempfail(ctx, stage, `${name} needs a server`);
      const settings = policySettings(ctx, arg);
      const action = await policyAction(settings, cfg.get("queue_directory"), policyRequest(ctx, settings));
      return applyAction(ctx, stage, action, depth);
    }
    case "reject_unlisted_recipient":
    case "check_recipient_maps":
    case "reject_unlisted_sender": {
      const which = name.endsWith("sender") ? "sender" : "recipient";
      ctx.unlisted[which] = true;
      return unlistedCheck(ctx, which);
    }
    case "reject_unverified_sender":
    case "reject_unverified_recipient":
      return unverifiedCheck(ctx, name.endsWith("sender") ? "sender" : "recipient");
    case "check_client_access":
    case "check_helo_access":
    case "check_sender_access":
    case "check_recipient_access":
    case "check_reverse_client_hostname_access":
      if (arg === undefined) return tempfail(ctx, stage, `${name} needs a table`);
      return accessCheck(ctx, stage, name, arg, depth);
    default: {
      const v = await dnsRestriction(ctx, stage, name, arg, depth);
      return v ?? restrictionClass(ctx, stage, name, depth);
    }
  }
}

/** A restriction class (smtpd_restriction_classes), or a configuration error. */
async function restrictionClass(
  ctx: CheckContext,
  stage: Stage,
  name: string,
  depth: number,
): Promise<Verdict> {
  const classes = ctx.cfg.list("smtpd_restriction_classes");
  if (classes.includes(name)) return evalList(ctx, stage, ctx.cfg.list(name), depth + 1);
  msg.warn(`unknown smtpd restriction: "${name}"`);
  return tempfail(ctx, stage, `unknown restriction ${name}`);
}

/** A valid HELO argument: a host name or an address literal. */
function validHelo(helo: string): boolean {
  if (/^\[.*\]$/.test(helo)) return true;
  return validHostname(helo.replace(/\.$/, ""), true);
}

/** reject_non_fqdn_sender/recipient. */
function nonFqdnAddress(ctx: CheckContext, stage: Stage, addr: string | null): Verdict {
  if (addr === null || addr === "") return DUNNO;
  const at = addr.lastIndexOf("@");
  const domain = at < 0 ? "" : addr.slice(at + 1);
  if (at >= 0 && (fqdn(domain) || /^\[.*\]$/.test(domain))) return DUNNO;
  return refuse(
    ctx,
    stage,
    "reject",
    ctx.cfg.get("non_fqdn_reject_code"),
    "5.5.2",
    "need fully-qualified address",
  );
}

/** The relay decision: is the recipient's domain one this server serves or relays for? */
export async function authDestination(ctx: CheckContext, stage: Stage, name: string): Promise<Verdict> {
  if (ctx.recipient === null) return DUNNO;
  const flags = await ctx.resolveFlags(ctx.recipient);
  if (flags === "tempfail") return tempfail(ctx, stage, "address resolver failure");
  const served =
    RESOLVE_FLAG.CLASS_LOCAL |
    RESOLVE_FLAG.CLASS_ALIAS |
    RESOLVE_FLAG.CLASS_VIRTUAL |
    RESOLVE_FLAG.CLASS_RELAY;
  const ok = (flags & served) !== 0 && (flags & RESOLVE_FLAG.FLAG_ROUTED) === 0;
  if (name === "permit_auth_destination") return ok ? PERMIT : DUNNO;
  if (ok) return DUNNO;
  if (name === "defer_unauth_destination")
    return refuse(ctx, stage, "defer", ctx.cfg.get("defer_code"), "4.7.1", "Relay access denied", true);
  return refuse(
    ctx,
    stage,
    "reject",
    ctx.cfg.get("relay_domains_reject_code"),
    "5.7.1",
    "Relay access denied",
    true,
  );
}

/** check_*_access: look the client, helo, sender or recipient up and apply the result. */
async function accessCheck(
  ctx: CheckContext,
  stage: Stage,
  name: string,
  table: string,
  depth: number,
): Promise<Verdict> {
  const word = name.slice("check_".length, -"_access".length);
  const what =
    word === "reverse_client_hostname" ? "client" : (word as "client" | "helo" | "sender" | "recipient");
  const r = await accessResult(ctx, word === "reverse_client_hostname" ? "reverse_client" : what, table);
  if (r.status === "tempfail") return tempfail(ctx, stage, `${table} lookup error`);
  if (r.status === "notfound") return DUNNO;
  const where: Stage = word === "reverse_client_hostname" ? "reverse_client" : what;
  return applyAction(ctx, where === "sender" || where === "recipient" ? stage : where, r.value, depth);
}

/** A refusal whose text may start with an enhanced status code (Postfix's dsn_split); its class follows the reply code. */
function dsnRefuse(
  ctx: CheckContext,
  stage: Stage,
  kind: "reject" | "defer",
  code: string,
  text: string,
  fallback: string,
): Verdict {
  const m = /^([245])(\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/s.exec(text);
  const enh = `${code.charAt(0)}${m?.[2] ?? ".7.1"}`;
  return refuse(ctx, stage, kind, code, enh, (m ? m[3] : text) || fallback);
}

/** Applies an access(5) result text. */
export async function applyAction(
  ctx: CheckContext,
  stage: Stage,
  value: string,
  depth: number,
): Promise<Verdict> {
  const v = value.trim();
  const [word = "", ...rest] = v.split(/\s+/);
  const text = rest.join(" ");
  const upper = word.toUpperCase();
  const cfg = ctx.cfg;
  const code = /^([45])\d\d$/.exec(word);
  if (code !== null) {
    const m = /^([245]\.\d{1,3}\.\d{1,3})\s*(.*)$/.exec(text);
    const enh = m?.[1] ?? `${code[1]}.7.1`;
    return refuse(
      ctx,
      stage,
      code[1] === "4" ? "defer" : "reject",
      word,
      enh,
      (m ? m[2] : text) || "Access denied",
    );
  }
  if (upper === "OK" || /^\d+$/.test(word)) return PERMIT;
  switch (upper) {
    case "REJECT":
      return dsnRefuse(ctx, stage, "reject", cfg.get("access_map_reject_code"), text, "Access denied");
    case "DEFER":
      return dsnRefuse(ctx, stage, "defer", cfg.get("access_map_defer_code"), text, "Access denied");
    case "DEFER_IF_REJECT":
      ctx.deferIfReject ??= dsnRefuse(
        ctx,
        stage,
        "defer",
        cfg.get("defer_code"),
        text,
        "Service unavailable",
      );
      return DUNNO;
    case "DEFER_IF_PERMIT":
      ctx.deferIfPermit ??= dsnRefuse(
        ctx,
        stage,
        "defer",
        cfg.get("defer_code"),
        text,
        "Service unavailable",
      );
      return DUNNO;
    case "DUNNO":
      return DUNNO;
    case "WARN":
      msg.info(`warn: ${STAGE_WHAT[stage]}: ${text}`);
      return DUNNO;
    case "INFO":
      msg.info(`info: ${STAGE_WHAT[stage]}: ${text}`);
      return DUNNO;
    case "HOLD":
    case "DISCARD":
    case "FILTER":
    case "REDIRECT":
    case "PREPEND":
    case "BCC":
      ctx.actions.push({ action: upper, arg: text });
      return DUNNO;
    default:
      return evalList(
        ctx,
        stage,
        v.split(/[\s,]+/).filter((x) => x !== ""),
        depth + 1,
      );
  }
}
