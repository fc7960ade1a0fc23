/*
 * anvil - the client connection and rate counting service
 *
 * SYNOPSIS
 *   master.cf: anvil unix - - n - 1 anvil
 *
 * DESCRIPTION
 *   Answers the requests of global/anvil-proto.ts from smtpd processes
 *   (global/anvil-client.ts) with the counters of anvil-table.ts. One
 *   process serves every client at once (master.cf maxproc counts
 *   processes for anvil; each smtpd process keeps a connection), so the
 *   counts are global. The connect
 *   events of a client connection are undone when it ends. Idle entries
 *   are swept every anvil_rate_time_unit.
 *
 * CONFIGURATION PARAMETERS
 *   anvil_rate_time_unit   the window of the rates
 *   max_idle               a connection without requests for this long is closed
 */
import type { Socket } from "node:net";
import type { AttrList } from "../util/attr-codec.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import { ANVIL_FRAME_MAX, ANVIL_PROTOCOL, AnvilReply, AnvilRequest } from "../global/anvil-proto.js";
import { multiServer, sharedCapacity, type ServerContext } from "../master/mail-server.js";
import { AnvilTable } from "./anvil-table.js";

let table: AnvilTable | null = null;
let idleMs = 100_000;

/** Reads the configuration once per process. */
function start(ctx: ServerContext): void {
  if (ctx.args.length > 0) msg.fatal(`unexpected command-line argument: ${ctx.args[0] ?? ""}`);
  const unit = ctx.config.time("anvil_rate_time_unit") * 1000;
  idleMs = ctx.config.time("max_idle") * 1000;
  const t = new AnvilTable(unit);
  table = t;
  setInterval(() => t.sweep(), unit).unref();
}

/** Answers one request; "connect" events are remembered per client connection. */
function answer(t: AnvilTable, req: AttrList, mine: Map<string, number>): AttrList {
  const p = AnvilRequest.parse(req);
  if (!p.ok) {
    msg.warn(`bad anvil request: ${p.error}`);
    return AnvilReply.build({ status: "fail" });
  }
  const { request, ident } = p.value;
  switch (request) {
    case "connect": {
      mine.set(ident, (mine.get(ident) ?? 0) + 1);
      return AnvilReply.build({ status: "ok", ...t.connect(ident) });
    }
    case "disconnect": {
      const n = mine.get(ident) ?? 0;
      if (n > 0) {
        t.disconnect(ident);
        if (n === 1) mine.delete(ident);
        else mine.set(ident, n - 1);
      }
      return AnvilReply.build({ status: "ok" });
    }
    case "message":
      return AnvilReply.build({ status: "ok", rate: t.message(ident) });
    case "recipient":
      return AnvilReply.build({ status: "ok", rate: t.recipient(ident) });
    case "newtls":
      return AnvilReply.build({ status: "ok", rate: t.newTls(ident) });
    case "newtls_stat":
      return AnvilReply.build({ status: "ok", rate: t.newTlsStat(ident) });
    case "auth":
      return AnvilReply.build({ status: "ok", rate: t.auth(ident) });
    case "lookup":
      return AnvilReply.build({ status: "ok", ...t.lookup(ident) });
  }
}

/** Serves one client connection until it ends, then undoes its open sessions. */
async function serve(socket: Socket): Promise<void> {
  const t = table;
  if (t === null) return msg.panic("anvil: connection before start-up");
  const mine = new Map<string, number>();
  const conn = serveAttrConnection(socket, {
    protocol: ANVIL_PROTOCOL,
    maxFrame: ANVIL_FRAME_MAX,
    idleTimeoutMs: idleMs,
    handler: (req) => Promise.resolve(answer(t, req, mine)),
  });
  await conn.done;
  for (const [ident, n] of mine) for (let i = 0; i < n; i++) t.disconnect(ident);
}

await multiServer({ name: "anvil", capacity: sharedCapacity, onStart: start, onConnection: serve });
