/*
 * tlsmgr-client - the TLS endpoints' side of the tlsmgr service
 *
 * SYNOPSIS
 *   const mgr = new TlsmgrClient(queueDirectory, 3000);
 *   const k = await mgr.ticketKey();   // { ok, key, lifetime } or a failure
 *   await mgr.update("smtpd", id, session, 3600); await mgr.lookup("smtpd", id);
 *
 *   const store = openClientSessionStore({ queueDirectory, cacheType: "smtp",
 *     database: cfg.get("smtp_tls_session_cache_database"),
 *     timeout: cfg.time("smtp_tls_session_cache_timeout") });
 *
 * DESCRIPTION
 *   TlsmgrClient speaks tlsmgr-proto.ts over one reused connection to
 *   queue_directory/private/tlsmgr. When master.cf has no tlsmgr service
 *   (no socket), every call fails at once without waiting; a tlsmgr that
 *   does not answer within timeoutMs is a failure too. Failures are
 *   results, never throws: callers go on without the shared state.
 *
 *   TlsmgrSessionStore is the TlsSessionStore (tls-session-store.ts) of
 *   the smtp and lmtp agents kept in tlsmgr, so that every agent process
 *   may resume a session that another one made. A cache key that does not
 *   fit the protocol (too long, control characters) travels as its
 *   SHA-256. A session larger than the protocol allows is not saved.
 *
 *   openClientSessionStore() chooses the store of an agent: tlsmgr when
 *   the *_tls_session_cache_database parameter is set, the timeout is
 *   positive and master.cf has a tlsmgr service; otherwise (with a warning
 *   when a database is named but tlsmgr is missing) a MemorySessionStore
 *   of the agent process.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import type { AttrList } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import { MemorySessionStore, type TlsSessionStore } from "./tls-session-store.js";
import {
  TLSMGR_FRAME_MAX,
  TLSMGR_ID_MAX,
  TLSMGR_PROTOCOL,
  TLSMGR_SESSION_MAX,
  TLSMGR_TIMEOUT_MAX,
  TlsmgrReply,
  TlsmgrRequest,
  type TlsmgrCacheType,
  type TlsmgrReplyValue,
} from "./tlsmgr-proto.js";

export type TicketKeyResult =
  { ok: true; key: Buffer; lifetime: number } | { ok: false; off: boolean; reason: string };

/** A client of queueDirectory/private/tlsmgr. */
export class TlsmgrClient {
  #path: string;
  #client: AttrClient;

  constructor(queueDirectory: string, timeoutMs: number) {
    this.#path = join(queueDirectory, "private", "tlsmgr");
    this.#client = new AttrClient({
      path: this.#path,
      protocol: TLSMGR_PROTOCOL,
      maxFrame: TLSMGR_FRAME_MAX,
      timeoutMs,
      retries: 1,
      backoffMs: 50,
    });
  }

  /** True when master.cf has the service (its socket exists). */
  configured(): boolean {
    return existsSync(this.#path);
  }

  /** The current session ticket key; off is true when tlsmgr says tickets are off. */
  async ticketKey(): Promise<TicketKeyResult> {
    const r = await this.#ask(TlsmgrRequest.build({ request: "tktkey" }));
    if (!r.ok) return { ok: false, off: false, reason: r.reason };
    if (r.reply.status === "fail") return { ok: false, off: true, reason: "session tickets are off" };
    const { key, lifetime } = r.reply;
    if (r.reply.status !== "ok" || key === undefined || lifetime === undefined)
      return { ok: false, off: false, reason: "bad tlsmgr reply" };
    return { ok: true, key, lifetime };
  }

  /** The session saved under id, or null (not found, expired, or tlsmgr unavailable). */
  async lookup(type: TlsmgrCacheType, id: string): Promise<Buffer | null> {
    const r = await this.find(type, id);
    return r.ok ? r.session : null;
  }

  /** Like lookup(), but tells a failure to ask from a session that is not there. */
  async find(
    type: TlsmgrCacheType,
    id: string,
  ): Promise<{ ok: true; session: Buffer | null } | { ok: false; reason: string }> {
    const r = await this.#ask(TlsmgrRequest.build({ request: "lookup", cache_type: type, cache_id: id }));
    if (!r.ok) return r;
    if (r.reply.status === "ok" && r.reply.session !== undefined)
      return { ok: true, session: r.reply.session };
    if (r.reply.status === "notfound") return { ok: true, session: null };
    return { ok: false, reason: "bad tlsmgr reply" };
  }

  /** Saves a session for timeout seconds; true when tlsmgr kept it. */
  async update(type: TlsmgrCacheType, id: string, session: Buffer, timeout: number): Promise<boolean> {
    if (session.length === 0 || session.length > TLSMGR_SESSION_MAX || timeout <= 0) return false;
    const r = await this.#ask(
      TlsmgrRequest.build({
        request: "update",
        cache_type: type,
        cache_id: id,
        session,
        timeout: Math.min(Math.floor(timeout), TLSMGR_TIMEOUT_MAX),
      }),
    );
    return r.ok && r.reply.status === "ok";
  }

  /** Forgets a session. */
  async delete(type: TlsmgrCacheType, id: string): Promise<void> {
    await this.#ask(TlsmgrRequest.build({ request: "delete", cache_type: type, cache_id: id }));
  }

  /** Closes the connection. */
  close(): void {
    this.#client.close();
  }

  /** Sends one request and checks the reply. */
  async #ask(req: AttrList): Promise<{ ok: true; reply: TlsmgrReplyValue } | { ok: false; reason: string }> {
    if (!this.configured()) return { ok: false, reason: "tlsmgr service not available" };
    const r = await this.#client.request(req);
    if (!r.ok) return { ok: false, reason: r.reason };
    const p = TlsmgrReply.parse(r.reply);
    if (!p.ok) return { ok: false, reason: `bad tlsmgr reply: ${p.error}` };
    return { ok: true, reply: p.value };
  }
}

