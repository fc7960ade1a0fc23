/*
 * smtp-trans - one mail transaction on an open session
 *
 * SYNOPSIS
 *   const out = await transaction(session, msg, todo, settings);
 *
 * DESCRIPTION
 *   Sends MAIL FROM, one RCPT TO per recipient and DATA (all in one write
 *   when the server offers PIPELINING, else one at a time), streams the
 *   message from the queue file with dot-stuffing, and reads the final
 *   reply (SMTP: one for all accepted recipients; LMTP: one per accepted
 *   recipient). MAIL carries SIZE (when offered; a message larger than the
 *   server's announced limit is bounced without being sent), BODY=8BITMIME,
 *   SMTPUTF8, RET and ENVID; RCPT carries NOTIFY and ORCPT when the server
 *   offers DSN. 8-bit mail for a server without 8BITMIME is converted to
 *   7-bit MIME on the way (smtp-mime.ts) unless
 *   disable_mime_output_conversion is set.
 *
 *   Every recipient gets an outcome: 2xx sent (the reply is the status
 *   text), 5xx bounced, 4xx deferred ("host X said: ... (in reply to RCPT
 *   TO command)"). Deferred outcomes are not final: the caller may try the
 *   recipient on the next server. A lost connection or a timeout throws
 *   (SessionError) and leaves every recipient without a final outcome.
 *
 *   With verify set (an address probe, DEL_REQ_VERIFY), the transaction
 *   stops after the RCPT replies: DATA is never sent, and each recipient is
 *   reported as it would have ended (250 = sent).
 */
import type { RcptResult } from "../global/deliver-proto.js";
import { DSN_NOTIFY } from "../global/queue-file.js";
import { quote822Local } from "../global/quote-822-local.js";
import { downgrade } from "./smtp-mime.js";
import { SessionError, type Reply, type SmtpSession } from "./smtp-session.js";

export interface TransRecipient {
  address: string;
  /** The original recipient: ORCPT=rfc822;original when no DSN ORCPT came in. */
  original?: string;
  orcpt?: string;
  notify?: number;
}

export interface TransMessage {
  sender: string;
  size: number;
  /** 8bit content (cleanup's encoding attribute). */
  eightBit: boolean;
  smtputf8: boolean;
  ret?: string;
  envid?: string;
  /** XFORWARD attributes (NAME, ADDR, ...) to send when the server offers them; absent: none. */
  xforward?: ReadonlyArray<readonly [string, string]>;
  /** The content lines (without line ends), read as they are sent. */
  lines: () => AsyncIterable<Buffer>;
}

export interface TransSettings {
  lmtp: boolean;
  verify: boolean;
  quoteEnvelope: boolean;
  lineLimit: number;
  /** Convert 8-bit mail for servers without 8BITMIME (not disable_mime_output_conversion). */
  mimeConversion: boolean;
}

export interface Outcome {
  result: RcptResult;
  /** A 2xx or 5xx answer: no other server is asked. */
  final: boolean;
}

export interface TransResult {
  outcomes: Outcome[];
  /** The session may carry another transaction (after RSET when needsReset). */
  reusable: boolean;
  needsReset: boolean;
}

/** xtext encoding (RFC 3461) for ENVID and ORCPT. */
export function xtext(s: string): string {
  let out = "";
  for (const ch of Buffer.from(s, "utf8")) {
    out +=
      ch < 33 || ch > 126 || ch === 0x2b || ch === 0x3d
        ? "+" + ch.toString(16).toUpperCase().padStart(2, "0")
        : String.fromCharCode(ch);
  }
  return out;
}

/** The NOTIFY= value of a DSN_NOTIFY bit mask. */
function notifyWords(n: number): string {
  if (n & DSN_NOTIFY.NEVER) return "NEVER";
  const w: string[] = [];
  if (n & DSN_NOTIFY.SUCCESS) w.push("SUCCESS");
  if (n & DSN_NOTIFY.FAILURE) w.push("FAILURE");
  if (n & DSN_NOTIFY.DELAY) w.push("DELAY");
  return w.join(",");
}

/** An envelope address as it goes on the wire. */
function wire(addr: string, quote: boolean): string {
  return `<${quote && addr !== "" ? quote822Local(addr) : addr}>`;
}

/** The MAIL FROM command. */
function mailCommand(s: SmtpSession, m: TransMessage, st: TransSettings): string {
  const f = s.features;
  let cmd = `MAIL FROM:${wire(m.sender, st.quoteEnvelope)}`;
  if (f.size !== null) cmd += ` SIZE=${m.size}`;
  if (f.eightBitMime && m.eightBit) cmd += " BODY=8BITMIME";
  if (f.smtputf8 && m.smtputf8) cmd += " SMTPUTF8";
  if (f.dsn) {
    if (m.ret !== undefined && /^(FULL|HDRS)$/i.test(m.ret)) cmd += ` RET=${m.ret.toUpperCase()}`;
    if (m.envid !== undefined && m.envid !== "") cmd += ` ENVID=${xtext(m.envid)}`;
  }
  if (s.mailAuth !== null) cmd += ` AUTH=${s.mailAuth}`;
  return cmd;
}

