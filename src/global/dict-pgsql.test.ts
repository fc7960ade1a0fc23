/*
 * dict-pgsql.test - pgsql: tables against a real PostgreSQL server
 *
 * DESCRIPTION
 *   Starts PostgreSQL (Debian package "postgresql") once for this file:
 *   initdb into a temporary directory and "postgres" on a free port of
 *   127.0.0.1 and a private socket directory, as the postgres account when
 *   the tests run as root. Password authentication (scram-sha-256) is
 *   required over TCP. The server and its directory are removed at the end,
 *   also when a test fails.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import pg from "pg";
import { pgsqlOpen } from "./dict-pgsql.js";
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
import { QUOTED_QUERY, SQL_TEST_DATA, show, sqlCommonTests, withTable } from "./dict-sql-testcases.js";
import "./dict.js";
import { captureLog } from "./dict-testkit.js";

let daemon: Daemon | null = null;
let dataDir = "";
let cfDir = "";
let port = 0;
let deadPort = 0;

/** Runs SQL as the superuser over the private socket. */
/** Runs one statement in the postgres database (fails while the server is still starting up). */
async function query(sql: string): Promise<void> {
  const c = new pg.Client({ host: dataDir, port, user: "postgres", database: "postgres" });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function admin(sql: string[]): Promise<string[][]> {
  const c = new pg.Client({ host: dataDir, port, user: "postgres", database: "mail" });
  await c.connect();
  try {
    let last: string[][] = [];
    for (const s of sql) last = (await c.query({ text: s, rowMode: "array" })).rows as string[][];
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
  const postgres = findBinary(["/usr/lib/postgresql/*/bin/postgres"], "postgresql");
  const initdb = join(postgres, "..", "initdb");
  const as = runAs("postgres");
  dataDir = serverDir("postern-pg-", as);
  cfDir = serverDir("postern-pgcf-", null);
  port = await freePort();
  deadPort = await freePort();
  const pwfile = join(dataDir, "pw");
  runSetup("/bin/sh", ["-c", `umask 077; echo super > ${pwfile}`], { as });
  runSetup(
    initdb,
    ["-D", join(dataDir, "data"), "-U", "postgres", "--pwfile", pwfile, "--auth-local=trust"].concat([
      "--auth-host=scram-sha-256",
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C",
    ]),
    { as, cwd: dataDir },
  );
  daemon = await startDaemon(
    "postgres",
    postgres,
    [
      "-D",
      join(dataDir, "data"),
      "-p",
      String(port),
      "-k",
      dataDir,
      "-c",
      "listen_addresses=127.0.0.1",
    ].concat(["-c", "fsync=off", "-c", "full_page_writes=off"]),
    { port, as, cwd: dataDir, stopSignal: "SIGINT", ready: () => succeeds(() => query("SELECT 1")) },
  );
  await query("CREATE DATABASE mail");
  await admin([
    ...SQL_TEST_DATA,
    "CREATE ROLE mta LOGIN PASSWORD 'mta-pw'",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO mta",
  ]);
});

after(async () => {
  await daemon?.stop();
  if (dataDir !== "") removeDir(dataDir);
  if (cfDir !== "") removeDir(cfDir);
});

const LOGIN = "user = mta\npassword = mta-pw\ndbname = mail\nconnect_timeout = 5\n";

sqlCommonTests({
  type: "pgsql",
  dir: () => cfDir,
  open: pgsqlOpen,
  connection: () => `hosts = inet:127.0.0.1:${port}\n${LOGIN}`,
  failover: () => `hosts = 127.0.0.1:${deadPort} 127.0.0.2:${port} 127.0.0.1:${port}\n${LOGIN}`,
  allDead: () => `hosts = 127.0.0.1:${deadPort} inet:127.0.0.1:${deadPort}\n${LOGIN}`,
});

const ALIAS = "query = SELECT goto FROM alias WHERE address = '%s'";

test("pgsql: unix-domain socket directory and connection URI hosts", async () => {
  const unix = `hosts = unix:${dataDir}/.s.PGSQL.${port}\nuser = postgres\ndbname = mail\n`;
  await withTable(
    { type: "pgsql", dir: () => cfDir, open: pgsqlOpen, connection: () => unix },
    ALIAS,
    async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
    },
  );
  for (const uri of [
    `postgresql://mta:mta-pw@127.0.0.1:${port}/mail`,
    `postgres://postgres@/mail?host=${dataDir}&port=${port}`,
  ]) {
    await withTable(
      { type: "pgsql", dir: () => cfDir, open: pgsqlOpen, connection: () => `hosts = ${uri}\n` },
      ALIAS,
      async (lookup) => {
        assert.equal(show(await lookup("info@example.test")), "alice@example.test", uri);
      },
    );
  }
});

