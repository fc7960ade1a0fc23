/*
 * smtpd-proxy.test - the before-queue content filter (smtpd_proxy_filter)
 *
 * DESCRIPTION
 *   First a second Postern smtpd is the filter: recipients and content it
 *   refuses are refused to the client of the first smtpd in the same
 *   session, what it accepts is queued with the original client's address
 *   (XFORWARD) in its log. Then a small real SMTP filter (Python aiosmtpd,
 *   Debian package python3-aiosmtpd) sits between the two, with
 *   smtpd_proxy_options = speed_adjust: it rejects a message with its own
 *   reply and passes the others on. A filter that is down gives 451.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/testing/instance.js";
import { waitPort } from "../src/testing/milters.js";
import { smtpCmd, smtpConnect, smtpdInstance } from "../src/testing/smtpd-instance.js";

/** Runs a transaction from a given client address; returns the replies. */
async function send(
  port: number,
  from: string,
  rcpts: string[],
  body: string,
  subject = "test",
): Promise<{ rcpt: string[]; data: string; end: string }> {
  const c = await smtpConnect(port, from);
  assert.match(await smtpCmd(c, null), /^220 /);
  assert.match(await smtpCmd(c, "EHLO client.example"), /^250/);
  assert.equal(await smtpCmd(c, "MAIL FROM:<sender@example.com>"), "250 2.1.0 Ok");
  const rcpt: string[] = [];
  for (const r of rcpts) rcpt.push(await smtpCmd(c, `RCPT TO:<${r}>`));
  const data = await smtpCmd(c, "DATA");
  let end = "";
  if (data.startsWith("354")) {
    c.send(`Subject: ${subject}\r\n\r\n${body}\r\n.line with a dot\r\n.`);
    end = await smtpCmd(c, null);
  }
  await smtpCmd(c, "QUIT");
  return { rcpt, data, end };
}

test("a Postern smtpd as the before-queue filter: its refusals reach the client in the same session", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-bqf-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  writeFileSync(
    join(dir, "header_checks"),
    "/^Subject: refuse/ REJECT 5.7.1 content refused by the filter\n",
  );
  const after = await freePort();
  const inst = await smtpdInstance(
    t,
    `smtpd_proxy_filter = 127.0.0.1:${after}\nsmtpd_proxy_ehlo = bqf.example\nheader_checks = regexp:${join(dir, "header_checks")}\n`,
    `${after} inet n - n - - smtpd -o smtpd_proxy_filter= -o smtpd_authorized_xforward_hosts=127.0.0.0/8 -o smtpd_recipient_restrictions=check_recipient_access,inline:{blocked@example.org=REJECT}`,
  );
  const r1 = await send(inst.port, "127.0.0.5", ["ok@example.org", "blocked@example.org"], "hello");
  assert.deepEqual(r1.rcpt, [
    "250 2.1.5 Ok",
    "554 5.7.1 <blocked@example.org>: Recipient address rejected: Access denied",
  ]);
  assert.match(r1.data, /^354 /);
  assert.match(r1.end, /^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/, inst.log());
  const id = /queued as ([0-9A-Z]+)/.exec(r1.end)?.[1] ?? "";
  await inst.waitLog(
    new RegExp(`${id}: client=unknown\\[127\\.0\\.0\\.1\\], orig_client=unknown\\[127\\.0\\.0\\.5\\]`),
  );
  await inst.waitLog(
    /proxy-accept: END-OF-MESSAGE: 250 2\.0\.0 Ok: queued as [0-9A-Z]+; from=<sender@example\.com> to=<ok@example\.org> proto=ESMTP helo=<client\.example>/,
  );
  assert.match(
    inst.log(),
    /postfix\/smtpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]|connect from unknown\[127\.0\.0\.1\]/,
  );
});

test("an aiosmtpd filter with speed_adjust rejects with its own reply; a filter that is down gives 451", async (t) => {
  assert.ok(existsSync("/usr/bin/python3"), "install the Debian package python3 and python3-aiosmtpd");
  const dir = mkdtempSync(join(tmpdir(), "postern-bqf-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [filter, after] = [await freePort(), await freePort()];
  writeFileSync(
    join(dir, "filter.py"),
    [
      "import asyncio, smtplib, sys",
      "from aiosmtpd.controller import Controller",
      "class Filter:",
      "    async def handle_DATA(self, server, session, envelope):",
      "        if b'REJECT-ME' in envelope.original_content:",
      "            return '554 5.7.1 Rejected by the content filter'",
      `        with smtplib.SMTP('127.0.0.1', ${after}, local_hostname='filter.example', timeout=30) as s:`,
      "            s.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content.replace(b'\\r\\n\\r\\n', b'\\r\\nX-Filtered: yes\\r\\n\\r\\n', 1))",
      "        return '250 2.0.0 Ok: filtered'",
      `c = Controller(Filter(), hostname='127.0.0.1', port=${filter})`,
      "c.start()",
      "print('ready', flush=True)",
      "asyncio.get_event_loop().run_forever()",
      "",
    ].join("\n"),
  );
  const py = spawn("/usr/bin/python3", [join(dir, "filter.py")], { stdio: ["ignore", "pipe", "pipe"] });
  let pyErr = "";
  py.stderr.on("data", (d: Buffer) => (pyErr += d.toString()));
  const exited = new Promise((r) => py.once("exit", r));
  t.after(async () => {
    py.kill("SIGTERM");
    await exited;
  });
  await waitPort(filter, `aiosmtpd (python3-aiosmtpd) ${pyErr}`, 30_000);
  const inst = await smtpdInstance(
    t,
    `smtpd_proxy_filter = inet:127.0.0.1:${filter}\nsmtpd_proxy_options = speed_adjust\nsmtpd_proxy_timeout = 20s\n`,
    `${after} inet n - n - - smtpd -o smtpd_proxy_filter=`,
  );
  const bad = await send(inst.port, "127.0.0.1", ["a@example.org"], "REJECT-ME please");
  assert.equal(bad.end, "554 5.7.1 Rejected by the content filter");
  await inst.waitLog(
    /proxy-reject: END-OF-MESSAGE: 554 5\.7\.1 Rejected by the content filter; from=<sender@example\.com> to=<a@example\.org>/,
  );
  const good = await send(inst.port, "127.0.0.1", ["a@example.org"], "a fine message");
  assert.equal(good.end, "250 2.0.0 Ok: filtered");
  await inst.waitLog(/postfix\/cleanup\[\d+\]: [0-9A-Z]+: message-id=<[^>]*>/);
  assert.match(inst.log(), /client=localhost\[127\.0\.0\.1\]|client=unknown\[127\.0\.0\.1\]/);
  py.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  const down = await send(inst.port, "127.0.0.1", ["a@example.org"], "filter gone");
  assert.equal(down.end, "451 4.3.0 Error: queue file write error");
  await inst.waitLog(/warning: connect to proxy filter inet:127\.0\.0\.1:\d+: Connection refused/);
});
