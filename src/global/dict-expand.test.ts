/*
 * dict-expand.test - %-templates, domain lists, result lists, query plans, .cf files
 *
 * DESCRIPTION
 *   Unit tests, without servers, of what every server table shares:
 *   dict-expand.ts, planQuery() of dict-sql.ts and dict-cf.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import "./dict.js";
import { CfParams, parseEndpoint } from "./dict-cf.js";
import { DbTemplates, DICT_RESULT_MAX, DomainFilter, ResultList } from "./dict-expand.js";
import { removeDir, serverDir, writeCf } from "./dict-server-testkit.js";
import { planQuery, type SqlDialect } from "./dict-sql.js";
import { captureLog } from "./dict-testkit.js";

captureLog();

const PG: SqlDialect = {
  backslashEscapes: false,
  doubleQuoteStrings: false,
  backticks: false,
  hashComments: false,
  dollarQuotes: true,
};
const MY: SqlDialect = {
  backslashEscapes: true,
  doubleQuoteStrings: true,
  backticks: true,
  hashComments: true,
  dollarQuotes: false,
};

test("templates: query expansions of the key", () => {
  const t = new DbTemplates("test:x");
  const q = "%s|%u|%d|%S|%U|%D|%1|%2|%3|%%";
  t.parse(q, "query");
  assert.equal(
    t.expand(q, "joe@mail.example.com", null, null),
    "joe@mail.example.com|joe|mail.example.com|" +
      "joe@mail.example.com|joe|mail.example.com|com|example|mail|%",
  );
  assert.equal(t.expand(q, "joe@example.com", null, null), null, "too few labels");
  assert.equal(t.expand(q, "joe", null, null), null, "no domain");
  assert.equal(t.expand(q, "@a.b.c", null, null), null, "empty local part");
  assert.equal(t.expand(q, "joe@a..c", null, null), null, "empty label");
  assert.equal(t.expand(q, "", null, null), null, "empty key");
  const plain = new DbTemplates("test:y");
  plain.parse("[%s]", "query");
  assert.equal(
    plain.expand("[%s]", "a'b", null, (v) => v.replace(/'/g, "''")),
    "[a''b]",
    "quoting",
  );
});

test("templates: a %u-only template takes keys without a domain; result expansions", () => {
  const t = new DbTemplates("test:x");
  t.parse("%u", "query");
  assert.equal(t.expand("%u", "joe", null, null), "joe");
  t.parse("<%u|%d|%S|%U>", "result");
  assert.equal(t.expand("<%u|%d|%S|%U>", "x@y.z", "joe", null), "<x|y.z|joe|joe>");
  assert.equal(t.expand("<%u|%d|%S|%U>", "unqualified", "joe", null), null, "result without domain skipped");
  assert.throws(() => t.parse("%x", "result"), /invalid result template/);
});

test("domain lists: names, negation, files and tables", async () => {
  const dir = serverDir("postern-domains-", null);
  try {
    const file = writeCf(dir, "domains", "# comment\nfile.test, other.test\n");
    const f = new DomainFilter(`!bad.example.test, example.test ${file} inline:{tab.test=x}`, "test");
    const check = async (k: string): Promise<boolean | string> => {
      const v = await f.check(k);
      return v.ok ? v.match : v.reason;
    };
    assert.equal(await check("a@EXAMPLE.test"), true);
    assert.equal(await check("a@bad.example.test"), false);
    assert.equal(await check("a@file.test"), true);
    assert.equal(await check("a@tab.test"), true);
    assert.equal(await check("a@nowhere.test"), false);
    assert.equal(await check("example.test"), false, "no local part");
    assert.equal(await check("@example.test"), false, "empty local part");
    f.close();
    const failing = new DomainFilter("fail:down", "test");
    assert.equal(typeof (await failing.check("a@b.c")).ok, "boolean");
    assert.equal((await failing.check("a@b.c")).ok, false, "a failing domain table fails the lookup");
    failing.close();
  } finally {
    removeDir(dir);
  }
});

test("result lists: commas, expansion_limit and the size limit", () => {
  const r = new ResultList(2);
  assert.equal(r.add("a"), true);
  assert.equal(r.add(null), true);
  assert.equal(r.add("b"), true);
  assert.equal(r.text(), "a,b");
  assert.equal(r.add("c"), false);
  assert.match(r.overflow ?? "", /expansion limit/);
  const big = new ResultList(0);
  assert.equal(big.add("x".repeat(DICT_RESULT_MAX)), false);
});

test("query plans: whole literals with expansions become parameters", () => {
  const plan = (q: string, d = PG): string =>
    planQuery(q, d)
      .pieces.map((p) => (p.param ? `<${p.inner}>` : p.text))
      .join("");
  assert.equal(
    plan("SELECT a FROM t WHERE k = '%s' AND d = '%d'"),
    "SELECT a FROM t WHERE k = <%s> AND d = <%d>",
  );
  assert.equal(plan("SELECT '%u@%d', 'it''s', '%%'"), "SELECT <%u@%d>, 'it''s', '%%'");
  assert.equal(
    plan("SELECT REPLACE('%s|''', 'x', '')"),
    "SELECT REPLACE('%s|''', 'x', '')",
    "quote inside: quoted",
  );
  assert.equal(plan("SELECT E'%s', x'%s'"), "SELECT E'%s', x'%s'", "prefixed literals are not bound");
  assert.equal(
    plan("SELECT $q$'%s'$q$ -- '%s'\n, /* '%s' */ \"a'b\", '%s'"),
    "SELECT $q$'%s'$q$ -- '%s'\n, /* '%s' */ \"a'b\", <%s>",
  );
  assert.equal(plan("SELECT \"%s\", `x'`, '%s' # '%s'", MY), "SELECT \"%s\", `x'`, <%s> # '%s'");
  assert.equal(plan("SELECT 'a\\'%s'", MY), "SELECT 'a\\'%s'", "backslash escape inside: quoted");
  assert.equal(planQuery("SELECT x WHERE id = %s", PG).exposed, true);
  assert.equal(planQuery("SELECT x WHERE id = '%s' AND p = 100%%", PG).exposed, false);
});

