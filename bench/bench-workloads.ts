/*
 * bench-workloads - the workloads of "npm run bench", each runnable against Postern and Postfix
 *
 * DESCRIPTION
 *   A workload starts a fresh instance of one system (bench-sut.ts) with
 *   the services it needs, drives it with real clients (Postfix's
 *   smtp-source, sendmail, an SMTP session from Node), and measures, over
 *   the timed part only, the CPU time of every process of the instance
 *   (bench-proc.ts: master and all its children, including those that
 *   exited) and the peak of their summed RSS. Every wait is bounded by the
 *   run's budget; a workload that cannot complete throws an Error whose
 *   message says why (the runner prints it in the table).
 *
 *   smtp-accept-N  smtp-source, 2 KB messages over N sessions into smtpd,
 *                  cleanup (fsync before 250) and trivial-rewrite; no
 *                  qmgr, so mail stays queued. messages queued per second.
 *   local          messages held at submission (header_checks HOLD), then
 *                  released (postsuper -H ALL, flush); the clock runs until
 *                  the last is in the user's Maildir/new. deliveries/s.
 *   idle           N sessions opened to EHLO and held; the summed RSS (and
 *                  PSS) of the whole instance; set-up latency per session.
 *   sendmail       sendmail processes (4 at a time) submitting 2 KB each,
 *                  until pickup has queued all; submissions/s, latency of
 *                  one sendmail call; the sendmail processes' CPU counts.
 *   relay          smtp-source into smtpd, delivered by the smtp transport
 *                  to an smtp-sink (relayhost [127.0.0.1]:port); clock until
 *                  the last "status=sent". messages/s.
 *   relay-tls      the same over STARTTLS (smtp_tls_security_level = encrypt)
 *                  to a TLS sink in this process (bench-relay-tls.ts).
 *   fanout         one message to 1,000 recipients in 100 domains
 *                  (transport_maps sends all 100 to the smtp-sink);
 *                  recipients delivered per second.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { freePort } from "../src/testing/instance.js";
import {
  SMTP_SINK,
  countFiles,
  openIdle,
  pct,
  sleep,
  smtpSend,
  smtpSource,
  waitFor,
} from "./bench-common.js";
import { CLK_TCK, RssSampler, cpuTicks, reapedChildTicks, treeMemory } from "./bench-proc.js";
import { startSut, type Service, type Sut, type SutSpec, type SystemName } from "./bench-sut.js";
import { relayTlsWorkload, type SutBody } from "./bench-relay-tls.js";

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
}

export interface RunResult {
  /** The workload's main figure, in its unit. */
  value: number;
  latency: Latency | null;
  cpuPer1000: number | null;
  peakRssKiB: number;
  note: string;
}

export interface Options {
  messages: number;
  idle: number;
  budgetMs: number;
  /** A local user for Maildir delivery (null when none could be made). */
  user: { name: string; home: string } | null;
  /** A scratch directory for this run (Postfix's instance, tables). */
  dir: string;
}

export interface Workload {
  name: string;
  title: string;
  unit: string;
  better: "higher" | "lower";
  /** The workload is bounded by the disk's fsync rate. */
  fsyncBound: boolean;
  run(system: SystemName, o: Options): Promise<RunResult>;
}

const HOST = "mx.bench.example";

/** The main.cf lines every workload shares. */
const COMMON = [
  `myhostname = ${HOST}`,
  "mydestination = $myhostname, example.org",
  "mynetworks = 127.0.0.0/8",
  "local_recipient_maps =",
  "alias_maps =",
  "smtpd_peername_lookup = no",
  "smtpd_client_connection_count_limit = 0",
  "smtpd_client_connection_rate_limit = 0",
];

/** Latency percentiles of samples in ms. */
function latency(samples: number[]): Latency | null {
  if (samples.length === 0) return null;
  const s = [...samples].sort((a, b) => a - b);
  return { p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99) };
}

