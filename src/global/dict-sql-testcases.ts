/*
 * dict-sql-testcases - the tests every SQL table type must pass, against its real server
 *
 * SYNOPSIS
 *   import { SQL_TEST_DATA, sqlCommonTests } from "./dict-sql-testcases.js";
 *   sqlCommonTests({ type: "pgsql", open, cf: () => "hosts = ...\n", deadHosts: () => "..." });
 *
 * DESCRIPTION
 *   The caller loads SQL_TEST_DATA into its server (the statements are
 *   plain SQL that PostgreSQL, MariaDB and SQLite all accept), and gives
 *   the connection lines of a table file. sqlCommonTests() then declares
 *   node:test cases for found/not found, several results, result_format,
 *   the %-expansions, the domain filter, expansion_limit, NULL values,
 *   hostile keys, SQL errors, and (when the type has hosts) failover and
 *   the all-hosts-dead temporary failure.
 *   Only tests import this module.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { writeCf } from "./dict-server-testkit.js";
import { captureLog } from "./dict-testkit.js";
import { DICT_DEFAULT_FLAGS, type DictImpl, type DictResult } from "./dict-types.js";

/** The tables and rows every SQL test server holds. */
export const SQL_TEST_DATA = [
  "CREATE TABLE alias (address VARCHAR(200), goto VARCHAR(200), pos INTEGER)",
  "INSERT INTO alias VALUES ('info@example.test', 'alice@example.test', 1)",
  "INSERT INTO alias VALUES ('list@example.test', 'a@example.test', 1)",
  "INSERT INTO alias VALUES ('list@example.test', 'b@remote.test', 2)",
  "INSERT INTO alias VALUES ('list@example.test', 'c@example.test', 3)",
  "INSERT INTO alias VALUES ('info@other.test', 'bob@other.test', 1)",
  "INSERT INTO alias VALUES ('o''brien@example.test', 'obrien@example.test', 1)",
  "INSERT INTO alias VALUES ('back\\slash@example.test', 'backslash@example.test', 1)",
  "INSERT INTO alias VALUES ('null@example.test', NULL, 1)",
  "INSERT INTO alias VALUES ('empty@example.test', '', 1)",
  "CREATE TABLE transport (tld VARCHAR(50), sld VARCHAR(50), nexthop VARCHAR(200))",
  "INSERT INTO transport VALUES ('test', 'example', 'smtp:[mx.example.test]')",
  "CREATE TABLE secret (v VARCHAR(50))",
  "INSERT INTO secret VALUES ('TOP-SECRET')",
];

/** What the common tests need from a table type. */
export interface SqlTestContext {
  type: string;
  /** A directory for .cf files. */
  dir: () => string;
  /** Opens a table from a .cf path. */
  open: (path: string, flags: number) => DictImpl;
  /** The lines that reach the live server (hosts, user, password, dbname / dbpath). */
  connection: () => string;
  /** The same with a dead host first and the live one second; undefined when the type has no hosts. */
  failover?: () => string;
  /** Lines whose every host is dead. */
  allDead?: () => string;
}

let serial = 0;

/** Opens a table whose file has the connection lines plus `extra`; runs `fn`; closes it. */
export async function withTable(
  ctx: SqlTestContext,
  extra: string,
  fn: (lookup: (key: string) => Promise<DictResult>) => Promise<void>,
  connection = ctx.connection(),
): Promise<void> {
  serial += 1;
  const path = writeCf(ctx.dir(), `t${serial}.cf`, `${connection}\n${extra}\n`);
  const d = ctx.open(path, DICT_DEFAULT_FLAGS);
  try {
    await fn(async (k) => await d.lookup(k));
  } finally {
    d.close();
  }
}

/** The value of a found result, or the status. */
export function show(r: DictResult): string {
  return r.status === "found" ? r.value : r.status;
}

const ALIAS_QUERY = "query = SELECT goto FROM alias WHERE address = '%s' ORDER BY pos";

/** A query whose key literal also holds a quote: it cannot be a bound parameter, the key is quoted. */
export const QUOTED_QUERY =
  "query = SELECT goto FROM alias WHERE address = REPLACE('%s|''', '|''', '') ORDER BY pos";

