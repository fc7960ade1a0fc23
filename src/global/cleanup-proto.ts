/*
 * cleanup-proto - the wire contract between cleanup and its clients
 *
 * DESCRIPTION
 *   A client (smtpd, pickup, bounce, a re-injecting filter) connects to
 *   private/cleanup. Every message is a frame of the internal protocol
 *   (util/attr-codec.ts), at most CLEANUP_FRAME_MAX bytes:
 *
 *   cleanup -> client  { protocol: "cleanup", queue_id }     the file is created
 *   client -> cleanup  { t: "flags", flags }                 CLEANUP_FLAG_* bits
 *                      { t: "attr", name, value }            log_ident, client info, ...
 *                      { t: "sender", address }
 *                      { t: "rcpt", address, [original, orcpt, notify] }
 *                      { t: "data", data }                   message bytes, any size split
 *                      { t: "milter", op, [name, value, index, data] }   smtpd's milter verdict/edits
 *                      { t: "end" }
 *   cleanup -> client  { status, [code, reason], queue_id }  after the file is durable
 *
 *   status is "ok" (the message is queued: only now may the client say so),
 *   "tempfail" (try again later) or "reject" (permanent, with an SMTP code
 *   and text). Message bytes travel as they came: lines end in LF or CRLF;
 *   cleanup splits them. The schemas check every field on receipt.
 */
import { attr, attrSchema } from "../util/attr-schema.js";

export const CLEANUP_PROTOCOL = "cleanup";
export const CLEANUP_FRAME_MAX = 262144;
export const CLEANUP_DATA_CHUNK = 65536;

export const CLEANUP_FLAG = {
  /** Bounce instead of rejecting (pickup, sendmail: there is no client to reject). */
  BOUNCE: 1,
  /** Run header/body checks and address mapping. */
  FILTER: 2,
  /** Take recipients from To/Cc/Bcc (sendmail -t). */
  EXTRACT: 4,
  /** Add missing From/Date/Message-ID/To as for a local submission. */
  LOCAL_HEADERS: 8,
  /** Apply virtual_alias_maps and canonical mapping. */
  MAP: 16,
  /** Run non_smtpd_milters (local submissions; smtpd runs its own milters and sends "milter" frames). */
  MILTER: 32,
} as const;

const ADDR = attr.str({ max: 2048, allowControl: false });

export const CleanupFrame = attrSchema({
  t: attr.enumOf(["flags", "attr", "sender", "rcpt", "data", "milter", "end"]),
});
/** What smtpd's milters decided at the end of the message: one modification or verdict per frame. */
export const MilterFrame = attrSchema({
  op: attr.enumOf([
    "addheader",
    "insheader",
    "chgheader",
    "addrcpt",
    "delrcpt",
    "chgfrom",
    "replbody",
    "hold",
    "discard",
    "reject",
  ]),
  name: attr.optional(attr.str({ max: 256, pattern: /^[!-9;-~]+$/ })),
  value: attr.optional(attr.bytes({ max: 65536 })),
  index: attr.optional(attr.int({ min: 0, max: 2147483647 })),
  data: attr.optional(attr.bytes({ max: CLEANUP_FRAME_MAX })),
});
export const FlagsFrame = attrSchema({ flags: attr.int({ min: 0, max: 255 }) });
export const AttrFrame = attrSchema({
  name: attr.str({ max: 64, pattern: /^[a-z_][a-z0-9_]*$/ }),
  value: attr.str({ max: 4096 }),
});
export const SenderFrame = attrSchema({ address: ADDR });
export const RcptFrame = attrSchema({
  address: ADDR,
  original: attr.optional(ADDR),
  orcpt: attr.optional(ADDR),
  notify: attr.optional(attr.int({ min: 0, max: 15 })),
});
export const DataFrame = attrSchema({ data: attr.bytes({ max: CLEANUP_FRAME_MAX }) });
export const CleanupHello = attrSchema({
  protocol: attr.str({ max: 32 }),
  queue_id: attr.str({ max: 32, pattern: /^[0-9A-Za-z]+$/ }),
});
export const CleanupReply = attrSchema({
  status: attr.enumOf(["ok", "tempfail", "reject"]),
  code: attr.optional(attr.str({ max: 16 })),
  reason: attr.optional(attr.str({ max: 1024 })),
  queue_id: attr.optional(attr.str({ max: 32 })),
});
