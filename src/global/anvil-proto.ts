/*
 * anvil-proto - the wire contract of the anvil service
 *
 * DESCRIPTION
 *   anvil counts, per client, what smtpd reports so that smtpd can limit
 *   connection count and rate, message rate and recipient rate (Postfix's
 *   anvil(8)). It listens on private/anvil (master.cf: anvil unix - - n -
 *   1 anvil: one process, so the counts are global) and speaks the
 *   internal protocol (util/attr-server.ts, protocol name "anvil"), any
 *   number of requests per connection:
 *
 *   { request: "connect", ident }     -> { status: "ok", count, rate }
 *   { request: "disconnect", ident }  -> { status: "ok" }
 *   { request: "message", ident }     -> { status: "ok", rate }
 *   { request: "recipient", ident }   -> { status: "ok", rate }
 *   { request: "auth", ident }        -> { status: "ok", rate }
 *   { request: "newtls", ident }      -> { status: "ok", rate }   a new (not resumed) TLS session
 *   { request: "newtls_stat", ident } -> { status: "ok", rate }   the new TLS session rate, not counted
 *   { request: "lookup", ident }      -> { status: "ok", count, rate,
 *                                          messages, recipients }
 *
 *   ident is "service:client-address". Rates count events since the
 *   start of the client's current anvil_rate_time_unit window. A
 *   connection's "connect" events are undone when that connection to
 *   anvil ends, so a crashed smtpd leaves no phantom sessions behind.
 *   A malformed request gets { status: "fail" }.
 */
import { attr, attrSchema } from "../util/attr-schema.js";

export const ANVIL_PROTOCOL = "anvil";
export const ANVIL_FRAME_MAX = 1024;

export const AnvilRequest = attrSchema({
  request: attr.enumOf([
    "connect",
    "disconnect",
    "message",
    "recipient",
    "auth",
    "newtls",
    "newtls_stat",
    "lookup",
  ]),
  ident: attr.str({ max: 300, min: 1 }),
});

export const AnvilReply = attrSchema({
  status: attr.enumOf(["ok", "fail"]),
  count: attr.optional(attr.int({ min: 0, max: 2147483647 })),
  rate: attr.optional(attr.int({ min: 0, max: 2147483647 })),
  messages: attr.optional(attr.int({ min: 0, max: 2147483647 })),
  recipients: attr.optional(attr.int({ min: 0, max: 2147483647 })),
});

export type AnvilEvent =
  "connect" | "disconnect" | "message" | "recipient" | "auth" | "newtls" | "newtls_stat" | "lookup";
