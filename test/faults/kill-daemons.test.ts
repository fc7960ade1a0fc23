/*
 * kill-daemons.test - kill -9 of every daemon and of master under load loses no acknowledged mail
 *
 * DESCRIPTION
 *   A real instance (as root): smtpd, pickup, cleanup, qmgr,
 *   trivial-rewrite, local (Maildir of a real user), bounce and a
 *   recording sink agent (test-agent.ts). Twenty SMTP clients and one
 *   sendmail client submit for a bounded time; every message goes to the
 *   local user and to the sink, and every seventh also to a sink
 *   recipient that bounces (so bounce works and the sender, a second
 *   local user, gets notices). Meanwhile the test SIGKILLs, at random
 *   moments, one process of each daemon in turn (smtpd, cleanup, qmgr,
 *   trivial-rewrite, local, bounce, pickup) and, twice, master itself,
 *   which it then starts again as an administrator would.
 *
 *   Afterwards the instance is stopped and started again and flushed.
 *   Every message that got a 250 (or a sendmail exit 0) must reach the
 *   local Maildir and the sink at least once (duplicates are counted and
 *   printed: a kill between a delivery and its record repeats it), every
 *   bounced recipient must produce a notice, no queue file may be corrupt
 *   (corrupt/ empty, every file left reads back with readEnvelope,
 *   "postsuper -s" silent), the queue must drain, and after "postsuper
 *   -p" no temporary queue file may remain. Maildir tmp/ leftovers of a
 *   killed local are counted (Maildir readers clean them, as with
 *   Postfix), and so are delivery logs (defer/, bounce/) left by a kill
 *   between the removal of a finished message and that of its logs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readMasterPid } from "../../src/global/master-pid.js";
import { readEnvelope } from "../../src/global/queue-file.js";
import {
  LineClient,
  freePort,
  makeInstance,
  processesOf,
  sleep,
  type Instance,
} from "../../src/testing/instance.js";
import { DOMAIN, makeWorld } from "../../src/testing/local-world.js";
import { cmdline, daemonPids, processTree } from "../../src/testing/proc-tree.js";
import { runCli } from "../../src/testing/run-cli.js";

const CLIENTS = 20;
const RUN_MS = 20_000;
const MAX_MESSAGES = 3000;
const DAEMONS = ["smtpd", "cleanup", "qmgr", "trivial-rewrite", "local", "bounce", "pickup"];

interface Acked {
  n: number;
  fail: boolean;
  via: "smtp" | "sendmail";
}

/** The message of number n: its token is the Subject. */
function message(n: number, from: string, to: string): string {
  const body = Array.from({ length: randomInt(2, 60) }, () => randomBytes(30).toString("base64")).join("\n");
  return `From: <${from}>\nTo: <${to}>\nSubject: fault ${n}\n\n${body}\n`;
}

/** Reads one SMTP reply (all lines); its code, or "" when the session broke. */
async function reply(c: LineClient): Promise<string> {
  for (;;) {
    const l = await c.line(5000);
    if (!/^\d{3}-/.test(l)) return l.slice(0, 3);
  }
}

/** One SMTP client: submits until the deadline; records the messages that got a 250 after DATA. */
async function smtpClient(
  port: number,
  users: { a: string; b: string },
  deadline: number,
  counter: { n: number },
  acked: Acked[],
): Promise<number> {
  let broken = 0;
  while (Date.now() < deadline && counter.n < MAX_MESSAGES) {
    const n = counter.n++;
    const fail = n % 7 === 0;
    let c: LineClient | null = null;
    try {
      c = await LineClient.connect(port);
      if ((await reply(c)) !== "220") throw new Error("greeting");
      c.send("EHLO client.example");
      if ((await reply(c)) !== "250") throw new Error("ehlo");
      const rcpts = [users.a, `ok-${n}@sink.example`, ...(fail ? [`fail-${n}@sink.example`] : [])];
      c.send(`MAIL FROM:<${users.b}>`);
      if ((await reply(c)) !== "250") throw new Error("mail");
      for (const r of rcpts) {
        c.send(`RCPT TO:<${r}>`);
        if ((await reply(c)) !== "250") throw new Error("rcpt");
      }
      c.send("DATA");
      if ((await reply(c)) !== "354") throw new Error("data");
      c.sendRaw(message(n, users.b, users.a).replace(/\n/g, "\r\n") + ".\r\n");
      if ((await reply(c)) === "250") acked.push({ n, fail, via: "smtp" });
      else broken++;
      c.send("QUIT");
    } catch {
      broken++;
      await sleep(50);
    } finally {
      c?.close();
    }
  }
  return broken;
}

