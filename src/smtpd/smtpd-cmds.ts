/*
 * smtpd-cmds - the SMTP commands around the mail transaction
 *
 * DESCRIPTION
 *   HELO and EHLO (with the extension list: STARTTLS, AUTH, XCLIENT,
 *   XFORWARD as configured), XCLIENT and XFORWARD for trusted proxies and
 *   content filters, STARTTLS and the TLS handshake (also for wrapper-mode
 *   services), AUTH, ETRN and VRFY, each with Postfix's replies. The mail
 *   transaction itself is in smtpd-txn.ts.
 */
import { msg } from "../util/msg.js";
import { parseRcpt } from "./smtpd-params.js";
import { SmtpReader } from "./smtpd-reader.js";
import { ehloExtensions, parseXattrs, xclientApply } from "./smtpd-xclient.js";
import { Quit, type SessionState } from "./smtpd-state.js";
import * as sup from "./smtpd-support.js";
import * as tls from "./smtpd-tls.js";
import * as sasl from "./smtpd-sasl.js";

/** HELO/EHLO: records the name; EHLO lists the extensions. */
export async function hello(s: SessionState, verb: string, arg: string): Promise<void> {
  if (arg === "") return s.error(verb, `501 Syntax: ${verb} hostname`);
  s.reset();
  s.helo = arg;
  s.esmtp = verb === "EHLO";
  if (!s.env.delayReject) {
    const v = await s.restrict("helo", ["client", "helo"]);
    if (v !== null) return s.error(verb, v);
  }
  const bye = await s.milter.helo(arg);
  if (bye !== null) return s.error(verb, bye);
  s.count(verb, true);
  if (!s.esmtp) return s.reply(`250 ${s.env.myhostname}`);
  const mechs = s.env.discardEhlo.has("AUTH")
    ? []
    : await sasl.offeredMechanisms(s.env.sasl, s.tls !== null, { name: s.name, addr: s.addr });
  const shown = tls.withExtensions(ehloExtensions(s.env, s.xclientOk, s.xforwardOk), [
    ...(tls.starttlsOffered(s.env.tls, s.tls !== null) && !s.env.discardEhlo.has("STARTTLS")
      ? ["STARTTLS"]
      : []),
    ...sasl.authKeywords(s.env.sasl, mechs),
  ]);
  s.reply(`250 ${s.env.myhostname}`, ...shown.map((e) => `250 ${e}`));
}

/** XCLIENT: a trusted proxy names the real client; the session starts over as that client. */
export async function xclient(s: SessionState, arg: string): Promise<void> {
  if (!s.xclientOk) return s.error("XCLIENT", "550 5.7.0 Error: insufficient authorization");
  if (s.mail !== null) return s.error("XCLIENT", "503 5.5.1 Error: MAIL transaction in progress");
  const p = parseXattrs("XCLIENT", arg);
  if (!p.ok) return s.error("XCLIENT", p.reply);
  const cur = { peer: s.peer, addr: s.addr, helo: s.helo, esmtp: s.esmtp, login: s.login };
  const next = xclientApply(cur, p.attrs);
  s.count("XCLIENT", true);
  s.reset();
  s.peer = next.peer;
  s.name = next.peer.name;
  s.addr = next.addr;
  s.helo = next.helo;
  s.esmtp = next.esmtp;
  s.login = next.login;
  s.reply(`220 ${s.env.banner}`);
}

/** XFORWARD: client details for the next message's queue file. */
export async function xforward(s: SessionState, arg: string): Promise<void> {
  if (!s.xforwardOk) return s.error("XFORWARD", "550 5.7.0 Error: insufficient authorization");
  if (s.mail !== null) return s.error("XFORWARD", "503 5.5.1 Error: MAIL transaction in progress");
  const p = parseXattrs("XFORWARD", arg);
  if (!p.ok) return s.error("XFORWARD", p.reply);
  for (const [k, v] of p.attrs) s.xforward.set(k, v);
  s.count("XFORWARD", true);
  s.reply("250 2.0.0 Ok");
}

/** STARTTLS: reply, forget everything the client said (pipelined input too), then the handshake. */
export async function starttls(s: SessionState, arg: string): Promise<void> {
  const discarded = s.env.discardEhlo.has("STARTTLS");
  const refused = tls.starttlsRefusal(s.env.tls, arg, s.tls !== null, discarded);
  if (refused !== null) return s.error("STARTTLS", refused);
  if ((await s.limits?.tlsRefused("STARTTLS request")) === true)
    return s.error("STARTTLS", `454 4.7.0 Error: too many new TLS sessions from ${s.client}`);
  s.reply("220 2.0.0 Ready to start TLS");
  s.reset();
  s.helo = "";
  s.esmtp = false;
  s.login = null;
  s.saslMethod = null;
  s.count("STARTTLS", true);
  if (!(await handshake(s, false))) throw new Quit();
}

