/*
 * cleanup-lines - split a byte stream into lines, with bounded memory
 *
 * DESCRIPTION
 *   Message bytes arrive in chunks of any size. LineSplitter hands out
 *   lines without their terminator (LF, or CRLF); a line longer than the
 *   piece limit is handed out in pieces (complete = false for all but the
 *   last), so a line without an end never grows a buffer past the limit.
 *   A bare CR inside a line is kept as data.
 */

export type LineSink = (line: Buffer, complete: boolean) => void | Promise<void>;

export class LineSplitter {
  #partial: Buffer[] = [];
  #partialLen = 0;
  readonly #piece: number;

  constructor(piece: number) {
    this.#piece = piece;
  }

  /** Feeds bytes; calls sink for each complete line or full-size piece. */
  async push(chunk: Buffer, sink: LineSink): Promise<void> {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      let line = this.#take(chunk.subarray(start, nl));
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      await sink(line, true);
      start = nl + 1;
    }
    this.#partial.push(chunk.subarray(start));
    this.#partialLen += chunk.length - start;
    while (this.#partialLen > this.#piece) {
      const all = Buffer.concat(this.#partial);
      await sink(all.subarray(0, this.#piece), false);
      this.#partial = [all.subarray(this.#piece)];
      this.#partialLen = all.length - this.#piece;
    }
  }

  /** Ends the stream: a last line without a terminator is handed out as complete. */
  async end(sink: LineSink): Promise<void> {
    if (this.#partialLen > 0) await sink(this.#take(Buffer.alloc(0)), true);
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
