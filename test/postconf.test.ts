/*
 * postconf.test - postconf end to end, on a Postfix-style configuration
 *
 * DESCRIPTION
 *   Writes a main.cf and master.cf of the kind a Postfix site runs
 *   (submission, smtps, a relay host, pipe transports, restriction lists
 *   over continuation lines) and checks that postconf -n, -M, -P and the
 *   edit modes print and write what Postfix's postconf would; -b and -t
 *   (bounce templates) are compared with Postfix's own postconf.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../src/testing/run-cli.js";

const MAIN_CF = `# Site configuration.
compatibility_level = 3.6
myhostname = mx1.example.com
mydomain = example.com
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain,
        localhost, $mydomain
mynetworks = 127.0.0.0/8 [::1]/128
    192.0.2.0/24
relay_domains = example.org
smtpd_relay_restrictions = permit_mynetworks,
    permit_sasl_authenticated,
    defer_unauth_destination
alias_maps = hash:/etc/aliases
   # a comment in the middle of a list
recipient_delimiter = +
message_size_limit = 52428800
inet_interfaces = all
inet_protocols = ipv4
`;

const MASTER_CF = `# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o { smtpd_relay_restrictions = permit_sasl_authenticated, reject }
smtps     inet  n       -       y       -       -       smtpd
  -o syslog_name=postfix/smtps
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
relay     unix  -       -       y       -       -       smtp
local     unix  -       n       n       -       -       local
maildrop  unix  -       n       n       -       -       pipe
  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d \${recipient}
`;

/** Makes a configuration directory with the two files. */
function instance(main = MAIN_CF, master = MASTER_CF): string {
  const dir = mkdtempSync(join(tmpdir(), "postern-postconf-"));
  writeFileSync(join(dir, "main.cf"), main);
  writeFileSync(join(dir, "master.cf"), master);
  return dir;
}

test("postconf -n prints what main.cf sets, sorted, with white space normalized", async () => {
  const dir = instance();
  const r = await runCli("postconf", ["-c", dir, "-n"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      "alias_maps = hash:/etc/aliases",
      "compatibility_level = 3.6",
      "inet_interfaces = all",
      "inet_protocols = ipv4",
      "message_size_limit = 52428800",
      "mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain",
      "mydomain = example.com",
      "myhostname = mx1.example.com",
      "mynetworks = 127.0.0.0/8 [::1]/128 192.0.2.0/24",
      "myorigin = $mydomain",
      "recipient_delimiter = +",
      "relay_domains = example.org",
      "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
      "",
    ].join("\n"),
  );
  assert.equal(r.stderr, "");
});

test("postconf -x expands, -h drops the name, -d shows defaults", async () => {
  const dir = instance();
  const r = await runCli("postconf", ["-c", dir, "-x", "mydestination", "myorigin"]);
  assert.equal(
    r.stdout,
    "mydestination = mx1.example.com, localhost.example.com, localhost, example.com\nmyorigin = example.com\n",
  );
  const h = await runCli("postconf", ["-c", dir, "-h", "myorigin"]);
  assert.equal(h.stdout, "$mydomain\n");
  const d = await runCli("postconf", ["-c", dir, "-d", "myorigin", "max_idle", "mynetworks_style"]);
  assert.equal(
    d.stdout,
    "myorigin = $myhostname\nmax_idle = 100s\nmynetworks_style = ${{$compatibility_level} <level {2} ? {subnet} : {host}}\n",
  );
  const u = await runCli("postconf", ["-c", dir, "no_such_parameter"]);
  assert.match(u.stderr, /postconf: warning: no_such_parameter: unknown parameter/);
});

test("postconf -M and -Mf print master.cf entries as Postfix does", async () => {
  const dir = instance();
  const r = await runCli("postconf", ["-c", dir, "-M", "submission/inet", "maildrop"]);
  assert.equal(
    r.stdout,
    "submission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission -o {smtpd_relay_restrictions=permit_sasl_authenticated, reject}\n" +
      "maildrop   unix  -       n       n       -       -       pipe flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n",
  );
  const f = await runCli("postconf", ["-c", dir, "-Mf", "submission"]);
  assert.equal(
    f.stdout,
    "submission inet  n       -       y       -       -       smtpd\n    -o syslog_name=postfix/submission\n    -o {smtpd_relay_restrictions=permit_sasl_authenticated, reject}\n",
  );
});

