/*
 * cleanup-message - the message content: headers, body, limits
 *
 * DESCRIPTION
 *   CleanupMessage receives content lines (cleanup-lines.ts) and writes them
 *   to the queue file as they come. In the header section it joins folded
 *   lines into one logical header (bounded by header_size_limit; the excess
 *   is dropped), counts Received: headers against hopcount_limit, notes
 *   which headers are present, removes Bcc: (unless the client asked to
 *   keep it), and hands each header to the header hooks (checks, rewriting)
 *   before it is written. At the end of the headers it adds what a local
 *   submission lacks (Received is smtpd's job; here From:, Date:,
 *   Message-ID:, and To: when there is no recipient header). Body lines
 *   (and the pieces of long ones) go to the body hook, which returns what
 *   to write in their place (MIME parsing and body checks live there; see
 *   cleanup-content.ts); the endOfBody hook may add a last few. A hook may
 *   end the message by setting stop. The content size is checked
 *   against message_size_limit as it grows; once too large, the rest is
 *   read and dropped and the message is rejected at the end.
 */
import type { QueueFileWriter } from "../global/queue-file.js";

export interface Header {
  /** The header name as written (e.g. "Subject"). */
  name: string;
  /** The whole logical header, folded lines joined with "\n" (no final newline). */
  text: string;
}

export type HeaderVerdict = { keep: true; text?: string; prepend?: string[] } | { keep: false };

/** A verdict that ends the message (reject, discard, hold) or null to go on. */
export type Stop =
  | { kind: "reject"; code: string; reason: string }
  | { kind: "tempfail"; reason: string }
  | { kind: "discard" };

/** A line, or a piece of a long line when complete is false, as it is to be written. */
export interface BodyPiece {
  data: Buffer;
  complete: boolean;
}

export interface MessageLimits {
  headerSize: number;
  hopCount: number;
  messageSize: number;
  lineLength: number;
}

export interface MessageHooks {
  /** Called for each logical header before it is written. */
  header?: (h: Header) => HeaderVerdict | Promise<HeaderVerdict>;
  /** Called at the end of the headers; returns headers to add. */
  endOfHeaders?: (seen: ReadonlySet<string>) => string[] | Promise<string[]>;
  /** Called for each body line or piece before it is written; returns what to write instead. */
  body?: (line: Buffer, complete: boolean) => BodyPiece[] | Promise<BodyPiece[]>;
  /** Called at the end of the content; returns what to write last. */
  endOfBody?: () => BodyPiece[] | Promise<BodyPiece[]>;
}

const RECEIVED = "received";
const NEWLINE = Buffer.from("\n");

export class CleanupMessage {
  #w: QueueFileWriter;
  #limits: MessageLimits;
  #hooks: MessageHooks;
  #inHeaders = true;
  #cur: Buffer[] = [];
  #curLen = 0;
  #hops = 0;
  #seen = new Set<string>();
  #midLine = false;
  stop: Stop | null = null;
  readonly headers: Header[] = [];

  constructor(w: QueueFileWriter, limits: MessageLimits, hooks: MessageHooks) {
    this.#w = w;
    this.#limits = limits;
    this.#hooks = hooks;
  }

  /** The names (lower case) of the headers seen so far. */
  get seen(): ReadonlySet<string> {
    return this.#seen;
  }

  /** Takes one line (or a piece of a long line when complete is false). */
  async line(line: Buffer, complete: boolean): Promise<void> {
    if (this.stop !== null) return;
    if (this.#inHeaders) return this.#headerLine(line, complete);
    await this.#bodyLine(line, complete);
  }

  /** Handles a line in the header section. */
  async #headerLine(line: Buffer, complete: boolean): Promise<void> {
    if (this.#midLine) {
      this.#append(line, false);
      this.#midLine = !complete;
      return;
    }
    const first = line[0];
    const continuation = (first === 0x20 || first === 0x09) && this.#cur.length > 0;
    if (!continuation) await this.#flushHeader();
    if (this.stop !== null) return;
    if (!continuation && !isHeaderStart(line)) {
      await this.#endHeaders();
      return this.#bodyLine(line, complete);
    }
    this.#append(line, continuation);
    this.#midLine = !complete;
  }

  /** Adds text to the logical header being collected, up to header_size_limit. */
  #append(piece: Buffer, newLine: boolean): void {
    if (this.#curLen + piece.length + 1 > this.#limits.headerSize) return;
    this.#cur.push(newLine ? Buffer.concat([NEWLINE, piece]) : piece);
    this.#curLen += piece.length + (newLine ? 1 : 0);
  }

  /** Processes the collected logical header. */
  async #flushHeader(): Promise<void> {
    if (this.#cur.length === 0) return;
    const text = Buffer.concat(this.#cur).toString("latin1");
    this.#cur = [];
    this.#curLen = 0;
    const name = text.slice(0, text.indexOf(":")).trim();
    const lower = name.toLowerCase();
    if (lower === RECEIVED && ++this.#hops > this.#limits.hopCount) {
      this.stop = { kind: "reject", code: "554 5.4.6", reason: "too many hops" };
      return;
    }
    const v = this.#hooks.header ? await this.#hooks.header({ name, text }) : { keep: true as const };
    if (!v.keep || this.stop !== null) return;
    this.#seen.add(lower);
    for (const p of v.prepend ?? []) await this.#writeHeaderText(p);
    this.headers.push({ name, text: v.text ?? text });
    await this.#writeHeaderText(v.text ?? text);
  }

  /** Writes a (possibly folded) header as content lines. */
  async #writeHeaderText(text: string): Promise<void> {
    for (const l of text.split("\n")) await this.#write(Buffer.from(l, "latin1"), true);
  }

  /** Ends the header section: adds missing headers. */
  async #endHeaders(): Promise<void> {
    await this.#flushHeader();
    this.#inHeaders = false;
    for (const h of (await this.#hooks.endOfHeaders?.(this.#seen)) ?? []) {
      this.headers.push({ name: h.slice(0, h.indexOf(":")).trim(), text: h });
      await this.#writeHeaderText(h);
    }
  }

  /** Handles a body line (the empty line after the headers included). */
  async #bodyLine(line: Buffer, complete: boolean): Promise<void> {
    if (!this.#hooks.body) return this.#write(line, complete);
    await this.#writePieces(await this.#hooks.body(line, complete));
  }

  /** Writes what a body hook returned, until something stops the message. */
  async #writePieces(pieces: readonly BodyPiece[]): Promise<void> {
    for (const p of pieces) {
      if (this.stop !== null) return;
      await this.#write(p.data, p.complete);
    }
  }

  /** Writes to the file, counting size. */
  async #write(line: Buffer, complete: boolean): Promise<void> {
    if (this.#limits.messageSize > 0 && this.#w.contentSize + line.length > this.#limits.messageSize) {
      this.stop = { kind: "reject", code: "552 5.3.4", reason: "Message file too big" };
      return;
    }
    if (complete) await this.#w.line(line, this.#limits.lineLength);
    else await this.#w.part(line);
  }

  /** Ends the content (a message of headers only is completed with its header section). */
  async end(): Promise<void> {
    if (this.stop !== null) return;
    if (this.#inHeaders) await this.#endHeaders();
    if (this.stop === null && this.#hooks.endOfBody) await this.#writePieces(await this.#hooks.endOfBody());
  }
}

/** True when a line starts a header field: a name of printable characters and a colon. */
export function isHeaderStart(line: Buffer): boolean {
  for (let i = 0; i < line.length && i < 1000; i++) {
    const c = line[i] ?? 0;
    if (c === 0x3a) return i > 0;
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return false;
}
