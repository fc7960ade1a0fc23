/*
 * mail-server - the skeleton every Postern daemon is built on
 *
 * SYNOPSIS
 *   import { multiServer, singleServer, triggerServer } from "../master/mail-server.js";
 *   multiServer({ name: "smtpd", onStart(ctx) {...}, async onConnection(sock, ctx) {...} });
 *
 * DESCRIPTION
 *   A daemon is a child of master. It reads its configuration (main.cf from
 *   $MAIL_CONFIG plus the master.cf -o overrides that master passes as
 *   arguments), logs through master (records on standard error), tells
 *   master it is ready and how many clients it takes at once, and then
 *   serves what master hands it:
 *     singleServer   one client at a time (a delivery agent's style)
 *     multiServer    many clients at once (postern_process_client_limit;
 *                    a daemon that is one process shared by every client,
 *                    such as anvil or verify, takes as many as its open
 *                    files allow: sharedCapacity)
 *     triggerServer  wakeup triggers: a few bytes per connection, or a timer
 *   After each client it tells master "done". When master says "retire", or
 *   when master goes away, the process takes no more work and exits once
 *   the current work is finished (bounded by a grace period). A one-client
 *   request or a trigger that runs longer than daemon_timeout is a fatal
 *   error (watchdog); multi-client connections may stay open for long (their
 *   protocols have their own idle limits).
 *
 *   A daemon may hand a live client connection to a "pass" service
 *   through master with passConnection() (postscreen hands the clients it
 *   let through to smtpd): the bytes it already read go along, and the next
 *   daemon reads them first, as if they had just arrived. When a proxy
 *   named the real client (PROXY protocol), the endpoints go along too,
 *   and the socket reports them as its remote and local address.
 *
 *   The connection cache moves idle SMTP connections between processes
 *   the same way (sendCacheSocket, onCacheSocket): a delivery agent hands
 *   one to master for the scache service, and scache hands it back to the
 *   agent process that asked for it (master-proto.ts, cachefd).
 *
 *   Privileges, as in Postfix: master starts every daemon as root (when it
 *   runs as root) and, for a chroot=y service, already inside the jail
 *   (global/jail.ts). The daemon's preInit runs first, still as root: it
 *   reads what only root may read (TLS keys, root-only tables) and must
 *   create no file. Then, when master said so, the daemon closes the
 *   jail's program directory (-X dir) and becomes mail_owner for good
 *   (-U uid:gid; a failure is fatal). onStart runs after that.
 *
 *   Arguments from master: -n service -t type [-o name=value]... [-U uid:gid]
 *   [-X dir] [-u] [-c] [-v]
 */
import type { Socket } from "node:net";
import { getopt } from "../util/getopt.js";
import { msg, msgInit } from "../util/msg.js";
import { openFileLimit } from "../util/open-files.js";
import { closeDirectory, dropPrivileges, parseIds, type Ids } from "../util/privs.js";
import { RecordSink } from "../util/msg-sinks.js";
import { Config, ConfigError } from "../global/config.js";
import { configDirectory } from "../global/install-paths.js";
import { onUnreadableChange } from "../global/dict-file.js";
import { splitNameValue } from "../global/main-cf.js";
import type { ServiceType } from "../global/master-cf.js";
import {
  PASS_DATA_MAX,
  parseMasterMessage,
  takeBuffered,
  type ChildMessage,
  type PeerInfo,
} from "./master-proto.js";

export interface ServerContext {
  config: Config;
  /** The master.cf service name. */
  service: string;
  type: ServiceType;
  /** The daemon's own name (the master.cf command). */
  name: string;
  /** The master.cf arguments that are not options (e.g. a pipe transport's flags=... argv=...). */
  args: string[];
}

interface CommonOptions {
  name: string;
  /** Master's word on how many handed-over connections wait for a pass service (see passConnection). */
  onPassQueue?: (service: string, waiting: number) => void;
  /** Called first, as root when master runs as root: read keys, open root-only tables; create no files. */
  preInit?: (ctx: ServerContext) => void | Promise<void>;
  /** Called once before the first client, after the privilege drop; may read configuration and open tables. */
  onStart?: (ctx: ServerContext) => void | Promise<void>;
}

export interface ConnectionServerOptions extends CommonOptions {
  /** multiServer: how many clients one process takes (default postern_process_client_limit). */
  capacity?: (ctx: ServerContext) => number;
  /** Serves one client; the returned promise settles when the daemon is done with it. */
  onConnection: (socket: Socket, ctx: ServerContext) => void | Promise<void>;
  /** Handles master's wakeup (a master.cf wakeup time on a client service, such as flush). */
  onTrigger?: (data: Buffer, ctx: ServerContext) => void | Promise<void>;
}

