/*
 * attr-client - the client side of the internal protocol
 *
 * SYNOPSIS
 *   import { AttrClient } from "../util/attr-client.js";
 *   const client = new AttrClient({ path: "private/rewrite", protocol: "rewrite",
 *     maxFrame: 65536, timeoutMs: 10_000, retries: 2, backoffMs: 100 });
 *   const r = await client.request({ rule: "local", address: "u@example" });
 *   if (r.ok) use(r.reply); else defer(r.code, r.reason); // always temporary
 *   client.close();
 *
 * DESCRIPTION
 *   One AttrClient keeps one Unix-domain stream connection to a service and
 *   reuses it. On connect it checks that the server's hello names the
 *   expected protocol. Concurrent request() calls are queued and sent one at
 *   a time, so replies pair with requests by order.
 *
 *   Errors are results, never throws: { ok: false, temporary: true, code,
 *   reason }. Codes: ECONNECT (cannot connect), EPROTOCOL (wrong hello or an
 *   unsolicited frame), ETIMEDOUT (no hello or no reply within timeoutMs),
 *   EDROPPED (connection lost before the reply), ESERVER (the server's
 *   reserved error reply { status: "error", reason }), EFRAMETOOBIG /
 *   EMALFORMED / EDUPATTR / ETOOMANYATTRS (bad reply frame), EBADREQUEST
 *   (the request cannot be encoded), ECLOSED (close() was called).
 *
 *   A failed connect, a missing hello, or a connection dropped before the
 *   reply (for instance a server that closed an idle connection, or one that
 *   restarted) is retried on a new connection, up to `retries` more times,
 *   waiting backoffMs, 2*backoffMs, 4*backoffMs ... (at most maxBackoffMs)
 *   between attempts. Like Postfix's attr_clnt, this means a request whose
 *   connection dropped after the server acted may be sent twice: service
 *   requests must tolerate that. A timeout is not retried (the server may be
 *   busy; the connection is closed because a late reply would be taken for
 *   the next request's), nor is a bad or error reply.
 *
 *   While idle, the connection does not keep the process alive (unref).
 */

import net from "node:net";
import {
  type AttrInput,
  type AttrList,
  type FrameFailureCode,
  AttrCodecError,
  FrameDecoder,
  attrString,
  encodeFrame,
} from "./attr-codec.js";

/** How a client is configured. */
export interface AttrClientOptions {
  path: string;
  protocol: string;
  maxFrame: number;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  /** Upper bound of one backoff wait; default 16 * backoffMs. */
  maxBackoffMs?: number;
}

/** Stable codes of client failures. */
export type AttrClientCode =
  | "ECONNECT"
  | "EPROTOCOL"
  | "ETIMEDOUT"
  | "EDROPPED"
  | "ESERVER"
  | "EBADREQUEST"
  | "ECLOSED"
  | FrameFailureCode;

/** The failure side of a request. */
export type AttrClientFailure = { ok: false; temporary: true; code: AttrClientCode; reason: string };
/** What request() resolves to. */
export type AttrClientResult = { ok: true; reply: AttrList } | AttrClientFailure;

/** One attempt's outcome: a result, and for failures whether another attempt may help. */
type Attempt = { ok: true; reply: AttrList } | (AttrClientFailure & { retry: boolean });

/** What a channel delivers to the one waiting reader. */
type ChanEvent =
  | { kind: "frame"; attrs: AttrList }
  | { kind: "fail"; code: FrameFailureCode | "EPROTOCOL"; reason: string }
  | { kind: "closed"; reason: string }
  | { kind: "timeout" };

/** A failure result (helper). */
function failed(code: AttrClientCode, reason: string, retry = false): AttrClientFailure & { retry: boolean } {
  return { ok: false, temporary: true, code, reason, retry };
}

/** One connection: a socket, its decoder, and at most one waiting reader. */
class Channel {
  #socket: net.Socket;
  #decoder: FrameDecoder;
  #waiter: ((e: ChanEvent) => void) | null = null;
  #end: ChanEvent | null = null;

  /** Connects to path; connect errors arrive as a "closed" event. */
  constructor(path: string, maxFrame: number) {
    this.#decoder = new FrameDecoder({ maxFrame });
    this.#socket = net.createConnection({ path });
    this.#socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on("error", (err: Error) => this.#die({ kind: "closed", reason: err.message }));
    this.#socket.on("close", () => this.#die({ kind: "closed", reason: "connection closed by server" }));
  }

  /** True until the connection failed or closed. */
  get alive(): boolean {
    return this.#end === null;
  }

  /** Hands decoded frames to the waiting reader; anything unasked-for kills the channel. */
  #onData(chunk: Buffer): void {
    const r = this.#decoder.push(chunk);
    if (!r.ok) return this.#die({ kind: "fail", code: r.code, reason: r.reason });
    for (const attrs of r.frames) {
      const waiter = this.#waiter;
      if (waiter === null) return this.#die({ kind: "fail", code: "EPROTOCOL", reason: "unsolicited frame" });
      this.#waiter = null;
      waiter({ kind: "frame", attrs });
    }
  }

  /** Ends the channel with its final event (the first one wins). */
  #die(event: ChanEvent): void {
    if (this.#end !== null) return;
    this.#end = event;
    this.#socket.destroy();
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.(event);
  }

  /** Waits for the next frame, the end of the channel, or timeoutMs. */
  next(timeoutMs: number): Promise<ChanEvent> {
    if (this.#end !== null) return Promise.resolve(this.#end);
    this.#socket.ref();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        resolve({ kind: "timeout" });
      }, timeoutMs);
      this.#waiter = (e) => {
        clearTimeout(timer);
        if (this.#end === null) this.#socket.unref();
        resolve(e);
      };
    });
  }

  /** Queues bytes for the server. */
  send(frame: Buffer): void {
    if (this.#end === null) this.#socket.write(frame);
  }

  /** Closes the channel. */
  destroy(reason: string): void {
    this.#die({ kind: "closed", reason });
  }
}

