/*
 * smtpd-txn - the mail transaction: MAIL, RCPT, DATA and BDAT
 *
 * DESCRIPTION
 *   MAIL FROM is checked (anvil's message rate, SIZE and AUTH parameters,
 *   the restriction lists unless smtpd_delay_reject, queue_minfree,
 *   milters and the before-queue filter); the queue file is opened at the
 *   first accepted recipient, with the client details that cleanup records;
 *   the content streams to cleanup (smtpd-data.ts) after the access-table
 *   actions, PREPEND headers and the Received: header; and "250 2.0.0 Ok:
 *   queued as ID" is said only once smtpd_end_of_data_restrictions, the
 *   milters and cleanup have accepted the message and cleanup has made the
 *   file durable.
 */
import { msg } from "../util/msg.js";
import { CleanupClient } from "../global/cleanup-client.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { receiveOverride } from "../global/receive-override.js";
import type { Stage } from "./smtpd-check.js";
import { ContentSink, readChunk, readData } from "./smtpd-data.js";
import { parseMail, parseRcpt } from "./smtpd-params.js";
import { queueSpaceCheck, spaceSettings } from "./smtpd-space.js";
import { forwarded } from "./smtpd-xclient.js";
import { Quit, type SessionState } from "./smtpd-state.js";
import * as sup from "./smtpd-support.js";
import * as tls from "./smtpd-tls.js";
import * as sasl from "./smtpd-sasl.js";

let serial = 0;

/** MAIL FROM. */
export async function mailCmd(s: SessionState, arg: string): Promise<void> {
  if (s.env.heloRequired && s.helo === "") return s.error("MAIL", "503 5.5.1 Error: send HELO/EHLO first");
  if (s.mail !== null) return s.error("MAIL", "503 5.5.1 Error: nested MAIL command");
  const rate = await s.limits?.message();
  if (typeof rate === "string") return s.error("MAIL", rate);
  const p = parseMail(arg, s.env.sizeLimit);
  if (!p.ok) return s.error("MAIL", p.reply);
  const badAuth = sasl.mailAuthParam(s.env.sasl, /\sAUTH=(\S*)/i.exec(arg)?.[1]);
  if (badAuth !== null) return s.error("MAIL", badAuth);
  s.mail = p.value;
  s.instance = `${Date.now().toString(16)}.${(serial++).toString(16)}`;
  if (!s.env.delayReject) {
    const v = await s.restrict("MAIL", ["client", "helo", "sender"]);
    if (v !== null) {
      s.mail = null;
      return s.error("MAIL", v);
    }
  }
  const space = await queueSpaceCheck(spaceSettings(s.env.cfg));
  if (space !== null) {
    s.mail = null;
    msg.info(
      `NOQUEUE: reject: MAIL from ${s.client}: ${space}; proto=${s.esmtp ? "ESMTP" : "SMTP"} helo=<${s.helo}>`,
    );
    return s.error("MAIL", space);
  }
  const mv = (await s.milter.mail(arg, p.value.address)) ?? (await s.bqf.mail(`MAIL ${arg}`, s.view()));
  if (mv !== null) {
    s.mail = null;
    return s.error("MAIL", mv);
  }
  s.count("MAIL", true);
  s.reply("250 2.1.0 Ok");
}

/** RCPT TO: parses, checks restrictions, opens the queue file at the first good recipient. */
export async function rcptCmd(s: SessionState, arg: string): Promise<void> {
  if (s.mail === null) return s.error("RCPT", "503 5.5.1 Error: need MAIL command");
  const rate = await s.limits?.recipient();
  if (typeof rate === "string") return s.error("RCPT", rate);
  if (s.rcpts.length >= s.env.rcptLimit) return s.error("RCPT", "452 4.5.3 Error: too many recipients");
  const p = parseRcpt(arg, s.mail.smtputf8);
  if (!p.ok) return s.error("RCPT", p.reply);
  const stages: Stage[] = s.env.delayReject
    ? ["client", "helo", "sender", "relay", "recipient"]
    : ["relay", "recipient"];
  const v = await s.restrict("RCPT", stages, p.value.address);
  if (v !== null) return s.error("RCPT", v);
  if (!s.bqf.on && s.cleanup === null && !(await openQueue(s)))
    return s.error("RCPT", "451 4.3.0 Error: queue file write error");
  const mv = (await s.milter.rcpt(arg, p.value.address)) ?? (await s.bqf.rcpt(`RCPT ${arg}`));
  if (mv !== null) return s.error("RCPT", mv);
  await s.cleanup?.rcpt({
    address: p.value.address,
    original: p.value.address,
    ...(p.value.orcpt !== undefined ? { orcpt: p.value.orcpt } : {}),
    ...(p.value.notify !== undefined ? { notify: p.value.notify } : {}),
  });
  s.rcpts.push(p.value);
  s.count("RCPT", true);
  s.reply("250 2.1.5 Ok");
}

