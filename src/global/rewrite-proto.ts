/*
 * rewrite-proto - the wire contract of the trivial-rewrite service
 *
 * DESCRIPTION
 *   trivial-rewrite listens on private/rewrite (master.cf: rewrite unix - -
 *   n - - trivial-rewrite) and speaks the internal protocol
 *   (util/attr-server.ts, protocol name "trivial-rewrite"), one request per
 *   frame, any number of requests per connection:
 *
 *   { request: "rewrite", rule: "local" | "remote", address }
 *       -> { status: "ok", address }
 *   { request: "resolve", sender, address, context? }
 *       -> { status: "ok", transport, nexthop, recipient, flags }
 *       flags: RESOLVE_FLAG bits below (the address class and problems)
 *       context: "regular" (the default: delivery) or "verify" (address
 *       verification probes, routed with the address_verify_* parameters,
 *       Postfix's "verify" request)
 *   Temporary lookup failures answer { status: "tempfail", reason }.
 *   Addresses are in internal (unquoted) form.
 */
import { attr, attrSchema } from "../util/attr-schema.js";

export const REWRITE_PROTOCOL = "trivial-rewrite";
export const REWRITE_FRAME_MAX = 16384;

export const RESOLVE_FLAG = {
  /** The domain is local (mydestination, our interface addresses). */
  CLASS_LOCAL: 1,
  /** A virtual alias domain. */
  CLASS_ALIAS: 2,
  /** A virtual mailbox domain. */
  CLASS_VIRTUAL: 4,
  /** A relay_domains destination. */
  CLASS_RELAY: 8,
  /** Everything else (default_transport). */
  CLASS_DEFAULT: 16,
  /** The address has a routing operator (%, !, @ in the local part) that is not allowed. */
  FLAG_ROUTED: 32,
  /** The address is malformed. */
  FLAG_ERROR: 64,
  /** The transport is "error": the nexthop holds the reason. */
  FLAG_FAIL: 128,
} as const;

const ADDR = attr.str({ max: 2048 });

export const RewriteRequest = attrSchema({
  request: attr.enumOf(["rewrite", "resolve"]),
  rule: attr.optional(attr.enumOf(["local", "remote"])),
  sender: attr.optional(ADDR),
  address: ADDR,
  context: attr.optional(attr.enumOf(["regular", "verify"])),
});

export const RewriteReply = attrSchema({
  status: attr.enumOf(["ok", "tempfail"]),
  address: attr.optional(ADDR),
  transport: attr.optional(attr.str({ max: 128 })),
  nexthop: attr.optional(attr.str({ max: 1024 })),
  recipient: attr.optional(ADDR),
  flags: attr.optional(attr.int({ min: 0, max: 65535 })),
  reason: attr.optional(attr.str({ max: 1024 })),
});

export interface Resolved {
  transport: string;
  nexthop: string;
  recipient: string;
  flags: number;
}
