/*
 * tls-config.test - Postfix protocol lists and cipher grades as Node settings
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { constants } from "node:crypto";
import { tlsProtocols } from "./tls-config.js";

test("protocol lists in Postfix syntax", () => {
  const ok = (spec: string): { min: string; max: string; opts: number } => {
    const r = tlsProtocols(spec);
    assert.ok(r.ok, spec);
    return { min: r.minVersion, max: r.maxVersion, opts: r.secureOptions };
  };
  assert.deepEqual(ok(">=TLSv1.2"), { min: "TLSv1.2", max: "TLSv1.3", opts: 0 });
  assert.deepEqual(ok("!SSLv2, !SSLv3"), { min: "TLSv1", max: "TLSv1.3", opts: 0 });
  assert.deepEqual(ok("!SSLv2:!SSLv3:!TLSv1:!TLSv1.1"), { min: "TLSv1.2", max: "TLSv1.3", opts: 0 });
  assert.deepEqual(ok("TLSv1.2 TLSv1.3"), { min: "TLSv1.2", max: "TLSv1.3", opts: 0 });
  assert.deepEqual(ok(">=TLSv1 <=TLSv1.2"), { min: "TLSv1", max: "TLSv1.2", opts: 0 });
  assert.deepEqual(ok("tlsv1.1, tlsv1.3"), {
    min: "TLSv1.1",
    max: "TLSv1.3",
    opts: constants.SSL_OP_NO_TLSv1_2,
  });
  assert.deepEqual(ok(""), { min: "TLSv1", max: "TLSv1.3", opts: 0 });
  const bad = tlsProtocols("TLSv9");
  assert.ok(!bad.ok && /unknown TLS protocol "TLSv9"/.test(bad.error));
  const none = tlsProtocols(">=TLSv1.3 !TLSv1.3");
  assert.ok(!none.ok && /no TLS protocol left/.test(none.error));
});