/** A reusable, self-healing connection to one service. */
export class AttrClient {
  #opts: Required<AttrClientOptions>;
  #channel: Channel | null = null;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  #wakers = new Set<() => void>();

  /** Checks the options (a bad one is a local bug: throws RangeError); connects lazily. */
  constructor(opts: AttrClientOptions) {
    for (const k of ["maxFrame", "timeoutMs", "retries", "backoffMs"] as const) {
      if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) throw new RangeError(`bad ${k}: ${opts[k]}`);
    }
    this.#opts = { maxBackoffMs: opts.backoffMs * 16, ...opts };
  }

  /** Sends one request when the ones before it are done; resolves to the reply or a failure. */
  request(attrs: AttrList | AttrInput): Promise<AttrClientResult> {
    let frame: Buffer;
    try {
      frame = encodeFrame(attrs, this.#opts.maxFrame);
    } catch (err) {
      const code = err instanceof AttrCodecError && err.code === "EFRAMETOOBIG" ? err.code : "EBADREQUEST";
      return Promise.resolve(strip(failed(code, err instanceof Error ? err.message : String(err))));
    }
    const run = this.#tail
      .then(() => this.#run(frame))
      .catch((err: unknown) => strip(failed("EDROPPED", String(err))));
    this.#tail = run;
    return run;
  }

  /** Closes the connection; queued and future requests fail with ECLOSED. */
  close(): void {
    this.#closed = true;
    this.#channel?.destroy("client closed");
    this.#channel = null;
    for (const wake of this.#wakers) wake();
  }

  /** Runs the attempts of one request. */
  async #run(frame: Buffer): Promise<AttrClientResult> {
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) return strip(failed("ECLOSED", "client closed"));
      const r = await this.#attempt(frame);
      if (this.#closed && !r.ok) return strip(failed("ECLOSED", "client closed"));
      if (r.ok || !r.retry || attempt >= this.#opts.retries) return strip(r);
      await this.#sleep(Math.min(this.#opts.backoffMs * 2 ** attempt, this.#opts.maxBackoffMs));
    }
  }

  /** One attempt: (re)connect if needed, send, wait for the reply. */
  async #attempt(frame: Buffer): Promise<Attempt> {
    let ch = this.#channel;
    if (ch === null || !ch.alive) {
      const opened = await this.#open();
      if (!opened.ok) return opened;
      ch = opened.channel;
    }
    ch.send(frame);
    const ev = await ch.next(this.#opts.timeoutMs);
    if (ev.kind === "frame") return this.#checkReply(ev.attrs);
    this.#drop(ch, "request failed");
    if (ev.kind === "timeout") return failed("ETIMEDOUT", `no reply within ${this.#opts.timeoutMs} ms`);
    if (ev.kind === "closed") return failed("EDROPPED", ev.reason, true);
    return failed(ev.code, `bad reply: ${ev.reason}`);
  }

  /** Maps the reserved error reply to ESERVER. */
  #checkReply(reply: AttrList): Attempt {
    if (attrString(reply, "status") !== "error") return { ok: true, reply };
    return failed("ESERVER", attrString(reply, "reason") ?? "server error");
  }

  /** Connects and checks the hello. */
  async #open(): Promise<{ ok: true; channel: Channel } | (AttrClientFailure & { retry: boolean })> {
    const { path, protocol, maxFrame, timeoutMs } = this.#opts;
    const ch = new Channel(path, maxFrame);
    this.#channel = ch;
    const ev = await ch.next(timeoutMs);
    if (ev.kind === "frame" && attrString(ev.attrs, "protocol") === protocol)
      return { ok: true, channel: ch };
    this.#drop(ch, "connect failed");
    if (ev.kind === "frame") return failed("EPROTOCOL", `${path}: server is not a ${protocol} service`);
    if (ev.kind === "timeout") return failed("ETIMEDOUT", `${path}: no hello within ${timeoutMs} ms`, true);
    if (ev.kind === "closed") return failed("ECONNECT", `${path}: ${ev.reason}`, true);
    return failed(ev.code, `${path}: bad hello: ${ev.reason}`);
  }

  /** Closes a channel and forgets it if it is the current one. */
  #drop(ch: Channel, reason: string): void {
    ch.destroy(reason);
    if (this.#channel === ch) this.#channel = null;
  }

  /** Waits ms, or less if close() is called. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }
}

/** Drops the internal retry flag from a result. */
function strip(r: Attempt): AttrClientResult {
  if (r.ok) return r;
  return { ok: false, temporary: true, code: r.code, reason: r.reason };
}
