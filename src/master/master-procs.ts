/*
 * master-procs - facts about service processes, from the kernel
 *
 * DESCRIPTION
 *   A jailed daemon runs as the child of its bwrap process, which is the
 *   process master started. onlyChild() finds the daemon's own pid (from
 *   /proc, never from the daemon's word), and signalName() turns bwrap's
 *   "exit status 128 + N" back into the signal that killed the daemon.
 */
import { readdirSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";

/** The name of a signal number (SIGKILL for 9), or null. */
export function signalName(n: number): string | null {
  for (const [name, num] of Object.entries(osConstants.signals)) if (num === n) return name;
  return null;
}

/** The one child of a process (from /proc, or a scan of /proc where the kernel has no children file); null otherwise. */
export function onlyChild(parent: number): number | null {
  let kids: number[];
  try {
    kids = readFileSync(`/proc/${parent}/task/${parent}/children`, "latin1").trim().split(/\s+/).map(Number);
  } catch {
    kids = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "latin1");
        if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent) kids.push(Number(name));
      } catch {
        /* gone */
      }
    }
  }
  const pid = kids[0];
  return kids.length === 1 && pid !== undefined && Number.isInteger(pid) && pid > 0 ? pid : null;
}
