/*
 * smtpd.test - the SMTP server on a real instance, with real clients
 *
 * DESCRIPTION
 *   An instance runs smtpd on a loopback port with cleanup and
 *   trivial-rewrite (no qmgr, so accepted mail stays in incoming/ where the
 *   test reads it back). Clients: a line-by-line test client for exact
 *   protocol checks, and Python's smtplib as an independent implementation.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import {
  LineClient,
  freePort,
  shippedEntries,
  sleep,
  startInstance,
  type Instance,
} from "../src/testing/instance.js";
import { contentLines, readEnvelope } from "../src/global/queue-file.js";
import { HostsFile } from "../src/global/hosts-file.js";

interface Smtpd extends Instance {
  port: number;
}

/** Starts smtpd, cleanup and trivial-rewrite; accepted mail stays in incoming/. */
async function instance(t: { after: (fn: () => Promise<void>) => void }, main = ""): Promise<Smtpd> {
  const port = await freePort();
  const inst = await startInstance(t, {
    main: `myhostname = mx.example.org\nmydestination = $myhostname, example.org\nmynetworks = 192.0.2.0/24\nsmtpd_peername_lookup = no\nlocal_recipient_maps =\n${main}`,
    // The shipped entries without qmgr: what smtpd queued stays in incoming/ for the test to read.
    master: [`${port} inet n - n - - smtpd`, shippedEntries("cleanup", "rewrite", "flush")].join("\n"),
  });
  return Object.assign(inst, { port });
}

/** Sends a command and reads the (possibly multi-line) reply. */
async function cmd(c: LineClient, line: string | null): Promise<string> {
  if (line !== null) c.send(line);
  const lines: string[] = [];
  for (;;) {
    const l = await c.line();
    lines.push(l);
    if (/^\d{3} /.test(l) || !/^\d{3}-/.test(l)) break;
  }
  return lines.join("\n");
}

/** Opens a session past the greeting and EHLO. */
async function session(port: number): Promise<LineClient> {
  const c = await LineClient.connect(port);
  assert.match(await cmd(c, null), /^220 mx\.example\.org ESMTP Postern/);
  assert.match(await cmd(c, "EHLO client.example"), /^250-mx\.example\.org/);
  return c;
}

/** The only queue file in incoming/, read back as text. */
async function queued(
  inst: Instance,
  id: string,
): Promise<{ text: string; env: Awaited<ReturnType<typeof readEnvelope>> }> {
  const path = join(inst.spool, "incoming", id);
  const env = await readEnvelope(path);
  assert.ok(env.ok, env.ok ? "" : env.reason);
  const lines: string[] = [];
  for await (const l of contentLines(path, env.env)) lines.push(l.toString("latin1"));
  return { text: lines.join("\n") + "\n", env };
}

test("EHLO lists the extensions; a message is queued with a Received: header and logged", async (t) => {
  const inst = await instance(t);
  const c = await LineClient.connect(inst.port);
  await cmd(c, null);
  const ehlo = await cmd(c, "EHLO client.example");
  assert.equal(
    ehlo,
    [
      "250-mx.example.org",
      "250-PIPELINING",
      "250-SIZE 10240000",
      "250-VRFY",
      "250-ETRN",
      "250-ENHANCEDSTATUSCODES",
      "250-8BITMIME",
      "250-DSN",
      "250-SMTPUTF8",
      "250 CHUNKING",
    ].join("\n"),
  );
  assert.equal(
    await cmd(c, "MAIL FROM:<alice@sender.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef"),
    "250 2.1.0 Ok",
  );
  assert.equal(
    await cmd(c, "RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+40example.org"),
    "250 2.1.5 Ok",
  );
  assert.equal(await cmd(c, "DATA"), "354 End data with <CR><LF>.<CR><LF>");
  c.send("Subject: hello\r\n\r\n..dot line\r\nlast\r\n.");
  const done = await cmd(c, null);
  const id = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(done)?.[1];
  assert.ok(id, done);
  assert.equal(await cmd(c, "QUIT"), "221 2.0.0 Bye");
  const q = await queued(inst, id);
  assert.match(
    q.text,
    new RegExp(
      `^Received: from client\\.example \\(unknown \\[127\\.0\\.0\\.1\\]\\)\\n\\tby mx\\.example\\.org \\(Postern\\) with ESMTP id ${id}\\n\\tfor <bob@example\\.org>; \\w{3}, `,
    ),
  );
  assert.match(q.text, /\nSubject: hello\n(?:[\w-]+: .*\n)*\n\.dot line\nlast\n$/);
  if (!q.env.ok) return;
  assert.equal(q.env.env.sender, "alice@sender.example");
  assert.deepEqual(
    q.env.env.recipients.map((r) => [r.address, r.orcpt, r.notify]),
    [["bob@example.org", "rfc822;Bob@example.org", 6]],
  );
  assert.equal(q.env.env.attrs.get("dsn_envid"), "abc+def");
  assert.equal(q.env.env.attrs.get("dsn_ret"), "HDRS");
  await inst.waitLog(/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.1\]/);
  await inst.waitLog(new RegExp(`smtpd\\[\\d+\\]: ${id}: client=unknown\\[127\\.0\\.0\\.1\\]`));
  await inst.waitLog(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5/);
});

