/*
 * master.test - master and the skeletons on real processes and sockets
 *
 * DESCRIPTION
 *   Each test starts a real instance ("postern start"), talks to services
 *   built on the skeleton (src/testing/test-daemon.ts) over TCP and Unix
 *   sockets, and checks what an administrator would see: processes started
 *   on demand, replaced, recycled and retired; a broken service throttled;
 *   reload adding and removing listeners without dropping a session; stop
 *   leaving nothing behind; services running as mail_owner (the jail: jail.test.ts).
 *   The tests run as root (CI does) so that privilege separation is real.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import {
  LineClient,
  freePort,
  makeInstance,
  startInstance,
  processUid,
  processesOf,
  until,
  sleep,
  type Instance,
} from "../src/testing/instance.js";
import { getUser } from "../src/util/unix-users.js";
import { AttrClient } from "../src/util/attr-client.js";
import { ANVIL_FRAME_MAX, ANVIL_PROTOCOL, AnvilReply, AnvilRequest } from "../src/global/anvil-proto.js";
import { VerifyClient } from "../src/global/verify-client.js";
import { ADDR_STATUS } from "../src/global/verify-proto.js";
import { runCli } from "../src/testing/run-cli.js";

/** The pid in a test-daemon greeting. */
function pidOf(banner: string): number {
  const m = /pid=(\d+)/.exec(banner);
  assert.ok(m, `no pid in "${banner}"`);
  return Number(m[1]);
}

/** Connects, reads the greeting, says QUIT; returns the greeting. */
async function greet(target: number | string): Promise<string> {
  const c = await LineClient.connect(target);
  const banner = await c.line();
  c.send("QUIT");
  c.close();
  return banner;
}

/** True while a process exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts an instance and registers its stop and cleanup. */
async function started(
  t: { after: (fn: () => Promise<void>) => void },
  main: string,
  master: string,
): Promise<Instance> {
  return startInstance(t, { main, master });
}

test("start and stop leave nothing behind; a second start fails cleanly", async (t) => {
  const port = await freePort();
  const inst = await started(
    t,
    "",
    `${port} inet n - n - 4 test-daemon.js echo\ntick unix - - n 1 1 test-daemon.js trigger\n`,
  );
  assert.equal((await inst.postern("status")).code, 0);
  assert.match(await greet(port), /^220 pid=/);
  await inst.waitLog(/trigger: W/);
  assert.ok(processesOf(inst.etc).length >= 3, "master, the echo and the trigger daemons run");
  const again = await inst.start();
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already running/);
  const stop = await inst.stop();
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(processesOf(inst.etc), [], "no process of the instance is left");
  assert.equal((await inst.postern("status")).code, 1);
  await assert.rejects(LineClient.connect(port), /ECONNREFUSED/);
  assert.match(inst.log(), /daemon started -- version/);
  assert.match(inst.log(), /terminating on signal 15/);
});

test("when master dies, its children notice and exit, and a fresh start is clean", async (t) => {
  const port = await freePort();
  const inst = await started(t, "", `${port} inet n - n - 4 test-daemon.js echo\n`);
  const child = pidOf(await greet(port));
  const master = Number((await inst.postern("status")).stderr.match(/PID: (\d+)/)?.[1]);
  process.kill(master, "SIGKILL");
  for (let i = 0; i < 100 && alive(child); i++) await sleep(50);
  assert.equal(alive(child), false, "the orphaned child exited");
  assert.equal((await inst.postern("status")).code, 1);
  assert.equal((await inst.start()).code, 0, "the stale pid file does not block a new start");
  assert.match(await greet(port), /^220 /);
});

test("a killed service process is replaced, and the death is logged", async (t) => {
  const port = await freePort();
  const inst = await started(t, "", `${port} inet n - n - 4 test-daemon.js echo\n`);
  const first = pidOf(await greet(port));
  process.kill(first, "SIGKILL");
  await inst.waitLog(new RegExp(`pid ${first} killed by signal SIGKILL`));
  const second = pidOf(await greet(port));
  assert.notEqual(second, first);
});

