/*
 * dict-mysql.test - mysql: tables against a real MariaDB server
 *
 * DESCRIPTION
 *   Starts MariaDB (Debian packages "mariadb-server-core" and
 *   "mariadb-client-core", both part of "mariadb-server") once for this file:
 *   mariadb-install-db into a temporary directory and mariadbd on a free
 *   port of 127.0.0.1 and a private socket, as the mysql account when the
 *   tests run as root. The table user logs in with a password. The server
 *   and its directory are removed at the end, also when a test fails.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import mysql from "mysql2/promise";
import "./dict.js";
import { mysqlOpen } from "./dict-mysql.js";
import {
  findBinary,
  freePort,
  removeDir,
  runAs,
  runSetup,
  serverDir,
  startDaemon,
  succeeds,
  type Daemon,
} from "./dict-server-testkit.js";
import {
  QUOTED_QUERY,
  SQL_TEST_DATA,
  show,
  sqlCommonTests,
  withTable,
  type SqlTestContext,
} from "./dict-sql-testcases.js";
import { captureLog } from "./dict-testkit.js";

let daemon: Daemon | null = null;
let dataDir = "";
let cfDir = "";
let port = 0;
let deadPort = 0;

/** Runs SQL as root over the private socket; returns the last statement's rows. */
async function admin(sql: string[], db = "mail"): Promise<unknown[][]> {
  const c = await mysql.createConnection({ socketPath: join(dataDir, "sock"), user: "root", database: db });
  try {
    let last: unknown[][] = [];
    for (const s of sql) {
      const [rows] = await c.query({ sql: s, rowsAsArray: true });
      last = Array.isArray(rows) ? (rows as unknown[][]) : [];
    }
    return last;
  } finally {
    await c.end();
  }
}

before(async () => {
  const log = captureLog();
  process.on("exit", () => {
    if (process.env["SHOWLOG"]) console.error(log.lines.join("\n"));
  });
  const mariadbd = findBinary(["/usr/sbin/mariadbd", "/usr/sbin/mysqld"], "mariadb-server-core");
  findBinary(["/usr/bin/my_print_defaults"], "mariadb-client-core"); // mariadb-install-db runs it
  const installDb = findBinary(
    ["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"],
    "mariadb-server-core",
  );
  const as = runAs("mysql");
  dataDir = serverDir("postern-my-", as);
  cfDir = serverDir("postern-mycf-", null);
  port = await freePort();
  deadPort = await freePort();
  runSetup(
    installDb,
    [
      "--no-defaults",
      `--datadir=${join(dataDir, "data")}`,
      "--auth-root-authentication-method=normal",
    ].concat(["--skip-test-db", "--skip-name-resolve"]),
    { as, cwd: dataDir, timeoutMs: 120000 },
  );
  daemon = await startDaemon(
    "mariadbd",
    mariadbd,
    ["--no-defaults", `--datadir=${join(dataDir, "data")}`, `--socket=${join(dataDir, "sock")}`]
      .concat([`--pid-file=${join(dataDir, "pid")}`, "--bind-address=127.0.0.1", `--port=${port}`])
      .concat(["--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"])
      .concat(["--innodb-buffer-pool-size=16M", `--log-error=${join(dataDir, "error.log")}`]),
    { port, as, cwd: dataDir, timeoutMs: 60000, ready: () => succeeds(() => admin(["SELECT 1"], "mysql")) },
  );
  await admin(["CREATE DATABASE mail"], "mysql");
  await admin([
    "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'",
    ...SQL_TEST_DATA,
    "CREATE USER 'mta'@'127.0.0.1' IDENTIFIED BY 'mta-pw'",
    "CREATE USER 'mta'@'localhost' IDENTIFIED BY 'mta-pw'",
    "GRANT SELECT, EXECUTE ON mail.* TO 'mta'@'127.0.0.1'",
    "GRANT SELECT, EXECUTE ON mail.* TO 'mta'@'localhost'",
    "CREATE PROCEDURE lookup(IN k VARCHAR(200)) READS SQL DATA SQL SECURITY INVOKER " +
      "BEGIN SELECT goto FROM alias WHERE address = k ORDER BY pos; END",
    "CREATE PROCEDURE nothing(IN k VARCHAR(200)) READS SQL DATA SQL SECURITY INVOKER BEGIN DO 1; END",
  ]);
});

