/*
 * fault-corrupt.test - corrupt and truncated queue files, maildrop files and table files
 *
 * DESCRIPTION
 *   Part of the fault suite (npm run test:faults) and, being fast, of npm
 *   test. Each damaged file must be reported by a log line that names it
 *   and contained, while the good mail around it still flows:
 *   - queue files in incoming/ overwritten with garbage or cut in half
 *     before qmgr runs: qmgr logs "ID: ... moved to corrupt" and moves them
 *     to corrupt/; the intact message is delivered;
 *   - maildrop files that are garbage or a truncated copy of a real
 *     submission: pickup logs a warning naming the file and removes it
 *     (as Postfix's pickup does); the intact submission is delivered;
 *   - a postmap-built hash: table overwritten with garbage, then truncated:
 *     smtpd's lookup warns naming the table and answers RCPT with a
 *     temporary 451 4.3.0, keeps the session, and serves normally again
 *     once the table is rebuilt.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CleanupClient } from "../src/global/cleanup-client.js";
import { Config } from "../src/global/config.js";
import { QueuePaths } from "../src/global/queue-path.js";
import {
  freePort,
  type Instance,
  makeInstance,
  sleep,
  until,
  shippedEntries,
} from "../src/testing/instance.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello } from "../src/testing/smtpd-instance.js";

/** An instance with cleanup and trivial-rewrite, the sink as default transport; removed after the test. */
async function instance(
  t: { after: (fn: () => Promise<void>) => void },
  extraMain = "",
  extraMaster = "",
): Promise<{ inst: Instance; record: string; base: string }> {
  const rec = mkdtempSync(join(tmpdir(), "postern-corrupt-"));
  chmodSync(rec, 0o1777);
  const record = join(rec, "sink.log");
  const base = [
    shippedEntries("cleanup"),
    shippedEntries("rewrite"),
    `sink unix - - n - 20 test-agent.js ${record}`,
    extraMaster,
    "",
  ].join("\n");
  const inst = makeInstance({
    main: `myhostname = mx.example.org\nmydestination =\ndefault_transport = sink\n${extraMain}`,
    master: base,
  });
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
    rmSync(rec, { recursive: true, force: true });
  });
  return { inst, record, base };
}

/** Adds services to master.cf and reloads. */
async function addServices(inst: Instance, base: string, lines: string[]): Promise<void> {
  inst.writeMaster(base + lines.join("\n") + "\n");
  assert.equal((await inst.postern("reload")).code, 0);
}

/** The recipients the sink delivered. */
function delivered(record: string): string[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ")[2] ?? "");
}

/** Queues one message through cleanup; its queue ID. */
async function queue(inst: Instance, rcpt: string): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok);
  await c.client.sender("sender@example.com");
  await c.client.rcpt({ address: rcpt });
  await c.client.data(Buffer.from(`Subject: corrupt test\n\n${"body line\n".repeat(200)}`));
  const r = await c.client.end();
  assert.equal(r.status, "ok");
  return r.status === "ok" ? r.queueId : "";
}

test("corrupt and truncated queue files are logged by name and moved to corrupt/", async (t) => {
  const { inst, record, base } = await instance(t);
  const paths = new QueuePaths(Config.load(inst.etc));
  await queue(inst, "good@sink.example");
  const garbage = await queue(inst, "garbage@sink.example");
  const cut = await queue(inst, "cut@sink.example");
  const gp = paths.path("incoming", garbage);
  writeFileSync(gp, randomBytes(statSync(gp).size));
  const cp = paths.path("incoming", cut);
  truncateSync(cp, Math.floor(statSync(cp).size / 2));
  await addServices(inst, base, ["qmgr unix n - n 300 1 qmgr"]);
  await until("the good message", () => delivered(record).includes("good@sink.example"), {
    timeoutMs: 20_000,
    inst,
  });
  for (const id of [garbage, cut]) {
    await inst.waitLog(new RegExp(`warning: ${id}: .*moved to corrupt`));
    await until(`${id} in corrupt/`, () => existsSync(paths.path("corrupt", id)), {
      timeoutMs: 20_000,
      inst,
    });
  }
  assert.deepEqual(delivered(record), ["good@sink.example"], "only the intact message is delivered");
});

