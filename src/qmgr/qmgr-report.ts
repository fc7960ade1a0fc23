/*
 * qmgr-report - qmgr's part in status reports: defer logs, returns, expiry, delay warnings
 *
 * DESCRIPTION
 *   The queue manager's side of the bounce, defer and trace services
 *   (global/bounce-client.ts), used by qmgr-manager.ts:
 *     startAttempt   removes the defer log of a message entering the active
 *                    queue, as Postfix does: the log then holds the reasons
 *                    of the last attempt only (what mailq shows).
 *     defer          logs a recipient that qmgr itself defers.
 *     expired/expire a message older than maximal_queue_lifetime
 *                    (bounce_queue_lifetime for the null sender): its
 *                    deferred recipients go to the bounce log ("message
 *                    expired") and are marked done.
 *     returnBounces  asks the bounce service to return what the bounce log
 *                    holds; false when it could not (the message waits).
 *     delayWarning   asks the defer service for a delay warning when the
 *                    message has been queued for delay_warning_time and had
 *                    not been at its previous attempt.
 *     reportSuccess  asks the trace service for the success notices of the
 *                    recipients in the trace log (DSN NOTIFY=SUCCESS).
 *     traceDefer     a recipient of a trace-only message (verify probe,
 *                    sendmail -bv) that qmgr itself cannot route: as a
 *                    delivery agent would, the outcome goes to the verify
 *                    service or the trace log ("undeliverable") and the
 *                    recipient is marked done, so that a probe never
 *                    waits in the deferred queue.
 *     reportTrace    asks the trace service to mail the sender the
 *                    "Mail Delivery Status Report" of a finished
 *                    sendmail -bv or sendmail -v message.
 *     removeLogs     removes a finished message's logs.
 *   The logs are looked at with synchronous calls that make no exception
 *   object for a missing file: for mail delivered at once none exists,
 *   and an asynchronous call that fails costs far more than the system
 *   call. qmgr-manager.ts skips these looks for a message that cannot
 *   have logs.
 *   "now" for expiry and warnings is the real time plus the test hook
 *   POSTERN_TEST_CLOCK_OFFSET (seconds), read once at start.
 */
import { statSync, unlinkSync, type Stats } from "node:fs";
import { msg } from "../util/msg.js";
import type { BounceClient } from "../global/bounce-client.js";
import type { Config } from "../global/config.js";
import { markDone, type Envelope } from "../global/queue-file.js";
import { DEL_REQ_FLAG } from "../global/deliver-proto.js";
import { VerifyClient } from "../global/verify-client.js";
import { ADDR_STATUS } from "../global/verify-proto.js";
import type { QueueName, QueuePaths } from "../global/queue-path.js";
import type { QRcpt } from "./qmgr-sched.js";
import { secs } from "../master/agent-server.js";

