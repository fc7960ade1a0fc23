/*
 * cleanup-headers - the headers a local submission must have
 *
 * DESCRIPTION
 *   For mail posted locally (sendmail, pickup) and whenever
 *   always_add_missing_headers is yes, cleanup adds what the message lacks,
 *   as Postfix does:
 *     From:        the envelope sender (MAILER-DAEMON for the null sender),
 *                  with the full name when one was given (not for the
 *                  null sender): "Name <addr>",
 *                  or "addr (Name)" with header_from_format = obsolete
 *     Date:        the arrival time
 *     Message-ID:  <YYYYMMDDhhmmss.QUEUEID@myhostname>
 *     To:          undisclosed_recipients_header, when no To:, Cc: or Bcc:
 *                  was present and that parameter is not empty
 *   Resent- headers: when the message has Resent-* headers, the missing
 *   ones are added in their Resent- form instead.
 */
import type { QueueTime } from "../global/queue-id.js";
import { rfc5322Date } from "../global/mail-date.js";

/** The Message-ID cleanup makes: <YYYYMMDDhhmmss.QUEUEID@myhostname>. */
export function makeMessageId(arrival: QueueTime, queueId: string, myhostname: string): string {
  const d = new Date(arrival.sec * 1000);
  const stamp = [
    d.getUTCFullYear(),
    d.getUTCMonth() + 1,
    d.getUTCDate(),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
  ]
    .map((n, i) => String(n).padStart(i === 0 ? 4 : 2, "0"))
    .join("");
  return `<${stamp}.${queueId}@${myhostname}>`;
}

export interface MissingHeaderInput {
  seen: ReadonlySet<string>;
  sender: string;
  fullName?: string;
  arrival: QueueTime;
  queueId: string;
  myhostname: string;
  undisclosed: string;
  /** header_from_format = obsolete: "addr (Full Name)" instead of "Full Name <addr>". */
  obsoleteFrom?: boolean;
}

/** The headers to add at the end of the header section. */
export function missingHeaders(m: MissingHeaderInput): string[] {
  const resent = [...m.seen].some((h) => h.startsWith("resent-"));
  const p = resent ? "Resent-" : "";
  const has = (name: string): boolean => m.seen.has((p + name).toLowerCase());
  const out: string[] = [];
  if (!has("From")) {
    const addr = m.sender === "" ? "MAILER-DAEMON" : m.sender;
    const named =
      m.obsoleteFrom === true
        ? `${addr} (${commentText(m.fullName ?? "")})`
        : `${quoteName(m.fullName ?? "")} <${addr}>`;
    out.push(`${p}From: ${m.fullName && m.sender !== "" ? named : addr}`);
  }
  if (!has("Date")) out.push(`${p}Date: ${rfc5322Date(new Date(m.arrival.sec * 1000))}`);
  if (!has("Message-ID")) out.push(`${p}Message-ID: ${makeMessageId(m.arrival, m.queueId, m.myhostname)}`);
  const anyRcpt = ["to", "cc", "bcc"].some((h) => m.seen.has(resent ? `resent-${h}` : h));
  if (!anyRcpt && m.undisclosed !== "") out.push(m.undisclosed);
  return out;
}

/** A full name as comment text: parentheses and backslashes escaped. */
function commentText(name: string): string {
  return name.replace(/([()\\])/g, "\\$1");
}

/** Quotes a display name when it holds characters that need it. */
function quoteName(name: string): string {
  return /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$/.test(name) ? name : `"${name.replace(/(["\\])/g, "\\$1")}"`;
}
