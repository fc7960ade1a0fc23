/*
 * hostile-clients.test - smtpd keeps serving a well-behaved client under hostile load, in bounded memory
 *
 * DESCRIPTION
 *   An instance with smtpd, cleanup and trivial-rewrite, started through a
 *   shell "ulimit -n" so that master and smtpd may hold many descriptors,
 *   with maxproc (default_process_limit) above the number of sessions and
 *   postern_process_client_limit = 1000. First up to 10,000 connections
 *   are opened (each to its greeting) and left idle (fewer when this
 *   process may not open that many files: the count is printed); they stay open while, one after
 *   the other, come slow-drip commands (a byte every 100 ms), oversize
 *   command lines (2 MB without a line end), oversize messages (20 MB
 *   against message_size_limit = 1 MB), binary garbage, and pipelining
 *   floods (a million pipelined NOOPs whose replies are never read).
 *   During each, a well-behaved client must complete a whole transaction
 *   (greeting to 250 after DATA) within 5 s: a liveness bound, not a
 *   timing benchmark. The summed RSS of the instance's processes is
 *   sampled throughout: with the idle sessions it must stay under 300 MiB
 *   plus 150 KiB per session, and no hostile phase may add more than
 *   256 MiB to it. All figures are printed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { installRoot } from "../../src/global/install-paths.js";
import { readMasterPid } from "../../src/global/master-pid.js";
import { freePort, makeInstance, sleep } from "../../src/testing/instance.js";
import { smtpCmd, smtpHello } from "../../src/testing/smtpd-instance.js";
import { processTree, treeRssKiB } from "../../src/testing/proc-tree.js";
import { readFileSync } from "node:fs";

const WANT_IDLE = 10_000;
const PROBE_LIMIT_MS = 5000;
const PHASE_MS = 4000;

/** The hard limit on open files of this process. */
function hardFileLimit(): number {
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  return m?.[1] === "unlimited" ? Infinity : Number(m?.[1] ?? 1024);
}

/** A well-behaved client: a whole transaction; its duration in ms. */
async function probe(port: number): Promise<number> {
  const t0 = performance.now();
  const c = await smtpHello(port);
  try {
    assert.match(await smtpCmd(c, "MAIL FROM:<good@example.com>"), /^250 /);
    assert.match(await smtpCmd(c, "RCPT TO:<rcpt@example.org>"), /^250 /);
    assert.match(await smtpCmd(c, "DATA"), /^354 /);
    c.sendRaw("Subject: probe\r\n\r\nstill served\r\n.\r\n");
    assert.match(await smtpCmd(c, null), /^250 /);
    c.send("QUIT");
  } finally {
    c.close();
  }
  return performance.now() - t0;
}

/** Opens a connection that ignores what the server says. */
function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.removeListener("error", reject);
      s.on("error", () => undefined);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** Opens a connection and waits for the greeting (so the server has taken it); then ignores the server. */
async function greeted(port: number): Promise<Socket> {
  const s = await rawConnect(port);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no greeting within 30 s")), 30_000);
    s.once("data", () => (clearTimeout(timer), resolve()));
    s.once("close", () => (clearTimeout(timer), reject(new Error("closed before the greeting"))));
  });
  s.removeAllListeners("close");
  s.pause();
  return s;
}

/** Opens n idle sessions, 100 at a time, each to its greeting; stops at the first failure. */
async function openIdle(port: number, n: number): Promise<{ socks: Socket[]; err: string }> {
  const socks: Socket[] = [];
  let next = 0;
  let err = "";
  const worker = async (): Promise<void> => {
    while (next < n && err === "") {
      next++;
      try {
        socks.push(await greeted(port));
      } catch (e) {
        err = (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
  return { socks, err };
}

/** Runs a hostile phase for PHASE_MS while probing; the probes' durations and the peak RSS. */
async function phase(
  port: number,
  master: number,
  attack: (stop: { now: boolean }) => Promise<void>,
): Promise<{ probes: number[]; peakKiB: number }> {
  const stop = { now: false };
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, treeRssKiB(master))), 200);
  const running = attack(stop);
  const probes: number[] = [];
  await sleep(500);
  const end = Date.now() + PHASE_MS;
  while (Date.now() < end) {
    probes.push(await probe(port));
    await sleep(300);
  }
  stop.now = true;
  await running;
  clearInterval(sampler);
  return { probes, peakKiB: Math.max(peak, treeRssKiB(master)) };
}

/** Waits until a socket drains (at most 200 ms). */
function drained(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      s.off("drain", done);
      resolve();
    };
    const timer = setTimeout(done, 200);
    s.once("drain", done);
  });
}

/** Writes data to n new connections (as fast as the server takes it) until stopped; closes them. */
async function writers(
  port: number,
  n: number,
  stop: { now: boolean },
  data: (i: number) => Buffer | null,
  pauseMs = 0,
): Promise<void> {
  const one = async (): Promise<void> => {
    const s = await rawConnect(port);
    s.on("data", () => undefined);
    s.pause(); // never read the replies
    for (let i = 0; !stop.now && !s.destroyed; i++) {
      const chunk = data(i);
      if (chunk === null) break;
      if (!s.write(chunk)) await drained(s);
      if (pauseMs > 0) await sleep(pauseMs);
    }
    while (!stop.now && !s.destroyed) await sleep(100);
    s.destroy();
  };
  await Promise.all(Array.from({ length: n }, one));
}

