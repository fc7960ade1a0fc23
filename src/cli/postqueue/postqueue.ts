/*
 * postqueue - queue listing and flushing for users
 *
 * SYNOPSIS
 *   postqueue [-v] [-c config_dir] -p | -j | -f | -i queue_id | -s site
 *
 * DESCRIPTION
 *   -p  the classic mailq listing (postqueue-format.ts), from the showq
 *       service (global/showq-client.ts), so no access to the queue is
 *       needed: the user must be root, mail_owner or in
 *       authorized_mailq_users (showq checks it; so does this command,
 *       for a clear message).
 *   -j  the same listing as JSON lines, one object per message, with
 *       Postfix's member names.
 *   -f  flush: ask the queue manager to try all deferred mail now (and
 *       forget that destinations are down), and pickup to scan the
 *       maildrop.
 *   -s site  flush the deferred mail for one fast_flush_domains site, and
 *       -i queue_id one message, through the flush service.
 *   -f, -s and -i need authorized_flush_users (or root or mail_owner).
 *
 * DIAGNOSTICS
 *   "postqueue: fatal: ..." with a sysexits status: EX_NOPERM (not
 *   allowed), EX_UNAVAILABLE (the mail system is down, or the site is not
 *   eligible), EX_USAGE (bad request), EX_SOFTWARE (a malformed answer).
 */
import { getopt } from "../../util/getopt.js";
import { msgInit } from "../../util/msg.js";
import { commandConfig, fatalStatus, runCommand } from "../../global/cmd-status.js";
import type { Config } from "../../global/config.js";
import { flushRequest } from "../../global/flush-client.js";
import {
  QMGR_FLUSH_DEAD,
  QMGR_SCAN_ALL,
  QMGR_SCAN_DEFERRED,
  QMGR_SCAN_INCOMING,
  sendTrigger,
} from "../../global/qmgr-trigger.js";
import { showqOpen } from "../../global/showq-client.js";
import { EX } from "../../global/sys-exits.js";
import { checkUserAcl, ownerOrRoot, type AclParam } from "../../global/user-acl.js";
import { CompatFormat, JsonFormat } from "./postqueue-format.js";

const USAGE = "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site";

/** Refuses a user outside an access list (root and mail_owner always pass). */
async function checkAcl(cfg: Config, param: AclParam, what: string): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  if (await ownerOrRoot(cfg, uid)) return;
  const v = await checkUserAcl(cfg, param, uid);
  if (v.status === "deny") fatalStatus(EX.NOPERM, `User ${v.name}(${uid}) is not allowed to ${what}`);
  if (v.status === "tempfail") fatalStatus(EX.TEMPFAIL, `${param}: ${v.reason}`);
}

/** Writes to standard output, buffered; a closed pipe ends the output quietly. */
class Output {
  #buf: string[] = [];
  #size = 0;
  closed = false;

  constructor() {
    process.stdout.on("error", () => {
      this.closed = true;
    });
  }

  /** Queues text, writing when enough has collected. */
  write = (text: string): void => {
    this.#buf.push(text);
    this.#size += text.length;
    if (this.#size > 65536) void this.flush();
  };

  /** Writes what is queued and waits until it is written. */
  async flush(): Promise<void> {
    if (this.#buf.length === 0 || this.closed) return;
    const text = this.#buf.join("");
    this.#buf = [];
    this.#size = 0;
    await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
  }
}

/** -p and -j: the listing from showq. */
async function showQueue(cfg: Config, json: boolean): Promise<number> {
  await checkAcl(cfg, "authorized_mailq_users", "view the mail queue");
  const r = await showqOpen(cfg.get("queue_directory"), {
    service: cfg.get("showq_service_name"),
    timeoutMs: cfg.time("ipc_timeout") * 1000,
  });
  if (!r.ok) {
    if (r.code === "ECONNECT")
      fatalStatus(EX.UNAVAILABLE, `Queue report unavailable - mail system is down (${r.reason})`);
    if (r.code === "EDENY") fatalStatus(EX.NOPERM, r.reason);
    fatalStatus(EX.SOFTWARE, r.reason);
  }
  const out = new Output();
  const f = json ? new JsonFormat(out.write) : new CompatFormat(cfg.bool("enable_long_queue_ids"), out.write);
  for await (const item of r.items) {
    if (item.kind === "error") {
      await out.flush();
      fatalStatus(EX.SOFTWARE, item.reason);
    }
    f.item(item);
    if (out.closed) return EX.OK;
  }
  f.end();
  await out.flush();
  return EX.OK;
}

/** -f: wake the queue manager for all deferred mail, and pickup. */
async function flushQueue(cfg: Config): Promise<number> {
  await checkAcl(cfg, "authorized_flush_users", "flush the mail queue");
  const q = cfg.get("queue_directory");
  const timeout = cfg.time("trigger_timeout") * 1000;
  const bytes = QMGR_FLUSH_DEAD + QMGR_SCAN_ALL + QMGR_SCAN_DEFERRED + QMGR_SCAN_INCOMING;
  const err = await sendTrigger(q, "public", cfg.get("queue_service_name"), bytes, timeout);
  if (err !== null) fatalStatus(EX.UNAVAILABLE, `Cannot flush mail queue - mail system is down (${err})`);
  const perr = await sendTrigger(q, "public", cfg.get("pickup_service_name"), "W", timeout);
  if (perr !== null) fatalStatus(EX.UNAVAILABLE, `Cannot flush mail queue - mail system is down (${perr})`);
  return EX.OK;
}

/** -s site and -i queue_id: through the flush service. */
async function flushOne(
  cfg: Config,
  req: { request: "send_site"; site: string } | { request: "send_file"; queue_id: string },
): Promise<number> {
  await checkAcl(cfg, "authorized_flush_users", "flush the mail queue");
  const what = req.request === "send_site" ? req.site : req.queue_id;
  const r = await flushRequest(cfg.get("queue_directory"), req, { service: cfg.get("flush_service_name") });
  switch (r.status) {
    case "ok":
      return EX.OK;
    case "bad":
      return fatalStatus(EX.USAGE, `Invalid request: "${what}"`);
    case "deny":
      if (r.reason !== "") return fatalStatus(EX.NOPERM, r.reason);
      return fatalStatus(EX.UNAVAILABLE, `Flush service is not configured for destination "${what}"`);
    case "fail":
      return fatalStatus(
        EX.UNAVAILABLE,
        `Cannot flush mail queue - mail system is down${r.reason !== "" ? ` (${r.reason})` : ""}`,
      );
  }
}

/** Runs postqueue. */
async function postqueue(argv: string[]): Promise<number> {
  const r = getopt(argv, "c:fi:jps:v");
  if (!r.ok || r.args.length > 0)
    fatalStatus(EX.USAGE, `${r.ok ? "unexpected argument" : r.error}; ${USAGE}`);
  msgInit({ verbose: r.opts.filter(([k]) => k === "v").length });
  const cfg = commandConfig(r.opts.find(([k]) => k === "c")?.[1]);
  const modes = r.opts.filter(([k]) => "fijps".includes(k));
  if (modes.length !== 1) fatalStatus(EX.USAGE, USAGE);
  const [mode, value] = modes[0] ?? ["", ""];
  switch (mode) {
    case "p":
      return showQueue(cfg, false);
    case "j":
      return showQueue(cfg, true);
    case "f":
      return flushQueue(cfg);
    case "s":
      return flushOne(cfg, { request: "send_site", site: value });
    default:
      return flushOne(cfg, { request: "send_file", queue_id: value });
  }
}

await runCommand("postqueue", () => postqueue(process.argv.slice(2)));
