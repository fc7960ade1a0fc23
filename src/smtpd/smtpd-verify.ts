/*
 * smtpd-verify - reject_unverified_sender and reject_unverified_recipient
 *
 * DESCRIPTION
 *   As in Postfix: the address is looked up in the verify service
 *   (global/verify-client.ts). While the answer is "verification in
 *   progress", the query is repeated up to address_verify_poll_count
 *   times, address_verify_poll_delay apart, so that a quick probe can be
 *   waited for. Then:
 *     deliverable            no decision (dunno);
 *     in progress, deferred  unverified_*_defer_code (450)
 *                            "<a>: Sender address rejected: unverified
 *                            address: <reason>";
 *     undeliverable          unverified_*_reject_code (450 by default):
 *                            a 4xx code as above, a 5xx code "...:
 *                            undeliverable address: <reason>";
 *     no answer (service down)  450 "...: address verification problem".
 *   unverified_*_reject_reason replaces the reason when set. A temporary
 *   verdict follows unverified_*_tempfail_action: "defer" answers at once,
 *   "defer_if_permit" (the default, via reject_tempfail_action) answers
 *   only if the restrictions would otherwise accept the address. The
 *   enhanced code is 4.1.8/5.1.8 for a sender, 4.1.1/5.1.1 for a
 *   recipient.
 */
import { msg } from "../util/msg.js";
import { VerifyClient } from "../global/verify-client.js";
import { ADDR_STATUS } from "../global/verify-proto.js";
import type { Config } from "../global/config.js";
import { refuse, type CheckContext, type Verdict } from "./smtpd-check.js";

const DUNNO: Verdict = { kind: "dunno" };
let client: VerifyClient | null = null;

/** The verify client of this process. */
function verifyClient(cfg: Config): VerifyClient {
  client ??= VerifyClient.fromConfig(cfg);
  return client;
}

/** Waits a while. */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A 4xx verdict under unverified_*_tempfail_action. */
function tempfail(ctx: CheckContext, which: "sender" | "recipient", v: Verdict): Verdict {
  const action = ctx.cfg.get(`unverified_${which}_tempfail_action`).trim().toLowerCase();
  if (action === "defer") return v;
  if (action !== "defer_if_permit")
    msg.warn(`bad configuration: unverified_${which}_tempfail_action = ${action}; using defer_if_permit`);
  ctx.deferIfPermit ??= v;
  return DUNNO;
}

/** reject_unverified_sender / reject_unverified_recipient for the current address. */
export async function unverifiedCheck(ctx: CheckContext, which: "sender" | "recipient"): Promise<Verdict> {
  const address = which === "sender" ? ctx.sender : ctx.recipient;
  if (address === null || address === "") return DUNNO;
  const cfg = ctx.cfg;
  const v = verifyClient(cfg);
  const polls = cfg.int("address_verify_poll_count");
  const delayMs = cfg.time("address_verify_poll_delay") * 1000;
  let q = await v.query(address);
  for (let n = 1; q.ok && q.status === ADDR_STATUS.TODO && n < polls; n++) {
    await sleep(delayMs);
    q = await v.query(address);
  }
  const enh = which === "sender" ? "1.8" : "1.1";
  if (!q.ok) {
    msg.warn(`${cfg.get("address_verify_service_name")} service failure: ${q.reason}`);
    const r = refuse(ctx, which, "defer", "450", `4.${enh}`, "address verification problem");
    return tempfail(ctx, which, r);
  }
  if (q.status === ADDR_STATUS.OK) return DUNNO;
  const code =
    q.status === ADDR_STATUS.BOUNCE
      ? cfg.get(`unverified_${which}_reject_code`)
      : cfg.get(`unverified_${which}_defer_code`);
  if (!/^[245]\d\d$/.test(code)) {
    msg.warn(`bad unverified_${which} reply code ${code}; using 450`);
  }
  const c = /^[45]\d\d$/.test(code) ? code : code.startsWith("2") ? "" : "450";
  if (c === "") return DUNNO;
  const alt = cfg.get(`unverified_${which}_reject_reason`);
  const why = alt !== "" ? alt : q.reason;
  if (c.startsWith("4"))
    return tempfail(
      ctx,
      which,
      refuse(ctx, which, "defer", c, `4.${enh}`, `unverified address: ${why.slice(0, 250)}`),
    );
  return refuse(ctx, which, "reject", c, `5.${enh}`, `undeliverable address: ${why}`);
}
