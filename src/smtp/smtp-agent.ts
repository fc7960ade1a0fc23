/*
 * smtp-agent - the SMTP and LMTP delivery agent (one program, two modes)
 *
 * SYNOPSIS
 *   master.cf: smtp unix - - n - - smtp
 *              lmtp unix - - n - - lmtp
 *   main.cf:   mailbox_transport = lmtp:unix:private/dovecot-lmtp
 *
 * DESCRIPTION
 *   As Postfix's smtp(8) and lmtp(8): the program run as "lmtp" speaks
 *   LMTP and reads the lmtp_* parameters, otherwise SMTP and smtp_*.
 *   For each request from qmgr it reads the envelope, finds the servers
 *   of the next hop (smtp-addr.ts; then smtp_fallback_relay), and tries
 *   them in turn: a server that cannot be reached or greets with an error
 *   is skipped, at most smtp_mx_session_limit sessions are started, and
 *   recipients that get a 4xx reply or that were not finished when a
 *   session broke are tried on the next server. 2xx and 5xx replies are
 *   final. What is left when the list runs out is deferred with the last
 *   reason. site_fail goes to qmgr only when no server could be talked to.
 *
 *   Connection reuse (smtp-cache.ts): with on-demand caching the agent
 *   keeps a session only when qmgr says that more mail waits for the
 *   destination (the request's DEL_REQ_FLAG.CONN_STORE) or the next hop is
 *   in smtp_connection_cache_destinations, and looks for a kept one when
 *   qmgr says so (CONN_LOAD). Kept sessions go to the scache service,
 *   through master, so that any agent process can carry the next message
 *   over a connection another one opened (a TLS session, or every session
 *   when master.cf has no scache, stays parked in this process), within
 *   smtp_connection_cache_time_limit, smtp_connection_reuse_time_limit and
 *   smtp_connection_reuse_count_limit. A reused connection shows as
 *   conn_use=N in the delivery log line.
 *
 *   With lmtp_assume_final, a recipient that an LMTP server without DSN
 *   accepted counts as delivered, not relayed, in its success notice.
 */
import { stat } from "node:fs/promises";
import type { ServerContext } from "../master/mail-server.js";
import { agentServer, type AgentResult } from "../master/agent-server.js";
import type { Config } from "../global/config.js";
import { DEL_REQ_VERIFY, type DeliveryRequest, type RcptResult } from "../global/deliver-proto.js";
import { DnsLookup } from "../global/dns-lookup.js";
import { contentLines, readEnvelope, type Envelope, type EnvelopeResult } from "../global/queue-file.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";
import { msg } from "../util/msg.js";
import {
  parseNexthop,
  parsePort,
  selfAddresses,
  serverList,
  type AddrSettings,
  type Server,
} from "./smtp-addr.js";
import { SessionError, SmtpSession, type SessionOptions, type SessionTls } from "./smtp-session.js";
import { clientTlsSettings, policyFor, policyKey, type ClientTlsSettings } from "./smtp-tls.js";
import { SaslClient } from "./smtp-sasl.js";
import {
  ContentError,
  transaction,
  type TransMessage,
  type TransRecipient,
  type TransSettings,
} from "./smtp-trans.js";
import { OutputFilter } from "./smtp-output.js";
import { AgentCache, type CacheSettings, type CachePolicy } from "./smtp-cache.js";

interface Settings {
  lmtp: boolean;
  prefix: string;
  session: SessionOptions;
  addr: AddrSettings;
  defaultPort: number;
  sessionLimit: number;
  fallback: string[];
  cache: CacheSettings;
  /** lmtp_assume_final: a server without DSN does final delivery ("delivered", not "relayed"). */
  assumeFinal: boolean;
  sendXforward: boolean;
  trans: Omit<TransSettings, "verify">;
  dns: DnsLookup;
  output: OutputFilter | null;
  sasl: SaslClient | null;
  paths: QueuePaths;
  queueDir: string;
  tls: ClientTlsSettings;
  minBackoffMs: number;
}

