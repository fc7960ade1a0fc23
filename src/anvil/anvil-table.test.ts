/*
 * anvil-table.test - counters and rate windows with an injected clock
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AnvilTable } from "./anvil-table.js";

test("counts sessions and rates; a rate window restarts after the time unit", () => {
  let now = 1000;
  const t = new AnvilTable(60_000, () => now);
  assert.deepEqual(t.connect("smtp:192.0.2.1"), { count: 1, rate: 1 });
  assert.deepEqual(t.connect("smtp:192.0.2.1"), { count: 2, rate: 2 });
  assert.deepEqual(t.connect("smtp:192.0.2.2"), { count: 1, rate: 1 });
  t.disconnect("smtp:192.0.2.1");
  assert.equal(t.message("smtp:192.0.2.1"), 1);
  assert.equal(t.recipient("smtp:192.0.2.1"), 1);
  assert.equal(t.recipient("smtp:192.0.2.1"), 2);
  assert.deepEqual(t.lookup("smtp:192.0.2.1"), { count: 1, rate: 2, messages: 1, recipients: 2 });
  now += 60_000;
  assert.deepEqual(t.connect("smtp:192.0.2.1"), { count: 2, rate: 1 });
  assert.equal(t.message("smtp:192.0.2.1"), 1);
});

test("sweep forgets idle entries only", () => {
  let now = 0;
  const t = new AnvilTable(1000, () => now);
  t.connect("a");
  t.connect("b");
  t.disconnect("b");
  now = 5000;
  assert.equal(t.sweep(), 1);
  assert.deepEqual(t.lookup("a"), { count: 1, rate: 0, messages: 0, recipients: 0 });
});
