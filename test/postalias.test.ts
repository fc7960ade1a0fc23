/*
 * postalias.test - postalias and newaliases, flag by flag, as real processes
 *
 * DESCRIPTION
 *   Builds alias tables from aliases(5) files in a temporary directory and
 *   checks what an administrator sees: the entries as local delivery will
 *   get them, warnings that name file and line while the rest of the file
 *   is still built, the query, list, add and delete modes with their exit
 *   status, and newaliases rebuilding every alias_database table.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, type CliResult } from "../src/testing/run-cli.js";

const ALIASES = [
  "# /etc/aliases",
  "postmaster: root",
  "MAILER-DAEMON: postmaster",
  "root: admin@example.com,",
  "\tother@example.com ,  third",
  "owners: :include:/etc/mail/owners",
  "vacation: |/usr/bin/vacation joe",
  'procmail: "|/usr/bin/procmail -a $EXTENSION"',
  "archive: /var/spool/mail/archive",
  '"a b": joe',
  "broken line without colon",
  "remote@example.com: x",
  "Root: duplicate",
  "last: still built",
  "",
].join("\n");

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A directory with main.cf and an alias file; returns the paths. */
function setup(main = ""): { dir: string; cf: string; src: string } {
  const dir = mkdtempSync(join(tmpdir(), "postern-postalias-"));
  dirs.push(dir);
  const cf = join(dir, "etc");
  mkdirSync(cf);
  writeFileSync(join(cf, "main.cf"), main);
  const src = join(dir, "aliases");
  writeFileSync(src, ALIASES);
  return { dir, cf, src };
}

/** Runs postalias with -c cf. */
function postalias(cf: string, args: string[], input?: string): Promise<CliResult> {
  return runCli("postalias", ["-c", cf, ...args], input === undefined ? {} : { input });
}

