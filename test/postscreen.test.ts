/*
 * postscreen.test - postscreen in front of smtpd, with a real DNS server for the block lists
 *
 * DESCRIPTION
 *   postscreen listens on a loopback port and hands the clients that pass
 *   to smtpd (a master.cf pass service) as the same TCP connection. NSD
 *   serves test block and allow lists; clients connect from different
 *   127.0.0.x addresses to play listed and unlisted hosts.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { nsdAvailable, startNsd, zone, type NsdServer } from "../src/testing/dns-server.js";
import { postscreenInstance } from "../src/testing/postscreen-instance.js";
import { smtpCmd, smtpConnect } from "../src/testing/smtpd-instance.js";
import type { LineClient } from "../src/testing/instance.js";

let dns: NsdServer | null = null;

const ZONES = {
  "bl.test": zone(
    "bl.test",
    ["3.0.0.127 IN A 127.0.0.2", "4.0.0.127 IN A 127.0.0.2", "5.0.0.127 IN A 127.0.0.20"].join("\n"),
  ),
  "bl2.test": zone("bl2.test", ["4.0.0.127 IN A 127.0.0.3", "6.0.0.127 IN A 127.0.0.3"].join("\n")),
  "wl.test": zone("wl.test", ["6.0.0.127 IN A 127.0.10.1", "7.0.0.127 IN A 127.0.10.1"].join("\n")),
};

before(async () => {
  assert.ok(nsdAvailable(), "nsd is not installed: apt-get install nsd");
  dns = await startNsd(ZONES);
});

after(async () => {
  await dns?.stop();
});

/** main.cf lines that point DNS lookups at the test server. */
function dnsMain(): string {
  return `postern_dns_servers = ${dns?.server ?? ""}\n`;
}

/** Reads the whole greeting (a multi-line 220 when the pregreet teaser was sent). */
async function greeting(c: LineClient): Promise<string> {
  return smtpCmd(c, null);
}

/** Runs a whole mail transaction after the greeting; returns the reply to the end of data. */
async function sendMail(c: LineClient): Promise<string> {
  assert.match(await smtpCmd(c, "EHLO client.example"), /^250[- ]mx\.example\.org/);
  assert.match(await smtpCmd(c, "MAIL FROM:<someone@client.example>"), /^250 /);
  assert.match(await smtpCmd(c, "RCPT TO:<user@example.org>"), /^250 /);
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  c.send("Subject: through postscreen\r\n\r\nhello\r\n.");
  return smtpCmd(c, null);
}

test("a good client passes (PASS NEW) and its message goes through smtpd on the same connection", async (t) => {
  const inst = await postscreenInstance(t, "postscreen_greet_wait = 1s\n" + dnsMain());
  const c = await smtpConnect(inst.port, "127.0.0.2");
  const banner = await greeting(c);
  assert.equal(banner, "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern");
  assert.match(await sendMail(c), /^250 2\.0\.0 Ok: queued as /);
  assert.match(await smtpCmd(c, "QUIT"), /^221 /);
  const connect = await inst.waitLog(
    /postscreen\[\d+\]: CONNECT from \[127\.0\.0\.2\]:(\d+) to \[127\.0\.0\.1\]:\d+/,
  );
  const port = /\]:(\d+) to/.exec(connect)?.[1] ?? "";
  await inst.waitLog(new RegExp(`postscreen\\[\\d+\\]: PASS NEW \\[127\\.0\\.0\\.2\\]:${port}`));
  await inst.waitLog(/smtpd\[\d+\]: connect from [^\s]*\[127\.0\.0\.2\]/);
  await inst.waitLog(/smtpd\[\d+\]: disconnect from/);
  assert.doesNotMatch(
    inst.log(),
    /DISCONNECT \[127\.0\.0\.2\]/,
    "a client handed to smtpd is not disconnected by postscreen",
  );
});
