/*
 * bench-common - what the benchmarks share: options, load tools, counters and the disk's own rate
 *
 * DESCRIPTION
 *   option() reads a numeric "--name N" argument. smtpSend() delivers n
 *   messages over one SMTP session (message(i) gives the recipients and
 *   the content, LF line ends, converted and dot-stuffed here).
 *   smtpSource() runs Postfix's smtp-source (Debian package postfix).
 *   openIdle() holds SMTP sessions open after EHLO. countFiles() and
 *   waitFor() watch a queue or mailbox; diskLoop() measures the disk's
 *   durable-write rate (create, write 2 KB, fsync, rename, directory
 *   fsync) in a directory: the physical limit of one stream of queued
 *   messages. ensureFileLimit() re-runs the benchmark under a shell
 *   "ulimit -n" when the open-file limit is too low for many sessions.
 *   cpuSnapshot() and cpuDelta() read the CPU time of a master and of
 *   every process under it from /proc (helpers of a delivery agent
 *   included), by program name. queued() counts the files in some queues
 *   of a spool; waitUntil() waits for a condition until a deadline.
 *   startPostfix() runs a private Postfix (Debian's, as root): the shared
 *   main.cf base plus the caller's lines, the caller's services plus the
 *   support services every Postfix daemon expects; startPostern() runs
 *   this checkout's Postern with the caller's lines and services plus
 *   cleanup and trivial-rewrite. Every benchmark starts its instances
 *   with these two.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chownSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { readMasterPid } from "../src/global/master-pid.js";
import { makeInstance, type Instance } from "../src/testing/instance.js";

export const SMTP_SOURCE = "/usr/sbin/smtp-source";
export const SMTP_SINK = "/usr/sbin/smtp-sink";
export const POSTFIX = "/usr/sbin/postfix";
/** SMTP sessions of the acceptance benchmarks (smtpd, milter). */
export const SESSIONS = 20;

