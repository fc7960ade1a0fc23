/*
 * smtpd-tlsmgr - the SMTP server's shared TLS state, kept by tlsmgr
 *
 * SYNOPSIS
 *   const shared = new SmtpdTlsmgr(cfg, contextOptions, { tickets, cache });
 *   const context = await shared.context(processContext);
 *   new TLSSocket(raw, { isServer: true, secureContext: context, ...shared.socketOptions() });
 *
 * DESCRIPTION
 *   Session tickets: before a handshake, context() makes sure that the
 *   TLS context encrypts tickets with tlsmgr's current key (asked for
 *   again at most every 30 seconds, and when the key's lifetime is over),
 *   so that a client may resume with any smtpd process of the instance.
 *   When master.cf has no tlsmgr service, or tlsmgr does not answer
 *   within 3 seconds (two attempts of 1.5 s), the process's own context
 *   is used: its tickets are encrypted with keys of this process only
 *   (logged once); tlsmgr is asked again 30 seconds later. A key from tlsmgr stays in use until its
 *   lifetime is over, so a tlsmgr restart does not stop resumption at
 *   once.
 *
 *   Session IDs (smtpd_tls_session_cache_database set and a positive
 *   smtpd_tls_session_cache_timeout): for clients that resume by session
 *   ID (TLS 1.2 without tickets), new sessions are saved in tlsmgr's
 *   smtpd cache and looked up there, through Node's newSession and
 *   resumeSession events. TLS 1.3 sessions are not saved: Node looks
 *   sessions up by the ClientHello's legacy session ID only, which TLS 1.3
 *   does not use for resumption (TLS 1.3 clients send a random one, so
 *   each of their handshakes costs one lookup). When tlsmgr fails to answer (a lookup,
 *   or the ticket key request), the cache is left alone for 30 seconds,
 *   so that handshakes do not wait for it each time (logged once).
 */
import { getCipherInfo } from "node:crypto";
import { Server } from "node:net";
import { createSecureContext, type SecureContext, type SecureContextOptions } from "node:tls";
import type { Config } from "../global/config.js";
import { TlsmgrClient } from "../global/tlsmgr-client.js";
import { msg } from "../util/msg.js";

/** One attempt; a connection that gets no hello is tried once more. */
const WAIT_MS = 1500;
const RECHECK_MS = 30_000;

/**
 * Whether tls_session_ticket_cipher allows tickets: empty turns them off; a
 * name that is not a CBC cipher with a 16-byte IV and a 16 to 32 byte key
 * turns them off with a warning, as in Postfix. (Node itself encrypts
 * tickets with AES-128-CBC whatever the name.)
 */
export function ticketCipherAllows(value: string): boolean {
  const name = value.trim();
  if (name === "") return false;
  const info = getCipherInfo(name);
  if (info?.mode === "cbc" && info.ivLength === 16 && info.keyLength >= 16 && info.keyLength <= 32)
    return true;
  msg.warn(`tls_session_ticket_cipher: invalid value: ${name}; session tickets disabled`);
  return false;
}

/** True when a serialized session (DER SSL_SESSION) is a TLS 1.3 one. */
export function isTls13Session(der: Buffer): boolean {
  // SEQUENCE, its length, then INTEGER 1 (format version) and INTEGER 0x0304 (the protocol).
  if (der.length < 12 || der[0] !== 0x30) return false;
  const len = der[1] ?? 0;
  const at = len < 0x80 ? 2 : 2 + (len & 0x7f);
  const head = der.subarray(at, at + 7);
  return head.equals(Buffer.from([0x02, 0x01, 0x01, 0x02, 0x02, 0x03, 0x04]));
}

export class SmtpdTlsmgr {
  #client: TlsmgrClient;
  #options: SecureContextOptions;
  #tickets: boolean;
  #shared: SecureContext | null = null;
  #key: Buffer | null = null;
  #keyExpires = 0;
  #nextCheck = 0;
  #pending: Promise<void> | null = null;
  #warned = false;
  #events: Server | null = null;
  /** After a failed session lookup, the cache is left alone until then. */
  #cacheDownUntil = 0;
  #cacheWarned = false;