test("max_use recycles a process; max_idle retires an idle one", async (t) => {
  const [port, once] = [await freePort(), await freePort()];
  const inst = await started(
    t,
    "max_use = 2\nmax_idle = 1s\n",
    `${port} inet n - n - 1 test-daemon.js single\n${once} inet n - n - 1 test-daemon.js -o max_use=1 single\n`,
  );
  assert.notEqual(
    pidOf(await greet(once)),
    pidOf(await greet(once)),
    "a per-service -o max_use=1 is honoured",
  );
  const a = pidOf(await greet(port));
  const b = pidOf(await greet(port));
  const c = pidOf(await greet(port));
  assert.equal(a, b, "the same process serves max_use clients");
  assert.notEqual(b, c, "then it is replaced");
  await sleep(2500);
  assert.equal(alive(c), false, "an idle process exits after max_idle");
  assert.notEqual(pidOf(await greet(port)), c);
  assert.ok(inst.log().length > 0);
});

test("a service that crashes at start is throttled and logged", async (t) => {
  const inst = await started(
    t,
    "service_throttle_time = 60s\n",
    "broken unix - - n - 1 test-daemon.js crash\n",
  );
  const c = await LineClient.connect(join(inst.spool, "private", "broken"));
  await inst.waitLog(/broken\/unix: bad command startup -- throttling/);
  await sleep(1500);
  const exits = inst.log().match(/test-daemon\.js pid \d+ exit status 1/g) ?? [];
  assert.equal(exits.length, 1, "no new attempt while throttled");
  c.close();
  assert.equal((await inst.postern("status")).code, 0, "master itself is unharmed");
});

test("reload adds and removes listeners without dropping a session in progress", async (t) => {
  const [keep, gone, added] = [await freePort(), await freePort(), await freePort()];
  const inst = await started(
    t,
    "",
    `${keep} inet n - n - 4 test-daemon.js echo\n${gone} inet n - n - 4 test-daemon.js echo\n`,
  );
  const session = await LineClient.connect(keep);
  await session.line();
  const oldSession = await LineClient.connect(gone);
  await oldSession.line();
  inst.writeMaster(
    `${keep} inet n - n - 4 test-daemon.js echo\n${added} inet n - n - 4 test-daemon.js echo\n`,
  );
  assert.equal((await inst.postern("reload")).code, 0);
  await inst.waitLog(/reload -- version/);
  assert.match(await greet(added), /^220 /, "the new listener answers");
  await assert.rejects(LineClient.connect(gone), /ECONNREFUSED/, "the removed listener is gone");
  session.send("still there?");
  assert.equal(await session.line(), "250 still there?", "a session on a kept service goes on");
  oldSession.send("and here?");
  assert.equal(await oldSession.line(), "250 and here?", "a session on a removed service may finish");
  session.close();
  oldSession.close();
});

test("wakeup timers trigger the service; a conditional one waits until the service is used", async (t) => {
  const inst = await started(
    t,
    "",
    "tick unix - - n 1 1 test-daemon.js trigger\nlazy unix - - n 1? 1 test-daemon.js trigger\n",
  );
  await inst.waitLog(/(trigger: W[\s\S]*){2}/);
  const lazyPids = inst.log().match(/postfix\/test-daemon\[(\d+)\]/g) ?? [];
  assert.equal(new Set(lazyPids).size, 1, "only the unconditional service was started");
});

test("a service at its process limit warns and starts new processes with stress=yes", async (t) => {
  const port = await freePort();
  const inst = await started(t, "max_use = 1\n", `${port} inet n - n - 2 test-daemon.js single\n`);
  const one = await LineClient.connect(port);
  await one.line();
  const two = await LineClient.connect(port);
  assert.match(await two.line(), /stress= /);
  const three = await LineClient.connect(port);
  await inst.waitLog(/has reached its process limit "2"/);
  one.send("QUIT");
  assert.match(await three.line(), /stress=yes/, "a process started under overload sees stress=yes");
  two.close();
  three.close();
});

test("as root, services run as mail_owner unless unpriv is n", async (t) => {
  if (process.getuid?.() !== 0) assert.fail("this test needs root: CI runs the suite as root");
  const nobody = getUser("nobody");
  assert.ok(nobody, "the nobody account exists");
  const [p1, p2] = [await freePort(), await freePort()];
  await started(
    t,
    "",
    `${p1} inet n - n - 2 test-daemon.js echo\n${p2} inet n n n - 2 test-daemon.js echo\n`,
  );
  const unpriv = pidOf(await greet(p1));
  const priv = pidOf(await greet(p2));
  assert.equal(processUid(unpriv), nobody.uid);
  assert.equal(processUid(priv), 0);
});