/** Runs fn with an instance, measuring CPU and peak RSS over what fn times; the instance is stopped after. */
async function withSut(system: SystemName, o: Options, spec: SutSpec, fn: SutBody): Promise<RunResult> {
  const sut = await startSut(system, join(o.dir, `postfix-${Date.now()}`), spec);
  let cpu = 0;
  let peak = 0;
  try {
    const measure = async <T>(timed: () => Promise<T>): Promise<T> => {
      const sampler = new RssSampler(sut.masterPid);
      const c0 = cpuTicks(sut.masterPid) + reapedChildTicks();
      sampler.start();
      try {
        return await timed();
      } finally {
        cpu = (cpuTicks(sut.masterPid) + reapedChildTicks() - c0) / CLK_TCK;
        peak = sampler.stop();
      }
    };
    const r = await fn(sut, measure);
    return {
      value: r.value,
      latency: r.latency,
      note: r.note,
      cpuPer1000: r.count > 0 ? (cpu / r.count) * 1000 : null,
      peakRssKiB: peak,
    };
  } finally {
    await sut.stop();
  }
}

/** Counts log lines matching re, reading only what was added since the last call. */
function logCounter(sut: Sut, re: RegExp): () => number {
  let seen = 0;
  let n = 0;
  return () => {
    const text = sut.log();
    const fresh = text.slice(seen, text.lastIndexOf("\n") + 1);
    seen += fresh.length;
    for (const line of fresh.split("\n")) if (re.test(line)) n++;
    return n;
  };
}

/** Throws as soon as the log shows that a needed service cannot run. */
function missingService(sut: Sut): string {
  const m = /[^\n]*(is not part of this Postern build|daemon is not built)[^\n]*/.exec(sut.log());
  return m === null ? "" : m[0].replace(/^.*?(warning|fatal): /, "");
}

/** SMTP acceptance with smtp-source over a number of sessions. */
function smtpAccept(sessions: number): Workload {
  return {
    name: `smtp-accept-${sessions}`,
    title: `SMTP acceptance, ${sessions} session${sessions > 1 ? "s" : ""}`,
    unit: "msg/s",
    better: "higher",
    fsyncBound: true,
    run: (system, o) =>
      withSut(
        system,
        o,
        { main: COMMON, services: ["smtpd", "cleanup", "rewrite"] },
        async (sut, measure) => {
          const n = sessions === 1 ? Math.max(50, Math.floor(o.messages / 5)) : o.messages;
          const incoming = join(sut.spool, "incoming");
          const r = await measure(async () => {
            const s = await smtpSource(sut.port, {
              messages: n,
              sessions,
              size: 2048,
              rcpt: "bob@example.org",
              budgetMs: o.budgetMs,
            });
            await waitFor("queue files", () => countFiles(incoming) >= n, 2000).catch(() => undefined);
            return s;
          });
          const got = countFiles(incoming);
          if (got === 0) throw new Error(`nothing queued (smtp-source exit ${r.code}: ${r.err})`);
          const note = got < n ? `${got} of ${n} queued in the budget${r.err ? `; ${r.err}` : ""}` : "";
          return { value: (got * 1000) / r.ms, latency: null, note, count: got };
        },
      ),
  };
}

/** Local delivery to Maildir of held messages, released at once. */
const local: Workload = {
  name: "local",
  title: "local delivery to Maildir",
  unit: "msg/s",
  better: "higher",
  fsyncBound: true,
  run: (system, o) => {
    const user = o.user;
    if (user === null) throw new Error("needs root to make a user for Maildir delivery");
    const checks = join(o.dir, `hold-${system}`);
    writeFileSync(checks, "/^Subject: bench hold/ HOLD\n");
    const main = [...COMMON, "home_mailbox = Maildir/", `header_checks = regexp:${checks}`];
    const services: Service[] = ["smtpd", "cleanup", "rewrite", "qmgr", "local", "bounce"];
    return withSut(system, o, { main, services }, async (sut, measure) => {
      const n = o.messages;
      const rcpt = `${user.name}@${HOST}`;
      const s = await smtpSource(sut.port, {
        messages: n,
        sessions: 10,
        size: 2048,
        rcpt,
        subject: "bench hold",
        budgetMs: o.budgetMs,
      });
      const hold = join(sut.spool, "hold");
      await waitFor(
        "held messages",
        () => countFiles(hold) >= n,
        o.budgetMs,
        () => `(${countFiles(hold)} of ${n} held; smtp-source: ${s.code} ${s.err})`,
      );
      const md = join(user.home, "Maildir", "new");
      const before = countFiles(md);
      const ms = await measure(async () => {
        const t0 = performance.now();
        const r = await sut.tool("postsuper", ["-H", "ALL"]);
        if (r.code !== 0) throw new Error(`postsuper -H ALL: ${r.stderr.trim()}`);
        await sut.tool("flush");
        await waitFor(
          "Maildir deliveries",
          () => countFiles(md) - before >= n,
          o.budgetMs,
          () => `(${countFiles(md) - before} of ${n})`,
        );
        return performance.now() - t0;
      });
      return { value: (n * 1000) / ms, latency: null, note: "", count: n };
    });
  },
};

