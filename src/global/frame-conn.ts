/*
 * frame-conn - a framed conversation on one Unix-socket connection
 *
 * SYNOPSIS
 *   const c = await FrameConn.connect(path, { maxFrame, timeoutMs });  // or an error text
 *   await c.send({ request: "list" }); const f = await c.next();      // AttrList or error text
 *   c.close();
 *
 * DESCRIPTION
 *   The showq and flush services talk in several turns (hello with a
 *   nonce, request, then one reply or a stream of items), which the
 *   one-request-one-reply attr-server does not model. FrameConn wraps a
 *   socket with the attr-codec framing: next() returns the next frame, or
 *   a text saying why there is none (closed, timed out, malformed frame);
 *   send() writes a frame and waits while the socket is congested, so a
 *   server streaming a long listing holds at most a frame or two. Both
 *   sides use it; nothing here throws on peer input.
 */
import { connect, type Socket } from "node:net";
import { FrameDecoder, encodeFrame, type AttrInput, type AttrList } from "../util/attr-codec.js";
import { Wakeup } from "../util/wakeup.js";

export interface FrameConnOptions {
  maxFrame: number;
  /** How long next() waits for a frame. */
  timeoutMs: number;
}

export class FrameConn {
  readonly #sock: Socket;
  readonly #opts: FrameConnOptions;
  #dec: FrameDecoder;
  #frames: AttrList[] = [];
  #failure: string | null = null;
  readonly #wakeup = new Wakeup();

  constructor(sock: Socket, opts: FrameConnOptions) {
    this.#sock = sock;
    this.#opts = opts;
    this.#dec = new FrameDecoder({ maxFrame: opts.maxFrame });
    sock.on("data", (chunk: Buffer) => {
      const r = this.#dec.push(chunk);
      if (r.ok) this.#frames.push(...r.frames);
      else this.#fail(`malformed frame: ${r.reason}`);
      if (this.#frames.length > 64) sock.pause();
      this.#wakeup.notify();
    });
    sock.on("end", () => this.#fail("connection closed by peer"));
    sock.on("close", () => this.#fail("connection closed"));
    sock.on("error", (err) => this.#fail(err.message));
  }

  /** Connects to a Unix socket; the connection or an error text. */
  static connect(path: string, opts: FrameConnOptions): Promise<FrameConn | string> {
    return new Promise((resolve) => {
      const sock = connect({ path });
      const timer = setTimeout(() => {
        sock.destroy();
        resolve(`connect to ${path}: timed out`);
      }, opts.timeoutMs);
      sock.once("error", (err) => {
        clearTimeout(timer);
        resolve(`connect to ${path}: ${err.message}`);
      });
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.removeAllListeners("error");
        resolve(new FrameConn(sock, opts));
      });
    });
  }

  /** Records the first failure and wakes a waiting reader. */
  #fail(why: string): void {
    this.#failure ??= why;
    this.#wakeup.notify();
  }

  /** The next frame, or the reason there is none. */
  async next(): Promise<AttrList | string> {
    const deadline = Date.now() + this.#opts.timeoutMs;
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) {
        if (this.#frames.length < 16 && this.#sock.isPaused()) this.#sock.resume();
        return f;
      }
      if (this.#failure !== null) return this.#failure;
      const left = deadline - Date.now();
      if (left <= 0) return "timed out";
      await this.#wakeup.wait(left);
    }
  }

  /** Sends one frame, waiting while the socket is congested; false when the peer is gone. */
  async send(attrs: AttrInput | AttrList): Promise<boolean> {
    if (this.#sock.destroyed || this.#failure !== null) return false;
    if (this.#sock.write(encodeFrame(attrs, this.#opts.maxFrame))) return true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean): void => {
        this.#sock.off("drain", onDrain);
        this.#sock.off("close", onClose);
        resolve(ok);
      };
      const onDrain = (): void => done(true);
      const onClose = (): void => done(false);
      this.#sock.on("drain", onDrain);
      this.#sock.on("close", onClose);
    });
  }

  /** Ends the conversation (after what was sent is written). */
  close(): void {
    if (!this.#sock.destroyed) this.#sock.end();
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.#sock.destroy();
  }
}
