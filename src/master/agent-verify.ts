/*
 * agent-verify - what a delivery agent does with a trace-only request
 *
 * SYNOPSIS
 *   const kept = await verifyReport(env, req, i, result, relay);
 *   await recordTrace(env, req, i, result, relay);
 *
 * DESCRIPTION
 *   A request whose flags say MTA_VRFY (a probe of the verify service) or
 *   USR_VRFY (sendmail -bv) is not delivered: the agent finds out what
 *   would happen (deliver() does that and says "sent", "deferred" or
 *   "bounced" as usual) and agent-server.ts hands each result here
 *   instead of to the bounce and defer logs:
 *     MTA_VRFY  the verify service is told the outcome of the recipient's
 *               original address and, when it differs, of its address
 *               (0 deliverable, 1 deferred, 2 undeliverable); with
 *               address_verify_negative_cache = no an undeliverable
 *               outcome is not cached ("undeliverable-but-not-cached").
 *     USR_VRFY  the trace log gets "deliverable" or "undeliverable" with
 *               "delivery via <relay>: <reason>"; qmgr later has the
 *               trace service mail the report to the sender.
 *   Either way the recipient is then done: it is never retried, bounced
 *   or deferred, and nobody else hears about it. When the report cannot
 *   be made (the service is down) the recipient is deferred and the
 *   request is repeated later.
 *   With RECORD (sendmail -v) delivery happens as usual and every outcome
 *   is also written to the trace log ("delivered", "delayed", "failed"),
 *   from which the sender gets a report when the message is done.
 */
import { msg } from "../util/msg.js";
import type { BounceClient } from "../global/bounce-client.js";
import type { BounceAction } from "../global/bounce-proto.js";
import { DEL_REQ_FLAG, type DeliveryRequest, type RcptResult } from "../global/deliver-proto.js";
import type { Config } from "../global/config.js";
import type { VerifyClient } from "../global/verify-client.js";
import { ADDR_STATUS } from "../global/verify-proto.js";

export interface VerifyEnv {
  cfg: Config;
  bounce: BounceClient;
  verify: VerifyClient;
}

/** What a trace-only result became: the status word for the log, and whether the recipient is done. */
export interface VerifyOutcome {
  done: boolean;
  /** "deliverable", "undeliverable", "undeliverable-but-not-cached", or the kept result when not done. */
  word: string;
  result: RcptResult;
}

/** The trace log's reason: "delivery via <relay>: <reason>" (Postfix's trace_append). */
function traceReason(relay: string | undefined, text: string): string {
  return relay !== undefined && relay !== "" && relay !== "none" ? `delivery via ${relay}: ${text}` : text;
}

/** Appends one record to the trace log. */
async function traceAppend(
  env: VerifyEnv,
  req: DeliveryRequest,
  i: number,
  res: RcptResult,
  action: BounceAction,
  relay: string | undefined,
): Promise<boolean> {
  const rc = req.recipients[i];
  if (rc === undefined) return false;
  if (!env.bounce.configured("trace")) {
    msg.warn(`${req.queueId}: no trace service in master.cf: cannot record the delivery status`);
    return false;
  }
  const r = await env.bounce.append("trace", req.queueId, {
    recipient: rc.address,
    original_recipient: rc.original,
    ...(rc.orcpt !== undefined ? { dsn_orig_rcpt: rc.orcpt } : {}),
    ...(rc.notify !== undefined ? { dsn_notify: rc.notify } : {}),
    status: res.dsn,
    action,
    reason: traceReason(relay, res.text).slice(0, 1000),
    ...(relay !== undefined ? { relay } : {}),
  });
  if (!r.ok) msg.warn(`${req.queueId}: ${r.reason}`);
  return r.ok;
}

/** Tells the verify service a probe's outcome (original address, then the address when it differs). */
async function verifyAppend(
  env: VerifyEnv,
  req: DeliveryRequest,
  i: number,
  res: RcptResult,
): Promise<string | null> {
  const rc = req.recipients[i];
  if (rc === undefined) return null;
  const ok = res.status === "sent";
  if (!ok && !env.cfg.bool("address_verify_negative_cache")) return "undeliverable-but-not-cached";
  const status = ok ? ADDR_STATUS.OK : res.status === "deferred" ? ADDR_STATUS.DEFER : ADDR_STATUS.BOUNCE;
  const reason = res.text;
  const addrs = rc.original !== "" && rc.original !== rc.address ? [rc.original, rc.address] : [rc.address];
  for (const a of addrs) {
    const r = await env.verify.update(a, status, reason);
    if (!r.ok) {
      msg.warn(`${req.queueId}: ${r.reason}`);
      return null;
    }
  }
  return ok ? "deliverable" : "undeliverable";
}

/** Reports one result of a trace-only request (see the module comment). */
export async function verifyReport(
  env: VerifyEnv,
  req: DeliveryRequest,
  i: number,
  res: RcptResult,
  relay: string | undefined,
): Promise<VerifyOutcome> {
  const flags = req.flags ?? 0;
  const word = res.status === "sent" ? "deliverable" : "undeliverable";
  const failed: VerifyOutcome = {
    done: false,
    word: "deferred",
    result: { status: "deferred", dsn: "4.3.0", text: "address verification report failure" },
  };
  if ((flags & DEL_REQ_FLAG.MTA_VRFY) !== 0) {
    const w = await verifyAppend(env, req, i, res);
    return w === null ? failed : { done: true, word: w, result: res };
  }
  const ok = await traceAppend(env, req, i, res, word, relay);
  return ok ? { done: true, word, result: res } : failed;
}

/** sendmail -v: records a normal delivery's outcome in the trace log too (a failure is only logged). */
export async function recordTrace(
  env: VerifyEnv,
  req: DeliveryRequest,
  i: number,
  res: RcptResult,
  relay: string | undefined,
  relayed: boolean,
): Promise<void> {
  if (((req.flags ?? 0) & DEL_REQ_FLAG.RECORD) === 0) return;
  const action: BounceAction =
    res.status === "sent"
      ? relayed
        ? "relayed"
        : "delivered"
      : res.status === "deferred"
        ? "delayed"
        : "failed";
  await traceAppend(env, req, i, res, action, relay);
}
