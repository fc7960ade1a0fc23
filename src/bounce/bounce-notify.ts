/*
 * bounce-notify - decide who gets a notice, compose it, post it
 *
 * SYNOPSIS
 *   const r = await sendNotices(env, "bounce", "active", queueId);
 *
 * DESCRIPTION
 *   Kind "bounce": the recipients of the bounce log whose NOTIFY asks for
 *   failures (or says nothing) are returned to the sender from the null
 *   sender, with the original message (RET=FULL, or when RET is not given
 *   and the message is within bounce_size_limit) or its headers. With
 *   "bounce" in notify_classes, postmaster (bounce_notice_recipient) gets
 *   a copy with the headers only. Loops are impossible:
 *     the sender is null (a notice that bounced): the notice goes to
 *       2bounce_notice_recipient from double_bounce_sender when
 *       notify_classes has "2bounce", and is discarded otherwise;
 *     the sender is double_bounce_sender (a notice to postmaster that
 *       bounced): it is discarded.
 *   The bounce log is removed once every notice is queued. Notices go
 *   through cleanup's header/body checks and content filter only when
 *   internal_mail_filter_classes names "bounce" (notices to the sender)
 *   or "notify" (notices to postmaster).
 *   Kind "delay": the recipients of the defer log whose NOTIFY asks for
 *   delays (or says nothing) are warned about, with the headers of the
 *   message; postmaster (delay_notice_recipient) gets a copy with
 *   "delay" in notify_classes. No warning is sent for a null sender.
 *   Kind "success": the recipients of the trace log that asked for
 *   NOTIFY=SUCCESS get a "Successful Mail Delivery Report" (with the
 *   message or its headers, as for a bounce); the trace log is removed.
 *   Kind "trace": every recipient of the trace log is reported to the
 *   sender in a "Mail Delivery Status Report" (sendmail -bv: deliverable
 *   or undeliverable and why; sendmail -v: what happened), with the
 *   message headers; the trace log is removed.
 */
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import { CleanupClient } from "../global/cleanup-client.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { DSN_NOTIFY, contentLines, readEnvelope, type Envelope } from "../global/queue-file.js";
import type { QueueName, QueuePaths } from "../global/queue-path.js";
import type { BounceNoticeKind } from "../global/bounce-proto.js";
import { readLog, removeLog, type LogEntry } from "./bounce-log.js";
import { expandTemplate, templateFrom, type BounceTemplates } from "../global/bounce-template.js";
import { composeNotice, type NoticeHead, type NoticeInput } from "./bounce-notice.js";

export interface NotifyEnv {
  cfg: Config;
  paths: QueuePaths;
  /** The notices' templates (built-in, or bounce_template_file's). */
  templates: BounceTemplates;
}

export type NotifyResult = { ok: true } | { ok: false; reason: string };

/** An address with @$myorigin when it has no domain. */
function qualify(cfg: Config, addr: string): string {
  return addr.includes("@") ? addr : `${addr}@${cfg.get("myorigin")}`;
}

/** True for the double-bounce sender (with or without a domain). */
function isDoubleBounce(cfg: Config, addr: string): boolean {
  const local = cfg.get("double_bounce_sender");
  return addr === local || addr.toLowerCase().startsWith(`${local.toLowerCase()}@`);
}

/** True when a recipient's NOTIFY asks for this kind of notice. */
function wants(e: LogEntry, bit: number): boolean {
  return e.dsn_notify === undefined || e.dsn_notify === 0 || (e.dsn_notify & bit) !== 0;
}

/** The original message's lines: all of it (within limit) or its headers. */
async function original(path: string, env: Envelope, headersOnly: boolean, limit: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let size = 0;
  for await (const line of contentLines(path, env)) {
    if (headersOnly && line.length === 0) break;
    size += line.length + 1;
    if (size > limit) break;
    out.push(line);
  }
  return out;
}

