/*
 * qshape - print the queue's domain and age distribution
 *
 * SYNOPSIS
 *   qshape [-s] [-p] [-m min_subdomains] [-b bucket_count] [-t bucket_time]
 *          [-l] [-w terminal_width] [-N batch_msg_count] [-n batch_top_domains]
 *          [-c config_directory] [queue_name ...]
 *
 * DESCRIPTION
 *   As Postfix's qshape(1): counts the recipients (or with -s the senders)
 *   of the messages in the named queues (default: incoming and active) by
 *   domain and by age, and prints the table of qshape-shape.ts. -p adds
 *   parent domains (shown when they have at least -m subdomains, default
 *   5); -b sets the number of age buckets (default 10), -t the minutes of
 *   the first (default 5), -l makes them grow linearly instead of
 *   doubling; -w the output width (at least 80). A queue name is a
 *   directory under queue_directory, or an absolute path. Messages without
 *   a pending recipient are not counted. -N and -n (intermediate results
 *   on a terminal) are accepted and ignored: the table is printed once.
 *
 *   qshape reads the queue files itself, so it must run as root or as
 *   mail_owner. maildrop files are read as pickup reads them (their
 *   envelope recipients only: those that -t will take from the headers
 *   are not known yet), with the file's time as their arrival time.
 */
import { readdir, lstat, open } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { getopt } from "../../util/getopt.js";
import { msg } from "../../util/msg.js";
import { commandConfig, fatalStatus, runCommand } from "../../global/cmd-status.js";
import { MAILDROP_NAME_RE } from "../../global/maildrop.js";
import { MaildropReader } from "../../global/maildrop-reader.js";
import { readEnvelope } from "../../global/queue-file.js";
import { queueIdOk } from "../../global/queue-id.js";
import { EX } from "../../global/sys-exits.js";
import { QueueShape } from "./qshape-shape.js";

const USAGE =
  "usage: qshape [ -s ] [ -p ] [ -m <min_subdomains> ] [ -l ] [ -b <bucket_count> ] [ -t <bucket_time> ] [ -w <terminal_width> ] [ -N <batch_msg_count> ] [ -n <batch_top_domains> ] [ -c <config_directory> ] [ <queue_name> ... ]";
const WALK_MAX_DEPTH = 16;

interface Envelope {
  time: number;
  sender: string;
  rcpts: string[];
}

/** Reads a maildrop file's envelope. */
async function maildropEnvelope(path: string, mtimeSecs: number): Promise<Envelope | null> {
  const fh = await open(path, "r").catch(() => null);
  if (fh === null) return null;
  try {
    const r = new MaildropReader(fh, { contentMax: 0, rcptMax: 100_000 });
    const env: Envelope = { time: mtimeSecs, sender: "", rcpts: [] };
    for (;;) {
      const s = await r.next();
      if (!s.ok || s.ev === null) return null;
      if (s.ev.kind === "sender") env.sender = s.ev.address;
      else if (s.ev.kind === "rcpt") env.rcpts.push(s.ev.address);
      else if (s.ev.kind === "content") return env;
    }
  } finally {
    await fh.close();
  }
}

/** Reads a queue file's envelope (pending recipients only). */
async function queueEnvelope(path: string): Promise<Envelope | null> {
  const r = await readEnvelope(path);
  if (!r.ok) return null;
  return {
    time: r.env.arrival.sec,
    sender: r.env.sender,
    rcpts: r.env.recipients.filter((rc) => !rc.done).map((rc) => rc.address),
  };
}

/** Visits every file under a directory. */
async function walk(
  dir: string,
  depth: number,
  visit: (path: string, name: string, mtime: number) => Promise<void>,
): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    msg.warn(`${dir}: ${(err as Error).message}`);
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    const st = await lstat(path).catch(() => null);
    if (st === null) continue;
    if (st.isDirectory() && depth < WALK_MAX_DEPTH) await walk(path, depth + 1, visit);
    else if (st.isFile()) await visit(path, name, Math.floor(st.mtimeMs / 1000));
  }
}

/** A numeric option, or the default. */
function num(opts: Array<[string, string]>, k: string, def: number, min: number): number {
  const v = opts.filter(([o]) => o === k).pop()?.[1];
  if (v === undefined) return def;
  if (!/^\d+$/.test(v)) fatalStatus(EX.USAGE, `-${k} needs a number; ${USAGE}`);
  const n = Number(v);
  return n >= min ? n : def;
}

/** Runs qshape. */
async function qshape(argv: string[]): Promise<number> {
  const r = getopt(argv, "lhc:psw:b:t:m:n:N:");
  if (!r.ok) fatalStatus(EX.USAGE, `${r.error}\n${USAGE}`);
  const has = (k: string): boolean => r.opts.some(([o]) => o === k);
  if (has("h")) fatalStatus(EX.USAGE, USAGE);
  const queues = r.args.length > 0 ? r.args : ["incoming", "active"];
  const qdir = queues.every(isAbsolute)
    ? ""
    : commandConfig(r.opts.find(([k]) => k === "c")?.[1]).get("queue_directory");
  const shape = new QueueShape({
    buckets: num(r.opts, "b", 10, 1),
    tick: num(r.opts, "t", 5, 1),
    linear: has("l"),
    parents: has("p"),
    minSubdomains: num(r.opts, "m", 5, 1),
  });
  const now = Math.floor(Date.now() / 1000);
  for (const q of queues) {
    const dir = isAbsolute(q) ? q : join(qdir, q);
    const maildrop = /(^|\/)maildrop\/?$/.test(q);
    await walk(dir, 0, async (path, name, mtime) => {
      const env = maildrop
        ? MAILDROP_NAME_RE.test(name)
          ? await maildropEnvelope(path, mtime)
          : null
        : queueIdOk(name)
          ? await queueEnvelope(path)
          : null;
      if (env === null || env.rcpts.length === 0) return;
      shape.add(env.time, has("s") ? [env.sender] : env.rcpts, now);
    });
  }
  const w = num(r.opts, "w", 80, 0);
  process.stdout.write(shape.render(w > 80 ? w : 80));
  return EX.OK;
}

await runCommand("qshape", () => qshape(process.argv.slice(2)));
