/*
 * scache-client - a delivery agent's side of the connection cache
 *
 * SYNOPSIS
 *   const sc = ScacheClient.fromConfig(cfg, (sock, token) => sendCacheSocket(sock, token));
 *   onCacheSocket((token, sock) => sc.received(token, sock));
 *   await sc.save(() => session.handOff(), { ttl: 2, endpLabel, endpProp, destLabel, destProp: "" });
 *   const hit = await sc.findDest(destLabel);  // { socket, endpLabel, endpProp, destProp } or null
 *
 * DESCRIPTION
 *   Talks to the scache service (scache-proto.ts) over one reused
 *   connection to queue_directory/private/<connection_cache_service_name>,
 *   with connection_cache_protocol_timeout per request. Sockets go through
 *   master: save() asks first (so that scache runs) and then hands the
 *   socket over with `send`; a found socket arrives through `received`
 *   (the agent wires it to master's cachefd messages). Failures are
 *   results (see ScacheSaveResult), a find that fails is a miss.
 */
import { existsSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import type { Config } from "./config.js";
import {
  SCACHE_FRAME_MAX,
  SCACHE_PROTOCOL,
  ScacheReply,
  ScacheRequest,
  TokenBox,
  newToken,
} from "./scache-proto.js";

/** Hands a socket to master for scache; true once master has it. */
export type CacheSocketSender = (sock: Socket, token: string) => Promise<boolean>;

export interface ScacheSave {
  ttl: number;
  endpLabel: string;
  endpProp: string;
  destLabel?: string;
  destProp?: string;
}

export interface ScacheFound {
  socket: Socket;
  endpLabel: string;
  endpProp: string;
  destProp: string;
}

/**
 * The save outcome: "sent" (the socket is scache's now), "refused" (scache
 * said no or could not be asked: the socket was not touched), "lost" (the
 * socket could not be handed over after all: the caller closes it).
 */
export type ScacheSaveResult = "sent" | "refused" | "lost";

/** The most sockets that may arrive ahead of their reply. */
const ARRIVALS_MAX = 64;

export class ScacheClient {
  readonly path: string;
  #client: AttrClient;
  #send: CacheSocketSender;
  #timeoutMs: number;
  #box: TokenBox<Socket>;

  constructor(path: string, timeoutMs: number, send: CacheSocketSender) {
    this.path = path;
    this.#timeoutMs = timeoutMs;
    this.#send = send;
    this.#box = new TokenBox<Socket>(timeoutMs, ARRIVALS_MAX);
    this.#client = new AttrClient({
      path,
      protocol: SCACHE_PROTOCOL,
      maxFrame: SCACHE_FRAME_MAX,
      timeoutMs,
      retries: 1,
      backoffMs: 50,
    });
  }

  /** A client for a configuration (queue_directory, connection_cache_service_name, _protocol_timeout). */
  static fromConfig(cfg: Config, send: CacheSocketSender): ScacheClient {
    const path = join(cfg.get("queue_directory"), "private", cfg.get("connection_cache_service_name"));
    return new ScacheClient(path, cfg.time("connection_cache_protocol_timeout") * 1000, send);
  }

  /** True when master.cf has the service (its socket exists). */
  get available(): boolean {
    return existsSync(this.path);
  }

  /** A socket that master handed this process. */
  received(token: string, sock: Socket): void {
    this.#box.put(token, sock);
  }

  /** Offers a connection to the cache; `socket` gives it up once scache agreed (null: it cannot be given). */
  async save(socket: () => Socket | null, s: ScacheSave): Promise<ScacheSaveResult> {
    const token = newToken();
    const r = await this.#client.request(
      ScacheRequest.build({
        request: "save",
        ttl: s.ttl,
        endp_label: s.endpLabel,
        endp_prop: s.endpProp,
        ...(s.destLabel !== undefined ? { dest_label: s.destLabel, dest_prop: s.destProp ?? "" } : {}),
        pid: process.pid,
        token,
      }),
    );
    if (!r.ok) return "refused";
    const p = ScacheReply.parse(r.reply);
    if (!p.ok || p.value.status !== "ok") return "refused";
    const sock = socket();
    if (sock === null) return "lost";
    return (await this.#send(sock, token)) ? "sent" : "lost";
  }

  /** A cached connection for a destination label, or null. */
  findDest(destLabel: string): Promise<ScacheFound | null> {
    return this.#find({ request: "find_dest", dest_label: destLabel, pid: process.pid });
  }

  /** A cached connection for an endpoint label, or null. */
  findEndp(endpLabel: string): Promise<ScacheFound | null> {
    return this.#find({ request: "find_endp", endp_label: endpLabel, pid: process.pid });
  }

  /** Asks, then waits for the socket that master brings. */
  async #find(req: Parameters<typeof ScacheRequest.build>[0]): Promise<ScacheFound | null> {
    const r = await this.#client.request(ScacheRequest.build(req));
    if (!r.ok) return null;
    const p = ScacheReply.parse(r.reply);
    if (!p.ok || p.value.status !== "ok") return null;
    const { token, endp_label, endp_prop, dest_prop } = p.value;
    if (token === undefined || endp_label === undefined || endp_prop === undefined) return null;
    const socket = await this.#box.take(token, this.#timeoutMs);
    if (socket === null) return null;
    return { socket, endpLabel: endp_label, endpProp: endp_prop, destProp: dest_prop ?? "" };
  }

  /** Closes the connection to scache and any socket not yet claimed. */
  close(): void {
    this.#client.close();
    this.#box.clear();
  }
}
