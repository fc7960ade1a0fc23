/*
 * smtpd-policy - check_policy_service: Postfix's policy delegation protocol
 *
 * SYNOPSIS
 *   smtpd_recipient_restrictions = ..., check_policy_service inet:127.0.0.1:10023
 *   check_policy_service { unix:private/policy, timeout=10s,
 *       default_action=DUNNO, max_idle=60s, max_ttl=600s, request_limit=100,
 *       try_limit=2, policy_context=submission }
 *
 * DESCRIPTION
 *   Sends the session's attributes as "name=value" lines ending in an empty
 *   line (request=smtpd_access_policy, protocol_state, client_address, ...)
 *   and reads "action=..." lines ending in an empty line; the action is an
 *   access(5) result. A unix: path is relative to queue_directory; a
 *   bare path is a unix socket too.
 *
 *   Connections are persistent and shared by the sessions of a process,
 *   one request at a time per connection; a connection is closed after
 *   smtpd_policy_service_max_idle without use, smtpd_policy_service_max_ttl
 *   after it was opened, or smtpd_policy_service_request_limit requests. A
 *   request that cannot be written, a reply that does not arrive within
 *   smtpd_policy_service_timeout, a reply without an action, or a line
 *   over the limit closes the connection; the request is tried again on a
 *   new connection (smtpd_policy_service_try_limit tries in all), and then
 *   smtpd_policy_service_default_action is the result (a temporary
 *   failure by default, so a dead policy server never lets mail through).
 */
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { msg } from "../util/msg.js";
import type { CheckContext } from "./smtpd-check.js";

const LINE_MAX = 4096;
const REPLY_MAX = 16384;

export interface PolicySettings {
  endpoint: string;
  timeoutMs: number;
  maxIdleMs: number;
  maxTtlMs: number;
  requestLimit: number;
  tryLimit: number;
  defaultAction: string;
  context: string;
}

/** One persistent connection to a policy server. */
class PolicyConn {
  #sock: Socket;
  #buf = "";
  #waiter: (() => void) | null = null;
  #born = Date.now();
  #used = 0;
  #idle: NodeJS.Timeout | null = null;
  closed = false;

