/*
 * tables - lookup table benchmark: postmap build time, lookup latency, memory while serving
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/tables.js [--keys N] [--big N] [--runs N] [--budget SECONDS]
 *
 * DESCRIPTION
 *   Prints a table of figures:
 *   - the time "postmap hash:FILE" takes for --keys keys (default 1,000,000),
 *     median of --runs runs (default 3), for Postern's postmap and for
 *     Postfix's (/usr/sbin/postmap, from the Debian package "postfix"), and
 *     their ratio. Each builds its own copy of the same source file. This
 *     benchmark installs nothing: without Postfix's postmap it says how to
 *     get it and prints Postern's figures only;
 *   - lookup latency (p50, p99) in one process, for a hash: table of --keys
 *     keys (half hits, half misses), a regexp: table of 500 rules and a
 *     cidr: table of 10,000 networks (first match wins, so misses read
 *     every rule: the worst case);
 *   - the resident memory of a process that serves a hash: table of --big
 *     keys (default 10,000,000; 0 skips it) while it answers random
 *     lookups for a few seconds, and the time Postern's postmap took to
 *     build that table.
 *   Everything happens in a temporary directory that is removed at the
 *   end. The run stops itself: when the time used so far says the big table
 *   would not fit in --budget seconds (default 900), that part is skipped.
 *
 *   With "--serve TABLE" the program is the serving child of the last part.
 */
import { spawnSync } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeSync,
} from "node:fs";
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dictOpen, type Dict } from "../src/global/dict.js";
import { installRoot } from "../src/global/install-paths.js";
import { msgInit } from "../src/util/msg.js";

const POSTFIX_POSTMAP = "/usr/sbin/postmap";
const started = Date.now();

/** A numeric option "--name N", or the default. */
function option(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name}: expected a number`);
  return v;
}

/** The key of entry i of the generated tables. */
function keyOf(i: number): string {
  return `user${i}@example${i % 1000}.com`;
}

/** Writes a postmap source file of n keys. */
function writeSource(path: string, n: number): void {
  const fd = openSync(path, "w");
  try {
    let chunk: string[] = [];
    for (let i = 0; i < n; i++) {
      chunk.push(`${keyOf(i)} local${i}\n`);
      if (chunk.length === 20000) {
        writeSync(fd, chunk.join(""));
        chunk = [];
      }
    }
    writeSync(fd, chunk.join(""));
  } finally {
    closeSync(fd);
  }
}

/** Runs a command and returns its wall-clock seconds; throws when it fails. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr.toString().trim()}`);
  return secs;
}

/** The median of some numbers. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/** The p-th percentile (0..100) of sorted nanosecond samples, in microseconds. */
function pct(sorted: Float64Array, p: number): number {
  const i = Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length));
  return (sorted[i] ?? NaN) / 1000;
}

/** Times n lookups of keys from gen; returns sorted nanoseconds. */
async function latencies(d: Dict, n: number, gen: (i: number) => string): Promise<Float64Array> {
  for (let i = 0; i < Math.min(1000, n); i++) await d.lookup(gen(i));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const key = gen(i);
    const t0 = process.hrtime.bigint();
    const r = await d.lookup(key);
    out[i] = Number(process.hrtime.bigint() - t0);
    if (r.status === "tempfail") throw new Error(`${d.type}:${d.name}: ${r.reason}`);
  }
  return out.sort();
}

/** A pseudo-random generator with a fixed seed (xorshift32), so runs compare. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** Prints aligned rows. */
function printTable(rows: string[][]): void {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join("  "));
}

/** Builds with both postmaps; returns the figures and the Postern table path. */
function buildTimes(
  dir: string,
  cf: string,
  keys: number,
  runs: number,
): { rows: string[][]; table: string } {
  const ours = join(dir, "postern");
  const theirs = join(dir, "postfix");
  mkdirSync(ours);
  mkdirSync(theirs);
  writeSource(join(ours, "map"), keys);
  copyFileSync(join(ours, "map"), join(theirs, "map"));
  const bin = join(installRoot(), "bin", "postmap");
  const env = { MAIL_CONFIG: cf };
  const p: number[] = [];
  for (let i = 0; i < runs; i++) p.push(timed(process.execPath, [bin, `hash:${join(ours, "map")}`], env));
  const rows = [[`postmap hash: ${keys} keys, Postern`, `${median(p).toFixed(2)} s`]];
  if (!existsSync(POSTFIX_POSTMAP)) {
    rows.push(["postmap hash:, Postfix", `not installed (${POSTFIX_POSTMAP}: apt-get install postfix)`]);
    return { rows, table: join(ours, "map") };
  }
  const f: number[] = [];
  for (let i = 0; i < runs; i++) f.push(timed(POSTFIX_POSTMAP, [`hash:${join(theirs, "map")}`], env));
  rows.push([`postmap hash: ${keys} keys, Postfix`, `${median(f).toFixed(2)} s`]);
  rows.push(["ratio Postern / Postfix", `${(median(p) / median(f)).toFixed(2)}`]);
  const size = (path: string): string => `${(statSync(path).size / 1e6).toFixed(0)} MB`;
  rows.push([
    "table file size, Postern / Postfix",
    `${size(`${ours}/map.db`)} / ${size(`${theirs}/map.db`)}`,
  ]);
  return { rows, table: join(ours, "map") };
}