/** Many idle SMTP sessions: the instance's memory. */
const idle: Workload = {
  name: "idle",
  title: "idle SMTP sessions, memory",
  unit: "MiB",
  better: "lower",
  fsyncBound: false,
  run: (system, o) => {
    const main = [
      ...COMMON,
      `default_process_limit = ${o.idle + 100}`,
      "postern_process_client_limit = 1000",
    ];
    // Postfix warns about a parameter it does not know and goes on.
    return withSut(system, o, { main, services: ["smtpd", "cleanup", "rewrite"] }, async (sut, measure) => {
      const r = await measure(async () => {
        const opened = await openIdle(sut.port, o.idle, Date.now() + o.budgetMs);
        await sleep(2000);
        const mem = treeMemory(sut.masterPid);
        for (const s of opened.socks) s.destroy();
        return { ...opened, mem };
      });
      const live = r.socks.length;
      const per = live > 0 ? (r.mem.rss / live).toFixed(1) : "-";
      const note =
        `${live} sessions, ${r.mem.procs} processes, PSS ${(r.mem.pss / 1024).toFixed(0)} MiB, RSS ${per} KiB/session` +
        (live < o.idle ? `; only ${live} of ${o.idle} opened${r.err ? `: ${r.err}` : ""}` : "");
      return { value: r.mem.rss / 1024, latency: latency(r.setupMs), note, count: 0 };
    });
  },
};

/** A 2 KB message for sendmail. */
function sendmailMessage(i: number): Buffer {
  let body = "";
  while (body.length < 1900) body += `${"s".repeat(63)}\n`;
  return Buffer.from(`From: bench@example.org\nTo: bob@example.org\nSubject: sendmail ${i}\n\n${body}`);
}

/** sendmail submissions per second, picked up into the queue. */
const sendmail: Workload = {
  name: "sendmail",
  title: "sendmail submissions",
  unit: "msg/s",
  better: "higher",
  fsyncBound: true,
  run: (system, o) =>
    withSut(system, o, { main: COMMON, services: ["pickup", "cleanup", "rewrite"] }, async (sut, measure) => {
      const n = Math.max(20, Math.floor(o.messages / 5));
      const incoming = join(sut.spool, "incoming");
      const lat: number[] = [];
      let failed = "";
      const ms = await measure(async () => {
        const t0 = performance.now();
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < n && performance.now() - t0 < o.budgetMs && failed === "") {
            const i = next++;
            const s = performance.now();
            const r = await sut.tool(
              "sendmail",
              ["-i", "-f", "bench@example.org", "bob@example.org"],
              sendmailMessage(i),
            );
            if (r.code !== 0) failed = `sendmail exit ${r.code}: ${r.stderr.trim().slice(0, 200)}`;
            else lat.push(performance.now() - s);
          }
        };
        await Promise.all(Array.from({ length: 4 }, worker));
        if (failed !== "") throw new Error(failed);
        await waitFor(
          "pickup",
          () => countFiles(incoming) >= lat.length,
          o.budgetMs,
          () => `(${countFiles(incoming)} of ${lat.length} queued)`,
        );
        return performance.now() - t0;
      });
      return { value: (lat.length * 1000) / ms, latency: latency(lat), note: "", count: lat.length };
    }),
};

/** Starts smtp-sink on a free loopback port. */
async function startSink(): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(SMTP_SINK, ["-u", "nobody", `127.0.0.1:${port}`, "512"], { stdio: "ignore" });
  await sleep(300);
  if (proc.exitCode !== null) throw new Error(`smtp-sink exited (${proc.exitCode})`);
  return { port, proc };
}

