/*
 * verify-cache.test - the verification cache: answers, expiry, refresh, probe and size limits, persistence
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADDR_STATUS } from "../global/verify-proto.js";
import { dictOpen } from "../global/dict.js";
import { PROBE_TTL, VerifyCache, formatEntry, parseEntry, type VerifySettings } from "./verify-cache.js";
import { VerifyStore } from "./verify-store.js";

const DAY = 86400;
/** A realistic "now": entries updated at 0 are then long past their refresh time. */
const T = 1_700_000_000;

const BASE: VerifySettings = {
  posExpire: 31 * DAY,
  posRefresh: 7 * DAY,
  negCache: true,
  negExpire: 3 * DAY,
  negRefresh: 3 * 3600,
  limit: 1000,
  pendingLimit: 100,
  rateLimit: 0,
};

/** Queries and, when a probe is due, records it as sent (what the service does). */
function ask(c: VerifyCache, addr: string, now: number): { status: number; probe: boolean; reason: string } {
  const a = c.query(addr, now);
  if (a.probe) c.probeSent(addr, now);
  return a;
}

test("an unknown address: in progress and one probe; the outcome is then the answer", () => {
  const c = new VerifyCache(BASE);
  const t = T;
  const first = ask(c, "u@example.com", t);
  assert.deepEqual(first, {
    status: ADDR_STATUS.TODO,
    reason: "Address verification in progress",
    probe: true,
  });
  assert.equal(ask(c, "u@example.com", t + 1).probe, false, "no second probe while one is in flight");
  assert.equal(ask(c, "u@example.com", t + 1).status, ADDR_STATUS.TODO);
  c.update("u@example.com", ADDR_STATUS.BOUNCE, 'unknown user: "u"', t + 2);
  assert.deepEqual(ask(c, "u@example.com", t + 3), {
    status: ADDR_STATUS.BOUNCE,
    reason: 'unknown user: "u"',
    probe: false,
  });
  assert.equal(c.pending, 0, "the outcome ends the pending probe");
});

test("refresh and expiry follow the positive and negative times", () => {
  const c = new VerifyCache(BASE);
  const t = T;
  c.update("ok@example.com", ADDR_STATUS.OK, "delivers to mailbox", t);
  c.update("bad@example.com", ADDR_STATUS.BOUNCE, "gone", t);
  assert.equal(ask(c, "ok@example.com", t + 6 * DAY).probe, false);
  const refresh = ask(c, "ok@example.com", t + 7 * DAY + 1);
  assert.equal(refresh.status, ADDR_STATUS.OK, "still answered while refreshing");
  assert.equal(refresh.probe, true);
  assert.equal(ask(c, "bad@example.com", t + 3 * 3600 + 1).probe, true, "negative refresh after 3h");
  // Past the expire time, with no probe for PROBE_TTL, an entry is as good as none.
  const c2 = new VerifyCache(BASE);
  c2.update("ok@example.com", ADDR_STATUS.OK, "fine", t);
  assert.equal(c2.query("ok@example.com", t + 31 * DAY + 1).status, ADDR_STATUS.TODO);
  assert.equal(c2.cleanup(t + 31 * DAY + 1), 1, "cleanup drops the expired entry");
  assert.equal(c2.size, 0);
  assert.ok(PROBE_TTL > 0);
});

test("a failed probe does not clobber a deliverable entry; a deliverable one replaces a failure", () => {
  const c = new VerifyCache(BASE);
  c.update("a@example.com", ADDR_STATUS.OK, "ok", 100);
  c.update("a@example.com", ADDR_STATUS.DEFER, "timeout", 200);
  assert.equal(c.query("a@example.com", 300).status, ADDR_STATUS.OK);
  c.update("b@example.com", ADDR_STATUS.BOUNCE, "no", 100);
  c.update("b@example.com", ADDR_STATUS.OK, "yes", 200);
  assert.equal(c.query("b@example.com", 300).status, ADDR_STATUS.OK);
});

test("limits: probes in flight, probes per second, entries", () => {
  const c = new VerifyCache({ ...BASE, pendingLimit: 10, limit: 100 });
  let probes = 0;
  for (let i = 0; i < 10_000; i++) if (ask(c, `u${i}@example.com`, T).probe) probes++;
  assert.equal(probes, 10, "at most pendingLimit probes in flight");
  assert.ok(c.size <= 100, `cache size ${c.size}`);
  assert.equal(ask(c, "late@example.com", T + PROBE_TTL + 1).probe, true, "lost probes free their slots");
  const r = new VerifyCache({ ...BASE, rateLimit: 5 });
  let sent = 0;
  for (let i = 0; i < 50; i++) if (ask(r, `r${i}@example.com`, T).probe) sent++;
  assert.equal(sent, 5, "at most rateLimit probes in one second");
  assert.equal(ask(r, "next@example.com", T + 1).probe, true, "the next second allows more");
  const e = new VerifyCache({ ...BASE, limit: 100 });
  for (let i = 0; i < 1000; i++) e.update(`e${i}@example.com`, ADDR_STATUS.BOUNCE, "no", T + i);
  assert.equal(e.size, 100);
  assert.equal(e.query("e0@example.com", T + 2000).status, ADDR_STATUS.TODO, "the oldest entries went first");
  assert.equal(e.query("e999@example.com", T + 2000).status, ADDR_STATUS.BOUNCE);
});

test("without negative caching an unknown address leaves no entry", () => {
  const c = new VerifyCache({ ...BASE, negCache: false });
  assert.equal(ask(c, "x@example.com", T).probe, true);
  assert.equal(c.size, 0);
});

test("entries survive a save and a load; malformed ones are skipped", async () => {
  assert.deepEqual(parseEntry(formatEntry({ status: 2, probed: 0, updated: 5, reason: "a: b: c" })), {
    status: 2,
    probed: 0,
    updated: 5,
    reason: "a: b: c",
  });
  assert.equal(parseEntry("9:0:0:x"), null);
  assert.equal(parseEntry("garbage"), null);
  const dir = mkdtempSync(join(tmpdir(), "verify-cache-"));
  try {
    const store = VerifyStore.open(`btree:${join(dir, "verify_cache")}`);
    assert.ok(store !== null);
    const c = new VerifyCache(BASE);
    c.update("ok@example.com", ADDR_STATUS.OK, "delivers to mailbox", 1000);
    c.update("no@example.com", ADDR_STATUS.BOUNCE, 'unknown user: "no"', 1001);
    assert.ok(store.save(c));
    const again = new VerifyCache(BASE);
    store.loadInto(again);
    assert.equal(again.size, 2);
    assert.equal(again.query("no@example.com", 1002).reason, 'unknown user: "no"');
    // The file is an ordinary btree table: postmap -q and dictOpen read it.
    const d = dictOpen(`btree:${join(dir, "verify_cache")}`);
    const v = await d.lookup("ok@example.com");
    d.close();
    assert.equal(v.status, "found");
    assert.match(v.status === "found" ? v.value : "", /^0:0:1000:delivers to mailbox$/);
    assert.equal(
      again.load([{ key: "x@example.com", value: "bad" }]),
      1,
      "a malformed stored entry is skipped",
    );
    assert.throws(() => VerifyStore.open("texthash:/etc/x"), /btree:, hash: or lmdb:/);
    assert.equal(VerifyStore.open(""), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
