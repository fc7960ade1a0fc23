/*
 * postmap.test - the postmap command, flag by flag, as a real process
 *
 * DESCRIPTION
 *   Each test writes a source file in a temporary directory (with an empty
 *   main.cf, passed with -c or MAIL_CONFIG) and checks what an
 *   administrator sees: standard output, warnings, exit status, and the
 *   files postmap leaves behind. Privilege tests (-o, -p) run only as root.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, type CliResult } from "../src/testing/run-cli.js";
import { getUser } from "../src/util/unix-users.js";

const SOURCE = [
  "# access table",
  "Example.COM      OK",
  "spammer@example.net   REJECT go away",
  "multi   first",
  "    second",
  '"quoted key"@example.org  value',
  "dup  first",
  "dup  second",
  "x: y",
  "broken",
  "",
].join("\n");

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A directory with an empty main.cf and the source file "access"; returns both paths. */
function setup(source = SOURCE, main = ""): { dir: string; cf: string; src: string } {
  const dir = mkdtempSync(join(tmpdir(), "postern-postmap-"));
  dirs.push(dir);
  const cf = join(dir, "etc");
  mkdirSync(cf);
  writeFileSync(join(cf, "main.cf"), main);
  const src = join(dir, "access");
  writeFileSync(src, source);
  return { dir, cf, src };
}

/** Runs postmap with -c cf. */
function postmap(cf: string, args: string[], input?: string): Promise<CliResult> {
  return runCli("postmap", ["-c", cf, ...args], input === undefined ? {} : { input });
}

