/*
 * qmgr.test - the queue manager on real processes with a test delivery agent
 *
 * DESCRIPTION
 *   An instance runs cleanup, trivial-rewrite, qmgr and a "sink" transport
 *   (src/testing/test-agent.ts) that records each delivery with its start
 *   and end time and defers, fails or drops the connection on demand. The
 *   tests check what an administrator would see: mail delivered and
 *   removed, deferred mail retried, concurrency that grows to its limit and
 *   collapses against a dead site without slowing other sites, small mail
 *   flowing past a big mailing, and a qmgr crash in the middle of a big
 *   delivery losing nothing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Instance,
  queueFileNames,
  startInstance,
  until,
  shippedEntries,
} from "../src/testing/instance.js";
import { CleanupClient } from "../src/global/cleanup-client.js";

interface Delivery {
  id: string;
  nexthop: string;
  rcpt: string;
  start: number;
  end: number;
}

/** Starts an instance with the mail path and a recording sink. */
async function instance(
  t: { after: (fn: () => Promise<void>) => void },
  main = "",
  qmgrWakeup = "300",
): Promise<Instance & { record: string }> {
  const recDir = mkdtempSync(join(tmpdir(), "postern-rec-"));
  chmodSync(recDir, 0o1777);
  const record = join(recDir, "deliveries.log");
  const inst = await startInstance(
    t,
    {
      main: `default_transport = sink\nmydestination =\nrelay_domains =\ninitial_destination_concurrency = 2\n${main}`,
      master: [
        shippedEntries("cleanup"),
        `qmgr unix n - n ${qmgrWakeup} 1 qmgr`,
        shippedEntries("rewrite"),
        `sink unix - - n - 100 test-agent.js ${record}`,
        "",
      ].join("\n"),
    },
    () => rmSync(recDir, { recursive: true, force: true }),
  );
  return Object.assign(inst, { record });
}

/** Submits a message to recipients; returns its queue ID. */
async function submit(inst: Instance, rcpts: string[], subject = "test"): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  await c.client.sender("sender@example.org");
  for (const r of rcpts) await c.client.rcpt({ address: r, original: r });
  await c.client.data(Buffer.from(`Subject: ${subject}\n\nbody\n`));
  const r = await c.client.end();
  assert.equal(r.status, "ok");
  return c.client.queueId;
}

/** The deliveries recorded so far. */
function deliveries(record: string): Delivery[] {
  let text: string;
  try {
    text = readFileSync(record, "utf8");
  } catch {
    return [];
  }
  return text
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [id = "", nexthop = "", rcpt = "", , start = "0", end = "0"] = l.split(" ");
      return { id, nexthop, rcpt, start: Number(start), end: Number(end) };
    });
}

/** The most deliveries to a nexthop that overlapped in time. */
function maxOverlap(ds: Delivery[]): number {
  const ev = ds
    .flatMap((d) => [[d.start, 1] as const, [d.end, -1] as const])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, k] of ev) max = Math.max(max, (cur += k));
  return max;
}

test("mail is delivered, logged and removed", async (t) => {
  const inst = await instance(t);
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(await submit(inst, [`a${i}@one.example`, `b${i}@two.example`]));
  await until("40 deliveries", () => deliveries(inst.record).length === 40);
  for (const id of ids) await inst.waitLog(new RegExp(`${id}: removed`));
  await inst.waitLog(/: from=<sender@example\.org>, size=\d+, nrcpt=2 \(queue active\)/);
  assert.match(
    inst.log(),
    /: to=<a0@one\.example>, relay=one\.example\[127\.0\.0\.9\]:25, delay=[\d.]+, delays=[\d.]+\/[\d.]+\/[\d.]+\/[\d.]+, dsn=2\.0\.0, status=sent \(delivered to test sink\)/,
  );
  assert.deepEqual(queueFileNames(inst, "incoming").concat(queueFileNames(inst, "active")), []);
});

test("a deferred recipient waits in deferred/ with its retry time; a flush retries it", async (t) => {
  const inst = await instance(t);
  const id = await submit(inst, ["ok@three.example", "defer-1@three.example"]);
  await inst.waitLog(new RegExp(`${id}: to=<defer-1@three\\.example>.*status=deferred \\(test deferral\\)`));
  await until("the file in deferred/", () => queueFileNames(inst, "deferred").includes(id));
  assert.equal(deliveries(inst.record).filter((d) => d.id === id).length, 1);
  const deferredPath = join(inst.spool, "deferred", id[0] as string, id);
  assert.ok(statSync(deferredPath).mtimeMs > Date.now() + 60_000, "the next retry time is in the future");
  assert.equal((await inst.postern("flush")).code, 0);
  await until(
    "a second attempt",
    () => (inst.log().match(new RegExp(`${id}: to=<defer-1@`, "g")) ?? []).length >= 2,
  );
  assert.equal(
    deliveries(inst.record).filter((d) => d.id === id).length,
    1,
    "the delivered recipient is not delivered again",
  );
});

