/*
 * dict-socketmap - socketmap: tables, the Sendmail socketmap protocol
 *
 * SYNOPSIS
 *   dictOpen("socketmap:inet:127.0.0.1:8899:virtuser")
 *   dictOpen("socketmap:unix:/run/maps.sock:virtuser")
 *
 * DESCRIPTION
 *   socketmap_table(5): the client sends one netstring "name key" and the
 *   server answers one netstring: "OK data" (found), "NOTFOUND " (not
 *   found), "TEMP reason", "TIMEOUT reason" or "PERM reason" (failures;
 *   Postern makes all of them temporary, so that mail waits instead of
 *   bouncing while a server is broken). Any other reply, a reply longer
 *   than socketmap_max_reply_size (100000 bytes), a broken connection and
 *   a timeout are temporary failures too.
 *
 *   The name in the table name is everything after the last colon. Keys
 *   longer than socketmap_max_query_size (10000 bytes) are not looked up.
 *   Keys are folded only with FOLD_MUL; this is a pattern table: callers
 *   send whole keys only.
 *
 *   The connection is reused: it is closed after 10 seconds without
 *   lookups, and after a lookup once it is 100 seconds old. When a reused
 *   connection turns out to be closed by the server, the lookup is tried
 *   once more on a new connection. Connecting, sending and receiving each
 *   lookup must finish within 100 seconds (dictSocketmapSetLimits()
 *   changes the limits, e.g. for tests or from main.cf).
 */
import { msg, printable } from "../util/msg.js";
import { parseEndpoint } from "./dict-cf.js";
import { NetClient, NetError, netstring } from "./dict-netclient.js";
import { dictSurrogate } from "./dict-registry.js";
import { DictFlag, errorText, foldKey, found, NOT_FOUND, tempFail } from "./dict-types.js";
import type { DictImpl, DictResult } from "./dict-types.js";

/** The protocol limits (Postfix's defaults). */
const limits = { timeoutMs: 100_000, maxReply: 100_000, maxQuery: 10_000, idleMs: 10_000, maxAgeMs: 100_000 };

/** Changes the protocol limits (socketmap_max_reply_size, socketmap_max_query_size, time limits). */
export function dictSocketmapSetLimits(l: Partial<typeof limits>): void {
  Object.assign(limits, l);
}

/** A socketmap: table. */
class SocketmapDict implements DictImpl {
  readonly type = "socketmap";
  readonly name: string;
  readonly flags: number;
  #map: string;
  #client: NetClient;

  /** Keeps the endpoint; connects on the first lookup. */
  constructor(name: string, flags: number, client: NetClient, map: string) {
    this.name = name;
    this.flags = flags | DictFlag.PATTERN;
    this.#client = client;
    this.#map = map;
  }

  /** Sends a request and reads the reply, retrying once on a reused connection that was closed. */
  async #ask(request: Buffer): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const reused = this.#client.connected;
      try {
        return await this.#client.exchange(limits.timeoutMs, async (conn, deadline) => {
          conn.write(netstring(request));
          return await conn.readNetstring(limits.maxReply, deadline);
        });
      } catch (err) {
        const retry = err instanceof NetError && (err.code === "EOF" || err.code === "IO");
        if (attempt > 0 || !reused || !retry) throw err;
      }
    }
  }

  /** Looks up a key. */
  async lookup(rawKey: string): Promise<DictResult> {
    const key = foldKey(rawKey, this.flags, "pattern");
    const request = Buffer.from(`${this.#map} ${key}`, "utf8");
    if (request.length - this.#map.length - 1 > limits.maxQuery) {
      msg.warn(`socketmap:${this.name} query too large: "${printable(key, 100)}", returning "not found"`);
      return NOT_FOUND;
    }
    let reply: string;
    try {
      reply = (await this.#ask(request)).toString("utf8");
    } catch (err) {
      msg.warn(`socketmap:${this.name} lookup error: ${errorText(err)}`);
      return tempFail(`socketmap:${this.name}: ${errorText(err)}`);
    }
    const space = reply.indexOf(" ");
    const status = space < 0 ? reply : reply.slice(0, space);
    const payload = space < 0 ? "" : reply.slice(space + 1);
    if (status === "OK") return found(payload);
    if (status === "NOTFOUND") return NOT_FOUND;
    const kind =
      status === "TEMP"
        ? "temporary"
        : status === "TIMEOUT"
          ? "timeout"
          : status === "PERM"
            ? "permanent"
            : "unknown";
    const why = payload.trim() === "" ? "" : `: ${printable(payload.trim(), 200)}`;
    msg.warn(`socketmap:${this.name} socketmap server ${kind} error${why}`);
    return tempFail(`socketmap:${this.name}: server ${kind} error${why}`);
  }

  /** Closes the connection. */
  close(): void {
    this.#client.close();
  }
}

/** Opens a socketmap: table; the name is inet:host:port:map or unix:/path:map. */
export function socketmapOpen(name: string, flags: number): DictImpl {
  const colon = name.lastIndexOf(":");
  const where = colon < 0 ? "" : name.slice(0, colon);
  const map = colon < 0 ? "" : name.slice(colon + 1);
  const ep = where.startsWith("inet:") || where.startsWith("unix:") ? parseEndpoint(where, null) : null;
  if (ep === null || map === "" || /[\s]/.test(map)) {
    const why = `bad name "socketmap:${name}"; need "socketmap:inet:host:port:name" or "socketmap:unix:/path:name"`;
    return dictSurrogate("socketmap", name, flags, why);
  }
  if ((flags & DictFlag.NO_UNAUTH) !== 0) {
    return dictSurrogate(
      "socketmap",
      name,
      flags,
      "socketmap tables are not allowed for security-sensitive data",
    );
  }
  const client = new NetClient(ep, {
    idleMs: limits.idleMs,
    maxAgeMs: limits.maxAgeMs,
    maxBuffer: limits.maxReply + 32,
  });
  return new SocketmapDict(name, flags, client, map);
}
