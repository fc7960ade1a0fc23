/*
 * agent-server - the skeleton of a delivery agent
 *
 * SYNOPSIS
 *   agentServer({ name: "discard", deliver: async (req, ctx) => ({ results, siteFail }) });
 *
 * DESCRIPTION
 *   A delivery agent takes delivery requests from qmgr (deliver-proto.ts),
 *   one per connection, many connections at once. For each request the
 *   skeleton checks the request, calls deliver(), reports every bounced
 *   recipient to the message's bounce log and every deferred one to its
 *   defer log (bounce service, global/bounce-client.ts; with soft_bounce
 *   a bounce becomes a deferral; a bounce that cannot be logged becomes a
 *   deferral too, so that no failure goes unreported; a master.cf without
 *   the service draws a warning), reports every sent recipient that asked
 *   for NOTIFY=SUCCESS to its trace log ("delivered", or "relayed" for an
 *   agent that relays; none for one handed to a server that announced
 *   DSN, which now owns the request), marks every sent or
 *   bounced recipient done in the queue file (so that a crash after this
 *   point repeats nothing), logs one line per recipient in Postfix's format
 *   (ID: to=<...>, orig_to=<...>, relay=..., delay=..., delays=a/b/c/d,
 *   dsn=..., status=... (text)), and answers qmgr. A deliver() that throws
 *   defers its recipients with "4.3.0 unknown mail transport error".
 *
 *   A trace-only request (flags MTA_VRFY, a verify probe, or USR_VRFY,
 *   sendmail -bv; see agent-verify.ts) is answered by deliver() with what
 *   would happen, without delivering. Its results go to the verify
 *   service or the trace log instead of the bounce and defer logs, the
 *   log line says status=deliverable or status=undeliverable, the
 *   recipient is marked done, and qmgr is told "sent" so that nothing is
 *   retried or returned. With RECORD (sendmail -v) every outcome is also
 *   written to the trace log.
 */
import type { Socket } from "node:net";
import { serveAttrConnection } from "../util/attr-server.js";
import { attrList } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import {
  DELIVER_FRAME_MAX,
  DELIVER_PROTOCOL,
  encodeReply,
  parseRequest,
  traceOnly,
  type DeliveryReply,
  type DeliveryRequest,
  type RcptResult,
} from "../global/deliver-proto.js";
import { BounceClient } from "../global/bounce-client.js";
import { DSN_NOTIFY, markDone } from "../global/queue-file.js";
import { VerifyClient } from "../global/verify-client.js";
import { recordTrace, verifyReport, type VerifyEnv } from "./agent-verify.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";
import { QUEUE_NAMES } from "../global/queue-dirs.js";
import { multiServer, type ServerContext } from "./mail-server.js";

export interface AgentResult extends DeliveryReply {
  /** relay= in the log (e.g. "mx.example.net[192.0.2.1]:25", "none", "local"). */
  relay?: string;
  /** Milliseconds spent setting up the connection (the "c" of delays=). */
  connectMs?: number;
  /**
   * Recipients handed to a server that announced DSN: that server now owns
   * NOTIFY=SUCCESS (it was passed on), so no success notice is sent here.
   */
  successPassedOn?: boolean[];
  /**
   * Recipients delivered by a server that does final delivery (an LMTP
   * server without DSN, with lmtp_assume_final): their success notice
   * says "delivered" even from an agent that relays.
   */
  successFinal?: boolean[];
  /** How many transactions the connection has carried when it was reused (conn_use= in the log). */
  connUse?: number;
}

export interface AgentOptions {
  name: string;
  /** The agent hands mail on to another MTA: success notices say "relayed", not "delivered". */
  relays?: boolean;
  /** As root, before the privilege drop (mail-server.ts): client keys, root-only password tables. */
  preInit?: (ctx: ServerContext) => void;
  onStart?: (ctx: ServerContext) => void | Promise<void>;
  deliver: (req: DeliveryRequest, ctx: ServerContext) => Promise<AgentResult>;
}

