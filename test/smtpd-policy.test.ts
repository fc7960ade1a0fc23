/*
 * smtpd-policy.test - check_policy_service against postgrey and test servers
 *
 * DESCRIPTION
 *   A real postgrey greylists the first attempt of a triplet and accepts
 *   the retry after its delay. A recording policy server shows what smtpd
 *   sends (Postfix's attribute set) and that one connection carries many
 *   requests. A dead server and a server that never answers give the
 *   default action: a temporary failure unless configured otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { freePort, sleep } from "../src/testing/instance.js";
import { postgreyAvailable, startPostgrey } from "../src/testing/postgrey.js";
import { policyServer, type PolicyServer } from "../src/testing/policy-server.js";
import { smtpCmd, smtpHello, smtpdInstance } from "../src/testing/smtpd-instance.js";

/** A policy server that records requests and answers with a fixed action (or never, when null). */
function recorder(
  t: { after: (fn: () => Promise<void>) => void },
  action: string | null,
): Promise<PolicyServer> {
  return policyServer(t, () => action);
}

test("postgrey greylists the first attempt and accepts the retry after its delay", async (t) => {
  assert.ok(postgreyAvailable(), "postgrey is not installed: install the Debian package postgrey");
  const pg = await startPostgrey(2);
  t.after(() => pg.stop());
  const inst = await smtpdInstance(
    t,
    `smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:${pg.port}\n`,
  );
  const c = await smtpHello(inst.port);
  await smtpCmd(c, "MAIL FROM:<alice@sender.example>");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<bob@example.org>"),
    "450 4.2.0 <bob@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
  );
  await inst.waitLog(
    /NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 450 4\.2\.0 <bob@example\.org>: Recipient address rejected: Greylisted/,
  );
  await sleep(3500);
  assert.equal(await smtpCmd(c, "RCPT TO:<bob@example.org>"), "250 2.1.5 Ok");
  assert.equal(await smtpCmd(c, "QUIT"), "221 2.0.0 Bye");
});

test("the request carries Postfix's attributes; one connection serves many requests", async (t) => {
  const rec = await recorder(t, "DUNNO");
  const inst = await smtpdInstance(
    t,
    `smtpd_recipient_restrictions = check_policy_service { inet:127.0.0.1:${rec.port}, policy_context=test }\n`,
  );
  const c = await smtpHello(inst.port, "127.0.0.1", "helo.example");
  await smtpCmd(c, "MAIL FROM:<alice@sender.example> SIZE=123");
  assert.equal(await smtpCmd(c, "RCPT TO:<bob@example.org>"), "250 2.1.5 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<carol@example.org>"), "250 2.1.5 Ok");
  assert.equal(rec.connections(), 1);
  const [first, second] = rec.requests;
  assert.ok(first !== undefined && second !== undefined);
  for (const [k, v] of [
    ["request", "smtpd_access_policy"],
    ["protocol_state", "RCPT"],
    ["protocol_name", "ESMTP"],
    ["helo_name", "helo.example"],
    ["sender", "alice@sender.example"],
    ["recipient", "bob@example.org"],
    ["client_address", "127.0.0.1"],
    ["client_name", "unknown"],
    ["size", "123"],
    ["recipient_count", "0"],
    ["policy_context", "test"],
  ])
    assert.equal(first.get(k ?? ""), v, k);
  assert.equal(second.get("recipient"), "carol@example.org");
  assert.equal(second.get("recipient_count"), "1");
  assert.equal(second.get("instance"), first.get("instance"));
});

test("a dead or silent policy server gives the default action", async (t) => {
  const silent = await recorder(t, null);
  const dead = await freePort();
  const inst = await smtpdInstance(
    t,
    [
      "smtpd_restriction_classes = dead silent lenient",
      `dead = check_policy_service inet:127.0.0.1:${dead}`,
      `silent = check_policy_service { inet:127.0.0.1:${silent.port}, timeout=1s }`,
      `lenient = check_policy_service { inet:127.0.0.1:${dead}, default_action=DUNNO }`,
      "smtpd_recipient_restrictions = check_recipient_access inline:{ a@example.org=dead, b@example.org=silent, c@example.org=lenient }",
      "",
    ].join("\n"),
  );
  const c = await smtpHello(inst.port);
  await smtpCmd(c, "MAIL FROM:<>");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<a@example.org>"),
    "451 4.3.5 <a@example.org>: Recipient address rejected: Server configuration problem",
  );
  const t0 = Date.now();
  assert.equal(
    await smtpCmd(c, "RCPT TO:<b@example.org>"),
    "451 4.3.5 <b@example.org>: Recipient address rejected: Server configuration problem",
  );
  assert.ok(Date.now() - t0 >= 1900, "two tries of one second each");
  assert.equal(silent.requests.length, 2);
  assert.equal(await smtpCmd(c, "RCPT TO:<c@example.org>"), "250 2.1.5 Ok");
  await inst.waitLog(/warning: connect to policy server inet:127\.0\.0\.1:\d+: /);
});
