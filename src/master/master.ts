/*
 * master - the resident supervisor of a Postern instance
 *
 * SYNOPSIS
 *   node dist/src/master/master.js [-c config_dir] [-w]
 *   (started by "postern start" or "postern start-fg", not by hand)
 *
 * DESCRIPTION
 *   master reads main.cf and master.cf, takes the instance lock in
 *   data_directory, creates the queue tree, binds every listener, and runs
 *   the services' processes on demand (master-service.ts). It is the single
 *   writer of the log: children send their log records to it.
 *   Started as root, it runs each service as mail_owner unless the unpriv
 *   column says n: each daemon starts as root, does its pre-init (keys,
 *   root-only tables) and then drops to mail_owner itself. chroot=y
 *   services run in a jail, a private mount namespace made by bubblewrap
 *   that shows the queue and little else (global/jail.ts). Started as
 *   another user, everything runs as that user, jailed where bwrap can
 *   make a user namespace.
 *
 *   Signals: SIGHUP reloads both files (new processes get the new settings,
 *   busy ones finish their work; a changed maillog_file or syslog setting
 *   applies to the next log line); SIGTERM stops gracefully (stop accepting,
 *   let work finish up to postern_stop_grace_time, then end every child);
 *   SIGINT and SIGQUIT stop at once. With -w, master writes "ready" to file
 *   descriptor 3 once it serves, so "postern start" knows it is up.
 */
import type { Socket } from "node:net";
import { chownSync, closeSync, writeSync } from "node:fs";
import { getopt } from "../util/getopt.js";
import { StderrSink, msg, msgInit, type MsgSink } from "../util/msg.js";
import { FileSink } from "../util/msg-sinks.js";
import { SyslogSink } from "../util/msg-sinks-syslog.js";
import { getUser } from "../util/unix-users.js";
import { Config, ConfigError } from "../global/config.js";
import { configDirectory } from "../global/install-paths.js";
import { makeQueueTree } from "../global/queue-dirs.js";
import { lockInstance, unlockInstance } from "../global/master-pid.js";
import { endpoints } from "./master-listen.js";
import { takeBuffered } from "./master-proto.js";
import { Service, type MasterEnv } from "./master-service.js";
import { serviceSpec } from "./master-spec.js";
import { probeJail, type Jail } from "../global/jail.js";

/**
 * The jail of chroot=y services, probed when the first such service is
 * configured. Without a working jail, root refuses to run them (a chroot
 * column that protects nothing must not look as if it did); a normal
 * user, whose every service runs with the same rights anyway, runs them
 * unjailed after a warning.
 */
function jailFor(specs: ReturnType<typeof serviceSpec>[], prev: Jail | null): Jail | null | string {
  if (prev !== null || !specs.some((s) => s.chroot)) return prev;
  const jail = probeJail();
  if (typeof jail !== "string") return jail;
  const names = specs.filter((s) => s.chroot).map((s) => s.entry.service);
  if (process.getuid?.() === 0)
    return `chroot=y services (${names.join(", ")}) need a jail: ${jail}; or set their chroot column to n`;
  msg.warn(`chroot=y services run without a jail: ${jail}`);
  return null;
}

/** The environment children get: MAIL_CONFIG plus import_environment. */
function childEnv(cfg: Config): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { MAIL_CONFIG: cfg.dir };
  for (const item of cfg.list("import_environment")) {
    const eq = item.indexOf("=");
    if (eq > 0) env[item.slice(0, eq)] = item.slice(eq + 1);
    else if (process.env[item] !== undefined) env[item] = process.env[item];
  }
  return env;
}

/** The log destination: maillog_file, else syslog. */
function logSink(cfg: Config): MsgSink {
  const file = cfg.get("maillog_file");
  if (file !== "")
    return new FileSink({
      path: file,
      mode: Number.parseInt(cfg.get("maillog_file_permissions"), 8) || 0o600,
    });
  return new SyslogSink({ facility: cfg.get("syslog_facility") });
}

/** The settings that choose the log destination; a reload that changes them opens a new one. */
const LOG_PARAMS = ["maillog_file", "maillog_file_permissions", "syslog_facility"];

/** The log destination of master and of every child's relayed lines; reload may point it elsewhere. */
class LogSink implements MsgSink {
  #target: MsgSink;
  #key: string;

  constructor(cfg: Config) {
    this.#target = logSink(cfg);
    this.#key = LogSink.#keyOf(cfg);
  }

  static #keyOf(cfg: Config): string {
    return JSON.stringify(LOG_PARAMS.map((p) => cfg.get(p)));
  }

  /** Follows a reloaded configuration: a changed destination takes effect for the next line. */
  follow(cfg: Config): void {
    const key = LogSink.#keyOf(cfg);
    if (key === this.#key) return;
    this.#target.flush?.();
    this.#target = logSink(cfg);
    this.#key = key;
  }

  write(...args: Parameters<MsgSink["write"]>): void {
    this.#target.write(...args);
  }

  flush(): void {
    this.#target.flush?.();
  }
}

