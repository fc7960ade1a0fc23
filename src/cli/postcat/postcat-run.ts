/*
 * postcat - show queue file contents, as Postfix's postcat
 *
 * SYNOPSIS
 *   postcat [-bdDehoqrv] [-c config_dir] [files...]
 *
 * DESCRIPTION
 *   Prints the named queue files in human-readable form (see
 *   postcat-print.ts for the format); without file names, reads one file
 *   from standard input. By default the envelope, header and body are
 *   shown, as with -beh.
 *     -b  body lines           -e  envelope records    -h  header lines
 *     -o  record offsets       -d  decimal record types (-D is the same)
 *     -q  the arguments are queue IDs: look for each in maildrop, incoming,
 *         active, deferred, hold, saved and corrupt (twice, in case the
 *         queue manager moves the file meanwhile); paths are then shown
 *         relative to queue_directory, as "deferred/F/F3A1C0B7D"
 *     -r  accepted for compatibility (Postern files have no pointer records)
 *     -v  verbose: content records are named too
 *     -c  configuration directory (else $MAIL_CONFIG, else /etc/postern)
 *   A file that is not a complete, well-formed queue file is printed up to
 *   its first bad record, and then postcat says where it is broken:
 *     postcat: error: incoming/3F2A1C0B7D: broken at offset 312: REASON
 *   (a file whose records are all readable is also checked as a whole:
 *   size record, recipient count, content size). The exit status is 1 when
 *   any file was broken or could not be opened, else 0.
 */
import { existsSync, fstatSync, mkdtempSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { getopt } from "../../util/getopt.js";
import { msg, msgInit } from "../../util/msg.js";
import { Config } from "../../global/config.js";
import { configDirectory } from "../../global/install-paths.js";
import { checkQueueFile } from "../../global/queue-corrupt.js";
import { queueIdOk } from "../../global/queue-id.js";
import { QueuePaths, type QueueName } from "../../global/queue-path.js";
import { Output, printQueueFile, type PrintFlags } from "./postcat-print.js";

const USAGE =
  "usage: postcat [-b (body text)] [-c config_dir] [-d (decimal record type)] [-e (envelope records)] [-h (header text)] [-o (offsets)] [-q (access queue)] [-v] [file(s)...]";

const SEARCH: readonly QueueName[] = [
  "maildrop",
  "incoming",
  "active",
  "deferred",
  "hold",
  "saved",
  "corrupt",
];

export class PostcatError extends Error {
  readonly code = "EPOSTCAT";
}

interface Options {
  flags: PrintFlags;
  search: boolean;
  dir: string | undefined;
  args: string[];
}

/** Reads the command line. */
function parseOptions(argv: string[]): Options {
  const r = getopt(argv, "bc:dDehoqrv");
  if (!r.ok) throw new PostcatError(`${r.error}\n${USAGE}`);
  const flags: PrintFlags = {
    envelope: false,
    header: false,
    body: false,
    offsets: false,
    decimal: false,
    verbose: false,
  };
  let search = false;
  let dir: string | undefined;
  for (const [k, v] of r.opts) {
    if (k === "b") flags.body = true;
    else if (k === "e") flags.envelope = true;
    else if (k === "h") flags.header = true;
    else if (k === "o") flags.offsets = true;
    else if (k === "d" || k === "D") flags.decimal = true;
    else if (k === "q") search = true;
    else if (k === "v") flags.verbose = true;
    else if (k === "c") dir = v;
  }
  if (!flags.envelope && !flags.header && !flags.body) flags.envelope = flags.header = flags.body = true;
  return { flags, search, dir, args: r.args };
}

/** Opens a queue file by ID in the first queue that has it; the path shown is relative to the queue directory. */
async function openQueued(
  paths: QueuePaths,
  id: string,
): Promise<{ fh: FileHandle; path: string; name: string }> {
  if (!queueIdOk(id)) throw new PostcatError(`bad mail queue ID: ${id}`);
  let last = "No such file or directory";
  for (let tries = 0; tries < 2; tries++) {
    for (const q of SEARCH) {
      const path = paths.path(q, id);
      try {
        const fh = await open(path, "r");
        return { fh, path, name: relative(paths.root, path) };
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code !== "ENOENT") last = e.message;
      }
    }
  }
  throw new PostcatError(`open queue file ${id}: ${last}`);
}

/** Copies standard input to a private temporary file (at most limit bytes) and returns its path. */
async function spoolStdin(limit: number): Promise<{ path: string; done: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "postcat-"));
  const path = join(dir, "stdin");
  const done = (): void => rmSync(dir, { recursive: true, force: true });
  const fh = await open(path, "wx", 0o600);
  let total = 0;
  try {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw new PostcatError(`standard input is larger than ${limit} bytes`);
      await fh.write(chunk);
    }
  } catch (err) {
    done();
    throw err;
  } finally {
    await fh.close();
  }
  return { path, done };
}

/** Prints one open file and checks it as a whole; true when it is sound. */
async function showFile(
  fh: FileHandle,
  path: string,
  name: string,
  flags: PrintFlags,
  out: Output,
): Promise<boolean> {
  let r;
  try {
    r = await printQueueFile(fh, name, flags, out);
  } finally {
    await fh.close();
  }
  if (r.ok) {
    const c = await checkQueueFile(path);
    if (!c.ok && !existsSync(path)) return true;
    r = c;
  }
  await out.flush();
  if (r.ok) return true;
  msg.error(`${name}: broken at offset ${r.offset}: ${r.reason}`);
  return false;
}

/** Runs postcat; returns the exit status. */
export async function postcat(argv: string[]): Promise<number> {
  msgInit({ tag: "postcat" });
  const opts = parseOptions(argv);
  const cfg = Config.load(configDirectory(opts.dir));
  const out = new Output(process.stdout);
  let ok = true;
  if (opts.args.length === 0) {
    const limit = Math.max(cfg.int("message_size_limit"), 0) * 2 + (64 << 20);
    if (fstatSync(0).isFile()) {
      ok = await showFile(await open("/dev/stdin", "r"), "/dev/stdin", "stdin", opts.flags, out);
    } else {
      const tmp = await spoolStdin(limit);
      try {
        ok = await showFile(await open(tmp.path, "r"), tmp.path, "stdin", opts.flags, out);
      } finally {
        tmp.done();
      }
    }
  } else {
    const paths = new QueuePaths(cfg);
    for (const a of opts.args) {
      let f: { fh: FileHandle; path: string; name: string };
      if (opts.search) f = await openQueued(paths, a);
      else {
        try {
          f = { fh: await open(a, "r"), path: a, name: a };
        } catch (err) {
          throw new PostcatError(`open ${a}: ${(err as Error).message}`);
        }
      }
      if (!(await showFile(f.fh, f.path, f.name, opts.flags, out))) ok = false;
    }
  }
  await out.flush();
  return ok ? 0 : 1;
}