test("build: every good line is stored, bad lines are named, the rest is still built", async () => {
  const { dir, cf, src } = setup();
  const r = await postalias(cf, [`hash:${src}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stderr.trim().split("\n"), [
    `postalias: warning: ${src}, line 11: need name:value pair`,
    `postalias: warning: ${src}, line 12: name must be local and have no domain`,
    `postalias: warning: hash:${src}, line 13: duplicate entry "root": keeping the first one`,
  ]);
  assert.deepEqual(readdirSync(dir).sort(), ["aliases", "aliases.db", "etc"]);
  const s = await postalias(cf, ["-s", `hash:${src}`]);
  assert.equal(
    s.stdout,
    [
      "postmaster:\troot",
      "mailer-daemon:\tpostmaster",
      "root:\tadmin@example.com, other@example.com, third",
      "owners:\t:include:/etc/mail/owners",
      "vacation:\t|/usr/bin/vacation joe",
      'procmail:\t"|/usr/bin/procmail -a $EXTENSION"',
      "archive:\t/var/spool/mail/archive",
      '"a b":\tjoe',
      "last:\tstill built",
      "",
    ].join("\n"),
  );
});

test("-q name, -q - (name:<TAB>value lines), -f keeps case, default_database_type", async () => {
  const { dir, cf, src } = setup("default_database_type = cdb\n");
  assert.equal((await postalias(cf, [src])).code, 0);
  assert.ok(readdirSync(dir).includes("aliases.cdb"));
  const q = await postalias(cf, ["-q", "ROOT", src]);
  assert.deepEqual([q.code, q.stdout], [0, "admin@example.com, other@example.com, third\n"]);
  assert.equal((await postalias(cf, ["-q", '"a b"', src])).stdout, "joe\n");
  assert.equal((await postalias(cf, ["-q", "nobody", src])).code, 1);
  const many = await postalias(cf, ["-q", "-", src], "postmaster\nnobody\nvacation\n");
  assert.equal(many.stdout, "postmaster:\troot\nvacation:\t|/usr/bin/vacation joe\n");
  assert.equal((await postalias(cf, ["-j", "-q", "last", src])).stdout, '{"last": "still built"}\n');
  assert.equal((await postalias(cf, ["-f", `hash:${src}`])).code, 0);
  assert.equal((await postalias(cf, ["-f", "-q", "MAILER-DAEMON", `hash:${src}`])).stdout, "postmaster\n");
  assert.equal((await postalias(cf, ["-f", "-q", "mailer-daemon", `hash:${src}`])).code, 1);
  assert.equal((await postalias(cf, ["-q", "MAILER-DAEMON", `hash:${src}`])).code, 1, "the query is folded");
});

test("-i adds alias lines from standard input, -r/-w for repeated names; -d removes", async () => {
  const { cf, src } = setup();
  await postalias(cf, [`hash:${src}`]);
  const i = await postalias(cf, ["-i", `hash:${src}`], "new: a,b\nbad line\npostmaster: other\n");
  assert.equal(i.code, 0);
  assert.match(i.stderr, /stdin, line 2: need name:value pair/);
  assert.match(i.stderr, /duplicate entry "postmaster"/);
  assert.equal((await postalias(cf, ["-q", "new", `hash:${src}`])).stdout, "a, b\n");
  assert.equal((await postalias(cf, ["-q", "postmaster", `hash:${src}`])).stdout, "root\n");
  const w = await postalias(cf, ["-i", "-w", `hash:${src}`], "postmaster: ignored\n");
  assert.equal(w.stderr, "");
  await postalias(cf, ["-i", "-r", `hash:${src}`], "postmaster: replaced\n");
  assert.equal((await postalias(cf, ["-q", "postmaster", `hash:${src}`])).stdout, "replaced\n");
  assert.equal((await postalias(cf, ["-d", "new", `hash:${src}`])).code, 0);
  assert.equal((await postalias(cf, ["-d", "new", `hash:${src}`])).code, 1);
  assert.equal((await postalias(cf, ["-d", "-", `hash:${src}`], "last\nowners\n")).code, 0);
  const s = await postalias(cf, ["-s", `hash:${src}`]);
  assert.doesNotMatch(s.stdout, /^(new|last|owners):/m);
});

test("errors: a missing source or table is fatal with Postfix's wording", async () => {
  const { cf } = setup();
  const a = await postalias(cf, ["hash:/no/such/aliases"]);
  assert.deepEqual(
    [a.code, a.stderr],
    [1, "postalias: fatal: open /no/such/aliases: No such file or directory\n"],
  );
  const b = await postalias(cf, ["-q", "x", "hash:/no/such/aliases"]);
  assert.match(
    b.stderr,
    /^postalias: fatal: open database \/no\/such\/aliases\.db: No such file or directory/,
  );
  assert.equal((await postalias(cf, ["-s", "-d", "x", "/etc/aliases"])).code, 1);
  assert.match((await postalias(cf, ["-b", "x"])).stderr, /invalid option -- 'b'/);
});

test("newaliases rebuilds every alias_database table; -c and MAIL_CONFIG are honoured", async () => {
  const { dir, cf, src } = setup();
  const other = join(dir, "lists");
  writeFileSync(other, "staff: alice, bob\n");
  writeFileSync(join(cf, "main.cf"), `alias_database = hash:${src}, cdb:${other}\n`);
  const r = await runCli("newaliases", ["-c", cf]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^newaliases: warning: .*aliases, line 11: need name:value pair/m);
  assert.ok(readdirSync(dir).includes("aliases.db"));
  assert.ok(readdirSync(dir).includes("lists.cdb"));
  const q = await runCli("postalias", ["-q", "staff", `cdb:${other}`], { env: { MAIL_CONFIG: cf } });
  assert.equal(q.stdout, "alice, bob\n");
  writeFileSync(join(cf, "main.cf"), "alias_database =\n");
  const none = await runCli("newaliases", [], { env: { MAIL_CONFIG: cf } });
  assert.deepEqual([none.code, none.stderr], [0, ""]);
});
