/*
 * anvil-client - smtpd's side of the anvil service
 *
 * SYNOPSIS
 *   const anvil = AnvilClient.fromConfig(cfg);
 *   const r = await anvil.connect("smtp", "192.0.2.1");
 *   if (r.ok && r.count > limit) refuse();
 *
 * DESCRIPTION
 *   Reports client events to anvil (anvil-proto.ts) over one reused
 *   connection to queue_directory/private/anvil and returns the counters.
 *   When the service is not configured (no socket), every call fails at
 *   once without waiting, and smtpd goes on without limits, as Postfix's
 *   smtpd does when anvil cannot be reached. Failures are results, never
 *   throws.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import { ANVIL_FRAME_MAX, ANVIL_PROTOCOL, AnvilReply, AnvilRequest, type AnvilEvent } from "./anvil-proto.js";
import type { Config } from "./config.js";

export type AnvilResult = { ok: true; count: number; rate: number } | { ok: false; reason: string };

export class AnvilClient {
  #path: string;
  #client: AttrClient;

  /** A client of queueDirectory/private/anvil. */
  constructor(queueDirectory: string, timeoutMs: number) {
    this.#path = join(queueDirectory, "private", "anvil");
    this.#client = new AttrClient({
      path: this.#path,
      protocol: ANVIL_PROTOCOL,
      maxFrame: ANVIL_FRAME_MAX,
      timeoutMs,
      retries: 1,
      backoffMs: 50,
    });
  }

  /** A client for a configuration (queue_directory, ipc_timeout). */
  static fromConfig(cfg: Config): AnvilClient {
    return new AnvilClient(cfg.get("queue_directory"), Math.min(cfg.time("ipc_timeout"), 10) * 1000);
  }

  /** A new session of a client: its concurrent count and connection rate. */
  connect(service: string, addr: string): Promise<AnvilResult> {
    return this.#ask("connect", service, addr);
  }

  /** The end of a session. */
  async disconnect(service: string, addr: string): Promise<void> {
    await this.#ask("disconnect", service, addr);
  }

  /** A MAIL FROM of a client: its message rate (in rate). */
  message(service: string, addr: string): Promise<AnvilResult> {
    return this.#ask("message", service, addr);
  }

  /** A RCPT TO of a client: its recipient rate (in rate). */
  recipient(service: string, addr: string): Promise<AnvilResult> {
    return this.#ask("recipient", service, addr);
  }

  /** A new (not resumed) TLS session of a client: its new TLS session rate (in rate). */
  newTls(service: string, addr: string): Promise<AnvilResult> {
    return this.#ask("newtls", service, addr);
  }

  /** A client's new TLS session rate, without counting a session. */
  newTlsStat(service: string, addr: string): Promise<AnvilResult> {
    return this.#ask("newtls_stat", service, addr);
  }

  /** An AUTH command of a client: its AUTH rate (in rate). */
  auth(service: string, addr: string): Promise<AnvilResult> {
    return this.#ask("auth", service, addr);
  }

  /** Sends one event and reads the counters. */
  async #ask(request: AnvilEvent, service: string, addr: string): Promise<AnvilResult> {
    if (!existsSync(this.#path)) return { ok: false, reason: "anvil service not available" };
    const r = await this.#client.request(AnvilRequest.build({ request, ident: `${service}:${addr}` }));
    if (!r.ok) return { ok: false, reason: r.reason };
    const p = AnvilReply.parse(r.reply);
    if (!p.ok || p.value.status !== "ok") return { ok: false, reason: "bad anvil reply" };
    return { ok: true, count: p.value.count ?? 0, rate: p.value.rate ?? 0 };
  }
}
