/*
 * run - "npm run bench": every workload against Postern and Postfix, side by side
 *
 * SYNOPSIS
 *   npm run bench [-- [workload ...] [--repeat N] [--messages N] [--idle N] [--budget S] [--out DIR]]
 *   (as root; e.g. npm run bench -- smtp-accept local)
 *
 * DESCRIPTION
 *   Installs Debian's postfix package when smtp-source or postfix is
 *   missing (as root, with apt-get; no service is started by it), then
 *   runs each chosen workload (bench-workloads.ts; a name picks every
 *   workload that starts with it: "smtp-accept" is smtp-accept-1, -20 and
 *   -100) --repeat times (default 3) on a fresh Postern instance and a
 *   fresh private Postfix instance, alternating which goes first. In the
 *   same run it measures the disk's durable-write rate (bench-common.ts
 *   diskLoop) in the directory that holds both queues, before and after.
 *   A workload that fails on one system (a missing daemon, a timeout) is a
 *   row that says why; the other rows still run.
 *
 *   Prints the table (medians with min-max over the runs, ratio Postern /
 *   Postfix, the fsync limit where it applies; then CPU seconds per 1,000
 *   messages over all processes of the instance, peak RSS of all its
 *   processes, latency percentiles) and writes it to DIR/bench.json and
 *   DIR/bench.svg (default bench/results). --messages (default 2000) is
 *   the message count of the SMTP workloads, --idle (default 10,000) the
 *   idle sessions, --budget (default 90) the seconds any one step of a run
 *   may take. Without root only Postern runs (and no Maildir user).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { installRoot } from "../src/global/install-paths.js";
import { SMTP_SINK, SMTP_SOURCE, diskLoop, ensureFileLimit, median, option } from "./bench-common.js";
import { makeRow, summarize, svg, table, type Row } from "./bench-report.js";
import { POSTFIX, postfixMissing, type SystemName } from "./bench-sut.js";
import { WORKLOADS, scratchDir, type Options, type RunResult, type Workload } from "./bench-workloads.js";

/** A string option "--name VALUE", or the default. */
function stringOption(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

/** The workloads named on the command line (all when none). */
function chosen(): Workload[] {
  const args = process.argv.slice(2);
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if (a.startsWith("--")) i++;
    else names.push(a);
  }
  if (names.length === 0) return WORKLOADS;
  const out: Workload[] = [];
  for (const n of names) {
    const hit = WORKLOADS.filter((w) => w.name === n || w.name.startsWith(`${n}-`));
    if (hit.length === 0)
      throw new Error(`unknown workload "${n}"; known: ${WORKLOADS.map((w) => w.name).join(", ")}`);
    for (const w of hit) if (!out.includes(w)) out.push(w);
  }
  return out;
}

/** Installs Debian's postfix package (smtp-source, smtp-sink, postfix) when it is missing. */
function installTools(): void {
  if (existsSync(SMTP_SOURCE) && existsSync(SMTP_SINK) && existsSync(POSTFIX)) return;
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get")) {
    console.log(
      "smtp-source/postfix missing and cannot install (needs root and apt-get): apt-get install postfix",
    );
    return;
  }
  console.log("installing Debian's postfix package (smtp-source, smtp-sink and Postfix for the comparison)");
  const guard = !existsSync("/usr/sbin/policy-rc.d");
  if (guard) writeFileSync("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    spawnSync(
      "sh",
      ["-c", "echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections"],
      { stdio: "inherit", env },
    );
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    const r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "postfix"], {
      stdio: "inherit",
      env,
    });
    if (r.status !== 0) console.log(`apt-get install postfix failed (exit ${r.status})`);
  } finally {
    if (guard) rmSync("/usr/sbin/policy-rc.d", { force: true });
  }
}

/** Makes a user with a home under dir for Maildir delivery (root only); null otherwise. */
function makeUser(dir: string): { name: string; home: string } | null {
  if (process.getuid?.() !== 0) return null;
  const name = `pbench${process.pid % 100000}`;
  const home = join(dir, "home", name);
  mkdirSync(join(dir, "home"));
  execFileSync("useradd", ["-m", "-d", home, "-s", "/bin/sh", "-U", name], { stdio: "pipe" });
  return { name, home };
}

