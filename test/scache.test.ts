/*
 * scache.test - SMTP connections shared between smtp agent processes
 *
 * DESCRIPTION
 *   A real instance with the scache service relays to Python's aiosmtpd,
 *   whose connection log (conns.log: the client port of each connection,
 *   its MAIL commands, its close) shows which connection carried which
 *   message; Postern's log shows which smtp agent process delivered it.
 *   With several agent processes (each takes one qmgr connection and is
 *   replaced after it: max_use=1), messages to one destination travel
 *   over fewer connections than there were processes, and one connection
 *   carries messages of different processes. scache logs its statistics
 *   as Postfix does; an idle connection is closed after
 *   smtp_connection_cache_time_limit and not before; a connection is not
 *   reused more than smtp_connection_reuse_count_limit times; a killed
 *   scache loses no mail (the agents go on with new connections); a
 *   cached connection that the server closes is replaced without a failed
 *   delivery; with on-demand caching a lone message's connection is not
 *   kept, while a backlog is delivered over kept connections. Without a
 *   scache service in master.cf, sessions are kept in the agent process
 *   (logged once). The agents and scache run jailed, as in the stock
 *   master.cf.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { processesOf, sleep, type Instance, shippedEntries } from "../src/testing/instance.js";
import { relayInstance, startAiosmtpd, submitMessage, type Aiosmtpd } from "../src/testing/smtp-peers.js";

type TestContext = Parameters<typeof relayInstance>[0];

/** An aiosmtpd and an instance whose scsmtp transport runs `procs` one-client agent processes, with scache. */
async function world(
  t: TestContext,
  opts: { main?: string[]; agent?: string; procs?: number; idleTimeout?: number; cacheAll?: boolean },
): Promise<{ aio: Aiosmtpd; inst: Instance }> {
  const aio = await startAiosmtpd(t, {
    addr: "127.0.0.3",
    ...(opts.idleTimeout ? { idleTimeout: opts.idleTimeout } : {}),
  });
  const hop = `[127.0.0.3]:${aio.port}`;
  const inst = await relayInstance(
    t,
    [
      `relayhost = ${hop}`,
      "default_transport = scsmtp",
      ...(opts.cacheAll === true ? [`smtp_connection_cache_destinations = ${hop}`] : []),
      ...(opts.main ?? []),
    ].join("\n"),
    [
      `scsmtp unix - - y - ${opts.procs ?? 4} smtp -o postern_process_client_limit=1 ${opts.agent ?? ""}`,
      shippedEntries("scache"),
    ].join("\n"),
  );
  return { aio, inst };
}

/** Submits one message (sender s<i>@example.org, recipient r<i>@remote.test); resolves its queue ID. */
function send(inst: Instance, i: number): Promise<string> {
  return submitMessage(inst, {
    sender: `s${i}@example.org`,
    rcpts: [`r${i}@remote.test`],
    content: `Subject: scache ${i}\n\nhello ${i}\n`,
  });
}

/** Waits until message i is sent; returns the pid of the smtp process that delivered it. */
async function sent(inst: Instance, id: string, i: number): Promise<number> {
  const line = await inst.waitLog(
    new RegExp(`postfix/smtp\\[\\d+\\]: ${id}: to=<r${i}@remote\\.test>, .*status=sent`),
    30_000,
  );
  return Number(/smtp\[(\d+)\]/.exec(line)?.[1]);
}

/** The client port of the connection that carried each message, by message number. */
function portsByMessage(aio: Aiosmtpd): Map<number, number> {
  const out = new Map<number, number>();
  for (const l of aio.connections()) {
    const m = /^mail (\d+) s(\d+)@example\.org$/.exec(l);
    if (m) out.set(Number(m[2]), Number(m[1]));
  }
  return out;
}

/** When the connection from this client port closed (ms since the epoch), waiting up to timeoutMs. */
async function closedAt(aio: Aiosmtpd, port: number, timeoutMs: number): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const l of aio.connections()) {
      const m = /^close (\d+) (\d+)$/.exec(l);
      if (m && Number(m[1]) === port) return Number(m[2]);
    }
    if (Date.now() > deadline) return null;
    await sleep(50);
  }
}

