/*
 * attr-server - the server side of one internal-protocol connection
 *
 * SYNOPSIS
 *   import { serveAttrConnection } from "../util/attr-server.js";
 *   const conn = serveAttrConnection(socket, {
 *     protocol: "rewrite", maxFrame: 65536, idleTimeoutMs: 100_000,
 *     handler: async (req) => attrList({ status: "ok", ... }),
 *   });
 *   const end = await conn.done; // { requests, reason, detail }; never rejects
 *
 * DESCRIPTION
 *   The server speaks first: a hello frame { protocol: <name> }. Then it
 *   reads requests one at a time, in order, calls the handler, and writes
 *   its reply. While a request is handled (and while a reply waits for the
 *   peer to read it) the socket is paused, so the server does not read
 *   ahead; requests that arrived together in one read are queued, at most
 *   maxPipeline of them.
 *
 *   Bad peer input ends the connection: a malformed or oversized frame, too
 *   many pipelined requests, or a frame that is not complete within
 *   frameTimeoutMs of its first byte. The server then writes an error frame
 *   { status: "error", reason } and closes (the socket is destroyed after
 *   lingerMs if the peer does not read). An idle connection (no request for
 *   idleTimeoutMs) is closed without an error frame, because a client that
 *   sends a request at that moment would take the frame for its reply; the
 *   client sees a dropped idle connection and reconnects.
 *
 *   A handler that throws or rejects, returns something that is not an
 *   AttrList, or returns a reply larger than maxFrame gets the error reply
 *   { status: "error", reason } (a temporary failure) and the connection
 *   STAYS OPEN: the stream is still in sync. The reply status "error" is
 *   reserved for this layer; services use other status values.
 *
 *   Nothing here throws on peer input or leaves a rejected promise behind.
 */

import type net from "node:net";
import { type AttrList, encodeFrame, FrameDecoder, attrList, checkMaxFrame } from "./attr-codec.js";
import { msg } from "./msg.js";

/** How a server connection is configured. */
export interface AttrServerOptions {
  protocol: string;
  maxFrame: number;
  idleTimeoutMs: number;
  handler: (req: AttrList) => Promise<AttrList>;
  /** Time a frame may take to arrive once its first byte is in; default idleTimeoutMs. */
  frameTimeoutMs?: number;
  /** Queued requests allowed beyond the one being handled; default 16. */
  maxPipeline?: number;
  /** How long to wait for an error frame to be read before destroying; default 1000 ms. */
  lingerMs?: number;
}

/** Why a connection ended. */
export type AttrEndReason =
  "eof" | "idle" | "slow" | "malformed" | "toobig" | "pipeline" | "error" | "closed";

/** Reported by `done` when a connection has ended. */
export interface AttrConnEnd {
  requests: number;
  reason: AttrEndReason;
  detail: string;
}

/** The caller's handle on one served connection. */
export interface AttrConnection {
  /** Resolves once the socket is closed; never rejects. */
  readonly done: Promise<AttrConnEnd>;
  /** Ends the connection now (reason "closed"). */
  close(): void;
}

/** The reserved error reply of this layer. */
export function attrErrorReply(reason: string): AttrList {
  return attrList({ status: "error", reason });
}

/** The encoded error reply, shortened to fit maxFrame; null if not even { status: "error" } fits. */
function errorFrame(reason: string, maxFrame: number): Buffer | null {
  for (const attrs of [attrErrorReply(reason.slice(0, 200)), attrList({ status: "error" })]) {
    try {
      return encodeFrame(attrs, maxFrame);
    } catch {
      /* try the shorter one */
    }
  }
  return null;
}

/** Serves one connection; see the header for the protocol. */
export function serveAttrConnection(socket: net.Socket, opts: AttrServerOptions): AttrConnection {
  const conn = new ServerConn(socket, opts);
  return { done: conn.done, close: () => conn.close() };
}

type TimerKind = "idle" | "frame" | "drain";

/** State of one served connection. */
class ServerConn {
  readonly done: Promise<AttrConnEnd>;
  #socket: net.Socket;
  #opts: Required<AttrServerOptions>;
  #decoder: FrameDecoder;
  #queue: AttrList[] = [];
  #busy = false;
  #requests = 0;
  #end: { reason: AttrEndReason; detail: string } | null = null;
  #timer: NodeJS.Timeout | null = null;
  #timerKind: TimerKind | null = null;
  #resolve: (end: AttrConnEnd) => void = () => undefined;
  #settled = false;

