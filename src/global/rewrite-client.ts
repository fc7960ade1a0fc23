/*
 * rewrite-client - ask the trivial-rewrite service to rewrite or resolve an address
 *
 * SYNOPSIS
 *   import { RewriteClient } from "../global/rewrite-client.js";
 *   const rw = new RewriteClient(queueDirectory);       // or RewriteClient.fromConfig(cfg)
 *   const r = await rw.resolve("sender@example.org", "user@example.com");
 *   if (r.ok) use(r.value.transport, r.value.nexthop, r.value.recipient, r.value.flags);
 *   else defer(r.reason);                                // always temporary
 *   const v = await rw.resolveVerify(sender, address);   // the route of a verify probe
 *   const a = await rw.rewrite("local", "user");         // { ok: true, value: "user@example.com" }
 *   rw.close();
 *
 * DESCRIPTION
 *   Speaks rewrite-proto.ts to queue_directory/private/rewrite (the service
 *   name is $rewrite_service_name) over one reusable connection
 *   (util/attr-client.ts: reconnects, retries a dropped request).
 *   Addresses are in internal (unquoted) form. resolveVerify() asks for
 *   the route of an address verification probe (the "verify" context,
 *   the address_verify_* parameters) instead of a delivery.
 *
 *   Answers are cached in the process, as Postfix's resolve_clnt and
 *   rewrite_clnt do (they keep one entry for 30 seconds): at most
 *   cacheSize entries (least recently used go first), each for at most
 *   cacheTtlMs, so a table change is seen within that time. Regular and
 *   verify answers are cached apart. Temporary failures are never cached.
 *
 *   Every failure is a result { ok: false, temporary: true, code, reason }:
 *   the attr-client codes, ETEMPFAIL (the service's tables failed; the
 *   reason says why) and EBADREPLY (a reply that lacks what was asked for).
 */
import { join } from "node:path";
import { AttrClient, type AttrClientCode } from "../util/attr-client.js";
import type { AttrList } from "../util/attr-codec.js";
import type { AttrValueOf } from "../util/attr-schema.js";
import type { Config } from "./config.js";
import {
  REWRITE_FRAME_MAX,
  REWRITE_PROTOCOL,
  RewriteReply,
  RewriteRequest,
  type Resolved,
} from "./rewrite-proto.js";

/** How a client is set up; every field has a default. */
export interface RewriteClientOptions {
  /** The service name under private/; default "rewrite". */
  service?: string;
  /** How long to wait for a reply; default 60 s. */
  timeoutMs?: number;
  /** Cached answers kept at most; default 1000 (0: no cache). */
  cacheSize?: number;
  /** How long an answer is cached; default 30 s. */
  cacheTtlMs?: number;
  /** The clock (ms) of the cache; default Date.now. */
  now?: () => number;
}

/** Why a request failed (always temporary). */
export type RewriteFailure = {
  ok: false;
  temporary: true;
  code: AttrClientCode | "ETEMPFAIL" | "EBADREPLY";
  reason: string;
};
/** What resolve() returns. */
export type ResolveClientResult = { ok: true; value: Resolved } | RewriteFailure;
/** What rewrite() returns. */
export type RewriteClientResult = { ok: true; value: string } | RewriteFailure;

type Reply = AttrValueOf<(typeof RewriteReply)["shape"]>;
type Entry = { expires: number; value: Resolved | string };

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_CACHE_SIZE = 1000;
const DEFAULT_CACHE_TTL_MS = 30_000;

/** A failure result (helper). */
function failure(code: RewriteFailure["code"], reason: string): RewriteFailure {
  return { ok: false, temporary: true, code, reason };
}

/** A client of the trivial-rewrite service with a bounded answer cache. */
export class RewriteClient {
  #client: AttrClient;
  #cache = new Map<string, Entry>();
  #size: number;
  #ttl: number;
  #now: () => number;