test("configuration files and endpoints", () => {
  const cf = CfParams.fromText("pgsql", "/x.cf", "# c\nhosts = a b\n  c\nn = 5\nb = Yes\nq = 'x' $y\n");
  assert.deepEqual(cf.str("hosts", "").split(/\s+/), ["a", "b", "c"], "continuation line");
  assert.equal(cf.int("n", 0, 0, 10), 5);
  assert.equal(cf.bool("b", false), true);
  assert.equal(cf.str("q", ""), "'x' $y", "no quote removal, no $ expansion");
  assert.throws(() => cf.int("n", 0, 6), /out of range/);
  assert.throws(() => cf.int("hosts", 0, 0), /bad integer/);
  assert.throws(() => CfParams.fromText("pgsql", "/x.cf", "no equals sign\n"), /x\.cf, line 1/);
  assert.throws(() => CfParams.read("pgsql", "pgsqlsource"), /path of a configuration file/);
  assert.throws(() => CfParams.read("pgsql", join("/nonexistent", "x.cf")), /ENOENT/);
  assert.deepEqual(parseEndpoint("inet:db:5433", 5432), {
    kind: "inet",
    host: "db",
    port: 5433,
    text: "inet:db:5433",
  });
  assert.deepEqual(parseEndpoint("db", 5432), { kind: "inet", host: "db", port: 5432, text: "db" });
  assert.deepEqual(parseEndpoint("[::1]:25", null), {
    kind: "inet",
    host: "::1",
    port: 25,
    text: "[::1]:25",
  });
  assert.deepEqual(parseEndpoint("unix:/run/s", null), { kind: "unix", path: "/run/s", text: "unix:/run/s" });
  assert.equal(parseEndpoint("db", null), null);
  assert.equal(parseEndpoint("db:99999", null), null);
  assert.equal(parseEndpoint("db:smtp", null), null);
});
