/*
 * bounce-client - talk to the bounce, defer and trace services
 *
 * SYNOPSIS
 *   const b = BounceClient.fromConfig(cfg);
 *   const r = await b.append("bounce", queueId, record);   // r.ok, or r.reason
 *   const n = await b.notify("bounce", "active", queueId);
 *
 * DESCRIPTION
 *   Speaks bounce-proto.ts over private/<service>: the log named "bounce"
 *   goes to bounce_service_name, "defer" to defer_service_name and "trace"
 *   to trace_service_name (all three run the bounce program). A notify
 *   request goes to the bounce service (kind "bounce"), the defer
 *   service (kind "delay") or the trace service (kind "success"). Connections are kept and reused. Every failure
 *   is a result with a reason; the caller treats it as a temporary error.
 *   configured() tells whether master.cf has the service at all.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import { attrList } from "../util/attr-codec.js";
import type { Config } from "./config.js";
import {
  BOUNCE_FRAME_MAX,
  BOUNCE_PROTOCOL,
  BounceAppend,
  BounceNotify,
  BounceReply,
  type BounceLog,
  type BounceNoticeKind,
  type BounceRecord,
} from "./bounce-proto.js";

export type BounceResult = { ok: true } | { ok: false; reason: string };

export class BounceClient {
  #root: string;
  #services: Record<BounceLog, string>;
  #timeoutMs: number;
  #clients = new Map<string, AttrClient>();

  constructor(queueDir: string, services: Record<BounceLog, string>, timeoutMs: number) {
    this.#root = queueDir;
    this.#services = services;
    this.#timeoutMs = timeoutMs;
  }

  /** A client configured from main.cf. */
  static fromConfig(cfg: Config): BounceClient {
    return new BounceClient(
      cfg.get("queue_directory"),
      {
        bounce: cfg.get("bounce_service_name"),
        defer: cfg.get("defer_service_name"),
        trace: cfg.get("trace_service_name"),
      },
      cfg.time("ipc_timeout") * 1000,
    );
  }

  /** The (reused) connection to a service. */
  #client(service: string): AttrClient {
    let c = this.#clients.get(service);
    if (c === undefined) {
      c = new AttrClient({
        path: join(this.#root, "private", service),
        protocol: BOUNCE_PROTOCOL,
        maxFrame: BOUNCE_FRAME_MAX,
        timeoutMs: this.#timeoutMs,
        retries: 2,
        backoffMs: 100,
      });
      this.#clients.set(service, c);
    }
    return c;
  }

  /** Sends one request and reads the answer. */
  async #call(service: string, body: Map<string, Buffer>): Promise<BounceResult> {
    const req = attrList({ request: body.has("kind") ? "notify" : "append" });
    for (const [k, v] of body) req.set(k, v);
    const r = await this.#client(service).request(req);
    if (!r.ok) return { ok: false, reason: `${service} service: ${r.reason}` };
    const a = BounceReply.parse(r.reply);
    if (!a.ok) return { ok: false, reason: `${service} service: malformed reply` };
    return a.value.status === "ok"
      ? { ok: true }
      : { ok: false, reason: `${service} service: ${a.value.reason ?? "failed"}` };
  }

  /** True when master.cf has the service for a log (its socket exists). */
  configured(log: BounceLog): boolean {
    return existsSync(join(this.#root, "private", this.#services[log]));
  }

  /** Appends one record to a message's bounce, defer or trace log. */
  append(log: BounceLog, queueId: string, rec: BounceRecord): Promise<BounceResult> {
    return this.#call(this.#services[log], BounceAppend.build({ log, queue_id: queueId, ...rec }));
  }

  /** Asks for a notice: "bounce" returns the bounce log's recipients, "delay" warns of the defer log's, "success" reports the trace log's. */
  notify(kind: BounceNoticeKind, queueName: string, queueId: string): Promise<BounceResult> {
    const queue = queueName as "incoming" | "active" | "deferred" | "hold";
    const service = this.#services[kind === "bounce" ? "bounce" : kind === "delay" ? "defer" : "trace"];
    // "success" and "trace" both read the trace log.
    return this.#call(service, BounceNotify.build({ kind, queue_name: queue, queue_id: queueId }));
  }

  /** Closes the connections. */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
