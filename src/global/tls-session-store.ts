/*
 * tls-session-store - where the SMTP client keeps TLS sessions for resumption
 *
 * DESCRIPTION
 *   The smtp and lmtp agents resume TLS sessions with servers they talked to
 *   before (smtp_tls_session_cache_database, smtp_tls_session_cache_timeout).
 *   A TlsSessionStore maps a cache key (the server, its address and the TLS
 *   policy that applied) to the serialized session Node gives in the
 *   "session" event of a tls.TLSSocket.
 *
 *   MemorySessionStore keeps them in the agent process only: bounded in
 *   count, every entry dropped once its time is up. A store shared by all
 *   agent processes (through the tlsmgr service) implements the same
 *   interface.
 */

export interface TlsSessionStore {
  /** The session saved under key and still valid, or null. */
  get(key: string): Promise<Buffer | null>;
  /** Saves a session for ttlSeconds (0 or less: not saved). */
  put(key: string, session: Buffer, ttlSeconds: number): void;
  /** Forgets a session (after a failed resumption, for instance). */
  remove(key: string): void;
}

interface Entry {
  session: Buffer;
  expires: number;
}

/** Sessions kept in this process, at most `limit` of them (the oldest go first). */
export class MemorySessionStore implements TlsSessionStore {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly limit = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): Promise<Buffer | null> {
    const e = this.entries.get(key);
    if (e === undefined) return Promise.resolve(null);
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return Promise.resolve(null);
    }
    return Promise.resolve(e.session);
  }

  put(key: string, session: Buffer, ttlSeconds: number): void {
    if (ttlSeconds <= 0 || this.limit <= 0) return;
    this.entries.delete(key);
    while (this.entries.size >= this.limit) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { session, expires: this.now() + ttlSeconds * 1000 });
  }

  remove(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
