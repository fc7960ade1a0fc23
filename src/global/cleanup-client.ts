/*
 * cleanup-client - hand a message to the cleanup service
 *
 * SYNOPSIS
 *   const c = await CleanupClient.open(queueDir);   // or a failure
 *   if (!c.ok) ...; const s = c.client;              // s.queueId is known at once
 *   s.flags(CLEANUP_FLAG.FILTER); s.sender("a@b"); s.rcpt({ address: "c@d" });
 *   await s.data(chunk); ...; const r = await s.end();   // r.status "ok" means durable
 *
 * DESCRIPTION
 *   Speaks cleanup-proto.ts over private/cleanup (or public/cleanup, where a
 *   Postfix-style master.cf makes the service public). The message is streamed:
 *   data() waits while the socket is congested, so a client never holds
 *   more than a chunk or two in memory. Frames sent in one turn of the
 *   event loop (the envelope at the first recipient, the last content and
 *   "end") leave in one socket write. Every failure (connect, protocol,
 *   timeout, cleanup's own answer) comes back as a result; a message is
 *   queued only when end() says "ok".
 */
import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { FrameDecoder, encodeFrame, type AttrInput, type AttrList } from "../util/attr-codec.js";
import {
  CLEANUP_DATA_CHUNK,
  CLEANUP_FRAME_MAX,
  CLEANUP_PROTOCOL,
  CleanupHello,
  CleanupReply,
} from "./cleanup-proto.js";
import type { Recipient } from "./queue-file.js";
import { Wakeup } from "../util/wakeup.js";

export type CleanupResult =
  | { status: "ok"; queueId: string }
  | { status: "tempfail"; reason: string }
  | { status: "reject"; code: string; reason: string };

/** Reads frames from a socket one at a time. */
class FrameReader {
  #dec = new FrameDecoder({ maxFrame: CLEANUP_FRAME_MAX });
  #frames: AttrList[] = [];
  #failure: string | null = null;
  readonly #wakeup = new Wakeup();

  constructor(sock: Socket) {
    sock.on("data", (chunk: Buffer) => {
      const r = this.#dec.push(chunk);
      if (r.ok) this.#frames.push(...r.frames);
      else this.#failure = r.reason;
      this.#wakeup.notify();
    });
    const end = (): void => {
      this.#failure ??= "connection closed by cleanup";
      this.#wakeup.notify();
    };
    sock.on("close", end);
    sock.on("error", (err) => {
      this.#failure ??= err.message;
      this.#wakeup.notify();
    });
  }

  /** The next frame, or an error text. */
  async next(timeoutMs: number): Promise<AttrList | string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) return f;
      if (this.#failure !== null) return this.#failure;
      const left = deadline - Date.now();
      if (left <= 0) return "timed out waiting for cleanup";
      await this.#wakeup.wait(left);
    }
  }
}

/** The socket path of each (queue directory, service) seen: public/ when only that exists, else private/. */
const servicePaths = new Map<string, string>();

/** Where a cleanup service listens (looked up once; again after a failure). */
function servicePath(queueDir: string, service: string): string {
  const key = `${queueDir}\0${service}`;
  const known = servicePaths.get(key);
  if (known !== undefined) return known;
  let path = join(queueDir, "private", service);
  if (!existsSync(path) && existsSync(join(queueDir, "public", service)))
    path = join(queueDir, "public", service);
  if (servicePaths.size > 100) servicePaths.clear();
  servicePaths.set(key, path);
  return path;
}

export class CleanupClient {
  readonly queueId: string;
  #sock: Socket;
  #reader: FrameReader;
  #timeoutMs: number;
  #corked = false;

  private constructor(sock: Socket, reader: FrameReader, queueId: string, timeoutMs: number) {
    this.#sock = sock;
    this.#reader = reader;
    this.queueId = queueId;
    this.#timeoutMs = timeoutMs;
  }