/** Reads the settings of one mode (smtp_* or lmtp_*). */
function settings(cfg: Config, lmtp: boolean, service: string): Settings {
  const x = lmtp ? "lmtp" : "smtp";
  const p = (n: string): string => `${x}_${n}`;
  const protos = cfg.list("inet_protocols").map((s) => s.toLowerCase());
  const all = protos.includes("all");
  const lookup = cfg.get(p("host_lookup")).toLowerCase();
  const pref = cfg.get(p("address_preference")).toLowerCase();
  const dnsLevel = cfg.get(p("dns_support_level")).toLowerCase();
  const port = parsePort(cfg.get(p("tcp_port")));
  if (port === null) return msg.fatal(`bad ${p("tcp_port")} value: ${cfg.get(p("tcp_port"))}`);
  return {
    lmtp,
    prefix: x,
    session: {
      lmtp,
      heloName: cfg.get(lmtp ? "lmtp_lhlo_name" : "smtp_helo_name"),
      timeouts: {
        connect: cfg.time(p("connect_timeout")),
        helo: cfg.time(lmtp ? "lmtp_lhlo_timeout" : "smtp_helo_timeout"),
        mail: cfg.time(p("mail_timeout")),
        rcpt: cfg.time(p("rcpt_timeout")),
        dataInit: cfg.time(p("data_init_timeout")),
        dataXfer: cfg.time(p("data_xfer_timeout")),
        dataDone: cfg.time(p("data_done_timeout")),
        quit: cfg.time(p("quit_timeout")),
        rset: cfg.time(p("rset_timeout")),
      },
      bindAddress: cfg.get(p("bind_address")),
      bindAddress6: cfg.get(p("bind_address6")),
      skip5xxGreeting: cfg.bool(p("skip_5xx_greeting")),
      neverSendEhlo: !lmtp && cfg.bool("smtp_never_send_ehlo"),
      tlsNoteOffer: cfg.bool(p("tls_note_starttls_offer")),
    },
    addr: {
      lmtp,
      hostLookup: {
        dns: dnsLevel !== "disabled" && /\bdns\b/.test(lookup),
        native: /\bnative\b/.test(lookup) || dnsLevel === "disabled",
      },
      protocols: { v4: all || protos.includes("ipv4"), v6: all || protos.includes("ipv6") },
      preference: pref === "ipv4" || pref === "ipv6" ? pref : "any",
      addressLimit: cfg.int(p("mx_address_limit")),
      deferIfNoMxAddress: cfg.bool(p("defer_if_no_mx_address_found")),
      myHostname: cfg.get("myhostname"),
      self: selfAddresses(cfg.list("inet_interfaces"), cfg.list("proxy_interfaces")),
    },
    defaultPort: port,
    sessionLimit: cfg.int(p("mx_session_limit")),
    fallback: cfg.list(p("fallback_relay")),
    cache: {
      service,
      onDemand: cfg.bool(p("connection_cache_on_demand")),
      destinations: new Set(cfg.list(p("connection_cache_destinations")).map((d) => d.toLowerCase())),
      idleMs:
        Math.min(cfg.time(p("connection_cache_time_limit")), cfg.time("connection_cache_ttl_limit")) * 1000,
      reuseAgeMs: cfg.time(p("connection_reuse_time_limit")) * 1000,
      reuseCount: cfg.int(p("connection_reuse_count_limit")),
      skipQuitResponse: cfg.bool(p("skip_quit_response")),
    },
    assumeFinal: lmtp && cfg.bool("lmtp_assume_final"),
    sendXforward: cfg.bool(p("send_xforward_command")),
    trans: {
      lmtp,
      quoteEnvelope: cfg.bool(p("quote_rfc821_envelope")),
      lineLimit: cfg.int(p("line_length_limit")),
      mimeConversion: !cfg.bool("disable_mime_output_conversion"),
    },
    dns: DnsLookup.fromConfig(cfg),
    output: outputFilter(cfg, x),
    sasl: SaslClient.fromConfig(cfg, x),
    paths: new QueuePaths(cfg),
    queueDir: cfg.get("queue_directory"),
    tls: clientTlsSettings(cfg, x),
    minBackoffMs: cfg.time("minimal_backoff_time") * 1000,
  };
}

/** The generic maps and output checks; a bad table name is fatal, as in Postfix. */
function outputFilter(cfg: Config, prefix: string): OutputFilter | null {
  try {
    return OutputFilter.fromConfig(cfg, prefix);
  } catch (err) {
    return msg.fatal((err as Error).message);
  }
}

const ENVELOPES_MAX = 200;
const envelopes = new Map<string, Promise<EnvelopeResult>>();

/**
 * The envelope of a queue file, shared by the requests for one message (a
 * message to many domains comes as many requests). What the agent uses of
 * it (sender, sizes, content offsets) never changes in a queue file; the
 * key has the inode and size so that a new file under the same name is
 * read afresh.
 */
async function envelopeOf(path: string): Promise<EnvelopeResult> {
  let key: string;
  try {
    const st = await stat(path);
    key = `${path}\0${st.ino}\0${st.size}`;
  } catch (err) {
    return { ok: false, offset: 0, reason: (err as Error).message };
  }
  const hit = envelopes.get(key);
  if (hit !== undefined) return hit;
  const p = readEnvelope(path);
  envelopes.set(key, p);
  if (envelopes.size > ENVELOPES_MAX) envelopes.delete(envelopes.keys().next().value ?? "");
  const r = await p;
  if (!r.ok) envelopes.delete(key);
  return r;
}

