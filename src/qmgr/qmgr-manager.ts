/*
 * qmgr-manager - the active queue: what comes in, what goes out, what waits
 *
 * DESCRIPTION
 *   Messages enter the active queue from incoming/ (when cleanup wakes qmgr,
 *   and at every scan) and from deferred/ (files whose modification time,
 *   the next retry time, has come; all of them after a flush request),
 *   taking turns so that neither queue starves, up to
 *   qmgr_message_active_limit messages and qmgr_message_recipient_limit
 *   recipients. A file is moved to active/ before it is read; a file that
 *   does not read back as a complete queue file goes to corrupt/.
 *   Each recipient not yet done is resolved (trivial-rewrite) and queued for
 *   its transport and destination (qmgr-sched.ts). When every recipient of
 *   a message has an outcome, the message is removed (all done) or moved to
 *   deferred/ with its next retry time (minimal_backoff_time to
 *   maximal_backoff_time, growing with the message's age).
 *   A file marked by postsuper -r (QUEUE_FLAG.REQUEUE) is not scheduled:
 *   it goes through cleanup again as a new file (qmgr-requeue.ts).
 *   At start, files left in active/ by a stopped or crashed qmgr go back to
 *   incoming/; their recipients already marked done are not delivered again.
 *   One queue manager at a time: qmgr.ts holds the queue manager lock
 *   before it recovers anything.
 *
 *   Status reports (qmgr-report.ts): a message's defer log is removed when
 *   it enters the active queue (it then holds only the last attempt's
 *   reasons); recipients that qmgr itself defers (resolver failure, dead
 *   destination, lost agent) are added to it. When a message is finished
 *   with bounced recipients (or a bounce log left from before), the bounce
 *   service is asked to return them to the sender; only when it has done
 *   so is the file removed, with its logs. A message that still has
 *   deferred recipients after maximal_queue_lifetime (bounce_queue_lifetime
 *   for the null sender) is expired: those recipients are bounced with
 *   "message expired". A message deferred when it has been queued for
 *   delay_warning_time (and was not at its previous attempt) draws a delay
 *   warning.
 *
 *   Status logs: looking for a message's defer, bounce and trace logs costs
 *   system calls, so qmgr looks only when a message may have one: when it
 *   comes from deferred/, or from incoming/ with the mark of a file that was
 *   scheduled before (QUEUE_MODE_SCHEDULED, global/queue-file.ts: set by
 *   the recovery at start and by a fast flush, on the file itself so that
 *   it survives a crash), has a recipient marked done already, carries the
 *   postsuper -r mark or trace flags, or when this attempt made one (a
 *   recipient deferred or bounced by an agent or by qmgr, a delivery
 *   request with NOTIFY=SUCCESS or request flags that ask for a trace or
 *   verify report). New mail delivered at once has none.
 *   Test hook: the environment variable POSTERN_TEST_CLOCK_OFFSET
 *   (seconds; pass it with import_environment) moves qmgr's idea of "now"
 *   for expiry and delay warnings only. Never set it in production.
 *
 *   Trace flags: a message's trace_flags attribute (global/deliver-proto.ts:
 *   MTA_VRFY for a verify probe, USR_VRFY for sendmail -bv, RECORD for
 *   sendmail -v) goes into every delivery request for it. A recipient of a
 *   trace-only message (MTA_VRFY, USR_VRFY) that qmgr itself would defer
 *   is reported as undeliverable and is done (qmgr-report.ts traceDefer),
 *   so probes never wait in the deferred queue and are never returned.
 *   Probes (MTA_VRFY) are resolved in trivial-rewrite's "verify" context
 *   (address_verify_relayhost, address_verify_transport_maps, ...).
 *   When a USR_VRFY or RECORD message is finished, the trace service mails
 *   the sender its "Mail Delivery Status Report".
 */
import {
  DSN_NOTIFY,
  QUEUE_MODE_SCHEDULED,
  markScheduled,
  readEnvelope,
  type Envelope,
} from "../global/queue-file.js";
import { DEL_REQ_FLAG, DEL_REQ_TRACE_MASK, traceFlags, traceOnly } from "../global/deliver-proto.js";
import type { BounceClient } from "../global/bounce-client.js";
import type { QueuePaths, QueueName } from "../global/queue-path.js";
import type { Config } from "../global/config.js";
import type { Resolved } from "../global/rewrite-proto.js";
import type { DeliveryRequest } from "../global/deliver-proto.js";
import { msg } from "../util/msg.js";
import { statSync } from "node:fs";
import { unlink, utimes } from "node:fs/promises";
import { QUEUE_FLAG } from "../global/queue-corrupt.js";
import { deliverOnce } from "./qmgr-deliver.js";
import { requeueMessage } from "./qmgr-requeue.js";
import { Transport, nextBatches, type Batch, type QRcpt } from "./qmgr-sched.js";
import { Reporter } from "./qmgr-report.js";

