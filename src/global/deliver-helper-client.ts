/*
 * deliver-helper-client - run file work as a user, through reusable helper processes
 *
 * SYNOPSIS
 *   const pool = new HelperPool({ timeoutMs: 3600_000 });
 *   const r = await pool.maildir({ uid, gid }, { path, host, sizeLimit, defDsn }, chunks);
 *   const r = await pool.mbox(rights, mboxParams, chunks);
 *   const f = await pool.read(rights, "/home/u/.forward", limit, false);
 *   pool.close();
 *
 * DESCRIPTION
 *   The agent side of deliver-helper.ts. A helper is started with
 *   process.execPath and the compiled deliver-helper.js, with the given uid
 *   and gid, "/" as its working directory and an almost empty environment;
 *   the message travels on its standard input, never on a command line.
 *   When the agent itself is not root (demo and test mode) helpers run
 *   with the agent's own rights.
 *
 *   Starting Node costs tens of milliseconds, so a helper serves one
 *   request at a time and is kept for more requests with the same uid and
 *   gid, and only those: a helper never works for two users. It is told to
 *   exit (its input is closed) after idleMs without work; at most
 *   maxPerKey helpers exist for one uid:gid and maxTotal in all; a request
 *   beyond that waits. A helper that dies, says something malformed, or
 *   exceeds the time limit is killed and the request fails temporarily.
 *   When a message source fails midway (a damaged queue file), the helper
 *   is told to abort (it truncates what it wrote) and the error is thrown
 *   to the caller.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { FrameDecoder, encodeFrame, type AttrInput } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import {
  HELPER_DATA_CHUNK,
  HELPER_FRAME_MAX,
  mboxAttrs,
  parseHelperReply,
  type HelperReply,
  type MaildirParams,
  type MboxParams,
} from "./deliver-helper-proto.js";

/** The uid and gid to run as; null means the agent's own rights. */
export type Rights = { uid: number; gid: number } | null;

export interface HelperPoolOptions {
  timeoutMs: number;
  idleMs?: number;
  maxPerKey?: number;
  maxTotal?: number;
}

/** The compiled helper program. */
export function deliverHelperPath(): string {
  return fileURLToPath(new URL("./deliver-helper.js", import.meta.url));
}

/** A temporary-failure reply. */
function tempFail(text: string): HelperReply {
  return { ok: false, why: "proto", dsn: "4.3.0", text };
}

/** One helper process. */
class Helper {
  readonly key: string;
  busy = false;
  dead = false;
  #proc: ChildProcess;
  #dec = new FrameDecoder({ maxFrame: HELPER_FRAME_MAX });
  #waiter: ((r: HelperReply) => void) | null = null;
  #idle: NodeJS.Timeout | null = null;
  #onGone: (h: Helper) => void;

  constructor(key: string, rights: Rights, onGone: (h: Helper) => void) {
    this.key = key;
    this.#onGone = onGone;
    const asUser = rights !== null && process.getuid?.() === 0;
    this.#proc = spawn(process.execPath, [deliverHelperPath()], {
      cwd: "/",
      env: { PATH: "/usr/bin:/bin", LANG: "C" },
      stdio: ["pipe", "pipe", "pipe"],
      ...(asUser ? { uid: rights.uid, gid: rights.gid } : {}),
    });
    this.#proc.on("error", (err) => this.#die(`cannot run the delivery helper as ${key}: ${err.message}`));
    this.#proc.on("exit", (code, sig) => this.#die(`delivery helper (${key}) exited (${sig ?? code})`));
    this.#proc.stdin?.on("error", () => undefined);
    this.#proc.stdout?.on("data", (d: Buffer) => this.#onData(d));
    let errText = "";
    this.#proc.stderr?.on("data", (d: Buffer) => {
      errText = (errText + d.toString("utf8")).slice(-2000);
      const lines = errText.split("\n");
      errText = lines.pop() ?? "";
      for (const l of lines) if (l !== "") msg.warn(`delivery helper (${key}): ${l}`);
    });
  }

  /** Takes the helper's output. */
  #onData(d: Buffer): void {
    const r = this.#dec.push(d);
    if (!r.ok) return this.kill(`malformed output: ${r.reason}`);
    for (const f of r.frames) {
      const w = this.#waiter;
      if (w === null) return this.kill("output without a request");
      this.#waiter = null;
      const rep = parseHelperReply(f);
      if (typeof rep === "string") {
        this.kill(rep);
        w(tempFail(`delivery helper failure: ${rep}`));
      } else w(rep);
    }
  }

  /** Marks the helper gone and fails what it was doing. */
  #die(why: string): void {
    if (this.dead) return;
    this.dead = true;
    if (this.#idle !== null) clearTimeout(this.#idle);
    const w = this.#waiter;
    this.#waiter = null;
    if (w !== null) {
      msg.warn(why);
      w(tempFail("delivery helper failure"));
    }
    this.#onGone(this);
  }

  /** Kills the helper. */
  kill(why: string): void {
    msg.warn(`delivery helper (${this.key}): ${why}`);
    this.#proc.kill("SIGKILL");
    this.#die(why);
  }

  /** Sends frames in one write, waiting while the pipe is full. */
  async send(...frames: AttrInput[]): Promise<void> {
    const stdin = this.#proc.stdin;
    if (this.dead || stdin === null || stdin.destroyed) return;
    const bytes = frames.map((f) => encodeFrame(f, HELPER_FRAME_MAX));
    if (!stdin.write(bytes.length === 1 ? (bytes[0] as Buffer) : Buffer.concat(bytes))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          stdin.off("drain", done);
          this.#proc.off("exit", done);
          resolve();
        };
        stdin.on("drain", done);
        this.#proc.on("exit", done);
      });
    }
  }

  /** Waits for the reply to the current request, within a time limit. */
  reply(timeoutMs: number): Promise<HelperReply> {
    if (this.dead) return Promise.resolve(tempFail("delivery helper failure"));
    return new Promise((resolve) => {
      const t = setTimeout(() => this.kill("time limit exceeded"), timeoutMs);
      this.#waiter = (r) => {
        clearTimeout(t);
        resolve(r);
      };
    });
  }

  /** Starts the idle timer. */
  idle(ms: number): void {
    this.#idle = setTimeout(() => this.close(), ms);
    this.#idle.unref();
  }

  /** Stops the idle timer. */
  wake(): void {
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
  }

  /** Tells the helper to exit (end of its input). */
  close(): void {
    this.wake();
    this.#proc.stdin?.end();
    this.dead = true;
    this.#onGone(this);
  }
}

