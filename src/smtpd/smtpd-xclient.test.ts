/*
 * smtpd-xclient.test - XCLIENT/XFORWARD parsing, PROXY headers, RBL patterns, DSN fixes
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import type { Socket } from "node:net";
import { reverseName } from "../global/dns-lookup.js";
import { rblPatternMatch } from "./smtpd-dns.js";
import { SmtpReader } from "./smtpd-reader.js";
import { dsnFix } from "./smtpd-unlisted.js";
import { parseXattrs, readProxyHeader } from "./smtpd-xclient.js";

/** A reader over fixed input. */
function reader(input: Buffer): SmtpReader {
  const s = new PassThrough();
  const r = new SmtpReader(s as unknown as Socket);
  s.end(input);
  return r;
}

test("parseXattrs decodes xtext and refuses unknown names and bad values", () => {
  const ok = parseXattrs("XCLIENT", "NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::1 HELO=a+20b");
  assert.ok(ok.ok);
  if (ok.ok)
    assert.deepEqual(
      [...ok.attrs],
      [
        ["NAME", "[UNAVAILABLE]"],
        ["ADDR", "IPV6:2001:db8::1"],
        ["HELO", "a b"],
      ],
    );
  assert.deepEqual(parseXattrs("XFORWARD", "LOGIN=x"), {
    ok: false,
    reply: "501 5.5.4 Bad XFORWARD attribute name: LOGIN",
  });
  assert.deepEqual(parseXattrs("XCLIENT", "PORT=70000"), {
    ok: false,
    reply: "501 5.5.4 Bad PORT syntax: 70000",
  });
  assert.deepEqual(parseXattrs("XCLIENT", ""), {
    ok: false,
    reply: "501 5.5.4 Syntax: XCLIENT attribute=value...",
  });
});

test("readProxyHeader: v1 TCP4, v1 UNKNOWN, v2 LOCAL, and garbage", async () => {
  assert.deepEqual(
    await readProxyHeader(reader(Buffer.from("PROXY TCP4 192.0.2.1 192.0.2.2 1234 25\r\nEHLO")), 1000),
    {
      ok: true,
      addr: "192.0.2.1",
      port: 1234,
    },
  );
  assert.deepEqual(await readProxyHeader(reader(Buffer.from("PROXY UNKNOWN\r\n")), 1000), {
    ok: true,
    addr: null,
    port: 0,
  });
  const local = Buffer.from("0d0a0d0a000d0a515549540a20000000", "hex");
  assert.deepEqual(await readProxyHeader(reader(local), 1000), { ok: true, addr: null, port: 0 });
  assert.equal(
    (await readProxyHeader(reader(Buffer.from("PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n")), 1000)).ok,
    false,
  );
  assert.equal((await readProxyHeader(reader(Buffer.from("GET / HTTP/1.0\r\n")), 1000)).ok, false);
});

test("RBL reply patterns, reverse names and DSN class fixes", () => {
  assert.ok(rblPatternMatch("127.0.0.2", "127.0.0.2"));
  assert.ok(rblPatternMatch("127.0.[0..255].[1;3]", "127.0.9.3"));
  assert.ok(!rblPatternMatch("127.0.0.[2..4]", "127.0.0.5"));
  assert.equal(reverseName("192.0.2.5"), "5.2.0.192.in-addr.arpa");
  assert.equal(reverseName("2001:db8::1")?.slice(0, 12), "1.0.0.0.0.0.");
  assert.equal(dsnFix("5.1.1", "sender"), "5.1.0");
  assert.equal(dsnFix("4.1.2", "sender"), "4.1.8");
  assert.equal(dsnFix("5.1.8", "recipient"), "5.1.2");
});