/** Opens a cleanup session for the transaction (the queue ID appears in the log). */
async function openQueue(s: SessionState): Promise<boolean> {
  const c = await CleanupClient.open(s.env.cfg.get("queue_directory"));
  if (!c.ok) {
    msg.warn(`${c.reason}`);
    return false;
  }
  s.cleanup = c.client;
  const q = c.client;
  const f = forwarded(s.xforward, {
    name: s.name,
    addr: s.addr,
    helo: s.helo,
    proto: s.esmtp ? "ESMTP" : "SMTP",
  });
  const who = s.saslMethod !== null ? `, sasl_method=${s.saslMethod}, sasl_username=${s.login ?? ""}` : "";
  msg.info(`${q.queueId}: ${f.log.replace(/^client=\S+/, (c) => c + who)}`);
  await q.flags(receiveOverride(s.env.cfg).flags(CLEANUP_FLAG.FILTER | CLEANUP_FLAG.MAP));
  // This service's content_filter (empty with -o content_filter= on a re-injection service).
  await q.attr("content_filter", s.env.cfg.get("content_filter"));
  const client = { name: s.name, addr: s.addr, saslUser: s.login };
  const context = await sup.rewriteContext(s.env.cfg, s.env.mynetworks, client);
  for (const [k, v] of sup.cleanupAttrs(f, s.mail, q.queueId, context)) await q.attr(k, v);
  await q.sender(s.mail?.address ?? "");
  return true;
}

/** The start of the content: access-table actions told to cleanup, PREPEND headers, Received:. */
async function head(s: SessionState): Promise<Buffer> {
  const prepend = s.cleanup === null ? [] : await sup.sendActions(s.cleanup, s.actions);
  return Buffer.from(prepend.join("") + received(s), "latin1");
}

/** The Received: header in Postfix's form. */
function received(s: SessionState): string {
  const rfc3848 = `${s.tls !== null ? "S" : ""}${s.saslMethod !== null ? "A" : ""}`;
  const real = s.esmtp ? `ESMTP${rfc3848}` : "SMTP";
  // XFORWARD attributes (from a content filter) name the original client.
  const f = forwarded(s.xforward, { name: s.name, addr: s.addr, helo: s.helo, proto: real });
  return sup.receivedHeader(s.env, {
    helo: f.helo,
    name: f.name,
    addr: f.addr,
    proto: f.proto,
    rcpts: s.rcpts.map((r) => r.address),
    id: s.cleanup?.queueId ?? "",
    comments: [
      ...tls.tlsReceived(s.env.tls, s.tls),
      ...sasl.authReceived(s.env.sasl, s.saslMethod !== null ? s.login : null),
    ],
  });
}

/** Checks that a transaction can send content; returns an error reply or null. */
async function contentCheck(s: SessionState, verb: string): Promise<string | null> {
  if (s.mail === null) return "503 5.5.1 Error: need MAIL command";
  if (s.rcpts.length === 0) return "554 5.5.1 Error: no valid recipients";
  return (await s.restrict(verb, ["data"])) ?? (await s.milter.data()) ?? (await s.bqf.dataCmd());
}

