/*
 * flush-log - per-destination logs of deferred mail, and what flushing them does
 *
 * DESCRIPTION
 *   A log is queue_directory/flush/<site>, where <site> is the destination
 *   in lower case with every character other than a-z and 0-9 replaced
 *   by "_", as Postfix names them. It holds queue IDs, one per line, and
 *   only grows (appends with O_APPEND) until the site is flushed.
 *
 *   sendSite() takes the log away by renaming it (so that IDs appended
 *   meanwhile go to a new log and are not lost), reads it (at most
 *   LOG_READ_MAX bytes, IDs checked, duplicates dropped up to
 *   DUP_FILTER_MAX), and for each ID gives the deferred file the current
 *   time, marks it as scheduled before (global/queue-file.ts
 *   QUEUE_MODE_SCHEDULED) and moves it to incoming/; the queue manager then delivers it at
 *   once. sendFile() does the same for one ID. refresh() flushes logs not
 *   read for fast_flush_refresh_time and removes empty ones older than
 *   fast_flush_purge_time.
 *
 *   indexDeferred() fills the logs from the deferred queue: every
 *   deferred file whose status changed since the last pass (its ctime:
 *   qmgr's move into deferred/ and its retry-time update change it) adds
 *   its ID to the log of each eligible site among its pending recipients.
 *   Postfix's delivery agents report each deferral to flush themselves;
 *   until Postern's do (through global/flush-client.ts flushAdd), this
 *   pass, run before each flush and at master's wakeup, keeps the logs.
 */
