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
 *
 *   Envelope addresses are rewritten, mapped and expanded as they arrive
 *   (cleanup-addr.ts); the content goes through the header and body hooks
 *   of cleanup-content.ts; the end of the message is cleanup-final.ts.
 *   Client attributes that cleanup reads (others are recorded as they are):
 *     rewrite_context     "local" (default) or "remote": the header
 *                         address rewriting context
 *     content_filter      overrides the content_filter parameter (an empty
 *                         value: none); not recorded
 *     encoding            "7bit" or "8bit" as the client declared it
 *     log_message_origin, log_client_name, log_client_address,
 *     log_protocol_name, log_helo_name (or client_name, client_address,
 *     protocol, helo)     for action log lines
 *     full_name           for a missing From: header
 *     extract_dsn_notify  the NOTIFY mask of the recipients taken from the
 *                         headers (sendmail -t -N); not recorded
 *     access_hold, access_discard, access_filter (transport:nexthop),
 *     access_redirect (address), access_bcc (address, may repeat)
 *                         message actions from smtpd's access tables
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
  MilterFrame,
  RcptFrame,
  SenderFrame,
} from "../global/cleanup-proto.js";
import { ConfigError } from "../global/config.js";
import { DSN_NOTIFY, QueueFileWriter, type Recipient } from "../global/queue-file.js";
import type { QueuePaths } from "../global/queue-path.js";
import { EnvelopeAddresses } from "./cleanup-addr.js";
import { CleanupContent } from "./cleanup-content.js";
import { cleanupFinal } from "./cleanup-final.js";
import { CleanupMessage } from "./cleanup-message.js";
import { CleanupMilter } from "./cleanup-milter.js";
import { missingHeaders } from "./cleanup-headers.js";
import { LineSplitter } from "./cleanup-lines.js";
import { CleanupState } from "./cleanup-state.js";
import { cleanupTables, type CleanupTables } from "./cleanup-tables.js";

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
  #sender: string | null = null;
  #attrs = new Map<string, string>();
  #phase: Phase = "envelope";
  #msg: CleanupMessage | null = null;
  #content: CleanupContent | null = null;
  #lines: LineSplitter;
  #st: CleanupState;
  #tables: CleanupTables | null = null;
  #addrs: EnvelopeAddresses | null = null;
  #milter: CleanupMilter;

  constructor(env: CleanupEnv, w: QueueFileWriter) {
    this.#env = env;
    this.#w = w;
    this.#lines = new LineSplitter(env.cfg.int("line_length_limit"), {
      replaceStrayCr: env.cfg.bool("cleanup_replace_stray_cr_lf"),
    });
    this.#st = new CleanupState(w.id, this.#attrs);
    this.#milter = new CleanupMilter(this.#st, env.cfg.int("message_size_limit"));
  }

  /** The tables and the envelope address processor, or the reply when the configuration is bad. */
  #ready(): { ok: true; t: CleanupTables; a: EnvelopeAddresses } | { ok: false; reply: AttrInput } {
    if (this.#tables !== null && this.#addrs !== null) return { ok: true, t: this.#tables, a: this.#addrs };
    try {
      this.#tables = cleanupTables(this.#env.cfg);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      msg.warn(`${this.#w.id}: ${err.message}`);
      this.#phase = "done";
      return { ok: false, reply: { status: "tempfail", reason: "4.3.5 Error: server configuration error" } };
    }
    this.#addrs = new EnvelopeAddresses(this.#st, this.#tables, this.#env.cfg.int("duplicate_filter_limit"));
    return { ok: true, t: this.#tables, a: this.#addrs };
  }

  /** Handles one frame; returns a reply to send and end with, or null to go on. */
  async frame(f: AttrList): Promise<AttrInput | null> {
    const t = CleanupFrame.parse(f);
    if (!t.ok) return this.#violation(t.error);
    switch (t.value.t) {
      case "flags": {
        const v = FlagsFrame.parse(f);
        if (!v.ok) return this.#violation(v.error);
        this.#st.flags = v.value.flags;
        return null;
      }
      case "attr": {
        const v = AttrFrame.parse(f);
        if (!v.ok || this.#phase !== "envelope")
          return this.#violation(v.ok ? "attribute after content" : v.error);
        if (v.value.name === "rewrite_context" && !["local", "remote"].includes(v.value.value))
          return this.#violation(`bad rewriting context: ${v.value.value.slice(0, 100)}`);
        if (v.value.name.startsWith("access_")) return this.#accessAction(v.value.name, v.value.value);
        if (v.value.name === "extract_dsn_notify") return this.#extractNotify(v.value.value);
        this.#attrs.set(v.value.name, v.value.value);
        return null;
      }
      case "sender":
        return this.#onSender(f);
      case "rcpt":
        return this.#onRcpt(f);
      case "data":
        return this.#onData(f);
      case "milter": {
        const v = MilterFrame.parse(f);
        const bad = v.ok ? this.#milter.take(v.value) : v.error;
        return bad === null ? null : this.#violation(bad);
      }
      case "end":
        return this.#finish();
    }
  }

  /** A message action decided by smtpd's access tables (HOLD, DISCARD, FILTER, REDIRECT, BCC). */
  #accessAction(name: string, value: string): AttrInput | null {
    const st = this.#st;
    if (name === "access_hold") st.hold = true;
    else if (name === "access_discard") st.fail({ kind: "discard" });
    else if (name === "access_filter" && /^[^:\s]+:\S*$/.test(value)) st.filter = value;
    else if (name === "access_redirect" && value !== "") st.redirect = value;
    else if (name === "access_bcc" && value !== "") st.bcc.push(value);
    else return this.#violation(`bad access action ${name}`);
    return null;
  }

  /** A protocol error: the message is abandoned. */
  #violation(why: string): AttrInput {
    msg.warn(`${this.#w.id}: protocol error from client: ${why}`);
    this.#phase = "done";
    return { status: "tempfail", reason: "4.3.0 protocol error talking to cleanup" };
  }

  /** Records the sender (once, before recipients), rewritten and mapped. */
  async #onSender(f: AttrList): Promise<AttrInput | null> {
    const v = SenderFrame.parse(f);
    if (!v.ok || this.#sender !== null || this.#phase !== "envelope")
      return this.#violation(v.ok ? "sender out of order" : v.error);
    const r = this.#ready();
    if (!r.ok) return r.reply;
    this.#sender = await r.a.sender(v.value.address);
    return null;
  }

  /** Processes a recipient (rewriting, mapping, expansion, duplicates: cleanup-addr.ts). */
  async #onRcpt(f: AttrList): Promise<AttrInput | null> {
    const v = RcptFrame.parse(f);
    if (!v.ok || this.#sender === null || this.#phase !== "envelope" || this.#addrs === null)
      return this.#violation(v.ok ? "recipient before sender or after content" : v.error);
    const r: Recipient = { address: v.value.address };
    if (v.value.original !== undefined) r.original = v.value.original;
    if (v.value.orcpt !== undefined) r.orcpt = v.value.orcpt;
    if (v.value.notify !== undefined) r.notify = v.value.notify;
    await this.#addrs.recipient(r);
    return null;
  }

  /** Records the NOTIFY of the recipients that -t will extract (not stored as an attribute). */
  #extractNotify(value: string): AttrInput | null {
    const n = /^\d{1,2}$/.test(value) ? Number(value) : 0;
    const valid = n === DSN_NOTIFY.NEVER || (n > 0 && n < 16 && (n & DSN_NOTIFY.NEVER) === 0);
    if (!valid) return this.#violation(`bad extract_dsn_notify value: ${value.slice(0, 100)}`);
    this.#st.extractNotify = n;
    return null;
  }

  /** The header rewrite context: local, remote (when remote_header_rewrite_domain is set), or none. */
  #headerContext(t: CleanupTables): "local" | "remote" | null {
    if (this.#attrs.get("rewrite_context") !== "remote") return "local";
    return t.rewrite.remoteDomain !== "" ? "remote" : null;
  }

  /** Writes the sender and attribute records. */
  #writeEnvelope(): void {
    this.#w.sender(this.#sender ?? "");
    for (const [k, v] of this.#attrs) if (k !== "content_filter" && k !== "encoding") this.#w.attr(k, v);
  }

  /** Writes the envelope and starts the content. */
  #beginContent(t: CleanupTables, a: EnvelopeAddresses): void {
    const w = this.#w;
    this.#writeEnvelope();
    w.beginContent();
    this.#phase = "content";
    const cfg = this.#env.cfg;
    // As Postfix 2.6 and later: missing Message-Id, Date and From are added when the headers are
    // rewritten at all (a client in local_header_rewrite_clients, or a remote one with
    // remote_header_rewrite_domain), for local submissions, or always with always_add_missing_headers.
    const local =
      (this.#st.flags & CLEANUP_FLAG.LOCAL_HEADERS) !== 0 ||
      this.#headerContext(t) !== null ||
      cfg.bool("always_add_missing_headers");
    const content = new CleanupContent({
      st: this.#st,
      tables: t,
      env: a,
      headerContext: this.#headerContext(t),
      missing: (seen) => (local ? missingHeaders(this.#headerInput(seen)) : []),
    });
    const m = new CleanupMessage(
      w,
      {
        headerSize: cfg.int("header_size_limit"),
        hopCount: cfg.int("hopcount_limit"),
        messageSize: cfg.int("message_size_limit"),
        lineLength: cfg.int("line_length_limit"),
      },
      content.hooks(),
    );
    this.#st.onFailure = (s) => {
      m.stop ??= s;
    };
    if (this.#st.failure !== null) m.stop = this.#st.failure;
    this.#msg = m;
    this.#content = content;
  }

  /** Starts the content when the first data (or the end) arrives. */
  #startContent(): AttrInput | null {
    if (this.#phase !== "envelope") return null;
    const r = this.#ready();
    if (!r.ok) return r.reply;
    this.#beginContent(r.t, r.a);
    return null;
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
      obsoleteFrom: this.#env.cfg.get("header_from_format").toLowerCase() === "obsolete",
      ...(full !== undefined ? { fullName: full } : {}),
    };
  }

  /** Streams content bytes into the message. */
  async #onData(f: AttrList): Promise<AttrInput | null> {
    const v = DataFrame.parse(f);
    if (!v.ok || this.#sender === null) return this.#violation(v.ok ? "content before sender" : v.error);
    const bad = this.#startContent();
    if (bad !== null) return bad;
    const m = this.#msg;
    if (m === null) return this.#violation("no message");
    await this.#lines.push(v.value.data, (line, complete) => m.line(line, complete));
    return null;
  }

  /** Completes the file; the reply says whether the message is queued (cleanup-final.ts). */
  async #finish(): Promise<AttrInput> {
    if (this.#sender === null) return this.#violation("end before sender");
    const bad = this.#startContent();
    if (bad !== null) return bad;
    const m = this.#msg;
    const content = this.#content;
    const t = this.#tables;
    const a = this.#addrs;
    if (m === null || content === null || t === null || a === null) return this.#violation("no message");
    await this.#lines.end((line, complete) => m.line(line, complete));
    await m.end();
    this.#phase = "done";
    const filter = (this.#st.flags & CLEANUP_FLAG.FILTER) !== 0 ? t.contentFilter : "";
    return cleanupFinal({
      st: this.#st,
      env: a,
      tables: t,
      content,
      w: this.#w,
      stop: m.stop,
      headers: m.headers,
      filter: this.#attrs.get("content_filter") ?? filter,
      published: this.#env.published,
      beforeCommit: () =>
        this.#milter.finish({
          cfg: this.#env.cfg,
          w: this.#w,
          addrs: a,
          sender: () => this.#sender ?? "",
          setSender: async (raw) => {
            this.#sender = await a.sender(raw);
          },
          writeEnvelope: () => this.#writeEnvelope(),
        }),
    });
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
  if (sock.destroyed || !sock.readable) {
    await session.abort();
    return;
  }
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
