/*
 * queue-path - where a queue file lives
 *
 * SYNOPSIS
 *   const q = new QueuePaths(cfg);
 *   q.path("deferred", id)      // .../deferred/3/3F2A1C0B7D with hash_queue_depth 1
 *   for (const id of q.list("incoming")) ...
 *
 * DESCRIPTION
 *   A queue file's path is queue_directory/<queue>/<hash dirs>/<id>. The
 *   queues named in hash_queue_names are spread over hash_queue_depth levels
 *   of one-character subdirectories taken from the queue ID; the others
 *   are flat. The per-message logs bounce, defer and trace and the
 *   saved/corrupt queues follow the same rule. Names that are not queue
 *   IDs (temporary files being written) are never listed.
 */
import { mkdirSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.js";
import { QUEUE_NAMES } from "./queue-dirs.js";
import { queueIdHashChars, queueIdOk } from "./queue-id.js";

export type QueueName = (typeof QUEUE_NAMES)[number];

export class QueuePaths {
  readonly root: string;
  readonly #hashed: Set<string>;
  readonly #depth: number;

  constructor(cfg: Config) {
    this.root = cfg.get("queue_directory");
    this.#hashed = new Set(cfg.list("hash_queue_names"));
    this.#depth = cfg.int("hash_queue_depth");
  }

  /** The directory of a queue file (hash levels included). */
  dir(queue: QueueName, id: string): string {
    if (!queueIdOk(id)) throw new Error(`bad queue id: ${JSON.stringify(id)}`);
    const base = join(this.root, queue);
    return this.#hashed.has(queue) ? join(base, ...queueIdHashChars(id, this.#depth)) : base;
  }

  /** The path of a queue file. */
  path(queue: QueueName, id: string): string {
    return join(this.dir(queue, id), id);
  }

  /** Moves a file between queues, making hash directories as needed; false when it is not there. */
  move(id: string, from: QueueName, to: QueueName): boolean {
    const target = this.dir(to, id);
    try {
      renameSync(this.path(from, id), join(target, id));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    mkdirSync(target, { recursive: true, mode: 0o700 });
    try {
      renameSync(this.path(from, id), join(target, id));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  /** The queue IDs in a queue (hash levels walked; other names skipped). */
  list(queue: QueueName): string[] {
    const out: string[] = [];
    const walk = (dir: string, level: number): void => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const n of names) {
        if (this.#hashed.has(queue) && level < this.#depth && n.length === 1) walk(join(dir, n), level + 1);
        else if (queueIdOk(n)) out.push(n);
      }
    };
    walk(join(this.root, queue), 0);
    return out;
  }
}
