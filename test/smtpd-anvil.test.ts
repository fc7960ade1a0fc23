/*
 * smtpd-anvil.test - per-client limits through a real anvil service
 *
 * DESCRIPTION
 *   An instance runs smtpd with the anvil service. Loopback clients hit the
 *   connection count and rate limits (421 and hang-up), the message and
 *   recipient rate limits (450), and a client in
 *   smtpd_client_event_limit_exceptions is never limited. Closing a
 *   session frees its place.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { LineClient } from "../src/testing/instance.js";
import { smtpCmd, smtpConnect, smtpHello, smtpdInstance } from "../src/testing/smtpd-instance.js";

const ANVIL = "anvil unix - - n - 1 anvil";

/** Connects and returns the greeting with the client. */
async function greet(port: number, from = "127.0.0.1"): Promise<[LineClient, string]> {
  const c = await smtpConnect(port, from);
  return [c, await smtpCmd(c, null)];
}

/** Waits until the server has closed the connection. */
async function closed(c: LineClient): Promise<void> {
  for (let i = 0; i < 100 && !c.closed; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(c.closed, "the server closes the connection");
}

test("connection count limit: 421 for one session too many, until one ends", async (t) => {
  const inst = await smtpdInstance(
    t,
    "smtpd_client_connection_count_limit = 2\nsmtpd_client_event_limit_exceptions = 127.0.0.2\n",
    ANVIL,
  );
  const [a, ga] = await greet(inst.port);
  const [, gb] = await greet(inst.port);
  assert.match(ga, /^220 /);
  assert.match(gb, /^220 /);
  const [c, gc] = await greet(inst.port);
  assert.equal(gc, "421 4.7.0 mx.example.org Error: too many connections from 127.0.0.1");
  await closed(c);
  await inst.waitLog(
    /warning: Connection concurrency limit exceeded: 3 from unknown\[127\.0\.0\.1\] for service /,
  );
  for (let i = 0; i < 3; i++) assert.match((await greet(inst.port, "127.0.0.2"))[1], /^220 /);
  assert.equal(await smtpCmd(a, "QUIT"), "221 2.0.0 Bye");
  await closed(a);
  let ok = "";
  for (let i = 0; i < 50 && !ok.startsWith("220"); i++) {
    const [d, g] = await greet(inst.port);
    ok = g;
    if (!g.startsWith("220")) await new Promise((r) => setTimeout(r, 100));
    else d.send("QUIT");
  }
  assert.match(ok, /^220 /);
});

test("connection, message and recipient rate limits", async (t) => {
  const inst = await smtpdInstance(
    t,
    [
      "smtpd_client_connection_rate_limit = 3",
      "smtpd_client_message_rate_limit = 2",
      "smtpd_client_recipient_rate_limit = 2",
      "",
    ].join("\n"),
    ANVIL,
  );
  const c = await smtpHello(inst.port);
  assert.equal(await smtpCmd(c, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<u1@example.org>"), "250 2.1.5 Ok");
  assert.equal(await smtpCmd(c, "RCPT TO:<u2@example.org>"), "250 2.1.5 Ok");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<u3@example.org>"),
    "450 4.7.1 Error: too many recipients from 127.0.0.1",
  );
  await smtpCmd(c, "RSET");
  assert.equal(await smtpCmd(c, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
  await smtpCmd(c, "RSET");
  assert.equal(
    await smtpCmd(c, "MAIL FROM:<a@sender.example>"),
    "450 4.7.1 Error: too much mail from 127.0.0.1",
  );
  await inst.waitLog(
    /warning: Recipient address rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] for service /,
  );
  await inst.waitLog(/warning: Message delivery request rate limit exceeded: 3 from unknown\[127\.0\.0\.1\]/);
  assert.match((await greet(inst.port))[1], /^220 /);
  assert.match((await greet(inst.port))[1], /^220 /);
  assert.equal(
    (await greet(inst.port))[1],
    "421 4.7.0 mx.example.org Error: too many connections from 127.0.0.1",
  );
  await inst.waitLog(/warning: Connection rate limit exceeded: 4 from unknown\[127\.0\.0\.1\]/);
});
