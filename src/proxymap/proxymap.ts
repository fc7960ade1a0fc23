/*
 * proxymap - the table lookup service for jailed daemons (proxy: tables)
 *
 * SYNOPSIS
 *   master.cf: proxymap unix - - n - - proxymap
 *
 * DESCRIPTION
 *   proxymap looks keys up in tables on behalf of other processes: a
 *   daemon that runs jailed (chroot=y) cannot read a table outside the
 *   queue directory, and many processes can share one open table (one
 *   database connection instead of one per process). A client names the
 *   table as proxy:type:name (global/dict-proxy.ts); the requests and
 *   replies are in global/proxymap-proto.ts.
 *
 *   Only tables approved by proxy_read_maps are opened (proxymap-allow.ts);
 *   anything else is refused, and the log says how to approve it. Each
 *   process serves many clients at once (multiServer); found, not found
 *   and temporary failure travel back as they are (proxymap-serve.ts).
 *   proxymap itself should not run jailed: it must read the tables.
 *
 *   The service name must be "proxymap" (or $proxymap_service). Postfix's
 *   read-write service, proxywrite, is not implemented: it is refused at
 *   start with a message saying so.
 *
 * CONFIGURATION PARAMETERS
 *   proxy_read_maps, smtpd_restriction_classes  the approved tables
 *   internal_frame_limit  largest request or reply
 *   max_idle              a connection without requests for this long is
 *                         closed (the client reconnects when it needs to)
 */
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import { PROXYMAP_PROTOCOL } from "../global/proxymap-proto.js";
import { multiServer, type ServerContext } from "../master/mail-server.js";
import { proxyAllowList } from "./proxymap-allow.js";
import { proxymapSession, type ProxymapState } from "./proxymap-serve.js";

interface Settings {
  state: ProxymapState;
  maxFrame: number;
  idleMs: number;
}

let settings: Settings | null = null;

/** Checks the service name and arguments, reads the allow list and limits. */
function start(ctx: ServerContext): void {
  if (ctx.service === "proxywrite")
    msg.fatal("the proxywrite service (table updates through proxymap) is not supported by this Postern");
  if (ctx.service !== "proxymap" && ctx.service !== ctx.config.get("proxymap_service"))
    msg.fatal(`invalid service name: "${ctx.service}" - service name must be "proxymap"`);
  if (ctx.args.length > 0) msg.fatal(`unexpected command-line argument: ${ctx.args[0] ?? ""}`);
  const allowed = proxyAllowList(ctx.config);
  settings = {
    state: { allowed, service: ctx.service },
    maxFrame: ctx.config.int("internal_frame_limit"),
    idleMs: ctx.config.time("max_idle") * 1000,
  };
  msg.debug(`${allowed.size} approved tables: ${[...allowed].join(", ")}`);
}

/** Serves one client connection until it ends. */
async function serve(socket: Parameters<typeof serveAttrConnection>[0]): Promise<void> {
  if (settings === null) return msg.panic("proxymap: connection before start-up");
  const session = proxymapSession(settings.state);
  const conn = serveAttrConnection(socket, {
    protocol: PROXYMAP_PROTOCOL,
    maxFrame: settings.maxFrame,
    idleTimeoutMs: settings.idleMs,
    handler: session.handler,
  });
  try {
    const end = await conn.done;
    msg.debug(`connection ended after ${end.requests} requests: ${end.reason}`);
  } finally {
    session.close();
  }
}

await multiServer({ name: "proxymap", onStart: start, onConnection: serve });
