/*
 * smtpd-milter - smtpd_milters: the SMTP session's events, macros and replies
 *
 * SYNOPSIS
 *   const m = new SmtpdMilter(env, () => view);   // view: the session's client, HELO, sender ...
 *   const bye = await m.connect();                // a 421 reply ends the session at once
 *   reply = await m.helo(name) / m.mail(arg) / m.rcpt(arg) / m.data() / m.unknown(line)
 *   sink.tap = (b) => m.content(b);               // the content as it goes to cleanup
 *   await m.eom(cleanup);                          // verdict and edits travel to cleanup
 *   m.abort(); m.quit();
 *
 * DESCRIPTION
 *   The milters of smtpd_milters (none with receive_override_options =
 *   no_milters) see every SMTP event of the session. A reply that is not
 *   null refuses the command, and is logged as Postfix logs it
 *   ("NOQUEUE: milter-reject: RCPT from client[addr]: 550 5.7.1 Command
 *   rejected; from=<...> to=<...> proto=ESMTP helo=<...>"). As in Postfix,
 *   a milter that refuses CONNECT or HELO does not refuse HELO/EHLO itself
 *   (unless it says 421): its reply is given to MAIL, RCPT and DATA.
 *   DISCARD and quarantine before the end of the message are remembered
 *   and passed to cleanup with the message.
 *
 *   The content (the Received: header smtpd adds, then the client's
 *   message) goes to the milters line by line as it goes to cleanup; at the
 *   end of the message the milters' verdict and modifications are sent to
 *   cleanup (cleanup-milter.ts applies them before the file is published,
 *   and logs END-OF-MESSAGE rejections). The macros have Postfix's names
 *   and values; {mail_host}, {mail_mailer}, {rcpt_host} and {rcpt_mailer}
 *   come from trivial-rewrite.
 */
import { msg } from "../util/msg.js";
import type { CleanupClient } from "../global/cleanup-client.js";
import { MilterChain } from "../global/milter-chain.js";
import type { Verdict } from "../global/milter-client.js";
import { receiveOverride } from "../global/receive-override.js";
import type { PeerNames, SmtpdEnv } from "./smtpd-env.js";

/** What the session tells the milters about itself. */
export interface SessionView {
  name: string;
  addr: string;
  port: number;
  peer: PeerNames;
  helo: string;
  esmtp: boolean;
  queueId: string | null;
  sender: string | null;
  login: string | null;
  serverAddr: string;
  serverPort: number;
}

/** The session's milters; every method is a no-op without smtpd_milters. */
export class SmtpdMilter {
  #env: SmtpdEnv;
  #view: () => SessionView;
  #chain: MilterChain | null;
  /** The reply a milter gave to CONNECT or HELO: it refuses every later transaction command. */
  #denied: string | null = null;
  #inMessage = false;
  #discard = false;
  #hold: string | null = null;
  #lineBuf: Buffer[] = [];
  #rcpt: string | null = null;
  #resolved = new Map<string, string>();

  constructor(env: SmtpdEnv, view: () => SessionView) {
    this.#env = env;
    this.#view = view;
    const on = !receiveOverride(env.cfg).noMilters && env.cfg.list("smtpd_milters").length > 0;
    this.#chain = on ? MilterChain.fromConfig(env.cfg, "smtpd_milters", (n) => this.#macro(n)) : null;
  }