/** Formats seconds the way Postfix's delay= does (two significant decimals). */
export function secs(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  return s >= 10 ? s.toFixed(0) : s >= 1 ? s.toFixed(1) : s.toFixed(2).replace(/^0\.00$/, "0");
}

/** Logs one recipient's outcome (word: the status= word when it is not the result's status). */
function logResult(
  req: DeliveryRequest,
  i: number,
  res: RcptResult,
  r: AgentResult,
  started: number,
  word: string = res.status,
): void {
  const rc = req.recipients[i];
  if (rc === undefined) return;
  const now = Date.now();
  const conn = r.connectMs ?? 0;
  const delays = [req.active - req.arrival, started - req.active, conn, now - started - conn]
    .map(secs)
    .join("/");
  const orig = rc.original !== "" && rc.original !== rc.address ? ` orig_to=<${rc.original}>,` : "";
  const use = r.connUse !== undefined && r.connUse > 1 ? ` conn_use=${r.connUse},` : "";
  msg.info(
    `${req.queueId}: to=<${rc.address}>,${orig} relay=${r.relay ?? "none"},${use} delay=${secs(now - req.arrival)}, delays=${delays}, dsn=${res.dsn}, status=${word} (${res.text})`,
  );
}

let unconfiguredWarned = false;

/** Reports a bounced or deferred recipient to its log; returns the result to keep (a bounce that cannot be logged is deferred). */
async function report(
  bounce: BounceClient,
  req: DeliveryRequest,
  i: number,
  res: RcptResult,
  relay: string | undefined,
  soft: boolean,
  relayed: boolean,
  passedOn: boolean,
): Promise<RcptResult> {
  const rc = req.recipients[i];
  if (rc === undefined) return res;
  if (res.status === "sent" && (passedOn || ((rc.notify ?? 0) & DSN_NOTIFY.SUCCESS) === 0)) return res;
  if (res.status === "bounced" && soft) res = { ...res, status: "deferred", dsn: res.dsn.replace(/^5/, "4") };
  const log = res.status === "bounced" ? "bounce" : res.status === "sent" ? "trace" : "defer";
  if (!bounce.configured(log)) {
    if (!unconfiguredWarned) msg.warn(`no ${log} service in master.cf: delivery status is not reported`);
    unconfiguredWarned = true;
    return res;
  }
  const r = await bounce.append(log, req.queueId, {
    recipient: rc.address,
    original_recipient: rc.original,
    ...(rc.orcpt !== undefined ? { dsn_orig_rcpt: rc.orcpt } : {}),
    ...(rc.notify !== undefined ? { dsn_notify: rc.notify } : {}),
    status: res.dsn,
    action: log === "bounce" ? "failed" : log === "defer" ? "delayed" : relayed ? "relayed" : "delivered",
    reason: res.text,
    ...(relay !== undefined ? { relay } : {}),
  });
  if (r.ok) return res;
  msg.warn(`${req.queueId}: ${r.reason}`);
  return log === "bounce"
    ? { status: "deferred", dsn: "4.3.0", text: "bounce or trace service failure" }
    : res;
}

/** Marks a recipient done; a failure defers it. */
async function done(path: string, req: DeliveryRequest, i: number): Promise<RcptResult | null> {
  const rc = req.recipients[i];
  if (rc === undefined) return null;
  try {
    await markDone(path, rc.offset);
    return null;
  } catch (err) {
    msg.warn(`${req.queueId}: cannot mark recipient done: ${(err as Error).message}`);
    return { status: "deferred", dsn: "4.3.0", text: "cannot update queue file" };
  }
}