  /** Checks the options (a bad one is a local bug: throws), wires the socket, sends the hello. */
  constructor(socket: net.Socket, opts: AttrServerOptions) {
    checkMaxFrame(opts.maxFrame);
    this.#opts = {
      frameTimeoutMs: opts.idleTimeoutMs,
      maxPipeline: 16,
      lingerMs: 1000,
      ...opts,
    };
    const hello = encodeFrame({ protocol: opts.protocol }, opts.maxFrame);
    this.#socket = socket;
    this.#decoder = new FrameDecoder({ maxFrame: opts.maxFrame });
    this.done = new Promise((resolve) => (this.#resolve = resolve));
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (err: Error) => this.#setEnd("error", err.message));
    socket.on("close", () => this.#onClose());
    if (socket.destroyed) {
      this.#onClose();
      return;
    }
    socket.write(hello);
    this.#armReadTimer();
  }

  /** Ends the connection at the owner's request. */
  close(): void {
    this.#setEnd("closed", "closed by server");
    this.#socket.destroy();
  }

  /** Records why the connection ends; the first reason wins. */
  #setEnd(reason: AttrEndReason, detail: string): void {
    if (this.#end === null) this.#end = { reason, detail };
  }

  /** Settles `done` once the socket is gone. */
  #onClose(): void {
    this.#setEnd("eof", "connection closed by peer"); // also stops a handler in progress from going on
    this.#clearTimer();
    this.#queue = [];
    if (this.#settled || this.#end === null) return;
    this.#settled = true;
    this.#resolve({ requests: this.#requests, ...this.#end });
  }

  /** Feeds the decoder; queues complete requests; fails on bad input. */
  #onData(chunk: Buffer): void {
    if (this.#end !== null) return; // failed or closing: discard
    const r = this.#decoder.push(chunk);
    if (!r.ok) {
      return this.#fail(r.code === "EFRAMETOOBIG" ? "toobig" : "malformed", r.reason);
    }
    this.#queue.push(...r.frames);
    if (this.#queue.length > this.#opts.maxPipeline + (this.#busy ? 0 : 1)) {
      return this.#fail("pipeline", `more than ${this.#opts.maxPipeline} pipelined requests`);
    }
    this.#pump();
  }

  /** Starts the next queued request, or goes back to reading. */
  #pump(): void {
    if (this.#busy || this.#end !== null) return;
    const req = this.#queue.shift();
    if (req === undefined) {
      this.#socket.resume();
      return this.#armReadTimer();
    }
    this.#busy = true;
    this.#socket.pause();
    this.#clearTimer();
    this.#handle(req).then(
      () => this.#afterReply(),
      (err: unknown) => this.#fail("error", `internal error: ${String(err)}`),
    );
  }

  /** Calls the handler and writes its reply (or the error reply); resolves when the peer may send more. */
  async #handle(req: AttrList): Promise<void> {
    this.#requests++;
    const frame = await this.#replyFrame(req);
    if (this.#end !== null || !this.#socket.writable) return;
    if (this.#socket.write(frame)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#clearTimer();
        this.#socket.off("drain", done).off("close", done);
        resolve();
      };
      this.#socket.on("drain", done).on("close", done);
      this.#setTimer("drain", this.#opts.idleTimeoutMs);
    });
  }

  /** The encoded reply to one request; handler failures become the error reply. */
  async #replyFrame(req: AttrList): Promise<Buffer> {
    const { protocol, maxFrame } = this.#opts;
    let reply: unknown;
    try {
      reply = await this.#opts.handler(req);
    } catch (err) {
      msg.warn(
        `${protocol} server: request handler failed: ${err instanceof Error ? err.message : String(err)}`,
      );
      return this.#errorReply("temporary failure: request handler failed");
    }
    if (!(reply instanceof Map)) {
      msg.warn(`${protocol} server: request handler returned no attribute list`);
      return this.#errorReply("temporary failure: bad reply");
    }
    try {
      return encodeFrame(reply as AttrList, maxFrame);
    } catch (err) {
      msg.warn(`${protocol} server: cannot send reply: ${err instanceof Error ? err.message : String(err)}`);
      return this.#errorReply("temporary failure: reply cannot be sent");
    }
  }

  /** The error reply as a frame; throws (ending the connection) if maxFrame cannot hold it. */
  #errorReply(reason: string): Buffer {
    const frame = errorFrame(reason, this.#opts.maxFrame);
    if (frame === null) throw new Error(`maxFrame ${this.#opts.maxFrame} cannot hold an error reply`);
    return frame;
  }

  /** Marks the request done and moves on. */
  #afterReply(): void {
    this.#busy = false;
    this.#pump();
  }

  /** Arms the idle timer, or the frame timer while a frame is partly in. */
  #armReadTimer(): void {
    if (this.#end !== null || this.#busy) return;
    if (!this.#decoder.inFrame) return this.#setTimer("idle", this.#opts.idleTimeoutMs);
    if (this.#timerKind !== "frame") this.#setTimer("frame", this.#opts.frameTimeoutMs);
  }

  /** (Re)starts the one timer of this connection. */
  #setTimer(kind: TimerKind, ms: number): void {
    this.#clearTimer();
    this.#timerKind = kind;
    this.#timer = setTimeout(() => this.#onTimer(kind), ms);
  }

  /** Stops the timer. */
  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerKind = null;
  }

  /** Handles an expired timer. */
  #onTimer(kind: TimerKind): void {
    this.#timer = null;
    this.#timerKind = null;
    if (kind === "frame") return this.#fail("slow", "timeout while receiving a request");
    this.#setEnd(
      kind === "idle" ? "idle" : "slow",
      kind === "idle" ? "idle timeout" : "peer does not read replies",
    );
    this.#socket.destroy();
  }

  /** Bad peer input: logs it, writes an error frame if possible, closes. */
  #fail(reason: AttrEndReason, detail: string): void {
    if (this.#end !== null) return;
    this.#setEnd(reason, detail);
    this.#queue = [];
    this.#clearTimer();
    msg.warn(`${this.#opts.protocol} server: ${detail}; closing connection`);
    const socket = this.#socket;
    socket.resume(); // read and discard until closed, so the peer is not stuck writing
    const frame = errorFrame(detail, this.#opts.maxFrame);
    if (!socket.writable || frame === null) return void socket.destroy();
    socket.end(frame);
    const linger = setTimeout(
      () => socket.destroy(),
      Math.min(this.#opts.lingerMs, this.#opts.idleTimeoutMs),
    );
    socket.once("close", () => clearTimeout(linger));
  }
}