/** The sendmail client: one submission at a time until the deadline. */
async function sendmailClient(
  inst: Instance,
  users: { a: string; b: string },
  deadline: number,
  counter: { n: number },
  acked: Acked[],
): Promise<void> {
  while (Date.now() < deadline && counter.n < MAX_MESSAGES) {
    const n = counter.n++;
    const r = await runCli("sendmail", ["-i", "-f", users.b, users.a, `ok-${n}@sink.example`], {
      env: { MAIL_CONFIG: inst.etc },
      input: message(n, users.b, users.a),
    });
    if (r.code === 0) acked.push({ n, fail: false, via: "sendmail" });
  }
}

/** Kills one process of each daemon in turn, and master twice (restarting it); counts per target. */
async function killer(inst: Instance, deadline: number, kills: Map<string, number>): Promise<void> {
  const start = Date.now();
  const masterAt = [start + (deadline - start) * 0.35, start + (deadline - start) * 0.7];
  let turn = 0;
  while (Date.now() < deadline - 500) {
    await sleep(randomInt(150, 600));
    const master = readMasterPid(inst.lib) ?? 0;
    if (masterAt[0] !== undefined && Date.now() >= masterAt[0]) {
      masterAt.shift();
      process.kill(master, "SIGKILL");
      kills.set("master", (kills.get("master") ?? 0) + 1);
      await sleep(randomInt(100, 500));
      const r = await inst.start();
      assert.equal(r.code, 0, `postern start after master was killed: ${r.stderr}`);
      continue;
    }
    const name = DAEMONS[turn++ % DAEMONS.length] ?? "";
    const pids = daemonPids(master, name);
    const pid = pids[randomInt(Math.max(1, pids.length))];
    if (pid === undefined) continue;
    try {
      process.kill(pid, "SIGKILL");
      kills.set(name, (kills.get(name) ?? 0) + 1);
    } catch {
      /* it exited by itself */
    }
  }
}

/** The Subject tokens of the messages in a Maildir (new and cur), with their counts. */
function maildirTokens(home: string): { tokens: Map<number, number>; texts: string[]; tmp: number } {
  const tokens = new Map<number, number>();
  const texts: string[] = [];
  for (const sub of ["new", "cur"]) {
    const dir = join(home, "Maildir", sub);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      const text = readFileSync(join(dir, f), "latin1");
      texts.push(text);
      const head = text.slice(0, text.indexOf("\n\n"));
      const m = /^Subject: fault (\d+)$/m.exec(head);
      if (m !== null) tokens.set(Number(m[1]), (tokens.get(Number(m[1])) ?? 0) + 1);
    }
  }
  const tmpDir = join(home, "Maildir", "tmp");
  return { tokens, texts, tmp: existsSync(tmpDir) ? readdirSync(tmpDir).length : 0 };
}

/** The sink's deliveries of ok-N recipients, with their counts. */
function sinkTokens(record: string): Map<number, number> {
  const out = new Map<number, number>();
  const text = existsSync(record) ? readFileSync(record, "utf8") : "";
  for (const l of text.split("\n")) {
    const m = / ok-(\d+)@sink\.example /.exec(l);
    if (m !== null) out.set(Number(m[1]), (out.get(Number(m[1])) ?? 0) + 1);
  }
  return out;
}

/** Every file below a directory (paths). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** The queue files still in the mail queues (temporary files are not queue files). */
function queued(inst: Instance): string[] {
  return ["incoming", "active", "deferred", "hold"]
    .flatMap((q) => filesUnder(join(inst.spool, q)))
    .filter((f) => !/\/\.[^/]*$/.test(f));
}

