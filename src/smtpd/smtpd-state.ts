/*
 * smtpd-state - what one SMTP session knows, and the helpers every command uses
 *
 * DESCRIPTION
 *   SessionState holds a session's client identity, its transaction
 *   (MAIL, RCPT, the cleanup client), its TLS and SASL state and its
 *   counters, and gives the command handlers (smtpd-cmds.ts, smtpd-txn.ts)
 *   what they share: sending replies, counting commands for the disconnect
 *   line, error replies with smtpd_soft_error_limit / smtpd_hard_error_limit,
 *   forgetting the transaction, and running restriction lists with
 *   Postfix's reject log lines. The command loop is in smtpd-session.ts.
 */
import type { Socket } from "node:net";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import type { CleanupClient } from "../global/cleanup-client.js";
import { evalList, type CheckContext, type Stage, type Verdict } from "./smtpd-check.js";
import type { ContentSink } from "./smtpd-data.js";
import type { PeerNames, SmtpdEnv } from "./smtpd-env.js";
import type { MailArgs, RcptArgs } from "./smtpd-params.js";
import { SmtpReader } from "./smtpd-reader.js";
import type { SessionLimits } from "./smtpd-anvil.js";
import { implicitUnlisted } from "./smtpd-unlisted.js";
import { SmtpdMilter, type SessionView } from "./smtpd-milter.js";
import { SmtpdProxy } from "./smtpd-proxy.js";
import { receiveOverride } from "../global/receive-override.js";
import * as tls from "./smtpd-tls.js";
import * as sasl from "./smtpd-sasl.js";

/** The restriction lists of each configuration, parsed once (a configuration does not change under a process). */
const lists = new WeakMap<Config, Map<Stage, string[]>>();

/** smtpd_<stage>_restrictions. */
function restrictions(cfg: Config, stage: Stage): string[] {
  let m = lists.get(cfg);
  if (m === undefined) lists.set(cfg, (m = new Map<Stage, string[]>()));
  let l = m.get(stage);
  if (l === undefined) m.set(stage, (l = cfg.list(`smtpd_${stage}_restrictions`)));
  return l;
}

/** Thrown to end the session (the reply, if any, has been sent). */
export class Quit extends Error {}

export class SessionState {
  readonly env: SmtpdEnv;
  sock: Socket;
  r: SmtpReader;
  addr: string;
  name = "unknown";
  peer: PeerNames = { name: "unknown", nameCode: "perm", reverseName: "unknown", reverseCode: "perm" };
  helo = "";
  esmtp = false;
  mail: MailArgs | null = null;
  rcpts: RcptArgs[] = [];
  cleanup: CleanupClient | null = null;
  errors = 0;
  junk = 0;
  readonly counts = new Map<string, [number, number]>();
  bdat: ContentSink | null = null;
  bdatBad: string | null = null;
  actions: CheckContext["actions"] = [];
  etrnDomain: string | null = null;
  instance = "";
  limits: SessionLimits | null = null;
  xclientOk = false;
  xforwardOk = false;
  xforward = new Map<string, string>();
  login: string | null = null;
  /** The size of the message as received (lines with CRLF, or BDAT bytes), for END-OF-MESSAGE. */
  actSize = 0;
  readonly milter: SmtpdMilter;
  readonly bqf: SmtpdProxy;
  tls: tls.TlsInfo | null = null;
  saslMethod: string | null = null;
  lastCmd = "CONNECT";

  constructor(env: SmtpdEnv, sock: Socket) {
    this.env = env;
    this.sock = sock;
    this.r = new SmtpReader(sock);
    this.addr = (sock.remoteAddress ?? "unknown").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
    this.milter = new SmtpdMilter(env, () => this.view());
    this.bqf = new SmtpdProxy(env);
  }

  /** What milters and the proxy filter are told about the session. */
  view(): SessionView {
    const s = this.sock;
    return {
      ...{ name: this.name, addr: this.addr, port: s.remotePort ?? 0, peer: this.peer, helo: this.helo },
      ...{ esmtp: this.esmtp, queueId: this.cleanup?.queueId ?? null, sender: this.mail?.address ?? null },
      ...{ login: this.login, serverAddr: s.localAddress ?? "", serverPort: s.localPort ?? 0 },
    };
  }

  /** The client as logs show it: name[addr]. */
  get client(): string {
    return `${this.name}[${this.addr}]`;
  }

  /** Sends one reply line (or several: the last without a dash). */
  reply(...lines: string[]): void {
    if (this.sock.destroyed) return;
    const out = lines.map((l, i) => (i < lines.length - 1 ? l.replace(/^(\d{3}) /, "$1-") : l)).join("\r\n");
    this.sock.write(out + "\r\n");
  }