import { constants } from "node:fs";
import { appendFile, open, readdir, rename, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { msg } from "../util/msg.js";
import { markScheduled, readEnvelope } from "../global/queue-file.js";
import type { QueuePaths } from "../global/queue-path.js";
import { queueIdOk } from "../global/queue-id.js";
import type { MatchResult } from "../global/resolve-match.js";

export interface FlushEnv {
  paths: QueuePaths;
  /** Whether a site is eligible (fast_flush_domains). */
  eligible: (site: string) => Promise<MatchResult>;
  /** Asks the queue manager to act (trigger bytes). */
  wakeQmgr: (bytes: string) => Promise<void>;
  refreshSecs: number;
  purgeSecs: number;
}

export type FlushOutcome = { status: "ok" | "fail" | "bad" | "deny"; reason?: string };

const LOG_READ_MAX = 4 << 20;
const DUP_FILTER_MAX = 10_000;
const INDEX_STAMP = ".indexed";
const SITE_MAX = 255;

/** The log file name of a site, or null for a name that cannot be one. */
export function sitePath(site: string): string | null {
  if (site === "" || site.length > SITE_MAX) return null;
  return site.toLowerCase().replace(/[^a-z0-9]/g, "_");
}

/** The directory of the logs. */
function logDir(env: FlushEnv): string {
  return join(env.paths.root, "flush");
}

/** Appends a queue ID to the log of an eligible site. */
export async function addToLog(env: FlushEnv, site: string, id: string): Promise<FlushOutcome> {
  const name = sitePath(site);
  if (name === null || !queueIdOk(id)) return { status: "bad" };
  const e = await env.eligible(site.toLowerCase());
  if (e.status === "tempfail") return { status: "fail", reason: e.reason };
  if (e.status === "nomatch") return { status: "deny" };
  await appendFile(join(logDir(env), name), `${id}\n`, { mode: 0o600, flag: "a" });
  return { status: "ok" };
}

/** Gives a queued file the current time and moves it from deferred/ to incoming/; true when found. */
async function flushOneFile(env: FlushEnv, id: string): Promise<boolean> {
  const now = new Date();
  for (const q of ["deferred", "incoming"] as const) {
    try {
      await utimes(env.paths.path(q, id), now, now);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        msg.warn(`${id}: update time stamps: ${(err as Error).message}`);
      continue;
    }
    if (q === "deferred") {
      // Marked first: in incoming/ the file would otherwise pass for new mail without delivery logs.
      try {
        markScheduled(env.paths.path(q, id));
      } catch (err) {
        msg.warn(`${id}: mark: ${(err as Error).message}; left in the deferred queue`);
        return true;
      }
      if (!env.paths.move(id, "deferred", "incoming")) continue;
    }
    return true;
  }
  return false;
}

/** Reads and empties one log; the distinct valid IDs in it. */
async function takeLog(env: FlushEnv, name: string): Promise<string[]> {
  const path = join(logDir(env), name);
  const taken = `${path}.${process.pid}.sending`;
  try {
    await rename(path, taken);
  } catch {
    return [];
  }
  try {
    const fh = await open(taken, constants.O_RDONLY | constants.O_NOFOLLOW);
    let text: string;
    try {
      const buf = Buffer.alloc(Math.min((await fh.stat()).size, LOG_READ_MAX));
      text = buf.subarray(0, (await fh.read(buf, 0, buf.length, 0)).bytesRead).toString("latin1");
    } finally {
      await fh.close();
    }
    const ids = new Set<string>();
    for (const line of text.split("\n")) {
      if (line === "") continue;
      if (!queueIdOk(line)) msg.warn(`bad queue id "${line.slice(0, 30)}" in fast flush logfile ${name}`);
      else if (ids.size < DUP_FILTER_MAX) ids.add(line);
    }
    return [...ids];
  } finally {
    await writeFile(path, "", { flag: "a", mode: 0o600 }).catch(() => undefined);
    await unlink(taken).catch(() => undefined);
  }
}

/** Delivers the mail listed in one site's log. */
async function sendLog(env: FlushEnv, name: string, unthrottle: boolean): Promise<number> {
  if (unthrottle) await env.wakeQmgr("F");
  let count = 0;
  for (const id of await takeLog(env, name)) if (await flushOneFile(env, id)) count++;
  if (count > 0) await env.wakeQmgr("I");
  return count;
}

/** Delivers the deferred mail for a site (ETRN, postqueue -s). */
export async function sendSite(env: FlushEnv, site: string): Promise<FlushOutcome> {
  const name = sitePath(site);
  if (name === null) return { status: "bad" };
  const e = await env.eligible(site.toLowerCase());
  if (e.status === "tempfail") return { status: "fail", reason: e.reason };
  if (e.status === "nomatch") return { status: "deny" };
  await indexDeferred(env);
  const n = await sendLog(env, name, true);
  msg.info(`flush site ${site}: ${n} message(s) scheduled for delivery`);
  return { status: "ok" };
}

/** Delivers one deferred message (postqueue -i). */
export async function sendFile(env: FlushEnv, id: string): Promise<FlushOutcome> {
  if (!queueIdOk(id)) return { status: "bad" };
  if (await flushOneFile(env, id)) await env.wakeQmgr("I");
  return { status: "ok" };
}

/** Flushes logs unread for maxAgeSecs; removes empty logs older than fast_flush_purge_time. */
export async function refresh(env: FlushEnv, maxAgeSecs: number): Promise<void> {
  await indexDeferred(env);
  const now = Date.now();
  for (const name of await readdir(logDir(env)).catch(() => [])) {
    if (!/^[a-z0-9_]+$/.test(name)) continue;
    const st = await stat(join(logDir(env), name)).catch(() => null);
    if (st === null) continue;
    if (st.size === 0) {
      if (st.mtimeMs + env.purgeSecs * 1000 < now)
        await unlink(join(logDir(env), name)).catch(() => undefined);
    } else if (st.atimeMs + maxAgeSecs * 1000 <= now) await sendLog(env, name, false);
  }
}

/** The domain a recipient's mail goes to, as flush names sites. */
function siteOf(address: string): string | null {
  const at = address.lastIndexOf("@");
  return at < 0 || at === address.length - 1 ? null : address.slice(at + 1).toLowerCase();
}

/** Adds the deferred files changed since the last pass to their sites' logs. */
export async function indexDeferred(env: FlushEnv): Promise<void> {
  const stamp = join(logDir(env), INDEX_STAMP);
  const since = (await stat(stamp).catch(() => null))?.mtimeMs ?? 0;
  const started = new Date();
  for (const id of env.paths.list("deferred")) {
    const path = env.paths.path("deferred", id);
    const st = await stat(path).catch(() => null);
    if (st === null || st.ctimeMs < since) continue;
    const r = await readEnvelope(path);
    if (!r.ok) continue;
    const sites = new Set<string>();
    for (const rc of r.env.recipients) {
      const site = rc.done ? null : siteOf(rc.address);
      if (site !== null) sites.add(site);
    }
    for (const site of sites)
      await addToLog(env, site, id).catch((err: Error) => msg.warn(`flush log ${site}: ${err.message}`));
  }
  await writeFile(stamp, "", { mode: 0o600 }).catch(() => undefined);
  await utimes(stamp, started, started).catch(() => undefined);
}
