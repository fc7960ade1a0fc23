/*
 * sendmail-smtp - "sendmail -bs": SMTP on standard input and output
 *
 * SYNOPSIS
 *   const status = await smtpSession(cfg, process.stdin, process.stdout);
 *
 * DESCRIPTION
 *   Programs started by inetd-style wrappers, and some MUAs, speak SMTP to
 *   "sendmail -bs" over a pipe. This is a small stand-alone SMTP server
 *   for that purpose, with the rights of the user who runs it: each
 *   message goes to a maildrop file as with plain sendmail, so pickup sees
 *   the user's uid and cleanup does the rest. There is no relay control
 *   (Postfix's "smtpd -S" has none by default either): it is the user's own
 *   local submission. Commands: HELO, EHLO (PIPELINING, SIZE, 8BITMIME,
 *   DSN, ENHANCEDSTATUSCODES), MAIL FROM (SIZE, BODY, RET, ENVID), RCPT TO
 *   (NOTIFY, ORCPT accepted), DATA (dot-unstuffed, the size limited by
 *   message_size_limit), RSET, NOOP, VRFY (252), QUIT. A sender that
 *   local_login_sender_maps does not allow the user is refused at MAIL. A command line is
 *   at most COMMAND_MAX bytes. Input ends the session at EOF.
 */
import type { Readable, Writable } from "node:stream";
import { fatalStatus } from "../../global/cmd-status.js";
import type { Config } from "../../global/config.js";
import {
  MaildropError,
  MaildropWriter,
  MAILDROP_PIECE,
  maildropAddressProblem,
} from "../../global/maildrop.js";
import { EX } from "../../global/sys-exits.js";
import { checkLoginSender } from "../../global/login-sender.js";
import { tok822Internalize, tok822ScanAddr } from "../../global/tok822.js";
import { dsnNotifyMask } from "./sendmail-args.js";
import { checkSubmitter, wakePickup } from "./sendmail-enqueue.js";
import { LineSource } from "./sendmail-input.js";

const COMMAND_MAX = 4096;
const RCPT_MAX = 1000;

interface Txn {
  sender: string;
  rcpts: Array<{ address: string; notify?: number }>;
  encoding?: "7bit" | "8bit";
  ret?: "full" | "hdrs";
  envid?: string;
}

/** Parses "<addr> PARAM=value ..." after "MAIL FROM:" or "RCPT TO:". */
export function parsePath(text: string): { address: string; params: Map<string, string> } | null {
  const m = /^\s*<([^>]*)>\s*(.*)$/.exec(text) ?? /^\s*(\S+)\s*(.*)$/.exec(text);
  if (m === null) return null;
  let path = m[1] ?? "";
  const route = /^@[^:]*:(.*)$/.exec(path);
  if (route !== null) path = route[1] ?? "";
  const address = path === "" ? "" : tok822Internalize(tok822ScanAddr(path).toks);
  const params = new Map<string, string>();
  for (const p of (m[2] ?? "").split(/\s+/).filter((w) => w !== "")) {
    const eq = p.indexOf("=");
    params.set((eq < 0 ? p : p.slice(0, eq)).toUpperCase(), eq < 0 ? "" : p.slice(eq + 1));
  }
  return { address, params };
}

class Session {
  #cfg: Config;
  #out: Writable;
  #src: LineSource;
  #helo = false;
  #txn: Txn | null = null;
  #host: string;

  constructor(cfg: Config, input: Readable, out: Writable) {
    this.#cfg = cfg;
    this.#out = out;
    this.#src = new LineSource(input, COMMAND_MAX);
    this.#host = cfg.get("myhostname");
  }

  /** Writes reply lines ("250-..." for all but the last). */
  #reply(code: string, ...lines: string[]): void {
    lines.forEach((l, i) => this.#out.write(`${code}${i < lines.length - 1 ? "-" : " "}${l}\r\n`));
  }

