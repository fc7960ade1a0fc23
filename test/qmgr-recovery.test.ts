/*
 * qmgr-recovery.test - a queue manager that dies after its recovery, and two queue managers at once
 *
 * DESCRIPTION
 *   At start qmgr moves what an earlier run left in active/ back to
 *   incoming/. A message there may have delivery logs from that run (a
 *   bounced recipient's entry, a deferred one's reason), where new mail in
 *   incoming/ has none and qmgr does not look for them. Each test leaves a
 *   message in active/ with logs (the instance is killed with SIGKILL while
 *   a recipient at another destination hangs), then runs the recovery of a queue manager that dies
 *   right after it (before it loads the file), then starts the instance
 *   again:
 *   - the bounced recipient's non-delivery notice is sent, once, and no
 *     log outlives the message;
 *   - the defer log is reset when the message enters the active queue: it
 *     holds the reasons of the last attempt only.
 *   And a second qmgr started over the same queue while one runs (a new
 *   master's, while the killed master's qmgr has not yet gone) waits, and
 *   touches nothing, until the first one is gone, kill -9 included.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BounceClient } from "../src/global/bounce-client.js";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { Config } from "../src/global/config.js";
import { installRoot } from "../src/global/install-paths.js";
import { readMasterPid } from "../src/global/master-pid.js";
import { QUEUE_MODE_SCHEDULED, readEnvelope } from "../src/global/queue-file.js";
import { QueuePaths, type QueueName } from "../src/global/queue-path.js";
import { QueueManager } from "../src/qmgr/qmgr-manager.js";
import { startInstance, sleep, type Instance } from "../src/testing/instance.js";
import { daemonPids, processTree } from "../src/testing/proc-tree.js";

/** How often the sink delivered to a recipient. */
function count(record: string, rcpt: string): number {
  if (!existsSync(record)) return 0;
  return readFileSync(record, "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[2] === rcpt).length;
}

/** Queues a message through cleanup; its queue ID. */
async function queue(inst: Instance, sender: string, rcpts: string[]): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok);
  await c.client.sender(sender);
  for (const r of rcpts) await c.client.rcpt({ address: r });
  await c.client.data(Buffer.from(`Subject: recovery\n\nto ${rcpts.join(", ")}\n`));
  const r = await c.client.end();
  assert.equal(r.status, "ok");
  return r.status === "ok" ? r.queueId : "";
}