/** Runs the TLS handshake on the client socket; from then on the session reads and writes through TLS. */
export async function handshake(s: SessionState, wrapper: boolean): Promise<boolean> {
  // After STARTTLS, whatever the client sent in plain text is dropped; in wrapper mode it is the handshake.
  if (wrapper && (await s.limits?.tlsRefused("TLS service request")) === true) return false;
  const early = s.r.detach();
  if (wrapper && early.length > 0) s.sock.unshift(early);
  const r = await tls.startTls(s.env.tls, s.sock, s.client);
  if (!r.ok) {
    msg.info(`lost connection after ${s.lastCmd} from ${s.client}`);
    return false;
  }
  s.sock = r.sock;
  s.r = new SmtpReader(r.sock);
  s.tls = r.info;
  tls.logTls(s.env.tls, r.info, s.client);
  if (!r.info.reused && (await s.limits?.newTls()) === true) {
    s.reply(`421 4.7.0 ${s.env.myhostname} Error: too many new TLS sessions from ${s.client}`);
    return false;
  }
  if (s.env.tls.requireCcert && r.info.cert?.trusted !== true) {
    const why = r.info.cert === null ? "No client certificate presented" : "Client certificate not trusted";
    msg.info(`NOQUEUE: abort: TLS from ${s.client}: ${why}`);
    if (!s.env.tls.wrapper) await s.r.line(s.env.lineLimit, s.env.timeoutMs);
    s.reply(`421 4.7.1 ${s.env.myhostname} Error: ${why}`);
    return false;
  }
  return true;
}

/** AUTH: SASL authentication with the configured back end. */
export async function auth(s: SessionState, arg: string): Promise<void> {
  const refused = sasl.authRefusal(s.env.sasl, {
    helo: s.helo !== "",
    heloRequired: s.env.heloRequired,
    inMail: s.mail !== null,
    tls: s.tls !== null,
    loggedIn: s.saslMethod !== null,
    discarded: s.env.discardEhlo.has("AUTH"),
  });
  if (refused !== null) return s.error("AUTH", refused);
  const limited = await s.limits?.auth();
  if (typeof limited === "string") return s.error("AUTH", limited);
  const offered = await sasl.offeredMechanisms(s.env.sasl, s.tls !== null, { name: s.name, addr: s.addr });
  const local = s.sock.localAddress ?? "";
  const io: sasl.AuthIo = {
    client: s.client,
    peer: {
      service: s.env.sasl.service,
      localAddr: local.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1"),
      clientAddr: s.addr,
      secured: s.tls !== null,
    },
    reply: (line) => s.reply(line),
    read: async (limit) => {
      const l = await s.r.line(limit, s.env.timeoutMs);
      return l === null ? null : { text: l.text.toString("latin1"), cut: l.cut };
    },
  };
  const r = await sasl.authCommand(s.env.sasl, io, arg, offered);
  if (r.kind === "lost") {
    msg.info(`${s.r.timedOut ? "timeout" : "lost connection"} after AUTH from ${s.client}`);
    throw new Quit();
  }
  if (r.kind === "error") return s.error("AUTH", r.reply);
  s.login = r.user;
  s.saslMethod = r.method;
  s.count("AUTH", true);
  s.reply("235 2.7.0 Authentication successful");
}

/** ETRN: ask the flush service to deliver mail queued for a site. */
export async function etrn(s: SessionState, arg: string): Promise<void> {
  // ETRN's replies carry no enhanced status codes, as in Postfix (RFC 1985 predates them).
  if (s.helo === "" && s.env.heloRequired) return s.error("ETRN", "503 5.5.1 Error: send HELO/EHLO first");
  if (s.mail !== null) return s.error("ETRN", "503 Error: MAIL transaction in progress");
  if (arg.trim() === "" || /\s/.test(arg.trim())) return s.error("ETRN", "500 Syntax: ETRN domain");
  const site = sup.etrnSite(arg);
  if (site === null) return s.error("ETRN", "501 Error: invalid parameter syntax");
  s.etrnDomain = site;
  const refused = await s.restrict("ETRN", ["client", "helo", "etrn"]);
  s.etrnDomain = null;
  if (refused !== null) return s.error("ETRN", refused);
  const reply = await sup.etrnFlush(s.env.cfg.get("queue_directory"), site);
  if (!reply.startsWith("250")) return s.error("ETRN", reply);
  s.count("ETRN", true);
  s.reply(reply);
}

/** VRFY: disabled, or the Postfix answer without a recipient check. */
export async function vrfy(s: SessionState, arg: string): Promise<void> {
  if (s.env.vrfyDisabled) return s.error("VRFY", "502 5.5.1 VRFY command is disabled");
  const words = arg.trim().split(/\s+/);
  const utf8 = words.length === 2 && words[1]?.toUpperCase() === "SMTPUTF8";
  if (arg.trim() === "" || (words.length > 1 && !utf8))
    return s.error("VRFY", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]");
  const p = parseRcpt(`TO:${words[0] ?? ""}`, utf8);
  if (!p.ok) return s.error("VRFY", "501 5.1.3 Bad recipient address syntax");
  // As Postfix: the relay check too, so that VRFY does not probe other domains through this server.
  const v = await s.restrict("VRFY", ["client", "helo", "relay", "recipient"], p.value.address);
  if (v !== null) return s.error("VRFY", v);
  s.count("VRFY", true);
  s.reply(`252 2.0.0 ${p.value.address}`);
}
