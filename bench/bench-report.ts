/*
 * bench-report - the side-by-side table of "npm run bench": text, JSON and an SVG chart
 *
 * DESCRIPTION
 *   summarize() turns the repeated runs of one workload on one system into
 *   a median and a spread (min-max) of each figure, or the reasons its runs
 *   failed. table() prints one line per workload (main figure for Postern
 *   and Postfix, the ratio Postern / Postfix, and the physical limit where
 *   one applies), then the CPU, memory and latency figures. svg() draws
 *   one bar per workload on a logarithmic ratio axis centred on 1 (equal),
 *   green where Postern does better, red where worse, and names a failed
 *   workload's reason instead of a bar. No dependency: the SVG is text.
 */
import { median } from "./bench-common.js";
import type { Latency, RunResult, Workload } from "./bench-workloads.js";

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface Summary {
  runs: number;
  value: Spread;
  cpuPer1000: Spread | null;
  peakRssMiB: Spread;
  latency: Latency | null;
  notes: string[];
}

export interface Row {
  workload: string;
  title: string;
  unit: string;
  better: "higher" | "lower";
  postern: Summary | { error: string } | null;
  postfix: Summary | { error: string } | null;
  /** Postern / Postfix of the main figure's medians. */
  ratio: number | null;
  /** The disk's durable-write rate (ops/s) when the workload is bound by it. */
  limit: number | null;
}

/** Median and spread of numbers. */
function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** The median figures of a system's runs, or the errors of its failed runs. */
export function summarize(runs: RunResult[], errors: string[]): Summary | { error: string } | null {
  if (runs.length === 0) return errors.length > 0 ? { error: [...new Set(errors)].join("; ") } : null;
  const cpu = runs.map((r) => r.cpuPer1000).filter((c): c is number => c !== null);
  const lats = runs.map((r) => r.latency).filter((l): l is Latency => l !== null);
  const notes = [...new Set(runs.map((r) => r.note).filter((n) => n !== ""))];
  if (errors.length > 0) notes.push(`${errors.length} run(s) failed: ${[...new Set(errors)].join("; ")}`);
  return {
    runs: runs.length,
    value: spread(runs.map((r) => r.value)),
    cpuPer1000: cpu.length > 0 ? spread(cpu) : null,
    peakRssMiB: spread(runs.map((r) => r.peakRssKiB / 1024)),
    latency:
      lats.length > 0
        ? {
            p50: median(lats.map((l) => l.p50)),
            p90: median(lats.map((l) => l.p90)),
            p99: median(lats.map((l) => l.p99)),
          }
        : null,
    notes,
  };
}

/** Builds a row from both systems' summaries. */
export function makeRow(
  w: Workload,
  postern: Row["postern"],
  postfix: Row["postfix"],
  fsyncRate: number | null,
): Row {
  const ok = (s: Row["postern"]): s is Summary => s !== null && !("error" in s);
  const ratio =
    ok(postern) && ok(postfix) && postfix.value.median > 0
      ? postern.value.median / postfix.value.median
      : null;
  return {
    workload: w.name,
    title: w.title,
    unit: w.unit,
    better: w.better,
    postern,
    postfix,
    ratio,
    limit: w.fsyncBound ? fsyncRate : null,
  };
}

