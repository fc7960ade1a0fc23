/*
 * smtpd-reader - read an SMTP client's lines and bytes, with limits
 *
 * DESCRIPTION
 *   Buffers what the client sends (bounded: the socket is paused while a
 *   line or chunk is being handled, and a line longer than the limit is cut
 *   and the rest up to its end thrown away), and hands out:
 *     line()   the next line without its ending, and which ending it had
 *              ("crlf", a bare "lf", or "none" at end of input)
 *     bytes(n) exactly n bytes (BDAT chunks)
 *     pending  whether more input is already waiting (pipelining checks)
 *     detach() stops reading and returns what is buffered (TLS takes over)
 *   Every read has a time limit; a timeout or a vanished client is null.
 */
import type { Socket } from "node:net";

export type LineEnd = "crlf" | "lf" | "none";
export interface Line {
  text: Buffer;
  end: LineEnd;
  /** The line was longer than the limit and was cut. */
  cut: boolean;
}

const HIGH_WATER = 262144;

export class SmtpReader {
  #sock: Socket;
  #chunks: Buffer[] = [];
  #size = 0;
  #closed = false;
  #wake: (() => void) | null = null;
  timedOut = false;

  constructor(sock: Socket) {
    this.#sock = sock;
    sock.on("data", this.#onData);
    sock.on("end", this.#onEnd);
    sock.on("close", this.#onEnd);
    sock.on("error", this.#onEnd);
  }

  #onData = (d: Buffer): void => {
    this.#chunks.push(d);
    this.#size += d.length;
    if (this.#size > HIGH_WATER) this.#sock.pause();
    this.#wake?.();
  };

  #onEnd = (): void => {
    this.#closed = true;
    this.#wake?.();
  };

  /** Stops reading (the socket is left paused) and hands back what was buffered: TLS takes the socket over. */
  detach(): Buffer {
    this.#sock.pause();
    this.#sock.removeListener("data", this.#onData);
    this.#sock.removeListener("end", this.#onEnd);
    this.#sock.removeListener("close", this.#onEnd);
    this.#sock.removeListener("error", this.#onEnd);
    const rest = Buffer.concat(this.#chunks);
    this.discard();
    return rest;
  }

  /** True when input is waiting beyond what has been read. */
  get pending(): boolean {
    return this.#size > 0;
  }

  /** Throws away everything buffered (after STARTTLS, say). */
  discard(): void {
    this.#chunks = [];
    this.#size = 0;
  }

  /** Joins the buffer into one chunk. */
  #flat(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** Removes n bytes from the front of the buffer. */
  #consume(n: number): Buffer {
    const b = this.#flat();
    const out = b.subarray(0, n);
    this.#chunks = n < b.length ? [b.subarray(n)] : [];
    this.#size -= n;
    if (this.#size < HIGH_WATER / 2 && !this.#closed) this.#sock.resume();
    return out;
  }

  /** Waits for more input; false on timeout or close. */
  async #more(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    this.#sock.resume();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timedOut = true;
        this.#wake = null;
        resolve(false);
      }, timeoutMs);
      this.#wake = () => {
        clearTimeout(t);
        this.#wake = null;
        resolve(true);
      };
    });
  }

  /** The next line (cut at `limit` bytes), or null on timeout/close with nothing buffered. */
  async line(limit: number, timeoutMs: number): Promise<Line | null> {
    let head: Buffer | null = null;
    for (;;) {
      const b = this.#flat();
      const nl = b.indexOf(0x0a);
      if (nl >= 0) {
        const raw = this.#consume(nl + 1);
        const crlf = nl > 0 && raw[nl - 1] === 0x0d;
        const text = raw.subarray(0, crlf ? nl - 1 : nl);
        if (head !== null) return { text: head, end: crlf ? "crlf" : "lf", cut: true };
        return {
          text: text.length > limit ? text.subarray(0, limit) : text,
          end: crlf ? "crlf" : "lf",
          cut: text.length > limit,
        };
      }
      if (b.length > limit + 1) {
        head ??= Buffer.from(b.subarray(0, limit));
        this.#consume(b.length - 1);
      }
      if (!(await this.#more(timeoutMs))) {
        if (this.#size === 0 && head === null) return null;
        const rest = this.#consume(this.#size);
        return {
          text: head ?? rest.subarray(0, limit),
          end: "none",
          cut: head !== null || rest.length > limit,
        };
      }
    }
  }

  /** Exactly n bytes, or null on timeout/close first. Calls sink per piece to keep memory flat. */
  async bytes(n: number, timeoutMs: number, sink: (piece: Buffer) => Promise<void>): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.#size === 0 && !(await this.#more(timeoutMs))) return false;
      const take = Math.min(left, this.#size);
      if (take > 0) {
        await sink(Buffer.from(this.#consume(take)));
        left -= take;
      }
    }
    return true;
  }
}