/** The XFORWARD command with the attributes the server offers, or null when there is none to send. */
export function xforwardCommand(s: SmtpSession, m: TransMessage): string | null {
  if (m.xforward === undefined || s.features.xforward.size === 0) return null;
  const parts: string[] = [];
  for (const [name, value] of m.xforward)
    if (s.features.xforward.has(name)) parts.push(`${name}=${xtext(value === "" ? "[UNAVAILABLE]" : value)}`);
  return parts.length === 0 ? null : `XFORWARD ${parts.join(" ")}`;
}

/** The RCPT TO command. */
function rcptCommand(s: SmtpSession, r: TransRecipient, st: TransSettings): string {
  let cmd = `RCPT TO:${wire(r.address, st.quoteEnvelope)}`;
  if (s.features.dsn) {
    if (r.notify !== undefined && r.notify !== 0) cmd += ` NOTIFY=${notifyWords(r.notify)}`;
    const semi = r.orcpt?.indexOf(";") ?? -1;
    if (r.orcpt !== undefined && semi > 0)
      cmd += ` ORCPT=${r.orcpt.slice(0, semi)};${xtext(r.orcpt.slice(semi + 1))}`;
    else if (r.original !== undefined && r.original !== "") cmd += ` ORCPT=rfc822;${xtext(r.original)}`;
  }
  return cmd;
}

/** The outcome of a reply for one recipient. */
function outcome(s: SmtpSession, r: Reply, inReplyTo: string): Outcome {
  if (r.code >= 200 && r.code < 300)
    return { final: true, result: { status: "sent", dsn: r.dsn, text: r.text } };
  const text = `host ${s.hostAddr} said: ${r.text} (in reply to ${inReplyTo} command)`;
  if (r.code >= 500) return { final: true, result: { status: "bounced", dsn: r.dsn, text } };
  return { final: false, result: { status: "deferred", dsn: r.dsn.replace(/^[25]/, "4"), text } };
}

/** True when an address needs SMTPUTF8 (non-ASCII). */
function needsUtf8(a: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\x7f]/.test(a);
}

/** Everyone gets the same outcome. */
function everyone(n: number, o: Outcome): Outcome[] {
  return Array.from({ length: n }, () => ({ final: o.final, result: { ...o.result } }));
}

