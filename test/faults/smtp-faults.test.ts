/*
 * smtp-faults.test - next-hop faults seen by the smtp delivery agent
 *
 * DESCRIPTION
 *   A real instance relays to a scripted loopback peer (127.0.0.5) whose
 *   first connections misbehave; later ones are passed through, byte for
 *   byte, to a real aiosmtpd (python3-aiosmtpd), which records what it
 *   accepts. Faults: the peer drops the connection in the middle of the
 *   message content (the message is deferred, then delivered exactly
 *   once); the peer accepts the message with 250 and closes before QUIT
 *   (delivered once, by that 250, and never again); the peer answers 250,
 *   450 and 550 per recipient (the 550 one bounces once, the 450 one goes
 *   alone to the next attempt, the 250 one is never sent twice); and the
 *   smtp agent is killed with SIGKILL while the peer holds its reply to
 *   the final dot (the message arrives at least once after master starts
 *   a new agent; copies beyond the first are counted and printed, since a
 *   peer that kept the message before the kill makes a duplicate, as with
 *   Postfix). Sessions are not cached (smtp_connection_cache_on_demand
 *   = no), so that each attempt is a new connection. Every wait is bounded.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { freePort, sleep, type Instance } from "../../src/testing/instance.js";
import { readMasterPid } from "../../src/global/master-pid.js";
import { daemonPids } from "../../src/testing/proc-tree.js";
import { relayInstance, startAiosmtpd, submitMessage, type Aiosmtpd } from "../../src/testing/smtp-peers.js";

type Fault = "drop-in-data" | "close-after-250" | "per-rcpt" | "hold-dot";

interface Peer {
  addr: string;
  port: number;
  /** Connections seen, and messages the scripted part accepted (a 250 to the dot, or kept before holding it). */
  connections: number;
  kept: Array<{ rcpts: string[] }>;
  /** Set once the peer holds the reply to the dot (hold-dot). */
  holding: boolean;
}

/**
 * A peer whose first `faulty` connections follow the fault's script and
 * whose later ones go through to aiosmtpd.
 */
async function startPeer(t: TestContext, aio: Aiosmtpd, fault: Fault, faulty: number): Promise<Peer> {
  const addr = "127.0.0.5";
  const socks = new Set<Socket>();
  const peer: Peer = { addr, port: await freePort(), connections: 0, kept: [], holding: false };
  const server = createServer((sock) => {
    socks.add(sock);
    sock.on("close", () => socks.delete(sock));
    sock.on("error", () => undefined);
    peer.connections++;
    if (peer.connections > faulty) {
      const up = connect(aio.port, aio.addr);
      socks.add(up);
      up.on("error", () => sock.destroy());
      up.on("close", () => sock.end());
      sock.on("close", () => up.destroy());
      sock.pipe(up);
      up.pipe(sock);
      return;
    }
    sock.write("220 fault.example.test ESMTP\r\n");
    let buf = "";
    let inData = false;
    let bodyLines = 0;
    let rcpts: string[] = [];
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0 && !sock.destroyed) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (inData) {
          bodyLines++;
          if (fault === "drop-in-data" && bodyLines === 2) {
            sock.destroy();
            return;
          }
          if (line !== ".") continue;
          inData = false;
          if (fault === "hold-dot") {
            peer.kept.push({ rcpts });
            peer.holding = true;
            continue;
          }
          peer.kept.push({ rcpts });
          sock.write("250 2.0.0 Ok: queued as FAULT\r\n");
          if (fault === "close-after-250") sock.destroy();
          continue;
        }
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === "EHLO") sock.write("250-fault.example.test\r\n250 PIPELINING\r\n");
        else if (cmd === "HELO" || cmd === "MAIL" || cmd === "RSET" || cmd === "NOOP")
          sock.write("250 2.0.0 Ok\r\n");
        else if (cmd === "RCPT") {
          const rcpt = /<([^>]*)>/.exec(line)?.[1] ?? "";
          const local = rcpt.split("@")[0] ?? "";
          if (fault === "per-rcpt" && local.startsWith("later-")) sock.write("450 4.2.0 try later\r\n");
          else if (fault === "per-rcpt" && local.startsWith("hard-"))
            sock.write("550 5.1.1 no such user\r\n");
          else {
            rcpts.push(rcpt);
            sock.write("250 2.1.5 Ok\r\n");
          }
        } else if (cmd === "DATA" && rcpts.length === 0) sock.write("554 5.5.1 no valid recipients\r\n");
        else if (cmd === "DATA") {
          sock.write("354 go ahead\r\n");
          inData = true;
          bodyLines = 0;
        } else if (cmd === "QUIT") sock.end("221 2.0.0 Bye\r\n");
        else sock.write("502 5.5.2 unknown\r\n");
        if (cmd === "MAIL") rcpts = [];
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(peer.port, addr, resolve));
  t.after(async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return peer;
}

