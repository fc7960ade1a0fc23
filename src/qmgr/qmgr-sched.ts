/*
 * qmgr-sched - transports, destinations, and who gets the next delivery
 *
 * DESCRIPTION
 *   Recipients wait in destination queues: one per (transport, nexthop).
 *   Inside a destination, each message has its own list, and deliveries
 *   take turns between messages (round robin): a message to 10,000
 *   recipients gets one turn like a message to one, so new mail flows past
 *   a big mailing. Destinations of a transport take turns as well, and
 *   deliveries to different destinations run in parallel.
 *
 *   Each destination has a concurrency window: it starts at
 *   initial_destination_concurrency, grows by 1/window per success up to the
 *   transport's concurrency limit, and shrinks by 1/window per failed
 *   connection (the agent's site_fail). When the window is at 1 and
 *   failed_cohort_limit deliveries in a row fail, the destination is dead:
 *   its recipients are deferred and new ones for it are deferred at once
 *   until it is retried after minimal_backoff_time. A transport whose agent
 *   cannot be reached is throttled for transport_retry_time.
 *   Per-transport parameters: <transport>_destination_concurrency_limit,
 *   _destination_recipient_limit, _initial_destination_concurrency,
 *   _destination_rate_delay, _destination_concurrency_failed_cohort_limit,
 *   _time_limit, with the default_* parameters as defaults.
 *
 *   On-demand connection caching (Postfix's DEL_REQ_FLAG_CONN_*): a
 *   delivery request tells the agent to keep its connection (CONN_STORE)
 *   while more mail waits for the destination or deliveries to it come
 *   back to back (one ended within the last second), and to look for a
 *   kept connection (CONN_LOAD); a destination is remembered for that
 *   second after its last delivery. Once on, LOAD stays on, so that no new
 *   connection is made while kept ones may exist; STORE goes off when the
 *   destination has no backlog, no other delivery running and no
 *   back-to-back delivery. Mail to a destination that gets one message
 *   now and then is delivered without the agent keeping anything.
 */
import type { Config } from "../global/config.js";
import { DEL_REQ_CONN_MASK, DEL_REQ_FLAG, type DeliveryRecipient } from "../global/deliver-proto.js";

export interface QRcpt extends DeliveryRecipient {
  msg: QMessageRef;
}

/** What the scheduler needs to know of a message. */
export interface QMessageRef {
  id: string;
}

export interface Batch {
  transport: Transport;
  dest: Destination;
  msg: QMessageRef;
  rcpts: QRcpt[];
}

/** Reads a per-transport integer or time parameter, falling back to its default_* form. */
function transportParam(
  cfg: Config,
  transport: string,
  suffix: string,
  fallback: string,
  kind: "int" | "time",
): number {
  const own = `${transport}_${suffix}`;
  const name = cfg.raw(own) !== undefined ? own : fallback;
  if (kind === "time") {
    const v = cfg.expand(cfg.raw(name) ?? "0", `parameter ${name}`);
    const m = /^(\d+)([smhdw]?)$/.exec(v.trim());
    const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m?.[2] ?? ""] ?? 1;
    return m ? Number(m[1]) * unit : 0;
  }
  const n = Number(cfg.expand(cfg.raw(name) ?? "1", `parameter ${name}`));
  return Number.isInteger(n) && n > 0 ? n : 1;
}

/** A delivery that starts within this time of the previous one's end is back to back. */
const BACK_TO_BACK_MS = 1000;

export class Destination {
  readonly name: string;
  readonly transport: Transport;
  /** Waiting recipients per message, in turn order. */
  readonly queues = new Map<QMessageRef, QRcpt[]>();
  waiting = 0;
  active = 0;
  window: number;
  failures = 0;
  deadUntil = 0;
  notBefore = 0;
  lastReason = "";
  lastUsed = Date.now();
  /** The connection-cache bits of this destination's requests (connCacheFlags). */
  connFlags = 0;
  /** When the last delivery to this destination ended (ms since the epoch). */
  lastDone = 0;

  constructor(name: string, transport: Transport) {
    this.name = name;
    this.transport = transport;
    this.window = transport.initial;
  }

  /** Queues a recipient. */
  add(r: QRcpt): void {
    const q = this.queues.get(r.msg);
    if (q === undefined) this.queues.set(r.msg, [r]);
    else q.push(r);
    this.waiting++;
  }

  /** Takes the next batch: up to `limit` recipients of the message whose turn it is. */
  take(limit: number): { msg: QMessageRef; rcpts: QRcpt[] } | null {
    for (const [msg, q] of this.queues) {
      const rcpts = q.splice(0, limit);
      this.queues.delete(msg);
      if (q.length > 0) this.queues.set(msg, q);
      this.waiting -= rcpts.length;
      if (rcpts.length > 0) return { msg, rcpts };
    }
    return null;
  }

