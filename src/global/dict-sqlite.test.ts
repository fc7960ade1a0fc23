/*
 * dict-sqlite.test - sqlite: tables against real SQLite database files
 *
 * DESCRIPTION
 *   The database files are written by SQLite itself (the sql.js build that
 *   the table type uses) in a temporary directory, which is removed at the
 *   end. SQLite has no server, so there is no failover to test; a missing
 *   or corrupt file must fail temporarily, and a changed file is read again.
 */
import assert from "node:assert/strict";
import { writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import initSqlJs from "sql.js";
import "./dict.js";
import { sqliteOpen } from "./dict-sqlite.js";
import { removeDir, serverDir, sleep } from "./dict-server-testkit.js";
import { SQL_TEST_DATA, show, sqlCommonTests, withTable, type SqlTestContext } from "./dict-sql-testcases.js";
import { captureLog } from "./dict-testkit.js";

let dir = "";
let dbPath = "";

/** Writes an SQLite database file made from SQL statements (atomically, by rename). */
async function writeDb(path: string, sql: string[]): Promise<void> {
  const SQL = await initSqlJs();
  const db = new SQL.Database();
  for (const s of sql) db.run(s);
  writeFileSync(`${path}.tmp`, db.export());
  db.close();
  renameSync(`${path}.tmp`, path);
}

before(async () => {
  captureLog();
  dir = serverDir("postern-sqlite-", null);
  dbPath = join(dir, "mail.sqlite");
  await writeDb(dbPath, SQL_TEST_DATA);
});

after(() => {
  if (dir !== "") removeDir(dir);
});

const ctx: SqlTestContext = {
  type: "sqlite",
  dir: () => dir,
  open: sqliteOpen,
  connection: () => `dbpath = ${dbPath}\n`,
};

sqlCommonTests(ctx);

test("sqlite: a changed database file is read again", async () => {
  const path = join(dir, "changing.sqlite");
  await writeDb(path, ["CREATE TABLE t (k TEXT, v TEXT)", "INSERT INTO t VALUES ('a', 'one')"]);
  const q = "query = SELECT v FROM t WHERE k = '%s'";
  await withTable(
    ctx,
    q,
    async (lookup) => {
      assert.equal(show(await lookup("a")), "one");
      await writeDb(path, ["CREATE TABLE t (k TEXT, v TEXT)", "INSERT INTO t VALUES ('a', 'two')"]);
      await sleep(1100);
      assert.equal(show(await lookup("a")), "two");
    },
    `dbpath = ${path}\n`,
  );
});

test("sqlite: a missing or corrupt database file fails temporarily", async () => {
  const q = "query = SELECT goto FROM alias WHERE address = '%s'";
  await withTable(
    ctx,
    q,
    async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    },
    `dbpath = ${join(dir, "missing.sqlite")}\n`,
  );
  const corrupt = join(dir, "corrupt.sqlite");
  writeFileSync(corrupt, "this is not an SQLite database, but it is long enough to look like one".repeat(20));
  await withTable(
    ctx,
    q,
    async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    },
    `dbpath = ${corrupt}\n`,
  );
  const d = sqliteOpen(join(dir, "no-such.cf"), 0);
  assert.equal((await d.lookup("x")).status, "tempfail");
  d.close();
});

test("sqlite: numbers come back as text", async () => {
  await withTable(ctx, "query = SELECT pos * 10, 1.5 FROM alias WHERE address = '%s'", async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "10,1.5");
  });
});
