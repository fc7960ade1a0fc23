/*
 * milter-chain - a list of milters (smtpd_milters, non_smtpd_milters) driven as one
 *
 * SYNOPSIS
 *   const chain = MilterChain.fromConfig(cfg, "smtpd_milters", macroSource);
 *   await chain.open(); await chain.connect(...); ... chain.line(buf) ...; const r = await chain.eom();
 *
 * DESCRIPTION
 *   Each event goes to the milters in the order configured; the first one
 *   that does not say "continue" decides, and the later ones do not see the
 *   event (as in Postfix). At the end of the message every milter that is
 *   still interested gets the end-of-message event, and the modifications
 *   of all of them are returned in order; a milter that rejects, discards
 *   or (with a 4xx/5xx) refuses the message decides, and its edits and
 *   those of later milters are not used. A quarantine (hold) does not stop
 *   the others.
 *
 *   The content arrives as lines (line(): one line without its newline),
 *   exactly as it is stored: the chain groups folded header lines into one
 *   header event, sends end-of-headers at the empty line, and sends the
 *   body with CRLF line ends in chunks of at most 64 KiB.
 *
 *   milterConfs() reads a milter list parameter and the milter_* settings
 *   (milter_default_action, milter_protocol, the timeouts and the macro
 *   lists) from the configuration.
 */
import type { Config } from "./config.js";
import {
  Milter,
  type DefaultAction,
  type MacroSource,
  type MilterConf,
  type MilterEdit,
  type Verdict,
} from "./milter-client.js";
import { MILTER_CHUNK } from "./milter-proto.js";

const DEFAULT_ACTIONS: readonly DefaultAction[] = ["accept", "reject", "tempfail", "quarantine", "shutdown"];
const HEADER_MAX = 1 << 20;

/** The milter settings of a list parameter; a bad milter_default_action is taken as tempfail. */
export function milterConfs(cfg: Config, listParam: string): MilterConf[] {
  const action = cfg.get("milter_default_action").toLowerCase();
  const defaultAction: DefaultAction = (DEFAULT_ACTIONS as readonly string[]).includes(action)
    ? (action as DefaultAction)
    : "tempfail";
  const base = {
    defaultAction,
    connectTimeoutMs: cfg.time("milter_connect_timeout") * 1000,
    commandTimeoutMs: cfg.time("milter_command_timeout") * 1000,
    contentTimeoutMs: cfg.time("milter_content_timeout") * 1000,
    protocol: cfg.get("milter_protocol"),
    macros: {
      connect: cfg.get("milter_connect_macros"),
      helo: cfg.get("milter_helo_macros"),
      mail: cfg.get("milter_mail_macros"),
      rcpt: cfg.get("milter_rcpt_macros"),
      data: cfg.get("milter_data_macros"),
      eoh: cfg.get("milter_end_of_header_macros"),
      eom: cfg.get("milter_end_of_data_macros"),
      unknown: cfg.get("milter_unknown_command_macros"),
    },
  };
  return cfg.list(listParam).map((name) => ({ name, ...base }));
}

/** The outcome of a message: what the milters decided and the edits to apply. */
export interface ChainEom {
  verdict: Verdict;
  /** Set when some milter asked to quarantine (hold) the message. */
  hold: string | null;
  edits: MilterEdit[];
}

/** Milters driven together; see the module comment. */
export class MilterChain {
  readonly milters: Milter[];
  #inHeaders = true;
  #header: Buffer[] = [];
  #headerLen = 0;
  #body: Buffer[] = [];
  #bodyLen = 0;
  /** The first refusal of a content event; later content events are not sent. */
  #contentVerdict: Verdict | null = null;

  constructor(confs: MilterConf[], macro: MacroSource) {
    this.milters = confs.map((c) => new Milter(c, macro));
  }

  /** Builds a chain from a list parameter (empty when the list is empty). */
  static fromConfig(cfg: Config, listParam: string, macro: MacroSource): MilterChain {
    return new MilterChain(milterConfs(cfg, listParam), macro);
  }

  /** True when no milter is configured. */
  get empty(): boolean {
    return this.milters.length === 0;
  }

  /** Connects every milter. */
  async open(): Promise<void> {
    for (const m of this.milters) await m.open();
  }

