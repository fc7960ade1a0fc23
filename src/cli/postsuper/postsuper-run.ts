/*
 * postsuper - queue maintenance, as Postfix's postsuper
 *
 * SYNOPSIS
 *   postsuper [-psv] [-c config_dir] [-d queue_id] [-h queue_id] [-H queue_id]
 *             [-r queue_id] [queue ...]
 *
 * DESCRIPTION
 *   -d ID    delete the message from the named queues (default: maildrop,
 *            incoming, active, deferred, hold; corrupt and saved may be
 *            named), its bounce/defer/trace logs first: "ID: removed"
 *   -h ID    put on hold: incoming, active, deferred -> hold: "ID: placed on hold"
 *   -H ID    release: hold -> deferred: "ID: released from hold"
 *   -r ID    requeue (default queues: incoming, active, deferred, hold);
 *            see postsuper-requeue.ts for exactly what that does: "ID: requeued"
 *   -s       structure check and repair (postsuper-walk.ts)
 *   -p       purge temporary files left by a crash (postsuper-ops.ts says
 *            which ones; never a file whose writer is alive)
 *   -v       verbose; -c the configuration directory
 *   ID may be ALL (every message in the queues; in upper case, as a safety
 *   measure) or "-" (IDs are read from standard input, one per line).
 *   Without an action, -s and -p are done. The walk covers defer, bounce,
 *   trace, maildrop, incoming, active, deferred and hold unless queues are
 *   named (flush/ holds the flush daemon's per-site logs, not queue files).
 *   Summaries follow Postfix:
 *   "Deleted: 3 messages", "Requeued: 1 message", "Placed on hold: N
 *   messages", "Released from hold: N messages", "Renamed to match inode
 *   number: N messages", plus Postern's "Renamed to a queue ID", "Moved to
 *   corrupt", "Purged: N temporary files". The exit status is 0 unless
 *   something was found that postsuper could not repair.
 *
 *   Privileges: as Postfix's, postsuper is for the superuser; as root it
 *   gives up root for mail_owner (uid, gid and groups) before it touches
 *   the queue, so every file and hash directory it makes belongs to
 *   mail_owner, and a compromised queue cannot lead it elsewhere with root
 *   rights. When master runs unprivileged (demo and test mode), the user
 *   that owns the queue may run it too.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { getopt } from "../../util/getopt.js";
import { msg, msgInit } from "../../util/msg.js";
import { getUser } from "../../util/unix-users.js";
import { Config } from "../../global/config.js";
import { configDirectory } from "../../global/install-paths.js";
import { QUEUE_NAMES } from "../../global/queue-dirs.js";
import { queueIdOk } from "../../global/queue-id.js";
import { QueuePaths, type QueueName } from "../../global/queue-path.js";
import { postsuperSink } from "./postsuper-log.js";
import {
  ACTION,
  BY_ID_QUEUES,
  LOG_QUEUES,
  exists,
  newCounts,
  postremove,
  postrename,
  type Counts,
  type SuperCtx,
} from "./postsuper-ops.js";
import { requeueFile } from "./postsuper-requeue.js";
import { superWalk } from "./postsuper-walk.js";

const USAGE =
  "usage: postsuper [-c config_dir] [-d queue_id (delete)] [-h queue_id (hold)] [-H queue_id (un-hold)] [-p (purge temporary files)] [-r queue_id (requeue)] [-s (structure fix)] [-v (verbose)] [queue...]";

const DEFAULT_QUEUES: readonly QueueName[] = [
  "defer",
  "bounce",
  "trace",
  "maildrop",
  "incoming",
  "active",
  "deferred",
  "hold",
];
const HOLD_QUEUES: readonly QueueName[] = ["incoming", "active", "deferred"];
const RELEASE_QUEUES: readonly QueueName[] = ["hold"];
const ID_LINE_MAX = 256;

type ByIdOp = "delete" | "requeue" | "hold" | "release";

interface Options {
  action: number;
  names: Record<ByIdOp, string[]>;
  dir: string | undefined;
  verbose: boolean;
  queues: QueueName[];
}

/** Reads the command line; usage problems are fatal. */
function parseOptions(argv: string[]): Options {
  const r = getopt(argv, "c:d:h:H:pr:sv");
  if (!r.ok) return msg.fatal(`${r.error}; ${USAGE}`);
  const o: Options = {
    action: 0,
    names: { delete: [], requeue: [], hold: [], release: [] },
    dir: undefined,
    verbose: false,
    queues: [],
  };
  const byId: Record<string, [ByIdOp, number, number]> = {
    d: ["delete", ACTION.DELETE_ONE, ACTION.DELETE_ALL],
    r: ["requeue", ACTION.REQUEUE_ONE, ACTION.REQUEUE_ALL],
    h: ["hold", ACTION.HOLD_ONE, ACTION.HOLD_ALL],
    H: ["release", ACTION.RELEASE_ONE, ACTION.RELEASE_ALL],
  };
  for (const [k, v] of r.opts) {
    const b = byId[k];
    if (b !== undefined) {
      o.names[b[0]].push(v);
      o.action |= v === "ALL" ? b[2] : b[1];
    } else if (k === "c") o.dir = v;
    else if (k === "p") o.action |= ACTION.PURGE;
    else if (k === "s") o.action |= ACTION.STRUCT;
    else if (k === "v") o.verbose = true;
  }
  for (const q of r.args) {
    if (!(QUEUE_NAMES as readonly string[]).includes(q)) return msg.fatal(`invalid directory name: ${q}`);
    o.queues.push(q as QueueName);
  }
  if (o.action === 0) o.action = ACTION.STRUCT | ACTION.PURGE;
  return o;
}

