/*
 * postscreen-units.test - postscreen's parsers, time format and cache file
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openPsCache } from "./postscreen-cache.js";
import { dnsblPrefix, filterMatch, parseDnsblSites } from "./postscreen-dnsbl.js";
import { parseProxy } from "./postscreen-haproxy.js";
import { formatDelta, parseAction, printable } from "./postscreen-misc.js";
import { parseStamps } from "./postscreen-session.js";

test("postscreen_dnsbl_sites entries: domain, filter, weight", () => {
  assert.deepEqual(
    parseDnsblSites(["zen.spamhaus.org*3", "bl.example=127.0.0.[2..11]", "wl.example=127.0.[0..255].1*-5"]),
    [
      { domain: "zen.spamhaus.org", filter: null, weight: 3 },
      { domain: "bl.example", filter: "127.0.0.[2..11]", weight: 1 },
      { domain: "wl.example", filter: "127.0.[0..255].1", weight: -5 },
    ],
  );
  for (const bad of [
    "nodots",
    "bl.example=127.0.0",
    "bl.example=127.0.0.[2..x]",
    "bl.example*x",
    "bl.example=300.0.0.1",
  ])
    assert.throws(() => parseDnsblSites([bad]), /postscreen_dnsbl_sites: bad/, bad);
});

test("filters match octets, ranges and sets", () => {
  assert.equal(filterMatch("127.0.0.[2..11]", "127.0.0.2"), true);
  assert.equal(filterMatch("127.0.0.[2..11]", "127.0.0.11"), true);
  assert.equal(filterMatch("127.0.0.[2..11]", "127.0.0.12"), false);
  assert.equal(filterMatch("127.0.[0..255].[1;3]", "127.0.9.3"), true);
  assert.equal(filterMatch("127.0.[0..255].[1;3]", "127.0.9.2"), false);
  assert.equal(filterMatch("127.0.0.2", "127.0.0.2"), true);
});

test("query prefixes: reversed IPv4 octets, IPv6 nibbles", () => {
  assert.equal(dnsblPrefix("192.0.2.1"), "1.2.0.192");
  assert.equal(dnsblPrefix("2001:db8::1"), "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
  assert.equal(dnsblPrefix("not an address"), null);
});

test("elapsed times are logged with two significant digits", () => {
  assert.equal(formatDelta(100), "0.1");
  assert.equal(formatDelta(0), "0");
  assert.equal(formatDelta(123), "0.12");
  assert.equal(formatDelta(6000), "6");
  assert.equal(formatDelta(1234), "1.2");
  assert.equal(formatDelta(12_345), "12");
});

test("actions and printable client bytes", () => {
  assert.equal(parseAction("x", " Enforce "), "enforce");
  assert.throws(
    () => parseAction("postscreen_greet_action", "reject"),
    /postscreen_greet_action: unknown action/,
  );
  assert.equal(printable(Buffer.from("EHLO x\r\n\x01")), "EHLO x\\r\\n\\001");
  assert.equal(printable(Buffer.alloc(500, 0x41)).length, 100);
});

test("cache entries: five expiry times; the file cache survives reopening and drops what cleanup rejects", async (t) => {
  assert.deepEqual(parseStamps("1700000000;0;1;1;1"), [1700000000, 0, 1, 1, 1]);
  assert.equal(parseStamps("1;2;3"), null);
  assert.equal(parseStamps("a;b;c;d;e"), null);
  const dir = mkdtempSync(join(tmpdir(), "postern-pscache-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spec = `btree:${join(dir, "postscreen_cache")}`;
  const c = openPsCache(spec);
  assert.ok(c !== null);
  await c.set("192.0.2.1", "100;0;1;1;1");
  await c.set("192.0.2.2", "9999999999;0;1;1;1");
  c.close();
  const again = openPsCache(spec);
  assert.ok(again !== null);
  assert.equal(await again.get("192.0.2.1"), "100;0;1;1;1");
  assert.deepEqual(await again.cleanup((v) => (parseStamps(v)?.[0] ?? 0) > 1000), {
    retained: 1,
    dropped: 1,
  });
  again.close();
  const third = openPsCache(spec);
  assert.equal(await third?.get("192.0.2.1"), undefined);
  assert.equal(await third?.get("192.0.2.2"), "9999999999;0;1;1;1");
  third?.close();
  assert.equal(openPsCache(""), null);
  assert.throws(() => openPsCache("texthash:/x"), /cannot hold the postscreen cache/);
});

test("PROXY headers: v1 TCP4/TCP6/UNKNOWN, v2 IPv4 and LOCAL, partial and bad input", () => {
  assert.deepEqual(parseProxy(Buffer.from("PROXY TCP4 198.51.100.7 192.0.2.1 4321 25\r\nEHLO")), {
    status: "ok",
    used: 43,
    endpoints: { addr: "198.51.100.7", port: 4321, serverAddr: "192.0.2.1", serverPort: 25 },
  });
  assert.deepEqual(parseProxy(Buffer.from("PROXY TCP6 2001:db8::7 2001:db8::1 4321 25\r\n")), {
    status: "ok",
    used: 44,
    endpoints: { addr: "2001:db8::7", port: 4321, serverAddr: "2001:db8::1", serverPort: 25 },
  });
  assert.deepEqual(parseProxy(Buffer.from("PROXY UNKNOWN\r\n")), { status: "ok", used: 15, endpoints: null });
  assert.deepEqual(parseProxy(Buffer.from("PRO")), { status: "need" });
  assert.deepEqual(parseProxy(Buffer.from("PROXY TCP4 198.51")), { status: "need" });
  assert.equal(parseProxy(Buffer.from("GET / HTTP/1.0\r\n")).status, "bad");
  assert.equal(parseProxy(Buffer.from("PROXY TCP4 999.1.1.1 192.0.2.1 1 25\r\n")).status, "bad");
  assert.equal(parseProxy(Buffer.from(`PROXY TCP4 ${"1".repeat(200)}`)).status, "bad");
  const sig = Buffer.from("0d0a0d0a000d0a515549540a", "hex");
  const body = Buffer.from([198, 51, 100, 7, 192, 0, 2, 1, 0x10, 0xe1, 0, 25]);
  const v2 = Buffer.concat([sig, Buffer.from([0x21, 0x11, 0, 12]), body, Buffer.from("EHLO")]);
  assert.deepEqual(parseProxy(v2), {
    status: "ok",
    used: 28,
    endpoints: { addr: "198.51.100.7", port: 4321, serverAddr: "192.0.2.1", serverPort: 25 },
  });
  assert.deepEqual(parseProxy(v2.subarray(0, 20)), { status: "need" });
  const local = Buffer.concat([sig, Buffer.from([0x20, 0x00, 0, 0])]);
  assert.deepEqual(parseProxy(local), { status: "ok", used: 16, endpoints: null });
});
