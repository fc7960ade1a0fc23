/*
 * local - Maildir deliveries per second: Postern's local agent next to Postfix's
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/local.js [--messages N] [--concurrency C]   (as root)
 *
 * DESCRIPTION
 *   Both systems deliver the same N messages (default 1000, 2 KB each) to
 *   one user made for the run with useradd(8), with home_mailbox =
 *   Maildir/ and local_destination_concurrency_limit = C (default 2, the
 *   Postfix default). To time only the queue manager and the local agent,
 *   the messages are first held at submission (header_checks HOLD), then
 *   released with "postsuper -H ALL" and a flush; the clock runs from the
 *   release to the N-th file in Maildir/new/. Postern gets its messages
 *   through its cleanup service, Postfix through its smtpd (submission is
 *   not timed). The CPU time of every process under each master (for
 *   Postern the delivery helpers too; not the postsuper and flush
 *   commands) over the timed part, from /proc, is printed per delivery.
 *
 *   BENCH_NODE_OPTIONS is passed to Postern's daemons as NODE_OPTIONS, as
 *   in bench/qmgr.ts (e.g. --import=$PWD/dist/bench/cpu-prof.js).
 *
 *   Postfix is Debian's /usr/sbin/postfix, run as a second instance with
 *   its own configuration, queue and log under a temporary directory (the
 *   system's Postfix, if any, is not touched). Without it, or without
 *   root (needed for useradd and for delivery as the user), only what can
 *   run is measured and the rest is explained. Everything is removed at
 *   the end.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { CLEANUP_FLAG } from "../src/global/cleanup-proto.js";
import { freePort, makeInstance } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { readMasterPid } from "../src/global/master-pid.js";
import {
  countFiles,
  cpuDelta,
  cpuSnapshot,
  option,
  smtpSend,
  startPostfix,
  waitFor,
} from "./bench-common.js";

const POSTFIX = "/usr/sbin/postfix";
const HOST = "bench.example.test";

/** The message of number i (about 2 KB). */
function message(i: number): string {
  const body = Array.from({ length: 25 }, (_, j) => `line ${j} of message ${i} ${"-".repeat(60)}`).join("\n");
  return `From: bench@example.org\nTo: user@${HOST}\nSubject: bench ${i}\n\n${body}\n`;
}

/** The main.cf line that passes BENCH_NODE_OPTIONS to the daemons as NODE_OPTIONS (see bench/qmgr.ts), if set. */
function profiling(): string[] {
  const opts = process.env["BENCH_NODE_OPTIONS"];
  return opts !== undefined ? [`import_environment = MAIL_CONFIG TZ NODE_OPTIONS=${opts}`] : [];
}

interface User {
  name: string;
  home: string;
}

/** The time of a run, and the CPU time (ms) of the processes under master, by program. */
interface Run {
  seconds: number;
  cpu: Map<string, number>;
}

/** Times Postern: held messages released, until all are in Maildir/new. */
async function postern(dir: string, user: User, n: number, conc: number): Promise<Run> {
  const checks = join(dir, "postern-header-checks");
  writeFileSync(checks, "/^Subject: bench/ HOLD\n");
  const inst = makeInstance({
    main: [
      `myhostname = ${HOST}`,
      "mydestination = $myhostname",
      "home_mailbox = Maildir/",
      "alias_maps =",
      `header_checks = regexp:${checks}`,
      `local_destination_concurrency_limit = ${conc}`,
      ...profiling(),
    ].join("\n"),
    master: [
      "cleanup unix - - n - 0 cleanup",
      "qmgr unix n - n 300 1 qmgr",
      "rewrite unix - - n - - trivial-rewrite",
      "local unix - n n - - local",
      "",
    ].join("\n"),
  });
  try {
    const r = await inst.start();
    if (r.code !== 0) throw new Error(`postern start: ${r.stderr}`);
    for (let i = 0; i < n; i++) {
      const c = await CleanupClient.open(inst.spool);
      if (!c.ok) throw new Error(c.reason);
      await c.client.flags(CLEANUP_FLAG.FILTER | CLEANUP_FLAG.MAP);
      await c.client.sender("bench@example.org");
      await c.client.rcpt({ address: `${user.name}@${HOST}` });
      await c.client.data(Buffer.from(message(i)));
      const e = await c.client.end();
      if (e.status !== "ok") throw new Error(`cleanup: ${JSON.stringify(e)}`);
    }
    await waitFor("held messages", () => countFiles(join(inst.spool, "hold")) >= n, 60_000);
    const md = join(user.home, "Maildir", "new");
    const before = countFiles(md);
    const masterPid = readMasterPid(inst.lib) ?? 0;
    const cpu0 = cpuSnapshot(masterPid);
    const t0 = process.hrtime.bigint();
    await runCli("postsuper", ["-c", inst.etc, "-H", "ALL"]);
    await inst.postern("flush");
    await waitFor("Postern deliveries", () => countFiles(md) - before >= n, 600_000);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { seconds, cpu: cpuDelta(cpu0, cpuSnapshot(masterPid)) };
  } finally {
    // A profiled run stops gracefully: a daemon writes its profile when it exits.
    await inst.postern(process.env["BENCH_NODE_OPTIONS"] !== undefined ? "stop" : "abort");
    if (process.env["BENCH_KEEP"] !== undefined) console.log(`kept ${inst.dir}`);
    else inst.cleanup();
  }
}

