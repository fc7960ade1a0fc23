/*
 * qmgr - queue manager throughput: a full queue handed to a sink, Postern next to Postfix
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/qmgr.js [--messages N] [--budget S] [--postern-only]
 *   (Postfix part as root)
 *
 * DESCRIPTION
 *   Fills the queue with N single-recipient messages (default 100,000)
 *   while no queue manager runs, then adds qmgr to master.cf, reloads, and
 *   times until every message has been delivered to the discard transport
 *   and removed. Postern's queue is filled with queue files written
 *   directly (global/queue-file.ts, durable like cleanup's), Postfix's
 *   through its smtpd (filling is not timed).
 *
 *   CPU time is read from /proc for each process of the instance (master's
 *   own plus its reaped children, and each live daemon) over the timed
 *   part; qmgr's CPU time divided by N is the scheduling overhead per
 *   recipient (reading the file, moving it, resolving, scheduling, the
 *   delivery request and its answer, removing the file), and all processes
 *   together give the CPU time per delivery.
 *
 *   Postfix is Debian's /usr/sbin/postfix, run as a private instance with
 *   its own configuration and queue under a temporary directory (see
 *   bench/local.ts); it needs root and is skipped otherwise. Each part
 *   stops after --budget seconds (default 900) with what it has.
 *
 *   For profiling: BENCH_NODE_OPTIONS is passed to Postern's daemons as
 *   NODE_OPTIONS (through import_environment; e.g. "--import=/path/prof.mjs"
 *   that starts node:inspector's profiler: bench/cpu-prof.ts), and BENCH_KEEP=1 stops Postern
 *   gracefully and keeps its directory (log and queue) for a look.
 */
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Config } from "../src/global/config.js";
import { readMasterPid } from "../src/global/master-pid.js";
import { QueueFileWriter } from "../src/global/queue-file.js";
import { QueuePaths } from "../src/global/queue-path.js";
import { freePort, makeInstance } from "../src/testing/instance.js";
import { cpuDelta, cpuSnapshot, option, queued, smtpSend, startPostfix, waitUntil } from "./bench-common.js";

const POSTFIX = "/usr/sbin/postfix";
const FILL_PARALLEL = 16;
const BODY = Array.from({ length: 8 }, (_, j) => `line ${j} ${"-".repeat(60)}`);

interface Figures {
  n: number;
  seconds: number;
  cpu: Map<string, number>;
  note: string;
}

/** Writes n single-recipient queue files into incoming/, FILL_PARALLEL at a time. */
async function fillPostern(etc: string, n: number): Promise<void> {
  const paths = new QueuePaths(Config.load(etc));
  const owner = statSync(join(paths.root, "incoming"));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const w = await QueueFileWriter.create(paths, false);
      w.sender("bench@example.org");
      w.attr("log_ident", w.id);
      w.rcpt({ address: `user${i}@sink.example`, original: `user${i}@sink.example` });
      w.beginContent();
      await w.line(Buffer.from(`Subject: bench ${i}`));
      await w.line(Buffer.alloc(0));
      for (const l of BODY) await w.line(Buffer.from(l));
      await w.commit();
      chownSync(paths.path("incoming", w.id), owner.uid, owner.gid);
    }
  };
  await Promise.all(Array.from({ length: FILL_PARALLEL }, worker));
}

/** Times Postern: fill with qmgr stopped, add qmgr, reload, wait for an empty queue. */
async function postern(n: number, budgetMs: number): Promise<Figures> {
  const services = [
    "cleanup unix - - n - 0 cleanup",
    "rewrite unix - - n - - trivial-rewrite",
    "discard unix - - n - - discard",
  ];
  const opts = process.env["BENCH_NODE_OPTIONS"];
  const profiling = opts !== undefined ? `import_environment = MAIL_CONFIG TZ NODE_OPTIONS=${opts}\n` : "";
  const inst = makeInstance({
    main: `default_transport = discard\nmydestination =\nrelay_domains =\n${profiling}`,
    master: services.join("\n") + "\n",
  });
  try {
    const r = await inst.start();
    if (r.code !== 0) throw new Error(`postern start: ${r.stderr}`);
    await fillPostern(inst.etc, n);
    const masterPid = readMasterPid(inst.lib) ?? 0;
    const before = cpuSnapshot(masterPid);
    const t0 = Date.now();
    inst.writeMaster([...services, "qmgr unix n - n 300 1 qmgr", ""].join("\n"));
    const rl = await inst.postern("reload");
    if (rl.code !== 0) throw new Error(`postern reload: ${rl.stderr}`);
    const queues = ["incoming", "active", "deferred"];
    const ok = await waitUntil(() => queued(inst.spool, queues) === 0, t0 + budgetMs, 200);
    const seconds = (Date.now() - t0) / 1000;
    const cpu = cpuDelta(before, cpuSnapshot(masterPid));
    const left = ok ? 0 : queued(inst.spool, queues);
    const sent = (inst.log().match(/ status=sent /g) ?? []).length;
    if (sent !== n - left) throw new Error(`${sent} deliveries logged for ${n - left} messages gone`);
    return { n: n - left, seconds, cpu, note: ok ? "" : `budget reached with ${left} left` };
  } finally {
    await inst.postern(process.env["BENCH_KEEP"] !== undefined ? "stop" : "abort");
    if (process.env["BENCH_KEEP"] !== undefined) console.log(`kept ${inst.dir}`);
    else inst.cleanup();
  }
}