/** A cache key as it travels: itself when it fits the protocol, else its SHA-256. */
export function tlsmgrCacheId(key: string): string {
  const plain =
    key !== "" &&
    Buffer.byteLength(key) <= TLSMGR_ID_MAX &&
    ![...key].some((ch) => {
      const c = ch.codePointAt(0) ?? 0;
      return c < 0x20 || (c >= 0x7f && c <= 0x9f);
    });
  return plain ? key : `sha256:${createHash("sha256").update(key).digest("hex")}`;
}

/** The SMTP or LMTP client's sessions, kept in tlsmgr. */
export class TlsmgrSessionStore implements TlsSessionStore {
  #client: TlsmgrClient;
  #type: TlsmgrCacheType;

  constructor(client: TlsmgrClient, type: "smtp" | "lmtp") {
    this.#client = client;
    this.#type = type;
  }

  get(key: string): Promise<Buffer | null> {
    return this.#client.lookup(this.#type, tlsmgrCacheId(key));
  }

  put(key: string, session: Buffer, ttlSeconds: number): void {
    void this.#client.update(this.#type, tlsmgrCacheId(key), session, ttlSeconds);
  }

  remove(key: string): void {
    void this.#client.delete(this.#type, tlsmgrCacheId(key));
  }

  /** Closes the connection to tlsmgr. */
  close(): void {
    this.#client.close();
  }
}

export interface ClientSessionStoreOptions {
  /** queue_directory (where private/tlsmgr is). */
  queueDirectory: string;
  /** "smtp" for the smtp agent, "lmtp" for the lmtp agent. */
  cacheType: "smtp" | "lmtp";
  /** smtp_tls_session_cache_database (or lmtp_): empty keeps sessions in the process. */
  database: string;
  /** smtp_tls_session_cache_timeout (or lmtp_), in seconds. */
  timeout: number;
  /** How long a tlsmgr request may take (default 5000 ms). */
  requestTimeoutMs?: number;
  /** The MemorySessionStore's entry limit (default 1000). */
  memoryLimit?: number;
}

/** The session store of an smtp or lmtp agent: tlsmgr's, or one in the process. */
export function openClientSessionStore(opts: ClientSessionStoreOptions): TlsSessionStore {
  const memory = (): TlsSessionStore => new MemorySessionStore(opts.memoryLimit ?? 1000);
  if (opts.database.trim() === "" || opts.timeout <= 0) return memory();
  const client = new TlsmgrClient(opts.queueDirectory, opts.requestTimeoutMs ?? 5000);
  if (!client.configured()) {
    msg.warn(
      `${opts.cacheType}_tls_session_cache_database is set, but master.cf has no tlsmgr service: TLS sessions are cached in this process only`,
    );
    client.close();
    return memory();
  }
  return new TlsmgrSessionStore(client, opts.cacheType);
}