export interface TriggerServerOptions extends CommonOptions {
  onTrigger: (data: Buffer, ctx: ServerContext) => void | Promise<void>;
}

const TRIGGER_MAX = 1024;
/** How long a retiring daemon's exit hooks may take. */
const EXIT_HOOKS_MS = 2000;
const exitHooks: Array<() => Promise<void>> = [];

/** Runs fn before a retiring daemon exits when its work is done (the smtp agent hands its idle sessions on). */
export function beforeRetiredExit(fn: () => Promise<void>): void {
  exitHooks.push(fn);
}
const RETIRE_GRACE_MS = 30_000;

/** What master asked of the daemon's privileges: the IDs to become, the jail directory to close. */
interface PrivilegeOrders {
  ids: Ids | null;
  closeDir: string | null;
}

/** Parses master's arguments into the context. */
function parseArgs(name: string, argv: string[]): { ctx: ServerContext; privs: PrivilegeOrders } {
  const r = getopt(argv, "n:t:o:U:X:ucvs");
  if (!r.ok) return msg.fatal(`${name}: ${r.error}`);
  let service = name;
  let type: ServiceType = "unix";
  const overrides: Array<[string, string]> = [];
  const privs: PrivilegeOrders = { ids: null, closeDir: null };
  for (const [k, v] of r.opts) {
    if (k === "n") service = v;
    else if (k === "t") type = v as ServiceType;
    else if (k === "U") privs.ids = parseIds(v) ?? msg.fatal(`-U ${v}: expected uid:gid`);
    else if (k === "X") privs.closeDir = v;
    else if (k === "o") {
      const nv = splitNameValue(v);
      if ("error" in nv) return msg.fatal(`-o ${v}: ${nv.error}`);
      overrides.push([nv.name, nv.value]);
    }
  }
  const base = Config.load(configDirectory(undefined));
  const config = base.withOverrides(overrides, `${base.masterPath}: service ${service}/${type}`);
  config.setRuntime("process_name", name);
  config.setRuntime("service_name", service);
  return { ctx: { config, service, type, name, args: r.args }, privs };
}