/** The pids of this instance's processes whose command line names a daemon. */
function daemonPids(inst: Instance, daemon: string): number[] {
  return processesOf(inst.etc).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "latin1").includes(`/${daemon}/${daemon}.js`);
    } catch {
      return false;
    }
  });
}

test("agent processes share connections through scache; statistics; the idle time limit closes the last one", async (t) => {
  const { aio, inst } = await world(t, {
    agent: "-o max_use=1",
    cacheAll: true,
    main: [
      "smtp_connection_cache_time_limit = 2s",
      "connection_cache_ttl_limit = 2s",
      "connection_cache_status_update_time = 2s",
    ],
  });
  const pids = new Map<number, number>();
  // Messages one after another until at least two agent processes have delivered (qmgr's
  // connection to an agent process is replaced after a few seconds; each process takes one).
  let n = 0;
  const deadline = Date.now() + 40_000;
  while (n < 60 && Date.now() < deadline && (new Set(pids.values()).size < 2 || n < 6)) {
    pids.set(n, await sent(inst, await send(inst, n), n));
    n++;
    await sleep(100);
  }
  const lastSent = Date.now();
  const processes = new Set(pids.values());
  assert.ok(processes.size >= 2, `more than one agent process delivered (${[...processes].join(", ")})`);
  const ports = portsByMessage(aio);
  assert.equal(ports.size, n, "the server got every message");
  const conns = new Set(ports.values());
  assert.ok(
    conns.size < processes.size,
    `${n} messages from ${processes.size} processes over ${conns.size} connection(s)`,
  );
  // One connection carried messages that different processes delivered.
  const carriedBy = new Map<number, Set<number>>();
  for (const [i, port] of ports)
    carriedBy.set(port, (carriedBy.get(port) ?? new Set()).add(pids.get(i) ?? 0));
  assert.ok(
    [...carriedBy.values()].some((s) => s.size >= 2),
    `a connection used by two processes: ${JSON.stringify([...carriedBy].map(([p, s]) => [p, [...s]]))}`,
  );
  assert.match(
    inst.log(),
    /postfix\/smtp\[\d+\]: \w+: to=<r\d+@remote\.test>, relay=\S+, conn_use=\d+, delay=/,
  );
  const cmds = aio.commands();
  assert.equal(cmds.filter((c) => c.startsWith("EHLO")).length, conns.size, "one EHLO per connection");

  await inst.waitLog(
    /postfix\/scache\[\d+\]: statistics: start interval \w{3} [ \d]\d \d\d:\d\d:\d\d/,
    10_000,
  );
  const hits = await inst.waitLog(
    /postfix\/scache\[\d+\]: statistics: domain lookup hits=[1-9]\d* miss=\d+ success=\d+%/,
    10_000,
  );
  assert.ok(hits);
  await inst.waitLog(/statistics: max simultaneous domains=1 addresses=1 connection=1\b/, 10_000);

  // The connection last used is closed by scache after smtp_connection_cache_time_limit.
  const lastPort = ports.get(n - 1) ?? 0;
  const closed = await closedAt(aio, lastPort, 10_000);
  assert.ok(closed !== null, "the idle connection was closed");
  const idle = closed - lastSent;
  assert.ok(idle >= 1000 && idle <= 6000, `closed ${idle} ms after the last delivery (time limit 2 s)`);
});

test("smtp_connection_reuse_count_limit: a connection carries at most that many messages", async (t) => {
  const { aio, inst } = await world(t, {
    cacheAll: true,
    procs: 2,
    main: ["smtp_connection_cache_time_limit = 5s", "smtp_connection_reuse_count_limit = 3"],
  });
  for (let i = 0; i < 7; i++) await sent(inst, await send(inst, i), i);
  const perConn = new Map<number, number>();
  for (const port of portsByMessage(aio).values()) perConn.set(port, (perConn.get(port) ?? 0) + 1);
  assert.ok(
    [...perConn.values()].every((c) => c <= 3),
    `messages per connection: ${[...perConn.values()].join(", ")}`,
  );
  assert.ok(perConn.size >= 3, `7 messages need at least 3 connections (${perConn.size})`);
  assert.ok(
    [...perConn.values()].some((c) => c === 3),
    "connections were reused up to the limit",
  );
});