test("not an open relay: a foreign destination is refused, a local one accepted", async (t) => {
  const inst = await instance(t, "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n");
  const c = await session(inst.port);
  await cmd(c, "MAIL FROM:<spammer@elsewhere.example>");
  assert.equal(
    await cmd(c, "RCPT TO:<victim@far-away.example>"),
    "554 5.7.1 <victim@far-away.example>: Relay access denied",
  );
  assert.equal(await cmd(c, "RCPT TO:<postmaster@example.org>"), "250 2.1.5 Ok");
  await inst.waitLog(
    /NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <victim@far-away\.example>: Relay access denied; from=<spammer@elsewhere\.example> to=<victim@far-away\.example> proto=ESMTP helo=<client\.example>/,
  );
  c.close();
  const d = await (async () => {
    const def = await instance(t);
    const s2 = await session(def.port);
    await cmd(s2, "MAIL FROM:<spammer@elsewhere.example>");
    return cmd(s2, "RCPT TO:<victim@far-away.example>");
  })();
  assert.equal(
    d,
    "450 4.7.1 <victim@far-away.example>: Relay access denied",
    "the default relay restrictions defer",
  );
});

test("mynetworks may relay; check_recipient_access and restriction classes decide per recipient", async (t) => {
  const inst = await instance(
    t,
    "mynetworks = 127.0.0.0/8\nsmtpd_restriction_classes = strict\nstrict = reject_non_fqdn_sender, permit\nsmtpd_recipient_restrictions = check_recipient_access inline:{ { blocked@example.org = REJECT go away }, tricky@example.org=strict, { soft@example.org = 450 4.2.0 try later } }\n",
  );
  const c = await session(inst.port);
  await cmd(c, "MAIL FROM:<nodomain>");
  assert.equal(await cmd(c, "RCPT TO:<someone@far-away.example>"), "250 2.1.5 Ok");
  assert.equal(
    await cmd(c, "RCPT TO:<blocked@example.org>"),
    "554 5.7.1 <blocked@example.org>: Recipient address rejected: go away",
  );
  assert.equal(
    await cmd(c, "RCPT TO:<tricky@example.org>"),
    "504 5.5.2 <nodomain>: Sender address rejected: need fully-qualified address",
  );
  assert.equal(
    await cmd(c, "RCPT TO:<soft@example.org>"),
    "450 4.2.0 <soft@example.org>: Recipient address rejected: try later",
  );
  c.close();
});

test("smuggling: <LF>.<LF> and <CR><LF>.<LF> never end the message", async (t) => {
  const inst = await instance(t);
  const c = await session(inst.port);
  await cmd(c, "MAIL FROM:<a@sender.example>");
  await cmd(c, "RCPT TO:<b@example.org>");
  await cmd(c, "DATA");
  c.send("Subject: x\r\n\r\nfirst\n.\nMAIL FROM:<evil@x>\r\n.\nstill content\r\n.");
  const done = await cmd(c, null);
  const id = /queued as ([0-9A-F]+)/.exec(done)?.[1];
  assert.ok(id, done);
  const q = await queued(inst, id);
  assert.match(
    q.text,
    /\nfirst\n\nMAIL FROM:<evil@x>\n\nstill content\n$/,
    "the dots are content (unstuffed), not ends",
  );
  assert.equal(readdirSync(join(inst.spool, "incoming")).length, 1, "one message, not two");
  c.close();
});

