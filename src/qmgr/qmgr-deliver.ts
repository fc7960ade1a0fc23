/*
 * qmgr-deliver - delivery requests to an agent, and their answers
 *
 * SYNOPSIS
 *   const out = await deliverOnce(queueDir, "smtp", request, timeLimitMs);
 *
 * DESCRIPTION
 *   Connects to private/<transport> (master hands the connection to an
 *   agent), checks the agent's greeting, sends the request, and waits, up to
 *   the transport's time limit, for the answer. A request is never sent
 *   twice: a lost connection or a timeout is an outcome ("unknown mail
 *   transport error"), not a reason to retry, because the agent may have
 *   delivered already. No agent listening is a transport failure.
 *
 *   An agent serves several requests on one connection, one at a time
 *   (master/agent-server.ts), so a connection whose request was answered
 *   goes back to a small pool and carries the next request for the same
 *   transport: no new connection, no handoff through master, and the
 *   agent's max_use (which counts connections) is not used up by every
 *   delivery. A pooled connection carries at most REUSE_MAX requests, for
 *   at most AGE_MAX_MS, and is closed after IDLE_MS without one, so agent
 *   processes are still replaced, and one that master retires (after a
 *   reload, say) gets no new request a few seconds later. A connection
 *   that failed in any way is closed.
 */
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { FrameDecoder, attrString, encodeFrame, type AttrList } from "../util/attr-codec.js";
import {
  DELIVER_FRAME_MAX,
  DELIVER_PROTOCOL,
  encodeRequest,
  parseReply,
  type DeliveryReply,
  type DeliveryRequest,
} from "../global/deliver-proto.js";

export type DeliverOutcome =
  | { kind: "reply"; reply: DeliveryReply }
  | { kind: "transport-down"; reason: string }
  | { kind: "lost"; reason: string };

const REUSE_MAX = 100;
const IDLE_MS = 2000;
const AGE_MAX_MS = 5000;
const POOL_MAX = 64;

type Waiter = (r: { frame: AttrList } | { failure: string; code?: string }) => void;

/** One connection to an agent process. */
class AgentConn {
  readonly key: string;
  uses = 0;
  #born = Date.now();
  #sock: Socket;
  #dec = new FrameDecoder({ maxFrame: DELIVER_FRAME_MAX });
  #waiter: Waiter | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #onGone: (c: AgentConn) => void;