/** A numeric option "--name N", or the default. */
export function option(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive number`);
  return v;
}

/** Waits a while. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The value at a percentile of sorted samples. */
export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The median of some numbers (NaN for none). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

/** Counts the files under a directory tree, dot files excluded (0 when it does not exist). */
export function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(dir, e.name));
    else if (!e.name.startsWith(".")) n++;
  }
  return n;
}

/** The files in some queues of a spool (e.g. ["incoming", "active"]). */
export function queued(spool: string, queues: string[]): number {
  return queues.reduce((n, q) => n + countFiles(join(spool, q)), 0);
}

/** Waits until cond() holds or the deadline (epoch ms) passes; whether it held. */
export async function waitUntil(cond: () => boolean, deadline: number, everyMs = 100): Promise<boolean> {
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Waits until cond() holds; throws after limitMs naming what it waited for and the state(). */
export async function waitFor(
  what: string,
  cond: () => boolean,
  limitMs: number,
  state: () => string = () => "",
): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end)
      throw new Error(`timed out after ${limitMs / 1000} s waiting for ${what} ${state()}`);
    await sleep(20);
  }
}

/** Sends n messages over one SMTP session on 127.0.0.1:port. */
export async function smtpSend(
  port: number,
  n: number,
  message: (i: number) => { rcpt: string | string[]; content: string },
): Promise<void> {
  const sock = connect(port, "127.0.0.1");
  let buf = "";
  let closed = false;
  const waiters: Array<() => void> = [];
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => {
    buf += d;
    waiters.splice(0).forEach((w) => w());
  });
  sock.on("error", () => undefined);
  sock.on("close", () => {
    closed = true;
    waiters.splice(0).forEach((w) => w());
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
      if (m !== null) {
        buf = buf.slice(m.index + m[0].length);
        return m[0].trim();
      }
      if (closed) throw new Error("SMTP connection closed");
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const cmd = async (line: string, want: string): Promise<void> => {
    sock.write(`${line}\r\n`);
    const r = await reply();
    if (!r.startsWith(want)) throw new Error(`SMTP "${line.slice(0, 40)}": ${r}`);
  };
  try {
    if (!(await reply()).startsWith("2")) throw new Error("no SMTP greeting");
    await cmd("EHLO bench.example.org", "2");
    for (let i = 0; i < n; i++) {
      const m = message(i);
      await cmd("MAIL FROM:<bench@example.org>", "2");
      for (const r of typeof m.rcpt === "string" ? [m.rcpt] : m.rcpt) await cmd(`RCPT TO:<${r}>`, "2");
      await cmd("DATA", "3");
      await cmd(`${m.content.replace(/\n/g, "\r\n").replace(/^\./gm, "..")}.`, "2");
    }
    await cmd("QUIT", "2");
  } finally {
    sock.destroy();
  }
}

/** Runs smtp-source: messages of size bytes over sessions sessions; killed after budgetMs. */
export async function smtpSource(
  port: number,
  o: {
    messages: number;
    sessions: number;
    size: number;
    rcpt: string;
    from?: string;
    subject?: string;
    budgetMs: number;
  },
): Promise<{ ms: number; code: number | null; err: string }> {
  const args = ["-m", String(o.messages), "-s", String(o.sessions), "-l", String(o.size)];
  if (o.subject !== undefined) args.push("-S", o.subject);
  args.push("-f", o.from ?? "bench@sender.example", "-t", o.rcpt, `127.0.0.1:${port}`);
  const t0 = performance.now();
  const p = spawn(SMTP_SOURCE, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => p.kill("SIGKILL"), o.budgetMs);
  const code = await new Promise<number | null>((r) => p.on("close", r));
  clearTimeout(timer);
  return { ms: performance.now() - t0, code, err: err.trim().slice(0, 300) };
}

/** Opens one SMTP session to the greeting and an EHLO reply. */
export function openSession(port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let buf = "";
    let ehlo = false;
    const timer = setTimeout(() => fail(new Error("timed out")), timeoutMs);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.setEncoding("latin1");
    sock.on("error", fail);
    sock.on("close", () => fail(new Error("closed")));
    sock.on("data", (d: string) => {
      buf += d;
      const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
      if (m === null) return;
      buf = buf.slice(m.index + m[0].length);
      if (!ehlo && m[1] === "220") {
        ehlo = true;
        sock.write("EHLO idle.bench.example\r\n");
      } else if (ehlo && m[1] === "250") {
        clearTimeout(timer);
        sock.removeAllListeners("close");
        sock.removeAllListeners("data");
        sock.on("close", () => undefined);
        resolve(sock);
      } else fail(new Error(`reply ${m[0].trim()}`));
    });
  });
}

/** Opens up to n idle sessions, parallel at a time, until the deadline; with each one's set-up time (ms). */
export async function openIdle(
  port: number,
  n: number,
  deadline: number,
  parallel = 100,
): Promise<{ socks: Socket[]; setupMs: number[]; err: string }> {
  const socks: Socket[] = [];
  const setupMs: number[] = [];
  let next = 0;
  let err = "";
  const worker = async (): Promise<void> => {
    while (next < n && Date.now() < deadline && err === "") {
      next++;
      const t0 = performance.now();
      try {
        socks.push(await openSession(port, Math.max(1000, deadline - Date.now())));
        setupMs.push(performance.now() - t0);
      } catch (e) {
        err = (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return { socks, setupMs, err };
}

const BLOCK = Buffer.alloc(2048, "z");

/** One writer: create, write 2 KB, fsync, rename, fsync the directory; ops/s (files removed after). */
export function diskLoop(dir: string, count: number, budgetMs: number): { ops: number; ms: number } {
  const t0 = performance.now();
  let ops = 0;
  for (; ops < count && performance.now() - t0 < budgetMs; ops++) {
    const tmp = join(dir, `.bench-sync-${ops}`);
    const fd = openSync(tmp, "wx", 0o600);
    writeSync(fd, BLOCK);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, join(dir, `bench-sync-${ops}`));
    const d = openSync(dir, "r");
    fsyncSync(d);
    closeSync(d);
  }
  const ms = performance.now() - t0;
  for (let i = 0; i < ops; i++) unlinkSync(join(dir, `bench-sync-${i}`));
  return { ops, ms };
}

/** The soft and hard limits on open files, from /proc/self/limits. */
export function fileLimits(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const n = (s: string | undefined): number => (s === "unlimited" ? Infinity : Number(s ?? 0));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/**
 * Makes sure this process may open need files: as root it runs itself again under
 * "sh -c 'ulimit -n need'" (children inherit the limit) and exits with that run's status;
 * otherwise it says what to do. Returns when the limit is (or cannot be made) enough.
 */
export function ensureFileLimit(need: number): void {
  const lim = fileLimits();
  if (lim.soft >= need) return;
  if (process.getuid?.() === 0 && process.env["BENCH_ULIMIT_RAISED"] === undefined) {
    console.log(`raising the open-file limit from ${lim.soft} to ${need} (ulimit -n)`);
    const r = spawnSync(
      "sh",
      [
        "-c",
        `ulimit -n ${need} || echo "could not raise it: going on with $(ulimit -n)"; exec "$0" "$@"`,
        process.execPath,
        ...process.execArgv,
        ...process.argv.slice(1),
      ],
      { stdio: "inherit", env: { ...process.env, BENCH_ULIMIT_RAISED: "1" } },
    );
    process.exit(r.status ?? 1);
  }
  console.log(
    `open-file limit ${lim.soft} < ${need}: fewer sessions may open (raise the hard limit, ulimit -Hn, first)`,
  );
}

/** A private Postfix instance (Debian's /usr/sbin/postfix, as root) under dir, started and ready. */
export interface PostfixInstance {
  /** dir/postfix: etc/, spool/, data/ and maillog below it. */
  base: string;
  etc: string;
  spool: string;
  maillog: string;
  masterPid: number;
  /** Runs "postfix -c etc <args>"; throws naming the log when it fails. */
  postfix(...args: string[]): void;
  /** Rewrites master.cf with other services (the support services added) and reloads. */
  reload(services: string[]): void;
  stop(): void;
}

/** The main.cf lines of every private Postfix instance, for its directories. */
function postfixBase(base: string): string[] {
  return [
    "compatibility_level = 3.6",
    `queue_directory = ${base}/spool`,
    `data_directory = ${base}/data`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    "alias_maps =",
    "alias_database =",
    "in_flow_delay = 0",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    `maillog_file = ${base}/maillog`,
    `maillog_file_prefixes = ${base}`,
    "shlib_directory = /usr/lib/postfix",
    "daemon_directory = /usr/lib/postfix/sbin",
    "meta_directory = /etc/postfix",
  ];
}

/** The services Postfix's daemons expect whatever the workload (a caller's line of the same name wins). */
const POSTFIX_SUPPORT = [
  "cleanup unix n - n - 0 cleanup",
  "rewrite unix - - n - - trivial-rewrite",
  "bounce unix - - n - 0 bounce",
  "defer unix - - n - 0 bounce",
  "trace unix - - n - 0 bounce",
  "flush unix n - n 1000? 0 flush",
  "proxymap unix - - n - - proxymap",
  "showq unix n - n - - showq",
  "error unix - - n - - error",
  "retry unix - - n - - error",
  "anvil unix - - n - 1 anvil",
  "scache unix - - n - 1 scache",
  "tlsmgr unix - - n 1000? 1 tlsmgr",
  "postlog unix-dgram n - n - 1 postlogd",
];

/** master.cf: the caller's services, then the support services it did not name. */
function postfixMaster(services: string[]): string {
  const key = (l: string): string => l.split(/\s+/, 2).join(" ");
  const own = new Set(services.map(key));
  return [...services, ...POSTFIX_SUPPORT.filter((l) => !own.has(key(l))), ""].join("\n");
}

/**
 * Starts a private Postfix instance under dir/postfix: main.cf is the shared base
 * lines and then the caller's (later lines win), master.cf the caller's services
 * and the support services. Resolves once master wrote its pid file and settleMs
 * passed (its daemons start on demand).
 */
export async function startPostfix(
  dir: string,
  main: string[],
  services: string[],
  settleMs = 1000,
): Promise<PostfixInstance> {
  const base = join(dir, "postfix");
  const etc = join(base, "etc");
  const spool = join(base, "spool");
  const maillog = join(base, "maillog");
  for (const d of [etc, spool, join(base, "data")]) mkdirSync(d, { recursive: true });
  chownSync(join(base, "data"), Number(execFileSync("id", ["-u", "postfix"], { encoding: "utf8" })), 0);
  writeFileSync(join(etc, "main.cf"), [...postfixBase(base), ...main, ""].join("\n"));
  writeFileSync(join(etc, "master.cf"), postfixMaster(services));
  const postfix = (...args: string[]): void => {
    const r = spawnSync(POSTFIX, ["-c", etc, ...args], { stdio: "pipe" });
    if (r.status !== 0)
      throw new Error(
        `postfix ${args.join(" ")}: ${r.stderr.toString().trim()} (see ${maillog})`.slice(0, 400),
      );
  };
  const stop = (): void => {
    spawnSync(POSTFIX, ["-c", etc, "abort"], { stdio: "pipe" });
    spawnSync(POSTFIX, ["-c", etc, "stop"], { stdio: "pipe" });
  };
  postfix("start");
  const pidFile = join(spool, "pid", "master.pid");
  const pidOf = (): number => (existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0);
  await waitFor(`master's pid in ${pidFile}`, () => pidOf() > 0, 10_000).catch((e: unknown) => {
    stop();
    throw e;
  });
  const masterPid = pidOf();
  await sleep(settleMs);
  return {
    base,
    etc,
    spool,
    maillog,
    masterPid,
    postfix,
    reload: (s) => {
      writeFileSync(join(etc, "master.cf"), postfixMaster(s));
      postfix("reload");
    },
    stop,
  };
}

