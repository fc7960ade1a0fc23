/*
 * smtp-cache - the smtp and lmtp agent's connection reuse
 *
 * SYNOPSIS
 *   const cache = new AgentCache(ctx.config, settings);
 *   const policy = cache.policy(nexthop, req.flags);
 *   const reused = await cache.takeDest(nexthop, policy, sessionOptions);   // or takeEndp(server, ...)
 *   await cache.release(nexthop, session, reusable, needsReset, policy);
 *
 * DESCRIPTION
 *   When a session may be kept (Postfix's smtp_connection_cache_on_demand
 *   and smtp_connection_cache_destinations): a next hop listed in
 *   _destinations always; otherwise, with on-demand caching, only when
 *   qmgr's request says so (DEL_REQ_FLAG.CONN_STORE: more mail waits for
 *   the destination; CONN_LOAD: look for a kept session first). A session
 *   is kept for at most _connection_cache_time_limit (capped by
 *   connection_cache_ttl_limit) and not at all once it is older than
 *   _connection_reuse_time_limit or has carried
 *   _connection_reuse_count_limit transactions.
 *
 *   Where it is kept: in the scache service (connection_cache_service_name),
 *   shared by every agent process, so that another process can carry the
 *   next message over it. A Node agent process serves many requests at
 *   once, and the next one for the destination mostly comes to it: so a
 *   session is first parked here, and only one that no request of this
 *   process took within HANDOFF_MS goes to scache. The socket then goes through
 *   master (global/scache-client.ts) with what the next owner needs to go
 *   on without a new EHLO: the server, its extensions, the session's age
 *   and uses, and whether an RSET must come first. It is saved under its
 *   endpoint label (service, server address and port, HELO name) and the
 *   next hop's destination label maps to it; lookups try the destination
 *   first, then each server's endpoint before a new connection is made.
 *   A session that runs TLS stays in this process (its state cannot leave
 *   it), as does every session when master.cf has no scache service (that
 *   is logged once) or scache refuses one; such sessions are parked here
 *   under their next hop, with the same time limits.
 */
import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import type { Config } from "../global/config.js";
import { DEL_REQ_FLAG } from "../global/deliver-proto.js";
import { ScacheClient, type ScacheSaveResult } from "../global/scache-client.js";
import { beforeRetiredExit, onCacheSocket, sendCacheSocket } from "../master/mail-server.js";
import { msg } from "../util/msg.js";
import type { Server } from "./smtp-addr.js";
import { SmtpSession, type Features, type SessionOptions } from "./smtp-session.js";

export interface CacheSettings {
  /** The master.cf service name: labels do not mix transports with different settings. */
  service: string;
  onDemand: boolean;
  destinations: Set<string>;
  idleMs: number;
  reuseAgeMs: number;
  reuseCount: number;
  skipQuitResponse: boolean;
}

/** Whether to look in the cache before connecting (load) and to keep the session afterwards (store). */
export interface CachePolicy {
  load: boolean;
  store: boolean;
}

export interface Reused {
  session: SmtpSession;
  needsReset: boolean;
}

/** True for a session that runs TLS: such a session never leaves this process. */
export function isTls(s: SmtpSession): boolean {
  return s.tls !== null;
}

interface Parked {
  session: SmtpSession;
  needsReset: boolean;
  timer: NodeJS.Timeout;
}

/**
 * How long a kept session waits in its own process before it goes to
 * scache: the next request for the destination mostly comes to the same
 * process, which then takes the session back without a trip through
 * master and scache.
 */
const HANDOFF_MS = 250;

/** The most idle sessions one process keeps. */
const PARKED_MAX = 500;

/** Idle sessions of this process, by next hop. */
export class SessionCache {
  #idle = new Map<string, Parked[]>();
  #count = 0;
  #hooked = new WeakSet<SmtpSession>();

