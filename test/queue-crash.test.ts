/*
 * queue-crash.test - cleanup killed at random moments loses no acknowledged mail
 *
 * DESCRIPTION
 *   A real instance with cleanup. Twenty concurrent clients submit messages
 *   of random size (most small, some large enough that a kill lands in the
 *   middle of writing them) for a bounded time, while the test SIGKILLs a
 *   cleanup process (found through /proc) at random moments, again and
 *   again; master starts a new one when the next client connects. Meanwhile
 *   a scanner lists incoming/ with QueuePaths.list without pause and checks
 *   every file it lists with checkQueueFile: a scan must never see a
 *   partial or temporary file. Afterwards every message that cleanup
 *   acknowledged with "ok" is in incoming/ byte for byte, "postsuper -s"
 *   finds nothing it cannot repair (and nothing corrupt), and "postsuper -p"
 *   removes the temporary files the killed processes left but keeps those
 *   of the cleanup process still running, until it too is killed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { processesOf, sleep, startInstance, type Instance } from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { Config } from "../src/global/config.js";
import { checkQueueFile } from "../src/global/queue-corrupt.js";
import { contentLines, readEnvelope } from "../src/global/queue-file.js";
import { QueuePaths } from "../src/global/queue-path.js";

const CLIENTS = 20;
const RUN_MS = 10_000;
const MAX_MESSAGES = 1500;
// master may lose a connection it was handing to a process that is killed at that moment (no close, no
// answer): a client gives up after this long, as smtpd would, and tries again.
const CLIENT_TIMEOUT_MS = 2000;

interface Sent {
  id: string;
  sender: string;
  rcpt: string;
  text: string;
}

/** A message of random size: a few headers and printable body lines, LF line ends. */
function makeMessage(n: number): string {
  const big = randomInt(100) < 15;
  const size = big ? randomInt(50_000, 400_000) : randomInt(200, 4000);
  const lines = [`Subject: crash test ${n}`, `X-Token: ${randomBytes(8).toString("hex")}`, ""];
  let total = 0;
  while (total < size) {
    const l = randomBytes(randomInt(0, 60)).toString("base64");
    lines.push(l);
    total += l.length + 1;
  }
  return lines.join("\n") + "\n";
}

/** The pid of the instance's master. */
function masterPid(inst: Instance): number {
  const pid = processesOf(inst.etc).find((p) => cmdline(p).includes("master/master.js"));
  assert.ok(pid !== undefined, "master runs");
  return pid;
}

/** A process's command line, or "" when it is gone. */
function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1");
  } catch {
    return "";
  }
}

/** The pids of the cleanup processes: master's children (from /proc, else a scan of /proc) that run cleanup. */
function cleanupPids(inst: Instance, master: number): number[] {
  let pids: number[];
  try {
    const children = readFileSync(`/proc/${master}/task/${master}/children`, "latin1");
    pids = children
      .split(" ")
      .filter((p) => /^\d+$/.test(p))
      .map(Number);
  } catch {
    pids = processesOf(inst.etc);
  }
  return pids.filter((pid) => cmdline(pid).includes("cleanup/cleanup.js"));
}

/** One client: submits messages until the deadline; records those cleanup acknowledged. */
async function client(
  inst: Instance,
  deadline: number,
  counter: { n: number },
  sent: Sent[],
): Promise<number> {
  let failed = 0;
  while (Date.now() < deadline && counter.n < MAX_MESSAGES) {
    const n = counter.n++;
    const text = makeMessage(n);
    const sender = `sender${n}@example.com`;
    const rcpt = `rcpt${n}@example.net`;
    const c = await CleanupClient.open(inst.spool, { timeoutMs: CLIENT_TIMEOUT_MS });
    if (!c.ok) {
      failed++;
      await sleep(20);
      continue;
    }
    // As smtpd hands over a remote client's message: the content is queued as it came.
    await c.client.attr("rewrite_context", "remote");
    await c.client.sender(sender);
    await c.client.rcpt({ address: rcpt });
    await c.client.data(Buffer.from(text, "latin1"));
    const r = await c.client.end();
    if (r.status === "ok") sent.push({ id: r.queueId, sender, rcpt, text });
    else failed++;
  }
  return failed;
}

/** Kills a cleanup process at random moments until the deadline; returns the number of kills. */
async function killer(inst: Instance, deadline: number): Promise<number> {
  const master = masterPid(inst);
  let kills = 0;
  while (Date.now() < deadline - 300) {
    await sleep(randomInt(100, 700));
    const pids = cleanupPids(inst, master);
    const pid = pids[randomInt(Math.max(pids.length, 1))];
    if (pid === undefined) continue;
    try {
      process.kill(pid, "SIGKILL");
      kills++;
    } catch {
      /* it exited by itself */
    }
  }
  return kills;
}

