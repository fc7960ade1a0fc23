/*
 * qmgr-sched.test - the on-demand connection caching flags of a destination's requests
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Config } from "../global/config.js";
import { DEL_REQ_FLAG } from "../global/deliver-proto.js";
import { Transport, type QMessageRef } from "./qmgr-sched.js";

const LOAD = DEL_REQ_FLAG.CONN_LOAD;
const BOTH = DEL_REQ_FLAG.CONN_LOAD | DEL_REQ_FLAG.CONN_STORE;

/** A destination of a fresh smtp transport with n messages waiting. */
function dest(n: number): ReturnType<Transport["dest"]> {
  const t = new Transport("smtp", Config.fromText("/etc/postern", ""));
  const d = t.dest("example.com");
  for (let i = 0; i < n; i++) {
    const msg: QMessageRef = { id: `M${i}` };
    d.add({ address: `r${i}@example.com`, original: "", offset: 0, msg });
  }
  return d;
}

test("a lone message: no caching", () => {
  const d = dest(1);
  d.take(10);
  d.active = 1;
  assert.equal(d.connCacheFlags(10_000), 0);
});

test("a backlog turns caching on; it goes off (LOAD stays) when the backlog and the deliveries are gone", () => {
  const d = dest(3);
  d.take(1);
  d.active = 1;
  assert.equal(d.connCacheFlags(10_000), BOTH, "more mail waits");
  d.take(1);
  d.active = 2;
  assert.equal(d.connCacheFlags(10_000), BOTH);
  d.take(1);
  d.active = 1;
  d.lastDone = 5_000;
  assert.equal(d.connCacheFlags(10_000), LOAD, "last one, alone, long after the previous one ended");
});

test("back-to-back deliveries (the previous one ended within a second) turn caching on", () => {
  const d = dest(1);
  d.take(10);
  d.active = 1;
  d.lastDone = 9_500;
  assert.equal(d.connCacheFlags(10_000), BOTH);
});
