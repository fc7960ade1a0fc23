/*
 * master-spec - from a master.cf entry to what master runs
 *
 * DESCRIPTION
 *   serviceSpec() fills in the defaults of a master.cf entry (private y,
 *   unpriv y, chroot n at compatibility level 1 and later, wakeup 0,
 *   maxproc $default_process_limit with 0 meaning no limit; for the
 *   event-driven daemons postscreen, anvil, verify, scache and tlsmgr
 *   maxproc counts processes, not clients) and decides how
 *   the command runs:
 *     - a Postern daemon name (smtpd, cleanup, qmgr, ... the stock Postfix
 *       service programs) runs the compiled module dist/src/<name>/<name>.js;
 *       a name whose module this build does not have yet is "unavailable";
 *     - a name ending in .js or .mjs is a Node daemon built on Postern's
 *       skeleton, found in daemon_directory (sites can add their own);
 *     - anything else is a program in daemon_directory, run once per
 *       connection with the client socket as standard input and output.
 *   A daemon's arguments are Postfix's: -n service -t type, master's own
 *   -o stress=yes when it applies, then the master.cf arguments (-o
 *   overrides included; a service's own -o wins over master's).
 */
import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import type { Config } from "../global/config.js";
import { daemonAvailable, isEventDaemon, isPosternDaemon } from "../global/daemons.js";
import { daemonModule } from "../global/install-paths.js";
import { parseInetName, type MasterEntry, type ServiceType } from "../global/master-cf.js";

export type Exec =
  | { kind: "node"; module: string }
  | { kind: "external"; path: string }
  | { kind: "unavailable"; why: string };

export interface ServiceSpec {
  key: string;
  entry: MasterEntry;
  type: ServiceType;
  privateClass: boolean;
  unpriv: boolean;
  chroot: boolean;
  wakeup: number;
  conditionalWakeup: boolean;
  /** Concurrent clients of the service (or processes, see maxprocCounts); 0 means no limit. */
  maxproc: number;
  /** What maxproc bounds: clients, or processes (event-driven daemons: postscreen, anvil, verify, ...). */
  maxprocCounts: "clients" | "processes";
  exec: Exec;
  args: string[];
  /** All listen addresses are loopback or Unix sockets (a pass service takes network clients: not local). */
  localOnly: boolean;
  /** The text that identifies the entry; a reload restarts a service whose text changed. */
  fingerprint: string;
}

/** Resolves the command column to what master runs. */
function resolveExec(command: string, cfg: Config): Exec {
  if (isPosternDaemon(command)) {
    if (daemonAvailable(command)) return { kind: "node", module: daemonModule(command) };
    return { kind: "unavailable", why: `the ${command} daemon is not part of this Postern build yet` };
  }
  const path = isAbsolute(command) ? command : join(cfg.get("daemon_directory"), command);
  if (/\.m?js$/.test(command))
    return existsSync(path)
      ? { kind: "node", module: path }
      : { kind: "unavailable", why: `${path}: no such file` };
  return existsSync(path)
    ? { kind: "external", path }
    : { kind: "unavailable", why: `${path}: no such file` };
}

/** Builds the spec of one master.cf entry. */
export function serviceSpec(e: MasterEntry, cfg: Config): ServiceSpec {
  const level = cfg.get("compatibility_level");
  const chrootDefault = Number.parseFloat(level) < 1 ? "y" : "n";
  const wakeupText = e.wakeup === "-" ? "0" : e.wakeup;
  const maxproc = e.maxproc === "-" ? cfg.int("default_process_limit") : Number(e.maxproc);
  const inet = e.type === "inet" ? parseInetName(e.service) : null;
  const host = inet?.host ?? "";
  const loopback = host === "localhost" || host.startsWith("127.") || host === "::1";
  return {
    key: `${e.service}/${e.type}`,
    entry: e,
    type: e.type,
    privateClass: (e.private === "-" ? "y" : e.private) === "y",
    unpriv: (e.unpriv === "-" ? "y" : e.unpriv) === "y",
    chroot: (e.chroot === "-" ? chrootDefault : e.chroot) === "y",
    wakeup: Number.parseInt(wakeupText, 10),
    conditionalWakeup: wakeupText.endsWith("?"),
    maxproc,
    maxprocCounts: isEventDaemon(e.command) ? "processes" : "clients",
    exec: resolveExec(e.command, cfg),
    args: e.args,
    localOnly: (e.type !== "inet" && e.type !== "pass") || loopback,
    fingerprint: JSON.stringify([
      e.service,
      e.type,
      e.private,
      e.unpriv,
      e.chroot,
      e.wakeup,
      e.maxproc,
      e.command,
      e.args,
    ]),
  };
}