  /** Runs the session until QUIT or the end of the input. */
  async run(): Promise<void> {
    this.#reply("220", this.#cfg.get("smtpd_banner"));
    for (;;) {
      const l = await this.#src.next();
      if (l === null) return;
      if (!l.complete) {
        while (!(await this.#src.next())?.complete) {
          /* skip the rest of the long line */
        }
        this.#reply("500", "5.5.2 Error: line too long");
        continue;
      }
      const line = l.data.toString("latin1").replace(/\r+$/, "");
      if (!(await this.#command(line))) return;
    }
  }

  /** Handles one command line; false after QUIT. */
  async #command(line: string): Promise<boolean> {
    const verb = (/^\S*/.exec(line)?.[0] ?? "").toUpperCase();
    const arg = line.slice(verb.length).trim();
    switch (verb) {
      case "HELO":
      case "EHLO":
        return this.#hello(verb, arg);
      case "MAIL":
        await this.#mail(arg);
        return true;
      case "RCPT":
        this.#rcpt(arg);
        return true;
      case "DATA":
        await this.#data();
        return true;
      case "RSET":
        this.#txn = null;
        this.#reply("250", "2.0.0 Ok");
        return true;
      case "NOOP":
        this.#reply("250", "2.0.0 Ok");
        return true;
      case "VRFY":
        this.#reply("252", "2.0.0 Send some mail, I'll try my best");
        return true;
      case "QUIT":
        this.#reply("221", "2.0.0 Bye");
        return false;
      default:
        this.#reply("502", "5.5.2 Error: command not recognized");
        return true;
    }
  }

  /** HELO and EHLO. */
  #hello(verb: string, arg: string): boolean {
    if (arg === "") {
      this.#reply("501", `Syntax: ${verb} hostname`);
      return true;
    }
    this.#helo = true;
    this.#txn = null;
    if (verb === "HELO") this.#reply("250", this.#host);
    else {
      const size = this.#cfg.int("message_size_limit");
      this.#reply(
        "250",
        this.#host,
        "PIPELINING",
        `SIZE${size > 0 ? ` ${size}` : ""}`,
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
      );
    }
    return true;
  }