  /** Connects and waits for cleanup's hello with the new queue ID. */
  static async open(
    queueDir: string,
    opts: { service?: string; timeoutMs?: number } = {},
  ): Promise<{ ok: true; client: CleanupClient } | { ok: false; reason: string }> {
    const timeoutMs = opts.timeoutMs ?? 300_000;
    const service = opts.service ?? "cleanup";
    const path = servicePath(queueDir, service);
    const sock = connect({ path });
    const reader = new FrameReader(sock);
    const hello = await reader.next(Math.min(timeoutMs, 100_000));
    if (typeof hello === "string") {
      servicePaths.delete(`${queueDir}\0${service}`);
      sock.destroy();
      return { ok: false, reason: `cleanup service ${path}: ${hello}` };
    }
    const h = CleanupHello.parse(hello);
    if (!h.ok || h.value.protocol !== CLEANUP_PROTOCOL) {
      sock.destroy();
      return { ok: false, reason: `cleanup service ${path}: bad greeting` };
    }
    return { ok: true, client: new CleanupClient(sock, reader, h.value.queue_id, timeoutMs) };
  }

  /** Sends one frame, waiting while the socket is congested; frames of one event-loop turn share a write. */
  async #send(attrs: AttrInput): Promise<void> {
    if (this.#sock.destroyed) return;
    if (!this.#corked) {
      this.#corked = true;
      this.#sock.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#sock.uncork();
      });
    }
    if (!this.#sock.write(encodeFrame(attrs, CLEANUP_FRAME_MAX))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.#sock.off("drain", done);
          this.#sock.off("close", done);
          resolve();
        };
        this.#sock.on("drain", done);
        this.#sock.on("close", done);
      });
    }
  }

  /** Sets CLEANUP_FLAG bits. */
  flags(flags: number): Promise<void> {
    return this.#send({ t: "flags", flags });
  }

  /** Sends a named attribute. */
  attr(name: string, value: string): Promise<void> {
    return this.#send({ t: "attr", name, value });
  }

  /** Sends the envelope sender. */
  sender(address: string): Promise<void> {
    return this.#send({ t: "sender", address });
  }

  /** Sends one recipient. */
  rcpt(r: Recipient): Promise<void> {
    const f: Record<string, string | number> = { t: "rcpt", address: r.address };
    if (r.original !== undefined) f["original"] = r.original;
    if (r.orcpt !== undefined) f["orcpt"] = r.orcpt;
    if (r.notify !== undefined) f["notify"] = r.notify;
    return this.#send(f);
  }

  /** Sends message bytes (any amount; split into frames). */
  async data(bytes: Buffer): Promise<void> {
    for (let i = 0; i < bytes.length; i += CLEANUP_DATA_CHUNK) {
      await this.#send({ t: "data", data: bytes.subarray(i, i + CLEANUP_DATA_CHUNK) });
    }
  }

  /** Sends one milter verdict or modification (smtpd's milters, at the end of the message). */
  milter(f: { op: string; name?: string; value?: Buffer; index?: number; data?: Buffer }): Promise<void> {
    return this.#send({ t: "milter", ...f });
  }

  /** Ends the message and waits for cleanup's verdict. */
  async end(): Promise<CleanupResult> {
    await this.#send({ t: "end" });
    const f = await this.#reader.next(this.#timeoutMs);
    this.#sock.end();
    if (typeof f === "string") return { status: "tempfail", reason: f };
    const r = CleanupReply.parse(f);
    if (!r.ok) return { status: "tempfail", reason: `bad reply from cleanup: ${r.error}` };
    const v = r.value;
    if (v.status === "ok") return { status: "ok", queueId: v.queue_id ?? this.queueId };
    if (v.status === "reject")
      return { status: "reject", code: v.code ?? "550", reason: v.reason ?? "rejected" };
    return { status: "tempfail", reason: v.reason ?? "cleanup failed" };
  }

  /** Gives up on the message (cleanup removes the file). */
  abort(): void {
    this.#sock.destroy();
  }
}