/** Resolves a recipient; verify: route as an address verification probe (MTA_VRFY). */
export type Resolver = (
  sender: string,
  address: string,
  verify?: boolean,
) => Promise<{ ok: true; value: Resolved } | { ok: false; reason: string }>;

interface QMessage {
  id: string;
  env: Envelope;
  activeAt: number;
  pending: number;
  deferred: number;
  rcptCount: number;
  bounced: number;
  /** Deferred recipients and their reasons (for expiry). */
  deferredRcpts: Array<{ rc: QRcpt; text: string }>;
  /** Defer log appends in flight. */
  logs: Array<Promise<void>>;
  /** When the previous attempt ended (ms; null for new mail). */
  lastAttempt: number | null;
  /** Trace flags (DEL_REQ_FLAG bits) from the queue file. */
  flags: number;
  /** The message may have a defer, bounce or trace log (see "Status logs" in the module comment). */
  mayHaveLogs: boolean;
}

const LOAD_PARALLEL = 32;

/** True when a delivery request may make the agent write a trace log (NOTIFY=SUCCESS, verify or record flags). */
function mayLog(req: DeliveryRequest): boolean {
  return (
    ((req.flags ?? 0) & DEL_REQ_TRACE_MASK) !== 0 ||
    req.recipients.some((rc) => ((rc.notify ?? 0) & DSN_NOTIFY.SUCCESS) !== 0)
  );
}

export class QueueManager {
  #cfg: Config;
  #paths: QueuePaths;
  #resolve: Resolver;
  #messages = new Map<string, QMessage>();
  #transports = new Map<string, Transport>();
  #rcptsInMemory = 0;
  #feeding = false;
  #wantIncoming = true;
  #wantDeferred = false;
  #deferredAll = false;
  #backlog: Array<[QueueName, string]> = [];
  #pumpQueued = false;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #report: Reporter;

  constructor(cfg: Config, paths: QueuePaths, resolve: Resolver, bounce: BounceClient) {
    this.#cfg = cfg;
    this.#paths = paths;
    this.#resolve = resolve;
    this.#report = new Reporter(cfg, paths, bounce);
  }

