/*
 * deliver-helper - the child process that does file work with a user's rights
 *
 * SYNOPSIS
 *   spawn(process.execPath, [deliverHelperPath()], { uid, gid, stdio: "pipe" })
 *
 * DESCRIPTION
 *   Node cannot change the uid of a running process, so a delivery agent
 *   that runs as root (local, virtual) starts this program with the
 *   recipient's uid and gid (libuv sets them, and drops supplementary
 *   groups, between fork and exec) and sends it requests on standard input
 *   (deliver-helper-proto.ts). Everything that touches a user's files
 *   happens here: appending to a mailbox, writing a Maildir file, reading a
 *   .forward or :include: file, looking at a home directory. The kernel
 *   then checks each access against the user's own rights, and file quotas
 *   apply, as with Postfix's set_eugid().
 *
 *   The program serves requests one at a time until its input ends, so an
 *   agent may reuse it for more deliveries with the same uid and gid. It
 *   trusts nothing but its input pipe: a malformed frame ends it. It has
 *   no privileges to lose: the worst a broken or hostile request can do
 *   is what the user could do anyway.
 */
import { FrameDecoder, attrString, encodeFrame, type AttrList } from "../util/attr-codec.js";
import {
  HELPER_FRAME_MAX,
  HELPER_READ_MAX,
  encodeHelperReply,
  parseMaildir,
  parseMbox,
} from "./deliver-helper-proto.js";
import type { HelperReply } from "./deliver-helper-proto.js";
import { HelperAbort, maildirDeliver, mboxAppend, readSmallFile, statPath } from "./deliver-helper-ops.js";

/** The frames on standard input, one at a time, with back-pressure. */
async function* inputFrames(): AsyncGenerator<AttrList> {
  const dec = new FrameDecoder({ maxFrame: HELPER_FRAME_MAX });
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    const r = dec.push(chunk);
    if (!r.ok) throw new Error(`bad request frame: ${r.reason}`);
    for (const f of r.frames) yield f;
  }
}

/** The message chunks of the current request; throws HelperAbort on { abort }. */
async function* dataChunks(
  frames: AsyncGenerator<AttrList>,
  state: { ended: boolean },
): AsyncGenerator<Buffer> {
  for (;;) {
    const n = await frames.next();
    if (n.done === true) throw new Error("input ended inside a message");
    const f = n.value;
    const data = f.get("data");
    if (data !== undefined) {
      yield data;
      continue;
    }
    state.ended = true;
    if (f.has("end")) return;
    throw new HelperAbort(attrString(f, "abort") ?? "message aborted");
  }
}

/** Reads and discards what is left of the current message. */
async function drain(chunks: AsyncGenerator<Buffer>, state: { ended: boolean }): Promise<void> {
  if (state.ended) return;
  try {
    for await (const _ of chunks) {
      /* discard */
    }
  } catch (err) {
    if (!(err instanceof HelperAbort)) throw err;
  }
}

/** Serves one request. */
async function serve(req: AttrList, frames: AsyncGenerator<AttrList>): Promise<HelperReply> {
  const op = attrString(req, "op");
  const bad: HelperReply = { ok: false, why: "proto", dsn: "4.3.0", text: "malformed helper request" };
  if (op === "mbox" || op === "maildir") {
    const state = { ended: false };
    const chunks = dataChunks(frames, state);
    const mbox = op === "mbox" ? parseMbox(req) : null;
    const mdir = op === "maildir" ? parseMaildir(req) : null;
    const r =
      mbox !== null
        ? await mboxAppend(mbox, chunks)
        : mdir !== null
          ? await maildirDeliver(mdir, chunks)
          : bad;
    await drain(chunks, state);
    return r;
  }
  const path = attrString(req, "path") ?? "";
  if (!path.startsWith("/")) return bad;
  if (op === "read") {
    const limit = Math.min(Number(attrString(req, "limit") ?? "0") || HELPER_READ_MAX, HELPER_READ_MAX);
    return readSmallFile(path, limit, attrString(req, "follow") === "1");
  }
  if (op === "stat") return statPath(path);
  return bad;
}

/** Serves requests until standard input ends. */
async function main(): Promise<void> {
  process.on("SIGPIPE", () => undefined);
  const frames = inputFrames();
  for (;;) {
    const n = await frames.next();
    if (n.done === true) return;
    const reply = await serve(n.value, frames);
    const out = encodeFrame(encodeHelperReply(reply), HELPER_FRAME_MAX);
    if (!process.stdout.write(out)) await new Promise<void>((r) => process.stdout.once("drain", () => r()));
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
