/*
 * smtp-smuggling.test - whatever a queue file holds, the smtp client sends clean lines
 *
 * DESCRIPTION
 *   A message whose content holds a bare CR (kept in the queue file because
 *   cleanup_replace_stray_cr_lf = no, as an old queue file or a milter's
 *   edit could hold one) is relayed to a recording SMTP server on loopback:
 *   what goes over the wire has CR only before LF, and no line other than
 *   the final one is a lone dot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { relayInstance, submitMessage } from "../src/testing/smtp-peers.js";
import { until } from "../src/testing/instance.js";

/** A minimal SMTP server that records the bytes of each DATA. */
function recordingServer(): Promise<{ port: number; data: Buffer[]; close: () => void }> {
  const data: Buffer[] = [];
  const server = createServer((sock: Socket) => {
    let buf = Buffer.alloc(0);
    let inData = false;
    sock.write("220 sink ESMTP\r\n");
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (inData) {
          const end = buf.indexOf("\r\n.\r\n");
          if (end < 0) return;
          data.push(buf.subarray(0, end + 2));
          buf = buf.subarray(end + 5);
          inData = false;
          sock.write("250 2.0.0 Ok\r\n");
          continue;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString("latin1");
        buf = buf.subarray(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") sock.write("250-sink\r\n250 8BITMIME\r\n");
        else if (verb === "DATA") {
          inData = true;
          sock.write("354 go\r\n");
        } else if (verb === "QUIT") sock.end("221 bye\r\n");
        else sock.write("250 2.0.0 Ok\r\n");
      }
    });
    sock.on("error", () => undefined);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      resolve({
        port: typeof addr === "object" && addr !== null ? addr.port : 0,
        data,
        close: () => server.close(),
      });
    }),
  );
}

test("the smtp client never sends a bare CR, or a lone dot inside the data, whatever the queue file holds", async (t) => {
  const sink = await recordingServer();
  t.after(() => sink.close());
  const inst = await relayInstance(
    t,
    // Keep the stray CR in the queue file, as an old one could hold it.
    `relayhost = [127.0.0.1]:${sink.port}\ncleanup_replace_stray_cr_lf = no\n`,
  );
  await submitMessage(inst, {
    rcpts: ["someone@remote.test"],
    content: "Subject: smuggle\n\nfirst\rsecond\r.\rMAIL FROM:<evil@example.org>\n.\nlast\n",
  });
  await until("the relayed message", () => sink.data.length === 1, { inst });
  const wire = sink.data[0] ?? Buffer.alloc(0);
  for (let i = 0; i < wire.length; i++)
    if (wire[i] === 0x0d) assert.equal(wire[i + 1], 0x0a, `a CR at byte ${i} is not followed by LF`);
  const lines = wire.toString("latin1").split("\r\n");
  assert.ok(!lines.includes("."), "no lone dot before the end of the data");
  assert.ok(lines.includes("first second . MAIL FROM:<evil@example.org>"), lines.join("\n"));
  assert.ok(lines.includes(".."), "the dot line is stuffed");
});
