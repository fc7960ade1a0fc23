/*
 * cleanup-lines - split a byte stream into lines, with bounded memory
 *
 * DESCRIPTION
 *   Message bytes arrive in chunks of any size. LineSplitter hands out
 *   lines without their terminator (LF, or CRLF); a line longer than the
 *   piece limit is handed out in pieces (complete = false for all but the
 *   last), so a line without an end never grows a buffer past the limit.
 *   A bare CR inside a line is kept as data, unless replaceStrayCr (Postfix's
 *   cleanup_replace_stray_cr_lf) turns it into a space, so that no receiver
 *   down the line can take it for part of a line end (SMTP smuggling).
 */

export type LineSink = (line: Buffer, complete: boolean) => void | Promise<void>;

export class LineSplitter {
  #partial: Buffer[] = [];
  #partialLen = 0;
  readonly #piece: number;
  readonly #replaceStrayCr: boolean;

  constructor(piece: number, opts: { replaceStrayCr?: boolean } = {}) {
    this.#piece = piece;
    this.#replaceStrayCr = opts.replaceStrayCr === true;
  }

  /** A line or piece with its stray CRs made spaces (when asked to). */
  #clean(line: Buffer): Buffer {
    if (!this.#replaceStrayCr) return line;
    let copy: Buffer | null = null;
    for (let i = line.indexOf(0x0d); i >= 0; i = line.indexOf(0x0d, i + 1)) {
      copy ??= Buffer.from(line);
      copy[i] = 0x20;
    }
    return copy ?? line;
  }

  /** Feeds bytes; calls sink for each complete line or full-size piece. */
  async push(chunk: Buffer, sink: LineSink): Promise<void> {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      let line = this.#take(chunk.subarray(start, nl));
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      await sink(this.#clean(line), true);
      start = nl + 1;
    }
    this.#partial.push(chunk.subarray(start));
    this.#partialLen += chunk.length - start;
    while (this.#partialLen > this.#piece) {
      const all = Buffer.concat(this.#partial);
      // A CR that ends a piece may be half of a CRLF: with replaceStrayCr it waits for the next piece.
      const cut = this.#replaceStrayCr && all[this.#piece - 1] === 0x0d ? this.#piece - 1 : this.#piece;
      await sink(this.#clean(all.subarray(0, cut)), false);
      this.#partial = [all.subarray(cut)];
      this.#partialLen = all.length - cut;
    }
  }

  /** Ends the stream: a last line without a terminator is handed out as complete. */
  async end(sink: LineSink): Promise<void> {
    if (this.#partialLen > 0) await sink(this.#clean(this.#take(Buffer.alloc(0))), true);
  }

  /** Joins the buffered partial line with the rest. */
  #take(rest: Buffer): Buffer {
    if (this.#partialLen === 0) return rest;
    const line = Buffer.concat([...this.#partial, rest]);
    this.#partial = [];
    this.#partialLen = 0;
    return line;
  }
}
