/*
 * postscreen-smtpd - postscreen's own small SMTP engine and the deep protocol tests
 *
 * DESCRIPTION
 *   A client that must take the tests after the banner, or that failed a
 *   test with the action enforce, talks to this engine instead of smtpd.
 *   It greets (completing the teaser banner), answers HELO, EHLO (without
 *   PIPELINING), MAIL, RSET, NOOP, VRFY, ETRN and QUIT, and rejects every
 *   recipient, logging the attempt:
 *     NOQUEUE: reject: RCPT from [addr]:port: 550 5.7.1 Service unavailable;
 *       client [addr] blocked using zen.example; from=<a@b>, to=<c@d>, proto=ESMTP, helo=<x>
 *   (450 4.3.2 Service currently unavailable when the client did nothing
 *   wrong: it passed and may come back). DATA and BDAT end the session.
 *   While it talks, the client takes the deep tests that are due:
 *     pipelining        it sends a command before the reply to the last one
 *     non_smtp_command  it sends a postscreen_forbidden_commands verb or a
 *                       header line ("Subject: ...")
 *     bare_newline      it ends a line with LF alone
 *   A failure is logged ("COMMAND PIPELINING from [addr]:port after EHLO: ...")
 *   and handled by the test's action; at the first RCPT the due tests that
 *   did not fail pass. Limits: postscreen_command_time_limit per command
 *   (shorter under stress), postscreen_command_count_limit commands, lines
 *   of at most 2048 bytes.
 *   postscreen_command_filter may replace a command line before the engine
 *   reads it (logged: "[addr]:port: replacing command "X" with "Y"").
 */
import { isUtf8 } from "node:buffer";
import { msg } from "../util/msg.js";
import { T_BARLF, T_NSMTP, T_PIPEL, T_PREGR, underStress } from "./postscreen-env.js";
import { printable } from "./postscreen-misc.js";
import type { PsSession } from "./postscreen-session.js";
import { Wakeup } from "../util/wakeup.js";
import type { Dict } from "../global/dict.js";

const LINE_MAX = 2048;
const KNOWN = new Set([
  "HELO",
  "EHLO",
  "MAIL",
  "RCPT",
  "DATA",
  "BDAT",
  "RSET",
  "NOOP",
  "VRFY",
  "ETRN",
  "QUIT",
  "STARTTLS",
  "XCLIENT",
  "XFORWARD",
  "AUTH",
]);

interface Line {
  text: string;
  bareLf: boolean;
  /** More input was already waiting behind this line. */
  more: boolean;
}

/** Reads the client's lines with a per-command time limit; null on timeout, close or an overlong line. */
class LineReader {
  #s: PsSession;
  #buf: Buffer = Buffer.alloc(0);
  #closed = false;
  readonly #wakeup = new Wakeup();
  timedOut = false;