/** Declares the common tests. */
export function sqlCommonTests(ctx: SqlTestContext): void {
  const t = ctx.type;

  test(`${t}: found and not found; keys are folded to lower case`, async () => {
    await withTable(ctx, ALIAS_QUERY, async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
      assert.equal(show(await lookup("INFO@Example.TEST")), "alice@example.test");
      assert.equal(show(await lookup("nobody@example.test")), "notfound");
    });
  });

  test(`${t}: several rows are joined with commas; NULL and empty values are skipped`, async () => {
    await withTable(ctx, ALIAS_QUERY, async (lookup) => {
      assert.equal(show(await lookup("list@example.test")), "a@example.test,b@remote.test,c@example.test");
      assert.equal(show(await lookup("null@example.test")), "notfound");
      assert.equal(show(await lookup("empty@example.test")), "notfound");
    });
    const twoCols = "query = SELECT goto, address FROM alias WHERE address = '%s'";
    await withTable(ctx, twoCols, async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test,info@example.test");
    });
  });

  test(`${t}: result_format with %s %u %d %S %U %D %1 %2 and %%`, async () => {
    await withTable(ctx, `${ALIAS_QUERY}\nresult_format = smtp:[%d]`, async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "smtp:[example.test]");
    });
    const fmt = "result_format = %u|%d|%S|%U|%D|%1.%2|100%%|<%s>";
    await withTable(ctx, `${ALIAS_QUERY}\n${fmt}`, async (lookup) => {
      assert.equal(
        show(await lookup("info@example.test")),
        "alice|example.test|info@example.test|info|example.test|test.example|100%|<alice@example.test>",
      );
    });
  });

  test(`${t}: query expansions %u %d %1 %2; a key without the parts is not looked up`, async () => {
    const q = "query = SELECT goto FROM alias WHERE address = '%u@%d' AND pos = 1";
    await withTable(ctx, q, async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
      assert.equal(show(await lookup("info")), "notfound");
      assert.equal(show(await lookup("@example.test")), "notfound");
    });
    const q2 = "query = SELECT nexthop FROM transport WHERE tld = '%1' AND sld = '%2'";
    await withTable(ctx, q2, async (lookup) => {
      assert.equal(show(await lookup("user@mx.example.test")), "smtp:[mx.example.test]");
      assert.equal(show(await lookup("user@test")), "notfound");
      assert.equal(show(await lookup("user@.test")), "notfound");
    });
    // When the key lacks the domain, the (broken) query is never sent: not found, not an error.
    const broken = "query = SELECT x FROM no_such_table WHERE a = '%d'";
    await withTable(ctx, broken, async (lookup) => {
      assert.equal(show(await lookup("no-domain")), "notfound");
      assert.equal((await lookup("a@example.test")).status, "tempfail");
    });
  });

  test(`${t}: the domain filter limits lookups to listed domains`, async () => {
    const extra = `${ALIAS_QUERY}\ndomain = example.test, !blocked.test`;
    await withTable(ctx, extra, async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
      assert.equal(show(await lookup("info@other.test")), "notfound");
      assert.equal(show(await lookup("example.test")), "notfound");
      assert.equal(show(await lookup("@example.test")), "notfound");
    });
    await withTable(ctx, `${ALIAS_QUERY}\ndomain = inline:{other.test=yes}`, async (lookup) => {
      assert.equal(show(await lookup("info@other.test")), "bob@other.test");
      assert.equal(show(await lookup("info@example.test")), "notfound");
    });
  });

  test(`${t}: expansion_limit: too many results is a temporary failure`, async () => {
    await withTable(ctx, `${ALIAS_QUERY}\nexpansion_limit = 2`, async (lookup) => {
      assert.equal((await lookup("list@example.test")).status, "tempfail");
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
    });
  });

  test(`${t}: hostile keys are data, never SQL`, async () => {
    const hostile = [
      "x' OR '1'='1",
      "x' UNION SELECT v FROM secret --",
      "x\\' UNION SELECT v FROM secret -- ",
      "\\",
      "x\\",
      "x'; DROP TABLE alias; --",
      "x\0' OR '1'='1",
      'x" OR "1"="1',
      "%s%d%%",
    ];
    const templates = [
      ALIAS_QUERY,
      QUOTED_QUERY,
      "query = SELECT goto FROM alias WHERE address = CONCAT('%u', '@', '%d')",
    ];
    for (const q of templates) {
      await withTable(ctx, q, async (lookup) => {
        for (const k of hostile) {
          const r = await lookup(k);
          assert.equal(show(r), "notfound", `${q}: key ${JSON.stringify(k)}`);
        }
        assert.equal(show(await lookup("o'brien@example.test")), "obrien@example.test", q);
        assert.equal(show(await lookup("back\\slash@example.test")), "backslash@example.test", q);
      });
    }
    await withTable(ctx, "query = SELECT goto FROM alias WHERE 'it''s' <> '%s'", async (lookup) => {
      const r = await lookup("x' OR '1'='1");
      assert.equal(r.status, "found", "the quoted key is compared as a string");
    });
    await withTable(ctx, "query = SELECT COUNT(*) FROM secret", async (lookup) => {
      assert.equal(show(await lookup("anything")), "1", "hostile keys dropped nothing");
    });
  });

  test(`${t}: an SQL error is a temporary failure and the host stays in service`, async () => {
    await withTable(ctx, "query = SELECT no_such_column FROM alias WHERE address = '%s'", async (lookup) => {
      assert.equal((await lookup("info@example.test")).status, "tempfail");
    });
    await withTable(ctx, ALIAS_QUERY, async (lookup) => {
      assert.equal(show(await lookup("info@example.test")), "alice@example.test");
    });
  });

  const failover = ctx.failover;
  if (failover !== undefined) {
    test(`${t}: a dead host is skipped (failover)`, async () => {
      const log = captureLog();
      // Hosts are tried in random order: over several tables, the dead one is tried first at least once.
      for (let n = 0; n < 12; n++) {
        await withTable(
          ctx,
          ALIAS_QUERY,
          async (lookup) => {
            for (let i = 0; i < 2; i++)
              assert.equal(show(await lookup("info@example.test")), "alice@example.test");
          },
          failover(),
        );
      }
      assert.ok(
        log.take().some((l) => l.includes("cannot use host")),
        "the dead host was tried",
      );
    });
  }
  const allDead = ctx.allDead;
  if (allDead !== undefined) {
    test(`${t}: when every host is dead the lookup fails temporarily, never "not found"`, async () => {
      const started = Date.now();
      await withTable(
        ctx,
        `${ALIAS_QUERY}\nconnect_timeout = 2`,
        async (lookup) => {
          const r = await lookup("info@example.test");
          assert.equal(r.status, "tempfail");
          assert.equal((await lookup("info@example.test")).status, "tempfail");
        },
        allDead(),
      );
      assert.ok(Date.now() - started < 10000, "bounded in time");
    });
  }
}
