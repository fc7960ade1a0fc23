/*
 * local.test - local delivery end to end: Maildir, mbox, aliases, .forward, commands
 *
 * DESCRIPTION
 *   A real instance (cleanup, qmgr, trivial-rewrite, local running as
 *   root) delivers mail submitted through cleanup to accounts made with
 *   useradd. What users would see is checked with an independent reader
 *   (Python's mailbox module) and with file ownership: Maildir and mbox
 *   messages with their Return-Path, X-Original-To and Delivered-To
 *   headers; aliases to lists, files, commands and :include: files;
 *   .forward files (and one refused because someone else owns it);
 *   commands that run with the user's uid. Needs root.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { runCli } from "../src/testing/run-cli.js";
import { makeInstance, shippedEntries } from "../src/testing/instance.js";
import { DOMAIN, localInstance, makeWorld, readMailbox, submit } from "../src/testing/local-world.js";

const root = process.getuid?.() === 0;

test("delivery tests run as root (CI does): mailboxes belong to other users", () => {
  assert.ok(root, "run the test suite as root");
});
const world = makeWorld();
after(() => world.cleanup());

/** A message with a subject and a body. */
function message(subject: string, body = "hello\n"): string {
  return `From: sender@example.org\nTo: someone@${DOMAIN}\nSubject: ${subject}\n\n${body}`;
}

test("mail for a user ends in their Maildir, owned by them, readable by Python's mailbox", async (t) => {
  const alice = world.user("a");
  const inst = await localInstance(t, `home_mailbox = Maildir/\nalias_maps =\n`);
  const id = await submit(inst, [`${alice.name}+news@${DOMAIN}`], message("maildir one"));
  await inst.waitLog(
    new RegExp(
      `${id}: to=<${alice.name}\\+news@${DOMAIN}>, relay=local, .*status=sent \\(delivered to maildir\\)`,
    ),
    20_000,
  );
  const md = join(alice.home, "Maildir");
  const files = readdirSync(join(md, "new"));
  assert.equal(files.length, 1);
  assert.match(files[0] ?? "", /^\d+\.M\d+P\d+Q\d+\.mail\.example\.test$/);
  const st = statSync(join(md, "new", files[0] ?? ""));
  assert.equal(st.uid, alice.uid, "the file belongs to the recipient");
  assert.equal(st.mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(join(md, "tmp")), [], "nothing is left in tmp/");
  const [m] = readMailbox("maildir", md);
  assert.equal(m?.subject, "maildir one");
  assert.equal(m?.returnPath, "<sender@example.org>");
  assert.equal(m?.originalTo, `${alice.name}+news@${DOMAIN}`);
  assert.deepEqual(m?.deliveredTo, [`${alice.name}+news@${DOMAIN}`]);
  assert.equal(m?.body, "hello\n");
});

test("mbox in the spool directory: From_ lines, >From quoting, the spool group, two messages read back", async (t) => {
  const bob = world.user("b");
  const spool = join(world.dir, "spool-mbox");
  mkdirSync(spool);
  chownSync(spool, 0, 8);
  chmodSync(spool, 0o2775);
  const inst = await localInstance(t, `mail_spool_directory = ${spool}\nalias_maps =\n`);
  await submit(inst, [`${bob.name}@${DOMAIN}`], message("first", "From the start\nplain line\n"));
  await inst.waitLog(/status=sent \(delivered to mailbox\)/, 20_000);
  await submit(inst, [`${bob.name}@${DOMAIN}`], message("second", "no trailing newline"), "");
  await inst.waitLog(/status=sent \(delivered to mailbox\)[^]*status=sent \(delivered to mailbox\)/, 20_000);
  const box = join(spool, bob.name);
  const st = statSync(box);
  assert.equal(st.uid, bob.uid);
  assert.equal(st.gid, 8, "created with the group of the group-writable spool directory");
  assert.equal(st.mode & 0o777, 0o600);
  const raw = readFileSync(box, "utf8");
  assert.match(raw, /^From sender@example\.org {2}\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n/);
  assert.match(raw, /\n>From the start\n/);
  assert.match(raw, /\nFrom MAILER-DAEMON {2}/, "the null sender");
  assert.ok(!readdirSync(spool).some((n) => n.endsWith(".lock")), "the dotlock is gone");
  const msgs = readMailbox("mbox", box);
  assert.deepEqual(
    msgs.map((m) => m.subject),
    ["first", "second"],
  );
  assert.equal(msgs[0]?.body, ">From the start\nplain line\n");
  assert.equal(msgs[1]?.returnPath, "<>");
});