test("started as an ordinary user, everything runs as that user and one warning says so", async (t) => {
  const nobody = getUser("nobody");
  assert.ok(nobody, "the nobody account exists");
  const port = await freePort();
  const inst = makeInstance({
    main: "mail_owner = daemon\n",
    master: `${port} inet n - n - 2 test-daemon.js echo\n`,
  });
  chownSync(inst.dir, nobody.uid, nobody.gid);
  const as = { uid: nobody.uid, gid: nobody.gid };
  t.after(async () => {
    await runCli("postern", ["-c", inst.etc, "abort"], as);
    inst.cleanup();
  });
  const r = await runCli("postern", ["-c", inst.etc, "start"], as);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(processUid(pidOf(await greet(port))), nobody.uid);
  const warnings = inst.log().match(/privilege separation is off/g) ?? [];
  assert.equal(warnings.length, 1);
});

test("an unknown mail_owner stops master with a message that names the fix", async () => {
  const inst = makeInstance({ main: "mail_owner = no-such-user-postern\n", master: "" });
  const r = await inst.start();
  assert.equal(r.code, 1);
  assert.match(r.stderr, /mail_owner: unknown user "no-such-user-postern"; create the account/);
  inst.cleanup();
});

test("an empty queue directory, or one with Postfix's modes, is taken over at start: check warns, master sets the tree", async (t) => {
  const inst = makeInstance({ main: "", master: "" });
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
  });
  mkdirSync(join(inst.spool, "maildrop"), { recursive: true });
  mkdirSync(join(inst.spool, "public"));
  chmodSync(join(inst.spool, "maildrop"), 0o1730);
  chmodSync(join(inst.spool, "public"), 0o2710);
  const check = await inst.postern("check");
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stderr, /maildrop: mode is 1730, expected 3733; postern start sets it/);
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(join(inst.spool, "maildrop")).mode & 0o7777, 0o3733);
  assert.equal(statSync(join(inst.spool, "public")).mode & 0o7777, 0o755);
  assert.equal(statSync(join(inst.spool, "incoming")).mode & 0o7777, 0o700);
});

test("a table file Postfix made that Postern cannot read (LMDB) is reported by check and start, with the command that rebuilds it", async (t) => {
  const inst = makeInstance({ main: "", master: "" });
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
  });
  const aliases = join(inst.etc, "aliases");
  const head = Buffer.alloc(4096);
  head.writeUInt32LE(0xbeefc0de, 16); // LMDB's magic, in its first meta page
  writeFileSync(`${aliases}.lmdb`, head);
  appendFileSync(
    join(inst.etc, "main.cf"),
    `alias_maps = lmdb:${aliases}\nalias_database = lmdb:${aliases}\n`,
  );
  const check = await inst.postern("check");
  assert.match(
    check.stderr,
    /lmdb:\S+aliases: \S+aliases\.lmdb is not a Postern table \(an LMDB file, as Postfix makes them\): every lookup in it fails; rebuild it with "postalias lmdb:\S+aliases"/,
  );
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /aliases\.lmdb is not a Postern table/);
});

test("reload applies a changed maillog_file: the next lines go to the new file", async (t) => {
  const port = await freePort();
  const inst = await started(t, "", `${port} inet n - n - 2 test-daemon.js echo\n`);
  assert.match(await greet(port), /^220 pid=/);
  const moved = join(inst.dir, "moved.log");
  appendFileSync(join(inst.etc, "main.cf"), `maillog_file = ${moved}\n`);
  assert.equal((await inst.postern("reload")).code, 0);
  await until(
    "the reload line in the new log",
    () => existsSync(moved) && /reload -- version/.test(readFileSync(moved, "utf8")),
  );
  assert.match(await greet(port), /^220 pid=/);
  assert.doesNotMatch(inst.log(), /reload -- version/, "the old file got no more lines");
});

test("a broken main.cf stops start with every problem listed", async () => {
  const inst = makeInstance({ main: "max_idle = soon\nmax_use = lots\n", master: "" });
  const r = await inst.start();
  assert.equal(r.code, 1);
  assert.match(r.stderr, /line \d+: parameter max_idle: bad value "soon"/);
  assert.match(r.stderr, /line \d+: parameter max_use: bad value "lots"/);
  const check = await inst.postern("check");
  assert.equal(check.code, 1);
  assert.match(check.stderr, /max_idle/);
  inst.cleanup();
});

