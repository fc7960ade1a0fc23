/*
 * hosts-file.test - /etc/hosts lookups as the "files" name service does them
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HostsFile, canonicalAddr, parseHosts } from "./hosts-file.js";

test("the first name of the first line is an address's name; a name has every address that lists it", () => {
  const t = parseHosts(
    [
      "# comment",
      "127.0.0.1\tlocalhost  loopback # trailing comment",
      "127.0.0.1 other",
      "::1 localhost ip6-localhost",
      "192.0.2.7 Mail.Example.COM mail",
      "not-an-address bogus",
      "192.0.2.8",
      "",
    ].join("\n"),
  );
  assert.equal(t.byAddr.get("127.0.0.1"), "localhost");
  assert.deepEqual(t.byName.get("localhost"), ["127.0.0.1", "::1"]);
  assert.deepEqual(t.byName.get("mail.example.com"), ["192.0.2.7"]);
  assert.equal(t.byName.get("bogus"), undefined);
  assert.equal(t.byAddr.has("192.0.2.8"), false);
});

test("addresses compare in one spelling", () => {
  assert.equal(canonicalAddr("::FFFF:127.0.0.1"), "127.0.0.1");
  assert.equal(canonicalAddr("2001:DB8:0:0::1"), "2001:db8::1");
  assert.equal(canonicalAddr("localhost"), null);
});

test("the file is read again when it changes; a missing file is empty", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-hosts-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "hosts");
  const h = new HostsFile(path);
  assert.equal(await h.nameOf("192.0.2.1"), null);
  writeFileSync(path, "192.0.2.1 one.example\n");
  assert.equal(await h.nameOf("192.0.2.1"), "one.example");
  assert.deepEqual(await h.addressesOf("ONE.example"), ["192.0.2.1"]);
  writeFileSync(path, "192.0.2.1 two.example two\n");
  assert.equal(await h.nameOf("::ffff:192.0.2.1"), "two.example");
  assert.deepEqual(await h.addressesOf("one.example"), []);
});