/** Reports the results of a trace-only request (agent-verify.ts); qmgr sees "sent" for each reported one. */
async function handleTraceOnly(
  venv: VerifyEnv,
  path: string,
  req: DeliveryRequest,
  r: AgentResult,
  started: number,
): Promise<DeliveryReply> {
  const out: RcptResult[] = [];
  for (let i = 0; i < r.results.length; i++) {
    const v = await verifyReport(venv, req, i, r.results[i] as RcptResult, r.relay);
    const failed = v.done ? await done(path, req, i) : null;
    const res = failed ?? v.result;
    logResult(req, i, res, r, started, failed === null ? v.word : res.status);
    out.push(v.done && failed === null ? { ...res, status: "sent" } : res);
  }
  return { results: out, siteFail: r.siteFail };
}

/** Handles one delivery request. */
async function handle(
  opts: AgentOptions,
  ctx: ServerContext,
  paths: QueuePaths,
  venv: VerifyEnv,
  req: DeliveryRequest,
): Promise<DeliveryReply> {
  const bounce = venv.bounce;
  const started = Date.now();
  let r: AgentResult;
  try {
    r = await opts.deliver(req, ctx);
    if (r.results.length !== req.recipients.length)
      throw new Error("result count does not match the request");
  } catch (err) {
    msg.warn(`${req.queueId}: ${err instanceof Error ? err.message : String(err)}`);
    r = {
      results: req.recipients.map(() => ({
        status: "deferred",
        dsn: "4.3.0",
        text: "unknown mail transport error",
      })),
      siteFail: false,
    };
  }
  const path = paths.path(req.queueName as QueueName, req.queueId);
  if (traceOnly(req.flags)) return handleTraceOnly(venv, path, req, r, started);
  const soft = ctx.config.bool("soft_bounce");
  for (let i = 0; i < r.results.length; i++) {
    const relayed = opts.relays === true && r.successFinal?.[i] !== true;
    const passedOn = r.successPassedOn?.[i] === true;
    const res = await report(bounce, req, i, r.results[i] as RcptResult, r.relay, soft, relayed, passedOn);
    await recordTrace(venv, req, i, res, r.relay, relayed);
    r.results[i] = res;
    if (res.status !== "deferred") r.results[i] = (await done(path, req, i)) ?? res;
    logResult(req, i, r.results[i] as RcptResult, r, started);
  }
  return { results: r.results, siteFail: r.siteFail };
}

/** Serves one qmgr connection. */
async function serveAgent(
  opts: AgentOptions,
  ctx: ServerContext,
  paths: QueuePaths,
  venv: VerifyEnv,
  sock: Socket,
): Promise<void> {
  const conn = serveAttrConnection(sock, {
    protocol: DELIVER_PROTOCOL,
    maxFrame: DELIVER_FRAME_MAX,
    idleTimeoutMs: ctx.config.time("ipc_timeout") * 1000,
    handler: async (attrs) => {
      const req = parseRequest(attrs);
      if (typeof req === "string") throw new Error(`bad delivery request: ${req}`);
      if (!(QUEUE_NAMES as readonly string[]).includes(req.queueName)) throw new Error("bad queue name");
      const reply = await handle(opts, ctx, paths, venv, req);
      // The delivery lines go out before qmgr hears the result (and logs "removed"), as in Postfix:
      // log tools such as logwatch read them in that order.
      msg.flush();
      return attrList(encodeReply(reply));
    },
  });
  await conn.done;
}

/** Starts a delivery agent. */
export function agentServer(opts: AgentOptions): Promise<void> {
  let paths: QueuePaths | null = null;
  let venv: VerifyEnv | null = null;
  return multiServer({
    name: opts.name,
    ...(opts.preInit !== undefined ? { preInit: opts.preInit } : {}),
    async onStart(ctx) {
      paths = new QueuePaths(ctx.config);
      venv = {
        cfg: ctx.config,
        bounce: BounceClient.fromConfig(ctx.config),
        verify: VerifyClient.fromConfig(ctx.config),
      };
      await opts.onStart?.(ctx);
    },
    async onConnection(sock, ctx) {
      if (paths !== null && venv !== null) await serveAgent(opts, ctx, paths, venv, sock);
    },
  });
}
