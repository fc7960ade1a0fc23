/*
 * bench-common - what the benchmarks share: options and a plain SMTP sender
 *
 * DESCRIPTION
 *   option() reads a numeric "--name N" argument. smtpSend() delivers n
 *   messages over one SMTP session (used to fill Postfix's queue through its
 *   own smtpd); message(i) gives the recipient and the content (LF line
 *   ends, converted and dot-stuffed here). cpuSnapshot() and cpuDelta() read
 *   the CPU time of a master and of every process under it from /proc
 *   (helpers of a delivery agent included), by program name.
 */
import { readFileSync, readdirSync } from "node:fs";
import { connect } from "node:net";

const TICK_MS = 1000 / 100;

/** A numeric option "--name N", or the default. */
export function option(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive number`);
  return v;
}

/** Sends n messages over one SMTP session on 127.0.0.1:port. */
export async function smtpSend(
  port: number,
  n: number,
  message: (i: number) => { rcpt: string; content: string },
): Promise<void> {
  const sock = connect(port, "127.0.0.1");
  let buf = "";
  const waiters: Array<() => void> = [];
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => {
    buf += d;
    waiters.splice(0).forEach((w) => w());
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
      if (m !== null) {
        buf = buf.slice(m.index + m[0].length);
        return m[1] ?? "";
      }
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const cmd = async (line: string, want: string): Promise<void> => {
    sock.write(`${line}\r\n`);
    const code = await reply();
    if (!code.startsWith(want)) throw new Error(`SMTP "${line.slice(0, 40)}": ${code}`);
  };
  if (!(await reply()).startsWith("2")) throw new Error("no SMTP greeting");
  await cmd("EHLO bench.example.org", "2");
  for (let i = 0; i < n; i++) {
    const m = message(i);
    await cmd("MAIL FROM:<bench@example.org>", "2");
    await cmd(`RCPT TO:<${m.rcpt}>`, "2");
    await cmd("DATA", "3");
    await cmd(`${m.content.replace(/\n/g, "\r\n").replace(/^\./gm, "..")}.`, "2");
  }
  await cmd("QUIT", "2");
  sock.destroy();
}

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