/** Every recipient gets the same result. */
function all(req: DeliveryRequest, r: RcptResult): RcptResult[] {
  return req.recipients.map(() => ({ ...r }));
}

/** The servers of the next hop; with the fallback relays' when the next hop's own lookup failed softly. */
async function candidates(
  st: Settings,
  req: DeliveryRequest,
): Promise<{ ok: true; servers: Server[]; fallback: boolean } | { ok: false; result: RcptResult }> {
  const hop = parseNexthop(req.nexthop, st.lmtp, st.defaultPort, st.queueDir);
  if (typeof hop === "string") {
    msg.warn(`${req.queueId}: ${hop}`);
    return {
      ok: false,
      result: { status: "deferred", dsn: "4.3.5", text: "mail system configuration error" },
    };
  }
  const list = await serverList(hop, st.addr, st.dns);
  if (list.ok)
    return { ok: true, servers: list.servers.map((s) => ({ ...s, dest: req.nexthop })), fallback: false };
  if (list.status === "deferred") {
    const fallback = await fallbackServers(st, req);
    if (fallback.length > 0) return { ok: true, servers: fallback, fallback: true };
  }
  return { ok: false, result: { status: list.status, dsn: list.dsn, text: list.text } };
}

/** The servers of smtp_fallback_relay (looked up only when needed). */
async function fallbackServers(st: Settings, req: DeliveryRequest): Promise<Server[]> {
  const out: Server[] = [];
  for (const f of st.fallback) {
    if (f.toLowerCase() === req.nexthop.toLowerCase()) continue;
    const fh = parseNexthop(f, st.lmtp, st.defaultPort, st.queueDir);
    if (typeof fh === "string") {
      msg.warn(`${st.prefix}_fallback_relay: ${fh}`);
      continue;
    }
    const fl = await serverList(fh, st.addr, st.dns);
    if (fl.ok) out.push(...fl.servers.map((s) => ({ ...s, dest: f })));
  }
  return out;
}

/** How a server attempt may use a kept session: by next hop then server, by server only, or not at all. */
type Reuse = "dest" | "endp" | "none";

/**
 * A kept session that is still fit (by next hop and/or this server, under the
 * same TLS policy and SASL identity), or a new one to this server: STARTTLS
 * as the policy asks (tls null: plaintext), then the SASL login.
 */
async function sessionFor(
  st: Settings,
  cache: AgentCache,
  run: Run,
  server: Server,
  reuse: Reuse,
  tls: SessionTls | null,
): Promise<SmtpSession> {
  const lookups =
    reuse === "none"
      ? []
      : [
          ...(reuse === "dest" ? [() => cache.takeDest(run.key, run.policy, st.session)] : []),
          () => cache.takeEndp(server, run.key, run.policy, st.session),
        ];
  for (const lookup of lookups) {
    for (let e = await lookup(); e !== null; e = await lookup()) {
      if (!e.session.usable || (e.needsReset && !(await e.session.reset()))) {
        e.session.close();
        continue;
      }
      return e.session;
    }
  }
  const sasl = st.sasl;
  const ctx = { sender: run.req.sender, dest: server.dest ?? run.req.nexthop, queueId: run.req.queueId };
  return SmtpSession.open(server, st.session, tls, sasl === null ? undefined : (s) => sasl.login(s, ctx));
}

/** What the transaction sends: the message (with generic maps and output checks) and the recipients on the wire. */
async function transInput(
  st: Settings,
  req: DeliveryRequest,
  path: string,
  env: Envelope,
): Promise<{ message: TransMessage; wire: TransRecipient[] }> {
  const out = st.output;
  const enc = req.attrs["encoding"] ?? "";
  const message: TransMessage = {
    sender: out !== null ? await out.mapAddress(req.sender) : req.sender,
    size: env.contentSize,
    eightBit: enc.toLowerCase() === "8bit" || enc === "8BITMIME",
    smtputf8: req.attrs["smtputf8"] === "1",
    ...(req.attrs["dsn_ret"] !== undefined ? { ret: req.attrs["dsn_ret"] } : {}),
    ...(req.attrs["dsn_envid"] !== undefined ? { envid: req.attrs["dsn_envid"] } : {}),
    ...(st.sendXforward ? { xforward: xforwardAttrs(req) } : {}),
    lines: () => (out !== null ? out.filter(contentLines(path, env), req.queueId) : contentLines(path, env)),
  };
  const wire: TransRecipient[] = [];
  for (const r of req.recipients)
    wire.push({ ...r, address: out !== null ? await out.mapAddress(r.address) : r.address });
  return { message, wire };
}