test("pipelining rules: talking before the greeting, or past DATA, ends the session", async (t) => {
  const inst = await instance(t);
  const early = connect(inst.port, "127.0.0.1");
  early.write("EHLO eager.example\r\n");
  const reply = await new Promise<string>((resolve) => {
    let buf = "";
    early.on("data", (d) => (buf += String(d)));
    early.on("close", () => resolve(buf));
    setTimeout(() => {
      early.destroy();
      resolve(buf);
    }, 5000);
  });
  assert.match(reply, /^554 5\.5\.0 Error: SMTP protocol synchronization/);
  const c = await session(inst.port);
  c.send("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: too early");
  assert.equal(await cmd(c, null), "250 2.1.0 Ok");
  assert.equal(await cmd(c, null), "250 2.1.5 Ok");
  assert.equal(await cmd(c, null), "554 5.5.0 Error: SMTP protocol synchronization");
  await inst.waitLog(/improper command pipelining after DATA/);
});

test("BDAT chunks, with CRLF split across chunks", async (t) => {
  const inst = await instance(t);
  const c = await session(inst.port);
  await cmd(c, "MAIL FROM:<a@sender.example>");
  await cmd(c, "RCPT TO:<b@example.org>");
  const one = "Subject: z\r\n\r";
  const two = "\nbody\r\n";
  c.sendRaw(`BDAT ${one.length}\r\n${one}`);
  assert.equal(await cmd(c, null), `250 2.0.0 Ok: ${one.length} bytes`);
  c.sendRaw(`BDAT ${two.length} LAST\r\n${two}`);
  const done = await cmd(c, null);
  const id = /queued as ([0-9A-F]+)/.exec(done)?.[1];
  assert.ok(id, done);
  assert.match((await queued(inst, id)).text, /\nSubject: z\n(?:[\w-]+: .*\n)*\nbody\n$/);
  c.close();
});

test("BDAT beyond message_size_limit: one chunk or several, 552 and nothing stored, never a cut-short message", async (t) => {
  const inst = await instance(t, "message_size_limit = 100000\n");
  const body = (n: number): string => `Subject: big\r\n\r\n${"y".repeat(70)}\r\n`.repeat(n);
  const c = await session(inst.port);
  const one = body(1375);
  assert.ok(one.length > 100000);
  await cmd(c, "MAIL FROM:<a@sender.example>");
  await cmd(c, "RCPT TO:<b@example.org>");
  c.sendRaw(`BDAT ${one.length} LAST\r\n${one}`);
  assert.equal(await cmd(c, null), "552 5.3.4 Error: message file too big");
  // Several chunks: the one that crosses the limit is refused, and so is LAST.
  await cmd(c, "MAIL FROM:<a@sender.example>");
  await cmd(c, "RCPT TO:<b@example.org>");
  const part = body(700);
  c.sendRaw(`BDAT ${part.length}\r\n${part}`);
  assert.equal(await cmd(c, null), `250 2.0.0 Ok: ${part.length} bytes`);
  c.sendRaw(`BDAT ${part.length}\r\n${part}`);
  assert.equal(await cmd(c, null), "552 5.3.4 Error: message file too big");
  c.sendRaw(`BDAT 2 LAST\r\n\r\n`);
  assert.equal(await cmd(c, null), "552 5.3.4 Error: message file too big");
  // The session goes on: a message within the limit is queued whole.
  await cmd(c, "MAIL FROM:<a@sender.example>");
  await cmd(c, "RCPT TO:<b@example.org>");
  const fits = body(100);
  c.sendRaw(`BDAT ${fits.length} LAST\r\n${fits}`);
  const done = await cmd(c, null);
  const id = /queued as ([0-9A-F]+)/.exec(done)?.[1];
  assert.ok(id, done);
  assert.equal(readdirSync(join(inst.spool, "incoming")).length, 1, "only the message that fits was queued");
  assert.equal((await queued(inst, id)).text.split("y".repeat(70)).length - 1, 100);
  c.close();
});

