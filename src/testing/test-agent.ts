/*
 * test-agent - a delivery agent for qmgr's tests: a sink that obeys
 *
 * SYNOPSIS
 *   master.cf: sink unix - - n - 20 test-agent.js /path/to/record.log [/path/to/copies]
 *
 * DESCRIPTION
 *   Appends one line per delivered recipient to the record file
 *   ("ID nexthop recipient pid start-ms end-ms"), and decides by the recipient's local part:
 *     defer-*  deferred (4.4.1)        fail-*   bounced (5.1.1)
 *     slow-*   waits 200 ms first      site-*   the whole site fails (site_fail)
 *     hang-*   waits until the file <record>.release exists (at most 60 s), then delivered
 *     crash-*  while <record>.crash exists, the process kills itself (SIGKILL) before delivering
 *     acrash-* delivered and recorded, then, while <record>.crash exists, the
 *              process kills itself before it can report (the delivery is repeated)
 *   everything else is delivered. The nexthop "down" makes every delivery a
 *   site failure, and a nexthop starting with "slow" delays each delivery by 50 ms.
 *   With a second argument, the content of each message with a delivered
 *   recipient is written to that directory as <queue ID>.eml.
 */
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { contentLines, readEnvelope } from "../global/queue-file.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";
import { agentServer } from "../master/agent-server.js";
import type { RcptResult } from "../global/deliver-proto.js";

/** Writes a copy of a queued message's content. */
async function copyContent(path: string, out: string): Promise<void> {
  const r = await readEnvelope(path);
  if (!r.ok) return;
  const lines: Buffer[] = [];
  for await (const l of contentLines(path, r.env)) lines.push(l, Buffer.from("\n"));
  writeFileSync(out, Buffer.concat(lines));
}

/** Waits. */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

await agentServer({
  name: "test-agent",
  async deliver(req, ctx) {
    const record = ctx.args[0] ?? "/dev/null";
    if (req.nexthop === "down" || req.recipients.some((r) => r.address.startsWith("site-"))) {
      return {
        siteFail: true,
        relay: `${req.nexthop}[127.0.0.9]:25`,
        results: req.recipients.map(() => ({
          status: "deferred" as const,
          dsn: "4.4.1",
          text: "connect to site: Connection refused",
        })),
      };
    }
    const start = Date.now();
    if (req.nexthop.startsWith("slow")) await sleep(50);
    const results: RcptResult[] = [];
    let lines = "";
    const crashing = existsSync(`${record}.crash`);
    for (const r of req.recipients) {
      if (r.address.startsWith("slow-")) await sleep(200);
      if (r.address.startsWith("crash-") && crashing) process.kill(process.pid, "SIGKILL");
      if (r.address.startsWith("hang-"))
        for (const end = Date.now() + 60_000; !existsSync(`${record}.release`) && Date.now() < end;)
          await sleep(100);
      if (r.address.startsWith("defer-"))
        results.push({ status: "deferred", dsn: "4.4.1", text: "test deferral" });
      else if (r.address.startsWith("fail-"))
        results.push({ status: "bounced", dsn: "5.1.1", text: "test failure" });
      else {
        results.push({ status: "sent", dsn: "2.0.0", text: "delivered to test sink" });
        lines += `${req.queueId} ${req.nexthop} ${r.address} ${process.pid} ${start} ${Date.now()}\n`;
      }
    }
    const copies = ctx.args[1];
    if (lines !== "" && copies !== undefined)
      await copyContent(
        new QueuePaths(ctx.config).path(req.queueName as QueueName, req.queueId),
        join(copies, `${req.queueId}.eml`),
      );
    if (lines !== "") appendFileSync(record, lines);
    if (crashing && req.recipients.some((r) => r.address.startsWith("acrash-")))
      process.kill(process.pid, "SIGKILL");
    return { siteFail: false, relay: `${req.nexthop}[127.0.0.9]:25`, results };
  },
});
