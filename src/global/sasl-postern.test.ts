/*
 * sasl-postern.test - scrypt password hashes and the PLAIN/LOGIN exchanges of the built-in type
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PosternBackend, hashPassword, verifyPassword } from "./sasl-postern.js";
import { deletePassword, setPassword } from "./sasl-passwd.js";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

test("hashes are salted scrypt strings that verify only the right password", async () => {
  const a = await hashPassword("pässword");
  const b = await hashPassword("pässword");
  assert.match(a, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(a, b);
  assert.equal(await verifyPassword("pässword", a), true);
  assert.equal(await verifyPassword("password", a), false);
  assert.equal(await verifyPassword("pässword", "{PLAIN}pässword"), false);
  assert.equal(await verifyPassword("x", "$scrypt$ln=40,r=8,p=1$AAAA$AAAA"), false);
});

test("PLAIN and LOGIN against a table edited with setPassword/deletePassword", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-saslpw-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "pw");
  writeFileSync(file, "# users\n");
  const map = `texthash:${file}`;
  assert.equal(await setPassword(map, "Alice", "one"), false);
  assert.equal(await setPassword(map, "alice", "two"), true);
  const be = new PosternBackend([map]);
  const plain = async (s: string): Promise<string> => {
    const c = be.conversation();
    const r = await c.first("PLAIN", b64(s));
    c.close();
    return r.kind;
  };
  assert.equal(await plain("\0alice\0two"), "ok");
  assert.equal(await plain("\0ALICE\0two"), "ok");
  assert.equal(await plain("\0alice\0one"), "fail");
  assert.equal(await plain("bob\0alice\0two"), "fail");
  assert.equal(await plain("\0nobody\0two"), "fail");
  assert.equal(await plain("garbage"), "fail");
  const login = be.conversation();
  assert.deepEqual(await login.first("LOGIN", null), { kind: "more", challenge: b64("Username:") });
  assert.deepEqual(await login.next(b64("alice")), { kind: "more", challenge: b64("Password:") });
  assert.deepEqual(await login.next(b64("two")), { kind: "ok", user: "alice" });
  assert.equal(deletePassword(map, "alice"), true);
  assert.equal(await plain("\0alice\0two"), "fail");
  await assert.rejects(setPassword(map, "bad user", "x"), /bad user name/);
  await assert.rejects(setPassword("inline:{a=b}", "u", "x"), /not a file table/);
});
