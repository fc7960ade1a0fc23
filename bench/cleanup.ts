/*
 * cleanup - messages per second through a real cleanup, next to the disk's own fsync rate
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/cleanup.js [--messages N] [--clients N] [--budget S] [--max-use N]
 *
 * DESCRIPTION
 *   Starts a throw-away instance with cleanup (as the tests do) and has
 *   N concurrent clients (default 20) submit 2 KB messages through
 *   CleanupClient until --messages (default 3000) are queued or --budget
 *   seconds (default 20) have passed (--max-use sets cleanup's max_use;
 *   default Postfix's 100, so a new process starts every 100 messages). Each message is acknowledged only
 *   after cleanup has fsync'ed the file, renamed it into incoming/ and
 *   fsync'ed the directory, so this is durable throughput.
 *   Then, in the same run and in the same incoming/ directory, it measures
 *   what the disk allows for that work without Postern: a loop that creates
 *   a file, writes 2 KB, fsyncs it, renames it and fsyncs the directory,
 *   once with one writer (synchronous calls: the physical limit of one
 *   stream of durable writes) and once with as many concurrent writers as
 *   there were clients (asynchronous calls in one Node process, as cleanup
 *   does them, so the file system may commit several fsyncs together).
 *   Prints messages/s, per-message latency, the loops' rates and the ratios.
 *   Bounded in count and time; runs as root or as an ordinary user.
 */
import { readdirSync, unlinkSync } from "node:fs";
import { diskLoop, pct } from "./bench-common.js";
import { open, rename } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { makeInstance } from "../src/testing/instance.js";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { syncDir } from "../src/global/queue-file.js";

interface Args {
  messages: number;
  clients: number;
  budgetMs: number;
  maxUse: number | null;
}

/** Reads --messages, --clients and --budget. */
function parseArgs(argv: string[]): Args {
  const a: Args = { messages: 3000, clients: 20, budgetMs: 20_000, maxUse: null };
  for (let i = 0; i < argv.length; i += 2) {
    const v = Number(argv[i + 1]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`bad value for ${argv[i]}: ${argv[i + 1]}`);
    if (argv[i] === "--messages") a.messages = Math.floor(v);
    else if (argv[i] === "--clients") a.clients = Math.floor(v);
    else if (argv[i] === "--budget") a.budgetMs = v * 1000;
    else if (argv[i] === "--max-use") a.maxUse = Math.floor(v);
    else throw new Error(`usage: cleanup.js [--messages N] [--clients N] [--budget S] [--max-use N]`);
  }
  return a;
}

/** A 2 KB message: a few headers and 64-byte body lines. */
function message(n: number): Buffer {
  const head = `Subject: bench ${n}\nFrom: bench@example.com\nTo: sink@example.net\n\n`;
  let body = "";
  while (head.length + body.length < 2048 - 65) body += `${"x".repeat(63)}\n`;
  return Buffer.from((head + body).padEnd(2047, "y") + "\n");
}

/** Submits one message; resolves with its latency in ms, or null when it was not queued. */
async function submit(spool: string, n: number): Promise<number | null> {
  const t0 = performance.now();
  const c = await CleanupClient.open(spool, { timeoutMs: 30_000 });
  if (!c.ok) return null;
  await c.client.sender("bench@example.com");
  await c.client.rcpt({ address: "sink@example.net" });
  await c.client.data(message(n));
  const r = await c.client.end();
  return r.status === "ok" ? performance.now() - t0 : null;
}

/** Runs the clients; returns the latencies of queued messages and the elapsed ms. */
async function cleanupRate(spool: string, a: Args): Promise<{ lat: number[]; ms: number; failed: number }> {
  const lat: number[] = [];
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  const deadline = Date.now() + a.budgetMs;
  const worker = async (): Promise<void> => {
    while (next < a.messages && Date.now() < deadline) {
      const ms = await submit(spool, next++);
      if (ms === null) failed++;
      else lat.push(ms);
    }
  };
  await Promise.all(Array.from({ length: a.clients }, worker));
  return { lat: lat.sort((x, y) => x - y), ms: performance.now() - t0, failed };
}

const BLOCK = Buffer.alloc(2048, "z");

/** Several writers in this process, asynchronous calls, the same steps. */
async function diskLoopAsync(
  dir: string,
  writers: number,
  count: number,
  budgetMs: number,
): Promise<{ ops: number; ms: number }> {
  const t0 = performance.now();
  let next = 0;
  let ops = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() - t0 < budgetMs) {
      const n = next++;
      const tmp = join(dir, `.bench-async-${n}`);
      const fh = await open(tmp, "wx", 0o600);
      await fh.write(BLOCK);
      await fh.sync();
      await fh.close();
      await rename(tmp, join(dir, `bench-async-${n}`));
      await syncDir(dir);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: writers }, worker));
  return { ops, ms: performance.now() - t0 };
}

/** Removes the loops' files. */
function removeBenchFiles(dir: string): void {
  for (const n of readdirSync(dir))
    if (n.startsWith("bench-") || n.startsWith(".bench-")) unlinkSync(join(dir, n));
}

/** Runs the benchmark. */
async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const inst = makeInstance({
    main: a.maxUse === null ? "" : `max_use = ${a.maxUse}\n`,
    master: "cleanup unix - - n - 0 cleanup\n",
  });
  const r = await inst.start();
  if (r.code !== 0) throw new Error(r.stderr);
  try {
    for (let i = 0; i < 20; i++) await submit(inst.spool, -1);
    const c = await cleanupRate(inst.spool, a);
    const incoming = join(inst.spool, "incoming");
    const one = diskLoop(incoming, a.messages, a.budgetMs);
    const many = await diskLoopAsync(incoming, a.clients, a.messages, a.budgetMs);
    removeBenchFiles(incoming);
    const rate = (ops: number, ms: number): number => (ops * 1000) / ms;
    const cr = rate(c.lat.length, c.ms);
    const r1 = rate(one.ops, one.ms);
    const rn = rate(many.ops, many.ms);
    const row = (k: string, v: string): void => console.log(`${k.padEnd(52)}${v}`);
    console.log(
      `cleanup, 2 KB messages (node ${process.version}, ${c.lat.length} queued, ${c.failed} failed, max_use ${a.maxUse ?? "default"})`,
    );
    row("measure", "result");
    row(`cleanup, ${a.clients} concurrent clients`, `${cr.toFixed(0)} msg/s`);
    row("  latency per message", `p50 ${pct(c.lat, 50).toFixed(1)} ms, p99 ${pct(c.lat, 99).toFixed(1)} ms`);
    row(
      "disk loop, 1 writer (write+fsync+rename+dir fsync)",
      `${r1.toFixed(0)} ops/s (${one.ops} in ${(one.ms / 1000).toFixed(1)} s)`,
    );
    row(
      `disk loop, ${a.clients} writers`,
      `${rn.toFixed(0)} ops/s (${many.ops} in ${(many.ms / 1000).toFixed(1)} s)`,
    );
    row("ratio cleanup / 1-writer loop", (cr / r1).toFixed(2));
    row(`ratio cleanup / ${a.clients}-writer loop`, (cr / rn).toFixed(2));
  } finally {
    await inst.postern("stop");
    inst.cleanup();
  }
}

await main();