  /** Wraps a connected socket. */
  constructor(sock: Socket) {
    this.#sock = sock;
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      this.#buf += d;
      if (this.#buf.length > REPLY_MAX) this.close();
      this.#wake();
    });
    sock.on("close", () => this.close());
    sock.on("error", () => this.close());
  }

  /** Whether the connection may take another request. */
  usable(s: PolicySettings): boolean {
    const limit = s.requestLimit > 0 && this.#used >= s.requestLimit;
    return !this.closed && !limit && Date.now() - this.#born < s.maxTtlMs;
  }

  /** Wakes the reader. */
  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** Sends a request and reads the reply's attributes; null on any failure. */
  async ask(request: string, s: PolicySettings): Promise<Map<string, string> | null> {
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#used++;
    this.#buf = "";
    this.#sock.write(request);
    const deadline = Date.now() + s.timeoutMs;
    for (;;) {
      const end = this.#buf.indexOf("\n\n");
      if (end >= 0) {
        this.#idle = setTimeout(() => this.close(), s.maxIdleMs);
        this.#idle.unref();
        return parseReply(this.#buf.slice(0, end));
      }
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise<void>((r) => {
        const t = setTimeout(r, deadline - Date.now());
        this.#waiter = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  /** Closes the connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#sock.destroy();
    this.#wake();
  }
}

/** Parses "name=value" lines; null when a line is too long or malformed. */
function parseReply(text: string): Map<string, string> | null {
  const out = new Map<string, string>();
  for (const line of text.replace(/\r/g, "").split("\n")) {
    const eq = line.indexOf("=");
    if (line.length > LINE_MAX || eq <= 0) return null;
    out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

const conns = new Map<string, PolicyConn>();
const queues = new Map<string, Promise<unknown>>();

/** Opens a connection to "inet:host:port", "unix:path" or a path, within the time limit. */
function open(endpoint: string, queueDir: string, timeoutMs: number): Promise<PolicyConn | null> {
  const inet = /^inet:(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(endpoint);
  const path = endpoint.replace(/^unix:/, "");
  return new Promise((resolve) => {
    const sock = inet
      ? connect({ host: inet[1] ?? (inet[2] || "127.0.0.1"), port: Number(inet[3]) })
      : connect({ path: path.startsWith("/") ? path : join(queueDir, path) });
    const t = setTimeout(() => {
      sock.destroy();
      resolve(null);
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(t);
      resolve(new PolicyConn(sock));
    });
    sock.once("error", (err) => {
      clearTimeout(t);
      msg.warn(`connect to policy server ${endpoint}: ${err.message}`);
      resolve(null);
    });
  });
}

/** Asks the policy server once per try; the action, or null when every try failed. */
async function exchange(s: PolicySettings, queueDir: string, request: string): Promise<string | null> {
  for (let i = 0; i < Math.max(1, s.tryLimit); i++) {
    let c = conns.get(s.endpoint);
    if (c === undefined || !c.usable(s)) {
      c?.close();
      const fresh = await open(s.endpoint, queueDir, s.timeoutMs);
      if (fresh === null) continue;
      c = fresh;
      conns.set(s.endpoint, c);
    }
    const reply = await c.ask(request, s);
    const action = reply?.get("action");
    if (action !== undefined && action.trim() !== "") return action.trim();
    msg.warn(`problem talking to server ${s.endpoint}: ${reply === null ? "no valid reply" : "no action"}`);
    c.close();
  }
  return null;
}

/** Runs one request on the endpoint's queue (one request at a time per connection). */
export function policyAction(s: PolicySettings, queueDir: string, request: string): Promise<string> {
  const prev = queues.get(s.endpoint) ?? Promise.resolve();
  const next = prev.then(async () => (await exchange(s, queueDir, request)) ?? s.defaultAction);
  queues.set(
    s.endpoint,
    next.catch(() => undefined),
  );
  return next;
}

/** The settings of a check_policy_service argument ("endpoint" or "{ endpoint, name=value, ... }"). */
export function policySettings(ctx: CheckContext, arg: string): PolicySettings {
  const cfg = ctx.cfg;
  const s: PolicySettings = {
    endpoint: arg,
    timeoutMs: cfg.time("smtpd_policy_service_timeout") * 1000,
    maxIdleMs: cfg.time("smtpd_policy_service_max_idle") * 1000,
    maxTtlMs: cfg.time("smtpd_policy_service_max_ttl") * 1000,
    requestLimit: cfg.int("smtpd_policy_service_request_limit"),
    tryLimit: cfg.int("smtpd_policy_service_try_limit"),
    defaultAction: cfg.get("smtpd_policy_service_default_action"),
    context: cfg.get("smtpd_policy_service_policy_context"),
  };
  const m = /^\{(.*)\}$/s.exec(arg.trim());
  if (m === null) return s;
  const parts = (m[1] ?? "").split(",").map((p) => p.trim());
  s.endpoint = parts.shift() ?? "";
  for (const p of parts) {
    const eq = p.indexOf("=");
    const k = p.slice(0, eq).trim();
    const v = p.slice(eq + 1).trim();
    const secs = (): number => Number(/^(\d+)([smhd]?)$/.exec(v)?.[1] ?? NaN) * unit(v);
    if (k === "timeout" && secs() > 0) s.timeoutMs = secs() * 1000;
    else if (k === "max_idle" && secs() > 0) s.maxIdleMs = secs() * 1000;
    else if (k === "max_ttl" && secs() > 0) s.maxTtlMs = secs() * 1000;
    else if (k === "request_limit" && /^\d+$/.test(v)) s.requestLimit = Number(v);
    else if (k === "try_limit" && /^\d+$/.test(v)) s.tryLimit = Number(v);
    else if (k === "default_action") s.defaultAction = v;
    else if (k === "policy_context") s.context = v;
    else msg.warn(`check_policy_service ${s.endpoint}: ignoring bad attribute "${p}"`);
  }
  return s;
}

/** The seconds in one unit of a time value's suffix (s by default). */
function unit(v: string): number {
  const u = v.slice(-1);
  return u === "m" ? 60 : u === "h" ? 3600 : u === "d" ? 86400 : 1;
}

/** The request text: Postfix's attribute set for the current state. */
export function policyRequest(ctx: CheckContext, s: PolicySettings): string {
  const attrs: [string, string][] = [
    ["request", "smtpd_access_policy"],
    ...Object.entries(ctx.policyState),
    ["helo_name", ctx.helo],
    ["sender", ctx.sender ?? ""],
    ["recipient", ctx.recipient ?? ""],
    ["client_address", ctx.clientAddr],
    ["client_name", ctx.clientName],
    ["reverse_client_name", ctx.peer.reverseName],
    ["sasl_username", ctx.saslUser ?? ""],
    ["etrn_domain", ctx.etrnDomain ?? ""],
    ["policy_context", s.context],
    ["compatibility_level", ctx.cfg.get("compatibility_level")],
    ["mail_version", ctx.cfg.get("mail_version")],
  ];
  // A value must not break the line protocol.
  const lines = attrs.map(([k, v]) => `${k}=${v.replace(/[\r\n]/g, " ")}\n`);
  return lines.join("") + "\n";
}