  /** options: what the process context was made from; tickets and cache: what is turned on. */
  constructor(
    cfg: Config,
    options: SecureContextOptions,
    opts: { tickets: boolean; cache: boolean; timeout: number },
  ) {
    this.#client = new TlsmgrClient(cfg.get("queue_directory"), WAIT_MS);
    this.#options = options;
    this.#tickets = opts.tickets;
    if (opts.cache) this.#events = this.#sessionEvents(cfg.get("service_name") || "smtpd", opts.timeout);
  }

  /** The context for the next handshake: tlsmgr's ticket key when there is one, else the process's. */
  async context(own: SecureContext): Promise<SecureContext> {
    if (!this.#tickets) return own;
    if (Date.now() >= this.#nextCheck) {
      this.#pending ??= this.#refresh().finally(() => (this.#pending = null));
      await this.#pending;
    }
    return this.#shared ?? own;
  }

  /** The TLSSocket option that routes session ID events to tlsmgr (none without the cache). */
  socketOptions(): { server?: Server } {
    return this.#events === null ? {} : { server: this.#events };
  }

  /** Asks tlsmgr for the current key and installs it when it is new. */
  async #refresh(): Promise<void> {
    let r = await this.#client.ticketKey();
    const now = Date.now();
    if (r.ok && (this.#key === null || !this.#key.equals(r.key))) {
      try {
        this.#shared = createSecureContext({ ...this.#options, ticketKeys: r.key });
      } catch (err) {
        r = { ok: false, off: false, reason: `cannot install the key: ${(err as Error).message}` };
      }
    }
    if (r.ok) {
      if (this.#key === null || !this.#key.equals(r.key)) {
        this.#key = r.key;
        if (this.#warned) msg.info("using the session ticket key of the tlsmgr service again");
        this.#warned = false;
      }
      this.#keyExpires = now + r.lifetime * 1000;
      this.#nextCheck = now + Math.min(r.lifetime * 1000, RECHECK_MS);
      return;
    }
    if (this.#shared !== null && now < this.#keyExpires) {
      this.#nextCheck = Math.min(now + RECHECK_MS, this.#keyExpires);
      return;
    }
    this.#shared = null;
    this.#key = null;
    this.#nextCheck = now + RECHECK_MS;
    if (!r.off) this.#cacheDownUntil = this.#nextCheck;
    if (!this.#warned) {
      this.#warned = true;
      const text = `TLS session tickets are encrypted with keys of this process: ${r.reason}`;
      if (this.#client.configured()) msg.warn(text);
      else msg.info(text);
    }
  }

  /** Leaves the session cache alone for a while after tlsmgr failed to answer (logged once). */
  #cacheFailed(reason: string): void {
    this.#cacheDownUntil = Date.now() + RECHECK_MS;
    if (this.#cacheWarned) return;
    this.#cacheWarned = true;
    msg.warn(`TLS session cache lookup failed: ${reason}; sessions are not resumed by ID for 30 seconds`);
  }

  /** A server object that is never listening: TLSSockets emit their session events on it. */
  #sessionEvents(service: string, timeout: number): Server {
    const events = new Server();
    const id = (sid: Buffer): string => `${service}&${sid.toString("hex")}`;
    events.on("newSession", (sid: Buffer, session: Buffer, done: () => void) => {
      done();
      if (sid.length > 0 && !isTls13Session(session) && Date.now() >= this.#cacheDownUntil)
        void this.#client.update("smtpd", id(sid), session, timeout);
    });
    events.on("resumeSession", (sid: Buffer, done: (err: Error | null, session: Buffer | null) => void) => {
      if (sid.length === 0 || Date.now() < this.#cacheDownUntil) return done(null, null);
      this.#client.find("smtpd", id(sid)).then(
        (r) => {
          if (!r.ok) this.#cacheFailed(r.reason);
          done(null, r.ok ? r.session : null);
        },
        () => done(null, null),
      );
    });
    return events;
  }
}