test("SMTPUTF8: UTF-8 in EHLO, MAIL and RCPT is taken and queued byte for byte; broken UTF-8 gets 500 5.5.2", async (t) => {
  const inst = await instance(t);
  const c = await LineClient.connect(inst.port);
  await cmd(c, null);
  const utf8 = (text: string): void => c.sendRaw(Buffer.from(`${text}\r\n`, "utf8"));
  utf8("EHLO bücher.example");
  assert.match(await cmd(c, null), /^250-mx\.example\.org[\s\S]*250-SMTPUTF8/);
  utf8("MAIL FROM:<jörg@bücher.example> SMTPUTF8");
  assert.equal(await cmd(c, null), "250 2.1.0 Ok");
  utf8("RCPT TO:<zoë@example.org>");
  assert.equal(await cmd(c, null), "250 2.1.5 Ok");
  c.sendRaw(Buffer.from("MAIL FROM:<bad\xff\xfe@example.org>\r\n", "latin1"));
  assert.equal(await cmd(c, null), "500 5.5.2 Error: bad UTF-8 syntax");
  assert.equal(await cmd(c, "DATA"), "354 End data with <CR><LF>.<CR><LF>");
  utf8("Subject: grüße\r\n\r\nhallo\r\n.");
  const done = await cmd(c, null);
  const id = /queued as ([0-9A-F]+)/.exec(done)?.[1];
  assert.ok(id, done);
  const q = await queued(inst, id);
  assert.ok(q.env.ok);
  const asUtf8 = (x: string): string => Buffer.from(x, "latin1").toString("utf8");
  assert.equal(q.env.ok ? q.env.env.sender : "", "jörg@bücher.example");
  assert.match(asUtf8(q.text), /Subject: grüße/);
  c.close();
});

test("limits: SIZE, message_size_limit, hard error limit, non-SMTP clients", async (t) => {
  const inst = await instance(
    t,
    "message_size_limit = 2000\nsmtpd_hard_error_limit = 3\nsmtpd_soft_error_limit = 10\n",
  );
  const c = await session(inst.port);
  assert.equal(
    await cmd(c, "MAIL FROM:<a@sender.example> SIZE=5000"),
    "552 5.3.4 Message size exceeds fixed limit",
  );
  await cmd(c, "MAIL FROM:<a@sender.example>");
  await cmd(c, "RCPT TO:<b@example.org>");
  await cmd(c, "DATA");
  c.send(`Subject: big\r\n\r\n${"x".repeat(3000)}\r\n.`);
  assert.equal(await cmd(c, null), "552 5.3.4 Error: message file too big");
  for (let i = 0; i < 40 && readdirSync(join(inst.spool, "incoming")).length > 0; i++) await sleep(50);
  assert.deepEqual(readdirSync(join(inst.spool, "incoming")), [], "nothing was queued");
  assert.equal(await cmd(c, "BOGUS"), "421 4.7.0 mx.example.org Error: too many errors");
  const h = await LineClient.connect(inst.port);
  await cmd(h, null);
  assert.equal(await cmd(h, "GET / HTTP/1.0"), "221 2.7.0 Error: I can break rules, too. Goodbye.");
});

test("a client that vanishes in the middle of DATA leaves no queue file", async (t) => {
  const inst = await instance(t);
  const c = await session(inst.port);
  await cmd(c, "MAIL FROM:<a@sender.example>");
  await cmd(c, "RCPT TO:<b@example.org>");
  await cmd(c, "DATA");
  c.send("Subject: half\r\n\r\npartial");
  await sleep(100);
  c.close();
  await inst.waitLog(/lost connection after DATA/);
  for (let i = 0; i < 40 && readdirSync(join(inst.spool, "incoming")).length > 0; i++) await sleep(50);
  assert.deepEqual(readdirSync(join(inst.spool, "incoming")), []);
});

