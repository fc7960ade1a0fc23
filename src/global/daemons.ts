/*
 * daemons - the service programs of a Postfix-style master.cf
 *
 * DESCRIPTION
 *   The command column of master.cf names a program. These are the stock
 *   Postfix service programs; each is a Postern daemon whose compiled module
 *   is dist/src/<name>/<name>.js (daemonModule). A name here whose module
 *   this build does not have yet is reported by "postern check" and logged
 *   by master instead of being run.
 */
import { existsSync } from "node:fs";
import { daemonModule } from "./install-paths.js";

export const POSTERN_DAEMONS: readonly string[] = [
  "anvil",
  "bounce",
  "cleanup",
  "discard",
  "dnsblog",
  "error",
  "flush",
  "lmtp",
  "local",
  "oqmgr",
  "pickup",
  "pipe",
  "postlogd",
  "postscreen",
  "proxymap",
  "qmgr",
  "qmqpd",
  "scache",
  "showq",
  "smtp",
  "smtpd",
  "spawn",
  "tlsmgr",
  "tlsproxy",
  "trivial-rewrite",
  "verify",
  "virtual",
];

/**
 * Event-driven daemons whose master.cf maxproc counts processes, not
 * clients: one process serves many clients at once. postscreen holds
 * thousands of screened connections; anvil, verify, scache and tlsmgr keep
 * their state in the one process that the stock master.cf runs (maxproc
 * 1), and every smtpd, agent or tool is its client at the same time.
 */
const EVENT_DAEMONS: readonly string[] = ["postscreen", "anvil", "verify", "scache", "tlsmgr"];

/** True for a daemon whose maxproc counts processes rather than clients. */
export function isEventDaemon(command: string): boolean {
  return EVENT_DAEMONS.includes(command);
}

/** True for a stock service program name. */
export function isPosternDaemon(command: string): boolean {
  return POSTERN_DAEMONS.includes(command);
}

/** True when this build has the daemon's module. */
export function daemonAvailable(command: string): boolean {
  return existsSync(daemonModule(command));
}