/** The X-Rcpt-To recipients of each message (not notice) aiosmtpd accepted with the given marker. */
function arrived(aio: Aiosmtpd, marker: string): string[][] {
  return aio
    .messages()
    .filter((m) => m.includes(marker) && !m.startsWith("X-Mail-From: <>\n"))
    .map((m) => [...m.matchAll(/^X-Rcpt-To: (.*)$/gm)].map((x) => x[1] ?? ""));
}

async function setup(
  t: TestContext,
  fault: Fault,
  faulty = 1,
): Promise<{ inst: Instance; aio: Aiosmtpd; peer: Peer }> {
  const aio = await startAiosmtpd(t);
  const peer = await startPeer(t, aio, fault, faulty);
  const inst = await relayInstance(
    t,
    [
      `relayhost = [${peer.addr}]:${peer.port}`,
      "smtp_data_done_timeout = 30s",
      "smtp_connection_cache_on_demand = no",
    ].join("\n"),
    "bounce unix - - n - 0 bounce\ndefer unix - - n - 0 bounce",
  );
  return { inst, aio, peer };
}

/** Sleeps until the queue has no file left for id (bounded). */
async function gone(inst: Instance, id: string): Promise<void> {
  await inst.waitLog(new RegExp(`${id}: removed`), 40_000);
}

test("a next hop that drops the connection in the middle of the content: deferred, then delivered exactly once", async (t) => {
  const { inst, aio, peer } = await setup(t, "drop-in-data");
  const body = `Subject: drop\nX-Marker: m-drop\n\n${"line\n".repeat(50)}`;
  const id = await submitMessage(inst, { rcpts: ["a@remote.test"], content: body });
  await inst.waitLog(new RegExp(`${id}: to=<a@remote\\.test>, .*status=deferred`), 20_000);
  await inst.waitLog(new RegExp(`${id}: to=<a@remote\\.test>, .*status=sent`), 30_000);
  await gone(inst, id);
  await sleep(1500);
  assert.deepEqual(arrived(aio, "m-drop"), [["a@remote.test"]], "exactly one copy");
  assert.equal(peer.kept.length, 0);
  t.diagnostic(`drop-in-data: connections=${peer.connections} copies=${arrived(aio, "m-drop").length}`);
});

test("a next hop that accepts with 250 and closes before QUIT: delivered once, never resent", async (t) => {
  const { inst, aio, peer } = await setup(t, "close-after-250");
  const id = await submitMessage(inst, {
    rcpts: ["a@remote.test", "b@remote.test"],
    content: "Subject: close\nX-Marker: m-close\n\nhi\n",
  });
  for (const r of ["a", "b"])
    await inst.waitLog(
      new RegExp(`${id}: to=<${r}@remote\\.test>, .*status=sent \\(250 2\\.0\\.0 Ok: queued as FAULT`),
      20_000,
    );
  await gone(inst, id);
  await sleep(2500);
  assert.equal(peer.kept.length, 1);
  assert.equal(arrived(aio, "m-close").length, 0, "no copy beyond the one the 250 acknowledged");
  assert.doesNotMatch(inst.log(), new RegExp(`${id}: to=<[ab]@remote\\.test>, .*status=deferred`));
  t.diagnostic(`close-after-250: copies=${peer.kept.length + arrived(aio, "m-close").length}`);
});

