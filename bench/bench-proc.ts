/*
 * bench-proc - CPU time and memory of a whole mail system, read from /proc
 *
 * SYNOPSIS
 *   const before = cpuTicks(masterPid); ... const used = (cpuTicks(masterPid) - before) / CLK_TCK;
 *   const s = new RssSampler(masterPid); s.start(); ...; const peakKiB = s.stop();
 *
 * DESCRIPTION
 *   A mail system under test is its master process and every process below
 *   it (found through the PPid of each /proc entry). cpuTicks() sums user
 *   and system time of the live processes plus what master has collected
 *   from children that exited (cutime + cstime), so the difference between
 *   two readings is the CPU the whole system used in between, including
 *   processes that were born and died meanwhile. RssSampler adds up VmRSS
 *   over the same processes a few times per second and keeps the peak.
 *   Linux only; a process that vanishes while it is read is skipped.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

/** Clock ticks per second (the unit of /proc/PID/stat times). */
export const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

interface Stat {
  pid: number;
  ppid: number;
  /** utime + stime */
  own: number;
  /** cutime + cstime */
  reaped: number;
}

/** Parses /proc/PID/stat (the command name may hold spaces and parentheses). */
function readStat(pid: number): Stat | null {
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
function treeStats(root: number): Stat[] {
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

/** CPU ticks used so far by a process tree: live processes plus what the root reaped. */
export function cpuTicks(root: number): number {
  const tree = treeStats(root);
  return tree.reduce((a, s) => a + s.own, 0) + (tree[0]?.reaped ?? 0);
}

/** CPU ticks this process has collected from its own children that exited (clients such as sendmail). */
export function reapedChildTicks(): number {
  return readStat(process.pid)?.reaped ?? 0;
}

/** A field in KiB from a /proc file ("VmRSS", "Pss"), 0 when absent. */
function kib(path: string, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(readFileSync(path, "latin1"));
    return Number(m?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Sum of RSS and PSS (KiB) over a process tree, and its size. */
export function treeMemory(root: number): { rss: number; pss: number; procs: number } {
  const pids = processTree(root);
  let rss = 0;
  let pss = 0;
  for (const p of pids) {
    rss += kib(`/proc/${p}/status`, "VmRSS");
    pss += kib(`/proc/${p}/smaps_rollup`, "Pss");
  }
  return { rss, pss, procs: pids.length };
}

/** Samples the summed RSS of a process tree and keeps the peak. */
export class RssSampler {
  #root: number;
  #timer: NodeJS.Timeout | null = null;
  #peak = 0;

  constructor(root: number) {
    this.#root = root;
  }

  /** Takes one sample now. */
  sample(): void {
    let sum = 0;
    for (const p of processTree(this.#root)) sum += kib(`/proc/${p}/status`, "VmRSS");
    if (sum > this.#peak) this.#peak = sum;
  }

  /** Starts sampling every intervalMs. */
  start(intervalMs = 250): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Stops and returns the peak in KiB. */
  stop(): number {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.sample();
    return this.#peak;
  }
}
