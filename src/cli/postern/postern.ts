/*
 * postern - control the Postern mail system
 *
 * SYNOPSIS
 *   postern [-c config_dir] start | start-fg [--embedded] | stop | abort | reload | status | check | flush
 *
 * DESCRIPTION
 *   start     start master in the background; returns once it serves, or
 *             exits non-zero with master's own error message
 *   start-fg  run master in the foreground (process supervisors, containers,
 *             and "npm start", which adds --embedded: a self-contained
 *             instance under ./var, see the README)
 *   stop      stop gracefully: no new work, busy processes finish, then exit
 *   abort     stop at once
 *   reload    re-read main.cf and master.cf
 *   status    exit 0 when master runs, 1 when not
 *   check     report every configuration and queue-tree problem; exit 1 if any
 *   flush     ask the queue manager to try all deferred mail now
 *   sasl-passwd add|delete USER
 *             users of the built-in SASL type (postern_sasl_password_maps;
 *             the password is read from standard input)
 *   The configuration directory is -c, else $MAIL_CONFIG, else /etc/postern.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { getopt } from "../../util/getopt.js";
import { msg, msgInit } from "../../util/msg.js";
import { createSystemAccount, getUser } from "../../util/unix-users.js";
import { Config, ConfigError } from "../../global/config.js";
import { makeEmbeddedInstance } from "../../global/embedded.js";
import { configDirectory, daemonModule } from "../../global/install-paths.js";
import { readMasterPid } from "../../global/master-pid.js";
import { QMGR_FLUSH_DEAD, QMGR_SCAN_ALL, sendTrigger } from "../../global/qmgr-trigger.js";
import { checkInstance } from "./postern-check.js";
import { saslPasswd } from "./postern-sasl.js";

const USAGE =
  "usage: postern [-c config_dir] start | start-fg [--embedded] | stop | abort | reload | status | check | flush | sasl-passwd add|delete USER";
const START_TIMEOUT_MS = 30_000;
/** The account conf/main.cf names as mail_owner. */
const DEFAULT_ACCOUNT = "postern";

/** Prints an informational line as Postfix's control script does. */
function say(text: string): void {
  process.stderr.write(`postern/postern-script: ${text}\n`);
}

/** Loads the configuration or exits with its first error. */
function config(dir: string): Config {
  try {
    return Config.load(dir);
  } catch (err) {
    if (err instanceof ConfigError) return msg.fatal(err.message);
    throw err;
  }
}

/** The running master's pid, or null. */
function masterPid(cfg: Config): number | null {
  return readMasterPid(cfg.get("data_directory"));
}

/**
 * Started as root, creates Postern's own account (mail_owner = postern)
 * when it does not exist yet, as a distribution's package would. Any other
 * mail_owner is the admin's choice: "postern check" reports it if missing.
 */
function ensureMailOwner(cfg: Config): void {
  const name = cfg.get("mail_owner");
  if (process.getuid?.() !== 0 || name !== DEFAULT_ACCOUNT || getUser(name) !== null) return;
  const err = createSystemAccount(name, cfg.get("queue_directory"));
  if (err === null) say(`created the system account ${name} (mail_owner)`);
  else msg.error(`cannot create the system account ${name} (mail_owner): ${err}`);
}

/** Starts master in the background and waits until it serves. */
async function start(dir: string): Promise<number> {
  const cfg = config(dir);
  if (masterPid(cfg) !== null) {
    msg.error("the Postern mail system is already running");
    return 1;
  }
  ensureMailOwner(cfg);
  const report = checkInstance(dir);
  for (const w of report.warnings) msg.warn(w);
  for (const p of report.problems) msg.error(p);
  if (report.problems.length > 0) return 1;
  say("starting the Postern mail system");
  const errPath = join(cfg.get("data_directory"), "master.stderr");
  mkdirSync(cfg.get("data_directory"), { recursive: true, mode: 0o700 });
  const errFd = openSync(errPath, "w", 0o600);
  const child = spawn(process.execPath, [daemonModule("master"), "-c", dir, "-w"], {
    detached: true,
    stdio: ["ignore", "ignore", errFd, "pipe"],
  });
  closeSync(errFd);
  const ok = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), START_TIMEOUT_MS);
    child.stdio[3]?.on("data", () => {
      clearTimeout(timer);
      resolve(true);
    });
    child.on("exit", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (ok) {
    child.unref();
    (child.stdio[3] as { destroy?: () => void } | null)?.destroy?.();
    return 0;
  }
  child.kill("SIGKILL");
  process.stderr.write(readFileSync(errPath, "utf8"));
  msg.error("the Postern mail system did not start");
  return 1;
}

