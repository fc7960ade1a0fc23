/*
 * postscreen-extras.test - allowlist interfaces (backup MX), reply footers, the command filter
 *
 * DESCRIPTION
 *   postscreen in front of smtpd on a loopback port:
 *   - postscreen_allowlist_interfaces (here by its old name
 *     postscreen_whitelist_interfaces): a client that reaches a backup MX
 *     address (named by a PROXY header) is vetoed and only meets
 *     postscreen's engine (450 to its recipients), even once it has passed
 *     every test; on the primary address it goes through to smtpd;
 *   - postscreen_reject_footer is added to postscreen's 4XX and 5XX
 *     replies ("\c" and "\n", $client_address, $server_name), not to the
 *     log;
 *   - postscreen_command_filter rewrites a command before postscreen's
 *     engine reads it, and says so in the log.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postscreenInstance } from "../src/testing/postscreen-instance.js";
import { smtpCmd, smtpConnect } from "../src/testing/smtpd-instance.js";
import type { LineClient } from "../src/testing/instance.js";

/** A regular expression that matches text literally. */
function lit(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
}

/** Connects through a PROXY header naming the client and the server address it reached. */
async function viaProxy(
  port: number,
  client: string,
  clientPort: number,
  server: string,
): Promise<LineClient> {
  const c = await smtpConnect(port, "127.0.0.2");
  c.sendRaw(`PROXY TCP4 ${client} ${server} ${clientPort} 25\r\n`);
  return c;
}

test("a client on a backup MX address never reaches smtpd; on the primary one it does", async (t) => {
  const inst = await postscreenInstance(
    t,
    [
      "postscreen_greet_wait = 1s",
      "postscreen_upstream_proxy_protocol = haproxy",
      "postscreen_whitelist_interfaces = 192.0.2.25",
    ].join("\n"),
  );
  const backup = await viaProxy(inst.port, "198.51.100.7", 4321, "192.0.2.26");
  assert.equal(
    await smtpCmd(backup, null),
    "220-mx.example.org ESMTP Postern\n220 mx.example.org ESMTP Postern",
  );
  await inst.waitLog(lit("ALLOWLIST VETO [198.51.100.7]:4321"));
  assert.match(await smtpCmd(backup, "EHLO client.example"), /^250-mx\.example\.org/);
  assert.equal(await smtpCmd(backup, "MAIL FROM:<someone@client.example>"), "250 2.1.0 Ok");
  assert.equal(
    await smtpCmd(backup, "RCPT TO:<user@example.org>"),
    "450 4.3.2 Service currently unavailable",
  );
  assert.equal(await smtpCmd(backup, "QUIT"), "221 2.0.0 Bye");
  await inst.waitLog(lit("DISCONNECT [198.51.100.7]:4321"));
  assert.doesNotMatch(inst.log(), /PASS NEW \[198\.51\.100\.7\]/, "no pass is logged for a vetoed client");

  // The tests it passed there are remembered: on the primary address it passes at once.
  const primary = await viaProxy(inst.port, "198.51.100.7", 4322, "192.0.2.25");
  assert.equal(await smtpCmd(primary, null), "220 mx.example.org ESMTP Postern");
  assert.match(await smtpCmd(primary, "EHLO client.example"), /^250-mx\.example\.org/);
  assert.match(await smtpCmd(primary, "MAIL FROM:<someone@client.example>"), /^250 /);
  assert.match(await smtpCmd(primary, "RCPT TO:<user@example.org>"), /^250 /, "smtpd takes the recipient");
  primary.close();
  await inst.waitLog(lit("PASS OLD [198.51.100.7]:4322"));
  await inst.waitLog(/smtpd\[\d+\]: connect from [^\s]*\[198\.51\.100\.7\]/);

  // Back on the backup address: vetoed again, passed tests or not.
  const again = await viaProxy(inst.port, "198.51.100.7", 4323, "192.0.2.26");
  assert.equal(await smtpCmd(again, null), "220 mx.example.org ESMTP Postern");
  await inst.waitLog(lit("ALLOWLIST VETO [198.51.100.7]:4323"));
  assert.match(await smtpCmd(again, "EHLO client.example"), /^250-/);
  assert.equal(await smtpCmd(again, "MAIL FROM:<someone@client.example>"), "250 2.1.0 Ok");
  assert.equal(await smtpCmd(again, "RCPT TO:<user@example.org>"), "450 4.3.2 Service currently unavailable");
  again.close();
  assert.doesNotMatch(inst.log(), /PASS OLD \[198\.51\.100\.7\]:4323/);
});

test("postscreen's 4XX and 5XX replies carry the footer; the command filter rewrites commands", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-ps-extras-"));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const filter = join(dir, "command_filter");
  writeFileSync(filter, "/^XYZZY$/ NOOP\n/^HELO\\s*$/ HELO domain.invalid\n");
  const inst = await postscreenInstance(
    t,
    [
      "postscreen_greet_wait = 1s",
      "postscreen_greet_action = enforce",
      "postscreen_reject_footer = \\c (client $client_address)\\nAsk the postmaster of $server_name",
      `postscreen_command_filter = regexp:${filter}`,
    ].join("\n"),
  );
  const c = await smtpConnect(inst.port, "127.0.0.5");
  const name = `[127.0.0.5]:${c.localPort}`;
  c.sendRaw("HELO\r\n");
  await inst.waitLog(lit(`PREGREET 6 after `));
  assert.equal(await c.line(), "220-mx.example.org ESMTP Postern");
  assert.equal(await smtpCmd(c, null), "250 mx.example.org", "the filter made the bare HELO a valid one");
  await inst.waitLog(lit(`${name}: replacing command "HELO" with "HELO domain.invalid"`));
  assert.equal(await smtpCmd(c, "XYZZY"), "250 2.0.0 Ok");
  await inst.waitLog(lit(`${name}: replacing command "XYZZY" with "NOOP"`));
  assert.equal(
    await smtpCmd(c, "FROB"),
    "502-5.5.2 Error: command not recognized (client 127.0.0.5)\n502 5.5.2 Ask the postmaster of mx.example.org",
  );
  assert.equal(await smtpCmd(c, "MAIL FROM:<bot@bad.example>"), "250 2.1.0 Ok");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<user@example.org>"),
    "550-5.5.1 Protocol error (client 127.0.0.5)\n550 5.5.1 Ask the postmaster of mx.example.org",
  );
  await inst.waitLog(
    lit(
      `NOQUEUE: reject: RCPT from ${name}: 550 5.5.1 Protocol error; from=<bot@bad.example>, to=<user@example.org>, proto=SMTP, helo=<domain.invalid>`,
    ),
  );
  assert.equal(await smtpCmd(c, "QUIT"), "221 2.0.0 Bye", "2XX replies get no footer");
  await inst.waitLog(lit(`DISCONNECT ${name}`));
  assert.doesNotMatch(inst.log(), /Ask the postmaster/, "the footer is not logged");
});