after(async () => {
  await daemon?.stop();
  if (dataDir !== "") removeDir(dataDir);
  if (cfDir !== "") removeDir(cfDir);
});

const LOGIN = "user = mta\npassword = mta-pw\ndbname = mail\nconnect_timeout = 5\n";

const ctx: SqlTestContext = {
  type: "mysql",
  dir: () => cfDir,
  open: mysqlOpen,
  connection: () => `hosts = inet:127.0.0.1:${port}\n${LOGIN}`,
  failover: () => `hosts = 127.0.0.1:${deadPort}, 127.0.0.1:${port}\n${LOGIN}`,
  allDead: () => `hosts = 127.0.0.1:${deadPort} unix:${join(cfDir, "no-such.sock")}\n${LOGIN}`,
};

sqlCommonTests(ctx);

const ALIAS = "query = SELECT goto FROM alias WHERE address = '%s' ORDER BY pos";

test("mysql: unix-domain socket host, tried before TCP hosts", async () => {
  const unix = `hosts = 127.0.0.1:${deadPort} unix:${join(dataDir, "sock")}\n${LOGIN}`;
  const log = captureLog();
  await withTable(
    ctx,
    ALIAS,
    async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
    },
    unix,
  );
  assert.deepEqual(log.take(), [], "the dead TCP host was not tried");
});

test("mysql: stored procedures and require_result_set", async () => {
  await withTable(ctx, "query = CALL lookup('%s')", async (lookup) => {
    assert.equal(show(await lookup("list@example.test")), "a@example.test,b@remote.test,c@example.test");
    assert.equal(show(await lookup("nobody@example.test")), "notfound");
  });
  await withTable(ctx, "query = CALL nothing('%s')", async (lookup) => {
    assert.equal((await lookup("x")).status, "tempfail");
  });
  await withTable(ctx, "query = CALL nothing('%s')\nrequire_result_set = no", async (lookup) => {
    assert.equal(show(await lookup("x")), "notfound");
  });
});

test("mysql: hostile keys stay data when the server has NO_BACKSLASH_ESCAPES", async () => {
  const hostile = ["x' OR '1'='1", "x\\' OR 1=1 -- ", "\\", "x'; DROP TABLE alias; --"];
  await admin(["SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')"]);
  try {
    const quoted = QUOTED_QUERY;
    for (const q of [ALIAS, quoted]) {
      await withTable(ctx, q, async (lookup) => {
        for (const k of hostile) assert.equal(show(await lookup(k)), "notfound", `${q}: ${k}`);
        assert.equal(show(await lookup("back\\slash@example.test")), "backslash@example.test", q);
        assert.equal(show(await lookup("o'brien@example.test")), "obrien@example.test", q);
      });
    }
  } finally {
    await admin(["SET GLOBAL sql_mode = REPLACE(@@GLOBAL.sql_mode, 'NO_BACKSLASH_ESCAPES', '')"]);
  }
});

test("mysql: the connection is reused, and re-established after the server drops it", async () => {
  await withTable(ctx, "query = SELECT CONNECTION_ID() FROM DUAL WHERE '%s' <> ''", async (lookup) => {
    const first = show(await lookup("x"));
    assert.equal(show(await lookup("y")), first, "same connection");
    await admin([`KILL ${Number(first)}`]);
    const again = await lookup("z");
    assert.equal(again.status, "found");
    assert.notEqual(show(again), first);
  });
});

test("mysql: a slow query times out (query_timeout) as a temporary failure", async () => {
  const started = Date.now();
  await withTable(ctx, "query = SELECT SLEEP(20), '%s'\nquery_timeout = 1", async (lookup) => {
    assert.equal((await lookup("x")).status, "tempfail");
  });
  assert.ok(Date.now() - started < 8000);
});

test("mysql: numbers come back as text; a wrong password is a temporary failure", async () => {
  await withTable(ctx, "query = SELECT pos * 10, 1.5 FROM alias WHERE address = '%s'", async (lookup) => {
    assert.equal(show(await lookup("info@example.test")), "10,1.5");
  });
  const bad = `hosts = 127.0.0.1:${port}\nuser = mta\npassword = wrong\ndbname = mail\n`;
  await withTable(
    ctx,
    ALIAS,
    async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    },
    bad,
  );
});