/** Lists incoming/ without pause until stopped; returns what was wrong with any listed file. */
async function scanner(paths: QueuePaths, stop: { now: boolean }): Promise<{ scans: number; bad: string[] }> {
  const good = new Set<string>();
  const bad: string[] = [];
  let scans = 0;
  while (!stop.now) {
    for (const id of paths.list("incoming")) {
      if (good.has(id)) continue;
      const c = await checkQueueFile(paths.path("incoming", id));
      if (c.ok) good.add(id);
      else bad.push(`${id}: ${c.reason} at offset ${c.offset}`);
    }
    scans++;
    await sleep(1);
  }
  return { scans, bad };
}

/** The temporary files in incoming/ (names that are not queue IDs: ".PID.N.RANDOM"). */
function temporaryFiles(inst: Instance): string[] {
  return readdirSync(join(inst.spool, "incoming")).filter((n) => n.startsWith("."));
}

/** The writer's pid in a temporary file name. */
function writerPid(name: string): number {
  return Number(/^\.(\d+)\./.exec(name)?.[1] ?? -1);
}

/** The content of a queued message as LF-terminated text. */
async function queuedText(path: string): Promise<{ text: string; sender: string; rcpts: string[] }> {
  const env = await readEnvelope(path);
  assert.ok(env.ok, env.ok ? "" : `${path}: ${env.reason} at offset ${env.offset}`);
  const lines: string[] = [];
  for await (const l of contentLines(path, env.env)) lines.push(l.toString("latin1"));
  return {
    text: lines.join("\n") + "\n",
    sender: env.env.sender,
    rcpts: env.env.recipients.map((r) => r.address),
  };
}

test(
  "killing cleanup at random moments loses no acknowledged message and never exposes a partial file",
  { timeout: 55_000 },
  async (t) => {
    const inst = await startInstance(t, {
      main: "service_throttle_time = 1s\n",
      master: "cleanup unix - - n - 0 cleanup\n",
    });
    const paths = new QueuePaths(Config.load(inst.etc));
    const deadline = Date.now() + RUN_MS;
    const stop = { now: false };
    const scan = scanner(paths, stop);
    const counter = { n: 0 };
    const sent: Sent[] = [];
    const [kills, ...failures] = await Promise.all([
      killer(inst, deadline),
      ...Array.from({ length: CLIENTS }, () => client(inst, deadline, counter, sent)),
    ]);
    stop.now = true;
    const scanned = await scan;
    const failed = failures.reduce((a, b) => a + b, 0);
    t.diagnostic(`${sent.length} acknowledged, ${failed} failed, ${kills} kills, ${scanned.scans} scans`);
    assert.ok(kills >= 5, `cleanup was killed ${kills} times`);
    assert.ok(sent.length >= 25, `${sent.length} messages acknowledged`);
    assert.ok(failed > 0, "some submissions were cut off by a kill");
    assert.deepEqual(scanned.bad, [], "a scan never lists a partial file");

    for (const s of sent) {
      const q = await queuedText(paths.path("incoming", s.id));
      assert.equal(q.text, s.text, `${s.id}: content intact`);
      assert.equal(q.sender, s.sender);
      assert.deepEqual(q.rcpts, [s.rcpt]);
    }
    t.diagnostic(`${temporaryFiles(inst).length} temporary files in incoming/`);

    const check = await runCli("postsuper", ["-c", inst.etc, "-s"]);
    assert.equal(check.code, 0, check.stderr);
    assert.doesNotMatch(check.stderr, /warning|error|fatal|corrupt/);
    const purge = await runCli("postsuper", ["-c", inst.etc, "-p"]);
    assert.equal(purge.code, 0, purge.stderr);
    const live = cleanupPids(inst, masterPid(inst));
    const kept = temporaryFiles(inst);
    t.diagnostic(`${kept.length} temporary files kept: their writer (pid ${live.join(", ")}) is alive`);
    for (const n of kept)
      assert.ok(live.includes(writerPid(n)), `${n}: -p removes every file whose writer is gone`);
    for (const pid of live) process.kill(pid, "SIGKILL");
    while (cleanupPids(inst, masterPid(inst)).some((pid) => live.includes(pid))) await sleep(20);
    const again = await runCli("postsuper", ["-c", inst.etc, "-p"]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(temporaryFiles(inst), [], "once their writers are gone, -p removes them all");
    for (const s of sent) assert.ok(existsSync(paths.path("incoming", s.id)), `${s.id} survives -s and -p`);
  },
);
