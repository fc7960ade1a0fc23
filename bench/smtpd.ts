/*
 * smtpd - SMTP server throughput and memory per idle session, Postern next to Postfix
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/smtpd.js [--messages N] [--budget S] [--idle N] [--client-limit N]
 *   (Postfix part as root)
 *
 * DESCRIPTION
 *   Throughput: Postfix's smtp-source (Debian package postfix) sends N
 *   messages (default 10,000) of 2 KB over 20 sessions to smtpd, with
 *   cleanup and trivial-rewrite behind it and no queue manager, so mail
 *   stays in incoming/ (N files; removed with the instance at the end).
 *   The figure is messages queued per second of smtp-source's run; it is
 *   killed after --budget seconds (default 120) and what was queued by then
 *   counts.
 *
 *   Memory: the benchmark opens --idle sessions (default 5,000) from Node,
 *   100 at a time, each to the greeting and an EHLO reply, holds them, and
 *   sums VmRSS from /proc/PID/status over the instance's smtpd processes.
 *   Postern's smtpd serves many clients per process
 *   (postern_process_client_limit = --client-limit, default 1000), Postfix's
 *   one per process; in both maxproc is default_process_limit = idle + 100
 *   (Postern's master counts clients against maxproc, not processes). PSS
 *   (/proc/PID/smaps_rollup) is shown too: RSS counts the pages that
 *   Postfix's processes share (the program and libraries) once per process. Connection count and rate limits are off in both. Opening
 *   stops after --budget seconds with what is open.
 *
 *   Every session needs a file descriptor in this process and in the
 *   server. Node raises its soft limit (ulimit -n) to the hard limit as it
 *   starts; when that is below twice --idle plus 1000, the benchmark, as
 *   root, runs itself again under "sh -c 'ulimit -n ...'", and otherwise
 *   says so (raise the hard limit as root before running it). Children
 *   (master, smtpd) inherit the limit.
 *
 *   Postfix is Debian's /usr/sbin/postfix run as a private instance under a
 *   temporary directory (see bench/local.ts); it needs root and is skipped
 *   otherwise, with the reason printed. All processes and directories are
 *   removed at the end.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, sleep } from "../src/testing/instance.js";
import {
  ensureFileLimit,
  openIdle,
  option,
  POSTFIX,
  SESSIONS,
  SMTP_SOURCE,
  startPostern,
  startPostfix,
  throughput,
} from "./bench-common.js";

/** The main.cf settings both systems share. */
function common(idle: number): string[] {
  return [
    "myhostname = mx.bench.example",
    "mydestination = $myhostname, example.org",
    "local_recipient_maps =",
    "smtpd_peername_lookup = no",
    "smtpd_client_connection_count_limit = 0",
    "smtpd_client_connection_rate_limit = 0",
    `default_process_limit = ${idle + 100}`,
  ];
}

/** The sum of VmRSS (KiB) and the count of a master's children that are smtpd processes. */
function smtpdRss(masterPid: number): { kib: number; pss: number; procs: number } {
  let kib = 0;
  let pss = 0;
  let procs = 0;
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const status = readFileSync(`/proc/${e}/status`, "latin1");
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== masterPid) continue;
      const argv = readFileSync(`/proc/${e}/cmdline`, "latin1").split("\0");
      const comm = /^Name:\s+(\S+)/m.exec(status)?.[1];
      const script = argv.find((a) => a.endsWith(".js"))?.replace(/^.*\//, "");
      if (comm !== "smtpd" && script !== "smtpd.js") continue;
      kib += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const rollup = readFileSync(`/proc/${e}/smaps_rollup`, "latin1");
      pss += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      procs++;
    } catch {
      /* gone */
    }
  }
  return { kib, pss, procs };
}