test("scache killed with SIGKILL: no mail is lost, the agents go on with new connections", async (t) => {
  const { aio, inst } = await world(t, {
    cacheAll: true,
    procs: 2,
    main: ["smtp_connection_cache_time_limit = 30s", "connection_cache_ttl_limit = 30s"],
  });
  for (let i = 0; i < 3; i++) await sent(inst, await send(inst, i), i);
  const before = new Set(portsByMessage(aio).values());
  // A kept session stays a moment in its agent process before it goes to scache.
  await sleep(500);
  const [scache] = daemonPids(inst, "scache");
  assert.ok(scache !== undefined, "scache runs");
  process.kill(scache, "SIGKILL");
  await inst.waitLog(new RegExp(`scache\\.js pid ${scache} killed by signal SIGKILL`), 10_000);
  // Its cached connection went with it.
  for (const port of before)
    assert.ok((await closedAt(aio, port, 5000)) !== null, `connection ${port} closed`);
  for (let i = 3; i < 6; i++) await sent(inst, await send(inst, i), i);
  const ports = portsByMessage(aio);
  assert.equal(ports.size, 6, "every message arrived");
  for (let i = 3; i < 6; i++)
    assert.ok(!before.has(ports.get(i) ?? 0), `message ${i} went over a new connection`);
  assert.doesNotMatch(inst.log(), /status=(deferred|bounced)/);
  // A new scache took over: the later messages shared a connection again.
  assert.ok(new Set([3, 4, 5].map((i) => ports.get(i))).size < 3, "connections are cached again");
});

test("a cached connection that the server closes is replaced, without a failed delivery", async (t) => {
  const { aio, inst } = await world(t, {
    cacheAll: true,
    procs: 2,
    idleTimeout: 1,
    main: ["smtp_connection_cache_time_limit = 20s", "connection_cache_ttl_limit = 20s"],
  });
  await sent(inst, await send(inst, 0), 0);
  const first = portsByMessage(aio).get(0) ?? 0;
  assert.ok((await closedAt(aio, first, 5000)) !== null, "the server closed the idle connection");
  await sleep(300);
  await sent(inst, await send(inst, 1), 1);
  const second = portsByMessage(aio).get(1);
  assert.notEqual(second, first, "a new connection");
  assert.doesNotMatch(inst.log(), /status=(deferred|bounced)|lost connection/);
});

test("on demand: a lone message's connection is not kept; a backlog is delivered over kept connections", async (t) => {
  const { aio, inst } = await world(t, {
    procs: 2,
    main: ["smtp_connection_cache_time_limit = 10s", "connection_cache_ttl_limit = 10s"],
  });
  await sent(inst, await send(inst, 0), 0);
  const done = Date.now();
  const lone = portsByMessage(aio).get(0) ?? 0;
  const closed = await closedAt(aio, lone, 5000);
  assert.ok(closed !== null && closed - done < 1500, "the connection was closed at once, not kept for 10 s");
  assert.ok(aio.commands().includes("QUIT"), "with QUIT");
  // Wait out the back-to-back window, then a backlog.
  await sleep(1500);
  const ids: string[] = [];
  for (let i = 1; i <= 12; i++) ids.push(await send(inst, i));
  for (let i = 1; i <= 12; i++) await sent(inst, ids[i - 1] ?? "", i);
  const conns = new Set([...portsByMessage(aio)].filter(([i]) => i > 0).map(([, p]) => p));
  assert.ok(conns.size < 12, `12 messages over ${conns.size} connections`);
});

test("without a scache service the agent keeps its sessions in its own process, and says so once", async (t) => {
  const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });
  const inst = await relayInstance(
    t,
    [`relayhost = [127.0.0.3]:${aio.port}`, "smtp_connection_cache_time_limit = 5s"].join("\n"),
  );
  for (let i = 0; i < 4; i++) {
    await sent(inst, await send(inst, i), i);
    await sleep(300);
  }
  const conns = new Set([1, 2, 3].map((i) => portsByMessage(aio).get(i)));
  assert.equal(conns.size, 1, "the back-to-back messages shared one connection");
  const said = inst
    .log()
    .match(/connection cache service \S+ is not available: idle sessions stay in this process/g);
  assert.equal(said?.length, 1, inst.log());
});
