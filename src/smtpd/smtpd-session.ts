/*
 * smtpd-session - one SMTP conversation
 *
 * DESCRIPTION
 *   Greets, reads commands (each line bounded by line_length_limit, each
 *   read by smtpd_timeout), and answers with Postfix's replies and enhanced
 *   status codes. The envelope is checked against the restriction lists
 *   (smtpd-check.ts); the queue file is opened at the first accepted
 *   recipient; the content streams to cleanup (smtpd-data.ts) and
 *   "250 2.0.0 Ok: queued as ID" is said only once cleanup has made the
 *   file durable. Error counting (smtpd_soft_error_limit with
 *   smtpd_error_sleep_time, smtpd_hard_error_limit), junk commands,
 *   forbidden commands (HTTP and the like), and pipelining rules
 *   (smtpd_forbid_unauth_pipelining: input that arrives before the greeting
 *   or right after a command that must end a group is a protocol violation)
 *   protect the server from hostile clients, and anvil's per-client
 *   limits (smtpd-anvil.ts) from abusive ones. Behind a proxy, the client
 *   address comes from the PROXY protocol header, XCLIENT or XFORWARD
 *   (smtpd-xclient.ts). Log lines are Postfix's. The session's state and
 *   shared helpers are in smtpd-state.ts, the mail transaction in
 *   smtpd-txn.ts, the other commands in smtpd-cmds.ts.
 */
import type { Socket } from "node:net";
import { msg } from "../util/msg.js";
import { peerName, type SmtpdEnv } from "./smtpd-env.js";
import * as sup from "./smtpd-support.js";
import { SessionLimits } from "./smtpd-anvil.js";
import { readProxyHeader } from "./smtpd-xclient.js";
import { Quit, SessionState } from "./smtpd-state.js";
import * as cmd from "./smtpd-cmds.js";
import * as txn from "./smtpd-txn.js";

const LAST_IN_GROUP = new Set([
  "EHLO",
  "HELO",
  "DATA",
  "VRFY",
  "EXPN",
  "TURN",
  "QUIT",
  "NOOP",
  "AUTH",
  "STARTTLS",
]);
const JUNK = new Set(["NOOP", "RSET", "VRFY", "ETRN", "HELP"]);
const PRE_TLS = new Set(["EHLO", "HELO", "STARTTLS", "NOOP", "QUIT", "HELP", "XCLIENT"]);
// eslint-disable-next-line no-control-regex
const BINARY = /[\x00-\x08\x0e-\x1f\x7f]/;
/** A line that looks like a message header ("Subject: ..."): a client sending mail without SMTP, as in Postfix. */
const HEADER = /^[\x21-\x39\x3b-\x7e]+:/;
/** Command lines are read as bytes (latin1 strings); 8-bit text in them must be UTF-8 (RFC 6531). */
const EIGHT_BIT = /[\x80-\xff]/;

/** True when bytes are well-formed UTF-8. */
function validUtf8(bytes: Buffer): boolean {
  try {
    UTF8_STRICT.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true });

/**
 * Ends the session's socket once what was written has gone out: over TLS,
 * the last reply and the close_notify alert are flushed before the
 * connection underneath is closed (a client otherwise sees an unexpected
 * EOF, and a last 554 may be lost).
 */