  /** Connects lazily to queueDirectory/private/<service>. */
  constructor(queueDirectory: string, opts: RewriteClientOptions = {}) {
    this.#client = new AttrClient({
      path: join(queueDirectory, "private", opts.service ?? "rewrite"),
      protocol: REWRITE_PROTOCOL,
      maxFrame: REWRITE_FRAME_MAX,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      retries: 2,
      backoffMs: 100,
    });
    this.#size = opts.cacheSize ?? DEFAULT_CACHE_SIZE;
    this.#ttl = opts.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** A client for a configuration: queue_directory, rewrite_service_name, ipc_timeout. */
  static fromConfig(cfg: Config, opts: RewriteClientOptions = {}): RewriteClient {
    return new RewriteClient(cfg.get("queue_directory"), {
      service: cfg.get("rewrite_service_name"),
      timeoutMs: Math.min(cfg.time("ipc_timeout") * 1000, DEFAULT_TIMEOUT_MS),
      ...opts,
    });
  }

  /** Resolves a recipient for a sender ("" for the null sender). */
  resolve(sender: string, address: string): Promise<ResolveClientResult> {
    return this.#resolve("regular", sender, address);
  }

  /** Resolves a recipient as an address verification probe would be routed (the "verify" context). */
  resolveVerify(sender: string, address: string): Promise<ResolveClientResult> {
    return this.#resolve("verify", sender, address);
  }

  /** Resolves in a context; the regular request does not name its context (as before). */
  async #resolve(
    context: "regular" | "verify",
    sender: string,
    address: string,
  ): Promise<ResolveClientResult> {
    const key = `resolve\0${context}\0${sender}\0${address}`;
    const hit = this.#get(key);
    if (hit !== undefined && typeof hit !== "string") return { ok: true, value: hit };
    const req =
      context === "verify"
        ? RewriteRequest.build({ request: "resolve", sender, address, context })
        : RewriteRequest.build({ request: "resolve", sender, address });
    const r = await this.#ask(req);
    if (!r.ok) return r;
    const { transport, nexthop, recipient, flags } = r.reply;
    if (transport === undefined || nexthop === undefined || recipient === undefined || flags === undefined)
      return failure("EBADREPLY", "incomplete resolve reply");
    const value: Resolved = { transport, nexthop, recipient, flags };
    this.#put(key, value);
    return { ok: true, value };
  }

  /** Rewrites an address to canonical form in the "local" or "remote" context. */
  async rewrite(rule: "local" | "remote", address: string): Promise<RewriteClientResult> {
    const key = `rewrite\0${rule}\0${address}`;
    const hit = this.#get(key);
    if (typeof hit === "string") return { ok: true, value: hit };
    const r = await this.#ask(RewriteRequest.build({ request: "rewrite", rule, address }));
    if (!r.ok) return r;
    if (r.reply.address === undefined) return failure("EBADREPLY", "rewrite reply without address");
    this.#put(key, r.reply.address);
    return { ok: true, value: r.reply.address };
  }

  /** Closes the connection; later requests fail with ECLOSED. */
  close(): void {
    this.#client.close();
    this.#cache.clear();
  }

  /** Sends a request and checks the reply. */
  async #ask(req: AttrList): Promise<{ ok: true; reply: Reply } | RewriteFailure> {
    const r = await this.#client.request(req);
    if (!r.ok) return failure(r.code, r.reason);
    const parsed = RewriteReply.parse(r.reply);
    if (!parsed.ok) return failure("EBADREPLY", `bad reply: ${parsed.error}`);
    if (parsed.value.status === "tempfail")
      return failure("ETEMPFAIL", parsed.value.reason ?? "temporary failure in the rewrite service");
    return { ok: true, reply: parsed.value };
  }

  /** A cached answer that has not expired; refreshes its place in the LRU order. */
  #get(key: string): Resolved | string | undefined {
    const e = this.#cache.get(key);
    if (e === undefined) return undefined;
    this.#cache.delete(key);
    if (this.#now() >= e.expires) return undefined;
    this.#cache.set(key, e);
    return e.value;
  }

  /** Caches an answer, dropping the least recently used one when full. */
  #put(key: string, value: Resolved | string): void {
    if (this.#size <= 0) return;
    this.#cache.delete(key);
    this.#cache.set(key, { expires: this.#now() + this.#ttl, value });
    while (this.#cache.size > this.#size) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
  }
}
