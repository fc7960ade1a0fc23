/*
 * dict-db.test - on-disk tables: hash/btree/lmdb (Postern format) and cdb
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { cdbHash } from "./dict-cdb.js";
import { dictCloseAll, DictFlag, dictOpen, dictSetRecheckInterval, found, NOT_FOUND } from "./dict.js";
import { dictAdd, dictBuild, dictBuildFrom, dictDelete, dictDump, dictTablePath } from "./dict-mkmap.js";
import { captureLog, tempDir } from "./dict-testkit.js";

const log = captureLog();

/** A full garbage collection (exposed at run time), so that memory measurements mean something. */
function collect(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** Heap plus buffer memory in use after a full collection. */
function memoryInUse(): number {
  collect();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}
const TYPES = ["hash", "btree", "lmdb", "cdb"];

const SOURCE = [
  "# access table",
  "Example.COM      OK",
  "spammer@example.net   REJECT go away",
  "multi   first",
  "    second",
  '"quoted key"@example.org  value',
  "dup  first",
  "dup  second",
  "héllo  wörld",
  "broken",
].join("\n");

for (const type of TYPES) {
  test(`${type}: build from a source file, look up, list`, async () => {
    const dir = tempDir();
    const name = join(dir, "access");
    writeFileSync(name, SOURCE);
    assert.equal(dictBuild(type, name), 6);
    const warnings = log.take().join("\n");
    assert.match(warnings, /access, line 8: duplicate entry "dup"/);
    assert.match(warnings, /access, line 10: expected format/);
    assert.ok(existsSync(dictTablePath(type, name)));
    assert.deepEqual(readdirSync(dir).sort(), [
      "access",
      `access${type === "cdb" ? ".cdb" : type === "lmdb" ? ".lmdb" : ".db"}`,
    ]);
    const d = dictOpen(`${type}:${name}`);
    assert.equal(d.flags & DictFlag.FIXED, DictFlag.FIXED);
    assert.deepEqual(await d.lookup("EXAMPLE.com"), found("OK"));
    assert.deepEqual(await d.lookup("spammer@example.net"), found("REJECT go away"));
    assert.deepEqual(await d.lookup("multi"), found("first    second"));
    assert.deepEqual(await d.lookup('"quoted key"@example.org'), found("value"));
    assert.deepEqual(await d.lookup("dup"), found("first"));
    assert.deepEqual(await d.lookup("HÉLLO".toLowerCase()), found("wörld"));
    assert.deepEqual(await d.lookup("nosuchkey"), NOT_FOUND);
    assert.deepEqual(await d.lookup(""), NOT_FOUND);
    d.close();
    assert.deepEqual(
      [...dictDump(type, name)].map((e) => `${e.key}=${e.value}`),
      [
        "example.com=OK",
        "spammer@example.net=REJECT go away",
        "multi=first    second",
        '"quoted key"@example.org=value',
        "dup=first",
        "héllo=wörld",
      ],
    );
    rmSync(dir, { recursive: true });
  });

  test(`${type}: add, replace, delete; readers switch to the new file`, async () => {
    dictSetRecheckInterval(0);
    const dir = tempDir();
    const name = join(dir, "t");
    dictBuildFrom(type, name, [
      { key: "a", value: "1" },
      { key: "b", value: "2" },
    ]);
    const d = dictOpen(`${type}:${name}`);
    assert.deepEqual(await d.lookup("a"), found("1"));
    assert.equal(
      dictAdd(type, name, [
        { key: "c", value: "3" },
        { key: "A", value: "ignored" },
      ]),
      3,
    );
    assert.match(log.take().join("\n"), /duplicate entry "a"/);
    assert.deepEqual(await d.lookup("c"), found("3"));
    assert.deepEqual(await d.lookup("a"), found("1"));
    dictAdd(type, name, [{ key: "a", value: "replaced" }], DictFlag.FOLD_FIX | DictFlag.DUP_REPLACE);
    assert.deepEqual(await d.lookup("a"), found("replaced"));
    assert.equal(dictDelete(type, name, ["B", "nosuch"]), 1);
    assert.deepEqual(await d.lookup("b"), NOT_FOUND);
    assert.deepEqual(
      [...dictDump(type, name)].map((e) => `${e.key}=${e.value}`),
      ["c=3", "a=replaced"],
    );
    d.close();
    assert.equal(
      dictAdd(type, join(dir, "new"), [{ key: "x", value: "y" }]),
      1,
      "add creates a missing table",
    );
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith(".tmp")),
      [],
      "no temporary files left",
    );
    dictSetRecheckInterval(1000);
    log.take();
    rmSync(dir, { recursive: true });
  });

  test(`${type}: missing or corrupt files fail temporarily`, async () => {
    const dir = tempDir();
    const name = join(dir, "t");
    assert.equal((await dictOpen(`${type}:${name}`).lookup("a")).status, "tempfail");
    dictBuildFrom(type, name, [{ key: "a", value: "1" }]);
    const path = dictTablePath(type, name);
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 3));
    const r = await dictOpen(`${type}:${name}`, { flags: DictFlag.NONE }).lookup("a");
    assert.equal(r.status, type === "cdb" ? "tempfail" : "tempfail");
    writeFileSync(path, "garbage");
    assert.equal(
      (await dictOpen(`${type}:${name}`, { flags: DictFlag.FOLD_MUL }).lookup("a")).status,
      "tempfail",
    );
    dictCloseAll();
    log.take();
    rmSync(dir, { recursive: true });
  });
}

