/*
 * cleanup-session - one client's message, from first frame to durable file
 *
 * DESCRIPTION
 *   The session creates the queue file (and so the queue ID) as soon as the
 *   client connects and greets it with the ID. It then takes the frames of
 *   cleanup-proto.ts in order, pausing the socket while a frame's work
 *   (a file write) is in progress, so memory stays bounded whatever the
 *   client sends. The envelope goes to the file as it arrives, the content
 *   through CleanupMessage. At "end" the file is completed and made durable
 *   and only then does the client hear "ok"; on any failure, or when the
 *   client goes away first, the file is removed. A protocol violation ends
 *   the session with a temporary failure.
 */
import type { Socket } from "node:net";
import { FrameDecoder, encodeFrame, type AttrInput, type AttrList } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import {
  AttrFrame,
  CLEANUP_FLAG,
  CLEANUP_FRAME_MAX,
  CLEANUP_PROTOCOL,
  CleanupFrame,
  DataFrame,
  FlagsFrame,
  RcptFrame,
  SenderFrame,
} from "../global/cleanup-proto.js";
import { QueueFileWriter, type Recipient } from "../global/queue-file.js";
import type { QueuePaths } from "../global/queue-path.js";
import { CleanupMessage, type Stop } from "./cleanup-message.js";
import { missingHeaders } from "./cleanup-headers.js";
import { LineSplitter } from "./cleanup-lines.js";

export interface CleanupEnv {
  cfg: Config;
  paths: QueuePaths;
  /** Called after a file is published to incoming/. */
  published: (id: string) => void;
}

type Phase = "envelope" | "content" | "done";

class Session {
  #env: CleanupEnv;
  #w: QueueFileWriter;
  #flags = 0;
  #sender: string | null = null;
  #rcpts: Recipient[] = [];
  #seenRcpt = new Set<string>();
  #attrs = new Map<string, string>();
  #phase: Phase = "envelope";
  #msg: CleanupMessage | null = null;
  #lines: LineSplitter;

  constructor(env: CleanupEnv, w: QueueFileWriter) {
    this.#env = env;
    this.#w = w;
    this.#lines = new LineSplitter(env.cfg.int("line_length_limit"));
  }

  /** Handles one frame; returns a reply to send and end with, or null to go on. */
  async frame(f: AttrList): Promise<AttrInput | null> {
    const t = CleanupFrame.parse(f);
    if (!t.ok) return this.#violation(t.error);
    switch (t.value.t) {
      case "flags": {
        const v = FlagsFrame.parse(f);
        if (!v.ok) return this.#violation(v.error);
        this.#flags = v.value.flags;
        return null;
      }
      case "attr": {
        const v = AttrFrame.parse(f);
        if (!v.ok || this.#phase !== "envelope")
          return this.#violation(v.ok ? "attribute after content" : v.error);
        this.#attrs.set(v.value.name, v.value.value);
        return null;
      }
      case "sender":
        return this.#onSender(f);
      case "rcpt":
        return this.#onRcpt(f);
      case "data":
        return this.#onData(f);
      case "end":
        return this.#finish();
    }
  }

  /** A protocol error: the message is abandoned. */
  #violation(why: string): AttrInput {
    msg.warn(`${this.#w.id}: protocol error from client: ${why}`);
    this.#phase = "done";
    return { status: "tempfail", reason: "4.3.0 protocol error talking to cleanup" };
  }

  /** Records the sender (once, before recipients). */
  #onSender(f: AttrList): AttrInput | null {
    const v = SenderFrame.parse(f);
    if (!v.ok || this.#sender !== null || this.#phase !== "envelope")
      return this.#violation(v.ok ? "sender out of order" : v.error);
    this.#sender = v.value.address;
    return null;
  }

