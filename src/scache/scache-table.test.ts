/*
 * scache-table.test - the connection cache's bookkeeping and statistics
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ScacheTable, statsLines } from "./scache-table.js";

/** A stand-in for a socket that records its closing. */
class Conn {
  closed = false;
  constructor(readonly name: string) {}
  destroy(): void {
    this.closed = true;
  }
}

test("destinations map to endpoints; a find takes the newest connection away; misses are counted", () => {
  const t = new ScacheTable<Conn>({ maxSessions: 10 });
  const a = new Conn("a");
  const b = new Conn("b");
  assert.ok(t.saveEndp("smtp:[192.0.2.1]:25:helo", "pa", a, 60_000));
  assert.ok(t.saveEndp("smtp:[192.0.2.1]:25:helo", "pb", b, 60_000));
  assert.equal(t.saveEndp("smtp:[192.0.2.1]:25:helo", "again", a, 60_000), false, "already held");
  t.saveDest("smtp:example.com", "dp", "smtp:[192.0.2.1]:25:helo", 60_000);
  const hit = t.findDest("smtp:example.com");
  assert.deepEqual(
    hit && { item: hit.item.name, endpLabel: hit.endpLabel, endpProp: hit.endpProp, destProp: hit.destProp },
    { item: "b", endpLabel: "smtp:[192.0.2.1]:25:helo", endpProp: "pb", destProp: "dp" },
  );
  assert.equal(t.findEndp("smtp:[192.0.2.1]:25:helo")?.item, a);
  assert.equal(t.findEndp("smtp:[192.0.2.1]:25:helo"), null);
  assert.equal(t.findDest("smtp:example.com"), null, "the mapping is left but has no connection");
  assert.equal(t.findDest("smtp:other.example"), null);
  assert.equal(t.sessions, 0);
  assert.ok(!a.closed && !b.closed, "a found connection belongs to the finder");
  const s = t.takeStats();
  assert.deepEqual(s, {
    destHits: 1,
    destMiss: 2,
    endpHits: 1,
    endpMiss: 1,
    maxDests: 1,
    maxEndps: 1,
    maxSessions: 2,
  });
  assert.deepEqual(t.takeStats().destHits, 0, "takeStats resets");
  t.clear();
});

test("a connection is closed when its time to live ends, and forgotten when its peer closes it", async () => {
  const t = new ScacheTable<Conn>({ maxSessions: 10 });
  const a = new Conn("a");
  const b = new Conn("b");
  t.saveEndp("e", "", a, 30);
  t.saveEndp("e", "", b, 10_000);
  assert.ok(t.drop(b));
  assert.equal(t.drop(b), false);
  await new Promise((r) => setTimeout(r, 80));
  assert.ok(a.closed, "expired");
  assert.equal(t.sessions, 0);
  assert.equal(t.findEndp("e"), null);
  t.clear();
});

test("the number of held connections is bounded; clear() closes them all", () => {
  const t = new ScacheTable<Conn>({ maxSessions: 2 });
  const conns = [new Conn("1"), new Conn("2"), new Conn("3")];
  assert.ok(t.saveEndp("e1", "", conns[0] as Conn, 60_000));
  assert.ok(t.saveEndp("e2", "", conns[1] as Conn, 60_000));
  assert.equal(t.hasRoom, false);
  assert.equal(t.saveEndp("e3", "", conns[2] as Conn, 60_000), false);
  assert.equal(conns[2]?.closed, false, "a refused connection stays the caller's");
  t.clear();
  assert.ok(conns[0]?.closed && conns[1]?.closed);
  assert.equal(t.sessions, 0);
});

test("statistics lines in Postfix's words; none for an idle interval", () => {
  const since = new Date(2026, 10, 1, 4, 5, 6);
  assert.deepEqual(
    statsLines(
      { destHits: 3, destMiss: 1, endpHits: 0, endpMiss: 2, maxDests: 1, maxEndps: 2, maxSessions: 3 },
      since,
    ),
    [
      "statistics: start interval Nov  1 04:05:06",
      "statistics: domain lookup hits=3 miss=1 success=75%",
      "statistics: address lookup hits=0 miss=2 success=0%",
      "statistics: max simultaneous domains=1 addresses=2 connection=3",
    ],
  );
  assert.deepEqual(
    statsLines(
      { destHits: 0, destMiss: 0, endpHits: 0, endpMiss: 0, maxDests: 0, maxEndps: 0, maxSessions: 0 },
      since,
    ),
    [],
  );
});