/** DATA: stream the content to cleanup and report the outcome. */
export async function dataCmd(s: SessionState, arg: string): Promise<void> {
  if (arg !== "") return s.error("DATA", "501 5.5.4 Syntax: DATA");
  if (s.bdat !== null) return s.error("DATA", "503 5.5.1 Error: DATA after BDAT");
  const refused = await contentCheck(s, "DATA");
  if (refused !== null) return s.error("DATA", refused);
  if (s.env.forbidPipelining && s.r.pending) s.violation("DATA");
  s.reply("354 End data with <CR><LF>.<CR><LF>");
  const sink = new ContentSink(s.bqf.on ? s.bqf : s.cleanup, s.milter);
  const h = await head(s);
  await sink.write(h);
  const excluded =
    s.env.forbidBareLf === "yes" && (await s.env.bareLfExclusions.match(s.name, s.addr)).status === "match";
  const out = await readData(s.r, sink, {
    lineLimit: s.env.lineLimit,
    timeoutMs: s.env.timeoutMs,
    sizeLimit: s.env.sizeLimit,
    forbidBareLf: s.env.forbidBareLf === "yes" && !excluded,
  });
  if (out.kind === "lost") {
    msg.info(
      `${s.r.timedOut ? "timeout" : "lost connection"} after DATA (${sink.total} bytes) from ${s.client}`,
    );
    throw new Quit();
  }
  if (out.kind === "bare-lf") {
    s.reply(`${s.env.cfg.get("smtpd_forbid_bare_newline_reject_code")} 5.5.2 Error: bare <LF> received`);
    msg.info(`disconnect: bare <LF> received from ${s.client} after DATA`);
    throw new Quit();
  }
  if (out.kind === "done") s.actSize = out.size - h.length + out.lines;
  await finish(s, "DATA", out.kind === "too-big");
}

/** Ends the transaction: smtpd_end_of_data_restrictions, then cleanup's verdict. */
async function finish(s: SessionState, verb: string, tooBig: boolean): Promise<void> {
  if (s.bqf.on && !tooBig) {
    const r = await s.bqf.end(
      s.view(),
      s.rcpts.map((x) => x.address),
    );
    s.reset();
    if (!r.startsWith("2")) return s.error(verb, r);
    s.count(verb, true);
    return s.reply(r);
  }
  const c = s.cleanup;
  if (tooBig || c === null) {
    s.cleanup = null;
    c?.abort();
    s.reset();
    return s.error(verb, "552 5.3.4 Error: message file too big");
  }
  const only = s.rcpts.length === 1 ? (s.rcpts[0]?.address ?? null) : null;
  const eod = await s.restrict("END-OF-MESSAGE", ["end_of_data"], only);
  s.cleanup = null;
  if (eod !== null) {
    c.abort();
    s.reset();
    return s.error(verb, eod);
  }
  await s.milter.eom(c);
  const r = await c.end();
  s.reset();
  if (r.status === "ok") {
    s.count(verb, true);
    return s.reply(`250 2.0.0 Ok: queued as ${r.queueId}`);
  }
  if (r.status === "reject") return s.error(verb, `${r.code} ${r.reason}`);
  msg.warn(`${c.queueId}: cleanup: ${r.reason}`);
  return s.error(verb, "451 4.3.0 Error: queue file write error");
}

/** BDAT size [LAST] (CHUNKING). */
export async function bdatCmd(s: SessionState, arg: string): Promise<void> {
  const m = /^(\d{1,15})(\s+LAST)?$/i.exec(arg);
  if (m === null) return s.error("BDAT", "501 5.5.4 Syntax: BDAT count [LAST]");
  const n = Number(m[1]);
  const last = m[2] !== undefined;
  if (s.bdat === null) {
    s.bdatBad = await contentCheck(s, "BDAT");
    s.bdat = new ContentSink(s.bdatBad !== null ? null : s.bqf.on ? s.bqf : s.cleanup, s.milter);
    if (s.bdatBad === null) await s.bdat.write(await head(s));
  }
  s.actSize += n;
  const got = await readChunk(s.r, s.bdat, n, { timeoutMs: s.env.timeoutMs, sizeLimit: s.env.sizeLimit });
  if (got === "lost") {
    msg.info(`lost connection after BDAT from ${s.client}`);
    throw new Quit();
  }
  // Once too big, the message is refused from this chunk on, LAST included: never stored cut short.
  if (got === "too-big" && s.bdatBad === null) s.bdatBad = "552 5.3.4 Error: message file too big";
  if (s.bdatBad !== null) {
    const bad = s.bdatBad;
    if (last) s.reset();
    return s.error("BDAT", bad);
  }
  if (!last) {
    s.count("BDAT", true);
    return s.reply(`250 2.0.0 Ok: ${n} bytes`);
  }
  if (s.bdat.pendingCr) await s.bdat.write(Buffer.from("\r"));
  await s.bdat.flush();
  await finish(s, "BDAT", false);
}