/** A started Postern instance of this checkout (src/testing/instance.ts). */
export interface PosternInstance {
  inst: Instance;
  masterPid: number;
  /** Aborts it and removes its directory. */
  stop(): Promise<void>;
}

/** master.cf lines that an SMTP workload's Postern always has (a caller's line of the same name wins). */
const POSTERN_SUPPORT = ["cleanup unix - - n - 0 cleanup", "rewrite unix - - n - - trivial-rewrite"];

/** Starts this checkout's Postern with main.cf lines and master.cf services (plus cleanup and rewrite). */
export async function startPostern(main: string[], services: string[]): Promise<PosternInstance> {
  const key = (l: string): string => l.split(/\s+/, 2).join(" ");
  const own = new Set(services.map(key));
  const inst = makeInstance({
    main: [...main, ""].join("\n"),
    master: [...services, ...POSTERN_SUPPORT.filter((l) => !own.has(key(l))), ""].join("\n"),
  });
  const r = await inst.start();
  if (r.code !== 0) {
    await inst.postern("abort");
    inst.cleanup();
    throw new Error(`postern start: ${r.stderr.trim()}`);
  }
  return {
    inst,
    masterPid: readMasterPid(inst.lib) ?? 0,
    stop: async () => {
      await inst.postern("abort");
      inst.cleanup();
    },
  };
}

