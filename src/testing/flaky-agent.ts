/*
 * flaky-agent - a recording sink for the local submission tests
 *
 * SYNOPSIS
 *   master.cf: sink unix - - n - 20 flaky-agent.js /path/to/record.log
 *
 * DESCRIPTION
 *   Like test-agent.ts it appends "ID nexthop recipient pid start-ms
 *   end-ms" to the record file for each delivered recipient, and defers
 *   recipients whose local part starts with "defer-". Recipients starting
 *   with "later-" are deferred while the file <record>.later exists and
 *   delivered once it is gone, so that a test can show that a flush
 *   delivers deferred mail at once. Recipients starting with "show-"
 *   also make it copy the message content to <record>.<recipient>, so a
 *   test can look at the headers as delivered.
 */
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { agentServer } from "../master/agent-server.js";
import type { RcptResult } from "../global/deliver-proto.js";
import { contentLines, readEnvelope } from "../global/queue-file.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";

/** The message content as text. */
async function content(path: string): Promise<string> {
  const r = await readEnvelope(path);
  if (!r.ok) return "";
  const lines: string[] = [];
  for await (const l of contentLines(path, r.env)) lines.push(l.toString("latin1"));
  return lines.join("\n") + "\n";
}

await agentServer({
  name: "flaky-agent",
  async deliver(req, ctx) {
    const record = ctx.args[0] ?? "/dev/null";
    const start = Date.now();
    const results: RcptResult[] = [];
    let lines = "";
    for (const r of req.recipients) {
      const later = r.address.startsWith("later-") && existsSync(`${record}.later`);
      if (r.address.startsWith("defer-") || later) {
        results.push({ status: "deferred", dsn: "4.4.1", text: "test deferral" });
        continue;
      }
      if (r.address.startsWith("show-")) {
        const path = new QueuePaths(ctx.config).path(req.queueName as QueueName, req.queueId);
        writeFileSync(`${record}.${r.address}`, await content(path));
      }
      results.push({ status: "sent", dsn: "2.0.0", text: "delivered to test sink" });
      lines += `${req.queueId} ${req.nexthop} ${r.address} ${process.pid} ${start} ${Date.now()}\n`;
    }
    if (lines !== "") appendFileSync(record, lines);
    return { siteFail: false, relay: `${req.nexthop}[127.0.0.9]:25`, results };
  },
});