/** Posts one notice through cleanup; the new queue ID or a failure. */
async function post(
  ne: NotifyEnv,
  from: string,
  to: string,
  bytes: Buffer,
  filterClass: "bounce" | "notify",
): Promise<{ ok: true; id: string } | { ok: false; reason: string }> {
  const c = await CleanupClient.open(ne.paths.root, { timeoutMs: ne.cfg.time("ipc_timeout") * 1000 });
  if (!c.ok) return c;
  const s = c.client;
  const filter = ne.cfg.list("internal_mail_filter_classes").includes(filterClass);
  await s.flags(CLEANUP_FLAG.MAP | (filter ? CLEANUP_FLAG.FILTER : 0));
  await s.attr("log_message_origin", "bounce");
  await s.sender(from);
  await s.rcpt({ address: to, original: to, notify: DSN_NOTIFY.NEVER });
  await s.data(bytes);
  const r = await s.end();
  if (r.status === "ok") return { ok: true, id: r.queueId };
  return { ok: false, reason: `cleanup: ${r.reason}` };
}

/** The template part of a notice; postmaster copies get the Postmaster-Subject and no template text. */
function noticeHead(ne: NotifyEnv, kind: NoticeInput["kind"], postmaster: boolean): NoticeHead | string {
  const t = ne.templates[kind];
  const head = {
    from: templateFrom(t, ne.cfg),
    subject: postmaster && t.postmasterSubject !== null ? t.postmasterSubject : t.subject,
    charset: t.charset,
    text: [] as string[],
  };
  if (postmaster) return head;
  const x = expandTemplate(t, ne.cfg);
  if (!x.ok) return x.error;
  for (const w of x.warnings) msg.warn(w);
  return { ...head, text: x.lines };
}

type BaseInput = Omit<NoticeInput, "to" | "postmaster" | "original" | "headersOnly" | "head">;

/** Composes and posts one notice. */
async function notice(
  ne: NotifyEnv,
  base: BaseInput,
  to: string,
  from: string,
  postmaster: boolean,
  orig: { path: string; env: Envelope; headersOnly: boolean },
): Promise<NotifyResult> {
  const limit = ne.cfg.int("bounce_size_limit");
  const head = noticeHead(ne, base.kind, postmaster);
  if (typeof head === "string") return { ok: false, reason: head };
  const lines = await original(orig.path, orig.env, orig.headersOnly, limit);
  const bytes = composeNotice({
    ...base,
    head,
    to,
    postmaster,
    original: lines,
    headersOnly: orig.headersOnly,
  });
  const r = await post(ne, from, to, bytes, postmaster ? "notify" : "bounce");
  if (!r.ok) return r;
  const what = {
    delay: "delay notification",
    failure: "non-delivery notification",
    success: "delivery status notification",
    verify: "delivery status notification",
  }[base.kind];
  msg.info(`${base.queueId}: ${postmaster ? "postmaster" : "sender"} ${what}: ${r.id}`);
  return { ok: true };
}

interface Job {
  ne: NotifyEnv;
  id: string;
  env: Envelope;
  base: BaseInput;
  /** The entries whose NOTIFY asks for this kind of notice. */
  mine: LogEntry[];
  /** The original as RET and bounce_size_limit say; its headers only. */
  full: { path: string; env: Envelope; headersOnly: boolean };
  headers: { path: string; env: Envelope; headersOnly: boolean };
}

/** A success report to the sender, for the recipients that asked. */
async function successNotice(j: Job): Promise<NotifyResult> {
  const { cfg } = j.ne;
  if (j.env.sender === "" || isDoubleBounce(cfg, j.env.sender) || j.mine.length === 0) return { ok: true };
  const ret = (j.env.attrs.get("dsn_ret") ?? "").toLowerCase();
  return notice(j.ne, { ...j.base, entries: j.mine }, j.env.sender, "", false, {
    ...j.full,
    headersOnly: ret !== "full",
  });
}

/**
 * A "Mail Delivery Status Report" (sendmail -bv, sendmail -v) with every
 * recipient of the trace log and the message headers. As for Postfix's
 * trace service: a report for the null sender goes to
 * 2bounce_notice_recipient when notify_classes has "2bounce" and is
 * dropped otherwise; one for the double-bounce sender is dropped.
 */
async function traceNotice(j: Job): Promise<NotifyResult> {
  const { cfg } = j.ne;
  const sender = j.env.sender;
  if (isDoubleBounce(cfg, sender)) {
    msg.info(`${j.id}: not sending trace/success notification for double-bounce message`);
    return { ok: true };
  }
  let to = sender;
  let from = "";
  if (sender === "") {
    if (!cfg.list("notify_classes").includes("2bounce")) {
      msg.info(`${j.id}: not sending trace/success notification for single-bounce message`);
      return { ok: true };
    }
    to = qualify(cfg, cfg.get("2bounce_notice_recipient"));
    from = qualify(cfg, cfg.get("double_bounce_sender"));
  }
  return notice(j.ne, { ...j.base, kind: "verify" }, to, from, false, j.headers);
}

