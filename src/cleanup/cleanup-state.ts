/*
 * cleanup-state - what cleanup learns about one message while it reads it
 *
 * SYNOPSIS
 *   const st = new CleanupState(queueId, attrs);
 *   st.fail({ kind: "tempfail", reason: "4.3.0 ..." });   // first failure wins; tempfail beats reject
 *   st.act("reject", "header", "Subject: spam", "5.7.1 message content rejected");
 *
 * DESCRIPTION
 *   The per-message state that the envelope, header and body processing
 *   share: the CLEANUP_FLAG bits in force (a PASS or REJECT action turns
 *   off further checks), the sender and the last recipient as rewritten
 *   (for log lines), the client attributes, and the outcomes of content
 *   actions: a failure (reject, tempfail, discard), HOLD, the FILTER
 *   next-hop, the REDIRECT address, BCC recipients, recipients extracted
 *   from headers, and whether the content has 8-bit data.
 *
 *   act() logs a content action as Postfix's cleanup does:
 *     ID: ACTION: CLASS TEXT from ORIGIN; from=<SENDER> to=<RCPT> proto=P helo=<H>: OPTIONAL
 *   ORIGIN is the client's log_message_origin attribute ("name[addr]"),
 *   else log_client_name[log_client_address] (or client_name and
 *   client_address), else "local". from=, to=, proto= (log_protocol_name
 *   or protocol) and helo= (log_helo_name or helo) appear only when known;
 *   TEXT is cut at 200 characters.
 */
import { msg } from "../util/msg.js";
import type { Stop } from "./cleanup-message.js";

export class CleanupState {
  readonly queueId: string;
  readonly attrs: Map<string, string>;
  flags = 0;
  /** The envelope sender as rewritten (null before the sender record). */
  sender: string | null = null;
  /** The last envelope recipient as rewritten (null before the first). */
  lastRcpt: string | null = null;
  /** The first failure, or discard. */
  failure: Stop | null = null;
  hold = false;
  filter: string | null = null;
  redirect: string | null = null;
  readonly bcc: string[] = [];
  readonly extracted: string[] = [];
  /** Recipients come from Resent- headers (sendmail -t with Resent-To/Cc/Bcc). */
  resentExtract = false;
  readonly resentExtracted: string[] = [];
  /** The NOTIFY mask of extracted recipients (sendmail -t -N), or undefined for none. */
  extractNotify: number | undefined = undefined;
  /** Called when a failure ends the message (the session stops reading content). */
  onFailure: (s: Stop) => void = () => undefined;

  constructor(queueId: string, attrs: Map<string, string>) {
    this.queueId = queueId;
    this.attrs = attrs;
  }

  /** Records a failure; the first wins, except that a temporary failure beats a rejection. */
  fail(s: Stop): void {
    if (this.failure !== null && !(this.failure.kind === "reject" && s.kind === "tempfail")) return;
    this.failure = s;
    this.onFailure(s);
  }

  /** Logs a warning about this message. */
  warn(text: string): void {
    msg.warn(`${this.queueId}: ${text}`);
  }

  /** Records a temporary failure with a warning (table lookups, expansion limits). */
  tempfail(warning: string, reason: string): void {
    msg.warn(`${this.queueId}: ${warning}`);
    this.fail({ kind: "tempfail", reason });
  }

  /** Where the message came from, for log lines. */
  origin(): string {
    const o = this.attrs.get("log_message_origin");
    if (o !== undefined && o !== "") return o;
    const name = this.attrs.get("log_client_name") ?? this.attrs.get("client_name");
    const addr = this.attrs.get("log_client_address") ?? this.attrs.get("client_address");
    if (name !== undefined && addr !== undefined) return `${name}[${addr}]`;
    return "local";
  }

  /** The " from=<...> to=<...> proto=... helo=<...>" part of action log lines. */
  context(): string {
    let out = "";
    if (this.sender !== null) out += ` from=<${this.sender}>`;
    if (this.lastRcpt !== null) out += ` to=<${this.lastRcpt}>`;
    const proto = this.attrs.get("log_protocol_name") ?? this.attrs.get("protocol");
    if (proto !== undefined) out += ` proto=${proto}`;
    const helo = this.attrs.get("log_helo_name") ?? this.attrs.get("helo");
    if (helo !== undefined) out += ` helo=<${helo}>`;
    return out;
  }

  /** Logs a content action (see the module comment). */
  act(action: string, cls: string, content: string, text: string): void {
    const tail = text !== "" ? `: ${text}` : "";
    msg.info(
      `${this.queueId}: ${action}: ${cls} ${content.slice(0, 200)} from ${this.origin()};${this.context()}${tail}`,
    );
  }
}
