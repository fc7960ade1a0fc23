/*
 * tlsmgr-proto - the wire contract of the tlsmgr service
 *
 * DESCRIPTION
 *   tlsmgr keeps what the TLS endpoints of one instance share: the session
 *   ticket key of the SMTP server processes, and the TLS session caches of
 *   the SMTP server (session IDs of TLS 1.2 clients without tickets) and
 *   of the smtp and lmtp clients (Postfix's tlsmgr(8)). It listens on
 *   private/tlsmgr (master.cf: tlsmgr unix - - y 1000? 1 tlsmgr: one
 *   process, so every smtpd and agent process sees the same state) and
 *   speaks the internal protocol (util/attr-server.ts, protocol name
 *   "tlsmgr"), any number of requests per connection:
 *
 *   { request: "tktkey" }
 *       -> { status: "ok", key, lifetime }   the current ticket key (48
 *                                            bytes, Node's ticketKeys
 *                                            layout) and the seconds it
 *                                            stays current
 *       -> { status: "fail" }                tickets are off
 *   { request: "lookup", cache_type, cache_id }
 *       -> { status: "ok", session } | { status: "notfound" }
 *   { request: "update", cache_type, cache_id, session, timeout }
 *       -> { status: "ok" } | { status: "fail" }   (too big, timeout <= 0)
 *   { request: "delete", cache_type, cache_id } -> { status: "ok" }
 *
 *   cache_type is "smtpd", "smtp" or "lmtp" (the three caches are kept
 *   apart, as in Postfix); cache_id is the caller's key (a session ID in
 *   hex for smtpd, the server and policy for the clients); session is the
 *   serialized session as Node gives it; timeout is how long (seconds) the
 *   entry stays valid. A malformed request gets { status: "fail" }.
 */
import { attr, attrSchema } from "../util/attr-schema.js";

export const TLSMGR_PROTOCOL = "tlsmgr";
/** The largest serialized session kept (a session with a long client certificate chain fits). */
export const TLSMGR_SESSION_MAX = 32 * 1024;
export const TLSMGR_ID_MAX = 512;
export const TLSMGR_FRAME_MAX = TLSMGR_SESSION_MAX + TLSMGR_ID_MAX + 1024;
/** Node's ticketKeys: 16 bytes key name, 16 bytes HMAC secret, 16 bytes AES key. */
export const TICKET_KEY_LEN = 48;
/** The longest timeout (smtpd_tls_session_cache_timeout's upper bound, 100 days). */
export const TLSMGR_TIMEOUT_MAX = 8640000;

export const TLSMGR_CACHE_TYPES = ["smtpd", "smtp", "lmtp"] as const;
export type TlsmgrCacheType = (typeof TLSMGR_CACHE_TYPES)[number];

export const TlsmgrRequest = attrSchema({
  request: attr.enumOf(["tktkey", "lookup", "update", "delete"]),
  cache_type: attr.optional(attr.enumOf(TLSMGR_CACHE_TYPES)),
  cache_id: attr.optional(attr.str({ min: 1, max: TLSMGR_ID_MAX })),
  session: attr.optional(attr.bytes({ min: 1, max: TLSMGR_SESSION_MAX })),
  timeout: attr.optional(attr.int({ min: 0, max: TLSMGR_TIMEOUT_MAX })),
});

export const TlsmgrReply = attrSchema({
  status: attr.enumOf(["ok", "notfound", "fail"]),
  key: attr.optional(attr.bytes({ min: TICKET_KEY_LEN, max: TICKET_KEY_LEN })),
  lifetime: attr.optional(attr.int({ min: 1, max: TLSMGR_TIMEOUT_MAX })),
  session: attr.optional(attr.bytes({ min: 1, max: TLSMGR_SESSION_MAX })),
});

/** A checked reply. */
export type TlsmgrReplyValue = Extract<ReturnType<typeof TlsmgrReply.parse>, { ok: true }>["value"];
