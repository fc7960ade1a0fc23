/*
 * milter - messages/s through smtpd with opendkim signing, Postern next to Postfix
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/milter.js [--messages N] [--budget S]   (as root)
 *
 * DESCRIPTION
 *   One opendkim (Debian package opendkim, started here on a free loopback
 *   port with a fresh 2048-bit key, as the tests start it) signs for
 *   example.com. Postfix's smtp-source (Debian package postfix) sends N
 *   messages (default 2,000) of 2 KB from bench@example.com over 20
 *   sessions to smtpd with smtpd_milters pointing at that opendkim, with
 *   cleanup and trivial-rewrite behind it and no queue manager; the figure
 *   is messages queued per second of smtp-source's run (killed after
 *   --budget seconds, default 120). The same runs against a private Postfix
 *   instance with the same milter, and the ratio is printed. One queued
 *   file of each is checked for a DKIM-Signature header, so a milter that
 *   was silently skipped cannot make a fast figure. Needs root (opendkim's
 *   user, Postfix's instance); every process and directory is removed at
 *   the end.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, sleep } from "../src/testing/instance.js";
import { startOpendkim } from "../src/testing/milters.js";
import {
  option,
  POSTFIX,
  SESSIONS,
  SMTP_SOURCE,
  startPostern,
  startPostfix,
  throughput,
} from "./bench-common.js";

const FROM = "bench@example.com";

/** Whether one queue file under a queue directory carries a DKIM signature. */
function signedSample(incoming: string): string {
  const stack = [incoming];
  while (stack.length > 0) {
    const d = stack.pop() ?? "";
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith(".")) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else return readFileSync(p, "latin1").includes("DKIM-Signature: v=1;") ? "signed" : "NOT signed";
    }
  }
  return "no file";
}

const COMMON = [
  "myhostname = mx.bench.example",
  "mydestination = $myhostname, example.org",
  "local_recipient_maps =",
  "smtpd_peername_lookup = no",
  "smtpd_client_connection_count_limit = 0",
  "smtpd_client_connection_rate_limit = 0",
  "mynetworks = 127.0.0.0/8",
];

/** Postern: smtpd (with the milter), cleanup and trivial-rewrite. */
async function postern(milter: number, n: number, budgetMs: number): Promise<{ rate: number; text: string }> {
  const port = await freePort();
  const pn = await startPostern(
    [...COMMON, `smtpd_milters = inet:127.0.0.1:${milter}`],
    [`${port} inet n - n - - smtpd`],
  );
  try {
    const incoming = join(pn.inst.spool, "incoming");
    const t = await throughput(port, incoming, n, budgetMs, FROM);
    return { rate: t.rate, text: `${t.text}, ${signedSample(incoming)}` };
  } finally {
    await pn.stop();
  }
}

/** Postfix: the same with a private instance. */
async function postfix(
  dir: string,
  milter: number,
  n: number,
  budgetMs: number,
): Promise<{ rate: number; text: string }> {
  const port = await freePort();
  const pf = await startPostfix(
    dir,
    [...COMMON, `smtpd_milters = inet:127.0.0.1:${milter}`],
    [`127.0.0.1:${port} inet n - n - - smtpd`],
  );
  try {
    await sleep(1000);
    const t = await throughput(port, join(pf.spool, "incoming"), n, budgetMs, FROM);
    return { rate: t.rate, text: `${t.text}, ${signedSample(join(pf.spool, "incoming"))}` };
  } finally {
    pf.stop();
  }
}

/** Runs the benchmark and prints the table. */
async function main(): Promise<void> {
  const n = option("messages", 2000);
  const budgetMs = option("budget", 120) * 1000;
  if (!existsSync(SMTP_SOURCE)) return console.log(`${SMTP_SOURCE} is missing (Debian package postfix)`);
  if (process.getuid?.() !== 0)
    return console.log("needs root (opendkim runs as its own user; Postfix instance)");
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const dkim = await startOpendkim({ after: (fn) => cleanups.push(fn) });
    const show = (k: string, v: string): void => console.log(k.padEnd(52) + v);
    show("measure", "result");
    const p = await postern(dkim.port, n, budgetMs);
    show(`Postern + opendkim: ${n} x 2 KB, ${SESSIONS} sessions`, p.text);
    if (!existsSync(POSTFIX)) return show("Postfix", `not installed (${POSTFIX})`);
    const dir = mkdtempSync(join(tmpdir(), "postern-bench-milter-"));
    chmodSync(dir, 0o755);
    try {
      const f = await postfix(dir, dkim.port, n, budgetMs);
      show(`Postfix + opendkim: ${n} x 2 KB, ${SESSIONS} sessions`, f.text);
      show("ratio Postern / Postfix (msg/s)", f.rate > 0 ? (p.rate / f.rate).toFixed(2) : "n/a");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

await main();
