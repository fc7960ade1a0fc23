/*
 * content-filter.test - the after-queue content filter
 *
 * DESCRIPTION
 *   content_filter = scan:[127.0.0.1]:port sends every message that the
 *   first smtpd queues to a small SMTP filter (written below), through the
 *   smtp agent with smtp_send_xforward_command = yes. The filter adds
 *   X-Filtered: yes and re-injects the message, with XFORWARD NAME/ADDR
 *   from what it received, into a second smtpd with -o content_filter=
 *   and receive_override_options=no_header_body_checks. Each message
 *   reaches the final server (aiosmtpd) exactly once, filtered once;
 *   the re-injection's log line and Received: header name the original
 *   client; header_checks run once per message. A FILTER action from
 *   check_client_access chooses the filter per client.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/testing/instance.js";
import { smtpCmd, smtpConnect, smtpHello } from "../src/testing/smtpd-instance.js";
import { relayInstance, startAiosmtpd } from "../src/testing/smtp-peers.js";

type TestContext = { after: (fn: () => Promise<void> | void) => void };

interface Filter {
  port: number;
  /** The XFORWARD attributes of every message the filter received. */
  seen: Array<Map<string, string>>;
}

/** Re-injects one message into port with XFORWARD; returns the final reply. */
async function reinject(
  port: number,
  xf: Map<string, string>,
  from: string,
  rcpts: string[],
  data: string,
): Promise<string> {
  const c = await smtpConnect(port);
  try {
    await smtpCmd(c, null);
    await smtpCmd(c, "EHLO filter.example.test");
    const attrs = ["NAME", "ADDR", "PROTO", "HELO", "IDENT", "SOURCE"]
      .filter((k) => xf.has(k))
      .map((k) => `${k}=${xf.get(k) ?? ""}`);
    if (attrs.length > 0) {
      const r = await smtpCmd(c, `XFORWARD ${attrs.join(" ")}`);
      if (!r.startsWith("250")) return r;
    }
    const m = await smtpCmd(c, `MAIL FROM:${from}`);
    if (!m.startsWith("250")) return m;
    for (const r of rcpts) {
      const x = await smtpCmd(c, `RCPT TO:${r}`);
      if (!x.startsWith("250")) return x;
    }
    const d = await smtpCmd(c, "DATA");
    if (!d.startsWith("354")) return d;
    c.send(`X-Filtered: yes\r\n${data}.`);
    const end = await smtpCmd(c, null);
    await smtpCmd(c, "QUIT");
    return end;
  } finally {
    c.close();
  }
}

/** A small SMTP content filter on 127.0.0.1 that offers XFORWARD and re-injects into back. */
async function startFilter(t: TestContext, back: number): Promise<Filter> {
  const port = await freePort();
  const seen: Array<Map<string, string>> = [];
  const socks = new Set<Socket>();
  const server: Server = createServer((sock) => {
    socks.add(sock);
    sock.on("close", () => socks.delete(sock));
    sock.on("error", () => undefined);
    sock.setEncoding("latin1");
    let buf = "";
    let inData = false;
    let data = "";
    let xf = new Map<string, string>();
    let from = "";
    let rcpts: string[] = [];
    let busy = Promise.resolve();
    const say = (s: string): void => void sock.write(s + "\r\n");
    const line = async (l: string): Promise<void> => {
      if (inData) {
        if (l !== ".") {
          data += l + "\r\n";
          return;
        }
        inData = false;
        seen.push(xf);
        const r = await reinject(back, xf, from, rcpts, data).catch((e: Error) => `451 ${e.message}`);
        say(r.startsWith("250") ? "250 2.0.0 Ok: filtered" : `451 4.3.0 re-injection failed: ${r}`);
        xf = new Map();
        rcpts = [];
        data = "";
        return;
      }
      const verb = l.split(" ")[0]?.toUpperCase() ?? "";
      if (verb === "EHLO") say("250-filter.example.test\r\n250 XFORWARD NAME ADDR PROTO HELO IDENT SOURCE");
      else if (verb === "XFORWARD") {
        for (const w of l.split(" ").slice(1)) {
          const eq = w.indexOf("=");
          if (eq > 0) xf.set(w.slice(0, eq).toUpperCase(), w.slice(eq + 1));
        }
        say("250 2.0.0 Ok");
      } else if (verb === "MAIL") {
        from = l.slice(10).split(" ")[0] ?? "<>";
        say("250 2.1.0 Ok");
      } else if (verb === "RCPT") {
        rcpts.push(l.slice(8).split(" ")[0] ?? "");
        say("250 2.1.5 Ok");
      } else if (verb === "DATA") {
        inData = true;
        say("354 go ahead");
      } else if (verb === "RSET") {
        xf = new Map();
        rcpts = [];
        say("250 2.0.0 Ok");
      } else if (verb === "QUIT") {
        say("221 2.0.0 Bye");
        sock.end();
      } else say("502 5.5.2 Error: command not recognized");
    };
    sock.on("data", (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 2);
        busy = busy.then(() => line(l));
      }
    });
    say("220 filter.example.test ESMTP test filter");
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  t.after(async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port, seen };
}

