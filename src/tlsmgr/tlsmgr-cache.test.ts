import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SessionCache, TicketKeys } from "./tlsmgr-cache.js";

/** A clock the test moves. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test("SessionCache: entries expire after their own timeout; sweep drops the expired ones", () => {
  const c = clock();
  const cache = new SessionCache({ maxEntries: 10, maxBytes: 1 << 20 }, c.now);
  assert.equal(cache.put("a", Buffer.from("one"), 2), true);
  assert.equal(cache.put("b", Buffer.from("two"), 10), true);
  assert.deepEqual(cache.get("a"), Buffer.from("one"));
  c.advance(2000);
  assert.equal(cache.get("a"), null);
  assert.equal(cache.size, 1);
  assert.equal(cache.put("c", Buffer.from("three"), 1), true);
  c.advance(1000);
  assert.equal(cache.sweep(), 1);
  assert.equal(cache.size, 1);
  assert.deepEqual(cache.get("b"), Buffer.from("two"));
  assert.equal(cache.put("d", Buffer.from("x"), 0), false);
  assert.equal(cache.get("d"), null);
});

test("SessionCache: bounded in entries and bytes, the oldest go first; replacing counts once", () => {
  const cache = new SessionCache({ maxEntries: 3, maxBytes: 100 });
  for (const k of ["a", "b", "c", "d"]) cache.put(k, Buffer.alloc(10), 60);
  assert.equal(cache.size, 3);
  assert.equal(cache.get("a"), null);
  assert.ok(cache.get("d") !== null);
  cache.put("d", Buffer.alloc(20), 60);
  assert.equal(cache.size, 3);
  assert.equal(cache.bytes, 11 + 11 + 21);
  cache.put("e", Buffer.alloc(80), 60);
  assert.ok(cache.bytes <= 100);
  assert.ok(cache.get("e") !== null);
  assert.equal(cache.put("huge", Buffer.alloc(200), 60), false);
  cache.delete("e");
  cache.delete("nothing");
  assert.equal(
    cache.bytes,
    [...["b", "c", "d"]].reduce((n, k) => n + (cache.get(k)?.length ?? -1) + 1, 0),
  );
});

test("SessionCache: the byte and entry counts hold for any sequence of operations", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.constantFrom("put", "delete", "tick"),
          fc.integer({ min: 0, max: 7 }),
          fc.integer({ min: 0, max: 40 }),
        ),
        { maxLength: 200 },
      ),
      (ops) => {
        const c = clock();
        const cache = new SessionCache({ maxEntries: 4, maxBytes: 64 }, c.now);
        for (const [op, k, n] of ops) {
          const id = `k${k}`;
          if (op === "put") cache.put(id, Buffer.alloc(n + 1), 1 + (n % 3));
          else if (op === "delete") cache.delete(id);
          else c.advance(n * 100);
          assert.ok(cache.size <= 4);
          assert.ok(cache.bytes <= 64 && cache.bytes >= 0);
        }
        cache.sweep();
        let bytes = 0;
        for (let k = 0; k < 8; k++) {
          const s = cache.get(`k${k}`);
          if (s !== null) bytes += s.length + 2;
        }
        assert.equal(cache.bytes, bytes);
      },
    ),
  );
});

test("TicketKeys: 48 random bytes, the same key until its lifetime is over, then a new one", () => {
  const c = clock();
  let calls = 0;
  const keys = new TicketKeys(3600, c.now, (n) => Buffer.alloc(n, ++calls));
  const k1 = keys.current();
  assert.ok(k1 !== null);
  assert.equal(k1.key.length, 48);
  assert.equal(k1.lifetime, 3600);
  c.advance(3599_000);
  const k2 = keys.current();
  assert.deepEqual(k2?.key, k1.key);
  assert.equal(k2?.lifetime, 1);
  c.advance(1000);
  const k3 = keys.current();
  assert.notDeepEqual(k3?.key, k1.key);
  assert.equal(k3?.lifetime, 3600);
  assert.equal(new TicketKeys(0, c.now).current(), null);
  assert.throws(() => new TicketKeys(60, c.now, () => Buffer.alloc(16)).current(), /short key/);
  // The real random source gives different keys.
  assert.notDeepEqual(new TicketKeys(60).current()?.key, new TicketKeys(60).current()?.key);
});