test("keys keep their case without FOLD_FIX (postmap -f)", async () => {
  const dir = tempDir();
  const name = join(dir, "t");
  dictBuildFrom("hash", name, [{ key: "MiXed", value: "1" }], DictFlag.NONE);
  assert.deepEqual(await dictOpen(`hash:${name}`, { flags: DictFlag.NONE }).lookup("MiXed"), found("1"));
  assert.deepEqual(await dictOpen(`hash:${name}`, { flags: DictFlag.NONE }).lookup("mixed"), NOT_FOUND);
  assert.deepEqual(await dictOpen(`hash:${name}`).lookup("MIXED"), NOT_FOUND, "folded query, unfolded table");
  dictCloseAll();
  rmSync(dir, { recursive: true });
});

test("a table file older than its source is reported", async () => {
  const dir = tempDir();
  const name = join(dir, "t");
  writeFileSync(name, "a 1\n");
  dictBuild("hash", name);
  const later = new Date(statSync(name).mtimeMs + 10000);
  writeFileSync(name, "a 2\n");
  execFileSync("touch", ["-d", later.toISOString(), name]);
  await dictOpen(`hash:${name}`).lookup("a");
  assert.match(log.take().join("\n"), /older than source file/);
  dictCloseAll();
  rmSync(dir, { recursive: true });
});

test("a large table is searched with positional reads, not loaded into memory", async () => {
  const dir = tempDir();
  const name = join(dir, "big");
  const n = 300000;
  function* entries(): Generator<{ key: string; value: string }> {
    for (let i = 0; i < n; i++)
      yield { key: `user${i}@example${i % 97}.com`, value: `value-${i}-${"x".repeat(20)}` };
  }
  for (const type of ["hash", "cdb"]) {
    assert.equal(dictBuildFrom(type, name, entries()), n);
    const before = memoryInUse();
    const d = dictOpen(`${type}:${name}`);
    for (let i = 0; i < n; i += 301) {
      assert.deepEqual(
        await d.lookup(`USER${i}@example${i % 97}.com`),
        found(`value-${i}-${"x".repeat(20)}`),
      );
      assert.deepEqual(await d.lookup(`user${i}@nowhere`), NOT_FOUND);
    }
    const grew = memoryInUse() - before;
    const size = statSync(dictTablePath(type, name)).size;
    assert.ok(size > 15_000_000, `table file is ${size} bytes`);
    // Loading the table would cost more than its file size (a texthash copy of
    // it costs about 2.5 times); garbage not yet collected from the lookups
    // can cost a few MB, so the bound is generous but still decisive.
    assert.ok(grew < size * 0.75, `${type}: memory grew by ${grew} bytes for a ${size}-byte table`);
    d.close();
  }
  rmSync(dir, { recursive: true });
});

test("cdb files interoperate with the cdb tool", async () => {
  let tool = "";
  for (const p of ["/usr/bin/cdb", "/usr/local/bin/cdb"]) if (existsSync(p)) tool = p;
  assert.notEqual(tool, "", "the cdb tool is missing: install the Debian package tinycdb");
  const dir = tempDir();
  const name = join(dir, "t");
  dictBuildFrom("cdb", name, [
    { key: "k1", value: "v1" },
    { key: "k2", value: "a longer value" },
  ]);
  assert.equal(execFileSync(tool, ["-q", `${name}.cdb`, "k2"]).toString(), "a longer value");
  execFileSync(tool, ["-c", join(dir, "other.cdb")], { input: "+3,5:abc->hello\n+2,3:xy->zzz\n\n" });
  const d = dictOpen(`cdb:${join(dir, "other")}`);
  assert.deepEqual(await d.lookup("abc"), found("hello"));
  assert.deepEqual(await d.lookup("xy"), found("zzz"));
  assert.deepEqual(await d.lookup("nope"), NOT_FOUND);
  d.close();
  rmSync(dir, { recursive: true });
});

test("the cdb hash is Bernstein's", () => {
  assert.equal(cdbHash(Buffer.from("")), 5381);
  assert.equal(cdbHash(Buffer.from("a")), ((5381 * 33) ^ 97) >>> 0);
});
