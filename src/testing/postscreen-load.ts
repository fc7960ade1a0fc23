/*
 * postscreen-load - many idle bot connections and one good client, for the load test and bench
 *
 * SYNOPSIS
 *   const bots = await holdBots(port, 10_000, Date.now() + 120_000);
 *   const ms = await goodTransaction(port, "127.0.0.2");
 *   rssKiB(pid); bots.close();
 *
 * DESCRIPTION
 *   holdBots() opens n connections, `parallel` at a time, from addresses
 *   127.1.x.y (perBot connections per address, so per-client limits see
 *   a botnet, not one host); a bot counts as held once the server has
 *   sent it something (postscreen's teaser banner), and then stays silent,
 *   reading and dropping whatever comes. goodTransaction() runs one whole
 *   SMTP mail transaction (greeting to 250 after the data) and returns
 *   how long it took. rssKiB() and pssKiB() read a process's memory from
 *   /proc. fileLimit() is the soft limit on open files of this process.
 */
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";

export interface Bots {
  held: number;
  error: string;
  close(): void;
}

/** The address of bot i: perAddr bots share one 127.1.x.y address. */
export function botAddress(i: number, perAddr: number): string {
  const a = Math.floor(i / perAddr);
  return `127.1.${Math.floor(a / 250)}.${(a % 250) + 1}`;
}

/** Opens one bot connection; resolves once the server has said something. */
function openBot(port: number, from: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: "127.0.0.1", localAddress: from });
    const timer = setTimeout(() => fail(new Error("no banner in time")), timeoutMs);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.on("error", fail);
    sock.once("data", () => {
      clearTimeout(timer);
      sock.removeListener("error", fail);
      sock.on("error", () => undefined);
      sock.on("data", () => undefined);
      resolve(sock);
    });
  });
}

/** Opens n idle bots, `parallel` at a time, until all are held or the deadline passes. */
export async function holdBots(
  port: number,
  n: number,
  deadline: number,
  opts: { parallel?: number; perAddr?: number } = {},
): Promise<Bots> {
  const socks: Socket[] = [];
  let next = 0;
  let error = "";
  const worker = async (): Promise<void> => {
    while (next < n && Date.now() < deadline && error === "") {
      const i = next++;
      try {
        socks.push(
          await openBot(port, botAddress(i, opts.perAddr ?? 40), Math.max(1000, deadline - Date.now())),
        );
      } catch (e) {
        error = `bot ${i}: ${(e as Error).message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.parallel ?? 200 }, worker));
  const alive = (): number => socks.filter((s) => !s.destroyed).length;
  return {
    get held() {
      return alive();
    },
    error,
    close: () => socks.forEach((s) => s.destroy()),
  };
}

/** Runs one mail transaction from `from`; resolves with the milliseconds it took. */
export function goodTransaction(port: number, from: string, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  const script = [
    "EHLO good.example",
    "MAIL FROM:<good@client.example>",
    "RCPT TO:<user@example.org>",
    "DATA",
    "Subject: load test\r\n\r\nhello\r\n.",
    "QUIT",
  ];
  const want = ["2", "2", "2", "3", "2", "2"];
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: "127.0.0.1", localAddress: from });
    let buf = "";
    let step = -1;
    const timer = setTimeout(() => fail(new Error(`timed out at step ${step}`)), timeoutMs);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.setEncoding("latin1");
    sock.on("error", fail);
    sock.on("data", (d: string) => {
      buf += d;
      for (let m; (m = /^(\d{3}) [^\n]*\n/m.exec(buf)) !== null;) {
        buf = buf.slice(m.index + m[0].length);
        const code = m[1] ?? "";
        if (step === -1 ? code !== "220" : !code.startsWith(want[step] ?? "2"))
          return fail(new Error(`unexpected reply at step ${step}: ${m[0].trim()}`));
        step++;
        if (step === script.length) {
          clearTimeout(timer);
          sock.destroy();
          return resolve(performance.now() - t0);
        }
        sock.write(`${script[step]}\r\n`);
      }
    });
  });
}

/** A value in KiB from a /proc file ("VmRSS", "Pss"), 0 when the process is gone. */
function procKiB(path: string, field: string): number {
  try {
    return Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(readFileSync(path, "latin1"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** A process's resident set size in KiB. */
export function rssKiB(pid: number): number {
  return procKiB(`/proc/${pid}/status`, "VmRSS");
}

/** A process's proportional set size in KiB. */
export function pssKiB(pid: number): number {
  return procKiB(`/proc/${pid}/smaps_rollup`, "Pss");
}

/** The soft limit on open files of this process. */
export function fileLimit(): number {
  const m = /^Max open files\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  return m?.[1] === "unlimited" ? Infinity : Number(m?.[1] ?? 0);
}
