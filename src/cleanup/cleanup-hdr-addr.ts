/*
 * cleanup-hdr-addr - addresses in message headers: rewriting and extraction
 *
 * SYNOPSIS
 *   const kind = headerAddrKind("Reply-To");          // "sender" | "recipient" | null
 *   const text = await rewriteHeaderAddresses(h, kind, ctx, mapper);   // null when unchanged
 *   const addrs = headerAddresses("To: a, Team: b, c;", tokenLimit);   // ["a", "b", "c"]
 *   foldAddressHeader("To: a,\nb,\nc")                 // "To: a, b, c"
 *
 * DESCRIPTION
 *   The sender headers (From, Sender, Reply-To, Errors-To, Return-Path,
 *   Return-Receipt-To, Disposition-Notification-To, Mail-Followup-To,
 *   Resent-From, Resent-Sender) and recipient headers (To, Cc, Bcc,
 *   Apparently-To, Resent-To, Resent-Cc, Resent-Bcc, Resent-Reply-To) are
 *   parsed with tok822 (at most header_address_token_limit tokens). Each
 *   address is rewritten in the header rewrite context and, with
 *   CLEANUP_FLAG.MAP, mapped by the canonical tables and masqueraded as
 *   canonical_classes and masquerade_classes say for header_sender and
 *   header_recipient. When anything changed the header is written again:
 *   the original name, ": ", the address list with as many addresses on a
 *   line as fit in 70 characters, continuation lines starting with a TAB.
 *
 *   Header text is kept as bytes (a latin1 string); for parsing and table
 *   lookups it is decoded as UTF-8 when it is valid UTF-8, and encoded back.
 *
 *   headerAddresses() gives the internal form of each address in a
 *   header; sendmail -t (CLEANUP_FLAG.EXTRACT) takes its recipients from
 *   To, Cc and Bcc, or from Resent-To, Resent-Cc and Resent-Bcc when the
 *   message has any of those.
 */
import { quote822Local, unquote822Local } from "../global/quote-822-local.js";
import { rewriteExternal, type RewriteContextName, type RewriteParams } from "../global/rewrite-addr.js";
import {
  tok822AddrExternal,
  tok822Externalize,
  tok822Grep,
  tok822Internalize,
  tok822Parse,
  tok822Scan,
} from "../global/tok822.js";

const SENDER_HEADERS = new Set([
  "disposition-notification-to",
  "errors-to",
  "from",
  "mail-followup-to",
  "reply-to",
  "resent-from",
  "resent-sender",
  "return-path",
  "return-receipt-to",
  "sender",
]);
const RECIPIENT_HEADERS = new Set([
  "apparently-to",
  "bcc",
  "cc",
  "resent-bcc",
  "resent-cc",
  "resent-reply-to",
  "resent-to",
  "to",
]);
const EXTRACT_HEADERS = new Set(["to", "cc", "bcc"]);
const RESENT_EXTRACT_HEADERS = new Set(["resent-to", "resent-cc", "resent-bcc"]);
const FOLD_WIDTH = 70;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Whether a header (by lower-case name) holds sender or recipient addresses. */
export function headerAddrKind(lower: string): "sender" | "recipient" | null {
  if (SENDER_HEADERS.has(lower)) return "sender";
  if (RECIPIENT_HEADERS.has(lower)) return "recipient";
  return null;
}

/** Whether sendmail -t takes recipients from a header: "plain", "resent" or null. */
export function extractKind(lower: string): "plain" | "resent" | null {
  if (EXTRACT_HEADERS.has(lower)) return "plain";
  if (RESENT_EXTRACT_HEADERS.has(lower)) return "resent";
  return null;
}

/** Decodes header bytes (a latin1 string) as UTF-8 when valid; encode() turns text back into bytes. */
export function decodeHeader(latin1: string): { text: string; encode: (text: string) => string } {
  const same = { text: latin1, encode: (t: string): string => t };
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(latin1)) return same;
  try {
    const text = UTF8.decode(Buffer.from(latin1, "latin1"));
    return { text, encode: (t) => Buffer.from(t, "utf8").toString("latin1") };
  } catch {
    return same;
  }
}

/** Joins a one-address-per-line list into lines of up to 70 characters; TAB before continuations. */
export function foldAddressHeader(text: string): string {
  const parts = text.split("\n");
  const out: string[] = [];
  let cur = parts[0] ?? "";
  for (const p of parts.slice(1)) {
    if (cur.length + 1 + p.length < FOLD_WIDTH) cur += ` ${p}`;
    else {
      out.push(cur);
      cur = p;
    }
  }
  out.push(cur);
  return out.map((l, i) => (i === 0 || /^[ \t]/.test(l) ? l : `\t${l}`)).join("\n");
}

/** The internal form of each address in a header's value. */
export function headerAddresses(text: string, tokenLimit: number): string[] {
  const value = decodeHeader(text.slice(text.indexOf(":") + 1)).text;
  return tok822Grep(tok822Parse(value, tokenLimit)).map((a) => tok822Internalize(a.toks));
}

/** What header rewriting needs: rules, context, token limit, and the canonical mapping (null: none). */
export interface HeaderRewrite {
  params: RewriteParams;
  context: RewriteContextName;
  tokenLimit: number;
  /** Canonical mapping and masquerading of an internal-form address (null without CLEANUP_FLAG.MAP). */
  canonical: ((addr: string, kind: "sender" | "recipient") => Promise<string>) | null;
}

/** Rewrites the addresses of a sender or recipient header; returns the new text, or null when unchanged. */
export async function rewriteHeaderAddresses(
  h: { name: string; text: string },
  kind: "sender" | "recipient",
  rw: HeaderRewrite,
): Promise<string | null> {
  const value = decodeHeader(h.text.slice(h.text.indexOf(":") + 1));
  const tree = tok822Parse(value.text, rw.tokenLimit);
  let changed = false;
  for (const node of tok822Grep(tree)) {
    const ext = tok822AddrExternal(node);
    let out = rewriteExternal(rw.params, rw.context, ext);
    if (rw.canonical !== null) out = quote822Local(await rw.canonical(unquote822Local(out), kind));
    if (out !== ext) {
      changed = true;
      node.toks = tok822Scan(out);
    }
  }
  if (!changed) return null;
  const list = tok822Externalize(tree, { line: true, trunc: true });
  return foldAddressHeader(`${h.name}: ${value.encode(list)}`);
}