/** A postmaster copy: its failure is logged, not repeated (the sender must not get a second notice). */
async function postmasterCopy(j: Job, param: string): Promise<void> {
  const { cfg } = j.ne;
  const from = qualify(cfg, cfg.get("double_bounce_sender"));
  const r = await notice(j.ne, j.base, qualify(cfg, cfg.get(param)), from, true, j.headers);
  if (!r.ok) msg.warn(`${j.id}: postmaster copy not sent: ${r.reason}`);
}

/** A non-delivery report or delay warning, with the loop rules of the module comment. */
async function problemNotice(j: Job, kind: "bounce" | "delay"): Promise<NotifyResult> {
  const { cfg } = j.ne;
  const classes = cfg.list("notify_classes");
  const sender = j.env.sender;
  if (isDoubleBounce(cfg, sender)) {
    msg.info(`${j.id}: discarding undeliverable postmaster notification`);
    return { ok: true };
  }
  if (sender === "") {
    if (kind === "delay") return { ok: true };
    if (!classes.includes("2bounce")) {
      msg.info(`${j.id}: discarding undeliverable non-delivery notification`);
      return { ok: true };
    }
    const to = qualify(cfg, cfg.get("2bounce_notice_recipient"));
    const from = qualify(cfg, cfg.get("double_bounce_sender"));
    return notice(j.ne, j.base, to, from, true, j.full);
  }
  if (j.mine.length > 0) {
    const orig = kind === "bounce" ? j.full : j.headers;
    const r = await notice(j.ne, { ...j.base, entries: j.mine }, sender, "", false, orig);
    if (!r.ok) return r;
  }
  if (classes.includes(kind))
    await postmasterCopy(j, kind === "bounce" ? "bounce_notice_recipient" : "delay_notice_recipient");
  return { ok: true };
}

/** Sends the notices of one kind for a message. */
export async function sendNotices(
  ne: NotifyEnv,
  kind: BounceNoticeKind,
  queue: QueueName,
  id: string,
): Promise<NotifyResult> {
  const { cfg, paths } = ne;
  const log = kind === "bounce" ? "bounce" : kind === "delay" ? "defer" : "trace";
  const all = await readLog(paths, log, id);
  if (all.length === 0) return { ok: true };
  const path = paths.path(queue, id);
  const r = await readEnvelope(path);
  if (!r.ok) return { ok: false, reason: `cannot read the queue file: ${r.reason}` };
  const env = r.env;
  const arrival = env.arrival.sec;
  const ret = (env.attrs.get("dsn_ret") ?? "").toLowerCase();
  const envid = env.attrs.get("dsn_envid");
  const base = {
    kind: kind === "bounce" ? ("failure" as const) : kind === "trace" ? ("verify" as const) : kind,
    queueId: id,
    myhostname: cfg.get("myhostname"),
    sender: env.sender,
    arrival,
    entries: all,
    ...(envid !== undefined ? { envid } : {}),
    ...(kind === "delay"
      ? {
          willRetryUntil: arrival + cfg.time("maximal_queue_lifetime"),
        }
      : {}),
  };
  const bit = {
    bounce: DSN_NOTIFY.FAILURE,
    delay: DSN_NOTIFY.DELAY,
    success: DSN_NOTIFY.SUCCESS,
    trace: 0,
  }[kind];
  const job: Job = {
    ne,
    id,
    env,
    base,
    mine: all.filter((e) => (kind === "success" ? ((e.dsn_notify ?? 0) & bit) !== 0 : wants(e, bit))),
    full: {
      path,
      env,
      headersOnly: ret === "hdrs" || (ret !== "full" && env.contentSize > cfg.int("bounce_size_limit")),
    },
    headers: { path, env, headersOnly: true },
  };
  const res =
    kind === "success"
      ? await successNotice(job)
      : kind === "trace"
        ? await traceNotice(job)
        : await problemNotice(job, kind);
  if (res.ok && kind !== "delay") await removeLog(paths, log, id);
  return res;
}