  /** The DEL_REQ_FLAG.CONN_* bits for a request just taken (see the header). */
  connCacheFlags(now: number): number {
    const backToBack = this.lastDone + BACK_TO_BACK_MS >= now;
    if ((this.connFlags & DEL_REQ_FLAG.CONN_STORE) === 0) {
      if (this.waiting > 0 || backToBack) this.connFlags = DEL_REQ_CONN_MASK;
    } else if (this.waiting === 0 && this.active <= 1 && !backToBack) {
      this.connFlags &= ~DEL_REQ_FLAG.CONN_STORE;
    }
    return this.connFlags;
  }

  /** Removes and returns everything waiting (a dead destination's recipients). */
  drain(): QRcpt[] {
    const all = [...this.queues.values()].flat();
    this.queues.clear();
    this.waiting = 0;
    return all;
  }

  /** Feedback after a delivery: grows on success, shrinks on a failed connection; true when the destination died. */
  feedback(ok: boolean, reason: string): boolean {
    this.lastUsed = Date.now();
    if (ok) {
      this.failures = 0;
      this.window = Math.min(this.transport.concLimit, this.window + 1 / this.window);
      return false;
    }
    this.lastReason = reason;
    if (this.window > 1) {
      this.window = Math.max(1, this.window - 1 / this.window);
      return false;
    }
    return ++this.failures >= this.transport.cohortLimit;
  }
}

export class Transport {
  readonly name: string;
  readonly destinations = new Map<string, Destination>();
  readonly ready: Destination[] = [];
  readonly #inReady = new Set<Destination>();
  active = 0;
  throttledUntil = 0;
  readonly limit: number;
  readonly initial: number;
  readonly concLimit: number;
  readonly rcptLimit: number;
  readonly rateDelayMs: number;
  readonly cohortLimit: number;
  readonly timeLimitMs: number;

  constructor(name: string, cfg: Config) {
    this.name = name;
    this.limit = cfg.int("default_process_limit");
    this.initial = transportParam(
      cfg,
      name,
      "initial_destination_concurrency",
      "initial_destination_concurrency",
      "int",
    );
    this.concLimit = transportParam(
      cfg,
      name,
      "destination_concurrency_limit",
      "default_destination_concurrency_limit",
      "int",
    );
    this.rcptLimit = transportParam(
      cfg,
      name,
      "destination_recipient_limit",
      "default_destination_recipient_limit",
      "int",
    );
    this.rateDelayMs =
      transportParam(cfg, name, "destination_rate_delay", "default_destination_rate_delay", "time") * 1000;
    this.cohortLimit = transportParam(
      cfg,
      name,
      "destination_concurrency_failed_cohort_limit",
      "default_destination_concurrency_failed_cohort_limit",
      "int",
    );
    this.timeLimitMs = transportParam(cfg, name, "time_limit", "command_time_limit", "time") * 1000;
  }

  /** The destination object for a nexthop. */
  dest(name: string): Destination {
    let d = this.destinations.get(name);
    if (d === undefined) {
      d = new Destination(name, this);
      this.destinations.set(name, d);
    }
    return d;
  }

  /** Puts a destination in line for a delivery slot if it has work and room. */
  offer(d: Destination, now: number): void {
    if (this.#inReady.has(d) || d.waiting === 0 || d.deadUntil > now || d.active >= Math.floor(d.window))
      return;
    this.#inReady.add(d);
    this.ready.push(d);
  }

  /** The next destination in line, or null. */
  next(): Destination | null {
    const d = this.ready.shift();
    if (d === undefined) return null;
    this.#inReady.delete(d);
    return d;
  }

  /** Forgets idle, empty destinations: healthy ones at once, failing ones after `memoryMs` (so that a site whose mail trickles in one message at a time still ends up dead). */
  prune(now: number, memoryMs: number): void {
    for (const [name, d] of this.destinations) {
      if (d.waiting > 0 || d.active > 0 || d.deadUntil > now) continue;
      const healthy = d.failures === 0 && d.window >= this.initial;
      // A destination just used stays a moment, so that the next delivery is seen as back to back.
      const recent = now - d.lastDone <= BACK_TO_BACK_MS;
      if ((healthy && !recent) || now - d.lastUsed > memoryMs) this.destinations.delete(name);
    }
  }
}

/** Picks batches across all transports until slots or work run out. */
export function nextBatches(
  transports: Iterable<Transport>,
  now: number,
  onTimer: (at: number) => void,
): Batch[] {
  const out: Batch[] = [];
  for (const t of transports) {
    if (t.throttledUntil > now) {
      onTimer(t.throttledUntil);
      continue;
    }
    while (t.active < t.limit) {
      const d = t.next();
      if (d === null) break;
      if (d.notBefore > now) {
        onTimer(d.notBefore);
        continue;
      }
      const got = d.take(t.rcptLimit);
      if (got === null) continue;
      d.active++;
      t.active++;
      if (t.rateDelayMs > 0) d.notBefore = now + t.rateDelayMs;
      out.push({ transport: t, dest: d, msg: got.msg, rcpts: got.rcpts });
      t.offer(d, now);
    }
  }
  return out;
}
