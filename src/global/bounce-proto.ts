/*
 * bounce-proto - the wire contract of the bounce, defer and trace services
 *
 * DESCRIPTION
 *   The services bounce, defer and trace (master.cf; all run the bounce
 *   program) keep per-message status logs in bounce/, defer/ and trace/
 *   and send delivery status notifications. One connection may carry many
 *   requests, in frames of the internal protocol (util/attr-codec.ts):
 *
 *   bounce -> client  { protocol: "bounce" }
 *   client -> bounce  { request: "append", log, queue_id, recipient,
 *                       original_recipient, [dsn_orig_rcpt], [dsn_notify],
 *                       status, action, reason, [relay] }
 *                     { request: "notify", kind, queue_name, queue_id }
 *   bounce -> client  { status: "ok" | "fail", [reason] }
 *
 *   "append" adds one record to the log named by `log`. "notify" with
 *   kind "bounce" returns the bounce log's recipients to the sender (or
 *   postmaster) and removes the log; kind "delay" warns the sender of the
 *   recipients in the defer log; kind "success" reports the trace log's
 *   recipients (DSN NOTIFY=SUCCESS) to the sender and removes the log;
 *   kind "trace" sends the whole trace log to the sender as a "Mail
 *   Delivery Status Report" (sendmail -bv: "deliverable"/"undeliverable"
 *   per recipient; sendmail -v: what happened to each) and removes it.
 *   All read the queue file in queue_name.
 *   A "fail" answer means nothing durable happened: the caller defers.
 */
import { attr, attrSchema } from "../util/attr-schema.js";

export const BOUNCE_PROTOCOL = "bounce";
export const BOUNCE_FRAME_MAX = 65536;

const addr = attr.str({ max: 2048 });
const qid = attr.str({ max: 32, min: 1, pattern: /^[0-9A-Za-z]+$/ });

export const BounceRequest = attrSchema({
  request: attr.enumOf(["append", "notify"]),
});

export const BounceAppend = attrSchema({
  log: attr.enumOf(["bounce", "defer", "trace"]),
  queue_id: qid,
  recipient: addr,
  original_recipient: addr,
  dsn_orig_rcpt: attr.optional(addr),
  dsn_notify: attr.optional(attr.int({ min: 0, max: 15 })),
  status: attr.str({ max: 16, pattern: /^[245]\.\d{1,3}\.\d{1,3}$/ }),
  action: attr.enumOf([
    "failed",
    "delayed",
    "delivered",
    "relayed",
    "expanded",
    "deliverable",
    "undeliverable",
  ]),
  reason: attr.str({ max: 1000 }),
  relay: attr.optional(attr.str({ max: 1024 })),
});

export const BounceNotify = attrSchema({
  kind: attr.enumOf(["bounce", "delay", "success", "trace"]),
  queue_name: attr.enumOf(["incoming", "active", "deferred", "hold"]),
  queue_id: qid,
});

export const BounceReply = attrSchema({
  status: attr.enumOf(["ok", "fail"]),
  reason: attr.optional(attr.str({ max: 1024 })),
});

export type BounceLog = "bounce" | "defer" | "trace";
export type BounceAction =
  "failed" | "delayed" | "delivered" | "relayed" | "expanded" | "deliverable" | "undeliverable";
export type BounceNoticeKind = "bounce" | "delay" | "success" | "trace";

/** One record of a status log (what "append" carries). */
export interface BounceRecord {
  recipient: string;
  original_recipient: string;
  dsn_orig_rcpt?: string;
  dsn_notify?: number;
  status: string;
  action: BounceAction;
  reason: string;
  relay?: string;
}