/** A sink that writes to several sinks (start-up problems go to the starter and to the log). */
function teeSink(sinks: MsgSink[]): MsgSink {
  return {
    write: (level, tag, pid, text) => sinks.forEach((s) => s.write(level, tag, pid, text)),
    flush: () => sinks.forEach((s) => s.flush?.()),
  };
}

/** Loads and checks the configuration; every problem is reported. */
function loadConfig(dir: string): Config | string[] {
  try {
    const cfg = Config.load(dir);
    if (!cfg.mainExists) return [`open ${cfg.mainPath}: no such file`];
    const problems = cfg.problems();
    return problems.length > 0 ? problems : cfg;
  } catch (err) {
    if (err instanceof ConfigError) return [err.message];
    throw err;
  }
}

class Master {
  #cfg: Config;
  #env: MasterEnv;
  #services = new Map<string, Service>();
  #stopping = false;

  #sink: LogSink;

  constructor(cfg: Config, owner: MasterEnv["owner"], sink: LogSink) {
    this.#sink = sink;
    this.#cfg = cfg;
    this.#env = {
      cfg,
      owner,
      sink,
      jail: null,
      env: childEnv(cfg),
      passTo: (name, sock, data, peer) => this.#passTo(name, sock, data, peer),
      passQueue: (name, waiting) => {
        for (const svc of this.#services.values()) svc.tellPassQueue(name, waiting);
      },
      cacheFd: (from, token, to, sock) => this.#cacheFd(from, token, to, sock),
    };
  }