test("concurrency grows to the limit against a fast site and collapses against a dead one, which does not slow others", async (t) => {
  const inst = await instance(t, "sink_destination_concurrency_limit = 8\n");
  for (let i = 0; i < 150; i++) await submit(inst, [`u${i}@slow.example`]);
  for (let i = 0; i < 10; i++) await submit(inst, [`u${i}@down`]);
  for (let i = 0; i < 10; i++) await submit(inst, [`u${i}@fine.example`]);
  await until(
    "150 deliveries to slow.example",
    () => deliveries(inst.record).filter((d) => d.nexthop === "slow.example").length === 150,
    { timeoutMs: 60_000 },
  );
  const slow = deliveries(inst.record).filter((d) => d.nexthop === "slow.example");
  const peak = maxOverlap(slow);
  console.log(`# concurrency to slow.example: started at 2, peaked at ${peak} (limit 8)`);
  assert.ok(peak > 2 && peak <= 8, `peak concurrency ${peak}`);
  await inst.waitLog(/sink:down: destination is dead after repeated failures/);
  const fine = deliveries(inst.record).filter((d) => d.nexthop === "fine.example");
  assert.equal(fine.length, 10, "mail to a healthy site is delivered");
  const attemptsDown = (inst.log().match(/to=<u\d+@down>/g) ?? []).length;
  assert.ok(attemptsDown <= 10, `deliveries to the dead site stop (${attemptsDown} attempts)`);
});

test("fairness: small messages flow past a 5,000-recipient mailing to the same site", async (t) => {
  const inst = await instance(
    t,
    "sink_destination_concurrency_limit = 4\nsink_destination_recipient_limit = 50\n",
  );
  const big = Array.from({ length: 5000 }, (_, i) => `list${i}@slowlist.example`);
  const bigId = await submit(inst, big, "big");
  await until("the mailing under way", () => deliveries(inst.record).length > 0);
  const t0 = Date.now();
  const small: string[] = [];
  for (let i = 0; i < 10; i++) small.push(await submit(inst, [`one${i}@slowlist.example`], "small"));
  await until(
    "the small messages",
    () => small.every((id) => deliveries(inst.record).some((d) => d.id === id)),
    { timeoutMs: 60_000 },
  );
  const smallDone =
    Math.max(
      ...deliveries(inst.record)
        .filter((d) => small.includes(d.id))
        .map((d) => d.end),
    ) - t0;
  await until("the mailing", () => deliveries(inst.record).filter((d) => d.id === bigId).length === 5000, {
    timeoutMs: 60_000,
  });
  const bigDone =
    Math.max(
      ...deliveries(inst.record)
        .filter((d) => d.id === bigId)
        .map((d) => d.end),
    ) - t0;
  console.log(
    `# 10 small messages delivered within ${smallDone} ms; the 5,000-recipient mailing finished after ${bigDone} ms`,
  );
  assert.ok(smallDone < bigDone / 3, `small mail waited ${smallDone} ms of the mailing's ${bigDone} ms`);
});

test("a qmgr crash in the middle of a 1,000-recipient delivery loses nothing and repeats almost nothing", async (t) => {
  const inst = await instance(
    t,
    "sink_destination_recipient_limit = 10\nsink_destination_concurrency_limit = 4\n",
    "1",
  );
  const rcpts = Array.from({ length: 1000 }, (_, i) => `r${i}@slowcrash.example`);
  const id = await submit(inst, rcpts);
  await until("a third delivered", () => deliveries(inst.record).length >= 300, { timeoutMs: 60_000 });
  const qmgrPid = Number(/postfix\/qmgr\[(\d+)\]/.exec(inst.log())?.[1]);
  assert.ok(qmgrPid > 0);
  process.kill(qmgrPid, "SIGKILL");
  await until("all delivered", () => new Set(deliveries(inst.record).map((d) => d.rcpt)).size === 1000, {
    timeoutMs: 90_000,
  });
  await inst.waitLog(new RegExp(`${id}: removed`), 30_000);
  const all = deliveries(inst.record).filter((d) => d.id === id);
  const dup = all.length - new Set(all.map((d) => d.rcpt)).size;
  console.log(`# after the crash: 1000 of 1000 recipients delivered, ${dup} delivered twice`);
  assert.ok(dup <= 40, `${dup} duplicates`);
});
