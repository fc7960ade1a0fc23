/*
 * cleanup-checks.test - content actions and virtual aliasing through a real cleanup daemon
 *
 * DESCRIPTION
 *   One instance with header_checks and body_checks (regexp files) and
 *   virtual_alias_maps (a texthash file). Messages submitted over
 *   private/cleanup show that REJECT refuses the message and leaves no
 *   file, HOLD publishes it in hold/ instead of incoming/, DISCARD accepts
 *   and drops it, REDIRECT replaces the recipients, and virtual aliases
 *   are expanded before the file is written; each action is logged in
 *   Postfix's format.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeInstance, type Instance } from "../src/testing/instance.js";
import { CleanupClient, type CleanupResult } from "../src/global/cleanup-client.js";
import { CLEANUP_FLAG } from "../src/global/cleanup-proto.js";
import { contentLines, readEnvelope } from "../src/global/queue-file.js";

let inst: Instance;

before(async () => {
  inst = makeInstance({ master: "cleanup unix - - n - 0 cleanup\n" });
  writeFileSync(
    join(inst.etc, "header_checks"),
    [
      "/^Subject: .*reject me/  REJECT",
      "/^Subject: .*hold me/    HOLD held for review",
      "/^Subject: .*discard me/ DISCARD",
      "/^X-Redirect: yes/       REDIRECT quarantine@example.org",
    ].join("\n") + "\n",
  );
  writeFileSync(join(inst.etc, "body_checks"), "/^forbidden words/ REJECT 5.7.1 no thanks\n");
  writeFileSync(
    join(inst.etc, "virtual"),
    "list@example.com  a@example.net, b@example.net\nalias@example.com  list@example.com\n",
  );
  appendFileSync(
    join(inst.etc, "main.cf"),
    [
      `header_checks = regexp:${join(inst.etc, "header_checks")}`,
      `body_checks = regexp:${join(inst.etc, "body_checks")}`,
      `virtual_alias_maps = texthash:${join(inst.etc, "virtual")}`,
      "",
    ].join("\n"),
  );
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await inst.postern("abort");
  inst.cleanup();
});

/** Submits one message with checks and mapping on. */
async function submit(
  subject: string,
  opts: { rcpts?: string[]; extra?: string; body?: string } = {},
): Promise<CleanupResult> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  const s = c.client;
  await s.flags(CLEANUP_FLAG.FILTER | CLEANUP_FLAG.MAP);
  await s.attr("log_message_origin", "client.example[192.0.2.7]");
  // A remote client, as smtpd would say: cleanup neither rewrites nor completes its headers.
  await s.attr("rewrite_context", "remote");
  await s.sender("alice@example.com");
  for (const r of opts.rcpts ?? ["bob@example.net"]) await s.rcpt({ address: r });
  await s.data(Buffer.from(`Subject: ${subject}\r\n${opts.extra ?? ""}\r\n${opts.body ?? "hello"}\r\n`));
  return s.end();
}

/** The recipients of a queued file. */
async function recipients(queue: string, id: string): Promise<string[]> {
  const env = await readEnvelope(join(inst.spool, queue, id));
  assert.ok(env.ok, env.ok ? "" : env.reason);
  return env.env.recipients.map((r) => r.address);
}

/** The names in a queue directory (queue files only). */
function queued(queue: string): string[] {
  const dir = join(inst.spool, queue);
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith(".")) : [];
}

test("REJECT refuses the message, logs it as Postfix does, and leaves no file", async () => {
  const r = await submit("please reject me");
  assert.deepEqual(r, { status: "reject", code: "550 5.7.1", reason: "message content rejected" });
  await inst.waitLog(
    /cleanup\[\d+\]: \w+: reject: header Subject: please reject me from client\.example\[192\.0\.2\.7\]; from=<alice@example\.com> to=<bob@example\.net>: 5\.7\.1 message content rejected/,
  );
  const body = await submit("fine", { body: "forbidden words here" });
  assert.deepEqual(body, { status: "reject", code: "550 5.7.1", reason: "no thanks" });
  assert.equal(readdirSync(join(inst.spool, "incoming")).length, 0, "no queue file and no temporary file");
});

test("HOLD publishes the file in hold/, not incoming/", async () => {
  const r = await submit("hold me please");
  assert.equal(r.status, "ok");
  if (r.status !== "ok") return;
  assert.ok(queued("hold").includes(r.queueId), "the file is in hold/");
  assert.ok(!queued("incoming").includes(r.queueId), "the file is not in incoming/");
  assert.deepEqual(await recipients("hold", r.queueId), ["bob@example.net"]);
  await inst.waitLog(
    new RegExp(`${r.queueId}: hold: header Subject: hold me please from .*: held for review`),
  );
});

test("DISCARD accepts the message and drops it", async () => {
  const r = await submit("discard me");
  assert.equal(r.status, "ok");
  if (r.status !== "ok") return;
  assert.ok(!queued("incoming").includes(r.queueId));
  assert.ok(!queued("hold").includes(r.queueId));
  await inst.waitLog(new RegExp(`${r.queueId}: discard: header Subject: discard me from `));
});

test("REDIRECT sends every recipient's copy to the redirect address", async () => {
  const r = await submit("redirected", {
    rcpts: ["bob@example.net", "carol@example.net"],
    extra: "X-Redirect: yes\r\n",
  });
  assert.equal(r.status, "ok");
  if (r.status !== "ok") return;
  assert.deepEqual(await recipients("incoming", r.queueId), [
    "quarantine@example.org",
    "quarantine@example.org",
  ]);
  await inst.waitLog(
    new RegExp(`${r.queueId}: redirect: header X-Redirect: yes from .*: quarantine@example\\.org`),
  );
});

test("virtual aliases are expanded recursively before the file is written", async () => {
  const r = await submit("to the list", { rcpts: ["alias@example.com", "carol@example.net"] });
  assert.equal(r.status, "ok");
  if (r.status !== "ok") return;
  assert.deepEqual(await recipients("incoming", r.queueId), [
    "a@example.net",
    "b@example.net",
    "carol@example.net",
  ]);
  const path = join(inst.spool, "incoming", r.queueId);
  const env = await readEnvelope(path);
  assert.ok(env.ok);
  const lines: string[] = [];
  for await (const l of contentLines(path, env.env)) lines.push(l.toString());
  assert.deepEqual(lines, ["Subject: to the list", "", "hello"]);
});
