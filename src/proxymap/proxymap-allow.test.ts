/*
 * proxymap-allow.test - which tables proxy_read_maps approves
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Config } from "../global/config.js";
import { captureLog, tempDir } from "../global/dict-testkit.js";
import { allowFromText, proxyAllowList } from "./proxymap-allow.js";

const log = captureLog();

/** The approved tables of a proxy_read_maps value, sorted. */
function allowed(text: string): string[] {
  return [...allowFromText(text, "proxy_read_maps", new Set())].sort();
}

test("only proxy: references are approved, without their prefix", () => {
  assert.deepEqual(
    allowed("hash:/etc/a, proxy:hash:/etc/b proxy:proxy:cdb:/etc/c,,  127.0.0.0/8 [::1]/128 example.com"),
    ["cdb:/etc/c", "hash:/etc/b"],
  );
});

test("{ } groups, nested unionmap/pipemap and /file entries are followed", () => {
  const dir = tempDir();
  const file = join(dir, "maps");
  writeFileSync(file, "# listed tables\nproxy:btree:/etc/f1\n  proxy:lmdb:/etc/f2, hash:/etc/no\n");
  assert.deepEqual(
    allowed(
      `{ proxy:mysql:/etc/m.cf connection_limit=1 } unionmap:{proxy:hash:/etc/u1, hash:/etc/u2} ` +
        `pipemap:{proxy:regexp:/etc/p1,proxy:hash:/etc/p2} ${file} ${join(dir, "absent")}`,
    ),
    ["btree:/etc/f1", "hash:/etc/p2", "hash:/etc/u1", "lmdb:/etc/f2", "mysql:/etc/m.cf", "regexp:/etc/p1"],
  );
  assert.match(log.take().join("\n"), /proxy_read_maps: open .*absent/);
});

test("a syntax error is logged and skipped", () => {
  assert.deepEqual(allowed("unionmap:{proxy:hash:/a proxy:hash:/b"), []);
  assert.match(log.take().join("\n"), /bad syntax in proxy_read_maps content/);
});

test("the configuration: $name expansion and restriction classes", () => {
  const cfg = Config.fromText(
    "/etc/postern",
    [
      "virtual_alias_maps = proxy:hash:/etc/postern/virtual",
      "transport_maps = hash:/etc/postern/transport",
      "smtpd_restriction_classes = special",
      "special = check_sender_access proxy:cdb:/etc/postern/special, reject",
    ].join("\n"),
  );
  assert.deepEqual([...proxyAllowList(cfg)].sort(), [
    "cdb:/etc/postern/special",
    "hash:/etc/postern/virtual",
    "unix:passwd.byname",
  ]);
});
