/*
 * bounce-remote.test - delivery status notices for relayed recipients
 *
 * DESCRIPTION
 *   A real instance with the smtp agent and the bounce, defer and trace
 *   services relays to real servers on loopback, and its notices (to a
 *   remote sender) travel the same way back, where Python's email package
 *   reads them. aiosmtpd announces no DSN: a recipient with NOTIFY=SUCCESS
 *   draws a success notice saying "relayed", and its 550 reply to a hard-*
 *   recipient comes back as a non-delivery report with Remote-MTA: dns;
 *   <host>, Diagnostic-Code: smtp; 550 ... and Status: 5.1.1. Postfix's
 *   smtp-sink announces DSN: NOTIFY=SUCCESS goes on with RCPT and the
 *   relaying MTA sends no notice of its own. A virtual(8) recipient with
 *   NOTIFY=SUCCESS draws a notice saying "delivered" (to a local sender's
 *   Maildir; needs root).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sleep, shippedEntries } from "../src/testing/instance.js";
import { DSN_NOTIFY } from "../src/global/queue-file.js";
import { DOMAIN, localInstance, makeWorld } from "../src/testing/local-world.js";
import { relayInstance, startAiosmtpd, startSmtpSink, submitMessage } from "../src/testing/smtp-peers.js";

const SERVICES = [shippedEntries("bounce"), shippedEntries("defer"), shippedEntries("trace")].join("\n");

const PARSER = `
import email, json, sys
m = email.message_from_string(sys.stdin.read())
dsn = []
if m.is_multipart():
    for p in m.get_payload():
        if p.get_content_type() == "message/delivery-status":
            dsn = [dict(b.items()) for b in p.get_payload()]
print(json.dumps({"subject": m["Subject"] or "", "from": m["X-Mail-From"] or "", "type": m.get_content_type(), "dsn": dsn}))
`;

interface Notice {
  subject: string;
  from: string;
  type: string;
  dsn: Array<Record<string, string>>;
}

/** Parses one message with Python's email package. */
function parse(text: string): Notice {
  return JSON.parse(
    execFileSync("/usr/bin/python3", ["-c", PARSER], { input: text, encoding: "utf8" }),
  ) as Notice;
}

/** Waits until get() returns at least n messages. */
async function atLeast(get: () => string[], n: number): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = get();
    if (m.length >= n) return m;
    if (Date.now() > deadline) throw new Error(`fewer than ${n} messages arrived`);
    await sleep(100);
  }
}

test("a server without DSN: NOTIFY=SUCCESS draws a 'relayed' notice; a 550 reply a bounce with Remote-MTA and an smtp Diagnostic-Code", async (t) => {
  const aio = await startAiosmtpd(t);
  const inst = await relayInstance(t, `relayhost = [${aio.addr}]:${aio.port}`, SERVICES);
  const id = await submitMessage(inst, {
    sender: "owner@remote.test",
    rcpts: [
      {
        address: "ok@remote.test",
        original: "ok@remote.test",
        notify: DSN_NOTIFY.SUCCESS | DSN_NOTIFY.FAILURE,
      },
      "hard-gone@remote.test",
    ],
    content: "Subject: notify me\n\nhello\n",
  });
  await inst.waitLog(
    new RegExp(`${id}: to=<ok@remote\\.test>, relay=127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\]:`),
    20_000,
  );
  await inst.waitLog(
    new RegExp(`${id}: to=<hard-gone@remote\\.test>, .*status=bounced \\(host 127\\.0\\.0\\.3`),
    20_000,
  );
  // The message itself, then two notices to owner@remote.test.
  const msgs = await atLeast(() => aio.messages(), 3);
  const notices = msgs.map(parse).filter((m) => m.type === "multipart/report");
  assert.equal(notices.length, 2, JSON.stringify(msgs.map(parse)));
  for (const n of notices) assert.equal(n.from, "<>", "notices come from the null sender");

  const success = notices.find((n) => n.dsn.some((b) => b["Action"] === "relayed"));
  assert.ok(success !== undefined, "a 'relayed' success notice");
  const sb = success.dsn.find((b) => b["Final-Recipient"] !== undefined);
  assert.ok(sb !== undefined);
  assert.equal(sb["Final-Recipient"], "rfc822; ok@remote.test");
  assert.equal(sb["Action"], "relayed");
  assert.match(sb["Status"] ?? "", /^2\.\d+\.\d+$/);
  assert.equal(sb["Remote-MTA"], "dns; 127.0.0.3");

  const bounce = notices.find((n) => n.dsn.some((b) => b["Action"] === "failed"));
  assert.ok(bounce !== undefined, "a non-delivery report");
  const bb = bounce.dsn.find((b) => b["Final-Recipient"] !== undefined);
  assert.ok(bb !== undefined);
  assert.equal(bb["Final-Recipient"], "rfc822; hard-gone@remote.test");
  assert.equal(bb["Action"], "failed");
  assert.equal(bb["Status"], "5.1.1");
  assert.equal(bb["Remote-MTA"], "dns; 127.0.0.3");
  assert.match(bb["Diagnostic-Code"] ?? "", /^smtp; 550 5\.1\.1 <hard-gone@remote\.test>: no such user here/);
  // No success notice for the recipient that did not ask for one.
  assert.equal(success.dsn.filter((b) => b["Final-Recipient"] !== undefined).length, 1);
});