test("pgsql: hostile keys stay data when standard_conforming_strings is off", async () => {
  await admin([
    "ALTER ROLE mta SET standard_conforming_strings = off",
    "ALTER ROLE mta SET escape_string_warning = off",
  ]);
  try {
    const ctx = {
      type: "pgsql",
      dir: () => cfDir,
      open: pgsqlOpen,
      connection: () => `hosts = 127.0.0.1:${port}\n${LOGIN}`,
    };
    const quoted = QUOTED_QUERY;
    await withTable(ctx, quoted, async (lookup) => {
      for (const k of ["x\\' OR 1=1 --", "x' OR '1'='1", "\\"])
        assert.equal(show(await lookup(k)), "notfound", k);
      assert.equal(show(await lookup("back\\slash@example.test")), "backslash@example.test");
      assert.equal(show(await lookup("o'brien@example.test")), "obrien@example.test");
    });
  } finally {
    await admin(["ALTER ROLE mta RESET ALL"]);
  }
});

test("pgsql: a wrong password is a temporary failure", async () => {
  const bad = `hosts = 127.0.0.1:${port}\nuser = mta\npassword = wrong\ndbname = mail\n`;
  await withTable(
    { type: "pgsql", dir: () => cfDir, open: pgsqlOpen, connection: () => bad },
    ALIAS,
    async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    },
  );
});

test("pgsql: the connection is reused, and re-established after the server drops it", async () => {
  const ctx = {
    type: "pgsql",
    dir: () => cfDir,
    open: pgsqlOpen,
    connection: () => `hosts = 127.0.0.1:${port}\n${LOGIN}`,
  };
  const pids = "query = SELECT pg_backend_pid() WHERE '%s' <> ''";
  await withTable(ctx, pids, async (lookup) => {
    const first = show(await lookup("x"));
    assert.equal(show(await lookup("y")), first, "same backend: the connection is reused");
    await admin([`SELECT pg_terminate_backend(${Number(first)})`]);
    const again = await lookup("z");
    assert.equal(again.status, "found", "a new connection replaces the dropped one");
    assert.notEqual(show(again), first);
  });
});

test("pgsql: a slow query times out (query_timeout) as a temporary failure", async () => {
  const ctx = {
    type: "pgsql",
    dir: () => cfDir,
    open: pgsqlOpen,
    connection: () => `hosts = 127.0.0.1:${port}\n${LOGIN}query_timeout = 1\n`,
  };
  const started = Date.now();
  await withTable(ctx, "query = SELECT '%s' FROM pg_sleep(20)", async (lookup) => {
    assert.equal((await lookup("x")).status, "tempfail");
  });
  assert.ok(Date.now() - started < 8000);
});

test("pgsql: select_function and the legacy table/select_field/where_field parameters", async () => {
  const ctx = {
    type: "pgsql",
    dir: () => cfDir,
    open: pgsqlOpen,
    connection: () => `hosts = 127.0.0.1:${port}\n${LOGIN}`,
  };
  await withTable(ctx, "select_function = upper", async (lookup) => {
    assert.equal(show(await lookup("o'brien")), "O'BRIEN");
  });
  const legacy =
    "table = alias\nselect_field = goto\nwhere_field = address\nadditional_conditions = AND pos = 1";
  await withTable(ctx, legacy, async (lookup) => {
    assert.equal(show(await lookup("list@example.test")), "a@example.test");
  });
});

test("pgsql: a bad configuration file makes the table fail every lookup", async () => {
  const ctx = {
    type: "pgsql",
    dir: () => cfDir,
    open: pgsqlOpen,
    connection: () => `hosts = 127.0.0.1:${port}\n`,
  };
  await withTable(ctx, "query = SELECT goto FROM alias WHERE address = '%x'", async (lookup) => {
    assert.equal((await lookup("a@example.test")).status, "tempfail");
  });
  const missing = pgsqlOpen("/nonexistent/pgsql.cf", 0);
  assert.equal((await missing.lookup("a")).status, "tempfail");
});