/** Lookup latency rows for hash, regexp and cidr tables. */
async function lookupRows(dir: string, table: string, keys: number): Promise<string[][]> {
  const rows: string[][] = [];
  const row = (what: string, s: Float64Array): void =>
    void rows.push([what, `p50 ${pct(s, 50).toFixed(1)} us, p99 ${pct(s, 99).toFixed(1)} us`]);
  const rand = rng(42);
  const hash = dictOpen(`hash:${table}`);
  row(
    `hash: ${keys} keys, 20000 lookups`,
    await latencies(hash, 20000, () => keyOf(Math.floor(rand() * keys * 2))),
  );
  const reFile = join(dir, "checks.re");
  writeLines(reFile, 500, (i) => `/^user${i}@spam${i}\\.example$/ REJECT rule ${i}`);
  const re = dictOpen(`regexp:${reFile}`);
  row(
    "regexp: 500 rules, 5000 lookups",
    await latencies(re, 5000, (i) => `user${i % 1000}@spam${i % 1000}.example`),
  );
  const cidrFile = join(dir, "clients.cidr");
  writeLines(cidrFile, 10000, (i) => `10.${i >> 8}.${i & 255}.0/24 REJECT net ${i}`);
  const cidr = dictOpen(`cidr:${cidrFile}`);
  const ip = (): string =>
    `10.${Math.floor(rand() * 80)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`;
  row("cidr: 10000 networks, 5000 lookups", await latencies(cidr, 5000, ip));
  return rows;
}

/** Writes n lines made by line(i). */
function writeLines(path: string, n: number, line: (i: number) => string): void {
  const fd = openSync(path, "w");
  try {
    writeSync(fd, Array.from({ length: n }, (_, i) => line(i) + "\n").join(""));
  } finally {
    closeSync(fd);
  }
}

/** The serving child: opens the table, answers random lookups for 3 s, prints its figures as JSON. */
async function serve(table: string, keys: number): Promise<void> {
  msgInit({ tag: "bench" });
  const before = process.memoryUsage().rss;
  const d = dictOpen(`hash:${table}`);
  const rand = rng(7);
  let n = 0;
  const end = Date.now() + 3000;
  const samples: number[] = [];
  while (Date.now() < end) {
    const t0 = process.hrtime.bigint();
    const r = await d.lookup(keyOf(Math.floor(rand() * keys * 2)));
    samples.push(Number(process.hrtime.bigint() - t0));
    if (r.status === "tempfail") throw new Error(r.reason);
    n++;
  }
  const sorted = Float64Array.from(samples).sort();
  const out = {
    before,
    rss: process.memoryUsage().rss,
    lookups: n,
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
  };
  console.log(JSON.stringify(out));
}

/** Builds the big table and measures a serving process; returns rows. */
function bigRows(dir: string, cf: string, big: number, perKeySecs: number, budget: number): string[][] {
  const left = budget - (Date.now() - started) / 1000;
  const estimate = perKeySecs * big * 1.5 + 30;
  if (big === 0) return [];
  if (estimate > left)
    return [
      [`RSS serving ${big} keys`, `skipped: needs about ${estimate.toFixed(0)} s, ${left.toFixed(0)} s left`],
    ];
  const src = join(dir, "big");
  writeSource(src, big);
  const build = timed(process.execPath, [join(installRoot(), "bin", "postmap"), `hash:${src}`], {
    MAIL_CONFIG: cf,
  });
  rmSync(src);
  const r = spawnSync(process.execPath, [process.argv[1] ?? "", "--serve", src, "--big", String(big)], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`serving child failed: ${r.stderr}`);
  const f = JSON.parse(r.stdout) as {
    before: number;
    rss: number;
    lookups: number;
    p50: number;
    p99: number;
  };
  const mb = (x: number): string => `${(x / 1048576).toFixed(0)} MiB`;
  return [
    [
      `postmap hash: ${big} keys, Postern`,
      `${build.toFixed(1)} s (${(statSync(`${src}.db`).size / 1e9).toFixed(2)} GB)`,
    ],
    [`RSS serving ${big} keys`, `${mb(f.rss)} (${mb(f.before)} before opening the table)`],
    [
      `  while answering`,
      `${f.lookups} lookups in 3 s, p50 ${f.p50.toFixed(1)} us, p99 ${f.p99.toFixed(1)} us`,
    ],
  ];
}

/** Runs the benchmark. */
async function main(): Promise<void> {
  const serveAt = process.argv.indexOf("--serve");
  if (serveAt >= 0) return serve(process.argv[serveAt + 1] ?? "", option("big", 10_000_000));
  msgInit({ tag: "bench" });
  const keys = option("keys", 1_000_000);
  const runs = Math.max(1, option("runs", 3));
  const dir = mkdtempSync(join(tmpdir(), "postern-bench-tables-"));
  try {
    const cf = join(dir, "etc");
    mkdirSync(cf);
    writeLines(join(cf, "main.cf"), 0, () => "");
    console.log(`Postern lookup tables, Node ${process.version}`);
    const t0 = Date.now();
    const built = buildTimes(dir, cf, keys, runs);
    const perKey = (Date.now() - t0) / 1000 / (keys * runs * 2);
    const rows = [["measure", "result"], ...built.rows, ...(await lookupRows(dir, built.table, keys))];
    rows.push(...bigRows(dir, cf, option("big", 10_000_000), perKey, option("budget", 900)));
    printTable(rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
