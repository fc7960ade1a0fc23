/*
 * smtpd-unlisted - reject_unlisted_recipient and reject_unlisted_sender
 *
 * DESCRIPTION
 *   Is the address one that this server knows? The address is resolved by
 *   trivial-rewrite; an address that a canonical or virtual alias table
 *   names is known; one that resolves to the error transport is refused
 *   with the resolver's reason (an unknown address in a virtual alias
 *   domain); otherwise the table of the address class decides:
 *     local    local_recipient_maps (empty: every local address is known;
 *              postmaster, MAILER-DAEMON and double_bounce_sender always)
 *     virtual  virtual_mailbox_maps
 *     relay    relay_recipient_maps (empty: every address is known)
 *   "550 5.1.1 <x>: Recipient address rejected: User unknown in local
 *   recipient table", with the codes of unknown_*_reject_code and the
 *   table name shown unless show_user_unknown_table_name = no. A table
 *   lookup that fails is a temporary failure. smtpd_reject_unlisted_recipient
 *   and smtpd_reject_unlisted_sender apply the check after the restriction
 *   lists unless a list already did (see smtpd-session.ts).
 *
 *   proxy: tables in these parameters really go through proxymap: a
 *   jailed smtpd (chroot=y) cannot read /etc/passwd, and the default
 *   local_recipient_maps is proxy:unix:passwd.byname $alias_maps, as in
 *   Postfix.
 */
import { dictOpen } from "../global/dict.js";
import { AddrFind, addrFind, mapsLookup, type SearchResult } from "../global/dict-search.js";
import { DictFlag } from "../global/dict-types.js";
import { RESOLVE_FLAG, type Resolved } from "../global/rewrite-proto.js";
import { refuse, type CheckContext, type Stage, type Verdict } from "./smtpd-check.js";

const DUNNO: Verdict = { kind: "dunno" };
const SENDER_DSN: Record<string, string> = { "2": "8", "3": "7", "7": "7", "8": "8" };
const RCPT_DSN: Record<string, string> = {
  "1": "1",
  "2": "2",
  "3": "3",
  "4": "4",
  "5": "5",
  "6": "6",
  "7": "3",
  "8": "2",
};

/** Postfix's smtpd_dsn_fix: an X.1.Y code made to fit a sender or a recipient. */
export function dsnFix(enh: string, stage: "sender" | "recipient"): string {
  const m = /^(\d)\.1\.(\d+)$/.exec(enh);
  if (m === null) return enh;
  const map = stage === "sender" ? SENDER_DSN : RCPT_DSN;
  return `${m[1] ?? "5"}.1.${map[m[2] ?? ""] ?? "0"}`;
}

/** Looks an address up in the tables of a list parameter (mail_addr_find). */
async function inMaps(
  ctx: CheckContext,
  param: string,
  address: string,
  local: boolean,
): Promise<SearchResult> {
  const names = ctx.cfg.list(param);
  if (names.length === 0) return { status: "notfound" };
  const dicts = names.map((n) => dictOpen(n, { flags: DictFlag.FOLD_FIX }));
  return addrFind(mapsLookup(dicts, param), address, {
    strategy: AddrFind.DEFAULT,
    recipientDelimiter: ctx.cfg.get("recipient_delimiter"),
    isLocalDomain: () => local,
  });
}

/** A temporary failure of a table or of the resolver. */
function retry(ctx: CheckContext, stage: "sender" | "recipient"): Verdict {
  const name = stage === "sender" ? ctx.sender : ctx.recipient;
  return { kind: "defer", code: "451", enh: "4.3.0", text: `<${name ?? ""}>: Temporary lookup failure` };
}

/** A reply code parameter's value. */
function code(ctx: CheckContext, param: string): string {
  return ctx.cfg.get(param);
}

/** Whether the local part is one that must always be accepted. */
function alwaysKnown(ctx: CheckContext, address: string): boolean {
  const local = address.slice(0, address.lastIndexOf("@") < 0 ? undefined : address.lastIndexOf("@"));
  const names = ["postmaster", "mailer-daemon", ctx.cfg.get("double_bounce_sender").toLowerCase()];
  return names.includes(local.toLowerCase());
}