  constructor(key: string, path: string, onGone: (c: AgentConn) => void) {
    this.key = key;
    this.#onGone = onGone;
    this.#sock = connect({ path });
    this.#sock.on("error", (err: NodeJS.ErrnoException) => this.#fail(err.message, err.code));
    this.#sock.on("close", () => this.#fail("agent went away"));
    this.#sock.on("data", (chunk: Buffer) => {
      const r = this.#dec.push(chunk);
      if (!r.ok) return this.#fail(r.reason);
      for (const frame of r.frames) {
        const w = this.#waiter;
        if (w === null) return this.#fail("unexpected data from the agent");
        this.#waiter = null;
        w({ frame });
      }
    });
  }

  /** True while the socket can carry a request. */
  get usable(): boolean {
    return (
      !this.#sock.destroyed &&
      this.#waiter === null &&
      this.uses < REUSE_MAX &&
      Date.now() - this.#born < AGE_MAX_MS
    );
  }

  /** Ends a pending wait with a failure and closes the connection. */
  #fail(reason: string, code?: string): void {
    const w = this.#waiter;
    this.#waiter = null;
    this.destroy();
    if (w !== null) w(code === undefined ? { failure: reason } : { failure: reason, code });
  }

  /** Waits for the next frame, up to a time limit. */
  next(timeoutMs: number): Promise<{ frame: AttrList } | { failure: string; code?: string }> {
    return new Promise((resolve) => {
      if (this.#sock.destroyed) return resolve({ failure: "agent went away" });
      const timer = setTimeout(() => this.#fail("timeout waiting for the delivery agent"), timeoutMs);
      this.#waiter = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
    });
  }

  /** Sends a request frame. */
  send(req: DeliveryRequest): void {
    this.uses++;
    this.#sock.write(encodeFrame(encodeRequest(req), DELIVER_FRAME_MAX));
  }

  /** Starts or stops the idle timer of a pooled connection. */
  idle(on: boolean): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = on ? setTimeout(() => this.destroy(), IDLE_MS) : null;
    this.#idleTimer?.unref();
  }

  /** Closes the connection and leaves the pool. */
  destroy(): void {
    this.idle(false);
    if (!this.#sock.destroyed) this.#sock.destroy();
    this.#onGone(this);
  }
}

/** Idle agent connections per queue directory and transport. */
class AgentPool {
  #idle = new Map<string, AgentConn[]>();
  #count = 0;

  /** An idle connection for a key, or null. */
  take(key: string): AgentConn | null {
    const list = this.#idle.get(key);
    for (let c = list?.pop(); c !== undefined; c = list?.pop()) {
      this.#count--;
      c.idle(false);
      if (c.usable) return c;
      c.destroy();
    }
    return null;
  }

  /** Keeps a connection for the next request, or closes it. */
  put(c: AgentConn): void {
    if (!c.usable || this.#count >= POOL_MAX) return c.destroy();
    const list = this.#idle.get(c.key) ?? [];
    list.push(c);
    this.#idle.set(c.key, list);
    this.#count++;
    c.idle(true);
  }

  /** Forgets a connection that closed. */
  gone(c: AgentConn): void {
    const list = this.#idle.get(c.key);
    const i = list?.indexOf(c) ?? -1;
    if (list !== undefined && i >= 0) {
      list.splice(i, 1);
      this.#count--;
    }
  }
}

const pool = new AgentPool();

/** Opens a connection and checks the greeting; the connection, or the outcome for the request. */
async function open(key: string, path: string, timeoutMs: number): Promise<AgentConn | DeliverOutcome> {
  const c = new AgentConn(key, path, (x) => pool.gone(x));
  const hello = await c.next(timeoutMs);
  if ("failure" in hello)
    return hello.code === "ENOENT" || hello.code === "ECONNREFUSED"
      ? { kind: "transport-down", reason: `mail transport unavailable (${hello.code})` }
      : { kind: "lost", reason: `unknown mail transport error (${hello.failure})` };
  if (attrString(hello.frame, "protocol") !== DELIVER_PROTOCOL) {
    c.destroy();
    return { kind: "transport-down", reason: "delivery agent speaks another protocol" };
  }
  return c;
}

/** Sends one request (on a pooled connection when there is one) and waits for its reply. */
export async function deliverOnce(
  queueDir: string,
  transport: string,
  req: DeliveryRequest,
  timeoutMs: number,
): Promise<DeliverOutcome> {
  const key = `${queueDir}\0${transport}`;
  let c = pool.take(key);
  if (c === null) {
    const o = await open(key, join(queueDir, "private", transport), timeoutMs);
    if (!(o instanceof AgentConn)) return o;
    c = o;
  }
  const answer = c.next(timeoutMs);
  c.send(req);
  const a = await answer;
  if ("failure" in a) return { kind: "lost", reason: `unknown mail transport error (${a.failure})` };
  const out = reply(a.frame, req.recipients.length);
  if (out.kind === "reply") pool.put(c);
  else c.destroy();
  return out;
}

/** Turns the agent's answer into an outcome. */
function reply(f: AttrList, count: number): DeliverOutcome {
  if (attrString(f, "status") === "error")
    return {
      kind: "lost",
      reason: `unknown mail transport error (${attrString(f, "reason") ?? "agent error"})`,
    };
  const r = parseReply(f, count);
  return typeof r === "string"
    ? { kind: "lost", reason: `unknown mail transport error (${r})` }
    : { kind: "reply", reply: r };
}
