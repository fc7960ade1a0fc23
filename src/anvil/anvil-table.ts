/*
 * anvil-table - per-client counters with a rate window
 *
 * SYNOPSIS
 *   const t = new AnvilTable(60_000);
 *   t.connect("smtp:192.0.2.1") -> { count: 1, rate: 1 }
 *   t.message("smtp:192.0.2.1") -> 1
 *
 * DESCRIPTION
 *   One entry per ident: the number of open sessions, and the number of
 *   connections, messages and recipients since the start of its rate
 *   window. A window starts with the first event after the previous one
 *   ended (anvil_rate_time_unit long), as in Postfix's anvil. An entry
 *   without open sessions whose window has ended is forgotten (sweep),
 *   and the table never holds more than a fixed number of idle entries.
 *   The clock is injected for tests.
 */

interface Entry {
  count: number;
  start: number;
  connections: number;
  messages: number;
  recipients: number;
  auths: number;
  tlsSessions: number;
}

const MAX_ENTRIES = 100_000;

export class AnvilTable {
  #unitMs: number;
  #now: () => number;
  #map = new Map<string, Entry>();

  /** A table whose rates count over unitMs. */
  constructor(unitMs: number, now: () => number = Date.now) {
    this.#unitMs = unitMs;
    this.#now = now;
  }

  /** The entry for an ident, with its window restarted when it has ended. */
  #entry(ident: string): Entry {
    const now = this.#now();
    let e = this.#map.get(ident);
    if (e === undefined) {
      if (this.#map.size >= MAX_ENTRIES) this.sweep();
      e = { count: 0, start: now, connections: 0, messages: 0, recipients: 0, auths: 0, tlsSessions: 0 };
      this.#map.set(ident, e);
    } else if (now - e.start >= this.#unitMs) {
      Object.assign(e, { start: now, connections: 0, messages: 0, recipients: 0, auths: 0, tlsSessions: 0 });
    }
    return e;
  }

  /** A new session: its concurrent count and connection rate. */
  connect(ident: string): { count: number; rate: number } {
    const e = this.#entry(ident);
    e.count++;
    e.connections++;
    return { count: e.count, rate: e.connections };
  }

  /** A session ended. */
  disconnect(ident: string): void {
    const e = this.#map.get(ident);
    if (e !== undefined && e.count > 0) e.count--;
  }

  /** A MAIL FROM: the message rate. */
  message(ident: string): number {
    return ++this.#entry(ident).messages;
  }

  /** A RCPT TO: the recipient rate. */
  recipient(ident: string): number {
    return ++this.#entry(ident).recipients;
  }

  /** A new (not resumed) TLS session: the new TLS session rate. */
  newTls(ident: string): number {
    return ++this.#entry(ident).tlsSessions;
  }

  /** The new TLS session rate, without counting one. */
  newTlsStat(ident: string): number {
    return this.#entry(ident).tlsSessions;
  }

  /** An AUTH command: the AUTH rate. */
  auth(ident: string): number {
    return ++this.#entry(ident).auths;
  }

  /** The counters of an ident (zeros when unknown). */
  lookup(ident: string): { count: number; rate: number; messages: number; recipients: number } {
    const e = this.#map.get(ident);
    if (e === undefined || this.#now() - e.start >= this.#unitMs)
      return { count: e?.count ?? 0, rate: 0, messages: 0, recipients: 0 };
    return { count: e.count, rate: e.connections, messages: e.messages, recipients: e.recipients };
  }

  /** Forgets entries without sessions whose window has ended; returns how many remain. */
  sweep(): number {
    const now = this.#now();
    for (const [k, e] of this.#map) if (e.count === 0 && now - e.start >= this.#unitMs) this.#map.delete(k);
    return this.#map.size;
  }
}