  /** Counts a command for the disconnect line. */
  count(cmd: string, ok: boolean): void {
    const key = cmd.toLowerCase();
    const c = this.counts.get(key) ?? [0, 0];
    c[0] += ok ? 1 : 0;
    c[1] += 1;
    this.counts.set(key, c);
  }

  /** A pipelining violation: reply and hang up. */
  violation(verb: string): never {
    msg.info(`improper command pipelining after ${verb} from ${this.client}`);
    this.reply("554 5.5.0 Error: SMTP protocol synchronization");
    throw new Quit();
  }

  /** Counts an error reply, sleeping past the soft limit and hanging up at the hard limit. */
  async error(verb: string, reply: string): Promise<void> {
    this.count(verb || "unknown", false);
    this.errors++;
    if (this.errors >= this.env.hardErrors) {
      this.reply(reply.startsWith("421") ? reply : `421 4.7.0 ${this.env.myhostname} Error: too many errors`);
      msg.info(`too many errors after ${verb || "CONNECT"} from ${this.client}`);
      throw new Quit();
    }
    if (this.errors > this.env.softErrors) await new Promise((r) => setTimeout(r, this.env.errorSleepMs));
    this.reply(reply);
    if (reply.startsWith("421")) throw new Quit();
  }

  /** Forgets the current transaction. */
  reset(): void {
    this.mail = null;
    this.rcpts = [];
    this.cleanup?.abort();
    this.milter.abort();
    this.bqf.close();
    this.cleanup = null;
    this.bdat = null;
    this.bdatBad = null;
    this.actions = [];
    this.xforward = new Map();
    this.actSize = 0;
  }

  /** The restriction context for the current state. */
  #ctx(recipient: string | null, what: string): CheckContext {
    const ctx: CheckContext = {
      cfg: this.env.cfg,
      clientName: this.name,
      peer: this.peer,
      dns: this.env.dns,
      clientAddr: this.addr,
      helo: this.helo,
      sender: this.mail?.address ?? null,
      recipient,
      etrnDomain: this.etrnDomain,
      saslUser: this.login,
      pipelined: this.r.pending,
      actions: this.actions,
      deferIfPermit: null,
      deferIfReject: null,
      inMynetworks: async () => {
        const r = await this.env.mynetworks.match(this.name, this.addr);
        return r.status === "tempfail" ? "tempfail" : r.status === "match";
      },
      resolveFlags: async (address) => {
        const r = await this.env.rewrite.resolve(this.mail?.address ?? "", address);
        return r.ok ? r.value.flags : "tempfail";
      },
      resolve: async (address) => {
        const r = await this.env.rewrite.resolve(this.mail?.address ?? "", address);
        return r.ok ? r.value : "tempfail";
      },
      unlisted: { sender: false, recipient: false },
      tlsClientcerts: (all) => tls.permitTlsClientcerts(this.env.tls, this.tls, all),
      policyState: {
        protocol_state: what.toUpperCase(),
        protocol_name: this.esmtp ? "ESMTP" : "SMTP",
        queue_id: this.cleanup?.queueId ?? "",
        recipient_count: String(this.rcpts.length),
        size: String(this.actSize > 0 ? this.actSize : (this.mail?.size ?? 0)),
        instance: `${process.pid.toString(16)}.${this.instance}`,
        sasl_method: this.saslMethod ?? "",
        ...tls.policyAttrs(this.tls),
      },
    };
    ctx.senderLogin = (name, stage) => sasl.senderLoginCheck(this.env.sasl, ctx, name, stage);
    return ctx;
  }

  /** Runs restriction lists in order; returns a reply to refuse with, or null. Logs refusals as Postfix does. */
  async restrict(what: string, stages: Stage[], recipient: string | null = null): Promise<string | null> {
    const ctx = this.#ctx(recipient, what);
    let final: Verdict = { kind: "dunno" };
    for (const stage of stages) {
      const v = await evalList(ctx, stage, restrictions(this.env.cfg, stage));
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
      !receiveOverride(this.env.cfg).noUnknownRecipientChecks
    )
      final = await implicitUnlisted(ctx, stages);
    if (final.kind !== "reject" && final.kind !== "defer") return null;
    const reply = `${final.code} ${final.enh} ${final.text}`;
    const id = this.cleanup?.queueId ?? "NOQUEUE";
    const to = recipient !== null ? ` to=<${recipient}>` : "";
    msg.info(
      `${id}: reject: ${what} from ${this.client}: ${reply}; from=<${this.mail?.address ?? ""}>${to} proto=${this.esmtp ? "ESMTP" : "SMTP"} helo=<${this.helo}>`,
    );
    return reply;
  }
}
