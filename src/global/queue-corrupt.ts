/*
 * queue-corrupt - what every reader of queue files does with a bad one
 *
 * SYNOPSIS
 *   const c = await checkQueueFile(path);        // envelope and content, or a failure
 *   if (!c.ok) quarantine(paths, "incoming", id, c.reason, c.offset);
 *   await setQueueFlags(path, QUEUE_FLAG.REQUEUE);
 *
 * DESCRIPTION
 *   checkQueueFile() reads every record in file order (so a failure names
 *   the first bad byte, wherever it is): the size record first, envelope
 *   records, M, only N and L records up to X, envelope records, E, and
 *   nothing after it; then readEnvelope() checks the envelope against the
 *   size record, and the content records must add up to the content size
 *   it announces. A failure carries the offset and a reason; bad data
 *   never makes it throw.
 *
 *   quarantine() moves a queue file that cannot be read into corrupt/
 *   (hashed like the other queues) and logs, as Postfix does for a file
 *   it cannot use:
 *     warning: ID: queue file incoming/ID moved to corrupt: REASON at offset N
 *   A reader (postsuper -s, qmgr, a delivery agent) never deletes a bad
 *   file: the administrator looks at it with "postcat -q ID" and deletes it
 *   with "postsuper -d ID corrupt".
 *
 *   setQueueFlags() sets bits in the flags field of the size record, in
 *   place (the record has fixed-width fields, so its length does not
 *   change), and makes the change durable. QUEUE_FLAG.REQUEUE is the mark
 *   that "postsuper -r" leaves: the queue manager must hand such a message
 *   to cleanup again (address rewriting, header and body checks, content
 *   filter) before it schedules a delivery, and clear the bit in the new
 *   file; see src/cli/postsuper/postsuper-run.ts.
 */
import { mkdirSync, renameSync } from "node:fs";
import { open } from "node:fs/promises";
import { join, relative } from "node:path";
import { msg } from "../util/msg.js";
import { REC, RecordScanner, encodeRecord } from "./rec-codec.js";
import { readEnvelope, type Envelope } from "./queue-file.js";
import type { QueueName, QueuePaths } from "./queue-path.js";

export const QUEUE_FLAG = {
  /** postsuper -r: re-process through cleanup before delivery. */
  REQUEUE: 0x100,
} as const;

export type QueueFileCheck = { ok: true; env: Envelope } | { ok: false; offset: number; reason: string };

const RECORD_LIMIT = 1 << 20;
const CONTENT_TYPES: ReadonlySet<number> = new Set([REC.MESSAGE, REC.LINE, REC.PART, REC.XTRA, REC.END]);
const SIZE_FIELDS = 5;
const SIZE_WIDTH = 15;

/** Checks a whole queue file: every record in file order, then the envelope (readEnvelope) against them. */
export async function checkQueueFile(path: string): Promise<QueueFileCheck> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (err) {
    return { ok: false, offset: 0, reason: (err as Error).message };
  }
  let walk: WalkResult;
  try {
    walk = await walkRecords(new RecordScanner(fh, 0, RECORD_LIMIT));
  } catch (err) {
    return { ok: false, offset: 0, reason: `read error: ${(err as Error).message}` };
  } finally {
    await fh.close();
  }
  if (!walk.ok) return walk;
  const r = await readEnvelope(path);
  if (!r.ok) return r;
  if (walk.xOffset !== r.env.xOffset)
    return {
      ok: false,
      offset: walk.xOffset,
      reason: "the end of the content is not where the size record says",
    };
  if (walk.contentSize !== r.env.contentSize)
    return {
      ok: false,
      offset: 0,
      reason: `content size ${walk.contentSize} does not match the size record (${r.env.contentSize})`,
    };
  return { ok: true, env: r.env };
}

type WalkResult =
  { ok: true; contentSize: number; xOffset: number } | { ok: false; offset: number; reason: string };

