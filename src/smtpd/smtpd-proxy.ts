/*
 * smtpd-proxy - the before-queue content filter (smtpd_proxy_filter)
 *
 * SYNOPSIS
 *   const px = new SmtpdProxy(env);         // px.on: smtpd_proxy_filter is set
 *   reply = await px.mail(line, view) / px.rcpt(line) / px.dataCmd();   // null: go on
 *   await px.data(bytes) ...                  // the content, as smtpd would give it to cleanup
 *   const r = await px.end(view);             // the filter's reply to the end of the message
 *   px.close();
 *
 * DESCRIPTION
 *   With smtpd_proxy_filter (host:port, inet:host:port or unix:/path) smtpd
 *   does not queue mail itself: for each transaction it connects to the
 *   filter, reads its greeting, says EHLO smtpd_proxy_ehlo, sends the
 *   client's details with XFORWARD when the filter offers it, then passes
 *   MAIL FROM, each RCPT TO and DATA through; the content goes with CRLF
 *   line ends and dot stuffing, and the filter's reply to the end of the
 *   message is the client's reply, in the same session. Each wait is
 *   bounded by smtpd_proxy_timeout. A filter that cannot be reached, or
 *   that refuses the greeting or EHLO, gives "451 4.3.0 Error: queue file
 *   write error"; a filter that rejects MAIL, RCPT or the message has its
 *   reply passed on (a 2xx or 3xx where a rejection belongs is not passed
 *   on). The outcome is logged as Postfix logs it: "proxy-accept:
 *   END-OF-MESSAGE: 250 ...; from=<> to=<> proto=ESMTP helo=<>" or
 *   proxy-reject.
 *
 *   With smtpd_proxy_options = speed_adjust the filter is contacted only
 *   once the whole message is in (kept in memory up to
 *   message_size_limit): slow clients then do not tie up filter
 *   processes. The envelope is replayed; a recipient that the filter
 *   refuses then refuses the whole message (the client keeps
 *   responsibility for it, so nothing is lost).
 */
import { connect, type Socket } from "node:net";
import { msg } from "../util/msg.js";
import type { SmtpdEnv } from "./smtpd-env.js";
import type { SessionView } from "./smtpd-milter.js";
import { Wakeup } from "../util/wakeup.js";

const PROXY_ERROR = "451 4.3.0 Error: queue file write error";
const REPLY_MAX = 8192;
const XFORWARD_KNOWN = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "SOURCE"];