/** Waits for n "status=sent" log lines, failing early when the smtp service cannot run. */
async function waitSent(sut: Sut, n: number, budgetMs: number): Promise<void> {
  const sent = logCounter(sut, /status=sent/);
  const end = Date.now() + budgetMs;
  while (sent() < n) {
    const why = missingService(sut);
    if (why !== "") throw new Error(why);
    if (Date.now() > end) {
      const last = /[^\n]*(status=deferred|warning:|fatal:)[^\n]*\n?$/m.exec(sut.log())?.[0] ?? "";
      throw new Error(
        `${sent()} of ${n} delivered in ${budgetMs / 1000} s${last ? `; last: ${last.trim()}` : ""}`,
      );
    }
    await sleep(50);
  }
}

/** Sends n 2 KB messages over 20 SMTP sessions to one relayed recipient; the milliseconds until all are sent. */
async function relaySend(sut: Sut, n: number, budgetMs: number): Promise<number> {
  const t0 = performance.now();
  const s = await smtpSource(sut.port, {
    messages: n,
    sessions: 20,
    size: 2048,
    rcpt: "bob@relay.example",
    budgetMs,
  });
  if (s.code !== 0) throw new Error(`smtp-source exit ${s.code}: ${s.err}`);
  await waitSent(sut, n, budgetMs);
  return performance.now() - t0;
}

/** SMTP in, smtp transport out to an smtp-sink. */
const relay: Workload = {
  name: "relay",
  title: "relay, SMTP in to smtp-sink",
  unit: "msg/s",
  better: "higher",
  fsyncBound: true,
  run: async (system, o) => {
    const sink = await startSink();
    try {
      const main = [...COMMON, `relayhost = [127.0.0.1]:${sink.port}`];
      const services: Service[] = ["smtpd", "cleanup", "rewrite", "qmgr", "smtp", "bounce", "scache"];
      return await withSut(system, o, { main, services }, async (sut, measure) => {
        const n = o.messages;
        const ms = await measure(() => relaySend(sut, n, o.budgetMs));
        return { value: (n * 1000) / ms, latency: null, note: "", count: n };
      });
    } finally {
      sink.proc.kill("SIGKILL");
    }
  },
};

/** One message to 1,000 recipients in 100 domains. */
const fanout: Workload = {
  name: "fanout",
  title: "1 message to 1,000 rcpts / 100 domains",
  unit: "rcpt/s",
  better: "higher",
  fsyncBound: false,
  run: async (system, o) => {
    const sink = await startSink();
    try {
      const map = join(o.dir, `transport-${system}`);
      const domains = Array.from({ length: 100 }, (_, i) => `d${i}.fanout.example`);
      writeFileSync(map, domains.map((d) => `${d} smtp:[127.0.0.1]:${sink.port}\n`).join(""));
      chmodSync(map, 0o644);
      const main = [...COMMON, `transport_maps = texthash:${map}`];
      const services: Service[] = ["smtpd", "cleanup", "rewrite", "qmgr", "smtp", "bounce", "scache"];
      return await withSut(system, o, { main, services }, async (sut, measure) => {
        const rcpts = Array.from({ length: 1000 }, (_, i) => `u${i}@${domains[i % 100] ?? ""}`);
        const ms = await measure(async () => {
          const t0 = performance.now();
          await smtpSend(sut.port, 1, () => ({
            rcpt: rcpts,
            content: "From: bench@example.org\nSubject: fanout\n\n" + "f".repeat(2000) + "\n",
          }));
          await waitSent(sut, rcpts.length, o.budgetMs);
          return performance.now() - t0;
        });
        return { value: (rcpts.length * 1000) / ms, latency: null, note: "", count: rcpts.length };
      });
    } finally {
      sink.proc.kill("SIGKILL");
    }
  },
};

/** Every workload, in the order of the table. */
export const WORKLOADS: Workload[] = [
  smtpAccept(1),
  smtpAccept(20),
  smtpAccept(100),
  local,
  idle,
  sendmail,
  relay,
  relayTlsWorkload({ common: COMMON, withSut, relaySend }),
  fanout,
];

/** Makes sure a directory exists and everyone may enter it (Postfix's daemons run as postfix). */
export function scratchDir(path: string): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, 0o755);
  return path;
}