  /** Parks a session (false when the cache is full); it is closed when it stays idle too long. */
  park(key: string, session: SmtpSession, needsReset: boolean, idleMs: number, quit: () => void): boolean {
    if (this.#count >= PARKED_MAX) return false;
    const list = this.#idle.get(key) ?? [];
    const entry: Parked = {
      session,
      needsReset,
      timer: setTimeout(() => {
        this.#drop(key, session);
        quit();
      }, idleMs),
    };
    entry.timer.unref();
    if (!this.#hooked.has(session)) {
      this.#hooked.add(session);
      session.onClose(() => this.#drop(key, session));
    }
    list.push(entry);
    this.#idle.set(key, list);
    this.#count++;
    return true;
  }

  /** Takes an idle session for a next hop, if any. */
  take(key: string): Reused | null {
    const list = this.#idle.get(key);
    const e = list?.pop();
    if (e === undefined) return null;
    if (list?.length === 0) this.#idle.delete(key);
    this.#count--;
    clearTimeout(e.timer);
    return { session: e.session, needsReset: e.needsReset };
  }

  /** Takes one particular parked session back, if it is still parked. */
  remove(key: string, session: SmtpSession): Reused | null {
    const list = this.#idle.get(key);
    const e = list?.find((x) => x.session === session);
    if (e === undefined) return null;
    this.#drop(key, session);
    return { session: e.session, needsReset: e.needsReset };
  }

  /** Takes every parked session, with its next hop. */
  takeAll(): Array<Reused & { key: string }> {
    const out: Array<Reused & { key: string }> = [];
    for (const [key, list] of this.#idle)
      for (const e of list) {
        clearTimeout(e.timer);
        out.push({ key, session: e.session, needsReset: e.needsReset });
      }
    this.#idle.clear();
    this.#count = 0;
    return out;
  }

  /** How many sessions are parked. */
  get size(): number {
    return this.#count;
  }

  /** Forgets a parked session (closed, or idle too long). */
  #drop(key: string, session: SmtpSession): void {
    const list = this.#idle.get(key);
    if (list === undefined) return;
    const i = list.findIndex((e) => e.session === session);
    if (i < 0) return;
    clearTimeout(list[i]?.timer);
    list.splice(i, 1);
    this.#count--;
    if (list.length === 0) this.#idle.delete(key);
  }
}

/** What travels with a cached socket: enough to go on without a new EHLO. */
export interface EndpointProps {
  server: Server;
  features: Features;
  created: number;
  uses: number;
  needsReset: boolean;
  /** The AUTH= parameter for MAIL FROM after a login (smtp_send_dummy_mail_auth), or null. */
  mailAuth: string | null;
}

/** Encodes a session's endpoint properties. */
export function encodeProps(s: SmtpSession, needsReset: boolean): string {
  const f = s.features;
  return JSON.stringify({
    server: s.server,
    features: { ...f, xforward: [...f.xforward] },
    created: s.created,
    uses: s.uses,
    needsReset,
    mailAuth: s.mailAuth,
  });
}

/** A plain object's fields, or null. */
function obj(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Checks endpoint properties that came back from scache (gossip): null when anything is off. */
export function decodeProps(text: string): EndpointProps | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const o = obj(raw);
  const sv = obj(o?.["server"]);
  const f = obj(o?.["features"]);
  if (o === null || sv === null || f === null) return null;
  const int = (v: unknown, max: number): v is number =>
    typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
  const str = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max;
  const { host, addr, port, path, pref } = sv;
  if (!str(host, 1024) || !str(addr, 64) || !int(port, 65535) || !int(pref, 65535)) return null;
  if (path !== undefined && !str(path, 1024)) return null;
  const bools = ["esmtp", "pipelining", "eightBitMime", "dsn", "smtputf8"] as const;
  if (!bools.every((k) => typeof f[k] === "boolean")) return null;
  const size = f["size"];
  const xf = f["xforward"];
  if (size !== null && !int(size, 1e15)) return null;
  if (!Array.isArray(xf) || xf.length > 16 || !xf.every((a) => str(a, 32))) return null;
  const auth = f["auth"] ?? null;
  if (auth !== null && (!Array.isArray(auth) || auth.length > 64 || !auth.every((a) => str(a, 64))))
    return null;
  const mailAuth = o["mailAuth"] ?? null;
  if (mailAuth !== null && !str(mailAuth, 600)) return null;
  if (!int(o["created"], 2 ** 52) || !int(o["uses"], 2 ** 31) || typeof o["needsReset"] !== "boolean")
    return null;
  return {
    server: { host, addr, port, pref, ...(path !== undefined ? { path } : {}) },
    features: {
      esmtp: f["esmtp"] === true,
      pipelining: f["pipelining"] === true,
      size,
      eightBitMime: f["eightBitMime"] === true,
      dsn: f["dsn"] === true,
      smtputf8: f["smtputf8"] === true,
      xforward: new Set(xf),
      starttls: f["starttls"] === true,
      auth: auth,
    },
    mailAuth,
    created: o["created"],
    uses: o["uses"],
    needsReset: o["needsReset"],
  };
}

/**
 * What else, besides the server, a session is good for: the part of the
 * agent's cache key after the next hop (its TLS policy and, with
 * sender-dependent SASL, the sender), as a digest so that labels stay
 * short and never mix identities by truncation.
 */
export function keyVariant(key: string): string {
  const nul = key.indexOf("\0");
  return nul < 0 ? "" : createHash("sha256").update(key.slice(nul)).digest("hex").slice(0, 32);
}

/** The next hop part of the agent's cache key. */
function keyNexthop(key: string): string {
  const nul = key.indexOf("\0");
  return nul < 0 ? key : key.slice(0, nul);
}

/** The endpoint label of a server as this service talks to it, under a key's variant. */
export function endpointLabel(service: string, server: Server, heloName: string, variant = ""): string {
  const where = server.path !== undefined ? server.path : `[${server.addr}]:${server.port}`;
  return `${service}:${variant}:${where}:${heloName}`.slice(0, 500);
}

/** The destination label of a cache key (next hop and variant). */
export function destinationLabel(service: string, key: string): string {
  return `${service}:${keyVariant(key)}:${keyNexthop(key).toLowerCase()}`.slice(0, 500);
}

export class AgentCache {
  #st: CacheSettings;
  #local = new SessionCache();
  #remote: ScacheClient;
  #warned = false;

  constructor(cfg: Config, st: CacheSettings) {
    this.#st = st;
    this.#remote = ScacheClient.fromConfig(cfg, (sock, token) => sendCacheSocket(sock, token));
    const remote = this.#remote;
    onCacheSocket((token, sock) => remote.received(token, sock));
    beforeRetiredExit(() => this.#flush());
  }

  /** Before the process exits: parked sessions go to scache now, or end with QUIT. */
  async #flush(): Promise<void> {
    const all = this.#local.takeAll();
    await Promise.allSettled(
      all.map(async ({ key, session, needsReset }) => {
        if (!isTls(session) && this.#shared()) {
          const r = await this.#save(key, session, needsReset, this.#st.idleMs);
          if (r === "sent") return;
          if (r === "lost") return session.close();
        }
        await session.quit(false);
      }),
    );
  }

  /** Offers a session to scache under its endpoint and next hop labels. */
  #save(nexthop: string, s: SmtpSession, needsReset: boolean, ttlMs: number): Promise<ScacheSaveResult> {
    const st = this.#st;
    return this.#remote.save(() => s.handOff(), {
      ttl: Math.max(1, Math.ceil(ttlMs / 1000)),
      endpLabel: endpointLabel(st.service, s.server, s.opts.heloName, keyVariant(nexthop)),
      endpProp: encodeProps(s, needsReset),
      destLabel: destinationLabel(st.service, nexthop),
    });
  }

  /** What qmgr's request (and smtp_connection_cache_destinations) allow for a next hop. */
  policy(nexthop: string, flags: number | undefined): CachePolicy {
    if (this.#st.destinations.has(nexthop.toLowerCase())) return { load: true, store: true };
    if (!this.#st.onDemand) return { load: false, store: false };
    const f = flags ?? 0;
    return { load: (f & DEL_REQ_FLAG.CONN_LOAD) !== 0, store: (f & DEL_REQ_FLAG.CONN_STORE) !== 0 };
  }

  /** True when scache can be used; says once when master.cf has no such service. */
  #shared(): boolean {
    if (this.#remote.available) return true;
    if (!this.#warned) {
      this.#warned = true;
      msg.info(
        `connection cache service ${this.#remote.path} is not available: idle sessions stay in this process`,
      );
    }
    return false;
  }

  /** A kept session for a next hop (this process's own first, then scache's). */
  async takeDest(nexthop: string, policy: CachePolicy, opts: SessionOptions): Promise<Reused | null> {
    if (!policy.load) return null;
    const local = this.#local.take(nexthop.toLowerCase());
    if (local !== null) return local;
    if (!this.#shared()) return null;
    const found = await this.#remote.findDest(destinationLabel(this.#st.service, nexthop));
    return found === null ? null : this.#adopt(found.socket, found.endpProp, opts);
  }

  /** A kept session with a server of the next hop (scache only: this process parks by next hop). */
  async takeEndp(
    server: Server,
    key: string,
    policy: CachePolicy,
    opts: SessionOptions,
  ): Promise<Reused | null> {
    if (!policy.load || !this.#shared()) return null;
    const label = endpointLabel(this.#st.service, server, opts.heloName, keyVariant(key));
    const found = await this.#remote.findEndp(label);
    return found === null ? null : this.#adopt(found.socket, found.endpProp, opts);
  }

  /** Turns a socket from scache into a session (a socket with bad properties is closed). */
  #adopt(sock: Socket, props: string, opts: SessionOptions): Reused | null {
    const p = decodeProps(props);
    if (p === null) {
      msg.warn("connection cache: a cached connection came with malformed properties; closed");
      sock.destroy();
      return null;
    }
    return { session: SmtpSession.adopt(sock, p.server, opts, p), needsReset: p.needsReset };
  }

  /** Keeps the session for reuse (scache, else this process), or ends it. */
  async release(
    nexthop: string,
    s: SmtpSession,
    reusable: boolean,
    needsReset: boolean,
    policy: CachePolicy,
  ): Promise<void> {
    const st = this.#st;
    const young = Date.now() - s.created < st.reuseAgeMs;
    const fresh = st.reuseCount === 0 || s.uses < st.reuseCount;
    if (!(reusable && policy.store && young && fresh && s.usable)) return s.quit(!st.skipQuitResponse);
    const key = nexthop.toLowerCase();
    if (!this.#local.park(key, s, needsReset, st.idleMs, () => void s.quit(false)))
      return s.quit(!st.skipQuitResponse);
    if (isTls(s) || st.idleMs <= HANDOFF_MS) return;
    setTimeout(() => void this.#handOff(nexthop, s), HANDOFF_MS).unref();
  }

  /** Moves a session that nobody in this process took to scache (it stays here when scache refuses). */
  async #handOff(nexthop: string, s: SmtpSession): Promise<void> {
    const key = nexthop.toLowerCase();
    if (!this.#shared()) return;
    const e = this.#local.remove(key, s);
    if (e === null) return;
    const st = this.#st;
    const r = await this.#save(nexthop, s, e.needsReset, st.idleMs - HANDOFF_MS);
    if (r === "sent") return;
    if (r === "lost") return s.close();
    const left = st.idleMs - HANDOFF_MS;
    if (!this.#local.park(key, s, e.needsReset, left, () => void s.quit(false))) await s.quit(false);
  }
}