/** The reply for an unknown user, in the table's words. */
function unknown(ctx: CheckContext, stage: "sender" | "recipient", param: string, table: string): Verdict {
  const c = code(ctx, param);
  const show = ctx.cfg.bool("show_user_unknown_table_name") ? ` in ${table}` : "";
  const enh = `${c.charAt(0)}.1.${stage === "sender" ? "0" : "1"}`;
  return refuse(ctx, stage, c.startsWith("4") ? "defer" : "reject", c, enh, `User unknown${show}`);
}

/** The outcome of the error or retry transport, with the resolver's reason. */
function failTransport(ctx: CheckContext, stage: "sender" | "recipient", r: Resolved): Verdict {
  const m = /^([245]\.\d{1,3}\.\d{1,3})\s+(.*)$/.exec(r.nexthop);
  const retrying = r.transport === "retry";
  const fallback = retrying ? "4.1.1" : "5.1.1";
  const c = retrying
    ? "450"
    : (r.flags & RESOLVE_FLAG.CLASS_ALIAS) !== 0
      ? code(ctx, "unknown_virtual_alias_reject_code")
      : "550";
  const enh = dsnFix(m?.[1] ?? fallback, stage);
  const text = (m ? m[2] : r.nexthop) || "User unknown";
  return refuse(ctx, stage, c.startsWith("4") ? "defer" : "reject", c, `${c.charAt(0)}${enh.slice(1)}`, text);
}

/** reject_unlisted_recipient / reject_unlisted_sender for one address. */
export async function unlistedCheck(ctx: CheckContext, stage: "sender" | "recipient"): Promise<Verdict> {
  const address = stage === "sender" ? ctx.sender : ctx.recipient;
  if (address === null || address === "") return DUNNO;
  const r = await ctx.resolve(address);
  if (r === "tempfail") return retry(ctx, stage);
  const known = [
    "canonical_maps",
    stage === "sender" ? "sender_canonical_maps" : "recipient_canonical_maps",
    "virtual_alias_maps",
  ];
  for (const param of known) {
    const hit = await inMaps(ctx, param, r.recipient, false);
    if (hit.status === "tempfail") return retry(ctx, stage);
    if (hit.status === "found") return DUNNO;
  }
  if (r.transport === "error" || r.transport === "retry") return failTransport(ctx, stage, r);
  const cls = r.flags;
  let check: [string, string, string] | null = null;
  if ((cls & RESOLVE_FLAG.CLASS_LOCAL) !== 0 && !alwaysKnown(ctx, r.recipient))
    check = ["local_recipient_maps", "unknown_local_recipient_reject_code", "local recipient table"];
  else if ((cls & RESOLVE_FLAG.CLASS_VIRTUAL) !== 0)
    check = ["virtual_mailbox_maps", "unknown_virtual_mailbox_reject_code", "virtual mailbox table"];
  else if ((cls & RESOLVE_FLAG.CLASS_RELAY) !== 0)
    check = ["relay_recipient_maps", "unknown_relay_recipient_reject_code", "relay recipient table"];
  if (check === null || ctx.cfg.list(check[0]).length === 0) return DUNNO;
  const hit = await inMaps(ctx, check[0], r.recipient, (cls & RESOLVE_FLAG.CLASS_LOCAL) !== 0);
  if (hit.status === "tempfail") return retry(ctx, stage);
  return hit.status === "found" ? DUNNO : unknown(ctx, stage, check[1], check[2]);
}

/** smtpd_reject_unlisted_sender / _recipient: the implicit check after the lists of these stages. */
export async function implicitUnlisted(ctx: CheckContext, stages: readonly Stage[]): Promise<Verdict> {
  const cfg = ctx.cfg;
  if (stages.includes("sender") && !ctx.unlisted.sender && cfg.bool("smtpd_reject_unlisted_sender")) {
    const v = await unlistedCheck(ctx, "sender");
    if (v.kind !== "dunno") return v;
  }
  if (stages.includes("recipient") && !ctx.unlisted.recipient && cfg.bool("smtpd_reject_unlisted_recipient"))
    return unlistedCheck(ctx, "recipient");
  return DUNNO;
}
