/*
 * showq - list the mail queue for local users
 *
 * SYNOPSIS
 *   master.cf: showq unix n - y - - showq
 *
 * DESCRIPTION
 *   showq serves the queue listing on public/showq (global/showq-proto.ts)
 *   so that "mailq" and "postqueue -p/-j" work for users who cannot read
 *   the queue. It first learns who asks: the client proves its uid with
 *   a file in maildrop/ (global/uid-proof.ts). Root, mail_owner and the
 *   users in authorized_mailq_users get the listing; others get "deny",
 *   and a client that proves nothing gets nothing. A failed account or
 *   table lookup is an error reply, never a listing.
 *
 *   The listing walks maildrop, active, incoming, deferred and hold in
 *   that order (showq-report.ts), one message at a time, and stops when
 *   the client goes away. Files that change while they are listed are
 *   skipped or listed twice; that is in the nature of a live queue.
 */
import type { Socket } from "node:net";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import { FrameConn } from "../global/frame-conn.js";
import { MAILDROP_NAME_RE } from "../global/maildrop.js";
import { QueuePaths } from "../global/queue-path.js";
import { SHOWQ_FRAME_MAX, SHOWQ_PROTOCOL, SHOWQ_QUEUES, ShowqRequest } from "../global/showq-proto.js";
import { checkProof, makeNonce } from "../global/uid-proof.js";
import { checkUserAcl, ownerOrRoot } from "../global/user-acl.js";
import { singleServer } from "../master/mail-server.js";
import { reportMaildropFile, reportQueueFile, type Emit } from "./showq-report.js";

const MAILDROP_LIST_MAX = 10_000;

/** Decides whether a uid may see the queue; the refusal or error text, or null. */
async function authorize(
  cfg: Config,
  uid: number,
): Promise<{ status: "deny" | "error"; reason: string } | null> {
  if (await ownerOrRoot(cfg, uid, true)) return null;
  const v = await checkUserAcl(cfg, "authorized_mailq_users", uid);
  if (v.status === "permit") return null;
  if (v.status === "deny")
    return { status: "deny", reason: `User ${v.name}(${uid}) is not allowed to view the mail queue` };
  msg.warn(`uid ${uid}: authorized_mailq_users: ${v.reason}`);
  return { status: "error", reason: "cannot check authorized_mailq_users now; try again later" };
}

/** Lists the maildrop files; false when the client went away. */
async function listMaildrop(cfg: Config, emit: Emit): Promise<boolean> {
  const dir = join(cfg.get("queue_directory"), "maildrop");
  const [names, st] = await Promise.all([readdir(dir).catch(() => []), lstat(dir).catch(() => null)]);
  if (st === null) return true;
  const empty = cfg.get("empty_address_recipient");
  for (const name of names.filter((n) => MAILDROP_NAME_RE.test(n)).slice(0, MAILDROP_LIST_MAX))
    if (!(await reportMaildropFile(dir, name, st.gid, empty, emit))) return false;
  return true;
}

/** Walks the queues in Postfix's order. */
async function listQueues(cfg: Config, paths: QueuePaths, emit: Emit): Promise<boolean> {
  const empty = cfg.get("empty_address_recipient");
  for (const q of SHOWQ_QUEUES) {
    if (q === "maildrop") {
      if (!(await listMaildrop(cfg, emit))) return false;
      continue;
    }
    for (const id of paths.list(q)) if (!(await reportQueueFile(paths, q, id, empty, emit))) return false;
  }
  return true;
}

/** Serves one listing request. */
async function serveShowq(sock: Socket, cfg: Config, paths: QueuePaths): Promise<void> {
  const conn = new FrameConn(sock, { maxFrame: SHOWQ_FRAME_MAX, timeoutMs: cfg.time("ipc_timeout") * 1000 });
  const nonce = makeNonce();
  await conn.send({ protocol: SHOWQ_PROTOCOL, nonce });
  const req = await conn.next();
  if (typeof req === "string" || !ShowqRequest.parse(req).ok) {
    await conn.send({ status: "error", reason: "malformed request" });
    return conn.close();
  }
  const proof = await checkProof(paths.root, nonce);
  if (!proof.ok) {
    msg.warn(`refusing a queue listing: cannot tell who asks: ${proof.reason}`);
    await conn.send({ status: "deny", reason: `cannot tell who asks: ${proof.reason}` });
    return conn.close();
  }
  const refused = await authorize(cfg, proof.uid);
  if (refused !== null) {
    await conn.send(refused);
    return conn.close();
  }
  await conn.send({ status: "ok" });
  const emit: Emit = (item) => conn.send(item);
  if (await listQueues(cfg, paths, emit)) await conn.send({ t: "end" });
  conn.close();
}

let paths: QueuePaths | null = null;

await singleServer({
  name: "showq",
  onStart(ctx) {
    paths = new QueuePaths(ctx.config);
  },
  async onConnection(sock, ctx) {
    if (paths !== null) await serveShowq(sock, ctx.config, paths);
  },
});
