/*
 * cleanup.test - cleanup on a real instance: streaming, durability, headers, limits
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { startInstance, type Instance } from "../src/testing/instance.js";
import { CleanupClient, type CleanupResult } from "../src/global/cleanup-client.js";
import { CLEANUP_FLAG } from "../src/global/cleanup-proto.js";
import { contentLines, readEnvelope } from "../src/global/queue-file.js";

/** Starts an instance with a cleanup service. */
async function instance(t: { after: (fn: () => Promise<void>) => void }, main = ""): Promise<Instance> {
  return startInstance(t, { main, master: "cleanup unix - - n - 0 cleanup\n" });
}

/** Submits one message. */
async function submit(
  inst: Instance,
  opts: {
    flags?: number;
    sender?: string;
    rcpts?: string[];
    data: string | Buffer;
    fullName?: string;
    /** As smtpd hands over a remote client's message: headers are neither rewritten nor completed. */
    remote?: boolean;
  },
): Promise<CleanupResult> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  const s = c.client;
  if (opts.flags !== undefined) await s.flags(opts.flags);
  if (opts.remote === true) await s.attr("rewrite_context", "remote");
  if (opts.fullName !== undefined) await s.attr("full_name", opts.fullName);
  await s.sender(opts.sender ?? "alice@example.com");
  for (const r of opts.rcpts ?? ["bob@example.net"]) await s.rcpt({ address: r, original: r });
  await s.data(Buffer.isBuffer(opts.data) ? opts.data : Buffer.from(opts.data));
  return s.end();
}

/** The queued file's content as text with LF line ends. */
async function content(
  inst: Instance,
  id: string,
): Promise<{ text: string; sender: string; rcpts: string[] }> {
  const path = join(inst.spool, "incoming", id);
  const env = await readEnvelope(path);
  assert.ok(env.ok, env.ok ? "" : env.reason);
  const lines: string[] = [];
  for await (const l of contentLines(path, env.env)) lines.push(l.toString("latin1"));
  return {
    text: lines.join("\n") + "\n",
    sender: env.env.sender,
    rcpts: env.env.recipients.map((r) => r.address),
  };
}

test("a message is queued durably and read back intact, CRLF and LF alike", async (t) => {
  const inst = await instance(t);
  const r = await submit(inst, {
    rcpts: ["bob@example.net", "carol@example.net", "bob@example.net"],
    data: "Subject: hi\r\nFrom: alice@example.com\r\n\r\nline one\r\nline two\n",
    remote: true,
  });
  assert.equal(r.status, "ok");
  if (r.status !== "ok") return;
  const m = await content(inst, r.queueId);
  assert.equal(m.text, "Subject: hi\nFrom: alice@example.com\n\nline one\nline two\n");
  assert.equal(m.sender, "alice@example.com");
  assert.deepEqual(m.rcpts, ["bob@example.net", "carol@example.net"], "duplicates are removed");
  await inst.waitLog(new RegExp(`postfix/cleanup\\[\\d+\\]: ${r.queueId}: message-id=`));
});

test("a large message streams through without loss", async (t) => {
  const inst = await instance(t);
  const body = Array.from({ length: 40000 }, (_, i) => `line ${i} ${"x".repeat(60)}`).join("\r\n");
  const long = "y".repeat(100_000);
  const r = await submit(inst, { data: `Subject: big\r\n\r\n${body}\r\n${long}\r\nend\r\n`, remote: true });
  assert.equal(r.status, "ok");
  if (r.status !== "ok") return;
  const m = await content(inst, r.queueId);
  assert.equal(m.text, `Subject: big\n\n${body.replace(/\r\n/g, "\n")}\n${long}\nend\n`);
});

test("local submissions get From, Date, Message-ID; Bcc is removed", async (t) => {
  const inst = await instance(
    t,
    "myhostname = mx.example.org\nundisclosed_recipients_header = To: undisclosed-recipients:;\n",
  );
  const r = await submit(inst, {
    flags: CLEANUP_FLAG.LOCAL_HEADERS,
    fullName: "Alice Q",
    data: "Subject: x\nBcc: secret@example.net\n\nbody\n",
  });
  assert.equal(r.status, "ok");
  if (r.status !== "ok") return;
  const m = await content(inst, r.queueId);
  assert.match(
    m.text,
    /^Subject: x\nFrom: Alice Q <alice@example.com>\nDate: \w{3}, \d+ \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}/,
  );
  assert.match(
    m.text,
    new RegExp(
      `\\nMessage-ID: <\\d{14}\\.${r.queueId}@mx\\.example\\.org>\\nTo: undisclosed-recipients:;\\n\\nbody\\n$`,
    ),
  );
  assert.doesNotMatch(m.text, /Bcc|secret/);
});

test("message_size_limit, hopcount_limit and missing recipients are rejected and leave no file", async (t) => {
  const inst = await instance(t, "message_size_limit = 1000\nhopcount_limit = 3\n");
  const big = await submit(inst, { data: "Subject: big\n\n" + "z".repeat(2000) + "\n" });
  assert.deepEqual(big, { status: "reject", code: "552 5.3.4", reason: "Message file too big" });
  const hops = await submit(inst, { data: "Received: a\nReceived: b\nReceived: c\nReceived: d\n\nx\n" });
  assert.equal(hops.status, "reject");
  assert.match(JSON.stringify(hops), /5\.4\.6/);
  const none = await submit(inst, { rcpts: [], data: "Subject: x\n\nx\n" });
  assert.equal(none.status, "reject");
  assert.deepEqual(
    readdirSync(join(inst.spool, "incoming")),
    [],
    "no queue file and no temporary file is left",
  );
});

test("a client that goes away before the end leaves nothing behind", async (t) => {
  const inst = await instance(t);
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok);
  await c.client.sender("a@b");
  await c.client.rcpt({ address: "c@d" });
  await c.client.data(Buffer.from("Subject: x\n\npartial"));
  c.client.abort();
  for (let i = 0; i < 50 && readdirSync(join(inst.spool, "incoming")).length > 0; i++)
    await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(readdirSync(join(inst.spool, "incoming")), []);
});