test("Python's smtplib sends a message", async (t) => {
  const inst = await instance(t);
  const script = join(inst.dir, "send.py");
  writeFileSync(
    script,
    `import smtplib\nfrom email.message import EmailMessage\nm = EmailMessage()\nm["From"] = "alice@sender.example"\nm["To"] = "bob@example.org"\nm["Subject"] = "from python"\nm.set_content("hello " * 2000)\ns = smtplib.SMTP("127.0.0.1", ${inst.port})\nprint(s.send_message(m))\ns.quit()\n`,
  );
  const r = spawnSync("/usr/bin/python3", [script], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "{}");
  const [id] = readdirSync(join(inst.spool, "incoming"));
  assert.ok(id);
  assert.match((await queued(inst, id)).text, /Subject: from python\n[\s\S]*hello hello/);
});

test("ETRN asks the flush service for a site's mail; other sites and bad names are refused", async (t) => {
  const inst = await instance(t, "relay_domains = relay.example\n");
  const c = await session(inst.port);
  assert.equal(await cmd(c, "ETRN relay.example"), "250 Queuing started");
  assert.equal(await cmd(c, "ETRN @relay.example"), "250 Queuing started");
  assert.equal(await cmd(c, "ETRN elsewhere.example"), "459 <elsewhere.example>: service unavailable");
  assert.equal(await cmd(c, "ETRN not/a/domain"), "501 Error: invalid parameter syntax");
  assert.equal(await cmd(c, "ETRN"), "500 Syntax: ETRN domain");
  await cmd(c, "MAIL FROM:<a@sender.example>");
  assert.equal(await cmd(c, "ETRN relay.example"), "503 Error: MAIL transaction in progress");
  c.close();
});

test("local_header_rewrite_clients: headers of this host's own clients are completed, a remote client's left alone", async (t) => {
  for (const [setting, expect] of [
    ["", /\nTo: bob@mx\.example\.org\n/],
    ["local_header_rewrite_clients =\n", /\nTo: bob\n/],
  ] as const) {
    const inst = await instance(t, setting);
    const c = await session(inst.port);
    await cmd(c, "MAIL FROM:<a@sender.example>");
    await cmd(c, "RCPT TO:<bob@example.org>");
    await cmd(c, "DATA");
    c.send("To: bob\r\nSubject: context\r\n\r\nbody\r\n.");
    const id = /queued as ([0-9A-F]+)/.exec(await cmd(c, null))?.[1];
    assert.ok(id);
    assert.match((await queued(inst, id)).text, expect);
    c.close();
  }
});

test("access-table actions reach the queue: PREPEND adds a header, HOLD holds, REDIRECT and BCC change recipients", async (t) => {
  const table =
    "inline:{ { hold@example.org = HOLD check me }, { tag@example.org = PREPEND X-Tagged: yes }, { moved@example.org = REDIRECT new@example.org }, { copy@example.org = BCC audit@example.org } }";
  const inst = await instance(t, `smtpd_recipient_restrictions = check_recipient_access ${table}\n`);
  const send = async (rcpt: string): Promise<string> => {
    const c = await session(inst.port);
    await cmd(c, "MAIL FROM:<a@sender.example>");
    assert.equal(await cmd(c, `RCPT TO:<${rcpt}>`), "250 2.1.5 Ok");
    await cmd(c, "DATA");
    c.send("Subject: actions\r\n\r\nbody\r\n.");
    const id = /queued as ([0-9A-F]+)/.exec(await cmd(c, null))?.[1];
    c.close();
    assert.ok(id);
    return id;
  };
  const tagged = await send("tag@example.org");
  assert.match((await queued(inst, tagged)).text, /^X-Tagged: yes\nReceived: from /);
  const held = await send("hold@example.org");
  for (let i = 0; i < 40 && !readdirSync(join(inst.spool, "hold")).includes(held); i++) await sleep(50);
  assert.ok(readdirSync(join(inst.spool, "hold")).includes(held), "the message is on hold");
  const moved = await queued(inst, await send("moved@example.org"));
  assert.deepEqual(moved.env.ok ? moved.env.env.recipients.map((r) => r.address) : [], ["new@example.org"]);
  const copied = await queued(inst, await send("copy@example.org"));
  assert.deepEqual(copied.env.ok ? copied.env.env.recipients.map((r) => r.address).sort() : [], [
    "audit@example.org",
    "copy@example.org",
  ]);
});

