/*
 * postscreen-stress.test - overload: busy smtpd processes, stress mode in smtpd and postscreen
 *
 * DESCRIPTION
 *   smtpd behind postscreen runs with few processes, one client each, so
 *   that a handful of clients fill it. postscreen turns new clients away
 *   while handed-over clients wait for smtpd (all server ports busy);
 *   master starts smtpd processes with stress=yes while the service is at
 *   its limit, and their ${stress?...} settings take effect; postscreen
 *   shortens its own limits when it screens too many clients at once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { postscreenInstance } from "../src/testing/postscreen-instance.js";
import { smtpCmd, smtpConnect } from "../src/testing/smtpd-instance.js";
import { sleep } from "../src/testing/instance.js";

test("while handed-over clients wait for smtpd, postscreen says all server ports are busy", async (t) => {
  const inst = await postscreenInstance(
    t,
    "mynetworks = 127.0.0.0/8\npostscreen_post_queue_limit = 1\n",
    "",
    "smtpd pass - - n - 1 smtpd -o postern_process_client_limit=1",
  );
  const a = await smtpConnect(inst.port, "127.0.0.2");
  assert.equal(await smtpCmd(a, null), "220 mx.example.org ESMTP Postern", "allowlisted: smtpd greets");
  const b = await smtpConnect(inst.port, "127.0.0.3");
  await inst.waitLog(/service "smtpd\/pass" has reached its process limit "1"/);
  await sleep(200);
  const c = await smtpConnect(inst.port, "127.0.0.4");
  assert.equal(await c.line(), "421 4.3.2 All server ports are busy");
  await inst.waitLog(
    new RegExp(`NOQUEUE: reject: CONNECT from \\[127\\.0\\.0\\.4\\]:${c.localPort}: all server ports busy`),
  );
  assert.equal(await smtpCmd(a, "QUIT"), "221 2.0.0 Bye");
  assert.equal(
    await smtpCmd(b, null),
    "220 mx.example.org ESMTP Postern",
    "the waiting client is served next",
  );
  assert.equal(await smtpCmd(b, "QUIT"), "221 2.0.0 Bye");
  await sleep(200);
  const d = await smtpConnect(inst.port, "127.0.0.5");
  assert.equal(
    await smtpCmd(d, null),
    "220 mx.example.org ESMTP Postern",
    "postscreen hands clients over again",
  );
  d.close();
});

test("smtpd processes started under overload run with stress=yes: ${stress?...} settings take effect", async (t) => {
  const inst = await postscreenInstance(
    t,
    "mynetworks = 127.0.0.0/8\nsmtpd_timeout = ${stress?{2}:{300}}s\npostscreen_post_queue_limit = 100\n",
    "",
    "smtpd pass - - n - 2 smtpd -o postern_process_client_limit=1 -o max_use=1",
  );
  const a = await smtpConnect(inst.port, "127.0.0.2");
  assert.match(await smtpCmd(a, null), /^220 /);
  const b = await smtpConnect(inst.port, "127.0.0.3");
  assert.match(await smtpCmd(b, null), /^220 /);
  const c = await smtpConnect(inst.port, "127.0.0.4");
  await inst.waitLog(/service "smtpd\/pass" has reached its process limit "2"/);
  assert.equal(await smtpCmd(a, "QUIT"), "221 2.0.0 Bye");
  assert.match(await smtpCmd(c, null), /^220 /, "a new smtpd process takes the waiting client");
  const started = Date.now();
  assert.equal(await c.line(5000), "421 4.4.2 mx.example.org Error: timeout exceeded");
  assert.ok(Date.now() - started < 4500, "the stress-mode smtpd_timeout (2s) applies, not 300s");
  b.send("NOOP");
  assert.match(await smtpCmd(b, null), /^250 /, "the session in a normal process is still there");
  b.close();
});

test("postscreen under its own stress (from 90% of postscreen_pre_queue_limit) turns clients away at the limit and uses the stress greet wait", async (t) => {
  const inst = await postscreenInstance(
    t,
    "postscreen_pre_queue_limit = 4\npostscreen_greet_wait = ${stress?{1}:{30}}s\n",
  );
  const held = [];
  for (let i = 0; i < 3; i++) {
    const c = await smtpConnect(inst.port, `127.0.0.${10 + i}`);
    assert.equal(await c.line(), "220-mx.example.org ESMTP Postern");
    held.push(c);
  }
  const late = await smtpConnect(inst.port, "127.0.0.20");
  assert.equal(await late.line(), "421 4.3.2 All screening ports are busy");
  await inst.waitLog(/reject: connect from \[127\.0\.0\.20\]:\d+: all screening ports busy/);
  for (const c of held.slice(0, 1)) c.close();
  await inst.waitLog(/HANGUP after/);
  const next = await smtpConnect(inst.port, "127.0.0.21");
  assert.equal(await next.line(), "220-mx.example.org ESMTP Postern");
  assert.equal(
    await next.line(3000),
    "220 mx.example.org ESMTP Postern",
    "passed after the 1s stress wait, not 30s",
  );
  await inst.waitLog(/PASS NEW \[127\.0\.0\.21\]/);
  for (const c of [...held, next]) c.close();
});
