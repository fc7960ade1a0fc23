/*
 * sink-instance - an instance whose default transport records deliveries
 *
 * SYNOPSIS
 *   const { inst, record } = await sinkInstance(t, { backoff: "1s" });
 *   const id = await queueMessage(inst, "s@example.org", ["r@example.org"]);
 *   sinkCount(record, "r@example.org");
 *
 * DESCRIPTION
 *   The queue's own daemons (cleanup, trivial-rewrite, qmgr, bounce) and
 *   the recording test agent (test-agent.ts) as default_transport; the
 *   record file (one "ID nexthop recipient" line per delivered recipient)
 *   and the instance are removed after the test. queueMessage() queues a
 *   message straight through cleanup.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CleanupClient } from "../global/cleanup-client.js";
import { shippedEntries, startInstance, type Instance } from "./instance.js";

/** The recipients the sink delivered, in order (one entry per delivery). */
export function sinkDelivered(record: string): string[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ")[2] ?? "");
}

/** How often the sink delivered to a recipient. */
export function sinkCount(record: string, rcpt: string): number {
  return sinkDelivered(record).filter((r) => r === rcpt).length;
}

/** Queues a message from sender to recipients through cleanup; its queue ID. */
export async function queueMessage(
  inst: Instance,
  sender: string,
  rcpts: string[],
  subject = "test",
): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok);
  await c.client.sender(sender);
  for (const r of rcpts) await c.client.rcpt({ address: r });
  await c.client.data(Buffer.from(`Subject: ${subject}\n\nto ${rcpts.join(", ")}\n`));
  const r = await c.client.end();
  assert.equal(r.status, "ok");
  return r.status === "ok" ? r.queueId : "";
}

/** An instance whose default transport is the recording sink (backoff: the retry time, 1s by default). */
export async function sinkInstance(
  t: { after: (fn: () => Promise<void>) => void },
  opts: { backoff?: string } = {},
): Promise<{ inst: Instance; record: string }> {
  const rec = mkdtempSync(join(tmpdir(), "postern-sink-"));
  chmodSync(rec, 0o1777);
  const record = join(rec, "sink.log");
  const backoff = opts.backoff ?? "1s";
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
      // The shipped queue services, with their columns, and a recording agent as the default transport.
      master: [
        shippedEntries("cleanup", "rewrite", "qmgr", "bounce", "defer", "trace"),
        `sink unix - - n - 20 test-agent.js ${record}`,
        "",
      ].join("\n"),
    },
    () => rmSync(rec, { recursive: true, force: true }),
  );
  return { inst, record };
}
