/*
 * milter-client - talk to one milter application (Sendmail milter protocol 2..6)
 *
 * SYNOPSIS
 *   const m = new Milter(conf, macroSource);
 *   await m.open();                         // connect and negotiate (or fall to the default action)
 *   const v = await m.connect(name, addr, port);   // { kind: "continue" | "accept" | "reject" ... }
 *   await m.helo(h); await m.mail(args); await m.rcpt(args); await m.data();
 *   await m.header(name, value); await m.eoh(); await m.body(chunk); const e = await m.eom();
 *   m.abort(); m.quit();
 *
 * DESCRIPTION
 *   A Milter is one connection to one milter service ("inet:host:port" or
 *   "unix:/path"), opened for one SMTP session (smtpd) or one message
 *   (cleanup). The option negotiation offers milter_protocol's version and
 *   events with every action this MTA supports; a milter that answers with
 *   an older version gets only the events that version defines, one that
 *   answers with a newer one or asks for unknown actions is an error. The
 *   events the milter asked not to see are not sent; those it asked not to
 *   answer are not waited for. Before each event the macros of its stage
 *   (milter_*_macros, or the milter's own list from the negotiation) are
 *   sent with the values the session's macro source gives (undefined
 *   values are left out, as Postfix does).
 *
 *   Every wait is bounded: milter_connect_timeout for the connection,
 *   milter_command_timeout for replies to envelope events and
 *   milter_content_timeout for header, body and end-of-message events.
 *   A connection, read or protocol failure closes the connection and turns
 *   this milter into milter_default_action for the rest of its life:
 *   accept (go on without it), reject (550 5.5.0 Service unavailable),
 *   tempfail (451 4.7.1 Service unavailable - try again later), shutdown
 *   (421 4.7.1 ...) or quarantine (hold the message).
 *   Replies: continue, accept (no more events for the message, or for the
 *   connection after connect/helo), reject (550 5.7.1 Command rejected),
 *   tempfail (451 4.7.1 Service unavailable - try again later), replycode
 *   (the milter's own 4xx/5xx text; "%%" becomes "%"), discard, shutdown
 *   (421), quarantine (hold), progress (wait on), skip (no more body).
 *   Modifications (header, recipient, sender and body edits) are taken only
 *   in reply to end-of-message and only when negotiated.
 *
 *   The settings and verdict types, and the parsing of milter_protocol and
 *   of the service name, are in milter-conf.ts (re-exported here); the
 *   connection, packet reader and event table in milter-conn.ts.
 */
import type { Socket } from "node:net";
import { msg } from "../util/msg.js";
import {
  MY_ACTIONS,
  NOSEND_MASK,
  SMFIC,
  SMFIF,
  SMFIP,
  cstr,
  decodeReply,
  encodePacket,
  u32,
  versionMask,
  type Reply,
} from "./milter-proto.js";
import {
  CONTINUE,
  TEMPFAIL_DEFAULT,
  defaultVerdict,
  milterEndpoint,
  parseProtocol,
  type EomResult,
  type MacroSource,
  type MilterConf,
  type MilterEdit,
  type Verdict,
} from "./milter-conf.js";
import { EV, PacketReader, dialMilter, type EventSpec } from "./milter-conn.js";

export {
  defaultVerdict,
  milterEndpoint,
  parseProtocol,
  type DefaultAction,
  type EomResult,
  type MacroLists,
  type MacroSource,
  type MilterConf,
  type MilterEdit,
  type Verdict,
} from "./milter-conf.js";

type State = "closed" | "ready" | "error" | "accept-msg" | "accept-con" | "reject-con";

const REJECT_DEFAULT = "550 5.7.1 Command rejected";
const MAX_EDITS = 10000;

/** One milter connection; see the module comment. */
export class Milter {
  readonly conf: MilterConf;
  #macro: MacroSource;
  #sock: Socket | null = null;
  #reader: PacketReader | null = null;
  #state: State = "closed";
  #version = 0;
  #actions = 0;
  #events = 0;
  /** Events not defined for the negotiated version. */
  #npMask = 0;
  #symlists = new Map<number, string>();
  #skipBody = false;
  /** The verdict this milter gives once it has failed or refused the connection. */
  #defVerdict: Verdict = CONTINUE;

  constructor(conf: MilterConf, macro: MacroSource) {
    this.conf = conf;
    this.#macro = macro;
  }

