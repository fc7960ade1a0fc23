/*
 * showq-proto - the wire contract of the queue listing service
 *
 * DESCRIPTION
 *   showq listens on public/showq so that local users can list the queue
 *   without reading it. One listing per connection, in frames of the
 *   internal protocol (util/attr-codec.ts), at most SHOWQ_FRAME_MAX bytes:
 *
 *   showq -> client  { protocol: "showq", nonce }
 *   client           creates maildrop/cred.<nonce> (global/uid-proof.ts)
 *   client -> showq  { request: "list" }
 *   showq -> client  { status: "ok" } or { status: "deny" | "error", reason }
 *   then, after ok, for each message:
 *                    { t: "msg", queue_name, queue_id, arrival_time,
 *                      message_size, forced_expire, sender }
 *                    { t: "rcpt", orig_address, address, log_class, why } ...
 *   and at the end   { t: "end" }
 *
 *   The field names are Postfix's. Addresses are in external (quoted)
 *   form with non-printable characters replaced by "?"; log_class is
 *   "defer" or "bounce" when why comes from that per-message log, else
 *   empty. Messages in maildrop/ are listed under a digest of their file
 *   name, never the name itself (the name is what keeps the file private).
 */
import { attr, attrSchema, type AttrValueOf } from "../util/attr-schema.js";

export const SHOWQ_PROTOCOL = "showq";
export const SHOWQ_FRAME_MAX = 65536;
export const SHOWQ_QUEUES = ["maildrop", "active", "incoming", "deferred", "hold"] as const;

const ADDR = attr.str({ max: 4096 });

export const ShowqHello = attrSchema({
  protocol: attr.str({ max: 32 }),
  nonce: attr.str({ max: 32, min: 32, pattern: /^[0-9a-f]{32}$/ }),
});
export const ShowqRequest = attrSchema({ request: attr.enumOf(["list"]) });
export const ShowqStatus = attrSchema({
  status: attr.enumOf(["ok", "deny", "error"]),
  reason: attr.optional(attr.str({ max: 1024 })),
});
export const ShowqItem = attrSchema({ t: attr.enumOf(["msg", "rcpt", "end"]) });
export const ShowqMsg = attrSchema({
  queue_name: attr.enumOf(SHOWQ_QUEUES),
  queue_id: attr.str({ max: 32, min: 1, pattern: /^[0-9A-Za-z]+$/ }),
  arrival_time: attr.int({ min: 0, max: 2 ** 40 }),
  message_size: attr.int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  forced_expire: attr.int({ min: 0, max: 1 }),
  sender: ADDR,
});
export const ShowqRcpt = attrSchema({
  orig_address: ADDR,
  address: ADDR,
  log_class: attr.enumOf(["", "defer", "bounce"]),
  why: attr.str({ max: 1024 }),
});

export type ShowqMsgValue = AttrValueOf<typeof ShowqMsg.shape>;
export type ShowqRcptValue = AttrValueOf<typeof ShowqRcpt.shape>;