/** Reads every record: envelope records, M, content (N and L only), X, envelope records, E, end of file. */
async function walkRecords(scan: RecordScanner): Promise<WalkResult> {
  let part: "envelope" | "content" | "extracted" = "envelope";
  let size = 0;
  let xOffset = 0;
  for (let first = true; ; first = false) {
    const r = await scan.next();
    if (!r.ok) return r;
    if (r.rec === null)
      return { ok: false, offset: scan.offset, reason: "file ends without an end record (truncated)" };
    const { type, offset, payload } = r.rec;
    const bad = (reason: string): WalkResult => ({ ok: false, offset, reason });
    if (first && type !== REC.SIZE) return bad("missing size record");
    if (part === "content") {
      if (type === REC.LINE) size += payload.length + 1;
      else if (type === REC.PART) size += payload.length;
      else if (type === REC.XTRA) {
        part = "extracted";
        xOffset = offset;
      } else return bad(`unexpected record type ${String.fromCharCode(type)} in the content`);
    } else if (type === REC.MESSAGE && part === "envelope") part = "content";
    else if (type === REC.END && part === "extracted") {
      const after = await scan.next();
      if (!after.ok || after.rec !== null)
        return { ok: false, offset: scan.offset, reason: "data after the end record" };
      return { ok: true, contentSize: size, xOffset };
    } else if (CONTENT_TYPES.has(type) || (type === REC.SIZE && !first))
      return bad(`unexpected record type ${String.fromCharCode(type)} in the envelope`);
  }
}

/**
 * Moves a bad queue file to corrupt/ and logs why; false when the file was
 * already gone. `from` is the file's path when its name is not its queue ID.
 */
export function quarantine(
  paths: QueuePaths,
  queue: QueueName,
  id: string,
  reason: string,
  offset: number,
  from?: string,
): boolean {
  const src = from ?? paths.path(queue, id);
  const dir = paths.dir("corrupt", id);
  const shown = relative(paths.root, src);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      renameSync(src, join(dir, id));
      msg.warn(`${id}: queue file ${shown} moved to corrupt: ${reason} at offset ${offset}`);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") {
        msg.warn(`${id}: cannot move ${shown} to corrupt (${reason} at offset ${offset}): ${code}`);
        return false;
      }
      if (attempt > 0) return false;
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
      } catch (e) {
        msg.warn(`${id}: cannot make ${relative(paths.root, dir)}: ${(e as Error).message}`);
        return false;
      }
    }
  }
  return false;
}

/** The size record of an open file: its full encoding and fields, or a failure. */
async function readSizeRecord(
  path: string,
): Promise<{ ok: true; fields: number[]; length: number } | { ok: false; offset: number; reason: string }> {
  const fh = await open(path, "r");
  try {
    const r = await new RecordScanner(fh, 0, 1024).next();
    if (!r.ok) return r;
    if (r.rec === null || r.rec.type !== REC.SIZE)
      return { ok: false, offset: 0, reason: "missing size record" };
    const fields = r.rec.payload.toString("latin1").trim().split(/\s+/).map(Number);
    if (fields.length !== SIZE_FIELDS || !fields.every((n) => Number.isSafeInteger(n) && n >= 0))
      return { ok: false, offset: 0, reason: "malformed size record" };
    return { ok: true, fields, length: encodeRecord(REC.SIZE, r.rec.payload).length };
  } finally {
    await fh.close();
  }
}

/** Sets flag bits in a queue file's size record, in place and durably; a failure names the offset. */
export async function setQueueFlags(
  path: string,
  bits: number,
): Promise<{ ok: true } | { ok: false; offset: number; reason: string }> {
  const size = await readSizeRecord(path);
  if (!size.ok) return size;
  const fields = size.fields.slice();
  fields[SIZE_FIELDS - 1] = (fields[SIZE_FIELDS - 1] ?? 0) | bits;
  const rec = encodeRecord(REC.SIZE, fields.map((n) => String(n).padStart(SIZE_WIDTH)).join(" "));
  if (rec.length !== size.length) return { ok: false, offset: 0, reason: "size record is not fixed-width" };
  const fh = await open(path, "r+");
  try {
    await fh.write(rec, 0, rec.length, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { ok: true };
}