  /** The negotiated version, actions and protocol flags (0 before open). */
  get negotiated(): { version: number; actions: number; protocol: number } {
    return { version: this.#version, actions: this.#actions, protocol: this.#events };
  }

  /** True after a failure (the default action applies). */
  get failed(): boolean {
    return this.#state === "error";
  }

  /** Connects and negotiates; a failure sets the default action (logged). */
  async open(): Promise<void> {
    const proto = parseProtocol(this.conf.protocol);
    if (proto === null) return this.#confError(`bad protocol information: ${this.conf.protocol}`);
    const ep = milterEndpoint(this.conf.name);
    if (!ep.ok) return this.#confError(ep.why);
    const sock = await dialMilter(ep.opts, this.conf.connectTimeoutMs);
    if (typeof sock === "string")
      return this.#commError(`connect to Milter service ${this.conf.name}: ${sock}`);
    this.#sock = sock;
    this.#reader = new PacketReader(sock);
    const myEvents = versionMask(proto.version) | (proto.noHeaderReply ? SMFIP.NR_HDR : 0);
    this.#npMask = NOSEND_MASK & ~myEvents;
    this.#write(encodePacket(SMFIC.OPTNEG, u32(proto.version), u32(MY_ACTIONS), u32(myEvents)));
    const p = await this.#reader.next(this.conf.commandTimeoutMs);
    if (typeof p === "string") return this.#commError(`read error in initial handshake: ${p}`);
    const r = decodeReply(p);
    if (r.kind !== "optneg")
      return this.#commError(`unexpected reply "${String.fromCharCode(p.cmd)}" in initial handshake`);
    if (r.version > proto.version)
      return this.#commError(
        `protocol version ${r.version} conflict with MTA protocol version ${proto.version}`,
      );
    if (r.version < 2) return this.#commError(`unexpected protocol version ${r.version}`);
    if ((r.actions & MY_ACTIONS) !== r.actions)
      return this.#commError(
        `request mask 0x${r.actions.toString(16)} conflict with MTA request mask 0x${MY_ACTIONS.toString(16)}`,
      );
    if (r.version < proto.version) this.#npMask |= NOSEND_MASK & ~versionMask(r.version);
    this.#version = r.version;
    this.#actions = r.actions;
    this.#events = r.protocol;
    this.#symlists = r.symlists;
    this.#state = "ready";
    this.#defVerdict = CONTINUE;
  }

  /** Writes to the milter. */
  #write(b: Buffer): void {
    if (this.#sock !== null && !this.#sock.destroyed) this.#sock.write(b);
  }

  /** Closes the socket. */
  #close(): void {
    this.#sock?.destroy();
    this.#sock = null;
  }

  /** A configuration error: 451 4.3.5, or hold/accept as configured. */
  #confError(why: string): void {
    msg.warn(`milter ${this.conf.name}: ${why}`);
    this.#close();
    this.#state = "error";
    const a = this.conf.defaultAction;
    const server = "4.3.5 Server configuration problem - try again later";
    this.#defVerdict =
      a === "accept"
        ? CONTINUE
        : a === "quarantine"
          ? { kind: "hold", reason: "default_action" }
          : a === "shutdown"
            ? { kind: "shutdown", reply: `421 ${server}` }
            : { kind: "reject", reply: `451 ${server}` };
  }

  /** A communication error: the default action from now on. */
  #commError(why: string): void {
    msg.warn(`milter ${this.conf.name}: ${why}`);
    this.#close();
    this.#state = "error";
    this.#defVerdict = defaultVerdict(this.conf.defaultAction);
  }

  /** Sends the macros of a stage. */
  #sendMacros(spec: EventSpec): void {
    if (spec.stage === null) return;
    const list =
      (spec.smfim !== null ? this.#symlists.get(spec.smfim) : undefined) ?? this.conf.macros[spec.stage];
    const parts: Buffer[] = [];
    for (const name of list.split(/[\s,]+/).filter((x) => x !== "")) {
      const v = this.#macro(name.replace(/^\{(.*)\}$/, "$1"));
      if (v === undefined) continue;
      parts.push(cstr(name), cstr(v));
    }
    if (parts.length > 0) this.#write(encodePacket(SMFIC.MACRO, Buffer.from([spec.cmd]), ...parts));
  }

  /** Sends one event and reads the reply (see the module comment). */
  async #event(kind: string, data: Buffer[], connLevel = false): Promise<Verdict> {
    const spec = EV[kind];
    if (spec === undefined) throw new Error(`milter: no event ${kind}`);
    if (this.#state === "error" || this.#state === "reject-con") return this.#defVerdict;
    if (this.#state === "accept-con" || this.#state === "closed") return CONTINUE;
    if (this.#state === "accept-msg" && !connLevel) return CONTINUE;
    if ((spec.noSend & (this.#npMask | this.#events)) !== 0) return CONTINUE;
    this.#sendMacros(spec);
    this.#write(encodePacket(spec.cmd, ...data));
    if ((spec.noReply & this.#events) !== 0 && spec.noReply !== 0) return CONTINUE;
    const r = await this.#reply(spec.content);
    if (typeof r === "string") {
      this.#commError(`${r} while waiting for the ${kind} reply`);
      return this.#defVerdict;
    }
    return this.#verdict(r, kind, connLevel);
  }

  /** Reads replies until one is final; progress replies extend the wait. */
  async #reply(content: boolean): Promise<Reply | string> {
    const timeout = content ? this.conf.contentTimeoutMs : this.conf.commandTimeoutMs;
    for (;;) {
      const p = await (this.#reader as PacketReader).next(timeout);
      if (typeof p === "string") return p === "timeout" ? "read timeout" : p;
      const r = decodeReply(p);
      if (r.kind === "bad") return r.why;
      if (r.kind !== "progress") return r;
    }
  }

  /** Turns a final reply into a verdict, changing state as the reply says. */
  #verdict(r: Reply, kind: string, connLevel: boolean): Verdict {
    switch (r.kind) {
      case "continue":
        return CONTINUE;
      case "skip":
        if (kind === "body") this.#skipBody = true;
        return CONTINUE;
      case "accept":
        this.#state = connLevel ? "accept-con" : "accept-msg";
        return { kind: "accept" };
      case "discard":
        if (connLevel) {
          msg.warn(`milter ${this.conf.name}: DISCARD action is not allowed for connect or helo`);
          return CONTINUE;
        }
        this.#state = "accept-msg";
        return { kind: "discard" };
      case "reject":
      case "tempfail":
      case "replycode": {
        const reply =
          r.kind === "reject" ? REJECT_DEFAULT : r.kind === "tempfail" ? TEMPFAIL_DEFAULT : percent(r.reply);
        const v: Verdict = { kind: "reject", reply };
        if (connLevel) {
          this.#state = "reject-con";
          this.#defVerdict = v;
        }
        return v;
      }
      case "shutdown": {
        this.#state = "reject-con";
        this.#defVerdict = { kind: "shutdown", reply: "421 4.7.0 Server closing connection" };
        return this.#defVerdict;
      }
      case "quarantine":
        return kind === "eom" ? { kind: "hold", reason: r.reason } : this.#unexpected(r.kind, kind);
      case "conn_fail":
        this.#commError("connection failure reported by milter");
        return this.#defVerdict;
      default:
        return this.#unexpected(r.kind, kind);
    }
  }

  /** A reply that the event does not allow: a protocol error. */
  #unexpected(reply: string, event: string): Verdict {
    this.#commError(`unexpected filter response ${reply} after event ${event}`);
    return this.#defVerdict;
  }

  /** The connect event: client name, address family, port, address. */
  connect(name: string, addr: string, port: number): Promise<Verdict> {
    this.#skipBody = false;
    let fam: Buffer[];
    if (addr === "" || addr === "unknown") fam = [Buffer.from("U")];
    else if (addr.startsWith("/")) fam = [Buffer.from("L"), u16(0), cstr(addr)];
    else if (addr.includes(":")) fam = [Buffer.from("6"), u16(port), cstr(addr)];
    else fam = [Buffer.from("4"), u16(port), cstr(addr)];
    return this.#event("connect", [cstr(name), ...fam], true);
  }

  /** HELO/EHLO. */
  helo(helo: string): Promise<Verdict> {
    return this.#event("helo", [cstr(helo)], true);
  }

  /** MAIL FROM: "<sender>" and its ESMTP parameters; a new message starts. */
  mail(args: string[]): Promise<Verdict> {
    if (this.#state === "accept-msg") this.#state = "ready";
    this.#skipBody = false;
    return this.#event(
      "mail",
      args.map((a) => cstr(a)),
    );
  }

  /** RCPT TO: "<recipient>" and its ESMTP parameters. */
  rcpt(args: string[]): Promise<Verdict> {
    return this.#event(
      "rcpt",
      args.map((a) => cstr(a)),
    );
  }

  /** DATA (protocol 4 and later). */
  data(): Promise<Verdict> {
    return this.#event("data", []);
  }

  /** An unknown SMTP command (protocol 3 and later). */
  unknown(command: string): Promise<Verdict> {
    return this.#event("unknown", [cstr(command)], true);
  }

  /** One header; the value as it follows the colon (a leading space kept only with SMFIP_HDR_LEADSPC). */
  header(name: string, value: string): Promise<Verdict> {
    const v = (this.#events & SMFIP.HDR_LEADSPC) !== 0 ? value : value.replace(/^[ \t]+/, "");
    return this.#event("header", [cstr(name), cstr(v)]);
  }

  /** End of headers. */
  eoh(): Promise<Verdict> {
    return this.#event("eoh", []);
  }

  /** One body chunk (CRLF line ends, at most MILTER_CHUNK bytes). */
  body(chunk: Buffer): Promise<Verdict> {
    if (this.#skipBody) return Promise.resolve(CONTINUE);
    return this.#event("body", [chunk]);
  }

  /** End of message: the verdict and the modifications asked for. */
  async eom(): Promise<EomResult> {
    const edits: MilterEdit[] = [];
    if (this.#state !== "ready") {
      const v = this.#state === "error" || this.#state === "reject-con" ? this.#defVerdict : CONTINUE;
      return { verdict: v, edits };
    }
    this.#sendMacros(EV["eom"] as EventSpec);
    this.#write(encodePacket(SMFIC.BODYEOB));
    for (;;) {
      const r = await this.#reply(true);
      if (typeof r === "string") {
        this.#commError(`${r} while waiting for the end-of-message reply`);
        return { verdict: this.#defVerdict, edits: [] };
      }
      const e = this.#edit(r);
      if (e === "bad") return { verdict: this.#defVerdict, edits: [] };
      if (e !== null) {
        if (edits.length >= MAX_EDITS) {
          this.#commError("too many modification requests");
          return { verdict: this.#defVerdict, edits: [] };
        }
        edits.push(e);
        continue;
      }
      const verdict = this.#verdict(r, "eom", false);
      if (this.#state === "ready") this.#state = "accept-msg";
      return { verdict, edits: this.failed ? [] : edits };
    }
  }

  /** A modification reply as an edit, null for other replies, "bad" when it was not negotiated. */
  #edit(r: Reply): MilterEdit | null | "bad" {
    const need: Partial<Record<Reply["kind"], number>> = {
      addheader: SMFIF.ADDHDRS,
      insheader: SMFIF.ADDHDRS,
      chgheader: SMFIF.CHGHDRS,
      addrcpt: SMFIF.ADDRCPT | SMFIF.ADDRCPT_PAR,
      delrcpt: SMFIF.DELRCPT,
      chgfrom: SMFIF.CHGFROM,
      replbody: SMFIF.CHGBODY,
    };
    const bit = need[r.kind];
    if (bit === undefined) return null;
    if ((this.#actions & bit) === 0) {
      this.#commError(`unexpected filter response ${r.kind} (not negotiated)`);
      return "bad";
    }
    switch (r.kind) {
      case "addheader":
        return { op: "addheader", name: r.name, value: r.value };
      case "insheader":
        return { op: "insheader", index: r.index, name: r.name, value: r.value };
      case "chgheader":
        return { op: "chgheader", index: r.index, name: r.name, value: r.value };
      case "addrcpt":
        if (r.args !== "" && (this.#actions & SMFIF.ADDRCPT_PAR) === 0) return this.#notNegotiated();
        return { op: "addrcpt", address: r.address, args: r.args };
      case "delrcpt":
        return { op: "delrcpt", address: r.address };
      case "chgfrom":
        return { op: "chgfrom", address: r.address, args: r.args };
      case "replbody":
        return { op: "replbody", data: r.data };
      default:
        return null;
    }
  }

  /** ESMTP arguments without SMFIF_ADDRCPT_PAR. */
  #notNegotiated(): "bad" {
    this.#commError("recipient with arguments without SMFIF_ADDRCPT_PAR");
    return "bad";
  }

  /** Abandons the current message (the connection stays). */
  abort(): void {
    if (this.#state === "ready" || this.#state === "accept-msg") {
      this.#write(encodePacket(SMFIC.ABORT));
      this.#state = "ready";
    }
    this.#skipBody = false;
  }

  /** Ends the conversation. */
  quit(): void {
    if (this.#sock !== null) {
      this.#write(encodePacket(SMFIC.QUIT));
      this.#sock.end();
    }
    this.#sock = null;
    if (this.#state !== "error") this.#state = "closed";
  }
}

/** A 16-bit big-endian number. */
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}

/** Sendmail treats replies as format strings: "%%" is "%", a lone "%" is dropped. */
function percent(s: string): string {
  return s.replace(/%(%?)/g, "$1");
}