test("postconf -P prints per-service parameters", async () => {
  const dir = instance();
  const r = await runCli("postconf", ["-c", dir, "-P"]);
  assert.equal(
    r.stdout,
    "submission/inet/syslog_name = postfix/submission\n" +
      "submission/inet/smtpd_relay_restrictions = permit_sasl_authenticated, reject\n" +
      "smtps/inet/syslog_name = postfix/smtps\n",
  );
});

test("MAIL_CONFIG chooses the directory when -c is absent", async () => {
  const dir = instance("myhostname = from-env.example\n", "");
  const r = await runCli("postconf", ["-h", "myhostname"], { env: { MAIL_CONFIG: dir } });
  assert.equal(r.stdout, "from-env.example\n");
});

test("postconf -e keeps comments and order, -X removes, -# comments out", async () => {
  const dir = instance();
  assert.equal(
    (
      await runCli("postconf", [
        "-c",
        dir,
        "-e",
        "myorigin = $myhostname",
        "relayhost=[smtp.example.net]:587",
      ])
    ).code,
    0,
  );
  let text = readFileSync(join(dir, "main.cf"), "utf8");
  assert.ok(text.startsWith("# Site configuration.\ncompatibility_level = 3.6\n"));
  assert.match(text, /\nmyorigin = \$myhostname\nmydestination = /);
  assert.ok(text.endsWith("inet_protocols = ipv4\nrelayhost = [smtp.example.net]:587\n"));
  await runCli("postconf", ["-c", dir, "-X", "mynetworks"]);
  await runCli("postconf", ["-c", dir, "-#", "smtpd_relay_restrictions"]);
  text = readFileSync(join(dir, "main.cf"), "utf8");
  assert.doesNotMatch(text, /\nmynetworks|192\.0\.2/);
  assert.match(
    text,
    /\n#smtpd_relay_restrictions = permit_mynetworks,\n# {4}permit_sasl_authenticated,\n# {4}defer_unauth_destination\n/,
  );
});

