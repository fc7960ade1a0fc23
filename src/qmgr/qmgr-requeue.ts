/*
 * qmgr-requeue - a message that "postsuper -r" marked goes through cleanup again
 *
 * SYNOPSIS
 *   const r = await requeueMessage(queueDir, path, id, env);   // after readEnvelope()
 *
 * DESCRIPTION
 *   postsuper -r sets QUEUE_FLAG.REQUEUE in the size record of a queue file
 *   and moves it to incoming/ (src/cli/postsuper/postsuper-requeue.ts).
 *   When qmgr loads such a file it does not schedule it: it copies the
 *   message to cleanup as a new message (global/cleanup-client.ts), with the
 *   cleanup flags pickup uses for local mail (BOUNCE, FILTER, MAP), so that
 *   canonical and virtual mapping, header and body checks and the content
 *   filter apply again:
 *     the envelope sender;
 *     the message attributes as they were recorded (log_ident,
 *     client information, rewrite_context, ...);
 *     each recipient not yet done, with its original address (orig_to)
 *     and its DSN ORCPT and NOTIFY fields;
 *     the content, line by line.
 *   Only when cleanup answers "ok" (the new file is durable) is the old
 *   file removed, and qmgr logs "OLDID: requeued as NEWID" as Postfix does
 *   (and removes the old ID's defer, bounce and trace logs).
 *   A temporary failure leaves the old file, flag and all, to be retried; a
 *   rejection (header_checks REJECT, say) is reported so that qmgr can put
 *   the old file on hold rather than lose it.
 */
import { unlink } from "node:fs/promises";
import { CleanupClient } from "../global/cleanup-client.js";
import { CLEANUP_DATA_CHUNK, CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { contentLines, type Envelope } from "../global/queue-file.js";
import { msg } from "../util/msg.js";

export type RequeueResult = { ok: true; newId: string } | { ok: false; temporary: boolean; reason: string };

const ATTR_NAME = /^[a-z_][a-z0-9_]*$/;
const ATTR_VALUE_MAX = 4096;
const NEWLINE = Buffer.from("\n");

/** Copies a message to cleanup as a new one and removes the old file; see the module comment. */
export async function requeueMessage(
  queueDir: string,
  path: string,
  id: string,
  env: Envelope,
  timeoutMs: number,
): Promise<RequeueResult> {
  const c = await CleanupClient.open(queueDir, { timeoutMs });
  if (!c.ok) return { ok: false, temporary: true, reason: c.reason };
  const s = c.client;
  try {
    await s.flags(CLEANUP_FLAG.BOUNCE | CLEANUP_FLAG.FILTER | CLEANUP_FLAG.MAP);
    for (const [name, value] of env.attrs)
      if (ATTR_NAME.test(name) && value.length <= ATTR_VALUE_MAX) await s.attr(name, value);
    await s.sender(env.sender);
    for (const rc of env.recipients) {
      if (rc.done) continue;
      const { offset: _o, done: _d, ...r } = rc;
      await s.rcpt(r);
    }
    await sendContent(s, path, env);
  } catch (err) {
    s.abort();
    return { ok: false, temporary: true, reason: `${id}: read: ${(err as Error).message}` };
  }
  const r = await s.end();
  if (r.status === "tempfail") return { ok: false, temporary: true, reason: r.reason };
  if (r.status === "reject") return { ok: false, temporary: false, reason: `${r.code} ${r.reason}` };
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") msg.warn(`${id}: remove after requeue: ${err.message}`);
  });
  return { ok: true, newId: r.queueId };
}

/** Streams the content lines to cleanup, a chunk at a time. */
async function sendContent(s: CleanupClient, path: string, env: Envelope): Promise<void> {
  let chunk: Buffer[] = [];
  let size = 0;
  for await (const line of contentLines(path, env)) {
    chunk.push(line, NEWLINE);
    size += line.length + 1;
    if (size >= CLEANUP_DATA_CHUNK) {
      await s.data(Buffer.concat(chunk));
      chunk = [];
      size = 0;
    }
  }
  if (size > 0) await s.data(Buffer.concat(chunk));
}
