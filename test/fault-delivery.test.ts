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
import { existsSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { Config } from "../src/global/config.js";
import { QueuePaths } from "../src/global/queue-path.js";
import { sleep, until } from "../src/testing/instance.js";
import { queueMessage, sinkCount, sinkDelivered, sinkInstance } from "../src/testing/sink-instance.js";

test("a hanging next hop holds up no other destination; per-recipient failures are handled once", async (t) => {
  const { inst, record } = await sinkInstance(t);
  await queueMessage(inst, "sender@notice.example", ["hang-1@hang.example"], "delivery fault");
  await sleep(300);
  for (let i = 0; i < 10; i++)
    await queueMessage(inst, "sender@notice.example", [`ok-${i}@fine.example`], "delivery fault");
  const mixed = await queueMessage(inst, "mixer@notice.example", [
    "ok-m@mix.example",
    "defer-m@mix.example",
    "fail-m@mix.example",
  ]);
  await until(
    "mail to other destinations while one hangs",
    () =>
      Array.from({ length: 10 }, (_, i) => `ok-${i}@fine.example`).every((r) => sinkCount(record, r) === 1),
    { timeoutMs: 20_000, inst },
  );
  assert.equal(sinkCount(record, "hang-1@hang.example"), 0, "the hanging delivery is still pending");
  await until("the bounce notice to the sender", () => sinkCount(record, "mixer@notice.example") >= 1, {
    timeoutMs: 20_000,
    inst,
  });
  await inst.waitLog(new RegExp(`${mixed}: to=<defer-m@mix\\.example>.*status=deferred`));
  await sleep(3000); // a few retries of the deferred recipient (backoff 1 s)
  assert.equal(
    sinkCount(record, "ok-m@mix.example"),
    1,
    "a delivered recipient is not delivered again on retries",
  );
  assert.equal(sinkCount(record, "mixer@notice.example"), 1, "one notice for the bounced recipient");
  assert.equal(sinkCount(record, "defer-m@mix.example"), 0);
  writeFileSync(`${record}.release`, "");
  await until("the hanging delivery, once released", () => sinkCount(record, "hang-1@hang.example") === 1, {
    timeoutMs: 20_000,
    inst,
  });
  t.diagnostic(`${sinkDelivered(record).length} deliveries: hang released, 10 others meanwhile, 1 notice`);
});

test("an agent that dies before or after delivering: the message is deferred, then delivered at least once", async (t) => {
  const { inst, record } = await sinkInstance(t);
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
  const before = await queueMessage(
    inst,
    "sender@notice.example",
    ["crash-1@crash.example"],
    "delivery fault",
  );
  await deferred(before);
  // The maillog has one status=deferred line for the recipient, as for any deferral.
  await inst.waitLog(
    new RegExp(
      `${before}: to=<crash-1@crash\\.example>, relay=none, delay=[\\d.]+, delays=[\\d.]+/[\\d.]+/0/0, dsn=4\\.3\\.0, status=deferred \\(unknown mail transport error`,
    ),
  );
  assert.equal(
    sinkCount(record, "crash-1@crash.example"),
    0,
    "nothing delivered by the agent that died first",
  );
  unlinkSync(`${record}.crash`);
  await until("delivery once the agent works", () => sinkCount(record, "crash-1@crash.example") >= 1, {
    timeoutMs: 20_000,
    inst,
  });
  await inst.waitLog(new RegExp(`${before}: removed`));
  assert.equal(
    sinkCount(record, "crash-1@crash.example"),
    1,
    "died before delivering: delivered exactly once later",
  );

  writeFileSync(`${record}.crash`, "");
  const after = await queueMessage(
    inst,
    "sender@notice.example",
    ["acrash-1@acrash.example"],
    "delivery fault",
  );
  await deferred(after);
  assert.ok(sinkCount(record, "acrash-1@acrash.example") >= 1, "the agent delivered before it died");
  unlinkSync(`${record}.crash`);
  await until(
    "delivery again once the agent works",
    () => sinkCount(record, "acrash-1@acrash.example") >= 2,
    {
      timeoutMs: 20_000,
      inst,
    },
  );
  await inst.waitLog(new RegExp(`${after}: removed`));
  const crashes = (inst.log().match(/warning: .*killed by signal/g) ?? []).length;
  const dups = sinkCount(record, "acrash-1@acrash.example") - 1;
  t.diagnostic(
    `${crashes} agent deaths; ${dups} duplicate deliveries (a delivery whose report was lost is repeated)`,
  );
});