test("concurrent postconf -e runs do not lose each other's changes", async () => {
  const dir = instance();
  const runs = Array.from({ length: 8 }, (_, i) =>
    runCli("postconf", ["-c", dir, "-e", `user_param_${i} = value ${i}`]),
  );
  for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
  const text = readFileSync(join(dir, "main.cf"), "utf8");
  for (let i = 0; i < 8; i++) assert.match(text, new RegExp(`\\nuser_param_${i} = value ${i}\\n`));
  assert.match(text, /^# Site configuration\./);
  assert.deepEqual(
    readdirSync(dir).sort(),
    ["main.cf", "master.cf"],
    "no lock or temporary file is left behind",
  );
});

test("postconf -M edits: add, replace, remove, comment out; -Pe, -PX and -Fe", async () => {
  const dir = instance();
  const add = await runCli("postconf", [
    "-c",
    dir,
    "-M",
    "127.0.0.1:10025/inet=127.0.0.1:10025 inet n - n - 10 smtpd -o content_filter=",
  ]);
  assert.equal(add.code, 0, add.stderr);
  await runCli("postconf", ["-c", dir, "-Pe", "smtps/inet/smtpd_tls_wrappermode=yes"]);
  await runCli("postconf", ["-c", dir, "-PX", "submission/inet/syslog_name"]);
  await runCli("postconf", ["-c", dir, "-Fe", "pickup/unix/wakeup=30"]);
  await runCli("postconf", ["-c", dir, "-MX", "relay/unix"]);
  await runCli("postconf", ["-c", dir, "-M#", "maildrop/unix"]);
  const m = await runCli("postconf", ["-c", dir, "-M"]);
  assert.equal(
    m.stdout,
    [
      "smtp       inet  n       -       y       -       -       smtpd",
      "submission inet  n       -       y       -       -       smtpd -o {smtpd_relay_restrictions=permit_sasl_authenticated, reject}",
      "smtps      inet  n       -       y       -       -       smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes",
      "pickup     unix  n       -       y       30      1       pickup",
      "cleanup    unix  n       -       y       -       0       cleanup",
      "qmgr       unix  n       -       n       300     1       qmgr",
      "local      unix  -       n       n       -       -       local",
      "127.0.0.1:10025 inet n   -       n       -       10      smtpd -o content_filter=",
      "",
    ].join("\n"),
  );
  const text = readFileSync(join(dir, "master.cf"), "utf8");
  assert.match(text, /\n#maildrop {2}unix .*\n# {2}flags=DRXhu/);
  const bad = await runCli("postconf", ["-c", dir, "-M", "x/unix=x unix - - - - - "]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /missing "command" field/);
});

test("postconf -d lists every parameter Postern reads, with a default", async () => {
  const dir = instance("", "");
  const r = await runCli("postconf", ["-c", dir, "-d"]);
  const lines = r.stdout.trim().split("\n");
  assert.ok(lines.length >= 80, `only ${lines.length} parameters`);
  for (const name of [
    "max_idle = 100s",
    "default_process_limit = 100",
    "queue_directory = ",
    "syslog_name = ",
  ]) {
    assert.ok(
      lines.some((l) => l.startsWith(name)),
      name,
    );
  }
});

const TEMPLATE_FILE = `# A site's notices.
failure_template = <<EOF
Charset: us-ascii
From: Mail Robot <MAILER-DAEMON>
Subject: Returned mail
Postmaster-Subject: Returned mail (copy)

Host $myhostname in $mydomain could not deliver your message.
It was queued for at most $maximal_queue_lifetime_days day(s); that costs $$0.
EOF

delay_template = <<END
Subject: Still trying

Retrying since \${delay_warning_time_hours} hour(s).
END
`;

/** Runs Postfix's own postconf (the postfix package) with the same arguments. */
function postfixPostconf(args: string[]): { stdout: string; status: number | null } {
  if (!existsSync("/usr/sbin/postconf"))
    assert.fail("Postfix's postconf is needed to compare with: apt-get install postfix");
  const r = spawnSync("/usr/sbin/postconf", args, { encoding: "utf8" });
  return { stdout: r.stdout, status: r.status };
}

test("postconf -b and -t print what Postfix's postconf prints for the same main.cf and template file", async () => {
  const dir = instance(MAIN_CF + "delay_warning_time = 3h\n", "");
  const file = join(dir, "bounce.cf");
  writeFileSync(file, TEMPLATE_FILE);
  for (const args of [["-b"], ["-t"], ["-b", file], ["-t", file]]) {
    const ours = await runCli("postconf", ["-c", dir, ...args]);
    assert.equal(ours.code, 0, ours.stderr);
    const theirs = postfixPostconf(["-c", dir, ...args]);
    assert.equal(theirs.status, 0);
    assert.equal(ours.stdout, theirs.stdout, `postconf ${args.join(" ")}`);
  }
  writeFileSync(join(dir, "main.cf"), MAIN_CF + `bounce_template_file = ${file}\n`);
  const set = await runCli("postconf", ["-c", dir, "-b"]);
  assert.match(set.stdout, /^Host mx1\.example\.com in example\.com could not deliver your message\.$/m);
  assert.match(set.stdout, /^It was queued for at most 5 day\(s\); that costs \$0\.$/m);
  const builtin = await runCli("postconf", ["-c", dir, "-t", ""]);
  assert.match(
    builtin.stdout,
    /^Subject: Undelivered Mail Returned to Sender$/m,
    '"" selects the built-in ones',
  );
});

test("postconf -b and -t refuse bad use and bad template files", async () => {
  const dir = instance("", "");
  const both = await runCli("postconf", ["-c", dir, "-b", "-t"]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /postconf: fatal: specify one of -b and -t/);
  const two = await runCli("postconf", ["-c", dir, "-t", "a", "b"]);
  assert.equal(two.code, 1);
  assert.match(two.stderr, /at most one template file/);
  const missing = await runCli("postconf", ["-c", dir, "-t", join(dir, "nonexistent")]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /postconf: fatal: open .*nonexistent/);
  const bad = join(dir, "bad.cf");
  writeFileSync(bad, "failure_template = <<EOF\nSubject: x\n\nfrom $no_such_parameter\nEOF\n");
  const undef = await runCli("postconf", ["-c", dir, "-b", bad]);
  assert.equal(undef.code, 1);
  assert.match(undef.stderr, /undefined \$name in failure template: from \$no_such_parameter/);
  const dumped = await runCli("postconf", ["-c", dir, "-t", bad]);
  assert.equal(dumped.code, 0, "-t does not expand");
  assert.match(dumped.stdout, /^from \$no_such_parameter$/m);
});