/** Gives up root for mail_owner; lets the queue owner through when master runs unprivileged. */
function dropPrivileges(cfg: Config): void {
  const incoming = join(cfg.get("queue_directory"), "incoming");
  let owner: number;
  try {
    owner = statSync(incoming).uid;
  } catch (err) {
    return msg.fatal(`${incoming}: ${(err as Error).message}`);
  }
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) {
    if (owner !== uid) msg.fatal("use of this command is reserved for the superuser (or the queue owner)");
    return;
  }
  const name = cfg.get("mail_owner");
  const user = getUser(name);
  if (user === null) return msg.fatal(`mail_owner: unknown user "${name}"`);
  if (user.uid === 0) return msg.fatal(`mail_owner "${name}" has uid 0: it must be an unprivileged account`);
  if (owner !== user.uid && owner !== 0)
    return msg.fatal(
      `${incoming} is owned by uid ${owner}, not by mail_owner ${name} (uid ${user.uid}); see "postern check"`,
    );
  process.setgroups?.([user.gid]);
  process.setgid?.(user.gid);
  process.setuid?.(user.uid);
}

/** Reads queue IDs from standard input, one per line (over-long lines are skipped with a warning). */
async function stdinIds(): Promise<string[]> {
  const ids: string[] = [];
  let partial = "";
  let skipping = false;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    const lines = (partial + chunk.toString("latin1")).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) {
      if (!skipping) ids.push(l.replace(/\r$/, ""));
      skipping = false;
    }
    if (partial.length > ID_LINE_MAX) {
      if (!skipping) msg.warn(`invalid mail queue id: ${partial.slice(0, 40)}...`);
      skipping = true;
      partial = "";
    }
  }
  if (partial !== "" && !skipping) ids.push(partial);
  return ids;
}

/** Applies a by-ID operation to one ID in the first queue that has it; true when done. */
async function operate(
  ctx: SuperCtx,
  op: ByIdOp,
  queues: readonly QueueName[],
  id: string,
): Promise<boolean> {
  if (!queueIdOk(id)) {
    msg.warn(`invalid mail queue id: ${id}`);
    return false;
  }
  for (let tries = 0; tries < (op === "release" ? 1 : 2); tries++) {
    for (const q of queues) {
      if (!BY_ID_QUEUES.has(q)) continue;
      const path = ctx.paths.path(q, id);
      if (!exists(path)) continue;
      if (op === "delete") {
        for (const lq of LOG_QUEUES) postremove(ctx, ctx.paths.path(lq, id));
        if (!postremove(ctx, path)) continue;
        msg.info(`${id}: removed`);
        return true;
      }
      if (op === "requeue") {
        if (q === "maildrop" || q === "corrupt" || q === "saved") continue;
        if (await requeueFile(ctx, q, id, path, true)) return true;
      } else if (op === "hold") {
        if (q === "maildrop" || q === "hold" || q === "corrupt" || q === "saved") continue;
        if (postrename(ctx, path, ctx.paths.path("hold", id))) {
          msg.info(`${id}: placed on hold`);
          return true;
        }
      } else if (q === "hold" && postrename(ctx, path, ctx.paths.path("deferred", id))) {
        msg.info(`${id}: released from hold`);
        return true;
      }
    }
  }
  return false;
}

