/*
 * proc-tree - a process and its descendants, read from /proc (Linux)
 *
 * SYNOPSIS
 *   processTree(masterPid)                 // master and every process below it
 *   treeRssKiB(masterPid)                  // their summed VmRSS
 *   daemonPids(masterPid, "qmgr")          // the live processes running one daemon
 *
 * DESCRIPTION
 *   Used by the fault tests (which daemon to kill, how much memory an
 *   instance holds) and by the benchmarks (CPU time and memory of a whole
 *   mail system). A process that vanishes while it is read is skipped.
 */
import { readFileSync, readdirSync } from "node:fs";

export interface Stat {
  pid: number;
  ppid: number;
  /** utime + stime */
  own: number;
  /** cutime + cstime */
  reaped: number;
}

/** Parses /proc/PID/stat (the command name may hold spaces and parentheses). */
export function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null;
  }
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Fields after the name, counted from 0: state, ppid(1), ..., utime(11), stime(12), cutime(13), cstime(14).
  const n = (i: number): number => Number(f[i] ?? 0);
  return { pid, ppid: n(1), own: n(11) + n(12), reaped: n(13) + n(14) };
}

/** Every process's stat line. */
function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const s = readStat(Number(e));
    if (s !== null) out.push(s);
  }
  return out;
}

/** The stats of a process and all its descendants. */
export function treeStats(root: number): Stat[] {
  const all = allStats();
  const kids = new Map<number, Stat[]>();
  for (const s of all) kids.set(s.ppid, [...(kids.get(s.ppid) ?? []), s]);
  const rootStat = all.find((s) => s.pid === root);
  if (rootStat === undefined) return [];
  const out = [rootStat];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]?.pid ?? -1) ?? []));
  return out;
}

/** The pids of a process and all its descendants. */
export function processTree(root: number): number[] {
  return treeStats(root).map((s) => s.pid);
}

/** A field in KiB from a /proc file ("VmRSS", "Pss"), 0 when absent. */
export function kib(path: string, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(readFileSync(path, "latin1"));
    return Number(m?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The summed VmRSS (KiB) of a process tree. */
export function treeRssKiB(root: number): number {
  return processTree(root).reduce((a, p) => a + kib(`/proc/${p}/status`, "VmRSS"), 0);
}

/** A process's command line (NULs as spaces), or "" when it is gone. */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

/** The live processes below root that run a Postern daemon (its src/<name>/<name>.js). */
export function daemonPids(root: number, name: string): number[] {
  return processTree(root)
    .slice(1)
    .filter((p) => cmdline(p).includes(`/${name}/${name}.js`));
}
