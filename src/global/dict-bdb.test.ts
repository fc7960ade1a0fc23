import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dictOpen } from "./dict.js";
import { dbEntries } from "./dict-db.js";

/** Debian's postmap (package postfix, which .ci/run installs): the program that makes Postfix's tables. */
const POSTFIX_POSTMAP = "/usr/sbin/postmap";

for (const type of ["hash", "btree"] as const) {
  test(`${type}: tables made by Postfix's own postmap (Berkeley DB) are read as they are`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "bdb-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const src = join(dir, "table");
    const long = "v".repeat(9000); // longer than a page: stored on overflow pages
    const lines = ["Key-With-Case value-with-Case", `long ${long}`, "utf8@bücher.example ok"];
    for (let i = 0; i < 3000; i++) lines.push(`user${i}@example.org ${"x".repeat(i % 50)}${i}`);
    writeFileSync(src, `${lines.join("\n")}\n`);
    const made = spawnSync(POSTFIX_POSTMAP, [`${type}:${src}`], { encoding: "utf8" });
    assert.equal(made.status, 0, `Debian's postfix package provides ${POSTFIX_POSTMAP}: ${made.stderr}`);

    const d = dictOpen(`${type}:${src}`);
    assert.deepEqual(await d.lookup("key-with-case"), { status: "found", value: "value-with-Case" });
    assert.deepEqual(await d.lookup("long"), { status: "found", value: long });
    assert.deepEqual(await d.lookup("utf8@bücher.example"), { status: "found", value: "ok" });
    assert.deepEqual(await d.lookup("user2999@example.org"), {
      status: "found",
      value: `${"x".repeat(49)}2999`,
    });
    assert.deepEqual(await d.lookup("user3000@example.org"), { status: "notfound" });
    const all = [...dbEntries(`${src}.db`)];
    assert.equal(all.length, 3003);
  });
}

test("a damaged Berkeley DB file is an error naming the page, never a partial table", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "bdb-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, "table");
  writeFileSync(src, Array.from({ length: 500 }, (_, i) => `k${i} v${i}`).join("\n") + "\n");
  assert.equal(spawnSync(POSTFIX_POSTMAP, [`hash:${src}`]).status, 0);
  const { openSync, readSync, writeSync, closeSync, fstatSync } = await import("node:fs");
  const fd = openSync(`${src}.db`, "r+");
  const size = fstatSync(fd).size;
  const page = Buffer.alloc(4096);
  readSync(fd, page, 0, 4096, 4096);
  page.writeUInt16LE(0xfff0, 26); // the first item's offset now points past the page
  page.writeUInt16LE(2, 20);
  writeSync(fd, page, 0, 4096, size > 4096 ? 4096 : 0);
  closeSync(fd);
  const r = await dictOpen(`hash:${src}`).lookup("k1");
  assert.equal(r.status, "tempfail");
});
