/*
 * virtual-pipe.test - the virtual and pipe delivery agents end to end
 *
 * DESCRIPTION
 *   virtual: mailboxes from virtual_mailbox_maps under
 *   virtual_mailbox_base (Maildir when the path ends in "/", else mbox),
 *   written with the uid and gid of virtual_uid_maps and virtual_gid_maps,
 *   read back with Python's mailbox module; unknown users bounce.
 *   pipe: a master.cf service with flags, user=, argv= macros, eol= and
 *   size=; the command's uid, its input, its exit status mapped through
 *   sysexits, and its output in the delivery status. Needs root.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { localInstance, makeWorld, readMailbox, submit } from "../src/testing/local-world.js";
import { shippedEntries } from "../src/testing/instance.js";

const root = process.getuid?.() === 0;

test("delivery tests run as root (CI does): mailboxes belong to other users", () => {
  assert.ok(root, "run the test suite as root");
});
const world = makeWorld();
after(() => world.cleanup());

test("virtual: Maildir and mbox mailboxes with the mapped uid and gid; unknown users bounce", async (t) => {
  const v = world.user("v");
  const base = join(world.dir, "vmail");
  mkdirSync(join(base, "virt.example.test"), { recursive: true });
  chownSync(join(base, "virt.example.test"), v.uid, v.gid);
  const maps = join(world.dir, "vmailbox");
  writeFileSync(
    maps,
    "one@virt.example.test virt.example.test/one/\ntwo@virt.example.test virt.example.test/two\n",
  );
  const inst = await localInstance(
    t,
    [
      "virtual_mailbox_domains = virt.example.test",
      `virtual_mailbox_base = ${base}`,
      `virtual_mailbox_maps = texthash:${maps}`,
      `virtual_uid_maps = static:${v.uid}`,
      `virtual_gid_maps = static:${v.gid}`,
      "alias_maps =",
    ].join("\n"),
    shippedEntries("virtual"),
  );
  const a = await submit(
    inst,
    ["one+tag@virt.example.test", "two@virt.example.test", "three@virt.example.test"],
    "Subject: virtual\n\nhi\n",
  );
  await inst.waitLog(
    new RegExp(
      `${a}: to=<one\\+tag@virt\\.example\\.test>, relay=virtual, .*status=sent \\(delivered to maildir\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${a}: to=<two@virt\\.example\\.test>, relay=virtual, .*status=sent \\(delivered to mailbox\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${a}: to=<three@virt\\.example\\.test>, relay=virtual, .*dsn=5\\.1\\.1, status=bounced \\(unknown user: "three@virt\\.example\\.test"\\)`,
    ),
    20_000,
  );
  const md = join(base, "virt.example.test", "one");
  const [f] = readdirSync(join(md, "new"));
  assert.equal(statSync(join(md, "new", f ?? "")).uid, v.uid);
  const one = readMailbox("maildir", md);
  assert.equal(one[0]?.subject, "virtual");
  assert.deepEqual(one[0]?.deliveredTo, ["one+tag@virt.example.test"]);
  const two = readMailbox("mbox", join(base, "virt.example.test", "two"));
  assert.equal(two[0]?.subject, "virtual");
  assert.equal(statSync(join(base, "virt.example.test", "two")).uid, v.uid);
});

test("pipe: argv macros, flags, eol, the user= uid, sysexits and output in the status, size=", async (t) => {
  const p = world.user("p");
  const out = join(world.dir, "pipe-out");
  mkdirSync(out);
  chmodSync(out, 0o1777);
  const script = join(world.dir, "pipe-script.sh");
  writeFileSync(
    script,
    [
      "#!/bin/sh",
      `id -u > ${out}/uid`,
      `cat > "${out}/msg-$1"`,
      'case "$1" in',
      "  tempfail) echo 'try again later'; exit 75;;",
      "  nouser) echo 'no such person'; exit 67;;",
      "esac",
      'echo "user=$1 ext=$2 hop=$3 sender=$4"',
      "",
    ].join("\n"),
  );
  chmodSync(script, 0o755);
  const transport = join(world.dir, "transport");
  writeFileSync(transport, "pipe.example.test filt:Relay.Example\nsmall.example.test small:\n");
  const inst = await localInstance(
    t,
    [`transport_maps = texthash:${transport}`, "filt_destination_recipient_limit = 1", "alias_maps ="].join(
      "\n",
    ),
    [
      `filt unix - n n - - pipe flags=DORXhu. eol=\\r\\n user=${p.name} argv=${script} \${user} \${extension} \${nexthop} \${sender}`,
      `small unix - n n - - pipe size=50 user=${p.name} argv=/bin/cat`,
    ].join("\n"),
  );
  const ok = await submit(inst, ["Joe+Tag@pipe.example.test"], "Subject: piped\n\n.dot line\nend\n");
  await inst.waitLog(
    new RegExp(
      `${ok}: to=<Joe\\+Tag@pipe\\.example\\.test>, relay=filt, .*status=sent \\(delivered via filt service \\(user=joe ext=tag hop=relay\\.example sender=sender@example\\.org\\)\\)`,
    ),
    20_000,
  );
  assert.equal(
    readFileSync(join(out, "uid"), "utf8").trim(),
    String(p.uid),
    "the command ran with the user= uid",
  );
  const text = readFileSync(join(out, "msg-joe"), "utf8");
  assert.match(
    text,
    /^Return-Path: <sender@example\.org>\r\nX-Original-To: Joe\+Tag@pipe\.example\.test\r\nDelivered-To: Joe\+Tag@pipe\.example\.test\r\n/,
  );
  assert.match(text, /\r\n\.\.dot line\r\nend\r\n$/, "dot-stuffed, CRLF line endings");
  const temp = await submit(inst, ["tempfail@pipe.example.test"], "Subject: t\n\nx\n");
  await inst.waitLog(
    new RegExp(
      `${temp}: to=<tempfail@.*dsn=4\\.3\\.0, status=deferred \\(temporary failure\\. Command output: try again later\\)`,
    ),
    20_000,
  );
  const gone = await submit(inst, ["nouser@pipe.example.test"], "Subject: n\n\nx\n");
  await inst.waitLog(
    new RegExp(
      `${gone}: to=<nouser@.*dsn=5\\.1\\.1, status=bounced \\(user unknown\\. Command output: no such person\\)`,
    ),
    20_000,
  );
  const big = await submit(inst, ["x@small.example.test"], `Subject: big\n\n${"y".repeat(200)}\n`);
  await inst.waitLog(
    new RegExp(
      `${big}: to=<x@small\\.example\\.test>, relay=small, .*dsn=5\\.2\\.3, status=bounced \\(message too large\\)`,
    ),
    20_000,
  );
});

test("error bounces and retry defers with the next-hop text; discard logs and drops", async (t) => {
  const transport = join(world.dir, "transport-err");
  writeFileSync(
    transport,
    [
      "gone.example.test error:5.1.2 this domain is gone",
      "soft.example.test error:4.4.1 not a bounce code",
      "later.example.test retry:4.4.1 maintenance until Monday",
      "drop.example.test discard:2.0.0 dropped by policy",
      "",
    ].join("\n"),
  );
  const inst = await localInstance(
    t,
    `transport_maps = texthash:${transport}\nalias_maps =\n`,
    ["retry unix - - n - - error", "discard unix - - n - - discard"].join("\n"),
  );
  const id = await submit(
    inst,
    ["a@gone.example.test", "b@soft.example.test", "c@later.example.test", "d@drop.example.test"],
    "Subject: e\n\nx\n",
  );
  await inst.waitLog(
    new RegExp(
      `${id}: to=<a@gone\\.example\\.test>, relay=none, .*dsn=5\\.1\\.2, status=bounced \\(this domain is gone\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${id}: to=<b@soft\\.example\\.test>, relay=none, .*dsn=5\\.0\\.0, status=bounced \\(not a bounce code\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${id}: to=<c@later\\.example\\.test>, relay=none, .*dsn=4\\.4\\.1, status=deferred \\(maintenance until Monday\\)`,
    ),
    20_000,
  );
  await inst.waitLog(
    new RegExp(
      `${id}: to=<d@drop\\.example\\.test>, relay=none, .*dsn=2\\.0\\.0, status=sent \\(dropped by policy\\)`,
    ),
    20_000,
  );
  await inst.waitLog(/warning: bounce_append: ignoring dsn code "4\.4\.1"/);
});
