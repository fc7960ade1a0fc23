/*
 * smtp-reply - reading and parsing SMTP and LMTP replies in the client
 *
 * SYNOPSIS
 *   const reader = new ReplyReader(socket);
 *   const r = await reader.reply(deadline);   // a Reply, or "closed", "timeout", "bad"
 *
 * DESCRIPTION
 *   Replies are parsed into code, enhanced status code (replyDsn: from the
 *   text when it agrees with the code, else X.0.0) and text (multi-line
 *   replies joined); a reply line longer than REPLY_LINE_MAX is cut, a
 *   reply of more than REPLY_LINES_MAX lines is a protocol error.
 *   authKeyword() reads the mechanisms of an EHLO AUTH line (also the old
 *   "AUTH=" form).
 */
import type { Socket } from "node:net";

const REPLY_LINE_MAX = 4096;
const REPLY_LINES_MAX = 1000;
/** The most AUTH mechanisms kept from an EHLO reply. */
export const AUTH_MECHS_MAX = 64;

export interface Reply {
  code: number;
  /** Enhanced status code (from the reply, or X.0.0 from the code). */
  dsn: string;
  /** The reply lines joined with a space, code included ("250 2.0.0 Ok: queued as X"). */
  text: string;
  lines: string[];
}

/** Parses the enhanced status code at the start of a reply's text, or derives one from the code. */
export function replyDsn(code: number, firstLine: string): string {
  const m = /^\d{3}[ -]([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)/.exec(firstLine);
  const cls = String(code)[0] ?? "4";
  if (m !== null && m[1] === cls) return `${m[1]}.${m[2]}.${m[3]}`;
  return `${cls}.0.0`;
}

/** The mechanisms of an AUTH line of an EHLO reply ("AUTH PLAIN LOGIN", or the old "AUTH=LOGIN"). */
export function authKeyword(line: string): string[] | null {
  const m = /^AUTH(?:[ =\t]+(.*))?$/i.exec(line.trim());
  if (m === null) return null;
  const words = (m[1] ?? "").split(/[ \t]+/).filter((w) => w !== "");
  return words.map((w) => w.toUpperCase()).slice(0, AUTH_MECHS_MAX);
}

/** Turns a reply's lines into a Reply. */
export function parseReply(lines: string[]): Reply {
  const code = Number(lines[0]?.slice(0, 3));
  const text = lines
    .map((l, i) => (i === 0 ? l.slice(0, 3) + " " + l.slice(4) : l.slice(4)))
    .join(" ")
    .trim();
  return { code, dsn: replyDsn(code, lines[0] ?? ""), text, lines };
}

/** Reads reply lines from a socket, with a time limit per reply. */
export class ReplyReader {
  #sock: Socket;
  #buf = "";
  #lines: string[] = [];
  #closed = false;
  #wake: (() => void) | null = null;
  #detach: () => void;

  constructor(sock: Socket) {
    sock.setEncoding("latin1");
    const onData = (d: string): void => {
      this.#buf += d;
      let nl: number;
      while ((nl = this.#buf.indexOf("\n")) >= 0) {
        this.#lines.push(this.#buf.slice(0, nl).replace(/\r$/, "").slice(0, REPLY_LINE_MAX));
        this.#buf = this.#buf.slice(nl + 1);
      }
      if (this.#buf.length > REPLY_LINE_MAX * 4) this.#buf = this.#buf.slice(0, REPLY_LINE_MAX);
      this.#wake?.();
    };
    this.#sock = sock;
    const end = (): void => {
      this.#closed = true;
      this.#wake?.();
    };
    sock.on("data", onData);
    sock.on("close", end);
    sock.on("end", end);
    sock.on("error", end);
    this.#detach = () => {
      sock.off("data", onData);
      sock.off("close", end);
      sock.off("end", end);
      sock.off("error", end);
    };
  }

  /** Stops reading the socket (before TLS takes it over); what was read and not used is dropped. */
  detach(): void {
    this.#detach();
    this.#lines = [];
    this.#buf = "";
  }

  /** True when nothing the server sent is left unread (here or in the socket). */
  get drained(): boolean {
    return this.#buf === "" && this.#lines.length === 0 && this.#sock.readableLength === 0;
  }

  /** One line, or why there is none. */
  async #line(deadline: number): Promise<{ line: string } | { end: "closed" | "timeout" }> {
    for (;;) {
      const l = this.#lines.shift();
      if (l !== undefined) return { line: l };
      if (this.#closed) return { end: "closed" };
      const left = deadline - Date.now();
      if (left <= 0) return { end: "timeout" };
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
  }

  /** One complete reply, or "closed" / "timeout" / "bad". */
  async reply(timeoutMs: number): Promise<Reply | "closed" | "timeout" | "bad"> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    for (;;) {
      const got = await this.#line(deadline);
      if ("end" in got) return got.end;
      const l = got.line;
      if (!/^[2-5]\d\d(?:[ -]|$)/.test(l)) return "bad";
      lines.push(l);
      if (lines.length > REPLY_LINES_MAX) return "bad";
      if (l[3] !== "-") return parseReply(lines);
    }
  }
}
