/*
 * bounce-log - the per-message status logs in bounce/, defer/ and trace/
 *
 * SYNOPSIS
 *   await appendLog(paths, "defer", id, record);
 *   const entries = await readLog(paths, "bounce", id);   // [] when there is none
 *   await removeLog(paths, "bounce", id);
 *
 * DESCRIPTION
 *   A log is one file per queue ID, in Postfix's format: one block of
 *   name=value lines per recipient, blocks separated by an empty line:
 *     recipient=  original_recipient=  dsn_orig_rcpt=  dsn_notify=
 *     status=  action=  reason=  relay=  time=
 *   (showq reads recipient, original_recipient and reason). A record is
 *   appended with one write to a file opened for appending and fsynced
 *   before the service answers. Values are single lines: a CR or LF that
 *   a peer sends is replaced. Reading is bounded by LOG_MAX bytes; a
 *   recipient logged twice counts once, with its last record.
 */
import { constants } from "node:fs";
import { mkdir, open, unlink } from "node:fs/promises";
import type { BounceAction, BounceLog, BounceRecord } from "../global/bounce-proto.js";
import type { QueuePaths } from "../global/queue-path.js";

export const LOG_MAX = 1 << 22;

export interface LogEntry extends BounceRecord {
  /** When the record was written (seconds since the epoch). */
  time: number;
}

const ACTIONS: readonly string[] = [
  "failed",
  "delayed",
  "delivered",
  "relayed",
  "expanded",
  "deliverable",
  "undeliverable",
];

/** A value as one line. */
function oneLine(v: string): string {
  return v.replace(/[\r\n]/g, " ");
}

/** Formats one record as a block. */
export function formatRecord(rec: BounceRecord, time: number): string {
  const lines: Array<[string, string | number | undefined]> = [
    ["recipient", rec.recipient],
    ["original_recipient", rec.original_recipient],
    ["dsn_orig_rcpt", rec.dsn_orig_rcpt],
    ["dsn_notify", rec.dsn_notify],
    ["status", rec.status],
    ["action", rec.action],
    ["reason", rec.reason],
    ["relay", rec.relay],
    ["time", time],
  ];
  return (
    lines
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${oneLine(String(v))}`)
      .join("\n") + "\n\n"
  );
}

/** Parses a log's text; malformed blocks are skipped. */
export function parseLog(text: string): LogEntry[] {
  const byRcpt = new Map<string, LogEntry>();
  for (const block of text.split(/\n\s*\n/)) {
    const f = new Map<string, string>();
    for (const line of block.split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) f.set(line.slice(0, eq), line.slice(eq + 1));
    }
    const recipient = f.get("recipient");
    const status = f.get("status") ?? "";
    const action = f.get("action") ?? "";
    if (recipient === undefined || !/^[245]\.\d{1,3}\.\d{1,3}$/.test(status) || !ACTIONS.includes(action))
      continue;
    const e: LogEntry = {
      recipient,
      original_recipient: f.get("original_recipient") ?? recipient,
      status,
      action: action as BounceAction,
      reason: f.get("reason") ?? "",
      time: Number(f.get("time") ?? "0") || 0,
    };
    const orcpt = f.get("dsn_orig_rcpt");
    const notify = Number(f.get("dsn_notify") ?? "NaN");
    const relay = f.get("relay");
    if (orcpt !== undefined) e.dsn_orig_rcpt = orcpt;
    if (Number.isInteger(notify)) e.dsn_notify = notify;
    if (relay !== undefined) e.relay = relay;
    byRcpt.delete(recipient);
    byRcpt.set(recipient, e);
  }
  return [...byRcpt.values()];
}

/** Appends one record durably. */
export async function appendLog(
  paths: QueuePaths,
  log: BounceLog,
  id: string,
  rec: BounceRecord,
): Promise<void> {
  await mkdir(paths.dir(log, id), { recursive: true, mode: 0o700 });
  const fh = await open(
    paths.path(log, id),
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await fh.write(formatRecord(rec, Math.floor(Date.now() / 1000)));
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reads a log (bounded); [] when there is none. */
export async function readLog(paths: QueuePaths, log: BounceLog, id: string): Promise<LogEntry[]> {
  let fh;
  try {
    fh = await open(paths.path(log, id), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  try {
    const buf = Buffer.alloc(Math.min((await fh.stat()).size, LOG_MAX));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return parseLog(buf.subarray(0, bytesRead).toString("utf8"));
  } finally {
    await fh.close();
  }
}

/** Removes a log; a missing one is fine. */
export async function removeLog(paths: QueuePaths, log: BounceLog, id: string): Promise<void> {
  await unlink(paths.path(log, id)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}