test("a program that is not a Postern daemon runs per connection, the socket as its input and output", async (t) => {
  const inst = await started(t, "", "ext unix - - n - 2 /bin/cat\n");
  const c = await LineClient.connect(join(inst.spool, "private", "ext"));
  c.send("echo me");
  assert.equal(await c.line(), "echo me");
  c.close();
});

test("a burst larger than the old waiting limit all waits for the one busy process and is served", async (t) => {
  const port = await freePort();
  const inst = await started(t, "max_use = 100000\n", `${port} inet n - n - 1 test-daemon.js single\n`);
  const busy = await LineClient.connect(port);
  await busy.line();
  const burst = 3000;
  let greeted = 0;
  let failed = 0;
  const clients: Array<Promise<void>> = [];
  for (let i = 0; i < burst; i++) {
    clients.push(
      new Promise<void>((resolve) => {
        const s = connect(port, "127.0.0.1");
        let got = "";
        s.setTimeout(180_000, () => s.destroy());
        s.on("data", (d: Buffer) => {
          got += d.toString("latin1");
          if (got.startsWith("220 ") && got.includes("\r\n") && !got.includes("QUIT")) {
            greeted++;
            got += "QUIT";
            s.end("QUIT\r\n");
          }
        });
        s.on("error", () => undefined);
        s.on("close", () => {
          if (!got.includes("QUIT")) failed++;
          resolve();
        });
      }),
    );
    if (i % 200 === 199) await sleep(20);
  }
  await inst.waitLog(/connections wait for a process/, 30_000);
  busy.send("QUIT");
  busy.close();
  await Promise.all(clients);
  assert.equal(failed, 0, "no connection of the burst is closed before its greeting");
  assert.equal(greeted, burst);
  assert.doesNotMatch(inst.log(), /closed since the last report/);
});

test("maxproc 1 of anvil and verify is one process that serves many clients at once", async (t) => {
  const inst = await started(
    t,
    "address_verify_map =\n",
    "anvil unix - - n - 1 anvil\nverify unix - - n - 1 verify\n",
  );
  const n = 6;
  const anvils = Array.from(
    { length: n },
    () =>
      new AttrClient({
        path: join(inst.spool, "private", "anvil"),
        protocol: ANVIL_PROTOCOL,
        maxFrame: ANVIL_FRAME_MAX,
        timeoutMs: 5000,
        retries: 0,
        backoffMs: 0,
      }),
  );
  const verifies = Array.from(
    { length: n },
    () => new VerifyClient(inst.spool, "verify", 5000, { persistent: true }),
  );
  t.after(() => {
    for (const c of [...anvils, ...verifies]) c.close();
  });
  // Every client keeps its connection open; each is answered while the others hold theirs.
  const counts = [];
  for (const c of anvils) {
    const r = await c.request(AnvilRequest.build({ request: "connect", ident: "smtp:192.0.2.7" }));
    assert.ok(r.ok, r.ok ? "" : r.reason);
    const p = AnvilReply.parse(r.reply);
    assert.ok(p.ok);
    counts.push(p.value.count);
  }
  assert.deepEqual(
    counts,
    Array.from({ length: n }, (_, i) => i + 1),
    "one anvil process counts every client's connection",
  );
  const updates = await Promise.all(
    verifies.map((v, i) => v.update(`user${i}@example.test`, ADDR_STATUS.OK, "250 2.1.5 Ok")),
  );
  for (const u of updates) assert.ok(u.ok, u.ok ? "" : u.reason);
  for (const [i, v] of verifies.entries()) {
    const q = await v.query(`user${(i + 1) % n}@example.test`);
    assert.ok(q.ok, q.ok ? "" : q.reason);
    assert.equal(q.status, ADDR_STATUS.OK, "one verify process holds every client's updates");
  }
  const daemons = processesOf(inst.etc).filter((pid) => {
    try {
      return /\/(anvil|verify)\.js/.test(readFileSync(`/proc/${pid}/cmdline`, "latin1"));
    } catch {
      return false;
    }
  });
  assert.equal(daemons.length, 2, "one process each");
  assert.doesNotMatch(inst.log(), /reached its process limit/);
});
