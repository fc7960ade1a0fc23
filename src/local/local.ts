/*
 * local - delivery to local users: aliases, .forward, mailboxes, files, commands
 *
 * SYNOPSIS
 *   master.cf: local unix - n n - - local
 *   main.cf:   mydestination = $myhostname, localhost
 *              home_mailbox = Maildir/    (or mail_spool_directory = /var/mail)
 *
 * DESCRIPTION
 *   As Postfix's local(8). qmgr sends the recipients of mydestination
 *   domains (local_transport); each recipient goes through aliases
 *   (alias_maps), the user's .forward file (forward_path), the mailbox
 *   (mailbox_transport, mailbox_command, home_mailbox Maildir or mbox,
 *   mail_spool_directory) and the unknown-user rules (fallback_transport,
 *   luser_relay), in that order; see local-recipient.ts. Users come from
 *   the password database, including other name services through
 *   getent(1), so LDAP or SSSD accounts work.
 *
 *   Each queue-file recipient is delivered with a fresh duplicate filter;
 *   mail whose Delivered-To: headers already name the recipient bounces
 *   (a forwarding loop). The recipient's result is the worst outcome of
 *   its destinations; forwarded addresses are resubmitted through cleanup
 *   only when no destination deferred (local-forward.ts). The agent
 *   skeleton marks sent and bounced recipients done and logs them.
 *
 * PRIVILEGES
 *   Node cannot change the uid of a running process, so this agent runs
 *   as root (unpriv "n") and never opens a user's files itself:
 *     - mailboxes, Maildirs and /files are written, and .forward and
 *       :include: files of users read, by deliver-helper.js, a child
 *       process started with the user's uid and gid (libuv sets them and
 *       drops supplementary groups before exec) that gets the message on
 *       its standard input; a helper serves only one uid:gid and is
 *       reused for a few seconds;
 *     - |commands are spawned directly with the user's uid and gid, the
 *       message on standard input, in their own process group;
 *     - files and commands from root-owned alias tables get default_privs;
 *       an alias table owned by a user gives that user's rights; nothing
 *       ever runs as root. The agent itself reads only the queue file, its
 *       tables, and :include: files listed in root-owned tables (as
 *       Postfix does).
 *   When the agent does not run as root (demo and test mode), everything
 *   runs with its own rights.
 */
import { agentServer } from "../master/agent-server.js";
import type { ServerContext } from "../master/mail-server.js";
import { HelperPool } from "../global/deliver-helper-client.js";
import type { DeliveryRequest, RcptResult } from "../global/deliver-proto.js";
import { deliveredTo } from "../global/mail-copy.js";
import { contentLines, readEnvelope } from "../global/queue-file.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";
import { RewriteClient } from "../global/rewrite-client.js";
import { msg } from "../util/msg.js";
import { deliverRecipient } from "./local-recipient.js";
import { forwardFinish } from "./local-forward.js";
import { loadLocalSettings } from "./local-settings.js";
import { LocalRun, NO_USER, topAttr, type LocalSettings } from "./local-state.js";

interface Agent {
  set: LocalSettings;
  paths: QueuePaths;
  pool: HelperPool;
  rewrite: RewriteClient;
}

let agent: Agent | null = null;

/** Defers every recipient of a request with one reason. */
function deferAll(req: DeliveryRequest, dsn: string, text: string): RcptResult[] {
  return req.recipients.map(() => ({ status: "deferred" as const, dsn, text }));
}

/** Delivers one request, one recipient at a time. */
async function deliver(req: DeliveryRequest, ctx: ServerContext): Promise<RcptResult[]> {
  if (agent === null) throw new Error("local agent not initialized");
  const path = agent.paths.path(req.queueName as QueueName, req.queueId);
  const envelope = await readEnvelope(path);
  if (!envelope.ok) {
    msg.warn(`${req.queueId}: queue file ${path}: ${envelope.reason} at offset ${envelope.offset}`);
    return deferAll(req, "4.3.0", "queue file read error");
  }
  const env = envelope.env;
  let loop: Set<string>;
  try {
    loop = await deliveredTo(contentLines(path, env));
  } catch (err) {
    msg.warn(`${req.queueId}: ${(err as Error).message}`);
    return deferAll(req, "4.3.0", "queue file read error");
  }
  const results: RcptResult[] = [];
  for (const top of req.recipients) {
    const run = new LocalRun({
      req,
      set: agent.set,
      env,
      path,
      service: ctx.service,
      loop,
      pool: agent.pool,
      rewrite: agent.rewrite,
      top,
    });
    const a = topAttr(req, top);
    await forwardFinish(run, a, await deliverRecipient(run, a, NO_USER));
    results.push(run.result(top));
  }
  return results;
}

await agentServer({
  name: "local",
  /** Reads the settings, opens the tables, starts the helper pool. */
  async onStart(ctx) {
    const set = await loadLocalSettings(ctx.config);
    if (!set.asRoot)
      msg.info("not running as root: mailboxes, files and commands get this process's own rights");
    agent = {
      set,
      paths: new QueuePaths(ctx.config),
      pool: new HelperPool({ timeoutMs: ctx.config.time("ipc_timeout") * 1000 }),
      rewrite: RewriteClient.fromConfig(ctx.config),
    };
  },
  /** Delivers one request from qmgr. */
  async deliver(req, ctx) {
    return { relay: ctx.service, siteFail: false, results: await deliver(req, ctx) };
  },
});
