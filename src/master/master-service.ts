/*
 * master-service - one master.cf service: its listeners and its processes
 *
 * DESCRIPTION
 *   master accepts each connection itself (the listener is paused, so it
 *   reads nothing) and hands the socket to a child that has room. Children
 *   are started on demand, when work waits and no child has room, up to the
 *   service's limit: maxproc bounds the clients served at once; a child
 *   takes as many as the capacity it announced (1 for one-client daemons).
 *   A child is retired after max_use connections per client slot (max_use
 *   times its capacity: a Node process is dear to start, and a
 *   multi-client process does that many clients' work) and after max_idle
 *   without work (long-lived services with a wakeup timer keep running).
 *   A child that dies before it served anyone means the command is broken:
 *   the service is throttled for service_throttle_time. When all processes
 *   are busy, master warns and starts new ones with stress=yes for a while.
 *   Programs that are not Postern daemons run once per connection with the
 *   socket as standard input and output.
 *   For an event-driven daemon (postscreen, anvil, verify, scache, tlsmgr)
 *   maxproc counts processes, as in Postfix: one such process serves many
 *   clients at once (up to the capacity it announced), so "maxproc 1"
 *   means one process that every client shares. A process still starting
 *   is not "at its limit": clients wait for it without a warning.
 *   A connection handed over by another service (pass) may carry the bytes
 *   that service already read; they travel on with the socket, together
 *   with anything master itself read while the connection waited.
 *
 *   Waiting connections. Postfix's master never accepts a client itself: a
 *   child accepts from the shared listening socket, so a burst waits in the
 *   kernel's listen backlog. Node cannot do that here: a net.Server has no
 *   way to stop accepting short of closing the socket (libuv has no "listen
 *   stop"), and closing it would reset what waits in the backlog. So master
 *   keeps accepting and holds each connection paused (nothing is read; the
 *   cost is one file descriptor and a small object) until a process takes
 *   it. The connections held by all services together are bounded by the
 *   open-file budget: the process's RLIMIT_NOFILE (Node raises the soft
 *   limit to the hard one) minus a reserve for the children's pipes, the
 *   listeners and master's own files, and at most WAITING_CAP for memory.
 *   Only beyond that bound is a connection closed, and never silently:
 *   master logs, at most once a minute, how many waited and how many it
 *   closed. A long wait is logged the same way.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import type { Server, Socket } from "node:net";
import { msg, type MsgSink } from "../util/msg.js";
import { relayChildLog } from "../util/msg-relay.js";
import type { Config } from "../global/config.js";
import { entryOverrides } from "../global/master-cf.js";
import { endpoints, listen } from "./master-listen.js";
import {
  PASS_DATA_MAX,
  parseChildMessage,
  takeBuffered,
  type MasterMessage,
  type PeerInfo,
} from "./master-proto.js";
import type { ServiceSpec } from "./master-spec.js";
import { onlyChild, signalName } from "./master-procs.js";
import { WAITING_NOTE, waiting, waitingMax } from "./master-waiting.js";
import { JAIL_EXEC_DIR, jailArgv, type Jail } from "../global/jail.js";

export interface MasterEnv {
  cfg: Config;
  owner: { uid: number; gid: number } | null;
  sink: MsgSink;
  /** The jail of chroot=y services (global/jail.ts); null when they run without one. */
  jail: Jail | null;
  env: NodeJS.ProcessEnv;
  /** Hands a connection (and the bytes already read from it) to a pass service; false when there is none. */
  passTo: (service: string, socket: Socket, data: Buffer | undefined, peer: PeerInfo | undefined) => boolean;
  /** Tells the screening services how many handed-over connections wait for a pass service. */
  passQueue: (service: string, waiting: number) => void;
  /** Routes a connection-cache socket (cachefd) from a child of the service `command` runs. */
  cacheFd: (
    from: { pid: number; command: string },
    token: string,
    to: number | undefined,
    sock: Socket,
  ) => void;
}

