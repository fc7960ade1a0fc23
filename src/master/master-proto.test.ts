/*
 * master-proto.test - master's checks on what children say
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseChildMessage, parseMasterMessage } from "./master-proto.js";

test("valid child messages pass, with their fields", () => {
  assert.deepEqual(parseChildMessage({ t: "ready", capacity: 50 }), { t: "ready", capacity: 50 });
  assert.deepEqual(parseChildMessage({ t: "done", extra: 1 }), { t: "done" });
  assert.deepEqual(parseChildMessage({ t: "pass", service: "smtpd" }), { t: "pass", service: "smtpd" });
  assert.deepEqual(parseChildMessage({ t: "pass", service: "smtpd", data: "RUhMTw0K" }), {
    t: "pass",
    service: "smtpd",
    data: "RUhMTw0K",
  });
  assert.deepEqual(parseMasterMessage({ t: "conn", data: "RUhMTw0K" }), { t: "conn", data: "RUhMTw0K" });
  const peer = { addr: "198.51.100.7", port: 4321, serverAddr: "192.0.2.1", serverPort: 25 };
  assert.deepEqual(parseChildMessage({ t: "pass", service: "smtpd", peer }), {
    t: "pass",
    service: "smtpd",
    peer,
  });
  assert.deepEqual(parseMasterMessage({ t: "conn", peer }), { t: "conn", peer });
  assert.deepEqual(parseMasterMessage({ t: "passq", service: "smtpd", waiting: 3 }), {
    t: "passq",
    service: "smtpd",
    waiting: 3,
  });
  assert.equal(parseMasterMessage({ t: "passq", service: "smtpd", waiting: -1 }), null);
});

test("the bytes a handed-over connection carries are bounded base64", () => {
  assert.equal(parseChildMessage({ t: "pass", service: "smtpd", data: "not base64!" }), null);
  assert.equal(parseChildMessage({ t: "pass", service: "smtpd", data: "A".repeat(20_000) }), null);
  assert.equal(parseChildMessage({ t: "pass", service: "smtpd", data: 5 }), null);
  assert.equal(parseMasterMessage({ t: "conn", data: "%%" }), null);
  for (const peer of [
    { addr: "not-an-ip", port: 1, serverAddr: "192.0.2.1", serverPort: 25 },
    { addr: "192.0.2.7", port: 70000, serverAddr: "192.0.2.1", serverPort: 25 },
    { addr: "192.0.2.7", port: 1, serverAddr: "192.0.2.1" },
    "192.0.2.7",
  ])
    assert.equal(parseChildMessage({ t: "pass", service: "smtpd", peer }), null, JSON.stringify(peer));
});

test("malformed child messages are refused", () => {
  for (const m of [
    null,
    1,
    "done",
    [],
    { t: "ready" },
    { t: "ready", capacity: 0 },
    { t: "ready", capacity: 1.5 },
    { t: "ready", capacity: 1e9 },
    { t: "pass", service: "../x" },
    { t: "pass", service: "a".repeat(200) },
    { t: "exit" },
  ]) {
    assert.equal(parseChildMessage(m), null, JSON.stringify(m));
  }
});

test("fuzz: no value makes the checks throw, and only well-formed messages pass", () => {
  fc.assert(
    fc.property(fc.anything(), (m) => {
      const r = parseChildMessage(m);
      if (r !== null) assert.ok(["ready", "done", "pass"].includes(r.t));
      const q = parseMasterMessage(m);
      if (q !== null) assert.ok(["conn", "trigger", "retire", "passq"].includes(q.t));
    }),
    { numRuns: 2000 },
  );
});

test("cachefd messages: a 128-bit hex token and an optional pid, nothing else", () => {
  const token = "0123456789abcdef0123456789abcdef";
  assert.deepEqual(parseChildMessage({ t: "cachefd", token }), { t: "cachefd", token });
  assert.deepEqual(parseChildMessage({ t: "cachefd", token, to: 4242 }), { t: "cachefd", token, to: 4242 });
  assert.deepEqual(parseMasterMessage({ t: "cachefd", token, from: 7 }), { t: "cachefd", token, from: 7 });
  for (const bad of [
    { t: "cachefd" },
    { t: "cachefd", token: token.toUpperCase() },
    { t: "cachefd", token: token + "0" },
    { t: "cachefd", token, to: -1 },
    { t: "cachefd", token, to: 1.5 },
    { t: "cachefd", token, to: "12" },
  ])
    assert.equal(parseChildMessage(bad), null, JSON.stringify(bad));
  assert.equal(parseMasterMessage({ t: "cachefd", token, from: 0 }), null);
});
