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
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BounceClient } from "../src/global/bounce-client.js";
import { Config } from "../src/global/config.js";
import { installRoot } from "../src/global/install-paths.js";
import { readMasterPid } from "../src/global/master-pid.js";
import { QUEUE_MODE_SCHEDULED, readEnvelope } from "../src/global/queue-file.js";
import { QueuePaths, type QueueName } from "../src/global/queue-path.js";
import { QueueManager } from "../src/qmgr/qmgr-manager.js";
import { sleep, until, type Instance } from "../src/testing/instance.js";
import { queueMessage, sinkCount, sinkInstance } from "../src/testing/sink-instance.js";
import { daemonPids, processTree } from "../src/testing/proc-tree.js";

/** The recording-sink instance, and its queue paths. */
async function instance(
  t: { after: (fn: () => Promise<void>) => void },
  backoff: string,
): Promise<{ inst: Instance; record: string; paths: QueuePaths }> {
  const { inst, record } = await sinkInstance(t, { backoff });
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
  await until("the killed processes to go", () => !pids.some(alive), { inst, timeoutMs: 10_000 });
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
  const id = await queueMessage(inst, "snd@notice.example", rcpts, "recovery");
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
  await until("the hanging recipient's delivery", () => sinkCount(record, "hang-1@hang.example") >= 1, {
    inst,
    timeoutMs: 20_000,
  });
  await until("the notice to the sender", () => sinkCount(record, "snd@notice.example") >= 1, {
    inst,
    timeoutMs: 20_000,
  });
  await until("the message to go", () => where(paths, id).length === 0, { inst, timeoutMs: 20_000 });
  await sleep(1500);
  assert.equal(sinkCount(record, "snd@notice.example"), 1, "one notice");
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
  await until("the hanging recipient's delivery", () => sinkCount(record, "hang-2@hang.example") >= 1, {
    inst,
    timeoutMs: 20_000,
  });
  await until("the message to be deferred", () => where(paths, id).join() === "deferred", {
    inst,
    timeoutMs: 20_000,
  });
  assert.equal(entries(), 1, "the second attempt's entry alone");
});

test("a second queue manager waits until the first is gone, even when it was killed with SIGKILL", async (t) => {
  const { inst, paths } = await instance(t, "1s");
  const master = readMasterPid(inst.lib) ?? 0;
  await until("qmgr", () => daemonPids(master, "qmgr").length === 1, { inst, timeoutMs: 20_000 });
  const first = daemonPids(master, "qmgr")[0] ?? 0;
  const lock = join(inst.lib, "qmgr.lock");
  const holder = (): string => (existsSync(lock) ? readFileSync(lock, "latin1") : "");
  await until("the lock", () => holder() === `${first}\n`, { inst, timeoutMs: 20_000 });
  // A file left in active/ that the second qmgr must not touch while the first runs.
  const id = await queueMessage(inst, "snd@notice.example", ["hang-3@hang.example"], "recovery");
  await until("the message in active/", () => where(paths, id).join() === "active", {
    inst,
    timeoutMs: 20_000,
  });
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
  await until("the second qmgr to wait", () => stderr.includes("waiting for another queue manager"), {
    inst,
    timeoutMs: 20_000,
  });
  await sleep(1500);
  assert.equal(ready, false, "the second qmgr does not start while the first runs");
  assert.deepEqual(where(paths, id), ["active"], "the second qmgr left the active queue alone");
  await crash(inst);
  await until("the second qmgr to start", () => ready, { inst, timeoutMs: 15_000 });
  assert.equal(holder(), `${second.pid}\n`);
  await until("its recovery", () => where(paths, id).join() !== "active" || stderr.includes("moved 1"), {
    inst,
    timeoutMs: 20_000,
  });
  second.kill("SIGKILL");
});