/** Waits until cond() holds (bounded). */
async function until(what: string, cond: () => boolean, inst: Instance, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}; log:\n${inst.log().slice(-4000)}`);
    await sleep(50);
  }
}

/** An instance whose default transport is the recording sink (test-agent.ts). */
async function instance(
  t: { after: (fn: () => Promise<void>) => void },
  backoff: string,
): Promise<{ inst: Instance; record: string; paths: QueuePaths }> {
  const rec = mkdtempSync(join(tmpdir(), "postern-recovery-"));
  chmodSync(rec, 0o1777);
  const record = join(rec, "sink.log");
  const inst = await startInstance(
    t,
    {
      main: [
        "myhostname = mx.example.org",
        "mydestination =",
        "default_transport = sink",
        `minimal_backoff_time = ${backoff}`,
        `maximal_backoff_time = ${backoff}`,
        "queue_run_delay = 1s",
        "service_throttle_time = 1s",
        "",
      ].join("\n"),
      master: [
        "cleanup unix - - n - 0 cleanup",
        "rewrite unix - - n - - trivial-rewrite",
        "qmgr unix n - n 300 1 qmgr",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        `sink unix - - n - 20 test-agent.js ${record}`,
        "",
      ].join("\n"),
    },
    () => rmSync(rec, { recursive: true, force: true }),
  );
  return { inst, record, paths: new QueuePaths(Config.load(inst.etc)) };
}

/** Kills master and every daemon with SIGKILL, as a crash would; waits until they are gone. */
async function crash(inst: Instance): Promise<void> {
  const pids = processTree(readMasterPid(inst.lib) ?? 0);
  for (const p of pids) process.kill(p, "SIGKILL");
  const alive = (p: number): boolean => {
    try {
      process.kill(p, 0);
      return existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, "latin1").includes(") Z ");
    } catch {
      return false;
    }
  };
  await until("the killed processes to go", () => !pids.some(alive), inst, 10_000);
}

/** The recovery of a queue manager that dies before it loads anything (what qmgr does first at start). */
function recoverAndDie(inst: Instance): void {
  const cfg = Config.load(inst.etc);
  const unused = (): Promise<{ ok: false; reason: string }> =>
    Promise.resolve({ ok: false, reason: "unused" });
  new QueueManager(cfg, new QueuePaths(cfg), unused, BounceClient.fromConfig(cfg)).recover();
}

/** The queues that hold a message. */
function where(paths: QueuePaths, id: string): QueueName[] {
  return (["incoming", "active", "deferred", "hold"] as const).filter((q) => existsSync(paths.path(q, id)));
}

/** Leaves a message in active/ with delivery logs: one recipient done (log made), one hanging. */
async function leaveInActive(
  inst: Instance,
  paths: QueuePaths,
  rcpts: string[],
  log: RegExp,
): Promise<string> {
  const id = await queue(inst, "snd@notice.example", rcpts);
  await inst.waitLog(new RegExp(`${id}: to=<${log.source}`), 20_000);
  await crash(inst);
  assert.deepEqual(where(paths, id), ["active"], "the message is left in the active queue");
  recoverAndDie(inst);
  assert.deepEqual(where(paths, id), ["incoming"], "the recovery moved it back to incoming");
  const r = await readEnvelope(paths.path("incoming", id));
  assert.ok(r.ok && ((r.env.mode ?? 0) & QUEUE_MODE_SCHEDULED) !== 0, "the file carries the recovery's mark");
  return id;
}

test("a message recovered by a queue manager that died at once still draws its non-delivery notice, once", async (t) => {
  const { inst, record, paths } = await instance(t, "1s");
  const id = await leaveInActive(
    inst,
    paths,
    ["fail-1@far.example", "hang-1@hang.example"],
    /fail-1@far\.example>.*status=bounced/,
  );
  assert.ok(existsSync(paths.path("bounce", id)), "the bounced recipient is in the bounce log");
  writeFileSync(`${record}.release`, "");
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  await until("the hanging recipient's delivery", () => count(record, "hang-1@hang.example") >= 1, inst);
  await until("the notice to the sender", () => count(record, "snd@notice.example") >= 1, inst);
  await until("the message to go", () => where(paths, id).length === 0, inst);
  await sleep(1500);
  assert.equal(count(record, "snd@notice.example"), 1, "one notice");
  assert.match(inst.log(), new RegExp(`${id}: sender non-delivery notification: `));
  for (const log of ["bounce", "defer", "trace"] as const)
    assert.ok(!existsSync(paths.path(log, id)), `no ${log} log outlives the message`);
});

test("the defer log of a recovered message holds the reasons of the last attempt only", async (t) => {
  const { inst, record, paths } = await instance(t, "60s");
  const id = await leaveInActive(
    inst,
    paths,
    ["defer-2@far.example", "hang-2@hang.example"],
    /defer-2@far\.example>.*status=deferred/,
  );
  const entries = (): number =>
    (readFileSync(paths.path("defer", id), "latin1").match(/^recipient=defer-2@far\.example$/gm) ?? [])
      .length;
  assert.equal(entries(), 1, "the first attempt's entry");
  writeFileSync(`${record}.release`, "");
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  await until("the hanging recipient's delivery", () => count(record, "hang-2@hang.example") >= 1, inst);
  await until("the message to be deferred", () => where(paths, id).join() === "deferred", inst);
  assert.equal(entries(), 1, "the second attempt's entry alone");
});

test("a second queue manager waits until the first is gone, even when it was killed with SIGKILL", async (t) => {
  const { inst, paths } = await instance(t, "1s");
  const master = readMasterPid(inst.lib) ?? 0;
  await until("qmgr", () => daemonPids(master, "qmgr").length === 1, inst);
  const first = daemonPids(master, "qmgr")[0] ?? 0;
  const lock = join(inst.lib, "qmgr.lock");
  const holder = (): string => (existsSync(lock) ? readFileSync(lock, "latin1") : "");
  await until("the lock", () => holder() === `${first}\n`, inst);
  // A file left in active/ that the second qmgr must not touch while the first runs.
  const id = await queue(inst, "snd@notice.example", ["hang-3@hang.example"]);
  await until("the message in active/", () => where(paths, id).join() === "active", inst);
  const second = fork(join(installRoot(), "dist", "src", "qmgr", "qmgr.js"), ["-n", "qmgr", "-t", "unix"], {
    env: { MAIL_CONFIG: inst.etc },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  t.after(() => {
    second.kill("SIGKILL");
  });
  let stderr = "";
  second.stderr?.on("data", (d: Buffer) => (stderr += d.toString("latin1")));
  let ready = false;
  second.on("message", (m: { t?: string }) => {
    if (m.t === "ready") ready = true;
  });
  await until("the second qmgr to wait", () => stderr.includes("waiting for another queue manager"), inst);
  await sleep(1500);
  assert.equal(ready, false, "the second qmgr does not start while the first runs");
  assert.deepEqual(where(paths, id), ["active"], "the second qmgr left the active queue alone");
  await crash(inst);
  await until("the second qmgr to start", () => ready, inst, 15_000);
  assert.equal(holder(), `${second.pid}\n`);
  await until("its recovery", () => where(paths, id).join() !== "active" || stderr.includes("moved 1"), inst);
  second.kill("SIGKILL");
});
