/*
 * smtp-verify.test - an address probe (DEL_REQ_VERIFY) stops after RCPT
 *
 * DESCRIPTION
 *   A delivery request with the verify flag goes straight to the smtp
 *   agent (as the verify service's probes will): the agent reports each
 *   recipient as its RCPT reply says it would end (250 sent with the
 *   server's text, 550 bounced), and aiosmtpd's command log shows that the
 *   peer never saw DATA.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Config } from "../src/global/config.js";
import { DEL_REQ_FLAG, type DeliveryRequest } from "../src/global/deliver-proto.js";
import { deliverPass } from "../src/global/deliver-pass.js";
import { readEnvelope } from "../src/global/queue-file.js";
import { QueuePaths } from "../src/global/queue-path.js";
import { startInstance } from "../src/testing/instance.js";
import { startAiosmtpd, submitMessage } from "../src/testing/smtp-peers.js";

test("verify probes: RCPT replies decide, DATA is never sent", async (t) => {
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });
  // No qmgr: the message stays in incoming/ and only the probes below reach the agent.
  const inst = await startInstance(t, {
    main: "myhostname = postern.example.test\nmydestination =",
    master:
      "cleanup unix - - n - 0 cleanup\nrewrite unix - - n - - trivial-rewrite\nsmtp unix - - n - - smtp\n",
  });
  const id = await submitMessage(inst, {
    rcpts: ["ok@remote.test", "hard-x@remote.test"],
    content: "Subject: probe\n\nnever sent\n",
  });
  const paths = new QueuePaths(Config.load(inst.etc));
  const e = await readEnvelope(paths.path("incoming", id));
  assert.ok(e.ok);
  const base: DeliveryRequest = {
    queueName: "incoming",
    queueId: id,
    nexthop: `[127.0.0.3]:${aio.port}`,
    sender: "",
    arrival: Date.now(),
    active: Date.now(),
    attrs: {},
    recipients: [],
    flags: DEL_REQ_FLAG.MTA_VRFY,
  };
  const [ok, hard] = e.env.recipients;
  assert.ok(ok !== undefined && hard !== undefined);
  const r1 = await deliverPass(
    inst.spool,
    "smtp",
    base,
    { address: ok.address, original: ok.address, offset: ok.offset },
    20_000,
  );
  assert.deepEqual(r1, { status: "sent", dsn: "2.1.5", text: "250 2.1.5 Ok" });
  const r2 = await deliverPass(
    inst.spool,
    "smtp",
    base,
    { address: hard.address, original: hard.address, offset: hard.offset },
    20_000,
  );
  assert.equal(r2.status, "bounced");
  assert.equal(r2.dsn, "5.1.1");
  assert.equal(
    r2.text,
    "host 127.0.0.3[127.0.0.3] said: 550 5.1.1 <hard-x@remote.test>: no such user here (in reply to RCPT TO command)",
  );
  const cmds = aio.commands();
  assert.ok(
    cmds.some((c) => c.startsWith("RCPT ok@remote.test")),
    cmds.join("\n"),
  );
  assert.ok(
    cmds.some((c) => c.startsWith("RCPT hard-x@remote.test")),
    cmds.join("\n"),
  );
  assert.ok(!cmds.some((c) => c.startsWith("DATA")), `the peer saw DATA:\n${cmds.join("\n")}`);
  assert.equal(aio.messages().length, 0);
});
