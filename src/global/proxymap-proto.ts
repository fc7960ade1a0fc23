/*
 * proxymap-proto - the wire contract of the proxymap table lookup service
 *
 * SYNOPSIS
 *   import { PROXYMAP_PROTOCOL, ProxyStat, buildProxyRequest, parseProxyRequest,
 *            buildProxyReply, parseProxyReply } from "../global/proxymap-proto.js";
 *
 * DESCRIPTION
 *   A client of proxymap (dict-proxy.ts, the proxy: table type) sends one
 *   request per frame on a connection to private/proxymap; the service
 *   says hello with protocol "proxymap" first (attr-server.ts). Like
 *   Postfix's, every request names the table and the flags it was opened
 *   with, so that a request may go to any proxymap process:
 *
 *     open      table, inst_flags                 -> status, flags
 *     lookup    table, inst_flags, flags, key     -> status, flags, value
 *     sequence  table, inst_flags, flags, func    -> status, flags, key, value
 *               func "first" starts a listing, "next" continues it (the
 *               cursor belongs to the connection)
 *
 *   "table" is "type:name" without the "proxy:" prefix. "inst_flags" are
 *   the dict flags of the client's table (DictFlag values, as Postfix's);
 *   "flags" in a reply are the table's flags as the server opened it
 *   (FIXED or PATTERN included).
 *
 *   The reply status keeps Postfix's numbers: OK 0 (found), NOKEY 1 (not
 *   found; for sequence: no more entries), RETRY 2 (temporary failure),
 *   BAD 3 (malformed request), DENY 4 (the table is not in
 *   proxy_read_maps), CONFIG 5 (the table is misconfigured). A reply may
 *   carry "reason", a short text for the client's log.
 *
 *   Keys and values may hold any text except NUL (header_checks keys hold
 *   newlines); they are capped at PROXY_FIELD_MAX bytes.
 */
import type { AttrList } from "../util/attr-codec.js";
import { attr, attrSchema } from "../util/attr-schema.js";

/** The protocol name in the service's hello. */
export const PROXYMAP_PROTOCOL = "proxymap";

/** Largest key or value carried, in bytes. */
export const PROXY_FIELD_MAX = 256 * 1024;

/** Longest table name ("type:name"), in bytes. */
export const PROXY_TABLE_MAX = 4096;

/** Reply status codes (Postfix's PROXY_STAT_* numbers). */
export const ProxyStat = { OK: 0, NOKEY: 1, RETRY: 2, BAD: 3, DENY: 4, CONFIG: 5 } as const;

/** One of the reply status codes. */
export type ProxyStatus = (typeof ProxyStat)[keyof typeof ProxyStat];

/** A request to the service. */
export type ProxyRequest =
  | { req: "open"; table: string; instFlags: number }
  | { req: "lookup"; table: string; instFlags: number; flags: number; key: string }
  | { req: "sequence"; table: string; instFlags: number; flags: number; func: "first" | "next" };

/** A reply from the service. */
export interface ProxyReply {
  status: ProxyStatus;
  flags: number;
  key?: string;
  value?: string;
  reason?: string;
}

const TABLE = attr.str({ min: 3, max: PROXY_TABLE_MAX, pattern: /^[A-Za-z0-9_-]+:/ });
const FLAGS = attr.int({ min: 0, max: 0x7fffffff });
/** Every control character except NUL, which no table key or value holds. */
const NON_NUL_CONTROLS = Array.from({ length: 0xa0 }, (_, i) => String.fromCharCode(i))
  .filter((c, i) => i > 0 && (i < 0x20 || i >= 0x7f))
  .join("");
const FIELD = attr.str({ max: PROXY_FIELD_MAX, allowControl: NON_NUL_CONTROLS });

const Head = attrSchema({ req: attr.enumOf(["open", "lookup", "sequence"]) });
const OpenReq = attrSchema({ req: attr.enumOf(["open"]), table: TABLE, inst_flags: FLAGS });
const LookupReq = attrSchema({
  req: attr.enumOf(["lookup"]),
  table: TABLE,
  inst_flags: FLAGS,
  flags: FLAGS,
  key: FIELD,
});
const SequenceReq = attrSchema({
  req: attr.enumOf(["sequence"]),
  table: TABLE,
  inst_flags: FLAGS,
  flags: FLAGS,
  func: attr.enumOf(["first", "next"]),
});
const Reply = attrSchema({
  status: attr.int({ min: 0, max: 5 }),
  flags: FLAGS,
  key: attr.optional(FIELD),
  value: attr.optional(FIELD),
  reason: attr.optional(attr.str({ max: 1024 })),
});

/** The result of checking a received message. */
export type ProxyCheck<T> = { ok: true; value: T } | { ok: false; error: string };

/** Converts a request to its wire form. */
export function buildProxyRequest(r: ProxyRequest): AttrList {
  switch (r.req) {
    case "open":
      return OpenReq.build({ req: "open", table: r.table, inst_flags: r.instFlags });
    case "lookup":
      return LookupReq.build({ req: "lookup", table: r.table, inst_flags: r.instFlags, ...pick(r) });
    case "sequence":
      return SequenceReq.build({
        req: "sequence",
        table: r.table,
        inst_flags: r.instFlags,
        flags: r.flags,
        func: r.func,
      });
  }
}

/** The flags and key of a lookup request, in wire names. */
function pick(r: { flags: number; key: string }): { flags: number; key: string } {
  return { flags: r.flags, key: r.key };
}

/** Checks a received request (the server's side). */
export function parseProxyRequest(attrs: AttrList): ProxyCheck<ProxyRequest> {
  const head = Head.parse(attrs);
  if (!head.ok) return head;
  if (head.value.req === "open") {
    const r = OpenReq.parse(attrs);
    return r.ok
      ? { ok: true, value: { req: "open", table: r.value.table, instFlags: r.value.inst_flags } }
      : r;
  }
  if (head.value.req === "lookup") {
    const r = LookupReq.parse(attrs);
    if (!r.ok) return r;
    const { table, inst_flags, flags, key } = r.value;
    return { ok: true, value: { req: "lookup", table, instFlags: inst_flags, flags, key } };
  }
  const r = SequenceReq.parse(attrs);
  if (!r.ok) return r;
  const { table, inst_flags, flags, func } = r.value;
  return { ok: true, value: { req: "sequence", table, instFlags: inst_flags, flags, func } };
}

/** Converts a reply to its wire form. */
export function buildProxyReply(r: ProxyReply): AttrList {
  return Reply.build(r);
}

/** Checks a received reply (the client's side). */
export function parseProxyReply(attrs: AttrList): ProxyCheck<ProxyReply> {
  const r = Reply.parse(attrs);
  if (!r.ok) return r;
  const { status, flags, key, value, reason } = r.value;
  const out: ProxyReply = { status: status as ProxyStatus, flags };
  if (key !== undefined) out.key = key;
  if (value !== undefined) out.value = value;
  if (reason !== undefined) out.reason = reason;
  return { ok: true, value: out };
}

/** The name of a status code, for logs. */
export function proxyStatName(status: number): string {
  const names = ["OK", "NOKEY", "RETRY", "BAD", "DENY", "CONFIG"];
  return names[status] ?? `status ${status}`;
}
