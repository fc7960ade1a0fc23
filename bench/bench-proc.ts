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
import { kib, processTree, readStat, treeStats } from "../src/testing/proc-tree.js";

/** Clock ticks per second (the unit of /proc/PID/stat times). */
export const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** CPU ticks used so far by a process tree: live processes plus what the root reaped. */
export function cpuTicks(root: number): number {
  const tree = treeStats(root);
  return tree.reduce((a, s) => a + s.own, 0) + (tree[0]?.reaped ?? 0);
}

/** CPU ticks this process has collected from its own children that exited (clients such as sendmail). */
export function reapedChildTicks(): number {
  return readStat(process.pid)?.reaped ?? 0;
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