  /** Runs an event through the milters until one decides. */
  async #each(ev: (m: Milter) => Promise<Verdict>): Promise<Verdict> {
    for (const m of this.milters) {
      const v = await ev(m);
      if (v.kind !== "continue" && v.kind !== "accept") return v;
    }
    return { kind: "continue" };
  }

  /** The connect event. */
  connect(name: string, addr: string, port: number): Promise<Verdict> {
    return this.#each((m) => m.connect(name, addr, port));
  }

  /** HELO/EHLO. */
  helo(helo: string): Promise<Verdict> {
    return this.#each((m) => m.helo(helo));
  }

  /** MAIL FROM with its arguments; starts a new message. */
  mail(args: string[]): Promise<Verdict> {
    this.#resetContent();
    return this.#each((m) => m.mail(args));
  }

  /** RCPT TO with its arguments. */
  rcpt(args: string[]): Promise<Verdict> {
    return this.#each((m) => m.rcpt(args));
  }

  /** DATA. */
  data(): Promise<Verdict> {
    return this.#each((m) => m.data());
  }

  /** An unknown command. */
  unknown(command: string): Promise<Verdict> {
    return this.#each((m) => m.unknown(command));
  }

  /** Forgets the content state of the last message. */
  #resetContent(): void {
    this.#inHeaders = true;
    this.#header = [];
    this.#headerLen = 0;
    this.#body = [];
    this.#bodyLen = 0;
    this.#contentVerdict = null;
  }

  /** Takes one content line (without its newline). */
  async line(line: Buffer): Promise<void> {
    if (this.#contentVerdict !== null) return;
    if (!this.#inHeaders) return this.#bodyBytes(Buffer.concat([line, CRLF]));
    const first = line[0];
    if ((first === 0x20 || first === 0x09) && this.#header.length > 0) {
      if (this.#headerLen + line.length < HEADER_MAX) {
        this.#header.push(Buffer.from("\n"), line);
        this.#headerLen += line.length + 1;
      }
      return;
    }
    await this.#flushHeader();
    if (line.length > 0 && /^[!-9;-~]+:/.test(line.subarray(0, 1000).toString("latin1"))) {
      this.#header = [line];
      this.#headerLen = line.length;
      return;
    }
    await this.#endHeaders();
    if (line.length > 0) await this.#bodyBytes(Buffer.concat([line, CRLF]));
  }

  /** Sends the collected header. */
  async #flushHeader(): Promise<void> {
    if (this.#header.length === 0) return;
    const text = Buffer.concat(this.#header).toString("latin1");
    this.#header = [];
    this.#headerLen = 0;
    const colon = text.indexOf(":");
    const name = text.slice(0, colon).trimEnd();
    const value = text.slice(colon + 1);
    await this.#content((m) => m.header(name, value));
  }

  /** Ends the headers. */
  async #endHeaders(): Promise<void> {
    await this.#flushHeader();
    this.#inHeaders = false;
    await this.#content((m) => m.eoh());
  }

  /** Buffers body bytes and sends full chunks. */
  async #bodyBytes(b: Buffer): Promise<void> {
    this.#body.push(b);
    this.#bodyLen += b.length;
    while (this.#bodyLen >= MILTER_CHUNK) await this.#sendBody(MILTER_CHUNK);
  }

  /** Sends up to n buffered body bytes as one chunk. */
  async #sendBody(n: number): Promise<void> {
    const all = Buffer.concat(this.#body);
    const chunk = all.subarray(0, n);
    this.#body = all.length > n ? [all.subarray(n)] : [];
    this.#bodyLen = all.length - chunk.length;
    if (chunk.length > 0) await this.#content((m) => m.body(chunk));
  }

  /** Runs a content event; a refusal stops further content events. */
  async #content(ev: (m: Milter) => Promise<Verdict>): Promise<void> {
    if (this.#contentVerdict !== null) return;
    const v = await this.#each(ev);
    if (v.kind !== "continue") this.#contentVerdict = v;
  }

  /** End of message: the final verdict and the edits (see the module comment). */
  async eom(): Promise<ChainEom> {
    if (this.#contentVerdict === null) {
      if (this.#inHeaders) await this.#endHeaders();
      await this.#sendBody(this.#bodyLen);
    }
    const early = this.#contentVerdict;
    this.#resetContent();
    if (early !== null)
      return { verdict: early, hold: early.kind === "hold" ? early.reason : null, edits: [] };
    let hold: string | null = null;
    const edits: MilterEdit[] = [];
    for (const m of this.milters) {
      const r = await m.eom();
      if (r.verdict.kind === "hold") {
        hold ??= r.verdict.reason;
        edits.push(...r.edits);
        continue;
      }
      if (r.verdict.kind !== "continue" && r.verdict.kind !== "accept")
        return { verdict: r.verdict, hold, edits: [] };
      edits.push(...r.edits);
    }
    return { verdict: { kind: "continue" }, hold, edits };
  }

  /** Abandons the message. */
  abort(): void {
    this.#resetContent();
    for (const m of this.milters) m.abort();
  }

  /** Ends every conversation. */
  quit(): void {
    for (const m of this.milters) m.quit();
  }
}

const CRLF = Buffer.from("\r\n");
