/*
 * scache - the shared SMTP connection cache (Postfix's scache(8))
 *
 * SYNOPSIS
 *   master.cf: scache unix - - y - 1 scache
 *
 * DESCRIPTION
 *   One process that every smtp and lmtp agent process talks to
 *   (scache-proto.ts), so that a connection one agent process opened can
 *   carry the next message to the same destination in another. The idle
 *   sockets travel through master (master-proto.ts, cachefd): an agent
 *   asks to save, then hands the socket over; a find hands it to the
 *   asking agent's process. A socket that arrives without a matching save
 *   request from that process (within connection_cache_protocol_timeout)
 *   is closed.
 *
 *   A connection is kept for the time to live the agent asked for, at most
 *   connection_cache_ttl_limit, then closed. A held connection whose
 *   server closes it, or sends anything at all (a 421 before a timeout, say),
 *   is closed and forgotten. At most SESSIONS_MAX connections are held.
 *   Every connection_cache_status_update_time the cache logs its
 *   statistics as Postfix does ("statistics: start interval ...",
 *   "domain lookup hits=...", "address lookup hits=...", "max simultaneous
 *   domains=... addresses=... connection=...").
 */
import type { Socket } from "node:net";
import type { AttrList } from "../util/attr-codec.js";
import type { AttrValueOf } from "../util/attr-schema.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import {
  SCACHE_FRAME_MAX,
  SCACHE_PROTOCOL,
  ScacheReply,
  ScacheRequest,
  newToken,
} from "../global/scache-proto.js";
import {
  multiServer,
  onCacheSocket,
  sendCacheSocket,
  sharedCapacity,
  type ServerContext,
} from "../master/mail-server.js";
import { ScacheTable, statsLines } from "./scache-table.js";

/** The most connections the cache holds. */
const SESSIONS_MAX = 1000;
/** The most announced saves whose socket has not come yet. */
const PENDING_MAX = 256;

interface PendingSave {
  pid: number;
  ttlMs: number;
  endpLabel: string;
  endpProp: string;
  destLabel: string | undefined;
  destProp: string;
  timer: NodeJS.Timeout;
}

interface State {
  table: ScacheTable<Socket>;
  pending: Map<string, PendingSave>;
  ttlLimitMs: number;
  protocolMs: number;
  idleMs: number;
}

type Request = AttrValueOf<typeof ScacheRequest.shape>;

let state: State | null = null;

/** Reads the configuration, starts the statistics timer and takes sockets from master. */
function start(ctx: ServerContext): void {
  if (ctx.args.length > 0) msg.fatal(`unexpected command-line argument: ${ctx.args[0] ?? ""}`);
  const cfg = ctx.config;
  const st: State = {
    table: new ScacheTable<Socket>({ maxSessions: Math.min(SESSIONS_MAX, Math.floor(sharedCapacity() / 2)) }),
    pending: new Map(),
    ttlLimitMs: cfg.time("connection_cache_ttl_limit") * 1000,
    protocolMs: cfg.time("connection_cache_protocol_timeout") * 1000,
    idleMs: cfg.time("max_idle") * 1000,
  };
  state = st;
  let since = new Date();
  const every = Math.max(1, cfg.time("connection_cache_status_update_time")) * 1000;
  setInterval(() => {
    for (const line of statsLines(st.table.takeStats(), since)) msg.info(line);
    since = new Date();
  }, every).unref();
  onCacheSocket((token, sock, from) => arrived(st, token, sock, from));
}

/** A socket from an agent: kept when a save from that process announced it, closed otherwise. */
function arrived(st: State, token: string, sock: Socket, from: number | undefined): void {
  const p = st.pending.get(token);
  if (p === undefined || p.pid !== from) {
    msg.warn(`connection from pid ${from ?? "?"} without a matching save request: closed`);
    sock.destroy();
    return;
  }
  st.pending.delete(token);
  clearTimeout(p.timer);
  if (!st.table.saveEndp(p.endpLabel, p.endpProp, sock, p.ttlMs)) {
    sock.destroy();
    return;
  }
  if (p.destLabel !== undefined) st.table.saveDest(p.destLabel, p.destProp, p.endpLabel, p.ttlMs);
  // An idle server says nothing: any byte (a 421, say) or its close ends the connection.
  const gone = (): void => {
    if (st.table.drop(sock)) sock.destroy();
  };
  sock.on("data", gone);
  sock.on("end", gone);
  sock.on("close", gone);
}

/** Records an announced save; its socket must come within the protocol time limit. */
function save(st: State, r: Request): AttrList {
  if (r.ttl === undefined || r.endp_label === undefined || r.token === undefined)
    return bad("save without ttl, endp_label or token");
  if (!st.table.hasRoom || st.pending.size >= PENDING_MAX || st.pending.has(r.token))
    return ScacheReply.build({ status: "fail" });
  const token = r.token;
  st.pending.set(token, {
    pid: r.pid,
    ttlMs: Math.min(r.ttl * 1000, st.ttlLimitMs),
    endpLabel: r.endp_label,
    endpProp: r.endp_prop ?? "",
    destLabel: r.dest_label,
    destProp: r.dest_prop ?? "",
    timer: setTimeout(() => st.pending.delete(token), st.protocolMs).unref(),
  });
  return ScacheReply.build({ status: "ok" });
}

/** Hands a cached connection to the asking process. */
async function find(st: State, r: Request): Promise<AttrList> {
  const label = r.request === "find_dest" ? r.dest_label : r.endp_label;
  if (label === undefined) return bad(`${r.request} without a label`);
  for (;;) {
    const hit = r.request === "find_dest" ? st.table.findDest(label) : st.table.findEndp(label);
    if (hit === null) return ScacheReply.build({ status: "none" });
    const sock = hit.item;
    sock.removeAllListeners("data");
    sock.removeAllListeners("end");
    sock.removeAllListeners("close");
    const token = newToken();
    if (!(await sendCacheSocket(sock, token, r.pid))) {
      sock.destroy();
      continue;
    }
    return ScacheReply.build({
      status: "ok",
      endp_label: hit.endpLabel,
      endp_prop: hit.endpProp,
      dest_prop: hit.destProp,
      token,
    });
  }
}

/** A warning and a failure reply for a bad request. */
function bad(why: string): AttrList {
  msg.warn(`bad scache request: ${why}`);
  return ScacheReply.build({ status: "fail" });
}

/** Answers one request. */
async function answer(st: State, req: AttrList): Promise<AttrList> {
  const p = ScacheRequest.parse(req);
  if (!p.ok) return bad(p.error);
  return p.value.request === "save" ? save(st, p.value) : find(st, p.value);
}

/** Serves one agent's connection. */
async function serve(socket: Socket): Promise<void> {
  const st = state;
  if (st === null) return msg.panic("scache: connection before start-up");
  const conn = serveAttrConnection(socket, {
    protocol: SCACHE_PROTOCOL,
    maxFrame: SCACHE_FRAME_MAX,
    idleTimeoutMs: st.idleMs,
    handler: (req) => answer(st, req),
  });
  await conn.done;
}

await multiServer({ name: "scache", capacity: sharedCapacity, onStart: start, onConnection: serve });
