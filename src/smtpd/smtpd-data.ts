/*
 * smtpd-data - message content from DATA and BDAT, streamed to cleanup
 *
 * DESCRIPTION
 *   DATA content is read line by line: a leading dot is removed (dot
 *   stuffing), and the message ends only at <CR><LF>.<CR><LF> — a "." line
 *   that ends in a bare LF, or that follows a line ending in a bare LF, is
 *   content, never the end (SMTP smuggling). With smtpd_forbid_bare_newline
 *   = normalize (Postfix's default) lines ending in a bare LF are taken as
 *   ordinary lines; with yes they end the session with an error (clients in
 *   smtpd_forbid_bare_newline_exclusions are let through). BDAT chunks are
 *   taken as raw bytes. Lines go to cleanup in batches, so memory does not
 *   grow with the message; the size limit is enforced as it streams.
 */
import type { SmtpReader } from "./smtpd-reader.js";

const BATCH = 65536;

export type DataOutcome =
  | { kind: "done"; size: number; lines: number }
  | { kind: "too-big" }
  | { kind: "bare-lf" }
  | { kind: "lost" };

/** Buffers message bytes and hands them to cleanup in batches. */
/** Where content goes: cleanup, or the before-queue filter. */
export interface ContentTarget {
  data: (b: Buffer) => Promise<void>;
}

export class ContentSink {
  #c: ContentTarget | null;
  #parts: Buffer[] = [];
  #size = 0;
  total = 0;
  /** BDAT: the last chunk ended in CR, which may start a CRLF. */
  pendingCr = false;

  #tap: { content: (b: Buffer) => Promise<void> } | null;

  constructor(c: ContentTarget | null, tap: { content: (b: Buffer) => Promise<void> } | null = null) {
    this.#c = c;
    this.#tap = tap;
  }

  /** Adds bytes (the tap, smtpd's milters, sees them as cleanup does). */
  async write(b: Buffer): Promise<void> {
    this.total += b.length;
    if (this.#c === null) return;
    await this.#tap?.content(b);
    this.#parts.push(b);
    this.#size += b.length;
    if (this.#size >= BATCH) await this.flush();
  }

  /** Sends what is buffered. */
  async flush(): Promise<void> {
    if (this.#c === null || this.#size === 0) return;
    const data = Buffer.concat(this.#parts);
    this.#parts = [];
    this.#size = 0;
    await this.#c.data(data);
  }
}

const NL = Buffer.from("\n");

/** Reads DATA content up to the end marker. */
export async function readData(
  r: SmtpReader,
  sink: ContentSink,
  opts: { lineLimit: number; timeoutMs: number; sizeLimit: number; forbidBareLf: boolean },
): Promise<DataOutcome> {
  let prevCrlf = true;
  let tooBig = false;
  let lines = 0;
  for (;;) {
    const line = await r.line(Math.max(opts.lineLimit, 1 << 20), opts.timeoutMs);
    if (line === null || line.end === "none") return { kind: "lost" };
    if (line.end === "lf" && opts.forbidBareLf) return { kind: "bare-lf" };
    if (line.text.length === 1 && line.text[0] === 0x2e && line.end === "crlf" && prevCrlf) {
      await sink.flush();
      return tooBig ? { kind: "too-big" } : { kind: "done", size: sink.total, lines };
    }
    prevCrlf = line.end === "crlf";
    const text = line.text[0] === 0x2e ? line.text.subarray(1) : line.text;
    if (opts.sizeLimit > 0 && sink.total + text.length + 1 > opts.sizeLimit) tooBig = true;
    if (!tooBig) {
      await sink.write(text);
      await sink.write(NL);
      lines++;
    }
  }
}

/** Reads one BDAT chunk of n bytes; CRLF line ends become LF for cleanup (a CR at a chunk's end waits for the next chunk). */
export async function readChunk(
  r: SmtpReader,
  sink: ContentSink,
  n: number,
  opts: { timeoutMs: number; sizeLimit: number },
): Promise<"ok" | "too-big" | "lost"> {
  let tooBig = false;
  const ok = await r.bytes(n, opts.timeoutMs, async (piece) => {
    if (opts.sizeLimit > 0 && sink.total + piece.length > opts.sizeLimit) tooBig = true;
    if (tooBig) return;
    let text = (sink.pendingCr ? "\r" : "") + piece.toString("latin1");
    sink.pendingCr = text.endsWith("\r");
    if (sink.pendingCr) text = text.slice(0, -1);
    await sink.write(Buffer.from(text.replace(/\r\n/g, "\n"), "latin1"));
  });
  if (!ok) return "lost";
  return tooBig ? "too-big" : "ok";
}