  constructor(s: PsSession) {
    this.#s = s;
    for (const d of s.preread) this.#buf = Buffer.concat([this.#buf, d]);
    s.preread = [];
    s.sock.on("data", (d: Buffer) => {
      this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
      if (this.#buf.length > LINE_MAX * 4) s.sock.pause();
      this.#wakeup.notify();
    });
    const end = (): void => {
      this.#closed = true;
      this.#wakeup.notify();
    };
    s.sock.on("close", end);
    s.sock.on("end", end);
    s.sock.resume();
  }

  /** The input waiting behind the last line (for the log). */
  get waiting(): Buffer {
    return this.#buf;
  }

  async line(timeoutMs: number): Promise<Line | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.#buf.indexOf(0x0a);
      if (nl >= 0) {
        const bareLf = nl === 0 || this.#buf[nl - 1] !== 0x0d;
        const text = this.#buf.subarray(0, bareLf ? nl : nl - 1).toString("latin1");
        this.#buf = this.#buf.subarray(nl + 1);
        if (this.#s.sock.isPaused() && this.#buf.length < LINE_MAX) this.#s.sock.resume();
        return { text: text.slice(0, LINE_MAX), bareLf, more: this.#buf.length > 0 };
      }
      if (this.#buf.length > LINE_MAX || this.#closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.timedOut = true;
        return null;
      }
      await this.#wakeup.wait(left);
    }
  }
}

/** The address inside MAIL FROM:<...> or RCPT TO:<...>; null when malformed. */
function extractAddr(arg: string): string | null {
  const colon = arg.indexOf(":");
  if (colon < 0) return null;
  const rest = arg.slice(colon + 1).trim();
  const m = /^<([^<>\s]*)>/.exec(rest) ?? /^([^<>\s]+)/.exec(rest);
  return m === null ? null : (m[1] ?? "");
}

/** Softens a 5xx reply for soft_bounce. */
function soften(reply: string): string {
  return reply.replace(/^5(\d\d )5/, "4$14").replace(/^5/, "4");
}

/**
 * postscreen_command_filter: the command that replaces a client's command
 * line (leading white space removed for the lookup), or the line itself when
 * the table has none or the line is not UTF-8; null when the table fails.
 */
async function filterCommand(table: Dict, s: PsSession, line: string): Promise<string | null> {
  const bytes = Buffer.from(line, "latin1");
  if (!isUtf8(bytes)) return line;
  const key = bytes.toString("utf8").replace(/^[ \t]+/, "");
  if (key === "") return line;
  const r = await table.lookup(key);
  if (r.status === "notfound") return line;
  if (r.status === "tempfail") {
    msg.warn(`${table.type}:${table.name} lookup error for "${key.slice(0, 100)}"`);
    return null;
  }
  const shown = printable(bytes.subarray(0, 100));
  msg.info(
    `${s.client}: replacing command "${shown}" with "${printable(Buffer.from(r.value).subarray(0, 100))}"`,
  );
  return Buffer.from(r.value.slice(0, LINE_MAX), "utf8").toString("latin1");
}

/** Runs the engine until the client leaves or is sent away. */
export async function psSmtpd(s: PsSession): Promise<"done" | "concluded"> {
  const env = s.env;
  const r = new LineReader(s);
  if ((s.failed & (1 << T_PREGR)) === 0 && !(await s.write(`220 ${env.smtpdBanner}\r\n`))) {
    await s.hangup();
    return "concluded";
  }
  let where = "CONNECT";
  let helo = "";
  let proto = "SMTP";
  let sender: string | null = null;
  for (let count = 0; ;) {
    const line = await r.line(underStress(env) ? env.cmdTimeMs.stress : env.cmdTimeMs.normal);
    if (line === null) {
      if (r.timedOut) {
        msg.info(`COMMAND TIME LIMIT from ${s.client} after ${where}`);
        s.finalReply = `421 4.4.2 ${env.myhostname} Error: timeout exceeded`;
      } else {
        await s.hangup();
        return "concluded";
      }
      return "done";
    }
    if (line.bareLf && s.due(T_BARLF)) {
      msg.info(`BARE NEWLINE from ${s.client} after ${where}`);
      if (await s.failWith(T_BARLF, env.barlfAction, "550 5.5.1 Protocol error", "521 5.5.1 Protocol error"))
        return "concluded";
    }
    const text = env.cmdFilter !== null ? await filterCommand(env.cmdFilter, s, line.text) : line.text;
    if (text === null) {
      s.finalReply = `421 ${env.myhostname} Service unavailable - try again later`;
      return "done";
    }
    const verb = (/^\s*(\S*)/.exec(text)?.[1] ?? "").toUpperCase();
    const arg = text.replace(/^\s*\S*\s*/, "");
    const known = KNOWN.has(verb);
    if (s.due(T_NSMTP) && !known && (env.forbidden.has(verb) || /^[!-9;-~]+:/.test(text))) {
      msg.info(
        `NON-SMTP COMMAND from ${s.client} after ${where}: ${printable(Buffer.from(verb, "latin1"))} ${printable(Buffer.from(text, "latin1"))}`,
      );
      if (
        await s.failWith(
          T_NSMTP,
          env.nsmtpAction,
          "550 5.5.1 Protocol error",
          "521 5.7.0 Error: I can break rules, too. Goodbye.",
        )
      )
        return "concluded";
    }
    if (line.more && s.due(T_PIPEL)) {
      msg.info(
        `COMMAND PIPELINING from ${s.client} after ${printable(Buffer.from(verb, "latin1"))}: ${printable(r.waiting)}`,
      );
      if (await s.failWith(T_PIPEL, env.pipelAction, "550 5.5.1 Protocol error", "521 5.5.1 Protocol error"))
        return "concluded";
    }
    if (verb === "RCPT")
      for (const i of [T_BARLF, T_NSMTP, T_PIPEL]) if (s.due(i)) s.pass(i, env.ttl[i] ?? 0);
    if (++count > env.cmdCount && verb !== "QUIT") {
      msg.info(`COMMAND COUNT LIMIT from ${s.client} after ${where}`);
      s.finalReply = `421 ${env.myhostname} Service unavailable - try again later`;
      return "done";
    }
    where = verb || "CONNECT";
    let reply: string;
    switch (verb) {
      case "HELO":
      case "EHLO":
        if (arg === "") {
          reply = `501 Syntax: ${verb} hostname`;
          break;
        }
        helo = arg.slice(0, 255);
        proto = verb === "EHLO" ? "ESMTP" : "SMTP";
        sender = null;
        reply =
          verb === "HELO"
            ? `250 ${env.myhostname}`
            : [
                env.myhostname,
                "SIZE",
                "VRFY",
                "ETRN",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "DSN",
                "SMTPUTF8",
                "CHUNKING",
              ]
                .map((k, i, all) => `250${i === all.length - 1 ? " " : "-"}${k}`)
                .join("\r\n");
        break;
      case "MAIL": {
        const a = extractAddr(arg);
        if (helo === "") reply = "503 5.5.1 Error: send HELO/EHLO first";
        else if (sender !== null) reply = "503 5.5.1 Error: nested MAIL command";
        else if (a === null) reply = "501 5.5.4 Syntax: MAIL FROM:<address>";
        else {
          sender = a;
          reply = "250 2.1.0 Ok";
        }
        break;
      }
      case "RCPT": {
        const a = extractAddr(arg);
        if (sender === null) reply = "503 5.5.1 Error: need MAIL command";
        else if (a === null) reply = "501 5.5.4 Syntax: RCPT TO:<address>";
        else {
          reply = env.softBounce ? soften(s.rcptReply) : s.rcptReply;
          msg.info(
            `NOQUEUE: reject: RCPT from ${s.client}: ${reply}; from=<${sender}>, to=<${a}>, proto=${proto}, helo=<${helo}>`,
          );
        }
        break;
      }
      case "DATA":
      case "BDAT":
        msg.info(`${verb} without valid RCPT from ${s.client}`);
        s.finalReply =
          sender === null ? "503 5.5.1 Error: need RCPT command" : "554 5.5.1 Error: no valid recipients";
        return "done";
      case "RSET":
        sender = null;
        reply = "250 2.0.0 Ok";
        break;
      case "NOOP":
        reply = "250 2.0.0 Ok";
        break;
      case "VRFY":
        reply = arg === "" ? "501 5.5.4 Syntax: VRFY address" : s.rcptReply;
        break;
      case "ETRN":
        reply = helo === "" ? "503 5.5.1 Error: send HELO/EHLO first" : "458 Unable to queue messages";
        break;
      case "QUIT":
        s.finalReply = "221 2.0.0 Bye";
        return "done";
      case "STARTTLS":
        reply = "502 5.5.1 Error: command not implemented";
        break;
      default:
        reply = "502 5.5.2 Error: command not recognized";
    }
    if (!(await s.write(`${reply}\r\n`))) {
      await s.hangup();
      return "concluded";
    }
  }
}
