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
 *   (smtpd-xclient.ts). Log lines are Postfix's.
 */
import type { Socket } from "node:net";
import { msg } from "../util/msg.js";
import { CleanupClient } from "../global/cleanup-client.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { evalList, type CheckContext, type Stage, type Verdict } from "./smtpd-check.js";
import { ContentSink, readChunk, readData } from "./smtpd-data.js";
import { peerName, type PeerNames, type SmtpdEnv } from "./smtpd-env.js";
import { parseMail, parseRcpt, type MailArgs, type RcptArgs } from "./smtpd-params.js";
import { SmtpReader } from "./smtpd-reader.js";
import * as sup from "./smtpd-support.js";
import { SessionLimits } from "./smtpd-anvil.js";
import { ehloExtensions, forwarded, parseXattrs, readProxyHeader, xclientApply } from "./smtpd-xclient.js";
import { implicitUnlisted } from "./smtpd-unlisted.js";
import { queueSpaceCheck, spaceSettings } from "./smtpd-space.js";
import { SmtpdMilter, type SessionView } from "./smtpd-milter.js";
import { SmtpdProxy } from "./smtpd-proxy.js";
import { receiveOverride } from "../global/receive-override.js";
import * as tls from "./smtpd-tls.js";
import * as sasl from "./smtpd-sasl.js";

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
const BINARY = /[\x00-\x08\x0e-\x1f\x7f-\xff]/;

class Quit extends Error {}

export class Session {
  #env: SmtpdEnv;
  #sock: Socket;
  #r: SmtpReader;
  #addr: string;
  #name = "unknown";
  #peer: PeerNames = { name: "unknown", nameCode: "perm", reverseName: "unknown", reverseCode: "perm" };
  #helo = "";
  #esmtp = false;
  #mail: MailArgs | null = null;
  #rcpts: RcptArgs[] = [];
  #cleanup: CleanupClient | null = null;
  #errors = 0;
  #junk = 0;
  #counts = new Map<string, [number, number]>();
  #bdat: ContentSink | null = null;
  #bdatBad: string | null = null;
  #actions: CheckContext["actions"] = [];
  #etrnDomain: string | null = null;
  #instance = "";
  #limits: SessionLimits | null = null;
  #xclientOk = false;
  #xforwardOk = false;
  #xforward = new Map<string, string>();
  #login: string | null = null;
  /** The size of the message as received (lines with CRLF, or BDAT bytes), for END-OF-MESSAGE. */
  #actSize = 0;
  #milter: SmtpdMilter;
  #bqf: SmtpdProxy;
  #tls: tls.TlsInfo | null = null;
  #saslMethod: string | null = null;
  static #serial = 0;

  constructor(env: SmtpdEnv, sock: Socket) {
    this.#env = env;
    this.#sock = sock;
    this.#r = new SmtpReader(sock);
    this.#addr = (sock.remoteAddress ?? "unknown").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
    this.#milter = new SmtpdMilter(env, () => this.#view());
    this.#bqf = new SmtpdProxy(env);
  }

  /** What milters and the proxy filter are told about the session. */
  #view(): SessionView {
    const s = this.#sock;
    return {
      ...{ name: this.#name, addr: this.#addr, port: s.remotePort ?? 0, peer: this.#peer, helo: this.#helo },
      ...{ esmtp: this.#esmtp, queueId: this.#cleanup?.queueId ?? null, sender: this.#mail?.address ?? null },
      ...{ login: this.#login, serverAddr: s.localAddress ?? "", serverPort: s.localPort ?? 0 },
    };
  }

  /** The client as logs show it: name[addr]. */
  get #client(): string {
    return `${this.#name}[${this.#addr}]`;
  }

  /** Sends one reply line (or several: the last without a dash). */
  #reply(...lines: string[]): void {
    if (this.#sock.destroyed) return;
    const out = lines.map((l, i) => (i < lines.length - 1 ? l.replace(/^(\d{3}) /, "$1-") : l)).join("\r\n");
    this.#sock.write(out + "\r\n");
  }

  /** Counts a command for the disconnect line. */
  #count(cmd: string, ok: boolean): void {
    const key = cmd.toLowerCase();
    const c = this.#counts.get(key) ?? [0, 0];
    c[0] += ok ? 1 : 0;
    c[1] += 1;
    this.#counts.set(key, c);
  }

