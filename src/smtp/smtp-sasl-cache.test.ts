/*
 * smtp-sasl-cache.test - the 535 reply cache: hits, expiry, a new password, what is stored
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SaslAuthCache } from "./smtp-sasl-cache.js";

test("a remembered 535 holds for the same host, user and password until it expires", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-sasl-cache-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let now = 1_000_000_000_000;
  const cache = SaslAuthCache.open(`proxy:btree:${dir}/cache`, 3600, "smtp_sasl_auth_cache_name", () => now);
  assert.equal(cache.path, `${dir}/cache.db`);
  assert.equal(cache.find("mx.isp.example", "joe", "pw1"), null);
  cache.store("mx.isp.example", "joe", "pw1", "5.7.8", "535 5.7.8 Error: authentication\n failed");
  assert.deepEqual(cache.find("mx.isp.example", "joe", "pw1"), {
    dsn: "5.7.8",
    text: "535 5.7.8 Error: authentication failed",
  });
  assert.equal(cache.find("mx.isp.example", "ann", "pw1"), null, "another user");
  assert.equal(cache.find("mx2.isp.example", "joe", "pw1"), null, "another host");
  assert.equal(readFileSync(cache.path).includes("pw1"), false, "the password is not stored");
  // A new password voids the entry (and removes it).
  assert.equal(cache.find("mx.isp.example", "joe", "pw2"), null);
  assert.equal(cache.find("mx.isp.example", "joe", "pw1"), null);
  // Entries expire after smtp_sasl_auth_cache_time.
  cache.store("mx.isp.example", "joe", "pw1", "5.7.8", "535 no");
  now += 3599_000;
  assert.notEqual(cache.find("mx.isp.example", "joe", "pw1"), null);
  now += 2000;
  assert.equal(cache.find("mx.isp.example", "joe", "pw1"), null);
});

test("only btree, hash and lmdb files with an absolute path can hold the cache", () => {
  for (const bad of ["texthash:/x", "btree:relative/x", "memcache:/x", "/x"])
    assert.throws(
      () => SaslAuthCache.open(bad, 60, "smtp_sasl_auth_cache_name"),
      /smtp_sasl_auth_cache_name: /,
    );
  assert.match(SaslAuthCache.open("lmdb:/var/lib/x", 60, "p").path, /^\/var\/lib\/x\.lmdb$/);
});