/** Runs master in the foreground, passing signals on; returns its exit status. */
function startForeground(dir: string): Promise<number> {
  ensureMailOwner(config(dir));
  const child = spawn(process.execPath, [daemonModule("master"), "-c", dir], { stdio: "inherit" });
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"] as const)
    process.on(sig, () => child.kill(sig));
  return new Promise((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal !== null ? 1 : 0))),
  );
}

/** Sends a signal to master and, for stop/abort, waits until it is gone. */
async function signalMaster(cfg: Config, sig: NodeJS.Signals, wait: boolean): Promise<number> {
  const pid = masterPid(cfg);
  if (pid === null) {
    msg.error("the Postern mail system is not running");
    return 1;
  }
  process.kill(pid, sig);
  if (!wait) return 0;
  // As Postfix's stop: wait until the process is gone (not just its pid file), then force it.
  const graceMs = (cfg.time("postern_stop_grace_time") + 15) * 1000;
  if (await gone(pid, graceMs)) return 0;
  msg.warn(`master pid ${pid} did not stop in time: killing it`);
  process.kill(pid, "SIGKILL");
  if (await gone(pid, 10_000)) return 0;
  msg.error(`master pid ${pid} did not stop`);
  return 1;
}

/** True when a process has exited: it no longer exists, or is a zombie its parent has not reaped yet. */
function exited(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** Waits until a process has exited; false when it still runs after ms. */
async function gone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (exited(pid)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs the check command. */
function check(dir: string): number {
  const r = checkInstance(dir);
  for (const w of r.warnings) msg.warn(w);
  for (const p of r.problems) msg.error(p);
  return r.problems.length > 0 ? 1 : 0;
}

/** Runs one postern command. */
async function run(argv: string[]): Promise<number> {
  const r = getopt(argv, "c:v");
  if (!r.ok) return msg.fatal(`${r.error}\n${USAGE}`);
  const [cmd, ...rest] = r.args;
  const embedded = rest.includes("--embedded");
  const dirFlag = r.opts.find(([k]) => k === "c")?.[1];
  const dir = embedded && dirFlag === undefined ? makeEmbeddedInstance("var") : configDirectory(dirFlag);
  switch (cmd) {
    case "start":
      return start(dir);
    case "start-fg":
      return startForeground(dir);
    case "stop":
      say("stopping the Postern mail system");
      return signalMaster(config(dir), "SIGTERM", true);
    case "abort":
      say("aborting the Postern mail system");
      return signalMaster(config(dir), "SIGINT", true);
    case "reload":
      say("refreshing the Postern mail system");
      return signalMaster(config(dir), "SIGHUP", false);
    case "status": {
      const pid = masterPid(config(dir));
      say(
        pid !== null
          ? `the Postern mail system is running: PID: ${pid}`
          : "the Postern mail system is not running",
      );
      return pid !== null ? 0 : 1;
    }
    case "check":
      return check(dir);
    case "flush": {
      const err = await sendTrigger(
        config(dir).get("queue_directory"),
        "public",
        "qmgr",
        QMGR_FLUSH_DEAD + QMGR_SCAN_ALL,
      );
      if (err !== null) msg.error(`cannot reach the queue manager: ${err}`);
      return err === null ? 0 : 1;
    }
    case "sasl-passwd":
      return saslPasswd(config(dir), rest);
    default:
      return msg.fatal(USAGE);
  }
}

msgInit({ tag: "postern" });
process.exitCode = await run(process.argv.slice(2));
