/*
 * agent-server - the skeleton of a delivery agent
 *
 * SYNOPSIS
 *   agentServer({ name: "discard", deliver: async (req, ctx) => ({ results, siteFail }) });
 *
 * DESCRIPTION
 *   A delivery agent takes delivery requests from qmgr (deliver-proto.ts),
 *   one per connection, many connections at once. For each request the
 *   skeleton checks the request, calls deliver(), marks every sent or
 *   bounced recipient done in the queue file (so that a crash after this
 *   point repeats nothing), logs one line per recipient in Postfix's format
 *   (ID: to=<...>, orig_to=<...>, relay=..., delay=..., delays=a/b/c/d,
 *   dsn=..., status=... (text)), and answers qmgr. A deliver() that throws
 *   defers its recipients with "4.3.0 unknown mail transport error".
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
  type DeliveryReply,
  type DeliveryRequest,
  type RcptResult,
} from "../global/deliver-proto.js";
import { markDone } from "../global/queue-file.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";
import { QUEUE_NAMES } from "../global/queue-dirs.js";
import { multiServer, type ServerContext } from "./mail-server.js";

export interface AgentResult extends DeliveryReply {
  /** relay= in the log (e.g. "mx.example.net[192.0.2.1]:25", "none", "local"). */
  relay?: string;
  /** Milliseconds spent setting up the connection (the "c" of delays=). */
  connectMs?: number;
}

export interface AgentOptions {
  name: string;
  onStart?: (ctx: ServerContext) => void | Promise<void>;
  deliver: (req: DeliveryRequest, ctx: ServerContext) => Promise<AgentResult>;
}

/** Formats seconds the way Postfix's delay= does (two significant decimals). */
function secs(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  return s >= 10 ? s.toFixed(0) : s >= 1 ? s.toFixed(1) : s.toFixed(2).replace(/^0\.00$/, "0");
}

/** Logs one recipient's outcome. */
function logResult(req: DeliveryRequest, i: number, res: RcptResult, r: AgentResult, started: number): void {
  const rc = req.recipients[i];
  if (rc === undefined) return;
  const now = Date.now();
  const conn = r.connectMs ?? 0;
  const delays = [req.active - req.arrival, started - req.active, conn, now - started - conn]
    .map(secs)
    .join("/");
  const orig = rc.original !== "" && rc.original !== rc.address ? ` orig_to=<${rc.original}>,` : "";
  msg.info(
    `${req.queueId}: to=<${rc.address}>,${orig} relay=${r.relay ?? "none"}, delay=${secs(now - req.arrival)}, delays=${delays}, dsn=${res.dsn}, status=${res.status} (${res.text})`,
  );
}

/** Handles one delivery request. */
async function handle(
  opts: AgentOptions,
  ctx: ServerContext,
  paths: QueuePaths,
  req: DeliveryRequest,
): Promise<DeliveryReply> {
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
  for (let i = 0; i < r.results.length; i++) {
    const res = r.results[i] as RcptResult;
    const rc = req.recipients[i];
    if (rc !== undefined && res.status !== "deferred") {
      try {
        await markDone(path, rc.offset);
      } catch (err) {
        msg.warn(`${req.queueId}: cannot mark recipient done: ${(err as Error).message}`);
        r.results[i] = { status: "deferred", dsn: "4.3.0", text: "cannot update queue file" };
      }
    }
    logResult(req, i, r.results[i] as RcptResult, r, started);
  }
  return { results: r.results, siteFail: r.siteFail };
}

/** Serves one qmgr connection. */
async function serveAgent(
  opts: AgentOptions,
  ctx: ServerContext,
  paths: QueuePaths,
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
      const reply = await handle(opts, ctx, paths, req);
      return attrList(encodeReply(reply));
    },
  });
  await conn.done;
}

/** Starts a delivery agent. */
export function agentServer(opts: AgentOptions): Promise<void> {
  let paths: QueuePaths | null = null;
  return multiServer({
    name: opts.name,
    async onStart(ctx) {
      paths = new QueuePaths(ctx.config);
      await opts.onStart?.(ctx);
    },
    async onConnection(sock, ctx) {
      if (paths !== null) await serveAgent(opts, ctx, paths, sock);
    },
  });
}
