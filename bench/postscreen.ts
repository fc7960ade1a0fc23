/*
 * postscreen - idle bot connections held by postscreen, and a good client served meanwhile; Postern next to Postfix
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/postscreen.js [--bots N] [--rounds N] [--budget S]
 *   (Postfix part as root)
 *
 * DESCRIPTION
 *   postscreen on a loopback port with smtpd (a pass service), cleanup and
 *   trivial-rewrite behind it. --bots connections (default 10,000; 40 per
 *   127.1.x.y address) come from hosts on postscreen's deny list with the
 *   action enforce: each gets the teaser banner, then postscreen's own SMTP
 *   engine, and stays connected and silent. A good client (127.0.0.2) has
 *   passed once before the bots come (PASS NEW after postscreen_greet_wait
 *   = 1s); with the bots held it runs --rounds (default 20) whole mail
 *   transactions, one after another, each through postscreen (PASS OLD) to
 *   smtpd. Printed: the connections held and how long opening them took,
 *   postscreen's RSS and PSS (from /proc) before and with the bots and the
 *   difference per held connection, and the transaction times (median and
 *   maximum). The same for a private Postfix instance (Debian's postfix,
 *   as root) configured alike, and the ratios.
 *
 *   Every bot needs a file descriptor in this process and in postscreen;
 *   as root the benchmark raises its open-file limit to 2 x bots + 2000 by
 *   re-running itself under "ulimit -n", and the servers inherit it.
 *   Opening stops after --budget seconds (default 180) with what is open.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, sleep } from "../src/testing/instance.js";
import { goodTransaction, holdBots, pssKiB, rssKiB } from "../src/testing/postscreen-load.js";
import { ensureFileLimit, option, startPostern, startPostfix } from "./bench-common.js";

interface Result {
  held: number;
  openS: number;
  rssBefore: number;
  rssWith: number;
  pssBefore: number;
  pssWith: number;
  times: number[];
  note: string;
}

/** The main.cf settings both systems share. */
function common(acl: string): string[] {
  return [
    "myhostname = mx.bench.example",
    "mydestination = $myhostname, example.org",
    "local_recipient_maps =",
    "smtpd_peername_lookup = no",
    "mynetworks = 192.0.2.0/24",
    "postscreen_greet_wait = 1s",
    `postscreen_access_list = permit_mynetworks, cidr:${acl}`,
    "postscreen_denylist_action = enforce",
    "postscreen_pre_queue_limit = 100000",
    "postscreen_client_connection_count_limit = 0",
    "smtpd_client_connection_count_limit = 0",
    "smtpd_client_connection_rate_limit = 0",
  ];
}

/** The pid of the master's child that runs postscreen. */
function postscreenPid(masterPid: number): number {
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const status = readFileSync(`/proc/${e}/status`, "latin1");
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== masterPid) continue;
      const argv = readFileSync(`/proc/${e}/cmdline`, "latin1");
      if (/^Name:\s+postscreen$/m.test(status) || argv.includes("postscreen.js")) return Number(e);
    } catch {
      /* gone */
    }
  }
  return 0;
}

/** The measurement itself, on a running server. */
async function measure(
  port: number,
  masterPid: number,
  bots: number,
  rounds: number,
  budgetMs: number,
): Promise<Result> {
  await goodTransaction(port, "127.0.0.2");
  await sleep(1500);
  const pid = postscreenPid(masterPid);
  const rssBefore = rssKiB(pid);
  const pssBefore = pssKiB(pid);
  const t0 = Date.now();
  const held = await holdBots(port, bots, t0 + budgetMs);
  const openS = (Date.now() - t0) / 1000;
  try {
    await sleep(2000);
    const rssWith = rssKiB(pid);
    const pssWith = pssKiB(pid);
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) times.push(await goodTransaction(port, "127.0.0.2"));
    const note = held.error !== "" ? ` (${held.error})` : "";
    return { held: held.held, openS, rssBefore, rssWith, pssBefore, pssWith, times, note };
  } finally {
    held.close();
  }
}