  /** MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME] [RET=FULL|HDRS] [ENVID=x]. */
  async #mail(arg: string): Promise<void> {
    if (!this.#helo) return this.#reply("503", "5.5.1 Error: send HELO/EHLO first");
    if (this.#txn !== null) return this.#reply("503", "5.5.1 Error: nested MAIL command");
    const m = /^FROM:(.*)$/i.exec(arg);
    const p = m === null ? null : parsePath(m[1] ?? "");
    if (p === null) return this.#reply("501", "5.5.4 Syntax: MAIL FROM:<address>");
    if (maildropAddressProblem(p.address) !== null)
      return this.#reply("501", "5.1.7 Bad sender address syntax");
    const txn: Txn = { sender: p.address, rcpts: [] };
    const size = Number(p.params.get("SIZE") ?? "0");
    const limit = this.#cfg.int("message_size_limit");
    if (limit > 0 && size > limit) return this.#reply("552", "5.3.4 Message size exceeds fixed limit");
    const body = p.params.get("BODY")?.toUpperCase();
    if (body === "8BITMIME") txn.encoding = "8bit";
    else if (body === "7BIT") txn.encoding = "7bit";
    const ret = p.params.get("RET")?.toLowerCase();
    if (ret === "full" || ret === "hdrs") txn.ret = ret;
    const envid = p.params.get("ENVID");
    if (envid !== undefined && /^[\x21-\x7e]{1,100}$/.test(envid)) txn.envid = envid;
    const v = await checkLoginSender(this.#cfg, process.getuid?.() ?? 0, p.address);
    if (v.status === "deny") return this.#reply("550", `5.7.1 Error: ${v.reason}`);
    if (v.status === "tempfail")
      return this.#reply("451", "4.3.0 Error: local_login_sender_maps lookup failed");
    this.#txn = txn;
    this.#reply("250", "2.1.0 Ok");
  }

  /** RCPT TO:<address> [NOTIFY=...]. */
  #rcpt(arg: string): void {
    if (this.#txn === null) return this.#reply("503", "5.5.1 Error: need MAIL command");
    const m = /^TO:(.*)$/i.exec(arg);
    const p = m === null ? null : parsePath(m[1] ?? "");
    if (p === null || p.address === "") return this.#reply("501", "5.5.4 Syntax: RCPT TO:<address>");
    if (maildropAddressProblem(p.address) !== null)
      return this.#reply("501", "5.1.3 Bad recipient address syntax");
    if (this.#txn.rcpts.length >= RCPT_MAX) return this.#reply("452", "4.5.3 Error: too many recipients");
    const notify = p.params.has("NOTIFY") ? dsnNotifyMask(p.params.get("NOTIFY") ?? "") : undefined;
    if (notify === 0) return this.#reply("501", "5.5.4 Error: Bad NOTIFY parameter syntax");
    this.#txn.rcpts.push({ address: p.address, ...(notify !== undefined ? { notify } : {}) });
    this.#reply("250", "2.1.5 Ok");
  }

  /** DATA: reads the message to the lone ".", writes the maildrop file. */
  async #data(): Promise<void> {
    const txn = this.#txn;
    if (txn === null) return this.#reply("503", "5.5.1 Error: need RCPT command");
    if (txn.rcpts.length === 0) return this.#reply("554", "5.5.1 Error: no valid recipients");
    this.#reply("354", "End data with <CR><LF>.<CR><LF>");
    this.#txn = null;
    let w: MaildropWriter | null = null;
    let failure: string | null = null;
    try {
      w = await MaildropWriter.create(this.#cfg.get("queue_directory"), {
        contentMax: this.#cfg.int("message_size_limit"),
      });
      w.attr("rewrite_context", "local");
      if (txn.encoding !== undefined) w.attr("encoding", txn.encoding);
      if (txn.ret !== undefined) w.attr("dsn_ret", txn.ret);
      if (txn.envid !== undefined) w.attr("dsn_envid", txn.envid);
      w.sender(txn.sender);
      for (const r of txn.rcpts) w.rcpt(r);
      w.beginContent();
    } catch (err) {
      failure = err instanceof MaildropError ? err.message : String(err);
    }
    failure = (await this.#copyData(w, failure)) ?? failure;
    if (failure === null && w !== null) {
      await w.commit().catch((err: Error) => (failure = err.message));
    } else await w?.abort();
    if (failure === null) {
      await wakePickup(this.#cfg);
      return this.#reply("250", "2.0.0 Ok: queued");
    }
    if (failure === "message file too big") return this.#reply("552", "5.3.4 Error: message file too big");
    this.#reply("451", `4.3.0 Error: queue file write error: ${failure}`);
  }

  /** Copies the DATA lines to the file (or only reads them after a failure); a new failure or null. */
  async #copyData(w: MaildropWriter | null, failure: string | null): Promise<string | null> {
    const src = new LineSource({ [Symbol.asyncIterator]: () => this.#dataChunks() }, MAILDROP_PIECE);
    let prevComplete = true;
    for (let l = await src.next(); l !== null; l = await src.next()) {
      let data = l.data;
      if (l.complete) data = data.subarray(0, data.length - (data[data.length - 1] === 0x0d ? 1 : 0));
      if (prevComplete && data[0] === 0x2e) data = data.subarray(1);
      prevComplete = l.complete;
      if (failure !== null || w === null) continue;
      try {
        await w.write(data, l.complete);
      } catch (err) {
        failure = err instanceof MaildropError ? err.message : String(err);
      }
    }
    return failure;
  }

  /** The raw lines of the DATA section, up to the lone "." line. */
  async *#dataChunks(): AsyncGenerator<Buffer> {
    let prevComplete = true;
    for (let l = await this.#src.next(); l !== null; l = await this.#src.next()) {
      const text = l.data;
      const dot =
        prevComplete && l.complete && (text.equals(Buffer.from(".")) || text.equals(Buffer.from(".\r")));
      if (dot) return;
      prevComplete = l.complete;
      yield l.complete ? Buffer.concat([text, Buffer.from("\n")]) : text;
    }
  }
}

/** Runs "sendmail -bs"; returns the exit status. */
export async function smtpSession(cfg: Config, input: Readable, out: Writable): Promise<number> {
  const uid = process.getuid?.() ?? 0;
  await checkSubmitter(cfg, uid);
  try {
    await new Session(cfg, input, out).run();
  } catch (err) {
    fatalStatus(EX.SOFTWARE, `SMTP session: ${(err as Error).message}`);
  }
  await new Promise<void>((resolve) => out.write("", () => resolve()));
  return EX.OK;
}
