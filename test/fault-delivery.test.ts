/*
 * fault-delivery.test - next hops that hang, fail per recipient, or crash mid-delivery
 *
 * DESCRIPTION
 *   Part of the fault suite (npm run test:faults) and, being fast, of npm
 *   test. qmgr with the recording sink agent (src/testing/test-agent.ts)
 *   as the default transport, each fault at its own destination:
 *   - a delivery that hangs does not hold up mail to other destinations,
 *     and completes once the next hop answers;
 *   - one message to a delivered, a deferred and a bounced recipient:
 *     the first is delivered once and never again on the retries, the
 *     bounced one draws a notice to the sender, the deferred one stays
 *     queued;
 *   - an agent that dies before it delivers: the message is deferred and
 *     delivered once the agent works again;
 *   - an agent that delivers and dies before it can report: the message
 *     is delivered again (at least once; the duplicates are counted and
 *     printed), never lost.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { Config } from "../src/global/config.js";
import { QueuePaths } from "../src/global/queue-path.js";
import { type Instance, sleep, startInstance, until } from "../src/testing/instance.js";

/** The sink's record: one entry per delivered recipient. */
function delivered(record: string): string[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ")[2] ?? "");
}

/** How often a recipient was delivered. */
function count(record: string, rcpt: string): number {
  return delivered(record).filter((r) => r === rcpt).length;
}

/** Queues a message from sender to recipients through cleanup. */
async function queue(inst: Instance, sender: string, rcpts: string[]): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok);
  await c.client.sender(sender);
  for (const r of rcpts) await c.client.rcpt({ address: r });
  await c.client.data(Buffer.from(`Subject: delivery fault\n\nto ${rcpts.join(", ")}\n`));
  const r = await c.client.end();
  assert.equal(r.status, "ok");
  return r.status === "ok" ? r.queueId : "";
}

/** An instance whose default transport is the sink; the record and the instance go after the test. */
async function instance(t: {
  after: (fn: () => Promise<void>) => void;
}): Promise<{ inst: Instance; record: string }> {
  const rec = mkdtempSync(join(tmpdir(), "postern-dfault-"));
  chmodSync(rec, 0o1777);
  const record = join(rec, "sink.log");
  const inst = await startInstance(
    t,
    {
      main: [
        "myhostname = mx.example.org",
        "mydestination =",
        "default_transport = sink",
        "minimal_backoff_time = 1s",
        "maximal_backoff_time = 1s",
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
  return { inst, record };
}

test("a hanging next hop holds up no other destination; per-recipient failures are handled once", async (t) => {
  const { inst, record } = await instance(t);
  await queue(inst, "sender@notice.example", ["hang-1@hang.example"]);
  await sleep(300);
  for (let i = 0; i < 10; i++) await queue(inst, "sender@notice.example", [`ok-${i}@fine.example`]);
  const mixed = await queue(inst, "mixer@notice.example", [
    "ok-m@mix.example",
    "defer-m@mix.example",
    "fail-m@mix.example",
  ]);
  await until(
    "mail to other destinations while one hangs",
    () => Array.from({ length: 10 }, (_, i) => `ok-${i}@fine.example`).every((r) => count(record, r) === 1),
    { timeoutMs: 20_000, inst },
  );
  assert.equal(count(record, "hang-1@hang.example"), 0, "the hanging delivery is still pending");
  await until("the bounce notice to the sender", () => count(record, "mixer@notice.example") >= 1, {
    timeoutMs: 20_000,
    inst,
  });
  await inst.waitLog(new RegExp(`${mixed}: to=<defer-m@mix\\.example>.*status=deferred`));
  await sleep(3000); // a few retries of the deferred recipient (backoff 1 s)
  assert.equal(
    count(record, "ok-m@mix.example"),
    1,
    "a delivered recipient is not delivered again on retries",
  );
  assert.equal(count(record, "mixer@notice.example"), 1, "one notice for the bounced recipient");
  assert.equal(count(record, "defer-m@mix.example"), 0);
  writeFileSync(`${record}.release`, "");
  await until("the hanging delivery, once released", () => count(record, "hang-1@hang.example") === 1, {
    timeoutMs: 20_000,
    inst,
  });
  t.diagnostic(`${delivered(record).length} deliveries: hang released, 10 others meanwhile, 1 notice`);
});

test("an agent that dies before or after delivering: the message is deferred, then delivered at least once", async (t) => {
  const { inst, record } = await instance(t);
  const paths = new QueuePaths(Config.load(inst.etc));
  // qmgr defers the recipients of an agent that went away: the reason is in the message's defer log
  // (what mailq shows), and the message waits in deferred/.
  const deferred = (id: string): Promise<void> =>
    until(
      `${id} deferred with "unknown mail transport error"`,
      () =>
        existsSync(paths.path("deferred", id)) &&
        existsSync(paths.path("defer", id)) &&
        readFileSync(paths.path("defer", id), "latin1").includes("unknown mail transport error"),
      { timeoutMs: 20_000, inst },
    );
  // One fault at a time: an agent process serves several deliveries, and its death ends them all.
  writeFileSync(`${record}.crash`, "");
  const before = await queue(inst, "sender@notice.example", ["crash-1@crash.example"]);
  await deferred(before);
  // The maillog has one status=deferred line for the recipient, as for any deferral.
  await inst.waitLog(
    new RegExp(
      `${before}: to=<crash-1@crash\\.example>, relay=none, delay=[\\d.]+, delays=[\\d.]+/[\\d.]+/0/0, dsn=4\\.3\\.0, status=deferred \\(unknown mail transport error`,
    ),
  );
  assert.equal(count(record, "crash-1@crash.example"), 0, "nothing delivered by the agent that died first");
  unlinkSync(`${record}.crash`);
  await until("delivery once the agent works", () => count(record, "crash-1@crash.example") >= 1, {
    timeoutMs: 20_000,
    inst,
  });
  await inst.waitLog(new RegExp(`${before}: removed`));
  assert.equal(
    count(record, "crash-1@crash.example"),
    1,
    "died before delivering: delivered exactly once later",
  );

  writeFileSync(`${record}.crash`, "");
  const after = await queue(inst, "sender@notice.example", ["acrash-1@acrash.example"]);
  await deferred(after);
  assert.ok(count(record, "acrash-1@acrash.example") >= 1, "the agent delivered before it died");
  unlinkSync(`${record}.crash`);
  await until("delivery again once the agent works", () => count(record, "acrash-1@acrash.example") >= 2, {
    timeoutMs: 20_000,
    inst,
  });
  await inst.waitLog(new RegExp(`${after}: removed`));
  const crashes = (inst.log().match(/warning: .*killed by signal/g) ?? []).length;
  const dups = count(record, "acrash-1@acrash.example") - 1;
  t.diagnostic(
    `${crashes} agent deaths; ${dups} duplicate deliveries (a delivery whose report was lost is repeated)`,
  );
});