  /**
   * Moves what a previous run left in active/ back to incoming/, each file
   * marked first (QUEUE_MODE_SCHEDULED): it may have logs from that run, and
   * the mark must outlive this process, which may die before it loads the
   * file. A file that cannot be marked goes to deferred/ (due at once), which
   * says the same by itself.
   */
  recover(): void {
    let n = 0;
    for (const id of this.#paths.list("active")) {
      let to: QueueName = "incoming";
      try {
        markScheduled(this.#paths.path("active", id));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        msg.warn(`${id}: cannot mark the file: ${(err as Error).message}; moving it to the deferred queue`);
        to = "deferred";
      }
      if (this.#paths.move(id, "active", to)) n++;
    }
    if (n > 0) msg.info(`moved ${n} message(s) from the active queue back to incoming`);
  }

  /** Handles trigger bytes from cleanup, postqueue, master's wakeup. */
  trigger(data: Buffer): void {
    for (const ch of data.toString("latin1")) {
      if (ch === "I" || ch === "W") this.#wantIncoming = true;
      if (ch === "D" || ch === "W") this.#wantDeferred = true;
      if (ch === "A") {
        this.#wantDeferred = true;
        this.#deferredAll = true;
      }
      if (ch === "F")
        for (const t of this.#transports.values()) for (const d of t.destinations.values()) d.deadUntil = 0;
    }
    void this.feed();
  }

  /** Counts for status and tests. */
  stats(): { messages: number; recipients: number } {
    return { messages: this.#messages.size, recipients: this.#rcptsInMemory };
  }

  /** True while there is room in the active queue. */
  #room(): boolean {
    return (
      this.#messages.size < this.#cfg.int("qmgr_message_active_limit") &&
      this.#rcptsInMemory < this.#cfg.int("qmgr_message_recipient_limit")
    );
  }

  /** Brings waiting files into the active queue, alternating incoming and deferred, while there is room. */
  async feed(): Promise<void> {
    if (this.#feeding) return;
    this.#feeding = true;
    try {
      while (this.#room()) {
        if (this.#backlog.length === 0) {
          if (!this.#wantIncoming && !this.#wantDeferred) break;
          this.#fillBacklog();
          continue;
        }
        await this.#loadSome();
      }
    } finally {
      this.#feeding = false;
    }
  }

  /** Lists the queues that were asked for into the backlog, one from each in turn. */
  #fillBacklog(): void {
    const incoming = this.#wantIncoming ? this.#paths.list("incoming") : [];
    this.#wantIncoming = false;
    const deferred = this.#wantDeferred ? this.#dueDeferred() : [];
    this.#wantDeferred = false;
    this.#deferredAll = false;
    for (let i = 0; i < Math.max(incoming.length, deferred.length); i++) {
      if (i < incoming.length) this.#backlog.push(["incoming", incoming[i] as string]);
      if (i < deferred.length) this.#backlog.push(["deferred", deferred[i] as string]);
    }
  }

  /** The deferred files whose retry time has come (all of them after a flush). */
  #dueDeferred(): string[] {
    const now = Date.now();
    const out: string[] = [];
    for (const id of this.#paths.list("deferred")) {
      if (this.#deferredAll) out.push(id);
      else {
        const st = statSync(this.#paths.path("deferred", id), { throwIfNoEntry: false });
        if (st !== undefined && st.mtimeMs <= now) out.push(id);
      }
    }
    return out;
  }

  /** Loads backlog files with bounded parallelism while there is room. */
  async #loadSome(): Promise<void> {
    const worker = async (): Promise<void> => {
      while (this.#backlog.length > 0 && this.#room()) {
        const [queue, id] = this.#backlog.shift() as [QueueName, string];
        if (this.#messages.has(id)) continue;
        const last = queue === "deferred" ? this.#report.lastAttempt(queue, id) : null;
        if (!this.#paths.move(id, queue, "active")) continue;
        await this.#load(id, last, queue === "incoming");
      }
    };
    await Promise.all(Array.from({ length: LOAD_PARALLEL }, worker));
  }

  /** Reads a file in active/ and queues its recipients; incoming: it comes from incoming/. */
  async #load(id: string, lastAttempt: number | null, incoming: boolean): Promise<void> {
    const path = this.#paths.path("active", id);
    const r = await readEnvelope(path);
    if (!r.ok) {
      msg.warn(`${id}: ${r.reason} at offset ${r.offset}; moved to corrupt`);
      this.#paths.move(id, "active", "corrupt");
      return;
    }
    const todo = r.env.recipients.filter((rc) => !rc.done);
    if ((r.env.flags & QUEUE_FLAG.REQUEUE) !== 0 && todo.length > 0) return this.#requeue(id, r.env);
    const m: QMessage = {
      id,
      env: r.env,
      activeAt: Date.now(),
      pending: todo.length,
      deferred: 0,
      rcptCount: r.env.recipients.length,
      bounced: 0,
      deferredRcpts: [],
      logs: [],
      lastAttempt,
      flags: traceFlags(r.env.attrs),
      // New mail is a file in incoming/ that was never scheduled: not marked as sent back there by
      // a recovery or a flush, no recipient done by an earlier attempt.
      mayHaveLogs:
        !incoming ||
        ((r.env.mode ?? 0) & QUEUE_MODE_SCHEDULED) !== 0 ||
        todo.length < r.env.recipients.length ||
        (r.env.flags & QUEUE_FLAG.REQUEUE) !== 0 ||
        r.env.attrs.has("trace_flags"),
    };
    if (m.mayHaveLogs) this.#report.startAttempt(id);
    this.#messages.set(id, m);
    this.#rcptsInMemory += todo.length;
    msg.info(
      `${id}: from=<${r.env.sender}>, size=${r.env.contentSize}, nrcpt=${r.env.recipients.length} (queue active)`,
    );
    if (todo.length === 0) return this.#finish(m);
    await Promise.all(
      todo.map((rc) => this.#route(m, { ...rc, original: rc.original ?? rc.address, msg: m })),
    );
    this.#schedulePump();
  }

  /** Passes a message marked by postsuper -r through cleanup again (qmgr-requeue.ts). */
  async #requeue(id: string, env: Envelope): Promise<void> {
    const path = this.#paths.path("active", id);
    const r = await requeueMessage(this.#paths.root, path, id, env, this.#cfg.time("ipc_timeout") * 1000);
    if (r.ok) {
      msg.info(`${id}: requeued as ${r.newId}`);
      return this.#report.removeLogs(id);
    }
    if (!r.temporary) {
      msg.warn(`${id}: requeue rejected by cleanup (${r.reason}); message put on hold`);
      this.#paths.move(id, "active", "hold");
      return;
    }
    msg.warn(`${id}: requeue failed (${r.reason}); will retry`);
    // The retry time goes on the file before it enters deferred/, as Postfix does: never seen there without it.
    const at = Date.now() / 1000 + this.#cfg.time("minimal_backoff_time");
    await utimes(this.#paths.path("active", id), at, at).catch(() => undefined);
    this.#paths.move(id, "active", "deferred");
  }

  /** Resolves one recipient and queues it, or records its deferral. */
  async #route(m: QMessage, rc: QRcpt): Promise<void> {
    const res = await this.#resolve(m.env.sender, rc.address, (m.flags & DEL_REQ_FLAG.MTA_VRFY) !== 0);
    if (!res.ok) return this.#defer(m, rc, `address resolver failure: ${res.reason}`, "4.3.0");
    const { transport, nexthop } = contentFilterRoute(m.env.filter, res.value, this.#cfg.get("myhostname"));
    const t = this.#transport(transport);
    const d = t.dest(nexthop);
    if (d.deadUntil > Date.now())
      return this.#defer(m, rc, `delivery temporarily suspended: ${d.lastReason}`, "4.4.1");
    d.add(rc);
    t.offer(d, Date.now());
  }

  /** The transport object for a name. */
  #transport(name: string): Transport {
    let t = this.#transports.get(name);
    if (t === undefined) {
      t = new Transport(name, this.#cfg);
      this.#transports.set(name, t);
    }
    return t;
  }

  /** Runs the scheduler soon (once per turn of the event loop). */
  #schedulePump(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    setImmediate(() => {
      this.#pumpQueued = false;
      this.#pump();
    });
  }

  /** Starts every delivery the slots allow. */
  #pump(): void {
    for (const b of nextBatches(this.#transports.values(), Date.now(), (at) => this.#wakeAt(at)))
      void this.#deliver(b);
  }

  /** Sets a timer to re-offer destinations and pump at a time. */
  #wakeAt(at: number): void {
    if (at >= this.#timerAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.#timerAt = Infinity;
        const now = Date.now();
        for (const t of this.#transports.values()) for (const d of t.destinations.values()) t.offer(d, now);
        this.#pump();
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Runs one delivery and applies its outcome. */
  async #deliver(b: Batch): Promise<void> {
    const m = this.#messages.get(b.msg.id);
    if (m === undefined) return;
    const connFlags = b.dest.connCacheFlags(Date.now());
    const req = {
      queueName: "active",
      queueId: m.id,
      nexthop: b.dest.name,
      sender: m.env.sender,
      arrival: m.env.arrival.sec * 1000 + Math.floor(m.env.arrival.usec / 1000),
      active: m.activeAt,
      attrs: Object.fromEntries(m.env.attrs),
      recipients: b.rcpts.map(({ msg: _m, ...r }) => r),
      ...(m.flags !== 0 || connFlags !== 0 ? { flags: m.flags | connFlags } : {}),
    };
    if (!m.mayHaveLogs) m.mayHaveLogs = mayLog(req);
    const out = await deliverOnce(this.#paths.root, b.transport.name, req, b.transport.timeLimitMs);
    b.dest.lastDone = Date.now();
    b.dest.active--;
    b.transport.active--;
    const now = Date.now();
    if (out.kind === "reply") {
      if (out.reply.results.some((res) => res.status !== "sent")) m.mayHaveLogs = true;
      const died = b.dest.feedback(!out.reply.siteFail, out.reply.results[0]?.text ?? "");
      out.reply.results.forEach((res, i) => this.#outcome(m, b.rcpts[i] as QRcpt, res.status, res.text));
      if (died) this.#kill(b.dest.transport, b.dest.name, now);
    } else {
      if (out.kind === "transport-down") {
        b.transport.throttledUntil = now + this.#cfg.time("transport_retry_time") * 1000;
        msg.warn(`transport ${b.transport.name}: ${out.reason}; retrying after transport_retry_time`);
      }
      for (const rc of b.rcpts) this.#defer(m, rc, out.reason, "4.3.0");
    }
    b.transport.offer(b.dest, now);
    this.#schedulePump();
  }

  /** Marks a destination dead: defers what waits for it. */
  #kill(t: Transport, name: string, now: number): void {
    const d = t.dest(name);
    d.deadUntil = now + this.#cfg.time("minimal_backoff_time") * 1000;
    msg.warn(
      `${t.name}:${name}: destination is dead after repeated failures (${d.lastReason}); deferring its mail`,
    );
    for (const rc of d.drain())
      this.#defer(
        this.#messages.get(rc.msg.id) as QMessage,
        rc,
        `delivery temporarily suspended: ${d.lastReason}`,
        "4.4.1",
      );
    d.failures = 0;
    d.window = t.initial;
  }

  /** Defers a recipient for a reason of qmgr's own: logs it in the defer log, then records the outcome. */
  #defer(m: QMessage, rc: QRcpt, text: string, dsn: string): void {
    m.mayHaveLogs = true;
    if (traceOnly(m.flags)) {
      m.logs.push(this.#report.traceDefer(m.id, m.flags, rc, dsn, text));
      return this.#outcome(m, rc, "sent", text);
    }
    const arrival = m.env.arrival.sec * 1000 + Math.floor(m.env.arrival.usec / 1000);
    m.logs.push(this.#report.defer(m.id, rc, dsn, text, { arrival, active: m.activeAt }));
    this.#outcome(m, rc, "deferred", text);
  }

  /** Records one recipient's outcome; finishes the message when none is left. */
  #outcome(m: QMessage, rc: QRcpt, status: string, text: string): void {
    if (status === "deferred") {
      m.deferred++;
      m.deferredRcpts.push({ rc, text });
    }
    if (status === "bounced") m.bounced++;
    m.pending--;
    this.#rcptsInMemory--;
    if (m.pending === 0) void this.#finish(m);
  }

  /** Removes a finished message, or moves it to deferred/ with its next retry time. */
  async #finish(m: QMessage): Promise<void> {
    this.#messages.delete(m.id);
    await Promise.all(m.logs);
    if (m.deferred > 0 && this.#report.expired(m.env)) {
      const n = await this.#report.expire(m.id, m.env, m.deferredRcpts);
      m.deferred -= n;
      m.bounced += n;
    }
    const returned = !m.mayHaveLogs || (await this.#report.returnBounces(m.id, m.bounced));
    if (m.deferred === 0 && returned) {
      if ((m.flags & (DEL_REQ_FLAG.USR_VRFY | DEL_REQ_FLAG.RECORD)) !== 0)
        await this.#report.reportTrace(m.id);
      else if (m.mayHaveLogs) await this.#report.reportSuccess(m.id);
      // Every notice that reads the logs has been sent (awaited above): the logs go first, then
      // the queue file, so a crash in between leaves a queue file whose recipients are all marked
      // done (the next qmgr removes it) rather than logs that nothing would ever remove.
      if (m.mayHaveLogs) this.#report.removeLogs(m.id);
      // Asynchronous: removing a file waits for the file system's journal, which may be busy.
      await unlink(this.#paths.path("active", m.id)).catch((err: Error) =>
        msg.warn(`${m.id}: remove: ${err.message}`),
      );
      msg.info(`${m.id}: removed`);
    } else {
      if (m.deferred > 0) await this.#report.delayWarning(m.id, m.env, m.lastAttempt);
      const age = Date.now() / 1000 - m.env.arrival.sec;
      const wait = Math.min(
        Math.max(age, this.#cfg.time("minimal_backoff_time")),
        this.#cfg.time("maximal_backoff_time"),
      );
      // The retry time goes on the file before it enters deferred/, so a scan never sees it there without it.
      const at = Date.now() / 1000 + wait;
      await utimes(this.#paths.path("active", m.id), at, at).catch(() => undefined);
      this.#paths.move(m.id, "active", "deferred");
    }
    const memory = this.#cfg.time("minimal_backoff_time") * 1000;
    for (const t of this.#transports.values()) t.prune(Date.now(), memory);
    void this.feed();
  }
}

/**
 * The route of a recipient: a content filter recorded in the queue file
 * (content_filter or a FILTER action, "transport:nexthop") takes the whole
 * message instead of the resolved route; an empty nexthop means myhostname.
 */
export function contentFilterRoute(
  filter: string | undefined,
  resolved: { transport: string; nexthop: string },
  myhostname: string,
): { transport: string; nexthop: string } {
  if (filter === undefined || filter === "") return resolved;
  const colon = filter.indexOf(":");
  const transport = colon < 0 ? filter : filter.slice(0, colon);
  const nexthop = colon < 0 ? "" : filter.slice(colon + 1);
  if (transport === "") return resolved;
  return { transport, nexthop: nexthop === "" ? myhostname : nexthop };
}
