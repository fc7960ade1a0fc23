/*
 * verify-client - talk to the address verification service
 *
 * SYNOPSIS
 *   const v = VerifyClient.fromConfig(cfg);
 *   const q = await v.query("user@example.com");   // { ok, status, reason } or a failure
 *   const u = await v.update("user@example.com", ADDR_STATUS.BOUNCE, "5.1.1 unknown user");
 *
 * DESCRIPTION
 *   Speaks verify-proto.ts over private/$address_verify_service_name. Each
 *   request uses a connection of its own, closed after the answer, as
 *   Postfix's verify_clnt does for its occasional requests (the one verify
 *   process serves many clients at once, so a kept connection would not
 *   lock others out, but it would hold a file descriptor there for
 *   nothing). A persistent client (for a caller that asks many questions
 *   in a row) keeps one connection. Every failure (no service, timeout, malformed
 *   reply) is a result with a reason; callers treat it as temporary.
 *   configured() tells whether master.cf has the service (its socket
 *   exists).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import { attrList } from "../util/attr-codec.js";
import type { Config } from "./config.js";
import {
  VERIFY_ADDR_MAX,
  VERIFY_FRAME_MAX,
  VERIFY_PROTOCOL,
  VerifyQuery,
  VerifyReply,
  VerifyUpdate,
  verifyReason,
  type AddrStatus,
} from "./verify-proto.js";

export type VerifyQueryResult =
  { ok: true; status: AddrStatus; reason: string } | { ok: false; reason: string };
export type VerifyUpdateResult = { ok: true } | { ok: false; reason: string };

export class VerifyClient {
  #path: string;
  #timeoutMs: number;
  #persistent: AttrClient | null = null;

  constructor(queueDir: string, service: string, timeoutMs: number, opts: { persistent?: boolean } = {}) {
    this.#path = join(queueDir, "private", service);
    this.#timeoutMs = timeoutMs;
    if (opts.persistent === true) this.#persistent = this.#connection();
  }

  /** A new connection (made on the first request). */
  #connection(): AttrClient {
    return new AttrClient({
      path: this.#path,
      protocol: VERIFY_PROTOCOL,
      maxFrame: VERIFY_FRAME_MAX,
      timeoutMs: this.#timeoutMs,
      retries: 2,
      backoffMs: 100,
    });
  }

  /** A client configured from main.cf. */
  static fromConfig(cfg: Config): VerifyClient {
    return new VerifyClient(
      cfg.get("queue_directory"),
      cfg.get("address_verify_service_name"),
      cfg.time("ipc_timeout") * 1000,
    );
  }

  /** True when master.cf has the service (its socket exists). */
  configured(): boolean {
    return existsSync(this.#path);
  }

  /** Sends one request; the checked reply or a failure. */
  async #call(
    req: Map<string, Buffer>,
  ): Promise<{ ok: true; status?: number; reason?: string } | { ok: false; reason: string }> {
    const c = this.#persistent ?? this.#connection();
    const r = await c.request(req);
    if (c !== this.#persistent) c.close();
    if (!r.ok) return { ok: false, reason: `verify service: ${r.reason}` };
    const a = VerifyReply.parse(r.reply);
    if (!a.ok) return { ok: false, reason: "verify service: malformed reply" };
    if (a.value.status !== "ok")
      return { ok: false, reason: `verify service: ${a.value.reason ?? "bad request"}` };
    return {
      ok: true,
      ...(a.value.addr_status !== undefined ? { status: a.value.addr_status } : {}),
      ...(a.value.reason !== undefined ? { reason: a.value.reason } : {}),
    };
  }

  /** Asks what is known about an address. */
  async query(address: string): Promise<VerifyQueryResult> {
    if (Buffer.byteLength(address) > VERIFY_ADDR_MAX)
      return { ok: false, reason: "address too long to verify" };
    const req = attrList({ request: "query" });
    for (const [k, v] of VerifyQuery.build({ address })) req.set(k, v);
    const r = await this.#call(req);
    if (!r.ok) return r;
    if (r.status === undefined) return { ok: false, reason: "verify service: reply without a status" };
    return { ok: true, status: r.status as AddrStatus, reason: r.reason ?? "" };
  }

  /** Records a probe's outcome for an address (status 0, 1 or 2). */
  async update(address: string, status: 0 | 1 | 2, reason: string): Promise<VerifyUpdateResult> {
    if (Buffer.byteLength(address) > VERIFY_ADDR_MAX)
      return { ok: false, reason: "address too long to verify" };
    const req = attrList({ request: "update" });
    for (const [k, v] of VerifyUpdate.build({ address, addr_status: status, reason: verifyReason(reason) }))
      req.set(k, v);
    const r = await this.#call(req);
    return r.ok ? { ok: true } : r;
  }

  /** Closes the connection. */
  close(): void {
    this.#persistent?.close();
  }
}
