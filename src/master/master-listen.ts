/*
 * master-listen - the listening sockets master holds for its services
 *
 * DESCRIPTION
 *   inet services listen on [host:]port; without a host, on the addresses
 *   that inet_interfaces names (all, loopback-only, or a list), for the IP
 *   versions in inet_protocols. unix, fifo and unix-dgram services listen on
 *   a Unix stream socket in queue_directory/private or /public (Node has no
 *   FIFO or datagram listener; a client writes its trigger or record on a
 *   stream connection instead, see ARCHITECTURE.md). pass services have no
 *   socket: connections reach them through master.
 *   Every listener pauses new connections so master reads nothing from
 *   them before it hands them to a child.
 */
import { chmodSync, chownSync, readFileSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Config } from "../global/config.js";
import { parseInetName } from "../global/master-cf.js";
import type { ServiceSpec } from "./master-spec.js";

export interface Endpoint {
  /** What the log calls it: "127.0.0.1:25" or a socket path. */
  label: string;
  host?: string;
  port?: number;
  path?: string;
}

const WELL_KNOWN: Record<string, number> = {
  smtp: 25,
  submission: 587,
  smtps: 465,
  submissions: 465,
  lmtp: 24,
  qmtp: 209,
};

/** Resolves a port name or number; null when unknown. */
export function resolvePort(name: string): number | null {
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    return n > 0 && n < 65536 ? n : null;
  }
  if (WELL_KNOWN[name] !== undefined) return WELL_KNOWN[name];
  try {
    const m = new RegExp(`^${name}\\s+(\\d+)/tcp`, "m").exec(readFileSync("/etc/services", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The addresses that inet_interfaces and inet_protocols select. */
function interfaceHosts(cfg: Config): string[] {
  const protocols = cfg.list("inet_protocols").map((p) => p.toLowerCase());
  const v4 = protocols.includes("all") || protocols.includes("ipv4");
  const v6 = protocols.includes("all") || protocols.includes("ipv6");
  const out: string[] = [];
  for (const item of cfg.list("inet_interfaces").map((i) => i.toLowerCase())) {
    if (item === "all") {
      if (v6) out.push("::");
      else if (v4) out.push("0.0.0.0");
    } else if (item === "loopback-only" || item === "localhost") {
      if (v4) out.push("127.0.0.1");
      if (v6) out.push("::1");
    } else out.push(item.replace(/^\[(.*)\]$/, "$1"));
  }
  return [...new Set(out)];
}

/** The endpoints of a service (empty for pass). */
export function endpoints(spec: ServiceSpec, cfg: Config): Endpoint[] | { error: string } {
  if (spec.type === "pass") return [];
  if (spec.type !== "inet") {
    const path = join(
      cfg.get("queue_directory"),
      spec.privateClass ? "private" : "public",
      spec.entry.service,
    );
    return [{ label: path, path }];
  }
  const name = parseInetName(spec.entry.service);
  const port = name === null ? null : resolvePort(name.port);
  if (name === null || port === null) return { error: `bad inet service: "${spec.entry.service}"` };
  const hosts = name.host !== "" ? [name.host] : interfaceHosts(cfg);
  if (hosts.length === 0)
    return { error: "service definition requires a host name or address, or a non-empty inet_interfaces" };
  return hosts.map((host) => ({ label: `${host.includes(":") ? `[${host}]` : host}:${port}`, host, port }));
}

/** Starts listening on one endpoint; resolves to the server or an error text. */
export function listen(
  ep: Endpoint,
  onConnection: (s: Socket) => void,
  owner: { uid: number; gid: number } | null,
): Promise<Server | string> {
  return new Promise((resolve) => {
    const server = createServer({ pauseOnConnect: true }, onConnection);
    server.once("error", (err) => resolve(`bind ${ep.label}: ${err.message}`));
    const done = (): void => {
      server.removeAllListeners("error");
      server.on("error", () => undefined);
      if (ep.path !== undefined) {
        chmodSync(ep.path, 0o666);
        if (owner !== null) chownSync(ep.path, owner.uid, owner.gid);
      }
      resolve(server);
    };
    if (ep.path !== undefined) {
      try {
        unlinkSync(ep.path);
      } catch {
        /* no stale socket */
      }
      server.listen({ path: ep.path, backlog: 511 }, done);
    } else {
      server.listen({ host: ep.host, port: ep.port, backlog: 511, ipv6Only: false }, done);
    }
  });
}
