/*
 * dict-ldap.test - ldap: tables against a real OpenLDAP server
 *
 * DESCRIPTION
 *   Starts slapd (Debian package "slapd") once for this file with a
 *   temporary slapd.conf and an mdb database loaded by slapadd, listening
 *   on a free port of 127.0.0.1 and on a private ldapi:// socket, as the
 *   openldap account when the tests run as root. The server and its
 *   directory are removed at the end, also when a test fails.
 */
import assert from "node:assert/strict";
import { mkdirSync, chownSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import "./dict.js";
import { ldapFilterQuote, ldapDnQuote, ldapOpen, parseLdapUrl } from "./dict-ldap.js";
import {
  findBinary,
  freePort,
  removeDir,
  runAs,
  runSetup,
  serverDir,
  startDaemon,
  writeCf,
  type Daemon,
} from "./dict-server-testkit.js";
import { DICT_DEFAULT_FLAGS, type DictResult } from "./dict-types.js";
import { captureLog } from "./dict-testkit.js";

let daemon: Daemon | null = null;
let dir = "";
let port = 0;
let deadPort = 0;
let slapd = "";
let as: { uid: number; gid: number } | null = null;

const SUFFIX = "dc=example,dc=test";
const PEOPLE = `ou=people,${SUFFIX}`;

const LDIF = `dn: ${SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ${PEOPLE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,${SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: uid=alice,${PEOPLE}
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
mail: alice@example.test
description: alice@mbox.example.test
description: alice2@mbox.example.test

dn: uid=bob,${PEOPLE}
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
mail: bob@example.test
mail: o'brien(x)@example.test
description: bob@mbox.example.test

dn: cn=staff,ou=groups,${SUFFIX}
objectClass: groupOfNames
objectClass: extensibleObject
cn: staff
mail: staff@example.test
description: staff-owner@example.test
member: uid=alice,${PEOPLE}
member: uid=bob,${PEOPLE}
member: uid=nobody,${PEOPLE}

dn: cn=routed,ou=groups,${SUFFIX}
objectClass: groupOfNames
objectClass: extensibleObject
cn: routed
mail: routed@example.test
l: lists.example.test
member: uid=alice,${PEOPLE}

dn: cn=dynamic,ou=groups,${SUFFIX}
objectClass: groupOfNames
objectClass: extensibleObject
cn: dynamic
mail: dynamic@example.test
member: uid=alice,${PEOPLE}
labeledURI: ldap:///${PEOPLE}??one?(uid=bob)
`;

/** The slapd.conf text for a directory. */
function slapdConf(d: string): string {
  return `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${d}/slapd.pid
argsfile ${d}/slapd.args
database mdb
maxsize 104857600
suffix "${SUFFIX}"
rootdn "cn=admin,${SUFFIX}"
rootpw secret
directory ${d}/db
index mail eq
`;
}

/** Starts slapd on the test port and socket. */
async function startSlapd(): Promise<Daemon> {
  const urls = `ldap://127.0.0.1:${port}/ ldapi://${encodeURIComponent(join(dir, "ldapi"))}`;
  return await startDaemon("slapd", slapd, ["-f", join(dir, "slapd.conf"), "-h", urls, "-d", "0"], {
    port,
    as,
    cwd: dir,
  });
}

before(async () => {
  const log = captureLog();
  process.on("exit", () => {
    if (process.env["SHOWLOG"]) console.error(log.lines.join("\n"));
  });
  slapd = findBinary(["/usr/sbin/slapd"], "slapd");
  const slapadd = findBinary(["/usr/sbin/slapadd"], "slapd");
  as = runAs("openldap");
  dir = serverDir("postern-ldap-", as);
  port = await freePort();
  deadPort = await freePort();
  mkdirSync(join(dir, "db"));
  if (as !== null) chownSync(join(dir, "db"), as.uid, as.gid);
  writeCf(dir, "slapd.conf", slapdConf(dir));
  writeCf(dir, "data.ldif", LDIF);
  runSetup(slapadd, ["-f", join(dir, "slapd.conf"), "-l", join(dir, "data.ldif")], { as, cwd: dir });
  daemon = await startSlapd();
});

after(async () => {
  await daemon?.stop();
  if (dir !== "") removeDir(dir);
});

let serial = 0;

/** Opens a table with the given parameters (server_host defaults to the live server). */
async function withLdap(
  text: string,
  fn: (lookup: (k: string) => Promise<DictResult>) => Promise<void>,
): Promise<void> {
  serial += 1;
  const server = text.includes("server_host") ? "" : `server_host = ldap://127.0.0.1:${port}\n`;
  const path = writeCf(dir, `t${serial}.cf`, `${server}search_base = ${SUFFIX}\ntimeout = 5\n${text}\n`);
  const d = ldapOpen(path, DICT_DEFAULT_FLAGS);
  try {
    await fn(async (k) => await d.lookup(k));
  } finally {
    d.close();
  }
}

/** The value of a found result, or the status. */
function show(r: DictResult): string {
  return r.status === "found" ? r.value : r.status;
}

const BASIC = "query_filter = (mail=%s)\nresult_attribute = description\nbind = no";

test("ldap: found, not found, several values joined with commas", async () => {
  await withLdap(BASIC, async (lookup) => {
    assert.equal(
      show(await lookup("alice@example.test")),
      "alice@mbox.example.test,alice2@mbox.example.test",
    );
    assert.equal(show(await lookup("BOB@example.test")), "bob@mbox.example.test");
    assert.equal(show(await lookup("nobody@example.test")), "notfound");
  });
});

test("ldap: result_format, query_filter expansions and a dynamic search_base", async () => {
  await withLdap(`${BASIC}\nresult_format = smtp:[%d] %u %U %D`, async (lookup) => {
    assert.equal(show(await lookup("bob@example.test")), "smtp:[mbox.example.test] bob bob example.test");
  });
  await withLdap(`${BASIC}\nquery_filter = (&(uid=%u)(mail=%u@%d))`, async (lookup) => {
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
    assert.equal(show(await lookup("bob")), "notfound");
  });
  const dynamic = `${BASIC}\nsearch_base = ou=people, dc=%2, dc=%1`;
  await withLdap(dynamic, async (lookup) => {
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
    assert.equal(show(await lookup("bob@other.test")), "notfound", "missing dynamic base: not found");
  });
  await withLdap(`${BASIC}\nsearch_base = ou=missing, ${SUFFIX}`, async (lookup) => {
    assert.equal(
      (await lookup("bob@example.test")).status,
      "tempfail",
      "missing fixed base: temporary failure",
    );
  });
});

test("ldap: the domain filter, expansion_limit and size_limit", async () => {
  await withLdap(`${BASIC}\ndomain = other.test`, async (lookup) => {
    assert.equal(show(await lookup("alice@example.test")), "notfound");
  });
  await withLdap(`${BASIC}\nexpansion_limit = 1`, async (lookup) => {
    assert.equal((await lookup("alice@example.test")).status, "tempfail");
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
  });
  await withLdap(`${BASIC}\nquery_filter = (mail=*%d)\nsize_limit = 1`, async (lookup) => {
    assert.equal((await lookup("x@example.test")).status, "tempfail");
  });
});

test("ldap: special (DN and URL), leaf and terminal result attributes", async () => {
  const groups =
    "query_filter = (mail=%s)\nbind = no\nresult_attribute = description\nspecial_result_attribute = member";
  await withLdap(groups, async (lookup) => {
    assert.equal(
      show(await lookup("staff@example.test")),
      "staff-owner@example.test,alice@mbox.example.test,alice2@mbox.example.test,bob@mbox.example.test",
    );
  });
  const leaf =
    "query_filter = (mail=%s)\nbind = no\nresult_attribute =\nleaf_result_attribute = description\n" +
    "special_result_attribute = member";
  await withLdap(leaf, async (lookup) => {
    assert.equal(
      show(await lookup("staff@example.test")),
      "alice@mbox.example.test,alice2@mbox.example.test,bob@mbox.example.test",
    );
  });
  await withLdap(`${groups}\nterminal_result_attribute = l`, async (lookup) => {
    assert.equal(show(await lookup("routed@example.test")), "lists.example.test");
  });
  await withLdap(`${groups} labeledURI`, async (lookup) => {
    assert.equal(
      show(await lookup("dynamic@example.test")),
      "alice@mbox.example.test,alice2@mbox.example.test,bob@mbox.example.test",
    );
  });
  await withLdap(`${groups}\nrecursion_limit = 1`, async (lookup) => {
    assert.equal((await lookup("staff@example.test")).status, "tempfail");
  });
});

test("ldap: hostile keys cannot change the filter or the base", async () => {
  await withLdap(BASIC, async (lookup) => {
    for (const k of [
      "*",
      "*@example.test",
      "x)(mail=*",
      "alice@example.test)(|(mail=*",
      "\\2a",
      "x\0",
      "x)",
    ]) {
      assert.equal(show(await lookup(k)), "notfound", k);
    }
    assert.equal(show(await lookup("o'brien(x)@example.test")), "bob@mbox.example.test");
  });
  await withLdap(
    `${BASIC}\nsearch_base = uid=%u, ${PEOPLE}\nscope = base\nquery_filter = (objectClass=*)`,
    async (lookup) => {
      assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
      for (const k of [
        "bob,ou=people@example.test",
        "x+uid=bob@example.test",
        "#x@example.test",
        "bob\\@example.test",
      ]) {
        assert.equal(show(await lookup(k)), "notfound", k);
      }
    },
  );
  assert.equal(ldapFilterQuote("a*(b)\\\0"), "a\\2A\\28b\\29\\5C\\00");
  assert.equal(ldapDnQuote("a,b+c #"), "a\\2Cb\\2Bc\\20\\23");
});

test("ldap: simple bind with bind_dn and bind_pw; a wrong password is a temporary failure", async () => {
  const bind = `query_filter = (mail=%s)\nresult_attribute = description\nbind = yes\nbind_dn = cn=admin,${SUFFIX}`;
  await withLdap(`${bind}\nbind_pw = secret\nversion = 3`, async (lookup) => {
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
  });
  await withLdap(`${bind}\nbind_pw = wrong`, async (lookup) => {
    assert.equal((await lookup("bob@example.test")).status, "tempfail");
  });
});

test("ldap: failover to the next server, ldapi:// sockets, all servers dead", async () => {
  const failover = `server_host = ldap://127.0.0.1:${deadPort} 127.0.0.1:${port}\n${BASIC}`;
  await withLdap(failover, async (lookup) => {
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
  });
  const ldapi = `server_host = ldapi://${encodeURIComponent(join(dir, "ldapi"))}\n${BASIC}`;
  await withLdap(ldapi, async (lookup) => {
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
  });
  const started = Date.now();
  const dead = `server_host = 127.0.0.1 ldap://127.0.0.1:${deadPort}\nserver_port = ${deadPort}\n${BASIC}`;
  await withLdap(dead, async (lookup) => {
    assert.equal((await lookup("bob@example.test")).status, "tempfail");
  });
  assert.ok(Date.now() - started < 10000);
});

test("ldap: the connection is reused and re-established after a server restart", async () => {
  await withLdap(BASIC, async (lookup) => {
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
    await daemon?.stop();
    assert.equal((await lookup("bob@example.test")).status, "tempfail", "server down: temporary failure");
    daemon = await startSlapd();
    assert.equal(show(await lookup("bob@example.test")), "bob@mbox.example.test");
  });
});

test("ldap: LDAP URLs and bad configurations", async () => {
  assert.deepEqual(parseLdapUrl("ldap:///ou=x,dc=y??one?(uid=bob)"), {
    dn: "ou=x,dc=y",
    attrs: [],
    scope: "one",
    filter: "(uid=bob)",
  });
  assert.equal(parseLdapUrl("ldap:///x??bogus"), null);
  await withLdap(`${BASIC}\nbind = sasl`, async (lookup) => {
    assert.equal((await lookup("bob@example.test")).status, "tempfail");
  });
  await withLdap(`${BASIC}\nscope = everything`, async (lookup) => {
    assert.equal((await lookup("bob@example.test")).status, "tempfail");
  });
});
