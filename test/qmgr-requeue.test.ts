/*
 * qmgr-requeue.test - "postsuper -r" end to end: qmgr passes the message through cleanup again
 *
 * DESCRIPTION
 *   An instance runs cleanup (with virtual_alias_maps), trivial-rewrite,
 *   qmgr and the recording sink (src/testing/test-agent.ts). A deferred
 *   message and a held one are requeued with postsuper -r after the
 *   administrator changed virtual_alias_maps and reloaded: each comes back
 *   as a new queue file ("OLD: requeued as NEW"), the new alias mapping is
 *   applied to the recipients not yet delivered (and only to those), the
 *   original address is kept as orig_to, and the old file is gone.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Instance,
  makeInstance,
  queueFileNames,
  until,
  shippedEntries,
} from "../src/testing/instance.js";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { runCli } from "../src/testing/run-cli.js";

/** The recipients delivered so far, as "ID recipient" strings. */
function delivered(record: string): string[] {
  let text: string;
  try {
    text = readFileSync(record, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" "))
    .map(([id = "", , rcpt = ""]) => `${id} ${rcpt}`);
}

/** Submits a message; returns its queue ID. */
async function submit(inst: Instance, rcpts: string[]): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  await c.client.sender("sender@example.org");
  for (const r of rcpts) await c.client.rcpt({ address: r, original: r });
  await c.client.data(Buffer.from("Subject: requeue me\n\nbody line\n"));
  const r = await c.client.end();
  assert.equal(r.status, "ok");
  return c.client.queueId;
}

test("postsuper -r on a deferred and a held message applies a changed virtual_alias_maps", async (t) => {
  const recDir = mkdtempSync(join(tmpdir(), "postern-rec-"));
  chmodSync(recDir, 0o1777);
  const record = join(recDir, "deliveries.log");
  const virtual = join(recDir, "virtual");
  writeFileSync(virtual, "nobody@nowhere.example other@nowhere.example\n");
  const inst = makeInstance({
    main: `default_transport = sink\nmydestination =\nrelay_domains =\nvirtual_alias_maps = texthash:${virtual}\n`,
    master: [
      shippedEntries("cleanup"),
      shippedEntries("qmgr"),
      shippedEntries("rewrite"),
      `sink unix - - n - 100 test-agent.js ${record}`,
      "",
    ].join("\n"),
  });
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
    rmSync(recDir, { recursive: true, force: true });
  });
  assert.equal((await inst.start()).code, 0);
  const a = await submit(inst, ["ok-a@three.example", "defer-a@three.example"]);
  const b = await submit(inst, ["defer-b@three.example"]);
  await until("both deferred", () => [a, b].every((id) => queueFileNames(inst, "deferred").includes(id)));
  const hold = await runCli("postsuper", ["-c", inst.etc, "-h", b]);
  assert.equal(hold.code, 0, hold.stderr);
  assert.deepEqual(queueFileNames(inst, "hold"), [b]);
  assert.deepEqual(delivered(record), [`${a} ok-a@three.example`]);

  writeFileSync(
    virtual,
    "defer-a@three.example moved-a@four.example\ndefer-b@three.example moved-b@four.example\n",
  );
  assert.equal((await inst.postern("reload")).code, 0);
  for (const id of [a, b]) {
    const r = await runCli("postsuper", ["-c", inst.etc, "-r", id]);
    assert.equal(r.code, 0, r.stderr);
  }
  await inst.postern("flush");
  const newA = /: requeued as (\w+)/.exec(await inst.waitLog(new RegExp(`${a}: requeued as \\w+`)))?.[1];
  const newB = /: requeued as (\w+)/.exec(await inst.waitLog(new RegExp(`${b}: requeued as \\w+`)))?.[1];
  assert.ok(newA !== undefined && newB !== undefined && newA !== a && newB !== b);
  await until("the requeued deliveries", () => delivered(record).length === 3);
  assert.deepEqual(
    delivered(record).sort(),
    [`${a} ok-a@three.example`, `${newA} moved-a@four.example`, `${newB} moved-b@four.example`].sort(),
  );
  await inst.waitLog(
    new RegExp(`${newA}: to=<moved-a@four\\.example>, orig_to=<defer-a@three\\.example>,.*status=sent`),
  );
  await inst.waitLog(new RegExp(`${newB}: removed`));
  for (const q of ["incoming", "active", "deferred", "hold"])
    assert.deepEqual(queueFileNames(inst, q), [], q);
});
