/*
 * bounce-notice - compose a delivery status notification (RFC 3464)
 *
 * SYNOPSIS
 *   const bytes = composeNotice({ kind: "failure", postmaster: false, ... });
 *
 * DESCRIPTION
 *   A notice is a multipart/report; report-type=delivery-status message.
 *   Its From:, Subject: and the start of its text come from a bounce(5)
 *   template (global/bounce-template.ts; cleanup makes the From: address
 *   fully qualified); it has three parts:
 *     text/plain            the template's text, then what happened, one
 *                           paragraph per recipient
 *     message/delivery-status  Reporting-MTA, X-Postfix-Queue-ID,
 *                           X-Postfix-Sender, Arrival-Date, [Original-
 *                           Envelope-Id], then per recipient Final-
 *                           Recipient, Original-Recipient, Action, Status,
 *                           Remote-MTA, Diagnostic-Code, Last-Attempt-
 *                           Date, Will-Retry-Until (delay notices)
 *     message/rfc822        the original message, or text/rfc822-headers
 *                           with its headers only
 */
import { rfc5322Date } from "../global/mail-date.js";
import type { LogEntry } from "./bounce-log.js";

/** What the template (bounce-template.ts) gives a notice: headers and expanded text. */
export interface NoticeHead {
  from: string;
  subject: string;
  charset: string;
  /** The template's text, expanded, one element per line. */
  text: string[];
}

export interface NoticeInput {
  kind: "failure" | "delay" | "success" | "verify";
  /** A copy for postmaster (or a double bounce): Auto-Submitted: auto-generated. */
  postmaster: boolean;
  head: NoticeHead;
  queueId: string;
  myhostname: string;
  to: string;
  sender: string;
  /** Arrival time, seconds since the epoch. */
  arrival: number;
  entries: LogEntry[];
  envid?: string;
  /** Delay notices: when the message will be returned (seconds since the epoch). */
  willRetryUntil?: number;
  /** Lines of the original message (headers only, or all of it). */
  original: Buffer[];
  headersOnly: boolean;
}

const DESCRIPTIONS = {
  failure: "Undelivered Message",
  delay: "Delayed Message",
  success: "Delivered Message",
  verify: "Message",
};

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** The charset of the text part: the template's, else utf-8 when the text needs it. */
function textCharset(n: NoticeInput, text: string): string {
  if (n.head.charset.toLowerCase() !== "us-ascii") return n.head.charset;
  return ASCII.test(text) ? "us-ascii" : "utf-8";
}

/** The host name of a relay= value ("mx.example[192.0.2.1]:25"), or null for local ones. */
export function remoteMta(relay: string | undefined): string | null {
  if (relay === undefined || relay === "" || relay === "none" || relay === "local") return null;
  const host = relay.replace(/\[.*$/, "").replace(/:\d+$/, "");
  return host === "" ? null : host;
}

/**
 * The Diagnostic-Code value: an SMTP reply as "smtp;" (the server's reply
 * alone, without the "(in reply to ... command)" note of the reason text),
 * anything else as "X-Postfix;".
 */
export function diagnosticCode(reason: string): string {
  const m = /(?:said: )?(\d{3}[ -].*)$/.exec(reason);
  if (m === null || !/said: \d{3}/.test(reason)) return `X-Postfix; ${reason}`;
  return `smtp; ${(m[1] ?? "").replace(/ \(in reply to [A-Za-z /.-]{1,40} command\)$/, "")}`;
}

/** An address for a DSN field ("rfc822; a@b"). */
function rfc822(addr: string): string {
  return `rfc822; ${addr}`;
}

/** The per-recipient block of the delivery-status part. */
function recipientBlock(n: NoticeInput, e: LogEntry): string {
  const out = [`Final-Recipient: ${rfc822(e.recipient)}`];
  if (e.dsn_orig_rcpt !== undefined && e.dsn_orig_rcpt !== "")
    out.push(`Original-Recipient: ${e.dsn_orig_rcpt.replace(/^rfc822;\s*/i, "rfc822; ")}`);
  else if (e.original_recipient !== "" && e.original_recipient !== e.recipient)
    out.push(`Original-Recipient: ${rfc822(e.original_recipient)}`);
  out.push(`Action: ${e.action}`, `Status: ${e.status}`);
  const mta = remoteMta(e.relay);
  if (mta !== null) out.push(`Remote-MTA: dns; ${mta}`);
  out.push(`Diagnostic-Code: ${diagnosticCode(e.reason)}`);
  if (e.time > 0) out.push(`Last-Attempt-Date: ${rfc5322Date(new Date(e.time * 1000))}`);
  if (n.kind === "delay" && n.willRetryUntil !== undefined)
    out.push(`Will-Retry-Until: ${rfc5322Date(new Date(n.willRetryUntil * 1000))}`);
  return out.join("\n") + "\n";
}

/** The message/delivery-status part's body. */
function statusPart(n: NoticeInput): string {
  const head = [
    `Reporting-MTA: dns; ${n.myhostname}`,
    `X-Postfix-Queue-ID: ${n.queueId}`,
    `X-Postfix-Sender: ${rfc822(n.sender)}`,
  ];
  if (n.envid !== undefined && n.envid !== "") head.push(`Original-Envelope-Id: ${n.envid}`);
  head.push(`Arrival-Date: ${rfc5322Date(new Date(n.arrival * 1000))}`);
  return head.join("\n") + "\n\n" + n.entries.map((e) => recipientBlock(n, e)).join("\n");
}

/** Composes the notice; lines end in LF (cleanup stores lines). */
export function composeNotice(n: NoticeInput): Buffer {
  const now = new Date();
  const boundary = `${n.queueId}.${Math.floor(now.getTime() / 1000)}/${n.myhostname}`;
  const notification = [
    ...n.head.text,
    ...n.entries.flatMap((e) => ["", `<${e.recipient}>: ${e.reason}`]),
  ].join("\n");
  const origDesc = DESCRIPTIONS[n.kind];
  const text = [
    `Date: ${rfc5322Date(now)}`,
    `From: ${n.head.from}`,
    `Subject: ${n.head.subject}`,
    `To: ${n.to}`,
    `Auto-Submitted: ${n.postmaster ? "auto-generated" : "auto-replied"}`,
    "MIME-Version: 1.0",
    "Content-Type: multipart/report; report-type=delivery-status;",
    `\tboundary="${boundary}"`,
    "Content-Transfer-Encoding: 8bit",
    `Message-Id: <${now.getTime()}.${n.queueId}@${n.myhostname}>`,
    "",
    "This is a MIME-encapsulated message.",
    "",
    `--${boundary}`,
    "Content-Description: Notification",
    `Content-Type: text/plain; charset=${textCharset(n, notification)}`,
    "",
    notification,
    "",
    `--${boundary}`,
    "Content-Description: Delivery report",
    "Content-Type: message/delivery-status",
    "",
    statusPart(n),
    `--${boundary}`,
    `Content-Description: ${origDesc}${n.headersOnly ? " Headers" : ""}`,
    `Content-Type: ${n.headersOnly ? "text/rfc822-headers" : "message/rfc822"}`,
    "Content-Transfer-Encoding: 8bit",
    "",
    "",
  ].join("\n");
  const body = Buffer.concat(n.original.map((l) => Buffer.concat([l, Buffer.from("\n")])));
  return Buffer.concat([Buffer.from(text), body, Buffer.from(`\n--${boundary}--\n`)]);
}
