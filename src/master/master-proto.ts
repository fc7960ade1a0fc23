/*
 * master-proto - the status channel between master and its children
 *
 * DESCRIPTION
 *   master talks to each child over Node's IPC channel, which is also how
 *   master hands over an accepted connection (the socket travels with the
 *   message, as a file descriptor). The messages are small and few:
 *
 *   child to master
 *     ready  { capacity }   the skeleton is up and takes `capacity` clients at once
 *     done                  one client connection or trigger has been handled
 *     pass   { service, data?, peer? }  with a socket: hand this connection to a
 *                           "pass" service; data (base64) is what the client
 *                           already sent and the child read, so the next
 *                           server sees it; peer names the real endpoints
 *                           when they are not the socket's own (a PROXY
 *                           protocol header named them)
 *     cachefd { token, to? }  with a socket: an idle SMTP connection for the
 *                           connection cache. From a delivery agent (no
 *                           "to"): master hands it to the scache service's
 *                           process, saying which pid it came from. From
 *                           the scache service only, "to" names the agent
 *                           process that asked for it. The token pairs the
 *                           socket with the request sent to scache over its
 *                           own service socket (global/scache-proto.ts).
 *   master to child
 *     conn   { data?, peer? }  with a socket: serve this client (as for pass)
 *     cachefd { token, from? }  with a socket: see above (from: the sending pid)
 *     trigger { data }      a wakeup or other trigger (a few bytes)
 *     retire                take no more work; exit when the current work is done
 *     passq  { service, waiting }  how many handed-over connections wait for a
 *                           process of that pass service (sent to postscreen
 *                           when it changes: its "all server ports busy" check)
 *
 *   master treats what a child says as untrusted: every message is checked
 *   with parseChildMessage() and anything else is logged and ignored.
 */
import { isIP, type Socket } from "node:net";

/** The client and server endpoints of a connection, when a proxy named them. */
export interface PeerInfo {
  addr: string;
  port: number;
  serverAddr: string;
  serverPort: number;
}

export type ChildMessage =
  | { t: "ready"; capacity: number }
  | { t: "done" }
  | { t: "pass"; service: string; data?: string; peer?: PeerInfo }
  | { t: "cachefd"; token: string; to?: number };
export type MasterMessage =
  | { t: "cachefd"; token: string; from?: number }
  | { t: "conn"; data?: string; peer?: PeerInfo }
  | { t: "trigger"; data: string }
  | { t: "retire" }
  | { t: "passq"; service: string; waiting: number };

const MAX_CAPACITY = 100_000;
/** The form of a connection-cache token: 128 random bits in hex. */
export const CACHE_TOKEN_RE = /^[0-9a-f]{32}$/;

/** Validates an optional process id: undefined when absent, null when bad. */
function pidField(p: unknown): number | undefined | null {
  if (p === undefined) return undefined;
  return typeof p === "number" && Number.isInteger(p) && p > 0 && p < 2 ** 31 ? p : null;
}

/** Validates a cachefd message's token and optional pid (named `to` or `from`): the two, or null when bad. */
function cacheFd(f: Record<string, unknown>, pidName: "to" | "from"): { token: string; pid?: number } | null {
  const token = f["token"];
  const pid = pidField(f[pidName]);
  if (typeof token !== "string" || !CACHE_TOKEN_RE.test(token) || pid === null) return null;
  return pid === undefined ? { token } : { token, pid };
}
/** The most bytes a connection may carry along when it is handed over (as base64 text). */
export const PASS_DATA_MAX = 8192;
const B64_MAX = Math.ceil(PASS_DATA_MAX / 3) * 4;

/** Validates the optional base64 "data" of a pass or conn message: undefined when absent, null when bad. */
function passData(d: unknown): string | undefined | null {
  if (d === undefined) return undefined;
  return typeof d === "string" && d.length <= B64_MAX && /^[A-Za-z0-9+/]*={0,2}$/.test(d) ? d : null;
}

/** Returns a plain object's own string-keyed fields, or null. */
function fields(m: unknown): Record<string, unknown> | null {
  return typeof m === "object" && m !== null && !Array.isArray(m) ? (m as Record<string, unknown>) : null;
}