/** Runs the by-ID operations named on the command line. */
async function byId(ctx: SuperCtx, o: Options): Promise<void> {
  const ops: Array<[ByIdOp, number, readonly QueueName[], keyof Counts]> = [
    ["delete", ACTION.DELETE_ONE, DEFAULT_QUEUES, "deleted"],
    ["requeue", ACTION.REQUEUE_ONE, DEFAULT_QUEUES, "requeued"],
    ["hold", ACTION.HOLD_ONE, HOLD_QUEUES, "held"],
    ["release", ACTION.RELEASE_ONE, RELEASE_QUEUES, "released"],
  ];
  let stdin: string[] | null = null;
  for (const [op, bit, defaults, counter] of ops) {
    if ((o.action & bit) === 0) continue;
    const queues = o.queues.length > 0 ? o.queues : defaults;
    for (const name of o.names[op]) {
      if (name === "ALL") continue;
      const ids = name === "-" ? (stdin ??= await stdinIds()) : [name];
      for (const id of ids) if (await operate(ctx, op, queues, id)) ctx.counts[counter]++;
    }
  }
}

/** "N message" or "N messages". */
function plural(n: number, what = "message"): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** Logs the summary lines. */
function report(c: Counts): void {
  if (c.requeued > 0) msg.info(`Requeued: ${plural(c.requeued)}`);
  if (c.deleted > 0) msg.info(`Deleted: ${plural(c.deleted)}`);
  if (c.held > 0) msg.info(`Placed on hold: ${plural(c.held)}`);
  if (c.released > 0) msg.info(`Released from hold: ${plural(c.released)}`);
  if (c.inodeFixed > 0) msg.info(`Renamed to match inode number: ${plural(c.inodeFixed)}`);
  if (c.renamed > 0) msg.info(`Renamed to a queue ID: ${plural(c.renamed)}`);
  if (c.quarantined > 0) msg.info(`Moved to corrupt: ${plural(c.quarantined)}`);
  if (c.purged > 0) msg.info(`Purged: ${plural(c.purged, "temporary file")}`);
  if (c.inodeMismatch > 0 || c.inodeFixed > 0)
    msg.warn("QUEUE FILE NAMES WERE CHANGED TO MATCH INODE NUMBERS");
}

/** Mutually exclusive "ALL" and named IDs: ALL wins, as in Postfix. */
function resolveAll(o: Options): void {
  const pairs: Array<[number, number, string]> = [
    [ACTION.DELETE_ALL, ACTION.DELETE_ONE, "-d"],
    [ACTION.REQUEUE_ALL, ACTION.REQUEUE_ONE, "-r"],
    [ACTION.HOLD_ALL, ACTION.HOLD_ONE, "-h"],
    [ACTION.RELEASE_ALL, ACTION.RELEASE_ONE, "-H"],
  ];
  for (const [all, one, flag] of pairs) {
    if (o.action & all && o.action & one) {
      msg.warn(`option "${flag} ALL" will ignore other command line queue IDs`);
      o.action &= ~one;
    }
  }
}

/** The queues a walk covers. */
function walkQueues(o: Options): readonly QueueName[] {
  if (o.queues.length > 0) return o.queues;
  if (o.action === ACTION.HOLD_ALL) return HOLD_QUEUES;
  if (o.action === ACTION.RELEASE_ALL) return RELEASE_QUEUES;
  return DEFAULT_QUEUES;
}

/** Runs postsuper; returns the exit status. */
export async function postsuper(argv: string[]): Promise<number> {
  msgInit({ tag: "postsuper" });
  const o = parseOptions(argv);
  const cfg = Config.load(configDirectory(o.dir));
  msgInit({ sink: postsuperSink(cfg), verbose: o.verbose ? 1 : 0 });
  dropPrivileges(cfg);
  process.umask(0o022);
  resolveAll(o);
  const ctx: SuperCtx = {
    paths: new QueuePaths(cfg),
    hashed: new Set(cfg.list("hash_queue_names")),
    depth: cfg.int("hash_queue_depth"),
    longIds: cfg.bool("enable_long_queue_ids"),
    verbose: o.verbose,
    counts: newCounts(),
    requeued: new Set(),
  };
  const byIdBits = ACTION.DELETE_ONE | ACTION.REQUEUE_ONE | ACTION.HOLD_ONE | ACTION.RELEASE_ONE;
  const queues = walkQueues(o);
  if (o.action & ~byIdBits) {
    await superWalk(ctx, queues, o.action);
    if (ctx.counts.inodeMismatch > 0) await superWalk(ctx, queues, o.action);
  }
  if (o.action & byIdBits && (ctx.counts.inodeMismatch > 0 || ctx.counts.inodeFixed > 0)) {
    msg.error("QUEUE FILE NAMES WERE CHANGED TO MATCH INODE NUMBERS");
    msg.fatal("CHECK YOUR QUEUE IDS AND RE-ISSUE THE COMMAND");
  }
  await byId(ctx, o);
  report(ctx.counts);
  return ctx.counts.unrepaired > 0 ? 1 : 0;
}