test("aliases: a list, a file, a command, an :include: file, and an owner- alias", async (t) => {
  const alice = world.user("a");
  const bob = world.user("b");
  const out = join(world.dir, "alias-out");
  mkdirSync(out, { recursive: true });
  chmodSync(out, 0o1777);
  const listFile = join(world.dir, "list.inc");
  writeFileSync(listFile, `# members\n${alice.name}\n${bob.name}\n`);
  const aliases = join(world.dir, "aliases");
  writeFileSync(
    aliases,
    [
      `team: ${alice.name}, ${bob.name}`,
      `archive: ${out}/archive.mbox`,
      `runner: "|id -u > ${out}/runner.uid; cat > ${out}/runner.msg"`,
      `incl: :include:${listFile}`,
      `owned: ${alice.name}`,
      `owner-owned: ${bob.name}`,
      "",
    ].join("\n"),
  );
  const inst = await localInstance(t, `home_mailbox = Maildir/\nalias_maps = hash:${aliases}\n`);
  const built = await runCli("postalias", ["-c", inst.etc, aliases]);
  assert.equal(built.code, 0, built.stderr);
  for (const [rcpt, subject] of [
    ["team", "to team"],
    ["archive", "to archive"],
    ["runner", "to runner"],
    ["incl", "to incl"],
  ])
    await submit(inst, [`${rcpt}@${DOMAIN}`], message(subject ?? ""));
  await inst.waitLog(/to=<team@[^]*status=sent/, 20_000);
  await inst.waitLog(/to=<archive@.*status=sent \(delivered to file: /, 20_000);
  await inst.waitLog(/to=<runner@.*status=sent \(delivered to command: /, 20_000);
  await inst.waitLog(/to=<incl@.*status=sent \(forwarded as \w+\)/, 20_000);
  await inst.waitLog(
    new RegExp(`to=<${bob.name}@${DOMAIN}>, orig_to=<incl@${DOMAIN}>, relay=local.*delivered to maildir`),
    20_000,
  );
  const nobody = Number(readFileSync("/etc/passwd", "utf8").match(/^nobody:x:(\d+):/m)?.[1]);
  assert.equal(
    readFileSync(join(out, "runner.uid"), "utf8").trim(),
    String(nobody),
    "root-owned aliases run commands as default_privs",
  );
  assert.match(
    readFileSync(join(out, "runner.msg"), "utf8"),
    /^From sender@example\.org .*\nReturn-Path: <sender@example\.org>\nX-Original-To: runner@mail\.example\.test\nDelivered-To: runner@mail\.example\.test\n/,
  );
  assert.equal(statSync(join(out, "archive.mbox")).uid, nobody);
  assert.deepEqual(
    readMailbox("mbox", join(out, "archive.mbox")).map((m) => m.subject),
    ["to archive"],
  );
  const a = readMailbox("maildir", join(alice.home, "Maildir")).map((m) => m.subject);
  const b = readMailbox("maildir", join(bob.home, "Maildir")).map((m) => m.subject);
  assert.deepEqual(
    a.filter((s) => s !== "maildir one"),
    ["to incl", "to team"],
  );
  assert.deepEqual(b, ["to incl", "to team"]);
  const id = await submit(inst, [`owned@${DOMAIN}`], message("owned list"));
  await inst.waitLog(new RegExp(`${id}: to=<owned@.*status=sent \\(forwarded as (\\w+)\\)`), 20_000);
  const fwd = /to=<owned@.*forwarded as (\w+)\)/.exec(inst.log())?.[1] ?? "";
  await inst.waitLog(new RegExp(`${fwd}: from=<owner-owned@${DOMAIN}>`), 20_000);
});

test(".forward: forwards and keeps a copy, runs a command as the user, and is ignored when someone else owns it", async (t) => {
  const carol = world.user("c");
  const dave = world.user("d");
  const out = join(world.dir, "fwd-out");
  mkdirSync(out, { recursive: true });
  chmodSync(out, 0o1777);
  writeFileSync(join(carol.home, ".forward"), `${carol.name}, ${dave.name}\n"|id -u > ${out}/carol.uid"\n`);
  chownSync(join(carol.home, ".forward"), carol.uid, carol.gid);
  writeFileSync(join(dave.home, ".forward"), `${carol.name}\n`);
  chownSync(join(dave.home, ".forward"), carol.uid, carol.gid);
  const inst = await localInstance(t, `home_mailbox = Maildir/\nalias_maps =\n`);
  const id = await submit(inst, [`${carol.name}@${DOMAIN}`], message("forward me"));
  await inst.waitLog(new RegExp(`${id}: to=<${carol.name}@${DOMAIN}>, relay=local.*status=sent`), 20_000);
  await inst.waitLog(
    new RegExp(`to=<${dave.name}@${DOMAIN}>, orig_to=<[^>]+>, relay=local, delay.*delivered to maildir`),
    20_000,
  );
  assert.equal(
    readFileSync(join(out, "carol.uid"), "utf8").trim(),
    String(carol.uid),
    "the command ran with carol's uid",
  );
  assert.deepEqual(
    readMailbox("maildir", join(carol.home, "Maildir")).map((m) => m.subject),
    ["forward me"],
  );
  const d = readMailbox("maildir", join(dave.home, "Maildir"));
  assert.deepEqual(
    d.map((m) => m.subject),
    ["forward me"],
    "dave got the forwarded copy, and his .forward was not used",
  );
  await inst.waitLog(new RegExp(`warning: file ${dave.home}/.forward has bad owner uid ${carol.uid}`));
  assert.ok(
    d[0]?.deliveredTo.includes(`${carol.name}@${DOMAIN}`),
    "the forwarded copy names carol in Delivered-To",
  );
});

test("a message that already has Delivered-To: for the recipient bounces as a loop", async (t) => {
  const alice = world.user("a");
  const inst = await localInstance(t, `home_mailbox = Maildir/\nalias_maps =\n`);
  const id = await submit(
    inst,
    [`${alice.name}@${DOMAIN}`],
    `Delivered-To: ${alice.name}@${DOMAIN}\n${message("loop")}`,
  );
  await inst.waitLog(
    new RegExp(`${id}: to=<${alice.name}@.*dsn=5\\.4\\.6, status=bounced \\(mail forwarding loop for `),
    20_000,
  );
});

test("unknown users bounce; postmaster without an alias is discarded with a warning", async (t) => {
  const inst = await localInstance(t, `alias_maps =\n`);
  const id = await submit(inst, [`nosuchuser@${DOMAIN}`, `postmaster@${DOMAIN}`], message("nobody home"));
  await inst.waitLog(
    new RegExp(`${id}: to=<nosuchuser@.*dsn=5\\.1\\.1, status=bounced \\(unknown user: "nosuchuser"\\)`),
    20_000,
  );
  await inst.waitLog(new RegExp(`${id}: to=<postmaster@.*status=sent \\(discarded\\)`), 20_000);
  await inst.waitLog(/warning: required alias not found: postmaster/);
});

test("mailbox_command runs as the user with the recipient's environment; luser_relay catches unknown users", async (t) => {
  const alice = world.user("a");
  const inst = await localInstance(
    t,
    [
      "alias_maps =",
      'mailbox_command = /bin/sh -c \'cat > "$HOME/cmd-$USER-${EXTENSION:-none}"; id -u > "$HOME/cmd.uid"\'',
      `luser_relay = ${alice.name}+$user@${DOMAIN}`,
    ].join("\n"),
  );
  const id = await submit(inst, [`nosuch@${DOMAIN}`], message("relayed"));
  await inst.waitLog(
    new RegExp(`${id}: to=<nosuch@${DOMAIN}>, relay=local.*status=sent \\(delivered to command: /bin/sh`),
    20_000,
  );
  const got = readFileSync(join(alice.home, `cmd-${alice.name}-nosuch`), "utf8");
  assert.match(
    got,
    /^From sender@example\.org .*\nReturn-Path: <sender@example\.org>\nX-Original-To: nosuch@mail\.example\.test\n/,
  );
  assert.equal(readFileSync(join(alice.home, "cmd.uid"), "utf8").trim(), String(alice.uid));
});

test("mailbox_transport_maps and fallback_transport hand recipients to other transports", async (t) => {
  const alice = world.user("a");
  const maps = join(world.dir, "mailbox-transports");
  writeFileSync(maps, `${alice.name} retry:4.2.1 mailbox maintenance\n`);
  const inst = await localInstance(
    t,
    [
      "alias_maps =",
      `mailbox_transport_maps = texthash:${maps}`,
      "fallback_transport = discard:not here",
    ].join("\n"),
    ["retry unix - - n - - error", "discard unix - - n - - discard"].join("\n"),
  );
  const id = await submit(inst, [`${alice.name}@${DOMAIN}`, `ghost@${DOMAIN}`], message("passed"));
  await inst.waitLog(
    new RegExp(
      `${id}: to=<${alice.name}@.*relay=local, .*dsn=4\\.2\\.1, status=deferred \\(mailbox maintenance\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(`${id}: to=<ghost@.*relay=local, .*dsn=2\\.0\\.0, status=sent \\(not here\\)`),
    20_000,
  );
});

test("as an ordinary user, the whole instance runs with that user's rights and delivers to its Maildir", async (t) => {
  const o = world.user("o");
  const inst = makeInstance({
    main: [
      `myhostname = ${DOMAIN}`,
      "mydestination = $myhostname",
      "home_mailbox = Maildir/",
      "alias_maps =",
      `mail_owner = ${o.name}`,
      `default_privs = ${o.name}`,
    ].join("\n"),
    master: [
      shippedEntries("cleanup"),
      shippedEntries("qmgr"),
      shippedEntries("rewrite"),
      shippedEntries("local"),
      "",
    ].join("\n"),
  });
  execFileSync("chown", ["-R", `${o.uid}:${o.gid}`, inst.dir]);
  const as = { uid: o.uid, gid: o.gid };
  const started = await runCli("postern", ["-c", inst.etc, "start"], as);
  assert.equal(started.code, 0, started.stderr);
  t.after(async () => {
    await runCli("postern", ["-c", inst.etc, "abort"], as);
    inst.cleanup();
  });
  const id = await submit(inst, [`${o.name}@${DOMAIN}`], message("unprivileged"));
  await inst.waitLog(new RegExp(`${id}: to=<${o.name}@.*status=sent \\(delivered to maildir\\)`), 20_000);
  assert.match(
    inst.log(),
    /not running as root: mailboxes, files and commands get this process's own rights/,
  );
  const [f] = readdirSync(join(o.home, "Maildir", "new"));
  assert.equal(statSync(join(o.home, "Maildir", "new", f ?? "")).uid, o.uid);
  assert.deepEqual(
    readMailbox("maildir", join(o.home, "Maildir")).map((m) => m.subject),
    ["unprivileged"],
  );
});