/** Validates the optional "peer" of a pass or conn message: undefined when absent, null when bad. */
function peerInfo(p: unknown): PeerInfo | undefined | null {
  if (p === undefined) return undefined;
  const f = fields(p);
  if (f === null) return null;
  const { addr, port, serverAddr, serverPort } = f;
  const okPort = (n: unknown): n is number =>
    typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 65535;
  if (
    typeof addr !== "string" ||
    typeof serverAddr !== "string" ||
    isIP(addr) === 0 ||
    isIP(serverAddr) === 0
  )
    return null;
  return okPort(port) && okPort(serverPort) ? { addr, port, serverAddr, serverPort } : null;
}

/** Builds a conn or pass message without absent optional fields. */
function withExtras<T extends object>(m: T, data: string | undefined, peer: PeerInfo | undefined): T {
  return { ...m, ...(data !== undefined ? { data } : {}), ...(peer !== undefined ? { peer } : {}) };
}

/**
 * Stops reading a socket that is about to be handed to another process
 * and returns what it had read but nobody consumed. Bytes read after the
 * hand-off began would be lost, so the kernel must keep them for the next
 * owner: the read is stopped on the handle itself, since Socket.pause()
 * only stops the stream, not the reading.
 */
export function takeBuffered(sock: Socket): Buffer[] {
  const handle = (sock as unknown as { _handle?: { readStop?: () => number; reading?: boolean } })._handle;
  if (handle?.readStop !== undefined) {
    handle.readStop();
    handle.reading = false;
  }
  sock.pause();
  const parts: Buffer[] = [];
  if (sock.readableLength === 0) return parts;
  for (let chunk: unknown; (chunk = sock.read()) !== null;) if (Buffer.isBuffer(chunk)) parts.push(chunk);
  return parts;
}

/** Validates a message from a child. */
export function parseChildMessage(m: unknown): ChildMessage | null {
  const f = fields(m);
  if (f === null) return null;
  switch (f["t"]) {
    case "ready": {
      const c = f["capacity"];
      return typeof c === "number" && Number.isInteger(c) && c >= 1 && c <= MAX_CAPACITY
        ? { t: "ready", capacity: c }
        : null;
    }
    case "done":
      return { t: "done" };
    case "pass": {
      const s = f["service"];
      const data = passData(f["data"]);
      const peer = peerInfo(f["peer"]);
      if (typeof s !== "string" || !/^[A-Za-z0-9_.:[\]-]{1,100}$/.test(s) || data === null || peer === null)
        return null;
      return withExtras({ t: "pass" as const, service: s }, data, peer);
    }
    case "cachefd": {
      const c = cacheFd(f, "to");
      if (c === null) return null;
      return c.pid === undefined
        ? { t: "cachefd", token: c.token }
        : { t: "cachefd", token: c.token, to: c.pid };
    }
    default:
      return null;
  }
}

/** Validates a message from master (the child's side of the same care). */
export function parseMasterMessage(m: unknown): MasterMessage | null {
  const f = fields(m);
  if (f === null) return null;
  switch (f["t"]) {
    case "conn": {
      const data = passData(f["data"]);
      const peer = peerInfo(f["peer"]);
      if (data === null || peer === null) return null;
      return withExtras({ t: "conn" as const }, data, peer);
    }
    case "retire":
      return { t: "retire" };
    case "cachefd": {
      const c = cacheFd(f, "from");
      if (c === null) return null;
      return c.pid === undefined
        ? { t: "cachefd", token: c.token }
        : { t: "cachefd", token: c.token, from: c.pid };
    }
    case "passq": {
      const { service, waiting } = f;
      return typeof service === "string" &&
        service.length <= 100 &&
        typeof waiting === "number" &&
        Number.isInteger(waiting) &&
        waiting >= 0
        ? { t: "passq", service, waiting }
        : null;
    }
    case "trigger": {
      const d = f["data"];
      return typeof d === "string" && d.length <= 1024 ? { t: "trigger", data: d } : null;
    }
    default:
      return null;
  }
}
