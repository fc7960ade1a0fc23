/*
 * sendmail-input - message lines from standard input, as Postfix's sendmail reads them
 *
 * SYNOPSIS
 *   const src = new LineSource(process.stdin, 2048);
 *   for (let l; (l = await src.next()) !== null; ) l.data, l.complete
 *   const msg = new MessageLines(src, { dotEnds: true, fixEol: "always" });
 *   for (let l; (l = await msg.next()) !== null; ) ...   // From_ skipped, CR stripped, "." ends
 *
 * DESCRIPTION
 *   LineSource splits a byte stream at LF. A line longer than pieceMax
 *   comes out in pieces (complete false) so memory stays bounded; the
 *   line's last piece is complete. Input that ends without a final LF ends
 *   with a complete line. Bare LF is the normal line ending here.
 *
 *   MessageLines applies the rules of Postfix's sendmail to the message:
 *   leading "From " lines (also ">From ") are dropped; the trailing CRs of
 *   each line are removed as sendmail_fix_line_endings says ("always";
 *   "strict": only when the first line ends in CRLF; "never"); and unless
 *   -i was given, a line with only "." ends the message (the rest of the
 *   input is not read). Long lines are passed on whole, never cut.
 */
import type { Readable } from "node:stream";

export interface Line {
  data: Buffer;
  /** False for a piece of a long line that goes on in the next one. */
  complete: boolean;
}

export class LineSource {
  #iter: AsyncIterator<Buffer | string>;
  #buf: Buffer = Buffer.alloc(0);
  #eof = false;
  #pieceMax: number;

  constructor(input: Readable | AsyncIterable<Buffer>, pieceMax: number) {
    this.#iter = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    this.#pieceMax = pieceMax;
  }

  /** The next line or piece; null at the end of the input. */
  async next(): Promise<Line | null> {
    for (;;) {
      const nl = this.#buf.indexOf(0x0a);
      if (nl >= 0 && nl <= this.#pieceMax) {
        const data = this.#buf.subarray(0, nl);
        this.#buf = this.#buf.subarray(nl + 1);
        return { data, complete: true };
      }
      if (this.#buf.length > this.#pieceMax + 1) {
        let cut = this.#pieceMax;
        if (this.#buf[cut - 1] === 0x0d) cut--;
        const data = this.#buf.subarray(0, cut);
        this.#buf = this.#buf.subarray(cut);
        return { data, complete: false };
      }
      if (this.#eof) {
        if (this.#buf.length === 0) return null;
        const data = this.#buf;
        this.#buf = Buffer.alloc(0);
        return { data, complete: true };
      }
      const r = await this.#iter.next();
      if (r.done === true) this.#eof = true;
      else {
        const chunk = typeof r.value === "string" ? Buffer.from(r.value, "latin1") : r.value;
        this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      }
    }
  }
}

export type FixEol = "always" | "strict" | "never";

/** Removes the trailing CR characters of a line. */
function stripCr(data: Buffer): Buffer {
  let end = data.length;
  while (end > 0 && data[end - 1] === 0x0d) end--;
  return data.subarray(0, end);
}

const FROM_ = /^>*From /;

export class MessageLines {
  #src: LineSource;
  #dotEnds: boolean;
  #fix: FixEol | "do" | "dont";
  #skipFrom = true;
  #prevComplete = true;
  #done = false;

  constructor(src: LineSource, opts: { dotEnds: boolean; fixEol: FixEol }) {
    this.#src = src;
    this.#dotEnds = opts.dotEnds;
    this.#fix = opts.fixEol === "always" ? "do" : opts.fixEol === "never" ? "dont" : "strict";
  }

  /** The next message line or piece; null at the end of the message. */
  async next(): Promise<Line | null> {
    while (!this.#done) {
      const l = await this.#src.next();
      if (l === null) break;
      let data = l.data;
      if (l.complete && this.#fix === "strict") this.#fix = data[data.length - 1] === 0x0d ? "do" : "dont";
      if (this.#skipFrom) {
        if (l.complete && FROM_.test(data.subarray(0, 64).toString("latin1"))) continue;
        this.#skipFrom = false;
      }
      if (l.complete && this.#fix === "do") data = stripCr(data);
      const wasComplete = this.#prevComplete;
      this.#prevComplete = l.complete;
      if (this.#dotEnds && wasComplete && l.complete && data.length === 1 && data[0] === 0x2e) break;
      return { data, complete: l.complete };
    }
    this.#done = true;
    return null;
  }
}
