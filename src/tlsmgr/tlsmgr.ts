/*
 * tlsmgr - the TLS session cache and ticket key manager
 *
 * SYNOPSIS
 *   master.cf: tlsmgr unix - - y 1000? 1 tlsmgr
 *
 * DESCRIPTION
 *   Answers the requests of global/tlsmgr-proto.ts from smtpd processes
 *   (the session ticket key, the smtpd session cache) and from the smtp
 *   and lmtp agents (their session caches), through
 *   global/tlsmgr-client.ts. One process serves every client at once, so
 *   every smtpd process encrypts tickets with the same key and a client
 *   may resume with any of them.
 *
 *   The ticket key comes from the system's strong random source (Node's
 *   crypto.randomBytes) and is replaced every
 *   smtpd_tls_session_cache_timeout (see tlsmgr-cache.ts for why one key
 *   and not Postfix's two). tls_session_ticket_cipher empty or a timeout
 *   of 0 turns tickets off. Postfix raises a timeout below 120 seconds to
 *   120; Postern uses it as given.
 *
 *   The session caches live in this process's memory only: each holds at
 *   most 10000 sessions and 8 MB, and expired entries are swept every 30
 *   seconds and at each master wakeup. They are lost when tlsmgr
 *   restarts, as Postfix's tlsmgr empties its cache files when it starts;
 *   the *_tls_session_cache_database parameters turn a cache on in the
 *   clients, but no file is written (a lost cache costs one full
 *   handshake per peer).
 *
 * CONFIGURATION PARAMETERS
 *   smtpd_tls_session_cache_timeout   the ticket key lifetime
 *   tls_session_ticket_cipher         empty: no tickets
 *   max_idle                          a connection without requests for this long is closed
 */
import type { Socket } from "node:net";
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import { TLSMGR_FRAME_MAX, TLSMGR_PROTOCOL } from "../global/tlsmgr-proto.js";
import { multiServer, sharedCapacity, type ServerContext } from "../master/mail-server.js";
import { TlsmgrService } from "./tlsmgr-service.js";

const CACHE_LIMITS = { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 };
const SWEEP_MS = 30_000;

let service: TlsmgrService | null = null;
let idleMs = 100_000;

/** Reads the configuration once per process. */
function start(ctx: ServerContext): void {
  if (ctx.args.length > 0) msg.fatal(`unexpected command-line argument: ${ctx.args[0] ?? ""}`);
  idleMs = ctx.config.time("max_idle") * 1000;
  const tickets = ctx.config.get("tls_session_ticket_cipher").trim() !== "";
  const timeout = ctx.config.time("smtpd_tls_session_cache_timeout");
  const svc = new TlsmgrService({ ticketLifetime: tickets ? timeout : 0, limits: CACHE_LIMITS });
  service = svc;
  setInterval(() => svc.sweep(), SWEEP_MS).unref();
}

/** Serves one client connection until it ends. */
async function serve(socket: Socket): Promise<void> {
  const svc = service;
  if (svc === null) return msg.panic("tlsmgr: connection before start-up");
  const conn = serveAttrConnection(socket, {
    protocol: TLSMGR_PROTOCOL,
    maxFrame: TLSMGR_FRAME_MAX,
    idleTimeoutMs: idleMs,
    handler: (req) => Promise.resolve(svc.answer(req)),
  });
  await conn.done;
}

await multiServer({
  name: "tlsmgr",
  capacity: sharedCapacity,
  onStart: start,
  onConnection: serve,
  onTrigger: () => {
    service?.sweep();
  },
});