test("queue_minfree: too little free space refuses MAIL with 452 4.3.1; nothing is queued", async (t) => {
  const inst = await instance(t, "queue_minfree = 4503599627370496\nmessage_size_limit = 1000\n");
  const c = await session(inst.port);
  assert.equal(await cmd(c, "MAIL FROM:<a@sender.example>"), "452 4.3.1 Insufficient system storage");
  assert.equal(await cmd(c, "RCPT TO:<b@example.org>"), "503 5.5.1 Error: need MAIL command");
  await inst.waitLog(
    /smtpd\[\d+\]: warning: not enough free space in mail queue: \d+ bytes < 1\.5\*message size limit/,
  );
  await inst.waitLog(
    /NOQUEUE: reject: MAIL from unknown\[127\.0\.0\.1\]: 452 4\.3\.1 Insufficient system storage; proto=ESMTP helo=<client\.example>/,
  );
  assert.deepEqual(readdirSync(join(inst.spool, "incoming")), []);
  const big = await instance(t, "message_size_limit = 4503599627370496\n");
  const d = await session(big.port);
  assert.equal(
    await cmd(d, "MAIL FROM:<a@sender.example>"),
    "452 4.3.1 Insufficient system storage",
    "1.5 message_size_limits must fit as well",
  );
  const ok = await instance(t, "queue_minfree = 1500\nmessage_size_limit = 2000\n");
  const e = await session(ok.port);
  assert.equal(await cmd(e, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
  await ok.waitLog(/warning: queue_minfree\(1500\) should be at least 1\.5\*message_size_limit\(2000\)/);
});

test("the client's name comes from /etc/hosts before DNS, as getnameinfo() gives it to Postfix", async (t) => {
  const expected = await new HostsFile().nameOf("127.0.0.1");
  assert.ok(expected !== null, "/etc/hosts must name 127.0.0.1 (it does on every stock system)");
  const hole = createSocket("udp4");
  await new Promise<void>((r) => hole.bind(0, "127.0.0.1", () => r()));
  t.after(() => hole.close());
  const port = await freePort();
  const inst = await startInstance(t, {
    main: [
      "myhostname = mx.example.org",
      "mydestination = example.org",
      "local_recipient_maps =",
      "smtpd_peername_lookup = yes",
      `postern_dns_servers = 127.0.0.1:${hole.address().port}`,
      "postern_dns_timeout = 1s",
      "smtpd_client_restrictions = reject_unknown_client_hostname",
      "",
    ].join("\n"),
    master: [`${port} inet n - y - - smtpd`, shippedEntries("cleanup"), shippedEntries("rewrite"), ""].join(
      "\n",
    ),
  });
  const c = await session(port);
  assert.equal(await cmd(c, "MAIL FROM:<a@sender.example>"), "250 2.1.0 Ok");
  assert.equal(await cmd(c, "RCPT TO:<b@example.org>"), "250 2.1.5 Ok", "a verified name, with DNS dead");
  await cmd(c, "DATA");
  c.send("Subject: named\r\n\r\nx\r\n.");
  const id = /queued as ([0-9A-F]+)/.exec(await cmd(c, null))?.[1] ?? "";
  const name = expected.toLowerCase().replace(/\./g, "\\.");
  await inst.waitLog(new RegExp(`smtpd\\[\\d+\\]: connect from ${name}\\[127\\.0\\.0\\.1\\]`));
  await inst.waitLog(new RegExp(`${id}: client=${name}\\[127\\.0\\.0\\.1\\]`));
  const q = await queued(inst, id);
  assert.match(
    q.text,
    new RegExp(`^Received: from client\\.example \\(${name} \\[127\\.0\\.0\\.1\\]\\)`, "m"),
  );
});