/** Times Postfix the same way, as a private instance under dir. */
async function postfix(dir: string, user: User, n: number, conc: number): Promise<Run> {
  const port = await freePort();
  const checks = join(dir, "postfix-header-checks");
  writeFileSync(checks, "/^Subject: bench/ HOLD\n");
  const pf = await startPostfix(
    dir,
    [
      `myhostname = ${HOST}`,
      "mydestination = $myhostname",
      "home_mailbox = Maildir/",
      "biff = no",
      `header_checks = regexp:${checks}`,
      `local_destination_concurrency_limit = ${conc}`,
    ],
    [
      `127.0.0.1:${port} inet n - n - - smtpd`,
      "qmgr unix n - n 300 1 qmgr",
      "local unix - n n - - local",
      "pickup unix n - n 60 1 pickup",
    ],
  );
  try {
    await smtpSend(port, n, (i) => ({ rcpt: `${user.name}@${HOST}`, content: message(i) }));
    await waitFor("held messages", () => countFiles(join(pf.spool, "hold")) >= n, 60_000);
    const md = join(user.home, "Maildir", "new");
    const before = countFiles(md);
    const cpu0 = cpuSnapshot(pf.masterPid);
    const t0 = process.hrtime.bigint();
    execFileSync("/usr/sbin/postsuper", ["-c", pf.etc, "-H", "ALL"], { stdio: "pipe" });
    pf.postfix("flush");
    await waitFor("Postfix deliveries", () => countFiles(md) - before >= n, 600_000);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { seconds, cpu: cpuDelta(cpu0, cpuSnapshot(pf.masterPid)) };
  } finally {
    pf.stop();
  }
}

/** Formats one system's rows: time and rate, CPU per delivery by program. */
function runRows(who: string, n: number, r: Run): Array<[string, string]> {
  const per = (ms: number): string => `${((ms / n) * 1000).toFixed(0)} us`;
  const total = [...r.cpu.values()].reduce((a, b) => a + b, 0);
  const parts = [...r.cpu]
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${per(v)}`)
    .join(", ");
  return [
    [`${who} local, ${n} Maildir deliveries`, `${r.seconds.toFixed(2)} s, ${(n / r.seconds).toFixed(0)} /s`],
    [`${who}: CPU per delivery`, `${per(total)} (${parts})`],
  ];
}

/** Runs the benchmark and prints the table. */
async function main(): Promise<void> {
  const n = option("messages", 1000);
  const conc = option("concurrency", 2);
  if (process.getuid?.() !== 0) {
    console.log("bench/local needs root: it makes a user with useradd and delivers as that user.");
    console.log("Run it as root (sudo node dist/bench/local.js); nothing was measured.");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "postern-bench-local-"));
  execFileSync("chmod", ["755", dir]);
  const name = `pbench${process.pid % 100000}`;
  const user = { name, home: join(dir, "home", name) };
  mkdirSync(join(dir, "home"));
  execFileSync("useradd", ["-m", "-d", user.home, "-s", "/bin/sh", "-U", name], { stdio: "pipe" });
  const rows: Array<[string, string]> = [];
  try {
    const tp = await postern(dir, user, n, conc);
    rows.push(...runRows("Postern", n, tp));
    if (existsSync(POSTFIX)) {
      const tf = await postfix(dir, user, n, conc);
      rows.push(...runRows("Postfix", n, tf));
      rows.push(["ratio Postern / Postfix (deliveries/s)", (tf.seconds / tp.seconds).toFixed(2)]);
    } else rows.push(["Postfix", `not installed (${POSTFIX}); apt-get install postfix to compare`]);
  } finally {
    spawnSync("userdel", [name], { stdio: "pipe" });
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`local_destination_concurrency_limit = ${conc}, one recipient, messages held then released`);
  console.log("measure".padEnd(42) + "result");
  for (const [k, v] of rows) console.log(k.padEnd(42) + v);
}

await main();