/** The main.cf and master.cf of a content-filter setup with a given first-smtpd main.cf text. */
async function filterSetup(t: TestContext, main: string) {
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });
  const front = await freePort();
  const back = await freePort();
  const filter = await startFilter(t, back);
  const dir = mkdtempSync(join(tmpdir(), "postern-cf-"));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const checks = join(dir, "header_checks");
  writeFileSync(checks, "/^Subject: (.*)/ WARN subject seen\n");
  const inst = await relayInstance(
    t,
    [
      `relayhost = [127.0.0.3]:${aio.port}`,
      "mynetworks = 127.0.0.0/8",
      "smtpd_peername_lookup = no",
      `header_checks = regexp:${checks}`,
      main.replaceAll("FILTERPORT", String(filter.port)),
    ].join("\n"),
    [
      `${front} inet n - n - - smtpd`,
      `${back} inet n - n - - smtpd`,
      "  -o content_filter=",
      "  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks",
      "  -o smtpd_authorized_xforward_hosts=127.0.0.0/8",
      "scan unix - - n - 4 smtp",
      "  -o smtp_send_xforward_command=yes",
    ].join("\n"),
  );
  return { aio, front, back, filter, inst };
}

/** Sends one message from a client address; returns the queue ID. */
async function send(port: number, from: string, n: number): Promise<string> {
  const c = await smtpHello(port, from);
  try {
    assert.equal(await smtpCmd(c, "MAIL FROM:<sender@origin.test>"), "250 2.1.0 Ok");
    assert.equal(await smtpCmd(c, `RCPT TO:<user${n}@remote.test>`), "250 2.1.5 Ok");
    assert.match(await smtpCmd(c, "DATA"), /^354/);
    c.send(`Subject: message ${n}\r\n\r\nbody ${n}\r\n.`);
    const reply = await smtpCmd(c, null);
    const id = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(reply)?.[1];
    assert.ok(id, reply);
    return id;
  } finally {
    c.close();
  }
}

/** Waits until the sink holds at least n messages (bounded). */
async function waitMessages(aio: { messages: () => string[] }, n: number, ms = 60_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = aio.messages();
    if (m.length >= n || Date.now() > deadline) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("content_filter: every message goes through the filter once and comes back with the original client", async (t) => {
  const N = 20;
  const { aio, front, filter, inst } = await filterSetup(t, "content_filter = scan:[127.0.0.1]:FILTERPORT");
  const ids: string[] = [];
  for (let i = 0; i < N; i++)
    ids.push(
      await send(front, "127.0.0.5", i).catch((e: Error) => assert.fail(`${e.message}\n${inst.log()}`)),
    );
  const msgs = await waitMessages(aio, N);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(aio.messages().length, N, "each message delivered exactly once");
  assert.equal(filter.seen.length, N, "each message filtered exactly once");
  for (const xf of filter.seen) {
    assert.equal(xf.get("ADDR"), "127.0.0.5");
    assert.equal(xf.get("NAME"), "unknown");
  }
  const subjects = new Set<string>();
  for (const m of msgs) {
    assert.equal(m.match(/^X-Filtered: yes\r?$/gm)?.length, 1, m);
    const received = m.match(/^Received: from [^\n]*\n(?:[ \t][^\n]*\n)*/gm) ?? [];
    assert.equal(received.length, 2, m);
    for (const r of received) assert.match(r, /\(unknown \[127\.0\.0\.5\]\)/, r);
    subjects.add(/^Subject: (.*?)\r?$/m.exec(m)?.[1] ?? "");
  }
  assert.equal(subjects.size, N);
  for (const id of ids)
    await inst.waitLog(
      new RegExp(
        `: client=unknown\\[127\\.0\\.0\\.1\\], orig_queue_id=${id}, orig_client=unknown\\[127\\.0\\.0\\.5\\]`,
      ),
    );
  for (const id of ids)
    await inst.waitLog(
      new RegExp(
        `${id}: to=<[^>]+>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${filter.port}, .*status=sent`,
      ),
    );
  const warns = inst.log().match(/warning: header Subject: message \d+ from /g) ?? [];
  assert.equal(warns.length, N, "header_checks run once per message (not on the re-injection)");
});

test("FILTER from check_client_access: only that client's mail goes through the filter", async (t) => {
  const { aio, front, filter, inst } = await filterSetup(
    t,
    "smtpd_client_restrictions = check_client_access inline:{ {127.0.0.6 = FILTER scan:[127.0.0.1]:FILTERPORT} }",
  );
  const filtered = await send(front, "127.0.0.6", 1);
  const direct = await send(front, "127.0.0.7", 2);
  const msgs = await waitMessages(aio, 2);
  await inst.waitLog(
    new RegExp(
      `${filtered}: to=<user1@remote\\.test>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${filter.port}, .*status=sent`,
    ),
  );
  await inst.waitLog(
    new RegExp(
      `${direct}: to=<user2@remote\\.test>, relay=127\\.0\\.0\\.3\\[127\\.0\\.0\\.3\\]:${aio.port}, .*status=sent`,
    ),
  );
  await inst.waitLog(new RegExp(`orig_queue_id=${filtered}, orig_client=unknown\\[127\\.0\\.0\\.6\\]`));
  assert.equal(msgs.length, 2);
  assert.equal(filter.seen.length, 1);
  assert.equal(filter.seen[0]?.get("ADDR"), "127.0.0.6");
  const one = msgs.find((m) => m.includes("Subject: message 1"));
  const two = msgs.find((m) => m.includes("Subject: message 2"));
  assert.match(one ?? "", /^X-Filtered: yes\r?$/m);
  assert.doesNotMatch(two ?? "", /X-Filtered/);
});
