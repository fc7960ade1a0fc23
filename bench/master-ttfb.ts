/*
 * master-ttfb - time from connect to first byte, warm and cold process pool
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/master-ttfb.js [connections]
 *
 * DESCRIPTION
 *   Starts a throw-away instance with two services built on the skeleton:
 *   "warm" keeps its process (max_idle long, max_use high), so each client
 *   finds a running process; "cold" serves one client per process
 *   (max_use = 1), so each client waits for a new process to start. For
 *   each, connects N times in a row and prints the median, 90th and 99th
 *   percentile and the maximum of connect-to-greeting time. Runs as root or
 *   as an ordinary user; bounded by the connection count and a time limit.
 */
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { freePort, makeInstance } from "../src/testing/instance.js";
import { pct } from "./bench-common.js";

/** Connects and resolves with milliseconds until the first byte. */
function ttfb(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = connect(port, "127.0.0.1");
    s.once("data", () => {
      resolve(performance.now() - t0);
      s.end("QUIT\r\n");
    });
    s.once("error", reject);
    s.setTimeout(30_000, () => reject(new Error("timeout")));
  });
}

/** Measures one service. */
async function measure(port: number, n: number, deadline: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n && Date.now() < deadline; i++) {
    out.push(await ttfb(port));
    await new Promise((r) => setTimeout(r, 5));
  }
  return out.sort((a, b) => a - b);
}

/** Runs the benchmark. */
async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 200);
  const [warm, cold] = [await freePort(), await freePort()];
  const inst = makeInstance({
    main: "max_idle = 3600s\nmax_use = 100000\n",
    master: `${warm} inet n - n - 10 test-daemon.js single\n${cold} inet n - n - 10 test-daemon.js single\n  -o max_use=1\n`,
  });
  const r = await inst.start();
  if (r.code !== 0) throw new Error(r.stderr);
  try {
    await ttfb(warm);
    const deadline = Date.now() + 120_000;
    const w = await measure(warm, n, deadline);
    const c = await measure(cold, Math.min(n, 50), deadline);
    const fmt = (x: number): string => x.toFixed(2).padStart(8);
    console.log(
      `connect-to-first-byte, ms (node ${process.version}, ${w.length} warm / ${c.length} cold connections)`,
    );
    console.log("pool       p50      p90      p99      max");
    for (const [name, s] of [
      ["warm", w],
      ["cold", c],
    ] as const) {
      console.log(
        `${name.padEnd(6)}${fmt(pct(s, 50))} ${fmt(pct(s, 90))} ${fmt(pct(s, 99))} ${fmt(s[s.length - 1] ?? NaN)}`,
      );
    }
    console.log(`cold/warm median ratio: ${(pct(c, 50) / pct(w, 50)).toFixed(1)}`);
  } finally {
    await inst.postern("stop");
    inst.cleanup();
  }
}

await main();