/** Closes the jail's program directory and becomes mail_owner, as master asked; fatal on failure. */
function giveUpPrivileges(privs: PrivilegeOrders): void {
  try {
    if (privs.closeDir !== null) closeDirectory(privs.closeDir);
    if (privs.ids !== null) dropPrivileges(privs.ids);
  } catch (err) {
    msg.fatal(`cannot give up privileges: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Checks the configuration the daemon reads; a broken file stops it with a clear message. */
function checkConfig(ctx: ServerContext): void {
  const problems = ctx.config.main.problems;
  const first = problems[0];
  if (first !== undefined) msg.fatal(`${first.file}, line ${first.line}: ${first.text}`);
  try {
    msgInit({ tag: `${ctx.config.get("syslog_name")}/${ctx.name}` });
  } catch (err) {
    if (err instanceof ConfigError) msg.fatal(err.message);
    throw err;
  }
}

/** Sends a status message to master, if it is still there. */
function tell(m: ChildMessage): void {
  if (process.connected) process.send?.(m);
}

/** The run-time state shared by the three skeleton styles. */
class Skeleton {
  readonly ctx: ServerContext;
  #active = 0;
  #retiring = false;
  #exiting = false;
  #watchdogMs: number;

  constructor(ctx: ServerContext) {
    this.ctx = ctx;
    this.#watchdogMs = ctx.config.time("daemon_timeout") * 1000;
  }

  /** Runs one unit of work, with the watchdog unless it is a long-lived client connection; reports done afterwards. */
  async run(what: string, work: () => void | Promise<void>, watchdog = true): Promise<void> {
    this.#active++;
    const dog = watchdog
      ? setTimeout(
          () => msg.fatal(`watchdog timeout: ${what} took longer than daemon_timeout`),
          this.#watchdogMs,
        )
      : undefined;
    try {
      await work();
    } catch (err) {
      msg.warn(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      clearTimeout(dog);
      this.#active--;
      tell({ t: "done" });
      this.#maybeExit();
    }
  }

  /** Stops taking work; exits when idle, or after the grace period. */
  retire(why: string): void {
    if (this.#retiring) return;
    this.#retiring = true;
    msg.debug(`retiring: ${why}`);
    setTimeout(() => process.exit(0), RETIRE_GRACE_MS).unref();
    this.#maybeExit();
  }

  /** Exits when retiring and no work is left (after the exit hooks, at most EXIT_HOOKS_MS). */
  #maybeExit(): void {
    if (!this.#retiring || this.#active !== 0 || this.#exiting) return;
    this.#exiting = true;
    const limit = new Promise((r) => setTimeout(r, EXIT_HOOKS_MS).unref());
    void Promise.race([Promise.allSettled(exitHooks.map((h) => h())), limit]).then(() => process.exit(0));
  }
}

/** Common start-up: arguments, logging, configuration, master's messages. */
async function start(
  opts: CommonOptions,
  capacity: (ctx: ServerContext) => number,
  handlers: {
    conn: (sk: Skeleton, socket: Socket, data: Buffer | undefined) => void;
    trigger: (sk: Skeleton, data: Buffer) => void;
  },
): Promise<void> {
  if (process.send === undefined) {
    process.stderr.write(`${opts.name}: this program is a Postern daemon and is run by master\n`);
    process.exit(1);
  }
  msgInit({ tag: `postern/${opts.name}`, sink: new RecordSink() });
  const { ctx, privs } = parseArgs(opts.name, process.argv.slice(2));
  checkConfig(ctx);
  let sk: Skeleton;
  try {
    sk = new Skeleton(ctx);
    await opts.preInit?.(ctx);
  } catch (err) {
    return msg.fatal(err instanceof Error ? err.message : String(err));
  }
  giveUpPrivileges(privs);
  if (privs.ids !== null) onUnreadableChange((why) => sk.retire(why));
  try {
    await opts.onStart?.(ctx);
  } catch (err) {
    return msg.fatal(err instanceof Error ? err.message : String(err));
  }
  process.on("message", (raw: unknown, handle: unknown) => {
    const m = parseMasterMessage(raw);
    if (m === null) return msg.warn("ignoring a malformed message from master");
    if (m.t === "retire") sk.retire("master asked");
    else if (m.t === "trigger") handlers.trigger(sk, Buffer.from(m.data, "latin1"));
    else if (m.t === "passq") opts.onPassQueue?.(m.service, m.waiting);
    else if (m.t === "cachefd") {
      if (!isSocket(handle)) return;
      handle.on("error", () => undefined);
      if (cacheSocketHandler === null) handle.destroy();
      else cacheSocketHandler(m.token, handle, m.from);
    } else if (isSocket(handle)) {
      if (m.peer !== undefined) showPeer(handle, m.peer);
      handlers.conn(sk, handle, m.data !== undefined ? Buffer.from(m.data, "base64") : undefined);
    }
  });
  process.on("disconnect", () => sk.retire("master went away"));
  // A master that died while onStart ran (qmgr waits for its lock there) sent no event to this listener.
  if (!process.connected) sk.retire("master went away");
  process.on("SIGINT", () => undefined);
  process.on("SIGHUP", () => undefined);
  tell({ t: "ready", capacity: capacity(ctx) });
}

/** Makes a socket report the endpoints a proxy named (the daemon reads them as usual). */
function showPeer(socket: Socket, p: PeerInfo): void {
  Object.defineProperties(socket, {
    remoteAddress: { value: p.addr },
    remotePort: { value: p.port },
    localAddress: { value: p.serverAddr },
    localPort: { value: p.serverPort },
  });
}

/** True for a net.Socket handle passed by master. */
function isSocket(h: unknown): h is Socket {
  return (
    typeof h === "object" &&
    h !== null &&
    typeof (h as Socket).resume === "function" &&
    typeof (h as Socket).destroy === "function"
  );
}

/** Serves one connection with the daemon's callback (multi-client services keep connections open, so no watchdog). */
function serveConnection(
  opts: ConnectionServerOptions,
  watchdog: boolean,
): (sk: Skeleton, socket: Socket, data: Buffer | undefined) => void {
  return (sk, socket, data) => {
    socket.on("error", (err) => msg.debug(`client connection: ${err.message}`));
    if (data !== undefined && data.length > 0) socket.unshift(data);
    void sk.run(
      "client",
      async () => {
        const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
        socket.resume();
        await opts.onConnection(socket, sk.ctx);
        if (!socket.destroyed && !handedOver.has(socket)) socket.end();
        await closed;
      },
      watchdog,
    );
  };
}

/** Handles a wakeup for a client service: its onTrigger, or a warning (the work still counts as done). */
function serveWakeup(opts: ConnectionServerOptions): (sk: Skeleton, data: Buffer) => void {
  return (sk, data) =>
    void sk.run("trigger", () =>
      opts.onTrigger !== undefined ? opts.onTrigger(data, sk.ctx) : msg.warn("unexpected trigger"),
    );
}

/** A daemon that serves one client at a time. */
export function singleServer(opts: ConnectionServerOptions): Promise<void> {
  return start(opts, () => 1, { conn: serveConnection(opts, true), trigger: serveWakeup(opts) });
}

/**
 * The capacity of a process that every client of the service shares
 * (master.cf maxproc 1 counting processes): as many clients as the
 * process's open-file limit allows, less a reserve for its own files.
 */
export function sharedCapacity(): number {
  const n = openFileLimit(1024);
  return Math.max(1, n - Math.max(64, Math.floor(n / 8)));
}

/** A daemon that serves many clients at once. */
export function multiServer(opts: ConnectionServerOptions): Promise<void> {
  return start(opts, opts.capacity ?? ((ctx) => ctx.config.int("postern_process_client_limit")), {
    conn: serveConnection(opts, false),
    trigger: serveWakeup(opts),
  });
}

const handedOver = new WeakSet<Socket>();

type CacheSocketHandler = (token: string, socket: Socket, from: number | undefined) => void;
let cacheSocketHandler: CacheSocketHandler | null = null;

/** Takes the connection-cache sockets that master hands this process (without a handler they are closed). */
export function onCacheSocket(fn: CacheSocketHandler): void {
  cacheSocketHandler = fn;
}

/**
 * Hands an idle connection to master for the connection cache: to scache
 * (from an agent), or to the agent process `to` (from scache). The socket
 * must have nothing unread: its reading is stopped first, and a socket
 * with bytes nobody consumed is not sent (false; the caller closes it).
 * Resolves true once master has it; the local socket is then closed.
 */
export function sendCacheSocket(socket: Socket, token: string, to?: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (
      takeBuffered(socket).length > 0 ||
      socket.destroyed ||
      !process.connected ||
      process.send === undefined
    )
      return resolve(false);
    const m: ChildMessage = to === undefined ? { t: "cachefd", token } : { t: "cachefd", token, to };
    process.send(m, socket, { keepOpen: false }, (err: Error | null) => {
      if (err !== null) {
        msg.warn(`cannot hand a cached connection to master: ${err.message}`);
        return resolve(false);
      }
      socket.destroy();
      resolve(true);
    });
  });
}

/**
 * Hands a live client connection to the pass service `service` through
 * master, with the bytes already read from it (at most PASS_DATA_MAX). The
 * socket is closed here once master has it; the client stays connected.
 * Resolves false when it could not be handed over (the caller closes it).
 */
export function passConnection(
  socket: Socket,
  service: string,
  data?: Buffer,
  peer?: PeerInfo,
): Promise<boolean> {
  return new Promise((resolve) => {
    const pre = Buffer.concat([...(data !== undefined ? [data] : []), ...takeBuffered(socket)]);
    if (!process.connected || process.send === undefined || pre.length > PASS_DATA_MAX || socket.destroyed)
      return resolve(false);
    const m: ChildMessage & { t: "pass" } = { t: "pass", service };
    if (pre.length > 0) m.data = pre.toString("base64");
    if (peer !== undefined) m.peer = peer;
    handedOver.add(socket);
    process.send(m, socket, { keepOpen: false }, (err: Error | null) => {
      if (err !== null) {
        handedOver.delete(socket);
        msg.warn(`cannot hand the connection to ${service}: ${err.message}`);
        return resolve(false);
      }
      socket.destroy();
      resolve(true);
    });
  });
}

/** Reads a trigger connection: up to TRIGGER_MAX bytes until the client closes. */
function readTrigger(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (): void => resolve(Buffer.concat(chunks).subarray(0, TRIGGER_MAX));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on("data", (d: Buffer) => {
      size += d.length;
      if (size <= TRIGGER_MAX) chunks.push(d);
      else socket.destroy();
    });
    socket.on("close", finish);
    socket.resume();
  });
}

/** A daemon that acts on wakeup triggers (qmgr, pickup, flush). */
export function triggerServer(opts: TriggerServerOptions): Promise<void> {
  return start(opts, () => 1, {
    conn: (sk, socket) => {
      socket.on("error", () => undefined);
      void sk.run("trigger", async () => opts.onTrigger(await readTrigger(socket), sk.ctx));
    },
    trigger: (sk, data) => void sk.run("trigger", () => opts.onTrigger(data, sk.ctx)),
  });
}
