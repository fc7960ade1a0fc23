/*
 * pickup-file - one maildrop file: check it, copy it to cleanup, decide its fate
 *
 * DESCRIPTION
 *   A maildrop file is untrusted input from any local user. Before pickup
 *   reads it: it must be a regular file with one link, with the group of
 *   the maildrop directory (so it was created there, not renamed or
 *   linked in from elsewhere), and marked complete (group read, see
 *   global/maildrop.ts); a file still being written is left alone. It is
 *   opened without following links and without blocking, and the open
 *   file must be the one that was checked. The submitter is the file's
 *   owner uid, taken from the open file, never from its content; that uid
 *   must pass authorized_submit_users, and the file's sender must be one
 *   that local_login_sender_maps gives the uid's login name (a refused
 *   file is removed with a warning, as postdrop would have refused it).
 *
 *   The records are then read one by one (global/maildrop-reader.ts) and
 *   streamed to cleanup with the flags of a local submission, after a
 *   "Received: by $myhostname ($mail_name, from userid N)" header. A
 *   malformed file is removed with a warning that names the uid and the
 *   problem, as is a refused user's file; when cleanup cannot take the
 *   message now (or pickup cannot decide, e.g. an account lookup fails)
 *   the file stays for the next scan. Nothing in a file can make pickup
 *   throw: every problem becomes one of the outcomes below.
 */
import { constants, type Stats } from "node:fs";
import { lstat, open, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { msg } from "../util/msg.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { CleanupClient } from "../global/cleanup-client.js";
import type { Config } from "../global/config.js";
import { MaildropReader } from "../global/maildrop-reader.js";
import { checkUserAcl } from "../global/user-acl.js";
import { checkLoginSender } from "../global/login-sender.js";
import { receiveOverride } from "../global/receive-override.js";

export type PickupOutcome = "removed" | "kept" | "skipped";

export interface PickupEnv {
  cfg: Config;
  queueDir: string;
  /** The maildrop directory's group: files created there have it. */
  dirGid: number;
  /** The most recipients one submission may have. */
  rcptMax: number;
  /** Formats a time for the Received: header. */
  date: (d: Date) => string;
}

/** Whose file pickup is copying, and how logs name it. */
interface Copy {
  uid: number;
  label: string;
}

const FLUSH_AT = 65536;
const FUTURE_SLACK_MS = 2 * 3600_000;

/** Removes a file, logging why. */
async function removeFile(path: string, why: string): Promise<PickupOutcome> {
  msg.warn(why);
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      msg.warn(`remove ${path}: ${(err as Error).message}`);
  }
  return "removed";
}

/** Checks the directory entry before opening it; an outcome when pickup must not open it. */
async function checkEntry(
  env: PickupEnv,
  path: string,
  st: Stats,
  label: string,
): Promise<PickupOutcome | null> {
  if (st.isDirectory()) return "skipped";
  if (!st.isFile()) return removeFile(path, `${label}: uid=${st.uid}: not a regular file; removed`);
  if ((st.mode & 0o040) === 0) return "skipped";
  if (st.nlink !== 1) return removeFile(path, `${label}: uid=${st.uid}: file has ${st.nlink} links; removed`);
  if (st.gid !== env.dirGid)
    return removeFile(
      path,
      `${label}: uid=${st.uid}: file was not created in the maildrop directory; removed`,
    );
  return null;
}

/** Opens the checked file without following links; the handle and its status, or an outcome. */
async function openChecked(
  path: string,
  st: Stats,
  label: string,
): Promise<{ fh: FileHandle; fst: Stats } | PickupOutcome> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return "skipped";
    if (e.code === "EACCES" || e.code === "EPERM") {
      msg.warn(`${label}: uid=${st.uid}: cannot open: ${e.message} (is the maildrop directory mode 3733?)`);
      return "kept";
    }
    return removeFile(path, `${label}: uid=${st.uid}: cannot open: ${e.message}; removed`);
  }
  const fst = await fh.stat();
  if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) {
    await fh.close();
    return "skipped";
  }
  return { fh, fst };
}

/** The Received: header pickup puts on top of the message. */
function receivedHeader(env: PickupEnv, uid: number, queueId: string, mtimeMs: number): string {
  const when = mtimeMs > Date.now() + FUTURE_SLACK_MS ? new Date() : new Date(mtimeMs);
  return (
    `Received: by ${env.cfg.get("myhostname")} (${env.cfg.get("mail_name")}, from userid ${uid})\n` +
    `\tid ${queueId}; ${env.date(when)}\n`
  );
}

/** The cleanup flags of a local submission (less what receive_override_options turns off). */
function cleanupFlags(attrs: Map<string, string>, cfg: Config): number {
  const base =
    CLEANUP_FLAG.BOUNCE |
    CLEANUP_FLAG.FILTER |
    CLEANUP_FLAG.MAP |
    CLEANUP_FLAG.LOCAL_HEADERS |
    CLEANUP_FLAG.MILTER;
  return receiveOverride(cfg).flags(attrs.get("extract") === "yes" ? base | CLEANUP_FLAG.EXTRACT : base);
}