/** Reusable helpers, at most one request per helper at a time. */
export class HelperPool {
  #opts: Required<HelperPoolOptions>;
  #helpers = new Set<Helper>();
  #waiting: Array<() => void> = [];

  constructor(opts: HelperPoolOptions) {
    this.#opts = { idleMs: 10_000, maxPerKey: 4, maxTotal: 64, ...opts };
  }

  /** Takes an idle helper for the rights, or starts one, or waits for room. */
  async #acquire(rights: Rights): Promise<Helper> {
    const key = rights === null ? "self" : `${rights.uid}:${rights.gid}`;
    for (;;) {
      let mine = 0;
      for (const h of this.#helpers) {
        if (h.key !== key || h.dead) continue;
        mine++;
        if (!h.busy) {
          h.busy = true;
          h.wake();
          return h;
        }
      }
      if (mine < this.#opts.maxPerKey && this.#helpers.size >= this.#opts.maxTotal) this.#closeIdleOther(key);
      if (mine < this.#opts.maxPerKey && this.#helpers.size < this.#opts.maxTotal) {
        const h = new Helper(key, rights, (g) => this.#gone(g));
        h.busy = true;
        this.#helpers.add(h);
        return h;
      }
      await new Promise<void>((r) => this.#waiting.push(r));
    }
  }

  /** Closes one idle helper of another key to make room. */
  #closeIdleOther(key: string): void {
    for (const h of this.#helpers) {
      if (h.key !== key && !h.busy) return h.close();
    }
  }

  /** Forgets a helper that is gone; wakes a waiting request. */
  #gone(h: Helper): void {
    this.#helpers.delete(h);
    this.#waiting.shift()?.();
  }

  /** Returns a helper after a request. */
  #release(h: Helper): void {
    h.busy = false;
    if (!h.dead) h.idle(this.#opts.idleMs);
    this.#waiting.shift()?.();
  }

  /** Runs one request that carries a message. */
  async #withData(
    rights: Rights,
    head: AttrInput,
    chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  ): Promise<HelperReply> {
    const h = await this.#acquire(rights);
    let sourceError: Error | null = null;
    try {
      const reply = h.reply(this.#opts.timeoutMs);
      // Frames wait until a chunk's worth is ready, so that a small message is one write.
      let held: AttrInput[] = [head];
      let heldBytes = 0;
      try {
        for await (const chunk of chunks) {
          for (let i = 0; i < chunk.length; i += HELPER_DATA_CHUNK) {
            const data = chunk.subarray(i, i + HELPER_DATA_CHUNK);
            held.push({ data });
            heldBytes += data.length;
            if (heldBytes < HELPER_DATA_CHUNK) continue;
            await h.send(...held);
            held = [];
            heldBytes = 0;
          }
          if (h.dead) break;
        }
        await h.send(...held, { end: 1 });
      } catch (err) {
        sourceError = err instanceof Error ? err : new Error("message source failed");
        await h.send(...held, { abort: sourceError.message.slice(0, 500) });
      }
      const r = await reply;
      if (sourceError !== null) throw sourceError;
      return r;
    } finally {
      this.#release(h);
    }
  }

  /** Runs one request without a message. */
  async #simple(rights: Rights, head: AttrInput): Promise<HelperReply> {
    const h = await this.#acquire(rights);
    try {
      const reply = h.reply(this.#opts.timeoutMs);
      await h.send(head);
      return await reply;
    } finally {
      this.#release(h);
    }
  }

  /** Appends a message to a mailbox or file. */
  mbox(
    rights: Rights,
    p: MboxParams,
    chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  ): Promise<HelperReply> {
    return this.#withData(rights, mboxAttrs(p), chunks);
  }

  /** Delivers a message into a Maildir. */
  maildir(
    rights: Rights,
    p: MaildirParams,
    chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  ): Promise<HelperReply> {
    const head = { op: "maildir", path: p.path, host: p.host, size_limit: p.sizeLimit, def_dsn: p.defDsn };
    return this.#withData(rights, head, chunks);
  }

  /** Reads a small file (lstat unless follow). */
  read(rights: Rights, path: string, limit: number, follow: boolean): Promise<HelperReply> {
    return this.#simple(rights, { op: "read", path, limit, follow: follow ? "1" : "0" });
  }

  /** Looks at a path. */
  stat(rights: Rights, path: string): Promise<HelperReply> {
    return this.#simple(rights, { op: "stat", path });
  }

  /** Closes every helper. */
  close(): void {
    for (const h of [...this.#helpers]) h.close();
  }
}
