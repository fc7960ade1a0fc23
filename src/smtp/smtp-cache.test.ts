/*
 * smtp-cache.test - what the agent sends to scache with a connection, and when it keeps one
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Config } from "../global/config.js";
import { DEL_REQ_FLAG } from "../global/deliver-proto.js";
import {
  AgentCache,
  decodeProps,
  destinationLabel,
  endpointLabel,
  keyVariant,
  type CacheSettings,
} from "./smtp-cache.js";

const PROPS = {
  server: { host: "mx.example.net", addr: "192.0.2.1", port: 25, pref: 10 },
  features: {
    esmtp: true,
    pipelining: true,
    size: 10240000,
    eightBitMime: true,
    dsn: false,
    smtputf8: false,
    xforward: ["NAME", "ADDR"],
    starttls: false,
    auth: ["PLAIN", "LOGIN"],
  },
  created: 1_700_000_000_000,
  uses: 2,
  needsReset: false,
  mailAuth: "<>",
};

test("endpoint properties: a faithful round trip; anything malformed is refused", () => {
  const p = decodeProps(JSON.stringify(PROPS));
  assert.ok(p !== null);
  assert.deepEqual(p.server, PROPS.server);
  assert.deepEqual({ ...p.features, xforward: [...p.features.xforward] }, PROPS.features);
  assert.equal(p.uses, 2);
  assert.equal(p.mailAuth, "<>");
  const withPath = decodeProps(JSON.stringify({ ...PROPS, server: { ...PROPS.server, path: "/run/lmtp" } }));
  assert.equal(withPath?.server.path, "/run/lmtp");
  const bad: unknown[] = [
    "not json",
    [],
    { ...PROPS, server: { ...PROPS.server, port: 70000 } },
    { ...PROPS, server: { ...PROPS.server, host: 5 } },
    { ...PROPS, features: { ...PROPS.features, dsn: "yes" } },
    { ...PROPS, features: { ...PROPS.features, auth: "PLAIN" } },
    { ...PROPS, mailAuth: 7 },
    { ...PROPS, features: { ...PROPS.features, size: -1 } },
    { ...PROPS, features: { ...PROPS.features, xforward: "NAME" } },
    { ...PROPS, uses: 1.5 },
    { ...PROPS, needsReset: 1 },
  ];
  for (const b of bad)
    assert.equal(decodeProps(typeof b === "string" ? b : JSON.stringify(b)), null, JSON.stringify(b));
});

test("labels name the service, the server (or socket), the HELO name and the key variant; destinations are case-blind", () => {
  const s = PROPS.server;
  assert.equal(endpointLabel("smtp", s, "client.example"), "smtp::[192.0.2.1]:25:client.example");
  assert.equal(endpointLabel("lmtp", { ...s, path: "/run/dovecot/lmtp" }, "h"), "lmtp::/run/dovecot/lmtp:h");
  assert.equal(destinationLabel("relay", "[Mail.Example.COM]:587"), "relay::[mail.example.com]:587");
  // The TLS policy and a sender-dependent SASL identity keep sessions apart, as a digest.
  const a = "[mail.example.com]:587\0may\0alice@example.com";
  const b = "[mail.example.com]:587\0may\0bob@example.com";
  assert.match(keyVariant(a), /^[0-9a-f]{32}$/);
  assert.notEqual(keyVariant(a), keyVariant(b));
  assert.notEqual(destinationLabel("relay", a), destinationLabel("relay", b));
  assert.ok(destinationLabel("relay", a).endsWith(":[mail.example.com]:587"));
  assert.notEqual(
    endpointLabel("relay", s, "h", keyVariant(a)),
    endpointLabel("relay", s, "h", keyVariant(b)),
  );
});

test("policy: qmgr's CONN_* flags on demand; smtp_connection_cache_destinations always; nothing when off", () => {
  const cfg = Config.fromText("/etc/postern", "queue_directory = /nonexistent/postern\n");
  const st: CacheSettings = {
    service: "smtp",
    onDemand: true,
    destinations: new Set(["[relay.example]"]),
    idleMs: 2000,
    reuseAgeMs: 300_000,
    reuseCount: 0,
    skipQuitResponse: true,
  };
  const c = new AgentCache(cfg, st);
  assert.deepEqual(c.policy("example.com", 0), { load: false, store: false });
  assert.deepEqual(c.policy("example.com", DEL_REQ_FLAG.CONN_LOAD), { load: true, store: false });
  assert.deepEqual(
    c.policy("example.com", DEL_REQ_FLAG.CONN_LOAD | DEL_REQ_FLAG.CONN_STORE | DEL_REQ_FLAG.RECORD),
    {
      load: true,
      store: true,
    },
  );
  assert.deepEqual(c.policy("[Relay.Example]", undefined), { load: true, store: true });
  const off = new AgentCache(cfg, { ...st, onDemand: false });
  assert.deepEqual(off.policy("example.com", DEL_REQ_FLAG.CONN_STORE), { load: false, store: false });
});