/** Times Postfix the same way, as a private instance under dir. */
async function postfix(dir: string, n: number, budgetMs: number): Promise<Figures> {
  const port = await freePort();
  const services = [`127.0.0.1:${port} inet n - n - - smtpd`, "discard unix - - n - - discard"];
  const pf = await startPostfix(
    dir,
    ["myhostname = bench.example.test", "mydestination =", "relay_domains =", "default_transport = discard"],
    services,
  );
  try {
    const per = Math.ceil(n / FILL_PARALLEL);
    await Promise.all(
      Array.from({ length: FILL_PARALLEL }, (_, k) =>
        smtpSend(port, Math.max(0, Math.min(per, n - k * per)), (i) => ({
          rcpt: `user${k * per + i}@sink.example`,
          content: [`Subject: bench ${k * per + i}`, "", ...BODY, ""].join("\n"),
        })),
      ),
    );
    const spool = pf.spool;
    await waitUntil(() => queued(spool, ["incoming"]) >= n, Date.now() + 60_000, 200);
    const before = cpuSnapshot(pf.masterPid);
    const t0 = Date.now();
    pf.reload([...services, "qmgr unix n - n 300 1 qmgr"]);
    const queues = ["incoming", "active", "deferred"];
    const ok = await waitUntil(() => queued(spool, queues) === 0, t0 + budgetMs, 200);
    const seconds = (Date.now() - t0) / 1000;
    const cpu = cpuDelta(before, cpuSnapshot(pf.masterPid));
    const left = ok ? 0 : queued(spool, queues);
    return { n: n - left, seconds, cpu, note: ok ? "" : `budget reached with ${left} left` };
  } finally {
    pf.stop();
  }
}

/** Formats one system's rows. */
function rows(who: string, f: Figures): Array<[string, string]> {
  const total = [...f.cpu.values()].reduce((a, b) => a + b, 0);
  const qmgr = f.cpu.get("qmgr") ?? 0;
  const per = (ms: number): string => `${((ms / Math.max(1, f.n)) * 1000).toFixed(0)} us`;
  const parts = [...f.cpu]
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${per(v)}`)
    .join(", ");
  return [
    [
      `${who}: ${f.n} messages to discard`,
      `${f.seconds.toFixed(2)} s, ${(f.n / f.seconds).toFixed(0)} msg/s ${f.note}`,
    ],
    [`${who}: qmgr CPU per recipient`, per(qmgr)],
    [`${who}: CPU per delivery, all processes`, `${per(total)} (${parts})`],
  ];
}

/** Runs the benchmark and prints the table. */
async function main(): Promise<void> {
  const n = option("messages", 100_000);
  const budgetMs = option("budget", 900) * 1000;
  const out: Array<[string, string]> = [];
  console.log("measure".padEnd(44) + "result");
  const p = await postern(n, budgetMs);
  out.push(...rows("Postern", p));
  for (const [k, v] of out) console.log(k.padEnd(44) + v);
  if (process.argv.includes("--postern-only")) out.push(["Postfix", "not run (--postern-only)"]);
  else if (!existsSync(POSTFIX)) out.push(["Postfix", `not installed (${POSTFIX})`]);
  else if (process.getuid?.() !== 0) out.push(["Postfix", "needs root (run as root to compare)"]);
  else {
    const dir = mkdtempSync(join(tmpdir(), "postern-bench-qmgr-"));
    chmodSync(dir, 0o755);
    try {
      const f = await postfix(dir, n, budgetMs);
      out.push(...rows("Postfix", f));
      out.push(["ratio Postern / Postfix (msg/s)", (p.n / p.seconds / (f.n / f.seconds)).toFixed(2)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const [k, v] of out.slice(3)) console.log(k.padEnd(44) + v);
}

await main();
