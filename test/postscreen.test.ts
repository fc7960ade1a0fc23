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
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/** Connects from a loopback address and returns the client and its log name "[addr]:port". */
async function connectFrom(
  port: number,
  from: string,
): Promise<{ c: LineClient; name: string; port: number }> {
  const c = await smtpConnect(port, from);
  const local = c.localPort;
  return { c, name: `[${from}]:${local}`, port: local };
}

/** A regular expression that matches text literally. */
function lit(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
}

/** A cidr access table for postscreen_access_list, in a temporary directory removed after the test. */
function accessTable(t: { after: (fn: () => void) => void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "postern-ps-"));
  chmodSync(dir, 0o755);
  const path = join(dir, "postscreen_access.cidr");
  writeFileSync(path, text);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path;
}

const SITES =
  "postscreen_dnsbl_sites = bl.test=127.0.0.[2..11]*3, bl2.test*2, wl.test=127.0.[0..255].1*-5\npostscreen_dnsbl_threshold = 4\n";

test("enforce: a pregreeting bot and a listed client meet postscreen's engine, which rejects their mail", async (t) => {
  const acl = accessTable(t, "127.0.0.8 reject\n127.0.0.9 permit\n");
  const inst = await postscreenInstance(
    t,
    [
      "postscreen_greet_wait = 1s",
      "postscreen_greet_action = enforce",
      "postscreen_dnsbl_action = enforce",
      "postscreen_dnsbl_reply_map = inline:{ bl.test=zen.example }",
      "postscreen_dnsbl_allowlist_threshold = -2",
      "postscreen_denylist_action = enforce",
      `postscreen_access_list = permit_mynetworks, cidr:${acl}`,
      SITES,
      dnsMain(),
    ].join("\n"),
  );
  const bot = await connectFrom(inst.port, "127.0.0.2");
  bot.c.sendRaw("EHLO bot.example\r\n");
  await inst.waitLog(lit(`PREGREET 18 after `));
  assert.match(
    inst.log(),
    new RegExp(
      `PREGREET 18 after [\\d.]+ from \\[127\\.0\\.0\\.2\\]:${bot.port}: EHLO bot\\.example\\\\r\\\\n`,
    ),
  );
  assert.equal(
    await bot.c.line(),
    "220-mx.example.org ESMTP Postern",
    "no second banner line for a pregreeter",
  );
  assert.match(await smtpCmd(bot.c, null), /^250-mx\.example\.org/, "the engine answers the early EHLO");
  assert.equal(await smtpCmd(bot.c, "MAIL FROM:<bot@bad.example>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(bot.c, "RCPT TO:<user@example.org>"), "550 5.5.1 Protocol error");
  await inst.waitLog(
    lit(
      `NOQUEUE: reject: RCPT from ${bot.name}: 550 5.5.1 Protocol error; from=<bot@bad.example>, to=<user@example.org>, proto=ESMTP, helo=<bot.example>`,
    ),
  );
  assert.equal(await smtpCmd(bot.c, "QUIT"), "221 2.0.0 Bye");
  await inst.waitLog(lit(`DISCONNECT ${bot.name}`));

  const listed = await connectFrom(inst.port, "127.0.0.4");
  assert.equal(
    await greeting(listed.c),
    "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern",
  );
  await inst.waitLog(lit(`DNSBL rank 5 for ${listed.name}`));
  assert.match(await smtpCmd(listed.c, "EHLO listed.example"), /^250-mx\.example\.org/);
  assert.doesNotMatch(await smtpCmd(listed.c, "NOOP"), /PIPELINING/);
  assert.equal(await smtpCmd(listed.c, "MAIL FROM:<a@listed.example>"), "250 2.1.0 Ok");
  const reject = "550 5.7.1 Service unavailable; client [127.0.0.4] blocked using zen.example";
  assert.equal(await smtpCmd(listed.c, "RCPT TO:<user@example.org>"), reject);
  await inst.waitLog(
    lit(
      `NOQUEUE: reject: RCPT from ${listed.name}: ${reject}; from=<a@listed.example>, to=<user@example.org>, proto=ESMTP, helo=<listed.example>`,
    ),
  );
  listed.c.close();

  const below = await connectFrom(inst.port, "127.0.0.3");
  assert.equal(await greeting(below.c), "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern");
  assert.match(await sendMail(below.c), /^250 2\.0\.0 Ok: queued as /, "a score below the threshold passes");
  await inst.waitLog(lit(`PASS NEW ${below.name}`));
  assert.doesNotMatch(inst.log(), lit(`DNSBL rank 3 for ${below.name}`));
  below.c.close();

  const allowed = await connectFrom(inst.port, "127.0.0.6");
  assert.equal(
    await greeting(allowed.c),
    "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern",
  );
  await inst.waitLog(lit(`PASS NEW ${allowed.name}`));
  allowed.c.close();

  const denied = await connectFrom(inst.port, "127.0.0.8");
  assert.equal(
    await greeting(denied.c),
    "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern",
  );
  await inst.waitLog(lit(`DENYLISTED ${denied.name}`));
  assert.match(await smtpCmd(denied.c, "HELO denied.example"), /^250 /);
  assert.equal(await smtpCmd(denied.c, "MAIL FROM:<>"), "250 2.1.0 Ok");
  assert.equal(
    await smtpCmd(denied.c, "RCPT TO:<user@example.org>"),
    "550 5.3.2 Service currently unavailable",
  );
  denied.c.close();

  const permitted = await connectFrom(inst.port, "127.0.0.9");
  assert.equal(await greeting(permitted.c), "220 mx.example.org ESMTP Postern", "smtpd greets at once");
  await inst.waitLog(lit(`ALLOWLISTED ${permitted.name}`));
  assert.match(await sendMail(permitted.c), /^250 2\.0\.0 Ok: queued as /);
  permitted.c.close();
});

test("drop and ignore: listed and denied clients are cut off; early talk under ignore reaches smtpd", async (t) => {
  const acl = accessTable(t, "127.0.0.8 reject\n");
  const inst = await postscreenInstance(
    t,
    [
      "postscreen_greet_wait = 1s",
      "postscreen_dnsbl_action = drop",
      "postscreen_blacklist_action = drop",
      "smtpd_forbid_unauth_pipelining = no",
      `postscreen_access_list = permit_mynetworks, cidr:${acl}`,
      SITES,
      dnsMain(),
    ].join("\n"),
  );
  const listed = await connectFrom(inst.port, "127.0.0.4");
  assert.equal(await listed.c.line(), "220-mx.example.org ESMTP Postern");
  assert.equal(
    await listed.c.line(),
    "521 5.7.1 Service unavailable; client [127.0.0.4] blocked using bl.test",
  );
  await assert.rejects(listed.c.line(), /connection closed/);
  await inst.waitLog(lit(`DISCONNECT ${listed.name}`));

  const denied = await connectFrom(inst.port, "127.0.0.8");
  assert.equal(await denied.c.line(), "521 5.3.2 Service currently unavailable");
  await inst.waitLog(lit(`DENYLISTED ${denied.name}`));

  const early = await connectFrom(inst.port, "127.0.0.2");
  early.c.sendRaw("EHLO early.example\r\n");
  assert.equal(await greeting(early.c), "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern");
  assert.match(
    await smtpCmd(early.c, null),
    /^250-mx\.example\.org/,
    "smtpd answers the EHLO postscreen read",
  );
  await inst.waitLog(lit(`PREGREET 20 after `));
  await inst.waitLog(/smtpd\[\d+\]: connect from [^\s]*\[127\.0\.0\.2\]/);
  assert.doesNotMatch(
    inst.log(),
    lit(`PASS NEW ${early.name}`),
    "a pregreeter under ignore is not remembered",
  );
  early.c.close();
});

test("a passed client is remembered: PASS OLD at once next time, also after a restart", async (t) => {
  const inst = await postscreenInstance(t, "postscreen_greet_wait = 1s\n" + dnsMain());
  const first = await connectFrom(inst.port, "127.0.0.2");
  assert.equal(await greeting(first.c), "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern");
  assert.match(await smtpCmd(first.c, "QUIT"), /^221 /);
  await inst.waitLog(lit(`PASS NEW ${first.name}`));

  const second = await connectFrom(inst.port, "127.0.0.2");
  assert.equal(
    await greeting(second.c),
    "220 mx.example.org ESMTP Postern",
    "no teaser: smtpd greets at once",
  );
  assert.match(await sendMail(second.c), /^250 2\.0\.0 Ok: queued as /);
  await inst.waitLog(lit(`PASS OLD ${second.name}`));
  second.c.close();

  await inst.restart();
  const third = await connectFrom(inst.port, "127.0.0.2");
  assert.equal(await greeting(third.c), "220 mx.example.org ESMTP Postern");
  await inst.waitLog(lit(`PASS OLD ${third.name}`));
  third.c.close();
  const other = await connectFrom(inst.port, "127.0.0.3");
  assert.equal(await greeting(other.c), "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern");
  other.c.close();
});

test("deep protocol tests: a client that passes must come back (450), then goes straight to smtpd", async (t) => {
  const inst = await postscreenInstance(
    t,
    [
      "postscreen_greet_wait = 1s",
      "postscreen_pipelining_enable = yes",
      "postscreen_non_smtp_command_enable = yes",
      "postscreen_bare_newline_enable = yes",
      "postscreen_bare_newline_action = enforce",
      dnsMain(),
    ].join("\n"),
  );
  const good = await connectFrom(inst.port, "127.0.0.2");
  assert.equal(await greeting(good.c), "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern");
  const ehlo = await smtpCmd(good.c, "EHLO good.example");
  assert.match(ehlo, /^250-mx\.example\.org/);
  assert.doesNotMatch(ehlo, /PIPELINING/, "postscreen's engine does not offer PIPELINING");
  assert.equal(await smtpCmd(good.c, "MAIL FROM:<a@good.example>"), "250 2.1.0 Ok");
  assert.equal(
    await smtpCmd(good.c, "RCPT TO:<user@example.org>"),
    "450 4.3.2 Service currently unavailable",
  );
  assert.equal(await smtpCmd(good.c, "QUIT"), "221 2.0.0 Bye");
  await inst.waitLog(lit(`PASS NEW ${good.name}`));
  await inst.waitLog(lit(`DISCONNECT ${good.name}`));
  const back = await connectFrom(inst.port, "127.0.0.2");
  assert.equal(
    await greeting(back.c),
    "220 mx.example.org ESMTP Postern",
    "smtpd greets the returning client",
  );
  assert.match(await sendMail(back.c), /^250 2\.0\.0 Ok: queued as /);
  await inst.waitLog(lit(`PASS OLD ${back.name}`));
  back.c.close();

  const piper = await connectFrom(inst.port, "127.0.0.3");
  assert.match(await greeting(piper.c), /\n220 /);
  piper.c.sendRaw("EHLO piper.example\r\nMAIL FROM:<p@piper.example>\r\n");
  assert.match(await smtpCmd(piper.c, null), /^250-/);
  assert.equal(await smtpCmd(piper.c, null), "250 2.1.0 Ok");
  await inst.waitLog(
    lit(`COMMAND PIPELINING from ${piper.name} after EHLO: MAIL FROM:<p@piper.example>\\r\\n`),
  );
  assert.equal(await smtpCmd(piper.c, "RCPT TO:<user@example.org>"), "550 5.5.1 Protocol error");
  piper.c.close();

  const web = await connectFrom(inst.port, "127.0.0.4");
  assert.match(await greeting(web.c), /\n220 /);
  web.c.send("GET / HTTP/1.0");
  assert.equal(await web.c.line(), "521 5.7.0 Error: I can break rules, too. Goodbye.");
  await inst.waitLog(lit(`NON-SMTP COMMAND from ${web.name} after CONNECT: GET GET / HTTP/1.0`));
  await inst.waitLog(lit(`DISCONNECT ${web.name}`));

  const lf = await connectFrom(inst.port, "127.0.0.5");
  assert.match(await greeting(lf.c), /\n220 /);
  lf.c.sendRaw("HELO lf.example\n");
  assert.equal(await smtpCmd(lf.c, null), "250 mx.example.org");
  await inst.waitLog(lit(`BARE NEWLINE from ${lf.name} after CONNECT`));
  assert.equal(await smtpCmd(lf.c, "MAIL FROM:<>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(lf.c, "RCPT TO:<user@example.org>"), "550 5.5.1 Protocol error");
  lf.c.close();

  const quitter = await connectFrom(inst.port, "127.0.0.6");
  assert.equal(await quitter.c.line(), "220-mx.example.org ESMTP Postern");
  quitter.c.close();
  await inst.waitLog(
    new RegExp(
      `HANGUP after [\\d.]+ from \\[127\\.0\\.0\\.6\\]:${quitter.port} in tests before SMTP handshake`,
    ),
  );
  await inst.waitLog(lit(`DISCONNECT ${quitter.name}`));
});

test("behind a load balancer: the PROXY header names the client, for postscreen and for smtpd", async (t) => {
  const inst = await postscreenInstance(
    t,
    ["postscreen_greet_wait = 1s", "postscreen_upstream_proxy_protocol = haproxy", dnsMain()].join("\n"),
  );
  const c = await smtpConnect(inst.port, "127.0.0.2");
  c.sendRaw("PROXY TCP4 198.51.100.7 192.0.2.25 4321 25\r\n");
  assert.equal(await greeting(c), "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern");
  assert.match(await sendMail(c), /^250 2\.0\.0 Ok: queued as /);
  c.close();
  await inst.waitLog(lit("CONNECT from [198.51.100.7]:4321 to [192.0.2.25]:25"));
  await inst.waitLog(lit("PASS NEW [198.51.100.7]:4321"));
  await inst.waitLog(/smtpd\[\d+\]: connect from [^\s]*\[198\.51\.100\.7\]/);

  const bad = await smtpConnect(inst.port, "127.0.0.3");
  bad.send("EHLO no-proxy.example");
  assert.equal(await bad.line(), "421 4.3.2 No system resources");
  await inst.waitLog(/warning: haproxy read: not a proxy protocol header from \[127\.0\.0\.3\]/);
});