/** The status of a path, or null when it does not exist or cannot be looked at (no exception object made). */
function statOrNull(path: string): Stats | null {
  try {
    return statSync(path, { throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}

/** The test clock offset in seconds (0 unless the test hook is set). */
function clockOffset(): number {
  const v = Number(process.env["POSTERN_TEST_CLOCK_OFFSET"] ?? "0");
  return Number.isFinite(v) ? v : 0;
}

export class Reporter {
  #cfg: Config;
  #paths: QueuePaths;
  #bounce: BounceClient;
  #offset = clockOffset();
  #verify: VerifyClient | null = null;

  constructor(cfg: Config, paths: QueuePaths, bounce: BounceClient) {
    this.#cfg = cfg;
    this.#paths = paths;
    this.#bounce = bounce;
    if (this.#offset !== 0) msg.warn(`test hook: the clock is moved by ${this.#offset} seconds`);
  }

  /** Now, in seconds, as expiry and warnings see it. */
  now(): number {
    return Date.now() / 1000 + this.#offset;
  }

  /** When the previous attempt on a waiting file ended (its change time, ms), or null. */
  lastAttempt(queue: QueueName, id: string): number | null {
    return statOrNull(this.#paths.path(queue, id))?.ctimeMs ?? null;
  }

  /** Removes the defer log of a message entering the active queue. */
  startAttempt(id: string): void {
    this.#remove("defer", id);
  }

  /** Removes a log if it exists; errors are ignored (the next attempt tries again). */
  #remove(log: "defer" | "bounce" | "trace", id: string): void {
    const path = this.#paths.path(log, id);
    if (statOrNull(path) === null) return;
    try {
      unlinkSync(path);
    } catch {
      /* gone already, or the next attempt removes it */
    }
  }

  /**
   * Logs a recipient that qmgr defers for a reason of its own (lost agent,
   * resolver failure, suspended destination): the maillog's status=deferred
   * line (relay=none; the c and d delays are 0), then the defer log entry.
   * Never fails.
   */
  async defer(
    id: string,
    rc: QRcpt,
    dsn: string,
    text: string,
    times: { arrival: number; active: number },
  ): Promise<void> {
    const now = Date.now();
    const delays = [times.active - times.arrival, now - times.active, 0, 0].map(secs).join("/");
    const orig = rc.original !== "" && rc.original !== rc.address ? ` orig_to=<${rc.original}>,` : "";
    msg.info(
      `${id}: to=<${rc.address}>,${orig} relay=none, delay=${secs(now - times.arrival)}, delays=${delays}, dsn=${dsn}, status=deferred (${text})`,
    );
    if (!this.#bounce.configured("defer")) return;
    const r = await this.#bounce.append("defer", id, {
      recipient: rc.address,
      original_recipient: rc.original,
      ...(rc.orcpt !== undefined ? { dsn_orig_rcpt: rc.orcpt } : {}),
      ...(rc.notify !== undefined ? { dsn_notify: rc.notify } : {}),
      status: dsn,
      action: "delayed",
      reason: text,
    });
    if (!r.ok) msg.warn(`${id}: ${r.reason}`);
  }

  /** True when a message has outlived its queue lifetime. */
  expired(env: Envelope): boolean {
    const life = this.#cfg.time(env.sender === "" ? "bounce_queue_lifetime" : "maximal_queue_lifetime");
    return this.now() - env.arrival.sec > life;
  }

  /** Bounces the deferred recipients of an expired message; returns how many were bounced. */
  async expire(id: string, env: Envelope, rcpts: Array<{ rc: QRcpt; text: string }>): Promise<number> {
    if (!this.#bounce.configured("bounce")) return 0;
    msg.info(`${id}: from=<${env.sender}>, status=expired, returned to sender`);
    let n = 0;
    for (const { rc, text } of rcpts) {
      const r = await this.#bounce.append("bounce", id, {
        recipient: rc.address,
        original_recipient: rc.original,
        ...(rc.orcpt !== undefined ? { dsn_orig_rcpt: rc.orcpt } : {}),
        ...(rc.notify !== undefined ? { dsn_notify: rc.notify } : {}),
        status: "5.4.7",
        action: "failed",
        reason: text === "" ? "message expired" : `message expired (last error: ${text})`,
      });
      if (!r.ok) {
        msg.warn(`${id}: ${r.reason}`);
        continue;
      }
      try {
        await markDone(this.#paths.path("active", id), rc.offset);
        n++;
      } catch (err) {
        msg.warn(`${id}: cannot mark recipient done: ${(err as Error).message}`);
      }
    }
    return n;
  }

  /** Returns the bounce log's recipients to the sender; false when that must be tried again later. */
  async returnBounces(id: string, bounced: number): Promise<boolean> {
    if (bounced === 0 && statOrNull(this.#paths.path("bounce", id)) === null) return true;
    if (!this.#bounce.configured("bounce")) return true;
    const r = await this.#bounce.notify("bounce", "active", id);
    if (!r.ok) msg.warn(`${id}: cannot return the message to its sender: ${r.reason}`);
    return r.ok;
  }

  /** Sends a delay warning when the message crossed delay_warning_time since its previous attempt. */
  async delayWarning(id: string, env: Envelope, lastAttemptMs: number | null): Promise<void> {
    const after = this.#cfg.time("delay_warning_time");
    if (after <= 0 || this.now() - env.arrival.sec < after) return;
    if (lastAttemptMs !== null && lastAttemptMs / 1000 + this.#offset - env.arrival.sec >= after) return;
    if (!this.#bounce.configured("defer")) return;
    const r = await this.#bounce.notify("delay", "active", id);
    if (!r.ok) msg.warn(`${id}: cannot send a delay warning: ${r.reason}`);
  }

  /** Sends the success notices of a finished message, if its trace log has any. */
  async reportSuccess(id: string): Promise<void> {
    if (statOrNull(this.#paths.path("trace", id)) === null) return;
    if (!this.#bounce.configured("trace")) return;
    const r = await this.#bounce.notify("success", "active", id);
    if (!r.ok) msg.warn(`${id}: cannot send a delivery status notification: ${r.reason}`);
  }

  /** Reports a recipient of a trace-only message that qmgr defers, and marks it done; never fails. */
  async traceDefer(id: string, flags: number, rc: QRcpt, dsn: string, text: string): Promise<void> {
    let ok: boolean;
    if ((flags & DEL_REQ_FLAG.MTA_VRFY) !== 0) {
      if (!this.#cfg.bool("address_verify_negative_cache")) ok = true;
      else {
        this.#verify ??= VerifyClient.fromConfig(this.#cfg);
        const r = await this.#verify.update(rc.original || rc.address, ADDR_STATUS.DEFER, text);
        if (!r.ok) msg.warn(`${id}: ${r.reason}`);
        ok = r.ok;
      }
    } else {
      const r = await this.#bounce.append("trace", id, {
        recipient: rc.address,
        original_recipient: rc.original,
        status: dsn,
        action: "undeliverable",
        reason: text,
      });
      if (!r.ok) msg.warn(`${id}: ${r.reason}`);
      ok = r.ok;
    }
    msg.info(`${id}: to=<${rc.address}>, relay=none, dsn=${dsn}, status=undeliverable (${text})`);
    if (ok) await markDone(this.#paths.path("active", id), rc.offset).catch(() => undefined);
  }

  /** Mails the sender the trace log of a finished sendmail -bv or -v message. */
  async reportTrace(id: string): Promise<void> {
    if (statOrNull(this.#paths.path("trace", id)) === null) return;
    if (!this.#bounce.configured("trace")) return;
    const r = await this.#bounce.notify("trace", "active", id);
    if (!r.ok) msg.warn(`${id}: cannot send a delivery status report: ${r.reason}`);
  }

  /** Removes a finished message's logs. */
  removeLogs(id: string): void {
    for (const log of ["defer", "bounce", "trace"] as const) this.#remove(log, id);
  }
}