const TICK_MS = 1000 / 100;

interface ProcCpu {
  name: string;
  ppid: number;
  /** Own user+system time, ms. */
  self: number;
  /** Reaped children's user+system time, ms. */
  children: number;
}

/** A process's name and CPU times from /proc, or null when it is gone. */
function procCpu(pid: number): ProcCpu | null {
  let stat: string;
  let cmd: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1");
  } catch {
    return null;
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const n = (i: number): number => Number(f[i - 3] ?? 0);
  const argv = cmd.split("\0");
  const script = argv.find((a) => a.endsWith(".js"));
  const name = (script ?? argv[0] ?? "?").replace(/^.*\//, "").replace(/\.js$/, "");
  return { name, ppid: n(4), self: (n(14) + n(15)) * TICK_MS, children: (n(16) + n(17)) * TICK_MS };
}

export interface CpuSnapshot {
  /** master's own CPU plus its reaped children's, ms. */
  master: number;
  live: Map<number, { name: string; cpu: number }>;
}

/** CPU ms of a master and of each of its live descendants (daemons, and their helpers). */
export function cpuSnapshot(masterPid: number): CpuSnapshot {
  const m = procCpu(masterPid);
  const all = new Map<number, ProcCpu>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const p = procCpu(Number(e));
    if (p !== null) all.set(Number(e), p);
  }
  const under = (pid: number): boolean => {
    for (let depth = 0, at = all.get(pid)?.ppid; at !== undefined && depth < 8; depth++) {
      if (at === masterPid) return true;
      at = all.get(at)?.ppid;
    }
    return false;
  };
  const live = new Map<number, { name: string; cpu: number }>();
  for (const [pid, p] of all) if (under(pid)) live.set(pid, { name: p.name, cpu: p.self + p.children });
  return { master: m === null ? 0 : m.self + m.children, live };
}

/** CPU ms used between two snapshots, by daemon name; what processes that exited used goes to "master+reaped". */
export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot): Map<string, number> {
  let reaped = b.master - a.master;
  const out = new Map<string, number>();
  for (const [pid, p] of a.live) if (!b.live.has(pid)) reaped -= p.cpu;
  for (const [pid, p] of b.live)
    out.set(p.name, (out.get(p.name) ?? 0) + p.cpu - (a.live.get(pid)?.cpu ?? 0));
  out.set("master+reaped", reaped);
  return out;
}

/** Runs smtp-source (2 KB messages, SESSIONS sessions) against a port; messages queued per second and a note. */
export async function throughput(
  port: number,
  incoming: string,
  n: number,
  budgetMs: number,
  from = "bench@sender.example",
): Promise<{ rate: number; text: string }> {
  const before = countFiles(incoming);
  const r = await smtpSource(port, {
    messages: n,
    sessions: SESSIONS,
    size: 2048,
    rcpt: "bob@example.org",
    from,
    budgetMs,
  });
  const seconds = r.ms / 1000;
  const code = r.code;
  const err = r.err;
  await sleep(500);
  const got = countFiles(incoming) - before;
  const rate = got / seconds;
  const note = code === 0 ? "" : ` (smtp-source exit ${code}${err ? `: ${err.trim().slice(0, 200)}` : ""})`;
  return { rate, text: `${got} msgs in ${seconds.toFixed(2)} s, ${rate.toFixed(0)} msg/s${note}` };
}