  /** Runs the session to its end. */
  async run(): Promise<void> {
    this.#sock.resume();
    if (this.#env.proxyProtocol === "haproxy" && !(await this.#proxy())) {
      this.#sock.destroy();
      return;
    }
    this.#peer = await peerName(this.#env.dns, this.#addr, this.#env.peernameLookup);
    this.#name = this.#peer.name;
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setImmediate(r));
    msg.info(`connect from ${this.#client}`);
    this.#limits = new SessionLimits(this.#env, this.#addr, this.#client);
    this.#xclientOk = (await this.#env.xclientHosts.match(this.#name, this.#addr)).status === "match";
    this.#xforwardOk = (await this.#env.xforwardHosts.match(this.#name, this.#addr)).status === "match";
    try {
      const tooMany = this.#xclientOk ? null : await this.#limits.connect(this.#name);
      const refused = tooMany ?? (await this.#milter.connect());
      if (refused !== null) {
        this.#reply(refused);
        throw new Quit();
      }
      if (this.#env.tls.wrapper && !(await this.#handshake(true))) throw new Quit();
      if (this.#env.forbidPipelining && this.#r.pending && this.#tls === null) {
        this.#reply("554 5.5.0 Error: SMTP protocol synchronization");
        msg.info(`improper command pipelining after CONNECT from ${this.#client}`);
        throw new Quit();
      }
      this.#reply(`220 ${this.#env.banner}`);
      for (;;) await this.#command();
    } catch (err) {
      if (!(err instanceof Quit)) msg.warn(`${this.#client}: ${(err as Error).message}`);
    } finally {
      await this.#limits?.end();
      this.#cleanup?.abort();
      this.#bqf.close();
      this.#milter.quit();
      msg.info(sup.disconnectLine(this.#client, this.#counts));
      this.#sock.end();
    }
  }

  /** Reads the upstream proxy's header (smtpd_upstream_proxy_protocol) and takes the client address from it. */
  async #proxy(): Promise<boolean> {
    const h = await readProxyHeader(this.#r, this.#env.proxyTimeoutMs);
    if (!h.ok) {
      msg.warn(`haproxy read: ${h.reason} from [${this.#addr}]`);
      return false;
    }
    if (h.addr !== null) this.#addr = h.addr;
    return true;
  }

  /** XCLIENT: a trusted proxy names the real client; the session starts over as that client. */
  async #xclient(arg: string): Promise<void> {
    if (!this.#xclientOk) return this.#error("XCLIENT", "550 5.7.0 Error: insufficient authorization");
    if (this.#mail !== null) return this.#error("XCLIENT", "503 5.5.1 Error: MAIL transaction in progress");
    const p = parseXattrs("XCLIENT", arg);
    if (!p.ok) return this.#error("XCLIENT", p.reply);
    const cur = {
      peer: this.#peer,
      addr: this.#addr,
      helo: this.#helo,
      esmtp: this.#esmtp,
      login: this.#login,
    };
    const next = xclientApply(cur, p.attrs);
    this.#count("XCLIENT", true);
    this.#reset();
    this.#peer = next.peer;
    this.#name = next.peer.name;
    this.#addr = next.addr;
    this.#helo = next.helo;
    this.#esmtp = next.esmtp;
    this.#login = next.login;
    this.#reply(`220 ${this.#env.banner}`);
  }

  /** XFORWARD: client details for the next message's queue file. */
  async #xforwardCmd(arg: string): Promise<void> {
    if (!this.#xforwardOk) return this.#error("XFORWARD", "550 5.7.0 Error: insufficient authorization");
    if (this.#mail !== null) return this.#error("XFORWARD", "503 5.5.1 Error: MAIL transaction in progress");
    const p = parseXattrs("XFORWARD", arg);
    if (!p.ok) return this.#error("XFORWARD", p.reply);
    for (const [k, v] of p.attrs) this.#xforward.set(k, v);
    this.#count("XFORWARD", true);
    this.#reply("250 2.0.0 Ok");
  }

  /** Reads and runs one command. */
  async #command(): Promise<void> {
    const line = await this.#r.line(this.#env.lineLimit, this.#env.timeoutMs);
    if (line === null) {
      msg.info(
        `${this.#r.timedOut ? "timeout" : "lost connection"} after ${this.#lastCmd} from ${this.#client}`,
      );
      if (this.#r.timedOut) this.#reply(`421 4.4.2 ${this.#env.myhostname} Error: timeout exceeded`);
      throw new Quit();
    }
    const text = line.text.toString("latin1");
    const m = /^\s*(\S+)\s*(.*)$/s.exec(text);
    const verb = (m?.[1] ?? "").toUpperCase();
    const arg = (m?.[2] ?? "").trimEnd();
    this.#lastCmd = verb || "CONNECT";
    if (line.cut) return this.#error(verb, "500 5.5.2 Error: line too long");
    if (this.#env.forbiddenCommands.has(verb) || /^[^A-Z]/.test(verb) || BINARY.test(text)) {
      msg.warn(`non-SMTP command from ${this.#client}: ${text.slice(0, 100)}`);
      this.#reply("221 2.7.0 Error: I can break rules, too. Goodbye.");
      throw new Quit();
    }
    if (JUNK.has(verb) && ++this.#junk > this.#env.junkLimit)
      return this.#error(verb, "421 4.7.0 Error: too many junk commands");
    if (this.#env.tls.level === "encrypt" && this.#tls === null && !PRE_TLS.has(verb))
      return this.#error(verb, "530 5.7.0 Must issue a STARTTLS command first");
    if (verb === "STARTTLS" && this.#env.forbidPipelining && this.#r.pending) return this.#violation(verb);
    await this.#dispatch(verb, arg);
    if (verb === "STARTTLS") return;
    if (this.#env.forbidPipelining && !this.#esmtp && this.#r.pending && verb !== "DATA" && verb !== "BDAT") {
      return this.#violation(verb);
    }
    if (this.#env.forbidPipelining && LAST_IN_GROUP.has(verb) && this.#r.pending && verb !== "QUIT")
      return this.#violation(verb);
  }

  #lastCmd = "CONNECT";

  /** A pipelining violation: reply and hang up. */
  #violation(verb: string): never {
    msg.info(`improper command pipelining after ${verb} from ${this.#client}`);
    this.#reply("554 5.5.0 Error: SMTP protocol synchronization");
    throw new Quit();
  }

  /** Routes a command to its handler. */
  async #dispatch(verb: string, arg: string): Promise<void> {
    switch (verb) {
      case "HELO":
      case "EHLO":
        return this.#hello(verb, arg);
      case "MAIL":
        return this.#mailCmd(arg);
      case "RCPT":
        return this.#rcptCmd(arg);
      case "DATA":
        return this.#data(arg);
      case "BDAT":
        return this.#bdatCmd(arg);
      case "RSET":
        this.#reset();
        this.#count(verb, true);
        return this.#reply("250 2.0.0 Ok");
      case "NOOP":
        this.#count(verb, true);
        return this.#reply("250 2.0.0 Ok");
      case "QUIT":
        this.#count(verb, true);
        this.#reply("221 2.0.0 Bye");
        throw new Quit();
      case "VRFY":
        return this.#vrfy(arg);
      case "XCLIENT":
        return this.#xclient(arg);
      case "XFORWARD":
        return this.#xforwardCmd(arg);
      case "ETRN":
        return this.#etrn(arg);
      case "STARTTLS":
        return this.#starttls(arg);
      case "AUTH":
        return this.#auth(arg);
      default:
        return this.#error(
          verb,
          (await this.#milter.unknown(`${verb} ${arg}`.trim())) ?? "502 5.5.2 Error: command not recognized",
        );
    }
  }

  /** Counts an error reply, sleeping past the soft limit and hanging up at the hard limit. */
  async #error(verb: string, reply: string): Promise<void> {
    this.#count(verb || "unknown", false);
    this.#errors++;
    if (this.#errors >= this.#env.hardErrors) {
      this.#reply(
        reply.startsWith("421") ? reply : `421 4.7.0 ${this.#env.myhostname} Error: too many errors`,
      );
      msg.info(`too many errors after ${verb || "CONNECT"} from ${this.#client}`);
      throw new Quit();
    }
    if (this.#errors > this.#env.softErrors) await new Promise((r) => setTimeout(r, this.#env.errorSleepMs));
    this.#reply(reply);
    if (reply.startsWith("421")) throw new Quit();
  }

  /** HELO/EHLO: records the name; EHLO lists the extensions. */
  async #hello(verb: string, arg: string): Promise<void> {
    if (arg === "") return this.#error(verb, `501 Syntax: ${verb} hostname`);
    this.#reset();
    this.#helo = arg;
    this.#esmtp = verb === "EHLO";
    if (!this.#env.delayReject) {
      const v = await this.#restrict("helo", ["client", "helo"]);
      if (v !== null) return this.#error(verb, v);
    }
    const bye = await this.#milter.helo(arg);
    if (bye !== null) return this.#error(verb, bye);
    this.#count(verb, true);
    if (!this.#esmtp) return this.#reply(`250 ${this.#env.myhostname}`);
    const mechs = this.#env.discardEhlo.has("AUTH")
      ? []
      : await sasl.offeredMechanisms(this.#env.sasl, this.#tls !== null, {
          name: this.#name,
          addr: this.#addr,
        });
    const shown = tls.withExtensions(ehloExtensions(this.#env, this.#xclientOk, this.#xforwardOk), [
      ...(tls.starttlsOffered(this.#env.tls, this.#tls !== null) && !this.#env.discardEhlo.has("STARTTLS")
        ? ["STARTTLS"]
        : []),
      ...sasl.authKeywords(this.#env.sasl, mechs),
    ]);
    this.#reply(`250 ${this.#env.myhostname}`, ...shown.map((e) => `250 ${e}`));
  }

  /** Forgets the current transaction. */
  #reset(): void {
    this.#mail = null;
    this.#rcpts = [];
    this.#cleanup?.abort();
    this.#milter.abort();
    this.#bqf.close();
    this.#cleanup = null;
    this.#bdat = null;
    this.#bdatBad = null;
    this.#actions = [];
    this.#xforward = new Map();
    this.#actSize = 0;
  }

  /** The restriction context for the current state. */
  #ctx(recipient: string | null, what: string): CheckContext {
    const ctx: CheckContext = {
      cfg: this.#env.cfg,
      clientName: this.#name,
      peer: this.#peer,
      dns: this.#env.dns,
      clientAddr: this.#addr,
      helo: this.#helo,
      sender: this.#mail?.address ?? null,
      recipient,
      etrnDomain: this.#etrnDomain,
      saslUser: this.#login,
      pipelined: this.#r.pending,
      actions: this.#actions,
      deferIfPermit: null,
      deferIfReject: null,
      inMynetworks: async () => {
        const r = await this.#env.mynetworks.match(this.#name, this.#addr);
        return r.status === "tempfail" ? "tempfail" : r.status === "match";
      },
      resolveFlags: async (address) => {
        const r = await this.#env.rewrite.resolve(this.#mail?.address ?? "", address);
        return r.ok ? r.value.flags : "tempfail";
      },
      resolve: async (address) => {
        const r = await this.#env.rewrite.resolve(this.#mail?.address ?? "", address);
        return r.ok ? r.value : "tempfail";
      },
      unlisted: { sender: false, recipient: false },
      tlsClientcerts: (all) => tls.permitTlsClientcerts(this.#env.tls, this.#tls, all),
      policyState: {
        protocol_state: what.toUpperCase(),
        protocol_name: this.#esmtp ? "ESMTP" : "SMTP",
        queue_id: this.#cleanup?.queueId ?? "",
        recipient_count: String(this.#rcpts.length),
        size: String(this.#actSize > 0 ? this.#actSize : (this.#mail?.size ?? 0)),
        instance: `${process.pid.toString(16)}.${this.#instance}`,
        sasl_method: this.#saslMethod ?? "",
        ...tls.policyAttrs(this.#tls),
      },
    };
    ctx.senderLogin = (name, stage) => sasl.senderLoginCheck(this.#env.sasl, ctx, name, stage);
    return ctx;
  }

  /** Runs restriction lists in order; returns a reply to refuse with, or null. Logs refusals as Postfix does. */
  async #restrict(what: string, stages: Stage[], recipient: string | null = null): Promise<string | null> {
    const ctx = this.#ctx(recipient, what);
    let final: Verdict = { kind: "dunno" };
    for (const stage of stages) {
      const v = await evalList(ctx, stage, this.#env.cfg.list(`smtpd_${stage}_restrictions`));
      if (v.kind === "reject" || v.kind === "defer") {
        final = v.kind === "reject" && ctx.deferIfReject !== null ? ctx.deferIfReject : v;
        break;
      }
      if (v.kind === "permit") final = v;
    }
    if (final.kind !== "reject" && final.kind !== "defer" && ctx.deferIfPermit !== null)
      final = ctx.deferIfPermit;
    if (
      final.kind !== "reject" &&
      final.kind !== "defer" &&
      !receiveOverride(this.#env.cfg).noUnknownRecipientChecks
    )
      final = await implicitUnlisted(ctx, stages);
    if (final.kind !== "reject" && final.kind !== "defer") return null;
    const reply = `${final.code} ${final.enh} ${final.text}`;
    const id = this.#cleanup?.queueId ?? "NOQUEUE";
    const to = recipient !== null ? ` to=<${recipient}>` : "";
    msg.info(
      `${id}: reject: ${what} from ${this.#client}: ${reply}; from=<${this.#mail?.address ?? ""}>${to} proto=${this.#esmtp ? "ESMTP" : "SMTP"} helo=<${this.#helo}>`,
    );
    return reply;
  }

  /** MAIL FROM. */
  async #mailCmd(arg: string): Promise<void> {
    if (this.#env.heloRequired && this.#helo === "")
      return this.#error("MAIL", "503 5.5.1 Error: send HELO/EHLO first");
    if (this.#mail !== null) return this.#error("MAIL", "503 5.5.1 Error: nested MAIL command");
    const rate = await this.#limits?.message();
    if (typeof rate === "string") return this.#error("MAIL", rate);
    const p = parseMail(arg, this.#env.sizeLimit);
    if (!p.ok) return this.#error("MAIL", p.reply);
    const badAuth = sasl.mailAuthParam(this.#env.sasl, /\sAUTH=(\S*)/i.exec(arg)?.[1]);
    if (badAuth !== null) return this.#error("MAIL", badAuth);
    this.#mail = p.value;
    this.#instance = `${Date.now().toString(16)}.${(Session.#serial++).toString(16)}`;
    if (!this.#env.delayReject) {
      const v = await this.#restrict("MAIL", ["client", "helo", "sender"]);
      if (v !== null) {
        this.#mail = null;
        return this.#error("MAIL", v);
      }
    }
    const space = await queueSpaceCheck(spaceSettings(this.#env.cfg));
    if (space !== null) {
      this.#mail = null;
      msg.info(
        `NOQUEUE: reject: MAIL from ${this.#client}: ${space}; proto=${this.#esmtp ? "ESMTP" : "SMTP"} helo=<${this.#helo}>`,
      );
      return this.#error("MAIL", space);
    }
    const mv =
      (await this.#milter.mail(arg, p.value.address)) ?? (await this.#bqf.mail(`MAIL ${arg}`, this.#view()));
    if (mv !== null) {
      this.#mail = null;
      return this.#error("MAIL", mv);
    }
    this.#count("MAIL", true);
    this.#reply("250 2.1.0 Ok");
  }

  /** RCPT TO: parses, checks restrictions, opens the queue file at the first good recipient. */
  async #rcptCmd(arg: string): Promise<void> {
    if (this.#mail === null) return this.#error("RCPT", "503 5.5.1 Error: need MAIL command");
    const rate = await this.#limits?.recipient();
    if (typeof rate === "string") return this.#error("RCPT", rate);
    if (this.#rcpts.length >= this.#env.rcptLimit)
      return this.#error("RCPT", "452 4.5.3 Error: too many recipients");
    const p = parseRcpt(arg);
    if (!p.ok) return this.#error("RCPT", p.reply);
    const stages: Stage[] = this.#env.delayReject
      ? ["client", "helo", "sender", "relay", "recipient"]
      : ["relay", "recipient"];
    const v = await this.#restrict("RCPT", stages, p.value.address);
    if (v !== null) return this.#error("RCPT", v);
    if (!this.#bqf.on && this.#cleanup === null && !(await this.#openQueue()))
      return this.#error("RCPT", "451 4.3.0 Error: queue file write error");
    const mv = (await this.#milter.rcpt(arg, p.value.address)) ?? (await this.#bqf.rcpt(`RCPT ${arg}`));
    if (mv !== null) return this.#error("RCPT", mv);
    await this.#cleanup?.rcpt({
      address: p.value.address,
      original: p.value.address,
      ...(p.value.orcpt !== undefined ? { orcpt: p.value.orcpt } : {}),
      ...(p.value.notify !== undefined ? { notify: p.value.notify } : {}),
    });
    this.#rcpts.push(p.value);
    this.#count("RCPT", true);
    this.#reply("250 2.1.5 Ok");
  }

  /** Opens a cleanup session for the transaction (the queue ID appears in the log). */
  async #openQueue(): Promise<boolean> {
    const c = await CleanupClient.open(this.#env.cfg.get("queue_directory"));
    if (!c.ok) {
      msg.warn(`${c.reason}`);
      return false;
    }
    this.#cleanup = c.client;
    const s = c.client;
    const f = forwarded(this.#xforward, {
      name: this.#name,
      addr: this.#addr,
      helo: this.#helo,
      proto: this.#esmtp ? "ESMTP" : "SMTP",
    });
    const who =
      this.#saslMethod !== null
        ? `, sasl_method=${this.#saslMethod}, sasl_username=${this.#login ?? ""}`
        : "";
    msg.info(`${s.queueId}: ${f.log.replace(/^client=\S+/, (c) => c + who)}`);
    await s.flags(receiveOverride(this.#env.cfg).flags(CLEANUP_FLAG.FILTER | CLEANUP_FLAG.MAP));
    // This service's content_filter (empty with -o content_filter= on a re-injection service).
    await s.attr("content_filter", this.#env.cfg.get("content_filter"));
    const client = { name: this.#name, addr: this.#addr, saslUser: this.#login };
    const context = await sup.rewriteContext(this.#env.cfg, this.#env.mynetworks, client);
    for (const [k, v] of sup.cleanupAttrs(f, this.#mail, s.queueId, context)) await s.attr(k, v);
    await s.sender(this.#mail?.address ?? "");
    return true;
  }

  /** The start of the content: access-table actions told to cleanup, PREPEND headers, Received:. */
  async #head(): Promise<Buffer> {
    const prepend = this.#cleanup === null ? [] : await sup.sendActions(this.#cleanup, this.#actions);
    return Buffer.from(prepend.join("") + this.#received(), "latin1");
  }

  /** The Received: header in Postfix's form. */
  #received(): string {
    const rfc3848 = `${this.#tls !== null ? "S" : ""}${this.#saslMethod !== null ? "A" : ""}`;
    const real = this.#esmtp ? `ESMTP${rfc3848}` : "SMTP";
    // XFORWARD attributes (from a content filter) name the original client.
    const f = forwarded(this.#xforward, {
      name: this.#name,
      addr: this.#addr,
      helo: this.#helo,
      proto: real,
    });
    const rcpts = this.#rcpts.map((r) => r.address);
    const id = this.#cleanup?.queueId ?? "";
    return sup.receivedHeader(this.#env, {
      helo: f.helo,
      name: f.name,
      addr: f.addr,
      proto: f.proto,
      rcpts,
      id,
      comments: [
        ...tls.tlsReceived(this.#env.tls, this.#tls),
        ...sasl.authReceived(this.#env.sasl, this.#saslMethod !== null ? this.#login : null),
      ],
    });
  }

  /** Checks that a transaction can send content; returns an error reply or null. */
  async #contentCheck(verb: string): Promise<string | null> {
    if (this.#mail === null) return "503 5.5.1 Error: need MAIL command";
    if (this.#rcpts.length === 0) return "554 5.5.1 Error: no valid recipients";
    return (
      (await this.#restrict(verb, ["data"])) ?? (await this.#milter.data()) ?? (await this.#bqf.dataCmd())
    );
  }

  /** DATA: stream the content to cleanup and report the outcome. */
  async #data(arg: string): Promise<void> {
    if (arg !== "") return this.#error("DATA", "501 5.5.4 Syntax: DATA");
    if (this.#bdat !== null) return this.#error("DATA", "503 5.5.1 Error: DATA after BDAT");
    const refused = await this.#contentCheck("DATA");
    if (refused !== null) return this.#error("DATA", refused);
    if (this.#env.forbidPipelining && this.#r.pending) this.#violation("DATA");
    this.#reply("354 End data with <CR><LF>.<CR><LF>");
    const sink = new ContentSink(this.#bqf.on ? this.#bqf : this.#cleanup, this.#milter);
    const head = await this.#head();
    await sink.write(head);
    const excluded =
      this.#env.forbidBareLf === "yes" &&
      (await this.#env.bareLfExclusions.match(this.#name, this.#addr)).status === "match";
    const out = await readData(this.#r, sink, {
      lineLimit: this.#env.lineLimit,
      timeoutMs: this.#env.timeoutMs,
      sizeLimit: this.#env.sizeLimit,
      forbidBareLf: this.#env.forbidBareLf === "yes" && !excluded,
    });
    if (out.kind === "lost") {
      msg.info(
        `${this.#r.timedOut ? "timeout" : "lost connection"} after DATA (${sink.total} bytes) from ${this.#client}`,
      );
      throw new Quit();
    }
    if (out.kind === "bare-lf") {
      this.#reply(
        `${this.#env.cfg.get("smtpd_forbid_bare_newline_reject_code")} 5.5.2 Error: bare <LF> received`,
      );
      msg.info(`disconnect: bare <LF> received from ${this.#client} after DATA`);
      throw new Quit();
    }
    if (out.kind === "done") this.#actSize = out.size - head.length + out.lines;
    await this.#finish("DATA", out.kind === "too-big");
  }

  /** Ends the transaction: smtpd_end_of_data_restrictions, then cleanup's verdict. */
  async #finish(verb: string, tooBig: boolean): Promise<void> {
    if (this.#bqf.on && !tooBig) {
      const r = await this.#bqf.end(
        this.#view(),
        this.#rcpts.map((x) => x.address),
      );
      this.#reset();
      if (!r.startsWith("2")) return this.#error(verb, r);
      this.#count(verb, true);
      return this.#reply(r);
    }
    const c = this.#cleanup;
    if (tooBig || c === null) {
      this.#cleanup = null;
      c?.abort();
      this.#reset();
      return this.#error(verb, "552 5.3.4 Error: message file too big");
    }
    const only = this.#rcpts.length === 1 ? (this.#rcpts[0]?.address ?? null) : null;
    const eod = await this.#restrict("END-OF-MESSAGE", ["end_of_data"], only);
    this.#cleanup = null;
    if (eod !== null) {
      c.abort();
      this.#reset();
      return this.#error(verb, eod);
    }
    await this.#milter.eom(c);
    const r = await c.end();
    this.#reset();
    if (r.status === "ok") {
      this.#count(verb, true);
      return this.#reply(`250 2.0.0 Ok: queued as ${r.queueId}`);
    }
    if (r.status === "reject") return this.#error(verb, `${r.code} ${r.reason}`);
    msg.warn(`${c.queueId}: cleanup: ${r.reason}`);
    return this.#error(verb, "451 4.3.0 Error: queue file write error");
  }

  /** BDAT size [LAST] (CHUNKING). */
  async #bdatCmd(arg: string): Promise<void> {
    const m = /^(\d{1,15})(\s+LAST)?$/i.exec(arg);
    if (m === null) return this.#error("BDAT", "501 5.5.4 Syntax: BDAT count [LAST]");
    const n = Number(m[1]);
    const last = m[2] !== undefined;
    if (this.#bdat === null) {
      this.#bdatBad = await this.#contentCheck("BDAT");
      this.#bdat = new ContentSink(
        this.#bdatBad !== null ? null : this.#bqf.on ? this.#bqf : this.#cleanup,
        this.#milter,
      );
      if (this.#bdatBad === null) await this.#bdat.write(await this.#head());
    }
    this.#actSize += n;
    const got = await readChunk(this.#r, this.#bdat, n, {
      timeoutMs: this.#env.timeoutMs,
      sizeLimit: this.#env.sizeLimit,
    });
    if (got === "lost") {
      msg.info(`lost connection after BDAT from ${this.#client}`);
      throw new Quit();
    }
    if (this.#bdatBad !== null) {
      const bad = this.#bdatBad;
      if (last) this.#reset();
      return this.#error("BDAT", bad);
    }
    if (got === "too-big") this.#bdatBad = "552 5.3.4 Error: message file too big";
    if (!last) {
      this.#count("BDAT", true);
      return this.#reply(`250 2.0.0 Ok: ${n} bytes`);
    }
    if (this.#bdat.pendingCr) await this.#bdat.write(Buffer.from("\r"));
    await this.#bdat.flush();
    await this.#finish("BDAT", false);
  }

  /** STARTTLS: reply, forget everything the client said (pipelined input too), then the handshake. */
  async #starttls(arg: string): Promise<void> {
    const discarded = this.#env.discardEhlo.has("STARTTLS");
    const refused = tls.starttlsRefusal(this.#env.tls, arg, this.#tls !== null, discarded);
    if (refused !== null) return this.#error("STARTTLS", refused);
    if ((await this.#limits?.tlsRefused("STARTTLS request")) === true)
      return this.#error("STARTTLS", `454 4.7.0 Error: too many new TLS sessions from ${this.#client}`);
    this.#reply("220 2.0.0 Ready to start TLS");
    this.#reset();
    this.#helo = "";
    this.#esmtp = false;
    this.#login = null;
    this.#saslMethod = null;
    this.#count("STARTTLS", true);
    if (!(await this.#handshake(false))) throw new Quit();
  }

  /** Runs the TLS handshake on the client socket; from then on the session reads and writes through TLS. */
  async #handshake(wrapper: boolean): Promise<boolean> {
    // After STARTTLS, whatever the client sent in plain text is dropped; in wrapper mode it is the handshake.
    if (wrapper && (await this.#limits?.tlsRefused("TLS service request")) === true) return false;
    const early = this.#r.detach();
    if (wrapper && early.length > 0) this.#sock.unshift(early);
    const r = await tls.startTls(this.#env.tls, this.#sock, this.#client);
    if (!r.ok) {
      msg.info(`lost connection after ${this.#lastCmd} from ${this.#client}`);
      return false;
    }
    this.#sock = r.sock;
    this.#r = new SmtpReader(r.sock);
    this.#tls = r.info;
    tls.logTls(this.#env.tls, r.info, this.#client);
    if (!r.info.reused && (await this.#limits?.newTls()) === true) {
      this.#reply(`421 4.7.0 ${this.#env.myhostname} Error: too many new TLS sessions from ${this.#client}`);
      return false;
    }
    if (this.#env.tls.requireCcert && r.info.cert?.trusted !== true) {
      const why = r.info.cert === null ? "No client certificate presented" : "Client certificate not trusted";
      msg.info(`NOQUEUE: abort: TLS from ${this.#client}: ${why}`);
      if (!this.#env.tls.wrapper) await this.#r.line(this.#env.lineLimit, this.#env.timeoutMs);
      this.#reply(`421 4.7.1 ${this.#env.myhostname} Error: ${why}`);
      return false;
    }
    return true;
  }

  /** AUTH: SASL authentication with the configured back end. */
  async #auth(arg: string): Promise<void> {
    const refused = sasl.authRefusal(this.#env.sasl, {
      helo: this.#helo !== "",
      heloRequired: this.#env.heloRequired,
      inMail: this.#mail !== null,
      tls: this.#tls !== null,
      loggedIn: this.#saslMethod !== null,
      discarded: this.#env.discardEhlo.has("AUTH"),
    });
    if (refused !== null) return this.#error("AUTH", refused);
    const limited = await this.#limits?.auth();
    if (typeof limited === "string") return this.#error("AUTH", limited);
    const offered = await sasl.offeredMechanisms(this.#env.sasl, this.#tls !== null, {
      name: this.#name,
      addr: this.#addr,
    });
    const local = this.#sock.localAddress ?? "";
    const io: sasl.AuthIo = {
      client: this.#client,
      peer: {
        service: this.#env.sasl.service,
        localAddr: local.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1"),
        clientAddr: this.#addr,
        secured: this.#tls !== null,
      },
      reply: (line) => this.#reply(line),
      read: async (limit) => {
        const l = await this.#r.line(limit, this.#env.timeoutMs);
        return l === null ? null : { text: l.text.toString("latin1"), cut: l.cut };
      },
    };
    const r = await sasl.authCommand(this.#env.sasl, io, arg, offered);
    if (r.kind === "lost") {
      msg.info(`${this.#r.timedOut ? "timeout" : "lost connection"} after AUTH from ${this.#client}`);
      throw new Quit();
    }
    if (r.kind === "error") return this.#error("AUTH", r.reply);
    this.#login = r.user;
    this.#saslMethod = r.method;
    this.#count("AUTH", true);
    this.#reply("235 2.7.0 Authentication successful");
  }

  /** ETRN: ask the flush service to deliver mail queued for a site. */
  async #etrn(arg: string): Promise<void> {
    if (this.#helo === "") return this.#error("ETRN", "503 5.5.1 Error: send HELO/EHLO first");
    if (this.#mail !== null) return this.#error("ETRN", "503 5.5.1 Error: MAIL transaction in progress");
    const site = sup.etrnSite(arg);
    if (site === null) return this.#error("ETRN", "501 5.5.4 Syntax: ETRN domain");
    this.#etrnDomain = site;
    const refused = await this.#restrict("ETRN", ["client", "helo", "etrn"]);
    this.#etrnDomain = null;
    if (refused !== null) return this.#error("ETRN", refused);
    const reply = await sup.etrnFlush(this.#env.cfg.get("queue_directory"), site);
    if (!reply.startsWith("250")) return this.#error("ETRN", reply);
    this.#count("ETRN", true);
    this.#reply(reply);
  }

  /** VRFY: disabled, or the Postfix answer without a recipient check. */
  async #vrfy(arg: string): Promise<void> {
    if (this.#env.vrfyDisabled) return this.#error("VRFY", "502 5.5.1 VRFY command is disabled");
    const p = parseRcpt(`TO:${arg}`);
    if (!p.ok) return this.#error("VRFY", "501 5.1.3 Bad recipient address syntax");
    const v = await this.#restrict("VRFY", ["client", "helo", "recipient"], p.value.address);
    if (v !== null) return this.#error("VRFY", v);
    this.#count("VRFY", true);
    this.#reply(`252 2.0.0 ${p.value.address}`);
  }
}