  /** Records a recipient, dropping duplicates up to duplicate_filter_limit. */
  #onRcpt(f: AttrList): AttrInput | null {
    const v = RcptFrame.parse(f);
    if (!v.ok || this.#sender === null || this.#phase !== "envelope")
      return this.#violation(v.ok ? "recipient before sender or after content" : v.error);
    const r: Recipient = { address: v.value.address };
    if (v.value.original !== undefined) r.original = v.value.original;
    if (v.value.orcpt !== undefined) r.orcpt = v.value.orcpt;
    if (v.value.notify !== undefined) r.notify = v.value.notify;
    const key = `${r.address.toLowerCase()}\0${r.original ?? ""}`;
    if (this.#seenRcpt.has(key)) return null;
    if (this.#seenRcpt.size < this.#env.cfg.int("duplicate_filter_limit")) this.#seenRcpt.add(key);
    this.#rcpts.push(r);
    return null;
  }

  /** Writes the envelope and starts the content. */
  #beginContent(): void {
    const w = this.#w;
    w.sender(this.#sender ?? "");
    for (const [k, v] of this.#attrs) w.attr(k, v);
    for (const r of this.#rcpts) w.rcpt(r);
    w.beginContent();
    this.#phase = "content";
    const cfg = this.#env.cfg;
    const local = (this.#flags & CLEANUP_FLAG.LOCAL_HEADERS) !== 0 || cfg.bool("always_add_missing_headers");
    this.#msg = new CleanupMessage(
      w,
      {
        headerSize: cfg.int("header_size_limit"),
        hopCount: cfg.int("hopcount_limit"),
        messageSize: cfg.int("message_size_limit"),
        lineLength: cfg.int("line_length_limit"),
      },
      {
        header: (h) => ({ keep: !(local && /^bcc$/i.test(h.name)) }),
        endOfHeaders: (seen) => (local ? missingHeaders(this.#headerInput(seen)) : []),
      },
    );
  }

  /** What the missing-header rules need to know. */
  #headerInput(seen: ReadonlySet<string>): Parameters<typeof missingHeaders>[0] {
    const full = this.#attrs.get("full_name");
    return {
      seen,
      sender: this.#sender ?? "",
      arrival: this.#w.arrival,
      queueId: this.#w.id,
      myhostname: this.#env.cfg.get("myhostname"),
      undisclosed: this.#env.cfg.get("undisclosed_recipients_header"),
      ...(full !== undefined ? { fullName: full } : {}),
    };
  }

  /** Streams content bytes into the message. */
  async #onData(f: AttrList): Promise<AttrInput | null> {
    const v = DataFrame.parse(f);
    if (!v.ok || this.#sender === null) return this.#violation(v.ok ? "content before sender" : v.error);
    if (this.#phase === "envelope") this.#beginContent();
    const m = this.#msg;
    if (m === null) return this.#violation("no message");
    await this.#lines.push(v.value.data, (line, complete) => m.line(line, complete));
    return null;
  }

  /** Completes the file; the reply says whether the message is queued. */
  async #finish(): Promise<AttrInput> {
    if (this.#sender === null) return this.#violation("end before sender");
    if (this.#phase === "envelope") this.#beginContent();
    const m = this.#msg;
    if (m === null) return this.#violation("no message");
    await this.#lines.end((line, complete) => m.line(line, complete));
    await m.end();
    this.#phase = "done";
    const stop: Stop | null =
      m.stop ??
      (this.#rcpts.length === 0
        ? { kind: "reject", code: "554 5.1.0", reason: "No recipients specified" }
        : null);
    if (stop !== null) {
      await this.#w.abort();
      msg.info(
        `${this.#w.id}: ${stop.kind}: ${stop.kind === "reject" ? `${stop.code} ${stop.reason}` : stop.reason}`,
      );
      return stop.kind === "reject"
        ? { status: "reject", code: stop.code, reason: stop.reason }
        : { status: "tempfail", reason: stop.reason };
    }
    await this.#w.commit();
    const mid = m.headers.find((h) => /^message-id$/i.test(h.name));
    msg.info(`${this.#w.id}: message-id=${mid ? mid.text.slice(mid.text.indexOf(":") + 1).trim() : ""}`);
    this.#env.published(this.#w.id);
    return { status: "ok", queue_id: this.#w.id };
  }

  /** Abandons the file (client gone, error). */
  async abort(): Promise<void> {
    await this.#w.abort();
  }
}

/** Serves one cleanup client on a socket. */
export async function serveCleanup(sock: Socket, env: CleanupEnv): Promise<void> {
  let w: QueueFileWriter;
  try {
    w = await QueueFileWriter.create(env.paths, env.cfg.bool("enable_long_queue_ids"));
  } catch (err) {
    msg.warn(`cannot create a queue file: ${(err as Error).message}`);
    sock.destroy();
    return;
  }
  const session = new Session(env, w);
  sock.write(encodeFrame({ protocol: CLEANUP_PROTOCOL, queue_id: w.id }, CLEANUP_FRAME_MAX));
  const reply = await readFrames(sock, session, env.cfg.time("ipc_timeout") * 1000);
  if (reply === null || sock.destroyed) {
    await session.abort();
    return;
  }
  if (reply["status"] !== "ok") await session.abort();
  sock.end(encodeFrame(reply, CLEANUP_FRAME_MAX));
}

/** Reads frames and hands them to the session one at a time; resolves with the final reply, or null when the client left. */
function readFrames(sock: Socket, session: Session, timeoutMs: number): Promise<AttrInput | null> {
  return new Promise((resolve) => {
    const dec = new FrameDecoder({ maxFrame: CLEANUP_FRAME_MAX });
    let queue: AttrList[] = [];
    let busy = false;
    let finished = false;
    const finish = (r: AttrInput | null): void => {
      if (finished) return;
      finished = true;
      sock.pause();
      resolve(r);
    };
    const work = async (): Promise<void> => {
      busy = true;
      sock.pause();
      while (queue.length > 0 && !finished) {
        const f = queue.shift() as AttrList;
        try {
          const r = await session.frame(f);
          if (r !== null) finish(r);
        } catch (err) {
          msg.warn(`cleanup: ${(err as Error).message}`);
          finish({ status: "tempfail", reason: "4.3.0 queue file write error" });
        }
      }
      busy = false;
      if (!finished) sock.resume();
    };
    sock.on("data", (chunk: Buffer) => {
      const r = dec.push(chunk);
      if (!r.ok) return finish({ status: "tempfail", reason: "4.3.0 protocol error talking to cleanup" });
      queue = queue.concat(r.frames);
      if (!busy) void work();
    });
    sock.on("close", () => finish(null));
    sock.on("error", () => finish(null));
    sock.setTimeout(timeoutMs, () => {
      msg.warn("cleanup: client timed out");
      sock.destroy();
    });
  });
}