  /** A macro's value (Postfix's smtpd_milter_eval), or undefined. */
  #macro(name: string): string | undefined {
    const v = this.#view();
    const cfg = this.#env.cfg;
    switch (name) {
      case "j":
        return cfg.get("myhostname");
      case "daemon_name":
        return cfg.get("milter_macro_daemon_name");
      case "v":
        return cfg.get("milter_macro_v");
      case "_":
        return `${v.peer.reverseName} [${v.addr}]${v.name.toLowerCase() !== v.peer.reverseName.toLowerCase() ? " (may be forged)" : ""}`;
      case "client_addr":
        return v.addr;
      case "client_port":
        return String(v.port);
      case "client_name":
        return v.name;
      case "client_ptr":
        return v.peer.reverseName;
      case "client_resolve":
        return v.peer.nameCode === "ok"
          ? "OK"
          : v.peer.nameCode === "temp"
            ? "TEMP"
            : v.name === "unknown"
              ? "FAIL"
              : "FORGED";
      case "daemon_addr":
        return v.serverAddr;
      case "daemon_port":
        return String(v.serverPort);
      case "i":
        return v.queueId ?? undefined;
      case "auth_type":
        return v.login !== null ? "LOGIN" : undefined;
      case "auth_authen":
        return v.login ?? undefined;
      default:
        return this.#resolved.get(name);
    }
  }

  /** Logs a refusal the way Postfix does and returns the reply. */
  #refuse(where: string, v: Verdict): string | null {
    if (v.kind === "discard") {
      this.#discard = true;
      return null;
    }
    if (v.kind === "hold") {
      this.#hold ??= v.reason;
      return null;
    }
    if (v.kind !== "reject" && v.kind !== "shutdown") return null;
    const s = this.#view();
    const to = this.#rcpt !== null && where === "RCPT" ? ` to=<${this.#rcpt}>` : "";
    const from = s.sender !== null ? ` from=<${s.sender}>` : "";
    msg.info(
      `${s.queueId ?? "NOQUEUE"}: milter-reject: ${where} from ${s.name}[${s.addr}]: ${v.reply};${from}${to} proto=${s.esmtp ? "ESMTP" : "SMTP"} helo=<${s.helo}>`,
    );
    return v.reply;
  }

  /** Connects the milters and sends the connect event; returns a 421 reply that ends the session. */
  async connect(): Promise<string | null> {
    if (this.#chain === null) return null;
    await this.#chain.open();
    const s = this.#view();
    const v = await this.#chain.connect(s.name, s.addr, s.port);
    const r = this.#refuse("CONNECT", v);
    if (r !== null && v.kind !== "shutdown") this.#denied = r;
    return v.kind === "shutdown" ? r : null;
  }

  /** HELO/EHLO; returns a reply only when the milter ends the session (421). */
  async helo(helo: string): Promise<string | null> {
    if (this.#chain === null || this.#denied !== null) return null;
    const v = await this.#chain.helo(helo);
    const r = this.#refuse("HELO", v);
    if (r !== null && v.kind !== "shutdown") this.#denied = r;
    return v.kind === "shutdown" ? r : null;
  }

  /** Resolves an address for the {mail_*} or {rcpt_*} macros. */
  async #resolve(prefix: "mail" | "rcpt", addr: string): Promise<void> {
    this.#resolved.set(`${prefix}_addr`, addr);
    this.#resolved.delete(`${prefix}_host`);
    this.#resolved.delete(`${prefix}_mailer`);
    if (addr === "") return;
    const r = await this.#env.rewrite.resolve(this.#view().sender ?? "", addr);
    if (!r.ok) return;
    this.#resolved.set(`${prefix}_addr`, r.value.recipient);
    this.#resolved.set(`${prefix}_host`, r.value.nexthop);
    this.#resolved.set(`${prefix}_mailer`, r.value.transport);
  }

  /** MAIL FROM (the argument after the verb); a reply refuses it. */
  async mail(arg: string, sender: string): Promise<string | null> {
    if (this.#chain === null) return null;
    if (this.#denied !== null) return this.#denied;
    this.#inMessage = true;
    this.#discard = false;
    this.#hold = null;
    this.#rcpt = null;
    await this.#resolve("mail", sender);
    return this.#refuse("MAIL", await this.#chain.mail(esmtpArgs(arg, "FROM")));
  }

  /** RCPT TO; a reply refuses the recipient. */
  async rcpt(arg: string, recipient: string): Promise<string | null> {
    if (this.#chain === null) return null;
    if (this.#denied !== null) return this.#denied;
    this.#rcpt = recipient;
    await this.#resolve("rcpt", recipient);
    return this.#refuse("RCPT", await this.#chain.rcpt(esmtpArgs(arg, "TO")));
  }

  /** DATA or the first BDAT; a reply refuses it. */
  async data(): Promise<string | null> {
    if (this.#chain === null) return null;
    if (this.#denied !== null) return this.#denied;
    return this.#refuse("DATA", await this.#chain.data());
  }

  /** An unknown command; the milter's reply, or null for the usual one. */
  async unknown(line: string): Promise<string | null> {
    if (this.#chain === null) return null;
    return this.#refuse("UNKNOWN", await this.#chain.unknown(line));
  }

  /** True when milters watch the content. */
  get active(): boolean {
    return this.#chain !== null;
  }

  /** Content bytes as they go to cleanup (LF line ends); whole lines go to the milters. */
  async content(b: Buffer): Promise<void> {
    const chain = this.#chain;
    if (chain === null) return;
    let start = 0;
    for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, start)) {
      const piece = b.subarray(start, i);
      const line = this.#lineBuf.length > 0 ? Buffer.concat([...this.#lineBuf, piece]) : piece;
      this.#lineBuf = [];
      await chain.line(line);
      start = i + 1;
    }
    if (start < b.length) this.#lineBuf.push(Buffer.from(b.subarray(start)));
  }

  /** End of message: the verdict and modifications go to cleanup, which applies them. */
  async eom(c: CleanupClient): Promise<void> {
    const chain = this.#chain;
    if (chain === null) return;
    if (this.#lineBuf.length > 0) await chain.line(Buffer.concat(this.#lineBuf));
    this.#lineBuf = [];
    this.#inMessage = false;
    if (this.#discard) return c.milter({ op: "discard" });
    const r = await chain.eom();
    const v = r.verdict;
    if (v.kind === "reject" || v.kind === "shutdown")
      return c.milter({ op: "reject", value: Buffer.from(v.reply) });
    if (v.kind === "discard") return c.milter({ op: "discard" });
    const hold = this.#hold ?? r.hold;
    if (hold !== null) await c.milter({ op: "hold", value: Buffer.from(hold, "latin1") });
    for (const e of r.edits) {
      if (e.op === "replbody") await c.milter({ op: e.op, data: e.data });
      else if (e.op === "addrcpt" || e.op === "chgfrom")
        await c.milter({ op: e.op, value: Buffer.from(e.address, "latin1") });
      else if (e.op === "delrcpt") await c.milter({ op: e.op, value: Buffer.from(e.address, "latin1") });
      else
        await c.milter({
          op: e.op,
          name: e.name,
          value: Buffer.from(e.value, "latin1"),
          ...(e.op !== "addheader" ? { index: e.index } : {}),
        });
    }
  }

  /** Abandons the message, if one is in progress. */
  abort(): void {
    if (this.#chain === null || !this.#inMessage) return;
    this.#inMessage = false;
    this.#lineBuf = [];
    this.#chain.abort();
  }

  /** Ends the milter conversations. */
  quit(): void {
    this.#chain?.quit();
  }
}

/** "<addr>" and the ESMTP parameters of a MAIL FROM or RCPT TO argument. */
export function esmtpArgs(arg: string, kw: "FROM" | "TO"): string[] {
  const rest = arg.replace(new RegExp(`^${kw}:\\s*`, "i"), "");
  const m = /^(<[^>]*>|\S+)\s*(.*)$/s.exec(rest);
  if (m === null) return [rest];
  const params = (m[2] ?? "").split(/\s+/).filter((p) => p !== "");
  return [m[1] ?? "", ...params];
}
