/*
 * flush-proto - the wire contract of the fast flush service
 *
 * DESCRIPTION
 *   flush keeps, for each destination in fast_flush_domains, a log of the
 *   queue IDs of mail deferred to it, so that ETRN and "postqueue -s site"
 *   deliver that mail without scanning the whole deferred queue. It
 *   listens on public/flush; one request per connection, in frames of the
 *   internal protocol (util/attr-codec.ts):
 *
 *   flush -> client  { protocol: "flush", nonce }
 *   client           creates maildrop/cred.<nonce> (global/uid-proof.ts)
 *   client -> flush  { request: "send_site", site }     deliver mail for a site
 *                    { request: "send_file", queue_id }  deliver one message
 *                    { request: "add", site, queue_id }  log deferred mail
 *                    { request: "refresh" }              refresh old logs
 *                    { request: "purge" }                refresh every log
 *   flush -> client  { status, [reason] }
 *
 *   status is Postfix's: "ok" (done, or accepted for the background),
 *   "fail" (could not be done), "bad" (malformed request), "deny" (the
 *   site is not eligible for fast flush, or the caller may not ask:
 *   send_site and send_file need authorized_flush_users, the others
 *   root or mail_owner).
 */
import { attr, attrSchema } from "../util/attr-schema.js";

export const FLUSH_PROTOCOL = "flush";
export const FLUSH_FRAME_MAX = 4096;

export const FlushHello = attrSchema({
  protocol: attr.str({ max: 32 }),
  nonce: attr.str({ max: 32, min: 32, pattern: /^[0-9a-f]{32}$/ }),
});
export const FlushRequest = attrSchema({
  request: attr.enumOf(["send_site", "send_file", "add", "refresh", "purge"]),
  site: attr.optional(attr.str({ max: 255, min: 1 })),
  queue_id: attr.optional(attr.str({ max: 32, min: 1, pattern: /^[0-9A-Za-z]+$/ })),
});
export const FlushReply = attrSchema({
  status: attr.enumOf(["ok", "fail", "bad", "deny"]),
  reason: attr.optional(attr.str({ max: 1024 })),
});

export type FlushStatus = "ok" | "fail" | "bad" | "deny";
export type FlushRequestValue =
  | { request: "send_site"; site: string }
  | { request: "send_file"; queue_id: string }
  | { request: "add"; site: string; queue_id: string }
  | { request: "refresh" }
  | { request: "purge" };