/** The state of one request's delivery across servers. */
interface Run {
  req: DeliveryRequest;
  /** The cache key: the next hop, the TLS policy, and the sender with sender-dependent SASL. */
  key: string;
  tls: SessionTls;
  message: TransMessage;
  wire: TransRecipient[];
  verify: boolean;
  /** Final results (2xx, 5xx) by recipient. */
  results: (RcptResult | undefined)[];
  /** The last temporary result of a recipient without a final one. */
  soft: RcptResult[];
  /** Sent to a server that announced DSN (which then owns NOTIFY=SUCCESS). */
  passedOn: boolean[];
  /** Delivered by a server that does final delivery (lmtp_assume_final): "delivered", not "relayed". */
  final: boolean[];
  relay: string;
  sessions: number;
  talked: boolean;
  connectMs: number;
  /** What qmgr's request allows of the connection cache. */
  policy: CachePolicy;
  /** How many transactions the session of the last attempt has carried (conn_use=). */
  connUse: number;
}

/**
 * Tries one server for the recipients without a final result: "next" to go
 * on, "stop" when nothing more can be done, "fresh" when a reused session
 * broke and the same server deserves a new connection.
 */
async function tryServer(
  st: Settings,
  cache: AgentCache,
  run: Run,
  server: Server,
  reuse: Reuse,
  plain = false,
): Promise<"next" | "stop" | "fresh" | "plain"> {
  const todo = run.results.flatMap((r, i) => (r === undefined ? [i] : []));
  let s: SmtpSession;
  const t0 = Date.now();
  try {
    s = await sessionFor(st, cache, run, server, plain ? "none" : reuse, plain ? null : run.tls);
    run.connectMs += Date.now() - t0;
  } catch (err) {
    if (!(err instanceof SessionError)) throw err;
    // As Postfix: opportunistic TLS that failed is retried in plaintext once the message has waited minimal_backoff_time.
    const waited = run.req.active - run.req.arrival >= st.minBackoffMs;
    if (err.retryPlain && !plain && (waited || run.verify)) return "plain";
    const r: RcptResult = { status: err.permanent ? "bounced" : "deferred", dsn: err.dsn, text: err.message };
    // A session that did not complete the handshake does not count for smtp_mx_session_limit.
    for (const i of todo) {
      if (err.permanent) run.results[i] = r;
      else run.soft[i] = r;
    }
    return "next";
  }
  run.sessions++;
  run.talked = true;
  run.relay = s.name;
  try {
    const rcpts = todo.map((i) => run.wire[i]).filter((r) => r !== undefined);
    const tr = await transaction(s, run.message, rcpts, { ...st.trans, verify: run.verify });
    tr.outcomes.forEach((o, k) => {
      const i = todo[k] as number;
      if (o.final) run.results[i] = o.result;
      else run.soft[i] = o.result;
      if (o.final && o.result.status === "sent" && s.features.dsn) run.passedOn[i] = true;
      else if (o.final && o.result.status === "sent" && st.assumeFinal) run.final[i] = true;
    });
    run.connUse = s.uses;
    // A TLS session is kept only with smtp_tls_connection_reuse (and then in this process only).
    const keep = tr.reusable && !plain && (s.tls === null || st.tls.connectionReuse);
    await cache.release(run.key, s, keep, tr.needsReset || run.verify, run.policy);
    return "next";
  } catch (err) {
    s.close();
    if (err instanceof ContentError) {
      msg.warn(`${run.req.queueId}: ${err.message}`);
      const r: RcptResult = {
        status: "deferred",
        dsn: "4.3.0",
        text: "error reading message: queue file read error",
      };
      for (const i of todo) run.results[i] = r;
      return "stop";
    }
    if (!(err instanceof SessionError)) throw err;
    for (const i of todo) run.soft[i] = { status: "deferred", dsn: err.dsn, text: err.message };
    if (s.uses > 1 && reuse !== "none") {
      run.sessions--;
      return "fresh";
    }
    return "next";
  }
}

