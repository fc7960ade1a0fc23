/*
 * local-failure.test - local delivery under contention and failure
 *
 * DESCRIPTION
 *   What must not happen to a mailbox: concurrent deliveries to one mbox
 *   interleaving, a failing command losing mail, a full disk leaving half
 *   a message behind, a mailbox growing past mailbox_size_limit. Each
 *   case runs through a real instance as root; mailboxes are read back
 *   with Python's mailbox module. The full-disk case mounts a small tmpfs.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../src/testing/run-cli.js";
import { until } from "../src/testing/instance.js";
import { DOMAIN, localInstance, makeWorld, readMailbox, submit } from "../src/testing/local-world.js";

const root = process.getuid?.() === 0;

test("delivery tests run as root (CI does): mailboxes belong to other users", () => {
  assert.ok(root, "run the test suite as root");
});
const world = makeWorld();
after(() => world.cleanup());

/** A body of n numbered lines that says which message it belongs to. */
function body(tag: string, lines: number): string {
  let s = "";
  for (let i = 0; i < lines; i++) s += `${tag} line ${i} ${"x".repeat(60)}\n`;
  return s;
}

/** Counts log lines that match. */
function count(log: string, re: RegExp): number {
  return (log.match(new RegExp(re.source, "g")) ?? []).length;
}

test("40 concurrent deliveries to one mbox never interleave", async (t) => {
  const u = world.user("e");
  const spool = join(world.dir, "spool-conc");
  mkdirSync(spool);
  chmodSync(spool, 0o1777);
  const inst = await localInstance(
    t,
    [
      `mail_spool_directory = ${spool}`,
      "alias_maps =",
      "local_destination_concurrency_limit = 20",
      "initial_destination_concurrency = 20",
    ].join("\n"),
  );
  const n = 40;
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      submit(
        inst,
        [`${u.name}@${DOMAIN}`],
        `Subject: m${String(i).padStart(2, "0")}\n\n${body(`m${i}`, 1500)}`,
      ),
    ),
  );
  await until(`${n} deliveries`, () => count(inst.log(), /status=sent \(delivered to mailbox\)/) === n, {
    timeoutMs: 120_000,
    everyMs: 100,
  });
  const msgs = readMailbox("mbox", join(spool, u.name));
  assert.equal(msgs.length, n);
  for (let i = 0; i < n; i++) {
    const m = msgs[i];
    assert.equal(m?.subject, `m${String(i).padStart(2, "0")}`);
    assert.equal(m?.body, body(`m${i}`, 1500), `message ${i} is whole and alone`);
  }
});

test("a failing command defers (EX_TEMPFAIL) or bounces (EX_NOUSER) with its output, and loses nothing", async (t) => {
  const aliases = join(world.dir, "fail-aliases");
  writeFileSync(
    aliases,
    [
      `busy: "|echo mailbox busy, try later; exit 75"`,
      `gone: "|echo no such mailbox here; exit 67"`,
      `full: "|echo 4.2.2 over quota; exit 1"`,
      `hang: "|sleep 30"`,
      "",
    ].join("\n"),
  );
  const inst = await localInstance(
    t,
    `alias_maps = hash:${aliases}\ncommand_time_limit = 2s\nlocal_time_limit = 100s\n`,
  );
  assert.equal((await runCli("postalias", ["-c", inst.etc, aliases])).code, 0);
  const busy = await submit(inst, [`busy@${DOMAIN}`], "Subject: busy\n\nhi\n");
  const gone = await submit(inst, [`gone@${DOMAIN}`], "Subject: gone\n\nhi\n");
  const full = await submit(inst, [`full@${DOMAIN}`], "Subject: full\n\nhi\n");
  const hang = await submit(inst, [`hang@${DOMAIN}`], "Subject: hang\n\nhi\n");
  await inst.waitLog(
    new RegExp(
      `${busy}: to=<busy@.*dsn=4\\.3\\.0, status=deferred \\(temporary failure\\. Command output: mailbox busy, try later\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${gone}: to=<gone@.*dsn=5\\.1\\.1, status=bounced \\(user unknown\\. Command output: no such mailbox here\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(`${full}: to=<full@.*dsn=4\\.2\\.2, status=deferred \\(over quota\\)`),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${hang}: to=<hang@.*dsn=5\\.3\\.0, status=bounced \\(Command time limit exceeded: "sleep 30"\\)`,
    ),
    20_000,
  );
  const deferred = execFileSync("find", [join(inst.spool, "deferred"), "-type", "f"], { encoding: "utf8" });
  assert.match(deferred, new RegExp(busy), "the deferred message waits in the queue");
  assert.match(deferred, new RegExp(full));
  await inst.waitLog(new RegExp(`${busy}: to=<busy@[^]*${busy}: to=<busy@`), 20_000);
});