/** Postern: postscreen, smtpd (pass), cleanup, trivial-rewrite. */
async function postern(acl: string, bots: number, rounds: number, budgetMs: number): Promise<Result> {
  const port = await freePort();
  const pn = await startPostern(
    [...common(acl), "postern_postscreen_client_limit = 100000"],
    [`${port} inet n - n - 1 postscreen`, "smtpd pass - - n - - smtpd"],
  );
  try {
    return await measure(port, pn.masterPid, bots, rounds, budgetMs);
  } finally {
    await pn.stop();
  }
}

/** Postfix: the same services in a private instance. */
async function postfix(
  dir: string,
  acl: string,
  bots: number,
  rounds: number,
  budgetMs: number,
): Promise<Result> {
  const port = await freePort();
  const pf = await startPostfix(dir, common(acl), [
    `127.0.0.1:${port} inet n - n - 1 postscreen`,
    "smtpd pass - - n - - smtpd",
    "dnsblog unix - - n - 0 dnsblog",
    "tlsproxy unix - - n - 0 tlsproxy",
  ]);
  try {
    return await measure(port, pf.masterPid, bots, rounds, budgetMs);
  } finally {
    pf.stop();
  }
}

/** A result as table rows. */
function rows(name: string, r: Result, bots: number): Array<[string, string]> {
  const sorted = [...r.times].sort((a, b) => a - b);
  const med = sorted[Math.floor(sorted.length / 2)] ?? 0;
  const max = sorted[sorted.length - 1] ?? 0;
  const per = (a: number, b: number): string => (r.held > 0 ? (((b - a) * 1024) / r.held).toFixed(0) : "n/a");
  return [
    [`${name}: bot connections held`, `${r.held} of ${bots}, opened in ${r.openS.toFixed(1)} s${r.note}`],
    [
      `${name}: postscreen memory`,
      `RSS ${(r.rssBefore / 1024).toFixed(0)} -> ${(r.rssWith / 1024).toFixed(0)} MiB (${per(r.rssBefore, r.rssWith)} bytes/connection), ` +
        `PSS ${(r.pssBefore / 1024).toFixed(0)} -> ${(r.pssWith / 1024).toFixed(0)} MiB (${per(r.pssBefore, r.pssWith)} bytes/connection)`,
    ],
    [
      `${name}: good client transaction under load`,
      `median ${med.toFixed(1)} ms, max ${max.toFixed(1)} ms (${r.times.length} runs)`,
    ],
  ];
}

/** Runs the benchmark and prints the table. */
async function main(): Promise<void> {
  const bots = option("bots", 10_000);
  const rounds = option("rounds", 20);
  const budgetMs = option("budget", 180) * 1000;
  ensureFileLimit(2 * bots + 2000);
  const dir = mkdtempSync(join(tmpdir(), "postern-bench-postscreen-"));
  chmodSync(dir, 0o755);
  const acl = join(dir, "postscreen_access.cidr");
  writeFileSync(acl, "127.1.0.0/16 reject\n");
  chmodSync(acl, 0o644);
  const show = (k: string, v: string): void => console.log(k.padEnd(48) + v);
  try {
    console.log("measure".padEnd(48) + "result");
    const p = await postern(acl, bots, rounds, budgetMs);
    for (const [k, v] of rows("Postern", p, bots)) show(k, v);
    if (process.getuid?.() !== 0) return show("Postfix", "needs root (run as root to compare)");
    const f = await postfix(dir, acl, bots, rounds, budgetMs).catch((e: Error) => e);
    if (f instanceof Error) return show("Postfix", `failed: ${f.message}`);
    for (const [k, v] of rows("Postfix", f, bots)) show(k, v);
    const perConn = (r: Result): number => (r.held > 0 ? (r.rssWith - r.rssBefore) / r.held : 0);
    const median = (r: Result): number =>
      [...r.times].sort((a, b) => a - b)[Math.floor(r.times.length / 2)] ?? 0;
    show(
      "ratio Postern / Postfix (bytes/connection)",
      perConn(f) > 0 ? (perConn(p) / perConn(f)).toFixed(2) : "n/a",
    );
    show(
      "ratio Postern / Postfix (median transaction)",
      median(f) > 0 ? (median(p) / median(f)).toFixed(2) : "n/a",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