type StreamProblem = { malformed: string } | { refused: string } | { retry: string };

/** Streams the file's records to cleanup; null when all went, else the failure. */
async function stream(
  env: PickupEnv,
  reader: MaildropReader,
  c: CleanupClient,
  copy: Copy,
  mtimeMs: number,
): Promise<StreamProblem | null> {
  const attrs = new Map<string, string>();
  let buf: Buffer[] = [];
  let size = 0;
  let first = true;
  const push = async (b: Buffer): Promise<void> => {
    buf.push(b);
    size += b.length;
    if (size < FLUSH_AT) return;
    await c.data(Buffer.concat(buf));
    buf = [];
    size = 0;
  };
  for (;;) {
    const s = await reader.next();
    if (!s.ok) return { malformed: `${s.reason} (offset ${s.offset})` };
    const ev = s.ev;
    if (ev === null || ev.kind === "end") break;
    if (ev.kind === "attr") attrs.set(ev.name, ev.value);
    else if (ev.kind === "sender") {
      const v = await checkLoginSender(env.cfg, copy.uid, ev.address);
      if (v.status === "deny") return { refused: v.reason };
      if (v.status === "tempfail") return { retry: v.reason };
      await c.flags(cleanupFlags(attrs, env.cfg));
      for (const [k, v] of attrs) if (k !== "extract") await c.attr(k, v); // extract_dsn_notify too
      await c.sender(ev.address);
      msg.info(`${c.queueId}: uid=${copy.uid} from=<${ev.address}>`);
    } else if (ev.kind === "rcpt") {
      await c.rcpt({
        address: ev.address,
        original: ev.address,
        ...(ev.notify !== undefined ? { notify: ev.notify } : {}),
      });
    } else if (ev.kind === "content") {
      await push(Buffer.from(receivedHeader(env, copy.uid, c.queueId, mtimeMs), "latin1"));
    } else {
      if (first && (ev.data[0] === 0x20 || ev.data[0] === 0x09)) await push(Buffer.from("\n"));
      first = false;
      await push(ev.data);
      if (ev.complete) await push(Buffer.from("\n"));
    }
  }
  if (size > 0) await c.data(Buffer.concat(buf));
  return null;
}

/** Copies an opened file to cleanup and decides what happens to it. */
async function copyToCleanup(
  env: PickupEnv,
  path: string,
  fh: FileHandle,
  copy: Copy,
  mtimeMs: number,
): Promise<PickupOutcome> {
  const opened = await CleanupClient.open(env.queueDir, {
    service: env.cfg.get("cleanup_service_name"),
    timeoutMs: env.cfg.time("ipc_timeout") * 1000,
  });
  if (!opened.ok) {
    msg.warn(`${copy.label}: uid=${copy.uid}: ${opened.reason}; will try again`);
    return "kept";
  }
  const c = opened.client;
  const reader = new MaildropReader(fh, {
    contentMax: env.cfg.int("message_size_limit"),
    rcptMax: env.rcptMax,
  });
  const bad = await stream(env, reader, c, copy, mtimeMs);
  if (bad !== null) {
    c.abort();
    if ("retry" in bad) {
      msg.warn(`${copy.label}: uid=${copy.uid}: ${bad.retry}; will try again`);
      return "kept";
    }
    const why = "refused" in bad ? bad.refused : `malformed maildrop file: ${bad.malformed}`;
    return removeFile(path, `${copy.label}: uid=${copy.uid}: ${why}; removed`);
  }
  const r = await c.end();
  if (r.status === "ok") {
    await unlink(path).catch((err: Error) => msg.warn(`remove ${path}: ${err.message}`));
    return "removed";
  }
  if (r.status === "reject")
    return removeFile(
      path,
      `${c.queueId}: uid=${copy.uid}: message rejected: ${r.code} ${r.reason}; removed`,
    );
  msg.warn(`${c.queueId}: uid=${copy.uid}: cleanup: ${r.reason}; will try again`);
  return "kept";
}

/** Handles one maildrop file (see the module comment). */
export async function pickupFile(env: PickupEnv, name: string): Promise<PickupOutcome> {
  const path = join(env.queueDir, "maildrop", name);
  const label = `maildrop file ${name.slice(0, 8)}...`;
  let st: Stats;
  try {
    st = await lstat(path);
  } catch {
    return "skipped";
  }
  const early = await checkEntry(env, path, st, label);
  if (early !== null) return early;
  const o = await openChecked(path, st, label);
  if (typeof o === "string") return o;
  try {
    const uid = o.fst.uid;
    const acl = await checkUserAcl(env.cfg, "authorized_submit_users", uid);
    if (acl.status === "tempfail") {
      msg.warn(`${label}: uid=${uid}: authorized_submit_users: ${acl.reason}; will try again`);
      return "kept";
    }
    if (acl.status === "deny")
      return removeFile(
        path,
        `${label}: uid=${uid}: User ${acl.name}(${uid}) is not allowed to submit mail; removed`,
      );
    return await copyToCleanup(env, path, o.fh, { uid, label }, o.fst.mtimeMs);
  } finally {
    await o.fh.close().catch(() => undefined);
  }
}
