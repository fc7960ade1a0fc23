/*
 * queue-dirs - the queue directory tree, its owners and modes
 *
 * DESCRIPTION
 *   The queue directory holds the queues (maildrop incoming active deferred
 *   hold corrupt bounce defer trace flush saved), the service sockets
 *   (private/, public/) and master's pid directory. master creates the tree
 *   at start; postern check verifies it.
 *
 *   Owners and modes follow Postfix, adapted to a system without setgid
 *   helpers (see ARCHITECTURE.md): the queue directory itself belongs to
 *   root; everything in it belongs to mail_owner; private/ is 0700; public/
 *   is 0755 so local users can reach the few public services; maildrop/ is
 *   3733 (users may drop files in, not list or take them; set-group-ID, so
 *   that a dropped file gets mail_owner's group and pickup can read it:
 *   see global/maildrop.ts).
 */
import { chmodSync, chownSync, lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";

export interface QueueDirSpec {
  name: string;
  mode: number;
  /** Owned by root rather than mail_owner (only when started as root). */
  rootOwned?: boolean;
}

export const QUEUE_NAMES = [
  "maildrop",
  "incoming",
  "active",
  "deferred",
  "hold",
  "corrupt",
  "bounce",
  "defer",
  "trace",
  "flush",
  "saved",
] as const;

export const QUEUE_TREE: readonly QueueDirSpec[] = [
  ...QUEUE_NAMES.map((name) => ({ name, mode: name === "maildrop" ? 0o3733 : 0o700 })),
  { name: "private", mode: 0o700 },
  { name: "public", mode: 0o755 },
  { name: "pid", mode: 0o755, rootOwned: true },
];

export interface Ownership {
  uid: number;
  gid: number;
}

/** Creates the queue tree (and queue_directory itself) with owners and modes; returns problems fixed or found. */
export function makeQueueTree(queueDir: string, owner: Ownership | null): void {
  mkdirSync(queueDir, { recursive: true, mode: 0o755 });
  for (const d of QUEUE_TREE) {
    const p = join(queueDir, d.name);
    mkdirSync(p, { recursive: true, mode: d.mode });
    if (owner !== null && !d.rootOwned) chownSync(p, owner.uid, owner.gid);
    chmodSync(p, d.mode);
  }
}

/** Checks owners and modes of the tree; returns one line per problem. */
export function checkQueueTree(queueDir: string, owner: Ownership | null): string[] {
  const out: string[] = [];
  for (const d of QUEUE_TREE) {
    const p = join(queueDir, d.name);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      out.push(`${p}: missing directory (master creates it at start)`);
      continue;
    }
    if (!st.isDirectory()) out.push(`${p}: not a directory`);
    else if ((st.mode & 0o7777) !== d.mode)
      out.push(`${p}: mode is ${(st.mode & 0o7777).toString(8)}, expected ${d.mode.toString(8)}`);
    if (owner !== null && !d.rootOwned && st.uid !== owner.uid)
      out.push(`${p}: owner is uid ${st.uid}, expected mail_owner (uid ${owner.uid})`);
  }
  return out;
}
