/*
 * master-waiting - the bound on connections that wait in master for a process
 *
 * DESCRIPTION
 *   Connections that wait for a busy service are held by master (see
 *   master-service.ts). Together, over all services, they are bounded by
 *   the open-file budget: the process's RLIMIT_NOFILE less a reserve for
 *   the children's pipes, the listeners and master's own files, and at most
 *   WAITING_CAP for memory. waiting.total counts them.
 */
import { openFileLimit } from "../util/open-files.js";

/** Above this many waiting connections of one service, master says so (once a minute). */
export const WAITING_NOTE = 1000;
/** The most connections master holds for all services together, whatever the open-file limit. */
const WAITING_CAP = 100_000;
/** The least it holds (as before the bound followed the open-file limit). */
const WAITING_FLOOR = 1000;

/** Connections that wait for a process, over all services of this master. */
export const waiting = { total: 0 };
let waitingLimit = 0;

/** How many connections master may hold waiting: the open-file budget less a reserve. */
export function waitingBudget(nofile: number): number {
  const reserve = Math.max(1024, Math.floor(nofile / 4));
  return Math.min(WAITING_CAP, Math.max(WAITING_FLOOR, nofile - reserve));
}

/** The bound for this process, read once. */
export function waitingMax(): number {
  if (waitingLimit === 0) waitingLimit = waitingBudget(openFileLimit(4096));
  return waitingLimit;
}