function endGracefully(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (sock.destroyed) return resolve();
    const timer = setTimeout(resolve, 2000);
    sock.end(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class Session {
  #s: SessionState;

  constructor(env: SmtpdEnv, sock: Socket) {
    this.#s = new SessionState(env, sock);
  }

  /** Runs the session to its end. */
  async run(): Promise<void> {
    const s = this.#s;
    s.sock.resume();
    if (s.env.proxyProtocol === "haproxy" && !(await this.#proxy())) {
      s.sock.destroy();
      return;
    }
    s.peer = await peerName(s.env.dns, s.addr, s.env.peernameLookup);
    s.name = s.peer.name;
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setImmediate(r));
    msg.info(`connect from ${s.client}`);
    s.limits = new SessionLimits(s.env, s.addr, s.client);
    s.xclientOk = (await s.env.xclientHosts.match(s.name, s.addr)).status === "match";
    s.xforwardOk = (await s.env.xforwardHosts.match(s.name, s.addr)).status === "match";
    try {
      const tooMany = s.xclientOk ? null : await s.limits.connect(s.name);
      const refused = tooMany ?? (await s.milter.connect());
      if (refused !== null) {
        s.reply(refused);
        throw new Quit();
      }
      if (s.env.tls.wrapper && !(await cmd.handshake(s, true))) throw new Quit();
      if (s.env.forbidPipelining && s.r.pending && s.tls === null) {
        s.reply("554 5.5.0 Error: SMTP protocol synchronization");
        msg.info(`improper command pipelining after CONNECT from ${s.client}`);
        throw new Quit();
      }
      s.reply(`220 ${s.env.banner}`);
      for (;;) await this.#command();
    } catch (err) {
      if (!(err instanceof Quit)) msg.warn(`${s.client}: ${(err as Error).message}`);
    } finally {
      await s.limits?.end();
      s.cleanup?.abort();
      s.bqf.close();
      s.milter.quit();
      msg.info(sup.disconnectLine(s.client, s.counts));
      await endGracefully(s.sock);
    }
  }

  /** Reads the upstream proxy's header (smtpd_upstream_proxy_protocol) and takes the client address from it. */
  async #proxy(): Promise<boolean> {
    const s = this.#s;
    const h = await readProxyHeader(s.r, s.env.proxyTimeoutMs);
    if (!h.ok) {
      msg.warn(`haproxy read: ${h.reason} from [${s.addr}]`);
      return false;
    }
    if (h.addr !== null) s.addr = h.addr;
    return true;
  }

  /** Reads and runs one command. */
  async #command(): Promise<void> {
    const s = this.#s;
    const line = await s.r.line(s.env.lineLimit, s.env.timeoutMs);
    if (line === null) {
      msg.info(`${s.r.timedOut ? "timeout" : "lost connection"} after ${s.lastCmd} from ${s.client}`);
      if (s.r.timedOut) s.reply(`421 4.4.2 ${s.env.myhostname} Error: timeout exceeded`);
      throw new Quit();
    }
    // 8-bit text must be UTF-8 (checked below): addresses and names travel on as Unicode strings.
    const eightBit = EIGHT_BIT.test(line.text.toString("latin1"));
    const utf8 = eightBit && validUtf8(line.text);
    const text = line.text.toString(utf8 ? "utf8" : "latin1");
    const m = /^\s*(\S+)\s*(.*)$/s.exec(text);
    const verb = (m?.[1] ?? "").toUpperCase();
    const arg = (m?.[2] ?? "").trimEnd();
    s.lastCmd = verb || "CONNECT";
    if (line.cut) return s.error(verb, "500 5.5.2 Error: line too long");
    if (s.env.forbiddenCommands.has(verb) || /^[^A-Z]/.test(verb) || BINARY.test(text) || HEADER.test(text)) {
      msg.warn(`non-SMTP command from ${s.client}: ${text.slice(0, 100)}`);
      s.reply("221 2.7.0 Error: I can break rules, too. Goodbye.");
      throw new Quit();
    }
    if (eightBit && !utf8) return s.error(verb, "500 5.5.2 Error: bad UTF-8 syntax");
    if (JUNK.has(verb) && ++s.junk > s.env.junkLimit)
      return s.error(verb, "421 4.7.0 Error: too many junk commands");
    if (s.env.tls.level === "encrypt" && s.tls === null && !PRE_TLS.has(verb))
      return s.error(verb, "530 5.7.0 Must issue a STARTTLS command first");
    // As Postfix: a command that must end its group (or any command, before EHLO announced
    // PIPELINING) is refused, not run, when more input already waits behind it. Commands sent
    // after the end of a message's data may be pipelined.
    if (s.env.forbidPipelining && s.r.pending && verb !== "QUIT" && (LAST_IN_GROUP.has(verb) || !s.esmtp))
      return s.violation(verb);
    await this.#dispatch(verb, arg);
  }

  /** Routes a command to its handler. */
  async #dispatch(verb: string, arg: string): Promise<void> {
    const s = this.#s;
    switch (verb) {
      case "HELO":
      case "EHLO":
        return cmd.hello(s, verb, arg);
      case "MAIL":
        return txn.mailCmd(s, arg);
      case "RCPT":
        return txn.rcptCmd(s, arg);
      case "DATA":
        return txn.dataCmd(s, arg);
      case "BDAT":
        return txn.bdatCmd(s, arg);
      case "RSET":
        if (arg !== "") return s.error(verb, "501 5.5.4 Syntax: RSET");
        s.reset();
        s.count(verb, true);
        return s.reply("250 2.0.0 Ok");
      case "NOOP":
        s.count(verb, true);
        return s.reply("250 2.0.0 Ok");
      case "QUIT":
        s.count(verb, true);
        s.reply("221 2.0.0 Bye");
        throw new Quit();
      case "VRFY":
        return cmd.vrfy(s, arg);
      case "XCLIENT":
        return cmd.xclient(s, arg);
      case "XFORWARD":
        return cmd.xforward(s, arg);
      case "ETRN":
        return cmd.etrn(s, arg);
      case "STARTTLS":
        return cmd.starttls(s, arg);
      case "AUTH":
        return cmd.auth(s, arg);
      default:
        return s.error(
          verb,
          (await s.milter.unknown(`${verb} ${arg}`.trim())) ?? "502 5.5.2 Error: command not recognized",
        );
    }
  }
}