/** Runs one transaction for the given recipients. */
export async function transaction(
  s: SmtpSession,
  m: TransMessage,
  rcpts: TransRecipient[],
  st: TransSettings,
): Promise<TransResult> {
  const f = s.features;
  const t = s.opts.timeouts;
  const n = rcpts.length;
  if (f.size !== null && f.size > 0 && m.size > f.size)
    return {
      outcomes: everyone(n, {
        final: true,
        result: {
          status: "bounced",
          dsn: "5.3.4",
          text: `message size ${m.size} exceeds size limit ${f.size} of server ${s.hostAddr}`,
        },
      }),
      reusable: true,
      needsReset: false,
    };
  if (m.smtputf8 && !f.smtputf8 && (needsUtf8(m.sender) || rcpts.some((r) => needsUtf8(r.address))))
    return {
      outcomes: everyone(n, {
        final: true,
        result: {
          status: "bounced",
          dsn: "5.6.7",
          text: `SMTPUTF8 is required, but was not offered by host ${s.hostAddr}`,
        },
      }),
      reusable: true,
      needsReset: false,
    };
  s.uses++;
  const xf = xforwardCommand(s, m);
  if (xf !== null) {
    const r = await s.command(xf, t.mail, "sending XFORWARD");
    if (r.code !== 250)
      return { outcomes: everyone(n, outcome(s, r, "XFORWARD")), reusable: true, needsReset: true };
  }
  const pipe = f.pipelining;
  const mail = mailCommand(s, m, st);
  const rcptCmds = rcpts.map((r) => rcptCommand(s, r, st));
  let mailReply: Reply;
  const rcptReplies: Reply[] = [];
  if (pipe) {
    s.send([mail, ...rcptCmds, ...(st.verify ? [] : ["DATA"])].join("\r\n"));
    mailReply = await s.read(t.mail, "sending MAIL FROM");
    for (let i = 0; i < n; i++) rcptReplies.push(await s.read(t.rcpt, "sending RCPT TO"));
  } else {
    mailReply = await s.command(mail, t.mail, "sending MAIL FROM");
    if (mailReply.code === 250)
      for (const c of rcptCmds) rcptReplies.push(await s.command(c, t.rcpt, "sending RCPT TO"));
  }
  const accepted: number[] = [];
  const outcomes: Outcome[] = [];
  if (mailReply.code !== 250) {
    if (pipe && !st.verify) await s.read(t.dataInit, "sending DATA command");
    return { outcomes: everyone(n, outcome(s, mailReply, "MAIL FROM")), reusable: true, needsReset: true };
  }
  rcptReplies.forEach((r, i) => {
    const o = outcome(s, r, "RCPT TO");
    if (o.result.status === "sent") accepted.push(i);
    outcomes.push(o);
  });
  if (st.verify) return { outcomes, reusable: true, needsReset: true };
  const data = pipe
    ? await s.read(t.dataInit, "sending DATA command")
    : accepted.length > 0
      ? await s.command("DATA", t.dataInit, "sending DATA command")
      : null;
  if (data === null) return { outcomes, reusable: true, needsReset: true };
  if (data.code !== 354) {
    const o = outcome(s, data, "DATA");
    for (const i of accepted) outcomes[i] = { ...o, result: { ...o.result } };
    return { outcomes, reusable: true, needsReset: true };
  }
  if (accepted.length === 0) {
    // The server took DATA although no recipient was accepted: end the empty transaction.
    s.send(".");
    await s.read(t.dataDone, "sending end of data -- message may be sent more than once");
    return { outcomes, reusable: true, needsReset: false };
  }
  await sendContent(s, m, st);
  const where = "sending end of data -- message may be sent more than once";
  if (!st.lmtp) {
    const done = await s.read(t.dataDone, where);
    const o = outcome(s, done, "end of DATA");
    for (const i of accepted) outcomes[i] = { ...o, result: { ...o.result } };
  } else {
    // LMTP: one reply per accepted recipient; those answered before a failure keep their answer.
    for (const [k, i] of accepted.entries()) {
      try {
        outcomes[i] = outcome(s, await s.read(t.dataDone, where), "end of DATA");
      } catch (err) {
        if (!(err instanceof SessionError)) throw err;
        for (const j of accepted.slice(k))
          outcomes[j] = { final: false, result: { status: "deferred", dsn: err.dsn, text: err.message } };
        return { outcomes, reusable: false, needsReset: false };
      }
    }
  }
  return { outcomes, reusable: true, needsReset: false };
}

const CHUNK = 65536;

/**
 * A content line with any CR or LF inside it made a space: whatever a queue
 * file holds (an old file, a milter's edit), no receiver may take part of a
 * line for a line end, or for the end of the data (SMTP smuggling).
 */
export function noStrayLineEnds(line: Buffer): Buffer {
  if (line.indexOf(0x0d) < 0 && line.indexOf(0x0a) < 0) return line;
  const out = Buffer.from(line);
  for (let i = 0; i < out.length; i++) if (out[i] === 0x0d || out[i] === 0x0a) out[i] = 0x20;
  return out;
}

/** Streams the content, dot-stuffed, with CRLF line ends, then the final dot. */
async function sendContent(s: SmtpSession, m: TransMessage, st: TransSettings): Promise<void> {
  const xfer = s.opts.timeouts.dataXfer;
  const where = "sending message body";
  const crlf = Buffer.from("\r\n");
  let parts: Buffer[] = [];
  let pending = 0;
  const push = async (b: Buffer): Promise<void> => {
    parts.push(b);
    pending += b.length;
    if (pending >= CHUNK) {
      const out = Buffer.concat(parts);
      parts = [];
      pending = 0;
      await s.write(out, xfer, where);
    }
  };
  try {
    const convert = st.mimeConversion && m.eightBit && !s.features.eightBitMime;
    for await (const line of convert ? downgrade(m.lines()) : m.lines()) {
      // A line longer than smtp_line_length_limit is broken with CRLF SPACE (as Postfix does, kind to MIME).
      let rest = line;
      let first = true;
      do {
        const piece = st.lineLimit > 0 && rest.length > st.lineLimit ? rest.subarray(0, st.lineLimit) : rest;
        rest = rest.subarray(piece.length);
        if (!first) await push(Buffer.from(" "));
        else if (piece[0] === 0x2e) await push(Buffer.from("."));
        first = false;
        await push(noStrayLineEnds(piece));
        await push(crlf);
      } while (rest.length > 0);
    }
  } catch (err) {
    if (err instanceof SessionError) throw err;
    throw new ContentError((err as Error).message);
  }
  await push(Buffer.from(".\r\n"));
  if (pending > 0) await s.write(Buffer.concat(parts), xfer, where);
}

/** The queue file could not be read while the message was being sent. */
export class ContentError extends Error {}