test("build: hash:file, warnings with file and line, first of a repeated key kept", async () => {
  const { dir, cf, src } = setup();
  const r = await postmap(cf, [`hash:${src}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /postmap: warning: .*access, line 8: duplicate entry "dup"/);
  assert.match(r.stderr, /access, line 9: .*is this an alias file\?/);
  assert.match(r.stderr, /access, line 10: expected format: key whitespace value/);
  assert.deepEqual(readdirSync(dir).sort(), ["access", "access.db", "etc"]);
  const q = await postmap(cf, ["-q", "dup", `hash:${src}`]);
  assert.equal(q.stdout, "first\n");
  assert.equal((await postmap(cf, ["-q", "multi", src])).stdout, "first    second\n");
});

test("without a type, default_database_type decides; every on-disk type builds", async () => {
  const { dir, cf, src } = setup(SOURCE, "default_database_type = cdb\n");
  assert.equal((await postmap(cf, [src])).code, 0);
  assert.ok(readdirSync(dir).includes("access.cdb"));
  for (const type of ["btree", "lmdb"]) assert.equal((await postmap(cf, [`${type}:${src}`])).code, 0);
  assert.ok(readdirSync(dir).includes("access.lmdb"));
  assert.equal((await postmap(cf, ["-q", "example.com", `lmdb:${src}`])).stdout, "OK\n");
});

test("a rebuild replaces the table file atomically and leaves no temporary file", async () => {
  const { dir, cf, src } = setup();
  await postmap(cf, [`hash:${src}`]);
  const before = statSync(`${src}.db`).ino;
  writeFileSync(src, "new value\n");
  assert.equal((await postmap(cf, [`hash:${src}`])).code, 0);
  assert.notEqual(statSync(`${src}.db`).ino, before);
  assert.deepEqual(readdirSync(dir).sort(), ["access", "access.db", "etc"]);
  assert.equal((await postmap(cf, ["-q", "example.com", `hash:${src}`])).code, 1);
});

test("-q: exit 0 found, 1 not found; keys are folded unless -f", async () => {
  const { cf, src } = setup();
  await postmap(cf, [`hash:${src}`]);
  const hit = await postmap(cf, ["-q", "EXAMPLE.com", `hash:${src}`]);
  assert.deepEqual([hit.code, hit.stdout], [0, "OK\n"]);
  const miss = await postmap(cf, ["-q", "nowhere.example", `hash:${src}`]);
  assert.deepEqual([miss.code, miss.stdout, miss.stderr], [1, "", ""]);
  assert.equal((await postmap(cf, ["-q", '"quoted key"@example.org', `hash:${src}`])).stdout, "value\n");
  assert.equal((await postmap(cf, ["-f", `hash:${src}`])).code, 0);
  assert.equal((await postmap(cf, ["-f", "-q", "example.com", `hash:${src}`])).code, 1);
  assert.equal((await postmap(cf, ["-f", "-q", "Example.COM", `hash:${src}`])).stdout, "OK\n");
});

test("-q with several tables answers from the first that has the key; any type can be queried", async () => {
  const { dir, cf, src } = setup();
  await postmap(cf, [`hash:${src}`]);
  const re = join(dir, "re");
  writeFileSync(re, "/^spammer@/ FROM REGEXP\n");
  const r = await postmap(cf, ["-q", "spammer@example.net", `regexp:${re}`, `hash:${src}`]);
  assert.equal(r.stdout, "FROM REGEXP\n");
  const c = await postmap(cf, ["-q", "192.0.2.7", "cidr:{{192.0.2.0/24 NET}}"]);
  assert.equal(c.stdout, "NET\n");
});

test("-q - reads keys from standard input and prints key<TAB>value; -j prints JSON", async () => {
  const { cf, src } = setup();
  await postmap(cf, [`hash:${src}`]);
  const r = await postmap(cf, ["-q", "-", `hash:${src}`], "example.com\nnope\nspammer@example.net\n");
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "example.com\tOK\nspammer@example.net\tREJECT go away\n");
  assert.equal((await postmap(cf, ["-q", "-", `hash:${src}`], "nope\n")).code, 1);
  const j = await postmap(cf, ["-j", "-q", "-", `hash:${src}`], "example.com\n");
  assert.equal(j.stdout, '{"example.com": "OK"}\n');
  const bad = await postmap(cf, ["-j", `hash:${src}`]);
  assert.match(bad.stderr, /postmap: fatal: option -j requires -q or -s/);
});

test("-q - with -h and -b takes header and body lines of a message as keys", async () => {
  const { dir, cf } = setup();
  const re = join(dir, "checks");
  writeFileSync(re, "/^Subject: .*cheap/ REJECT header\n/^X-Long: a/ FOLDED\n/^buy now/ REJECT body\n");
  const message = "From: a@example\nSubject: cheap stuff\nX-Long: a\n\tb\n\nhello\nbuy now\n";
  const h = await postmap(cf, ["-h", "-q", "-", `regexp:${re}`], message);
  assert.equal(h.stdout, "Subject: cheap stuff\tREJECT header\nX-Long: a\n\tb\tFOLDED\n");
  const b = await postmap(cf, ["-b", "-q", "-", `regexp:${re}`], message);
  assert.equal(b.stdout, "buy now\tREJECT body\n");
  const wrong = await postmap(cf, ["-h", "-q", "x", `regexp:${re}`]);
  assert.match(wrong.stderr, /specify -b -h or -m only with "-q -"/);
});

test("-s lists every entry; -i adds from standard input; -r and -w decide about repeated keys", async () => {
  const { cf, src } = setup("a 1\nb 2\n");
  await postmap(cf, [`hash:${src}`]);
  assert.equal((await postmap(cf, ["-s", `hash:${src}`])).stdout, "a\t1\nb\t2\n");
  const i = await postmap(cf, ["-i", `hash:${src}`], "c 3\nA 9\n");
  assert.equal(i.code, 0);
  assert.match(i.stderr, /duplicate entry "a"/);
  assert.equal((await postmap(cf, ["-s", `hash:${src}`])).stdout, "a\t1\nb\t2\nc\t3\n");
  const w = await postmap(cf, ["-iw", `hash:${src}`], "b 8\n");
  assert.deepEqual([w.code, w.stderr], [0, ""]);
  const r = await postmap(cf, ["-ir", `hash:${src}`], "b 7\n");
  assert.deepEqual([r.code, r.stderr], [0, ""]);
  assert.equal((await postmap(cf, ["-q", "b", `hash:${src}`])).stdout, "7\n");
  assert.equal((await postmap(cf, ["-js", `hash:${src}`])).stdout.split("\n")[0], '{"a": "1"}');
  const fresh = join(setup().dir, "new");
  assert.equal((await postmap(cf, ["-i", `cdb:${fresh}`], "k v\n")).code, 0, "-i creates a missing table");
  assert.equal((await postmap(cf, ["-s", `cdb:${fresh}`])).stdout, "k\tv\n");
});

test("-d deletes a key (exit 0 when it was there); -d - reads keys from standard input", async () => {
  const { cf, src } = setup("a 1\nb 2\nc 3\n");
  await postmap(cf, [`hash:${src}`]);
  assert.equal((await postmap(cf, ["-d", "A", `hash:${src}`])).code, 0);
  assert.equal((await postmap(cf, ["-d", "a", `hash:${src}`])).code, 1);
  assert.equal((await postmap(cf, ["-d", "-", `hash:${src}`], "b\nzzz\n")).code, 0);
  assert.equal((await postmap(cf, ["-d", "-", `hash:${src}`], "zzz\n")).code, 1);
  assert.equal((await postmap(cf, ["-s", `hash:${src}`])).stdout, "c\t3\n");
});

test("errors: Postfix's messages and exit status 1", async () => {
  const { dir, cf, src } = setup();
  const cases: Array<[string[], RegExp]> = [
    [
      ["-q", "x", "hash:/no/such"],
      /^postmap: fatal: open database \/no\/such\.db: No such file or directory\n$/,
    ],
    [["hash:/no/such"], /^postmap: fatal: open \/no\/such: No such file or directory\n$/],
    [["-q", "x", "regexp:/no/such"], /^postmap: fatal: open \/no\/such: No such file or directory\n$/],
    [["-q", "x", "fail:broken"], /^postmap: fatal: table fail:broken: query error: /],
    [["-q", "x", "nosuchtype:/x"], /^postmap: fatal: unsupported dictionary type: nosuchtype\n$/],
    [[`regexp:${src}`], /fatal: unsupported dictionary type: regexp does not support bulk-mode creation/],
    [["-s", `regexp:${src}`], /fatal: table regexp:.*: sequence operation is not supported/],
    [["-q", "x", "-s", src], /fatal: specify only one of -d -i -q or -s/],
    [[], /fatal: usage: postmap /],
    [["-Z", src], /^postmap: invalid option -- 'Z'\npostmap: fatal: usage: /],
    [["-F", src], /fatal: option -F .* is not supported/],
    [[`proxy:hash:${src}`], /fatal: can't create or change maps via the proxy service/],
  ];
  for (const [args, re] of cases) {
    const r = await postmap(cf, args);
    assert.equal(r.code, 1, `postmap ${args.join(" ")}`);
    assert.match(r.stderr, re, `postmap ${args.join(" ")}`);
  }
  assert.deepEqual(readdirSync(dir).sort(), ["access", "etc"], "nothing was written");
});

test("-c and MAIL_CONFIG name the configuration; -n -N -u -U -v are accepted", async () => {
  const { cf, src } = setup("k v\n", "default_database_type = cdb\n");
  const env = await runCli("postmap", [src], { env: { MAIL_CONFIG: cf } });
  assert.equal(env.code, 0, env.stderr);
  assert.equal(
    (await runCli("postmap", ["-q", "k", `cdb:${src}`], { env: { MAIL_CONFIG: cf } })).stdout,
    "v\n",
  );
  for (const flag of ["-n", "-N", "-u", "-U", "-v"]) {
    const r = await postmap(cf, [flag, "-q", "k", src]);
    assert.deepEqual([r.code, r.stdout], [0, "v\n"], flag);
  }
});

test("as root: the table gets the source owner and its read permissions, unless -o or -p", async () => {
  const nobody = getUser("nobody");
  assert.equal(process.getuid?.(), 0, "run the suite as root (CI does)");
  assert.ok(nobody, "the nobody account exists");
  const { dir, cf, src } = setup("k v\n");
  chmodSync(dir, 0o755);
  const owned = join(dir, "owned");
  mkdirSync(owned);
  chownSync(owned, nobody.uid, nobody.gid);
  const table = join(owned, "t");
  writeFileSync(table, "k v\n", { mode: 0o640 });
  chownSync(table, nobody.uid, nobody.gid);
  assert.equal((await postmap(cf, [`hash:${table}`])).code, 0);
  let st = statSync(`${table}.db`);
  assert.deepEqual([st.uid, st.mode & 0o777], [nobody.uid, 0o640]);
  assert.equal((await postmap(cf, ["-o", "-p", `hash:${table}`])).code, 0);
  st = statSync(`${table}.db`);
  assert.deepEqual([st.uid, st.mode & 0o777], [0, 0o644]);
  writeFileSync(join(owned, "rootfile"), "k v\n");
  const w = await postmap(cf, [`hash:${join(owned, "rootfile")}`]);
  assert.equal(w.code, 0, w.stderr);
  assert.match(w.stderr, /Creating root-owned database file\(s\) .* in non-root-owned directory/);
  assert.equal((await postmap(cf, ["-q", "k", src])).code, 1, "the other source was never built");
});
