/*
 * trivial-rewrite - the address rewriting and resolving service
 *
 * SYNOPSIS
 *   master.cf: rewrite unix - - n - - trivial-rewrite
 *
 * DESCRIPTION
 *   Answers two requests (global/rewrite-proto.ts) from cleanup, qmgr,
 *   smtpd and other clients (global/rewrite-client.ts):
 *     rewrite  an address to canonical form in the "local" context
 *              ($myorigin, $mydomain) or the "remote" context
 *              ($remote_header_rewrite_domain): global/rewrite-addr.ts
 *     resolve  an address to (transport, nexthop, recipient, flags):
 *              local, virtual alias, virtual mailbox, relay or default
 *              class, transport_maps, relocated_maps, sender-dependent
 *              relayhost and default transport: global/resolve-addr.ts;
 *              in the "regular" context (delivery) or, when the request
 *              says so, the "verify" context (address verification
 *              probes: the address_verify_* parameters)
 *   Each process serves many clients at once (multiServer), each client
 *   any number of requests on one connection. The tables are opened once
 *   per process, at start; a main.cf change is seen by new processes
 *   ("postern reload" replaces the running ones).
 *
 *   Table failures are answered with a tempfail, never with a wrong route.
 *
 * CONFIGURATION PARAMETERS
 *   mydestination, inet_interfaces, proxy_interfaces  local domains
 *   virtual_alias_domains, virtual_mailbox_domains, relay_domains
 *   local_transport, virtual_transport, relay_transport, default_transport
 *   relayhost, sender_dependent_relayhost_maps,
 *   sender_dependent_default_transport_maps, transport_maps, relocated_maps
 *   address_verify_local_transport, address_verify_virtual_transport,
 *   address_verify_relay_transport, address_verify_default_transport,
 *   address_verify_relayhost, address_verify_transport_maps,
 *   address_verify_sender_dependent_relayhost_maps,
 *   address_verify_sender_dependent_default_transport_maps
 *              the same for the "verify" context (default: the above)
 *   swap_bangpath, allow_percent_hack, append_at_myorigin,
 *   append_dot_mydomain, resolve_dequoted_address, resolve_null_domain,
 *   resolve_numeric_domain, allow_min_user, recipient_delimiter
 *   max_idle   a connection without requests for this long is closed
 */
import type { Socket } from "node:net";
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import "../global/dict-servers.js";
import { Resolver } from "../global/resolve-addr.js";
import { rewriteParams } from "../global/rewrite-addr.js";
import { REWRITE_FRAME_MAX, REWRITE_PROTOCOL } from "../global/rewrite-proto.js";
import { multiServer, type ServerContext } from "../master/mail-server.js";
import { rewriteHandler, type RewriteServiceState } from "./trivial-rewrite-serve.js";

let state: RewriteServiceState | null = null;
let idleMs = 100_000;

/** Reads the configuration and opens the tables, once per process. */
async function start(ctx: ServerContext): Promise<void> {
  if (ctx.args.length > 0) msg.fatal(`unexpected command-line argument: ${ctx.args[0] ?? ""}`);
  idleMs = ctx.config.time("max_idle") * 1000;
  state = { resolver: await Resolver.create(ctx.config), rewrite: rewriteParams(ctx.config) };
}

/** Serves one client connection until it ends. */
async function serve(socket: Socket): Promise<void> {
  if (state === null) return msg.panic("trivial-rewrite: connection before start-up");
  const conn = serveAttrConnection(socket, {
    protocol: REWRITE_PROTOCOL,
    maxFrame: REWRITE_FRAME_MAX,
    idleTimeoutMs: idleMs,
    handler: rewriteHandler(state),
  });
  const end = await conn.done;
  msg.debug(`connection ended after ${end.requests} requests: ${end.reason}`);
}

// The tables (transport_maps, relocated_maps, ...) are opened while root, as in Postfix.
await multiServer({ name: "trivial-rewrite", preInit: start, onConnection: serve });
