/*
 * cleanup-final - the end of a message: recipients, verdict, publication
 *
 * SYNOPSIS
 *   const reply = await cleanupFinal({ st, env, tables, content, w, stop: m.stop, filter, published });
 *
 * DESCRIPTION
 *   After the content is read, what the headers and body decided is
 *   applied, in Postfix's order:
 *     - recipients extracted from headers (sendmail -t) are added, from the
 *       Resent- headers when there were any, with the NOTIFY of sendmail -N;
 *     - when the message has a recipient: always_bcc (CLEANUP_FLAG.MAP
 *       only) and the BCC addresses of header/body actions;
 *     - REDIRECT sends every recipient's copy to one address;
 *     - a message without recipients is rejected (5.1.0).
 *   A failure (reject or temporary) removes the file; DISCARD removes it
 *   too but the client hears "ok". Otherwise the file gets, after the end
 *   of the content: the content filter (a FILTER action wins over
 *   content_filter), the encoding attribute ("8bit" when a header or the
 *   body has 8-bit data or declares Content-Transfer-Encoding 8bit or
 *   binary; otherwise what the client said, else "7bit") and the
 *   recipients. It is published in hold/ after a HOLD action, else in
 *   incoming/ (and the queue manager is woken).
 */
import type { AttrInput } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { unquote822Local } from "../global/quote-822-local.js";
import type { QueueFileWriter } from "../global/queue-file.js";
import type { EnvelopeAddresses } from "./cleanup-addr.js";
import type { CleanupContent } from "./cleanup-content.js";
import type { Header, Stop } from "./cleanup-message.js";
import type { CleanupState } from "./cleanup-state.js";
import type { CleanupTables } from "./cleanup-tables.js";

export interface FinalInput {
  st: CleanupState;
  env: EnvelopeAddresses;
  tables: CleanupTables;
  content: CleanupContent;
  w: QueueFileWriter;
  /** The failure CleanupMessage found (size, hops), or the one the content hooks set. */
  stop: Stop | null;
  headers: readonly Header[];
  /** The content filter that applies when no FILTER action chose one ("" for none). */
  filter: string;
  published: (id: string) => void;
  /** Milter results (cleanup-milter.ts), applied once the recipients are final; a stop or null. */
  beforeCommit?: () => Promise<Stop | null>;
}

/** Adds extracted, always_bcc and BCC-action recipients; applies REDIRECT. */
async function finalRecipients(x: FinalInput): Promise<void> {
  const { st, env } = x;
  const notify = st.extractNotify !== undefined ? { notify: st.extractNotify } : {};
  for (const a of st.resentExtract ? st.resentExtracted : st.extracted)
    await env.recipient({ address: a, ...notify });
  if (env.recipients.length === 0) return;
  if ((st.flags & CLEANUP_FLAG.MAP) !== 0 && x.tables.alwaysBcc !== "") await env.bcc(x.tables.alwaysBcc);
  for (const b of st.bcc) await env.bcc(unquote822Local(b));
  if (st.redirect !== null) env.redirect(unquote822Local(st.redirect));
}

/** The reply for a message that is not queued; the file is removed. */
async function notQueued(x: FinalInput, stop: Stop): Promise<AttrInput> {
  await x.w.abort();
  if (stop.kind === "discard") return { status: "ok", queue_id: x.w.id };
  if (stop !== x.st.failure)
    msg.info(
      `${x.w.id}: ${stop.kind}: ${stop.kind === "reject" ? `${stop.code} ${stop.reason}` : stop.reason}`,
    );
  return stop.kind === "reject"
    ? { status: "reject", code: stop.code, reason: stop.reason }
    : { status: "tempfail", reason: stop.reason };
}

/** Completes the message (see the module comment); returns the reply for the client. */
export async function cleanupFinal(x: FinalInput): Promise<AttrInput> {
  const { st, env, w } = x;
  if (x.stop === null && st.failure === null) await finalRecipients(x);
  const milter = x.stop === null && st.failure === null && x.beforeCommit ? await x.beforeCommit() : null;
  const stop: Stop | null =
    x.stop ??
    milter ??
    st.failure ??
    (env.recipients.length === 0
      ? { kind: "reject", code: "554 5.1.0", reason: "No recipients specified" }
      : null);
  if (stop !== null) return notQueued(x, stop);
  w.endContent();
  const filter = st.filter ?? x.filter;
  if (filter !== "") w.filter(filter);
  w.attr("encoding", x.content.eightBit ? "8bit" : (st.attrs.get("encoding") ?? "7bit"));
  for (const r of env.recipients) w.rcpt(r);
  const queue = st.hold ? "hold" : "incoming";
  await w.commit(queue);
  const mid = x.headers.find((h) => /^message-id$/i.test(h.name));
  msg.info(`${w.id}: message-id=${mid ? mid.text.slice(mid.text.indexOf(":") + 1).trim() : "<>"}`);
  if (queue === "incoming") x.published(w.id);
  return { status: "ok", queue_id: w.id };
}
