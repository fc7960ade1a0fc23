/*
 * smtpd-access - check_*_access lookups with access(5) search orders
 *
 * DESCRIPTION
 *   check_client_access looks up the client's name (and parent domains),
 *   then its address (and shorter prefixes); check_reverse_client_hostname_access
 *   the same with the unverified PTR name; check_helo_access the HELO
 *   name; check_sender_access and check_recipient_access the address as
 *   user+ext@domain, user@domain, domain (and parents), user@ (with
 *   recipient_delimiter). The null sender is looked up as
 *   smtpd_null_access_lookup_key. Tables are opened once per process.
 *   Message actions found on the way (HOLD, DISCARD, FILTER, REDIRECT,
 *   PREPEND, BCC) are collected for the message.
 */
import { dictOpen } from "../global/dict.js";
import {
  accessAddrFind,
  clientFind,
  domainFind,
  mapsLookup,
  type SearchResult,
} from "../global/dict-search.js";
import { DictFlag } from "../global/dict-types.js";
import type { CheckContext } from "./smtpd-check.js";

export interface MessageAction {
  action: string;
  arg: string;
}

export interface AccessEnv {
  actions: MessageAction[];
}

/** Whether parent_domain_matches_subdomains covers smtpd_access_maps. */
function parentStyle(ctx: CheckContext): boolean {
  return ctx.cfg.list("parent_domain_matches_subdomains").includes("smtpd_access_maps");
}

/** Looks the client, helo, sender or recipient up in an access table. */
export async function accessResult(
  ctx: CheckContext,
  what: "client" | "reverse_client" | "helo" | "sender" | "recipient",
  table: string,
): Promise<SearchResult> {
  const lookup = mapsLookup([dictOpen(table, { flags: DictFlag.FOLD_FIX })], table);
  const pdms = parentStyle(ctx);
  switch (what) {
    case "client":
      return clientFind(lookup, ctx.clientName, ctx.clientAddr, { parentMatchesSubdomains: pdms });
    case "reverse_client":
      return clientFind(lookup, ctx.peer.reverseName, ctx.clientAddr, { parentMatchesSubdomains: pdms });
    case "helo":
      return domainFind(lookup, ctx.helo, { parentMatchesSubdomains: pdms });
    case "sender":
      if (ctx.sender === null) return { status: "notfound" };
      if (ctx.sender === "") {
        const r = await lookup(ctx.cfg.get("smtpd_null_access_lookup_key"), false);
        return r.status === "found" ? { status: "found", value: r.value, key: "<>" } : r;
      }
      return accessAddrFind(lookup, ctx.sender, {
        parentMatchesSubdomains: pdms,
        recipientDelimiter: ctx.cfg.get("recipient_delimiter"),
      });
    default:
      if (ctx.recipient === null) return { status: "notfound" };
      return accessAddrFind(lookup, ctx.recipient, {
        parentMatchesSubdomains: pdms,
        recipientDelimiter: ctx.cfg.get("recipient_delimiter"),
      });
  }
}
