/*
 * scache-table - the connection cache's bookkeeping
 *
 * SYNOPSIS
 *   const t = new ScacheTable<Socket>({ maxSessions: 1000 });
 *   t.saveEndp("smtp:192.0.2.1:25:helo", prop, sock, 2000);
 *   t.saveDest("smtp:example.com", "", "smtp:192.0.2.1:25:helo", 2000);
 *   const hit = t.findDest("smtp:example.com");  // { item, endpLabel, endpProp, destProp } or null
 *
 * DESCRIPTION
 *   As in Postfix's scache: endpoints (a label such as the server address
 *   and port, with properties) each hold a list of idle connections, and
 *   destination labels (a next hop) map to an endpoint label. Every entry
 *   has a time to live; an expired connection is closed, an expired
 *   destination mapping forgotten. A find takes a connection away (the
 *   caller owns it); the most recently saved one is taken first. A
 *   connection that its peer closes is forgotten with drop(). At most
 *   maxSessions connections are held: a save beyond that is refused.
 *
 *   The table counts destination and endpoint lookups (hits and misses)
 *   and the most domains, addresses and connections held at once, for the
 *   statistics that scache logs every connection_cache_status_update_time.
 */
import type { Closable } from "../global/scache-proto.js";

interface Session<T> {
  item: T;
  endpLabel: string;
  prop: string;
  timer: NodeJS.Timeout;
}

interface DestEntry {
  endpLabel: string;
  prop: string;
  timer: NodeJS.Timeout;
}

export interface ScacheHit<T> {
  item: T;
  endpLabel: string;
  endpProp: string;
  destProp: string;
}

export interface ScacheStats {
  destHits: number;
  destMiss: number;
  endpHits: number;
  endpMiss: number;
  maxDests: number;
  maxEndps: number;
  maxSessions: number;
}

/** Zeroed counters. */
function zeroStats(): ScacheStats {
  return { destHits: 0, destMiss: 0, endpHits: 0, endpMiss: 0, maxDests: 0, maxEndps: 0, maxSessions: 0 };
}

export class ScacheTable<T extends Closable> {
  #endps = new Map<string, Session<T>[]>();
  #dests = new Map<string, DestEntry>();
  #byItem = new Map<T, Session<T>>();
  #limit: number;
  #stats = zeroStats();

  constructor(opts: { maxSessions: number }) {
    this.#limit = opts.maxSessions;
  }

  /** How many connections are held. */
  get sessions(): number {
    return this.#byItem.size;
  }

  /** True when another connection may be saved. */
  get hasRoom(): boolean {
    return this.#byItem.size < this.#limit;
  }

  /** Keeps a connection under an endpoint label for ttlMs; false (nothing kept) when full or already held. */
  saveEndp(endpLabel: string, prop: string, item: T, ttlMs: number): boolean {
    if (!this.hasRoom || this.#byItem.has(item)) return false;
    const s: Session<T> = {
      item,
      endpLabel,
      prop,
      timer: setTimeout(() => {
        if (this.drop(item)) item.destroy();
      }, ttlMs),
    };
    s.timer.unref();
    const list = this.#endps.get(endpLabel) ?? [];
    list.push(s);
    this.#endps.set(endpLabel, list);
    this.#byItem.set(item, s);
    this.#note();
    return true;
  }

  /** Maps a destination label to an endpoint label for ttlMs (replacing an older mapping). */
  saveDest(destLabel: string, prop: string, endpLabel: string, ttlMs: number): void {
    const old = this.#dests.get(destLabel);
    if (old !== undefined) clearTimeout(old.timer);
    const timer = setTimeout(() => {
      if (this.#dests.get(destLabel)?.timer === timer) this.#dests.delete(destLabel);
    }, ttlMs);
    timer.unref();
    this.#dests.set(destLabel, { endpLabel, prop, timer });
    this.#note();
  }

  /** Takes a connection of the endpoint that a destination maps to. */
  findDest(destLabel: string): ScacheHit<T> | null {
    const d = this.#dests.get(destLabel);
    const hit = d !== undefined ? this.#take(d.endpLabel, d.prop) : null;
    if (hit === null) this.#stats.destMiss++;
    else this.#stats.destHits++;
    return hit;
  }

  /** Takes a connection of an endpoint. */
  findEndp(endpLabel: string): ScacheHit<T> | null {
    const hit = this.#take(endpLabel, "");
    if (hit === null) this.#stats.endpMiss++;
    else this.#stats.endpHits++;
    return hit;
  }

  /** Forgets a connection (its peer closed it); true when it was held. */
  drop(item: T): boolean {
    const s = this.#byItem.get(item);
    if (s === undefined) return false;
    this.#forget(s);
    return true;
  }

  /** The counters since the last reset, and a reset. */
  takeStats(): ScacheStats {
    const s = this.#stats;
    this.#stats = zeroStats();
    return s;
  }

  /** Closes every held connection and forgets every mapping. */
  clear(): void {
    for (const s of [...this.#byItem.values()]) {
      this.#forget(s);
      s.item.destroy();
    }
    for (const d of this.#dests.values()) clearTimeout(d.timer);
    this.#dests.clear();
  }

  /** Removes and returns the newest connection of an endpoint. */
  #take(endpLabel: string, destProp: string): ScacheHit<T> | null {
    const s = this.#endps.get(endpLabel)?.at(-1);
    if (s === undefined) return null;
    this.#forget(s);
    return { item: s.item, endpLabel, endpProp: s.prop, destProp };
  }

  /** Unlinks a session and stops its timer. */
  #forget(s: Session<T>): void {
    clearTimeout(s.timer);
    this.#byItem.delete(s.item);
    const list = this.#endps.get(s.endpLabel);
    if (list === undefined) return;
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#endps.delete(s.endpLabel);
  }

  /** Records the high-water marks. */
  #note(): void {
    const st = this.#stats;
    st.maxDests = Math.max(st.maxDests, this.#dests.size);
    st.maxEndps = Math.max(st.maxEndps, this.#endps.size);
    st.maxSessions = Math.max(st.maxSessions, this.#byItem.size);
  }
}

/** The statistics lines Postfix's scache logs (none for an interval without activity). */
export function statsLines(s: ScacheStats, since: Date): string[] {
  const out: string[] = [];
  const pct = (h: number, m: number): number => Math.floor((h * 100) / (h + m));
  const any = s.destHits + s.destMiss + s.endpHits + s.endpMiss + s.maxDests + s.maxEndps + s.maxSessions;
  if (any === 0) return out;
  // ctime() from the month to the seconds: "Nov 21 04:05:06"
  const d = since.toString();
  const start = `${d.slice(4, 7)} ${String(since.getDate()).padStart(2, " ")} ${d.slice(16, 24)}`;
  out.push(`statistics: start interval ${start}`);
  if (s.destHits + s.destMiss > 0)
    out.push(
      `statistics: domain lookup hits=${s.destHits} miss=${s.destMiss} success=${pct(s.destHits, s.destMiss)}%`,
    );
  if (s.endpHits + s.endpMiss > 0)
    out.push(
      `statistics: address lookup hits=${s.endpHits} miss=${s.endpMiss} success=${pct(s.endpHits, s.endpMiss)}%`,
    );
  if (s.maxDests + s.maxEndps + s.maxSessions > 0)
    out.push(
      `statistics: max simultaneous domains=${s.maxDests} addresses=${s.maxEndps} connection=${s.maxSessions}`,
    );
  return out;
}