interface Child {
  proc: ChildProcess;
  /** The process master started (bwrap, for a jailed daemon). */
  pid: number;
  /** The daemon's own pid (it names itself so to scache, and logs show it); pid until it is ready. */
  selfPid: number;
  jailed: boolean;
  /** Who the relayed log lines are from (the pid becomes selfPid). */
  logAs: { tag: string; pid: number };
  ready: boolean;
  capacity: number;
  active: number;
  handed: number;
  /** Sockets handed over that the child may not have taken yet; closed if it dies. */
  sockets: Socket[];
  served: number;
  idleSince: number;
  retiring: boolean;
}

/** A connection waiting for a process, with what was read from it before. */
interface Waiting {
  sock: Socket;
  data: Buffer | undefined;
  peer: PeerInfo | undefined;
}

const STRESS_HOLD_MS = 60_000;

export class Service {
  spec: ServiceSpec;
  #env: MasterEnv;
  #servers: Server[] = [];
  #children = new Set<Child>();
  #pending: Waiting[] = [];
  #triggers = new Set<string>();
  #throttledUntil = 0;
  #stressUntil = 0;
  #warnedAt = -Infinity;
  #used = false;
  #stopped = false;
  #timers: NodeJS.Timeout[] = [];
  #external = 0;
  #cfgCache: { base: Config; spec: ServiceSpec; cfg: Config } | null = null;
  #jailCache: { cfg: Config; jail: Jail; argv: string[] } | null = null;
  #reportedWaiting = 0;
  /** Connections closed because the waiting bound was reached, not yet logged. */
  #dropped = 0;
  #noteAt = -Infinity;

  constructor(spec: ServiceSpec, env: MasterEnv) {
    this.spec = spec;
    this.#env = env;
  }

