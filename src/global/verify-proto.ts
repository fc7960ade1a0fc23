/*
 * verify-proto - the wire contract of the address verification service
 *
 * DESCRIPTION
 *   The verify service (master.cf: verify unix - - n - 1 verify) keeps the
 *   address verification cache. Clients (smtpd for reject_unverified_*,
 *   delivery agents reporting a probe's outcome) connect to
 *   private/$address_verify_service_name and send frames of the internal
 *   protocol (util/attr-codec.ts), many per connection:
 *
 *   verify -> client  { protocol: "verify" }
 *   client -> verify  { request: "query", address }
 *   verify -> client  { status: "ok", addr_status, reason }
 *   client -> verify  { request: "update", address, addr_status, reason }
 *   verify -> client  { status: "ok" }
 *   verify -> client  { status: "bad", reason }         a malformed request
 *
 *   addr_status is Postfix's recipient status: 0 deliverable, 1 deferred
 *   (a temporary failure), 2 undeliverable, 3 "to do": nothing is known
 *   yet and a probe is (or will be) on its way. An update carries 0, 1 or
 *   2. Addresses are at most VERIFY_ADDR_MAX bytes, reasons at most
 *   VERIFY_REASON_MAX, without control characters (a reason's control
 *   characters are replaced before it is sent).
 */
import { attr, attrSchema } from "../util/attr-schema.js";

export const VERIFY_PROTOCOL = "verify";
export const VERIFY_FRAME_MAX = 16384;
export const VERIFY_ADDR_MAX = 1024;
export const VERIFY_REASON_MAX = 1000;

/** Recipient status values (Postfix's DEL_RCPT_STAT_*). */
export const ADDR_STATUS = { OK: 0, DEFER: 1, BOUNCE: 2, TODO: 3 } as const;
export type AddrStatus = (typeof ADDR_STATUS)[keyof typeof ADDR_STATUS];

const address = attr.str({ max: VERIFY_ADDR_MAX, allowControl: false });
const reason = attr.str({ max: VERIFY_REASON_MAX, allowControl: false });

export const VerifyRequest = attrSchema({ request: attr.enumOf(["query", "update"]) });
export const VerifyQuery = attrSchema({ address });
export const VerifyUpdate = attrSchema({ address, addr_status: attr.int({ min: 0, max: 2 }), reason });
export const VerifyReply = attrSchema({
  status: attr.enumOf(["ok", "bad"]),
  addr_status: attr.optional(attr.int({ min: 0, max: 3 })),
  reason: attr.optional(attr.str({ max: VERIFY_REASON_MAX })),
});

/** A reason made fit for the wire: one line, printable, bounded. */
export function verifyReason(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, "?").slice(0, VERIFY_REASON_MAX);
}

/** Postfix's verify_stat2name: the word for a status in logs. */
export function addrStatusName(s: number): string {
  return ["deliverable", "deferred", "undeliverable", "unknown"][s] ?? "bad";
}
