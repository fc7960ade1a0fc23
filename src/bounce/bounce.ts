/*
 * bounce - per-message status logs and delivery status notifications
 *
 * SYNOPSIS
 *   master.cf: bounce unix - - n - 0 bounce
 *              defer  unix - - n - 0 bounce
 *              trace  unix - - n - 0 bounce
 *
 * DESCRIPTION
 *   Serves global/bounce-proto.ts on private/<service>, many clients at
 *   once. "append" adds a record to a message's bounce, defer or trace log
 *   (bounce-log.ts) on behalf of a delivery agent or qmgr, durably before
 *   it answers; "notify" composes and posts the notices of a finished or
 *   delayed message (bounce-notify.ts, bounce-notice.ts) through cleanup.
 *   The notices' text comes from bounce_template_file (read at start; a
 *   file that cannot be read or parsed is fatal, as in Postfix) or the
 *   built-in templates. A request that fails answers "fail" with a
 *   reason: the caller defers and nothing is lost. A malformed request is answered "fail" and
 *   logged.
 */
import type { Socket } from "node:net";
import { attrList, type AttrList } from "../util/attr-codec.js";
import { serveAttrConnection } from "../util/attr-server.js";
import { msg } from "../util/msg.js";
import {
  BOUNCE_FRAME_MAX,
  BOUNCE_PROTOCOL,
  BounceAppend,
  BounceNotify,
  BounceRequest,
} from "../global/bounce-proto.js";
import { QueuePaths } from "../global/queue-path.js";
import { TemplateError, loadTemplates } from "../global/bounce-template.js";
import { multiServer, type ServerContext } from "../master/mail-server.js";
import { appendLog } from "./bounce-log.js";
import { sendNotices, type NotifyEnv } from "./bounce-notify.js";

/** A "fail" answer, logged. */
function fail(reason: string): AttrList {
  msg.warn(reason);
  return attrList({ status: "fail", reason: reason.slice(0, 1000) });
}

/** Carries out one request. */
async function handle(ne: NotifyEnv, req: AttrList): Promise<AttrList> {
  const kind = BounceRequest.parse(req);
  if (!kind.ok) return fail(`malformed request: ${kind.error}`);
  try {
    if (kind.value.request === "append") {
      const a = BounceAppend.parse(req);
      if (!a.ok) return fail(`malformed append request: ${a.error}`);
      const { log, queue_id, ...rec } = a.value;
      await appendLog(ne.paths, log, queue_id, rec);
      return attrList({ status: "ok" });
    }
    const n = BounceNotify.parse(req);
    if (!n.ok) return fail(`malformed notify request: ${n.error}`);
    const r = await sendNotices(ne, n.value.kind, n.value.queue_name, n.value.queue_id);
    return r.ok ? attrList({ status: "ok" }) : fail(`${n.value.queue_id}: ${r.reason}`);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}

/** Serves one client. */
async function serve(sock: Socket, ctx: ServerContext, ne: NotifyEnv): Promise<void> {
  const conn = serveAttrConnection(sock, {
    protocol: BOUNCE_PROTOCOL,
    maxFrame: BOUNCE_FRAME_MAX,
    idleTimeoutMs: ctx.config.time("ipc_timeout") * 1000,
    handler: (req) => handle(ne, req),
  });
  await conn.done;
}

let ne: NotifyEnv | null = null;

await multiServer({
  name: "bounce",
  onStart(ctx) {
    try {
      const templates = loadTemplates(ctx.config, (w) => msg.warn(w));
      ne = { cfg: ctx.config, paths: new QueuePaths(ctx.config), templates };
    } catch (err) {
      if (err instanceof TemplateError) msg.fatal(err.message);
      throw err;
    }
  },
  async onConnection(sock, ctx) {
    if (ne !== null) await serve(sock, ctx, ne);
  },
});
