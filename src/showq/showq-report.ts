/*
 * showq-report - one queued message as showq lists it
 *
 * DESCRIPTION
 *   reportQueueFile() reads a queue file's envelope (global/queue-file.ts:
 *   a file that does not read back complete is skipped, as a file still
 *   being written or moved) and produces the "msg" item and one "rcpt" item
 *   per recipient not yet done. Before the recipients of the file it lists
 *   those of the message's defer and bounce logs, with their reasons, and
 *   does not list those recipients again: as Postfix's showq does. The logs
 *   are read in Postfix's format (blocks of name=value lines, recipient,
 *   original_recipient, reason), at most LOG_MAX bytes; until a service
 *   writes them, no recipient has a reason.
 *
 *   reportMaildropFile() lists a complete maildrop file (global/maildrop-
 *   reader.ts, envelope only) under a digest of its name: the name itself
 *   is the secret that keeps the file from other users. Its time is the
 *   file's, its size the file's size.
 *
 *   Addresses are shown quoted (quote-822-local.ts) with non-printable
 *   characters as "?"; the null sender is $empty_address_recipient.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, stat } from "node:fs/promises";
import { join } from "node:path";
import { MaildropReader } from "../global/maildrop-reader.js";
import { quote822Local } from "../global/quote-822-local.js";
import { readEnvelope } from "../global/queue-file.js";
import type { QueueName, QueuePaths } from "../global/queue-path.js";
import type { ShowqMsgValue, ShowqRcptValue } from "../global/showq-proto.js";

/** Where report items go: false when the client is gone. */
export type Emit = (
  item: ({ t: "msg" } & ShowqMsgValue) | ({ t: "rcpt" } & ShowqRcptValue),
) => Promise<boolean>;

const LOG_MAX = 1 << 20;
const MAILDROP_RCPT_MAX = 100_000;

/** An address as listed: quoted, printable, the null address replaced. */
export function listedAddress(addr: string, empty: string): string {
  if (addr === "") return empty;
  return (
    quote822Local(addr)
      // eslint-disable-next-line no-control-regex
      .replace(/[\x00-\x1f\x7f-\x9f]/g, "?")
      .slice(0, 4000)
  );
}

/** A reason as listed: printable, bounded. */
function listedReason(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, "?").slice(0, 1000);
}

/** The recipients of a defer or bounce log, with their reasons. */
export function parseReasonLog(text: string): Array<{ recipient: string; orig: string; reason: string }> {
  const out: Array<{ recipient: string; orig: string; reason: string }> = [];
  for (const block of text.split(/\n\s*\n/)) {
    const f = new Map<string, string>();
    for (const line of block.split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) f.set(line.slice(0, eq), line.slice(eq + 1));
    }
    const recipient = f.get("recipient");
    if (recipient === undefined) continue;
    out.push({ recipient, orig: f.get("original_recipient") ?? recipient, reason: f.get("reason") ?? "" });
  }
  return out;
}

/** Reads a per-message log if there is one (bounded). */
async function readLog(paths: QueuePaths, log: "defer" | "bounce", id: string): Promise<string | null> {
  try {
    const fh = await open(paths.path(log, id), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(Math.min((await fh.stat()).size, LOG_MAX));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead).toString("utf8");
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}

/** Lists one queue file; false when the client went away. */
export async function reportQueueFile(
  paths: QueuePaths,
  queue: QueueName,
  id: string,
  emptyAddr: string,
  emit: Emit,
): Promise<boolean> {
  const path = paths.path(queue, id);
  const [r, st] = await Promise.all([readEnvelope(path), stat(path).catch(() => null)]);
  if (!r.ok || st === null) return true;
  const env = r.env;
  const ok = await emit({
    t: "msg",
    queue_name: queue as ShowqMsgValue["queue_name"],
    queue_id: id,
    arrival_time: env.arrival.sec > 0 ? env.arrival.sec : Math.floor(st.mtimeMs / 1000),
    message_size: env.contentSize,
    forced_expire: 0,
    sender: listedAddress(env.sender, emptyAddr),
  });
  if (!ok) return false;
  const seen = new Set<string>();
  for (const log of ["defer", "bounce"] as const) {
    const text = await readLog(paths, log, id);
    for (const e of text === null ? [] : parseReasonLog(text)) {
      seen.add(e.recipient);
      const item = {
        orig_address: listedAddress(e.orig, emptyAddr),
        address: listedAddress(e.recipient, emptyAddr),
        log_class: log,
        why: listedReason(e.reason),
      };
      if (!(await emit({ t: "rcpt", ...item }))) return false;
    }
  }
  for (const rc of env.recipients) {
    if (rc.done || seen.has(rc.address)) continue;
    const address = listedAddress(rc.address, emptyAddr);
    const orig =
      rc.original !== undefined && rc.original !== "" ? listedAddress(rc.original, emptyAddr) : address;
    if (!(await emit({ t: "rcpt", orig_address: orig, address, log_class: "", why: "" }))) return false;
  }
  return true;
}

/** The ID a maildrop file is listed under: a digest of its secret name. */
export function maildropListId(name: string): string {
  return createHash("sha256").update(name).digest("hex").slice(0, 12).toUpperCase();
}

/** Lists one complete maildrop file (envelope only); false when the client went away. */
export async function reportMaildropFile(
  dir: string,
  name: string,
  dirGid: number,
  emptyAddr: string,
  emit: Emit,
): Promise<boolean> {
  const path = join(dir, name);
  const st = await lstat(path).catch(() => null);
  if (st === null || !st.isFile() || st.nlink !== 1 || st.gid !== dirGid || (st.mode & 0o040) === 0)
    return true;
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return true;
  }
  try {
    const reader = new MaildropReader(fh, { contentMax: 0, rcptMax: MAILDROP_RCPT_MAX });
    const rcpts: string[] = [];
    let sender: string | null = null;
    for (;;) {
      const s = await reader.next();
      if (!s.ok || s.ev === null) return true;
      if (s.ev.kind === "sender") sender = s.ev.address;
      else if (s.ev.kind === "rcpt") rcpts.push(s.ev.address);
      else if (s.ev.kind === "content") break;
    }
    const msgOk = await emit({
      t: "msg",
      queue_name: "maildrop",
      queue_id: maildropListId(name),
      arrival_time: Math.floor(st.mtimeMs / 1000),
      message_size: st.size,
      forced_expire: 0,
      sender: listedAddress(sender ?? "", emptyAddr),
    });
    if (!msgOk) return false;
    for (const a of rcpts) {
      const address = listedAddress(a, emptyAddr);
      if (!(await emit({ t: "rcpt", orig_address: address, address, log_class: "", why: "" }))) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
}