test("corrupt and truncated maildrop files are logged by name and removed; pickup goes on", async (t) => {
  const { inst, record, base } = await instance(t, "mail_owner = nobody\n");
  const r = await runCli("sendmail", ["-i", "dropped@sink.example"], {
    env: { MAIL_CONFIG: inst.etc },
    input: `Subject: maildrop\n\n${"drop line\n".repeat(100)}`,
  });
  assert.equal(r.code, 0, r.stderr);
  const drop = join(inst.spool, "maildrop");
  const [real] = readdirSync(drop);
  assert.ok(real !== undefined, "sendmail left a file in maildrop/");
  const st = statSync(join(drop, real));
  // Names of the same shape as sendmail's, told apart by their first characters (which the log shows).
  const name = (): string => randomBytes(real.length).toString("hex").slice(0, real.length);
  const bad = { garbage: name(), cut: name() };
  const whole = readFileSync(join(drop, real));
  writeFileSync(join(drop, bad.garbage), randomBytes(whole.length), { mode: st.mode & 0o777 });
  writeFileSync(join(drop, bad.cut), whole.subarray(0, Math.floor(whole.length / 2)), {
    mode: st.mode & 0o777,
  });
  for (const n of Object.values(bad)) {
    chownSync(join(drop, n), st.uid, st.gid);
    chmodSync(join(drop, n), st.mode & 0o777);
  }
  await addServices(inst, base, ["pickup unix n - n 60 1 pickup", "qmgr unix n - n 300 1 qmgr"]);
  await until("the intact submission", () => delivered(record).includes("dropped@sink.example"), {
    timeoutMs: 20_000,
    inst,
  });
  for (const n of Object.values(bad)) {
    await until(`${n} removed`, () => !existsSync(join(drop, n)), { timeoutMs: 20_000, inst });
    await inst.waitLog(new RegExp(`warning: [^\\n]*${n.slice(0, 8)}[^\\n]*`));
  }
  t.diagnostic(
    inst
      .log()
      .split("\n")
      .filter((l) => /pickup.*warning/.test(l))
      .join("\n"),
  );
  assert.deepEqual(delivered(record), ["dropped@sink.example"]);
});

test("a corrupt or truncated table file is reported by name; smtpd answers 451 and goes on", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-corrupt-table-"));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const table = join(dir, "access");
  writeFileSync(table, "blocked@example.net REJECT\n");
  const made = await runCli("postmap", [`hash:${table}`]);
  assert.equal(made.code, 0, made.stderr);
  const built = readdirSync(dir).find((n) => n !== "access");
  assert.ok(built !== undefined, "postmap wrote a table file");
  const file = join(dir, built);
  const port = await freePort();
  const { inst } = await instance(
    t,
    `mynetworks = 127.0.0.0/8\nsmtpd_peername_lookup = no\nsmtpd_recipient_restrictions = check_recipient_access hash:${table}, permit\n`,
    `${port} inet n - n - - smtpd`,
  );
  const c = await smtpHello(port);
  assert.match(await smtpCmd(c, "MAIL FROM:<a@example.com>"), /^250 /);
  assert.match(await smtpCmd(c, "RCPT TO:<blocked@example.net>"), /^554 /, "the intact table works");
  const whole = readFileSync(file);
  for (const [what, damage] of [
    ["garbage", () => writeFileSync(file, randomBytes(whole.length))],
    ["truncated", () => writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)))],
  ] as const) {
    damage();
    await sleep(1100); // a table file is checked for changes once a second
    const before = inst.log().length;
    const reply = await smtpCmd(c, "RCPT TO:<someone@example.net>");
    assert.match(reply, /^451 4\.3\.0 /, `${what}: a temporary failure, not a verdict`);
    await until(`${what}: a warning naming the table`, () => inst.log().slice(before).includes(table), {
      timeoutMs: 10_000,
      inst,
    });
    t.diagnostic(
      `${what}: ${reply}; ${
        inst
          .log()
          .slice(before)
          .split("\n")
          .find((l) => l.includes(table)) ?? ""
      }`,
    );
  }
  writeFileSync(file, whole);
  await sleep(1100);
  assert.match(
    await smtpCmd(c, "RCPT TO:<blocked@example.net>"),
    /^554 /,
    "served again once the table is rebuilt",
  );
  assert.match(await smtpCmd(c, "RCPT TO:<fine@example.net>"), /^250 /);
  c.send("QUIT");
});