test(
  "kill -9 of each daemon and of master under load: every acknowledged message is delivered, nothing corrupt",
  { timeout: 150_000 },
  async (t) => {
    const world = makeWorld();
    const a = world.user("ka");
    const b = world.user("kb");
    const rec = mkdtempSync(join(tmpdir(), "postern-kill-"));
    chmodSync(rec, 0o1777);
    const record = join(rec, "sink.log");
    mkdirSync(join(rec, "copies"), { mode: 0o1777 });
    chmodSync(join(rec, "copies"), 0o1777);
    const transport = join(rec, "transport");
    writeFileSync(transport, "sink.example sink:\n");
    const port = await freePort();
    const inst = makeInstance({
      main: [
        "myhostname = mx.example.org",
        `mydestination = ${DOMAIN}`,
        "mynetworks = 127.0.0.0/8",
        "home_mailbox = Maildir/",
        "alias_maps =",
        "local_recipient_maps =",
        "smtpd_peername_lookup = no",
        "smtpd_client_connection_count_limit = 0",
        "smtpd_client_connection_rate_limit = 0",
        `transport_maps = texthash:${transport}`,
        "minimal_backoff_time = 1s",
        "maximal_backoff_time = 2s",
        "queue_run_delay = 1s",
        "service_throttle_time = 1s",
        "",
      ].join("\n"),
      master: [
        `${port} inet n - n - - smtpd`,
        "pickup unix n - n 60 1 pickup",
        "cleanup unix - - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "local unix - n n - - local",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        `sink unix - - n - 20 test-agent.js ${record} ${join(rec, "copies")}`,
        "",
      ].join("\n"),
    });
    t.after(async () => {
      await inst.postern("abort");
      const master = readMasterPid(inst.lib);
      if (master !== null)
        for (const d of DAEMONS) for (const p of daemonPids(master, d)) process.kill(p, "SIGKILL");
      inst.cleanup();
      world.cleanup();
      rmSync(rec, { recursive: true, force: true });
    });
    const r = await inst.start();
    assert.equal(r.code, 0, r.stderr);
    const users = { a: `${a.name}@${DOMAIN}`, b: `${b.name}@${DOMAIN}` };
    const deadline = Date.now() + RUN_MS;
    const counter = { n: 0 };
    const acked: Acked[] = [];
    const kills = new Map<string, number>();
    const [broken] = await Promise.all([
      Promise.all(
        Array.from({ length: CLIENTS }, () => smtpClient(port, users, deadline, counter, acked)),
      ).then((xs) => xs.reduce((x, y) => x + y, 0)),
      sendmailClient(inst, users, deadline, counter, acked),
      killer(inst, deadline, kills),
    ]);
    const killText = [...kills].map(([k, v]) => `${k} ${v}`).join(", ");
    t.diagnostic(
      `${acked.length} acknowledged (${acked.filter((x) => x.via === "sendmail").length} by sendmail), ${broken} cut off; kills: ${killText}`,
    );
    for (const d of [...DAEMONS, "master"])
      assert.ok((kills.get(d) ?? 0) >= 1, `${d} was killed (${killText})`);
    assert.ok(acked.length >= 50, `${acked.length} messages acknowledged`);

    // Restart as an administrator would after a crash, then let the queue drain.
    assert.equal((await inst.postern("stop")).code, 0);
    const again = await inst.start();
    assert.equal(again.code, 0, again.stderr);
    // Daemons of a killed master must not live on beside the new one (they would share the queue).
    const tree = processTree(readMasterPid(inst.lib) ?? 0);
    const strays = processesOf(inst.etc).filter(
      (p) => !tree.includes(p) && cmdline(p).includes("/dist/src/"),
    );
    t.diagnostic(
      `${strays.length} daemons of an earlier master still running${strays.map((p) => `; ${p} ${cmdline(p)}`).join("")}`,
    );
    await inst.postern("flush");
    const end = Date.now() + 90_000;
    const missing = (): Acked[] => {
      const local = maildirTokens(a.home).tokens;
      const sink = sinkTokens(record);
      return acked.filter((x) => !local.has(x.n) || !sink.has(x.n));
    };
    const drain0 = Date.now();
    while ((missing().length > 0 || queued(inst).length > 0) && Date.now() < end) await sleep(250);
    t.diagnostic(`queue drained ${((Date.now() - drain0) / 1000).toFixed(1)} s after the restart`);
    const lost = missing();
    assert.deepEqual(
      lost.map((x) => x.n),
      [],
      `acknowledged but not delivered (${lost.length}); queue: ${queued(inst).length} files; log tail:\n${inst.log().slice(-3000)}`,
    );
    const local = maildirTokens(a.home);
    const sink = sinkTokens(record);
    const dups = (m: Map<number, number>): number => [...m.values()].reduce((x, y) => x + y - 1, 0);
    t.diagnostic(
      `delivered: ${local.tokens.size} to Maildir (${dups(local.tokens)} duplicates), ${sink.size} to the sink (${dups(sink)} duplicates); ${local.tmp} Maildir tmp/ leftovers`,
    );
    // Notices come after the delivery attempt that bounced: give the last ones time to arrive.
    const noticeFor = (texts: string[], n: number): boolean =>
      texts.some((text) => text.includes(`fail-${n}@sink.example`));
    const unnoticed = (): Acked[] =>
      acked.filter((y) => y.fail && !noticeFor(maildirTokens(b.home).texts, y.n));
    for (const until = Date.now() + 20_000; unnoticed().length > 0 && Date.now() < until;) {
      await inst.postern("flush");
      await sleep(1000);
    }
    const notices = maildirTokens(b.home).texts;
    for (const x of acked.filter((y) => y.fail)) {
      if (noticeFor(notices, x.n)) continue;
      // What the log says about this message (its queue IDs), for the diagnosis.
      const log = inst.log();
      const ids = new Set(
        [...log.matchAll(new RegExp(`([0-9A-F]{6,}): to=<fail-${x.n}@`, "g"))].map((m) => m[1]),
      );
      const lines = log.split("\n").filter((l) => [...ids].some((id) => id !== undefined && l.includes(id)));
      assert.fail(`no non-delivery notice for fail-${x.n}; its log lines:\n${lines.join("\n").slice(-4000)}`);
    }
    // A notice delivered twice (a kill of local between its delivery and its report) keeps its
    // Message-ID; a notice composed twice (a kill of bounce or cleanup after the notice was queued,
    // before that was reported) has a new one. Both are at-least-once repeats; counted here.
    const noticeIds = new Set(notices.map((text) => /^Message-ID: (.*)$/im.exec(text)?.[1] ?? text));
    const composed = new Map<number, number>();
    for (const text of new Map(notices.map((x) => [/^Message-ID: (.*)$/im.exec(x)?.[1] ?? x, x])).values())
      for (const n of new Set([...text.matchAll(/fail-(\d+)@sink\.example/g)].map((m) => Number(m[1]))))
        composed.set(n, (composed.get(n) ?? 0) + 1);
    t.diagnostic(
      `${notices.length} notices for ${acked.filter((y) => y.fail).length} bounced recipients: ${noticeIds.size} distinct (by Message-ID); recipients reported in more than one distinct notice: ${[...composed.values()].filter((c) => c > 1).length}`,
    );

    assert.deepEqual(queued(inst), [], "the queue drained");
    assert.deepEqual(filesUnder(join(inst.spool, "corrupt")), [], "no queue file was corrupt");
    // A kill between the removal of a finished message and that of its logs leaves the logs behind;
    // they are harmless (a message's defer log is reset when it enters the active queue): counted here.
    const orphans = ["defer", "bounce", "trace"].flatMap((q) => filesUnder(join(inst.spool, q)));
    t.diagnostic(`${orphans.length} delivery logs outlived their messages`);
    const check = await runCli("postsuper", ["-c", inst.etc, "-s"]);
    assert.equal(check.code, 0, check.stderr);
    assert.doesNotMatch(check.stderr, /corrupt|warning|fatal/);
    const tmpBefore = filesUnder(inst.spool).filter((f) => /\/(incoming|maildrop)\/\./.test(f)).length;
    const purge = await runCli("postsuper", ["-c", inst.etc, "-p"]);
    assert.equal(purge.code, 0, purge.stderr);
    const temp = filesUnder(inst.spool).filter((f) =>
      /\/(incoming|maildrop|active|deferred)\/(.*\/)?\./.test(f),
    );
    t.diagnostic(`${tmpBefore} temporary queue files before postsuper -p, ${temp.length} after`);
    const writers = [...new Set(temp.map((f) => Number(/\/\.(\d+)\./.exec(f)?.[1])))].map(
      (p) => `${p}: ${cmdline(p) || "gone"}`,
    );
    assert.deepEqual(temp, [], `no temporary queue file is left (writers: ${writers.join("; ")})`);
    const left = filesUnder(join(inst.spool, "maildrop"));
    for (const f of left) {
      const env = await readEnvelope(f);
      assert.ok(env.ok, `${f} reads back`);
    }
    assert.deepEqual(left, [], "maildrop drained");
  },
);