test("250, 450 and 550 per recipient: each handled on its own across retries", async (t) => {
  const { inst, aio, peer } = await setup(t, "per-rcpt");
  const id = await submitMessage(inst, {
    sender: "owner@remote.test",
    rcpts: ["ok@remote.test", "later-1@remote.test", "hard-1@remote.test", "later-2@remote.test"],
    content: "Subject: mix\nX-Marker: m-mix\n\nhi\n",
  });
  await inst.waitLog(new RegExp(`${id}: to=<ok@remote\\.test>, .*status=sent`), 20_000);
  await inst.waitLog(
    new RegExp(`${id}: to=<hard-1@remote\\.test>, .*status=bounced \\(host .*said: 550 5\\.1\\.1`),
    20_000,
  );
  await inst.waitLog(
    new RegExp(`${id}: to=<later-1@remote\\.test>, .*status=deferred .*450 4\\.2\\.0`),
    20_000,
  );
  for (const r of ["later-1", "later-2"])
    await inst.waitLog(new RegExp(`${id}: to=<${r}@remote\\.test>, .*status=sent`), 30_000);
  await gone(inst, id);
  await sleep(1500);
  assert.deepEqual(
    peer.kept.map((k) => k.rcpts),
    [["ok@remote.test"]],
    "the first attempt carried only the 250 recipient",
  );
  assert.deepEqual(
    arrived(aio, "m-mix"),
    [["later-1@remote.test", "later-2@remote.test"]],
    "the retry carried only the 450 ones",
  );
  const log = inst.log();
  assert.equal(log.match(new RegExp(`${id}: to=<hard-1@remote\\.test>, .*status=bounced`, "g"))?.length, 1);
  assert.equal(log.match(new RegExp(`${id}: to=<ok@remote\\.test>, .*status=sent`, "g"))?.length, 1);
  // The bounce for hard-1 goes back through the peer (now aiosmtpd) to the sender.
  const notices = aio.messages().filter((m) => m.includes("X-Rcpt-To: owner@remote.test"));
  assert.equal(notices.length, 1, "one non-delivery notice");
  assert.match(notices[0] ?? "", /Final-Recipient: rfc822; hard-1@remote\.test/);
});

test("kill -9 of the smtp agent while the next hop holds its reply to the dot: delivered at least once, duplicates counted", async (t) => {
  const { inst, aio, peer } = await setup(t, "hold-dot");
  const id = await submitMessage(inst, {
    rcpts: ["a@remote.test"],
    content: "Subject: kill\nX-Marker: m-kill\n\nhi\n",
  });
  const deadline = Date.now() + 20_000;
  while (!peer.holding) {
    assert.ok(Date.now() < deadline, "the agent never reached the end of the content");
    await sleep(50);
  }
  const master = readMasterPid(inst.lib);
  assert.ok(master !== null, "master is running");
  const pids = daemonPids(master, "smtp");
  assert.ok(pids.length > 0, "an smtp agent process is running");
  for (const p of pids) process.kill(p, "SIGKILL");
  await inst.waitLog(new RegExp(`${id}: to=<a@remote\\.test>, .*status=sent`), 40_000);
  await gone(inst, id);
  await sleep(1500);
  const copies = peer.kept.length + arrived(aio, "m-kill").length;
  assert.ok(arrived(aio, "m-kill").length >= 1, "delivered after the agent was killed");
  t.diagnostic(`kill-smtp: killed=${pids.length} copies=${copies} duplicates=${copies - 1}`);
});