/** Holds idle sessions open and measures the smtpd processes' RSS. */
async function idleRss(port: number, masterPid: number, n: number, budgetMs: number): Promise<string> {
  const t0 = Date.now();
  const { socks, err } = await openIdle(port, n, t0 + budgetMs);
  try {
    const opened = (Date.now() - t0) / 1000;
    await sleep(2000);
    const live = socks.filter((s) => !s.destroyed).length;
    const r = smtpdRss(masterPid);
    const per = live > 0 ? ((r.kib / live) * 1024) / 1000 : 0;
    const why = err !== "" || live < n ? ` (only ${live} of ${n} open${err ? `: ${err}` : ""})` : "";
    const pss = live > 0 ? ((r.pss / live) * 1024) / 1000 : 0;
    return (
      `RSS ${(r.kib / 1024).toFixed(0)} MiB (${per.toFixed(1)} kB/session), PSS ${(r.pss / 1024).toFixed(0)} MiB ` +
      `(${pss.toFixed(1)} kB/session), ${r.procs} processes, ${live} sessions opened in ${opened.toFixed(1)} s${why}`
    );
  } finally {
    for (const s of socks) s.destroy();
  }
}

interface Result {
  rate: number;
  throughput: string;
  rss: string;
}

/** Postern: smtpd, cleanup and trivial-rewrite, no qmgr. */
async function postern(n: number, idle: number, clientLimit: number, budgetMs: number): Promise<Result> {
  const port = await freePort();
  const pn = await startPostern(
    [...common(idle), "mynetworks = 192.0.2.0/24", `postern_process_client_limit = ${clientLimit}`],
    [`${port} inet n - n - - smtpd`],
  );
  const { inst, masterPid } = pn;
  try {
    const t = await throughput(port, join(inst.spool, "incoming"), n, budgetMs);
    rmSync(join(inst.spool, "incoming"), { recursive: true, force: true });
    mkdirSync(join(inst.spool, "incoming"));
    await sleep(1000);
    const rss = await idleRss(port, masterPid, idle, budgetMs);
    return { rate: t.rate, throughput: t.text, rss };
  } finally {
    await pn.stop();
  }
}

/** Postfix: a private instance with smtpd, cleanup and trivial-rewrite, no qmgr. */
async function postfix(dir: string, n: number, idle: number, budgetMs: number): Promise<Result> {
  const port = await freePort();
  const pf = await startPostfix(
    dir,
    [...common(idle), "mynetworks = 192.0.2.0/24"],
    [`127.0.0.1:${port} inet n - n - - smtpd`],
  );
  try {
    const t = await throughput(port, join(pf.spool, "incoming"), n, budgetMs);
    const rss = await idleRss(port, pf.masterPid, idle, budgetMs);
    return { rate: t.rate, throughput: t.text, rss };
  } finally {
    pf.stop();
  }
}

/** Runs the benchmark and prints the table. */
async function main(): Promise<void> {
  const n = option("messages", 10_000);
  const idle = option("idle", 5000);
  const clientLimit = option("client-limit", 1000);
  const budgetMs = option("budget", 120) * 1000;
  ensureFileLimit(2 * idle + 1000);
  if (!existsSync(SMTP_SOURCE)) {
    console.log(`${SMTP_SOURCE} is not installed (Debian package postfix): nothing to measure`);
    return;
  }
  const out: Array<[string, string]> = [];
  const show = (k: string, v: string): void => {
    out.push([k, v]);
    console.log(k.padEnd(50) + v);
  };
  console.log("measure".padEnd(50) + "result");
  const p = await postern(n, idle, clientLimit, budgetMs);
  show(`Postern: smtp-source ${n} x 2 KB, ${SESSIONS} sessions`, p.throughput);
  show(`Postern: smtpd RSS, ${idle} idle sessions`, p.rss);
  if (!existsSync(POSTFIX)) show("Postfix", `not installed (${POSTFIX}, Debian package postfix)`);
  else if (process.getuid?.() !== 0) show("Postfix", "needs root (run as root to compare)");
  else {
    const dir = mkdtempSync(join(tmpdir(), "postern-bench-smtpd-"));
    chmodSync(dir, 0o755);
    try {
      const f = await postfix(dir, n, idle, budgetMs);
      show(`Postfix: smtp-source ${n} x 2 KB, ${SESSIONS} sessions`, f.throughput);
      show(`Postfix: smtpd RSS, ${idle} idle sessions`, f.rss);
      show("ratio Postern / Postfix (msg/s)", f.rate > 0 ? (p.rate / f.rate).toFixed(2) : "n/a");
    } catch (e) {
      show("Postfix", `failed: ${(e as Error).message}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

await main();
