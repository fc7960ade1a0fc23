/*
 * smtpd-space.test - queue_minfree arithmetic and the start-up advice
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { queueSpaceCheck, spaceWarning, tooFull } from "./smtpd-space.js";

test("too full: free blocks no more than queue_minfree's, or 1.5 message_size_limits do not fit", () => {
  const s = { queueDir: "/", minFree: 0, sizeLimit: 0 };
  assert.equal(tooFull(s, 4096, 1), false, "no limits: only a full file system is too full");
  assert.equal(tooFull(s, 4096, 0), true);
  const m = { ...s, minFree: 40960 };
  assert.equal(tooFull(m, 4096, 10), true, "10 blocks free, 10 needed");
  assert.equal(tooFull(m, 4096, 11), false);
  const l = { ...s, sizeLimit: 4096 * 10 };
  assert.equal(tooFull(l, 4096, 15), true, "10 blocks >= 15 / 1.5");
  assert.equal(tooFull(l, 4096, 16), false);
});

test("the check reads the real file system; a huge queue_minfree refuses", async () => {
  assert.equal(await queueSpaceCheck({ queueDir: "/", minFree: 0, sizeLimit: 1 }), null);
  assert.equal(
    await queueSpaceCheck({ queueDir: "/", minFree: 2 ** 52, sizeLimit: 0 }),
    "452 4.3.1 Insufficient system storage",
  );
  assert.equal(
    await queueSpaceCheck({ queueDir: "/nonexistent/queue", minFree: 2 ** 52, sizeLimit: 0 }),
    null,
  );
});

test("start-up advice when queue_minfree is below 1.5 message_size_limit", () => {
  assert.equal(
    spaceWarning({ queueDir: "/", minFree: 1000, sizeLimit: 1000 }),
    "queue_minfree(1000) should be at least 1.5*message_size_limit(1000)",
  );
  assert.equal(spaceWarning({ queueDir: "/", minFree: 1500, sizeLimit: 1000 }), null);
  assert.equal(spaceWarning({ queueDir: "/", minFree: 0, sizeLimit: 1000 }), null);
});
