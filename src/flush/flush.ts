/*
 * flush - the fast flush service: per-destination logs of deferred mail
 *
 * SYNOPSIS
 *   master.cf: flush unix n - y 1000? 0 flush
 *
 * DESCRIPTION
 *   flush serves global/flush-proto.ts on public/flush: "send_site" for
 *   ETRN and "postqueue -s site", "send_file" for "postqueue -i id", "add"
 *   to log a deferral, "refresh" and "purge" (flush-log.ts does the work).
 *   Each client proves its uid with a file in maildrop/ (global/uid-
 *   proof.ts): send_site and send_file are for root, mail_owner and
 *   authorized_flush_users; add, refresh and purge for root and
 *   mail_owner. Sites must match fast_flush_domains (with subdomains when
 *   the parameter is in parent_domain_matches_subdomains); a site that
 *   does not is refused with "deny". Master's wakeup runs a refresh.
 */
import type { Socket } from "node:net";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import { dictOpen } from "../global/dict.js";
import { FLUSH_FRAME_MAX, FLUSH_PROTOCOL, FlushRequest } from "../global/flush-proto.js";
import { FrameConn } from "../global/frame-conn.js";
import { sendTrigger } from "../global/qmgr-trigger.js";
import { QueuePaths } from "../global/queue-path.js";
import { MatchList } from "../global/resolve-match.js";
import { checkProof, makeNonce } from "../global/uid-proof.js";
import { checkUserAcl, ownerOrRoot } from "../global/user-acl.js";
import { singleServer } from "../master/mail-server.js";
import { addToLog, refresh, sendFile, sendSite, type FlushEnv, type FlushOutcome } from "./flush-log.js";

/** The flush environment from the configuration. */
function flushEnv(cfg: Config): FlushEnv {
  const paths = new QueuePaths(cfg);
  const list = new MatchList("fast_flush_domains", cfg.list("fast_flush_domains"), {
    kind: "domain",
    parentStyle: cfg.list("parent_domain_matches_subdomains").includes("fast_flush_domains"),
    open: (spec, flags) => dictOpen(spec, { flags }),
  });
  const qmgr = cfg.get("queue_service_name");
  const timeout = cfg.time("trigger_timeout") * 1000;
  return {
    paths,
    eligible: (site) => list.match(site.replace(/^\[(.*)\]$/, "$1")),
    wakeQmgr: async (bytes) => {
      const err = await sendTrigger(paths.root, "public", qmgr, bytes, timeout);
      if (err !== null) msg.warn(`cannot wake the queue manager: ${err}`);
    },
    refreshSecs: cfg.time("fast_flush_refresh_time"),
    purgeSecs: cfg.time("fast_flush_purge_time"),
  };
}

/** Whether a uid may make a request; the refusal, or null. */
async function allowed(cfg: Config, uid: number, request: string): Promise<FlushOutcome | null> {
  if (await ownerOrRoot(cfg, uid, true)) return null;
  if (request !== "send_site" && request !== "send_file")
    return { status: "deny", reason: `${request} is for the mail system only` };
  const v = await checkUserAcl(cfg, "authorized_flush_users", uid);
  if (v.status === "permit") return null;
  if (v.status === "deny")
    return { status: "deny", reason: `User ${v.name}(${uid}) is not allowed to flush the mail queue` };
  msg.warn(`uid ${uid}: authorized_flush_users: ${v.reason}`);
  return { status: "fail", reason: "cannot check authorized_flush_users now; try again later" };
}

/** Carries out a checked request. */
async function perform(env: FlushEnv, req: ReturnType<typeof FlushRequest.parse>): Promise<FlushOutcome> {
  if (!req.ok) return { status: "bad" };
  const v = req.value;
  switch (v.request) {
    case "send_site":
      return v.site === undefined ? { status: "bad" } : sendSite(env, v.site);
    case "send_file":
      return v.queue_id === undefined ? { status: "bad" } : sendFile(env, v.queue_id);
    case "add":
      return v.site === undefined || v.queue_id === undefined
        ? { status: "bad" }
        : addToLog(env, v.site, v.queue_id);
    case "refresh":
      await refresh(env, env.refreshSecs);
      return { status: "ok" };
    case "purge":
      await refresh(env, 0);
      return { status: "ok" };
  }
}

/** Serves one client. */
async function serveFlush(sock: Socket, cfg: Config, env: FlushEnv): Promise<void> {
  const conn = new FrameConn(sock, { maxFrame: FLUSH_FRAME_MAX, timeoutMs: cfg.time("ipc_timeout") * 1000 });
  const nonce = makeNonce();
  await conn.send({ protocol: FLUSH_PROTOCOL, nonce });
  const f = await conn.next();
  const req = typeof f === "string" ? null : FlushRequest.parse(f);
  let out: FlushOutcome;
  if (req === null || !req.ok) out = { status: "bad", reason: "malformed request" };
  else {
    const proof = await checkProof(env.paths.root, nonce);
    if (!proof.ok) {
      msg.warn(`refusing a flush request: cannot tell who asks: ${proof.reason}`);
      out = { status: "deny", reason: `cannot tell who asks: ${proof.reason}` };
    } else out = (await allowed(cfg, proof.uid, req.value.request)) ?? (await perform(env, req));
  }
  await conn.send(
    out.reason !== undefined ? { status: out.status, reason: out.reason } : { status: out.status },
  );
  conn.close();
}

let env: FlushEnv | null = null;

await singleServer({
  name: "flush",
  async onStart(ctx) {
    env = flushEnv(ctx.config);
    await mkdir(join(env.paths.root, "flush"), { recursive: true, mode: 0o700 });
  },
  async onConnection(sock, ctx) {
    if (env !== null) await serveFlush(sock, ctx.config, env);
  },
  async onTrigger() {
    if (env !== null) await refresh(env, env.refreshSecs);
  },
});
