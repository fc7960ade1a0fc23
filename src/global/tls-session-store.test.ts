import { test } from "node:test";
import assert from "node:assert/strict";
import { MemorySessionStore } from "./tls-session-store.js";

test("memory session store: expiry, removal and the count limit", async () => {
  let now = 1_000_000;
  const store = new MemorySessionStore(2, () => now);
  store.put("a", Buffer.from("A"), 10);
  store.put("b", Buffer.from("B"), 0);
  assert.equal((await store.get("a"))?.toString(), "A");
  assert.equal(await store.get("b"), null, "a zero lifetime saves nothing");
  now += 10_000;
  assert.equal(await store.get("a"), null, "expired");
  store.put("a", Buffer.from("A"), 60);
  store.put("b", Buffer.from("B"), 60);
  store.put("c", Buffer.from("C"), 60);
  assert.equal(store.size, 2);
  assert.equal(await store.get("a"), null, "the oldest went first");
  store.remove("b");
  assert.equal(await store.get("b"), null);
  assert.equal((await store.get("c"))?.toString(), "C");
});