/** Delivers one request. */
async function deliver(st: Settings, cache: AgentCache, req: DeliveryRequest): Promise<AgentResult> {
  const path = st.paths.path(req.queueName as QueueName, req.queueId);
  const e = await envelopeOf(path);
  if (!e.ok) {
    msg.warn(`${req.queueId}: queue file ${path}: ${e.reason} at offset ${e.offset}`);
    const r: RcptResult = { status: "deferred", dsn: "4.3.0", text: "queue file read error" };
    return { relay: "none", siteFail: false, results: all(req, r) };
  }
  const c = await candidates(st, req);
  if (!c.ok) return { relay: "none", siteFail: false, results: all(req, c.result) };
  const policy = await policyFor(st.tls, req.nexthop);
  if (policy.invalid !== null) {
    const r: RcptResult = { status: "deferred", dsn: "4.7.0", text: "client TLS configuration problem" };
    return { relay: "none", siteFail: false, results: all(req, r) };
  }
  const { message, wire } = await transInput(st, req, path, e.env);
  const run: Run = {
    req,
    key: `${req.nexthop.toLowerCase()}\0${policyKey(policy)}${st.sasl?.cacheKey(req.sender) ?? ""}`,
    tls: { settings: st.tls, policy, nexthop: req.nexthop },
    message,
    wire,
    verify: ((req.flags ?? 0) & DEL_REQ_VERIFY) !== 0,
    results: req.recipients.map(() => undefined),
    soft: [],
    passedOn: req.recipients.map(() => false),
    final: req.recipients.map(() => false),
    relay: "none",
    sessions: 0,
    talked: false,
    connectMs: 0,
    policy: cache.policy(req.nexthop, req.flags),
    connUse: 0,
  };
  // Attempts may take a kept session (the first by next hop); one that turns out stale is retried once, fresh.
  const attempts = c.servers.map((server, n): { server: Server; reuse: Reuse; plain: boolean } => ({
    server,
    reuse: n === 0 ? "dest" : "endp",
    plain: false,
  }));
  let fallbackAdded = c.fallback;
  for (let a = 0; run.results.includes(undefined); a++) {
    const limited = st.sessionLimit > 0 && run.sessions >= st.sessionLimit;
    if (a >= attempts.length || limited) {
      // The destination's servers are done (or smtp_mx_session_limit is reached): the fallback relays' turn.
      if (fallbackAdded) break;
      fallbackAdded = true;
      run.sessions = 0;
      attempts.length = a;
      attempts.push(
        ...(await fallbackServers(st, req)).map((server) => ({
          server,
          reuse: "endp" as const,
          plain: false,
        })),
      );
      if (a >= attempts.length) break;
    }
    const { server, reuse, plain } = attempts[a] as (typeof attempts)[number];
    const next = await tryServer(st, cache, run, server, reuse, plain);
    if (next === "stop") break;
    if (next === "fresh") attempts.splice(a + 1, 0, { server, reuse: "none", plain });
    if (next === "plain") attempts.splice(a + 1, 0, { server, reuse: "none", plain: true });
  }
  const final = run.results.map(
    (r, i) =>
      r ?? run.soft[i] ?? { status: "deferred" as const, dsn: "4.4.1", text: "no server could be reached" },
  );
  return {
    relay: run.relay,
    connectMs: run.connectMs,
    successPassedOn: run.passedOn,
    successFinal: run.final,
    ...(run.connUse > 1 ? { connUse: run.connUse } : {}),
    siteFail: !run.talked && final.every((r) => r.status === "deferred"),
    results: final,
  };
}

/** Runs the agent as smtp or lmtp. */
export function runAgent(mode: "smtp" | "lmtp"): Promise<void> {
  let st: Settings | null = null;
  let cache: AgentCache | null = null;
  return agentServer({
    name: mode,
    relays: true,
    preInit(ctx: ServerContext) {
      // Client certificates and keys, and password tables, are read while root, as in Postfix.
      st = settings(ctx.config, mode === "lmtp", ctx.service);
    },
    onStart(ctx: ServerContext) {
      if (st !== null) cache = new AgentCache(ctx.config, st.cache);
    },
    deliver(req) {
      if (st === null || cache === null) throw new Error(`${mode} agent not initialized`);
      return deliver(st, cache, req);
    },
  });
}

/** The original client's details as XFORWARD attributes (an empty value is sent as [UNAVAILABLE]). */
function xforwardAttrs(req: DeliveryRequest): Array<[string, string]> {
  const a = req.attrs;
  const ctx = a["rewrite_context"];
  return [
    ["NAME", a["client_name"] ?? ""],
    ["ADDR", a["client_address"] ?? ""],
    ["PROTO", a["protocol"] ?? ""],
    ["HELO", a["helo"] ?? ""],
    ["IDENT", a["log_ident"] ?? req.queueId],
    ["SOURCE", ctx === undefined ? "" : ctx === "local" ? "LOCAL" : "REMOTE"],
  ];
}