test(
  "hostile clients: a well-behaved client is served within 5 s and memory stays bounded",
  { timeout: 240_000 },
  async (t) => {
    const idleN = Math.max(100, Math.min(WANT_IDLE, hardFileLimit() - 3000));
    const port = await freePort();
    const inst = makeInstance({
      main: [
        "myhostname = mx.example.org",
        "mydestination = $myhostname, example.org",
        "mynetworks = 127.0.0.0/8",
        "local_recipient_maps =",
        "smtpd_peername_lookup = no",
        "smtpd_client_connection_count_limit = 0",
        "smtpd_client_connection_rate_limit = 0",
        "message_size_limit = 1048576",
        `default_process_limit = ${idleN + 500}`,
        "postern_process_client_limit = 1000",
        "",
      ].join("\n"),
      master: [
        `${port} inet n - n - - smtpd`,
        "cleanup unix - - n - 0 cleanup",
        "rewrite unix - - n - - trivial-rewrite",
        "",
      ].join("\n"),
    });
    t.after(async () => {
      await inst.postern("abort");
      inst.cleanup();
    });
    // Started through a shell that raises the open-file limit, which master and its children inherit.
    const postern = join(installRoot(), "bin", "postern");
    // Asks for twice the sessions plus room; where the hard limit is lower and may not be raised, the hard limit.
    const want = 2 * idleN + 5000;
    const p = spawn(
      "sh",
      [
        "-c",
        `ulimit -n ${want} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`,
        process.execPath,
        postern,
        "-c",
        inst.etc,
        "start",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let err = "";
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const started = { code: await new Promise<number | null>((r) => p.on("close", r)), err };
    assert.equal(started.code, 0, started.err);
    const master = readMasterPid(inst.lib) ?? 0;
    assert.ok(master > 0);
    const limits = readFileSync(`/proc/${master}/limits`, "utf8");
    t.diagnostic(`master: ${/^Max open files.*$/m.exec(limits)?.[0] ?? "?"}`);

    const base = await probe(port);
    const rss0 = treeRssKiB(master);
    const t0 = performance.now();
    const idle = await openIdle(port, idleN);
    t.after(() => idle.socks.forEach((s) => s.destroy()));
    await sleep(2000);
    const alive = idle.socks.filter((s) => !s.destroyed).length;
    const rssIdle = treeRssKiB(master);
    t.diagnostic(
      `${alive} idle connections open (wanted ${idleN}${idle.err ? `; stopped: ${idle.err}` : ""}) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        `RSS ${(rss0 / 1024).toFixed(0)} MiB before, ${(rssIdle / 1024).toFixed(0)} MiB with them (${processTree(master).length} processes); probe ${base.toFixed(0)} ms before`,
    );
    const warnings = (): string =>
      [
        ...new Set(
          inst
            .log()
            .split("\n")
            .filter((l) => /warning|fatal|panic|421/.test(l))
            .map((l) => l.replace(/^.*?: /, "")),
        ),
      ]
        .slice(0, 10)
        .join("\n");
    assert.ok(alive >= idleN * 0.95, `${alive} of ${idleN} idle connections stay open; log:\n${warnings()}`);
    const idleProbe = await probe(port);
    assert.ok(
      idleProbe < PROBE_LIMIT_MS,
      `served in ${idleProbe.toFixed(0)} ms with ${alive} idle connections`,
    );
    assert.ok(rssIdle < 300 * 1024 + 150 * alive, `RSS ${rssIdle} KiB with ${alive} idle sessions`);

    const line = Buffer.from("x".repeat(64 * 1024));
    const phases: Array<[string, (stop: { now: boolean }) => Promise<void>]> = [
      [
        "slow drip (100 clients, a byte per 100 ms)",
        (stop) => {
          const cmd = Buffer.from("EHLO slow.example\r\nMAIL FROM:<slow@example.com>\r\n");
          return writers(port, 100, stop, (i) => cmd.subarray(i % cmd.length, (i % cmd.length) + 1), 100);
        },
      ],
      [
        "oversize lines (20 clients, 2 MB without a line end)",
        (stop) => writers(port, 20, stop, (i) => (i < 32 ? line : null)),
      ],
      [
        "oversize messages (5 clients, 20 MB each)",
        (stop) => {
          const head = Buffer.from(
            "EHLO big.example\r\nMAIL FROM:<big@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n",
          );
          const body = Buffer.from(`${"b".repeat(998)}\r\n`.repeat(64));
          return writers(port, 5, stop, (i) =>
            i === 0 ? head : i <= 320 ? body : i === 321 ? Buffer.from(".\r\nQUIT\r\n") : null,
          );
        },
      ],
      [
        "binary garbage (20 clients, 1 MB each)",
        (stop) => writers(port, 20, stop, (i) => (i < 16 ? randomBytes(64 * 1024) : null)),
      ],
      [
        "pipelining flood (5 clients, 200,000 NOOPs each, replies unread)",
        (stop) => {
          const noops = Buffer.from("NOOP\r\n".repeat(10_000));
          return writers(port, 5, stop, (i) =>
            i === 0 ? Buffer.from("EHLO flood.example\r\n") : i <= 20 ? noops : null,
          );
        },
      ],
    ];
    for (const [name, attack] of phases) {
      const r = await phase(port, master, attack);
      const worst = Math.max(...r.probes);
      const grew = r.peakKiB - rssIdle;
      t.diagnostic(
        `${name}: ${r.probes.length} probes, slowest ${worst.toFixed(0)} ms; peak RSS ${(r.peakKiB / 1024).toFixed(0)} MiB (+${(grew / 1024).toFixed(0)} MiB)`,
      );
      assert.ok(worst < PROBE_LIMIT_MS, `${name}: the well-behaved client waited ${worst.toFixed(0)} ms`);
      assert.ok(grew < 256 * 1024, `${name}: RSS grew by ${(grew / 1024).toFixed(0)} MiB`);
    }
    assert.ok(
      idle.socks.filter((s) => !s.destroyed).length >= alive * 0.95,
      "the idle sessions are still there",
    );
  },
);