/** xtext (RFC 1891) for XFORWARD values. */
function xtext(s: string): string {
  return s.replace(/[^!-*,-<>-~]/g, (c) => `+${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

/** One connection to the filter, reading replies line by line with a limit. */
class ProxyConn {
  #sock: Socket;
  #buf = "";
  #failure: string | null = null;
  readonly #wakeup = new Wakeup();

  constructor(sock: Socket) {
    this.#sock = sock;
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      this.#buf += d;
      if (this.#buf.length > REPLY_MAX * 4) this.#failure ??= "reply too long";
      this.#wakeup.notify();
    });
    sock.on("close", () => {
      this.#failure ??= "lost connection";
      this.#wakeup.notify();
    });
    sock.on("error", (e) => {
      this.#failure ??= e.message;
      this.#wakeup.notify();
    });
  }

  /** Reads one (multi-line) reply; a failure text starts with "!". */
  async reply(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl).replace(/\r$/, "");
        this.#buf = this.#buf.slice(nl + 1);
        if (lines.join("\n").length < REPLY_MAX) lines.push(line);
        if (/^\d{3}-/.test(line)) continue;
        return lines.join("\n");
      }
      if (this.#failure !== null) return `!${this.#failure}`;
      const left = deadline - Date.now();
      if (left <= 0) return "!timeout";
      await this.#wakeup.wait(left);
    }
  }

  /** Writes, waiting while the socket is congested. */
  async write(s: string | Buffer): Promise<void> {
    if (this.#sock.destroyed) return;
    if (!this.#sock.write(s)) await new Promise<void>((r) => this.#sock.once("drain", r).once("close", r));
  }

  /** Sends QUIT and closes. */
  close(): void {
    if (!this.#sock.destroyed) this.#sock.end("QUIT\r\n");
    this.#sock.destroy();
  }
}

/** The before-queue filter of one session; see the module comment. */
export class SmtpdProxy {
  readonly on: boolean;
  #service: string;
  #timeoutMs: number;
  #ehlo: string;
  #speed: boolean;
  #sizeLimit: number;
  #conn: ProxyConn | null = null;
  #mailLine = "";
  #rcptLines: string[] = [];
  #held: Buffer[] = [];
  #heldSize = 0;
  #atLineStart = true;
  #failed: string | null = null;

  constructor(env: SmtpdEnv) {
    const cfg = env.cfg;
    this.#service = cfg.get("smtpd_proxy_filter");
    this.on = this.#service !== "";
    this.#timeoutMs = cfg.time("smtpd_proxy_timeout") * 1000;
    this.#ehlo = cfg.get("smtpd_proxy_ehlo");
    this.#speed = cfg.list("smtpd_proxy_options").some((o) => o.toLowerCase() === "speed_adjust");
    this.#sizeLimit = env.sizeLimit;
  }

  /** Connects, reads the greeting, EHLO and XFORWARD; null or the reply for the client. */
  async #open(view: SessionView): Promise<string | null> {
    const s = this.#service.replace(/^inet:/i, "");
    const m = /^unix:(.+)$/i.exec(s) ?? /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
    if (m === null) {
      msg.warn(`bad smtpd_proxy_filter value: ${this.#service}`);
      return PROXY_ERROR;
    }
    const opts =
      m.length === 2 ? { path: m[1] ?? "" } : { host: m[1] ?? (m[2] || "localhost"), port: Number(m[3]) };
    const sock = await new Promise<Socket | string>((resolve) => {
      const so = connect(opts);
      const t = setTimeout(() => {
        so.destroy();
        resolve("Connection timed out");
      }, this.#timeoutMs);
      so.once("connect", () => {
        clearTimeout(t);
        resolve(so);
      });
      so.once("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(t);
        resolve(e.code === "ECONNREFUSED" ? "Connection refused" : e.message);
      });
    });
    if (typeof sock === "string") {
      msg.warn(`connect to proxy filter ${this.#service}: ${sock}`);
      return PROXY_ERROR;
    }
    this.#conn = new ProxyConn(sock);
    if ((await this.#cmd(null, "2", "connection request")) !== null) return this.#fail();
    const ehlo = await this.#exchange(`EHLO ${this.#ehlo}`);
    if (!ehlo.startsWith("2")) return this.#warnFail(`EHLO ${this.#ehlo}`, ehlo);
    const features = /^250[ -]XFORWARD\s+(.*)$/im.exec(ehlo)?.[1]?.toUpperCase().split(/\s+/) ?? [];
    if (features.length > 0) {
      const r = await this.#exchange(this.#xforward(view, features));
      if (!r.startsWith("2")) return this.#warnFail("XFORWARD", r);
    }
    return null;
  }

  /** The XFORWARD command for the attributes the filter accepts. */
  #xforward(v: SessionView, features: string[]): string {
    const values: Record<string, string> = {
      NAME: v.name === "unknown" ? "[UNAVAILABLE]" : v.name,
      ADDR: v.addr,
      PORT: String(v.port),
      PROTO: v.esmtp ? "ESMTP" : "SMTP",
      HELO: v.helo === "" ? "[UNAVAILABLE]" : v.helo,
      SOURCE: "REMOTE",
    };
    const parts = XFORWARD_KNOWN.filter((k) => features.includes(k)).map(
      (k) => `${k}=${xtext(values[k] ?? "")}`,
    );
    return `XFORWARD ${parts.join(" ")}`;
  }

  /** Sends a line and reads the reply (a failure text starts with "!"). */
  async #exchange(line: string): Promise<string> {
    const c = this.#conn;
    if (c === null) return "!not connected";
    await c.write(`${line}\r\n`);
    const r = await c.reply(this.#timeoutMs);
    if (r.startsWith("!")) {
      msg.warn(
        r === "!timeout"
          ? `timeout talking to proxy ${this.#service}`
          : `lost connection with proxy ${this.#service}`,
      );
    } else if (!/^\d{3}( |$)/m.test(r.split("\n").pop() ?? "")) {
      msg.warn(`received garbage from proxy ${this.#service}: ${r.slice(0, 100)}`);
      return "!garbage";
    }
    return r;
  }

  /** Sends a command (or only reads, for the greeting); null when the reply is of the wanted class. */
  async #cmd(line: string | null, want: string, what: string): Promise<string | null> {
    const r =
      line === null
        ? ((await this.#conn?.reply(this.#timeoutMs)) ?? "!not connected")
        : await this.#exchange(line);
    if (r.startsWith(want)) return null;
    if (!r.startsWith("!")) msg.warn(`proxy ${this.#service} rejected "${line ?? what}": "${r}"`);
    return r;
  }

  /** A failed step before MAIL: the generic reply, connection closed. */
  #fail(): string {
    this.close();
    return PROXY_ERROR;
  }

  /** Logs a refused greeting/EHLO/XFORWARD and fails. */
  #warnFail(what: string, r: string): string {
    if (!r.startsWith("!")) msg.warn(`proxy ${this.#service} rejected "${what}": "${r}"`);
    return this.#fail();
  }

  /** The reply to pass on: a rejection as the filter said it, anything else as a generic error. */
  #passOn(r: string): string {
    if (/^[45]\d\d/.test(r)) return r.replace(/\n/g, "\r\n");
    return PROXY_ERROR;
  }

  /** MAIL FROM: opens the filter (unless speed_adjust) and passes the command on. */
  async mail(line: string, view: SessionView): Promise<string | null> {
    if (!this.on) return null;
    this.close();
    this.#mailLine = line;
    this.#rcptLines = [];
    this.#held = [];
    this.#heldSize = 0;
    this.#atLineStart = true;
    this.#failed = null;
    if (this.#speed) return null;
    const bad = await this.#open(view);
    if (bad !== null) return bad;
    const r = await this.#cmd(line, "2", line);
    return r === null ? null : this.#passOn(r);
  }

  /** RCPT TO, passed on (remembered for replay with speed_adjust). */
  async rcpt(line: string): Promise<string | null> {
    if (!this.on) return null;
    if (this.#speed) {
      this.#rcptLines.push(line);
      return null;
    }
    const r = await this.#cmd(line, "2", line);
    return r === null ? null : this.#passOn(r);
  }

  /** DATA (or the first BDAT): the filter must answer 354. */
  async dataCmd(): Promise<string | null> {
    if (!this.on || this.#speed) return null;
    const r = await this.#cmd("DATA", "3", "DATA");
    return r === null ? null : this.#passOn(r);
  }

  /** Content bytes (LF line ends, as for cleanup): to the filter with CRLF and dot stuffing. */
  async data(b: Buffer): Promise<void> {
    if (!this.on || this.#failed !== null) return;
    let text = b.toString("latin1");
    if (this.#atLineStart && text.startsWith(".")) text = `.${text}`;
    text = text.replace(/\n\./g, "\n..").replace(/\n/g, "\r\n");
    this.#atLineStart = b[b.length - 1] === 0x0a;
    const out = Buffer.from(text, "latin1");
    if (this.#speed) {
      this.#heldSize += out.length;
      if (this.#sizeLimit > 0 && this.#heldSize > this.#sizeLimit + 65536)
        this.#failed = "552 5.3.4 Error: message file too big";
      else this.#held.push(out);
      return;
    }
    await this.#conn?.write(out);
  }

  /** The end of the message: the filter's reply (logged as proxy-accept or proxy-reject). */
  async end(view: SessionView, rcpts: readonly string[]): Promise<string> {
    let r = this.#failed ?? (this.#speed ? await this.#replay(view) : null);
    if (r === null) {
      if (!this.#atLineStart) await this.#conn?.write("\r\n");
      const got = await this.#exchange(".");
      r = got.startsWith("!") ? PROXY_ERROR : got.startsWith("2") ? got : this.#passOn(got);
    }
    this.close();
    const ok = r.startsWith("2");
    const to = rcpts.length > 0 ? ` to=<${rcpts[rcpts.length - 1] ?? ""}>` : "";
    msg.info(
      `proxy-${ok ? "accept" : "reject"}: END-OF-MESSAGE: ${r.split(/\r?\n/).pop() ?? r}; from=<${view.sender ?? ""}>${to} proto=${view.esmtp ? "ESMTP" : "SMTP"} helo=<${view.helo}>`,
    );
    return r.replace(/\r?\n/g, "\r\n");
  }

  /** speed_adjust: connects now and replays MAIL, RCPT, DATA and the held content; null when ready for the end. */
  async #replay(view: SessionView): Promise<string | null> {
    const bad = await this.#open(view);
    if (bad !== null) return bad;
    for (const line of [this.#mailLine, ...this.#rcptLines]) {
      const r = await this.#cmd(line, "2", line);
      if (r !== null) return this.#passOn(r);
    }
    const d = await this.#cmd("DATA", "3", "DATA");
    if (d !== null) return this.#passOn(d);
    for (const b of this.#held) await this.#conn?.write(b);
    this.#held = [];
    return null;
  }

  /** Ends the filter connection (RSET, end of transaction, end of session). */
  close(): void {
    this.#conn?.close();
    this.#conn = null;
  }
}