test("a full disk defers without damage; mailbox_size_limit bounces and truncates", async (t) => {
  const u = world.user("f");
  const mnt = join(world.dir, "tiny");
  mkdirSync(mnt);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k,mode=1777", "tmpfs", mnt], { stdio: "pipe" });
  } catch (err) {
    assert.fail(
      `cannot mount a tmpfs here (the test needs root and mount): ${(err as Error).message.split("\n")[0] ?? ""}`,
    );
  }
  t.after(() => execFileSync("umount", ["-l", mnt]));
  const spool = join(mnt, "spool");
  mkdirSync(spool);
  chmodSync(spool, 0o1777);
  const md = join(mnt, "md");
  mkdirSync(md);
  chownSync(md, 65534, 65534);
  const aliases = join(world.dir, "full-aliases");
  writeFileSync(aliases, `tinymd: ${md}/Maildir/\n`);
  const limits = "message_size_limit = 1000000\nmailbox_size_limit = 1000000\n";
  const inst = await localInstance(
    t,
    `mail_spool_directory = ${spool}\nalias_maps = hash:${aliases}\n${limits}`,
  );
  assert.equal((await runCli("postalias", ["-c", inst.etc, aliases])).code, 0);
  await submit(inst, [`${u.name}@${DOMAIN}`, `tinymd@${DOMAIN}`], `Subject: small\n\n${body("small", 10)}`);
  await until("two small deliveries", () => count(inst.log(), /status=sent/) === 2, {
    timeoutMs: 20_000,
    everyMs: 100,
  });
  const box = join(spool, u.name);
  const before = statSync(box).size;
  const big = await submit(
    inst,
    [`${u.name}@${DOMAIN}`, `tinymd@${DOMAIN}`],
    `Subject: big\n\n${body("big", 5000)}`,
  );
  await inst.waitLog(
    new RegExp(
      `${big}: to=<${u.name}@.*dsn=4\\.3\\.0, status=deferred \\(cannot update mailbox .*No space left on device`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${big}: to=<tinymd@.*dsn=4\\.3\\.0, status=deferred \\(maildir delivery failed: .*No space left on device`,
    ),
    20_000,
  );
  assert.equal(statSync(box).size, before, "the mailbox is truncated back to its old size");
  assert.deepEqual(
    readMailbox("mbox", box).map((m) => m.subject),
    ["small"],
  );
  assert.deepEqual(readdirSync(join(md, "Maildir", "tmp")), [], "no half-written Maildir file is left");
  assert.deepEqual(
    readMailbox("maildir", join(md, "Maildir")).map((m) => m.subject),
    ["small"],
  );
  assert.ok(!existsSync(`${box}.lock`));
  execFileSync("mount", ["-o", "remount,size=4m", mnt]);
  await inst.postern("flush");
  await inst.waitLog(new RegExp(`${big}: to=<${u.name}@.*status=sent \\(delivered to mailbox\\)`), 30_000);
  assert.deepEqual(
    readMailbox("mbox", box).map((m) => m.subject),
    ["big", "small"],
    "after the disk has room, the mail arrives once",
  );
  const over = await submit(inst, [`${u.name}@${DOMAIN}`], `Subject: over\n\n${body("over", 9000)}`);
  await inst.waitLog(
    new RegExp(
      `${over}: to=<${u.name}@.*dsn=5\\.2\\.2, status=bounced \\(cannot update mailbox .*File too large`,
    ),
    20_000,
  );
  assert.deepEqual(
    readMailbox("mbox", box).map((m) => m.subject),
    ["big", "small"],
    "the mailbox is not damaged",
  );
});