  /** The configuration as this service sees it: main.cf plus its -o overrides (max_use, max_idle, ...). */
  #cfg(): Config {
    const c = this.#cfgCache;
    if (c !== null && c.base === this.#env.cfg && c.spec === this.spec) return c.cfg;
    const cfg = this.#env.cfg.withOverrides(
      entryOverrides(this.spec.entry),
      `${this.spec.entry.file}, line ${this.spec.entry.first}`,
    );
    this.#cfgCache = { base: this.#env.cfg, spec: this.spec, cfg };
    return cfg;
  }

  /** Binds the listeners and starts the wakeup timer; returns an error text on failure. */
  async start(): Promise<string | null> {
    const eps = endpoints(this.spec, this.#env.cfg);
    if ("error" in eps) return `${this.spec.key}: ${eps.error}`;
    for (const ep of eps) {
      const s = await listen(ep, (sock) => this.accept(sock), this.#env.owner);
      if (typeof s === "string") {
        this.#closeServers();
        return `${this.spec.key}: ${s}`;
      }
      this.#servers.push(s);
    }
    if (this.spec.exec.kind === "unavailable")
      msg.warn(`service ${this.spec.key}: ${this.spec.exec.why}; its clients will wait`);
    this.#startWakeup();
    this.#timers.push(
      setInterval(() => {
        this.#retireIdle();
        if (this.#dropped > 0 || this.#pending.length > WAITING_NOTE) this.#noteWaiting();
      }, 1000),
    );
    return null;
  }

  /** Takes a client connection (from a listener or passed by another service). */
  accept(sock: Socket, data?: Buffer, peer?: PeerInfo): void {
    sock.on("error", () => undefined);
    if (this.#stopped) {
      sock.destroy();
      return;
    }
    if (waiting.total >= waitingMax()) {
      this.#dropped++;
      this.#noteWaiting();
      sock.destroy();
      return;
    }
    this.#pending.push({ sock, data, peer });
    waiting.total++;
    this.#dispatch();
    if (this.#pending.length > WAITING_NOTE) this.#noteWaiting();
  }

  /** Takes the oldest waiting connection off the queue. */
  #takeWaiting(): Waiting {
    waiting.total--;
    return this.#pending.shift() as Waiting;
  }

  /** Logs, at most once a minute, a long queue of waiting connections and those closed for want of room. */
  #noteWaiting(): void {
    const now = Date.now();
    if (now - this.#noteAt < STRESS_HOLD_MS) return;
    this.#noteAt = now;
    const closed =
      this.#dropped > 0
        ? `; ${this.#dropped} closed since the last report: master holds at most ${waitingMax()} waiting connections (from the open-file limit)`
        : "";
    msg.warn(
      `service ${this.spec.key}: ${this.#pending.length} connections wait for a process (${waiting.total} for all services)${closed}`,
    );
    this.#dropped = 0;
  }

  /** Delivers a trigger to the service (starting a process when needed). */
  trigger(data: string): void {
    if (this.#stopped || this.#triggers.size >= 16) return;
    this.#triggers.add(data);
    this.#dispatch();
  }

  /** Counts processes and busy clients (for status and tests). */
  stats(): { processes: number; active: number; pending: number } {
    let active = this.#external;
    for (const c of this.#children) active += c.active;
    return { processes: this.#children.size + this.#external, active, pending: this.#pending.length };
  }

  /** Retires every child: they finish their work and exit; new work starts new ones. */
  retireAll(): void {
    for (const c of this.#children) this.#retire(c);
  }

  /** Stops listening and ends the processes: gracefully up to graceMs, then by force. */
  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#closeServers();
    waiting.total -= this.#pending.length;
    for (const w of this.#pending.splice(0)) w.sock.destroy();
    this.retireAll();
    const deadline = Date.now() + graceMs;
    while (this.#children.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of this.#children) c.proc.kill("SIGKILL");
    while (this.#children.size > 0) await new Promise((r) => setTimeout(r, 20));
  }

  /** Closes the listening sockets. */
  #closeServers(): void {
    for (const s of this.#servers) s.close();
    this.#servers = [];
  }

  /** Starts the wakeup timer; an unconditional one fires at once, as master starts. */
  #startWakeup(): void {
    if (this.spec.wakeup <= 0) return;
    const fire = (): void => {
      if (!this.spec.conditionalWakeup || this.#used) this.trigger("W");
    };
    if (!this.spec.conditionalWakeup) fire();
    this.#timers.push(setInterval(fire, this.spec.wakeup * 1000));
  }

  /** Total clients being served. */
  #activeTotal(): number {
    return this.stats().active;
  }

  /** True when the service may take one more client. */
  #room(): boolean {
    if (this.spec.maxproc === 0) return true;
    if (this.spec.maxprocCounts === "processes")
      return this.#children.size < this.spec.maxproc || this.#pick() !== null;
    return this.#activeTotal() < this.spec.maxproc;
  }

  /** Hands waiting work to children with room, starting children as needed. */
  #dispatch(): void {
    this.#dispatchWork();
    if (this.spec.type === "pass" && this.#pending.length !== this.#reportedWaiting) {
      this.#reportedWaiting = this.#pending.length;
      this.#env.passQueue(this.spec.entry.service, this.#pending.length);
    }
  }

  /** Tells this service's processes (postscreen) how many connections wait for a pass service. */
  tellPassQueue(service: string, waiting: number): void {
    if (this.spec.maxprocCounts !== "processes") return;
    for (const c of this.#children)
      if (c.ready && c.proc.connected) c.proc.send({ t: "passq", service, waiting }, () => undefined);
  }

  /** Hands out what can be handed out now. */
  #dispatchWork(): void {
    if (this.#stopped) return;
    while ((this.#pending.length > 0 || this.#triggers.size > 0) && this.#room()) {
      if (this.spec.exec.kind === "external" && this.#pending.length > 0) {
        this.#runExternal(this.#takeWaiting().sock);
        continue;
      }
      const child = this.#pick();
      if (child === null) return this.#grow();
      const data = this.#triggers.values().next();
      if (!data.done) {
        this.#triggers.delete(data.value);
        this.#hand(child, { t: "trigger", data: data.value }, undefined);
      } else this.#handConn(child, this.#takeWaiting());
    }
    if (this.#pending.length > 0 || this.#triggers.size > 0) this.#overloaded();
  }

  /** The ready child with the fewest clients that still has room, or null. */
  #pick(): Child | null {
    let best: Child | null = null;
    for (const c of this.#children) {
      if (!c.ready || c.retiring || c.active >= c.capacity) continue;
      if (best === null || c.active < best.active) best = c;
    }
    return best;
  }

  /** Sends a client connection to a child, with the bytes read from it so far. */
  #handConn(c: Child, w: Waiting): void {
    const data = Buffer.concat([...(w.data !== undefined ? [w.data] : []), ...takeBuffered(w.sock)]);
    if (data.length > PASS_DATA_MAX) {
      msg.warn(`service ${this.spec.key}: a handed-over connection carries too much data; dropping it`);
      w.sock.destroy();
      this.#dispatch();
      return;
    }
    const m: { t: "conn"; data?: string; peer?: PeerInfo } = { t: "conn" };
    if (data.length > 0) m.data = data.toString("base64");
    if (w.peer !== undefined) m.peer = w.peer;
    this.#hand(c, m, w.sock);
  }

  /** Sends work to a child and counts it. */
  #hand(
    c: Child,
    m: { t: "conn"; data?: string; peer?: PeerInfo } | { t: "trigger"; data: string },
    sock: Socket | undefined,
  ): void {
    c.active++;
    c.handed++;
    this.#used = true;
    const failed = (err: Error | null): void => {
      if (err === null) return;
      msg.warn(`service ${this.spec.key}: could not hand work to pid ${c.pid}: ${err.message}`);
      sock?.destroy();
    };
    if (sock !== undefined) c.proc.send(m, sock, { keepOpen: false }, failed);
    else c.proc.send(m, failed);
    if (sock !== undefined) c.sockets.push(sock);
    if (this.spec.wakeup <= 0 && c.handed >= this.#cfg().int("max_use") * c.capacity) this.#retire(c);
  }

  /** Starts a new child unless one is starting, the service is throttled, or it is unavailable. */
  #grow(): void {
    if (this.spec.exec.kind === "unavailable" || Date.now() < this.#throttledUntil) return;
    for (const c of this.#children) if (!c.ready) return;
    this.#spawn();
  }

  /** Notes that the service is at its limit: warns and turns on stress for new processes. */
  #overloaded(): void {
    if (this.spec.maxproc === 0 || this.#room()) return;
    if (this.spec.maxprocCounts === "processes" && [...this.#children].some((c) => !c.ready)) return;
    const now = Date.now();
    if (now - this.#warnedAt >= STRESS_HOLD_MS) {
      this.#warnedAt = now;
      msg.warn(
        `service "${this.spec.key}" has reached its process limit "${this.spec.maxproc}": new clients may experience noticeable delays`,
      );
    }
    if (!this.spec.localOnly && (this.spec.maxproc > 1 || this.spec.maxprocCounts === "processes"))
      this.#stressUntil = now + STRESS_HOLD_MS;
  }

  /** The bwrap arguments of this service's jail (computed once per configuration). */
  #jailArgv(jail: Jail): string[] {
    const cfg = this.#cfg();
    const c = this.#jailCache;
    if (c !== null && c.cfg === cfg && c.jail === jail) return c.argv;
    const argv = jailArgv(jail, cfg, this.spec.entry.command);
    this.#jailCache = { cfg, jail, argv };
    return argv;
  }

  /**
   * Starts one daemon process: as root when master is root, in the jail
   * for chroot=y; the daemon itself closes the jail's program directory
   * (-X) and becomes mail_owner (-U) once its pre-init is done.
   */
  #spawn(): void {
    if (this.spec.exec.kind !== "node") return;
    const stress = Date.now() < this.#stressUntil ? ["-o", "stress=yes"] : [];
    const owner = this.#env.owner;
    const jail = this.spec.chroot ? this.#env.jail : null;
    const privs = [
      ...(owner !== null && this.spec.unpriv ? ["-U", `${owner.uid}:${owner.gid}`] : []),
      ...(jail !== null ? ["-X", JAIL_EXEC_DIR] : []),
    ];
    const args = [
      "-n",
      this.spec.entry.service,
      "-t",
      this.spec.type,
      ...stress,
      ...privs,
      ...this.spec.args,
    ];
    const proc = fork(this.spec.exec.module, args, {
      ...(jail !== null ? { execPath: jail.program, execArgv: this.#jailArgv(jail) } : { execArgv: [] }),
      env: this.#env.env,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      detached: true,
    });
    if (proc.pid === undefined) {
      msg.warn(`service ${this.spec.key}: cannot start ${this.spec.exec.module}`);
      return this.#throttle();
    }
    const c: Child = {
      proc,
      pid: proc.pid,
      selfPid: proc.pid,
      jailed: jail !== null,
      logAs: { tag: this.#tag(), pid: proc.pid },
      ready: false,
      capacity: 1,
      active: 0,
      handed: 0,
      sockets: [],
      served: 0,
      idleSince: Date.now(),
      retiring: false,
    };
    this.#children.add(c);
    if (proc.stderr)
      relayChildLog(proc.stderr, c.logAs, this.#env.sink, {
        onBehalf: this.spec.entry.command === "postlogd",
      });
    proc.on("message", (raw: unknown, handle: unknown) => this.#onMessage(c, raw, handle));
    proc.on("error", (err) => msg.warn(`service ${this.spec.key}: pid ${c.pid}: ${err.message}`));
    proc.on("exit", (code, signal) => this.#onExit(c, code, signal));
  }

  /** The log tag of this service's processes. */
  #tag(): string {
    return `${this.#cfg().get("syslog_name")}/${this.spec.entry.command.replace(/\.m?js$/, "")}`;
  }

  /**
   * Finds a jailed daemon's own pid: the one child of its bwrap process,
   * read from /proc (not taken from the daemon's word).
   */
  #learnSelfPid(c: Child): void {
    const pid = onlyChild(c.pid);
    if (pid !== null) c.selfPid = c.logAs.pid = pid;
  }

  /** Handles a status message from a child. */
  #onMessage(c: Child, raw: unknown, handle: unknown): void {
    const m = parseChildMessage(raw);
    if (m === null) {
      if (isSocket(handle)) handle.destroy();
      return msg.warn(`service ${this.spec.key}: pid ${c.pid}: malformed status message ignored`);
    }
    if (m.t === "ready") {
      c.ready = true;
      c.capacity = m.capacity;
      if (c.jailed) this.#learnSelfPid(c);
    } else if (m.t === "done") {
      c.sockets.shift();
      if (c.active > 0) c.active--;
      c.served++;
      if (c.active === 0) c.idleSince = Date.now();
    } else if (m.t === "pass") {
      const sock = handle as Socket | undefined;
      if (sock === undefined || typeof sock.destroy !== "function") return;
      const data = m.data !== undefined ? Buffer.from(m.data, "base64") : undefined;
      if (!this.#env.passTo(m.service, sock, data, m.peer)) sock.destroy();
    } else if (m.t === "cachefd") {
      if (!isSocket(handle))
        return msg.warn(`service ${this.spec.key}: pid ${c.pid}: cachefd without a socket ignored`);
      this.#env.cacheFd({ pid: c.selfPid, command: this.spec.entry.command }, m.token, m.to, handle);
    }
    this.#dispatch();
  }

  /**
   * Sends a message with a socket to a ready process of this service: the
   * one with that pid, or any when none is named. False when there is no
   * such process (the caller closes the socket).
   */
  sendSocket(m: MasterMessage, sock: Socket, pid?: number): boolean {
    let to: Child | undefined;
    for (const c of this.#children) {
      if (!c.ready || !c.proc.connected || (pid !== undefined && c.selfPid !== pid)) continue;
      if (to === undefined || (to.retiring && !c.retiring)) to = c;
    }
    if (to === undefined) return false;
    const child = to;
    child.proc.send(m, sock, { keepOpen: false }, (err: Error | null) => {
      if (err === null) return;
      msg.warn(
        `service ${this.spec.key}: could not hand a cached connection to pid ${child.pid}: ${err.message}`,
      );
      sock.destroy();
    });
    return true;
  }

  /** True when a process of this service has this pid (as the daemon names itself). */
  hasPid(pid: number): boolean {
    for (const c of this.#children) if (c.selfPid === pid) return true;
    return false;
  }

  /** Handles a child's exit: logs trouble, throttles a broken command, replaces as needed. */
  #onExit(c: Child, code: number | null, signal: NodeJS.Signals | null): void {
    this.#children.delete(c);
    for (const s of c.sockets) s.destroy();
    c.sockets = [];
    // bwrap reports a daemon killed by a signal as exit status 128 + the signal's number.
    const killedBy = signal ?? (c.jailed && code !== null && code > 128 ? signalName(code - 128) : null);
    const how = killedBy !== null ? `killed by signal ${killedBy}` : `exit status ${code}`;
    if (this.#stopped || (c.retiring && code === 0)) return;
    msg.warn(
      `process ${this.spec.exec.kind === "node" ? this.spec.exec.module : this.spec.entry.command} pid ${c.selfPid} ${how}`,
    );
    if (c.served === 0 && c.active === 0 && (code !== 0 || !c.ready)) this.#throttle();
    this.#dispatch();
  }

  /** Stops starting processes for service_throttle_time. */
  #throttle(): void {
    const ms = this.#cfg().time("service_throttle_time") * 1000;
    msg.warn(`${this.spec.key}: bad command startup -- throttling`);
    this.#throttledUntil = Date.now() + ms;
    const t = setTimeout(() => this.#dispatch(), ms + 10);
    t.unref();
  }

  /** Tells a child to finish its work and exit. */
  #retire(c: Child): void {
    if (c.retiring) return;
    c.retiring = true;
    if (c.proc.connected) c.proc.send({ t: "retire" });
    else c.proc.kill("SIGTERM");
  }

  /** Retires children that have been idle for max_idle (not the long-lived wakeup services). */
  #retireIdle(): void {
    if (this.spec.wakeup > 0) return;
    const limit = this.#cfg().time("max_idle") * 1000;
    const now = Date.now();
    for (const c of this.#children) {
      if (c.ready && !c.retiring && c.active === 0 && now - c.idleSince >= limit) this.#retire(c);
    }
  }

  /** Runs a non-Postern program for one connection, the socket as its standard input and output. */
  #runExternal(sock: Socket): void {
    if (this.spec.exec.kind !== "external") return;
    this.#external++;
    this.#used = true;
    const proc = spawn(this.spec.exec.path, this.spec.args, {
      stdio: [sock, sock, "pipe"],
      env: this.#env.env,
      ...(this.#env.owner !== null && this.spec.unpriv
        ? { uid: this.#env.owner.uid, gid: this.#env.owner.gid }
        : {}),
    });
    if (proc.stderr && proc.pid !== undefined)
      relayChildLog(proc.stderr, { tag: this.#tag(), pid: proc.pid }, this.#env.sink);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      this.#external--;
      sock.destroy();
      this.#dispatch();
    };
    proc.on("error", (err) => {
      msg.warn(`service ${this.spec.key}: ${err.message}`);
      finish();
    });
    proc.on("exit", finish);
  }
}

/** True for a net.Socket handle that came with a child's message. */
function isSocket(h: unknown): h is Socket {
  return typeof h === "object" && h !== null && typeof (h as Socket).destroy === "function";
}