/** The disk's rate of durable 2 KB writes in dir (ops/s). */
function fsyncRate(dir: string): number {
  const r = diskLoop(dir, 3000, 5000);
  return (r.ops * 1000) / r.ms;
}

/** Runs the benchmark. */
async function main(): Promise<void> {
  const workloads = chosen();
  const repeat = option("repeat", 3);
  const messages = option("messages", 2000);
  const idleN = option("idle", 10_000);
  const budgetMs = option("budget", 90) * 1000;
  const out = stringOption("out", join(installRoot(), "bench", "results"));
  if (workloads.some((w) => w.name === "idle")) ensureFileLimit(2 * idleN + 2000);
  installTools();
  const noPostfix = postfixMissing();
  if (noPostfix !== null) console.log(`Postfix will not run: ${noPostfix}`);
  const dir = scratchDir(mkdtempSync(join(tmpdir(), "postern-bench-")));
  const user = makeUser(dir);
  const rates: number[] = [];
  const rows: Row[] = [];
  const started = new Date();
  const load0 = loadavg()[0] ?? 0;
  try {
    rates.push(fsyncRate(dir));
    for (const w of workloads) {
      const runs: Record<SystemName, RunResult[]> = { Postern: [], Postfix: [] };
      const errors: Record<SystemName, string[]> = { Postern: [], Postfix: [] };
      for (let i = 0; i < repeat; i++) {
        const order: SystemName[] = i % 2 === 0 ? ["Postern", "Postfix"] : ["Postfix", "Postern"];
        for (const sys of order) {
          if (sys === "Postfix" && noPostfix !== null) continue;
          const o: Options = { messages, idle: idleN, budgetMs, user, dir };
          try {
            const r = await w.run(sys, o);
            runs[sys].push(r);
            console.log(
              `${w.name} ${sys} run ${i + 1}: ${r.value.toFixed(1)} ${w.unit}${r.note ? ` (${r.note})` : ""}`,
            );
          } catch (e) {
            const msg = (e as Error).message.replace(/\s+/g, " ").slice(0, 300);
            errors[sys].push(msg);
            console.log(`${w.name} ${sys} run ${i + 1}: FAILED: ${msg}`);
          }
        }
      }
      rows.push(
        makeRow(
          w,
          summarize(runs.Postern, errors.Postern),
          noPostfix !== null ? { error: noPostfix } : summarize(runs.Postfix, errors.Postfix),
          median(rates),
        ),
      );
    }
    rates.push(fsyncRate(dir));
  } finally {
    if (user !== null) spawnSync("userdel", [user.name], { stdio: "pipe" });
    rmSync(dir, { recursive: true, force: true });
  }
  const fsync = median(rates);
  for (const r of rows) if (r.limit !== null) r.limit = fsync;
  const machine = `${cpus().length} CPUs, load average ${load0.toFixed(1)} at start, ${(loadavg()[0] ?? 0).toFixed(1)} at end, Node ${process.version}`;
  const caption = `${started.toISOString().slice(0, 16)}Z, ${repeat} run(s) each, ${machine}`;
  console.log(
    `\n${caption}; disk: ${rates.map((r) => r.toFixed(0)).join(", ")} durable 2 KB writes/s (1 writer)\n`,
  );
  console.log(table(rows));
  mkdirSync(out, { recursive: true });
  const json = {
    date: started.toISOString(),
    repeat,
    messages,
    idle: idleN,
    machine,
    fsyncPerSecond: rates,
    rows,
  };
  writeFileSync(join(out, "bench.json"), JSON.stringify(json, null, 2) + "\n");
  writeFileSync(join(out, "bench.svg"), svg(rows, caption));
  console.log(`\nwrote ${join(out, "bench.json")} and ${join(out, "bench.svg")}`);
}

await main();
