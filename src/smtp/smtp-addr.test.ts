/*
 * smtp-addr.test - next-hop syntax and MX ordering
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseNexthop, selfAddresses, shuffleEqual } from "./smtp-addr.js";

test("next hops: [host]:port, host:port, domain, inet: and unix: forms", () => {
  assert.deepEqual(parseNexthop("[mail.example.net]:587", false, 25, "/q"), {
    kind: "inet",
    host: "mail.example.net",
    port: 587,
    mx: false,
  });
  assert.deepEqual(parseNexthop("example.net", false, 25, "/q"), {
    kind: "inet",
    host: "example.net",
    port: 25,
    mx: true,
  });
  assert.deepEqual(parseNexthop("example.net:2525", false, 25, "/q"), {
    kind: "inet",
    host: "example.net",
    port: 2525,
    mx: true,
  });
  assert.deepEqual(parseNexthop("[ipv6:::1]:24", true, 24, "/q"), {
    kind: "inet",
    host: "::1",
    port: 24,
    mx: false,
  });
  assert.deepEqual(parseNexthop("inet:127.0.0.1:24", true, 24, "/q"), {
    kind: "inet",
    host: "127.0.0.1",
    port: 24,
    mx: false,
  });
  assert.deepEqual(parseNexthop("mailhost", true, 24, "/q"), {
    kind: "inet",
    host: "mailhost",
    port: 24,
    mx: false,
  });
  assert.deepEqual(parseNexthop("unix:private/dovecot-lmtp", true, 24, "/q"), {
    kind: "unix",
    path: "/q/private/dovecot-lmtp",
    given: "private/dovecot-lmtp",
  });
  assert.deepEqual(parseNexthop("unix:/run/lmtp", true, 24, "/q"), {
    kind: "unix",
    path: "/run/lmtp",
    given: "/run/lmtp",
  });
  assert.match(parseNexthop("unix:/run/lmtp", false, 25, "/q") as string, /not supported by the SMTP client/);
  assert.match(parseNexthop("[host]:99999", false, 25, "/q") as string, /bad port/);
  assert.match(parseNexthop("", false, 25, "/q") as string, /empty/);
});

test("equal MX preferences are shuffled, different ones keep their order", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 20 }), (prefs) => {
      const list = prefs.sort((a, b) => a - b).map((preference, i) => ({ preference, exchange: `mx${i}` }));
      const out = shuffleEqual(list);
      assert.deepEqual(
        out.map((h) => h.preference),
        list.map((h) => h.preference),
      );
      assert.deepEqual(out.map((h) => h.exchange).sort(), list.map((h) => h.exchange).sort());
    }),
  );
  const many = Array.from({ length: 8 }, (_, i) => ({ preference: 10, exchange: `mx${i}` }));
  const firsts = new Set(Array.from({ length: 50 }, () => shuffleEqual(many)[0]?.exchange));
  assert.ok(firsts.size > 1, "equal preferences are not always in the same order");
});

test("this host's addresses come from inet_interfaces and proxy_interfaces", () => {
  const s = selfAddresses(["127.0.0.1", "[::1]"], ["192.0.2.7"]);
  assert.deepEqual([...s].sort(), ["127.0.0.1", "192.0.2.7", "::1"]);
  assert.ok(selfAddresses(["all"], []).has("127.0.0.1"));
});