  /** The entries master runs: master.cf minus master_service_disable. */
  #specs(cfg: Config): ReturnType<typeof serviceSpec>[] {
    const disabled = new Set(cfg.list("master_service_disable"));
    return cfg.master.entries
      .filter(
        (e) =>
          !disabled.has(e.service) &&
          !disabled.has(`${e.service}/${e.type}`) &&
          !disabled.has(`${e.service}.${e.type}`),
      )
      .map((e) => serviceSpec(e, cfg));
  }

  /** Starts every service; returns the first error. */
  async start(): Promise<string | null> {
    const specs = this.#specs(this.#cfg);
    const jail = jailFor(specs, null);
    if (typeof jail === "string") return jail;
    this.#env.jail = jail;
    for (const spec of specs) {
      const svc = new Service(spec, this.#env);
      const err = await svc.start();
      if (err !== null) return err;
      this.#services.set(spec.key, svc);
    }
    return null;
  }

  /** Finds the pass service for a connection handed over by another service. */
  #passTo(
    name: string,
    sock: Parameters<MasterEnv["passTo"]>[1],
    data: Buffer | undefined,
    peer: Parameters<MasterEnv["passTo"]>[3],
  ): boolean {
    const svc = this.#services.get(`${name}/pass`);
    if (svc === undefined) {
      msg.warn(`no pass service named ${name}`);
      return false;
    }
    svc.accept(sock, data, peer);
    return true;
  }

  /**
   * Routes an idle SMTP connection between the delivery agents and the
   * connection cache (scache): from an agent to the process of the service
   * connection_cache_service_name, with the agent's pid; from scache only,
   * to the agent process it names. A socket from which master read bytes
   * (the server spoke while it was idle) is not worth keeping: closed.
   */
  #cacheFd(
    from: { pid: number; command: string },
    token: string,
    to: number | undefined,
    sock: Socket,
  ): void {
    sock.on("error", () => undefined);
    const refuse = (why: string): void => {
      msg.warn(`cached connection from pid ${from.pid} refused: ${why}`);
      sock.destroy();
    };
    if (takeBuffered(sock).length > 0) return refuse("the server sent data while the connection was idle");
    if (to === undefined) {
      const name = this.#cfg.get("connection_cache_service_name");
      const svc = this.#services.get(`${name}/unix`);
      if (svc === undefined || !svc.sendSocket({ t: "cachefd", token, from: from.pid }, sock))
        return refuse(`no running ${name} service`);
      return;
    }
    if (from.command !== "scache") return refuse("only the scache service may hand connections to agents");
    for (const svc of this.#services.values())
      if (svc.hasPid(to)) {
        if (!svc.sendSocket({ t: "cachefd", token }, sock, to)) refuse(`pid ${to} is not ready`);
        return;
      }
    refuse(`no process with pid ${to}`);
  }

  /** Re-reads both files: unchanged services get fresh processes, changed ones restart, removed ones stop. */
  async reload(): Promise<void> {
    const loaded = loadConfig(this.#cfg.dir);
    if (Array.isArray(loaded)) {
      for (const p of loaded) msg.error(p);
      msg.error("reload refused: the configuration has errors; the running configuration stays");
      return;
    }
    const specs = this.#specs(loaded);
    const jail = jailFor(specs, this.#env.jail);
    if (typeof jail === "string") {
      msg.error(`reload refused: ${jail}; the running configuration stays`);
      return;
    }
    this.#cfg = loaded;
    Object.assign(this.#env, { cfg: loaded, jail, env: childEnv(loaded) });
    this.#sink.follow(loaded);
    msgInit({ tag: `${loaded.get("syslog_name")}/master`, sink: this.#sink });
    const next = new Map(specs.map((s) => [s.key, s]));
    for (const [key, svc] of this.#services) {
      const spec = next.get(key);
      if (spec !== undefined && sameEndpoints(svc.spec, spec, loaded)) {
        svc.spec = spec;
        svc.retireAll();
        next.delete(key);
        continue;
      }
      this.#services.delete(key);
      void svc.stop(this.#graceMs());
    }
    for (const spec of next.values()) {
      const svc = new Service(spec, this.#env);
      const err = await svc.start();
      if (err !== null) msg.error(`reload: ${err}`);
      else this.#services.set(spec.key, svc);
    }
    msg.info(`reload -- version ${loaded.get("mail_version")}, configuration ${loaded.dir}`);
  }

  /** The graceful-stop limit in milliseconds. */
  #graceMs(): number {
    return this.#cfg.time("postern_stop_grace_time") * 1000;
  }

  /** Stops every service (gracefully unless abort) and exits. */
  async stop(signal: string, abort: boolean): Promise<never> {
    if (this.#stopping) process.exit(1);
    this.#stopping = true;
    msg.info(`terminating on signal ${signal}`);
    await Promise.all([...this.#services.values()].map((s) => s.stop(abort ? 0 : this.#graceMs())));
    unlockInstance(this.#cfg.get("data_directory"));
    process.exit(0);
  }
}

/** True when two specs of the same service listen on the same endpoints. */
function sameEndpoints(
  a: ReturnType<typeof serviceSpec>,
  b: ReturnType<typeof serviceSpec>,
  cfg: Config,
): boolean {
  if (a.fingerprint === b.fingerprint) return true;
  return JSON.stringify(endpoints(a, cfg)) === JSON.stringify(endpoints(b, cfg));
}

/** Works out whose rights the services run with. */
function privileges(cfg: Config): MasterEnv["owner"] {
  if (process.getuid?.() !== 0) {
    msg.warn(
      `privilege separation is off: master runs as uid ${process.getuid?.()}, and so does every service`,
    );
    return null;
  }
  const name = cfg.get("mail_owner");
  const user = getUser(name);
  if (user === null) {
    return msg.fatal(
      `mail_owner: unknown user "${name}"; create the account (e.g. useradd -r -d /var/spool/postern -s /usr/sbin/nologin ${name}) or name an existing one with "postconf -e mail_owner=NAME"`,
    );
  }
  if (user.uid === 0) return msg.fatal(`mail_owner "${name}" has uid 0: it must be an unprivileged account`);
  return { uid: user.uid, gid: user.gid };
}

/** Gives data_directory to mail_owner, as Postfix does: daemons keep state there (postscreen's cache). */
function ownDataDirectory(dir: string, owner: MasterEnv["owner"]): void {
  if (owner === null) return;
  try {
    chownSync(dir, owner.uid, owner.gid);
  } catch (err) {
    msg.warn(`data_directory ${dir}: cannot give it to mail_owner: ${(err as Error).message}`);
  }
}

/** Tells "postern start" that master is up. */
function notifyReady(wait: boolean): void {
  if (!wait) return;
  try {
    writeSync(3, "ready\n");
    closeSync(3);
  } catch {
    /* the starter went away */
  }
}

/** The master program. */
async function main(): Promise<void> {
  const r = getopt(process.argv.slice(2), "c:wv");
  if (!r.ok) return msg.fatal(`${r.error}; usage: master [-c config_dir] [-w]`);
  const dir = configDirectory(r.opts.find(([k]) => k === "c")?.[1]);
  msgInit({ tag: "postern/master" });
  const loaded = loadConfig(dir);
  if (Array.isArray(loaded)) {
    for (const p of loaded.slice(0, -1)) msg.error(p);
    return msg.fatal(loaded[loaded.length - 1] ?? "bad configuration");
  }
  const cfg = loaded;
  const sink = new LogSink(cfg);
  const tag = `${cfg.get("syslog_name")}/master`;
  msgInit({ tag, sink: teeSink([new StderrSink(), sink]) });
  const owner = privileges(cfg);
  const lockErr = lockInstance(cfg.get("data_directory"));
  if (lockErr !== null) return msg.fatal(lockErr);
  makeQueueTree(cfg.get("queue_directory"), owner);
  ownDataDirectory(cfg.get("data_directory"), owner);
  const master = new Master(cfg, owner, sink);
  const err = await master.start();
  if (err !== null) {
    unlockInstance(cfg.get("data_directory"));
    return msg.fatal(err);
  }
  msgInit({ tag, sink });
  msg.info(`daemon started -- version ${cfg.get("mail_version")}, configuration ${cfg.dir}`);
  process.on("SIGHUP", () => void master.reload());
  process.on("SIGTERM", () => void master.stop("15", false));
  process.on("SIGINT", () => void master.stop("2", true));
  process.on("SIGQUIT", () => void master.stop("3", true));
  process.on("SIGPIPE", () => undefined);
  notifyReady(r.opts.some(([k]) => k === "w"));
}

await main();
