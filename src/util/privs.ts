/*
 * privs - give up root for good, and close the jail's program directory
 *
 * SYNOPSIS
 *   import { dropPrivileges, closeDirectory, parseIds } from "../util/privs.js";
 *   closeDirectory("/postern-exec");
 *   dropPrivileges({ uid: 105, gid: 110 });
 *
 * DESCRIPTION
 *   dropPrivileges() sets the supplementary groups to the one group, then
 *   the real, effective and saved group and user IDs (in that order: a
 *   process that gave up its uid could no longer change its groups), and
 *   then checks that root cannot be had back. Any failure is thrown: a
 *   daemon that was told to drop its privileges must not run with them.
 *
 *   closeDirectory() sets a directory's mode to 0: a process without
 *   root's override can no longer look into it. The jail keeps the Node
 *   binary alone in such a directory (global/jail.ts).
 */
import { chmodSync } from "node:fs";

export interface Ids {
  uid: number;
  gid: number;
}

/** Parses "uid:gid" (as master passes it); null when malformed. */
export function parseIds(text: string): Ids | null {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(text);
  if (m === null) return null;
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** Becomes uid:gid for good; throws when that fails or root can be had back. */
export function dropPrivileges(ids: Ids): void {
  if (ids.uid === 0) throw new Error("refusing to drop privileges to uid 0");
  if (process.setgroups === undefined || process.setgid === undefined || process.setuid === undefined)
    throw new Error("this platform cannot change user IDs");
  process.setgroups([ids.gid]);
  process.setgid(ids.gid);
  process.setuid(ids.uid);
  if (process.getuid?.() !== ids.uid || process.geteuid?.() !== ids.uid || process.getegid?.() !== ids.gid)
    throw new Error(`user IDs did not change to ${ids.uid}:${ids.gid}`);
  let regained = false;
  try {
    process.setuid(0);
    regained = true;
  } catch {
    /* as it should be */
  }
  if (regained) throw new Error("root privileges could be regained after the drop");
}

/** Sets a directory's mode to 0 (an unprivileged process can no longer use it). */
export function closeDirectory(dir: string): void {
  chmodSync(dir, 0);
}