/** A number with sensible digits. */
function num(x: number): string {
  if (!Number.isFinite(x)) return "-";
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** "median (min-max)" or the error. */
function figure(s: Row["postern"], pick: (s: Summary) => Spread | null = (x) => x.value): string {
  if (s === null) return "not run";
  if ("error" in s) return "FAILED";
  const v = pick(s);
  if (v === null) return "-";
  return s.runs > 1 ? `${num(v.median)} (${num(v.min)}-${num(v.max)})` : num(v.median);
}

/** Pads columns of a text table. */
function columns(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** The text tables and the failure reasons. */
export function table(rows: Row[]): string {
  const main = [["workload", "unit", "Postern", "Postfix", "ratio", "better", "limit (disk)"]];
  const more = [
    [
      "workload",
      "CPU s/1000 Postern",
      "CPU s/1000 Postfix",
      "peak RSS MiB Postern",
      "peak RSS MiB Postfix",
      "latency ms p50/p90/p99 Postern | Postfix",
    ],
  ];
  const notes: string[] = [];
  const lat = (s: Row["postern"]): string =>
    s !== null && !("error" in s) && s.latency !== null
      ? `${num(s.latency.p50)}/${num(s.latency.p90)}/${num(s.latency.p99)}`
      : "-";
  for (const r of rows) {
    main.push([
      r.workload,
      r.unit,
      figure(r.postern),
      figure(r.postfix),
      r.ratio === null ? "-" : r.ratio.toFixed(2),
      r.better,
      r.limit === null ? "" : `${r.limit.toFixed(0)} fsync/s`,
    ]);
    more.push([
      r.workload,
      figure(r.postern, (s) => s.cpuPer1000),
      figure(r.postfix, (s) => s.cpuPer1000),
      figure(r.postern, (s) => s.peakRssMiB),
      figure(r.postfix, (s) => s.peakRssMiB),
      `${lat(r.postern)} | ${lat(r.postfix)}`,
    ]);
    for (const [who, s] of [
      ["Postern", r.postern],
      ["Postfix", r.postfix],
    ] as const) {
      if (s === null) continue;
      if ("error" in s) notes.push(`${r.workload}, ${who}: FAILED: ${s.error}`);
      else for (const n of s.notes) notes.push(`${r.workload}, ${who}: ${n}`);
    }
  }
  return [columns(main), "", columns(more), "", ...notes].join("\n");
}

/** Escapes text for SVG. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** An SVG chart: one bar per workload on a log ratio axis (Postern / Postfix), 1 in the middle. */
export function svg(rows: Row[], caption: string): string {
  const W = 860;
  const left = 250;
  const right = 40;
  const barH = 22;
  const gap = 10;
  const top = 60;
  const H = top + rows.length * (barH + gap) + 50;
  const span = 6; // log2: 1/64 .. 64
  const x = (ratio: number): number => {
    const l = Math.max(-span, Math.min(span, Math.log2(ratio)));
    return left + ((l + span) / (2 * span)) * (W - left - right);
  };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15">Postern / Postfix (log scale; green: Postern better)</text>`,
  );
  out.push(`<text x="${W / 2}" y="38" text-anchor="middle" fill="#555">${esc(caption)}</text>`);
  for (let l = -span; l <= span; l++) {
    const gx = x(2 ** l);
    out.push(
      `<line x1="${gx}" y1="${top - 8}" x2="${gx}" y2="${H - 40}" stroke="${l === 0 ? "#000" : "#ddd"}"/>`,
    );
    const label = l >= 0 ? `${2 ** l}` : `1/${2 ** -l}`;
    out.push(`<text x="${gx}" y="${H - 25}" text-anchor="middle">${label}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap);
    out.push(
      `<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${esc(r.workload)} (${esc(r.unit)}, ${r.better} better)</text>`,
    );
    if (r.ratio === null) {
      const why = [r.postern, r.postfix].find((s) => s !== null && "error" in s);
      const text =
        why !== undefined && why !== null && "error" in why ? `failed: ${why.error}` : "not measured";
      out.push(`<text x="${left + 6}" y="${y + barH / 2 + 4}" fill="#a00">${esc(text.slice(0, 95))}</text>`);
      return;
    }
    const x1 = x(1);
    const x2 = x(r.ratio);
    const good = r.better === "higher" ? r.ratio >= 1 : r.ratio <= 1;
    out.push(
      `<rect x="${Math.min(x1, x2)}" y="${y}" width="${Math.max(1, Math.abs(x2 - x1))}" height="${barH}" fill="${good ? "#3a3" : "#c44"}"/>`,
    );
    const tx = x2 >= x1 ? x2 + 4 : x2 - 4;
    out.push(
      `<text x="${tx}" y="${y + barH / 2 + 4}" text-anchor="${x2 >= x1 ? "start" : "end"}">${r.ratio.toFixed(2)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
