/*
 * mail-copy - a queued message in the form a mailbox, file or command gets it
 *
 * SYNOPSIS
 *   import { mailCopy, MAIL_COPY, deliveredTo } from "./mail-copy.js";
 *   for await (const chunk of mailCopy(contentLines(path, env), { flags: MAIL_COPY.MBOX,
 *        sender, origRcpt, delivered })) write(chunk);
 *   const seen = await deliveredTo(contentLines(path, env));   // Set of folded addresses
 *
 * DESCRIPTION
 *   mailCopy() turns the content lines of a queue file into delivery
 *   bytes, as Postfix's mail_copy() does. With flags it prepends
 *     FROM         "From sender  Thu Nov 20 21:38:00 2003" (MAILER-DAEMON
 *                  for the null sender), the mbox separator
 *     RETURN_PATH  "Return-Path: <sender>"
 *     ORIG_RCPT    "X-Original-To: orig" (when there is an original recipient)
 *     DELIVERED    "Delivered-To: rcpt"
 *   then copies the lines, each ended with eol ("\n" unless the caller
 *   says otherwise), with QUOTE ">From " for lines that start with
 *   "From ", DOT "." before lines that start with "." (BSMTP), and BLANK an
 *   empty line at the end (so the next From_ line is found). Addresses are
 *   written in external (quoted) form. MBOX is the mailbox set: FROM,
 *   QUOTE, BLANK, RETURN_PATH, DELIVERED, ORIG_RCPT. The output comes in
 *   chunks of about CHUNK bytes; memory stays bounded by the longest line.
 *
 *   mailDate() formats an RFC 5322 date for Received: headers.
 *
 *   deliveredTo() reads the message header (up to the first line that is
 *   not a header or a continuation) and returns the Delivered-To:
 *   addresses, lower-cased, for loop detection; it stops after 1,000.
 *   deliveredKey() turns a recipient into the same form.
 */
import { quote822Local } from "./quote-822-local.js";

export const MAIL_COPY = {
  QUOTE: 1 << 0,
  FROM: 1 << 2,
  DELIVERED: 1 << 3,
  RETURN_PATH: 1 << 4,
  DOT: 1 << 5,
  BLANK: 1 << 6,
  ORIG_RCPT: 1 << 7,
  MBOX: (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 6) | (1 << 7),
} as const;

export interface MailCopyOptions {
  flags: number;
  sender: string;
  /** The original recipient ("" when unknown: no X-Original-To). */
  origRcpt?: string;
  /** The final recipient for Delivered-To. */
  delivered?: string;
  /** The line ending ("\n"). */
  eol?: string;
  /** The From_ time (now). */
  now?: Date;
}

const CHUNK = 65536;
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DELIVERED_LIMIT = 1000;

/** Formats a local time like asctime(): "Thu Nov  3 21:38:00 2003". */
export function asctime(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, "0");
  return (
    `${DAYS[d.getDay()] ?? ""} ${MONTHS[d.getMonth()] ?? ""} ${String(d.getDate()).padStart(2, " ")} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`
  );
}

/** An RFC 5322 date in local time, as Received: headers carry it. */
export function mailDate(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const zone = `${off >= 0 ? "+" : "-"}${two(Math.floor(Math.abs(off) / 60))}${two(Math.abs(off) % 60)}`;
  const hms = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  return `${DAYS[d.getDay()] ?? ""}, ${d.getDate()} ${MONTHS[d.getMonth()] ?? ""} ${d.getFullYear()} ${hms} ${zone}`;
}

/** The header lines that mailCopy() prepends. */
function prolog(o: MailCopyOptions, eol: string): string {
  let out = "";
  const sender = o.sender === "" ? "" : quote822Local(o.sender);
  if (o.flags & MAIL_COPY.FROM)
    out += `From ${sender === "" ? "MAILER-DAEMON" : sender}  ${asctime(o.now ?? new Date())}${eol}`;
  if (o.flags & MAIL_COPY.RETURN_PATH) out += `Return-Path: <${sender}>${eol}`;
  if (o.flags & MAIL_COPY.ORIG_RCPT && o.origRcpt !== undefined && o.origRcpt !== "")
    out += `X-Original-To: ${quote822Local(o.origRcpt)}${eol}`;
  if (o.flags & MAIL_COPY.DELIVERED && o.delivered !== undefined)
    out += `Delivered-To: ${quote822Local(o.delivered)}${eol}`;
  return out;
}

const FROM_ = Buffer.from("From ");

/** Produces the delivery bytes of a message, in chunks. */
export async function* mailCopy(
  lines: AsyncIterable<Buffer> | Iterable<Buffer>,
  o: MailCopyOptions,
): AsyncGenerator<Buffer> {
  const eol = Buffer.from(o.eol ?? "\n", "latin1");
  const parts: Buffer[] = [Buffer.from(prolog(o, o.eol ?? "\n"), "utf8")];
  let size = parts[0]?.length ?? 0;
  for await (const line of lines) {
    if (o.flags & MAIL_COPY.QUOTE && line.length >= 5 && line.subarray(0, 5).equals(FROM_)) {
      parts.push(Buffer.from(">"));
      size++;
    }
    if (o.flags & MAIL_COPY.DOT && line[0] === 0x2e) {
      parts.push(Buffer.from("."));
      size++;
    }
    parts.push(line, eol);
    size += line.length + eol.length;
    if (size >= CHUNK) {
      yield Buffer.concat(parts);
      parts.length = 0;
      size = 0;
    }
  }
  if (o.flags & MAIL_COPY.BLANK) parts.push(eol);
  if (parts.length > 0) yield Buffer.concat(parts);
}

/** Lower-cases an address the way the Delivered-To table keeps it. */
export function deliveredKey(address: string): string {
  return quote822Local(address).toLowerCase();
}

/** Collects the Delivered-To: addresses of the message header. */
export async function deliveredTo(lines: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<Set<string>> {
  const seen = new Set<string>();
  for await (const raw of lines) {
    if (seen.size >= DELIVERED_LIMIT) break;
    const line = raw.toString("utf8");
    if (line.startsWith(" ") || line.startsWith("\t")) continue;
    const m = /^([!-9;-~]+)[ \t]*:(.*)$/s.exec(line);
    if (m === null) break;
    if ((m[1] ?? "").toLowerCase() === "delivered-to") seen.add((m[2] ?? "").trim().toLowerCase());
  }
  return seen;
}