test("a server with DSN: NOTIFY=SUCCESS is passed on and no notice is sent", async (t) => {
  const sink = await startSmtpSink(t, { addr: "127.0.0.2" });
  const inst = await relayInstance(t, `relayhost = [${sink.addr}]:${sink.port}`, SERVICES);
  const id = await submitMessage(inst, {
    sender: "owner@remote.test",
    rcpts: [{ address: "ok@remote.test", original: "ok@remote.test", notify: DSN_NOTIFY.SUCCESS }],
    content: "Subject: notify me\n\nhello\n",
  });
  await inst.waitLog(new RegExp(`${id}: to=<ok@remote\\.test>, .*status=sent`), 20_000);
  const dumps = sink.dumps();
  assert.equal(dumps.length, 1);
  assert.match(dumps[0]?.rcptArgs[0] ?? "", /^<ok@remote\.test> NOTIFY=SUCCESS /);
  // Give a notice (which would go to the same sink) ample time to appear.
  await sleep(3000);
  assert.equal(sink.dumps().length, 1, "no success notice from the relaying MTA");
  assert.doesNotMatch(inst.log(), /sender delivery status notification/);
});

test("virtual(8): NOTIFY=SUCCESS draws a 'delivered' notice", async (t) => {
  const world = makeWorld();
  t.after(() => world.cleanup());
  const alice = world.user("s");
  const v = world.user("v");
  const base = join(world.dir, "vmail");
  mkdirSync(join(base, "virt.example.test"), { recursive: true });
  chownSync(join(base, "virt.example.test"), v.uid, v.gid);
  const maps = join(world.dir, "vmailbox");
  writeFileSync(maps, "one@virt.example.test virt.example.test/one/\n");
  const inst = await localInstance(
    t,
    [
      "home_mailbox = Maildir/",
      "alias_maps =",
      "virtual_mailbox_domains = virt.example.test",
      `virtual_mailbox_base = ${base}`,
      `virtual_mailbox_maps = texthash:${maps}`,
      `virtual_uid_maps = static:${v.uid}`,
      `virtual_gid_maps = static:${v.gid}`,
    ].join("\n"),
    `${SERVICES}\nvirtual unix - n n - - virtual`,
  );
  const id = await submitMessage(inst, {
    sender: `${alice.name}@${DOMAIN}`,
    rcpts: [
      { address: "one@virt.example.test", original: "one@virt.example.test", notify: DSN_NOTIFY.SUCCESS },
    ],
    content: "Subject: virtual notify\n\nhi\n",
  });
  await inst.waitLog(
    new RegExp(`${id}: to=<one@virt\\.example\\.test>, relay=virtual, .*status=sent`),
    20_000,
  );
  const dir = join(alice.home, "Maildir", "new");
  const files = await atLeast(() => (existsSync(dir) ? readdirSync(dir) : []), 1);
  const n = parse(readFileSync(join(dir, files[0] ?? ""), "utf8"));
  assert.equal(n.subject, "Successful Mail Delivery Report");
  const b = n.dsn.find((x) => x["Final-Recipient"] !== undefined);
  assert.ok(b !== undefined, JSON.stringify(n));
  assert.equal(b["Final-Recipient"], "rfc822; one@virt.example.test");
  assert.equal(b["Action"], "delivered");
  assert.match(b["Status"] ?? "", /^2\.0\.0$/);
  await sleep(500);
  assert.equal(readdirSync(dir).length, 1, "exactly one notice");
});
